//! Faults with real processes, through the CLI: what breaks mid-row fails that row with the
//! true cause, later rows fail fast with the same cause or still run, the exit code is 1, and
//! nothing is left behind (processes, mounts, cgroups, netns, temp dirs: `common/leaks.rs`),
//! checked after each test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kata_harness::provision::cleanup::{processes_matching, tagged_processes};
use kata_harness::wait::{wait_blocking, Attempt};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/leaks.rs"]
mod leaks;
use cli::harness;
use leaks::assert_nothing_left;

/// A Kata row (10-20 s under TCG: long enough to break something during it), then two rows
/// that come after the break.
const SUITE: &str = r#"suite: cri
rows:
  - scenario: kata-handler
    requires: [kata]
    sandbox: { handler: kata, container: true }
    expect: { runtime_type: io.containerd.kata.v2 }
  - scenario: default-handler
    sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: runc }
  - scenario: crun-handler
    sandbox: { handler: crun, container: true }
    expect: { runtime_type: io.containerd.runc.v2, binary_name: crun }
"#;

/// A run of the harness whose stderr is read: its run dir (from the line that announces the
/// testbed), and everything it said, collected until it exits and passed on as it comes.
struct Run {
    child: std::process::Child,
    run_dir: PathBuf,
    said: std::thread::JoinHandle<Vec<String>>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Run {
    /// Starts `kata-harness run <args> --results <results>` and waits for its testbed's run dir.
    fn start(args: &[&str], results: &Path) -> Run {
        let mut child = harness()
            .arg("run")
            .args(args)
            .arg("--results")
            .arg(results)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let run_dir = stderr
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split_once("run dir ").map(|(_, d)| PathBuf::from(d.trim())))
            .expect("the run announced its testbed");
        let (tx, lines) = std::sync::mpsc::channel();
        let said = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in stderr.map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        Run {
            child,
            run_dir,
            said,
            lines,
        }
    }

    /// Starts a run of the suite `text` (written as `file` in a temp dir) on a local
    /// containerd 1.6, its results in `<temp dir>/results`.
    fn local_with(file: &str, text: &str) -> (tempfile::TempDir, Run) {
        let dir = tempfile::tempdir().unwrap();
        let suite = dir.path().join(file);
        std::fs::write(&suite, text).unwrap();
        let suite_arg = suite.to_string_lossy().into_owned();
        let run = Run::start(
            &["--target", "local", "--containerd", "1.6", "--suites", &suite_arg],
            &dir.path().join("results"),
        );
        (dir, run)
    }

    /// Waits for the first line (said from now on) that contains `text`; a `FAIL ` line
    /// before it fails the test.
    fn wait_for_line(&self, text: &str, deadline: Duration) -> String {
        let until = std::time::Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no line {text:?} within {deadline:?}: {e}"));
            if line.contains(text) {
                return line;
            }
            assert!(!line.starts_with("FAIL "), "{line}");
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        kill(self.child.id() as i32, signal);
    }

    /// Waits for the run to exit; its status and what it said.
    fn end(mut self, deadline: Duration) -> (std::process::ExitStatus, String) {
        let status = wait_for_exit(&mut self.child, deadline);
        (status, self.said.join().unwrap().join("\n"))
    }
}

fn kill(pid: i32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
}

fn wait_for_exit(child: &mut std::process::Child, deadline: Duration) -> std::process::ExitStatus {
    wait_blocking(
        "the run to exit",
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

/// The trials of a `results.json` that `keep` keeps.
fn trials_where(
    json: &serde_json::Value,
    keep: impl Fn(&serde_json::Value) -> bool,
) -> Vec<&serde_json::Value> {
    json["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| keep(t))
        .collect()
}

fn results_json(results: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(results.join("results.json")).unwrap()).unwrap()
}

fn assert_kata_here() {
    let capabilities = kata_harness::scenario::Capabilities::probe_local();
    assert!(
        capabilities.kata_absent.is_none(),
        "no Kata to test ({:?}): scripts/setup builds it",
        capabilities.kata_absent
    );
}

/// SIGKILL the run's containerd while the Kata row's QEMU runs.
#[test]
fn containerd_killed_mid_row_fails_that_row_and_the_rest_with_its_exit() {
    assert_kata_here();
    let (dir, run) = Run::local_with("cri.yaml", SUITE);
    let results = dir.path().join("results");
    let run_dir = run.run_dir.clone();
    let needle = run_dir.to_string_lossy().into_owned();
    let containerd = wait_blocking(
        "the Kata row's QEMU",
        Duration::from_secs(180),
        Duration::from_millis(50),
        || {
            let qemu = tagged_processes(&needle)
                .into_iter()
                .any(|(_, c)| c.contains("qemu-system"));
            let daemon = processes_matching(&needle)
                .into_iter()
                .find(|(_, c)| c.starts_with("containerd ") || c.contains("/containerd --config"));
            match (qemu, daemon) {
                (true, Some((pid, _))) => Attempt::Ready(pid),
                _ => Attempt::NotYet("no QEMU yet".into()),
            }
        },
    )
    .unwrap();
    kill(containerd, nix::sys::signal::Signal::SIGKILL);
    let (status, said) = run.end(Duration::from_secs(240));
    assert_eq!(status.code(), Some(1), "{said}");

    let json = results_json(&results);
    let rows = trials_where(&json, |t| t["suite"] == "cri");
    assert_eq!(rows.len(), 3, "{said}");
    for row in &rows {
        assert_eq!(row["verdict"], "failed", "{row}");
        let message = row["message"].as_str().unwrap();
        assert!(message.contains("containerd exited"), "{row}");
        assert!(
            message.contains("signal: 9") || message.contains("SIGKILL"),
            "{row}"
        );
    }
    // The true cause is in the broken row's bundle too.
    let bundle = results.join("bundles/cri__kata-handler__containerd-1.6/error.txt");
    let error = std::fs::read_to_string(&bundle).unwrap();
    assert!(error.contains("containerd exited"), "{error}");
    assert_nothing_left(&run_dir);
}

/// The run dir named in a command line (`/tmp/kata-harness-<id>`).
fn run_dir_in(command: &str) -> Option<PathBuf> {
    let at = command.find("/tmp/kata-harness-")?;
    let rest = &command[at..];
    let end = rest["/tmp/".len()..]
        .find(['/', ' ', ','])
        .map_or(rest.len(), |i| i + "/tmp/".len());
    Some(PathBuf::from(&rest[..end]))
}

/// SIGTERM while the VM is still booting (provisioning), then Ctrl-C again and again while
/// that cleanup runs: answered, not obeyed; exit 130, no QEMU, ssh, overlay or run dir left.
#[test]
fn sigterm_then_ctrl_c_during_a_vm_boot_leaves_nothing_behind() {
    let mut child = harness()
        .args([
            "run",
            "--target",
            "vm",
            "--image",
            "bookworm",
            "--filter",
            "cri::default-handler",
        ])
        .arg("--results")
        .arg(tempfile::tempdir().unwrap().path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let me = child.id() as i32;
    let run_dir = wait_blocking(
        "the run's QEMU to start",
        Duration::from_secs(600),
        Duration::from_millis(50),
        || {
            let qemu = processes_matching("/tmp/kata-harness-")
                .into_iter()
                .filter(|(pid, c)| c.contains("qemu-system") && descends_from(*pid, me))
                .find_map(|(_, c)| run_dir_in(&c));
            qemu.map_or_else(|| Attempt::NotYet("no QEMU yet".into()), Attempt::Ready)
        },
    )
    .unwrap();
    // Booting: the harness has not reached the guest's sshd yet.
    kill(me, nix::sys::signal::Signal::SIGTERM);
    keep_interrupting(&mut child);
    let status = wait_for_exit(&mut child, Duration::from_secs(120));
    let said = drain.join().unwrap().join("\n");
    // 130, not death by SIGINT: the later signals did not end the cleanup (it can be over
    // before one is answered, so "still cleaning up" is not required here).
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("terminated: cleaning up"), "{said}");
    assert!(
        !said.contains("ready: vm-bookworm"),
        "the VM was ready before the signal: {said}"
    );
    assert_nothing_left(&run_dir);
}

/// Whether `pid` is `ancestor` or one of its descendants.
fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut pid = pid;
    for _ in 0..32 {
        if pid == ancestor {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some(after) = stat.rsplit_once(") ").map(|(_, rest)| rest.to_owned()) else {
            return false;
        };
        match after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            Some(parent) if parent > 1 => pid = parent,
            _ => return false,
        }
    }
    false
}

/// A second Ctrl-C while the first one's cleanup runs: answered with what is being cleaned
/// up, and the cleanup still finishes (exit 130, nothing left).
#[test]
fn a_second_ctrl_c_during_cleanup_is_answered_and_the_cleanup_finishes() {
    let results = tempfile::tempdir().unwrap();
    let mut run = Run::start(
        &["--target", "local", "--containerd", "1.6", "--filter", "cri::"],
        results.path(),
    );
    let run_dir = run.run_dir.clone();
    let needle = run_dir.to_string_lossy().into_owned();
    wait_blocking(
        "a row's shim",
        Duration::from_secs(120),
        Duration::from_millis(20),
        || match tagged_processes(&needle)
            .iter()
            .any(|(_, c)| c.contains("containerd-shim"))
        {
            true => Attempt::Ready(()),
            false => Attempt::NotYet("no shim yet".into()),
        },
    )
    .unwrap();
    run.signal(nix::sys::signal::Signal::SIGINT);
    keep_interrupting(&mut run.child);
    let (status, said) = run.end(Duration::from_secs(120));
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("interrupted: cleaning up"), "{said}");
    assert!(said.contains("still cleaning up ("), "{said}");
    assert_nothing_left(&run_dir);
}

/// Ctrl-C every 5 ms until `child` exits (at most a minute).
fn keep_interrupting(child: &mut std::process::Child) {
    for _ in 0..12_000 {
        std::thread::sleep(Duration::from_millis(5));
        if child.try_wait().unwrap().is_some() {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
    }
}

/// SIGTERM once the rows are done, while the testbed is torn down: the cleanup under way
/// (the owner's, or the handler's if it had not begun) finishes before the exit (130), and
/// nothing is left.
#[test]
fn sigterm_during_teardown_lets_the_cleanup_finish() {
    let results = tempfile::tempdir().unwrap();
    let run = Run::start(
        &[
            "--target",
            "local",
            "--containerd",
            "1.6",
            "--filter",
            "cri::crun-handler",
        ],
        results.path(),
    );
    run.wait_for_line("PASS cri::crun-handler", Duration::from_secs(240));
    run.signal(nix::sys::signal::Signal::SIGTERM);
    let run_dir = run.run_dir.clone();
    let (status, said) = run.end(Duration::from_secs(120));
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("terminated: cleaning up"), "{said}");
    assert_nothing_left(&run_dir);
}

/// kubelet SIGKILLed after the first cluster row: every later row fails fast with "kubelet
/// exited" and its log's tail, the run exits 1, and the cluster's teardown leaves nothing.
#[test]
fn kubelet_killed_mid_suite_fails_the_later_rows_with_its_exit() {
    let results = tempfile::tempdir().unwrap();
    let run = Run::start(
        &["--target", "local", "--k8s", "--filter", "kubernetes::"],
        results.path(),
    );
    // The first row's verdict (a cold bundle build can come first).
    run.wait_for_line("PASS kubernetes::system-pods-on-runc", Duration::from_secs(900));
    let run_dir = run.run_dir.clone();
    let needle = run_dir.to_string_lossy().into_owned();
    let kubelet = tagged_processes(&needle)
        .into_iter()
        .chain(processes_matching(&needle))
        .find(|(_, c)| {
            c.split_whitespace()
                .next()
                .is_some_and(|p| p.ends_with("kubelet"))
        })
        .map(|(pid, _)| pid)
        .expect("the cluster's kubelet");
    kill(kubelet, nix::sys::signal::Signal::SIGKILL);
    let (status, said) = run.end(Duration::from_secs(600));
    assert_eq!(status.code(), Some(1), "{said}");
    let json = results_json(results.path());
    let rows = trials_where(&json, |t| t["suite"] == "kubernetes");
    assert!(rows.len() >= 5, "{said}");
    for row in &rows {
        if row["scenario"] == "system-pods-on-runc" {
            assert_eq!(row["verdict"], "passed", "{row}");
            continue;
        }
        assert_eq!(row["verdict"], "failed", "{row}");
        assert!(
            row["message"].as_str().unwrap().contains("kubelet exited"),
            "{row}"
        );
    }
    assert_nothing_left(&run_dir);
}

/// An OOM kill in the VM while its rows run (a memory hog in a 16 MiB cgroup of the guest,
/// started over the VM's own SSH forward again and again): the row during which the guest's
/// kernel reports it fails, quoting the console's line, and the run exits 1 with nothing left.
#[test]
fn an_oom_kill_in_the_vm_fails_the_row_it_happened_in() {
    // runc and crun rows only: the bookworm guest also runs two Kata rows, minutes each under
    // TCG inside TCG, which this fault does not need.
    let results = tempfile::tempdir().unwrap();
    let suite = results.path().join("oom.yaml");
    let rows: String = ["runc-1", "crun-1", "runc-2", "crun-2", "runc-3", "crun-3"]
        .iter()
        .map(|name| {
            let handler = if name.starts_with("crun") { "crun" } else { "runc" };
            format!(
                "  - scenario: {name}\n    sandbox: {{ handler: {handler}, container: true }}\n    expect: {{ runtime_type: io.containerd.runc.v2, oci_runtime: {handler} }}\n"
            )
        })
        .collect();
    std::fs::write(&suite, format!("suite: cri\nrows:\n{rows}")).unwrap();
    let mut run = Run::start(
        &[
            "--target",
            "vm",
            "--image",
            "bookworm",
            "--suites",
            suite.to_str().unwrap(),
        ],
        &results.path().join("results"),
    );
    let run_dir = run.run_dir.clone();
    let guest = Guest::of(&run_dir);
    let hog = "d=/sys/fs/cgroup/kh-oom; mkdir -p $d && echo 16M > $d/memory.max && \
               sh -c 'echo $$ > /sys/fs/cgroup/kh-oom/cgroup.procs; exec tail /dev/zero'; rmdir $d";
    while run.child.try_wait().unwrap().is_none() {
        let _ = guest.run(hog);
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, said) = run.end(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{said}");
    let json = results_json(&results.path().join("results"));
    let oomed = trials_where(&json, |t| {
        let message = t["message"].as_str().unwrap_or_default();
        t["verdict"] == "failed"
            && message.contains("the VM's serial console")
            && message.contains("[OOM kill]")
            && message.contains("(tail)")
    });
    assert!(
        !oomed.is_empty(),
        "no row failed with the OOM kill quoted:\n{said}"
    );
    assert_nothing_left(&run_dir);
}

/// A sandbox row, then one that comes after the break and must still pass (also the runc
/// control row a suite with Kata rows needs).
fn two_rows(handler: &str, runtime_type: &str) -> String {
    format!(
        r#"suite: cri
rows:
  - scenario: broken-row
    requires: [{requires}]
    sandbox: {{ handler: {handler}, container: true }}
    expect: {{ runtime_type: {runtime_type} }}
  - scenario: default-handler
    sandbox: {{ container: true }}
    expect: {{ runtime_type: io.containerd.runc.v2, oci_runtime: runc }}
"#,
        requires = if handler == "kata" { "kata" } else { "" },
    )
}

/// Runs `suite` on a local containerd 1.6 and, once the first row asks for its container
/// (containerd logs "CreateContainer within sandbox": the row holds its sandbox by then),
/// SIGKILLs the sandbox's process whose command line `victim` picks. The harness is frozen
/// (SIGSTOP) around the kill so the row cannot finish in between: the fault lands mid-row
/// every time, not just when the race is won. Returns the exit status, what it said, the
/// results dir and what was killed.
fn kill_mid_row(
    suite: &str,
    victim: fn(&str) -> bool,
) -> (std::process::ExitStatus, String, tempfile::TempDir, String) {
    let (dir, run) = Run::local_with("cri.yaml", suite);
    let run_dir = run.run_dir.clone();
    let needle = run_dir.to_string_lossy().into_owned();
    let log = run_dir.join("containerd.log");
    let (pid, command) = wait_blocking(
        "the first row's CreateContainer",
        Duration::from_secs(240),
        Duration::from_millis(5),
        || {
            let asked = std::fs::read_to_string(&log)
                .is_ok_and(|text| text.contains("CreateContainer within sandbox"));
            let target = tagged_processes(&needle)
                .into_iter()
                .chain(processes_matching(&needle))
                .find(|(_, c)| victim(c));
            match (asked, target) {
                (true, Some(found)) => Attempt::Ready(found),
                _ => Attempt::NotYet("not yet".into()),
            }
        },
    )
    .unwrap();
    run.signal(nix::sys::signal::Signal::SIGSTOP);
    kill(pid, nix::sys::signal::Signal::SIGKILL);
    run.signal(nix::sys::signal::Signal::SIGCONT);
    let (status, said) = run.end(Duration::from_secs(300));
    assert_nothing_left(&run_dir);
    (status, said, dir, format!("{pid}: {command}"))
}

/// The broken row failed with the killed process named as its cause (in the results and
/// its bundle), and the row after it passed.
fn assert_row_failed_for(results: &Path, killed: &str, said: &str) {
    let json = results_json(results);
    let rows = trials_where(&json, |t| t["suite"] == "cri");
    assert_eq!(rows.len(), 2, "{said}");
    let pid = killed.split(':').next().unwrap();
    let broken = rows.iter().find(|r| r["scenario"] == "broken-row").unwrap();
    assert_eq!(broken["verdict"], "failed", "{broken}");
    let message = broken["message"].as_str().unwrap();
    eprintln!("killed {killed}; the row ({} s): {message}", broken["seconds"]);
    assert!(message.contains("exited mid-row"), "{broken}");
    assert!(
        message.contains(&format!("pid {pid} (")),
        "killed {killed}: {broken}"
    );
    let error =
        std::fs::read_to_string(results.join("bundles/cri__broken-row__containerd-1.6/error.txt")).unwrap();
    assert!(error.contains(&format!("pid {pid} (")), "{error}");
    let after = rows.iter().find(|r| r["scenario"] == "default-handler").unwrap();
    assert_eq!(after["verdict"], "passed", "{after}");
}

/// Whether a command line runs `program` (a path ending in it).
fn runs(command: &str, program: &str) -> bool {
    command
        .split_whitespace()
        .next()
        .is_some_and(|p| p.ends_with(program))
}

/// The process `victim` picks, SIGKILLed mid-row in a sandbox of `handler`: that row fails
/// naming it, the next passes, exit 1.
fn killed_mid_row_fails_that_row(handler: &str, runtime_type: &str, victim: fn(&str) -> bool) {
    let (status, said, dir, killed) = kill_mid_row(&two_rows(handler, runtime_type), victim);
    assert_eq!(status.code(), Some(1), "{said}");
    assert_row_failed_for(&dir.path().join("results"), &killed, &said);
}

#[test]
fn runc_shim_killed_mid_row_fails_that_row_and_the_next_runs() {
    killed_mid_row_fails_that_row("runc", "io.containerd.runc.v2", |c| {
        runs(c, "containerd-shim-runc-v2")
    });
}

#[test]
fn kata_shim_killed_mid_row_fails_that_row_and_the_next_runs() {
    assert_kata_here();
    killed_mid_row_fails_that_row("kata", "io.containerd.kata.v2", |c| {
        runs(c, "containerd-shim-kata-v2")
    });
}

#[test]
fn kata_qemu_killed_mid_row_fails_that_row_and_the_next_runs() {
    assert_kata_here();
    killed_mid_row_fails_that_row("kata", "io.containerd.kata.v2", |c| c.contains("qemu-system"));
}

/// Two pull rows, each with a registry of its own: the first loses its registry mid-pull.
const PULLS: &str = r#"suite: images
rows:
  - scenario: pull-broken
    pull: { registry: tls, ca: right, handler: runc }
    expect: { pulled: true, runtime_type: io.containerd.runc.v2 }
  - scenario: pull-plain-http
    pull: { registry: plain, handler: runc }
    expect: { pulled: true, runtime_type: io.containerd.runc.v2 }
"#;

/// The registry SIGKILLed while containerd pulls from it. To land mid-pull every time, the
/// registry is frozen (SIGSTOP) once the row's push is done (its manifest PUT is logged and
/// skopeo has exited), so the pull that follows hangs on it; it is killed once containerd logs
/// the PullImage.
#[test]
fn registry_killed_mid_pull_fails_that_row_and_the_next_runs() {
    let (dir, run) = Run::local_with("images.yaml", PULLS);
    let results = dir.path().join("results");
    let run_dir = run.run_dir.clone();
    let needle = run_dir.to_string_lossy().into_owned();
    let registry_log = || -> Option<String> {
        let entry = std::fs::read_dir(&run_dir).ok()?.flatten().find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("registry-pull-broken")
        })?;
        std::fs::read_to_string(entry.path().join("registry.log")).ok()
    };
    let registry = wait_blocking(
        "the row's push to its registry",
        Duration::from_secs(240),
        Duration::from_millis(2),
        || {
            let row = processes_matching(&needle)
                .into_iter()
                .filter(|(_, c)| c.contains("registry-pull-broken"))
                .collect::<Vec<_>>();
            // Logged before the response leaves: skopeo must also be gone, or it would hang.
            let pushed = registry_log().is_some_and(|log| {
                log.lines()
                    .any(|l| l.contains("\"PUT /v2/") && l.contains("/manifests/"))
            }) && !row.iter().any(|(_, c)| c.contains("skopeo"));
            let registry = row
                .into_iter()
                .find(|(_, c)| c.starts_with("docker-registry serve"));
            match (pushed, registry) {
                (true, Some((pid, _))) => Attempt::Ready(pid),
                _ => Attempt::NotYet("not pushed yet".into()),
            }
        },
    )
    .unwrap();
    kill(registry, nix::sys::signal::Signal::SIGSTOP);
    let log = run_dir.join("containerd.log");
    let pulling = wait_blocking(
        "containerd's PullImage",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || match std::fs::read_to_string(&log).is_ok_and(|t| t.contains("msg=\"PullImage ")) {
            true => Attempt::Ready(()),
            false => Attempt::NotYet("no pull yet".into()),
        },
    );
    if let Err(e) = pulling {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(registry),
            nix::sys::signal::Signal::SIGCONT,
        );
        let (_, said) = run.end(Duration::from_secs(300));
        panic!("{e}:\n{said}");
    }
    kill(registry, nix::sys::signal::Signal::SIGKILL);
    let (status, said) = run.end(Duration::from_secs(300));
    assert_eq!(status.code(), Some(1), "{said}");

    let json = results_json(&results);
    let rows = trials_where(&json, |t| t["suite"] == "images");
    assert_eq!(rows.len(), 2, "{said}");
    let broken = rows.iter().find(|r| r["scenario"] == "pull-broken").unwrap();
    eprintln!("the row ({} s): {}", broken["seconds"], broken["message"]);
    assert_eq!(broken["verdict"], "failed", "{broken}");
    let message = broken["message"].as_str().unwrap();
    assert!(message.contains("docker-registry exited"), "{broken}");
    assert!(
        message.contains("signal: 9") || message.contains("SIGKILL"),
        "{broken}"
    );
    let bundle = results.join("bundles/images__pull-broken__containerd-1.6");
    let error = std::fs::read_to_string(bundle.join("error.txt")).unwrap();
    assert!(error.contains("docker-registry exited"), "{error}");
    assert!(bundle.join("registry.log").is_file());
    let after = rows.iter().find(|r| r["scenario"] == "pull-plain-http").unwrap();
    assert_eq!(after["verdict"], "passed", "{after}");
    assert_nothing_left(&run_dir);
}

/// The run's VM over its own SSH forward (port, key and known_hosts from its QEMU's command
/// line and image dir), as the harness reaches it.
struct Guest {
    port: String,
    image: PathBuf,
}

impl Guest {
    fn of(run_dir: &Path) -> Guest {
        let qemu = processes_matching(&run_dir.to_string_lossy())
            .into_iter()
            .find(|(_, c)| c.contains("qemu-system"))
            .map(|(_, c)| c)
            .expect("the run's QEMU");
        let port = qemu
            .split("hostfwd=tcp:127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('-').next())
            .expect("the SSH forward")
            .to_owned();
        let image = qemu
            .split_whitespace()
            .find(|w| w.ends_with("/vmlinux"))
            .and_then(|k| Path::new(k).parent())
            .expect("the image dir")
            .to_owned();
        Guest { port, image }
    }

    /// Runs `script` as root in the guest; its output whatever the status.
    fn run(&self, script: &str) -> std::process::Output {
        std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(self.image.join("id_ed25519"))
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.image.join("known_hosts").display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "ConnectTimeout=3",
                "-p",
                &self.port,
                "root@127.0.0.1",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// The VM's disk filled once it is ready (fallocate of every free block, root's reserve
/// too): the pull rows, which push to a registry in the guest and unpack there, fail with
/// "the node's disk is full" as their cause, and nothing is left on this host.
#[test]
fn a_full_vm_disk_fails_the_rows_that_write_with_that_cause() {
    let results = tempfile::tempdir().unwrap();
    let run = Run::start(
        &[
            "--target",
            "vm",
            "--image",
            "bookworm",
            "--filter",
            "images::pull-",
        ],
        results.path(),
    );
    // The line that names the run dir is the VM's "ready:" line.
    let run_dir = run.run_dir.clone();
    // One big file short of the free blocks (its extents need some), then small ones.
    let fill = "f=$(stat -f -c %f /); s=$(stat -f -c %S /); \
                fallocate -l $(( (f - 4096) * s )) /var/kh-fill; \
                i=0; while fallocate -l $((16 * s)) /var/kh-fill-$i 2>/dev/null; do i=$((i+1)); done; \
                while fallocate -l $s /var/kh-fill-$i 2>/dev/null; do i=$((i+1)); done; df -Pk /";
    let filled = Guest::of(&run_dir).run(fill);
    let df = String::from_utf8_lossy(&filled.stdout).into_owned();
    eprintln!("filled: {df}{}", String::from_utf8_lossy(&filled.stderr));
    let (status, said) = run.end(Duration::from_secs(900));
    assert_eq!(status.code(), Some(1), "{said}");
    let json = results_json(results.path());
    let failed = trials_where(&json, |t| t["verdict"] == "failed");
    assert!(!failed.is_empty(), "no row failed on the full disk:\n{said}");
    for row in &failed {
        let message = row["message"].as_str().unwrap_or_default();
        eprintln!("{}: {message}", row["name"]);
        assert!(message.contains("the node's disk is full: / ("), "{row}");
    }
    assert_nothing_left(&run_dir);
}

/// The SSH forward of the VM's CRI socket SIGKILLed once the VM is ready: the rows from then
/// on fail at once naming the forward's exit (not containerd's), and the VM is torn down.
#[test]
fn a_dropped_ssh_forward_to_the_vm_fails_the_rows_with_its_exit() {
    let results = tempfile::tempdir().unwrap();
    let run = Run::start(
        &["--target", "vm", "--image", "bookworm", "--filter", "cri::"],
        results.path(),
    );
    // The line that names the run dir is the VM's "ready:" line.
    let run_dir = run.run_dir.clone();
    let forward = processes_matching(&run_dir.to_string_lossy())
        .into_iter()
        .find(|(_, c)| c.starts_with("ssh ") && c.contains(" -N ") && c.contains(" -L "))
        .map(|(pid, _)| pid)
        .expect("the CRI socket's SSH forward");
    kill(forward, nix::sys::signal::Signal::SIGKILL);
    let (status, said) = run.end(Duration::from_secs(600));
    assert_eq!(status.code(), Some(1), "{said}");
    let json = results_json(results.path());
    let ran = trials_where(&json, |t| t["suite"] == "cri" && t["verdict"] != "skipped");
    let first_failed = ran
        .iter()
        .position(|t| t["verdict"] == "failed")
        .unwrap_or_else(|| panic!("no row failed:\n{said}"));
    for row in &ran[first_failed..] {
        assert_eq!(row["verdict"], "failed", "{row}");
        let message = row["message"].as_str().unwrap();
        assert!(
            message.contains("the SSH forward of the CRI socket exited"),
            "{row}"
        );
        assert!(message.contains("signal: 9"), "{row}");
    }
    assert_nothing_left(&run_dir);
}
