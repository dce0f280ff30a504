//! The lifecycle of a testbed in a run, written once for every kind of testbed: a variant's
//! containerd (local, VM or existing node), a node started for one row alone, a kubeadm
//! cluster or an existing one. Start it, or fail all its trials with the start's reason and
//! logs; announce it ready; run its trials in order, retried and with the testbed's evidence
//! on a failure; keep it on failure where asked; shut it down; report what it left behind.
//!
//! Invariant: every trial given yields its results (one, or one per spec for a trial that
//! runs many, see [`Started::run_specs`]) through `finish`, in order, and the testbed is shut
//! down (or kept) before this returns. Leftovers of a shared testbed are one failed
//! `harness::cleanup::<label>` result; those of a row's own node fail that row itself.

use std::time::{Duration, Instant};

use super::plan::Trial;
use crate::provision::cleanup::Leftovers;
use crate::report::flaky::with_retries;
use crate::report::{Event, Evidence, Sink, TrialResult, Verdict};

/// Records one result: the run's quarantine list first, then the sinks.
pub type Finish<'a> = &'a mut dyn FnMut(&mut dyn Sink, TrialResult);

/// A testbed that started: what the lifecycle asks of each kind.
// `async fn` here is only ever used through the generic `run`, on the caller's task: no
// caller needs the futures to be `Send`, which is what the lint warns cannot be required.
#[allow(async_fn_in_trait)]
pub trait Started {
    /// One line for the ready event (and the reports' environment).
    fn describe(&self) -> String;
    /// Versions and conditions for the ready event, repeated in JUnit and JSON.
    fn facts(&self) -> Vec<(String, String)>;
    /// One attempt of `trial`.
    async fn run_trial(&self, trial: &Trial) -> TrialResult;
    /// The results of a trial that yields one per spec (critest), or `None` for a trial that
    /// yields one. Such a trial runs once: a retry would run every spec again.
    async fn run_specs(&self, _trial: &Trial) -> Option<Vec<TrialResult>> {
        None
    }
    /// What a failed trial's bundle carries from this testbed (logs, configs, versions).
    fn attach_evidence(&self, evidence: &mut Evidence);
    /// With `--keep` after a failure: leaves the testbed running and says how to reach it;
    /// `None` where it is not kept that way (it then shuts down as usual).
    fn keep(&self, _label: &str) -> Option<String> {
        None
    }
    /// Stops it; what it could not remove, or found still running, is returned.
    async fn shutdown(self) -> Leftovers;
}

/// Whose testbed it is: that decides retries, keeping and where leftovers go.
#[derive(Debug, Clone, Copy)]
pub enum Tenancy {
    /// A variant's testbed, shared by its rows in turn: each row is announced as it starts,
    /// a failed one runs again up to `retries` times, a failure keeps the testbed with
    /// `keep`, and leftovers are a failed `harness::cleanup::<label>` result.
    Shared { retries: u32, keep: bool },
    /// A node started for one row alone (`node:`), named after that row: its start already
    /// announced the row, a retry would need a fresh node (the row runs once), and anything
    /// the node leaves behind fails the row.
    OwnNode,
}

/// Why a testbed did not start, as each of its trials reports it.
#[derive(Debug, Clone)]
pub struct NotStarted {
    pub observed: String,
    pub message: String,
    /// Logs kept from the failed start (file name, text), for every trial's bundle.
    pub logs: Vec<(String, String)>,
}

impl NotStarted {
    /// A containerd testbed's failed start: the error chain is the reason.
    pub fn testbed(message: String) -> Self {
        NotStarted {
            observed: "testbed did not start".into(),
            message,
            logs: Vec::new(),
        }
    }

    fn result(&self, trial: &Trial, took: Duration) -> TrialResult {
        let mut evidence = Evidence::default();
        for (name, text) in &self.logs {
            evidence.file(name, text);
        }
        trial.result(Verdict::Failed, &self.observed, &self.message, took, evidence)
    }
}

/// Drives one testbed through its lifecycle for `trials` (all runnable, in order), named
/// `label` in the events and the cleanup result. `start` may tell the sinks what it does.
pub async fn run<T: Started>(
    label: &str,
    trials: &[&Trial],
    tenancy: Tenancy,
    start: impl AsyncFnOnce(&mut dyn Sink) -> Result<T, NotStarted>,
    sink: &mut dyn Sink,
    finish: Finish<'_>,
) {
    let began = Instant::now();
    sink.event(&Event::TestbedStarting {
        variant: label.to_owned(),
    });
    // Boxed, as the trials below: a row's future is large in a debug build, and a test
    // driver polls the run on a thread with a 2 MiB stack.
    let testbed = match Box::pin(start(sink)).await {
        Ok(testbed) => testbed,
        Err(why) => {
            // A shared testbed's trials never ran; a row's own node's start was the row's.
            let took = match tenancy {
                Tenancy::Shared { .. } => Duration::ZERO,
                Tenancy::OwnNode => began.elapsed(),
            };
            for trial in trials {
                finish(sink, why.result(trial, took));
            }
            return;
        }
    };
    sink.event(&Event::TestbedReady {
        variant: label.to_owned(),
        description: testbed.describe(),
        facts: testbed.facts(),
    });
    match tenancy {
        Tenancy::Shared { retries, keep } => {
            shared(testbed, label, trials, retries, keep, sink, finish).await
        }
        Tenancy::OwnNode => own_node(testbed, trials, sink, finish).await,
    }
}

/// A shared testbed's trials, each announced and retried, then keeping or shutting it down.
async fn shared<T: Started>(
    testbed: T,
    label: &str,
    trials: &[&Trial],
    retries: u32,
    keep: bool,
    sink: &mut dyn Sink,
    finish: Finish<'_>,
) {
    let mut failed = false;
    for trial in trials {
        sink.event(&Event::TrialStarted {
            name: trial.name.clone(),
        });
        for result in run_in_turn(&testbed, trial, retries).await {
            failed |= result.verdict == Verdict::Failed || !result.attempts.is_empty();
            finish(sink, result);
        }
    }
    if keep && failed {
        if let Some(how) = testbed.keep(label) {
            sink.event(&Event::Note(how));
        }
    }
    let leftovers = testbed.shutdown().await;
    if !leftovers.is_clean() {
        finish(sink, TrialResult::cleanup_failure(label, &leftovers.0));
    }
}

/// A row's own node: the row once, its result held back until the node is down, since the
/// node's leftovers are part of the row's verdict.
async fn own_node<T: Started>(testbed: T, trials: &[&Trial], sink: &mut dyn Sink, finish: Finish<'_>) {
    let mut results = Vec::new();
    for trial in trials {
        results.extend(run_in_turn(&testbed, trial, 0).await);
    }
    let leftovers = testbed.shutdown().await;
    for mut result in results {
        fail_for_leftovers(&mut result, &leftovers);
        finish(sink, result);
    }
}

/// One trial on a ready testbed: retried (unless it yields a result per spec), with the
/// testbed's evidence on every failed result.
async fn run_in_turn<T: Started>(testbed: &T, trial: &Trial, retries: u32) -> Vec<TrialResult> {
    if let Some(mut results) = Box::pin(testbed.run_specs(trial)).await {
        for result in &mut results {
            if result.verdict == Verdict::Failed {
                testbed.attach_evidence(&mut result.evidence);
            }
        }
        return results;
    }
    let result = with_retries(retries, || async {
        let mut result = Box::pin(testbed.run_trial(trial)).await;
        if result.verdict == Verdict::Failed {
            testbed.attach_evidence(&mut result.evidence);
        }
        result
    })
    .await;
    vec![result]
}

/// A row whose own node left anything behind failed, whatever the row saw.
fn fail_for_leftovers(result: &mut TrialResult, leftovers: &Leftovers) {
    if leftovers.is_clean() {
        return;
    }
    result.verdict = Verdict::Failed;
    result.message = format!("{}{}", result.message, left_behind(&leftovers.0))
        .trim_start()
        .to_owned();
}

/// The words for what a row's node left behind, after the row's own message.
pub fn left_behind(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        String::new()
    } else {
        format!("\nthe row's node left things behind:\n{}", leftovers.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;
    use crate::profile::ContainerdChoice;
    use crate::scenario::plan::{plan, Capabilities, Variant};
    use crate::scenario::Suite;

    const SUITE: &str = r#"
suite: t
rows:
  - scenario: passes
    sandbox: {}
    expect: { runtime_type: io.containerd.runc.v2 }
  - scenario: flaky
    sandbox: {}
    expect: { runtime_type: io.containerd.runc.v2 }
  - scenario: fails
    sandbox: {}
    expect: { runtime_type: io.containerd.runc.v2 }
"#;

    fn trials() -> Vec<Trial> {
        let suite = Suite::parse(std::path::Path::new("t.yaml"), SUITE).unwrap();
        let variant = Variant::containerd(ContainerdChoice::Line("2.1".into()));
        plan(&[suite], &[(variant, Capabilities::without_kata("none here"))])
    }

    /// A testbed whose `t::<scenario>` trials fail as often as `failures` says, and which
    /// leaves `left` behind.
    struct Fake {
        failures: RefCell<HashMap<String, u32>>,
        left: Vec<String>,
    }

    impl Fake {
        fn new(failures: &[(&str, u32)], left: &[&str]) -> Self {
            Fake {
                failures: RefCell::new(failures.iter().map(|(s, n)| (s.to_string(), *n)).collect()),
                left: left.iter().map(|s| s.to_string()).collect(),
            }
        }
    }

    impl Started for Fake {
        fn describe(&self) -> String {
            "a fake".into()
        }
        fn facts(&self) -> Vec<(String, String)> {
            vec![("fake".into(), "yes".into())]
        }
        async fn run_trial(&self, trial: &Trial) -> TrialResult {
            let mut failures = self.failures.borrow_mut();
            let left = failures.entry(trial.row.scenario.clone()).or_default();
            let (verdict, message) = if *left > 0 {
                *left -= 1;
                (Verdict::Failed, "why")
            } else {
                (Verdict::Passed, "")
            };
            trial.result(verdict, "seen", message, Duration::ZERO, Evidence::default())
        }
        fn attach_evidence(&self, evidence: &mut Evidence) {
            evidence.file("fake.log", "tail");
        }
        fn keep(&self, label: &str) -> Option<String> {
            Some(format!("kept {label}"))
        }
        async fn shutdown(self) -> Leftovers {
            Leftovers(self.left)
        }
    }

    /// The events as short lines, and the results `finish` was given.
    #[derive(Default)]
    struct Seen(Vec<String>);

    impl Sink for Seen {
        fn event(&mut self, event: &Event) {
            self.0.push(match event {
                Event::TestbedStarting { variant } => format!("starting {variant}"),
                Event::TestbedReady { variant, .. } => format!("ready {variant}"),
                Event::TrialStarted { name } => format!("started {name}"),
                Event::TrialFinished(r) => format!("finished {} {:?}", r.name, r.verdict),
                Event::Note(text) => format!("note {text}"),
                other => format!("{other:?}"),
            });
        }
    }

    fn drive(
        tenancy: Tenancy,
        start: Result<Fake, NotStarted>,
        trials: &[&Trial],
    ) -> (Vec<String>, Vec<TrialResult>) {
        let mut seen = Seen::default();
        let mut results = Vec::new();
        let mut finish = |sink: &mut dyn Sink, result: TrialResult| {
            sink.event(&Event::TrialFinished(Box::new(result.clone())));
            results.push(result);
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let start = async |_: &mut dyn Sink| start;
        runtime.block_on(run("bed", trials, tenancy, start, &mut seen, &mut finish));
        (seen.0, results)
    }

    #[test]
    fn a_shared_testbed_runs_its_trials_in_turn_then_reports_its_leftovers() {
        let trials = trials();
        let trials: Vec<&Trial> = trials.iter().collect();
        let fake = Fake::new(&[("flaky", 1), ("fails", 9)], &["a stray shim"]);
        let tenancy = Tenancy::Shared {
            retries: 1,
            keep: true,
        };
        let (events, results) = drive(tenancy, Ok(fake), &trials);
        assert_eq!(
            events,
            [
                "starting bed",
                "ready bed",
                "started t::passes::containerd-2.1",
                "finished t::passes::containerd-2.1 Passed",
                "started t::flaky::containerd-2.1",
                "finished t::flaky::containerd-2.1 Flaky",
                "started t::fails::containerd-2.1",
                "finished t::fails::containerd-2.1 Failed",
                "note kept bed",
                "finished harness::cleanup::bed Failed",
            ]
        );
        // Every failed attempt carries the testbed's evidence; a pass carries none.
        assert!(results[0].evidence.files.is_empty());
        assert_eq!(results[1].attempts[0].evidence.files[0].0, "fake.log");
        assert_eq!(results[2].evidence.files[0].0, "fake.log");
        assert_eq!(results[2].attempts.len(), 1);
        assert!(
            results[3].message.contains("a stray shim"),
            "{}",
            results[3].message
        );
    }

    #[test]
    fn a_testbed_that_does_not_start_fails_each_trial_with_the_reason_and_logs() {
        let trials = trials();
        let trials: Vec<&Trial> = trials.iter().collect();
        let why = NotStarted {
            observed: "cluster did not start".into(),
            message: "kubeadm said no".into(),
            logs: vec![("kubelet.log".into(), "no".into())],
        };
        let tenancy = Tenancy::Shared {
            retries: 1,
            keep: true,
        };
        let (events, results) = drive(tenancy, Err(why), &trials);
        assert_eq!(events[0], "starting bed");
        assert!(events[1..].iter().all(|e| e.ends_with("Failed")), "{events:?}");
        assert_eq!(results.len(), 3);
        for result in &results {
            assert_eq!(result.observed, "cluster did not start");
            assert_eq!(result.message, "kubeadm said no");
            assert_eq!(
                result.evidence.files,
                [("kubelet.log".to_owned(), "no".to_owned())]
            );
            assert_eq!(result.seconds, 0.0);
        }
    }

    #[test]
    fn a_rows_own_node_runs_it_once_and_its_leftovers_fail_the_row() {
        let trials = trials();
        let flaky = &trials[1];
        let fake = Fake::new(&[("flaky", 1)], &[]);
        let (events, results) = drive(Tenancy::OwnNode, Ok(fake), &[flaky]);
        // Its start named the row: no separate trial start; no retry on the same node.
        assert_eq!(
            events,
            [
                "starting bed",
                "ready bed",
                "finished t::flaky::containerd-2.1 Failed"
            ]
        );
        assert!(results[0].attempts.is_empty());

        let passes = &trials[0];
        let fake = Fake::new(&[], &["a mount"]);
        let (events, results) = drive(Tenancy::OwnNode, Ok(fake), &[passes]);
        assert_eq!(events.len(), 3, "no cleanup row: {events:?}");
        assert_eq!(results[0].verdict, Verdict::Failed);
        assert_eq!(results[0].message, "the row's node left things behind:\na mount");
    }
}
