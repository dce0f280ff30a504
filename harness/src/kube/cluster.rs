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
use crate::profile::{ContainerdChoice, Version};
use crate::provision::cleanup::{self, CleanupPlan, GroupLeader, Leftovers};
use crate::provision::{crun_binary, standard_handlers};
use crate::render::kubeadm::KubeadmConfig;
use crate::render::{cni, ContainerdConfig};
use crate::report::ScriptNode;
use crate::teardown::{self, Registration};
use crate::wait::{wait_for, Attempt};

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
/// The six global sysctls kubelet's setupKernelTunables writes: shadowed by private files.
const SHADOWED_SYSCTLS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];
/// Host dirs kubeadm, kubelet and containerd write to: each gets a copy-on-write overlay.
const OVERLAID: [&str; 6] = ["etc", "var", "usr", "run", "opt", "root"];
/// The cgroup v1 controllers kubelet checks its `cgroupRoot` in.
const CGROUP_CONTROLLERS: [&str; 9] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
];

/// The RuntimeClasses every cluster has (node.k8s.io/v1, or v1beta1 before 1.20): name ->
/// containerd handler.
pub const RUNTIME_CLASSES: [(&str, &str); 2] = [("kata", "kata"), ("crun", "crun")];

/// What to start a cluster with.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub bundle: Bundle,
    /// Keep the run dir (logs, kubeadm output, overlays' upper dirs) after teardown.
    pub keep: bool,
    /// Kata for the node's `kata` and `kata-qemu` handlers (RuntimeClass kata).
    pub kata: Option<crate::provision::kata::KataPlan>,
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
    pub cri: CriClient,
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
    /// Milestones since the start, for reports and the README.
    pub timings: Vec<(String, Duration)>,
    parts: Mutex<Option<Parts>>,
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

/// Debian has no CoreDNS: kubeadm's addon phase would deploy an image that does not exist.
const SKIPPED_PHASES: [(&str, &str); 1] = [("addon/coredns", "Debian has no CoreDNS")];

/// kubeadm's preflight checks that cannot pass on this node, each as kubeadm names it and
/// why; every other check runs and must pass (ImagePull still checks that every other image
/// is there: each missing one is reported as a warning in kubeadm's output).
const IGNORED_PREFLIGHT_ERRORS: [(&str, &str); 1] = [(
    "ImagePull",
    "Debian has no CoreDNS image, and the offline node cannot pull k8s.gcr.io/coredns",
)];

/// How `kubeadm init` runs its preflight: all of it where crictl is on its PATH (kubeadm
/// checks the container runtime and the images with crictl, and refuses without it), less
/// the checks in [`IGNORED_PREFLIGHT_ERRORS`]; skipped as a phase where there is no crictl.
struct Preflight {
    crictl: bool,
}

impl Preflight {
    fn flags(&self) -> Vec<String> {
        let mut phases: Vec<&str> = SKIPPED_PHASES.iter().map(|(p, _)| *p).collect();
        if !self.crictl {
            phases.insert(0, "preflight");
        }
        let mut flags = vec![format!("--skip-phases={}", phases.join(","))];
        if self.crictl && !IGNORED_PREFLIGHT_ERRORS.is_empty() {
            let checks: Vec<&str> = IGNORED_PREFLIGHT_ERRORS.iter().map(|(c, _)| *c).collect();
            flags.push(format!("--ignore-preflight-errors={}", checks.join(",")));
        }
        flags
    }

    /// For the report: what was skipped or ignored, and why.
    fn skipped(&self) -> Vec<(String, String)> {
        let mut skipped: Vec<(String, String)> = Vec::new();
        if self.crictl {
            for (check, why) in IGNORED_PREFLIGHT_ERRORS {
                skipped.push((format!("preflight check {check}"), why.into()));
            }
        } else {
            skipped.push((
                "phase preflight".into(),
                format!(
                    "kubeadm needs crictl for it: {}",
                    crate::artifacts::cri_tools::MISSING
                ),
            ));
        }
        for (phase, why) in SKIPPED_PHASES {
            skipped.push((format!("phase {phase}"), why.into()));
        }
        skipped
    }
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

/// Runs a short host command; failure names the step.
fn host(step: &str, argv: &[&str]) -> Result<(), KubeError> {
    let mut command = Command::new(argv[0]);
    command.args(&argv[1..]);
    process::run(command, SHORT_COMMAND)
        .map(|_| ())
        .map_err(|source| KubeError::Step {
            step: step.to_owned(),
            source,
        })
}

/// `nsenter` into the node namespace (mount, net, uts) of `holder`.
fn in_node(holder: u32, argv: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg("-t")
        .arg(holder.to_string())
        .args(["-m", "-n", "-u", "--"])
        .args(argv);
    command
}

/// The first line of kubeadm's output that states an error (what the report leads with).
pub fn first_kubeadm_error(output: &str) -> String {
    let klog_error = |l: &str| {
        let b = l.as_bytes();
        b.len() > 5 && b[0] == b'E' && b[1..5].iter().all(u8::is_ascii_digit)
    };
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("error") || l.contains("[ERROR") || klog_error(l))
        .or_else(|| {
            output
                .lines()
                .map(str::trim)
                // kubeadm's harmless systemd warnings (PID 1 is not systemd) are not the error.
                .find(|l| l.to_lowercase().contains("fail") && !l.contains("WARNING"))
        })
        .unwrap_or("(no error line in kubeadm's output)")
        .to_owned()
}

/// The shell script that prepares the node namespace (runs inside it, once).
pub fn ns_setup_script(run_dir: &Path, node_ip: &str, hide_unified: bool) -> String {
    let t = run_dir.display();
    let mut s = String::from("#!/bin/sh\n# Runs INSIDE the node namespace (mount+net+uts), once.\nset -eu\n");
    s += &format!("hostname {NODE_NAME}\n");
    if hide_unified {
        s += "# hybrid cgroups with controllers on the v2 mount: runc/crun need it hidden\numount -l /sys/fs/cgroup/unified\n";
    }
    s += &format!(
        "for d in {}; do\n  mkdir -p {t}/ovl/$d/upper {t}/ovl/$d/work\n  mount -t overlay overlay -o lowerdir=/$d,upperdir={t}/ovl/$d/upper,workdir={t}/ovl/$d/work /$d\ndone\n",
        OVERLAID.join(" ")
    );
    s += &format!(
        "mkdir -p {t}/sysctl\nfor f in {}; do\n  n={t}/sysctl/$(echo $f | tr / _); cat /proc/sys/$f > $n; mount --bind $n /proc/sys/$f\ndone\n",
        SHADOWED_SYSCTLS.join(" ")
    );
    s += &format!("echo \"{node_ip} {NODE_NAME}\" >> /etc/hosts\nip link set lo up\n");
    // A node forwards (kubeadm's preflight requires it, as pods and services need it); the
    // sysctl is per network namespace, so the host's stays as it is.
    s += "echo 1 > /proc/sys/net/ipv4/ip_forward\n";
    s
}

/// What the systemd drop-in would run: wait for kubeadm's kubelet-start phase, then exec
/// kubelet with kubeadm's flags. The wait is bounded (5 minutes).
pub fn kubelet_script(bundle: &Bundle, socket: &Path) -> String {
    // `--containerd` is cadvisor's socket flag: without it cadvisor dials
    // /run/containerd/containerd.sock, which may be another containerd. Gone in later kubelets.
    let cadvisor = if bundle.version < Version::new(1, 24, 0) {
        format!(" --containerd={}", socket.display())
    } else {
        String::new()
    };
    format!(
        "#!/bin/sh\n# Runs INSIDE the node namespace: kubelet as kubeadm's systemd drop-in would start it.\n\
i=0\n\
while [ ! -f /var/lib/kubelet/config.yaml ] || [ ! -f /var/lib/kubelet/kubeadm-flags.env ]; do\n\
  i=$((i+1)); if [ $i -gt 1500 ]; then echo 'kubeadm never wrote /var/lib/kubelet/config.yaml' >&2; exit 1; fi\n\
  sleep 0.2\n\
done\n\
sleep 0.2\n\
. /var/lib/kubelet/kubeadm-flags.env\n\
echo \"KUBELET_KUBEADM_ARGS=$KUBELET_KUBEADM_ARGS\"\n\
exec {kubelet} --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf \
--config=/var/lib/kubelet/config.yaml $KUBELET_KUBEADM_ARGS{cadvisor}\n",
        kubelet = bundle.bin("kubelet").display()
    )
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
                bundle: settings.bundle.clone(),
                admin_kubeconfig: run_dir.join("admin.conf"),
                kubeadm_log: logs.join("kubeadm-init.log"),
                kubelet_log: logs.join("kubelet.log"),
                containerd_log: logs.join("containerd.log"),
                run_dir,
                node_ip,
                socket,
                cri: up.cri,
                client: up.client,
                containerd_version: up.containerd_version,
                ctr: up.ctr,
                crun: up.crun,
                crictl: up.crictl,
                kubeadm_skipped: up.kubeadm_skipped,
                timings,
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

    #[allow(clippy::too_many_arguments)]
    async fn bring_up(
        settings: &ClusterSettings,
        images: &ClusterImages,
        parts: &mut Parts,
        plan: &mut NodePlan,
        timings: &mut Vec<(String, Duration)>,
        t0: Instant,
        net: Net<'_>,
    ) -> Result<BroughtUp, KubeError> {
        let Net {
            run_dir,
            host_ip,
            node_ip,
            veth,
            cgroup_root,
            socket,
        } = net;
        let bundle = &settings.bundle;
        let logs = run_dir.join("logs");
        let mut mark = |what: &str| timings.push((what.to_owned(), t0.elapsed()));

        // 1. The node namespace: a holder process, then overlays, sysctl shadows, loopback.
        let mut holder_cmd = Command::new("unshare");
        holder_cmd.args(["-m", "-n", "-u", "--propagation", "private", "sleep", "infinity"]);
        let holder =
            Daemon::spawn("node-namespace", holder_cmd, &logs.join("holder.log")).map_err(|source| {
                KubeError::Spawn {
                    what: "the node namespace holder".into(),
                    source,
                }
            })?;
        let hp = holder.pid();
        plan.holder = GroupLeader::of(hp);
        parts.holder = Some(holder);
        refresh(parts, plan);
        wait_for(
            "the holder to enter its own mount and network namespaces",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || async move {
                let ns = |pid: &str, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok();
                let comm = std::fs::read_to_string(format!("/proc/{hp}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" && ns(&hp.to_string(), "net") != ns("self", "net") {
                    Attempt::Ready(())
                } else {
                    Attempt::NotYet(format!("holder {hp} is {:?}", comm.trim()))
                }
            },
        )
        .await
        .map_err(|source| KubeError::Wait {
            what: "node namespace".into(),
            context: String::new(),
            source,
        })?;
        let hide_unified = crate::provision::local::hybrid_cgroups_with_v2_controllers();
        let setup = run_dir.join("ns-setup.sh");
        std::fs::write(&setup, ns_setup_script(run_dir, node_ip, hide_unified)).map_err(io_err(&setup))?;
        let setup_s = setup.to_string_lossy();
        process::run(in_node(hp, &["sh", &setup_s]), SHORT_COMMAND).map_err(|source| KubeError::Step {
            step: "prepare the node namespace (overlays, sysctl shadows)".into(),
            source,
        })?;
        // The node is offline: its image registry's name resolves to loopback in the node's
        // /etc/hosts, so a pull of an image that was not imported (kubeadm's preflight tries
        // CoreDNS's) fails at once rather than after five DNS timeouts (50 s measured).
        let registry = images.image_repository.split('/').next().unwrap_or_default();
        let offline = format!("echo '127.0.0.1 {registry}' >> /etc/hosts");
        process::run(in_node(hp, &["sh", "-c", &offline]), SHORT_COMMAND).map_err(|source| {
            KubeError::Step {
                step: "point the image registry's name at loopback in the node".into(),
                source,
            }
        })?;
        // 2. The veth: the host reaches the API server at the node IP; a default route lets
        // kubelet and kube-proxy pick the node IP.
        let hp_s = hp.to_string();
        host(
            "create the node's veth",
            &[
                "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", &hp_s,
            ],
        )?;
        host(
            "address the veth",
            &["ip", "addr", "add", &format!("{host_ip}/30"), "dev", veth],
        )?;
        host("bring the veth up", &["ip", "link", "set", veth, "up"])?;
        let inside = format!(
            "ip addr add {node_ip}/30 dev eth0 && ip link set eth0 up && ip route add default via {host_ip}"
        );
        let mut command = Command::new("nsenter");
        command.args(["-t", &hp_s, "-n", "sh", "-c", &inside]);
        process::run(command, SHORT_COMMAND).map_err(|source| KubeError::Step {
            step: "address the node's eth0".into(),
            source,
        })?;
        // 3. The cgroup root kubelet insists exists, in every v1 controller.
        for controller in CGROUP_CONTROLLERS {
            let base = Path::new("/sys/fs/cgroup").join(controller);
            if base.is_dir() {
                let dir = base.join(cgroup_root);
                std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                if controller == "cpuset" {
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let value = std::fs::read_to_string(base.join(file)).unwrap_or_default();
                        std::fs::write(dir.join(file), value.trim()).map_err(io_err(&dir.join(file)))?;
                    }
                }
            }
        }
        mark("node namespace, veth, cgroup root");

        // 4. containerd in the node namespace (it must share kubelet's mounts: the secret and
        // projected volumes kubelet mounts later are bind-mounted into containers).
        let containerd = ContainerdChoice::Line("1.6".into()).resolve()?;
        let crun = crun_binary().to_string_lossy().into_owned();
        let ctd = run_dir.join("ctd");
        // The run dir is under /tmp, which the node namespace shares with the host: the
        // Kata install's paths are the same inside.
        let kata = match &settings.kata {
            Some(plan) => {
                Some(crate::provision::kata::install_local(plan, run_dir).map_err(io_err(run_dir))?)
            }
            None => None,
        };
        let mut runtimes = standard_handlers(&ctd.join("runtime-root"), &crun);
        if let Some(install) = &kata {
            crate::provision::kata::use_config(&mut runtimes, &install.config_path);
        }
        let config = ContainerdConfig {
            version: containerd.version,
            root: ctd.join("root"),
            state: ctd.join("state"),
            grpc_address: socket.to_owned(),
            temp_dir: ctd.join("tmp"),
            opt_dir: ctd.join("opt"),
            sandbox_image: images.pause_image.clone(),
            default_runtime: "runc".into(),
            runtimes,
            untrusted_workload_runtime: None,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conf_dir: run_dir.join("net.d"),
            registry_config_path: None,
            snapshotter: "overlayfs".into(),
            restrict_oom_score_adj: !crate::provision::local::has_capability(24),
        };
        let config_path = ctd.join("config.toml");
        std::fs::write(&config_path, config.render()?).map_err(io_err(&config_path))?;
        // The CNI config must exist before kubelet starts, or the node stays NotReady.
        let conflist = cni::bridge_conflist("kh-pods", "khbr0", POD_RANGE, &run_dir.join("cni-ipam"));
        let conf = run_dir.join("net.d/10-kh-pods.conflist");
        std::fs::write(&conf, conflist).map_err(io_err(&conf))?;
        let kata_bin = kata
            .as_ref()
            .map(|k| format!("{}:", k.bin_dir.display()))
            .unwrap_or_default();
        // crictl and conntrack for kubeadm's preflight (each from the cache: neither is
        // installed on this host), after the bundle's and containerd's binaries.
        let crictl = crate::artifacts::cri_tools::crictl();
        let preflight = Preflight {
            crictl: crictl.is_some(),
        };
        let tools: String = [crictl.as_deref(), Some(images.conntrack.as_path())]
            .into_iter()
            .flatten()
            .filter_map(Path::parent)
            .map(|dir| format!("{}:", dir.display()))
            .collect();
        let path_env = format!(
            "PATH={}:{}:{kata_bin}{tools}{}",
            bundle.dir.join("bin").display(),
            containerd.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let binary = containerd.binary("containerd").to_string_lossy().into_owned();
        let config_s = config_path.to_string_lossy();
        let testbed_env = format!("{}={}", crate::provision::cleanup::TESTBED_ENV, run_dir.display());
        let daemon = Daemon::spawn(
            "containerd",
            in_node(
                hp,
                &["env", &path_env, &testbed_env, &binary, "--config", &config_s],
            ),
            &logs.join("containerd.log"),
        )
        .map_err(|source| KubeError::Spawn {
            what: "containerd".into(),
            source,
        })?;
        plan.base.daemon = GroupLeader::of(daemon.pid());
        parts.containerd = Some(daemon);
        refresh(parts, plan);
        let cri = wait_cri(socket, parts).await?;
        mark("containerd answering the CRI");
        // Plain `crictl` inside the node reaches its containerd: /etc there is the node's
        // overlay, so this /etc/crictl.yaml never touches the host's.
        if crictl.is_some() {
            let yaml = run_dir.join("crictl.yaml");
            std::fs::write(&yaml, crate::render::crictl::config(socket)).map_err(io_err(&yaml))?;
            let yaml_s = yaml.to_string_lossy();
            process::run(in_node(hp, &["cp", &yaml_s, "/etc/crictl.yaml"]), SHORT_COMMAND).map_err(
                |source| KubeError::Step {
                    step: "write the node's /etc/crictl.yaml".into(),
                    source,
                },
            )?;
        }

        // 5. Images into k8s.io: kubeadm and kubelet find everything locally.
        let ctr = containerd.binary("ctr").to_string_lossy().into_owned();
        let socket_s = socket.to_string_lossy().into_owned();
        for archive in &images.archives {
            let mut command = Command::new(&ctr);
            command.args(["--address", &socket_s, "-n", "k8s.io", "images", "import"]);
            command.arg(&archive.path);
            process::run(command, Duration::from_secs(300)).map_err(|source| KubeError::Import {
                image: archive.name.clone(),
                source,
            })?;
        }
        mark("images imported");

        // 6. kubelet, supervised by us (PID 1 is not systemd): waits for kubeadm's files.
        let kubelet_sh = run_dir.join("kubelet-run.sh");
        std::fs::write(&kubelet_sh, kubelet_script(bundle, socket)).map_err(io_err(&kubelet_sh))?;
        let kubelet_s = kubelet_sh.to_string_lossy();
        let kubelet = Daemon::spawn(
            "kubelet",
            in_node(hp, &["env", &path_env, "sh", &kubelet_s]),
            &logs.join("kubelet.log"),
        )
        .map_err(|source| KubeError::Spawn {
            what: "kubelet".into(),
            source,
        })?;
        plan.kubelet = GroupLeader::of(kubelet.pid());
        parts.kubelet = Some(kubelet);
        refresh(parts, plan);

        // 7. kubeadm init, with its preflight checks where crictl is there to run them (see
        // `Preflight`); Debian has no CoreDNS, so that addon is skipped, and reported.
        let kubeadm_config = KubeadmConfig {
            version: bundle.version,
            node_name: NODE_NAME.into(),
            advertise_address: node_ip.to_owned(),
            cri_socket: format!("unix://{}", socket.display()),
            image_repository: images.image_repository.clone(),
            etcd_image_tag: Some(images.etcd_tag.clone()),
            pod_subnet: POD_SUBNET.into(),
            service_subnet: SERVICE_SUBNET.into(),
            cluster_name: "kh".into(),
            cgroup_root: format!("/{cgroup_root}"),
        };
        let kubeadm_yaml = run_dir.join("kubeadm.yaml");
        std::fs::write(&kubeadm_yaml, kubeadm_config.render()?).map_err(io_err(&kubeadm_yaml))?;
        let kubeadm = bundle.bin("kubeadm").to_string_lossy().into_owned();
        let yaml_s = kubeadm_yaml.to_string_lossy();
        let kubeadm_log = logs.join("kubeadm-init.log");
        let mut argv: Vec<String> = ["env", &path_env, &kubeadm, "init", "--config", &yaml_s]
            .map(String::from)
            .to_vec();
        argv.extend(preflight.flags());
        argv.push("-v=1".into());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut init = Daemon::spawn("kubeadm", in_node(hp, &argv), &kubeadm_log).map_err(|source| {
            KubeError::Spawn {
                what: "kubeadm init".into(),
                source,
            }
        })?;
        let status = {
            let init = &mut init;
            let parts = &*parts;
            wait_for(
                "kubeadm init to finish",
                KUBEADM_DEADLINE,
                Duration::from_millis(200),
                || {
                    let done = init.exited();
                    let gone = daemons_gone(parts);
                    async move {
                        match (done, gone) {
                            (Some(status), _) => Attempt::Ready(status),
                            (None, Some(why)) => Attempt::Fatal(why),
                            (None, None) => Attempt::NotYet("running".into()),
                        }
                    }
                },
            )
            .await
        };
        let output = std::fs::read_to_string(&kubeadm_log).unwrap_or_default();
        match status {
            Ok(status) if status.success() => {}
            Ok(_) | Err(_) => {
                init.stop(Duration::from_secs(5));
                let mut first_error = first_kubeadm_error(&output);
                if let Err(e) = status {
                    first_error = format!("{e}; {first_error}");
                }
                return Err(KubeError::KubeadmInit {
                    first_error,
                    tail: process::tail_of_text(&output, 25),
                });
            }
        }
        drop(init);
        mark("kubeadm init done");

        // 8. The admin kubeconfig, fetched from the node (the /etc overlay's upper dir).
        let admin_src = run_dir.join("ovl/etc/upper/kubernetes/admin.conf");
        let admin = run_dir.join("admin.conf");
        std::fs::copy(&admin_src, &admin).map_err(io_err(&admin_src))?;
        let client = super::client::connect(&admin).await?;

        // 9. Node Ready, control-plane taint gone, every kube-system pod Ready.
        let nodes: Api<Node> = Api::all(client.clone());
        wait_api(parts, "node kh-node to be Ready", NODE_READY_DEADLINE, || {
            let nodes = nodes.clone();
            async move {
                match nodes.get_opt(NODE_NAME).await {
                    Ok(Some(node)) if super::client::node_ready(&node) => Attempt::Ready(()),
                    Ok(Some(_)) => Attempt::NotYet("node not Ready".into()),
                    Ok(None) => Attempt::NotYet("no node object yet".into()),
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        })
        .await?;
        mark("node Ready");
        remove_control_plane_taint(&nodes).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
        wait_api(
            parts,
            "every kube-system pod to be Ready",
            SYSTEM_PODS_DEADLINE,
            || {
                let pods = pods.clone();
                async move {
                    match pods.list(&ListParams::default()).await {
                        Ok(list) => {
                            let expected = [
                                "etcd-",
                                "kube-apiserver-",
                                "kube-controller-manager-",
                                "kube-scheduler-",
                                "kube-proxy-",
                            ];
                            let names: Vec<String> = list
                                .items
                                .iter()
                                .filter_map(|p| p.metadata.name.clone())
                                .collect();
                            let missing: Vec<&str> = expected
                                .iter()
                                .copied()
                                .filter(|e| !names.iter().any(|n| n.starts_with(e)))
                                .collect();
                            let unready: Vec<String> = list
                                .items
                                .iter()
                                .filter(|p| !super::client::pod_ready(p))
                                .filter_map(|p| p.metadata.name.clone())
                                .collect();
                            if missing.is_empty() && unready.is_empty() {
                                Attempt::Ready(())
                            } else {
                                Attempt::NotYet(format!("missing {missing:?}, not Ready {unready:?}"))
                            }
                        }
                        Err(e) => Attempt::NotYet(e.to_string()),
                    }
                }
            },
        )
        .await?;
        mark("all kube-system pods Ready");

        // 10. What the suite's pods need: the default ServiceAccount (created by the
        // controller-manager) and the RuntimeClasses.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        wait_api(
            parts,
            "ServiceAccount default/default",
            SERVICE_ACCOUNT_DEADLINE,
            || {
                let accounts = accounts.clone();
                async move {
                    match accounts.get_opt("default").await {
                        Ok(Some(_)) => Attempt::Ready(()),
                        Ok(None) => Attempt::NotYet("not created yet".into()),
                        Err(e) => Attempt::NotYet(e.to_string()),
                    }
                }
            },
        )
        .await?;
        let classes = RuntimeClassApi::for_version(bundle.version);
        for (name, handler) in RUNTIME_CLASSES {
            super::client::create_runtime_class(&client, classes, name, handler).await?;
        }
        mark(&format!("RuntimeClasses created ({})", classes.api_version()));
        // The pre-1.20 path (a DynamicObject) checked against this real server while it still
        // serves v1beta1: created there, read back through v1.
        if classes == RuntimeClassApi::V1 && RuntimeClassApi::v1beta1_served(bundle.version) {
            super::client::check_v1beta1_round_trip(&client, "kh-v1beta1-probe", "kh-probe").await?;
            mark("RuntimeClass node.k8s.io/v1beta1 created, read back through v1");
        }
        Ok(BroughtUp {
            cri,
            client,
            containerd_version: containerd.version_text.clone(),
            ctr: containerd.binary("ctr"),
            crun,
            crictl,
            kubeadm_skipped: preflight.skipped(),
        })
    }

    /// The RuntimeClass API of this cluster's version.
    pub fn runtime_class_api(&self) -> RuntimeClassApi {
        RuntimeClassApi::for_version(self.bundle.version)
    }

    /// Why the cluster is unusable, if it is (kubelet or containerd exited).
    pub fn gone(&self) -> Option<String> {
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
        let kubectl = self.bundle.bin("kubectl");
        if !kubectl.is_file() {
            return "(no kubectl in the bundle)".into();
        }
        let mut command = Command::new(kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .arg("--cache-dir")
            .arg(self.run_dir.join("kubectl-cache"))
            .args(args);
        match process::run_unchecked(&mut command, SHORT_COMMAND) {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("kubectl failed: {e}"),
        }
    }

    /// Removes the pods through the CRI while containerd still answers, then tears the node
    /// down and reports anything still there.
    pub async fn shutdown(self) -> Leftovers {
        // kubelet first: it would recreate what we remove.
        {
            let mut guard = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(kubelet) = guard.as_mut().and_then(|p| p.kubelet.as_mut()) {
                kubelet.stop(Duration::from_secs(10));
            }
        }
        if let Err(e) = self.cri.remove_all_sandboxes().await {
            tracing::warn!(error = %e, "failed to remove the pods through the CRI; killing instead");
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

async fn wait_cri(socket: &Path, parts: &Parts) -> Result<CriClient, KubeError> {
    crate::provision::wait_ready(socket, || daemons_gone(parts))
        .await
        .map_err(|source| KubeError::Wait {
            what: "containerd readiness".into(),
            context: String::new(),
            source,
        })
}

/// A wait on the API that gives up at once when kubelet or containerd has exited.
async fn wait_api<T, F, Fut>(
    parts: &Parts,
    what: &str,
    deadline: Duration,
    mut probe: F,
) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt<T>>,
{
    wait_for(what, deadline, Duration::from_millis(500), || {
        let gone = daemons_gone(parts);
        let attempt = probe();
        async move {
            if let Some(why) = gone {
                return Attempt::Fatal(why);
            }
            attempt.await
        }
    })
    .await
    .map_err(|source| KubeError::Wait {
        what: what.to_owned(),
        context: "see the kubelet and containerd logs in the run dir".into(),
        source,
    })
}

/// kubeadm taints the control-plane node (`master` in 1.20, `control-plane` later): our
/// single node must run workloads.
async fn remove_control_plane_taint(nodes: &Api<Node>) -> Result<(), KubeError> {
    let node = nodes.get(NODE_NAME).await.map_err(|source| KubeError::Api {
        call: format!("get node {NODE_NAME}"),
        source,
    })?;
    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    let keep: Vec<_> = taints
        .into_iter()
        .filter(|t| {
            t.key != "node-role.kubernetes.io/master" && t.key != "node-role.kubernetes.io/control-plane"
        })
        .collect();
    let patch = serde_json::json!({ "spec": { "taints": keep } });
    nodes
        .patch(NODE_NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| KubeError::Api {
            call: "remove the control-plane taint".into(),
            source,
        })?;
    let _ = PostParams::default();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_runs_where_crictl_is_and_is_skipped_with_the_reason_where_not() {
        let with = Preflight { crictl: true };
        assert!(with.flags().contains(&"--skip-phases=addon/coredns".to_owned()));
        assert!(with
            .flags()
            .contains(&"--ignore-preflight-errors=ImagePull".to_owned()));
        assert!(!with.flags().iter().any(|f| f.contains("preflight,")));
        assert!(!with.skipped().iter().any(|(what, _)| what == "phase preflight"));
        let without = Preflight { crictl: false };
        assert_eq!(without.flags()[0], "--skip-phases=preflight,addon/coredns");
        assert!(without
            .skipped()
            .iter()
            .any(|(what, why)| what == "phase preflight" && why.contains("crictl")));
    }

    #[test]
    fn first_error_prefers_kubeadm_error_lines() {
        let out = "I1125 10:00:00.000 1 init.go:1] starting\n[init] Using Kubernetes version: v1.20.2\n\
[wait-control-plane] Waiting\nerror execution phase wait-control-plane: couldn't initialize a Kubernetes cluster\n\
To see the stack trace of this error execute with --v=5 or higher\n";
        assert_eq!(
            first_kubeadm_error(out),
            "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster"
        );
        let klog = "I1125 x\nE1125 10:00:01.1 1 kubelet.go:1] failed to run Kubelet: boom\n";
        assert!(first_kubeadm_error(klog).starts_with("E1125"));
        assert_eq!(
            first_kubeadm_error("all fine\n"),
            "(no error line in kubeadm's output)"
        );
        let warning = "[kubelet-start] WARNING: unable to start the kubelet service: [failed to reload systemd: exit status 1]\n";
        assert_eq!(
            first_kubeadm_error(warning),
            "(no error line in kubeadm's output)"
        );
    }

    #[test]
    fn ns_setup_overlays_every_written_dir_and_shadows_sysctls() {
        let s = ns_setup_script(Path::new("/tmp/kh-x"), "172.31.250.2", true);
        assert!(s.contains("lowerdir=/$d,upperdir=/tmp/kh-x/ovl/$d/upper"));
        assert!(s.contains("for d in etc var usr run opt root;"));
        assert!(s.contains("kernel/panic_on_oops"));
        assert!(s.contains("umount -l /sys/fs/cgroup/unified"));
        assert!(s.contains("echo 1 > /proc/sys/net/ipv4/ip_forward"));
        assert!(!ns_setup_script(Path::new("/tmp/kh-x"), "172.31.250.2", false).contains("umount"));
    }
}
