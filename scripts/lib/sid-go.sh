# shellcheck shell=bash
# Go 1.26, which only Debian sid has, for the builds that need it (cri-tools 1.36,
# containerd 2.3): golang-1.26-go + golang-1.26-src fetched with apt-get download through a
# private apt configuration and unpacked into the cache, never installed.
#
#   sid_go CACHE   prints the GOROOT (CACHE/go/golang-1.26/usr/lib/go-1.26), fetching it once
#
# Needs lib/private-apt.sh sourced first.

SID_GO_PKG=golang-1.26

sid_go() {
    local top=$1/go/$SID_GO_PKG goroot
    goroot=$top/usr/lib/go-1.26
    if [[ ! -x $goroot/bin/go ]]; then
        printf 'sid-go: fetching %s-go + %s-src from Debian sid (unpacked, not installed)\n' \
            "$SID_GO_PKG" "$SID_GO_PKG" >&2
        mkdir -p "$1/go"
        # One fetch at a time: two builds may ask at once.
        exec {lock}>"$1/go/.lock"
        flock "$lock"
        if [[ ! -x $goroot/bin/go ]]; then
            rm -rf "$top" "$top.tmp"
            private_apt_init "$1/go/apt" sid
            private_apt_unpack "$top.tmp" "$SID_GO_PKG-go" "$SID_GO_PKG-src"
            [[ -x $top.tmp/usr/lib/go-1.26/bin/go ]] || {
                printf 'sid-go: error: %s-go from sid has no usr/lib/go-1.26/bin/go\n' "$SID_GO_PKG" >&2
                return 1
            }
            mv "$top.tmp" "$top"
        fi
        exec {lock}>&-
    fi
    printf '%s\n' "$goroot"
}
