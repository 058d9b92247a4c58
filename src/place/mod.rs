//! `binfmtd place`: the cluster component that places pods by image platform (effectful
//! edges around the pure `placement` core).
//!
//! | module    | what it holds                                                              |
//! |-----------|----------------------------------------------------------------------------|
//! | `error`   | `PlaceError`: what failed, on which object, and what to do                 |
//! | `cert`    | the webhook's serving certificate: generated, kept in a Secret, caBundle   |
//! | `webhook` | the HTTPS admission endpoint (POST /mutate) on the agent's hardened server |
//! | `lease`   | leader election on a coordination.k8s.io Lease                             |

pub mod cert;
pub mod error;
pub mod lease;
pub mod webhook;

pub use error::PlaceError;
