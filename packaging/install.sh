#!/bin/sh
# Install a binfmtd release on this machine (the cloud-init one-liner runs this):
#
#   curl -fsSL <base-url>/v<version>/install.sh | sh -s -- --arches arm64,riscv64
#
# It maps `uname -m` to a release artifact, downloads the binary, the systemd unit, the default config and
# SHA256SUMS, verifies every download BEFORE anything is installed, installs what differs from what is
# there (a re-run with the same options changes nothing), then enables and starts binfmtd.service when
# systemd runs. It never touches binfmt_misc itself: the unit's `binfmtd run` does, and only adds.
#
# Exit codes: 0 done (or nothing to do); 1 download, checksum or install failure; 2 bad usage or an
# unsupported CPU.
set -eu

# Stamped by packaging/dist.sh with the version the script ships with; empty here means --version is needed.
DEFAULT_VERSION=""
DEFAULT_BASE_URL="https://github.com/binfmtd/binfmtd/releases/download"

usage() {
    cat <<'EOF'
usage: install.sh [options] [-- extra binfmtd run arguments]

  --version V         release to install (default: the one this script came with)
  --base-url URL      where releases live; files are fetched from URL/vV/ (env BINFMTD_BASE_URL)
  --arch A            CPU to install for instead of `uname -m` (x86_64|amd64|aarch64|arm64)
  --root DIR          install under DIR instead of / (staging trees, tests); never starts anything
  --prefix DIR        where the binary goes (default /usr/local; the unit is adjusted to match); an
                      absolute path of A-Z a-z 0-9 _ . / + - only
  --dry-run           download and verify, then print what would change; change nothing
  --arches LIST       binfmtd: arches to provision, e.g. arm64,riscv64 or all (-> binfmtd run --arch)
  --label-prefix P    binfmtd: node label prefix (-> --label-prefix; binfmtd versions with node labels)
  --kubeconfig PATH   binfmtd: kubeconfig for node labels (-> --kubeconfig; likewise)
  -- ARGS...          binfmtd: more `binfmtd run` arguments, e.g. -- --skip-native

binfmtd arguments are written to /etc/default/binfmtd (BINFMTD_ARGS), read by binfmtd.service; only that
line is changed, other lines (e.g. HTTPS_PROXY=) are kept. Without any, an existing /etc/default/binfmtd is
kept as it is, and a new one gets "--arch amd64,arm64 --skip-native" (each node emulates the other server CPU).
EOF
}

say() { printf 'binfmtd-install: %s\n' "$*"; }
die() {
    code=$1
    shift
    printf 'binfmtd-install: error: %s\n' "$*" >&2
    exit "$code"
}

# Map a CPU name as `uname -m` (or a distribution) spells it to the release artifact's arch.
release_arch() {
    case "$1" in
    x86_64 | amd64) echo x86_64 ;;
    aarch64 | arm64) echo aarch64 ;;
    *) return 1 ;;
    esac
}

# Only characters that need no quoting in an EnvironmentFile, so arguments cannot inject anything.
check_arg() {
    case "$1" in
    "" | *[!A-Za-z0-9_.,:/=@+-]*)
        die 2 "binfmtd argument '$1' is empty or has characters other than A-Z a-z 0-9 _ . , : / = @ + -;" \
            "edit /etc/default/binfmtd by hand for such values"
        ;;
    esac
}

add_arg() {
    check_arg "$1"
    BINFMTD_ARGS="${BINFMTD_ARGS:+$BINFMTD_ARGS }$1"
    HAVE_ARGS=1
}

parse_args() {
    VERSION=$DEFAULT_VERSION BASE_URL=${BINFMTD_BASE_URL:-$DEFAULT_BASE_URL} CPU="" ROOT=/ PREFIX=/usr/local
    DRY_RUN=0 BINFMTD_ARGS="" HAVE_ARGS=0
    while [ $# -gt 0 ]; do
        case "$1" in
        -h | --help) usage; exit 0 ;;
        --dry-run) DRY_RUN=1; shift; continue ;;
        --) shift; for a in "$@"; do add_arg "$a"; done; break ;;
        esac
        [ $# -ge 2 ] || die 2 "option $1 needs a value (see --help)"
        case "$1" in
        --version) VERSION=${2#v} ;;
        --base-url) BASE_URL=${2%/} ;;
        --arch) CPU=$2 ;;
        --root) ROOT=$2 ;;
        --prefix) PREFIX=$2 ;;
        --arches) add_arg --arch; add_arg "$2" ;;
        --label-prefix) add_arg --label-prefix; add_arg "$2" ;;
        --kubeconfig) add_arg --kubeconfig; add_arg "$2" ;;
        *) die 2 "unknown option '$1' (see --help)" ;;
        esac
        shift 2
    done
    [ -n "$VERSION" ] || die 2 "no release version: pass --version (e.g. --version 0.1.0)"
    case "$ROOT" in /*) ;; *) die 2 "--root '$ROOT' must be an absolute path" ;; esac
    ROOT=${ROOT%/}
    # PREFIX lands in the unit's ExecStart (through sed) and under ROOT: no characters those would
    # read specially, no way out of ROOT.
    case "$PREFIX" in
    /*) ;;
    *) die 2 "--prefix '$PREFIX' must be an absolute path" ;;
    esac
    case "$PREFIX/" in
    *[!A-Za-z0-9_./+-]* | */../*)
        die 2 "--prefix '$PREFIX' may hold only A-Z a-z 0-9 _ . / + - and no '..' component"
        ;;
    esac
    PREFIX=${PREFIX%/}
}

# /etc/default/binfmtd with BINFMTD_ARGS set and every other line (an admin's HTTPS_PROXY=, the unit's
# only way to get proxy variables) kept as it was.
env_file() { # EXISTING
    found=0
    if [ -f "$1" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            case "$line" in
            BINFMTD_ARGS=*) [ "$found" = 1 ] || echo "BINFMTD_ARGS=\"$BINFMTD_ARGS\"" && found=1 ;;
            *) printf '%s\n' "$line" ;;
            esac
        done <"$1"
    else
        echo "# Written by binfmtd's install.sh; the arguments of \`binfmtd run\` (binfmtd.service)."
    fi
    [ "$found" = 1 ] || echo "BINFMTD_ARGS=\"$BINFMTD_ARGS\""
}

fetch() { # URL FILE
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 -o "$2" "$1" || die 1 "download of $1 failed; check --base-url and --version"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1" || die 1 "download of $1 failed; check --base-url and --version"
    else
        die 1 "neither curl nor wget is installed; install one of them and re-run"
    fi
}

# The checksum SHA256SUMS lists for FILE ("" when it lists none). Plain shell, no awk: minimal images and
# early-boot roots may lack it.
listed_sum() {
    while read -r sum name; do
        if [ "$name" = "$1" ] || [ "$name" = "*$1" ]; then
            echo "$sum"
            return 0
        fi
    done <"$TMP/SHA256SUMS"
}

# Check FILE (in $TMP) against SHA256SUMS; a missing line is as fatal as a wrong one.
verify() {
    want=$(listed_sum "$1")
    [ -n "$want" ] || die 1 "$URL/SHA256SUMS has no line for $1; nothing was installed"
    got=$(sha256sum "$TMP/$1" | cut -d' ' -f1)
    [ "$want" = "$got" ] || die 1 "checksum mismatch for $URL/$1: SHA256SUMS says $want, the download is" \
        "$got; nothing was installed. Retry, or check the mirror behind --base-url"
}

# Put SRC at ROOT/DEST with MODE unless identical content is already there.
place() { # SRC DEST MODE
    target=$ROOT$2
    if [ -f "$target" ] && cmp -s "$1" "$target"; then
        say "unchanged $2"
        return 0
    fi
    CHANGED=1
    if [ "$DRY_RUN" = 1 ]; then
        say "would install $2"
        return 0
    fi
    mkdir -p "$(dirname "$target")"
    # Write beside the target, then rename: a reader never sees a half-written binary or unit.
    if ! { cp "$1" "$target.new.$$" && chmod "$3" "$target.new.$$" && mv -f "$target.new.$$" "$target"; }; then
        rm -f "$target.new.$$"
        die 1 "could not write $target; is the file system writable and are you root?"
    fi
    say "installed $2"
}

download_all() {
    URL=$BASE_URL/v$VERSION
    BIN=binfmtd-$VERSION-$ARCH-linux-musl
    fetch "$URL/SHA256SUMS" "$TMP/SHA256SUMS"
    FILES="$BIN binfmtd.service"
    # The default config is optional in a release; ship it when the release lists one.
    if [ -n "$(listed_sum config.toml)" ]; then
        FILES="$FILES config.toml"
    fi
    for f in $FILES; do fetch "$URL/$f" "$TMP/$f"; done
    for f in $FILES; do verify "$f"; done
    say "verified $FILES against $URL/SHA256SUMS"
}

install_all() {
    CHANGED=0 UNIT_CHANGED=0
    place "$TMP/$BIN" "$PREFIX/bin/binfmtd" 0755
    sed "s#^ExecStart=/usr/bin/binfmtd #ExecStart=$PREFIX/bin/binfmtd #" "$TMP/binfmtd.service" >"$TMP/unit"
    before=$CHANGED
    place "$TMP/unit" /etc/systemd/system/binfmtd.service 0644
    [ "$CHANGED" = "$before" ] || UNIT_CHANGED=1
    if [ -f "$TMP/config.toml" ] && [ ! -e "$ROOT/etc/binfmtd/config.toml" ]; then
        place "$TMP/config.toml" /etc/binfmtd/config.toml 0644 # never overwrite an admin's config
    fi
    if [ "$HAVE_ARGS" = 0 ] && [ ! -e "$ROOT/etc/default/binfmtd" ]; then
        BINFMTD_ARGS="--arch amd64,arm64 --skip-native" HAVE_ARGS=1 # the other server CPU (binfmtd.env says why)
    fi
    if [ "$HAVE_ARGS" = 1 ]; then
        env_file "$ROOT/etc/default/binfmtd" >"$TMP/env"
        mode=0644 # an admin's tighter mode (proxy credentials) stays
        [ ! -f "$ROOT/etc/default/binfmtd" ] || mode=$(stat -c %a "$ROOT/etc/default/binfmtd")
        place "$TMP/env" /etc/default/binfmtd "$mode"
    else
        say "kept /etc/default/binfmtd (no binfmtd arguments given)"
    fi
}

# Enable always (offline into --root too); start only on a live systemd host, restart only on a change.
activate() {
    wants=$ROOT/etc/systemd/system/multi-user.target.wants/binfmtd.service
    if [ "$DRY_RUN" = 1 ]; then
        [ -L "$wants" ] || say "would enable binfmtd.service"
        [ "$CHANGED" = 0 ] || say "would (re)start binfmtd.service when systemd runs"
        return 0
    fi
    command -v systemctl >/dev/null 2>&1 || {
        say "systemctl not found: start '$PREFIX/bin/binfmtd run' by other means (see the README)"
        return 0
    }
    if [ "$ROOT" != "" ] || [ ! -d /run/systemd/system ]; then
        if [ ! -L "$wants" ]; then
            systemctl --root="${ROOT:-/}" --quiet enable binfmtd.service || die 1 "could not enable binfmtd.service under ${ROOT:-/}"
            say "enabled binfmtd.service"
        fi
        say "systemd is not running here (or --root was given): not starting binfmtd.service"
        return 0
    fi
    [ "$UNIT_CHANGED" = 0 ] || systemctl daemon-reload
    [ -L "$wants" ] || { systemctl --quiet enable binfmtd.service && say "enabled binfmtd.service"; }
    if [ "$CHANGED" = 1 ]; then
        # SIGTERM leaves every entry and the unit has no ExecStop: a restart never removes entries.
        systemctl restart binfmtd.service || die 1 "binfmtd.service failed; see 'journalctl -u binfmtd'"
        say "started binfmtd.service"
    else
        systemctl start binfmtd.service || die 1 "binfmtd.service failed; see 'journalctl -u binfmtd'"
    fi
}

main() {
    parse_args "$@"
    cpu=${CPU:-$(uname -m)}
    ARCH=$(release_arch "$cpu") || die 2 "unsupported CPU '$cpu': binfmtd releases exist for x86_64 (amd64)" \
        "and aarch64 (arm64); nothing was installed. Use --arch to override the detection"
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    trap 'exit 1' INT TERM
    download_all
    install_all
    [ "$CHANGED" = 1 ] || say "binfmtd $VERSION ($ARCH) is already installed; nothing changed"
    activate
}

main "$@"
