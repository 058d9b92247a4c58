//! Emulation-aware placement, the pure core: which architecture a pod should run, on which
//! nodes, and with which image references, decided from facts passed in as values.
//!
//! containerd pulls an image *index* with the node's own platform and fails when the index
//! lacks it; a single-platform manifest, or a reference by one platform's manifest digest,
//! is pulled whatever its platform and then runs through binfmt_misc. The scheduler knows
//! nothing of image platforms. So a gated pod gets required node affinity "runs A natively,
//! or emulates A" (from the Node labels binfmtd publishes), a preference for native A, and
//! where an index would fail to pull on an emulating node, its image pinned to A's digest.
//!
//! | module      | what it holds                                                               |
//! |-------------|-----------------------------------------------------------------------------|
//! | `platforms` | image index / manifest + config bytes -> the platform set per digest         |
//! | `reference` | image references: parse, validate, pin to a digest in the same repository    |
//! | `nodes`     | a Node's labels -> its native arch and the arches it emulates                 |
//! | `decide`    | the decision: outcome, changes, the Event message and the metric label       |
//! | `affinity`  | merging the arch requirement into a pod's own node affinity                 |
//! | `eligible`  | the nodes a pod may land on by its own selector, affinity and tolerations    |
//! | `patch`     | the JSON patch (RFC 6902) that applies a decision and lifts the gate         |
//! | `admission` | the webhook step: AdmissionReview in, the response that adds the gate out    |
//!
//! Everything here is pure: bytes and values in, values out; no clock, no I/O.

pub mod admission;
pub mod affinity;
mod b64;
pub mod decide;
pub mod eligible;
pub mod nodes;
pub mod patch;
pub mod platforms;
pub mod reference;
#[cfg(test)]
mod test_support;

use crate::arch::{lookup, Arch};

/// The scheduling gate the webhook adds and the controller removes, in every path.
pub const GATE: &str = "binfmtd.io/placement";

/// The kubelet's own architecture label (runtime GOARCH of the node).
pub const ARCH_LABEL: &str = "kubernetes.io/arch";

/// The deprecated spelling some charts still pin.
pub const BETA_ARCH_LABEL: &str = "beta.kubernetes.io/arch";

/// The name an arch has in Node labels: the GOARCH name when it has one, else the qemu
/// name; the same rule as the labels binfmtd publishes (`crate::labels::arch_name`).
pub fn arch_label(a: &Arch) -> &'static str {
    a.goarch.unwrap_or(a.qemu)
}

/// Any arch name (GOARCH, OCI, qemu, Debian) as its label name; `None` when unknown.
pub fn label_name(name: &str) -> Option<&'static str> {
    lookup(name).ok().map(arch_label)
}
