#!/usr/bin/env bash
# Release checks that CI runs after `cargo test`: build every artifact with the documented command, run the
# release integration tests against exactly those artifacts, and run the unit tests of the aarch64 musl
# build under qemu-aarch64 (the cargo runner in .cargo/config.toml). Prints how long each step took.
# Needs root (apt-get, chroot, dpkg --root).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" -ne 0 ]; then
    echo "tests/release.sh: run as root (it installs packages; the tests chroot and dpkg --root)" >&2
    exit 2
fi
# Kept in step with tests/run.sh, which installs the same before `cargo test --all-targets`.
apt-get install -y -q --no-install-recommends \
    musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static file dpkg-dev rpm rpm2cpio \
    cpio umoci skopeo jq cloud-init curl wget systemd systemd-container shellcheck >/dev/null
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null 2>&1

step() { # LABEL CMD...
    local label=$1 start=$SECONDS
    shift
    "$@"
    echo "tests/release.sh: $label took $((SECONDS - start)) s"
}

step "shellcheck" shellcheck packaging/*.sh packaging/debian/* tests/release.sh
step "shellcheck (POSIX sh)" shellcheck -s sh packaging/install.sh packaging/debian/* tests/release/boot-driver.sh
step "packaging/dist.sh (2 release builds + packages + image)" bash packaging/dist.sh --out target/dist
step "release tests" env BINFMTD_DIST="$PWD/target/dist" cargo test --locked --test release
# These unit tests examine this machine's own files (/bin/ls, /usr/bin/qemu-aarch64-static) or exec a native
# probe, so they assume the test binary's CPU is the machine's: under qemu-user the binary is aarch64 and
# the machine's files are not. Every other unit test runs.
host_bound=(
    interp::tests::dynamic_binaries_are_refused
    interp::tests::real_debian_qemu_passes_and_wrong_cpu_is_named
    probe::runner::tests::spawn_retries_while_the_file_is_busy
)
skips=()
for t in "${host_bound[@]}"; do skips+=(--skip "$t"); done
step "aarch64 unit tests under qemu" cargo test --locked --target aarch64-unknown-linux-musl --lib -- --exact "${skips[@]}"
