//! `kata-harness diff`: the runc-vs-Kata table printed, carried by results.json and
//! results.html, exit 0 when only declared differences appear; exit 1 when no table could be
//! made (a node whose Kata shim is missing) and 2 on bad input, before anything starts.

use std::path::Path;

use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::{Settings, Testbed};
use kata_harness::scenario::Capabilities;

#[path = "common/cli.rs"]
mod cli;
use cli::harness;

fn said(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn diff_prints_the_table_and_the_reports_carry_it() {
    let results = tempfile::tempdir().unwrap();
    let out = harness()
        .args(["diff", "--handler", "kata", "--containerd", "2.1", "--results"])
        .arg(results.path())
        .output()
        .unwrap();
    let (stdout, stderr) = said(&out);
    if let Some(reason) = Capabilities::probe_local().kata_absent {
        // No Kata here: the row is skipped with the reason, and no table is no success.
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert!(
            stderr.contains("skipped") && stderr.contains("no difference table"),
            "{stderr}"
        );
        eprintln!("no Kata here ({reason}): checked the skip, not the table");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for line in [
        "runc vs kata: what a workload sees differently",
        "## kernel\n   runc: ",
        "-> differs, as declared: the container runs on the guest's kernel",
        "## hostname\n   runc: kh-diff\n   kata: kh-diff\n   -> alike",
        "22 probes: ",
        " 0 not as declared",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.path().join("results.json")).unwrap()).unwrap();
    let trial = &json["trials"][0];
    assert_eq!(trial["name"], "diff::runc-vs-kata::containerd-2.1", "{json}");
    assert_eq!(trial["verdict"], "passed", "{json}");
    let probes = trial["differences"]["probes"]
        .as_array()
        .expect("the table as data");
    assert_eq!(probes.len(), 22, "{json}");
    assert!(probes.iter().all(|p| p.get("surprise").is_none()), "{json}");
    let html = std::fs::read_to_string(results.path().join("results.html")).unwrap();
    assert!(
        html.contains("<table class=\"differences\"><caption>runc vs kata"),
        "no table in results.html"
    );
    // The suite it ran is beside the reports, and `run` takes it as it is.
    let out = harness()
        .args(["list", "--target", "local", "--containerd", "2.1", "--suites"])
        .arg(results.path().join("diff-suite.yaml"))
        .output()
        .unwrap();
    let (listed, stderr) = said(&out);
    assert!(
        out.status.success() && listed.contains("diff::runc-vs-kata::containerd-2.1"),
        "{listed}{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_without_a_table_or_with_bad_input_fails() {
    for (args, code, want) in [
        (&["--handler", "runc"][..], 2, "runc is not a Kata handler"),
        (&["--target", "vm"][..], 2, "a diff runs on one node"),
        (
            &["--handler", "kata", "--containerd", "0.9"][..],
            2,
            "--containerd 0.9",
        ),
    ] {
        let results = tempfile::tempdir().unwrap();
        let out = harness()
            .arg("diff")
            .args(args)
            .arg("--results")
            .arg(results.path())
            .output()
            .unwrap();
        let (stdout, stderr) = said(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(want), "{args:?}: {want:?} not in {stderr}");
        assert!(
            !results.path().join("results.json").exists(),
            "{args:?}: nothing runs"
        );
    }

    // A node whose kata handler has no shim installed: the row fails naming it, no table.
    let settings = Settings {
        containerd: ContainerdChoice::Line("2.1".into()),
        keep: false,
        pause_binary: None,
        repo: Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        kata: None,
        kata_rs: None,
        kata_runtime_class: "kata".into(),
    };
    let node = Testbed::start_local(&settings).await.expect("the node starts");
    let results = tempfile::tempdir().unwrap();
    let out = harness()
        .args(["diff", "--handler", "kata", "--target"])
        .arg(format!("cri://{}", node.paths.socket.display()))
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let leftovers = node.shutdown().await;
    let (stdout, stderr) = said(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("diff::runc-vs-kata::existing-containerd-2.1: ")
            && stderr.contains("binary not installed \"containerd-shim-kata-v2\"")
            && stderr.contains("no difference table"),
        "{stderr}"
    );
    assert!(!stdout.contains("## kernel"), "{stdout}");
    assert!(leftovers.is_clean(), "{leftovers:?}");
}
