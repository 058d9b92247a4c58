#!/usr/bin/env bash
# A real OCI registry on loopback (Debian's docker-registry, the CNCF distribution registry) for
# the placement tests, and the images they resolve, built here: no registry on the internet is
# reachable, and none is needed.
#
#   tests/k8s/registry.sh up DIR [--basic USER:PASS | --token USER:PASS] [--ca DIR2] [--until-exit PID]
#   tests/k8s/registry.sh images DIR     build the test images and push them; writes DIR/images.json
#   tests/k8s/registry.sh down DIR
#
# up serves HTTPS on a free 127.0.0.1 port with a certificate from a test CA (DIR/ca.crt; with
# --ca DIR2, the CA of another registry started by up, so one bundle trusts both). Without an
# auth flag the registry is anonymous. --basic USER:PASS: htpasswd auth (401 with a Basic
# challenge). --token USER:PASS: token auth as Docker Hub, GHCR and ECR do it: a 401 with a Bearer
# challenge naming a token service (tests/k8s/token-server.py, a signed JWT per scope), which
# checks USER:PASS. Prints the registry's host:port; writes DIR/host, DIR/ca.crt, DIR/auth.
#
# images pushes, into the registry in DIR (with DIR/auth's credentials):
#   multi:v1          an index of linux/amd64 + linux/arm64
#   amd64only:v1      an index of linux/amd64 + its attestation manifest (as buildx writes it)
#   arm64only:v1      an index of linux/arm64 + its attestation manifest
#   single:v1         one linux/amd64 manifest, no index
#   single-arm64:v1   one linux/arm64 manifest, no index
#   broken:v1         (anonymous registry only) one manifest whose config blob is not an image
#                     config: what a broken build or a tampered repository serves
# Each image holds a static busybox of its arch whose entrypoint runs `uname -m`. DIR/images.json
# maps "name:tag" to {"digest": the tag's digest, "<arch>": that platform's manifest digest}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/k8s/lib.sh
. "$here/lib.sh"
repo=$(cd "$here/../.." && pwd)
die() { echo "registry.sh: $*" >&2; exit 1; }
usage() { die "usage: registry.sh up DIR [--basic USER:PASS | --token USER:PASS] [--ca DIR2] [--until-exit PID] | images DIR | down DIR"; }


need() { # COMMAND PACKAGE
    command -v "$1" >/dev/null || die "no $1 on PATH. Hint: apt-get install $2 (tests/deps.sh installs it)"
}

# A serving certificate for 127.0.0.1 signed by DIR's CA (made here unless --ca gave one).
pki() { # DIR CA_DIR
    local dir=$1 cadir=$2
    if [ -z "$cadir" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj /CN=binfmtd-test-registry-ca -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    else
        [ -f "$cadir/ca.key" ] || die "$cadir holds no CA made by registry.sh up"
        cp "$cadir/ca.crt" "$cadir/ca.key" "$dir/"
    fi
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
        -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
    openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -days 30 -out "$dir/tls.crt" \
        -extfile <(printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth") 2>/dev/null
    chmod 0644 "$dir/ca.crt" "$dir/tls.crt"
}

# Ready when /v2/ answers at all (200 anonymous, 401 with auth); a registry that died fails at once.
wait_ready() { # DIR NAME URL
    local dir=$1 name=$2 url=$3 code
    for _ in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$dir/ca.crt" "$url" || true)
        case $code in 200 | 401) return 0 ;; esac
        kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null ||
            { tail -n 20 "$dir/$name.log" >&2; die "$name exited during start-up (log: $dir/$name.log)"; }
        sleep 0.1
    done
    tail -n 20 "$dir/$name.log" >&2
    die "$name not answering $url after 10 s (log: $dir/$name.log)"
}

up() { # DIR [--basic U:P | --token U:P] [--ca DIR2] [--until-exit PID]
    local dir=$1 mode=anonymous creds="" cadir="" watch=""
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --basic) mode=basic creds=${2:?--basic needs USER:PASS}; shift ;;
            --token) mode=token creds=${2:?--token needs USER:PASS}; shift ;;
            --ca) cadir=${2:?--ca needs a directory}; shift ;;
            --until-exit) watch=${2:?--until-exit needs a pid}; shift ;;
            *) usage ;;
        esac
        shift
    done
    case $creds in "" | *:*) ;; *) die "credentials must be USER:PASS, got '$creds'" ;; esac
    need docker-registry docker-registry
    need openssl openssl
    need curl curl
    [ -e "$dir/registry.pid" ] && die "$dir already holds a registry. Hint: registry.sh down $dir first."
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
    pki "$dir" "$cadir"
    local port auth=""
    port=$(free_port)
    case $mode in
        basic)
            need htpasswd apache2-utils
            htpasswd -Bbn "${creds%%:*}" "${creds#*:}" >"$dir/htpasswd" 2>/dev/null
            auth="auth: {htpasswd: {realm: binfmtd-test, path: $dir/htpasswd}}" ;;
        token)
            local tport
            tport=$(free_port)
            # The token issuer's signing key and its self-signed certificate: the registry
            # trusts tokens whose x5c chain ends in this bundle.
            openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=binfmtd-test-token-issuer \
                -keyout "$dir/token.key" -out "$dir/token.crt" 2>/dev/null
            start "$dir" token-server python3 "$here/token-server.py" --listen "127.0.0.1:$tport" \
                --cert "$dir/tls.crt" --key "$dir/tls.key" --signing-key "$dir/token.key" \
                --signing-cert "$dir/token.crt" --service binfmtd-test-registry \
                --issuer binfmtd-test-token-issuer --credentials "$creds"
            wait_ready "$dir" token-server "https://127.0.0.1:$tport/healthz"
            auth="auth: {token: {realm: https://127.0.0.1:$tport/token, service: binfmtd-test-registry, issuer: binfmtd-test-token-issuer, rootcertbundle: $dir/token.crt}}" ;;
    esac
    cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
  tls: {certificate: $dir/tls.crt, key: $dir/tls.key}
$auth
EOF
    echo "127.0.0.1:$port" >"$dir/host"
    echo "$creds" >"$dir/auth"
    start "$dir" registry docker-registry serve "$dir/config.yml"
    wait_ready "$dir" registry "https://127.0.0.1:$port/v2/"
    if [ -n "$watch" ]; then
        # shellcheck disable=SC2016  # positional parameters of the inner shell
        setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; bash "$2" down "$3" && rm -rf "$3"' \
            _ "$watch" "$here/registry.sh" "$dir" >/dev/null 2>&1 </dev/null &
    fi
    echo "127.0.0.1:$port"
}

blob() { # LAYOUT FILE: store FILE as a blob of LAYOUT; prints "digest size"
    local layout=$1 file=$2 sum
    sum=$(sha256sum "$file" | cut -d' ' -f1)
    cp "$file" "$layout/blobs/sha256/$sum"
    echo "sha256:$sum $(stat -c %s "$file")"
}

# The descriptor of a tag in an OCI layout's index.json.
tag_descriptor() { # LAYOUT TAG
    jq -c --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)' "$1/index.json"
}

# Adds (or replaces) TAG in LAYOUT's index.json, pointing at DESCRIPTOR.
set_tag() { # LAYOUT TAG DESCRIPTOR_JSON
    local layout=$1 tag=$2 desc=$3
    jq --arg t "$tag" --argjson d "$desc" \
        '.manifests = ([.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] != $t)]
          + [$d + {annotations: {"org.opencontainers.image.ref.name": $t}}])' \
        "$layout/index.json" >"$layout/index.json.new"
    mv "$layout/index.json.new" "$layout/index.json"
}

# An attestation manifest for SUBJECT, shaped as buildx writes them: platform unknown/unknown,
# an in-toto layer, and the index annotations that tie it to the image it describes.
attestation() { # LAYOUT SUBJECT_DIGEST WORK: prints the index descriptor
    local layout=$1 subject=$2 work=$3 stmt cfg man d s cd cs
    stmt=$work/statement.json cfg=$work/att-config.json man=$work/att-manifest.json
    printf '{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[{"digest":{"sha256":"%s"}}],"predicate":{}}' \
        "${subject#sha256:}" >"$stmt"
    read -r d s < <(blob "$layout" "$stmt")
    printf '{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$d" >"$cfg"
    read -r cd cs < <(blob "$layout" "$cfg")
    jq -nc --arg cd "$cd" --argjson cs "$cs" --arg d "$d" --argjson s "$s" \
        '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
          layers: [{mediaType: "application/vnd.in-toto+json", digest: $d, size: $s,
                    annotations: {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}]}' >"$man"
    read -r d s < <(blob "$layout" "$man")
    jq -nc --arg d "$d" --argjson s "$s" --arg subj "$subject" \
        '{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
          platform: {architecture: "unknown", os: "unknown"},
          annotations: {"vnd.docker.reference.digest": $subj, "vnd.docker.reference.type": "attestation-manifest"}}'
}

# An index of the given descriptors, tagged TAG in LAYOUT.
index() { # LAYOUT TAG WORK DESCRIPTOR...
    local layout=$1 tag=$2 work=$3 d s
    shift 3
    printf '%s\n' "$@" | jq -sc '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: .}' \
        >"$work/index-$tag.json"
    read -r d s < <(blob "$layout" "$work/index-$tag.json")
    set_tag "$layout" "$tag" "$(jq -nc --arg d "$d" --argjson s "$s" \
        '{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s}')"
}

# Pushes FILE as a blob of REPOSITORY through the distribution API (POST, then PUT with the
# digest): for documents skopeo would not copy, being no valid image.
push_blob() { # DIR REPOSITORY FILE
    local dir=$1 repository=$2 file=$3 host location sum
    host=$(cat "$dir/host")
    sum=$(sha256sum "$file" | cut -d' ' -f1)
    location=$(curl -sSf --cacert "$dir/ca.crt" -X POST -o /dev/null -D - \
        "https://$host/v2/$repository/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$location" ] || die "the registry at $host gave no upload location for $repository"
    case $location in /*) location=https://$host$location ;; esac
    case $location in *\?*) location="$location&" ;; *) location="$location?" ;; esac
    curl -sSf --cacert "$dir/ca.crt" -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$file" -o /dev/null "${location}digest=sha256:$sum" ||
        die "uploading $file to $host/$repository failed (registry log: $dir/registry.log)"
    echo "sha256:$sum $(stat -c %s "$file")"
}

# broken:v1: a manifest the registry accepts (its blobs exist) whose config is not JSON.
broken() { # DIR WORK
    local dir=$1 work=$2 host cd cs ld ls
    host=$(cat "$dir/host")
    printf 'not an image config\n' >"$work/broken-config"
    printf 'not a layer either\n' >"$work/broken-layer"
    read -r cd cs < <(push_blob "$dir" broken "$work/broken-config")
    read -r ld ls < <(push_blob "$dir" broken "$work/broken-layer")
    jq -nc --arg cd "$cd" --argjson cs "$cs" --arg ld "$ld" --argjson ls "$ls" \
        '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
          layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $ld, size: $ls}]}' \
        >"$work/broken-manifest.json"
    curl -sSf --cacert "$dir/ca.crt" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$work/broken-manifest.json" -o /dev/null "https://$host/v2/broken/manifests/v1" ||
        die "pushing broken:v1 to $host failed (registry log: $dir/registry.log)"
    echo "sha256:$(sha256sum <"$work/broken-manifest.json" | cut -d' ' -f1)"
}

# The busybox-static of a Debian arch, from the test fixtures (tests/fixtures/fetch.sh).
busybox() { # DEBARCH WORK: prints the path of the extracted binary
    local arch=$1 work=$2 deb
    deb=${FIXTURES:-$repo/target/fixtures}/debs/bookworm_busybox-static_$arch.deb
    [ -f "$deb" ] || die "no busybox-static $arch fixture under ${FIXTURES:-$repo/target/fixtures}/debs. Hint: bash tests/fixtures/fetch.sh"
    mkdir -p "$work/bb-$arch"
    dpkg-deb -x "$deb" "$work/bb-$arch"
    echo "$work/bb-$arch/bin/busybox"
}

images() { # DIR
    local dir=$1
    [ -f "$dir/host" ] || die "$dir holds no registry. Hint: registry.sh up $dir"
    need umoci umoci
    need skopeo skopeo
    need jq jq
    local host creds work layout
    host=$(cat "$dir/host") creds=$(cat "$dir/auth")
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    layout=$work/layout
    umoci init --layout "$layout"
    local arch bb
    for arch in amd64 arm64; do
        bb=$(busybox "$arch" "$work")
        umoci new --image "$layout:$arch"
        umoci insert --image "$layout:$arch" "$bb" /bin/busybox
        umoci config --image "$layout:$arch" --architecture "$arch" --os linux \
            --config.entrypoint /bin/busybox --config.cmd uname --config.cmd -m
    done
    local amd arm
    amd=$(tag_descriptor "$layout" amd64 | jq -c 'del(.annotations) + {platform: {architecture: "amd64", os: "linux"}}')
    arm=$(tag_descriptor "$layout" arm64 | jq -c 'del(.annotations) + {platform: {architecture: "arm64", os: "linux"}}')
    index "$layout" multi "$work" "$amd" "$arm"
    index "$layout" amd64only "$work" "$amd" "$(attestation "$layout" "$(jq -r .digest <<<"$amd")" "$work")"
    index "$layout" arm64only "$work" "$arm" "$(attestation "$layout" "$(jq -r .digest <<<"$arm")" "$work")"
    set_tag "$layout" single "$(jq -c 'del(.platform)' <<<"$amd")"
    set_tag "$layout" single-arm64 "$(jq -c 'del(.platform)' <<<"$arm")"
    mkdir -p "$work/certs"
    cp "$dir/ca.crt" "$work/certs/ca.crt"
    local cred=() name out='{}' raw digest entry
    [ -n "$creds" ] && cred=(--dest-creds "$creds")
    for name in multi amd64only arm64only single single-arm64; do
        skopeo copy -q --all --preserve-digests --dest-cert-dir "$work/certs" "${cred[@]}" \
            "oci:$layout:$name" "docker://$host/$name:v1" ||
            die "pushing $name:v1 to $host failed (skopeo's message above; registry log: $dir/registry.log)"
        # Read back what the registry serves: the digests the tests expect are the registry's.
        # Hashed as a file: $(...) would drop the document's final newline, and with it the digest.
        skopeo inspect --raw --cert-dir "$work/certs" ${creds:+--creds "$creds"} "docker://$host/$name:v1" \
            >"$work/served.json"
        raw=$(cat "$work/served.json")
        digest=sha256:$(sha256sum <"$work/served.json" | cut -d' ' -f1)
        entry=$(jq -c --arg d "$digest" '{digest: $d} + ([.manifests[]? | select(.platform.os == "linux")
                 | {key: .platform.architecture, value: .digest}] | from_entries)' <<<"$raw")
        [ "$name" = single ] && entry=$(jq -c --arg d "$digest" '. + {amd64: $d}' <<<"$entry")
        [ "$name" = single-arm64 ] && entry=$(jq -c --arg d "$digest" '. + {arm64: $d}' <<<"$entry")
        out=$(jq -c --arg k "$name:v1" --argjson v "$entry" '. + {($k): $v}' <<<"$out")
    done
    if [ -z "$creds" ]; then
        out=$(jq -c --arg d "$(broken "$dir" "$work")" '. + {"broken:v1": {digest: $d}}' <<<"$out")
    fi
    jq . <<<"$out" >"$dir/images.json"
    cat "$dir/images.json"
}

# Stops the processes up started, by recorded pid, only while the pid still runs what up ran.
down() { # DIR
    local dir=$1 n pid
    [ -f "$dir/config.yml" ] || die "$dir holds no registry started by registry.sh up"
    for n in registry token-server; do
        [ -f "$dir/$n.pid" ] || continue
        pid=$(cat "$dir/$n.pid")
        if grep -qF "$dir/" "/proc/$pid/cmdline" 2>/dev/null; then
            stop_pid "$pid"
        fi
        rm -f "$dir/$n.pid"
    done
    echo "stopped the registry in $dir"
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
case $cmd in
    up) up "$dir" "$@" ;;
    images) [ $# -eq 0 ] || usage; images "$dir" ;;
    down) [ $# -eq 0 ] || usage; down "$dir" ;;
    *) usage ;;
esac
