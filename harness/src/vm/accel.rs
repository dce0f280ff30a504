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

use nix::fcntl::Flock;

use super::kvm::KvmVerdict;
use crate::process::Daemon;
use crate::wait::{flock_exclusive, wait_blocking, Attempt};

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
            // One line: reports and environment lines show it whole.
            reason: format!(
                "/dev/kvm is present but a probe boot under KVM failed ({}); using TCG",
                e.lines().map(str::trim).collect::<Vec<_>>().join(" / ")
            ),
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

/// Where probe verdicts are kept, and the host boot they are valid for.
///
/// A verdict holds for one boot of one host: KVM modules, their parameters and the device
/// change across reboots, and a cache carried to another machine (CI caches) would lie. So
/// records live in `/run` (a tmpfs, cleared at boot, never part of a cache) and each carries
/// the boot id it was probed under; a record of another boot is ignored and probed again.
#[derive(Debug, Clone)]
pub struct ProbeStore {
    dir: PathBuf,
    /// `None` when the boot id cannot be read: then nothing recorded is trusted.
    boot_id: Option<String>,
}

/// The per-boot home of probe records (tmpfs on systemd hosts and in containers' own /run).
const RUN_DIR: &str = "/run/kata-harness/accel";

/// How long a process waits for another's probe (one probe boot, QEMU's stop, the record):
/// past it, it probes itself rather than trust nothing.
const LOCK_DEADLINE: Duration = Duration::from_secs(KVM_PROBE_DEADLINE.as_secs() + 10);

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    boot_id: String,
    verdict: Verdict,
}

impl ProbeStore {
    /// This boot's store: `/run/kata-harness/accel`, or `<cache>/accel` where /run is not
    /// writable (the boot id in each record still keeps other boots' verdicts out).
    pub fn for_this_boot() -> ProbeStore {
        let run = Path::new(RUN_DIR);
        let dir = if std::fs::create_dir_all(run).is_ok() && tempfile::tempfile_in(run).is_ok() {
            run.to_owned()
        } else {
            crate::profile::cache_dir().join("accel")
        };
        ProbeStore::at(dir, this_boot_id())
    }

    /// A store in `dir` for the boot `boot_id` (tests give their own).
    pub fn at(dir: PathBuf, boot_id: Option<String>) -> ProbeStore {
        ProbeStore { dir, boot_id }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The verdict for booting `kernel` under KVM: the device check, then this boot's record
    /// for this QEMU and kernel, else one probe boot (one process probes, the others wait
    /// for its record).
    pub fn verdict(&self, kernel: &Path, busybox: &Path) -> Verdict {
        if let Err(reason) = super::kvm::check_device() {
            // Not recorded: loading a KVM module must not wait for a reboot to count.
            return Verdict {
                accel: Accel::Tcg,
                reason,
                seconds: 0.0,
            };
        }
        self.recorded_or(&probe_key(kernel), || match tempfile::tempdir() {
            Ok(work) => probe(kernel, busybox, work.path()),
            Err(e) => Verdict {
                accel: Accel::Tcg,
                reason: format!("failed to create a temp dir for the KVM probe: {e}"),
                seconds: 0.0,
            },
        })
    }

    /// This boot's record under `key`, else `probe`'s verdict, recorded. The lock makes
    /// concurrent callers (nextest runs tests as parallel processes) share one probe.
    fn recorded_or(&self, key: &str, probe: impl FnOnce() -> Verdict) -> Verdict {
        if let Some(verdict) = self.recorded(key) {
            return verdict;
        }
        let lock = self.lock(key);
        if lock.is_ok() {
            // Another process may have probed while this one waited.
            if let Some(verdict) = self.recorded(key) {
                return verdict;
            }
        }
        let verdict = probe();
        self.record(key, &verdict);
        drop(lock);
        verdict
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("probe-{key}.json"))
    }

    /// The verdict recorded under `key` in this boot, if any.
    fn recorded(&self, key: &str) -> Option<Verdict> {
        let boot_id = self.boot_id.as_deref()?;
        let bytes = std::fs::read(self.record_path(key)).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        (record.boot_id == boot_id).then_some(record.verdict)
    }

    /// Writes the record whole (a temp file renamed), so a reader never sees half of one.
    /// A store that cannot be written only costs a later caller another probe.
    fn record(&self, key: &str, verdict: &Verdict) {
        let Some(boot_id) = &self.boot_id else { return };
        let record = Record {
            boot_id: boot_id.clone(),
            verdict: verdict.clone(),
        };
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(&self.dir))
            .and_then(|mut file| {
                file.write_all(&serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?)?;
                file.persist(self.record_path(key)).map_err(|e| e.error)
            });
        if let Err(e) = written {
            eprintln!(
                "note: failed to record the KVM probe verdict in {}: {e}",
                self.dir.display()
            );
        }
    }

    /// The exclusive lock on `key`'s probe, waited for up to [`LOCK_DEADLINE`].
    fn lock(&self, key: &str) -> Result<Flock<std::fs::File>, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let path = self.dir.join(format!("probe-{key}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("failed to open {}: {e}", path.display()))?;
        let what = format!("the KVM probe lock {}", path.display());
        flock_exclusive(&what, file, LOCK_DEADLINE, Duration::from_millis(50), || {})
            .map_err(|e| e.to_string())
    }
}

/// This host's boot id, `None` if unreadable.
pub fn this_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// The VM target's verdict: may its guests boot `kernel` under KVM.
pub fn cached_probe(kernel: &Path, busybox: &Path, store: &ProbeStore) -> Verdict {
    store.verdict(kernel, busybox)
}

/// Whether Kata's guests can use KVM here: the device check and, if it passes, a probe boot
/// of the host's own kernel (`/boot/vmlinuz-<release>`), else of `fallback_kernel` (the Kata
/// layout's guest kernel), through the same store as the VM target, so the two agree
/// whichever asks first.
pub fn kata_kvm_verdict(store: &ProbeStore, fallback_kernel: Option<&Path>) -> KvmVerdict {
    if let Err(reason) = super::kvm::check_device() {
        return KvmVerdict {
            usable: false,
            reason,
        };
    }
    let Some(kernel) = kata_probe_kernel(fallback_kernel) else {
        return KvmVerdict {
            usable: false,
            reason: format!(
                "/dev/kvm answers ioctls, but no kernel is at hand to prove it with a probe boot (no readable /boot/vmlinuz-{}, no Kata guest kernel)",
                host_release()
            ),
        };
    };
    let verdict = store.verdict(&kernel, Path::new(crate::images::BUSYBOX_BINARY));
    KvmVerdict {
        usable: verdict.accel == Accel::Kvm,
        reason: format!("{} (probe kernel {})", verdict.reason, kernel.display()),
    }
}

/// The kernel [`kata_kvm_verdict`] boots: the host's own when readable, else `fallback`.
pub fn kata_probe_kernel(fallback: Option<&Path>) -> Option<PathBuf> {
    probe_kernel(Path::new("/boot"), &host_release(), fallback)
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn probe_kernel(boot: &Path, release: &str, fallback: Option<&Path>) -> Option<PathBuf> {
    let readable = |path: &Path| std::fs::File::open(path).is_ok();
    let host = boot.join(format!("vmlinuz-{release}"));
    if !release.is_empty() && readable(&host) {
        return Some(host);
    }
    fallback.filter(|k| readable(k)).map(Path::to_owned)
}

/// QEMU binary + kernel contents: another QEMU or kernel probes again (images sharing a
/// kernel share the verdict). The boot is checked from inside the record.
fn probe_key(kernel: &Path) -> String {
    use sha2::{Digest, Sha256};
    let qemu = crate::process::find_on_path("qemu-system-x86_64")
        .and_then(|p| std::fs::metadata(&p).ok().map(|m| format!("{p:?}{}", m.len())))
        .unwrap_or_default();
    let kernel = std::fs::read(kernel)
        .map(|bytes| hex::encode(Sha256::digest(&bytes)))
        .unwrap_or_default();
    hex::encode(&Sha256::digest(format!("{qemu}{kernel}").as_bytes())[..8])
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

    fn kvm() -> Verdict {
        Verdict {
            accel: Accel::Kvm,
            reason: "fake probe: KVM".into(),
            seconds: 0.1,
        }
    }

    fn tcg() -> Verdict {
        Verdict {
            accel: Accel::Tcg,
            reason: "fake probe: TCG".into(),
            seconds: 0.1,
        }
    }

    /// `recorded_or` with a probe that answers `answer` and counts its calls.
    fn ask(store: &ProbeStore, answer: fn() -> Verdict, calls: &std::cell::Cell<u32>) -> Accel {
        store
            .recorded_or("k", || {
                calls.set(calls.get() + 1);
                answer()
            })
            .accel
    }

    #[test]
    fn a_record_from_another_boot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let calls = std::cell::Cell::new(0);
        let boot_a = ProbeStore::at(dir.path().to_owned(), Some("boot-a".into()));
        assert_eq!(ask(&boot_a, kvm, &calls), Accel::Kvm);
        // Same boot: the record answers, no second probe (so the next check can fail).
        assert_eq!(ask(&boot_a, tcg, &calls), Accel::Kvm);
        assert_eq!(calls.get(), 1);
        // Another boot, same directory and key: boot A's record is not believed.
        let boot_b = ProbeStore::at(dir.path().to_owned(), Some("boot-b".into()));
        assert_eq!(ask(&boot_b, tcg, &calls), Accel::Tcg);
        assert_eq!(calls.get(), 2);
        // ...and boot B's record now stands for boot B only.
        assert_eq!(ask(&boot_a, kvm, &calls), Accel::Kvm);
        assert_eq!(calls.get(), 3);
        // An unknown boot id trusts no record and writes none.
        let unknown = ProbeStore::at(dir.path().to_owned(), None);
        assert_eq!(ask(&unknown, tcg, &calls), Accel::Tcg);
        assert_eq!(calls.get(), 4);
        assert_eq!(ask(&boot_a, tcg, &calls), Accel::Kvm, "boot A's record was kept");
    }

    /// Kata's verdict and the VM target's come from one store, so neither depends on which
    /// asked first; a verdict read from records alone (a file some earlier run left) does.
    #[test]
    fn the_verdict_does_not_depend_on_who_asks_first() {
        let calls = std::cell::Cell::new(0);
        let mut answers = Vec::new();
        let mut record_only = Vec::new();
        for order in [["kata", "vm", "kata"], ["vm", "kata", "vm"]] {
            let dir = tempfile::tempdir().unwrap();
            let store = ProbeStore::at(dir.path().to_owned(), Some("boot".into()));
            for who in order {
                record_only.push((who, store.recorded("k").is_some()));
                answers.push(ask(&store, kvm, &calls));
            }
        }
        assert!(answers.iter().all(|a| *a == Accel::Kvm), "{answers:?}");
        assert_eq!(calls.get(), 2, "one probe per store");
        // The broken way: Kata reading only what another caller recorded says "no KVM" when
        // it asks first and "KVM" after the VM target probed.
        let kata_record_only: Vec<bool> = record_only
            .iter()
            .filter(|(who, _)| *who == "kata")
            .map(|(_, seen)| *seen)
            .collect();
        assert_eq!(kata_record_only, [false, true, true]);
    }

    #[test]
    fn concurrent_callers_share_one_probe() {
        let dir = tempfile::tempdir().unwrap();
        let probes = std::sync::atomic::AtomicU32::new(0);
        let answers: Vec<Accel> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let store = ProbeStore::at(dir.path().to_owned(), Some("boot".into()));
                    let probes = &probes;
                    scope.spawn(move || {
                        store
                            .recorded_or("k", || {
                                probes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(300));
                                kvm()
                            })
                            .accel
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(answers, [Accel::Kvm; 4]);
        assert_eq!(probes.into_inner(), 1, "the lock let one caller probe");
        // Without the lock each caller would probe: the same callers on a store without a
        // shared record (no boot id) all probe.
        let unshared = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let store = ProbeStore::at(dir.path().to_owned(), None);
                let unshared = &unshared;
                scope.spawn(move || {
                    store.recorded_or("k", || {
                        unshared.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        kvm()
                    })
                });
            }
        });
        assert_eq!(unshared.into_inner(), 4);
    }

    #[test]
    fn the_probe_kernel_is_the_hosts_when_readable_else_the_callers() {
        let boot = tempfile::tempdir().unwrap();
        let kata = boot.path().join("vmlinux.container");
        std::fs::write(&kata, b"kata kernel").unwrap();
        assert_eq!(
            probe_kernel(boot.path(), "6.1.0-1-amd64", Some(&kata)),
            Some(kata.clone())
        );
        let host = boot.path().join("vmlinuz-6.1.0-1-amd64");
        std::fs::write(&host, b"host kernel").unwrap();
        assert_eq!(
            probe_kernel(boot.path(), "6.1.0-1-amd64", Some(&kata)),
            Some(host)
        );
        assert_eq!(probe_kernel(boot.path(), "6.9.0", None), None);
        assert_eq!(
            probe_kernel(boot.path(), "6.9.0", Some(&boot.path().join("missing"))),
            None
        );
    }
}
