//! A pod's runtime as the API server alone reports it, for an existing cluster whose node's
//! CRI is not on this host: the handler of the pod's RuntimeClass (the one the kubelet passed
//! to the CRI's RunPodSandbox), the handlers its node reports to the API (kubelet 1.30+), and
//! its containers' IDs with the runtime that started them.
//!
//! Invariant: weaker than the CRI's `runtimeType`, and said to be: every row of such a
//! cluster carries [`Cluster::runtime_condition`]; a handler that differs from the row's, a
//! handler the node does not report, or a container without an ID still fails the row.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;

use super::{Cluster, Evidence, Failure};
use crate::kube::client::{self, api_message};

/// What the API says about one pod's runtime.
#[derive(Debug)]
pub struct PodSeen {
    /// The RuntimeClass handler, `None` for the node's default.
    pub handler: Option<String>,
    /// The runtimes in the containers' IDs (`containerd`).
    pub runtimes: Vec<String>,
    pub containers: usize,
}

/// Reads one pod's runtime from the API and judges it against the handler it must have.
pub(super) async fn judge_pod(
    cluster: &Cluster,
    pod: &Pod,
    want: Option<&str>,
    evidence: &mut Evidence,
) -> Result<PodSeen, Failure> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    if statuses.is_empty() {
        return Err(Failure::new(
            format!("{name}: no container statuses"),
            "the API reports no containers for the pod",
        ));
    }
    let mut runtimes = Vec::new();
    for status in &statuses {
        match status.container_id.as_deref().and_then(|id| id.split_once("://")) {
            Some((runtime, _)) => runtimes.push(runtime.to_owned()),
            None => {
                return Err(Failure::new(
                    format!("{name}/{}: no containerID", status.name),
                    "the API reports no containerID (container not started)",
                ))
            }
        }
    }
    runtimes.sort();
    runtimes.dedup();
    let class = pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone());
    let handler = match &class {
        Some(class) => Some(
            client::runtime_class_handler(&cluster.client, cluster.runtime_class_api(), class)
                .await
                .map_err(|e| Failure::new("API error", crate::errors::chain(&e)))?,
        ),
        None => None,
    };
    evidence.file(
        &format!("pod-status-{name}.json"),
        &serde_json::to_string_pretty(&pod.status).unwrap_or_default(),
    );
    if handler.as_deref() != want {
        return Err(Failure::new(
            format!("{name}: handler {}", handler.as_deref().unwrap_or("(default)")),
            format!(
                "the pod's RuntimeClass {} has handler {}, expected {}",
                class.as_deref().unwrap_or("(none)"),
                handler.as_deref().unwrap_or("(none)"),
                want.unwrap_or("the default handler")
            ),
        ));
    }
    if let Some(handler) = &handler {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let reported = node_handlers(cluster, &node).await?;
        if !reported.is_empty() && !reported.contains(handler) {
            return Err(Failure::new(
                format!("{name}: handler {handler}, node {node} reports {reported:?}"),
                format!("node {node} does not report handler {handler} (status.runtimeHandlers)"),
            ));
        }
    }
    Ok(PodSeen {
        handler,
        runtimes,
        containers: statuses.len(),
    })
}

/// The runtime handlers a node reports (`status.runtimeHandlers`, empty before kubelet 1.30).
async fn node_handlers(cluster: &Cluster, node: &str) -> Result<Vec<String>, Failure> {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = nodes
        .get(node)
        .await
        .map_err(|e| Failure::new("API error", format!("get node {node}: {}", api_message(&e))))?;
    Ok(node
        .status
        .and_then(|s| s.runtime_handlers)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|h| h.name)
        .collect())
}

/// One line for the row: how many pods and containers, which handlers and runtimes.
pub(super) fn summary(seen: &[PodSeen]) -> String {
    let containers: usize = seen.iter().map(|s| s.containers).sum();
    let mut handlers: Vec<&str> = seen
        .iter()
        .map(|s| s.handler.as_deref().unwrap_or("default"))
        .collect();
    handlers.sort();
    handlers.dedup();
    let mut runtimes: Vec<&str> = seen
        .iter()
        .flat_map(|s| s.runtimes.iter().map(String::as_str))
        .collect();
    runtimes.sort();
    runtimes.dedup();
    format!(
        "{containers} containers in {} pods (pod status): handler {}, started by {}",
        seen.len(),
        handlers.join(","),
        runtimes.join(",")
    )
}
