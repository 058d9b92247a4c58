//! Whether this replica acts. The controller asks before each pod; the webhook (which
//! does no I/O) runs on every replica. `Always` is a single replica's answer; the Lease-based
//! elector of a 2-replica Deployment answers through the same trait.

pub trait Leader: Send + Sync {
    fn is_leader(&self) -> bool;
}

/// One replica: always the leader.
pub struct Always;

impl Leader for Always {
    fn is_leader(&self) -> bool {
        true
    }
}

/// The Lease-based elector of a replicated Deployment (`place::lease`).
impl<S: super::lease::LeaseStore + Send + Sync> Leader for super::lease::Elector<S> {
    fn is_leader(&self) -> bool {
        super::lease::Elector::is_leader(self)
    }
}
