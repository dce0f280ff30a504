//! An existing cluster, reached with its kubeconfig (`--kubeconfig FILE`): nothing is
//! started, configured or torn down; the rows create their own objects and delete them.
//!
//! Invariant: runtime claims are still read back through the node's CRI, so the node's CRI
//! socket (the `kubeadm.alpha.kubernetes.io/cri-socket` annotation kubeadm writes, else
//! containerd's default) must be on this host; a cluster whose node is elsewhere is refused
//! with that reason rather than judged from the pod spec.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::{short_id, Cluster};
use crate::cri::CriClient;
use crate::kube::bundle::Bundle;
use crate::kube::{client, io_err, KubeError};
use crate::profile::Version;
use crate::wait::{wait_for, Attempt};

/// How long the run's namespace may take to get its ServiceAccount, or to go.
const NAMESPACE_DEADLINE: Duration = Duration::from_secs(90);

/// kubeadm records the node's CRI endpoint here.
const CRI_SOCKET_ANNOTATION: &str = "kubeadm.alpha.kubernetes.io/cri-socket";
const DEFAULT_CRI_SOCKET: &str = "/run/containerd/containerd.sock";

fn refuse(kubeconfig: &Path, reason: String) -> KubeError {
    KubeError::Attach {
        kubeconfig: kubeconfig.to_owned(),
        reason,
    }
}

impl Cluster {
    /// The cluster behind `kubeconfig`, as it is: one schedulable node, whose CRI is reachable
    /// from this host.
    pub async fn attach(kubeconfig: &Path) -> Result<Cluster, KubeError> {
        let client = client::connect(kubeconfig).await?;
        let version = server_version(&client, kubeconfig).await?;
        let nodes: Api<Node> = Api::all(client.clone());
        let nodes = nodes
            .list(&ListParams::default())
            .await
            .map_err(|source| KubeError::Api {
                call: "list nodes".into(),
                source,
            })?
            .items;
        let [node] = nodes.as_slice() else {
            return Err(refuse(
                kubeconfig,
                format!(
                    "{} nodes: the harness reads each pod's runtime through its node's CRI, which it can do for a single-node cluster only",
                    nodes.len()
                ),
            ));
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let node_ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .ok_or_else(|| refuse(kubeconfig, format!("node {name} has no InternalIP")))?;
        let socket = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CRI_SOCKET_ANNOTATION))
            .map(|s| s.trim_start_matches("unix://").to_owned())
            .unwrap_or_else(|| DEFAULT_CRI_SOCKET.into());
        let socket = PathBuf::from(socket);
        if !socket.exists() {
            return Err(refuse(
                kubeconfig,
                format!(
                    "node {name}'s CRI socket {} is not on this host: runtimeType is read through the node's CRI, never inferred from the pod spec",
                    socket.display()
                ),
            ));
        }
        let cri = CriClient::connect(&socket, Duration::from_secs(60)).await?;
        let runtime = cri.version().await?;
        let id = short_id();
        let run_dir = PathBuf::from(format!("/tmp/kata-harness-k8s-attached-{id}"));
        std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
        // Last: nothing after it can fail, so the namespace is always handed to shutdown.
        let namespace = create_namespace(&client, &format!("kata-harness-{id}")).await?;
        let nowhere = run_dir.join("(not the harness's)");
        Ok(Cluster {
            id,
            // Its kubectl, where the offline bundle is built, for the failure bundles' describe.
            bundle: Bundle {
                dir: Bundle::default_dir(),
                version,
            },
            admin_kubeconfig: kubeconfig.to_owned(),
            kubeadm_log: nowhere.clone(),
            kubelet_log: nowhere.clone(),
            containerd_log: nowhere,
            run_dir,
            node_ip,
            socket,
            cri,
            client,
            containerd_version: format!("{} {}", runtime.runtime_name, runtime.runtime_version),
            ctr: PathBuf::from("ctr"),
            crun: "crun".into(),
            crictl: crate::artifacts::cri_tools::crictl(),
            kubeadm_skipped: vec![],
            timings: vec![],
            attached: true,
            namespace,
            parts: Mutex::new(None),
        })
    }
}

/// What the plan needs of an existing cluster, asked without attaching: the API server's
/// version and the RuntimeClasses it has (a Kata row runs where one named `kata` exists).
pub async fn probe(kubeconfig: &Path) -> Result<(Version, Vec<String>), KubeError> {
    let client = client::connect(kubeconfig).await?;
    let version = server_version(&client, kubeconfig).await?;
    let api = client::RuntimeClassApi::for_version(version);
    let classes = client::runtime_class_names(&client, api).await?;
    Ok((version, classes))
}

/// The API server's own version (`GET /version`).
async fn server_version(client: &kube::Client, kubeconfig: &Path) -> Result<Version, KubeError> {
    let info = client
        .apiserver_version()
        .await
        .map_err(|source| KubeError::Api {
            call: "GET /version".into(),
            source,
        })?;
    info.git_version.parse().map_err(|_| {
        refuse(
            kubeconfig,
            format!(
                "the API server's version {:?} is not MAJOR.MINOR.PATCH",
                info.git_version
            ),
        )
    })
}

/// Creates the run's namespace and waits for its `default` ServiceAccount (pods are refused
/// until the controller-manager has made it).
async fn create_namespace(client: &kube::Client, name: &str) -> Result<String, KubeError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "kata-harness": "true" } }
    }))
    .expect("a Namespace literal deserialises");
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .map_err(|source| KubeError::Api {
            call: format!("create namespace {name}"),
            source,
        })?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    wait_for(
        "the run's namespace to get its default ServiceAccount",
        NAMESPACE_DEADLINE,
        Duration::from_millis(200),
        || {
            let accounts = accounts.clone();
            async move {
                match accounts.get_opt("default").await {
                    Ok(Some(_)) => Attempt::Ready(()),
                    Ok(None) => Attempt::NotYet("no ServiceAccount default yet".into()),
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        },
    )
    .await
    .map_err(|source| KubeError::Wait {
        what: format!("namespace {name}'s ServiceAccount"),
        context: "the controller-manager makes it".into(),
        source,
    })?;
    Ok(name.to_owned())
}

/// Deletes the run's namespace and waits until it is gone; what is left, if anything.
pub(super) async fn delete_namespace(client: &kube::Client, name: &str) -> Option<String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Err(e) = namespaces.delete(name, &DeleteParams::background()).await {
        return Some(format!("namespace {name}: delete failed: {e}"));
    }
    wait_for(
        "the run's namespace to be gone",
        NAMESPACE_DEADLINE,
        Duration::from_millis(500),
        || {
            let namespaces = namespaces.clone();
            async move {
                match namespaces.get_opt(name).await {
                    Ok(None) => Attempt::Ready(()),
                    Ok(Some(_)) => Attempt::NotYet("still terminating".into()),
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        },
    )
    .await
    .err()
    .map(|e| format!("namespace {name}: {e}"))
}
