#!/usr/bin/env bash
# Build the .rpm for one arch from an already built static binary in OUT (called by packaging/dist.sh):
#   packaging/rpm.sh OUT ARCH        (ARCH: x86_64 | aarch64; VERSION and SOURCE_DATE_EPOCH from the env)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$1 ARCH=$2
: "${VERSION:?set VERSION (packaging/dist.sh does)}"
case "$ARCH" in
x86_64 | aarch64) ;;
*) echo "rpm.sh: no RPM architecture known for '$ARCH' (x86_64 or aarch64)" >&2; exit 2 ;;
esac

TOP=$(mktemp -d)
trap 'rm -rf "$TOP"' EXIT
mkdir -p "$TOP/SOURCES" "$TOP/RPMS"
install -m 0755 "$OUT/binfmtd-$VERSION-$ARCH-linux-musl" "$TOP/SOURCES/binfmtd"
install -m 0644 systemd/binfmtd.service "$TOP/SOURCES/binfmtd.service"
install -m 0644 packaging/binfmtd.env "$TOP/SOURCES/binfmtd.env"
WITH_CONFIG=()
if [ -f packaging/config.example.toml ]; then
    install -m 0644 packaging/config.example.toml "$TOP/SOURCES/config.toml"
    WITH_CONFIG=(--define "with_config 1")
fi
# --target: the binary is prebuilt, so rpmbuild only labels the package; the build host's arch is irrelevant.
rpmbuild -bb --quiet --target "$ARCH-linux" \
    --define "_topdir $TOP" --define "bversion $VERSION" --define "_unitdir /usr/lib/systemd/system" \
    --define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1" \
    --define "_buildhost reproducible" "${WITH_CONFIG[@]}" \
    packaging/rpm/binfmtd.spec
cp "$TOP/RPMS/$ARCH/binfmtd-$VERSION-1.$ARCH.rpm" "$OUT/"
