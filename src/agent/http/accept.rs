//! The accept loop. It never waits on a client: each connection is answered on its own
//! thread, and at `MAX_CONNECTIONS` the oldest open connection is closed to make room, so
//! whoever holds many connections open pushes out their own, not the next probe (which sends
//! its request at once and is answered within milliseconds). An accept that fails for lack
//! of file descriptors leaves the connection queued in the kernel: retrying at once would
//! spin, so the loop closes its oldest connection, pauses, and warns once a minute at most.
//! What a connection is answered with is the caller's (`Handler`): the agent's plain HTTP and
//! the placement webhook's HTTPS share this loop and its protections.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{MAX_CONNECTIONS, REQUEST_DEADLINE};

/// Answers one connection, all before the deadline it is given.
pub type Handler = Arc<dyn Fn(&TcpStream, Instant) -> std::io::Result<()> + Send + Sync>;

/// A connection's thread parses one head and formats a few KB of metrics.
const STACK: usize = 256 * 1024;
/// Pause after an accept failed for lack of resources.
const SHORT_PAUSE: Duration = Duration::from_millis(100);
/// Pause after an accept failure nothing explains (the listener itself broken).
const LONG_PAUSE: Duration = Duration::from_secs(1);
/// One warning per kind of failure per this long, however often it recurs.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The open connections, oldest first (generic: the shedding rule is tested on values).
pub struct Table<T> {
    cap: usize,
    next: u64,
    open: VecDeque<(u64, T)>,
}

impl<T> Table<T> {
    pub fn new(cap: usize) -> Table<T> {
        Table {
            cap,
            next: 0,
            open: VecDeque::new(),
        }
    }

    /// Admit a connection: its id, and the oldest one if room had to be made.
    pub fn admit(&mut self, conn: T) -> (u64, Option<T>) {
        let shed = if self.open.len() >= self.cap {
            self.shed_oldest()
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        self.open.push_back((id, conn));
        (id, shed)
    }

    /// A connection is done (no-op if it was shed meanwhile).
    pub fn remove(&mut self, id: u64) {
        if let Some(i) = self.open.iter().position(|(k, _)| *k == id) {
            self.open.remove(i);
        }
    }

    pub fn shed_oldest(&mut self) -> Option<T> {
        self.open.pop_front().map(|(_, c)| c)
    }
}

/// What a failed accept means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// That connection went away before it was accepted: take the next one at once.
    Connection,
    /// Out of file descriptors or memory: the connection stays queued; make room, pause.
    Resources,
    /// Anything else: pause longer.
    Other,
}

pub fn classify(errno: Option<i32>) -> Failure {
    match errno {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Failure::Resources,
        // accept(2): Linux passes pending network errors of the new socket on as accept's.
        Some(
            libc::ECONNABORTED
            | libc::EINTR
            | libc::EAGAIN
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT,
        ) => Failure::Connection,
        _ => Failure::Other,
    }
}

/// Warn the first time, and again only once `WARN_EVERY` has passed since the last warning.
pub fn should_warn(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
}

type Conns = Arc<Mutex<Table<Arc<TcpStream>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accept forever; `flag` names the listening option in warnings (`--listen`).
pub fn run(listener: TcpListener, bound: SocketAddr, flag: &str, handler: Handler) {
    let conns: Conns = Arc::new(Mutex::new(Table::new(MAX_CONNECTIONS)));
    let (mut warned_resources, mut warned_other) = (None, None);
    loop {
        let e = match listener.accept() {
            Ok((conn, _)) => {
                start(conn, &conns, &handler);
                continue;
            }
            Err(e) => e,
        };
        let now = Instant::now();
        match classify(e.raw_os_error()) {
            Failure::Connection => {}
            Failure::Resources => {
                if should_warn(warned_resources, now) {
                    warned_resources = Some(now);
                    tracing::warn!(
                        "{flag} {bound}: out of file descriptors or memory ({e}); closing the oldest \
                         connection and pausing accepts. Hint: raise the agent's open-files limit \
                         (LimitNOFILE= in the unit, ulimit -n)"
                    );
                }
                // Closing a connection frees the descriptor the queued one needs.
                if let Some(old) = lock(&conns).shed_oldest() {
                    let _ = old.shutdown(Shutdown::Both);
                }
                std::thread::sleep(SHORT_PAUSE);
            }
            Failure::Other => {
                if should_warn(warned_other, now) {
                    warned_other = Some(now);
                    tracing::warn!(
                        "{flag} {bound}: accepting a connection failed: {e}; retrying every second"
                    );
                }
                std::thread::sleep(LONG_PAUSE);
            }
        }
    }
}

/// Admit a connection (shedding the oldest at the cap) and answer it on its own thread.
fn start(conn: TcpStream, conns: &Conns, handler: &Handler) {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    // Answers go out in more than one write (a TLS record, then close_notify): with Nagle on,
    // the last waits for the client's delayed ACK, about 40 ms per request on Linux.
    let _ = conn.set_nodelay(true);
    let conn = Arc::new(conn);
    let (id, shed) = lock(conns).admit(conn.clone());
    if let Some(old) = shed {
        // Its thread's read or write fails at once and the thread ends.
        let _ = old.shutdown(Shutdown::Both);
        tracing::debug!(
            cap = MAX_CONNECTIONS,
            "http: closed the oldest connection to make room"
        );
    }
    let (mine, handler) = (conns.clone(), handler.clone());
    let spawned = std::thread::Builder::new()
        .name("http-conn".into())
        .stack_size(STACK)
        .spawn(move || {
            if let Err(e) = handler(&conn, deadline) {
                tracing::debug!(error = %e, "http request failed");
            }
            lock(&mine).remove(id);
        });
    if let Err(e) = spawned {
        // The closure, and with it the connection, is gone: forget it here too.
        lock(conns).remove(id);
        tracing::debug!(error = %e, "http: no thread for a connection; closed it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_connection_makes_room() {
        let mut t = Table::new(2);
        assert_eq!(t.admit('a'), (0, None));
        assert_eq!(t.admit('b'), (1, None));
        assert_eq!(t.admit('c'), (2, Some('a')));
        // 'b' finishes; 'd' fits without shedding; then 'c' is the oldest.
        t.remove(1);
        assert_eq!(t.admit('d'), (3, None));
        t.remove(0); // shed already: nothing happens
        assert_eq!(t.admit('e'), (4, Some('c')));
        assert_eq!(t.shed_oldest(), Some('d'));
        assert_eq!(t.shed_oldest(), Some('e'));
        assert_eq!(t.shed_oldest(), None);
    }

    #[test]
    fn accept_failures_are_told_apart() {
        assert_eq!(classify(Some(libc::EMFILE)), Failure::Resources);
        assert_eq!(classify(Some(libc::ENFILE)), Failure::Resources);
        assert_eq!(classify(Some(libc::ECONNABORTED)), Failure::Connection);
        assert_eq!(classify(Some(libc::EBADF)), Failure::Other);
        assert_eq!(classify(None), Failure::Other);
    }

    #[test]
    fn a_recurring_failure_is_warned_about_once_a_minute() {
        let t0 = Instant::now();
        assert!(should_warn(None, t0));
        assert!(!should_warn(Some(t0), t0 + Duration::from_secs(59)));
        assert!(should_warn(Some(t0), t0 + WARN_EVERY));
    }

    /// Every handler writes its answer in pieces; each connection it gets has Nagle off.
    #[test]
    fn connections_reach_the_handler_with_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let handler: Handler = Arc::new(move |conn, _| {
            tx.lock().unwrap().send(conn.nodelay()?).unwrap();
            Ok(())
        });
        std::thread::spawn(move || run(listener, addr, "--test", handler));
        let _client = TcpStream::connect(addr).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
}
