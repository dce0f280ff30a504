//! The kata-harness binary as the integration tests run it (include with
//! `#[path = "common/cli.rs"] mod cli;`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kata_harness::provision::cleanup::{is_zombie, mounts_under, processes_matching};
use kata_harness::wait::{wait_blocking, Attempt};

/// `kata-harness`, run from the repository root (where `suites/` and `results/` are).
pub fn harness() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kata-harness"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    cmd
}

/// The stdout of a command that must have succeeded; on failure, both streams in the panic.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn stdout_of_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Sends SIGINT to `child` and waits (up to `deadline`) for it to exit.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn interrupt_and_wait(child: &mut std::process::Child, deadline: Duration) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    wait_blocking(
        "kata-harness to exit after SIGINT",
        deadline,
        Duration::from_millis(50),
        || match child.try_wait() {
            Ok(Some(status)) => Attempt::Ready(status),
            Ok(None) => Attempt::NotYet("running".into()),
            Err(e) => Attempt::Fatal(e.to_string()),
        },
    )
    .unwrap()
}

/// Starts `kata-harness run ARGS`, interrupts it once `ready(run_dir)` returns processes (pid,
/// command line; `Some(vec![])`: as soon as a testbed is ready), and checks the exit code and
/// that nothing of that testbed survives, those processes included.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn interrupt_when(args: &[&str], ready: impl Fn(&Path) -> Option<Vec<(i32, String)>>) {
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
    let watched = wait_blocking(
        "the moment to interrupt",
        Duration::from_secs(180),
        Duration::from_millis(50),
        || match ready(&run_dir) {
            Some(found) => Attempt::Ready(found),
            None => Attempt::NotYet("not yet".into()),
        },
    )
    .unwrap();
    let status = interrupt_and_wait(&mut child, Duration::from_secs(60));
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
    let alive: Vec<_> = watched.iter().filter(|(pid, _)| !is_zombie(*pid)).collect();
    assert!(alive.is_empty(), "still running after Ctrl-C: {alive:?}");
}

/// A run of one suite file's rows (`text`) on a local containerd `line`, with no quarantine:
/// its exit code, what it printed and its results.json, for [`SuiteRun::trial`] to read.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub struct SuiteRun {
    pub code: Option<i32>,
    pub said: String,
    pub json: serde_json::Value,
}

#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn run_suite(text: &str, line: &str) -> SuiteRun {
    let dir = tempfile::tempdir().unwrap();
    let suites = dir.path().join("suites");
    std::fs::create_dir(&suites).unwrap();
    std::fs::write(suites.join("rows.yaml"), text).unwrap();
    let results = dir.path().join("results");
    let out = harness()
        .args([
            "run",
            "--target",
            "local",
            "--containerd",
            line,
            "--quarantine",
            "none",
            "--suites",
        ])
        .arg(&suites)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read(results.join("results.json"))
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .unwrap_or_else(|e| panic!("no results.json ({e}): {said}"));
    SuiteRun {
        code: out.status.code(),
        said,
        json,
    }
}

impl SuiteRun {
    /// The verdict of the trial of `scenario`, and its observed and message as one text.
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub fn trial(&self, scenario: &str) -> (String, String) {
        let t = self.json["trials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no trial {scenario}: {}", self.said));
        (
            t["verdict"].as_str().unwrap().to_owned(),
            format!(
                "{} | {}",
                t["observed"].as_str().unwrap(),
                t["message"].as_str().unwrap()
            ),
        )
    }
}
