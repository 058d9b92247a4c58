#!/usr/bin/env bash
# Build the .deb for one arch from an already built static binary in OUT (called by packaging/dist.sh):
#   packaging/deb.sh OUT ARCH        (ARCH: x86_64 | aarch64; VERSION and SOURCE_DATE_EPOCH from the env)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$1 ARCH=$2
: "${VERSION:?set VERSION (packaging/dist.sh does)}"
case "$ARCH" in
x86_64) DEBARCH=amd64 ;;
aarch64) DEBARCH=arm64 ;;
*) echo "deb.sh: no Debian architecture known for '$ARCH' (x86_64 or aarch64)" >&2; exit 2 ;;
esac

STAGE=$(mktemp -d)
chmod 0755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
install -D -m 0755 "$OUT/binfmtd-$VERSION-$ARCH-linux-musl" "$STAGE/usr/bin/binfmtd"
# /usr/lib/systemd/system: the merged-/usr location, valid on bookworm and required from trixie on.
install -D -m 0644 systemd/binfmtd.service "$STAGE/usr/lib/systemd/system/binfmtd.service"
install -D -m 0644 packaging/binfmtd.env "$STAGE/etc/default/binfmtd"
CONFFILES=(/etc/default/binfmtd)
if [ -f packaging/config.example.toml ]; then
    install -D -m 0644 packaging/config.example.toml "$STAGE/etc/binfmtd/config.toml"
    CONFFILES+=(/etc/binfmtd/config.toml)
fi
mkdir -p "$STAGE/usr/share/doc/binfmtd"
cat >"$STAGE/usr/share/doc/binfmtd/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: binfmtd

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

mkdir -p "$STAGE/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$STAGE/DEBIAN/$script"
done
printf '%s\n' "${CONFFILES[@]}" >"$STAGE/DEBIAN/conffiles"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: binfmtd
Version: $VERSION
Architecture: $DEBARCH
Maintainer: binfmtd maintainers <binfmtd@users.noreply.github.com>
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Description: provision, prove and report qemu-user emulation via binfmt_misc
 binfmtd registers qemu-user emulators in binfmt_misc with the F flag, proves
 each registration by running a tiny foreign program, repairs entries that
 vanish or change, and reports per-arch state. It downloads its own pinned,
 verified qemu-user interpreters.
 The package never removes or flushes binfmt_misc entries; run
 'binfmtd uninstall' for that.
CONTROL

find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT/binfmtd_${VERSION}_${DEBARCH}.deb" >/dev/null
