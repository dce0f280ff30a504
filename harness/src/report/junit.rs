//! `junit.xml`: one test suite per scenario suite, one test case per trial.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

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
