//! Retries as a policy beside the verdict: a failed row is run again up to N times
//! (`run --retries N`); one that then passes is [`Verdict::Flaky`], never a clean pass, with
//! every failed attempt kept (observed, message, time; the first one's evidence becomes its
//! bundle), and one that never passes stays failed with its earlier attempts listed.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::{Evidence, TrialResult, Verdict};

/// A failed attempt of a row that was run again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedAttempt {
    pub observed: String,
    pub message: String,
    pub seconds: f64,
    #[serde(skip)]
    pub evidence: Evidence,
}

/// Runs `attempt` until it does not fail, at most `retries` more times.
pub async fn with_retries<F, Fut>(retries: u32, mut attempt: F) -> TrialResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TrialResult>,
{
    let mut result = attempt().await;
    let mut failed = Vec::new();
    while result.verdict == Verdict::Failed && failed.len() < retries as usize {
        failed.push(FailedAttempt {
            observed: std::mem::take(&mut result.observed),
            message: std::mem::take(&mut result.message),
            seconds: result.seconds,
            evidence: std::mem::take(&mut result.evidence),
        });
        result = attempt().await;
    }
    if result.verdict == Verdict::Passed && !failed.is_empty() {
        result.verdict = Verdict::Flaky;
        result.message = format!(
            "flaky: failed {} of {} attempts, then passed; first failure: observed {}: {}",
            failed.len(),
            failed.len() + 1,
            failed[0].observed,
            failed[0].message
        );
    }
    result.attempts = failed;
    result
}

/// A flaky row's first failure as a result of its own (for its bundle).
pub fn first_failure(result: &TrialResult) -> Option<TrialResult> {
    if result.verdict != Verdict::Flaky {
        return None;
    }
    let first = result.attempts.first()?;
    Some(TrialResult {
        verdict: Verdict::Failed,
        observed: first.observed.clone(),
        message: first.message.clone(),
        seconds: first.seconds,
        attempts: vec![],
        evidence: first.evidence.clone(),
        ..result.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn outcome(verdict: Verdict, n: usize) -> TrialResult {
        TrialResult {
            name: "cri::x::containerd-1.6".into(),
            suite: "cri".into(),
            scenario: "x".into(),
            variant: "containerd-1.6".into(),
            verdict,
            expected: "io.containerd.runc.v2".into(),
            observed: format!("attempt {n}"),
            message: if verdict == Verdict::Failed {
                format!("broke on attempt {n}")
            } else {
                String::new()
            },
            seconds: 1.0,
            conditions: vec![],
            bundle: None,
            attempts: vec![],
            evidence: Evidence::default(),
        }
    }

    /// Runs `with_retries` over a row whose attempts go as `verdicts` says.
    fn run(retries: u32, verdicts: &[Verdict]) -> (TrialResult, usize) {
        let runs = Cell::new(0);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = runtime.block_on(with_retries(retries, || {
            let n = runs.get();
            runs.set(n + 1);
            let verdict = verdicts[n];
            async move { outcome(verdict, n) }
        }));
        (result, runs.get())
    }

    #[test]
    fn a_row_that_fails_then_passes_is_flaky_with_its_failure_kept() {
        let (result, runs) = run(2, &[Verdict::Failed, Verdict::Passed]);
        assert_eq!(runs, 2);
        assert_eq!(result.verdict, Verdict::Flaky);
        assert_eq!(result.observed, "attempt 1");
        assert_eq!(result.attempts.len(), 1);
        assert_eq!(result.attempts[0].message, "broke on attempt 0");
        assert!(
            result.message.contains("failed 1 of 2 attempts"),
            "{}",
            result.message
        );
        let first = first_failure(&result).unwrap();
        assert_eq!(
            (first.verdict, first.observed.as_str()),
            (Verdict::Failed, "attempt 0")
        );
    }

    #[test]
    fn a_row_that_never_passes_stays_failed_and_retries_stop_at_the_limit() {
        let (result, runs) = run(2, &[Verdict::Failed; 3]);
        assert_eq!(runs, 3);
        assert_eq!(result.verdict, Verdict::Failed);
        assert_eq!(result.message, "broke on attempt 2");
        assert_eq!(result.attempts.len(), 2);
        assert!(first_failure(&result).is_none());
    }

    #[test]
    fn without_retries_or_failures_nothing_reruns() {
        assert_eq!(run(0, &[Verdict::Failed]).1, 1);
        let (passed, runs) = run(3, &[Verdict::Passed]);
        assert_eq!((passed.verdict, runs), (Verdict::Passed, 1));
        assert!(passed.attempts.is_empty());
    }
}
