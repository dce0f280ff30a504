//! Trials for the test binaries whose tests need something this host may lack (Kata, a
//! user-space vsock backend), as libtest-mimic runs them (`harness = false`; include with
//! `#[path = "common/trials.rs"] mod trials;`).
//!
//! Why not plain `#[test]`s: those can only pass, fail or panic, and a test that returns early
//! when Kata is absent would be a pass in disguise. Here the precondition is decided before
//! anything runs: a trial whose precondition is absent is marked ignored, so `cargo test` and
//! `cargo nextest` report it skipped (nextest lists it among the ignored tests and counts it
//! skipped), and its reason is printed on stderr by every run of the binary that selects it.
//! Run anyway (`--include-ignored`, nextest's `--run-ignored all`) it fails with that reason:
//! nextest counts a libtest "ignored" answer at run time as a pass.
#![allow(dead_code)] // not every binary that includes this module uses all of it

use std::process::ExitCode;

use kata_harness::provision::kata::KataPlan;
use kata_harness::scenario::Capabilities;
use libtest_mimic::{Arguments, Failed, Trial};

/// One trial: its name, and either why it is skipped here or what it runs.
pub struct Planned {
    pub name: String,
    pub run: Result<Box<dyn FnOnce() -> Result<(), Failed> + Send>, String>,
}

impl Planned {
    /// A trial that runs `body` with what `precondition` found, or is skipped with the reason
    /// the precondition gives.
    pub fn needing<T: Send + 'static>(
        name: &str,
        precondition: Result<T, String>,
        body: impl FnOnce(T) -> Result<(), Failed> + Send + 'static,
    ) -> Planned {
        Planned {
            name: name.to_owned(),
            run: precondition.map(|found| -> Box<dyn FnOnce() -> Result<(), Failed> + Send> {
                Box::new(move || body(found))
            }),
        }
    }

    /// Why it is skipped here, if it is.
    pub fn skip(&self) -> Option<&str> {
        self.run.as_ref().err().map(String::as_str)
    }

    fn into_trial(self) -> Trial {
        let ignored = self.run.is_err();
        Trial::test(self.name, move || match self.run {
            Ok(run) => run(),
            Err(reason) => Err(format!("cannot run here (it is skipped): {reason}").into()),
        })
        .with_ignored_flag(ignored)
    }
}

/// Whether a run with `args` selects the trial `name` (its filter and `--skip`s).
fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| {
        if args.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

/// Runs `trials` under libtest-mimic's arguments, one at a time unless `--test-threads` says
/// otherwise (these trials boot guests or start daemons: they must not compete for the cores).
/// The skipped ones' reasons go to stderr first; zero trials is an error.
pub fn run(trials: Vec<Planned>) -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads.get_or_insert(1);
    if trials.is_empty() {
        eprintln!("error: zero trials");
        return ExitCode::from(2);
    }
    if !args.list {
        for trial in trials.iter().filter(|t| selected(&args, &t.name)) {
            if let Some(reason) = trial.skip() {
                eprintln!("skip {}: {reason}", trial.name);
            }
        }
    }
    let trials = trials.into_iter().map(Planned::into_trial).collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// The Kata this host runs, or why it cannot: a trial needing Kata is skipped with that reason.
pub fn kata_plan(capabilities: &Capabilities) -> Result<KataPlan, String> {
    capabilities.kata.clone().ok_or_else(|| {
        format!(
            "no Kata to test: {}",
            capabilities.kata_absent.as_deref().unwrap_or("no reason given")
        )
    })
}

/// A trial's body, panics included, as a trial outcome: the assertions of these tests panic,
/// which libtest-mimic already reports as a failure; this runs an async body on its own
/// runtime (one per trial, as `#[tokio::test]` had).
pub fn block_on<F: std::future::Future<Output = ()>>(body: F) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("failed to start the async runtime: {e}")))?;
    runtime.block_on(body);
    Ok(())
}
