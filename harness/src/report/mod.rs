//! Reporting: trial results as an event stream, rendered to the terminal, JUnit, JSON, and a
//! failure bundle per failed trial.
//!
//! Invariant: every sink consumes the same [`Event`]s; tests assert on events and on the
//! written files, never on terminal text.

pub mod bundle;
pub mod differences;
pub mod flaky;
pub mod html;
pub mod identity;
pub mod json;
pub mod junit;
pub mod merge;
pub mod quarantine;
pub mod scan;
pub mod terminal;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
    Skipped,
    /// Failed, and listed as a known failure in the quarantine list (see [`quarantine`]):
    /// reported with its failure and bundle, but it does not fail the run.
    Quarantined,
    /// Failed, then passed when run again (`run --retries N`, see [`flaky`]): never a clean
    /// pass; reported with its failed attempts and the first one's bundle, and it does not
    /// fail the run.
    Flaky,
}

/// Files and commands a trial collected, kept for its failure bundle. Of it only a `diff`
/// row's table is data in results.json, and what `merge` reads back (the rest is in the
/// bundle and the HTML report).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(skip)]
    pub files: Vec<(String, String)>,
    /// Shell lines that redo what the trial did. They call `crictl` and `ctr` as the shell
    /// functions `reproduce.sh` defines from [`Evidence::node`], and name the objects the
    /// script itself creates (`$POD`, `$CTR`), never the IDs of the failed run.
    #[serde(skip)]
    pub reproduce: Vec<String>,
    /// The node the trial ran on, as `reproduce.sh`'s defaults.
    #[serde(skip)]
    pub node: Option<ScriptNode>,
    /// A `diff` row's runc-vs-Kata table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differences: Option<differences::Differences>,
}

/// What `reproduce.sh` needs of a node: its tools and its containerd socket. Each is a
/// default the person running the script can override from the environment (the run's own
/// node is usually gone by then: a local node's containerd stops with the run).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScriptNode {
    /// crictl as the node runs it (a path, or `crictl` when on PATH); `None`: none found.
    pub crictl: Option<String>,
    /// ctr of the node's containerd version.
    pub ctr: String,
    /// containerd's socket as the node sees it (CRI and containerd API alike).
    pub socket: String,
    /// Where the trial ran, for the script's header (`containerd 1.6.20 ... on local`).
    pub description: String,
}

impl Evidence {
    pub fn file(&mut self, name: &str, content: &str) {
        self.files.push((name.to_owned(), content.to_owned()));
    }

    pub fn reproduce(&mut self, line: String) {
        self.reproduce.push(line);
    }
}

/// What `results.json` holds of a trial, and `merge` reads back (of its evidence only a diff
/// row's table: the rest went into its bundle).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub name: String,
    pub suite: String,
    pub scenario: String,
    pub variant: String,
    pub verdict: Verdict,
    pub expected: String,
    pub observed: String,
    /// Why it failed, or why it was skipped.
    pub message: String,
    pub seconds: f64,
    /// How this row ran here differently from a user's KVM host (Kata under TCG, a
    /// user-space vsock, which Kata build): every sink shows them on the row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
    /// The attempts that failed before this one (with `--retries`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<flaky::FailedAttempt>,
    #[serde(flatten)]
    pub evidence: Evidence,
}

impl TrialResult {
    /// The synthetic failed row `harness::cleanup::<variant>`: a testbed left things behind.
    pub fn cleanup_failure(variant: &str, leftovers: &[String]) -> Self {
        TrialResult {
            name: format!("harness::cleanup::{variant}"),
            suite: "harness".into(),
            scenario: "cleanup".into(),
            variant: variant.to_owned(),
            verdict: Verdict::Failed,
            expected: "nothing left behind".into(),
            observed: format!("{} leftovers", leftovers.len()),
            message: leftovers.join("\n"),
            seconds: 0.0,
            conditions: vec![],
            bundle: None,
            attempts: vec![],
            evidence: Evidence::default(),
        }
    }
}

/// The stream every sink consumes.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        trials: usize,
    },
    /// Something the user must know (e.g. VMs under TCG, Kata rows skipped).
    Note(String),
    TestbedStarting {
        variant: String,
    },
    TestbedReady {
        variant: String,
        description: String,
        /// Image, kernel, accelerator, component versions: repeated in JUnit and JSON.
        facts: Vec<(String, String)>,
    },
    TrialStarted {
        name: String,
    },
    TrialFinished(Box<TrialResult>),
    RunFinished,
}

pub trait Sink {
    fn event(&mut self, event: &Event);
}

/// The facts about a run that every report repeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The command line that reruns this run's placements (`kata-harness run --target ...`,
    /// words shell-quoted); [`RunInfo::rerun_line`] narrows it to one trial.
    pub command: String,
    pub target: String,
    pub environment: Vec<(String, String)>,
    /// Which trials the run planned (the filter and a digest of their names): what the shards
    /// of one run share, and `merge` checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<identity::Selection>,
    /// The share of the planned trials this run ran (`run --shard K/N`); absent for a whole run
    /// and for a merged one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<identity::ShardRecord>,
}

impl RunInfo {
    /// The command line that reruns just `trial` (`--filter <name> --exact`).
    pub fn rerun_line(&self, trial: &str) -> String {
        format!(
            "{} --filter {} --exact",
            self.command,
            crate::process::shell_quote(trial)
        )
    }
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub quarantined: usize,
    pub flaky: usize,
}

impl Summary {
    pub fn of<'a>(results: impl IntoIterator<Item = &'a TrialResult>) -> Self {
        let mut summary = Summary::default();
        for result in results {
            summary.add(result.verdict);
        }
        summary
    }

    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed => self.failed += 1,
            Verdict::Skipped => self.skipped += 1,
            Verdict::Quarantined => self.quarantined += 1,
            Verdict::Flaky => self.flaky += 1,
        }
    }
}

/// Writes `junit.xml`, `results.json`, `results.html` and the failure bundles into `dir`.
pub fn write_results(dir: &Path, info: &RunInfo, results: &mut [TrialResult]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_bundles(dir, info, results)?;
    write_reports(dir, info, results)
}

/// Writes the failure bundle of each failed, quarantined or flaky row into `dir/bundles/`
/// and records where in its result.
fn write_bundles(dir: &Path, info: &RunInfo, results: &mut [TrialResult]) -> std::io::Result<()> {
    let has_bundle = |r: &TrialResult| matches!(r.verdict, Verdict::Failed | Verdict::Quarantined);
    for result in results.iter_mut() {
        if has_bundle(result) {
            result.bundle = Some(bundle::write(dir, info, result)?);
        } else if let Some(first) = flaky::first_failure(result) {
            // A flaky row's bundle is its first failure's: what there is to investigate.
            result.bundle = Some(bundle::write(dir, info, &first)?);
        }
    }
    Ok(())
}

/// Writes `junit.xml`, `results.json` and `results.html` of `results` into `dir` (which exists).
pub fn write_reports(dir: &Path, info: &RunInfo, results: &[TrialResult]) -> std::io::Result<()> {
    junit::write(&dir.join("junit.xml"), info, results)?;
    json::write(&dir.join("results.json"), info, results)?;
    html::write(&dir.join("results.html"), info, results)?;
    Ok(())
}

pub use crate::errors::chain;

/// Keeps every event in memory (for JSON/JUnit at the end, and for tests).
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Vec<Event>,
}

impl Recorder {
    /// Every testbed's facts as `<variant>.<fact>` pairs, for the JUnit and JSON reports.
    pub fn testbed_facts(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::TestbedReady { variant, facts, .. } => Some((variant, facts)),
                _ => None,
            })
            .flat_map(|(variant, facts)| {
                facts
                    .iter()
                    .map(move |(k, v)| (format!("{variant}.{k}"), v.clone()))
            })
            .collect()
    }
}

impl Sink for Recorder {
    fn event(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
}

/// Sends each event to several sinks.
pub struct Tee<'a>(pub Vec<&'a mut dyn Sink>);

impl Sink for Tee<'_> {
    fn event(&mut self, event: &Event) {
        for sink in self.0.iter_mut() {
            sink.event(event);
        }
    }
}
