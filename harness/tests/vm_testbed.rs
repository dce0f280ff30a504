//! A real VM (TCG here) as the test node: the CRI suite's runc row passes inside it, the
//! guest's containerd records the same runtime, and a QEMU killed mid-run fails the next
//! row at once with the console tail, leaving nothing running.

use std::path::Path;
use std::time::{Duration, Instant};

use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::cleanup::processes_matching;
use kata_harness::provision::{Settings, BUSYBOX_BINARY};
use kata_harness::report::{Recorder, Verdict};
use kata_harness::scenario::{plan, run::run_trial, session, Capabilities, Suite, Variant};
use kata_harness::vm::accel;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_qemu_fails_the_row_at_once_and_leaves_nothing() {
    let suites = Suite::load_dir(&repo().join("suites")).unwrap();
    let variant = Variant::vm("bookworm");
    let trials = plan::plan(
        &suites,
        &[(variant.clone(), Capabilities::for_vm("bookworm", None))],
    );
    let trial = trials
        .iter()
        .find(|t| t.name == "cri::default-handler::vm-bookworm")
        .unwrap();
    let settings = Settings {
        containerd: ContainerdChoice::Line("1.6".into()),
        keep: false,
        pause_binary: None,
        repo: repo(),
        kata: None,
    };
    let mut recorder = Recorder::default();
    let testbed = session::start_testbed(&variant, &settings, &mut recorder)
        .await
        .expect("the VM testbed starts");
    let run_dir = testbed.paths.run_dir.clone();
    assert!(
        testbed.facts.iter().any(|(k, _)| k == "accelerator"),
        "{:?}",
        testbed.facts
    );
    // This host's crictl is in the guest, and plain `crictl version` there (PATH and the
    // guest's /etc/crictl.yaml alone) reached the guest's containerd.
    if kata_harness::artifacts::cri_tools::crictl().is_some() {
        assert_eq!(testbed.crictl.as_deref(), Some("crictl"));
        assert!(
            testbed
                .facts
                .iter()
                .any(|(k, v)| k == "crictl" && v.contains("RuntimeApiVersion")),
            "{:?}",
            testbed.facts
        );
    }

    let first = run_trial(&testbed, trial).await;
    assert_eq!(
        first.verdict,
        Verdict::Passed,
        "{}: {}",
        first.observed,
        first.message
    );

    let pid = testbed.vm_pid().expect("a VM testbed has a QEMU");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let start = Instant::now();
    let second = run_trial(&testbed, trial).await;
    assert_eq!(second.verdict, Verdict::Failed);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    assert!(second.message.contains("QEMU exited"), "{}", second.message);
    assert!(second.message.contains("console"), "{}", second.message);

    let leftovers = testbed.shutdown().await;
    assert!(leftovers.is_clean(), "{leftovers:?}");
    assert!(processes_matching(&run_dir.to_string_lossy()).is_empty());
    assert!(!run_dir.exists());
}

#[test]
fn the_kvm_probe_can_pass_under_tcg() {
    // The probe mechanism itself (kernel + busybox initramfs reaching userspace) must work,
    // or a "TCG" verdict would prove nothing about KVM.
    let image = kata_harness::vm::image::Image::ensure(&repo(), "bookworm").unwrap();
    let work = tempfile::tempdir().unwrap();
    let seconds = accel::boot_probe(
        &image.kernel(),
        Path::new(BUSYBOX_BINARY),
        work.path(),
        accel::Accel::Tcg,
        Duration::from_secs(120),
    )
    .expect("the probe guest reaches userspace under TCG");
    assert!(seconds > 0.0);
}
