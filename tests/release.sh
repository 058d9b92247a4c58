#!/usr/bin/env bash
# Release checks: lint the shell, build every artifact with the documented command into target/dist, and
# run the unit tests of the aarch64 musl build under qemu-aarch64 (the cargo runner in .cargo/config.toml).
# The artifacts themselves are tested by tests/release.rs: `BINFMTD_DIST=target/dist cargo test --test
# release` (tests/run.sh runs this script first, then the whole `cargo test` against target/dist, so the
# artifacts are built once). Prints how long each step took.
# Needs root (apt-get, chroot, dpkg --root).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/release.sh: run as root (it installs packages; the tests chroot and dpkg --root)" >&2
    exit 2
fi
bash tests/deps.sh

step() { # LABEL CMD...
    local label=$1 start=$SECONDS
    shift
    "$@"
    echo "tests/release.sh: $label took $((SECONDS - start)) s"
}

step "shellcheck" shellcheck packaging/*.sh packaging/debian/* tests/release.sh
step "shellcheck (POSIX sh)" shellcheck -s sh packaging/install.sh packaging/debian/* tests/release/boot-driver.sh
step "packaging/dist.sh (2 release builds + packages + image)" bash packaging/dist.sh --out target/dist
# These unit tests examine this machine's own files (/bin/ls, /usr/bin/qemu-aarch64-static) or exec a native
# probe, so they assume the test binary's CPU is the machine's: under qemu-user the binary is aarch64 and
# the machine's files are not. Every other unit test runs.
host_bound=(
    interp::tests::dynamic_binaries_are_refused
    interp::tests::real_debian_qemu_passes_and_wrong_cpu_is_named
    interp::tests::local_interpreters_are_adopted_into_the_cache
    probe::runner::tests::spawn_retries_while_the_file_is_busy
)
skips=()
for t in "${host_bound[@]}"; do skips+=(--skip "$t"); done
step "aarch64 unit tests under qemu" cargo test --locked --target aarch64-unknown-linux-musl --lib -- --exact "${skips[@]}"
