//! A whole run: one testbed per variant (local containerd or VM), its trials in order,
//! events to the sinks.
//!
//! Invariant: every planned trial yields exactly one result, except a critest trial, which
//! yields one per critest spec (`<trial>::<spec>`, at least one). A testbed that fails to
//! start fails its trials (with the reason); a testbed that leaves anything behind adds a
//! failed `harness::cleanup::<variant>` result.

use std::time::Duration;

use std::path::Path;

use super::plan::{Placement, Trial, Variant};
use super::run::run_trial;
use super::trial::skipped;
use crate::provision::{Settings, Testbed, BUSYBOX_BINARY};
use crate::report::quarantine::Quarantine;
use crate::report::{Event, Evidence, Sink, TrialResult, Verdict};
use crate::vm::accel;
use crate::vm::image::Image;

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
                .map_err(|e| crate::report::chain(&e))
        }
        Placement::Vm(recipe) => {
            let image = Image::ensure(&base.repo, recipe).map_err(|e| crate::report::chain(&e))?;
            let accel = accel::cached_probe(
                &image.kernel(),
                Path::new(BUSYBOX_BINARY),
                &accel::default_cache(),
            );
            if accel.accel == accel::Accel::Tcg {
                sink.event(&Event::Note(format!(
                    "{}: the VM runs under TCG: {}",
                    variant.label, accel.reason
                )));
            }
            Testbed::start_vm(base, image, &accel)
                .await
                .map_err(|e| crate::report::chain(&e))
        }
        // Discovered again: the node may have changed since the run was planned.
        Placement::Existing(node) => {
            let found = crate::provision::existing::discover(&node.socket)
                .await
                .map_err(|e| crate::report::chain(&e))?;
            Testbed::attach_existing(&found, base)
                .await
                .map_err(|e| crate::report::chain(&e))
        }
        // A cluster is not a containerd testbed: its trials run through crate::kube::session.
        Placement::Cluster(_) => {
            Err("a cluster variant runs through kube::session, not a containerd testbed".into())
        }
    }
}

/// Runs `trials` (already planned and filtered), one testbed per variant in turn; every
/// result goes through `quarantine` before the sinks see it.
pub async fn run(
    trials: &[Trial],
    variants: &[Variant],
    base: &Settings,
    quarantine: &Quarantine,
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
        let runnable: Vec<&Trial> = mine.iter().copied().filter(|t| t.skip.is_none()).collect();
        for trial in mine.iter().filter(|t| t.skip.is_some()) {
            finish(sink, skipped(trial, trial.skip.as_deref().unwrap_or_default()));
        }
        if runnable.is_empty() {
            continue;
        }
        sink.event(&Event::TestbedStarting {
            variant: variant.label.clone(),
        });
        if let Placement::Cluster(bundle) = &variant.placement {
            crate::kube::session::run_cluster(bundle, &runnable, base, sink, &mut finish).await;
            continue;
        }
        let testbed = match start_testbed(variant, base, sink).await {
            Ok(testbed) => testbed,
            Err(message) => {
                for trial in runnable {
                    finish(
                        sink,
                        trial.result(
                            Verdict::Failed,
                            "testbed did not start",
                            &message,
                            Duration::ZERO,
                            Evidence::default(),
                        ),
                    );
                }
                continue;
            }
        };
        sink.event(&Event::TestbedReady {
            variant: variant.label.clone(),
            description: testbed.describe(),
            facts: testbed.facts.clone(),
        });
        let mut variant_failed = false;
        for trial in runnable {
            sink.event(&Event::TrialStarted {
                name: trial.name.clone(),
            });
            if trial.row.critest().is_some() {
                for mut result in crate::critest::run::run(&testbed, trial).await {
                    if result.verdict == Verdict::Failed {
                        variant_failed = true;
                        attach_testbed_evidence(&testbed, &mut result.evidence);
                    }
                    finish(sink, result);
                }
                continue;
            }
            let mut result = run_trial(&testbed, trial).await;
            if result.verdict == Verdict::Failed {
                variant_failed = true;
                attach_testbed_evidence(&testbed, &mut result.evidence);
            }
            finish(sink, result);
        }
        let label = variant.label.clone();
        if base.keep && variant_failed {
            if let Some(how) = testbed.keep_vm(&label) {
                sink.event(&Event::Note(how));
            }
        }
        let leftovers = testbed.shutdown().await;
        if !leftovers.is_clean() {
            let result = TrialResult::cleanup_failure(&label, &leftovers.0);
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
    let dump = testbed
        .config_dump()
        .unwrap_or_else(|e| format!("config dump failed: {e}"));
    evidence.file("config-dump.toml", &dump);
    evidence.file(
        "versions.txt",
        &format!("{}\n{}\n", testbed.describe(), testbed.containerd.version_text),
    );
    for (name, content) in testbed.kata.iter().flat_map(|kata| kata.evidence()) {
        evidence.file(&name, &content);
    }
}
