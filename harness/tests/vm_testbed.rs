//! A real VM (TCG here) as the test node: the CRI suite's runc row passes inside it, the
//! guest's containerd records the same runtime, and a QEMU killed mid-run fails the next
//! row at once with the console tail, leaving nothing running.

use std::path::Path;
use std::time::{Duration, Instant};

use kata_harness::provision::{Settings, BUSYBOX_BINARY};
use kata_harness::report::{Recorder, Verdict};
use kata_harness::scenario::{plan, run::run_trial, session, Capabilities, Suite, Variant};
use kata_harness::vm::accel;

#[path = "common/leaks.rs"]
mod leaks;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_qemu_fails_the_row_at_once_and_leaves_nothing() {
    let suites = Suite::load_dir(&repo().join("suites")).unwrap();
    let variant = Variant::vm("bookworm");
    let trials = plan::plan(
        &suites,
        &[(variant.clone(), Capabilities::without_kata("a plain VM"))],
    );
    let trial = trials
        .iter()
        .find(|t| t.name == "cri::default-handler::vm-bookworm")
        .unwrap();
    let settings = Settings::plain(repo());
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
    leaks::assert_nothing_left(&run_dir);
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

#[path = "common/cli.rs"]
mod cli;

/// `kata-harness vm up` gives a provisioned node: the crictl lines it prints work in the
/// guest as printed (a crun pod and a busybox container, really run by the guest's
/// containerd), and `vm down` leaves no QEMU behind.
#[test]
fn vm_up_gives_a_node_the_printed_crictl_lines_work_on() {
    let name = format!("t{}", std::process::id());
    let run = |args: &[&str]| {
        let out = cli::harness().args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let (ok, up, stderr) = run(&["vm", "up", "--name", &name]);
    assert!(ok, "{up}\n{stderr}");
    // Taken down whatever the asserts below say.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = cli::harness().args(["vm", "down", "--name", &self.0]).output();
        }
    }
    let down = Down(name.clone());
    assert!(up.contains("handlers: runc, crun"), "{up}");
    // Each printed crictl line, run as printed (POD_ID filled in).
    let printed = |needle: &str| -> Vec<String> {
        let line = up
            .lines()
            .map(str::trim)
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{up}"));
        line.split_whitespace()
            .skip(1) // `kata-harness`: the binary under test
            .map(String::from)
            .collect()
    };
    let ssh = |argv: Vec<String>| {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = run(&argv);
        assert!(ok, "{argv:?}: {stdout}\n{stderr}");
        stdout.trim().to_owned()
    };
    let pods = ssh(printed("crictl pods"));
    assert!(pods.starts_with("POD ID"), "{pods}");
    let pod = ssh(printed("crictl runp -r crun"));
    assert_eq!(pod.len(), 64, "a sandbox id: {pod}");
    let create: Vec<String> = printed("crictl create POD_ID")
        .into_iter()
        .map(|w| if w == "POD_ID" { pod.clone() } else { w })
        .collect();
    let container = ssh(create);
    assert_eq!(container.len(), 64, "a container id: {container}");
    // `kata-harness vm ssh --name N --` of the printed lines, for the checks below.
    let mut base = printed("crictl pods");
    base.truncate(base.len() - 2);
    let mut start = base.clone();
    start.extend(["crictl".into(), "start".into(), container.clone()]);
    ssh(start);
    let mut inspect = base.clone();
    inspect.extend(
        [
            "crictl",
            "inspectp",
            "-o",
            "go-template",
            "--template",
            "{{.info.runtimeType}} {{.status.state}}",
            &pod,
        ]
        .map(String::from),
    );
    assert_eq!(ssh(inspect), "io.containerd.runc.v2 SANDBOX_READY");
    let mut ps = base;
    ps.extend(["crictl", "ps", "-q", "--state", "running"].map(String::from));
    assert_eq!(ssh(ps), container);

    let kept = kata_harness::vm::state::KeptVm::load(&name).expect("vm up records the VM");
    drop(down);
    assert!(
        !Path::new(&format!("/proc/{}", kept.qemu_pid)).exists(),
        "QEMU {} still runs after vm down",
        kept.qemu_pid
    );
}

fn fact<'a>(testbed: &'a kata_harness::provision::Testbed, key: &str) -> &'a str {
    testbed
        .facts
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no fact {key}: {:?}", testbed.facts))
}

fn guest(testbed: &kata_harness::provision::Testbed, script: &str) -> String {
    let out = testbed
        .node
        .run_unchecked(
            &["sh".to_owned(), "-c".to_owned(), script.to_owned()],
            Duration::from_secs(60),
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The saved state of a provisioned VM: a VM starts from it (said in its facts) with a disk
/// of its own (what one VM wrote, the next does not see), this host's clock, and the state's
/// file untouched; a broken saved state is a cold boot that says why, and is saved anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_start_from_the_saved_state_with_their_own_disk_and_clock() {
    let variant = Variant::vm("bookworm");
    let settings = Settings::plain(repo());
    let mut recorder = Recorder::default();
    // The first start of this image saves a state if there is none yet.
    let first = session::start_testbed(&variant, &settings, &mut recorder)
        .await
        .expect("the VM testbed starts");
    let start = fact(&first, "start").to_owned();
    assert!(start.starts_with("restored from saved state "), "{start}");
    let key = start["restored from saved state ".len()..]
        .split([' ', ';'])
        .next()
        .unwrap()
        .to_owned();
    let image = kata_harness::vm::image::Image::ensure(&repo(), "bookworm").unwrap();
    let state = image.dir.join(format!("saved-{key}/state.qcow2"));
    let identity = kata_harness::vm::snapshot::file_identity(&state);
    assert_eq!(
        guest(
            &first,
            "echo mine > /var/lib/kh-written && cat /var/lib/kh-written"
        ),
        "mine"
    );
    let run_dir = first.paths.run_dir.clone();
    assert!(first.shutdown().await.is_clean());
    leaks::assert_nothing_left(&run_dir);

    let second = session::start_testbed(&variant, &settings, &mut recorder)
        .await
        .expect("the VM testbed starts again");
    assert_eq!(
        fact(&second, "start").split(';').next().unwrap(),
        format!("restored from saved state {key}")
    );
    assert_eq!(
        guest(&second, "cat /var/lib/kh-written 2>/dev/null || echo none"),
        "none"
    );
    let guest_now: i64 = guest(&second, "date +%s").parse().unwrap();
    let host_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (guest_now - host_now).abs() <= 5,
        "guest {guest_now}, host {host_now}"
    );
    let run_dir = second.paths.run_dir.clone();
    assert!(second.shutdown().await.is_clean());
    leaks::assert_nothing_left(&run_dir);
    assert_eq!(
        kata_harness::vm::snapshot::file_identity(&state),
        identity,
        "the saved state was written"
    );

    // A broken state (here: emptied) is found, fails to restore, and is replaced.
    std::fs::write(&state, b"").unwrap();
    let third = session::start_testbed(&variant, &settings, &mut recorder)
        .await
        .expect("a cold boot after a broken saved state");
    let start = fact(&third, "start");
    assert!(
        start.contains(&format!("saved state {key} did not restore")),
        "{start}"
    );
    assert!(start.contains("just saved"), "{start}");
    assert!(state.metadata().unwrap().len() > 0, "saved anew");
    let run_dir = third.paths.run_dir.clone();
    assert!(third.shutdown().await.is_clean());
    leaks::assert_nothing_left(&run_dir);
}
