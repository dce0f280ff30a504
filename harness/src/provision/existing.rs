//! An existing containerd, reached at its CRI socket on this host (`--target
//! cri:///path/to/sock`) or on another host over SSH (`--target ssh://user@host`, see
//! [`super::reach`]): its handlers are discovered from the CRI plugin's own configuration, it
//! is never reconfigured or restarted, and it is left as found.
//!
//! Invariant: the harness changes only what it can undo exactly, and undoes it at shutdown:
//! its own sandboxes (label `kata-harness=true`, removed by [`Testbed::shutdown`]), the
//! images it imported because they were missing (removed again), its pods' cgroup parent,
//! and its own run dir. Nothing it did not create is removed or killed (the local backend's
//! cleanup kills by socket path, which here would hit the node's own shims).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::reach::{on_node, Connection, Reach};
use super::{
    cleanup::{self, Leftovers},
    io_err, new_run_dir, Backend, ProvisionError, RunPaths, Settings, Testbed, BUSYBOX_IMAGE,
    NODE_COMMAND_DEADLINE,
};
use crate::cri::CriClient;
use crate::images;
use crate::node::Node;
use crate::profile::{parse_containerd_version, Containerd, Version};
use crate::render::{ContainerdConfig, RuntimeHandler, RuntimeOptions};

/// How long an existing node's CRI may take to answer the first calls.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// What the node's CRI says about itself.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub socket: PathBuf,
    pub version: Version,
    /// `RuntimeName RuntimeVersion` as the CRI reported them.
    pub version_text: String,
    pub handlers: Vec<RuntimeHandler>,
    pub default_handler: String,
    /// The pinned sandbox image: containerd 1.x reports it; 2.x does not, and then it is the
    /// image the CRI lists as pinned, if one is there.
    pub sandbox_image: Option<String>,
    pub registry_config_path: Option<PathBuf>,
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    /// The CRI plugin's effective configuration (`crictl info`'s `config`), for evidence.
    pub config_json: String,
    /// What the pull rows would need of the node (filled in by [`discover_node`]).
    pub registry: RegistrySupport,
}

/// What an existing node offers the pull rows, which start a registry in its network and
/// write a hosts.toml under its registry config_path (with `--allow-node-changes` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RegistrySupport {
    pub config_path: Option<PathBuf>,
    /// The entries already under config_path: a row never writes over one of them.
    pub hosts: Vec<String>,
    /// The programs the rows run on the node that it does not have.
    pub missing: Vec<String>,
}

/// The programs a pull row runs on the node: the registry, its pusher, its probe, and `ip`
/// for the registry's address.
const PULL_PROGRAMS: [&str; 4] = ["docker-registry", "skopeo", "curl", "ip"];

impl RegistrySupport {
    fn of(node: &dyn Node, config_path: Option<&Path>) -> RegistrySupport {
        let missing = PULL_PROGRAMS
            .iter()
            .filter(|p| on_node(node, p).is_none())
            .map(|p| p.to_string())
            .collect();
        let hosts = config_path
            .and_then(|dir| {
                let argv = ["ls", "-1", "-A", &dir.to_string_lossy()].map(String::from);
                node.run_unchecked(&argv, NODE_COMMAND_DEADLINE).ok()
            })
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        RegistrySupport {
            config_path: config_path.map(Path::to_path_buf),
            hosts,
            missing,
        }
    }
}

impl Discovered {
    pub fn handler_names(&self) -> Vec<String> {
        self.handlers.iter().map(|h| h.name.clone()).collect()
    }
}

fn discovery_err(socket: &Path, message: String) -> ProvisionError {
    ProvisionError::Existing {
        socket: socket.to_owned(),
        message,
    }
}

/// Connects to the node, asks its CRI, and disconnects (what `list` and the plan need).
pub async fn discover_node(reach: &Reach, node_socket: &Path) -> Result<Discovered, ProvisionError> {
    let scratch = tempfile::tempdir().map_err(io_err(Path::new("/tmp")))?;
    let mut connection = Connection::open(reach, node_socket, scratch.path()).await?;
    let found = discover_through(&connection).await;
    connection.close();
    found
}

/// [`discover`], completed with what the CRI does not say: containerd 2.x keeps the registry
/// config_path in its images plugin, which its CRI status leaves out, so it is read from
/// `containerd config dump` of the very daemon (found by the socket's peer credentials on
/// this host; the node's `containerd` with its default config over SSH).
async fn discover_through(connection: &Connection) -> Result<Discovered, ProvisionError> {
    let mut found = discover(&connection.socket).await?;
    let node = connection.node.as_ref();
    if found.registry_config_path.is_none() && found.version.major >= 2 {
        let argv = if connection.is_remote() {
            vec!["containerd".to_owned(), "config".into(), "dump".into()]
        } else {
            config_dump_argv(&connection.socket)?
        };
        let dump = node
            .run(&argv, NODE_COMMAND_DEADLINE)
            .map_err(ProvisionError::Guest)?;
        found.registry_config_path = images_config_path(&String::from_utf8_lossy(&dump.stdout));
    }
    found.registry = RegistrySupport::of(node, found.registry_config_path.as_deref());
    Ok(found)
}

/// `containerd [--config FILE] config dump` of the daemon listening on `socket`: its own
/// binary and config file, from /proc.
fn config_dump_argv(socket: &Path) -> Result<Vec<String>, ProvisionError> {
    let pid = listener_pid(socket)?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(io_err(Path::new("/proc")))?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).map_err(io_err(Path::new("/proc")))?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let file = match args.iter().position(|a| a == "--config" || a == "-c") {
        Some(i) => args.get(i + 1).cloned(),
        None => args
            .iter()
            .find_map(|a| a.strip_prefix("--config=").map(str::to_owned)),
    };
    let mut argv = vec![exe.to_string_lossy().into_owned()];
    if let Some(file) = file {
        // Relative to the daemon's working directory, not ours.
        let file = Path::new(&format!("/proc/{pid}/cwd")).join(file);
        argv.extend(["--config".to_owned(), file.to_string_lossy().into_owned()]);
    }
    argv.extend(["config".to_owned(), "dump".to_owned()]);
    Ok(argv)
}

/// The images plugin's registry config_path in a containerd 2.x config dump: its first
/// directory (containerd takes a `:`-separated list; hosts.toml files go in the first).
fn images_config_path(dump: &str) -> Option<PathBuf> {
    let config: toml::Table = toml::from_str(dump).ok()?;
    let path = config
        .get("plugins")?
        .get("io.containerd.cri.v1.images")?
        .get("registry")?
        .get("config_path")?
        .as_str()?;
    path.split(':').find(|p| !p.is_empty()).map(PathBuf::from)
}

/// The network namespace of the process listening on `socket` (the node's containerd, which
/// is where it pulls from), as `/proc/<pid>/ns/net`: its peer credentials name it.
fn listener_netns(socket: &Path) -> Result<PathBuf, ProvisionError> {
    Ok(PathBuf::from(format!("/proc/{}/ns/net", listener_pid(socket)?)))
}

/// The pid of the process listening on `socket` on this host (SO_PEERCRED of a connection).
fn listener_pid(socket: &Path) -> Result<i32, ProvisionError> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let stream = std::os::unix::net::UnixStream::connect(socket).map_err(io_err(socket))?;
    let credentials = getsockopt(&stream, PeerCredentials)
        .map_err(|e| discovery_err(socket, format!("SO_PEERCRED: {e}")))?;
    Ok(credentials.pid())
}

/// Asks the CRI at `socket` (on this host) for its version, readiness and configuration.
pub async fn discover(socket: &Path) -> Result<Discovered, ProvisionError> {
    if !socket.exists() {
        return Err(discovery_err(socket, "no such socket".into()));
    }
    let cri = CriClient::connect(socket, CONNECT_DEADLINE).await?;
    let version = cri.version().await?;
    if version.runtime_name != "containerd" {
        return Err(discovery_err(
            socket,
            format!(
                "the CRI runtime is {:?}, not containerd (the harness reads containerd's own record of every container)",
                version.runtime_name
            ),
        ));
    }
    let version_text = format!("containerd {}", version.runtime_version);
    let parsed = parse_containerd_version(&version_text)?;
    let status = cri.status_verbose().await?;
    let config_json = status.info.get("config").cloned().unwrap_or_default();
    let config: Value = serde_json::from_str(&config_json)
        .map_err(|e| discovery_err(socket, format!("`crictl info` has no readable config ({e})")))?;
    let ctd = &config["containerd"];
    let runtimes = ctd["runtimes"]
        .as_object()
        .ok_or_else(|| discovery_err(socket, "the CRI config lists no runtimes".into()))?;
    let handlers: Vec<RuntimeHandler> = runtimes
        .iter()
        .map(|(name, runtime)| handler_from_json(name, runtime))
        .collect();
    let default_handler = ctd["defaultRuntimeName"].as_str().unwrap_or("runc").to_owned();
    let mut sandbox_image = config["sandboxImage"].as_str().map(str::to_owned);
    if sandbox_image.is_none() {
        sandbox_image = cri
            .list_images()
            .await?
            .into_iter()
            .find(|image| image.pinned)
            .and_then(|image| image.repo_tags.into_iter().next());
    }
    let registry_config_path = config["registry"]["configPath"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let cni = &config["cni"];
    let cni_bin_dir = cni["binDir"]
        .as_str()
        .filter(|d| !d.is_empty())
        .or_else(|| cni["binDirs"][0].as_str())
        .unwrap_or("/opt/cni/bin");
    Ok(Discovered {
        socket: socket.to_owned(),
        version: parsed,
        version_text,
        handlers,
        default_handler,
        sandbox_image,
        registry_config_path,
        cni_bin_dir: PathBuf::from(cni_bin_dir),
        cni_conf_dir: PathBuf::from(cni["confDir"].as_str().unwrap_or("/etc/cni/net.d")),
        config_json,
        registry: RegistrySupport::default(),
    })
}

/// A runtime of the CRI config as containerd's config model has it.
fn handler_from_json(name: &str, runtime: &Value) -> RuntimeHandler {
    let options = &runtime["options"];
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    RuntimeHandler {
        name: name.to_owned(),
        runtime_type: runtime["runtimeType"].as_str().unwrap_or_default().to_owned(),
        options: RuntimeOptions {
            binary_name: text(&options["BinaryName"]),
            root: text(&options["Root"]).map(PathBuf::from),
            config_path: text(&options["ConfigPath"]).map(PathBuf::from),
        },
        pod_annotations: runtime["PodAnnotations"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    }
}

/// The `ctr` to reach a node of this version with: the cached release line's, else the one on
/// PATH (its client API reaches older and newer daemons alike).
fn local_ctr_dir(version: Version) -> Option<PathBuf> {
    let line = crate::profile::ContainerdChoice::Line(format!("{}.{}", version.major, version.minor));
    if let Ok(found) = line.resolve() {
        return Some(found.bin_dir);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|dir| dir.join("ctr").is_file()))
}

pub(super) struct ExistingBackend {
    connection: Connection,
    /// The harness's dir on the node (pod logs, image archives), when it is not this host.
    node_run_dir: Option<PathBuf>,
    /// The node's sandboxes when the testbed attached (labelled by the harness or not):
    /// never removed.
    preexisting: HashSet<String>,
    /// Images the harness imported because the node lacked them (namespace k8s.io).
    imported: Vec<String>,
    ctr: Vec<String>,
    run_dir: PathBuf,
    cgroup_parent: String,
    keep_run_dir: bool,
    config_json: String,
    /// containerd's network on this host (`None` over SSH: commands run in the node's own).
    netns: Option<PathBuf>,
    /// What an interrupt undoes instead of [`ExistingBackend::finish`] (disarmed by it).
    interrupt: Option<crate::teardown::Registration>,
}

impl ExistingBackend {
    pub(super) fn netns(&self) -> Option<PathBuf> {
        self.netns.clone()
    }

    pub(super) fn preexisting(&self) -> HashSet<String> {
        self.preexisting.clone()
    }

    pub(super) fn exited(&mut self) -> Option<String> {
        self.connection.lost().or_else(|| {
            let socket = &self.connection.socket;
            (!socket.exists()).then(|| format!("the node's CRI socket {} is gone", socket.display()))
        })
    }

    pub(super) fn log_tail(&self) -> String {
        "the node's containerd is not the harness's: its log is where the node keeps it (e.g. journalctl -u containerd)".into()
    }

    pub(super) fn config_dump(&self) -> String {
        serde_json::from_str::<Value>(&self.config_json)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| self.config_json.clone())
    }

    pub(super) fn finish(mut self) -> Leftovers {
        if let Some(interrupt) = self.interrupt.take() {
            interrupt.disarm();
        }
        let node = self.connection.node.clone();
        let mut left = Vec::new();
        for image in &self.imported {
            let mut argv = self.ctr.clone();
            argv.extend(["-n", "k8s.io", "images", "rm", image.as_str()].map(String::from));
            if let Err(e) = node.run(&argv, NODE_COMMAND_DEADLINE) {
                left.push(format!("image {image} (imported by the harness): {e}"));
            }
        }
        match &self.node_run_dir {
            None => left.extend(cleanup::clear_cgroup_parent(&self.cgroup_parent)),
            Some(dir) => left.extend(clear_remote(
                node.as_ref(),
                &self.cgroup_parent,
                dir,
                self.keep_run_dir,
            )),
        }
        self.connection.close();
        if !self.keep_run_dir && left.is_empty() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
        Leftovers(left)
    }
}

/// What the harness put on an existing node, for an interrupt to take away.
struct Undo {
    node: std::sync::Arc<dyn Node>,
    socket: PathBuf,
    keep: HashSet<String>,
    imported: Vec<String>,
    ctr: Vec<String>,
    run_dir: PathBuf,
    node_run_dir: Option<PathBuf>,
    cgroup_parent: String,
}

/// On Ctrl-C: the harness's own sandboxes (never the node's), the images it imported, its
/// pods' cgroup parent and its run dirs; from a thread of its own with a CRI client of its own
/// (the run's lives on the runtime the interrupt is stopping).
fn on_interrupt(undo: Undo) -> crate::teardown::Registration {
    crate::teardown::register("the harness's objects on the existing node", move || {
        let Undo {
            node,
            socket,
            keep,
            imported,
            ctr,
            run_dir,
            node_run_dir,
            cgroup_parent,
        } = undo;
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let cri = CriClient::connect(&socket, CONNECT_DEADLINE).await.ok()?;
                cri.remove_all_sandboxes_but(&keep).await.ok()
            })
        })
        .join();
        if !matches!(removed, Ok(Some(_))) {
            eprintln!("the harness's sandboxes on the existing node could not be removed");
        }
        for image in &imported {
            let mut argv = ctr.clone();
            argv.extend(["-n", "k8s.io", "images", "rm", image.as_str()].map(String::from));
            let _ = node.run(&argv, NODE_COMMAND_DEADLINE);
        }
        let left = match &node_run_dir {
            None => cleanup::clear_cgroup_parent(&cgroup_parent),
            Some(dir) => clear_remote(node.as_ref(), &cgroup_parent, dir, false),
        };
        for thing in left {
            eprintln!("left on the existing node: {thing}");
        }
        let _ = std::fs::remove_dir_all(&run_dir);
    })
}

/// On a remote node: our pods' cgroup parent (empty once its pods are gone) and our dir;
/// what is still there.
fn clear_remote(node: &dyn Node, parent: &str, dir: &Path, keep_dir: bool) -> Vec<String> {
    let mut left = Vec::new();
    let script = format!(
        "find /sys/fs/cgroup -depth -type d -name '{parent}' -exec rmdir {{}} + 2>/dev/null; find /sys/fs/cgroup -type d -name '{parent}'"
    );
    match node.run_unchecked(&["sh".into(), "-c".into(), script], NODE_COMMAND_DEADLINE) {
        Ok(out) => left.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|cgroup| format!("cgroup {cgroup} on {}", node.name())),
        ),
        Err(e) => left.push(format!("cgroup {parent} on {}: {e}", node.name())),
    }
    if !keep_dir {
        let argv = ["rm", "-rf", &dir.to_string_lossy()].map(String::from);
        if let Err(e) = node.run(&argv, NODE_COMMAND_DEADLINE) {
            left.push(format!("{} on {}: {e}", dir.display(), node.name()));
        }
    }
    left
}

impl Testbed {
    /// A testbed on an existing containerd: nothing of its configuration is written; busybox
    /// (and the node's sandbox image, on an air-gapped node) are imported when missing, and
    /// removed again at shutdown.
    pub async fn attach_existing(
        reach: &Reach,
        node_socket: &Path,
        settings: &Settings,
    ) -> Result<Testbed, ProvisionError> {
        crate::teardown::install_interrupt_handler();
        let (id, run_dir) = new_run_dir()?;
        let attached = Self::attach_in(reach, node_socket, settings, id, run_dir.clone()).await;
        // A node that could not be attached leaves no run dir here (its SSH processes went
        // with the connection).
        if attached.is_err() && !settings.keep {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        attached
    }

    async fn attach_in(
        reach: &Reach,
        node_socket: &Path,
        settings: &Settings,
        id: String,
        run_dir: PathBuf,
    ) -> Result<Testbed, ProvisionError> {
        let connection = Connection::open(reach, node_socket, &run_dir).await?;
        // Discovered again: the node may have changed since the run was planned.
        let found = &discover_through(&connection).await?;
        let node = connection.node.clone();
        let remote = connection.is_remote();
        let node_run_dir = if remote {
            let dir = PathBuf::from(format!("/tmp/kata-harness-{id}"));
            let argv = [
                "mkdir".to_owned(),
                "-p".to_owned(),
                dir.join("pod-logs").to_string_lossy().into_owned(),
                dir.join("images").to_string_lossy().into_owned(),
            ];
            node.run(&argv, NODE_COMMAND_DEADLINE)
                .map_err(ProvisionError::Guest)?;
            dir
        } else {
            run_dir.clone()
        };
        let runc_root = found
            .handlers
            .iter()
            .find(|h| h.runtime_type == "io.containerd.runc.v2" && h.options.root.is_some())
            .and_then(|h| h.options.root.clone())
            .unwrap_or_else(|| PathBuf::from("/run/containerd/runc"));
        let paths = RunPaths {
            run_dir: run_dir.clone(),
            config: PathBuf::new(),
            node_run_dir: node_run_dir.clone(),
            socket: connection.socket.clone(),
            node_socket: node_socket.to_owned(),
            pod_logs: node_run_dir.join("pod-logs"),
            runtime_root: runc_root,
            images: node_run_dir.join("images"),
            staging: run_dir.join("images"),
        };
        for dir in [&run_dir.join("pod-logs"), &paths.staging] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let bin_dir = if remote {
            on_node(node.as_ref(), "ctr").and_then(|p| p.parent().map(Path::to_path_buf))
        } else {
            local_ctr_dir(found.version)
        };
        let bin_dir = bin_dir.ok_or_else(|| {
            discovery_err(node_socket, format!("no ctr on {} to reach it with", node.name()))
        })?;
        let containerd = Containerd {
            bin_dir,
            version: found.version,
            version_text: found.version_text.clone(),
        };
        let config = ContainerdConfig {
            version: found.version,
            root: PathBuf::new(),
            state: PathBuf::new(),
            grpc_address: node_socket.to_owned(),
            temp_dir: PathBuf::new(),
            opt_dir: PathBuf::new(),
            sandbox_image: found.sandbox_image.clone().unwrap_or_default(),
            default_runtime: found.default_handler.clone(),
            runtimes: found.handlers.clone(),
            untrusted_workload_runtime: None,
            cni_bin_dir: found.cni_bin_dir.clone(),
            cni_conf_dir: found.cni_conf_dir.clone(),
            registry_config_path: found.registry_config_path.clone(),
            snapshotter: "overlayfs".into(),
            restrict_oom_score_adj: false,
        };
        let cri = CriClient::connect(&connection.socket, super::CRI_CALL_DEADLINE).await?;
        let netns = if remote {
            None
        } else {
            Some(listener_netns(&connection.socket)?)
        };
        let preexisting = cri.list_pod_sandboxes().await?;
        let crictl = if remote {
            on_node(node.as_ref(), "crictl")
        } else {
            crate::artifacts::cri_tools::crictl()
        }
        .map(|p| p.to_string_lossy().into_owned());
        let crictl_yaml = run_dir.join("crictl.yaml");
        std::fs::write(&crictl_yaml, crate::render::crictl::config(&paths.node_socket))
            .map_err(io_err(&crictl_yaml))?;
        let cgroup_parent = format!("kata-harness-{id}");
        let mut facts = vec![
            ("containerd".into(), found.version_text.clone()),
            (
                "target".into(),
                match reach {
                    Reach::Local => format!("cri://{}", node_socket.display()),
                    Reach::Ssh { .. } => format!("{} (CRI socket {})", node.name(), node_socket.display()),
                },
            ),
            (
                "handlers".into(),
                found
                    .handlers
                    .iter()
                    .map(|h| format!("{}={}", h.name, h.runtime_type))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ];
        let mut testbed = Testbed {
            id,
            facts: vec![],
            containerd,
            config,
            paths,
            cri,
            node,
            cgroup_parent: cgroup_parent.clone(),
            crun: super::crun_binary().to_string_lossy().into_owned(),
            slowdown: 1,
            kata: None,
            kata_rs: None,
            crictl,
            backend: Mutex::new(None),
        };
        let ctr: Vec<String> = testbed.ctr_argv("k8s.io", &[])[..3].to_vec();
        // Whatever was imported is recorded before an error can end this, so it is removed.
        let mut imported = Vec::new();
        let outcome = testbed.import_missing(found, settings, &mut imported).await;
        let preexisting: HashSet<String> = preexisting.into_iter().map(|p| p.id).collect();
        let interrupt = on_interrupt(Undo {
            node: testbed.node.clone(),
            socket: connection.socket.clone(),
            keep: preexisting.clone(),
            imported: imported.clone(),
            ctr: ctr.clone(),
            run_dir: run_dir.clone(),
            node_run_dir: remote.then(|| node_run_dir.clone()),
            cgroup_parent: cgroup_parent.clone(),
        });
        let backend = ExistingBackend {
            connection,
            node_run_dir: remote.then_some(node_run_dir),
            preexisting,
            imported: imported.clone(),
            ctr,
            run_dir,
            cgroup_parent,
            keep_run_dir: settings.keep,
            config_json: found.config_json.clone(),
            netns,
            interrupt: Some(interrupt),
        };
        *testbed.backend.lock().unwrap_or_else(|p| p.into_inner()) = Some(Backend::Existing(backend));
        outcome?;
        facts.push((
            "imported".into(),
            if imported.is_empty() {
                "nothing (the node had busybox and its sandbox image)".into()
            } else {
                format!("{} (removed again at the end)", imported.join(", "))
            },
        ));
        testbed.facts = facts;
        Ok(testbed)
    }

    /// Imports busybox, and the pause image under the node's sandbox image name, where the
    /// node lacks them, adding each name to `imported` as it lands.
    async fn import_missing(
        &self,
        found: &Discovered,
        settings: &Settings,
        imported: &mut Vec<String>,
    ) -> Result<(), ProvisionError> {
        let mut wanted = vec![(BUSYBOX_IMAGE.to_owned(), "busybox.tar")];
        if let Some(pause) = &found.sandbox_image {
            wanted.push((pause.clone(), "pause.tar"));
        }
        for (name, file) in wanted {
            if self.cri.image_status(&name).await?.is_some() {
                continue;
            }
            let image = if file == "busybox.tar" {
                images::busybox(Path::new(super::BUSYBOX_BINARY))?
            } else {
                images::pause(settings.pause_binary.as_deref(), Path::new(super::BUSYBOX_BINARY))?
            };
            let archive = self.put_image(file, &name, &image)?;
            self.ctr_import("k8s.io", &archive.path)
                .map_err(|source| ProvisionError::Import {
                    image: name.clone(),
                    namespace: "k8s.io".into(),
                    source,
                })?;
            imported.push(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::images_config_path;
    use std::path::PathBuf;

    /// As `containerd config dump` (2.1.9) prints it; an empty value means none.
    #[test]
    fn the_images_plugin_config_path_is_read_from_a_2x_dump() {
        let dump = |value: &str| {
            format!(
                "version = 3\n[plugins]\n  [plugins.'io.containerd.cri.v1.images']\n    [plugins.'io.containerd.cri.v1.images'.registry]\n      config_path = '{value}'\n  [plugins.'io.containerd.transfer.v1.local']\n    config_path = '/not/this'\n"
            )
        };
        assert_eq!(
            images_config_path(&dump("/etc/containerd/certs.d:/etc/docker/certs.d")),
            Some(PathBuf::from("/etc/containerd/certs.d"))
        );
        assert_eq!(images_config_path(&dump("")), None);
        assert_eq!(images_config_path("not toml ["), None);
    }
}
