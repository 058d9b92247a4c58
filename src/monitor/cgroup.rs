//! Who ran a program: the text of /proc/PID/cgroup -> pod UID and container ID, or the
//! systemd unit, or "host". Pure.
//!
//! The kubelet names pod cgroups `pod<uid>` (cgroupfs driver) or
//! `kubepods-<qos>-pod<uid with _ for ->.slice` (systemd driver); the runtime names the
//! container's cgroup `<id>` (containerd, cgroupfs), `cri-containerd-<id>.scope`,
//! `crio-<id>.scope` or `docker-<id>.scope` (systemd), `crio-<id>` (CRI-O, cgroupfs).
//! The same text may list cgroup v1 hierarchies and the v2 one (`0::`); any of them that
//! names a pod decides, v2 first.

/// Where a process belongs. `pod_uid`/`container_id` for a pod's process, else `unit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Owner {
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
    pub unit: Option<String>,
}

/// The owner named by a /proc/PID/cgroup text.
pub fn owner(cgroup: &str) -> Owner {
    let mut paths: Vec<&str> = cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    // v2 (`0::path`) first: it is the one every controller agrees on when it exists.
    if let Some(v2) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        paths.insert(0, v2);
    }
    if let Some(owner) = paths.iter().find_map(|p| pod_owner(p)) {
        return owner;
    }
    let unit = paths
        .iter()
        .find_map(|p| unit_of(p))
        .unwrap_or_else(|| "host".to_string());
    Owner {
        unit: Some(unit),
        ..Owner::default()
    }
}

fn pod_owner(path: &str) -> Option<Owner> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let at = parts.iter().position(|p| pod_uid(p).is_some())?;
    Some(Owner {
        pod_uid: pod_uid(parts[at]),
        container_id: parts.get(at + 1).and_then(|c| container_id(c)),
        unit: None,
    })
}

/// `pod<uid>` or `...-pod<uid_with_underscores>.slice`.
fn pod_uid(part: &str) -> Option<String> {
    let raw = match part.strip_suffix(".slice") {
        Some(slice) => slice.rsplit_once("-pod")?.1,
        None => part.strip_prefix("pod")?,
    };
    let uid = raw.replace('_', "-");
    is_uid(&uid).then_some(uid)
}

fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The container ID in a runtime's cgroup name; None for conmon's and other helpers'.
fn container_id(part: &str) -> Option<String> {
    let name = part.strip_suffix(".scope").unwrap_or(part);
    if name.starts_with("crio-conmon-") {
        return None;
    }
    let id = ["cri-containerd-", "crio-", "docker-", "containerd-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The innermost systemd unit (service or scope) on a path outside any pod.
fn unit_of(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|p| p.ends_with(".service") || p.ends_with(".scope"))
        .map(str::to_string)
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
