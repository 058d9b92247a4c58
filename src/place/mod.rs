//! `binfmtd place`: the cluster component that places pods by image platform (effectful
//! edges around the pure `placement` core): the webhook gates pods, the controller takes
//! gated pods, resolves their images' platforms from registries, decides, patches, and
//! reports each decision as an Event and a metric.
//!
//! | module       | what it holds                                                           |
//! |--------------|-------------------------------------------------------------------------|
//! | `error`      | `PlaceError`: what failed, on which object, and what to do              |
//! | `cert`       | the webhook's serving certificate: generated, kept in a Secret, caBundle |
//! | `webhook`    | the HTTPS admission endpoint (POST /mutate) on the agent's hardened server |
//! | `lease`      | leader election on a coordination.k8s.io Lease                          |
//! | `leader`     | whether this replica acts (the controller runs only while leader)        |
//! | `registry`   | image reference -> platform set over the distribution API, cached       |
//! | `controller` | the watch loop over gated pods and nodes; one pod's decision applied    |
//! | `metrics`    | `binfmtd_placement_*` (Prometheus text), served on `--listen`           |

pub mod cert;
pub mod controller;
pub mod error;
pub mod leader;
pub mod lease;
pub mod metrics;
pub mod registry;
pub mod webhook;

pub use error::PlaceError;
