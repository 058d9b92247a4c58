//! Whether this replica acts. The controller asks before each pod; the webhook (which
//! does no I/O) runs on every replica. The Lease-based elector of the Deployment answers.

pub trait Leader: Send + Sync {
    fn is_leader(&self) -> bool;
}

/// The Lease-based elector of a replicated Deployment (`place::lease`).
impl<S: super::lease::LeaseStore + Send + Sync> Leader for super::lease::Elector<S> {
    fn is_leader(&self) -> bool {
        super::lease::Elector::is_leader(self)
    }
}
