//! One KVM verdict for Kata and the VM target, whichever asks first, and what a VM variant
//! says of nested virtualization.
//!
//! The two order trials run as separate processes under nextest, each with its own record
//! store, and each also asks the `kata-harness` binary (`doctor`, through this boot's real
//! store): one before its library calls, one after.

use std::path::{Path, PathBuf};

use kata_harness::artifacts::kata::KataChoice;
use kata_harness::scenario::Capabilities;
use kata_harness::vm::accel::{self, Accel, ProbeStore};
use kata_harness::vm::kvm::{Nesting, Vendor};

#[path = "common/cli.rs"]
mod cli;

/// The kernel Kata's verdict boots here; where there is none, a file that is not a kernel
/// (its probe fails on any host, and both paths must still agree on that).
fn probe_kernel(scratch: &Path) -> PathBuf {
    let layout_kernel = KataChoice::Default
        .locate()
        .ok()
        .flatten()
        .and_then(|layout| layout.kernel());
    accel::kata_probe_kernel(layout_kernel.as_deref()).unwrap_or_else(|| {
        let fake = scratch.join("not-a-kernel");
        std::fs::write(&fake, b"not a kernel").unwrap();
        fake
    })
}

struct Asker {
    store: ProbeStore,
    kernel: PathBuf,
    _dir: tempfile::TempDir,
}

impl Asker {
    fn new() -> Asker {
        let dir = tempfile::tempdir().unwrap();
        let kernel = probe_kernel(dir.path());
        let store = ProbeStore::at(dir.path().join("records"), accel::this_boot_id());
        Asker {
            store,
            kernel,
            _dir: dir,
        }
    }

    fn kata(&self) -> (&'static str, bool) {
        let verdict = accel::kata_kvm_verdict(&self.store, Some(&self.kernel));
        assert!(!verdict.reason.is_empty());
        ("kata", verdict.usable)
    }

    fn vm(&self) -> (&'static str, bool) {
        let busybox = Path::new(kata_harness::provision::BUSYBOX_BINARY);
        let verdict = accel::cached_probe(&self.kernel, busybox, &self.store);
        ("vm", verdict.accel == Accel::Kvm)
    }
}

/// What `kata-harness doctor` reports on its `KVM` line: usable (`ok`) or not.
fn doctor() -> (&'static str, bool) {
    let out = cli::harness().arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("KVM "))
        .unwrap_or_else(|| panic!("no KVM line in doctor's output:\n{stdout}"));
    let status = line["KVM".len()..].split_whitespace().next().unwrap_or_default();
    ("doctor", status == "ok")
}

fn assert_agree(answers: &[(&str, bool)]) {
    assert!(
        answers.iter().all(|(_, usable)| *usable == answers[0].1),
        "the verdict depends on who asked first: {answers:?}"
    );
}

#[test]
fn kata_asks_first() {
    let asker = Asker::new();
    let answers = [doctor(), asker.kata(), asker.vm(), asker.kata()];
    assert_agree(&answers);
}

#[test]
fn the_vm_target_asks_first() {
    let asker = Asker::new();
    let answers = [asker.vm(), asker.kata(), asker.vm(), doctor()];
    assert_agree(&answers);
}

#[test]
fn disagreeing_answers_are_caught() {
    let caught = std::panic::catch_unwind(|| assert_agree(&[("kata", false), ("vm", true)]));
    assert!(caught.is_err());
}

#[test]
fn a_vm_variant_names_the_hosts_nesting() {
    let off = Nesting::Off {
        path: PathBuf::from("/sys/module/kvm_intel/parameters/nested"),
        value: "N".into(),
    };
    let on = Nesting::On {
        vendor: Vendor::Intel,
    };
    let no_kata = Capabilities::without_kata("no Kata artifacts here");

    // An image without QEMU, and a host without Kata: no Kata in the guest, and why.
    let caps = Capabilities::for_vm_on("trixie", false, &no_kata, &on);
    let why = caps.kata_absent.unwrap();
    assert!(
        why.contains("vm-images/trixie/packages lists no qemu-system-x86"),
        "{why}"
    );
    let caps = Capabilities::for_vm_on("bookworm", true, &no_kata, &on);
    assert!(caps.kata.is_none());
    assert!(caps.kata_absent.unwrap().contains("no Kata artifacts here"));

    // This host's Kata, in a guest: every Kata row says it ran in a guest, and under what.
    let local = Capabilities::probe_local();
    let Some(host_plan) = &local.kata else {
        eprintln!(
            "no Kata on this host ({:?}): the guest half is covered by provision::kata's unit tests",
            local.kata_absent
        );
        return;
    };
    for nesting in [&on, &off] {
        let caps = Capabilities::for_vm_on("bookworm", true, &local, nesting);
        let plan = caps.kata.as_ref().expect("the layout runs in the guest");
        assert_eq!(caps.kata_conditions[0], "in a VM guest (bookworm)");
        let lines = caps.kata_conditions.join("\n");
        match (&host_plan.host.no_kvm, nesting.vendor()) {
            (Some(_), _) => {
                assert!(lines.contains("the VM guest itself runs under TCG"), "{lines}");
                assert_eq!(plan.slowdown(), 8);
            }
            (None, None) => assert!(
                lines.contains("nested virtualization is off on this host"),
                "{lines}"
            ),
            (None, Some(_)) => assert_eq!(plan.accel(), "kvm", "{lines}"),
        }
    }
}
