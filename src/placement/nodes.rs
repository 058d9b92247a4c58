//! What a node can run, read from its labels: `kubernetes.io/arch` (the kubelet's, so
//! present on every node) for the native arch, and `<prefix>/<arch>=emulated` (binfmtd's,
//! only where its probe passed) for each arch it emulates. The labels and taints are kept
//! too, so the decision can leave out nodes the pod's own constraints exclude.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Taint};

use super::{label_name, ARCH_LABEL};
use crate::labels::Prefix;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeCaps {
    pub name: String,
    /// Label name of the native arch; `None` when the node has no (known) arch label.
    pub native: Option<&'static str>,
    pub emulated: BTreeSet<&'static str>,
    /// Arches binfmtd labelled `native` on this node (so `<prefix>/<arch> In [native,
    /// emulated]` selects it).
    pub labelled_native: BTreeSet<&'static str>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

impl NodeCaps {
    pub fn runs(&self, arch: &str) -> bool {
        self.native == Some(arch) || self.emulated.contains(arch)
    }
}

/// A node's capabilities from its labels.
pub fn capabilities(node: &Node, prefix: &Prefix) -> NodeCaps {
    let labels = node.metadata.labels.as_ref();
    let mut caps = NodeCaps {
        name: node.metadata.name.clone().unwrap_or_default(),
        native: labels
            .and_then(|l| l.get(ARCH_LABEL))
            .and_then(|a| label_name(a)),
        labels: labels.cloned().unwrap_or_default(),
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default(),
        ..NodeCaps::default()
    };
    for (k, v) in labels.into_iter().flatten() {
        let Some(arch) = k
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(label_name)
        else {
            continue;
        };
        match v.as_str() {
            "emulated" => {
                caps.emulated.insert(arch);
            }
            "native" => {
                caps.labelled_native.insert(arch);
            }
            _ => {}
        }
    }
    // A node emulating its own arch is a contradiction; native wins.
    if let Some(n) = caps.native {
        caps.emulated.remove(n);
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn capabilities_table() {
        let p = Prefix::default();
        let other: Prefix = "emu.example.com".parse().unwrap();
        type Row<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            &'a Prefix,
            Option<&'a str>,
            &'a [&'a str],
            &'a [&'a str],
        );
        let rows: &[Row] = &[
            (
                "plain amd64 node",
                &[("kubernetes.io/arch", "amd64")],
                &p,
                Some("amd64"),
                &[],
                &[],
            ),
            (
                "arm64 emulating amd64",
                &[
                    ("kubernetes.io/arch", "arm64"),
                    ("binfmtd.io/amd64", "emulated"),
                    ("binfmtd.io/arm64", "native"),
                ],
                &p,
                Some("arm64"),
                &["amd64"],
                &["arm64"],
            ),
            (
                "arm64 emulating nothing",
                &[
                    ("kubernetes.io/arch", "arm64"),
                    ("binfmtd.io/arm64", "native"),
                ],
                &p,
                Some("arm64"),
                &[],
                &["arm64"],
            ),
            (
                "other prefix ignores binfmtd.io",
                &[
                    ("kubernetes.io/arch", "arm64"),
                    ("binfmtd.io/amd64", "emulated"),
                    ("emu.example.com/riscv64", "emulated"),
                ],
                &other,
                Some("arm64"),
                &["riscv64"],
                &[],
            ),
            (
                "qemu-named arch label",
                &[
                    ("kubernetes.io/arch", "amd64"),
                    ("binfmtd.io/sparc64", "emulated"),
                ],
                &p,
                Some("amd64"),
                &["sparc64"],
                &[],
            ),
            (
                "unknown label values and arches ignored",
                &[
                    ("kubernetes.io/arch", "amd64"),
                    ("binfmtd.io/arm64", "yes"),
                    ("binfmtd.io/vax", "emulated"),
                    ("binfmtd.io.evil/arm64", "emulated"),
                ],
                &p,
                Some("amd64"),
                &[],
                &[],
            ),
            (
                "no arch label",
                &[("binfmtd.io/amd64", "emulated")],
                &p,
                None,
                &["amd64"],
                &[],
            ),
            (
                "unknown native arch",
                &[("kubernetes.io/arch", "wasm")],
                &p,
                None,
                &[],
                &[],
            ),
            (
                "emulating its own arch is native",
                &[
                    ("kubernetes.io/arch", "amd64"),
                    ("binfmtd.io/amd64", "emulated"),
                ],
                &p,
                Some("amd64"),
                &[],
                &[],
            ),
        ];
        for (case, labels, prefix, native, emulated, labelled) in rows {
            let c = capabilities(&node("n", labels), prefix);
            assert_eq!(c.native, *native, "{case}");
            assert_eq!(c.emulated, emulated.iter().copied().collect(), "{case}");
            assert_eq!(
                c.labelled_native,
                labelled.iter().copied().collect(),
                "{case}"
            );
        }
    }
}
