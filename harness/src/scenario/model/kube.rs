//! The `kube:` row action of cluster suites (`placements: [cluster]`): its fields, its
//! validation and its one-line expectation. The checks themselves run in
//! crate::kube::suite.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{PlacementKind, Requirement, Row, Suite};

/// `kube: { check, runtime_class, handler, host_network }`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeAction {
    /// What the row does and observes.
    pub check: KubeCheck,
    /// `spec.runtimeClassName` of the row's pod or DaemonSet. Default: none (containerd's
    /// default handler, runc).
    #[serde(default)]
    pub runtime_class: Option<String>,
    /// Create RuntimeClass `runtime_class` with this containerd handler for the row (deleted
    /// afterwards). Default: none (the cluster's own classes: `kata`, `crun`).
    #[serde(default)]
    pub handler: Option<String>,
    /// The pod or DaemonSet uses the node's network (`hostNetwork: true`). Default: false.
    #[serde(default)]
    pub host_network: bool,
    /// With check `daemonset`: whether `ip -4 addr` inside the pod's container shows the
    /// node's address (CRI ExecSync). True for a runc host-network pod; false for Kata, whose
    /// VM keeps its own network even with hostNetwork. Default: not checked.
    #[serde(default)]
    pub sees_node_address: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KubeCheck {
    /// Every kube-system pod Ready, and every container and sandbox of them on
    /// `expect.runtime_type` (CRI). Needs `expect.runtime_type`.
    SystemPods,
    /// A DaemonSet of ours lands on the node; its pod's containers and sandbox on
    /// `expect.runtime_type` (and `expect.binary_name`).
    Daemonset,
    /// A web pod (busybox httpd) Ready and answering HTTP from another pod; its containers
    /// and sandbox on `expect.runtime_type` (and `expect.binary_name`).
    WebPod,
    /// A pod the API server must refuse: `expect.rejected` is part of the error message.
    PodRejected,
    /// A pod that stays Pending with an event of reason `expect.event`, and no sandbox.
    PodPending,
    /// A pod whose liveness probe starts failing is restarted by the kubelet (restartCount
    /// 1, running again); its containers and sandbox on `expect.runtime_type`
    /// (k8s-liveness-probes.bats).
    LivenessRestart,
    /// RuntimeClass `runtime_class` made with `overhead.podFixed` (cpu 250m, memory 160Mi, as
    /// kata-deploy sets them): the API copies it into the pod's `spec.overhead`, and the pod
    /// runs on `expect.runtime_type`. Needs `handler` (the row makes the class).
    PodOverhead,
    /// A pod with a ConfigMap volume; the ConfigMap is updated and the new value must reach
    /// the running container (read with kubectl exec) within 150 s (k8s-configmap.bats; Kata
    /// copies such volumes into the guest and watches them).
    ConfigmapUpdate,
}

impl KubeCheck {
    pub fn name(self) -> &'static str {
        match self {
            KubeCheck::SystemPods => "system-pods",
            KubeCheck::Daemonset => "daemonset",
            KubeCheck::WebPod => "web-pod",
            KubeCheck::PodRejected => "pod-rejected",
            KubeCheck::PodPending => "pod-pending",
            KubeCheck::LivenessRestart => "liveness-restart",
            KubeCheck::PodOverhead => "pod-overhead",
            KubeCheck::ConfigmapUpdate => "configmap-update",
        }
    }
}

/// Checks a `kube:` row; the error names the offending field.
pub fn validate_row(row: &Row, action: &KubeAction) -> Result<(), (&'static str, String)> {
    let e = &row.expect;
    let foreign = e.error.is_some()
        || e.cri_visible.is_some()
        || e.oci_runtime.is_some()
        || e.vmm_process.is_some()
        || e.pulled.is_some()
        || e.command_error.is_some()
        || e.within_seconds.is_some();
    if foreign {
        return Err((
            "expect",
            "a kube row expects runtime_type (+ binary_name), rejected or event".into(),
        ));
    }
    let check = action.check.name();
    if action.sees_node_address.is_some() && action.check != KubeCheck::Daemonset {
        return Err((
            "kube.sees_node_address",
            format!("only a daemonset row looks into its pod's network (this is {check})"),
        ));
    }
    match action.check {
        KubeCheck::SystemPods
        | KubeCheck::Daemonset
        | KubeCheck::WebPod
        | KubeCheck::LivenessRestart
        | KubeCheck::PodOverhead
        | KubeCheck::ConfigmapUpdate => {
            if e.runtime_type.is_none() {
                return Err((
                    "expect.runtime_type",
                    format!("a {check} row must expect a runtime_type"),
                ));
            }
            if e.rejected.is_some() || e.event.is_some() {
                return Err((
                    "expect",
                    format!("a {check} row expects a running pod, not rejected/event"),
                ));
            }
        }
        KubeCheck::PodRejected => {
            if e.rejected.is_none() || e.runtime_type.is_some() || e.event.is_some() {
                return Err((
                    "expect.rejected",
                    "a pod-rejected row expects only `rejected`".into(),
                ));
            }
        }
        KubeCheck::PodPending => {
            if e.event.is_none() || e.runtime_type.is_some() || e.rejected.is_some() {
                return Err(("expect.event", "a pod-pending row expects only `event`".into()));
            }
        }
    }
    if action.check == KubeCheck::SystemPods && (action.runtime_class.is_some() || action.host_network) {
        return Err((
            "kube.runtime_class",
            "system-pods observes kubeadm's pods: no runtime_class or host_network".into(),
        ));
    }
    if matches!(action.check, KubeCheck::PodRejected | KubeCheck::PodPending)
        && action.runtime_class.is_none()
    {
        return Err((
            "kube.runtime_class",
            format!("a {check} row names a runtime_class"),
        ));
    }
    if action.check == KubeCheck::PodOverhead && action.handler.is_none() {
        return Err((
            "kube.handler",
            "a pod-overhead row makes its RuntimeClass (with the overhead): name its handler".into(),
        ));
    }
    if action.handler.is_some() && action.runtime_class.is_none() {
        return Err((
            "kube.handler",
            "creates RuntimeClass `runtime_class`: name one".into(),
        ));
    }
    for name in [&action.runtime_class, &action.handler].into_iter().flatten() {
        Requirement::check(
            &row.requires,
            Requirement::for_handler(name),
            "RuntimeClass or handler",
        )
        .map_err(|e| ("requires", e))?;
    }
    Ok(())
}

/// A runc control for the suite's Kata rows: pods without a RuntimeClass on runc.
pub fn is_runc_control(row: &Row) -> bool {
    row.kube().is_some_and(|k| {
        matches!(
            k.check,
            KubeCheck::SystemPods | KubeCheck::Daemonset | KubeCheck::WebPod
        ) && k.runtime_class.is_none()
    }) && row.expect.runtime_type.as_deref() == Some("io.containerd.runc.v2")
}

/// `kube` rows live in suites declaring `placements: [cluster]`, and such suites hold only them.
pub fn validate_placements(suite: &Suite) -> Result<(), (String, String)> {
    let cluster = suite.placements.contains(&PlacementKind::Cluster);
    if cluster && suite.placements.len() > 1 {
        return Err((
            "field placements: ".into(),
            "a cluster suite runs on the cluster only: `placements: [cluster]`".into(),
        ));
    }
    for (index, row) in suite.rows.iter().enumerate() {
        if row.kube().is_some() != cluster {
            let message = if cluster {
                "a row of a `placements: [cluster]` suite needs a kube action"
            } else {
                "a kube row needs a suite with `placements: [cluster]`"
            };
            return Err((
                format!("row {} ({}), field kube: ", index + 1, row.scenario),
                message.into(),
            ));
        }
    }
    let names: BTreeSet<_> = suite.placements.iter().collect();
    if names.len() != suite.placements.len() {
        return Err(("field placements: ".into(), "lists a placement twice".into()));
    }
    Ok(())
}

/// The expectation of a kube row in one line.
pub fn expected_summary(row: &Row) -> Option<String> {
    let action = row.kube()?;
    let e = &row.expect;
    let runtime = || {
        let mut text = e.runtime_type.clone().unwrap_or_default();
        if let Some(binary) = &e.binary_name {
            text += &format!(", BinaryName={binary}");
        }
        text
    };
    Some(match action.check {
        KubeCheck::SystemPods => format!(
            "every kube-system pod Ready; all containers and sandboxes {}",
            runtime()
        ),
        KubeCheck::Daemonset => format!("DaemonSet pod Ready; {}", runtime()),
        KubeCheck::WebPod => format!("Running, serves HTTP to another pod; {}", runtime()),
        KubeCheck::LivenessRestart => format!("restarted by its liveness probe; {}", runtime()),
        KubeCheck::PodOverhead => format!("spec.overhead from the RuntimeClass; {}", runtime()),
        KubeCheck::ConfigmapUpdate => format!("ConfigMap update seen in the container; {}", runtime()),
        KubeCheck::PodRejected => format!("rejected by the API: {}", e.rejected.clone().unwrap_or_default()),
        KubeCheck::PodPending => format!("Pending, event {}", e.event.clone().unwrap_or_default()),
    })
}
