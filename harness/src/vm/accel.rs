//! The acceleration probe: KVM is used only when a short probe boot proves it works.
//!
//! Many hosts (cloud and nested ones, and the machines this project is built on) have a
//! `/dev/kvm` that opens and answers ioctls but cannot run an unmodified kernel: the guest
//! hangs after decompression. So the probe boots the image's own kernel with a tiny busybox
//! initramfs under KVM and waits for it to print a marker from userspace. Anything else is
//! TCG, said loudly, and Kata rows are skipped for that reason.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::Daemon;
use crate::wait::{wait_blocking, Attempt};

/// How long a KVM guest may take to reach userspace: seconds on real KVM, so anything
/// slower is a broken or emulated KVM.
pub const KVM_PROBE_DEADLINE: Duration = Duration::from_secs(20);
const MARKER: &str = "KATA-HARNESS-PROBE-OK";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn qemu_arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The probe's verdict, with the reason shown in reports and by `doctor`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub accel: Accel,
    pub reason: String,
    pub seconds: f64,
}

/// A newc cpio archive holding `/init` (a shell script) and a static busybox: enough to
/// print the marker and power off.
pub fn probe_initramfs(busybox: &Path) -> std::io::Result<Vec<u8>> {
    let busybox = std::fs::read(busybox)?;
    let init = format!("#!/bin/busybox sh\n/bin/busybox echo {MARKER}\n/bin/busybox poweroff -f\n");
    let mut out = Vec::new();
    let mut ino = 1;
    let mut entry = |name: &str, mode: u32, data: &[u8]| {
        write_newc(&mut out, ino, name, mode, data);
        ino += 1;
    };
    entry("bin", 0o040755, &[]);
    entry("bin/busybox", 0o100755, &busybox);
    entry("init", 0o100755, init.as_bytes());
    write_newc(&mut out, 0, "TRAILER!!!", 0, &[]);
    while out.len() % 512 != 0 {
        out.push(0);
    }
    Ok(out)
}

fn write_newc(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let name_len = name.len() + 1;
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{name_len:08x}{:08x}",
        0,
        0,
        1,
        0,
        data.len(),
        0,
        0,
        0,
        0,
        0
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Boots `kernel` under KVM with the probe initramfs; `Kvm` only if the marker appears.
pub fn probe(kernel: &Path, busybox: &Path, work: &Path) -> Verdict {
    if let Err(reason) = super::kvm::check_device() {
        return Verdict {
            accel: Accel::Tcg,
            reason,
            seconds: 0.0,
        };
    }
    match boot_probe(kernel, busybox, work, Accel::Kvm, KVM_PROBE_DEADLINE) {
        Ok(seconds) => Verdict {
            accel: Accel::Kvm,
            reason: format!("a probe boot under KVM reached userspace in {seconds:.1}s"),
            seconds,
        },
        Err((seconds, e)) => Verdict {
            accel: Accel::Tcg,
            reason: format!("/dev/kvm is present but a probe boot under KVM failed ({e}); using TCG"),
            seconds,
        },
    }
}

/// One probe boot under `accel`: the seconds to the marker, or why it never came.
pub fn boot_probe(
    kernel: &Path,
    busybox: &Path,
    work: &Path,
    accel: Accel,
    deadline: Duration,
) -> Result<f64, (f64, String)> {
    let start = Instant::now();
    let initrd = work.join("probe-initrd.cpio");
    let console = work.join("probe-console.log");
    probe_initramfs(busybox)
        .and_then(|cpio| std::fs::File::create(&initrd)?.write_all(&cpio))
        .map_err(|e| (0.0, format!("failed to write the probe initramfs: {e}")))?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        accel.qemu_arg(),
        "-m",
        "256",
        "-smp",
        "1",
        "-nographic",
        "-no-reboot",
    ])
    .args(["-nodefaults", "-serial", "stdio", "-kernel"])
    .arg(kernel)
    .arg("-initrd")
    .arg(&initrd)
    .args(["-append", "console=ttyS0 panic=-1 quiet rdinit=/init"]);
    if accel == Accel::Kvm {
        cmd.args(["-cpu", "host"]);
    }
    let mut qemu = Daemon::spawn("probe-qemu", cmd, &console)
        .map_err(|e| (0.0, format!("failed to start QEMU: {e}")))?;
    let what = format!("the {} probe guest to reach userspace", accel.qemu_arg());
    let seen = wait_blocking(&what, deadline, Duration::from_millis(50), || {
        let log = std::fs::read_to_string(&console).unwrap_or_default();
        if log.contains(MARKER) {
            return Attempt::Ready(());
        }
        match qemu.exited() {
            Some(status) => Attempt::Fatal(format!(
                "QEMU exited ({status}) before the marker: {}",
                crate::process::tail_of_text(&log, 3)
            )),
            None => Attempt::NotYet("no marker on the console yet".into()),
        }
    });
    qemu.stop(Duration::from_secs(2));
    let seconds = start.elapsed().as_secs_f64();
    seen.map(|()| seconds).map_err(|e| (seconds, e.to_string()))
}

/// The probe verdict for this host boot, QEMU and kernel, probing once and caching it.
pub fn cached_probe(kernel: &Path, busybox: &Path, cache: &Path) -> Verdict {
    let key = probe_key(kernel);
    let record = cache.join(format!("accel-{key}.json"));
    if let Some(verdict) = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Verdict>(&b).ok())
    {
        return verdict;
    }
    let work = tempfile::tempdir().expect("a temp dir for the probe");
    let verdict = probe(kernel, busybox, work.path());
    let _ = std::fs::create_dir_all(cache);
    let _ = std::fs::write(&record, serde_json::to_vec_pretty(&verdict).unwrap_or_default());
    if verdict.accel == Accel::Kvm {
        let _ = std::fs::write(super::kvm::probe_record(), &verdict.reason);
    }
    verdict
}

/// Host boot id + QEMU binary + kernel contents: a new boot, QEMU or kernel probes again
/// (images sharing a kernel share the verdict).
fn probe_key(kernel: &Path) -> String {
    use sha2::{Digest, Sha256};
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let qemu = crate::process::find_on_path("qemu-system-x86_64")
        .and_then(|p| std::fs::metadata(&p).ok().map(|m| format!("{p:?}{}", m.len())))
        .unwrap_or_default();
    let kernel = std::fs::read(kernel)
        .map(|bytes| hex::encode(Sha256::digest(&bytes)))
        .unwrap_or_default();
    hex::encode(&Sha256::digest(format!("{boot}{qemu}{kernel}").as_bytes())[..8])
}

pub fn default_cache() -> PathBuf {
    crate::profile::cache_dir().join("accel")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initramfs_is_a_newc_archive_with_init() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        std::fs::write(&fake, b"\x7fELF fake").unwrap();
        let cpio = probe_initramfs(&fake).unwrap();
        assert!(cpio.starts_with(b"070701"));
        assert_eq!(cpio.len() % 512, 0);
        let text = String::from_utf8_lossy(&cpio);
        assert!(text.contains("init") && text.contains(MARKER) && text.contains("TRAILER!!!"));
    }
}
