//! `junit.xml`: one test suite per scenario suite, one test case per trial.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{RunInfo, TrialResult, Verdict};

pub fn write(path: &Path, info: &RunInfo, results: &[TrialResult]) -> std::io::Result<()> {
    let mut report = Report::new("kata-harness");
    let mut suites: BTreeMap<&str, Vec<&TrialResult>> = BTreeMap::new();
    for result in results {
        suites.entry(result.suite.as_str()).or_default().push(result);
    }
    for (name, results) in suites {
        let mut suite = TestSuite::new(name);
        for (key, value) in &info.environment {
            suite.add_property(Property::new(key.as_str(), value.as_str()));
        }
        for result in results {
            let status = match result.verdict {
                Verdict::Passed => TestCaseStatus::success(),
                // JUnit's own flaky form: a success carrying its failed runs (<flakyFailure>).
                Verdict::Flaky => {
                    let mut status = TestCaseStatus::success();
                    for attempt in &result.attempts {
                        let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                        rerun.set_message(format!("observed {}", attempt.observed));
                        rerun.set_description(attempt.message.as_str());
                        rerun.set_time(Duration::from_secs_f64(attempt.seconds));
                        status.add_rerun(rerun);
                    }
                    status
                }
                // A known failure is not a pass: JUnit readers see it skipped, its message
                // starting with "quarantined until <date> (<reason>; <tracker>)".
                Verdict::Skipped | Verdict::Quarantined => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(result.message.as_str());
                    status
                }
                Verdict::Failed => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(format!(
                        "expected {}; observed {}",
                        result.expected, result.observed
                    ));
                    status.set_description(result.message.as_str());
                    status
                }
            };
            let mut case = TestCase::new(result.name.as_str(), status);
            case.set_classname(format!("{}::{}", result.suite, result.scenario));
            case.set_time(Duration::from_secs_f64(result.seconds));
            case.add_property(Property::new("expected", result.expected.as_str()));
            case.add_property(Property::new("observed", result.observed.as_str()));
            if result.verdict == Verdict::Flaky {
                case.add_property(Property::new("flaky", result.message.as_str()));
            }
            if !result.conditions.is_empty() {
                case.add_property(Property::new("conditions", result.conditions.join("; ").as_str()));
            }
            if let Some(bundle) = &result.bundle {
                case.add_property(Property::new("bundle", bundle.display().to_string().as_str()));
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    let xml = report.to_string().map_err(std::io::Error::other)?;
    std::fs::write(path, xml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::flaky::FailedAttempt;
    use crate::report::Evidence;

    /// A flaky row is JUnit's success-with-failed-runs, never a plain success; the JSON
    /// names it flaky and keeps its attempts.
    #[test]
    fn a_flaky_row_is_written_as_a_flaky_failure_in_junit_and_flaky_in_json() {
        let result = TrialResult {
            name: "cri::x::containerd-1.6".into(),
            suite: "cri".into(),
            scenario: "x".into(),
            variant: "containerd-1.6".into(),
            verdict: Verdict::Flaky,
            expected: "io.containerd.runc.v2".into(),
            observed: "io.containerd.runc.v2".into(),
            message: "flaky: failed 1 of 2 attempts, then passed".into(),
            seconds: 2.0,
            conditions: vec![],
            bundle: None,
            attempts: vec![FailedAttempt {
                observed: "(no answer)".into(),
                message: "RunPodSandbox: deadline exceeded".into(),
                seconds: 60.0,
                evidence: Evidence::default(),
            }],
            evidence: Evidence::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        let junit = dir.path().join("junit.xml");
        write(&junit, &RunInfo::default(), std::slice::from_ref(&result)).unwrap();
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("<flakyFailure"), "{xml}");
        assert!(xml.contains("RunPodSandbox: deadline exceeded"), "{xml}");
        assert!(!xml.contains("<failure"), "{xml}");

        let json = dir.path().join("results.json");
        crate::report::json::write(&json, &RunInfo::default(), &[result]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(json["trials"][0]["verdict"], "flaky");
        assert_eq!(json["summary"]["flaky"], 1);
        assert_eq!(json["summary"]["passed"], 0);
        assert_eq!(json["trials"][0]["attempts"][0]["observed"], "(no answer)");
    }
}
