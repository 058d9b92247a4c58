#!/usr/bin/env bash
# A one-layer OCI image archive of a few files, for the node of node.sh (no registry here):
#
#   tests/k8s/node-image.sh OUT.tar TAG ARCH SRC:DEST... -- ENTRYPOINT...
#
# ARCH is the OCI architecture (amd64, arm64). index.json points straight at the manifest (no
# image index), so containerd's CRI accepts it whatever its platform (an index is matched against
# the node's platform and refused without it): that is how a foreign-arch image is run. Files are
# installed mode 0755.
set -euo pipefail
die() { echo "node-image.sh: $*" >&2; exit 1; }
[ $# -ge 5 ] || die "usage: node-image.sh OUT.tar TAG ARCH SRC:DEST... -- ENTRYPOINT..."
out=$1 tag=$2 arch=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/oci"
umoci new --image "$work/oci:$tag"
umoci unpack --rootless --image "$work/oci:$tag" "$work/bundle" >/dev/null
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    install -D -m 0755 "${1%%:*}" "$work/bundle/rootfs/${1#*:}"
    shift
done
[ "${1:-}" = -- ] && shift
[ $# -ge 1 ] || die "no entrypoint after --"
umoci repack --image "$work/oci:$tag" "$work/bundle" >/dev/null
args=()
for a in "$@"; do args+=(--config.entrypoint "$a"); done
umoci config --image "$work/oci:$tag" --os linux --architecture "$arch" "${args[@]}"
umoci gc --layout "$work/oci"
tar -C "$work/oci" -cf "$out" .
