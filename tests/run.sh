#!/usr/bin/env bash
# The one command that installs everything the test suite needs and runs all of it.
# Used as-is by .ci/run. Needs root (apt-get, and the kernel sandboxes the tests create).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: run as root (it installs packages and the tests create kernel sandboxes)" >&2
    exit 2
fi
bash tests/deps.sh

# The kernel tests run the built binary and read fixtures as an unprivileged uid (the
# sandbox's root maps to host uid 100000). A checkout under a private directory (mode 0700
# somewhere above it) is unreachable for that uid, so build and fetch into /var/tmp then.
reachable() {
    local d
    d=$(realpath "$1")
    while [ "$d" != "/" ]; do
        [ "$(( 0$(stat -c %a "$d") & 01 ))" -ne 0 ] || return 1
        d=$(dirname "$d")
    done
}
if ! reachable .; then
    shared=/var/tmp/binfmtd-tests
    mkdir -p "$shared" && chmod 0755 "$shared"
    export CARGO_TARGET_DIR="$shared/target"
    export FIXTURES="$shared/fixtures"
    echo "tests/run.sh: checkout not reachable by other uids; building in $CARGO_TARGET_DIR" >&2
fi

bash tests/fixtures/fetch.sh "${FIXTURES:-target/fixtures}"
log=$(mktemp)
k8s_log=$(mktemp)
k8s_pid=""
trap 'rm -f "$log" "$k8s_log"; [ -z "$k8s_pid" ] || kill "$k8s_pid" 2>/dev/null || true' EXIT
# The real Kubernetes control plane of tests/k8s_*.rs (tests/k8s/build.sh; reused once built),
# and crictl for tests/place_pull.rs (tests/k8s/build-crictl.sh).
# A cold build takes tens of minutes of CPU, so it runs beside the Rust builds below, with its
# output in a file; the tests wait for it.
{ bash tests/k8s/build.sh && bash tests/k8s/build-crictl.sh; } >"$k8s_log" 2>&1 &
k8s_pid=$!
echo "tests/run.sh: building (or reusing) the Kubernetes components in the background" >&2
# Release artifacts first (static binaries, packages, image; aarch64 unit tests under qemu), so
# that tests/release.rs, inside the full `cargo test`, tests exactly those.
BINFMTD_DEPS_INSTALLED=1 bash tests/release.sh
if ! wait "$k8s_pid"; then
    k8s_pid=""
    cat "$k8s_log" >&2
    echo "tests/run.sh: tests/k8s/build.sh failed (its output above)" >&2
    exit 1
fi
k8s_pid=""
grep '^k8s build:' "$k8s_log" >&2 || true
BINFMTD_DIST="$PWD/target/dist" cargo test --all-targets --no-fail-fast 2>&1 | tee "$log"
# cargo's last block belongs to whichever target ran last (often one with no tests of its
# own); close with the total over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
