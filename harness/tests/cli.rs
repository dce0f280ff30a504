//! The `kata-harness` binary as a user runs it: exit codes, messages, reports, and Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kata_harness::provision::cleanup::{mounts_under, processes_matching};
use kata_harness::wait::{wait_blocking, Attempt};

fn harness() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kata-harness"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    cmd
}

fn suite_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("broken.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn misspelt_field_exits_2_naming_file_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite_file(
        dir.path(),
        "suite: cri\nrows:\n  - scenario: default-handler\n    sandbox: { hanlder: crun }\n    expect: { runtime_type: io.containerd.runc.v2 }\n",
    );
    let out = harness()
        .args(["run", "--target", "local", "--suites"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&format!("{}: row 1 (default-handler)", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("hanlder"), "{stderr}");
}

#[test]
fn unknown_handler_exits_2_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite_file(
        dir.path(),
        "suite: cri\nrows:\n  - scenario: typo\n    sandbox: { handler: krun }\n    expect: { runtime_type: io.containerd.runc.v2 }\n",
    );
    let out = harness().args(["list", "--suites"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("row 1 (typo), field sandbox.handler: unknown handler \"krun\""),
        "{stderr}"
    );
}

#[test]
fn unknown_target_and_missing_containerd_exit_2() {
    let out = harness().args(["run", "--target", "docker"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target \"docker\""));
    let out = harness()
        .args([
            "list",
            "--target",
            "local",
            "--containerd",
            "/nonexistent/containerd",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/containerd"));
    // A flag for the other target is refused, not ignored.
    let out = harness().args(["list", "--containerd", "1.6"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--containerd applies to --target local"));
    let out = harness().args(["list", "--image", "bookwrom"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bookwrom"));
}

#[test]
fn run_writes_junit_and_json_that_agree_with_the_table() {
    let results = tempfile::tempdir().unwrap();
    let out = harness()
        // Only the cri suite: the counts below are its rows.
        .args([
            "run",
            "--target",
            "local",
            "--containerd",
            "1.6",
            "--filter",
            "cri::",
            "--results",
        ])
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 passed, 0 failed, 3 skipped"), "{stdout}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.path().join("results.json")).unwrap()).unwrap();
    let trials = json["trials"].as_array().unwrap();
    let verdict = |name: &str| {
        trials
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["verdict"].clone())
            .unwrap()
    };
    assert_eq!(verdict("cri::crun-handler::containerd-1.6"), "passed");
    assert_eq!(verdict("cri::kata-handler::containerd-1.6"), "skipped");
    let kata = trials
        .iter()
        .find(|t| t["name"] == "cri::kata-handler::containerd-1.6")
        .unwrap();
    assert!(
        kata["message"]
            .as_str()
            .unwrap()
            .contains("containerd-shim-kata-v2"),
        "{kata}"
    );

    let junit = std::fs::read_to_string(results.path().join("junit.xml")).unwrap();
    assert!(junit.contains(r#"tests="8""#), "{junit}");
    assert!(junit.contains(r#"failures="0""#), "{junit}");
    assert!(junit.contains(r#"skipped="3""#), "{junit}");
    assert!(junit.contains("cri::crun-handler::containerd-1.6"), "{junit}");
}

/// Starts `kata-harness run ARGS`, interrupts it once a testbed is ready (trials running),
/// and checks the exit code and that nothing of that testbed survives.
fn interrupt_when_ready(args: &[&str]) {
    let results = tempfile::tempdir().unwrap();
    let mut child = harness()
        .arg("run")
        .args(args)
        .arg("--results")
        .arg(results.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut run_dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some((_, dir)) = line.split_once("run dir ") {
            run_dir = Some(PathBuf::from(dir.trim()));
            break;
        }
    }
    let run_dir = run_dir.expect("the run announced its testbed");
    // Keep draining stderr: a closed pipe would turn the harness's next message into a panic.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_blocking(
        "kata-harness to exit after SIGINT",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || match child.try_wait() {
            Ok(Some(status)) => Attempt::Ready(status),
            Ok(None) => Attempt::NotYet("running".into()),
            Err(e) => Attempt::Fatal(e.to_string()),
        },
    )
    .unwrap();
    let said = drain.join().unwrap().join("\n");
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("interrupted: cleaning up"), "{said}");
    let needle = run_dir.to_string_lossy().into_owned();
    assert!(
        processes_matching(&needle).is_empty(),
        "left running: {:?}",
        processes_matching(&needle)
    );
    assert!(
        mounts_under(&run_dir).is_empty(),
        "left mounted: {:?}",
        mounts_under(&run_dir)
    );
    assert!(!run_dir.exists(), "run dir {} is still there", run_dir.display());
}

#[test]
fn ctrl_c_leaves_no_daemon_shim_or_mount_behind() {
    interrupt_when_ready(&["--target", "local", "--containerd", "1.6,1.7,2.1"]);
}

#[test]
fn ctrl_c_leaves_no_qemu_ssh_or_overlay_behind() {
    interrupt_when_ready(&["--target", "vm", "--image", "bookworm", "--filter", "cri::"]);
}
