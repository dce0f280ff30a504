# shellcheck shell=bash
# Stages of a Kata source build that do not depend on the Kata version, shared with
# scripts/build-kata's cache: the host-side daemons from crates.io, Debian's guest kernel and the
# busybox initrd around a kata-agent. Sourced by scripts/build-kata-rs; the caller defines log(),
# die(), sha(), key_of(), now() and record(), and sets:
#
#   KB_SHARED   the cache directory whose stage/ and kernel/ are shared with scripts/build-kata
#               (${CACHE}/kata): a stage found complete there is reused as it is
#   KB_PATCHES  the directory of per-crate patches (<crate>/*.patch, scripts/kata-patches)
#   JOBS        cargo's -j
#
# Every stage here is written by moving a complete .tmp directory into place, so a reader that
# finds one finds it whole; callers take ${KB_SHARED}/.lock (build-kata's) around them.

# The .crate of NAME VERSION from the crates.io index (its "dl" location), checked against the
# index's sha256. Prints the unpacked source directory.
kb_crate_source() { # NAME VERSION DEST
    local name=$1 ver=$2 dest=$3 index=${KATA_HARNESS_CRATES_INDEX:-https://index.crates.io}
    local prefix
    case ${#name} in
        1) prefix=1 ;; 2) prefix=2 ;; 3) prefix=3/${name:0:1} ;;
        *) prefix=${name:0:2}/${name:2:2} ;;
    esac
    local dl cksum
    dl=$(curl -fsS --max-time 60 "$index/config.json" | sed -n 's/.*"dl" *: *"\([^"]*\)".*/\1/p') ||
        die "cannot read $index/config.json"
    cksum=$(curl -fsS --max-time 60 "$index/$prefix/$name" |
        { grep "\"vers\": *\"$ver\"" || true; } | sed -n 's/.*"cksum": *"\([0-9a-f]*\)".*/\1/p') ||
        die "cannot read the index entry of $name from $index"
    [[ -n $cksum ]] || die "$name $ver is not in $index"
    case $dl in
        *'{crate}'* | *'{version}'*) dl=${dl//\{crate\}/$name}; dl=${dl//\{version\}/$ver} ;;
        *) dl=$dl/$name/$ver/download ;;
    esac
    mkdir -p "$dest"
    curl -fsSL --max-time 300 -o "$dest/$name-$ver.crate" "$dl" || die "cannot download $dl"
    [[ $(sha "$dest/$name-$ver.crate") == "$cksum" ]] ||
        die "$name-$ver.crate from $dl does not match the index's sha256 $cksum"
    tar -xzf "$dest/$name-$ver.crate" -C "$dest"
    printf '%s\n' "$dest/$name-$ver"
}

# cargo install NAME@VERSION into ${KB_SHARED}/stage/NAME-VERSION[-patched-KEY] (the directory
# scripts/build-kata uses for the same crate and patches); with patches
# (${KB_PATCHES}/NAME/*.patch), from the crate's source with them applied. Sets kb_tool_bin to
# the binary (not a $(...) subshell: the manifest line must land in the caller's shell).
kb_crate_tool() { # NAME VERSION BIN
    local name=$1 ver=$2 bin=$3
    local tool_patches=("$KB_PATCHES/$name"/*.patch)
    [[ -e ${tool_patches[0]} ]] || tool_patches=()
    local out=$KB_SHARED/stage/$name-$ver
    ((${#tool_patches[@]})) && out=$out-patched-$(key_of "$(sha "${tool_patches[@]}")")
    if [[ ! -x $out/bin/$bin ]]; then
        local t0 what=("$name@$ver")
        t0=$(now)
        rm -rf "$out.tmp" "$KB_SHARED/crate-src/$name-$ver"
        if ((${#tool_patches[@]})); then
            local crate
            crate=$(kb_crate_source "$name" "$ver" "$KB_SHARED/crate-src")
            for p in "${tool_patches[@]}"; do
                log "applying $(basename "$p") to $name $ver"
                patch -s -p1 -d "$crate" <"$p" || die "patch $p does not apply to $name $ver"
            done
            what=(--path "$crate")
        fi
        log "building $name $ver from crates.io (cargo install --locked${tool_patches:+, patched})"
        CARGO_HOME=$KB_SHARED/cargo-home CARGO_TARGET_DIR=$KB_SHARED/tools-target \
            nice -n 19 cargo install --locked --root "$out.tmp" -j "$JOBS" "${what[@]}" >"$KB_SHARED/$name.log" 2>&1 ||
            die "cargo install $name $ver failed; log: $KB_SHARED/$name.log ($(tail -n 3 "$KB_SHARED/$name.log" | tr '\n' ' '))"
        echo "$(($(now) - t0))" >"$out.tmp/seconds"
        rm -rf "$out"
        mv "$out.tmp" "$out"
    else
        log "$name $ver: reusing $out"
    fi
    local applied=""
    ((${#tool_patches[@]})) && applied=" + $(basename -a "${tool_patches[@]}" | paste -sd' ')"
    record "$name: $ver from crates.io$applied ($(cat "$out/seconds") s, $out)"
    # shellcheck disable=SC2034 # the caller's result
    kb_tool_bin=$out/bin/$bin
}

# Debian SUITE's linux-image-amd64 kernel, unpacked (not installed) into ${KB_SHARED}/kernel
# (scripts/build-kata's). Sets kb_kernel_root, kb_kernel_pkg, kb_kernel_deb_version.
kb_guest_kernel() { # SUITE
    local suite=$1 kdir=$KB_SHARED/kernel kpkg
    if [[ ! -f $kdir/.done ]]; then
        log "fetching linux-image-amd64's kernel from Debian $suite (unpacked, not installed)"
        private_apt_init "$KB_SHARED/apt-kernel" "$suite"
        kpkg=$(papt apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
        [[ -n $kpkg ]] || die "no kernel package behind linux-image-amd64 in $suite"
        rm -rf "$kdir" "$kdir.tmp"
        private_apt_unpack "$kdir.tmp/root" "$kpkg"
        echo "$kpkg $(papt apt-cache show "$kpkg" | awk '/^Version:/{print $2; exit}')" >"$kdir.tmp/package"
        mv "$kdir.tmp" "$kdir"
        touch "$kdir/.done"
    fi
    # shellcheck disable=SC2034 # the caller's results
    read -r kb_kernel_pkg kb_kernel_deb_version <"$kdir/package"
    kb_kernel_root=$kdir/root
}

# A guest in OUT (made whole or not at all): the kernel's uncompressed PVH vmlinux (no
# decompression under TCG; the bzImage when there is none) as vmlinux-<release>, and an initrd
# of Debian's static busybox, the MODULES (in load order, dependencies resolved; a trailing '?'
# marks one that may be built in), INIT as /init, SHELL as /bin/bash and AGENT as
# /usr/bin/kata-agent. Also writes kernel-release and modules.order.
kb_guest() { # OUT AGENT INIT SHELL MODULE...
    local out=$1 agent=$2 init=$3 shell=$4
    shift 4
    local kver=${kb_kernel_pkg#linux-image-} root=$kb_kernel_root
    if [[ ! -x /bin/busybox ]] || ! file -b /bin/busybox | grep -q static; then
        die "/bin/busybox must be Debian's busybox-static (the initrd has no libc)"
    fi
    local work
    work=$(mktemp -d "${out%/*}/guest.XXXXXX")
    depmod -b "$root" "$kver"
    local ird=$work/initrd
    mkdir -p "$ird"/{bin,sbin,dev,proc,sys,run,tmp,etc,lib/modules,usr/bin}
    cp /bin/busybox "$ird/bin/busybox"
    local a
    for a in sh mount insmod sleep cat echo mkdir ls poweroff; do ln -s busybox "$ird/bin/$a"; done
    install -m 0755 "$agent" "$ird/usr/bin/kata-agent"
    install -m 0755 "$init" "$ird/init"
    install -m 0755 "$shell" "$ird/bin/bash"
    : >"$ird/modules.order"
    local m optional deps kind path name base
    for m in "$@"; do
        optional=0
        case $m in *\?) optional=1 m=${m%\?} ;; esac
        if ! deps=$(modprobe -d "$root" -S "$kver" --show-depends "$m" 2>/dev/null); then
            ((optional)) && continue
            rm -rf "$work"
            die "guest: module $m not found in kernel $kver"
        fi
        while read -r kind path _; do
            [[ $kind == insmod ]] || continue
            name=$(basename "$path")
            base=${name%.xz} base=${base%.zst} base=${base%.gz}
            grep -qx "$base" "$ird/modules.order" && continue
            case $name in
                *.xz) xz -dc "$path" >"$ird/lib/modules/$base" ;;
                *.zst) zstd -qdc "$path" >"$ird/lib/modules/$base" ;;
                *) cp "$path" "$ird/lib/modules/$base" ;;
            esac
            echo "$base" >>"$ird/modules.order"
        done <<<"$deps"
    done
    rm -rf "$out.tmp"
    mkdir -p "$out.tmp"
    (cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --quiet -o -0 -H newc -R 0:0) \
        >"$out.tmp/kata-containers-initrd.img"
    local vmlinuz=$root/boot/vmlinuz-$kver off
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1 || true)
    if [[ -n $off ]]; then
        tail -c +$((off + 1)) "$vmlinuz" | xz -dcq --single-stream >"$work/vmlinux" 2>/dev/null || true
    fi
    if [[ -s $work/vmlinux && $(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ') == 7f454c46 ]]; then
        install -m 0644 "$work/vmlinux" "$out.tmp/vmlinux-$kver"
    else
        log "no uncompressed vmlinux in $vmlinuz: shipping the bzImage"
        install -m 0644 "$vmlinuz" "$out.tmp/vmlinux-$kver"
    fi
    cp "$ird/modules.order" "$out.tmp/modules.order"
    echo "$kver" >"$out.tmp/kernel-release"
    rm -rf "$out" "$work"
    mv "$out.tmp" "$out"
    touch "$out/.done"
}
