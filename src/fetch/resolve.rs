//! Name resolution as the pod does it, after `--mount-namespace`.
//!
//! With `--mount-namespace` binfmtd lives in the host's mount namespace but stays in the
//! pod's network namespace. The C library reads `/etc/resolv.conf` and `/etc/hosts` from
//! the *mount* namespace, so after setns it would ask the host's resolver from inside the
//! pod's network: on hosts with the systemd-resolved stub (`nameserver 127.0.0.53`, which
//! listens only in the host's network namespace) every download failed to resolve.
//!
//! So names are resolved on one dedicated thread that has gone back into the pod's mount
//! namespace, where the C library reads the pod's files and asks the pod's resolver, as any
//! process in the pod would. A thread may join a mount namespace of its own once it stops
//! sharing filesystem attributes with the rest of the process (`unshare(CLONE_FS)`); the
//! rest of binfmtd keeps the host's view. The thread is started on the first lookup.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

type Answer = Result<Vec<SocketAddr>, String>;
type Request = (String, tokio::sync::oneshot::Sender<Answer>);

/// The namespace to resolve in, handed over by `--mount-namespace` (once per process).
static POD_NAMESPACE: OnceLock<Mutex<Option<OwnedFd>>> = OnceLock::new();
/// The resolver built on it, shared by every client of this process.
static RESOLVER: OnceLock<Option<Arc<PodResolver>>> = OnceLock::new();

/// Resolve names in the mount namespace `ns` (a handle on `/proc/self/ns/mnt` taken before
/// binfmtd left it) from now on. Later calls are ignored: the process enters one namespace.
pub fn resolve_in(ns: OwnedFd) {
    let _ = POD_NAMESPACE.set(Mutex::new(Some(ns)));
}

/// The resolver every HTTP client uses, when binfmtd has left its starting mount namespace.
pub fn pod_resolver() -> Option<Arc<PodResolver>> {
    RESOLVER
        .get_or_init(|| {
            let ns = POD_NAMESPACE.get()?.lock().ok()?.take()?;
            Some(Arc::new(PodResolver::start(ns)))
        })
        .clone()
}

/// Lookups sent to the resolver thread.
pub struct PodResolver {
    requests: Mutex<Sender<Request>>,
}

impl PodResolver {
    fn start(ns: OwnedFd) -> PodResolver {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                let entered = enter(ns);
                if let Err(e) = &entered {
                    tracing::warn!(error = %e, "cannot resolve names as the pod does; downloads by host name will fail");
                }
                for (host, reply) in rx {
                    let answer = match &entered {
                        Ok(()) => lookup(&host),
                        Err(e) => Err(e.clone()),
                    };
                    let _ = reply.send(answer);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the resolver thread");
        }
        PodResolver {
            requests: Mutex::new(tx),
        }
    }
}

/// Leave the process's filesystem attributes, then join the pod's mount namespace.
fn enter(ns: OwnedFd) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)
        .map_err(|e| format!("unshare(CLONE_FS) failed: {e}"))?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| {
        format!("cannot re-enter the starting mount namespace to read its resolv.conf: {e}")
    })?;
    let _ = std::env::set_current_dir("/");
    Ok(())
}

/// getaddrinfo in this thread's namespace; the port is set by the caller (reqwest).
fn lookup(host: &str) -> Answer {
    (host, 0)
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| format!("cannot resolve {host} with the pod's /etc/resolv.conf: {e}"))
}

impl Resolve for PodResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .requests
            .lock()
            .map_err(|_| "the resolver is poisoned".to_string())
            .and_then(|r| {
                r.send((name.as_str().to_string(), tx))
                    .map_err(|_| "the resolver thread is gone".to_string())
            });
        Box::pin(async move {
            sent?;
            let addrs = rx.await.map_err(|_| "the resolver thread is gone")??;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
