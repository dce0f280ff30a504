//! Bring-up and teardown of a single-node kubeadm cluster on this host, offline, in a node
//! namespace (the recipe measured in `scripts/notes/kubeadm-local.md`).
//!
//! Invariant: containerd, kubelet and kubeadm share one private mount+net+UTS namespace, held by
//! a holder process (`unshare -m -n -u --propagation private sleep infinity`), entered with
//! `nsenter`: we never unshare the multi-threaded harness itself. In that namespace:
//! copy-on-write overlays over /etc /var /usr /run /opt /root (upper dirs in the run dir),
//! private files bind-mounted over the six global sysctls kubelet writes, the cgroup v2 mount
//! hidden (hybrid hosts), and one veth to the host for the API server. Outside it, only the
//! veth's host end, a cgroup subtree and our processes exist, and [`teardown`] removes them:
//! killing the holder (after everything else in the namespace) drops the overlays, the kubelet
//! tmpfs mounts, the pods' netns pins, the CNI bridge and every KUBE-* iptables rule with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use nix::sys::signal::Signal;

use super::bundle::Bundle;
use super::client::RuntimeClassApi;
use super::images::ClusterImages;
use super::{io_err, KubeError};
use crate::cri::CriClient;
use crate::process::{self, Daemon};
use crate::profile::Version;
use crate::provision::cleanup::{self, CleanupPlan, GroupLeader, Leftovers};
use crate::provision::{crun_binary, standard_handlers};
use crate::render::kubeadm::KubeadmConfig;
use crate::render::{cni, ContainerdConfig};
use crate::report::ScriptNode;
use crate::teardown::{self, Registration};
use crate::wait::{wait_for, Attempt};

pub mod attach;
mod bring_up;
mod node_ns;

/// kubeadm init took 21 s here; under load and on TCG-speed machines much longer.
const KUBEADM_DEADLINE: Duration = Duration::from_secs(420);
/// Node Ready took 33 s from the namespace's creation here (13 s after kubeadm init).
const NODE_READY_DEADLINE: Duration = Duration::from_secs(180);
/// All kube-system pods Ready took 51 s from the namespace's creation here.
const SYSTEM_PODS_DEADLINE: Duration = Duration::from_secs(300);
const SERVICE_ACCOUNT_DEADLINE: Duration = Duration::from_secs(90);
const SHORT_COMMAND: Duration = Duration::from_secs(60);

/// The node's host name and Kubernetes node name.
pub const NODE_NAME: &str = "kh-node";
/// Pods get addresses from this /24 (inside the cluster's pod CIDR 10.244.0.0/16).
const POD_RANGE: &str = "10.244.0.0/24";
const POD_SUBNET: &str = "10.244.0.0/16";
const SERVICE_SUBNET: &str = "10.96.0.0/12";

/// The RuntimeClasses every cluster has (node.k8s.io/v1, or v1beta1 before 1.20): name ->
/// containerd handler; `kata` points at `kata_handler` (`kata`, or runtime-rs's handler as
/// kata-deploy 4.x points it), and kata-deploy 4.x names runtime-rs's class after its handler.
pub fn runtime_classes(kata_handler: &str) -> [(&'static str, String); 3] {
    [
        ("kata", kata_handler.to_owned()),
        ("crun", "crun".to_owned()),
        ("kata-qemu-runtime-rs", "kata-qemu-runtime-rs".to_owned()),
    ]
}

/// What to start a cluster with.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub bundle: Bundle,
    /// Keep the run dir (logs, kubeadm output, overlays' upper dirs) after teardown.
    pub keep: bool,
    /// Kata for the node's `kata` and `kata-qemu` handlers (RuntimeClass kata).
    pub kata: Option<crate::provision::kata::KataPlan>,
    /// runtime-rs for its `kata-qemu-runtime-rs` handler (the RuntimeClass of that name).
    pub kata_rs: Option<crate::provision::kata::KataPlan>,
    /// The handler RuntimeClass `kata` points at.
    pub kata_runtime_class: String,
    /// The containerd the node runs (a profile's `kubernetes.containerd`; 1.6 by default).
    pub containerd: crate::profile::ContainerdChoice,
}

impl ClusterSettings {
    /// The Kata layouts the node mounts at /opt/kata, each once, the Go runtime's first.
    pub fn kata_layouts(&self) -> Vec<PathBuf> {
        crate::provision::kata::node_layouts(
            self.kata.iter().chain(&self.kata_rs).map(|p| p.layout.kata_dir()),
        )
    }
}

/// A running single-node cluster: API server answering, node Ready, every kube-system pod
/// Ready, control-plane taint removed, RuntimeClasses `kata` and `crun` created.
pub struct Cluster {
    pub id: String,
    pub bundle: Bundle,
    pub run_dir: PathBuf,
    pub node_ip: String,
    /// containerd's CRI socket (a plain path in the run dir, usable from the host).
    pub socket: PathBuf,
    /// Where the pods' runtimes are read.
    pub runtime: RuntimeReader,
    pub client: kube::Client,
    /// The admin kubeconfig fetched from the node (server https://<node ip>:6443).
    pub admin_kubeconfig: PathBuf,
    pub kubeadm_log: PathBuf,
    pub kubelet_log: PathBuf,
    pub containerd_log: PathBuf,
    pub containerd_version: String,
    /// ctr of the node's containerd.
    pub ctr: PathBuf,
    pub crun: String,
    /// crictl on this host (and on kubeadm's PATH in the node), if there is one.
    pub crictl: Option<PathBuf>,
    /// What kubeadm init skipped or was told to ignore, and why (for the facts).
    pub kubeadm_skipped: Vec<(String, String)>,
    /// The handler RuntimeClass `kata` points at.
    pub kata_class_handler: String,
    /// Milestones since the start, for reports and the README.
    pub timings: Vec<(String, Duration)>,
    /// Someone else's cluster (`--kubeconfig`): nothing of it is the harness's to stop.
    pub attached: bool,
    /// Where the rows create their objects: `default` on the harness's own cluster (its
    /// ServiceAccount exists once the cluster is up), a namespace of the run's own on an
    /// existing one (created at attach, deleted at shutdown).
    pub namespace: String,
    /// An existing cluster's namespace, deleted by an interrupt (disarmed at shutdown).
    interrupt: Mutex<Option<Registration>>,
    parts: Mutex<Option<Parts>>,
}

/// Where a cluster's pods' runtimes are read: the node's CRI (the only witness of
/// `runtimeType`), or, on an existing cluster whose node's CRI is not on this host, the API
/// server alone.
pub enum RuntimeReader {
    /// ContainerStatus / PodSandboxStatus verbose info through the node's CRI socket.
    Cri(CriClient),
    /// The pods' container IDs and their RuntimeClass's handler, as the API reports them,
    /// checked against the handlers the node reports; why the CRI is not read.
    PodStatus(String),
}

impl Cluster {
    /// The node's CRI, when the runtimes are read through it.
    pub fn cri(&self) -> Option<&CriClient> {
        match &self.runtime {
            RuntimeReader::Cri(cri) => Some(cri),
            RuntimeReader::PodStatus(_) => None,
        }
    }

    /// What every row of a cluster read without its CRI must say, if this is one.
    pub fn runtime_condition(&self) -> Option<String> {
        match &self.runtime {
            RuntimeReader::Cri(_) => None,
            RuntimeReader::PodStatus(why) => Some(format!(
                "runtime read from the pods' status and RuntimeClass handler, not the node's CRI ({why}): runtimeType and BinaryName not checked"
            )),
        }
    }
}

/// A cluster that did not come up: the error, and the log tails taken before teardown.
#[derive(Debug)]
pub struct StartFailure {
    pub error: KubeError,
    pub logs: Vec<(String, String)>,
}

/// What a cluster must undo, as plain data (the interrupt handler holds a copy).
#[derive(Debug, Clone)]
struct NodePlan {
    base: CleanupPlan,
    holder: Option<GroupLeader>,
    kubelet: Option<GroupLeader>,
}

struct Parts {
    holder: Option<Daemon>,
    containerd: Option<Daemon>,
    kubelet: Option<Daemon>,
    plan: NodePlan,
    registration: Option<Registration>,
}

/// What `bring_up` hands back to `start`.
struct BroughtUp {
    cri: CriClient,
    client: kube::Client,
    containerd_version: String,
    ctr: PathBuf,
    crun: String,
    crictl: Option<PathBuf>,
    kubeadm_skipped: Vec<(String, String)>,
}

/// Runs the full teardown; idempotent; used by shutdown, drop, a failed start and Ctrl-C.
fn teardown_plan(plan: &NodePlan) -> Leftovers {
    // kubelet first, so nothing restarts what we stop next.
    if let Some(kubelet) = plan.kubelet {
        kubelet.signal(Signal::SIGKILL);
    }
    // containerd, its shims (matched by our socket path), every pod process (our cgroup
    // subtree), the cgroups, and the veth's host end.
    let mut left = cleanup::run(&plan.base);
    // Last process in the namespace: with it go the overlays, mounts, netns and iptables rules.
    if let Some(holder) = plan.holder {
        holder.signal(Signal::SIGKILL);
        if !holder.wait_exit("the node namespace's holder to exit", Duration::from_secs(10)) {
            left.0
                .push(format!("node namespace holder {} still running", holder.pgid()));
        }
    }
    for (pid, cmdline) in cleanup::processes_matching(&plan.base.run_dir.to_string_lossy()) {
        left.0.push(format!("process {pid}: {cmdline}"));
    }
    if Path::new("/sys/class/net").join(&plan.base.bridge).exists() {
        left.0.push(format!("veth {}", plan.base.bridge));
    }
    if left.is_clean() && !plan.base.keep_run_dir {
        let _ = std::fs::remove_dir_all(&plan.base.run_dir);
    }
    left
}

fn register(plan: &NodePlan) -> Registration {
    let plan = plan.clone();
    teardown::register(
        format!("kubernetes node {}", plan.base.run_dir.display()),
        move || {
            let left = teardown_plan(&plan);
            if !left.is_clean() {
                eprintln!("cluster cleanup left: {:?}", left.0);
            }
        },
    )
}

fn short_id() -> String {
    use sha2::{Digest, Sha256};
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    hex::encode(&Sha256::digest(seed.as_bytes())[..3])
}

impl Cluster {
    /// Brings the node up and waits until the cluster is usable (see [`Cluster`]). On failure
    /// everything started so far is torn down before the error returns.
    pub async fn start(settings: &ClusterSettings, images: &ClusterImages) -> Result<Cluster, StartFailure> {
        teardown::install_interrupt_handler();
        let t0 = Instant::now();
        let mut timings = Vec::new();
        let id = short_id();
        // Under /tmp: the overlays' upper dirs must not be inside any overlaid dir.
        let run_dir = PathBuf::from(format!("/tmp/kata-harness-k8s-{id}"));
        let logs = run_dir.join("logs");
        for dir in [
            &logs,
            &run_dir.join("net.d"),
            &run_dir.join("cni-ipam"),
            &run_dir.join("ctd"),
        ] {
            std::fs::create_dir_all(dir).map_err(|e| StartFailure {
                error: io_err(dir)(e),
                logs: Vec::new(),
            })?;
        }
        let slot = u8::from_str_radix(&id[..2], 16).unwrap_or(0) % 63;
        let host_ip = format!("172.31.250.{}", slot * 4 + 1);
        let node_ip = format!("172.31.250.{}", slot * 4 + 2);
        let veth = format!("khk{id}");
        let cgroup_root = format!("kata-harness-k8s-{id}");
        let socket = run_dir.join("ctd/containerd.sock");

        let mut plan = NodePlan {
            base: CleanupPlan {
                run_dir: run_dir.clone(),
                socket: socket.clone(),
                daemon: None,
                bridge: veth.clone(),
                cgroup_parent: cgroup_root.clone(),
                keep_run_dir: settings.keep,
                env_tag: Some(run_dir.to_string_lossy().into_owned()),
            },
            holder: None,
            kubelet: None,
        };
        // cleanup::run balances this (it counts testbeds that may touch /run/containerd).
        cleanup::enter_system_paths();
        let mut parts = Parts {
            holder: None,
            containerd: None,
            kubelet: None,
            registration: Some(register(&plan)),
            plan: plan.clone(),
        };
        let result = Self::bring_up(
            settings,
            images,
            &mut parts,
            &mut plan,
            &mut timings,
            t0,
            Net {
                run_dir: &run_dir,
                host_ip: &host_ip,
                node_ip: &node_ip,
                veth: &veth,
                cgroup_root: &cgroup_root,
                socket: &socket,
            },
        )
        .await;
        match result {
            Ok(up) => Ok(Cluster {
                id,
                kata_class_handler: settings.kata_runtime_class.clone(),
                bundle: settings.bundle.clone(),
                admin_kubeconfig: run_dir.join("admin.conf"),
                kubeadm_log: logs.join("kubeadm-init.log"),
                kubelet_log: logs.join("kubelet.log"),
                containerd_log: logs.join("containerd.log"),
                run_dir,
                node_ip,
                socket,
                runtime: RuntimeReader::Cri(up.cri),
                client: up.client,
                containerd_version: up.containerd_version,
                ctr: up.ctr,
                crun: up.crun,
                crictl: up.crictl,
                kubeadm_skipped: up.kubeadm_skipped,
                timings,
                attached: false,
                namespace: "default".into(),
                interrupt: Mutex::new(None),
                parts: Mutex::new(Some(parts)),
            }),
            Err(error) => {
                // The logs go with the run dir: keep what a failure report needs first.
                let mut logs_kept = Vec::new();
                for (file, lines) in [
                    ("kubeadm-init.log", 400),
                    ("kubelet.log", 200),
                    ("containerd.log", 200),
                ] {
                    logs_kept.push((
                        format!("{file}.tail"),
                        process::tail_of_file(&logs.join(file), lines),
                    ));
                }
                let left = finish_parts(parts);
                if !left.is_clean() {
                    tracing::error!(?left, "failed cluster start left things behind");
                    logs_kept.push(("leftovers.txt".into(), left.0.join("\n")));
                }
                Err(StartFailure {
                    error,
                    logs: logs_kept,
                })
            }
        }
    }

    /// The RuntimeClass API of this cluster's version.
    pub fn runtime_class_api(&self) -> RuntimeClassApi {
        RuntimeClassApi::for_version(self.bundle.version)
    }

    /// Why the cluster is unusable, if it is (kubelet or containerd exited).
    pub fn gone(&self) -> Option<String> {
        if self.attached {
            // Read without its CRI, the node's socket need not be here (an unreachable API
            // server shows in the rows' own calls).
            return (self.cri().is_some() && !self.socket.exists())
                .then(|| format!("the node's CRI socket {} is gone", self.socket.display()));
        }
        let guard = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(parts) => daemons_gone(parts),
            None => Some("the cluster was shut down".into()),
        }
    }

    /// Facts for reports: versions and the bring-up timeline.
    pub fn facts(&self) -> Vec<(String, String)> {
        let mut facts = vec![
            ("kubernetes".into(), format!("v{}", self.bundle.version)),
            ("kubernetes-bundle".into(), self.bundle.dir.display().to_string()),
            ("containerd".into(), self.containerd_version.clone()),
        ];
        for (what, why) in &self.kubeadm_skipped {
            facts.push((format!("kubeadm-skipped {what}"), why.clone()));
        }
        for (what, at) in &self.timings {
            facts.push((format!("t+ {what}"), format!("{:.1} s", at.as_secs_f64())));
        }
        facts
    }

    pub fn describe(&self) -> String {
        if self.attached {
            return format!(
                "existing Kubernetes v{} cluster (kubeconfig {}), node {} on {}, CRI {}",
                self.bundle.version,
                self.admin_kubeconfig.display(),
                self.node_ip,
                self.containerd_version,
                self.socket.display()
            );
        }
        format!(
            "kubeadm v{} single-node cluster on containerd {} (local, node namespace), API https://{}:6443, run dir {}",
            self.bundle.version,
            self.containerd_version,
            self.node_ip,
            self.run_dir.display()
        )
    }

    /// The node as `reproduce.sh`'s header names it (its crictl, ctr and socket on this host).
    pub fn script_node(&self) -> ScriptNode {
        ScriptNode {
            crictl: self.crictl.as_ref().map(|p| p.to_string_lossy().into_owned()),
            ctr: self.ctr.to_string_lossy().into_owned(),
            socket: self.socket.to_string_lossy().into_owned(),
            description: self.describe(),
        }
    }

    /// `kubectl --kubeconfig <admin.conf>` as a human would run it from this host.
    pub fn kubectl_prefix(&self) -> String {
        format!(
            "{} --kubeconfig {}",
            self.bundle.bin("kubectl").display(),
            self.admin_kubeconfig.display()
        )
    }

    /// Runs the bundle's kubectl (failure bundles only: describe and events are for humans).
    pub fn kubectl(&self, args: &[&str]) -> String {
        match self.kubectl_output(args) {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => e,
        }
    }

    /// kubectl as the admin, whatever its exit status; why it could not run.
    pub fn kubectl_output(&self, args: &[&str]) -> Result<std::process::Output, String> {
        let kubectl = self.bundle.bin("kubectl");
        if !kubectl.is_file() {
            return Err(format!("(no kubectl in the bundle: {})", kubectl.display()));
        }
        let mut command = Command::new(kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .arg("--cache-dir")
            .arg(self.run_dir.join("kubectl-cache"))
            .args(args);
        process::run_unchecked(&mut command, SHORT_COMMAND).map_err(|e| format!("kubectl failed: {e}"))
    }

    /// Removes the pods through the CRI while containerd still answers, then tears the node
    /// down and reports anything still there.
    pub async fn shutdown(self) -> Leftovers {
        if self.attached {
            // Each row deleted what it created; the node's pods are not ours to remove. The
            // run's own namespace goes, and must be gone.
            let left = attach::delete_namespace(&self.client, &self.namespace).await;
            if let Some(interrupt) = self.interrupt.lock().unwrap_or_else(|p| p.into_inner()).take() {
                interrupt.disarm();
            }
            let _ = std::fs::remove_dir_all(&self.run_dir);
            return Leftovers(left.into_iter().collect());
        }
        // kubelet first: it would recreate what we remove.
        {
            let mut guard = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(kubelet) = guard.as_mut().and_then(|p| p.kubelet.as_mut()) {
                kubelet.stop(Duration::from_secs(10));
            }
        }
        if let Some(cri) = self.cri() {
            if let Err(e) = cri.remove_all_sandboxes().await {
                tracing::warn!(error = %e, "failed to remove the pods through the CRI; killing instead");
            }
        }
        self.finish()
    }

    fn finish(&self) -> Leftovers {
        match self.parts.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(parts) => finish_parts(parts),
            None => Leftovers::default(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let left = self.finish();
        if !left.is_clean() {
            tracing::error!(?left, "cluster left things behind");
        }
    }
}

struct Net<'a> {
    run_dir: &'a Path,
    host_ip: &'a str,
    node_ip: &'a str,
    veth: &'a str,
    cgroup_root: &'a str,
    socket: &'a Path,
}

/// Keeps the interrupt handler's copy of the plan current as things start.
fn refresh(parts: &mut Parts, plan: &NodePlan) {
    parts.plan = plan.clone();
    if let Some(old) = parts.registration.take() {
        old.disarm();
    }
    parts.registration = Some(register(plan));
}

fn finish_parts(mut parts: Parts) -> Leftovers {
    for daemon in [parts.kubelet.take(), parts.containerd.take()]
        .into_iter()
        .flatten()
    {
        let mut daemon = daemon;
        daemon.stop(Duration::from_secs(10));
    }
    // The holder goes last, after every other process of the namespace.
    let mut plan = parts.plan.clone();
    let holder = parts.holder.take();
    if holder.is_some() {
        plan.holder = None;
    }
    let mut left = teardown_plan(&plan);
    if let Some(mut holder) = holder {
        holder.stop(Duration::from_secs(5));
        if Path::new("/sys/class/net").join(&plan.base.bridge).exists() {
            left.0.push(format!("veth {}", plan.base.bridge));
        }
    }
    if let Some(registration) = parts.registration.take() {
        registration.disarm();
    }
    left
}

fn daemons_gone(parts: &Parts) -> Option<String> {
    // try_wait needs &mut; the log tells why.
    for (what, daemon) in [("containerd", &parts.containerd), ("kubelet", &parts.kubelet)] {
        if let Some(d) = daemon {
            // A daemon we still own is never reaped behind our back: its pid is its own.
            if cleanup::is_zombie(d.pid() as i32) {
                return Some(format!("{what} exited; its log ends with:\n{}", d.log_tail(15)));
            }
        }
    }
    None
}
