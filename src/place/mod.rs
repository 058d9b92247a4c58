//! `binfmtd place`, the effectful half of placement (the decisions are `crate::placement`):
//! the controller that takes gated pods, resolves their images' platforms from registries,
//! decides and patches them, and reports each decision as an Event and a metric.
//!
//! | module       | what it holds                                                        |
//! |--------------|----------------------------------------------------------------------|
//! | `registry`   | image reference -> platform set over the distribution API, cached    |
//! | `controller` | the watch loop over gated pods and nodes; one pod's decision applied |
//! | `metrics`    | `binfmtd_placement_*` (Prometheus text), served on `--listen`        |
//! | `leader`     | whether this replica acts (the controller runs only while leader)     |

pub mod controller;
pub mod leader;
pub mod metrics;
pub mod registry;
