#!/usr/bin/env bash
# Builds the real Kubernetes components the tests run against: kube-apiserver, kubectl,
# kube-controller-manager, kube-scheduler and the kubelet (for the sandboxed node of
# `cluster.sh up DIR --node`) from one k8s.io/kubernetes release, and the etcd that release
# stores its objects in, all from the Go module proxy (no registry ships these).
#
#   tests/k8s/build.sh            build once, or reuse; prints the directory holding the binaries
#   tests/k8s/build.sh --check    print that directory if it is complete, else exit 3 (never builds)
#
# The wrapper modules in kubernetes/ and etcd/ pin every module (go.mod + go.sum are committed),
# so every machine builds the same thing. Binaries, GOMODCACHE and GOCACHE live under
# $BINFMTD_K8S_CACHE (default /var/cache/binfmtd-tests); the binaries' directory is keyed by the
# versions, and a stamp written last marks it complete.
set -euo pipefail

K8S_VERSION=v1.35.4   # EKS standard support until 2027-03-27
ETCD_VERSION=v3.6.16  # the 3.6 line Kubernetes 1.35 is tested with (its go.mod requires 3.6.5)
GO_MIN=1.26           # etcd 3.6.16's go.mod says go 1.26.0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BINFMTD_K8S_CACHE:-/var/cache/binfmtd-tests}
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
# Keyed by the versions and the set of binaries: adding a binary builds a new directory (the
# module and build caches make that quick) instead of deleting one a running test still uses.
out=$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$(printf '%s\n' "${bins[@]}" | sha256sum | cut -c1-8)

die() { echo "k8s build: $*" >&2; exit 1; }

stamp_text() {
    # What the binaries were built from: a change to any of it is a rebuild.
    echo "kubernetes $K8S_VERSION etcd $ETCD_VERSION: ${bins[*]}"
    go env GOVERSION GOOS GOARCH
    cat "$here"/kubernetes/go.mod "$here"/kubernetes/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum | sha256sum
}

complete() {
    [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$(stamp_text)" ] || return 1
    for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || return 1; done
}

command -v go >/dev/null || die "no go command. Hint: install Go $GO_MIN or newer (the machine image has it; tests/deps.sh does not install it)."
have=$(go env GOVERSION | sed 's/^go//')
[ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -1)" = "$GO_MIN" ] ||
    die "go $have is older than $GO_MIN, which etcd $ETCD_VERSION needs. Hint: install a newer Go."

if [ "${1:-}" = --check ]; then
    complete && { echo "$out/bin"; exit 0; }
    echo "k8s build: $out is not built. Hint: run tests/k8s/build.sh" >&2
    exit 3
fi

mkdir -p "$cache"
exec 9>"$cache/.k8s-build.lock"
flock 9   # a second caller waits for the first build rather than racing it
if complete; then
    echo "k8s build: reusing $out/bin" >&2
    echo "$out/bin"
    exit 0
fi

export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ver=k8s.io/component-base/version
ldflags="-s -w -X $ver.gitVersion=$K8S_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor"
ldflags+=" -X $ver.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"

tmp=$out.tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out" && mkdir -p "$tmp/bin"
start=$SECONDS
echo "k8s build: kubernetes $K8S_VERSION + etcd $ETCD_VERSION into $out (a cold build takes tens of minutes)" >&2
(cd "$here/etcd" && go build -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3) ||
    die "building etcd $ETCD_VERSION failed (output above). Hint: the Go module proxy must be reachable for a cold build."
(cd "$here/kubernetes" && go build -ldflags "$ldflags" -o "$tmp/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet) ||
    die "building kubernetes $K8S_VERSION failed (output above). Hint: the Go module proxy must be reachable for a cold build."
"$tmp/bin/kube-apiserver" --version | grep -qx "Kubernetes $K8S_VERSION" ||
    die "kube-apiserver reports '$("$tmp/bin/kube-apiserver" --version)', not $K8S_VERSION"
stamp_text >"$tmp/stamp"
mv "$tmp" "$out"
echo "k8s build: done in $((SECONDS - start)) s" >&2
echo "$out/bin"
