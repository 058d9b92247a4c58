//! The placement decision, a pure function of the pod, its images' platform sets, the
//! nodes' capabilities and the label prefix. It says what to change (if anything), why, in
//! words for an Event, and as a short outcome label for a metric.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Affinity, Pod};

use super::affinity::{self, Single};
use super::eligible::eligible;
use super::nodes::NodeCaps;
use super::platforms::{Kind, PlatformSet};
use super::reference;
use super::{ARCH_LABEL, BETA_ARCH_LABEL};
use crate::labels::Prefix;

/// One container or init container of the pod, with its position in its list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub init: bool,
    pub index: usize,
    pub image: String,
}

/// Init containers first (they run first), then containers.
pub fn containers(pod: &Pod) -> Vec<Container> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let init = spec.init_containers.iter().flatten().map(|c| (true, c));
    let main = spec.containers.iter().map(|c| (false, c));
    let mut counts = [0usize; 2];
    init.chain(main)
        .map(|(is_init, c)| {
            let slot = &mut counts[usize::from(is_init)];
            *slot += 1;
            Container {
                name: c.name.clone(),
                init: is_init,
                index: *slot - 1,
                image: c.image.clone().unwrap_or_default(),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every image offers every node's native arch: the pod runs anywhere as it is.
    Covered { arches: Vec<&'static str> },
    /// The pod already pins an arch (or a binfmtd label) itself: its owner decided.
    Constrained { key: String },
    /// Affinity added (and images pinned where needed) for arch `arch`.
    Placed { arch: &'static str },
    /// The images share no architecture.
    NoCommonArch,
    /// The images share these arches, but no node runs or emulates any of them.
    NoCapableNode { common: Vec<&'static str> },
    /// The platforms of this image were not given (the controller could not resolve it).
    Unresolved { image: String },
    /// This image reference cannot be pinned to a digest.
    BadReference { image: String, why: &'static str },
    /// No node reports a known `kubernetes.io/arch`.
    NoNodes,
}

impl Outcome {
    /// The value of the outcome label on the decisions metric.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Covered { .. } => "covered",
            Outcome::Constrained { .. } => "constrained",
            Outcome::Placed { .. } => "placed",
            Outcome::NoCommonArch => "no_common_arch",
            Outcome::NoCapableNode { .. } => "no_capable_node",
            Outcome::Unresolved { .. } => "unresolved",
            Outcome::BadReference { .. } => "bad_reference",
            Outcome::NoNodes => "no_nodes",
        }
    }
}

/// One container's image named by the digest of arch A's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub container: String,
    pub init: bool,
    pub index: usize,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    pub arch: &'static str,
    /// The pod's whole affinity after the change (other affinity kinds kept).
    pub affinity: Affinity,
    pub rewrites: Vec<Rewrite>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    pub changes: Option<Changes>,
    /// The Event message.
    pub message: String,
}

fn unchanged(outcome: Outcome, message: String) -> Decision {
    Decision {
        outcome,
        changes: None,
        message: format!("{message}: nothing changed"),
    }
}

/// The key by which the pod already constrains its arch, if it does: `kubernetes.io/arch`
/// (or its beta spelling) or a label under the prefix, in nodeSelector or required affinity.
pub fn constraint(pod: &Pod, prefix: &Prefix) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let arch_key = |k: &str| k == ARCH_LABEL || k == BETA_ARCH_LABEL || prefix.owns(k);
    let selector = spec.node_selector.iter().flatten().map(|(k, _)| k);
    let terms = affinity::required_terms(spec.affinity.as_ref());
    let required = terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .map(|r| &r.key);
    selector.chain(required).find(|k| arch_key(k)).cloned()
}

/// The arch to run: offered by every image and run or emulated by some node; most native
/// nodes first, then most emulating nodes, then by name so ties always break the same way.
fn pick(common: &BTreeSet<&'static str>, nodes: &[&NodeCaps]) -> Option<&'static str> {
    let count = |a: &str, f: fn(&NodeCaps, &str) -> bool| nodes.iter().filter(|n| f(n, a)).count();
    common
        .iter()
        .copied()
        .map(|a| {
            (
                a,
                count(a, |n, a| n.native == Some(a)),
                count(a, |n, a| n.emulated.contains(a)),
            )
        })
        .filter(|(_, native, emulating)| native + emulating > 0)
        .min_by(|x, y| (y.1, y.2, x.0).cmp(&(x.1, x.2, y.0)))
        .map(|(a, _, _)| a)
}

fn list(arches: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    arches
        .into_iter()
        .map(|a| a.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The platform set of each distinct image, or the first image that was not resolved.
fn platform_sets<'a>(
    cs: &'a [Container],
    images: &'a BTreeMap<String, PlatformSet>,
) -> Result<BTreeMap<&'a str, &'a PlatformSet>, &'a str> {
    cs.iter()
        .map(|c| {
            images
                .get(&c.image)
                .map(|s| (c.image.as_str(), s))
                .ok_or(c.image.as_str())
        })
        .collect()
}

/// Decide for `pod`. `images` maps each image reference of the pod to its platform set.
pub fn decide(
    pod: &Pod,
    images: &BTreeMap<String, PlatformSet>,
    nodes: &[NodeCaps],
    prefix: &Prefix,
) -> Decision {
    if let Some(key) = constraint(pod, prefix) {
        let msg = format!("the pod already constrains {key}");
        return unchanged(Outcome::Constrained { key }, msg);
    }
    let cs = containers(pod);
    let sets = match platform_sets(&cs, images) {
        Ok(sets) => sets,
        Err(image) => {
            let msg = format!("the platforms of image {image} are unknown");
            return unchanged(
                Outcome::Unresolved {
                    image: image.into(),
                },
                msg,
            );
        }
    };
    let nodes: Vec<&NodeCaps> = nodes.iter().filter(|n| eligible(pod, n)).collect();
    let natives: BTreeSet<&'static str> = nodes.iter().filter_map(|n| n.native).collect();
    if natives.is_empty() {
        let msg = format!("no node the pod may run on reports a known {ARCH_LABEL}");
        return unchanged(Outcome::NoNodes, msg);
    }
    if sets.values().all(|s| natives.is_subset(&s.arches())) {
        let msg = format!(
            "the images offer every node's architecture ({})",
            list(&natives)
        );
        return unchanged(
            Outcome::Covered {
                arches: natives.into_iter().collect(),
            },
            msg,
        );
    }
    let common = match common_arches(&sets) {
        Ok(common) => common,
        Err(d) => return *d,
    };
    let Some(arch) = pick(&common, &nodes) else {
        let msg = format!(
            "the images share {} but no node runs or emulates it",
            list(&common)
        );
        return unchanged(
            Outcome::NoCapableNode {
                common: common.into_iter().collect(),
            },
            msg,
        );
    };
    placed(pod, &cs, &sets, &nodes, prefix, arch, &natives)
}

fn or_none(s: &BTreeSet<&'static str>) -> String {
    if s.is_empty() {
        "no Linux architecture binfmtd knows".into()
    } else {
        list(s)
    }
}

/// The arches every image offers; when none, the decision that says so.
fn common_arches(
    sets: &BTreeMap<&str, &PlatformSet>,
) -> Result<BTreeSet<&'static str>, Box<Decision>> {
    let common = sets
        .values()
        .map(|s| s.arches())
        .reduce(|a, b| a.intersection(&b).copied().collect())
        .unwrap_or_default();
    if !common.is_empty() {
        return Ok(common);
    }
    let each: Vec<_> = sets
        .iter()
        .map(|(i, s)| format!("{i}: {}", or_none(&s.arches())))
        .collect();
    let msg = format!("the images share no architecture ({})", each.join("; "));
    Err(Box::new(unchanged(Outcome::NoCommonArch, msg)))
}

/// The containers whose image is an index lacking the native arch of a node the pod may
/// now land on: containerd would fail to pull them there, so they get A's digest. An
/// error names the image that cannot be pinned and why.
fn rewrites(
    cs: &[Container],
    sets: &BTreeMap<&str, &PlatformSet>,
    landing: &BTreeSet<&'static str>,
    arch: &str,
) -> Result<Vec<Rewrite>, (String, &'static str)> {
    let mut out = Vec::new();
    for c in cs {
        let set = sets[c.image.as_str()];
        if set.kind != Kind::Index || landing.is_subset(&set.arches()) {
            continue;
        }
        let entry = set
            .entry_for(arch)
            .expect("the chosen arch is offered by every image");
        let to = reference::pin(&c.image, &entry.digest).map_err(|e| (c.image.clone(), e.why))?;
        if to != c.image {
            out.push(Rewrite {
                container: c.name.clone(),
                init: c.init,
                index: c.index,
                from: c.image.clone(),
                to,
            });
        }
    }
    Ok(out)
}

/// What a placed decision tells the pod's owner.
struct Story<'a> {
    arch: &'static str,
    sets: &'a BTreeMap<&'a str, &'a PlatformSet>,
    natives: &'a BTreeSet<&'static str>,
    emulators: bool,
    /// Nodes the pod's own terms now leave out (native, without binfmtd's labels).
    left_out: Vec<&'a str>,
    rewrites: &'a [Rewrite],
}

fn message(s: &Story, prefix: &Prefix) -> String {
    let arch = s.arch;
    let missing: Vec<_> = s
        .sets
        .iter()
        .filter_map(|(image, set)| {
            let lacks: Vec<_> = s.natives.difference(&set.arches()).copied().collect();
            (!lacks.is_empty()).then(|| format!("image {image} has no {}", list(lacks)))
        })
        .collect();
    let mut m = format!("runs {arch}; {}: ", missing.join(", "));
    if s.emulators {
        m += &format!("may run emulated on nodes that emulate {arch}; native preferred");
    } else {
        m += &format!("runs only on nodes that run {arch} natively (no node emulates {arch})");
    }
    if !s.left_out.is_empty() {
        let key = prefix.key(arch);
        let names = list(&s.left_out);
        m += &format!("; the pod's own node affinity terms leave out nodes without {key}: {names}");
    }
    for r in s.rewrites {
        m += &format!(
            "; container {} pinned to the {arch} manifest ({})",
            r.container, r.to
        );
    }
    m
}

fn placed(
    pod: &Pod,
    cs: &[Container],
    sets: &BTreeMap<&str, &PlatformSet>,
    nodes: &[&NodeCaps],
    prefix: &Prefix,
    arch: &'static str,
    natives: &BTreeSet<&'static str>,
) -> Decision {
    let runs_it = nodes.iter().filter(|n| n.runs(arch));
    let landing: BTreeSet<&'static str> = runs_it.filter_map(|n| n.native).collect();
    let rewrites = match rewrites(cs, sets, &landing, arch) {
        Ok(r) => r,
        Err((image, why)) => {
            let msg = format!("image {image} cannot be pinned to a digest ({why})");
            return unchanged(Outcome::BadReference { image, why }, msg);
        }
    };
    let emulators = nodes.iter().any(|n| n.emulated.contains(arch));
    let form = if emulators {
        Single::Labelled
    } else {
        Single::NativeOnly
    };
    let spec_affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let own_terms = !affinity::required_terms(spec_affinity).is_empty();
    let left_out = nodes
        .iter()
        .filter(|_| own_terms && emulators)
        .filter(|n| n.native == Some(arch) && !n.labelled_native.contains(arch))
        .map(|n| n.name.as_str())
        .collect();
    let story = Story {
        arch,
        sets,
        natives,
        emulators,
        left_out,
        rewrites: &rewrites,
    };
    let message = message(&story, prefix);
    let affinity = affinity::with_arch(spec_affinity, arch, prefix, form);
    let changes = Changes {
        arch,
        affinity,
        rewrites,
    };
    Decision {
        outcome: Outcome::Placed { arch },
        changes: Some(changes),
        message,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
