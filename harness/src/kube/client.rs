//! The Kubernetes client facade: one `kube::Client` from the admin kubeconfig, and the few
//! helpers the suite repeats (readiness, pods' container IDs, events, RuntimeClasses).
//!
//! Invariant: typed objects only (k8s-openapi core/v1, apps/v1, node.k8s.io/v1, which a 1.20
//! API server serves); `kube::Error` is kept whole so callers can branch on the API status.

use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeError;

/// A client for the cluster behind an admin kubeconfig.
pub async fn connect(kubeconfig: &Path) -> Result<kube::Client, KubeError> {
    let config = Kubeconfig::read_from(kubeconfig).map_err(|source| KubeError::Kubeconfig {
        path: kubeconfig.to_owned(),
        source,
    })?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .map_err(|source| KubeError::Kubeconfig {
            path: kubeconfig.to_owned(),
            source,
        })?;
    kube::Client::try_from(config).map_err(KubeError::Client)
}

pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Phase Running and condition Ready: a crash-looping container shows Running between restarts.
pub fn pod_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into())
}

/// `(container name, CRI container ID)` of every container status: `containerd://<id>` stripped.
pub fn container_ids(pod: &Pod) -> Vec<(String, Option<String>)> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|statuses| {
            statuses
                .iter()
                .map(|c| {
                    let id = c
                        .container_id
                        .as_deref()
                        .map(|id| id.split_once("://").map(|(_, id)| id).unwrap_or(id).to_owned());
                    (c.name.clone(), id)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Events about one object, oldest first.
pub async fn events_for(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Event>, kube::Error> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?;
    let mut items = list.items;
    items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    Ok(items)
}

/// Creates a RuntimeClass (node.k8s.io/v1); one that already exists is fine.
pub async fn create_runtime_class(client: &kube::Client, name: &str, handler: &str) -> Result<(), KubeError> {
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    let class: RuntimeClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": { "name": name },
        "handler": handler,
    }))
    .expect("a RuntimeClass literal deserialises");
    match classes.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(KubeError::Api {
            call: format!("create RuntimeClass {name} (handler {handler})"),
            source,
        }),
    }
}

pub async fn delete_runtime_class(client: &kube::Client, name: &str) {
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    let _ = classes.delete(name, &DeleteParams::default()).await;
}

/// Deletes a pod at once (grace period 0); a pod that is already gone is fine.
pub async fn delete_pod_now(client: &kube::Client, namespace: &str, name: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let _ = pods.delete(name, &DeleteParams::default().grace_period(0)).await;
}

/// The message of an API error (`kube::Error::Api`), or the whole error.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({}): {}", status.reason, status.code, status.message),
        other => other.to_string(),
    }
}
