#!/usr/bin/env bash
# Build every release artifact into one directory (the one documented release command):
#
#   packaging/dist.sh [--out DIR] [--arch "x86_64 aarch64"] [--no-packages] [--bundled]
#
# Writes, for version V (from Cargo.toml):
#   binfmtd-V-<arch>-linux-musl    static, stripped, no libc at all (x86_64 and aarch64 musl)
#   binfmtd.service, install.sh    the unit and the installer (stamped to default to V)
#   config.toml                    only when packaging/config.example.toml exists
#   binfmtd_V_<debarch>.deb, binfmtd-V-1.<arch>.rpm
#   binfmtd-V-oci.tar              OCI image layout, one index for linux/amd64 + linux/arm64
#   binfmtd-V-bundled-oci.tar      with --bundled: the image plus verified qemu (daemonset/image/bundle.sh)
#   SHA256SUMS                     over all of the above (install.sh verifies against it)
# Needs: rustup targets x86_64-unknown-linux-musl aarch64-unknown-linux-musl; musl-tools (x86_64 link);
# gcc-aarch64-linux-gnu + libc6-dev-arm64-cross (ring's C for aarch64, see .cargo/config.toml);
# dpkg-dev, rpm, umoci, jq for the packages. aarch64 links with rustc's rust-lld (.cargo/config.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=packaging

OUT=target/dist
ARCHES="x86_64 aarch64"
PACKAGES=1
BUNDLED=0
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift 2 ;;
    --arch) ARCHES=$2; shift 2 ;;
    --no-packages) PACKAGES=0; shift ;;
    --bundled) BUNDLED=1; shift ;;
    *) echo "dist.sh: unknown option '$1' (options: --out DIR, --arch LIST, --no-packages, --bundled)" >&2; exit 2 ;;
    esac
done

case "$OUT" in "" | / | . | "$PWD") echo "dist.sh: refusing --out '$OUT': it is emptied first" >&2; exit 2 ;; esac
read -r -a ARCH_LIST <<<"$ARCHES"
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$VERSION" ] || { echo "dist.sh: no version = \"...\" line in Cargo.toml" >&2; exit 2; }
# Timestamps inside packages and image layers come from the last commit, so rebuilds are reproducible.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH VERSION

timed() { # LABEL CMD...
    local start=$SECONDS
    "$@"
    echo "dist.sh: $* took $((SECONDS - start)) s" >&2
}

build() { # ARCH
    local triple=$1-unknown-linux-musl
    cargo build --release --locked --target "$triple" --bin binfmtd
    install -m 0755 "${CARGO_TARGET_DIR:-target}/$triple/release/binfmtd" "$OUT/binfmtd-$VERSION-$1-linux-musl"
}

rm -rf "$OUT"
mkdir -p "$OUT"
for arch in "${ARCH_LIST[@]}"; do
    timed build "$arch"
done

install -m 0644 systemd/binfmtd.service "$OUT/binfmtd.service"
sed "s/^DEFAULT_VERSION=\"\"$/DEFAULT_VERSION=\"$VERSION\"/" "$HERE/install.sh" >"$OUT/install.sh"
chmod 0755 "$OUT/install.sh"
if [ -f "$HERE/config.example.toml" ]; then
    install -m 0644 "$HERE/config.example.toml" "$OUT/config.toml"
fi

if [ "$PACKAGES" = 1 ]; then
    for arch in "${ARCH_LIST[@]}"; do
        timed bash "$HERE/deb.sh" "$OUT" "$arch"
        timed bash "$HERE/rpm.sh" "$OUT" "$arch"
    done
    timed bash "$HERE/oci.sh" "$OUT" "${ARCH_LIST[@]}"
fi
if [ "$BUNDLED" = 1 ]; then
    timed bash daemonset/image/bundle.sh "$OUT"
fi

ARTIFACTS=$(cd "$OUT" && find . -maxdepth 1 -type f -printf '%f\n' | LC_ALL=C sort)
(cd "$OUT" && printf '%s\n' "$ARTIFACTS" | xargs sha256sum >SHA256SUMS.new && mv SHA256SUMS.new SHA256SUMS)
echo "dist.sh: artifacts of binfmtd $VERSION in $OUT:" >&2
(cd "$OUT" && ls -l) >&2
