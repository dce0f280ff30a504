//! The cluster's bring-up, phase by phase: the node namespace (holder, overlays, sysctl
//! shadows, veth, cgroup root), containerd in it, the images, kubelet, kubeadm init, and the
//! API server's readiness. Teardown of whatever started is the parent module's.

use super::node_ns::{host, in_node, ns_setup_script};
use super::*;

impl Cluster {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn bring_up(
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
        std::fs::write(
            &setup,
            ns_setup_script(run_dir, node_ip, hide_unified, &settings.kata_layouts()),
        )
        .map_err(io_err(&setup))?;
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
        let containerd = settings.containerd.resolve()?;
        let crun = crun_binary().to_string_lossy().into_owned();
        let ctd = run_dir.join("ctd");
        // The run dir is under /tmp, which the node namespace shares with the host: the
        // Kata install's paths are the same inside.
        let mut runtimes = standard_handlers(&ctd.join("runtime-root"), &crun);
        let mut kata = Vec::new();
        for plan in settings.kata.iter().chain(&settings.kata_rs) {
            let install = crate::provision::kata::install_local(plan, run_dir).map_err(io_err(run_dir))?;
            crate::provision::kata::use_config(&mut runtimes, &install);
            kata.push(install);
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
        let kata_bin: String = kata.iter().map(|k| format!("{}:", k.bin_dir.display())).collect();
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
        let client = crate::kube::client::connect(&admin).await?;

        // 9. Node Ready, control-plane taint gone, every kube-system pod Ready.
        let nodes: Api<Node> = Api::all(client.clone());
        wait_api(parts, "node kh-node to be Ready", NODE_READY_DEADLINE, || {
            let nodes = nodes.clone();
            async move {
                match nodes.get_opt(NODE_NAME).await {
                    Ok(Some(node)) if crate::kube::client::node_ready(&node) => Attempt::Ready(()),
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
                                .filter(|p| !crate::kube::client::pod_ready(p))
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
        for (name, handler) in runtime_classes(&settings.kata_runtime_class) {
            // runtime-rs's own class only where it is installed: an existing-cluster run
            // takes a class as the promise that its runtime works.
            if name == "kata-qemu-runtime-rs" && settings.kata_rs.is_none() {
                continue;
            }
            crate::kube::client::create_runtime_class(&client, classes, name, &handler, None).await?;
        }
        mark(&format!("RuntimeClasses created ({})", classes.api_version()));
        // The pre-1.20 path (a DynamicObject) checked against this real server while it still
        // serves v1beta1: created there, read back through v1.
        if classes == RuntimeClassApi::V1 && RuntimeClassApi::v1beta1_served(bundle.version) {
            crate::kube::client::check_v1beta1_round_trip(&client, "kh-v1beta1-probe", "kh-probe").await?;
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
}

/// The cgroup v1 controllers kubelet checks its `cgroupRoot` in.
const CGROUP_CONTROLLERS: [&str; 9] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
];

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

/// The first line of kubeadm's output that states an error (what the report leads with).
fn first_kubeadm_error(output: &str) -> String {
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
}
