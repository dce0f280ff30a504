//! Provisioning a testbed: render configs, start containerd, load images, verify the CRI.
//!
//! Invariant: a [`Testbed`] is ready when it exists (CRI answering, network ready, standard
//! images imported into `k8s.io`), and dropping it leaves the node as it was found.

pub mod cleanup;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cri::{CriClient, CriError};
use crate::images::{self, ImageError};
use crate::node::{LocalNode, Node, NodeError};
use crate::process::{self, Daemon, ProcessError};
use crate::profile::{Containerd, ContainerdChoice, ProfileError};
use crate::render::containerd::RenderError;
use crate::render::{cni, ContainerdConfig, RuntimeHandler};
use crate::teardown::{self, Registration};
use crate::wait::{wait_for, Attempt, WaitError};

use cleanup::{CleanupPlan, Leftovers};

/// How long containerd may take to answer the CRI after it starts.
const DAEMON_READY_DEADLINE: Duration = Duration::from_secs(60);
/// Per-call CRI deadline (a sandbox start with image unpack is the slowest call).
const CRI_CALL_DEADLINE: Duration = Duration::from_secs(120);
/// Short node commands (`ctr`, `runc state`).
pub const NODE_COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Image names the testbed preloads. The sandbox image carries the name kubeadm 1.20 expects,
/// so a pinned, preloaded pause image is never pulled (the seed notes' issue 03).
pub const SANDBOX_IMAGE: &str = "k8s.gcr.io/pause:3.2";
pub const BUSYBOX_IMAGE: &str = "localhost/kata-harness/busybox:1";
pub const BUSYBOX_BINARY: &str = "/bin/busybox";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("failed to resolve containerd")]
    Profile(#[from] ProfileError),
    #[error("failed to render the containerd config")]
    Render(#[from] RenderError),
    #[error("failed to prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start containerd")]
    Spawn(#[source] ProcessError),
    #[error("containerd did not become ready; its log ends with:\n{log_tail}")]
    NotReady {
        #[source]
        source: WaitError,
        log_tail: String,
    },
    #[error("failed to connect to the CRI")]
    Cri(#[from] CriError),
    #[error("failed to build the standard images")]
    Image(#[from] ImageError),
    #[error("failed to import {image} into namespace {namespace}")]
    Import {
        image: String,
        namespace: String,
        #[source]
        source: NodeError,
    },
}

/// What a testbed is started with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub containerd: ContainerdChoice,
    /// Keep the run dir (configs, logs) after a clean shutdown.
    pub keep: bool,
    /// A real `pause` binary for the sandbox image (from the Kubernetes bundle), if present.
    pub pause_binary: Option<PathBuf>,
}

/// Files of one testbed, all under its run dir.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub run_dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub pod_logs: PathBuf,
    pub runtime_root: PathBuf,
    /// Image archives on the node.
    pub images: PathBuf,
    /// Image archives as built on the host (the same dir for the local target).
    pub staging: PathBuf,
}

impl RunPaths {
    fn new(run_dir: &Path) -> Self {
        RunPaths {
            run_dir: run_dir.to_owned(),
            config: run_dir.join("config.toml"),
            socket: run_dir.join("containerd.sock"),
            log: run_dir.join("containerd.log"),
            pod_logs: run_dir.join("pod-logs"),
            runtime_root: run_dir.join("runtime-root"),
            images: run_dir.join("images"),
            staging: run_dir.join("images"),
        }
    }
}

/// A running containerd with the CRI ready, on a node.
pub struct Testbed {
    pub id: String,
    pub containerd: Containerd,
    pub config: ContainerdConfig,
    pub paths: RunPaths,
    pub cri: CriClient,
    pub node: Arc<dyn Node>,
    pub cgroup_parent: String,
    /// The crun binary on the node (the crun handler's `BinaryName`).
    pub crun: String,
    daemon: Mutex<Option<Daemon>>,
    plan: CleanupPlan,
    registration: Mutex<Option<Registration>>,
}

/// The crun the crun handler uses: a newer one from the cache when present (Debian
/// bookworm's crun 1.8 rejects the OCI spec 1.1 that containerd 1.7+ writes: "unknown version
/// specified"), else `crun` from PATH.
pub fn crun_binary() -> PathBuf {
    let cached = crate::profile::cache_dir().join("crun/current/usr/bin/crun");
    if cached.exists() {
        cached
    } else {
        PathBuf::from("crun")
    }
}

/// The runtime handlers every testbed configures: runc (default), crun, and Kata's.
pub fn standard_handlers(runtime_root: &Path) -> Vec<RuntimeHandler> {
    let mut crun = RuntimeHandler::crun(Some(runtime_root.to_owned()));
    crun.options.binary_name = Some(crun_binary().to_string_lossy().into_owned());
    vec![
        RuntimeHandler::runc(Some(runtime_root.to_owned())),
        crun,
        RuntimeHandler::kata(None),
        RuntimeHandler::kata(Some("qemu")),
    ]
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Io {
        path: path.to_owned(),
        source,
    }
}

fn short_id() -> String {
    use sha2::{Digest, Sha256};
    let seed = format!(
        "{:?}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..3])
}

impl Testbed {
    /// Starts a private containerd on this host: own config, root, state and socket in a
    /// fresh run dir, so the system's containerd (if any) is untouched.
    pub async fn start_local(settings: &Settings) -> Result<Testbed, ProvisionError> {
        teardown::install_interrupt_handler();
        let containerd = settings.containerd.resolve()?;
        let id = short_id();
        let run_dir = std::env::temp_dir().join(format!("kata-harness-{id}"));
        std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
        let paths = RunPaths::new(&run_dir);
        for dir in [
            &paths.pod_logs,
            &paths.runtime_root,
            &paths.images,
            &run_dir.join("net.d"),
            &run_dir.join("ipam"),
        ] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }

        let config = ContainerdConfig {
            version: containerd.version,
            root: run_dir.join("root"),
            state: run_dir.join("state"),
            grpc_address: paths.socket.clone(),
            temp_dir: run_dir.join("tmp"),
            opt_dir: run_dir.join("opt"),
            sandbox_image: SANDBOX_IMAGE.into(),
            default_runtime: "runc".into(),
            runtimes: standard_handlers(&paths.runtime_root),
            untrusted_workload_runtime: None,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conf_dir: run_dir.join("net.d"),
            registry_config_path: None,
            snapshotter: "overlayfs".into(),
            restrict_oom_score_adj: !has_capability(CAP_SYS_RESOURCE),
        };
        std::fs::write(&paths.config, config.render()?).map_err(io_err(&paths.config))?;
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

        let cgroup_parent = format!("kata-harness-{id}");
        let mut plan = CleanupPlan {
            run_dir: run_dir.clone(),
            socket: paths.socket.clone(),
            daemon_pgid: None,
            bridge,
            cgroup_parent: cgroup_parent.clone(),
            keep_run_dir: settings.keep,
        };
        cleanup::enter_system_paths();
        // Registered before the daemon exists, so an interrupt from here on cleans up.
        let registration = register_cleanup(&plan);

        let mut command = Command::new(containerd.binary("containerd"));
        command.arg("--config").arg(&paths.config);
        // The daemon finds `ctr`-less helpers and the shims of *its* version first on PATH.
        let path = format!(
            "{}:{}",
            containerd.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command.env("PATH", path);
        let hide_unified = hybrid_cgroups_with_v2_controllers();
        // SAFETY: the closure only makes raw syscalls (unshare, mount, umount2) between fork
        // and exec, as pre_exec requires.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || private_mounts(hide_unified));
        }
        let mut daemon = Daemon::spawn("containerd", command, &paths.log).map_err(ProvisionError::Spawn)?;
        plan.daemon_pgid = Some(daemon.pid() as i32);
        registration.disarm();
        let registration = register_cleanup(&plan);

        let cri = match wait_ready(&mut daemon, &paths.socket).await {
            Ok(cri) => cri,
            Err(source) => {
                let log_tail = daemon.log_tail(40);
                drop(daemon);
                drop(registration);
                return Err(ProvisionError::NotReady { source, log_tail });
            }
        };
        let testbed = Testbed {
            id,
            containerd,
            config,
            paths,
            cri,
            node: Arc::new(LocalNode),
            cgroup_parent,
            crun: crun_binary().to_string_lossy().into_owned(),
            daemon: Mutex::new(Some(daemon)),
            plan,
            registration: Mutex::new(Some(registration)),
        };
        testbed.import_standard_images(settings)?;
        Ok(testbed)
    }

    /// Builds busybox and the pause image and imports both into `k8s.io`.
    fn import_standard_images(&self, settings: &Settings) -> Result<(), ProvisionError> {
        let busybox = images::busybox(Path::new(BUSYBOX_BINARY))?;
        let busybox = self.put_image("busybox.tar", BUSYBOX_IMAGE, &busybox)?;
        let pause = images::pause(settings.pause_binary.as_deref(), Path::new(BUSYBOX_BINARY))?;
        let pause = self.put_image("pause.tar", SANDBOX_IMAGE, &pause)?;
        for archive in [&busybox, &pause] {
            self.ctr_import("k8s.io", &archive.path)
                .map_err(|source| ProvisionError::Import {
                    image: archive.name.clone(),
                    namespace: "k8s.io".into(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Builds an image archive on the host and puts it on the node; the returned archive's
    /// path is the node's.
    pub fn put_image(
        &self,
        file: &str,
        name: &str,
        image: &images::ImageBuilder,
    ) -> Result<images::ImageArchive, ImageError> {
        let staged = self.paths.staging.join(file);
        let mut archive = image.write_archive(name, &staged)?;
        let on_node = self.paths.images.join(file);
        self.node
            .upload(&staged, &on_node)
            .map_err(|e| ImageError::Write {
                path: on_node.clone(),
                source: std::io::Error::other(e),
            })?;
        archive.path = on_node;
        Ok(archive)
    }

    /// `ctr -n <namespace> images import <archive>` on the node.
    pub fn ctr_import(&self, namespace: &str, archive: &Path) -> Result<Output, NodeError> {
        self.ctr(namespace, &["images", "import", &archive.to_string_lossy()])
    }

    /// The `ctr` command line for this testbed (also used in reproduce scripts).
    pub fn ctr_argv(&self, namespace: &str, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            self.containerd.binary("ctr").to_string_lossy().into_owned(),
            "--address".into(),
            self.paths.socket.to_string_lossy().into_owned(),
            "-n".into(),
            namespace.into(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Result<Output, NodeError> {
        self.node
            .run(&self.ctr_argv(namespace, args), NODE_COMMAND_DEADLINE)
    }

    /// `crictl` as a human would run it against this testbed.
    pub fn crictl_prefix(&self) -> String {
        format!("crictl --runtime-endpoint unix://{}", self.paths.socket.display())
    }

    /// The daemon's exit status if it has died (what makes every wait on it pointless).
    pub fn daemon_exit(&self) -> Option<String> {
        let mut guard = self.daemon.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_mut()
            .and_then(Daemon::exited)
            .map(|status| status.to_string())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        process::tail_of_file(&self.paths.log, lines)
    }

    /// `containerd --config <ours> config dump`: the effective config.
    pub fn config_dump(&self) -> Result<String, ProcessError> {
        config_dump(&self.containerd, &self.paths.config)
    }

    /// A label for reports: `containerd 1.6.20 (schema 2) on local`.
    pub fn describe(&self) -> String {
        let schema = self.config.schema().map(|s| s.number()).unwrap_or(0);
        format!(
            "containerd {} (config schema {schema}) on {}, run dir {}",
            self.containerd.version,
            self.node.name(),
            self.paths.run_dir.display()
        )
    }

    /// Removes our sandboxes through the CRI, stops containerd, undoes everything else, and
    /// reports anything that is still there.
    pub async fn shutdown(self) -> Leftovers {
        if let Err(e) = self.cri.remove_all_sandboxes().await {
            tracing::warn!(error = %e, "failed to remove sandboxes through the CRI; killing instead");
        }
        self.finish()
    }

    fn finish(&self) -> Leftovers {
        if let Some(mut daemon) = self.daemon.lock().unwrap_or_else(|p| p.into_inner()).take() {
            daemon.stop(Duration::from_secs(10));
        }
        let leftovers = cleanup::run(&self.plan);
        if let Some(registration) = self.registration.lock().unwrap_or_else(|p| p.into_inner()).take() {
            registration.disarm();
        }
        leftovers
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self
            .registration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            let leftovers = self.finish();
            if !leftovers.is_clean() {
                tracing::error!(?leftovers, "testbed left things behind");
            }
        }
    }
}

const CAP_SYS_RESOURCE: u32 = 24;
const UNIFIED_CGROUP: &str = "/sys/fs/cgroup/unified";

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
fn private_mounts(hide_unified: bool) -> std::io::Result<()> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
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

/// Runs `containerd config dump` for a config file (no daemon needed).
pub fn config_dump(containerd: &Containerd, config: &Path) -> Result<String, ProcessError> {
    let mut cmd = Command::new(containerd.binary("containerd"));
    cmd.arg("--config").arg(config).args(["config", "dump"]);
    let out = process::run(cmd, Duration::from_secs(30))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// Waits for the socket and for the CRI to report the runtime and the network ready, while
/// watching the daemon: if it exits, waiting is pointless.
async fn wait_ready(daemon: &mut Daemon, socket: &Path) -> Result<CriClient, WaitError> {
    let daemon = Arc::new(Mutex::new(daemon));
    wait_for(
        "containerd's CRI to report RuntimeReady and NetworkReady",
        DAEMON_READY_DEADLINE,
        Duration::from_millis(50),
        || {
            let daemon = daemon.clone();
            async move {
                if let Some(status) = daemon.lock().unwrap_or_else(|p| p.into_inner()).exited() {
                    return Attempt::Fatal(format!("containerd exited ({status})"));
                }
                if !socket.exists() {
                    return Attempt::NotYet(format!("no socket at {}", socket.display()));
                }
                let cri = match CriClient::connect(socket, CRI_CALL_DEADLINE).await {
                    Ok(cri) => cri,
                    Err(e) => return Attempt::NotYet(e.to_string()),
                };
                match cri.status().await {
                    Ok(status) => {
                        let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
                        let not_ready: Vec<String> = conditions
                            .iter()
                            .filter(|c| !c.status)
                            .map(|c| format!("{}: {} {}", c.r#type, c.reason, c.message))
                            .collect();
                        if conditions.is_empty() {
                            Attempt::NotYet("no runtime conditions yet".into())
                        } else if not_ready.is_empty() {
                            Attempt::Ready(cri)
                        } else {
                            Attempt::NotYet(not_ready.join("; "))
                        }
                    }
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        },
    )
    .await
}
