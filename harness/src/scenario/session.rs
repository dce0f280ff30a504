//! A whole run: one testbed per variant (local containerd or VM, or a cluster through
//! `kube::session`), each through the one testbed lifecycle of [`super::lifecycle`], events
//! to the sinks. Here: how each variant's testbed starts, and what a containerd testbed and a
//! row's own node give that lifecycle.
//!
//! Invariant: every planned trial yields exactly one result, except a critest trial, which
//! yields one per critest spec (`<trial>::<spec>`, at least one). A testbed that fails to
//! start fails its trials (with the reason); a testbed that leaves anything behind adds a
//! failed `harness::cleanup::<variant>` result.
//!
//! A row with a node of its own (`node:`) gets a testbed started for it alone, after the
//! variant's shared one is stopped (one containerd at a time); anything that node leaves
//! behind fails that row.

use std::path::Path;
use std::time::Instant;

use super::lifecycle::{self, left_behind, NotStarted, Started, Tenancy};
use super::model::{Action, HandlersIn, NodeSetup};
use super::plan::{Capabilities, Placement, Trial, Variant};
use super::run::run_trial;
use super::trial::skipped;
use crate::profile::ContainerdChoice;
use crate::provision::cleanup::Leftovers;
use crate::provision::local::{LocalSetup, PRE_UPGRADE_LOG};
use crate::provision::{ProvisionError, Settings, Testbed, BUSYBOX_BINARY};
use crate::render::containerd::DROP_IN;
use crate::report::quarantine::Quarantine;
use crate::report::{Event, Evidence, Sink, TrialResult, Verdict};
use crate::vm::accel;
use crate::vm::image::Image;
use crate::wait::WaitError;

/// Starts the testbed of a variant: a private containerd here, or a VM (building or reusing
/// its image, and probing KVM once).
pub async fn start_testbed(
    variant: &Variant,
    base: &Settings,
    sink: &mut dyn Sink,
) -> Result<Testbed, String> {
    match &variant.placement {
        Placement::Local(choice) => {
            let settings = Settings {
                containerd: choice.clone(),
                ..base.clone()
            };
            Testbed::start_local(&settings)
                .await
                .map_err(|e| crate::errors::chain(&e))
        }
        Placement::Vm(recipe) => {
            let image = Image::ensure(&base.repo, recipe).map_err(|e| crate::errors::chain(&e))?;
            let accel = accel::cached_probe(
                &image.kernel(),
                Path::new(BUSYBOX_BINARY),
                &accel::ProbeStore::for_this_boot(),
            );
            if accel.accel == accel::Accel::Tcg {
                sink.event(&Event::Note(format!(
                    "{}: the VM runs under TCG: {}",
                    variant.label, accel.reason
                )));
            }
            // The guest gets this host's Kata layout where the image ships a QEMU for it, as
            // the plan decided (Capabilities::for_vm).
            let local = Capabilities {
                kata: base.kata.clone(),
                ..Capabilities::without_kata("no Kata on this host")
            };
            let settings = Settings {
                kata: Capabilities::for_vm(recipe, &base.repo, &local).kata,
                kata_rs: None,
                ..base.clone()
            };
            Testbed::start_vm(&settings, image, &accel)
                .await
                .map_err(|e| crate::errors::chain(&e))
        }
        Placement::Existing(node) => Testbed::attach_existing(&node.reach, &node.socket, base)
            .await
            .map_err(|e| crate::errors::chain(&e)),
        // A cluster is not a containerd testbed: its trials run through crate::kube::session.
        Placement::Cluster(_) | Placement::ExistingCluster(_) => {
            Err("a cluster variant runs through kube::session, not a containerd testbed".into())
        }
    }
}

/// Runs `trials` (already planned and filtered), one testbed per variant in turn; every
/// result goes through `quarantine` before the sinks see it; a failed row is run again up to
/// `retries` times (flaky if it then passes, see [`crate::report::flaky`]).
pub async fn run(
    trials: &[Trial],
    variants: &[Variant],
    base: &Settings,
    quarantine: &Quarantine,
    retries: u32,
    sink: &mut dyn Sink,
) -> Vec<TrialResult> {
    sink.event(&Event::RunStarted { trials: trials.len() });
    let mut results = Vec::new();
    for variant in variants {
        let mine: Vec<&Trial> = trials.iter().filter(|t| &t.variant == variant).collect();
        if mine.is_empty() {
            continue;
        }
        let mut finish = |sink: &mut dyn Sink, mut result: TrialResult| {
            if let Some(note) = quarantine.apply(&mut result) {
                sink.event(&Event::Note(note));
            }
            sink.event(&Event::TrialFinished(Box::new(result.clone())));
            results.push(result);
        };
        // Skips are decided already: report them without starting anything for them.
        let (own_node, runnable): (Vec<&Trial>, Vec<&Trial>) = mine
            .iter()
            .copied()
            .filter(|t| t.skip.is_none())
            .partition(|t| t.row.node.is_some());
        for trial in mine.iter().filter(|t| t.skip.is_some()) {
            finish(sink, skipped(trial, trial.skip.as_deref().unwrap_or_default()));
        }
        // The variant's shared testbed first, then each row with a node of its own (one
        // containerd at a time; only a local containerd variant has such rows, see
        // NodeSetup::skip_reason).
        if !runnable.is_empty() {
            match &variant.placement {
                Placement::Cluster(bundle) => {
                    crate::kube::session::run_cluster(bundle, &runnable, base, retries, sink, &mut finish)
                        .await;
                }
                Placement::ExistingCluster(cluster) => {
                    crate::kube::session::run_attached(
                        cluster,
                        &variant.label,
                        &runnable,
                        base,
                        retries,
                        sink,
                        &mut finish,
                    )
                    .await;
                }
                _ => {
                    let start = async |sink: &mut dyn Sink| {
                        start_testbed(variant, base, sink)
                            .await
                            .map_err(NotStarted::testbed)
                    };
                    let tenancy = Tenancy::Shared {
                        retries,
                        keep: base.keep,
                    };
                    lifecycle::run(&variant.label, &runnable, tenancy, start, sink, &mut finish).await;
                }
            }
        }
        for trial in own_node {
            let result = run_on_own_node(trial, base, sink).await;
            finish(sink, result);
        }
    }
    sink.event(&Event::RunFinished);
    results
}

/// What every failure bundle carries from the testbed: the daemon's log tail, the config we
/// rendered, and the config containerd actually runs with.
pub fn attach_testbed_evidence(testbed: &Testbed, evidence: &mut Evidence) {
    evidence.file("containerd.log.tail", &testbed.log_tail(200));
    evidence.file(
        "config.toml",
        &std::fs::read_to_string(&testbed.paths.config).unwrap_or_default(),
    );
    if let Some(drop_in) = testbed.drop_in() {
        evidence.file(
            &format!("conf.d-{DROP_IN}"),
            &std::fs::read_to_string(drop_in).unwrap_or_default(),
        );
    }
    let dump = testbed
        .config_dump()
        .unwrap_or_else(|e| format!("config dump failed: {e}"));
    evidence.file("config-dump.toml", &dump);
    evidence.file(
        "versions.txt",
        &format!("{}\n{}\n", testbed.describe(), testbed.containerd.version_text),
    );
    for (name, content) in testbed
        .kata
        .iter()
        .chain(&testbed.kata_rs)
        .flat_map(|kata| kata.evidence(testbed.node.as_ref()))
    {
        evidence.file(&name, &content);
    }
}

/// The containerd testbed of a variant, shared by its rows; a critest row yields one result
/// per spec.
impl Started for Testbed {
    fn describe(&self) -> String {
        Testbed::describe(self)
    }

    fn facts(&self) -> Vec<(String, String)> {
        self.facts.clone()
    }

    async fn run_trial(&self, trial: &Trial) -> TrialResult {
        run_trial(self, trial).await
    }

    async fn run_specs(&self, trial: &Trial) -> Option<Vec<TrialResult>> {
        match trial.row.critest() {
            Some(_) => Some(crate::critest::run::run(self, trial).await),
            None => None,
        }
    }

    fn attach_evidence(&self, evidence: &mut Evidence) {
        attach_testbed_evidence(self, evidence);
    }

    fn keep(&self, label: &str) -> Option<String> {
        self.keep_vm(label)
    }

    async fn shutdown(self) -> Leftovers {
        Testbed::shutdown(self).await
    }
}

/// A node started for one row, as its `node:` block says.
struct OwnNode<'a> {
    testbed: Testbed,
    node: &'a NodeSetup,
}

impl Started for OwnNode<'_> {
    fn describe(&self) -> String {
        self.testbed.describe()
    }

    fn facts(&self) -> Vec<(String, String)> {
        self.testbed.facts.clone()
    }

    /// The row, with what was done to its node as a condition (the upgrade, or the setup).
    async fn run_trial(&self, trial: &Trial) -> TrialResult {
        let mut result = run_trial(&self.testbed, trial).await;
        let done = self
            .testbed
            .facts
            .iter()
            .find(|(k, _)| k == "upgrade")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| self.node.describe());
        result.conditions.push(done);
        result
    }

    fn attach_evidence(&self, evidence: &mut Evidence) {
        attach_testbed_evidence(&self.testbed, evidence);
        // An upgraded node: the old daemon's log too (it wrote the config and the images).
        if self.node.upgrade_from.is_some() {
            let old_log = self.testbed.paths.run_dir.join(PRE_UPGRADE_LOG);
            let tail = crate::process::tail_of_file(&old_log, 100);
            evidence.file(&format!("{PRE_UPGRADE_LOG}.tail"), &tail);
        }
    }

    async fn shutdown(self) -> Leftovers {
        self.testbed.shutdown().await
    }
}

/// A row with a node of its own: starts that node (as its `node:` block says, with the
/// variant's containerd line), runs the row on it or judges its refused start, and stops it.
/// Anything the node leaves behind fails the row.
pub async fn run_on_own_node(trial: &Trial, base: &Settings, sink: &mut dyn Sink) -> TrialResult {
    let start = Instant::now();
    let (Some(node), Placement::Local(choice)) = (&trial.row.node, &trial.variant.placement) else {
        return row_result(
            trial,
            start,
            Verdict::Failed,
            "-",
            "a row with a node of its own runs on a local containerd variant",
        );
    };
    let settings = Settings {
        containerd: choice.clone(),
        ..base.clone()
    };
    if trial.row.action == Action::NodeStart {
        sink.event(&Event::TestbedStarting {
            variant: trial.name.clone(),
        });
        let started = Testbed::start_local_with(&settings, &local_setup(node)).await;
        return judge_start(trial, started, start).await;
    }
    let start_node = async |_: &mut dyn Sink| {
        Testbed::start_local_with(&settings, &local_setup(node))
            .await
            .map(|testbed| OwnNode { testbed, node })
            .map_err(|e| NotStarted::testbed(crate::errors::chain(&e)))
    };
    let mut result = None;
    let mut record = |_: &mut dyn Sink, r: TrialResult| result = Some(r);
    lifecycle::run(
        &trial.name,
        &[trial],
        Tenancy::OwnNode,
        start_node,
        sink,
        &mut record,
    )
    .await;
    result.expect("the lifecycle yields one result for a trial that yields one")
}

/// A row whose action is its node's start (`expect.start_error`): passes when containerd
/// refused to start as expected; a node that did start is stopped and fails the row.
async fn judge_start(trial: &Trial, started: Result<Testbed, ProvisionError>, start: Instant) -> TrialResult {
    let expected = trial.row.expect.start_error.as_deref().unwrap_or_default();
    let failed = |observed: &str, message: &str| row_result(trial, start, Verdict::Failed, observed, message);
    match started {
        Err(error) => match refused_start(&error, expected) {
            Ok(observed) => row_result(trial, start, Verdict::Passed, &observed, ""),
            Err(message) => failed("containerd did not refuse as expected", &message),
        },
        Ok(testbed) => {
            let what = testbed.describe();
            let leftovers = testbed.shutdown().await;
            failed(
                &format!("started: {what}"),
                &format!(
                    "expected containerd to refuse to start with {expected:?}{}",
                    left_behind(&leftovers.0)
                ),
            )
        }
    }
}

/// A row's result timed from `start` (its node's start is part of the row), no evidence.
fn row_result(trial: &Trial, start: Instant, verdict: Verdict, observed: &str, message: &str) -> TrialResult {
    trial.result(verdict, observed, message, start.elapsed(), Evidence::default())
}

/// The provisioning of a `node:` block.
fn local_setup(node: &NodeSetup) -> LocalSetup {
    let line = |l: &Option<String>| l.clone().map(ContainerdChoice::Line);
    LocalSetup {
        config_for: line(&node.config_for),
        upgrade_from: line(&node.upgrade_from),
        untrusted_workload_runtime: node.untrusted_workload_runtime.clone(),
        handlers_drop_in: node.handlers == HandlersIn::DropIn,
    }
}

/// A start that must fail: containerd itself exited (not a timeout, not our own setup
/// failing) and its log says `expected`; the observation is that log line.
fn refused_start(error: &ProvisionError, expected: &str) -> Result<String, String> {
    let chain = crate::errors::chain(error);
    let ProvisionError::NotReady { source, log_tail } = error else {
        return Err(format!(
            "the node's setup failed before containerd could refuse: {chain}"
        ));
    };
    if !matches!(source, WaitError::Fatal { .. }) {
        return Err(format!(
            "containerd did not exit, it just never got ready: {chain}"
        ));
    }
    match log_tail.lines().rev().find(|l| l.contains(expected)) {
        Some(line) => Ok(format!("containerd exited: {}", line.trim())),
        None => Err(format!(
            "containerd exited, but its log does not say {expected:?}: {chain}"
        )),
    }
}
