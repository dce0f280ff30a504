//! critest for real against one local containerd, with handler runc, as one libtest-mimic
//! trial: `critest::runc::containerd-2.1` (`KATA_HARNESS_CRITEST_CONTAINERD` picks another
//! line or a binary directory).
//!
//! Why one trial with a focused subset: a critest run yields a row per spec, and the full
//! suite takes minutes per containerd (README has the figures of full runs, which
//! `kata-harness run --filter critest::` makes). The subset keeps the specs that prove the
//! offline set-up works: pod and container basics, and the image specs, which pull every
//! kind of reference through the mirror registry; the spec whose upstream digest cannot be
//! rebuilt must be skipped with its reason, never passed. The rows go through the same
//! session code as `kata-harness run` and are written as JUnit and JSON to
//! `target/kata-harness-results/critest/`.
//!
//! Where the row cannot run (no critest binary: scripts/build-cri-tools), the trial is skipped
//! with the reason, decided before it runs; a suite or containerd that cannot be had fails it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::Settings;
use kata_harness::report::quarantine::{self, Quarantine};
use kata_harness::report::{self, Recorder, RunInfo, TrialResult, Verdict};
use kata_harness::scenario::model::Action;
use kata_harness::scenario::{plan, session, Capabilities, Suite, Variant};
use libtest_mimic::{Arguments, Failed, Trial};

/// critest's pod and container basics, and every Image Manager spec.
const FOCUS: &str = r"PodSandbox runtime should support basic operations|Container runtime should support basic operations on container runtime should support (creating|starting|removing running) container|\[k8s\.io\] Image Manager";
/// Specs in [`FOCUS`] that must pass offline (the pulls go through the mirror).
const MUST_PASS: [&str; 3] = [
    "[k8s.io] Image Manager public image with tag should be pulled and removed [Conformance]",
    "[k8s.io] Image Manager public image without tag should be pulled and removed [Conformance]",
    "[k8s.io] PodSandbox runtime should support basic operations on PodSandbox runtime should support running PodSandbox [Conformance]",
];
const DIGEST_SPEC: &str =
    "[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]";
/// Of the 17 specs in [`FOCUS`], the digest spec is skipped; every other one must pass.
const MIN_PASSED: usize = 16;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn line() -> String {
    std::env::var("KATA_HARNESS_CRITEST_CONTAINERD").unwrap_or_else(|_| "2.1".into())
}

fn spec<'a>(results: &'a [TrialResult], text: &str) -> Option<&'a TrialResult> {
    results.iter().find(|r| r.name.ends_with(&format!("::{text}")))
}

/// The critest trial, ready to run: its row (focused on [`FOCUS`]) and containerd.
struct Ready {
    trials: Vec<plan::Trial>,
    choice: ContainerdChoice,
    variant: Variant,
}

/// Plans the trial before anything runs: `Ok(Ok(..))` to run, `Ok(Err(reason))` when a
/// precondition is absent (no critest binary: skipped with the reason), `Err(..)` when the
/// suite or the containerd cannot be had (a failure of the trial, never a skip).
fn prepare(line: &str) -> Result<Result<Ready, String>, String> {
    let suite = Suite::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("critest.yaml"))
        .map_err(|e| e.to_string())?;
    let choice: ContainerdChoice = line.parse().map_err(|e| format!("{e}"))?;
    choice.resolve().map_err(|e| format!("{e}"))?;
    let variant = Variant::containerd(choice.clone());
    let capabilities = Capabilities::probe_local();
    let name = format!("critest::runc::{}", variant.label);
    let mut trials = plan::filter(
        plan::plan(&[suite], &[(variant.clone(), capabilities.clone())]),
        Some(&name),
        true,
    );
    let [trial] = trials.as_mut_slice() else {
        return Err(format!("the critest suite has no trial {name}"));
    };
    if let Some(reason) = &trial.skip {
        return Ok(Err(reason.clone()));
    }
    let Action::Critest(action) = &mut trial.row.action else {
        return Err(format!("{name} is not a critest row"));
    };
    action.focus = Some(FOCUS.into());
    Ok(Ok(Ready {
        trials,
        choice,
        variant,
    }))
}

fn run_critest(ready: Ready) -> Result<(), Failed> {
    let Ready {
        trials,
        choice,
        variant,
    } = ready;
    let settings = Settings {
        containerd: choice,
        keep: false,
        pause_binary: None,
        repo: repo(),
        kata: None,
        kata_rs: None,
        kata_runtime_class: "kata".into(),
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failed::from(e.to_string()))?;
    let mut recorder = Recorder::default();
    let mut results = runtime.block_on(Box::pin(session::run(
        &trials,
        &[variant],
        &settings,
        &quarantine()?,
        0,
        &mut recorder,
    )));
    let mut info = RunInfo {
        command: "kata-harness run --target local --filter".into(),
        target: "local".into(),
        environment: vec![("target".into(), "local".into())],
        ..RunInfo::default()
    };
    info.environment
        .extend(kata_harness::profile::default_components(&repo()));
    info.environment.extend(recorder.testbed_facts());
    let out = repo().join("target/kata-harness-results/critest");
    report::write_results(&out, &info, &mut results).map_err(|e| Failed::from(e.to_string()))?;
    eprintln!("{}", report::terminal::table(&results));

    let mut problems = Vec::new();
    let passed = results.iter().filter(|r| r.verdict == Verdict::Passed).count();
    if passed < MIN_PASSED {
        problems.push(format!("{passed} specs passed, expected at least {MIN_PASSED}"));
    }
    for text in MUST_PASS {
        match spec(&results, text) {
            Some(r) if r.verdict == Verdict::Passed => {}
            Some(r) => problems.push(format!("{text}: {:?}: {} {}", r.verdict, r.observed, r.message)),
            None => problems.push(format!("{text}: no row")),
        }
    }
    match spec(&results, DIGEST_SPEC) {
        Some(r) if r.verdict == Verdict::Skipped && r.message.contains("digest") => {}
        Some(r) => problems.push(format!(
            "{DIGEST_SPEC}: expected skipped with its reason, got {:?}: {}",
            r.verdict, r.message
        )),
        None => problems.push(format!("{DIGEST_SPEC}: no row")),
    }
    for r in results.iter().filter(|r| r.verdict == Verdict::Failed) {
        problems.push(format!(
            "{}: {} ({})",
            r.name,
            r.observed,
            r.message.lines().next().unwrap_or("")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failed::from(format!(
            "bundles in {}:\n  {}",
            out.join("bundles").display(),
            problems.join("\n  ")
        )))
    }
}

fn main() -> ExitCode {
    kata_harness::teardown::install_interrupt_handler();
    let args = Arguments::from_args();
    let line = line();
    let label = Variant::containerd(line.parse().unwrap_or(ContainerdChoice::Line(line.clone()))).label;
    let name = format!("critest::runc::{label}");
    // Skipped is decided here, before the trial runs: marked ignored, so every runner reports
    // it skipped (never passed), with the reason on stderr; run anyway (--include-ignored,
    // nextest's --run-ignored), it fails with the reason, since nextest would count a libtest
    // "ignored" answer at run time as a pass.
    let trial = match prepare(&line) {
        Ok(Ok(ready)) => Trial::test(name, move || run_critest(ready)),
        Ok(Err(reason)) => {
            if !args.list {
                eprintln!("skip {name}: {reason}");
            }
            Trial::test(name, move || {
                Err(Failed::from(format!("cannot run here (it is skipped): {reason}")))
            })
            .with_ignored_flag(true)
        }
        Err(broken) => Trial::test(name, move || Err(Failed::from(broken))),
    };
    libtest_mimic::run(&args, vec![trial.with_kind("critest")]).exit_code()
}

/// The suites' quarantine list, as `kata-harness run` applies it.
fn quarantine() -> Result<Quarantine, Failed> {
    Quarantine::beside(Path::new(env!("CARGO_MANIFEST_DIR")), quarantine::today())
        .map_err(|e| Failed::from(e.to_string()))
}
