//! One critest trial against a ready testbed: the mirror, critest itself under a deadline in
//! the node's network and mount namespaces, and one report row per spec.
//!
//! Why the node's namespaces: critest checks port mappings and port-forwards on
//! `127.0.0.1:<port>` and propagates mounts it makes on the host into containers, so it must
//! see the network and the mounts containerd sees (on the local target, containerd's private
//! namespaces).
//!
//! Invariant: critest runs as a supervised [`Daemon`] (own process group, killed with its
//! children on the deadline, on drop and on Ctrl-C); the mirror is stopped and its hosts
//! files removed whatever happened; every spec critest selected yields exactly one row, and a
//! run that yields none is one failed row.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::ginkgo::{self, SpecOutcome, SpecState};
use super::images::{Mirror, OFFLINE_SKIPS};
use super::CritestAction;
use crate::process::{shell_line, Daemon};
use crate::provision::Testbed;
use crate::report::{Evidence, TrialResult, Verdict};
use crate::scenario::plan::{SpecFilter, Trial};
use crate::wait::{wait_for, Attempt, WaitError};

/// ginkgo's own suite timeout (`--ginkgo.timeout`): past it, ginkgo interrupts the running
/// spec and still writes its reports. Measured here for the full suite with runc: 4-9 min
/// (see README); Kata would need about ten times that.
pub const SUITE_TIMEOUT: Duration = Duration::from_secs(45 * 60);
/// How long past [`SUITE_TIMEOUT`] critest may take to write its reports before it and its
/// children are killed.
const REPORT_GRACE: Duration = Duration::from_secs(60);
/// How often the wait looks at critest, containerd and the registry.
const POLL: Duration = Duration::from_secs(1);
/// Failure output kept on a spec's row (the whole output goes into its bundle).
const MESSAGE_LINES: usize = 20;

/// critest's command line (also the reproduce line, wrapped for the node's namespaces).
pub fn argv(
    binary: &Path,
    testbed: &Testbed,
    action: &CritestAction,
    focus: Option<&str>,
    out: &Path,
) -> Vec<String> {
    let endpoint = format!("unix://{}", testbed.paths.node_socket.display());
    let skip: Vec<String> = OFFLINE_SKIPS
        .iter()
        .map(|(text, _)| ginkgo::escape(text))
        .collect();
    let mut argv = vec![
        binary.to_string_lossy().into_owned(),
        format!("--runtime-endpoint={endpoint}"),
        format!("--image-endpoint={endpoint}"),
        format!("--runtime-handler={}", action.handler),
        // critest 1.36 declares --report-dir but writes nothing there: ginkgo's own report
        // flags below write the JUnit and the JSON this module reads.
        format!("--report-dir={}", out.display()),
        format!("--ginkgo.junit-report={}", out.join("junit.xml").display()),
        format!("--ginkgo.json-report={}", out.join("report.json").display()),
        format!("--ginkgo.timeout={}s", SUITE_TIMEOUT.as_secs()),
        "--ginkgo.no-color".into(),
        format!("--ginkgo.skip={}", skip.join("|")),
    ];
    // One process, specs in series: --parallel needs the ginkgo CLI (not built by
    // scripts/build-cri-tools), and with 2 cores shared with containerd and the shims a
    // second process would mostly wait (image specs are Serial anyway).
    if let Some(focus) = focus {
        argv.push(format!("--ginkgo.focus={focus}"));
    }
    argv
}

/// The regex that selects the trial's specs: the `--filter` remainder if any (literal, or
/// anchored with `--exact`), else the row's focus.
fn focus_of(action: &CritestAction, filter: Option<&SpecFilter>) -> Option<String> {
    match filter {
        Some(f) if f.exact => Some(ginkgo::exactly(&f.text)),
        Some(f) => Some(ginkgo::escape(&f.text)),
        None => action.focus.clone(),
    }
}

/// Runs critest for `trial` and returns its rows (one per spec).
pub async fn run(testbed: &Testbed, trial: &Trial) -> Vec<TrialResult> {
    let action = trial
        .row
        .critest()
        .expect("critest::run is called for critest rows");
    let start = Instant::now();
    let fail = |observed: &str, message: String, evidence: Evidence| {
        vec![result_for(
            trial,
            &trial.name,
            Verdict::Failed,
            observed,
            &message,
            start.elapsed(),
            evidence,
        )]
    };
    let Some(binary) = crate::artifacts::cri_tools::critest() else {
        // The plan skips rows without critest; this is reached only if it vanished since.
        return fail("no critest", "no critest binary".into(), Evidence::default());
    };
    let out = testbed
        .paths
        .run_dir
        .join(format!("critest-{}", trial.row.scenario));
    if let Err(e) = std::fs::create_dir_all(&out) {
        return fail(
            "no run dir",
            format!("failed to create {}: {e}", out.display()),
            Evidence::default(),
        );
    }
    let mut mirror = match Mirror::start(testbed, &out.join("mirror")) {
        Ok(mirror) => mirror,
        Err(e) => {
            return fail(
                "mirror did not start",
                format!("setup: {}", crate::errors::chain(&e)),
                Evidence::default(),
            )
        }
    };
    let focus = focus_of(action, trial.spec_filter.as_ref());
    let argv = argv(&binary, testbed, action, focus.as_deref(), &out);
    let node_argv = testbed.node_argv(&argv);
    let reproduce = shell_line(&node_argv);
    let finished = supervise(testbed, &mut mirror, &node_argv, &out).await;
    let mut common = Evidence::default();
    common.reproduce(reproduce.clone());
    common.file("mirror-hosts.toml", &mirror.hosts_text);
    common.file("registry.log.tail", &mirror.log_tail(100));
    let log_tail = crate::process::tail_of_file(&out.join("critest.log"), 60);
    common.file("critest.log.tail", &log_tail);
    mirror.stop(testbed);

    let report = std::fs::read_to_string(out.join("report.json"));
    let specs = match report.as_deref().map(ginkgo::parse) {
        Ok(Ok(specs)) => specs,
        Ok(Err(e)) => {
            return fail(
                "no report",
                format!("{}; critest's log ends:\n{log_tail}", crate::errors::chain(&e)),
                common,
            )
        }
        Err(e) => {
            let why = match &finished {
                Err(reason) => reason.clone(),
                Ok(status) => format!("critest exited ({status})"),
            };
            return fail(
                "no report",
                format!(
                    "{why} and wrote no {}: {e}; its log ends:\n{log_tail}",
                    out.join("report.json").display()
                ),
                common,
            );
        }
    };
    let mut results = rows(trial, &specs, &node_argv, &common);
    if let Some(filter) = &trial.spec_filter {
        results.retain(|r| filter.matches(spec_of(trial, &r.name)));
    }
    // A run cut short (deadline, containerd gone) or a critest that failed without a failed
    // spec (e.g. a flag error) must not pass as its specs.
    let failed_spec = results.iter().any(|r| r.verdict == Verdict::Failed);
    match finished {
        Err(reason) => results.push(result_for(
            trial,
            &trial.name,
            Verdict::Failed,
            "cut short",
            &reason,
            start.elapsed(),
            common,
        )),
        Ok(status) if !status.success() && !failed_spec => results.push(result_for(
            trial,
            &trial.name,
            Verdict::Failed,
            &format!("critest exited ({status})"),
            &format!("critest failed without a failed spec; its log ends:\n{log_tail}"),
            start.elapsed(),
            common,
        )),
        Ok(_) if results.is_empty() => results.push(result_for(
            trial,
            &trial.name,
            Verdict::Failed,
            "no spec ran",
            &format!("critest selected no spec (focus {focus:?})"),
            start.elapsed(),
            common,
        )),
        Ok(_) => {}
    }
    results
}

/// Starts critest and waits for it under the deadline, watching containerd and the mirror.
/// `Err` says why it was cut short (critest and its children are killed by then).
async fn supervise(
    testbed: &Testbed,
    mirror: &mut Mirror,
    argv: &[String],
    out: &Path,
) -> Result<std::process::ExitStatus, String> {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(out);
    let mut daemon = match Daemon::spawn("critest", command, &out.join("critest.log")) {
        Ok(daemon) => daemon,
        Err(e) => return Err(format!("failed to start critest: {}", crate::errors::chain(&e))),
    };
    let waited = wait_for("critest to finish", SUITE_TIMEOUT + REPORT_GRACE, POLL, || {
        let attempt = if let Some(status) = daemon.exited() {
            Attempt::Ready(status)
        } else if let Some(gone) = testbed.daemon_exit() {
            Attempt::Fatal(format!("containerd is gone: {gone}"))
        } else if let Some(gone) = mirror.exited() {
            Attempt::Fatal(format!("the mirror registry exited ({gone})"))
        } else {
            Attempt::NotYet("still running".into())
        };
        std::future::ready(attempt)
    })
    .await;
    match waited {
        Ok(status) => Ok(status),
        Err(e) => {
            // SIGTERM first: ginkgo then interrupts the spec and writes its reports.
            daemon.stop(Duration::from_secs(30));
            Err(match e {
                WaitError::Timeout { waited, .. } => {
                    format!("critest did not finish within {waited:?}: killed")
                }
                other => format!("{other}: critest killed"),
            })
        }
    }
}

/// The spec part of a row name (`<trial>::<spec>`).
fn spec_of<'a>(trial: &Trial, name: &'a str) -> &'a str {
    name.strip_prefix(&trial.name)
        .and_then(|rest| rest.strip_prefix("::"))
        .unwrap_or(name)
}

/// One row per selected spec; offline-impossible specs skipped with their reason.
pub fn rows(trial: &Trial, specs: &[SpecOutcome], argv: &[String], common: &Evidence) -> Vec<TrialResult> {
    let mut results = Vec::new();
    for spec in specs {
        let name = format!("{}::{}", trial.name, spec.text);
        let took = Duration::from_secs_f64(spec.seconds);
        let offline = OFFLINE_SKIPS.iter().find(|(text, _)| *text == spec.text);
        let result = match (&spec.state, offline) {
            (SpecState::NotSelected, Some((_, why))) => result_for(
                trial,
                &name,
                Verdict::Skipped,
                "-",
                &format!("cannot run offline: {why}"),
                took,
                Evidence::default(),
            ),
            (SpecState::NotSelected, None) => continue,
            (SpecState::Passed, _) => result_for(
                trial,
                &name,
                Verdict::Passed,
                "passed",
                "",
                took,
                Evidence::default(),
            ),
            (SpecState::Skipped, _) => {
                let why = if spec.message.is_empty() {
                    "skipped by critest"
                } else {
                    spec.message.as_str()
                };
                result_for(
                    trial,
                    &name,
                    Verdict::Skipped,
                    "-",
                    &format!("critest: {why}"),
                    took,
                    Evidence::default(),
                )
            }
            (SpecState::Failed, _) => {
                let first = spec.message.lines().next().unwrap_or("failed");
                let observed = format!("{}: {first}", spec.state_word);
                let mut message = crate::process::tail_of_text(&spec.message, MESSAGE_LINES);
                if !spec.location.is_empty() {
                    message.push_str(&format!("\nat {}", spec.location));
                }
                let mut evidence = common.clone();
                evidence.reproduce = vec![focused(argv, &spec.text)];
                evidence.file(
                    "critest-spec.txt",
                    &format!(
                        "{}\nstate: {}\nat {}\n\n{}\n\n--- output\n{}",
                        spec.text, spec.state_word, spec.location, spec.message, spec.output
                    ),
                );
                result_for(trial, &name, Verdict::Failed, &observed, &message, took, evidence)
            }
        };
        results.push(result);
    }
    results
}

/// The reproduce line narrowed to one spec.
fn focused(argv: &[String], spec: &str) -> String {
    let mut argv: Vec<String> = argv
        .iter()
        .filter(|a| !a.starts_with("--ginkgo.focus="))
        .cloned()
        .collect();
    argv.push(format!("--ginkgo.focus=^{}$", ginkgo::escape(spec)));
    shell_line(&argv)
}

fn result_for(
    trial: &Trial,
    name: &str,
    verdict: Verdict,
    observed: &str,
    message: &str,
    took: Duration,
    evidence: Evidence,
) -> TrialResult {
    let mut result = trial.result(verdict, observed, message, took, evidence);
    result.name = name.to_owned();
    result
}
