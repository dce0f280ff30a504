//! An existing cluster, reached with its kubeconfig (`--kubeconfig FILE`): nothing is
//! started, configured or torn down; the rows create their own objects and delete them.
//!
//! Invariant: runtime claims are read back through the node's CRI where its socket (the
//! `kubeadm.alpha.kubernetes.io/cri-socket` annotation kubeadm writes, else containerd's
//! default) is on this host and the cluster has one node; otherwise, or when asked, from the
//! API alone ([`RuntimeReader::PodStatus`]: the pods' container IDs and their RuntimeClass's
//! handler, checked against the handlers the node reports), and every row says so. The run's
//! namespace is registered for teardown before it exists, so Ctrl-C removes it too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::{short_id, Cluster, RuntimeReader};
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

/// Where the runtime of an existing cluster's pods is read (`--runtime-from`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RuntimeFrom {
    /// The node's CRI where its socket is on this host, else the pods' status.
    #[default]
    Auto,
    /// The node's CRI, or the cluster is refused.
    Cri,
    /// The API server only, even where the node's CRI is reachable.
    PodStatus,
}

/// An existing cluster as the run names it: its kubeconfig, and where its runtimes are read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExistingCluster {
    pub kubeconfig: PathBuf,
    pub from: RuntimeFrom,
}

fn refuse(kubeconfig: &Path, reason: String) -> KubeError {
    KubeError::Attach {
        kubeconfig: kubeconfig.to_owned(),
        reason,
    }
}

impl Cluster {
    /// The cluster behind `kubeconfig`, as it is, with its runtimes read as `from` says.
    pub async fn attach(kubeconfig: &Path, from: RuntimeFrom) -> Result<Cluster, KubeError> {
        // Ctrl-C must reach the namespace's undo, not end the process outright.
        crate::teardown::install_interrupt_handler();
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
        let Some(first) = nodes.first() else {
            return Err(refuse(kubeconfig, "the cluster has no nodes".into()));
        };
        let name = first.metadata.name.clone().unwrap_or_default();
        let node_ip = first
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .ok_or_else(|| refuse(kubeconfig, format!("node {name} has no InternalIP")))?;
        let socket = PathBuf::from(
            first
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CRI_SOCKET_ANNOTATION))
                .map(|s| s.trim_start_matches("unix://").to_owned())
                .unwrap_or_else(|| DEFAULT_CRI_SOCKET.into()),
        );
        // Why the node's CRI cannot be the witness, if it cannot.
        let unreachable = if nodes.len() > 1 {
            Some(format!(
                "{} nodes: the node's CRI is read for a single-node cluster only",
                nodes.len()
            ))
        } else if !socket.exists() {
            Some(format!(
                "node {name}'s CRI socket {} is not on this host",
                socket.display()
            ))
        } else {
            None
        };
        let (runtime, containerd_version) = match (from, unreachable) {
            (RuntimeFrom::Cri, Some(why)) => {
                return Err(refuse(
                    kubeconfig,
                    format!("{why}, and --runtime-from cri reads runtimeType through it"),
                ))
            }
            (RuntimeFrom::PodStatus, _) => (
                RuntimeReader::PodStatus("--runtime-from pod-status".into()),
                node_runtime_version(first),
            ),
            (RuntimeFrom::Auto, Some(why)) => (RuntimeReader::PodStatus(why), node_runtime_version(first)),
            (RuntimeFrom::Auto | RuntimeFrom::Cri, None) => {
                let cri = CriClient::connect(&socket, Duration::from_secs(60)).await?;
                let version = cri.version().await?;
                let text = format!("{} {}", version.runtime_name, version.runtime_version);
                (RuntimeReader::Cri(cri), text)
            }
        };
        let id = short_id();
        let run_dir = PathBuf::from(format!("/tmp/kata-harness-k8s-attached-{id}"));
        std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
        let namespace = format!("kata-harness-{id}");
        // Registered before it exists: an interrupt from here on deletes it.
        let interrupt = interrupt_guard(kubeconfig, &namespace, &run_dir);
        // Last: nothing after it can fail, so the namespace is always handed to shutdown.
        create_namespace(&client, &namespace, version).await?;
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
            runtime,
            client,
            containerd_version,
            ctr: PathBuf::from("ctr"),
            crun: "crun".into(),
            crictl: crate::artifacts::cri_tools::crictl(),
            kubeadm_skipped: vec![],
            // As kata-deploy 3.x and this harness's clusters name it.
            kata_class_handler: "kata".into(),
            timings: vec![],
            attached: true,
            namespace,
            interrupt: Mutex::new(Some(interrupt)),
            parts: Mutex::new(None),
        })
    }
}

/// The runtime the node reports to the API server (`containerd://1.6.20`), as `containerd
/// 1.6.20`.
fn node_runtime_version(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.container_runtime_version.replacen("://", " ", 1))
        .unwrap_or_else(|| "(the node reports no container runtime)".into())
}

/// Deletes the run's namespace when an interrupt arrives: from a thread of its own, with a
/// client of its own (the run's client lives on the runtime the interrupt is stopping).
fn interrupt_guard(kubeconfig: &Path, namespace: &str, run_dir: &Path) -> crate::teardown::Registration {
    let kubeconfig = kubeconfig.to_owned();
    let name = namespace.to_owned();
    let run_dir = run_dir.to_owned();
    crate::teardown::register(
        format!("namespace {namespace} of the existing cluster"),
        move || {
            let deleted = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let client = client::connect(&kubeconfig).await.ok()?;
                    delete_namespace(&client, &name).await
                })
            })
            .join();
            if let Ok(Some(left)) = deleted {
                eprintln!("{left}");
            }
            let _ = std::fs::remove_dir_all(&run_dir);
        },
    )
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
/// until the controller-manager has made it) and, before 1.24, for the account's token
/// secret too (until then the API server refuses pods with "No API token found").
async fn create_namespace(client: &kube::Client, name: &str, version: Version) -> Result<String, KubeError> {
    let needs_token = version < Version::new(1, 24, 0);
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
                    Ok(Some(account))
                        if needs_token && account.secrets.as_ref().is_none_or(Vec::is_empty) =>
                    {
                        Attempt::NotYet("the ServiceAccount has no token secret yet".into())
                    }
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
    match namespaces.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        // Never created (an interrupt during attach), or already gone.
        Err(kube::Error::Api(status)) if status.code == 404 => return None,
        Err(e) => return Some(format!("namespace {name}: delete failed: {e}")),
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
