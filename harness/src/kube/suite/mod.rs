//! The `kube:` row action: Kubernetes checks against a running [`Cluster`], and their validation.
//!
//! Invariant: every runtime claim is read back through the CRI (`ContainerStatus` and
//! `PodSandboxStatus` verbose `info.runtimeType`, with the container IDs the API server
//! reports), never inferred from the pod spec; on an existing cluster whose node's CRI is not
//! on this host, from the API alone (each pod's RuntimeClass handler, the handlers its node
//! reports, its started containers), and its rows carry that condition; every object a row
//! creates is deleted before the row ends, and the row waits until its pods are gone.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

use super::client::{self, api_message, container_ids, pod_phase, pod_ready};
use super::cluster::Cluster;
use super::images::WORKLOAD_IMAGE;
use crate::cri::{CriClient, RuntimeInfo};
use crate::process::shell_quote;
use crate::report::bundle::RUNTIME_TYPE_TEMPLATE;
use crate::report::Evidence;
use crate::scenario::model::kube::{KubeAction, KubeCheck};
use crate::scenario::model::Row;
use crate::wait::{wait_for, Attempt};

mod checks;
mod status;
mod workloads;
use checks::{daemonset, pod_pending, pod_rejected, system_pods, web_pod};

const POD_READY_DEADLINE: Duration = Duration::from_secs(120);
const CLIENT_DEADLINE: Duration = Duration::from_secs(90);
const EVENT_DEADLINE: Duration = Duration::from_secs(90);
const GONE_DEADLINE: Duration = Duration::from_secs(90);
const WEB_PORT: u16 = 8080;
/// What the web pod serves: the client pod must read it back.
const WEB_BODY: &str = "kata-harness web";

/// A failed judgement: what was seen, and why it is wrong.
#[derive(Debug)]
pub struct Failure {
    pub observed: String,
    pub message: String,
}

impl Failure {
    fn new(observed: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            observed: observed.into(),
            message: message.into(),
        }
    }
}

/// Objects a row created (for describe in the failure bundle, and cleanup).
#[derive(Debug, Default)]
pub struct Touched {
    pub pods: Vec<String>,
    pub daemonsets: Vec<String>,
    pub runtime_classes: Vec<String>,
    pub configmaps: Vec<String>,
}

fn unique(prefix: &str) -> String {
    use sha2::{Digest, Sha256};
    let seed = format!("{prefix}{:?}", std::time::SystemTime::now());
    format!(
        "kh-{prefix}-{}",
        hex::encode(&Sha256::digest(seed.as_bytes())[..3])
    )
}

/// Runs one kube row; deletes what it created whatever the outcome.
pub async fn run_row(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    // The row's own RuntimeClass first, where it names a handler (cleaned up with the rest).
    let outcome = match ensure_class(cluster, action, touched).await {
        Err(failure) => Err(failure),
        Ok(()) => run_check(cluster, row, action, evidence, touched).await,
    };
    // Describe what the row created while it still exists: the failure bundle's first witness.
    if outcome.is_err() {
        for pod in &touched.pods {
            evidence.file(
                &format!("describe-pod-{pod}.txt"),
                &cluster.kubectl(&["describe", "pod", "-n", &cluster.namespace, pod]),
            );
        }
    }
    let cleaned = clean_up(cluster, touched).await;
    let observed = outcome?;
    cleaned.map_err(|message| Failure::new(observed.clone(), message))?;
    Ok(observed)
}

/// The row's check, by its kind.
async fn run_check(
    cluster: &Cluster,
    row: &Row,
    action: &KubeAction,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<String, Failure> {
    match action.check {
        KubeCheck::SystemPods => system_pods(cluster, row, evidence).await,
        KubeCheck::Daemonset => daemonset(cluster, row, action, evidence, touched).await,
        KubeCheck::WebPod => web_pod(cluster, row, action, evidence, touched).await,
        KubeCheck::PodRejected => pod_rejected(cluster, row, action, evidence, touched).await,
        KubeCheck::PodPending => pod_pending(cluster, row, action, evidence, touched).await,
        KubeCheck::LivenessRestart => {
            workloads::liveness_restart(cluster, row, action, evidence, touched).await
        }
        KubeCheck::PodOverhead => workloads::pod_overhead(cluster, row, action, evidence, touched).await,
        KubeCheck::ConfigmapUpdate => {
            workloads::configmap_update(cluster, row, action, evidence, touched).await
        }
    }
}

/// Deletes the row's objects and waits until its pods are gone.
pub async fn clean_up(cluster: &Cluster, touched: &Touched) -> Result<(), String> {
    let c = &cluster.client;
    for ds in &touched.daemonsets {
        let api: Api<DaemonSet> = Api::namespaced(c.clone(), &cluster.namespace);
        let _ = api.delete(ds, &DeleteParams::background()).await;
    }
    for pod in &touched.pods {
        client::delete_pod_now(c, &cluster.namespace, pod).await;
    }
    for map in &touched.configmaps {
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(c.clone(), &cluster.namespace);
        let _ = api.delete(map, &DeleteParams::default()).await;
    }
    for class in &touched.runtime_classes {
        client::delete_runtime_class(c, cluster.runtime_class_api(), class).await;
    }
    let pods: Api<Pod> = Api::namespaced(c.clone(), &cluster.namespace);
    let names = touched.pods.clone();
    let labels: Vec<String> = touched.daemonsets.clone();
    wait_for(
        "the row's pods to be gone",
        GONE_DEADLINE,
        Duration::from_millis(500),
        || {
            let pods = pods.clone();
            let names = names.clone();
            let labels = labels.clone();
            async move {
                let list = match pods.list(&ListParams::default()).await {
                    Ok(list) => list,
                    Err(e) => return Attempt::NotYet(e.to_string()),
                };
                let left: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .filter(|n| names.contains(n) || labels.iter().any(|l| n.starts_with(l.as_str())))
                    .collect();
                // DaemonSet pods are deleted by the garbage collector; delete them now too.
                for name in &left {
                    let _ = pods.delete(name, &DeleteParams::default().grace_period(0)).await;
                }
                if left.is_empty() {
                    Attempt::Ready(())
                } else {
                    Attempt::NotYet(format!("still there: {left:?}"))
                }
            }
        },
    )
    .await
    .map_err(|e| format!("cleanup: {e}"))
}

/// One container or sandbox as the CRI reports it.
struct Seen {
    what: String,
    info: RuntimeInfo,
}

/// Reads and judges the runtime of `pods`: through the node's CRI, or from the API where
/// the cluster is read without it. `handler` is the RuntimeClass handler they must have.
async fn runtime_of(
    cluster: &Cluster,
    row: &Row,
    handler: Option<&str>,
    pods: &[&Pod],
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let Some(cri) = cluster.cri() else {
        let mut observed = Vec::new();
        for pod in pods {
            observed.push(status::judge_pod(cluster, pod, handler, evidence).await?);
        }
        return Ok(status::summary(&observed));
    };
    let mut seen = Vec::new();
    for pod in pods {
        seen.extend(observe_pod(cri, pod, evidence).await?);
    }
    judge(row, handler, &seen)
}

/// Reads the runtime of every container of `pod`, and of its sandbox, through the CRI.
async fn observe_pod(cri: &CriClient, pod: &Pod, evidence: &mut Evidence) -> Result<Vec<Seen>, Failure> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    // reproduce.sh finds the pod by name, as kubectl apply (re)created it: never the IDs of
    // the failed run.
    evidence.reproduce(format!(
        "POD=$(crictl pods --namespace {} --name {} --latest -q)",
        shell_quote(&format!("^{namespace}$")),
        shell_quote(&format!("^{name}$"))
    ));
    evidence.reproduce(format!("crictl inspectp {RUNTIME_TYPE_TEMPLATE} \"$POD\""));
    let mut seen = Vec::new();
    let mut sandboxes = BTreeSet::new();
    let ids = container_ids(pod);
    if ids.is_empty() {
        return Err(Failure::new(
            format!("{name}: no container statuses"),
            "the API reports no containers for the pod",
        ));
    }
    for (container, id) in ids {
        let Some(id) = id else {
            return Err(Failure::new(
                format!("{name}/{container}: no containerID"),
                "the API reports no containerID (container not started)",
            ));
        };
        // CRI: ContainerStatus verbose info.runtimeType (crictl inspect <containerID>)
        let status = cri.container_status(&id).await.map_err(|e| {
            Failure::new(
                "ContainerStatus failed",
                format!("ContainerStatus {id} ({name}/{container}): {e}"),
            )
        })?;
        let info = RuntimeInfo::from_verbose_info("container", &status.info)
            .map_err(|e| Failure::new("unreadable", e.to_string()))?;
        evidence.file(
            &format!("inspect-{name}-{container}.json"),
            status.info.get("info").map(String::as_str).unwrap_or("{}"),
        );
        evidence.reproduce(format!(
            "crictl inspect {RUNTIME_TYPE_TEMPLATE} \"$(crictl ps --pod \"$POD\" --name {} --latest -q)\"",
            shell_quote(&format!("^{container}$"))
        ));
        if let Some(sandbox) = &info.sandbox_id {
            sandboxes.insert(sandbox.clone());
        }
        seen.push(Seen {
            what: format!("{name}/{container}"),
            info,
        });
    }
    for sandbox in sandboxes {
        // CRI: PodSandboxStatus verbose info.runtimeType (crictl inspectp)
        let status = cri.pod_sandbox_status(&sandbox).await.map_err(|e| {
            Failure::new(
                "PodSandboxStatus failed",
                format!("PodSandboxStatus {sandbox} ({name}): {e}"),
            )
        })?;
        let info = RuntimeInfo::from_verbose_info("sandbox", &status.info)
            .map_err(|e| Failure::new("unreadable", e.to_string()))?;
        seen.push(Seen {
            what: format!("{name} (sandbox)"),
            info,
        });
    }
    Ok(seen)
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned())
}

/// Every container and sandbox must report the expected runtime type (and BinaryName), and a
/// sandbox of a RuntimeClass pod must report that class's handler.
fn judge(row: &Row, handler: Option<&str>, seen: &[Seen]) -> Result<String, Failure> {
    let want = row.expect.runtime_type.as_deref().unwrap_or_default();
    let mut problems = Vec::new();
    let mut types = BTreeSet::new();
    let mut binaries = BTreeSet::new();
    let mut handlers = BTreeSet::new();
    let mut options = BTreeSet::new();
    for s in seen {
        types.insert(s.info.runtime_type.clone());
        if s.info.runtime_type != want {
            problems.push(format!(
                "{} runtimeType is {}, expected {want}",
                s.what, s.info.runtime_type
            ));
        }
        let binary = s.info.binary_name().map(file_name);
        if let Some(b) = &binary {
            binaries.insert(b.clone());
        }
        if let Some(want_binary) = &row.expect.binary_name {
            if binary.as_deref() != Some(want_binary.as_str()) {
                problems.push(format!(
                    "{} BinaryName is {}, expected {want_binary}",
                    s.what,
                    binary.as_deref().unwrap_or("(none: runc)")
                ));
            }
        }
        if let Some(h) = &s.info.runtime_handler {
            handlers.insert(h.clone());
            if let Some(want_handler) = handler {
                if h != want_handler {
                    problems.push(format!(
                        "{} runtimeHandler is {h}, expected {want_handler}",
                        s.what
                    ));
                }
            }
        }
        if let Some(o) = &s.info.runtime_options {
            options.insert(o.to_string());
        }
    }
    let containers = seen.iter().filter(|s| !s.what.ends_with("(sandbox)")).count();
    let mut observed = format!(
        "{containers} containers + {} sandboxes: {}",
        seen.len() - containers,
        types.into_iter().collect::<Vec<_>>().join(", ")
    );
    if !binaries.is_empty() {
        observed += &format!(
            ", BinaryName={}",
            binaries.into_iter().collect::<Vec<_>>().join(",")
        );
    }
    if handler.is_some() && !handlers.is_empty() {
        observed += &format!(", handler {}", handlers.into_iter().collect::<Vec<_>>().join(","));
    }
    if row.expect.binary_name.is_some() && !options.is_empty() {
        observed += &format!(", options {}", options.into_iter().collect::<Vec<_>>().join(" "));
    }
    if problems.is_empty() {
        Ok(observed)
    } else {
        Err(Failure::new(observed, problems.join("; ")))
    }
}

fn pod_json(name: &str, action: &KubeAction, command: &str, restart: &str, probe: bool) -> serde_json::Value {
    let mut container = json!({
        "name": "main",
        "image": WORKLOAD_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", command],
    });
    if probe {
        container["readinessProbe"] = json!({ "tcpSocket": { "port": WEB_PORT }, "periodSeconds": 1 });
    }
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "restartPolicy": restart,
        "hostNetwork": action.host_network,
        "containers": [container],
    });
    if let Some(class) = &action.runtime_class {
        spec["runtimeClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "kata-harness" } },
        "spec": spec,
    })
}

async fn create_pod(
    cluster: &Cluster,
    value: serde_json::Value,
    evidence: &mut Evidence,
) -> Result<Pod, kube::Error> {
    let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    evidence.file(
        &format!("{name}.json"),
        &serde_json::to_string_pretty(&value).unwrap_or_default(),
    );
    evidence.reproduce(format!("{} apply -f {name}.json", cluster.kubectl_prefix()));
    let pod: Pod = serde_json::from_value(value).expect("pod literals deserialise");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    pods.create(&PostParams::default(), &pod).await
}

/// Creates the row's pod `value` (its name kept for cleanup), an API error the row's failure.
async fn create_row_pod(
    cluster: &Cluster,
    value: serde_json::Value,
    evidence: &mut Evidence,
    touched: &mut Touched,
) -> Result<Pod, Failure> {
    let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    touched.pods.push(name.clone());
    create_pod(cluster, value, evidence)
        .await
        .map_err(|e| Failure::new("API error", format!("create pod {name}: {}", api_message(&e))))
}

/// Waits until `accept` holds for pod `name`; gives up at once if the cluster is gone.
async fn wait_pod(
    cluster: &Cluster,
    name: &str,
    what: &str,
    deadline: Duration,
    accept: impl Fn(&Pod) -> bool,
) -> Result<Pod, Failure> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let accept = &accept;
    wait_for(what, deadline, Duration::from_millis(300), || {
        let pods = pods.clone();
        let gone = cluster.gone();
        async move {
            if let Some(why) = gone {
                return Attempt::Fatal(why);
            }
            match pods.get_opt(name).await {
                Ok(Some(pod)) if accept(&pod) => Attempt::Ready(pod),
                Ok(Some(pod)) => Attempt::NotYet(format!("phase {}", pod_phase(&pod))),
                Ok(None) => Attempt::NotYet("no such pod".into()),
                Err(e) => Attempt::NotYet(e.to_string()),
            }
        }
    })
    .await
    .map_err(|e| Failure::new(format!("{name} not there"), e.to_string()))
}

async fn ensure_class(cluster: &Cluster, action: &KubeAction, touched: &mut Touched) -> Result<(), Failure> {
    if let (Some(class), Some(handler)) = (&action.runtime_class, &action.handler) {
        let overhead = (action.check == KubeCheck::PodOverhead).then(workloads::pod_fixed);
        client::create_runtime_class(
            &cluster.client,
            cluster.runtime_class_api(),
            class,
            handler,
            overhead.as_ref(),
        )
        .await
        .map_err(|e| Failure::new("API error", crate::errors::chain(&e)))?;
        touched.runtime_classes.push(class.clone());
    }
    Ok(())
}

/// The RuntimeClass handler a pod of this row must get on `cluster` (None: the default
/// handler).
fn handler_of(cluster: &Cluster, action: &KubeAction) -> Option<String> {
    action.handler.clone().or_else(|| {
        let class = action.runtime_class.as_deref()?;
        super::cluster::runtime_classes(&cluster.kata_class_handler)
            .into_iter()
            .find(|(name, _)| *name == class)
            .map(|(_, handler)| handler)
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario::model::Suite;

    const GOOD: &str = r#"
suite: kubernetes
placements: [cluster]
rows:
  - scenario: system-pods-on-runc
    kube: { check: system-pods }
    expect: { runtime_type: io.containerd.runc.v2 }
  - scenario: crun-web
    kube: { check: web-pod, runtime_class: crun }
    expect: { runtime_type: io.containerd.runc.v2, binary_name: crun }
  - scenario: missing
    kube: { check: pod-rejected, runtime_class: nope }
    expect: { rejected: 'RuntimeClass "nope" not found' }
  - scenario: unconfigured
    kube: { check: pod-pending, runtime_class: unconfigured, handler: no-such-handler }
    expect: { event: FailedCreatePodSandBox }
  - scenario: kata-web
    requires: [kata]
    kube: { check: web-pod, runtime_class: kata }
    expect: { runtime_type: io.containerd.kata.v2 }
"#;

    fn parse(text: &str) -> Result<Suite, String> {
        Suite::parse(Path::new("suites/k.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn good_cluster_suite_loads() {
        let suite = parse(GOOD).unwrap();
        assert_eq!(suite.rows.len(), 5);
        assert_eq!(
            suite.rows[1].expected_summary(),
            "Running, serves HTTP to another pod; io.containerd.runc.v2, BinaryName=crun"
        );
    }

    #[test]
    fn kube_rows_need_a_cluster_suite() {
        let err = parse(&GOOD.replace("placements: [cluster]\n", "")).unwrap_err();
        assert!(err.contains("row 1 (system-pods-on-runc), field kube"), "{err}");
    }

    #[test]
    fn kata_kube_rows_declare_the_requirement() {
        let err = parse(&GOOD.replace("    requires: [kata]\n", "")).unwrap_err();
        assert!(err.contains("row 5 (kata-web), field requires"), "{err}");
    }

    #[test]
    fn pending_rows_expect_an_event() {
        let err = parse(&GOOD.replace("{ event: FailedCreatePodSandBox }", "{ rejected: x }")).unwrap_err();
        assert!(err.contains("row 4 (unconfigured), field expect.event"), "{err}");
    }

    #[test]
    fn unknown_check_is_an_error() {
        let err = parse(&GOOD.replace("check: system-pods", "check: sytem-pods")).unwrap_err();
        assert!(err.contains("sytem-pods"), "{err}");
    }
}
