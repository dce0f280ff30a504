//! The cluster variant of a run: build the images, bring the cluster up once, run its trials
//! in order, attach the Kubernetes evidence to failures, tear it down and report leftovers.
//!
//! Invariant: every trial yields exactly one result; a cluster that does not start fails its
//! trials with kubeadm's own first error and the logs; one that leaves anything behind adds a
//! failed `harness::cleanup::<variant>` result.

use std::time::{Duration, Instant};

use super::bundle::Bundle;
use super::cluster::{Cluster, ClusterSettings};
use super::suite::{self, Touched};
use crate::provision::Settings;
use crate::report::{chain, Event, Evidence, Sink, TrialResult, Verdict};
use crate::scenario::plan::Trial;

/// One kube row, from its first API call to its cleanup.
pub const TRIAL_DEADLINE: Duration = Duration::from_secs(300);

type Finish<'a> = &'a mut dyn FnMut(&mut dyn Sink, TrialResult);

/// Fails every trial of a cluster that never became usable, with the logs kept from it.
fn fail_all(
    trials: &[&Trial],
    sink: &mut dyn Sink,
    finish: Finish<'_>,
    observed: &str,
    message: &str,
    logs: &[(String, String)],
) {
    for trial in trials {
        let mut evidence = Evidence::default();
        for (name, text) in logs {
            evidence.file(name, text);
        }
        finish(
            sink,
            trial.result(Verdict::Failed, observed, message, Duration::ZERO, evidence),
        );
    }
}

/// Runs the trials of one cluster variant; `finish` records each result.
pub async fn run_cluster(
    bundle: &Bundle,
    trials: &[&Trial],
    base: &Settings,
    retries: u32,
    sink: &mut dyn Sink,
    finish: Finish<'_>,
) {
    let label = bundle.label();
    sink.event(&Event::Note(format!(
        "{label}: control-plane images (cached after the first build) and a kubeadm v{} cluster",
        bundle.version
    )));
    let images = match super::images::ensure(bundle) {
        Ok(images) => images,
        Err(e) => return fail_all(trials, sink, finish, "images not built", &chain(&e), &[]),
    };
    let settings = ClusterSettings {
        bundle: bundle.clone(),
        keep: base.keep,
        kata: base.kata.clone(),
        kata_rs: base.kata_rs.clone(),
        kata_runtime_class: base.kata_runtime_class.clone(),
        containerd: base.containerd.clone(),
    };
    let cluster = match Cluster::start(&settings, &images).await {
        Ok(cluster) => cluster,
        Err(failure) => {
            let observed = match &failure.error {
                super::KubeError::KubeadmInit { first_error, .. } => {
                    format!("kubeadm init failed: {first_error}")
                }
                _ => "cluster did not start".into(),
            };
            return fail_all(
                trials,
                sink,
                finish,
                &observed,
                &chain(&failure.error),
                &failure.logs,
            );
        }
    };
    run_on(&cluster, &label, trials, base, retries, sink, finish).await;
    let leftovers = cluster.shutdown().await;
    if !leftovers.is_clean() {
        finish(sink, TrialResult::cleanup_failure(&label, &leftovers.0));
    }
}

/// Runs the trials of an existing cluster (`--kubeconfig`): attached, never started or torn
/// down; a cluster the harness cannot read runtimes on fails its trials with the reason.
pub async fn run_attached(
    existing: &super::cluster::attach::ExistingCluster,
    label: &str,
    trials: &[&Trial],
    base: &Settings,
    retries: u32,
    sink: &mut dyn Sink,
    finish: Finish<'_>,
) {
    let cluster = match Cluster::attach(&existing.kubeconfig, existing.from).await {
        Ok(cluster) => cluster,
        Err(e) => return fail_all(trials, sink, finish, "cluster not reachable", &chain(&e), &[]),
    };
    run_on(&cluster, label, trials, base, retries, sink, finish).await;
    let leftovers = cluster.shutdown().await;
    if !leftovers.is_clean() {
        finish(sink, TrialResult::cleanup_failure(label, &leftovers.0));
    }
}

/// The trials of a ready cluster, in order (a failed one again, up to `retries` times).
async fn run_on(
    cluster: &Cluster,
    label: &str,
    trials: &[&Trial],
    base: &Settings,
    retries: u32,
    sink: &mut dyn Sink,
    finish: Finish<'_>,
) {
    sink.event(&Event::TestbedReady {
        variant: label.to_owned(),
        description: cluster.describe(),
        facts: {
            let mut facts = cluster.facts();
            if let Some(kata) = &base.kata {
                facts.push(("kata".into(), kata.conditions.join("; ")));
            }
            if let Some(kata) = &base.kata_rs {
                facts.push(("kata runtime-rs".into(), kata.conditions.join("; ")));
            }
            facts
        },
    });
    for trial in trials {
        sink.event(&Event::TrialStarted {
            name: trial.name.clone(),
        });
        let result = crate::report::flaky::with_retries(retries, || run_trial(cluster, trial)).await;
        finish(sink, result);
    }
}

/// Runs one kube trial against a ready cluster.
pub async fn run_trial(cluster: &Cluster, trial: &Trial) -> TrialResult {
    if let Some(reason) = &trial.skip {
        return crate::scenario::trial::skipped(trial, reason);
    }
    let Some(action) = trial.row.kube() else {
        return trial.result(
            Verdict::Failed,
            "-",
            "only kube rows run against a cluster",
            Duration::ZERO,
            Evidence::default(),
        );
    };
    let start = Instant::now();
    let mut evidence = Evidence {
        node: Some(cluster.script_node()),
        ..Evidence::default()
    };
    let mut touched = Touched::default();
    let outcome = tokio::time::timeout(
        TRIAL_DEADLINE,
        suite::run_row(cluster, &trial.row, action, &mut evidence, &mut touched),
    )
    .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(_) => {
            let _ = suite::clean_up(cluster, &touched).await;
            Err(suite::Failure {
                observed: "(no answer)".into(),
                message: format!("trial did not finish within {TRIAL_DEADLINE:?}"),
            })
        }
    };
    // kubelet or containerd dying mid-trial explains everything else: say so first.
    let outcome = match (outcome, cluster.gone()) {
        (outcome, None) => outcome,
        (_, Some(why)) => Err(suite::Failure {
            observed: "the cluster is gone".into(),
            message: why,
        }),
    };
    let (verdict, observed, message) = match outcome {
        Ok(observed) => (Verdict::Passed, observed, String::new()),
        Err(f) => (Verdict::Failed, f.observed, f.message),
    };
    if verdict == Verdict::Failed {
        attach_cluster_evidence(cluster, &mut evidence);
    }
    let mut result = trial.result(verdict, &observed, &message, start.elapsed(), evidence);
    result.conditions.extend(cluster.runtime_condition());
    result
}

/// What every failed kube row's bundle carries (the row's own pods were described before
/// their cleanup, in `suite::run_row`): describe of the kube-system pods, all events, the
/// kubelet and containerd logs, kubeadm's output and config, containerd's config, versions.
pub fn attach_cluster_evidence(cluster: &Cluster, evidence: &mut Evidence) {
    evidence.file(
        "describe-kube-system.txt",
        &cluster.kubectl(&["describe", "pods", "-n", "kube-system"]),
    );
    evidence.file(
        "events.txt",
        &cluster.kubectl(&["get", "events", "-A", "-o", "wide"]),
    );
    evidence.file("pods.txt", &cluster.kubectl(&["get", "pods", "-A", "-o", "wide"]));
    evidence.file(
        "kubelet.log.tail",
        &crate::process::tail_of_file(&cluster.kubelet_log, 300),
    );
    evidence.file(
        "containerd.log.tail",
        &crate::process::tail_of_file(&cluster.containerd_log, 300),
    );
    evidence.file(
        "kubeadm-init.log",
        &std::fs::read_to_string(&cluster.kubeadm_log).unwrap_or_default(),
    );
    evidence.file(
        "kubeadm.yaml",
        &std::fs::read_to_string(cluster.run_dir.join("kubeadm.yaml")).unwrap_or_default(),
    );
    evidence.file(
        "containerd-config.toml",
        &std::fs::read_to_string(cluster.run_dir.join("ctd/config.toml")).unwrap_or_default(),
    );
    let facts: Vec<String> = cluster
        .facts()
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    evidence.file(
        "versions.txt",
        &format!("{}\n{}\n", cluster.describe(), facts.join("\n")),
    );
    evidence.reproduce(format!("{} get pods -A -o wide", cluster.kubectl_prefix()));
}
