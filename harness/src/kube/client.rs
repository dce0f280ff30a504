//! The Kubernetes client facade: one `kube::Client` from the admin kubeconfig, and the few
//! helpers the suite repeats (readiness, pods' container IDs, events, RuntimeClasses).
//!
//! Invariant: typed objects (k8s-openapi core/v1, apps/v1, node.k8s.io/v1, which a 1.20 API
//! server serves), except RuntimeClasses of clusters before 1.20: `node.k8s.io/v1beta1`, which
//! k8s-openapi 0.29 has no types for, goes through a `DynamicObject` of the same shape.
//! `kube::Error` is kept whole so callers can branch on the API status.

use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

use super::KubeError;
use crate::profile::Version;

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

/// The RuntimeClass API a cluster speaks: `node.k8s.io/v1beta1` before 1.20 (v1 does not
/// exist there), `node.k8s.io/v1` from 1.20 (v1beta1 is gone from 1.25). Same shape in both:
/// `metadata`, `handler` at the top level, optional `overhead` and `scheduling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeClassApi {
    V1Beta1,
    V1,
}

impl RuntimeClassApi {
    /// The API for a cluster of this Kubernetes version.
    pub fn for_version(version: Version) -> Self {
        if version < Version::new(1, 20, 0) {
            RuntimeClassApi::V1Beta1
        } else {
            RuntimeClassApi::V1
        }
    }

    /// Whether a server of this version serves `node.k8s.io/v1beta1` (1.14 to 1.24).
    pub fn v1beta1_served(version: Version) -> bool {
        version >= Version::new(1, 14, 0) && version < Version::new(1, 25, 0)
    }

    pub fn api_version(self) -> &'static str {
        match self {
            RuntimeClassApi::V1Beta1 => "node.k8s.io/v1beta1",
            RuntimeClassApi::V1 => "node.k8s.io/v1",
        }
    }

    /// The resource for dynamic calls (`/apis/node.k8s.io/<version>/runtimeclasses`).
    pub fn resource(self) -> ApiResource {
        let version = self.api_version().trim_start_matches("node.k8s.io/");
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("node.k8s.io", version, "RuntimeClass"),
            "runtimeclasses",
        )
    }

    fn dynamic(self, client: &kube::Client) -> Api<DynamicObject> {
        Api::all_with(client.clone(), &self.resource())
    }
}

/// A RuntimeClass of this API version as a dynamic object.
pub fn runtime_class_object(api: RuntimeClassApi, name: &str, handler: &str) -> DynamicObject {
    DynamicObject::new(name, &api.resource()).data(serde_json::json!({ "handler": handler }))
}

/// The typed node.k8s.io/v1 RuntimeClass.
pub fn runtime_class_v1(name: &str, handler: &str) -> RuntimeClass {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": { "name": name },
        "handler": handler,
    }))
    .expect("a RuntimeClass literal deserialises")
}

/// A pod's fixed overhead on a RuntimeClass (`overhead.podFixed`: `cpu: 250m`, `memory: 160Mi`).
pub type PodFixed = std::collections::BTreeMap<String, String>;

/// Creates a RuntimeClass through `api`, with `overhead` as its `overhead.podFixed`; one that
/// already exists is fine.
pub async fn create_runtime_class(
    client: &kube::Client,
    api: RuntimeClassApi,
    name: &str,
    handler: &str,
    overhead: Option<&PodFixed>,
) -> Result<(), KubeError> {
    let overhead = overhead.map(|fixed| serde_json::json!({ "podFixed": fixed }));
    let created = match api {
        RuntimeClassApi::V1 => {
            let classes: Api<RuntimeClass> = Api::all(client.clone());
            let mut class = runtime_class_v1(name, handler);
            class.overhead =
                overhead.map(|o| serde_json::from_value(o).expect("podFixed quantities deserialise"));
            classes.create(&PostParams::default(), &class).await.map(drop)
        }
        RuntimeClassApi::V1Beta1 => {
            let mut object = runtime_class_object(api, name, handler);
            if let Some(overhead) = overhead {
                object.data["overhead"] = overhead;
            }
            api.dynamic(client)
                .create(&PostParams::default(), &object)
                .await
                .map(drop)
        }
    };
    match created {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(KubeError::Api {
            call: format!(
                "create RuntimeClass {name} (handler {handler}, {})",
                api.api_version()
            ),
            source,
        }),
    }
}

/// The names of the cluster's RuntimeClasses.
pub async fn runtime_class_names(
    client: &kube::Client,
    api: RuntimeClassApi,
) -> Result<Vec<String>, KubeError> {
    let listed = api
        .dynamic(client)
        .list(&ListParams::default())
        .await
        .map_err(|source| KubeError::Api {
            call: format!("list RuntimeClasses ({})", api.api_version()),
            source,
        })?;
    Ok(listed.items.into_iter().filter_map(|c| c.metadata.name).collect())
}

/// The handler RuntimeClass `name` names, as the API server has it.
pub async fn runtime_class_handler(
    client: &kube::Client,
    api: RuntimeClassApi,
    name: &str,
) -> Result<String, KubeError> {
    let class = api
        .dynamic(client)
        .get(name)
        .await
        .map_err(|source| KubeError::Api {
            call: format!("get RuntimeClass {name} ({})", api.api_version()),
            source,
        })?;
    Ok(class.data["handler"].as_str().unwrap_or_default().to_owned())
}

pub async fn delete_runtime_class(client: &kube::Client, api: RuntimeClassApi, name: &str) {
    let _ = match api {
        RuntimeClassApi::V1 => {
            let classes: Api<RuntimeClass> = Api::all(client.clone());
            classes.delete(name, &DeleteParams::default()).await.map(drop)
        }
        RuntimeClassApi::V1Beta1 => api
            .dynamic(client)
            .delete(name, &DeleteParams::default())
            .await
            .map(drop),
    };
}

/// Creates RuntimeClass `name` through node.k8s.io/v1beta1 and reads it back through the typed
/// node.k8s.io/v1 (a 1.20 to 1.24 server serves both): proves the pre-1.20 path against a
/// real API server. The class is deleted (through v1beta1) afterwards.
pub async fn check_v1beta1_round_trip(
    client: &kube::Client,
    name: &str,
    handler: &str,
) -> Result<(), KubeError> {
    let api_err = |call: &str| {
        let call = format!("{call} RuntimeClass {name}");
        move |source| KubeError::Api { call, source }
    };
    let beta = RuntimeClassApi::V1Beta1;
    beta.dynamic(client)
        .create(&PostParams::default(), &runtime_class_object(beta, name, handler))
        .await
        .map_err(api_err("create (node.k8s.io/v1beta1)"))?;
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    let read = classes.get(name).await.map_err(api_err("get (node.k8s.io/v1)"));
    let deleted = beta
        .dynamic(client)
        .delete(name, &DeleteParams::default())
        .await
        .map_err(api_err("delete (node.k8s.io/v1beta1)"));
    let found = read?.handler;
    deleted?;
    if found != handler {
        return Err(KubeError::RuntimeClassRoundTrip {
            name: name.into(),
            handler: handler.into(),
            found: Some(found),
        });
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtime_class_api_follows_the_cluster_version() {
        let api = |major, minor, patch| RuntimeClassApi::for_version(Version::new(major, minor, patch));
        assert_eq!(api(1, 14, 0), RuntimeClassApi::V1Beta1);
        assert_eq!(api(1, 19, 16), RuntimeClassApi::V1Beta1);
        assert_eq!(api(1, 20, 0), RuntimeClassApi::V1);
        assert_eq!(api(1, 20, 2), RuntimeClassApi::V1);
        assert_eq!(api(1, 33, 0), RuntimeClassApi::V1);
        assert!(RuntimeClassApi::v1beta1_served(Version::new(1, 20, 2)));
        assert!(RuntimeClassApi::v1beta1_served(Version::new(1, 24, 9)));
        assert!(!RuntimeClassApi::v1beta1_served(Version::new(1, 25, 0)));
        assert!(!RuntimeClassApi::v1beta1_served(Version::new(1, 13, 0)));
    }

    #[test]
    fn v1beta1_runtime_class_has_the_handler_at_the_top_level() {
        let object = runtime_class_object(RuntimeClassApi::V1Beta1, "kata", "kata-qemu");
        assert_eq!(
            serde_json::to_value(&object).unwrap(),
            json!({
                "apiVersion": "node.k8s.io/v1beta1",
                "kind": "RuntimeClass",
                "metadata": { "name": "kata" },
                "handler": "kata-qemu",
            })
        );
        let resource = RuntimeClassApi::V1Beta1.resource();
        assert_eq!(
            (
                resource.group.as_str(),
                resource.version.as_str(),
                resource.plural.as_str()
            ),
            ("node.k8s.io", "v1beta1", "runtimeclasses")
        );
    }

    #[test]
    fn v1_typed_and_dynamic_runtime_classes_have_the_same_shape() {
        let typed = serde_json::to_value(runtime_class_v1("crun", "crun")).unwrap();
        let dynamic =
            serde_json::to_value(runtime_class_object(RuntimeClassApi::V1, "crun", "crun")).unwrap();
        assert_eq!(typed, dynamic);
        assert_eq!(typed["apiVersion"], "node.k8s.io/v1");
        assert_eq!(typed["handler"], "crun");
    }
}
