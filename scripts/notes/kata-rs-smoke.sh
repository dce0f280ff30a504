#!/usr/bin/env bash
# kata-rs-smoke.sh: the by-hand proof recorded in kata-rs-build.md that scripts/build-kata-rs's
# layout starts a real runtime-rs sandbox on this host. Not part of the harness (which will
# render the same configuration through its named conditions); kept so the proof can be re-run.
#
# Usage: scripts/notes/kata-rs-smoke.sh [LAYOUT] [--keep] [--no-hybrid-vsock]
#   LAYOUT  a build-kata-rs layout (default ${KATA_HARNESS_CACHE:-/var/cache/kata-harness}/kata-rs/source)
#   --keep  leave the pod running (and everything below WORK) for inspection; the default is to
#           tear everything down at the end, also on failure
#   --no-hybrid-vsock  leave hybrid_vsock_daemon unset: runtime-rs as upstream, which on a host
#           without /dev/vhost-vsock cannot start the sandbox (shows how it fails)
#   --no-debug  leave enable_debug as shipped (false): only what the host needs, plus the debug
#           console
#
# What it does, all below WORK=/tmp/kh-rs-smoke (and /run/kh-rs-smoke for containerd's state):
#   - copies the layout's configuration-qemu-runtime-rs.toml and changes only what this host
#     needs (printed as a diff): TCG (a QEMU wrapper turns accel=kvm into accel=tcg and -cpu host
#     into -cpu max, and sends the guest console to a file), the host's QEMU, the layout's guest
#     (initrd: no image is shipped), the user-space vsock (hybrid_vsock_daemon), no vhost-net,
#     a longer agent wait (TCG); plus the debug console and debug logs (observation);
#   - starts a private containerd 2.3 (config version 4) with the handler kata-qemu-runtime-rs
#     (runtime_type io.containerd.kata-qemu-runtime-rs.v2, ConfigPath the copy), the shim on its
#     PATH as containerd-shim-kata-qemu-runtime-rs-v2 -> the layout's runtime-rs shim;
#   - imports a busybox and a pause image made from Debian's static busybox (OCI archives);
#   - crictl runp -r kata-qemu-runtime-rs, create + start a busybox container, exec uname -r,
#     inspectp, the process tree, kata-ctl exec into the guest's debug console;
#   - tears it all down: pod, containerd, shims, QEMU, daemons, mounts, network namespaces.
set -euo pipefail

CACHE=${KATA_HARNESS_CACHE:-/var/cache/kata-harness}
layout=""
keep=0
hvsock=1
debug=1
for a in "$@"; do
    case $a in
        --keep) keep=1 ;;
        --no-debug) debug=0 ;;
        --no-hybrid-vsock) hvsock=0 ;;
        -*) echo "unknown option $a" >&2; exit 2 ;;
        *) layout=$a ;;
    esac
done
layout=$(cd "${layout:-$CACHE/kata-rs/source}" && pwd -P)
K=$layout/opt/kata
CONTAINERD=${KATA_RS_SMOKE_CONTAINERD:-$CACHE/containerd/2.3/usr/bin}
CRICTL=$CACHE/cri-tools/current/bin/crictl
QEMU=/usr/bin/qemu-system-x86_64
WORK=/tmp/kh-rs-smoke
STATE=/run/kh-rs-smoke
SOCK=$WORK/containerd.sock
HANDLER=kata-qemu-runtime-rs
BUSYBOX_IMAGE=localhost/kata-harness/busybox:rs1
PAUSE_IMAGE=localhost/kata-harness/pause:rs1
TIMEOUT=${KATA_RS_SMOKE_TIMEOUT:-600}

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'kata-rs-smoke: error: %s\n' "$*" >&2; exit 1; }
crictl() { "$CRICTL" --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" -t "${TIMEOUT}s" "$@"; }

[[ $(id -u) == 0 ]] || die "must run as root"
[[ -x $K/runtime-rs/bin/containerd-shim-kata-v2 ]] || die "$layout is not a build-kata-rs layout"
[[ ! -e $WORK ]] || die "$WORK exists: a previous run was kept (--keep) or did not clean up; remove it first"
mkdir -p "$WORK"/{bin,cni,ipam,log,opt,root,tmp,images} "$STATE"

containerd_pid=""
cleanup() {
    local rc=$?
    if ((keep)); then
        echo "kept: $WORK (containerd pid $containerd_pid)"
        return
    fi
    say "teardown"
    if [[ -n $containerd_pid ]] && kill -0 "$containerd_pid" 2>/dev/null; then
        local p
        for p in $(crictl pods -q 2>/dev/null); do
            crictl stopp "$p" >/dev/null 2>&1 || true
            crictl rmp -f "$p" >/dev/null 2>&1 || true
        done
        kill "$containerd_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$containerd_pid" 2>/dev/null || true
    fi
    # Shims (and their QEMU, virtiofsd, vhost-device-vsock) started for this containerd.
    local pids
    # (found by this run's own socket path, then ended by id, children first)
    pids=$(pgrep -f -- "-address $SOCK" || true)
    for p in $pids; do
        kill -9 $(pgrep -P "$p") 2>/dev/null || true
        kill -9 "$p" 2>/dev/null || true
    done
    { grep -E " ($WORK|$STATE)" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    ip link del khrs0 2>/dev/null || true
    rm -rf "$WORK" "$STATE"
    exit "$rc"
}
trap cleanup EXIT

# --- the configuration: upstream's, changed only where this host needs it --------------------
say "configuration"
upstream_conf=$K/share/defaults/kata-containers/runtime-rs/configuration-qemu-runtime-rs.toml
conf=$WORK/configuration-qemu-runtime-rs.toml
cat >"$WORK/bin/qemu-tcg" <<EOF
#!/bin/bash
# Kata's QEMU under TCG (this host's /dev/kvm cannot run guests); the guest console goes to a file.
args=()
sandbox=unnamed
while ((\$#)); do
    case \$1 in
        -name) sandbox=\${2#sandbox-}; sandbox=\${sandbox%%,*}; args+=("\$1" "\$2"); shift 2 ;;
        -append) args+=("\$1" "\$2 console=ttyS0"); shift 2 ;;
        -machine) args+=("\$1" "\${2//accel=kvm/accel=tcg}"); shift 2 ;;
        -cpu) args+=("\$1" "\${2/#host/max}"); shift 2 ;;
        -global) [[ \$2 == kvm-* ]] || args+=("\$1" "\$2"); shift 2 ;;
        -enable-kvm) shift ;;
        *) args+=("\$1"); shift ;;
    esac
done
exec $QEMU "\${args[@]}" -serial "file:$WORK/log/guest-console.\$sandbox.log"
EOF
chmod +x "$WORK/bin/qemu-tcg"
python3 - "$upstream_conf" "$conf" "$WORK/bin/qemu-tcg" "$K" "$hvsock" "$debug" <<'EOF'
import re, sys
src, dst, qemu, k, hvsock, debug = sys.argv[1:]
text = open(src).read().splitlines()
# (table, key) -> value (TOML literal) or None (remove)
edits = {
    # TCG: the wrapper rewrites accel=kvm / -cpu host; the host's QEMU behind it.
    ("hypervisor.qemu", "path"): f'"{qemu}"',
    ("hypervisor.qemu", "valid_hypervisor_paths"): f'["{qemu}"]',
    # The guest this layout ships: its kernel and initrd (no rootfs image).
    ("hypervisor.qemu", "kernel"): f'"{k}/share/kata-containers/vmlinux.container"',
    ("hypervisor.qemu", "image"): None,
    ("hypervisor.qemu", "initrd"): f'"{k}/share/kata-containers/kata-containers-initrd.img"',
    ("hypervisor.qemu", "virtio_fs_daemon"): f'"{k}/libexec/virtiofsd"',
    ("hypervisor.qemu", "valid_virtio_fs_daemon_paths"): f'["{k}/libexec/virtiofsd"]',
    # No /dev/vhost-vsock: the agent channel through the user-space backend (the patch).
    ("hypervisor.qemu", "hybrid_vsock_daemon"): f'"{k}/libexec/vhost-device-vsock"',
    # No /dev/vhost-net.
    ("hypervisor.qemu", "disable_vhost_net"): "true",
    # TCG: the guest's agent comes up in tens of seconds, not one.
    ("agent.kata", "reconnect_timeout_ms"): "300000",
    # Observation: the debug console (kata-ctl exec) and the shim's debug log.
    ("agent.kata", "debug_console_enabled"): "true",
    ("runtime", "enable_debug"): "true",
    ("hypervisor.qemu", "enable_debug"): "true",
}
if hvsock == "0":
    del edits[("hypervisor.qemu", "hybrid_vsock_daemon")]
if debug == "0":
    del edits[("runtime", "enable_debug")]
    del edits[("hypervisor.qemu", "enable_debug")]
out, table, done = [], None, set()
def flush(t):
    for (tt, key), v in edits.items():
        if tt == t and (tt, key) not in done and v is not None:
            out.append(f"{key} = {v}")
            done.add((tt, key))
for line in text:
    m = re.match(r"^\[([^\]]+)\]\s*$", line)
    if m:
        flush(table)
        table = m.group(1)
        out.append(line)
        continue
    m = re.match(r"^([A-Za-z0-9_]+)\s*=", line)
    if m and (table, m.group(1)) in edits:
        key = (table, m.group(1))
        if key in done:
            continue
        done.add(key)
        if edits[key] is not None:
            out.append(f"{m.group(1)} = {edits[key]}")
        continue
    out.append(line)
flush(table)
open(dst, "w").write("\n".join(out) + "\n")
EOF
diff -u "$upstream_conf" "$conf" || true

# --- CNI, containerd ------------------------------------------------------------------------
cat >"$WORK/cni/10-kh-rs.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "kh-rs-smoke", "plugins": [
  {"type": "bridge", "bridge": "khrs0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$WORK/ipam", "ranges": [[{"subnet": "10.250.77.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}
EOF
cat >"$WORK/containerd.toml" <<EOF
version = 4
root = "$WORK/root"
state = "$STATE"
temp = "$WORK/tmp"

[plugins."io.containerd.server.v1.grpc"]
address = "$SOCK"

[plugins."io.containerd.server.v1.ttrpc"]
address = "$SOCK.ttrpc"

[plugins."io.containerd.cri.v1.runtime"]
netns_mounts_under_state_dir = true

[plugins."io.containerd.cri.v1.runtime".containerd]
default_runtime_name = "runc"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.$HANDLER]
runtime_type = "io.containerd.$HANDLER.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.$HANDLER.options]
ConfigPath = "$conf"

[plugins."io.containerd.cri.v1.runtime".cni]
bin_dirs = ["/usr/lib/cni"]
conf_dir = "$WORK/cni"

[plugins."io.containerd.internal.v1.opt"]
path = "$WORK/opt"

[plugins."io.containerd.nri.v1.nri"]
disable = true

[plugins."io.containerd.cri.v1.images"]
snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
sandbox = "$PAUSE_IMAGE"
EOF
ln -s "$K/runtime-rs/bin/containerd-shim-kata-v2" "$WORK/bin/containerd-shim-$HANDLER-v2"
say "containerd $("$CONTAINERD/containerd" --version | awk '{print $3}')"
PATH=$WORK/bin:$CONTAINERD:$PATH "$CONTAINERD/containerd" --config "$WORK/containerd.toml" \
    >"$WORK/log/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.2; done
crictl version

# --- images: busybox and pause from Debian's static busybox -----------------------------------
oci_image() { # NAME ARCHIVE ENTRYPOINT-JSON CMD-JSON
    python3 - "$@" <<'EOF'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
name, archive, entrypoint, cmd = sys.argv[1:]
applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
    def add(info, data=None):
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        t.addfile(info, io.BytesIO(data) if data is not None else None)
    for d in ["bin", "dev", "etc", "proc", "sys", "tmp"]:
        i = tarfile.TarInfo(d); i.type = tarfile.DIRTYPE; i.mode = 0o1777 if d == "tmp" else 0o755; add(i)
    data = open("/bin/busybox", "rb").read()
    i = tarfile.TarInfo("bin/busybox"); i.size = len(data); i.mode = 0o755; add(i, data)
    for a in sorted(set(applets) - {"busybox"}):
        i = tarfile.TarInfo(f"bin/{a}"); i.type = tarfile.SYMTYPE; i.linkname = "busybox"; add(i)
diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
layer = gzip.compress(raw.getvalue(), mtime=0)
blobs = {}
def blob(data, media):
    d = hashlib.sha256(data).hexdigest()
    blobs[d] = data
    return {"mediaType": media, "digest": "sha256:" + d, "size": len(data)}
config = {"architecture": "amd64", "os": "linux",
          "config": {"Env": ["PATH=/bin"], "Entrypoint": json.loads(entrypoint), "Cmd": json.loads(cmd)},
          "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
            "layers": [blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip")]}
mdesc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
mdesc["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [mdesc]}
with tarfile.open(archive, "w") as t:
    def put(path, data):
        i = tarfile.TarInfo(path); i.size = len(data); i.mode = 0o644; t.addfile(i, io.BytesIO(data))
    put("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
    put("index.json", json.dumps(index).encode())
    for d, data in blobs.items():
        put(f"blobs/sha256/{d}", data)
EOF
}
say "images"
oci_image "$BUSYBOX_IMAGE" "$WORK/images/busybox.tar" '["/bin/sh"]' '[]'
# The pause image: busybox's shell holds the namespaces and exits on SIGTERM (as the harness's).
oci_image "$PAUSE_IMAGE" "$WORK/images/pause.tar" \
    '["/bin/sh", "-c", "trap \"exit 0\" TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done"]' '[]'
for i in busybox pause; do
    "$CONTAINERD/ctr" -a "$SOCK" -n k8s.io images import "$WORK/images/$i.tar"
done
crictl images

# --- the pod --------------------------------------------------------------------------------
cat >"$WORK/pod.json" <<EOF
{"metadata": {"name": "kata-rs-smoke", "namespace": "default", "uid": "kata-rs-smoke-$$", "attempt": 0},
 "log_directory": "$WORK/log/pod", "linux": {}}
EOF
cat >"$WORK/container.json" <<EOF
{"metadata": {"name": "busybox"}, "image": {"image": "$BUSYBOX_IMAGE"},
 "command": ["/bin/sh", "-c", "echo started; exec sleep 3600"], "log_path": "busybox.log", "linux": {}}
EOF
say "crictl runp -r $HANDLER (TCG: tens of seconds to minutes)"
t0=$(date +%s)
if ((!hvsock)); then
    if crictl runp -r "$HANDLER" "$WORK/pod.json"; then
        die "the sandbox started without hybrid_vsock_daemon: does this host have /dev/vhost-vsock?"
    fi
    echo "failed as expected without hybrid_vsock_daemon (no /dev/vhost-vsock here)"
    exit 0
fi
pod=$(crictl runp -r "$HANDLER" "$WORK/pod.json")
echo "pod $pod ready after $(($(date +%s) - t0)) s"
say "crictl inspectp"
crictl inspectp "$pod" | grep -E '"(runtimeHandler|runtimeType|state)"'
say "create + start busybox"
ctr_id=$(crictl create "$pod" "$WORK/container.json" "$WORK/pod.json")
crictl start "$ctr_id"
crictl ps -a
say "uname -r in the container (the guest's kernel) and on the host"
echo "container: $(crictl exec "$ctr_id" uname -r)"
echo "host:      $(uname -r)"
echo "layout's guest kernel: $(readlink "$K/share/kata-containers/vmlinux.container")"
say "processes: QEMU (found by its -name sandbox-<pod id>) and its parent, the shim, with the shim's children"
qemu_pid=$(pgrep -f -- "-name sandbox-$pod" | head -n1 || true)
[[ -n $qemu_pid ]] || die "no QEMU process for sandbox $pod"
shim=$(ps -o ppid= -p "$qemu_pid" | tr -d ' ')
ps -o pid,ppid,etimes,args -p "$shim" | cut -c1-200
ps -o pid,ppid,etimes,args --ppid "$shim" | cut -c1-200
echo "QEMU $qemu_pid: parent $shim is $(readlink "/proc/$shim/exe")"
echo "QEMU's accelerator and CPU: $(tr '\0' ' ' <"/proc/$qemu_pid/cmdline" | grep -oE -- '-(machine|cpu) [^ ]+' | tr '\n' ' ')"
say "kata-ctl exec $pod -- uname -a (the guest's debug console)"
"$K/bin/kata-ctl" exec "$pod" -- uname -a || echo "kata-ctl exec failed: $?"
say "guest console (last lines)"
tail -n 5 "$WORK"/log/guest-console.*.log 2>/dev/null || true
if ((keep)); then
    echo "pod $pod, container $ctr_id kept"
    exit 0
fi
# (runtime-rs logs only to the systemd journal, which this host does not have: the shim's own
# log is lost, so the channel is shown by its sockets and QEMU's device)
say "the agent channel: the jailer root's sockets, QEMU's vsock device"
ls -l "/run/kata/$pod/root"
tr '\0' ' ' <"/proc/$qemu_pid/cmdline" | grep -oE -- '-(device|chardev) [^ ]*vsock[^ ]*'
say "crictl stopp + rmp"
children=$(pgrep -P "$shim" | tr '\n' ' ')
crictl stop "$ctr_id" >/dev/null
crictl rm "$ctr_id" >/dev/null
crictl stopp "$pod"
for p in $children; do
    if kill -0 "$p" 2>/dev/null; then echo "after stopp: $p ($(ps -o comm= -p "$p")) still runs"; else echo "after stopp: $p gone"; fi
done
crictl rmp "$pod"
