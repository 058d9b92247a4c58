use super::*;

const UID: &str = "0f3c2a4e-8b1d-4c5e-9a7f-1234567890ab";
const UID_: &str = "0f3c2a4e_8b1d_4c5e_9a7f_1234567890ab";
const ID: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904b825dc642cb6eb9a060e54b0";

fn pod(container: Option<&str>) -> Owner {
    Owner {
        pod_uid: Some(UID.into()),
        container_id: container.map(str::to_string),
        unit: None,
    }
}

#[test]
fn systemd_driver_containerd_cgroup_v2() {
    let text = format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n");
    assert_eq!(owner(&text), pod(Some(ID)));
}

#[test]
fn systemd_driver_guaranteed_pod_crio() {
    let text = format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope\n");
    assert_eq!(owner(&text), pod(Some(ID)));
}

#[test]
fn crio_conmon_is_the_pod_but_no_container() {
    let text = format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope\n");
    assert_eq!(owner(&text), pod(None));
}

#[test]
fn cgroupfs_driver_containerd_cgroup_v1() {
    let text = format!(
        "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n\
         11:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{ID}\n\
         1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n\
         0::/\n"
    );
    assert_eq!(owner(&text), pod(Some(ID)));
}

#[test]
fn cgroupfs_driver_crio_guaranteed_v2() {
    let text = format!("0::/kubepods/pod{UID}/crio-{ID}\n");
    assert_eq!(owner(&text), pod(Some(ID)));
}

#[test]
fn systemd_driver_v1_hybrid_with_docker_scope() {
    let text = format!(
        "4:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope\n\
         0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope\n"
    );
    assert_eq!(owner(&text), pod(Some(ID)));
}

#[test]
fn kubelet_in_a_container_nests_the_hierarchy() {
    // kind and k3s-in-docker nodes put the kubelet's tree under their own.
    let text = format!("0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope\n");
    assert_eq!(owner(&text), pod(Some(ID)));
}

#[test]
fn pod_level_process_has_no_container() {
    let text = format!("0::/kubepods/burstable/pod{UID}\n");
    assert_eq!(owner(&text), pod(None));
}

#[test]
fn outside_pods_the_systemd_unit() {
    let text = "0::/system.slice/containerd.service\n";
    assert_eq!(owner(text).unit.as_deref(), Some("containerd.service"));
    let v1 = "9:name=systemd:/user.slice/user-0.slice/session-3.scope\n8:pids:/\n";
    assert_eq!(owner(v1).unit.as_deref(), Some("session-3.scope"));
    assert_eq!(owner(v1).pod_uid, None);
}

#[test]
fn no_unit_is_host() {
    for text in [
        "0::/\n",
        "9:name=systemd:/\n4:memory:/process_api/64deaa69\n0::/\n",
        "",
    ] {
        assert_eq!(owner(text).unit.as_deref(), Some("host"), "{text:?}");
    }
}

#[test]
fn lookalikes_are_not_pods() {
    for text in [
        "0::/podman.slice/x.scope\n",
        "0::/kubepods/besteffort/podnotauid/abc\n",
        "0::/kubepods.slice/kubepods-podzzzz.slice\n",
    ] {
        assert_eq!(owner(text).pod_uid, None, "{text:?}");
    }
}
