#!/usr/bin/env bash
# Build the multi-arch OCI image from the static binaries in OUT, without any container daemon:
#   packaging/oci.sh OUT ARCH...      (ARCH: x86_64 | aarch64; VERSION and SOURCE_DATE_EPOCH from the env)
# umoci builds one single-layer image per platform (only /usr/bin/binfmtd: no libc, no shell, no qemu);
# jq then writes the image index that lists them with their platforms, and index.json tags that index
# as VERSION, which is the layout `skopeo copy --all oci-archive:...` and registries expect.
# Writes OUT/binfmtd-VERSION-oci.tar (an OCI image layout archive).
# With BUNDLE=DIR (daemonset/image/bundle.sh sets it), each platform's image also carries DIR/<amd64|arm64>/*
# in /usr/lib/binfmtd/qemu/, and the result is OUT/binfmtd-VERSION-bundled-oci.tar, tagged VERSION-bundled.
set -euo pipefail
OUT=$1
shift
: "${VERSION:?set VERSION (packaging/dist.sh does)}"
EPOCH=${SOURCE_DATE_EPOCH:-0}
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
TAG=$VERSION${BUNDLE:+-bundled}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LAYOUT=$WORK/layout
umoci init --layout "$LAYOUT"

oci_arch() {
    case "$1" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) echo "oci.sh: no OCI architecture known for '$1' (x86_64 or aarch64)" >&2; return 2 ;;
    esac
}

image() { # ARCH
    local plat bundle
    plat=$(oci_arch "$1")
    bundle=$WORK/bundle-$plat
    umoci new --image "$LAYOUT:$plat"
    umoci unpack --image "$LAYOUT:$plat" "$bundle" >/dev/null
    install -D -m 0755 "$OUT/binfmtd-$VERSION-$1-linux-musl" "$bundle/rootfs/usr/bin/binfmtd"
    if [ -n "${BUNDLE:-}" ]; then
        install -d -m 0755 "$bundle/rootfs/usr/lib/binfmtd/qemu"
        install -m 0755 "$BUNDLE/$plat"/qemu-* "$bundle/rootfs/usr/lib/binfmtd/qemu/"
    fi
    find "$bundle/rootfs" -exec touch -h -d "@$EPOCH" {} +
    umoci repack --image "$LAYOUT:$plat" --history.created "$CREATED" \
        --history.created_by "packaging/oci.sh: /usr/bin/binfmtd ($1 static musl)" "$bundle"
    umoci config --image "$LAYOUT:$plat" --os linux --architecture "$plat" --created "$CREATED" \
        --history.created "$CREATED" --history.created_by "packaging/oci.sh: config" \
        --config.entrypoint /usr/bin/binfmtd --config.cmd status \
        --config.label "org.opencontainers.image.version=$TAG" \
        --config.label "org.opencontainers.image.title=binfmtd"
}

for arch in "$@"; do
    image "$arch"
done
umoci gc --layout "$LAYOUT"

# The per-platform manifests, each annotated with the platform read from its own config blob.
blob() { echo "$LAYOUT/blobs/${1%%:*}/${1#*:}"; }
manifests=$(jq -c '.manifests[]' "$LAYOUT/index.json" | while read -r desc; do
    config=$(jq -r '.config.digest' "$(blob "$(jq -r .digest <<<"$desc")")")
    platform=$(jq -c '{architecture, os}' "$(blob "$config")")
    jq -c --argjson p "$platform" '{mediaType, digest, size, platform: $p}' <<<"$desc"
done | jq -s -c 'sort_by(.platform.architecture)')
jq -n -c --argjson m "$manifests" --arg v "$TAG" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: $m,
      annotations: {"org.opencontainers.image.version": $v}}' >"$WORK/index"
digest=$(sha256sum "$WORK/index" | cut -d' ' -f1)
install -m 0644 "$WORK/index" "$LAYOUT/blobs/sha256/$digest"
jq -n -c --arg d "sha256:$digest" --argjson s "$(stat -c %s "$WORK/index")" --arg v "$TAG" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
                   annotations: {"org.opencontainers.image.ref.name": $v}}]}' >"$LAYOUT/index.json"

find "$LAYOUT" -exec touch -h -d "@$EPOCH" {} +
tar -C "$LAYOUT" --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner \
    -cf "$OUT/binfmtd-$TAG-oci.tar" .
