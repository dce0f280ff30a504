//! Every scenario row as a libtest-mimic trial named `suite::scenario::variant`, so
//! `cargo test` and `cargo nextest run` list, filter (`--exact`) and report each row.
//!
//! Trials of one variant share one testbed (a private containerd), started on first use and
//! stopped after the last trial; under nextest (a process per trial) each trial gets its own.
//! Variants: `KATA_HARNESS_CONTAINERD=1.6,1.7,2.1` (the default). Skips are decided before a
//! trial runs: such trials are marked ignored, and their reasons printed.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, LazyLock, Mutex};

use kata_harness::profile::{ContainerdChoice, DEFAULT_CONTAINERD_LINES};
use kata_harness::provision::{Settings, Testbed};
use kata_harness::report::Verdict;
use kata_harness::scenario::{
    plan, run::run_trial, session::attach_testbed_evidence, Capabilities, Suite, Variant,
};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// One runtime for the whole binary: testbeds' gRPC channels live on it across trials.
static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Runtime::new().expect("failed to start the async runtime"));

type Testbeds = Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Result<Testbed, String>>>>>;
static TESTBEDS: LazyLock<Testbeds> = LazyLock::new(Default::default);

fn variants() -> Result<Vec<Variant>, String> {
    let lines =
        std::env::var("KATA_HARNESS_CONTAINERD").unwrap_or_else(|_| DEFAULT_CONTAINERD_LINES.join(","));
    lines
        .split(',')
        .map(|text| {
            let choice: ContainerdChoice = text
                .trim()
                .parse()
                .map_err(|e| format!("KATA_HARNESS_CONTAINERD={text}: {e}"))?;
            choice
                .resolve()
                .map_err(|e| format!("KATA_HARNESS_CONTAINERD={text}: {e}"))?;
            Ok(Variant::containerd(choice))
        })
        .collect()
}

/// The shared testbed of a variant, started once (concurrent trials wait for the same start).
async fn testbed(variant: &Variant) -> Arc<tokio::sync::OnceCell<Result<Testbed, String>>> {
    let cell = TESTBEDS
        .lock()
        .unwrap()
        .entry(variant.label.clone())
        .or_default()
        .clone();
    let settings = Settings {
        containerd: variant.containerd.clone(),
        keep: false,
        pause_binary: None,
    };
    cell.get_or_init(|| async move {
        Testbed::start_local(&settings)
            .await
            .map_err(|e| kata_harness::report::chain(&e))
    })
    .await;
    cell
}

fn run_one(trial: &plan::Trial) -> Result<Completion, Failed> {
    if let Some(reason) = &trial.skip {
        return Ok(Completion::ignored_with(reason));
    }
    RUNTIME.block_on(async {
        let cell = testbed(&trial.variant).await;
        let testbed = match cell.get().expect("initialised") {
            Ok(testbed) => testbed,
            Err(e) => return Err(Failed::from(format!("testbed did not start: {e}"))),
        };
        let mut result = run_trial(testbed, trial).await;
        match result.verdict {
            Verdict::Passed => Ok(Completion::Completed),
            Verdict::Skipped => Ok(Completion::ignored_with(result.message)),
            Verdict::Failed => {
                attach_testbed_evidence(testbed, &mut result.evidence);
                let log = result
                    .evidence
                    .files
                    .iter()
                    .find(|(n, _)| n == "containerd.log.tail")
                    .map(|(_, t)| t.as_str())
                    .unwrap_or("");
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Err(Failed::from(format!(
                    "expected: {}\nobserved: {}\n{}\nreproduce:\n  {}\n----- containerd log (tail) -----\n{}",
                    result.expected,
                    result.observed,
                    result.message,
                    result.evidence.reproduce.join("\n  "),
                    tail.join("\n")
                )))
            }
        }
    })
}

fn main() -> ExitCode {
    kata_harness::teardown::install_interrupt_handler();
    let args = Arguments::from_args();
    let suites_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suites = match Suite::load_dir(suites_dir) {
        Ok(suites) => suites,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let variants = match variants() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let trials = plan::plan(&suites, &variants, &Capabilities::probe_local());
    if trials.is_empty() {
        eprintln!("error: the suites expand to zero trials");
        return ExitCode::from(2);
    }
    // Skipped trials are marked ignored up front, so every runner (cargo test, nextest) shows
    // them as skipped, never as passed; their reasons go to stderr here, and a trial run with
    // --include-ignored still answers "ignored" with its reason instead of running.
    if !args.list {
        for trial in trials.iter().filter(|t| t.skip.is_some()) {
            eprintln!(
                "skip {}: {}",
                trial.name,
                trial.skip.as_deref().unwrap_or_default()
            );
        }
    }
    let trials: Vec<Trial> = trials
        .into_iter()
        .map(|trial| {
            let name = trial.name.clone();
            let ignored = trial.skip.is_some();
            Trial::ignorable_test(name, move || run_one(&trial))
                .with_kind("scenario")
                .with_ignored_flag(ignored)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);

    // Stop every testbed; anything left behind fails the run.
    let mut leftovers = Vec::new();
    let cells: Vec<_> = TESTBEDS.lock().unwrap().drain().collect();
    for (label, cell) in cells {
        if let Some(Ok(testbed)) = Arc::try_unwrap(cell).ok().and_then(|c| c.into_inner()) {
            let left = RUNTIME.block_on(testbed.shutdown());
            leftovers.extend(left.0.into_iter().map(|l| format!("{label}: {l}")));
        }
    }
    if !leftovers.is_empty() {
        eprintln!(
            "error: testbeds left things behind:\n  {}",
            leftovers.join("\n  ")
        );
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}
