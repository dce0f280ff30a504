//! The local backend: a private containerd on this host, started and supervised by us.
//!
//! Its config, root, state, socket, CNI config and IPAM state live in the run dir; it runs
//! in its own mount namespace; its pods live under their own cgroup parent and bridge. So the
//! system's containerd (if any) is never touched and cleanup knows exactly what to remove.
//! A node can also be set up otherwise ([`LocalSetup`]): upgraded in place from an older
//! containerd that wrote its config and images, given another line's config, or with the
//! legacy untrusted-workload table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cleanup::{self, CleanupPlan, Leftovers};
use super::kata::KataInstall;
use super::{
    crun_binary, daemon_gone, io_err, new_run_dir, standard_handlers, wait_ready, Backend, ProvisionError,
    RunPaths, Settings, Testbed, SANDBOX_IMAGE,
};
use crate::node::LocalNode;
use crate::process::{self, Daemon};
use crate::profile::{Containerd, ContainerdChoice};
use crate::render::containerd::{RenderError, DROP_IN};
use crate::render::{cni, ContainerdConfig};
use crate::teardown::{self, Registration};
use crate::wait::Attempt;

const CAP_SYS_RESOURCE: u32 = 24;
const UNIFIED_CGROUP: &str = "/sys/fs/cgroup/unified";

pub(super) struct LocalBackend {
    daemon: Mutex<Option<Daemon>>,
    plan: CleanupPlan,
    registration: Option<Registration>,
    log: PathBuf,
}

/// Address on `lo` of containerd's network namespace where scenario registries listen.
/// A non-loopback address, so TLS verification really happens (see the registry module).
pub const NODE_REGISTRY_ADDRESS: &str = super::node_net::REGISTRY_IP;

/// Brings up `lo` in containerd's fresh network namespace and adds the registry address.
/// The namespace has no other interface and no route: the node is air-gapped (any pull of a
/// public image fails at once with "network is unreachable"), while the CNI bridge pods use
/// lives inside it too.
fn loopback_up(netns: &std::path::Path) -> Result<(), crate::process::ProcessError> {
    let ip = |args: &[&str]| {
        let mut argv = vec!["ip".to_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let argv = super::node_net::nsenter_argv(netns, &argv);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        crate::process::run(command, super::NODE_COMMAND_DEADLINE)
    };
    ip(&["link", "set", "lo", "up"])?;
    ip(&["addr", "add", &format!("{NODE_REGISTRY_ADDRESS}/32"), "dev", "lo"])?;
    Ok(())
}

impl LocalBackend {
    pub(super) fn exited(&self) -> Option<String> {
        let mut guard = self.daemon.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_mut()
            .and_then(Daemon::exited)
            .map(|status| format!("containerd exited ({status})"))
    }

    /// containerd's network namespace (`/proc/<pid>/ns/net`) while it runs.
    pub(super) fn netns(&self) -> Option<PathBuf> {
        let guard = self.daemon.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(|d| PathBuf::from(format!("/proc/{}/ns/net", d.pid())))
    }

    pub(super) fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    pub(super) fn log_tail(&self, lines: usize) -> String {
        process::tail_of_file(&self.log, lines)
    }

    /// Stops the daemon with the grace a package upgrade gives it (SIGTERM, then SIGKILL),
    /// keeping everything else; `None` when it was not running or could not be reaped.
    fn stop_daemon(&mut self) -> Option<std::process::ExitStatus> {
        let daemon = self.daemon.lock().unwrap_or_else(|p| p.into_inner()).take();
        daemon.and_then(|mut d| d.stop(Duration::from_secs(10)))
    }

    /// Makes `daemon` this node's containerd: cleanup and interrupts now stop its group, and
    /// its fresh network namespace gets the node's loopback.
    fn adopt(&mut self, daemon: Daemon) -> Result<(), crate::process::ProcessError> {
        self.plan.daemon = cleanup::GroupLeader::of(daemon.pid());
        if let Some(old) = self.registration.replace(register_cleanup(&self.plan)) {
            old.disarm();
        }
        let netns = daemon_netns(&daemon);
        let mut daemon = daemon;
        let up = loopback_up(&netns);
        // As at the first start: a daemon that exited at once is reported by the wait.
        let up = if up.is_err() && exits_soon(&mut daemon) {
            Ok(())
        } else {
            up
        };
        *self.daemon.lock().unwrap_or_else(|p| p.into_inner()) = Some(daemon);
        up
    }

    /// Lets the node outlive this process (`kata-harness up`): containerd detached, the
    /// cleanup registration disarmed. The plan is what removes it later (`down`).
    pub(super) fn keep(mut self) -> CleanupPlan {
        if let Some(daemon) = self.daemon.lock().unwrap_or_else(|p| p.into_inner()).take() {
            daemon.detach();
        }
        if let Some(registration) = self.registration.take() {
            registration.disarm();
        }
        self.plan
    }

    pub(super) fn finish(mut self) -> Leftovers {
        if let Some(mut daemon) = self.daemon.lock().unwrap_or_else(|p| p.into_inner()).take() {
            daemon.stop(Duration::from_secs(10));
        }
        let leftovers = cleanup::run(&self.plan);
        if let Some(registration) = self.registration.take() {
            registration.disarm();
        }
        leftovers
    }
}

/// In an upgraded node's run dir: the log of the containerd that ran before the upgrade
/// (`containerd.log` is the running one's).
pub const PRE_UPGRADE_LOG: &str = "containerd-before-upgrade.log";

/// How a local node differs from the standard one (a row with a node of its own).
/// `Default` is the standard node: the config of the containerd that runs, no legacy table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalSetup {
    /// Render the config for this containerd instead of for the one that runs (the file a
    /// downgrade leaves behind).
    pub config_for: Option<ContainerdChoice>,
    /// Run this older containerd first, with a config rendered for it, import the standard
    /// images with it and stop it; then start the settings' containerd on the same config
    /// file, root and state dirs: an in-place upgrade.
    pub upgrade_from: Option<ContainerdChoice>,
    /// The standard handler whose runtime takes pods annotated
    /// `io.kubernetes.cri.untrusted-workload: "true"` (the legacy table, containerd 1.x).
    pub untrusted_workload_runtime: Option<String>,
    /// Write the handlers to `<run dir>/conf.d/`[`DROP_IN`], imported by the main file, as
    /// kata-deploy 4.x does.
    pub handlers_drop_in: bool,
}

impl Testbed {
    /// Starts a private containerd on this host: own config, root, state and socket in a
    /// fresh run dir, so the system's containerd (if any) is untouched.
    pub async fn start_local(settings: &Settings) -> Result<Testbed, ProvisionError> {
        Testbed::start_local_with(settings, &LocalSetup::default()).await
    }

    /// [`Testbed::start_local`] for a node set up as `setup` says.
    pub async fn start_local_with(
        settings: &Settings,
        setup: &LocalSetup,
    ) -> Result<Testbed, ProvisionError> {
        teardown::install_interrupt_handler();
        let containerd = settings.containerd.resolve()?;
        // The containerd that starts first: the upgrade's old line, else the one that stays.
        let first = match &setup.upgrade_from {
            Some(choice) => choice.resolve()?,
            None => containerd.clone(),
        };
        // Whose schema the config file has: the first daemon's, unless set otherwise.
        let config_version = match &setup.config_for {
            Some(choice) => choice.resolve()?.version,
            None => first.version,
        };
        let (id, run_dir) = new_run_dir()?;
        let paths = RunPaths {
            run_dir: run_dir.clone(),
            config: run_dir.join("config.toml"),
            node_run_dir: run_dir.clone(),
            socket: run_dir.join("containerd.sock"),
            node_socket: run_dir.join("containerd.sock"),
            pod_logs: run_dir.join("pod-logs"),
            runtime_root: run_dir.join("runtime-root"),
            images: run_dir.join("images"),
            staging: run_dir.join("images"),
        };
        for dir in [
            &paths.pod_logs,
            &paths.runtime_root,
            &paths.images,
            &run_dir.join("net.d"),
            &run_dir.join("ipam"),
            &run_dir.join("certs.d"),
        ] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let crun = crun_binary().to_string_lossy().into_owned();
        let install = |plan: &Option<super::kata::KataPlan>| match plan {
            Some(plan) => super::kata::install_local(plan, &run_dir)
                .map(Some)
                .map_err(io_err(&run_dir)),
            None => Ok(None),
        };
        let kata = install(&settings.kata)?;
        let kata_rs = install(&settings.kata_rs)?;
        let mut runtimes = standard_handlers(&paths.runtime_root, &crun);
        for install in kata.iter().chain(&kata_rs) {
            super::kata::use_config(&mut runtimes, install);
        }
        let untrusted_workload_runtime = match &setup.untrusted_workload_runtime {
            Some(name) => Some(
                runtimes
                    .iter()
                    .find(|r| &r.name == name)
                    .cloned()
                    .ok_or_else(|| RenderError::Handler {
                        handler: name.clone(),
                        reason: "is not one of the standard handlers (untrusted_workload_runtime)".into(),
                    })?,
            ),
            None => None,
        };
        let config = ContainerdConfig {
            version: config_version,
            root: run_dir.join("root"),
            state: run_dir.join("state"),
            grpc_address: paths.socket.clone(),
            temp_dir: run_dir.join("tmp"),
            opt_dir: run_dir.join("opt"),
            sandbox_image: SANDBOX_IMAGE.into(),
            default_runtime: "runc".into(),
            runtimes,
            untrusted_workload_runtime,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conf_dir: run_dir.join("net.d"),
            // hosts.toml is re-read on every pull, so scenarios add and remove registries
            // here without restarting containerd.
            registry_config_path: Some(run_dir.join("certs.d")),
            snapshotter: "overlayfs".into(),
            restrict_oom_score_adj: !has_capability(CAP_SYS_RESOURCE),
        };
        if setup.handlers_drop_in {
            let conf_d = super::conf_d(&paths.config);
            let (main, drop_in) = config.render_with_drop_in(&conf_d)?;
            std::fs::create_dir_all(&conf_d).map_err(io_err(&conf_d))?;
            let drop_in_path = conf_d.join(DROP_IN);
            std::fs::write(&drop_in_path, drop_in).map_err(io_err(&drop_in_path))?;
            std::fs::write(&paths.config, main).map_err(io_err(&paths.config))?;
        } else {
            std::fs::write(&paths.config, config.render()?).map_err(io_err(&paths.config))?;
        }
        let bridge = format!("khbr-{id}");
        let subnet = format!("10.250.{}.0/24", u8::from_str_radix(&id[..2], 16).unwrap_or(1));
        let conflist = cni::bridge_conflist(
            &format!("kata-harness-{id}"),
            &bridge,
            &subnet,
            &run_dir.join("ipam"),
        );
        let conf_path = run_dir.join("net.d/10-kata-harness.conflist");
        std::fs::write(&conf_path, conflist).map_err(io_err(&conf_path))?;

        // crictl for people and reproduce.sh: its own config in the run dir (never the
        // host's /etc/crictl.yaml, which is the user's), `--config <run dir>/crictl.yaml`.
        let crictl = crate::artifacts::cri_tools::crictl().map(|path| {
            if crate::artifacts::cri_tools::on_path(&path) {
                "crictl".to_owned()
            } else {
                path.to_string_lossy().into_owned()
            }
        });
        let crictl_yaml = run_dir.join("crictl.yaml");
        std::fs::write(&crictl_yaml, crate::render::crictl::config(&paths.node_socket))
            .map_err(io_err(&crictl_yaml))?;

        let cgroup_parent = format!("kata-harness-{id}");
        let mut plan = CleanupPlan {
            run_dir: run_dir.clone(),
            socket: paths.socket.clone(),
            daemon: None,
            bridge,
            cgroup_parent: cgroup_parent.clone(),
            keep_run_dir: settings.keep,
            env_tag: Some(run_dir.to_string_lossy().into_owned()),
        };
        cleanup::enter_system_paths();
        // Registered before the daemon exists, so an interrupt from here on cleans up.
        let registration = register_cleanup(&plan);

        let log = run_dir.join("containerd.log");
        let installs: Vec<&KataInstall> = kata.iter().chain(&kata_rs).collect();
        let daemon = spawn_daemon(&first, &paths.config, &installs, &run_dir, &log)?;
        plan.daemon = cleanup::GroupLeader::of(daemon.pid());
        registration.disarm();
        let registration = register_cleanup(&plan);
        let mut daemon = daemon;
        if let Err(e) = loopback_up(&daemon_netns(&daemon)) {
            // A containerd that exits at once (a config it refuses) takes its namespace with
            // it: then that exit is the cause, and the wait below reports it with the log.
            if !exits_soon(&mut daemon) {
                daemon.stop(Duration::from_secs(10));
                let _ = cleanup::run(&plan);
                registration.disarm();
                return Err(ProvisionError::Spawn(e));
            }
        }
        let daemon = Mutex::new(Some(daemon));

        let ready = wait_ready(&paths.socket, || daemon_gone(&daemon, "containerd")).await;
        let backend = LocalBackend {
            daemon,
            plan,
            registration: Some(registration),
            log: log.clone(),
        };
        let cri = match ready {
            Ok(cri) => cri,
            Err(source) => {
                let log_tail = process::tail_of_file(&log, 40);
                let _ = backend.finish();
                return Err(ProvisionError::NotReady { source, log_tail });
            }
        };
        let mut facts = vec![
            ("containerd".into(), first.version_text.clone()),
            ("target".into(), "local".into()),
        ];
        if let Some(plan) = &settings.kata {
            facts.push(("kata".into(), plan.conditions.join("; ")));
        }
        if let Some(plan) = &settings.kata_rs {
            facts.push(("kata runtime-rs".into(), plan.conditions.join("; ")));
        }
        if setup.config_for.is_some() {
            facts.push((
                "config".into(),
                format!(
                    "rendered for containerd {config_version} (schema {})",
                    config.schema()?.number()
                ),
            ));
        }
        if let Some(untrusted) = &config.untrusted_workload_runtime {
            facts.push((
                "untrusted_workload_runtime".into(),
                format!(
                    "the {} handler's runtime {} (pods annotated io.kubernetes.cri.untrusted-workload: \"true\")",
                    untrusted.name, untrusted.runtime_type
                ),
            ));
        }
        facts.push((
            "crictl".into(),
            match &crictl {
                Some(crictl) => format!("{crictl} (config {})", crictl_yaml.display()),
                None => crate::artifacts::cri_tools::MISSING.into(),
            },
        ));
        let mut testbed = Testbed {
            id,
            facts,
            containerd: first,
            config,
            paths,
            cri,
            node: Arc::new(LocalNode),
            cgroup_parent,
            crun,
            slowdown: 1,
            kata,
            kata_rs,
            crictl,
            backend: Mutex::new(Some(Backend::Local(backend))),
        };
        testbed.import_standard_images(settings)?;
        if setup.upgrade_from.is_some() {
            testbed.upgrade_local(containerd).await?;
        }
        Ok(testbed)
    }

    /// Stops this node's containerd cleanly and starts `to` in its place on the same config
    /// file, root and state dirs (what a package upgrade does), then waits for its CRI. The
    /// images stay as the old daemon imported them: nothing is imported again.
    async fn upgrade_local(&mut self, to: Containerd) -> Result<(), ProvisionError> {
        let from = self.containerd.version;
        let schema = self.config.schema()?.number();
        let stopped = self.swap_daemon(&to)?;
        let ready = wait_ready(&self.paths.socket, || self.daemon_exit()).await;
        let cri = ready.map_err(|source| ProvisionError::NotReady {
            source,
            log_tail: self.log_tail(40),
        })?;
        self.cri = cri;
        // containerd 2.x says so when it migrates an older config at start.
        let log = std::fs::read_to_string(self.paths.run_dir.join("containerd.log")).unwrap_or_default();
        let migrated = log
            .lines()
            .find(|l| l.contains("Configuration migrated"))
            .and_then(|l| l.split('"').nth(3).or(Some(l)))
            .map(|msg| format!("; containerd {} logged: {msg}", to.version))
            .unwrap_or_default();
        self.facts.retain(|(k, _)| k != "containerd");
        self.facts
            .insert(0, ("containerd".into(), to.version_text.clone()));
        self.facts.push((
            "upgrade".into(),
            format!(
                "upgraded in place from containerd {from} (stopped on SIGTERM: {stopped}) keeping its version-{schema} config, root and state dirs and the images it imported{migrated}"
            ),
        ));
        self.containerd = to;
        Ok(())
    }

    /// The upgrade's package step: stops the old daemon (its log kept as
    /// [`PRE_UPGRADE_LOG`]) and spawns `to` on the same config; says how the old one
    /// ended. Synchronous, so no lock on the backend is held while the new one gets ready.
    fn swap_daemon(&self, to: &Containerd) -> Result<String, ProvisionError> {
        let mut guard = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        let Some(Backend::Local(backend)) = guard.as_mut() else {
            return Err(ProvisionError::Upgrade {
                reason: "only a running local testbed is upgraded in place".into(),
            });
        };
        // A package upgrade stops the old daemon with SIGTERM: it must exit 0 on it, or the
        // new one would start on state the old one did not finish writing.
        let stopped = match backend.stop_daemon() {
            Some(status) if status.success() => status.to_string(),
            other => {
                return Err(ProvisionError::Upgrade {
                    reason: format!(
                        "containerd {} did not stop cleanly on SIGTERM ({}); its log ends with:\n{}",
                        self.containerd.version,
                        other.map_or("not reaped".into(), |s| s.to_string()),
                        backend.log_tail(20)
                    ),
                })
            }
        };
        let old_log = self.paths.run_dir.join(PRE_UPGRADE_LOG);
        std::fs::rename(&backend.log, &old_log).map_err(io_err(&old_log))?;
        let installs: Vec<&KataInstall> = self.kata.iter().chain(&self.kata_rs).collect();
        let daemon = spawn_daemon(
            to,
            &self.paths.config,
            &installs,
            &self.paths.run_dir,
            &backend.log,
        )?;
        backend.adopt(daemon).map_err(ProvisionError::Spawn)?;
        Ok(stopped)
    }
}

/// Starts containerd (`containerd --config <config>`) in its private namespaces, its log
/// appended to `log`; the daemon finds the shims of *its* version first on PATH, then Kata's.
/// Whether the daemon has exited, or does within a moment (its namespaces go before it can be
/// reaped).
fn exits_soon(daemon: &mut Daemon) -> bool {
    let daemon = Mutex::new(daemon);
    crate::wait::wait_blocking(
        "containerd to exit",
        Duration::from_secs(2),
        Duration::from_millis(20),
        || match daemon.lock().unwrap_or_else(|p| p.into_inner()).exited() {
            Some(_) => Attempt::Ready(()),
            None => Attempt::NotYet("running".into()),
        },
    )
    .is_ok()
}

fn spawn_daemon(
    containerd: &Containerd,
    config: &Path,
    kata: &[&KataInstall],
    run_dir: &Path,
    log: &Path,
) -> Result<Daemon, ProvisionError> {
    let mut command = Command::new(containerd.binary("containerd"));
    command.arg("--config").arg(config);
    let kata_bin: String = kata.iter().map(|k| format!("{}:", k.bin_dir.display())).collect();
    let path = format!(
        "{}:{kata_bin}{}",
        containerd.bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command.env("PATH", path);
    command.env(cleanup::TESTBED_ENV, run_dir);
    let hide_unified = hybrid_cgroups_with_v2_controllers();
    let layouts: Vec<String> = super::kata::node_layouts(kata.iter().map(|k| k.layout_dir.clone()))
        .iter()
        .map(|dir| dir.to_string_lossy().into_owned())
        .collect();
    let kata_mount = match layouts.as_slice() {
        [] => None,
        [one] => Some(KataMount::Bind(one.clone())),
        many => Some(KataMount::Overlay(format!("lowerdir={}", many.join(":")))),
    };
    // SAFETY: the closure only makes raw syscalls (unshare, mount, umount2, mkdir, stat)
    // between fork and exec, as pre_exec requires; the layouts' paths were made before fork.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || private_mounts(hide_unified, kata_mount.as_ref()));
    }
    Daemon::spawn("containerd", command, log).map_err(ProvisionError::Spawn)
}

fn daemon_netns(daemon: &Daemon) -> PathBuf {
    PathBuf::from(format!("/proc/{}/ns/net", daemon.pid()))
}

/// A hybrid cgroup host whose v2 hierarchy holds controllers (here: hugetlb). crun refuses
/// such hosts ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
pub fn hybrid_cgroups_with_v2_controllers() -> bool {
    std::fs::read_to_string(format!("{UNIFIED_CGROUP}/cgroup.controllers"))
        .is_ok_and(|controllers| !controllers.trim().is_empty())
}

/// Runs in the daemon's child before exec: a private mount namespace for containerd, its
/// shims and their containers. Every mount they make (rootfs overlays, shm, netns) lives and
/// dies with that namespace, so none can leak onto the host, and the host's mounts are never
/// changed. On hybrid hosts the v2 hierarchy is hidden there so runc and crun both see plain v1.
/// Also a private network namespace: the node has no outbound network (air-gapped sandbox
/// image scenarios), its CNI bridge never appears on the host, and scenario registries
/// listen only inside it.
/// And a private /run (see below), and the Kata layouts at /opt/kata (see [`mount_kata_layout`]).
fn private_mounts(hide_unified: bool, kata_mount: Option<&KataMount>) -> std::io::Result<()> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_NEWNET)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    if hide_unified {
        umount2(UNIFIED_CGROUP, MntFlags::MNT_DETACH)?;
    }
    // A private /run: what the shims write at fixed paths (Kata's /run/vc and
    // /run/kata-containers, /run/containerd/s, /run/netns) lives and dies with the node.
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )?;
    if let Some(kata) = kata_mount {
        mount_kata_layout(kata)?;
    }
    Ok(())
}

/// How a node sees its Kata layouts at /opt/kata (made before fork: see [`spawn_daemon`]).
enum KataMount {
    /// One layout's `opt/kata`, bound.
    Bind(String),
    /// Overlay options merging layouts (the Go runtime's and runtime-rs's, built apart), the
    /// first one's files over the next's, as Kata 4.x's two release tarballs unpack into one
    /// tree: `lowerdir=<a>:<b>`.
    Overlay(String),
}

/// Mounts the layouts read-only at /opt/kata, where their configurations and QEMU look for
/// their files; read-only, so no row can change a layout. Where the host has no /opt/kata to
/// mount on, /opt becomes a copy-on-write overlay (its upper dir in the private /run) holding
/// one: the host's /opt is not changed either way.
fn mount_kata_layout(kata: &KataMount) -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    use nix::sys::stat::Mode;
    const MOUNT_POINT: &str = "/opt/kata";
    if nix::sys::stat::stat(MOUNT_POINT).is_err() {
        let mode = Mode::from_bits_truncate(0o755);
        for dir in [
            "/run/kata-harness-opt",
            "/run/kata-harness-opt/upper",
            "/run/kata-harness-opt/work",
        ] {
            nix::unistd::mkdir(dir, mode)?;
        }
        mount(
            Some("overlay"),
            "/opt",
            Some("overlay"),
            MsFlags::empty(),
            Some("lowerdir=/opt,upperdir=/run/kata-harness-opt/upper,workdir=/run/kata-harness-opt/work"),
        )?;
        nix::unistd::mkdir(MOUNT_POINT, mode)?;
    }
    let layout = match kata {
        KataMount::Bind(layout) => layout,
        // An overlay of lower layers only is read-only.
        KataMount::Overlay(options) => {
            mount(
                Some("overlay"),
                MOUNT_POINT,
                Some("overlay"),
                MsFlags::MS_RDONLY,
                Some(options.as_str()),
            )?;
            return Ok(());
        }
    };
    mount(
        Some(layout.as_str()),
        MOUNT_POINT,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    mount(
        None::<&str>,
        MOUNT_POINT,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )?;
    Ok(())
}

/// Whether this process holds a capability (containerd inherits our set on the local target).
pub fn has_capability(bit: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

fn register_cleanup(plan: &CleanupPlan) -> Registration {
    let plan = plan.clone();
    teardown::register(format!("testbed {}", plan.run_dir.display()), move || {
        let leftovers = cleanup::run(&plan);
        if !leftovers.is_clean() {
            eprintln!("cleanup left: {:?}", leftovers.0);
        }
    })
}
