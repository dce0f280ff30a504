//! A failed row's `reproduce.sh`, run for real: a row whose expectation is wrong on purpose
//! fails through the CLI; its script, run with the real crictl against a fresh local node (in
//! that node's namespaces), prints the runtimeType the harness reported, with no jq and none
//! of the failed run's IDs; and its rerun line is one the CLI parses, naming that one trial.

use std::path::{Path, PathBuf};
use std::process::Command;

use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::cleanup::processes_matching;
use kata_harness::provision::{Settings, Testbed};

const TRIAL: &str = "cri::wrong-binary-name::containerd-1.6";
const CTR_TRIAL: &str = "cri::wrong-ctr-run-runtime::containerd-1.6";
/// The default handler is runc with no BinaryName: `binary_name: crun` is wrong on purpose,
/// and the row still creates its sandbox and container before it is judged. The ctr row's
/// container really runs on io.containerd.runc.v2; v1 is wrong on purpose.
const SUITE: &str = "suite: cri\nrows:\n  - scenario: wrong-binary-name\n    sandbox: { container: true }\n    expect: { runtime_type: io.containerd.runc.v2, binary_name: crun }\n  - scenario: wrong-ctr-run-runtime\n    ctr_run: { runtime: io.containerd.runc.v2 }\n    expect: { runtime_type: io.containerd.runc.v1 }\n";

#[path = "common/cli.rs"]
mod cli;
use cli::harness;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the failing rows through the CLI; returns the bundle dirs of the CRI row and the ctr
/// row, and the runtimeType the harness reported for the CRI row (the first word of its
/// `observed` in results.json).
fn failed_rows(dir: &Path) -> (PathBuf, PathBuf, String) {
    let suite = dir.join("wrong.yaml");
    std::fs::write(&suite, SUITE).unwrap();
    let results = dir.join("results");
    let out = harness()
        .args(["run", "--target", "local", "--containerd", "1.6", "--suites"])
        .arg(&suite)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the row must fail:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("results.json")).unwrap()).unwrap();
    let row = json["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == TRIAL)
        .unwrap_or_else(|| panic!("no {TRIAL} in {json}"))
        .clone();
    assert_eq!(row["verdict"], "failed", "{row}");
    assert!(row["message"].as_str().unwrap().contains("BinaryName"), "{row}");
    let reported = row["observed"]
        .as_str()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(reported, "io.containerd.runc.v2", "{row}");
    let bundle = PathBuf::from(row["bundle"].as_str().unwrap());
    let ctr_row = json["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == CTR_TRIAL)
        .unwrap_or_else(|| panic!("no {CTR_TRIAL} in {json}"))
        .clone();
    assert_eq!(ctr_row["verdict"], "failed", "{ctr_row}");
    let ctr_bundle = PathBuf::from(ctr_row["bundle"].as_str().unwrap());
    (bundle, ctr_bundle, reported)
}

/// Runs `bundle/reproduce.sh` in the node's namespaces with `path` as PATH.
fn run_script(testbed: &Testbed, bundle: &Path, path: &str) -> std::process::Output {
    let argv = testbed.node_argv(&[
        "env".into(),
        format!("PATH={path}"),
        format!("CONTAINERD_SOCKET={}", testbed.paths.node_socket.display()),
        "sh".into(),
        "-c".into(),
        format!("cd '{}' && ./reproduce.sh", bundle.display()),
    ]);
    Command::new(&argv[0]).args(&argv[1..]).output().unwrap()
}

/// Removes what the ctr row's script created in the `default` namespace (no CRI sandbox:
/// the testbed's shutdown would not see it).
fn remove_ctr_containers(testbed: &Testbed) {
    let out = testbed.ctr("default", &["containers", "ls", "-q"]).unwrap();
    for id in text(&out.stdout).split_whitespace() {
        let _ = testbed.ctr("default", &["tasks", "delete", "--force", id]);
        testbed.ctr("default", &["containers", "delete", id]).unwrap();
    }
}

/// The failed run's sandbox and container IDs (12-character prefixes), from the names of
/// the `ctr containers info` evidence files.
fn failed_run_ids(bundle: &Path) -> Vec<String> {
    std::fs::read_dir(bundle)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("ctr-containers-info-")
                .and_then(|rest| rest.strip_suffix(".json"))
                .map(str::to_owned)
        })
        .collect()
}

/// What the script's pod.json makes the new node create outside its own run dir: the old
/// run's pod log dir and cgroup parent (the old node is gone; these are the test's to remove).
fn remove_old_node_paths(pod: &serde_json::Value) {
    if let Some(logs) = pod["log_directory"].as_str() {
        // <old run dir>/pod-logs/<name>: the old run dir itself is gone after its run.
        if let Some(run_dir) = Path::new(logs).parent().and_then(Path::parent) {
            if run_dir.starts_with(std::env::temp_dir()) {
                let _ = std::fs::remove_dir_all(run_dir);
            }
        }
    }
    if let Some(parent) = pod["linux"]["cgroup_parent"].as_str() {
        let parent = parent.trim_start_matches('/');
        assert!(parent.starts_with("kata-harness-"), "{pod}");
        for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(controller.path().join(parent));
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup/unified").join(parent));
    }
}

#[test]
fn a_failed_rows_reproduce_script_prints_the_reported_runtime_type_and_its_rerun_line_parses() {
    assert!(
        kata_harness::artifacts::cri_tools::crictl().is_some(),
        "no crictl: scripts/build-cri-tools builds it"
    );
    let dir = tempfile::tempdir().unwrap();
    let (bundle, ctr_bundle, reported) = failed_rows(dir.path());
    let script = std::fs::read_to_string(bundle.join("reproduce.sh")).unwrap();
    assert!(!script.contains("jq"), "{script}");
    let ids = failed_run_ids(&bundle);
    assert_eq!(ids.len(), 2, "a sandbox and a container: {ids:?}");
    for id in &ids {
        assert!(
            !script.contains(id.as_str()),
            "reuses the failed run's {id}:\n{script}"
        );
    }

    // The run's own node is gone: the script runs against a fresh one, named by the
    // variable its header documents, in that node's network and mount namespaces.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let settings = Settings {
        containerd: ContainerdChoice::Line("1.6".into()),
        keep: false,
        pause_binary: None,
        repo: ".".into(),
        kata: None,
        kata_rs: None,
        kata_runtime_class: "kata".into(),
    };
    let testbed = runtime
        .block_on(Testbed::start_local(&settings))
        .expect("testbed starts");
    let run_dir = testbed.paths.run_dir.clone();
    // A jq that fails, first on PATH: the script must not need one.
    let fake = dir.path().join("fake-bin");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("jq"), "#!/bin/sh\necho 'jq called' >&2\nexit 99\n").unwrap();
    std::fs::set_permissions(
        fake.join("jq"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let out = run_script(&testbed, &bundle, &path);
    let ctr_out = run_script(&testbed, &ctr_bundle, &path);
    remove_ctr_containers(&testbed);
    let pod: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("pod.json")).unwrap()).unwrap();
    // The script's sandbox goes with the node (shutdown removes every sandbox via the CRI).
    let leftovers = runtime.block_on(testbed.shutdown());
    remove_old_node_paths(&pod);
    assert!(leftovers.is_clean(), "{leftovers:?}");
    assert!(
        processes_matching(&run_dir.to_string_lossy()).is_empty(),
        "left running: {:?}",
        processes_matching(&run_dir.to_string_lossy())
    );

    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "reproduce.sh failed:\n{stdout}\n{stderr}");
    // crictl inspectp and inspect (go-template), one line each, and ctr's RUNTIME column.
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines.iter().filter(|l| **l == reported).count(),
        2,
        "inspectp and inspect print {reported}:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with(&format!(" {reported}")))
            .count(),
        2,
        "ctr containers ls shows {reported} for the sandbox and the container:\n{stdout}"
    );
    // The ctr row's script: its own container, from busybox copied out of k8s.io.
    let (stdout, stderr) = (text(&ctr_out.stdout), text(&ctr_out.stderr));
    assert!(
        ctr_out.status.success(),
        "the ctr row's reproduce.sh failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("ctr-run-") && l.trim_end().ends_with(" io.containerd.runc.v2"))
            .count(),
        1,
        "ctr containers ls shows the script's container on io.containerd.runc.v2:\n{stdout}\n{stderr}"
    );

    // The rerun line, as written, with `list` for `run`: the CLI accepts it, and it names
    // exactly this trial.
    let rerun = script
        .lines()
        .find_map(|l| l.strip_prefix("# kata-harness run "))
        .unwrap_or_else(|| panic!("no rerun line:\n{script}"));
    assert!(rerun.contains("--suites "), "{rerun}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("\"$KH\" list {rerun}"))
        .env("KH", env!("CARGO_BIN_EXE_kata-harness"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{rerun}\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), TRIAL, "{rerun}");
}
