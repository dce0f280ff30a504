//! The `kata-harness` binary as a user runs it: exit codes, messages, reports, and Ctrl-C.
//! (Ctrl-C during a Kata row: tests/kata_teardown.rs, where it is skipped without Kata.)

use std::path::{Path, PathBuf};

#[path = "common/cli.rs"]
mod cli;
use cli::harness;

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
    let out = harness()
        .args(["list", "--target", "vm", "--containerd", "1.6"])
        .output()
        .unwrap();
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
        // The cri suite's handler rows: the counts below are theirs.
        .args([
            "run",
            "--target",
            "local",
            "--containerd",
            "1.6",
            "--filter",
            "handler::containerd-1.6",
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
    // default-, crun- and unconfigured-handler, and the 2 Kata handler rows, which run where
    // this host can run Kata (the scripts/build-kata layout, under TCG here) and are skipped
    // with the reason elsewhere; runtime-rs's handler row is skipped on 1.6 (below Kata 4.x's
    // minimum containerd).
    let kata = kata_harness::scenario::Capabilities::probe_local();
    let (passed, skipped) = if kata.kata_absent.is_none() {
        (5, 1)
    } else {
        (3, 3)
    };
    assert!(
        stdout.contains(&format!("{passed} passed, 0 failed, {skipped} skipped")),
        "{stdout}"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.path().join("results.json")).unwrap()).unwrap();
    // The report names the profile and every component's version and source; what a flag
    // replaced says so, and the host tools are as found here.
    let environment: Vec<(String, String)> =
        serde_json::from_value(json["run"]["environment"].clone()).expect("environment pairs");
    let fact = |key: &str| {
        environment
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {key} in {environment:?}"))
    };
    assert!(fact("profile").starts_with("default ("), "{environment:?}");
    assert_eq!(
        fact("containerd"),
        "--containerd 1.6 (replaces the profile's 1.6.20 (Debian package (bookworm)), 1.7.24 (provided by scripts/setup), 2.1.9 (provided by scripts/setup), 2.3.4 (provided by scripts/setup))"
    );
    // Where each artifact came from, as the manifests beside them say (the system's
    // containerd 1.6 is linked by scripts/fetch-containerd, which writes its manifest).
    assert!(
        fact("artifact-containerd-1.6").starts_with("Debian package 1.6."),
        "{environment:?}"
    );
    assert_eq!(
        verdict_reason(&json, "cri::kata-rs-handler::containerd-1.6"),
        ("skipped".into(), "needs kata-rs: Kata 4.x supports containerd 1.7 and later (its versions.yaml), this node runs 1.6".into())
    );
    for key in ["artifact-kata", "artifact-crictl"] {
        let origin = fact(key);
        assert!(
            origin.starts_with("source build") || origin.contains("upstream release"),
            "{key}: {origin}"
        );
    }
    // The default profile takes this host's runc and CNI plugins, whatever their versions:
    // reported as found, not enforced.
    assert_eq!(fact("runc"), "this host's (version not pinned)");
    assert!(fact("runc-found").starts_with("runc version "), "{environment:?}");
    assert_eq!(fact("cni-plugins"), "this host's (version not pinned)");
    assert!(!fact("cni-plugins-found").is_empty(), "{environment:?}");
    assert!(
        fact("kata").starts_with("3.30.0 (provided by scripts/setup"),
        "{environment:?}"
    );
    let trials = json["trials"].as_array().unwrap();
    let verdict = |name: &str| {
        trials
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["verdict"].clone())
            .unwrap()
    };
    assert_eq!(verdict("cri::crun-handler::containerd-1.6"), "passed");
    let kata_row = trials
        .iter()
        .find(|t| t["name"] == "cri::kata-handler::containerd-1.6")
        .unwrap();
    let junit = std::fs::read_to_string(results.path().join("junit.xml")).unwrap();
    match &kata.kata_absent {
        None => {
            assert_eq!(kata_row["verdict"], "passed", "{kata_row}");
            // How Kata ran here is on the row, in JSON and JUnit alike.
            let conditions = kata_row["conditions"]
                .as_array()
                .expect("conditions on a Kata row");
            assert_eq!(conditions.len(), kata.kata_conditions.len(), "{kata_row}");
            assert!(junit.contains(r#"<property name="conditions""#), "{junit}");
            assert!(trials
                .iter()
                .filter(|t| t["name"] == "cri::crun-handler::containerd-1.6")
                .all(|t| t.get("conditions").is_none()));
        }
        Some(reason) => {
            assert_eq!(kata_row["verdict"], "skipped");
            assert!(
                kata_row["message"].as_str().unwrap().contains(reason.as_str()),
                "{kata_row}"
            );
        }
    }
    assert!(
        junit.contains(&format!(r#"tests="{}""#, passed + skipped)),
        "{junit}"
    );
    assert!(junit.contains(r#"failures="0""#), "{junit}");
    assert!(junit.contains(&format!(r#"skipped="{skipped}""#)), "{junit}");
    assert!(junit.contains("cri::crun-handler::containerd-1.6"), "{junit}");
    assert!(
        junit.contains(r#"<property name="profile" value="default ("#),
        "{junit}"
    );
}

/// A suites folder with one row that fails for real (runc runs it, the row expects crun)
/// and a quarantine list naming it, expiring on `expires`.
fn quarantined_suite(dir: &Path, expires: &str) {
    std::fs::write(
        dir.join("known.yaml"),
        "suite: known\nplacements: [local]\nrows:\n  - scenario: wrong-runtime\n    sandbox: { container: true }\n    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: crun }\n  - scenario: right-runtime\n    sandbox: { container: true }\n    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: runc }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("quarantine.yaml"),
        format!("entries:\n  - rows: 'known::*-runtime::containerd-*'\n    reason: the row expects the wrong runtime on purpose\n    tracker: https://example.invalid/known/1\n    expires: {expires}\n"),
    )
    .unwrap();
}

#[test]
fn an_expired_quarantine_entry_exits_2_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    quarantined_suite(dir.path(), "2020-01-31");
    let out = harness()
        .args(["list", "--suites"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = dir.path().join("quarantine.yaml");
    assert!(
        stderr.contains(&format!(
            "{}: entry 1 (known::*-runtime::containerd-*), field expires: expired on 2020-01-31",
            file.display()
        )),
        "{stderr}"
    );
    // `--quarantine none` runs without the list (here: lists the rows).
    let out = harness()
        .args([
            "list",
            "--target",
            "local",
            "--containerd",
            "1.6",
            "--quarantine",
            "none",
            "--suites",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("known::wrong-runtime::containerd-1.6"));
}

#[test]
fn a_quarantined_failure_is_reported_as_such_and_does_not_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    quarantined_suite(dir.path(), "2099-12-31");
    let run = |extra: &[&str]| {
        let results = tempfile::tempdir().unwrap();
        let out = harness()
            .args(["run", "--target", "local", "--containerd", "1.6", "--suites"])
            .arg(dir.path())
            .args(extra)
            .arg("--results")
            .arg(results.path())
            .output()
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(results.path().join("results.json")).unwrap()).unwrap();
        let junit = std::fs::read_to_string(results.path().join("junit.xml")).unwrap();
        (out, json, junit, results)
    };
    let (out, json, junit, results) = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed, 0 failed, 0 skipped, 1 quarantined"),
        "{stdout}"
    );
    let row = |name: &str| {
        json["trials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap()
    };
    let wrong = row("known::wrong-runtime::containerd-1.6");
    assert_eq!(wrong["verdict"], "quarantined", "{wrong}");
    let message = wrong["message"].as_str().unwrap();
    assert!(
        message.starts_with("quarantined until 2099-12-31 (the row expects the wrong runtime on purpose; https://example.invalid/known/1): "),
        "{message}"
    );
    // The failure itself is kept: what ran, and a bundle to look at.
    assert!(wrong["observed"].as_str().unwrap().contains("runc"), "{wrong}");
    assert!(
        results
            .path()
            .join(wrong["bundle"].as_str().unwrap())
            .join("reproduce.sh")
            .is_file(),
        "{wrong}"
    );
    assert_eq!(json["summary"]["quarantined"], 1);
    assert_eq!(json["summary"]["failed"], 0);
    assert!(
        junit.contains(r#"failures="0""#) && junit.contains(r#"skipped="1""#),
        "{junit}"
    );
    assert!(junit.contains("quarantined until 2099-12-31"), "{junit}");
    // The entry also matches the row that passed: it stays passed, and the user hears of it.
    assert_eq!(row("known::right-runtime::containerd-1.6")["verdict"], "passed");
    assert!(
        stderr.contains("known::right-runtime::containerd-1.6 passed but is quarantined"),
        "{stderr}"
    );

    // Without the list the same row fails the run.
    let (out, json, _, _) = run(&["--quarantine", "none"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json["summary"]["failed"], 1);
    assert_eq!(json["summary"]["quarantined"], 0);
}

/// Starts `kata-harness run ARGS`, interrupts it once a testbed is ready (trials running),
/// and checks the exit code and that nothing of that testbed survives.
fn interrupt_when_ready(args: &[&str]) {
    cli::interrupt_when(args, |_| Some(vec![]));
}

#[test]
fn ctrl_c_leaves_no_daemon_shim_or_mount_behind() {
    interrupt_when_ready(&["--target", "local", "--containerd", "1.6,1.7,2.1"]);
}

#[test]
fn ctrl_c_leaves_no_qemu_ssh_or_overlay_behind() {
    interrupt_when_ready(&["--target", "vm", "--image", "bookworm", "--filter", "cri::"]);
}

/// A trial's verdict and message in results.json.
fn verdict_reason(json: &serde_json::Value, name: &str) -> (String, String) {
    let trial = json["trials"]
        .as_array()
        .and_then(|trials| trials.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no trial {name}"));
    (
        trial["verdict"].as_str().unwrap_or_default().to_owned(),
        trial["message"].as_str().unwrap_or_default().to_owned(),
    )
}
