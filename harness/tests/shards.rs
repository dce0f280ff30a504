//! `run --shard K/N` and `merge` as a user runs them: a small selection of runc and crun rows
//! (one fails on purpose, one is skipped) on three private containerds, run once whole and
//! then as two shards one after another; the merge must report what the whole run did. Then
//! the merges that must fail: a shard given twice, a shard missing.

use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "common/cli.rs"]
mod cli;
use cli::harness;

const SUITE: &str = "suite: shards
placements: [local]
rows:
  - scenario: runc
    sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: runc }
  - scenario: crun
    sandbox: { handler: crun, container: true }
    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: crun }
  - scenario: wrong-runtime
    about: fails on purpose (runc runs it), for a failure bundle to merge
    sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: crun }
  - scenario: not-here
    skip: skipped on purpose
    sandbox: {}
    expect: { runtime_type: io.containerd.runc.v2 }
";

const LINES: &str = "1.6,1.7,2.1";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kata-harness run` of the suite, with `extra` flags, into `results`.
fn run(suite: &Path, results: &Path, extra: &[&str]) -> Output {
    harness()
        .args([
            "run",
            "--target",
            "local",
            "--containerd",
            LINES,
            "--quarantine",
            "none",
            "--suites",
        ])
        .arg(suite)
        .args(extra)
        .arg("--results")
        .arg(results)
        .output()
        .unwrap()
}

fn merge(dirs: &[&Path], out: &Path) -> Output {
    harness()
        .arg("merge")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn results_json(dir: &Path) -> serde_json::Value {
    let file = dir.join("results.json");
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// `(name, verdict)` of every trial, in report order.
fn verdicts(json: &serde_json::Value) -> Vec<(String, String)> {
    json["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn two_shards_merged_report_what_one_run_reports_and_broken_merges_fail() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("shards.yaml");
    std::fs::write(&suite, SUITE).unwrap();
    let whole = dir.path().join("whole");
    let out = run(&suite, &whole, &[]);
    // Exit 1: the row that fails on purpose.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let shards: Vec<PathBuf> = (1..=2).map(|k| dir.path().join(format!("shard-{k}"))).collect();
    for (k, results) in shards.iter().enumerate() {
        let out = run(&suite, results, &["--shard", &format!("{}/2", k + 1)]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    }
    // Whole testbeds: each shard ran one or more containerd lines, none ran a line twice.
    let groups: Vec<Vec<String>> = shards
        .iter()
        .map(|s| serde_json::from_value(results_json(s)["run"]["shard"]["groups"].clone()).unwrap())
        .collect();
    assert!(groups.iter().all(|g| !g.is_empty()), "{groups:?}");
    assert_eq!(groups.concat().len(), 3, "{groups:?}");

    let merged = dir.path().join("merged");
    let out = merge(&[&shards[1], &shards[0]], &merged);
    assert_eq!(
        out.status.code(),
        Some(1),
        "failures carry through: {}",
        stderr(&out)
    );
    let (one, two) = (results_json(&whole), results_json(&merged));
    assert_eq!(verdicts(&one), verdicts(&two));
    assert_eq!(verdicts(&one).len(), 12);
    assert_eq!(one["summary"], two["summary"]);
    assert_eq!(one["run"]["selection"], two["run"]["selection"]);
    assert_eq!(one["run"]["command"], two["run"]["command"]);
    assert!(two["run"].get("shard").is_none());
    for trial in two["trials"].as_array().unwrap() {
        if let Some(bundle) = trial["bundle"].as_str() {
            assert!(Path::new(bundle).starts_with(&merged), "{bundle}");
            assert!(Path::new(bundle).join("reproduce.sh").is_file(), "{bundle}");
        }
    }
    let junit = std::fs::read_to_string(merged.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 12, "{junit}");
    assert!(merged.join("results.html").is_file());

    // A shard's dir given twice (a copy of it): the duplicate trial and both dirs named.
    let copy = dir.path().join("shard-1-copy");
    copy_dir(&shards[0], &copy);
    let broken = dir.path().join("broken");
    let out = merge(&[&shards[0], &copy, &shards[1]], &broken);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("is in both")
            && text.contains("shard-1 (shard 1/2)")
            && text.contains("shard-1-copy (shard 1/2)"),
        "{text}"
    );
    assert!(!broken.exists(), "a failed merge wrote {}", broken.display());
    // A shard missing.
    let out = merge(&[&shards[1]], &broken);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("missing shard 1 of 2"), "{text}");
    assert!(!broken.exists());
}

/// The checkout's own suites, listed as three shards: every trial once, no testbed split
/// (nothing is started).
#[test]
fn listed_shards_of_the_suites_hold_every_trial_once() {
    let list = |extra: &[&str]| -> Vec<String> {
        let out = harness()
            .args(["list", "--target", "local", "--containerd", "1.6,1.7,2.1,2.3"])
            .args(extra)
            .output()
            .unwrap();
        cli::stdout_of_success(&out).lines().map(str::to_owned).collect()
    };
    let whole = list(&[]);
    let shares: Vec<Vec<String>> = (1..=3).map(|k| list(&["--shard", &format!("{k}/3")])).collect();
    let mut joined: Vec<&String> = shares.iter().flatten().collect();
    joined.sort();
    let mut expected: Vec<&String> = whole.iter().collect();
    expected.sort();
    assert_eq!(joined, expected);
    for line in ["1.6", "1.7", "2.1", "2.3"] {
        let variant = format!("::containerd-{line}");
        let holders = shares
            .iter()
            .filter(|s| {
                s.iter()
                    .any(|t| t.split("  (skipped").next().unwrap().ends_with(&variant))
            })
            .count();
        assert_eq!(holders, 1, "containerd-{line}");
    }
}

#[test]
fn a_bad_shard_or_durations_exits_2_naming_it() {
    for (shard, expected) in [
        ("0/2", "K must be from 1 to N (2), not 0"),
        ("3/2", "K must be from 1 to N (2), not 3"),
        ("1/0", "N, the number of shards, must be at least 1"),
        ("half", "expected K/N"),
    ] {
        let out = harness()
            .args([
                "list",
                "--target",
                "local",
                "--containerd",
                "2.1",
                "--shard",
                shard,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{shard}");
        assert!(stderr(&out).contains(expected), "{shard}: {}", stderr(&out));
    }
    let out = harness()
        .args([
            "list",
            "--target",
            "local",
            "--containerd",
            "2.1",
            "--shard",
            "1/2",
            "--durations",
            "/nonexistent/d.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--durations: failed to read the durations file /nonexistent/d.json"),
        "{}",
        stderr(&out)
    );
}
