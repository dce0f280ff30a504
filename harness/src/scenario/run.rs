//! Running one trial against a ready testbed and judging what was observed.
//!
//! Invariant: a trial acts through the CRI (as crictl would), observes through the CRI *and*
//! through containerd's own record and the OCI runtimes' state, cleans up what it created, and
//! fails if anything it started is still running afterwards.

use std::time::{Duration, Instant};

use super::model::{Action, Row};
use super::plan::Trial;
use crate::provision::Testbed;
use crate::report::scan::{report_since, LogMark};
use crate::report::{Evidence, TrialResult, Verdict};
use crate::wait::{wait_for, Attempt};

use super::image_import::run_image_import;
use super::sandbox::run_sandbox;
use super::trial::{script_node, skipped, Failure};

/// The whole trial, from the first CRI call to the leftover check.
pub const TRIAL_DEADLINE: Duration = Duration::from_secs(300);

/// Runs one trial. Never panics on a bad observation: every outcome is a [`TrialResult`].
pub async fn run_trial(testbed: &Testbed, trial: &Trial) -> TrialResult {
    if let Some(reason) = &trial.skip {
        return skipped(trial, reason);
    }
    let start = Instant::now();
    let marks: Vec<LogMark> = testbed
        .log_files()
        .iter()
        .map(|(source, path)| LogMark::at_end(source, path))
        .collect();
    let mut evidence = Evidence {
        node: Some(script_node(testbed)),
        ..Evidence::default()
    };
    let deadline = TRIAL_DEADLINE * testbed.slowdown;
    let outcome = match tokio::time::timeout(deadline, run_row(testbed, &trial.row, &mut evidence)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::new(
            "(no answer)",
            format!("trial did not finish within {deadline:?}"),
        )),
    };
    // A daemon that died mid-trial explains everything else: say so first. A failure can
    // arrive a moment before the death is observable (the socket closes as the process
    // exits, before it can be reaped), so a failed row looks again for a second.
    let gone = match &outcome {
        Ok(_) => testbed.daemon_exit(),
        Err(_) => settled_daemon_exit(testbed).await,
    };
    let outcome = match (outcome, gone) {
        (Ok(observed), None) => Ok(observed),
        // `gone` names what went: containerd, QEMU, the SSH forward, an existing node's socket.
        (Ok(_), Some(gone)) | (Err(_), Some(gone)) => Err(Failure::new(
            "the testbed is gone",
            format!("{gone}; containerd's log ends with:\n{}", testbed.log_tail(30)),
        )),
        (Err(failure), None) => Err(failure),
    };
    // A full disk explains a failure (and a daemon's exit) that says only "no space left".
    let outcome = match outcome {
        Err(failure) => match testbed.full_filesystems() {
            full if full.is_empty() => Err(failure),
            full => Err(Failure::new(
                failure.observed,
                format!(
                    "the node's disk is full: {}; the row saw: {}",
                    full.join(", "),
                    failure.message
                ),
            )),
        },
        ok => ok,
    };
    // A panic, oops, lockup or OOM kill while the row ran fails it, quoted, whatever it saw.
    let outcome = match (outcome, report_since(&marks)) {
        (outcome, None) => outcome,
        (Ok(observed), Some(found)) => Err(Failure::new(
            format!("{observed}; but the logs show trouble"),
            found,
        )),
        (Err(failure), Some(found)) => Err(Failure::new(
            failure.observed,
            format!("{}\n{found}", failure.message),
        )),
    };
    let (verdict, observed, message) = match outcome {
        Ok(observed) => (Verdict::Passed, observed, String::new()),
        Err(failure) => (Verdict::Failed, failure.observed, failure.message),
    };
    let mut result = trial.result(verdict, &observed, &message, start.elapsed(), evidence);
    result.expected = trial.row.expected_summary();
    result
}

/// [`Testbed::daemon_exit`], looked at for up to a second.
async fn settled_daemon_exit(testbed: &Testbed) -> Option<String> {
    wait_for(
        "the testbed to be seen gone",
        Duration::from_secs(1),
        Duration::from_millis(100),
        || {
            let gone = testbed.daemon_exit();
            async move { gone.map_or_else(|| Attempt::NotYet("still running".into()), Attempt::Ready) }
        },
    )
    .await
    .ok()
}

async fn run_row(testbed: &Testbed, row: &Row, evidence: &mut Evidence) -> Result<String, Failure> {
    match &row.action {
        Action::Sandbox(action) => run_sandbox(testbed, row, action, evidence).await,
        Action::ImageImport(action) => run_image_import(testbed, row, action, evidence).await,
        Action::Pull(action) => super::images::run_pull(testbed, row, action, evidence).await,
        Action::SandboxImage(action) => {
            super::images::run_sandbox_image(testbed, row, action, evidence).await
        }
        Action::CtrRun(action) => super::ctr_run::run_ctr_run(testbed, row, action, evidence).await,
        Action::Pod(action) => super::pod::run_pod(testbed, row, action, evidence).await,
        Action::Diff(action) => super::diff::run_diff(testbed, row, action, evidence).await,
        Action::KataCheck(action) => super::kata_check::run_kata_check(testbed, action, evidence).await,
        Action::Kube(_) => Err(Failure::new(
            "-",
            "kube rows run against a cluster variant (crate::kube::session)",
        )),
        Action::Critest(_) => Err(Failure::new(
            "-",
            "critest rows yield one row per spec (crate::critest::run, through scenario::session)",
        )),
        Action::NodeStart => Err(Failure::new(
            "-",
            "a row whose action is its node's start is judged by scenario::session::run_on_own_node",
        )),
    }
}
