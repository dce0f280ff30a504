//! The cluster variant of a run: build the images and bring the cluster up once (or attach to
//! an existing one), then the lifecycle every testbed has ([`crate::scenario::lifecycle`]):
//! its trials in order, the Kubernetes evidence on failures, teardown and leftovers.
//!
//! Invariant: every trial yields exactly one result; a cluster that does not start fails its
//! trials with kubeadm's own first error and the logs; one that leaves anything behind adds a
//! failed `harness::cleanup::<variant>` result.

use std::time::{Duration, Instant};

use super::bundle::Bundle;
use super::cluster::{Cluster, ClusterSettings};
use super::suite::{self, Touched};
use crate::provision::cleanup::Leftovers;
use crate::provision::Settings;
use crate::report::{chain, Event, Evidence, Sink, TrialResult, Verdict};
use crate::scenario::lifecycle::{self, Finish, NotStarted, Started, Tenancy};
use crate::scenario::plan::Trial;

/// One kube row, from its first API call to its cleanup.
pub const TRIAL_DEADLINE: Duration = Duration::from_secs(300);

/// A ready cluster, started or attached, in the lifecycle of a run.
struct Ready<'a> {
    cluster: Cluster,
    /// The run's Kata installs, named among the cluster's facts.
    base: &'a Settings,
}

impl Started for Ready<'_> {
    fn describe(&self) -> String {
        self.cluster.describe()
    }

    fn facts(&self) -> Vec<(String, String)> {
        let mut facts = self.cluster.facts();
        if let Some(kata) = &self.base.kata {
            facts.push(("kata".into(), kata.conditions.join("; ")));
        }
        if let Some(kata) = &self.base.kata_rs {
            facts.push(("kata runtime-rs".into(), kata.conditions.join("; ")));
        }
        facts
    }

    async fn run_trial(&self, trial: &Trial) -> TrialResult {
        run_trial(&self.cluster, trial).await
    }

    fn attach_evidence(&self, evidence: &mut Evidence) {
        attach_cluster_evidence(&self.cluster, evidence);
    }

    // Not `keep`: a kept cluster is kept by its own shutdown (`ClusterSettings::keep`).

    async fn shutdown(self) -> Leftovers {
        self.cluster.shutdown().await
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
    let start = async |sink: &mut dyn Sink| {
        sink.event(&Event::Note(format!(
            "{}: control-plane images (cached after the first build) and a kubeadm v{} cluster",
            bundle.label(),
            bundle.version
        )));
        let images = super::images::ensure(bundle).map_err(|e| NotStarted {
            observed: "images not built".into(),
            message: chain(&e),
            logs: Vec::new(),
        })?;
        let settings = ClusterSettings {
            bundle: bundle.clone(),
            keep: base.keep,
            kata: base.kata.clone(),
            kata_rs: base.kata_rs.clone(),
            kata_runtime_class: base.kata_runtime_class.clone(),
            containerd: base.containerd.clone(),
        };
        match Cluster::start(&settings, &images).await {
            Ok(cluster) => Ok(Ready { cluster, base }),
            Err(failure) => Err(NotStarted {
                observed: match &failure.error {
                    super::KubeError::KubeadmInit { first_error, .. } => {
                        format!("kubeadm init failed: {first_error}")
                    }
                    _ => "cluster did not start".into(),
                },
                message: chain(&failure.error),
                logs: failure.logs,
            }),
        }
    };
    let tenancy = shared(base, retries);
    lifecycle::run(&bundle.label(), trials, tenancy, start, sink, finish).await;
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
    let start = async |_: &mut dyn Sink| match Cluster::attach(&existing.kubeconfig, existing.from).await {
        Ok(cluster) => Ok(Ready { cluster, base }),
        Err(e) => Err(NotStarted {
            observed: "cluster not reachable".into(),
            message: chain(&e),
            logs: Vec::new(),
        }),
    };
    let tenancy = shared(base, retries);
    lifecycle::run(label, trials, tenancy, start, sink, finish).await;
}

/// A cluster is shared by its variant's rows in order.
fn shared(base: &Settings, retries: u32) -> Tenancy {
    Tenancy::Shared {
        retries,
        keep: base.keep,
    }
}

/// Runs one kube trial against a ready cluster (the cluster's evidence is the lifecycle's to
/// attach to a failure).
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
