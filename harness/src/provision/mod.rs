//! Provisioning a testbed: render configs, start containerd, load images, verify the CRI.
//!
//! Invariant: a [`Testbed`] is ready when it exists (CRI answering, network ready, standard
//! images imported into `k8s.io`), and shutting it down (or dropping it) leaves the node as
//! it was found. Two backends: a private containerd on this host ([`local`]) and the
//! containerd of a throw-away VM ([`vm`]); trials cannot tell them apart.

pub mod cleanup;
pub mod existing;
mod guest;
pub mod kata;
pub mod kept;
pub mod local;
pub mod node_net;
pub mod reach;
pub mod vm;
mod vm_kata;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cri::{CriClient, CriError};
use crate::images::{self, ImageError};
use crate::node::{Node, NodeError};
use crate::process::{shell_line, Daemon, ProcessError};
use crate::profile::{Containerd, ContainerdChoice, ProfileError};
use crate::render::containerd::RenderError;
use crate::render::{ContainerdConfig, RuntimeHandler};
use crate::wait::{wait_for, Attempt, WaitError};

use cleanup::Leftovers;

/// How long containerd may take to answer the CRI after it starts.
const DAEMON_READY_DEADLINE: Duration = Duration::from_secs(90);
/// Per-call CRI deadline (a sandbox start with image unpack is the slowest call).
pub(crate) const CRI_CALL_DEADLINE: Duration = Duration::from_secs(120);
/// Short node commands (`ctr`, `runc state`).
pub const NODE_COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Image names the testbed preloads. The sandbox image carries the name kubeadm 1.20 expects,
/// so a pinned, preloaded pause image is never pulled (an air-gapped node cannot pull it).
pub const SANDBOX_IMAGE: &str = "k8s.gcr.io/pause:3.2";
pub const BUSYBOX_IMAGE: &str = "localhost/kata-harness/busybox:1";
/// Re-exported: provisioning builds the standard images from it.
pub use crate::images::BUSYBOX_BINARY;

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
    #[error("failed to get the VM image")]
    VmImage(#[from] crate::vm::image::ImageError),
    #[error("failed to boot the VM")]
    Vm(#[from] crate::vm::qemu::VmError),
    #[error("failed to set up containerd in the VM")]
    Guest(#[source] NodeError),
    #[error("the containerd at {socket}: {message}")]
    Existing { socket: PathBuf, message: String },
    #[error("failed to upgrade the testbed in place: {reason}")]
    Upgrade { reason: String },
    #[error("the VM's saved state {dir}: {message}")]
    SavedState { dir: PathBuf, message: String },
    #[error("failed to install Kata in the VM guest: {0}")]
    GuestKata(String),
}

/// What a testbed is started with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub containerd: ContainerdChoice,
    /// Keep the run dir (configs, logs) after a clean shutdown, and a VM running after a
    /// failed run.
    pub keep: bool,
    /// A real `pause` binary for the sandbox image (from the Kubernetes bundle), if present.
    pub pause_binary: Option<PathBuf>,
    /// The checkout (for `vm-images/` and `scripts/build-vm-image`).
    pub repo: PathBuf,
    /// Kata to install on local nodes, as this host can run it (`None`: no Kata handlers
    /// work; their rows are skipped by the plan).
    pub kata: Option<kata::KataPlan>,
    /// Kata's runtime-rs for local nodes (its handler `kata-qemu-runtime-rs`), likewise.
    pub kata_rs: Option<kata::KataPlan>,
    /// The handler a cluster's RuntimeClass `kata` points at (a profile's
    /// `kubernetes.kata_runtime_class`).
    pub kata_runtime_class: String,
}

impl Settings {
    /// A node with the standard handlers and no Kata, its run dir removed when it stops
    /// (VM nodes bring their own containerd: `containerd` only matters for local nodes).
    pub fn plain(repo: PathBuf) -> Settings {
        Settings {
            containerd: ContainerdChoice::Line("1.6".into()),
            keep: false,
            pause_binary: None,
            repo,
            kata: None,
            kata_rs: None,
            kata_runtime_class: "kata".into(),
        }
    }
}

/// Where a testbed's files are. Paths are as the node sees them, except `run_dir` and
/// `staging`, which are always on this host.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// Host-side directory of this testbed (logs, forwarded sockets, overlays).
    pub run_dir: PathBuf,
    /// containerd's config file on the node.
    pub config: PathBuf,
    /// The run dir as the node sees it: files written under `run_dir` are put at the same
    /// relative place here (the same dir on the local target).
    pub node_run_dir: PathBuf,
    /// The CRI socket on this host (the daemon's own, or the SSH-forwarded one).
    pub socket: PathBuf,
    /// The CRI socket as the node sees it (what `ctr` and `crictl` on the node use).
    pub node_socket: PathBuf,
    pub pod_logs: PathBuf,
    pub runtime_root: PathBuf,
    /// Image archives on the node.
    pub images: PathBuf,
    /// Image archives as built on the host (the same dir for the local target).
    pub staging: PathBuf,
}

/// How the testbed's containerd lives, and what undoes it.
// One per testbed, held behind a mutex and never copied: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Local(local::LocalBackend),
    Vm(vm::VmBackend),
    Existing(existing::ExistingBackend),
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
    /// Facts for reports: image, kernel, accelerator, component versions.
    pub facts: Vec<(String, String)>,
    /// The node's Kata install (the Go runtime's), where it has one.
    pub kata: Option<kata::KataInstall>,
    /// Its runtime-rs install, where it has one (local nodes).
    pub kata_rs: Option<kata::KataInstall>,
    /// How many times the usual deadlines this node's rows get (see
    /// [`kata::KataPlan::slowdown`]): 1 but where Kata's guest is TCG inside TCG.
    pub slowdown: u32,
    /// crictl as the node runs it: a path, or `crictl` where it is on the node's PATH
    /// (`None`: none was found, see [`crate::artifacts::cri_tools`]).
    pub crictl: Option<String>,
    backend: Mutex<Option<Backend>>,
}

/// The crun the local crun handler uses: a newer one from the cache when present (Debian
/// bookworm's crun 1.8 rejects the OCI spec 1.2 that containerd 2.1 writes: "unknown version
/// specified"), else `crun` from PATH.
pub fn crun_binary() -> PathBuf {
    let cached = crate::profile::cache_dir().join("crun/current/usr/bin/crun");
    if cached.exists() {
        cached
    } else {
        PathBuf::from("crun")
    }
}

/// The runtime handlers every testbed configures: runc (default), crun, and Kata's as
/// kata-deploy names them (`kata`, `kata-qemu` for the Go runtime, `kata-qemu-runtime-rs`).
pub fn standard_handlers(runtime_root: &Path, crun: &str) -> Vec<RuntimeHandler> {
    let mut crun_handler = RuntimeHandler::crun(Some(runtime_root.to_owned()));
    crun_handler.options.binary_name = Some(crun.to_owned());
    vec![
        RuntimeHandler::runc(Some(runtime_root.to_owned())),
        crun_handler,
        RuntimeHandler::kata(None),
        RuntimeHandler::kata(Some("qemu")),
        RuntimeHandler::kata(Some("qemu-runtime-rs")),
    ]
}

/// The `conf.d` folder beside a node's config file, which a drop-in config imports.
fn conf_d(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new("/")).join("conf.d")
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

/// A fresh host-side run dir for one testbed.
fn new_run_dir() -> Result<(String, PathBuf), ProvisionError> {
    let id = short_id();
    let run_dir = std::env::temp_dir().join(format!("kata-harness-{id}"));
    std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
    Ok((id, run_dir))
}

impl Testbed {
    /// The node's install of the runtime that runs `runtime_type` (`io.containerd.kata*`).
    pub fn kata_for(&self, runtime_type: &str) -> Option<&kata::KataInstall> {
        self.kata_install(crate::artifacts::kata::KataRuntime::of_runtime_type(
            runtime_type,
        )?)
    }

    /// The node's install of `runtime`, if it has one.
    pub fn kata_install(&self, runtime: crate::artifacts::kata::KataRuntime) -> Option<&kata::KataInstall> {
        match runtime {
            crate::artifacts::kata::KataRuntime::Go => self.kata.as_ref(),
            crate::artifacts::kata::KataRuntime::Rust => self.kata_rs.as_ref(),
        }
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
        self.put_image_layout(file, name, image, images::ArchiveLayout::Amd64)
    }

    /// [`Testbed::put_image`] for an archive of another platform layout.
    pub fn put_image_layout(
        &self,
        file: &str,
        name: &str,
        image: &images::ImageBuilder,
        layout: images::ArchiveLayout,
    ) -> Result<images::ImageArchive, ImageError> {
        let staged = self.paths.staging.join(file);
        let mut archive = image.write_layout(name, &staged, layout)?;
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

    /// The `ctr` command line on the node (also used in reproduce scripts).
    pub fn ctr_argv(&self, namespace: &str, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            self.containerd.binary("ctr").to_string_lossy().into_owned(),
            "--address".into(),
            self.paths.node_socket.to_string_lossy().into_owned(),
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

    /// The node's own kernel release (`uname -r` on the node), to tell a VM guest's from it.
    pub fn node_kernel(&self) -> Result<String, NodeError> {
        self.node
            .run(&["uname".to_owned(), "-r".to_owned()], NODE_COMMAND_DEADLINE)
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    }

    /// `crictl` as a human would run it on the node: its path (or `crictl` where it is on
    /// PATH) with both CRI endpoints, so no `/etc/crictl.yaml` is needed or read.
    pub fn crictl_prefix(&self) -> String {
        let endpoint = format!("unix://{}", self.paths.node_socket.display());
        shell_line(&[
            self.crictl.clone().unwrap_or_else(|| "crictl".into()),
            "--runtime-endpoint".into(),
            endpoint.clone(),
            "--image-endpoint".into(),
            endpoint,
        ])
    }

    /// A `ctr` line of `reproduce.sh` (the script's `ctr` function knows the socket).
    pub fn ctr_line(namespace: &str, args: &[&str]) -> String {
        let mut argv = vec!["ctr".to_owned(), "-n".into(), namespace.into()];
        argv.extend(args.iter().map(|a| a.to_string()));
        shell_line(&argv)
    }

    fn with_backend<T>(&self, f: impl FnOnce(&mut Backend) -> T) -> Option<T> {
        self.backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(f)
    }

    /// Why the testbed is gone, if it is (containerd exited, QEMU died): what makes every
    /// further wait on it pointless.
    pub fn daemon_exit(&self) -> Option<String> {
        self.with_backend(|b| match b {
            Backend::Local(l) => l.exited(),
            Backend::Vm(v) => v.exited(),
            Backend::Existing(e) => e.exited(),
        })
        .unwrap_or_else(|| Some("the testbed was shut down".into()))
    }

    /// The network namespace the node's containerd (and so its pods' pulls) lives in, as a
    /// `/proc/<pid>/ns/net` path on this host; `None` when the node is a VM (its own kernel).
    /// Registries and client-side pulls (`ctr` 1.6/1.7 fetch in the client) run in it.
    pub fn net_namespace(&self) -> Option<PathBuf> {
        self.with_backend(|b| match b {
            Backend::Local(l) => l.netns(),
            Backend::Existing(e) => e.netns(),
            Backend::Vm(_) => None,
        })
        .flatten()
    }

    /// The last lines of containerd's log (the journal in a VM, plus the console there).
    pub fn log_tail(&self, lines: usize) -> String {
        self.with_backend(|b| match b {
            Backend::Local(l) => l.log_tail(lines),
            Backend::Vm(v) => v.log_tail(self.node.as_ref(), lines),
            Backend::Existing(e) => e.log_tail(),
        })
        .unwrap_or_default()
    }

    /// The node's filesystems that hold its state (the run dir, pod logs, containerd's
    /// default root, `/`) and are full: each as "`<mount>` (`<free>` KiB free)". A full disk
    /// shows in the CRI only as some call's "no space left on device", or as a daemon exit.
    pub fn full_filesystems(&self) -> Vec<String> {
        let mut argv: Vec<String> = ["df", "-Pk"].map(String::from).to_vec();
        for path in [&self.paths.node_run_dir, &self.paths.pod_logs] {
            argv.push(path.to_string_lossy().into_owned());
        }
        argv.extend(["/var/lib/containerd".to_owned(), "/".to_owned()]);
        let Ok(out) = self.node.run_unchecked(&argv, NODE_COMMAND_DEADLINE) else {
            return Vec::new();
        };
        full_in_df(&String::from_utf8_lossy(&out.stdout))
    }

    /// The log files on this host that a row's troubles would show in: containerd's log
    /// (shims' stderr and the Kata guest console, as the shim logs it) on the local target,
    /// the VM's serial console (its kernel); none on an existing node (its logs are its own).
    pub fn log_files(&self) -> Vec<(&'static str, PathBuf)> {
        self.with_backend(|b| match b {
            Backend::Local(l) => vec![("containerd's log", l.log_path())],
            Backend::Vm(v) => vec![("the VM's serial console", v.console_path())],
            Backend::Existing(_) => vec![],
        })
        .unwrap_or_default()
    }

    /// `containerd --config <ours> config dump` on the node: the effective config.
    pub fn config_dump(&self) -> Result<String, NodeError> {
        // An existing node's config file is not known: its CRI's effective config is.
        if let Some(Some(dump)) = self.with_backend(|b| match b {
            Backend::Existing(e) => Some(e.config_dump()),
            _ => None,
        }) {
            return Ok(dump);
        }
        let argv = vec![
            self.containerd
                .binary("containerd")
                .to_string_lossy()
                .into_owned(),
            "--config".into(),
            self.paths.config.to_string_lossy().into_owned(),
            "config".into(),
            "dump".into(),
        ];
        let out = self.node.run(&argv, NODE_COMMAND_DEADLINE)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The handlers' drop-in file beside the config, where the node was set up with one.
    pub fn drop_in(&self) -> Option<PathBuf> {
        let path = conf_d(&self.paths.config).join(crate::render::containerd::DROP_IN);
        path.is_file().then_some(path)
    }

    /// A label for reports: `containerd 1.6.20 (config schema 2) on local, run dir ...`.
    pub fn describe(&self) -> String {
        let schema = self.config.schema().map(|s| s.number()).unwrap_or(0);
        format!(
            "containerd {} (config schema {schema}) on {}, run dir {}",
            self.containerd.version,
            self.node.name(),
            self.paths.run_dir.display()
        )
    }

    /// Removes our sandboxes through the CRI, stops containerd (or the VM), undoes everything
    /// else, and reports anything that is still there.
    pub async fn shutdown(self) -> Leftovers {
        // On an existing node only the sandboxes this testbed started are removed: the node's
        // own, and another run's, are not ours.
        let keep = self.with_backend(|b| match b {
            Backend::Existing(e) => e.preexisting(),
            _ => Default::default(),
        });
        if self.daemon_exit().is_none() {
            if let Err(e) = self.cri.remove_all_sandboxes_but(&keep.unwrap_or_default()).await {
                tracing::warn!(error = %e, "failed to remove sandboxes through the CRI; killing instead");
            }
        }
        self.finish()
    }

    /// With `--keep` after a failure: leaves a VM testbed running and says how to reach it;
    /// `None` (and a normal shutdown) for other backends.
    pub fn keep_vm(&self, name: &str) -> Option<String> {
        let mut guard = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        match guard.take() {
            Some(Backend::Vm(v)) => Some(v.keep(name)),
            other => {
                *guard = other;
                None
            }
        }
    }

    /// Leaves a local node running (`kata-harness up --target local`) and records it under
    /// `name`, so `kata-harness down --name <name>` removes it; `None` for other testbeds.
    pub fn keep_local(&self, name: &str) -> Option<std::io::Result<kept::KeptNode>> {
        let mut guard = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        match guard.take() {
            Some(Backend::Local(l)) => {
                let kept = kept::KeptNode {
                    name: name.to_owned(),
                    describe: self.describe(),
                    run_dir: self.paths.run_dir.clone(),
                    plan: l.keep(),
                };
                // A node no `down` could find is removed at once.
                Some(match kept.save() {
                    Ok(()) => Ok(kept),
                    Err(e) => {
                        kept.destroy();
                        Err(e)
                    }
                })
            }
            other => {
                *guard = other;
                None
            }
        }
    }

    /// The QEMU process of a VM testbed (tests kill it to prove a dead VM fails fast).
    pub fn vm_pid(&self) -> Option<u32> {
        self.with_backend(|b| match b {
            Backend::Vm(v) => v.qemu_pid(),
            Backend::Local(_) | Backend::Existing(_) => None,
        })
        .flatten()
    }

    fn finish(&self) -> Leftovers {
        match self.backend.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(Backend::Local(l)) => l.finish(),
            Some(Backend::Vm(v)) => v.finish(),
            Some(Backend::Existing(e)) => e.finish(),
            None => Leftovers::default(),
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let leftovers = self.finish();
        if !leftovers.is_clean() {
            tracing::error!(?leftovers, "testbed left things behind");
        }
    }
}

/// Less free space than this on a node's filesystem is a full disk (what an overlay
/// snapshot, a container log or containerd's metadata write then fails on).
const FULL_BELOW_KIB: u64 = 8 * 1024;

/// The filesystems of `df -Pk` output with less than [`FULL_BELOW_KIB`] free, once each.
fn full_in_df(df: &str) -> Vec<String> {
    let mut full: Vec<String> = df
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (free, mount) = (fields.get(3)?.parse::<u64>().ok()?, fields.get(5)?);
            (free < FULL_BELOW_KIB).then(|| format!("{mount} ({free} KiB free)"))
        })
        .collect();
    full.sort();
    full.dedup();
    full
}

/// The CRI status conditions a ready node reports true.
const READY_CONDITIONS: [&str; 2] = ["RuntimeReady", "NetworkReady"];

/// Waits for the socket and for the CRI to report the runtime and the network ready, while
/// watching what the daemon depends on: once `gone` says why it is gone, waiting is pointless.
pub(crate) async fn wait_ready(
    socket: &Path,
    gone: impl Fn() -> Option<String>,
) -> Result<CriClient, WaitError> {
    wait_for(
        "containerd's CRI to report RuntimeReady and NetworkReady",
        DAEMON_READY_DEADLINE,
        Duration::from_millis(100),
        || {
            let gone = gone();
            async move {
                if let Some(reason) = gone {
                    return Attempt::Fatal(reason);
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
                        // Only these two: containerd 1.7 adds ContainerdHasNoDeprecationWarnings,
                        // false for as long as a deprecated key (untrusted_workload_runtime) is
                        // in the config, and such a node is ready all the same.
                        let conditions: Vec<_> = status
                            .status
                            .map(|s| s.conditions)
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|c| READY_CONDITIONS.contains(&c.r#type.as_str()))
                            .collect();
                        let not_ready: Vec<String> = conditions
                            .iter()
                            .filter(|c| !c.status)
                            .map(|c| format!("{}: {} {}", c.r#type, c.reason, c.message))
                            .collect();
                        if conditions.len() < READY_CONDITIONS.len() {
                            Attempt::NotYet("no RuntimeReady and NetworkReady conditions yet".into())
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

/// The `Daemon`-watching form of `gone` for [`wait_ready`].
fn daemon_gone(daemon: &Mutex<Option<Daemon>>, what: &str) -> Option<String> {
    let mut guard = daemon.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_mut() {
        Some(d) => d
            .exited()
            .map(|status| format!("{what} exited ({status}): {}", d.log_tail(10))),
        None => Some(format!("{what} was stopped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_with_under_8_mib_free_is_full_once() {
        let df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                  /dev/vda1 2031440 2031440 0 100% /\n\
                  /dev/vda1 2031440 2031440 0 100% /\n\
                  tmpfs 1016000 12 1015988 1% /run\n\
                  /dev/vdb 100000 93000 7000 94% /var/lib/containerd\n";
        assert_eq!(
            full_in_df(df),
            vec![
                "/ (0 KiB free)".to_owned(),
                "/var/lib/containerd (7000 KiB free)".to_owned()
            ]
        );
        assert!(full_in_df("Filesystem 1024-blocks Used Available Capacity Mounted on\n").is_empty());
    }
}
