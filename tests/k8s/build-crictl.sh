#!/usr/bin/env bash
# Builds crictl (sigs.k8s.io/cri-tools), the CRI client tests/place_pull.rs drives containerd's
# CRI plugin with, from the Go module proxy into the cache tests/k8s/build.sh uses.
#
#   tests/k8s/build-crictl.sh           build once, or reuse; prints the binary's path
#   tests/k8s/build-crictl.sh --check   print the path if it is built, else exit 3 (never builds)
#
# The wrapper module in cri-tools/ pins every module (go.mod + go.sum are committed).
set -euo pipefail

CRI_TOOLS_VERSION=v1.37.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BINFMTD_K8S_CACHE:-/var/cache/binfmtd-tests}
out=$cache/crictl-$CRI_TOOLS_VERSION

die() { echo "crictl build: $*" >&2; exit 1; }

stamp_text() {
    echo "cri-tools $CRI_TOOLS_VERSION"
    go env GOVERSION GOOS GOARCH
    cat "$here"/cri-tools/go.mod "$here"/cri-tools/go.sum | sha256sum
}
complete() { [ -x "$out/crictl" ] && [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$(stamp_text)" ]; }

command -v go >/dev/null || die "no go command. Hint: install Go (the machine image has it)."
if [ "${1:-}" = --check ]; then
    complete && { echo "$out/crictl"; exit 0; }
    echo "crictl build: $out is not built. Hint: run tests/k8s/build-crictl.sh" >&2
    exit 3
fi

mkdir -p "$cache"
exec 9>"$cache/.crictl-build.lock"
flock 9
if complete; then
    echo "$out/crictl"
    exit 0
fi
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
tmp=$out.tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out" && mkdir -p "$tmp"
start=$SECONDS
(cd "$here/cri-tools" && go build -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
    -o "$tmp/crictl" sigs.k8s.io/cri-tools/cmd/crictl) ||
    die "building crictl $CRI_TOOLS_VERSION failed (output above). Hint: the Go module proxy must be reachable for a cold build."
stamp_text >"$tmp/stamp"
mv "$tmp" "$out"
echo "crictl build: done in $((SECONDS - start)) s" >&2
echo "$out/crictl"
