//! One request head (request line and headers), read within an absolute deadline and at
//! most `MAX_HEAD` bytes; the answer written within the same deadline. A per-read timeout
//! alone lets a client that sends a byte now and then hold the connection forever.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The most of a request head kept in memory; a longer one gets 431.
pub const MAX_HEAD: usize = 8192;

/// A connection whose reads and writes can be bounded in time (a socket; a script in tests).
pub trait Wire: Read + Write {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()>;
}

/// A TCP connection; by reference, so the accept loop can shut it down meanwhile.
pub struct Socket<'a>(pub &'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&mut &*self.0).read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&mut &*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Wire for Socket<'_> {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.0.set_read_timeout(Some(timeout))?;
        self.0.set_write_timeout(Some(timeout))
    }
}

#[derive(Debug)]
pub enum HeadError {
    /// The client closed (or was shut down) before the head was complete.
    Closed,
    TimedOut,
    TooLarge,
    Io(std::io::Error),
}

/// Time left before `deadline`; None once it has passed. (A zero timeout would mean
/// "block forever" to the socket.)
pub fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Read until the blank line that ends the head; bytes after it (a body, a pipelined
/// request) are not wanted: one request per connection, GET only.
pub fn read_head(wire: &mut dyn Wire, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    read_head_and_rest(wire, deadline).map(|(head, _)| head)
}

/// As `read_head`, also returning the bytes read past the head (the start of a body).
pub fn read_head_and_rest(
    wire: &mut dyn Wire,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let remaining = left(deadline).ok_or(HeadError::TimedOut)?;
        wire.set_timeout(remaining).map_err(HeadError::Io)?;
        let want = buf.len().min(MAX_HEAD - head.len());
        match wire.read(&mut buf[..want]) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => {
                let searched = head.len().saturating_sub(3);
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = head_end(&head, searched) {
                    let rest = head.split_off(end);
                    return Ok((head, rest));
                }
                if head.len() == MAX_HEAD {
                    return Err(HeadError::TooLarge);
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// Write all of `bytes` before `deadline`.
pub fn write_by(wire: &mut dyn Wire, mut bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let remaining = left(deadline).ok_or(ErrorKind::TimedOut)?;
        wire.set_timeout(remaining)?;
        match wire.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Where the head ends (after its blank line: CRLF CRLF, or a bare LF LF from a lenient
/// client), searching from `from` on (what was searched before cannot hold the end).
pub fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let tail = &head[from.min(head.len())..];
    let crlf = tail
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = tail.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    [crlf, lf].into_iter().flatten().min().map(|i| from + i)
}

/// Method and path from the request line (empty strings for what is missing).
pub fn request_line(head: &[u8]) -> (&str, &str) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or("");
    let mut parts = line.split_whitespace();
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads from scripted chunks (an Err(TimedOut) for a chunk of None), then EOF; records
    /// what is written.
    struct Script {
        chunks: std::collections::VecDeque<Option<Vec<u8>>>,
        written: Vec<u8>,
    }

    impl Script {
        fn new(chunks: &[Option<&[u8]>]) -> Script {
            Script {
                chunks: chunks.iter().map(|c| c.map(<[u8]>::to_vec)).collect(),
                written: Vec::new(),
            }
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.chunks.pop_front() {
                None => Ok(0),
                Some(None) => Err(ErrorKind::WouldBlock.into()),
                Some(Some(mut c)) => {
                    let n = c.len().min(buf.len());
                    buf[..n].copy_from_slice(&c[..n]);
                    if n < c.len() {
                        self.chunks.push_front(Some(c.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3);
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Wire for Script {
        fn set_timeout(&mut self, _: Duration) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn a_head_split_across_reads_and_timeouts_is_read_whole() {
        let mut s = Script::new(&[
            Some(b"GET /hea"),
            None,
            Some(b"lthz HTTP/1.1\r\nHost: x\r"),
            Some(b"\n\r\nbody"),
        ]);
        let head = read_head(&mut s, soon()).unwrap();
        assert_eq!(head, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(request_line(&head), ("GET", "/healthz"));
    }

    #[test]
    fn a_head_over_the_cap_is_refused_having_read_no_more_than_the_cap() {
        let long = vec![b'a'; 3 * MAX_HEAD];
        let mut s = Script::new(&[Some(b"GET / HTTP/1.1\r\nX: "), Some(&long)]);
        assert!(matches!(
            read_head(&mut s, soon()),
            Err(HeadError::TooLarge)
        ));
        let unread: usize = s.chunks.iter().flatten().map(Vec::len).sum();
        assert_eq!(unread, 3 * MAX_HEAD + 19 - MAX_HEAD);
    }

    #[test]
    fn a_client_gone_early_or_past_the_deadline_gets_nothing() {
        let mut s = Script::new(&[Some(b"GET / HTTP/1.1\r\n")]);
        assert!(matches!(read_head(&mut s, soon()), Err(HeadError::Closed)));
        let mut s = Script::new(&[Some(b"GET / HTTP/1.1\r\n")]);
        let past = Instant::now() - Duration::from_millis(1);
        assert!(matches!(read_head(&mut s, past), Err(HeadError::TimedOut)));
        assert!(write_by(&mut s, b"x", past).is_err());
    }

    #[test]
    fn the_answer_is_written_whole_over_short_writes() {
        let mut s = Script::new(&[]);
        write_by(&mut s, b"HTTP/1.1 200 OK\r\n", soon()).unwrap();
        assert_eq!(s.written, b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn head_end_and_request_line() {
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n", 0), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n", 0), None);
        assert_eq!(head_end(b"\r\n\r\n", 2), None);
        assert_eq!(request_line(b""), ("", ""));
        assert_eq!(request_line(b"BREW\r\n\r\n"), ("BREW", ""));
        assert_eq!(request_line(b"\xff\xfe /x"), ("", ""));
    }
}
