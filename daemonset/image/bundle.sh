#!/usr/bin/env bash
# Build the bundled DaemonSet image, for clusters whose nodes cannot download:
#
#   daemonset/image/bundle.sh [DIST]      (default target/dist, after packaging/dist.sh)
#
# Writes DIST/binfmtd-V-bundled-oci.tar (tag V-bundled): the image of packaging/oci.sh plus, in each
# platform's image, qemu-x86_64 and qemu-aarch64 built for that platform's CPU in /usr/lib/binfmtd/qemu/.
# They are provisioned by that platform's own release binary (`binfmtd fetch`, the aarch64 one under
# qemu-aarch64-static on an x86_64 machine) from its embedded, sha256-pinned Debian trixie qemu-user
# package, with its ELF CPU and static checks; then each must match its pin in
# daemonset/overlays/bundled/config.toml, so the image and the overlay that uses it agree.
# Needs: network access to deb.debian.org, umoci, jq, python3 (>= 3.11, for tomllib).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIST=${1:-target/dist}
CONFIG=daemonset/overlays/bundled/config.toml
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH VERSION

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The sha256 the overlay pins for host CPU $1 (amd64|arm64) and bundled file $2 (qemu-x86_64 ...).
pin() {
    python3 - "$CONFIG" "$1" "$2" <<'PY'
import sys, tomllib
config, host, name = sys.argv[1:]
with open(config, "rb") as f:
    sources = tomllib.load(f)["source"]
hits = [s["sha256"] for s in sources if s["host"] == host and s["urls"][0].endswith("/" + name)]
if len(hits) != 1:
    sys.exit(f"bundle.sh: {config} pins {len(hits)} sources for host {host} file {name} (want 1)")
print(hits[0])
PY
}

for pair in amd64:x86_64 arm64:aarch64; do
    plat=${pair%%:*} arch=${pair#*:}
    bin=$DIST/binfmtd-$VERSION-$arch-linux-musl
    [ -x "$bin" ] || { echo "bundle.sh: no $bin: run packaging/dist.sh first" >&2; exit 2; }
    runner=()
    if [ "$arch" != "$(uname -m)" ]; then
        runner=("qemu-$arch-static")
        command -v "${runner[0]}" >/dev/null ||
            { echo "bundle.sh: ${runner[0]} is needed to run the $arch binfmtd (apt-get install qemu-user-static)" >&2; exit 2; }
    fi
    mkdir -p "$WORK/bundle/$plat"
    "${runner[@]}" "$bin" fetch --arch amd64,arm64 --config /dev/null --cache-dir "$WORK/cache-$plat" >"$WORK/fetch-$plat"
    while IFS=$'\t' read -r cpu state path sha rest; do
        [ "$state" = ok ] || { echo "bundle.sh: $plat: $cpu: $sha $rest" >&2; exit 1; }
        want=$(pin "$plat" "qemu-$cpu")
        [ "$sha" = "$want" ] || {
            echo "bundle.sh: $plat qemu-$cpu has sha256 $sha, but $CONFIG pins $want: update the pin with the package" >&2
            exit 1
        }
        install -m 0755 "$path" "$WORK/bundle/$plat/qemu-$cpu"
    done <"$WORK/fetch-$plat"
done

BUNDLE=$WORK/bundle bash packaging/oci.sh "$DIST" x86_64 aarch64
echo "bundle.sh: wrote $DIST/binfmtd-$VERSION-bundled-oci.tar (push: skopeo copy --all" \
    "oci-archive:$DIST/binfmtd-$VERSION-bundled-oci.tar:$VERSION-bundled docker://REGISTRY/binfmtd:$VERSION-bundled)" >&2
