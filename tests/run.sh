#!/usr/bin/env bash
# The one command that installs everything the test suite needs and runs all of it.
# Used as-is by .ci/run. Needs root (apt-get, and the kernel sandboxes the tests create).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: run as root (it installs packages and the tests create kernel sandboxes)" >&2
    exit 2
fi
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends \
    qemu-user-static binutils-multiarch util-linux file crun runc containerd umoci xz-utils zstd >/dev/null
# Release artifacts (tests/release.rs builds them with packaging/dist.sh; tests/release.sh lists the same).
apt-get install -y -q --no-install-recommends \
    musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross dpkg-dev rpm rpm2cpio cpio skopeo jq cloud-init curl \
    wget systemd systemd-container \
    shellcheck >/dev/null
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null 2>&1

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
cargo test --all-targets
bash tests/release.sh
