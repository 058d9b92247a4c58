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
    qemu-user-static binutils-multiarch util-linux file crun runc >/dev/null

bash tests/fixtures/fetch.sh
cargo test --all-targets
