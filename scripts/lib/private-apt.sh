# shellcheck shell=bash
# A private apt configuration for other Debian suites: its own sources.list, lists and archive
# cache under a directory of ours, so packages can be fetched with `apt-get download` (and
# source packages with `apt-get source`) without touching the system's sources or state.
#
#   private_apt_init DIR SUITE...   write DIR/apt.conf and DIR/sources.list, apt-get update
#   papt CMD ARGS...                run an apt command (apt-get, apt-cache) with that config
#
# Environment: KATA_HARNESS_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# KATA_HARNESS_DEBIAN_KEYRING (default Debian's archive keyring).

PRIVATE_APT_DIR=""

private_apt_init() {
    local dir="$1" suite
    shift
    local mirror="${KATA_HARNESS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    local keyring="${KATA_HARNESS_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d" \
        "$dir/preferences.d"
    for suite in "$@"; do
        echo "deb [signed-by=$keyring] $mirror $suite main"
    done >"$dir/sources.list"
    cat >"$dir/apt.conf" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/sources.list.d";
Dir::Etc::Preferences "$dir/preferences";
Dir::Etc::PreferencesParts "$dir/preferences.d";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "amd64";
APT::Architectures "amd64";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled "false";
APT::Sandbox::User "root";
APT::Update::Post-Invoke-Success "";
APT::Update::Post-Invoke "";
APT::Update::Pre-Invoke "";
CONF
    PRIVATE_APT_DIR="$dir"
    papt apt-get -q update >&2
}

papt() { APT_CONFIG="$PRIVATE_APT_DIR/apt.conf" "$@"; }

# Unpack the newest candidate of each package into DEST (dpkg-deb -x; nothing is installed).
# The .debs are kept in DIR/cache/archives, so a second call downloads nothing.
private_apt_unpack() {
    local dest="$1" p
    shift
    mkdir -p "$dest" "$PRIVATE_APT_DIR/debs"
    (cd "$PRIVATE_APT_DIR/debs" && papt apt-get -q download "$@" >&2)
    for p in "$@"; do
        local deb
        deb=$(find "$PRIVATE_APT_DIR/debs" -name "${p%%=*}_*.deb" -printf '%T@ %p\n' | sort -rn |
            awk 'NR == 1 {print $2}')
        dpkg-deb -x "$deb" "$dest"
    done
}
