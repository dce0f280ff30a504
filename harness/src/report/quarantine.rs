//! Known failures: `quarantine.yaml` beside the suites lists rows that fail for a reason
//! outside this project (an upstream bug in a pinned version), each with a tracker link and
//! an expiry date.
//!
//! Policy, kept apart from the verdict: a row that *fails* and matches an entry is reported
//! as [`Verdict::Quarantined`] (its failure message and bundle kept, and the run not failed by
//! it); a matching row that *passes* stays passed, with a note that the entry may be stale.
//! An entry past its date is an error when the file is loaded, before anything starts: a
//! known failure must be looked at again, never carried along silently.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use super::{TrialResult, Verdict};
use crate::scenario::model::{SuiteError, QUARANTINE_FILE};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineFile {
    /// Parsed one by one so errors can name the entry.
    entries: Vec<serde_norway::Value>,
}

/// An entry as written; the date is checked by hand so its error names the field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    rows: String,
    reason: String,
    tracker: String,
    expires: String,
}

/// One known failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// A trial name, where `*` stands for any text (`critest::*::containerd-1.6::<spec>`).
    pub rows: String,
    /// Why the row fails, in a sentence a maintainer can check.
    pub reason: String,
    /// Where the cause is tracked upstream (an http(s) URL).
    pub tracker: String,
    /// The last day the entry holds (YYYY-MM-DD); after it, loading the file is an error.
    pub expires: NaiveDate,
}

impl Entry {
    pub fn matches(&self, name: &str) -> bool {
        wildcard_match(&self.rows, name)
    }
}

/// The quarantine list of a run (empty when there is none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quarantine {
    pub file: Option<PathBuf>,
    pub entries: Vec<Entry>,
}

impl Quarantine {
    /// `<suites>/quarantine.yaml` when `suites` is a folder that has one; none otherwise.
    pub fn beside(suites: &Path, today: NaiveDate) -> Result<Quarantine, SuiteError> {
        let file = suites.join(QUARANTINE_FILE);
        if suites.is_dir() && file.is_file() {
            Quarantine::load(&file, today)
        } else {
            Ok(Quarantine::default())
        }
    }

    pub fn load(file: &Path, today: NaiveDate) -> Result<Quarantine, SuiteError> {
        let text = std::fs::read_to_string(file).map_err(|e| SuiteError {
            file: file.to_owned(),
            location: String::new(),
            message: format!("failed to read: {e}"),
        })?;
        Quarantine::parse(file, &text, today)
    }

    pub fn parse(file: &Path, text: &str, today: NaiveDate) -> Result<Quarantine, SuiteError> {
        let error = |location: String, message: String| SuiteError {
            file: file.to_owned(),
            location,
            message,
        };
        let parsed: QuarantineFile =
            serde_norway::from_str(text).map_err(|e| error(String::new(), e.to_string()))?;
        let mut entries = Vec::new();
        for (index, value) in parsed.entries.into_iter().enumerate() {
            let rows = value
                .get("rows")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_owned();
            let at = |field: &str| format!("entry {} ({rows}){field}: ", index + 1);
            let raw: EntryFile = serde_norway::from_value(value).map_err(|e| error(at(""), e.to_string()))?;
            let expires = NaiveDate::parse_from_str(&raw.expires, "%Y-%m-%d").map_err(|e| {
                error(
                    at(", field expires"),
                    format!("{:?} is not a date (YYYY-MM-DD): {e}", raw.expires),
                )
            })?;
            let entry = Entry {
                rows: raw.rows,
                reason: raw.reason,
                tracker: raw.tracker,
                expires,
            };
            if entry.reason.trim().is_empty() {
                return Err(error(at(", field reason"), "a reason is required".into()));
            }
            if !(entry.tracker.starts_with("https://") || entry.tracker.starts_with("http://")) {
                return Err(error(
                    at(", field tracker"),
                    format!(
                        "{:?} is not an http(s) link to where the failure is tracked",
                        entry.tracker
                    ),
                ));
            }
            if entry.expires < today {
                return Err(error(
                    at(", field expires"),
                    format!(
                        "expired on {} (today is {today}): check whether the failure is still there, then renew the date or remove the entry",
                        entry.expires
                    ),
                ));
            }
            entries.push(entry);
        }
        Ok(Quarantine {
            file: Some(file.to_owned()),
            entries,
        })
    }

    /// Applies the policy to a finished row; returns a note for the user when an entry
    /// matched a row that did not fail.
    pub fn apply(&self, result: &mut TrialResult) -> Option<String> {
        let entry = self.entries.iter().find(|e| e.matches(&result.name))?;
        match result.verdict {
            Verdict::Failed => {
                result.verdict = Verdict::Quarantined;
                result.message = format!(
                    "quarantined until {} ({}; {}): {}",
                    entry.expires, entry.reason, entry.tracker, result.message
                );
                None
            }
            Verdict::Passed => Some(format!(
                "{} passed but is quarantined in {} ({}): the failure may be fixed; remove the entry if it keeps passing",
                result.name,
                self.file.as_deref().unwrap_or(Path::new(QUARANTINE_FILE)).display(),
                entry.rows
            )),
            Verdict::Skipped | Verdict::Quarantined | Verdict::Flaky => None,
        }
    }
}

/// Today's date (UTC), for expiry checks.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// `pattern` with `*` as "any text, possibly empty" matches the whole of `text`. By hand
/// rather than a glob crate: trial names contain `[` and `]` (critest's `[k8s.io]`), which a
/// glob reads as a character class.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    const SPEC: &str = "critest::runc::containerd-1.6::[k8s.io] Idempotence StopPodSandbox should not return an error if not found";

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn result(name: &str, verdict: Verdict) -> TrialResult {
        TrialResult {
            name: name.into(),
            suite: "critest".into(),
            scenario: "runc".into(),
            variant: "containerd-1.6".into(),
            verdict,
            expected: "the spec passes".into(),
            observed: "failed".into(),
            message: "rpc error: code = NotFound".into(),
            seconds: 1.0,
            conditions: vec![],
            bundle: None,
            attempts: vec![],
            evidence: Evidence::default(),
        }
    }

    fn list(expires: &str) -> String {
        format!(
            "entries:\n  - rows: 'critest::*::containerd-1.6::[k8s.io] Idempotence StopPodSandbox should not return an error if not found'\n    reason: containerd 1.6.20 answers NotFound\n    tracker: https://github.com/containerd/containerd/pull/10531\n    expires: {expires}\n"
        )
    }

    #[test]
    fn stars_match_any_text_and_brackets_are_literal() {
        assert!(wildcard_match(
            "critest::*::containerd-1.6::[k8s.io] Idempotence *",
            SPEC
        ));
        assert!(wildcard_match(SPEC, SPEC));
        assert!(wildcard_match("*", SPEC));
        assert!(wildcard_match("a*b*c", "abc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        assert!(!wildcard_match("critest::*::containerd-1.7::*", SPEC));
        assert!(
            !wildcard_match("critest::runc", SPEC),
            "a pattern matches the whole name"
        );
        assert!(
            !wildcard_match("ab*ba", "aba"),
            "prefix and suffix may not overlap"
        );
    }

    #[test]
    fn a_failed_row_that_matches_is_quarantined_with_reason_and_link() {
        let q = Quarantine::parse(Path::new("q.yaml"), &list("2027-06-30"), day("2026-12-02")).unwrap();
        let mut failed = result(SPEC, Verdict::Failed);
        assert_eq!(q.apply(&mut failed), None);
        assert_eq!(failed.verdict, Verdict::Quarantined);
        assert!(failed.message.starts_with("quarantined until 2027-06-30 (containerd 1.6.20 answers NotFound; https://github.com/containerd/containerd/pull/10531): rpc error"), "{}", failed.message);

        let other = SPEC.replace("1.6", "1.7");
        let mut unrelated = result(&other, Verdict::Failed);
        assert_eq!(q.apply(&mut unrelated), None);
        assert_eq!(
            unrelated.verdict,
            Verdict::Failed,
            "only matching rows are quarantined"
        );

        let mut passed = result(SPEC, Verdict::Passed);
        let note = q
            .apply(&mut passed)
            .expect("a note for a quarantined row that passed");
        assert_eq!(passed.verdict, Verdict::Passed);
        assert!(note.contains("q.yaml") && note.contains("may be fixed"), "{note}");
    }

    #[test]
    fn an_expired_entry_is_an_error_naming_file_entry_and_field() {
        let err = Quarantine::parse(Path::new("q.yaml"), &list("2026-12-01"), day("2026-12-02")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("q.yaml: entry 1 (critest::*::containerd-1.6::"),
            "{text}"
        );
        assert!(
            text.contains("field expires: expired on 2026-12-01 (today is 2026-12-02)"),
            "{text}"
        );
        // The last day still holds.
        assert!(Quarantine::parse(Path::new("q.yaml"), &list("2026-12-02"), day("2026-12-02")).is_ok());
    }

    #[test]
    fn malformed_entries_are_errors_naming_the_field() {
        let today = day("2026-12-02");
        let no_link = list("2027-06-30").replace(
            "https://github.com/containerd/containerd/pull/10531",
            "containerd#10531",
        );
        let text = Quarantine::parse(Path::new("q.yaml"), &no_link, today)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("field tracker: \"containerd#10531\" is not an http(s) link"),
            "{text}"
        );
        let bad_date = list("30.06.2027");
        let text = Quarantine::parse(Path::new("q.yaml"), &bad_date, today)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("field expires: \"30.06.2027\" is not a date (YYYY-MM-DD)"),
            "{text}"
        );
        let typo = list("2027-06-30").replace("reason:", "reasn:");
        let text = Quarantine::parse(Path::new("q.yaml"), &typo, today)
            .unwrap_err()
            .to_string();
        assert!(text.contains("unknown field `reasn`"), "{text}");
    }
}
