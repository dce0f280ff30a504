# shellcheck shell=bash
# Where artifacts come from, and verified downloads of upstream's published release files.
# Sourced by scripts/setup and scripts/fetch-release; the caller defines log() and die().
#
# One order for every component: an explicit path or flag; else the sources directory
# (KATA_HARNESS_SOURCES, default ../shared/sources beside the checkout where it exists: an
# offline mirror of upstream's source tarballs); else upstream's release files, verified.
#
# Environment:
#   KATA_HARNESS_SOURCES     the sources directory (unset: ../shared/sources if it exists)
#   KATA_HARNESS_GITHUB_URL  base of every GitHub release download (default https://github.com):
#                            <base>/<owner>/<repo>/releases/download/<tag>/<file>
#   KATA_HARNESS_K8S_URL     base of Kubernetes downloads (default https://dl.k8s.io):
#                            <base>/release/<version>/bin/linux/<arch>/<binary>
#   KATA_HARNESS_DOWNLOAD_STALL_SECONDS  a transfer below 1 KiB/s for this long is given up (60)
#
# Invariant: fetch_verified leaves DEST only when its content has the expected sha256; a
# failed, refused or interrupted download leaves nothing (its part file is deleted).

GITHUB_URL=${KATA_HARNESS_GITHUB_URL:-https://github.com}
GITHUB_URL=${GITHUB_URL%/}
K8S_URL=${KATA_HARNESS_K8S_URL:-https://dl.k8s.io}
K8S_URL=${K8S_URL%/}
STALL_SECONDS=${KATA_HARNESS_DOWNLOAD_STALL_SECONDS:-60}
# Connecting is quick or never: a closed port or an unroutable address fails within this.
CONNECT_SECONDS=15
# A whole file (kube-apiserver is ~115 MB, a kata-static tarball a few hundred) at a slow but
# moving 100 kB/s; a dead transfer ends much earlier, at the stall time.
DOWNLOAD_SECONDS=$((90 * 60))

# Content key of a source: a tarball's sha256, or a tree's paths, sizes and mtimes (without
# .git and, when named, the tree's own build-output folder SKIP); 16 hex digits.
content_key() {
    local src=$1 skip=${2:-.git}
    if [[ -d $src ]]; then
        (cd "$src" && find . -path ./.git -prune -o -path "./$skip" -prune -o -type f -printf '%P %s %T@\n' |
            LC_ALL=C sort | sha256sum | cut -c1-16)
    else
        sha256sum "$src" | cut -c1-16
    fi
}

# The sources directory, or nothing when there is none.
sources_dir() {
    local repo=$1
    if [[ -n ${KATA_HARNESS_SOURCES:-} ]]; then
        printf '%s\n' "$KATA_HARNESS_SOURCES"
    elif [[ -d $repo/../shared/sources ]]; then
        (cd "$repo/../shared/sources" && pwd)
    fi
}

# `<base>/<owner/repo>/releases/download/<tag>/<file>`.
github_release_url() {
    printf '%s/%s/releases/download/%s/%s\n' "$GITHUB_URL" "$1" "$2" "$3"
}

# What curl's exit code means for a download, in words.
curl_reason() {
    local code=$1 http=$2 detail=$3
    case $code in
        22) printf 'HTTP %s%s' "$http" "$([[ $http == 404 ]] && echo ' (not found)')" ;;
        6 | 7) printf 'unreachable (%s)' "$detail" ;;
        18) printf 'truncated: the server closed the connection before the end of the file' ;;
        28) printf 'stalled or too slow: below 1 KiB/s for %s s, or over %s s in all' "$STALL_SECONDS" "$DOWNLOAD_SECONDS" ;;
        35 | 51 | 58 | 59 | 60 | 77 | 83 | 90 | 91) printf 'TLS failure (%s)' "$detail" ;;
        *) printf 'curl exit %s (%s)' "$code" "$detail" ;;
    esac
}

# fetch_file URL OUT: downloads URL into OUT (a part file the caller owns) under the
# deadlines above; on failure logs one line naming the URL and what went wrong and returns 1
# (OUT deleted).
fetch_file() {
    local url=$1 out=$2 http code err started=$SECONDS
    err=$(mktemp)
    code=0
    http=$(curl --fail --location --silent --show-error --proto '=https,http' \
        --connect-timeout "$CONNECT_SECONDS" --speed-limit 1024 --speed-time "$STALL_SECONDS" \
        --max-time "$DOWNLOAD_SECONDS" --output "$out" --write-out '%{http_code}' "$url" 2>"$err") || code=$?
    if ((code)); then
        rm -f "$out"
        log "error: $url: $(curl_reason "$code" "$http" "$(tail -n1 "$err" | sed 's/^curl: ([0-9]*) //')")"
        rm -f "$err"
        return 1
    fi
    rm -f "$err"
    log "${url##*/}: $(($(stat -c %s "$out") / 1024)) KiB in $((SECONDS - started)) s"
}

# published_sha256 URL: the digest a published checksum file at URL names (`<hex>` or
# `<hex>  <name>`, as cri-tools' .sha256, dl.k8s.io's .sha256 and containerd's .sha256sum
# hold); one line logged and 1 when it cannot be had.
published_sha256() {
    local url=$1 tmp digest
    tmp=$(mktemp)
    fetch_file "$url" "$tmp" || { rm -f "$tmp"; return 1; }
    digest=$(head -c 4096 "$tmp" | awk 'NR == 1 { print tolower($1) }')
    rm -f "$tmp"
    if [[ ! $digest =~ ^[0-9a-f]{64}$ ]]; then
        log "error: $url: not a sha256 checksum file (its first word is '${digest:0:80}')"
        return 1
    fi
    printf '%s\n' "$digest"
}

# fetch_verified URL SHA256 DEST: downloads URL and renames it to DEST only if its sha256 is
# SHA256; otherwise one line logged (what arrived vs what was expected), nothing left, 1.
fetch_verified() {
    local url=$1 want=$2 dest=$3 part got
    part="$dest.part.$$"
    mkdir -p "$(dirname "$dest")"
    fetch_file "$url" "$part" || return 1
    got=$(sha256sum "$part" | cut -c1-64)
    if [[ $got != "$want" ]]; then
        rm -f "$part"
        log "error: $url: sha256 $got, but its published checksum is $want: refused and deleted (tampered or truncated)"
        return 1
    fi
    mv -f "$part" "$dest"
}

# reachable URL: whether URL answers with its file (a 2xx status for its first byte, quickly):
# decides before anything is downloaded or built whether an upstream can serve a component.
# A server that ignores the range and starts the whole file counts too, however it ends.
reachable() {
    local http
    http=$(curl --location --silent --output /dev/null --range 0-0 --proto '=https,http' \
        --connect-timeout 5 --max-time 20 --write-out '%{http_code}' "$1" 2>/dev/null) || true
    [[ $http == 2* ]]
}
