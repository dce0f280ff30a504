//! Work inside the node's network: commands and long-running services (registries, event
//! subscribers) that must see what the node's containerd sees, and files they read.
//!
//! On the local target that network is containerd's private network namespace on this host
//! (entered with `nsenter --net`); in a VM it is the guest itself (commands go over SSH and
//! services run as transient systemd units, so they outlive no trial: the unit is stopped
//! when the service is dropped, and the VM is disposable anyway). Files are written on this
//! host under the run dir and put at the same relative place under the node's run dir.
//!
//! Invariant: a [`NodeService`] is stopped when it is dropped; nothing here listens outside
//! the node's network.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use super::{Backend, Testbed, NODE_COMMAND_DEADLINE};
use crate::node::{Node, NodeError};
use crate::process::{self, Daemon};

/// The address scenario registries listen on inside the node's network (every node adds it
/// to `lo` when it is provisioned; the registry module starts them there).
pub const REGISTRY_IP: &str = "10.254.254.254";

/// How long a guest service unit may take to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// `argv` inside the network namespace `ns` (a `/proc/<pid>/ns/net` path). `nsenter --net`
/// without `--fork` execs the program, so a daemon's pid stays its own.
pub(crate) fn nsenter_argv(ns: &Path, argv: &[String]) -> Vec<String> {
    nsenter(&[format!("--net={}", ns.display())], argv)
}

fn nsenter(namespaces: &[String], argv: &[String]) -> Vec<String> {
    let mut wrapped = vec!["nsenter".to_owned()];
    wrapped.extend(namespaces.iter().cloned());
    wrapped.push("--".into());
    wrapped.extend(argv.iter().cloned());
    wrapped
}

impl Testbed {
    /// `argv` as it must run to share the node's network: under `nsenter --net` into
    /// containerd's namespace on the local target, unchanged in a VM guest.
    pub fn net_argv(&self, argv: &[String]) -> Vec<String> {
        match self.net_namespace() {
            Some(ns) => nsenter_argv(&ns, argv),
            None => argv.to_vec(),
        }
    }

    /// `argv` as it must run to see what the node's shims see: containerd's network and
    /// mount namespaces on the local target (Kata's /run/vc lives in the latter), unchanged
    /// in a VM guest.
    pub fn node_argv(&self, argv: &[String]) -> Vec<String> {
        match self.net_namespace() {
            Some(net) => {
                let mnt = net.with_file_name("mnt");
                nsenter(
                    &[
                        format!("--net={}", net.display()),
                        format!("--mount={}", mnt.display()),
                    ],
                    argv,
                )
            }
            None => argv.to_vec(),
        }
    }

    /// Runs `argv` in the node's network, whatever its exit status.
    pub fn run_in_net(&self, argv: &[String], deadline: Duration) -> Result<Output, NodeError> {
        self.node.run_unchecked(&self.net_argv(argv), deadline)
    }

    /// Whether the node has no route out (the air gap the sandbox-image rows rely on): the
    /// local node's namespace has only `lo` and the CNI bridge; a VM guest's user-mode
    /// network is started with `restrict=on`.
    pub fn air_gapped(&self) -> bool {
        self.with_backend(|b| match b {
            Backend::Local(l) => l.netns().is_some(),
            Backend::Vm(_) => true,
            // Not known, and not ours to change.
            Backend::Existing(_) => false,
        })
        .unwrap_or(false)
    }

    /// Where a host path under the run dir is on the node (the same path on the local target).
    pub fn node_path(&self, host: &Path) -> PathBuf {
        match host.strip_prefix(&self.paths.run_dir) {
            Ok(relative) => self.paths.node_run_dir.join(relative),
            Err(_) => host.to_owned(),
        }
    }

    /// Puts a file written under the host run dir at its place on the node; returns that path.
    pub fn put_file(&self, host: &Path) -> Result<PathBuf, NodeError> {
        let remote = self.node_path(host);
        self.node.upload(host, &remote)?;
        Ok(remote)
    }

    /// `mkdir -p` on the node.
    pub fn make_node_dir(&self, dir: &Path) -> Result<(), NodeError> {
        let argv = ["mkdir", "-p"].map(String::from).into_iter();
        let argv: Vec<String> = argv.chain([dir.to_string_lossy().into_owned()]).collect();
        self.node.run(&argv, NODE_COMMAND_DEADLINE).map(drop)
    }

    /// Whether `path` exists on the node.
    pub fn node_path_exists(&self, path: &Path) -> bool {
        let argv = vec![
            "test".to_owned(),
            "-e".into(),
            path.to_string_lossy().into_owned(),
        ];
        self.node
            .run_unchecked(&argv, NODE_COMMAND_DEADLINE)
            .is_ok_and(|out| out.status.success())
    }

    /// Runs `argv` on the node when the returned guard is dropped, or on Ctrl-C: the undo of
    /// a change made to a node that is not the harness's (errors are logged).
    pub fn undo_on_node(&self, label: String, argv: Vec<String>) -> NodeUndo {
        let node = Arc::clone(&self.node);
        NodeUndo(crate::teardown::register(label.clone(), move || {
            if let Err(e) = node.run(&argv, NODE_COMMAND_DEADLINE) {
                tracing::error!(%label, error = %e, "undo on the node failed");
            }
        }))
    }

    /// Makes sure the registry address is on `lo` in the node's network. The harness's own
    /// nodes have it from provisioning; on an existing node where it is missing it is added,
    /// and the guard removes it again.
    pub fn ensure_registry_address(&self) -> Result<Option<NodeUndo>, NodeError> {
        let existing = self
            .with_backend(|b| matches!(b, Backend::Existing(_)))
            .unwrap_or(false);
        if !existing {
            return Ok(None);
        }
        let ip = |args: &[&str]| {
            let mut argv = vec!["ip".to_owned()];
            argv.extend(args.iter().map(|a| a.to_string()));
            self.net_argv(&argv)
        };
        let shown = self.node.run(
            &ip(&["-o", "-4", "addr", "show", "dev", "lo"]),
            NODE_COMMAND_DEADLINE,
        )?;
        if String::from_utf8_lossy(&shown.stdout).contains(&format!("inet {REGISTRY_IP}/")) {
            return Ok(None);
        }
        let address = format!("{REGISTRY_IP}/32");
        // Registered before it is made: an interrupt in between deletes nothing that is there.
        let undo = self.undo_on_node(
            format!("address {address} on the node's lo"),
            ip(&["addr", "del", &address, "dev", "lo"]),
        );
        self.node.run(
            &ip(&["addr", "add", &address, "dev", "lo"]),
            NODE_COMMAND_DEADLINE,
        )?;
        Ok(Some(undo))
    }

    /// `rm -rf` on the node (cleanup; errors are the caller's to report or ignore).
    pub fn remove_node_path(&self, path: &Path) -> Result<(), NodeError> {
        let argv = vec!["rm".to_owned(), "-rf".into(), path.to_string_lossy().into_owned()];
        self.node.run(&argv, NODE_COMMAND_DEADLINE).map(drop)
    }

    /// Starts `argv` as a long-running service in the node's network, its stdout and stderr
    /// going to `log` (a host path under the run dir; on a VM the node's copy of that path).
    pub fn spawn_service(
        &self,
        name: &str,
        argv: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<NodeService, NodeError> {
        let node_err = |source| NodeError::Run {
            node: self.node.name(),
            source: Box::new(source),
        };
        match self.net_namespace() {
            Some(_) => {
                let argv = self.net_argv(argv);
                let mut command = std::process::Command::new(&argv[0]);
                command.args(&argv[1..]).envs(env.iter().copied());
                let daemon = Daemon::spawn(name, command, log).map_err(node_err)?;
                Ok(NodeService::Local(daemon))
            }
            None => {
                let log = self.node_path(log);
                if let Some(parent) = log.parent() {
                    self.make_node_dir(parent)?;
                }
                let unit = format!("kata-harness-{}-{}", name.replace(' ', "-"), super::short_id());
                let mut run = vec![
                    "systemd-run".to_owned(),
                    "--quiet".into(),
                    "--collect".into(),
                    format!("--unit={unit}"),
                    format!("--property=StandardOutput=append:{}", log.display()),
                    format!("--property=StandardError=append:{}", log.display()),
                ];
                run.extend(env.iter().map(|(k, v)| format!("--setenv={k}={v}")));
                run.push("--".into());
                run.extend(argv.iter().cloned());
                self.node.run(&run, NODE_COMMAND_DEADLINE)?;
                Ok(NodeService::Guest(GuestUnit {
                    node: Arc::clone(&self.node),
                    unit,
                    log,
                    stopped: false,
                }))
            }
        }
    }
}

/// An undo on the node, run when dropped (see [`Testbed::undo_on_node`]).
#[must_use = "dropping it undoes the change at once"]
pub struct NodeUndo(#[allow(dead_code)] crate::teardown::Registration);

/// A long-running program in the node's network.
pub enum NodeService {
    /// A supervised process on this host (in containerd's network namespace).
    Local(Daemon),
    /// A transient systemd unit in a VM guest.
    Guest(GuestUnit),
}

pub struct GuestUnit {
    node: Arc<dyn Node>,
    unit: String,
    /// The log on the node.
    log: PathBuf,
    stopped: bool,
}

impl GuestUnit {
    fn systemctl(&self, verb: &str) -> Result<Output, NodeError> {
        let argv = vec!["systemctl".to_owned(), verb.into(), self.unit.clone()];
        self.node.run_unchecked(&argv, STOP_DEADLINE)
    }

    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = self.systemctl("stop");
        }
    }
}

impl Drop for GuestUnit {
    fn drop(&mut self) {
        self.stop();
    }
}

impl NodeService {
    /// Why the service is gone, if it is.
    pub fn exited(&mut self) -> Option<String> {
        match self {
            NodeService::Local(daemon) => daemon.exited().map(|s| s.to_string()),
            NodeService::Guest(unit) => match unit.systemctl("is-active") {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(format!(
                    "unit {} is {}",
                    unit.unit,
                    String::from_utf8_lossy(&out.stdout).trim()
                )),
                Err(e) => Some(e.to_string()),
            },
        }
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        match self {
            NodeService::Local(daemon) => std::fs::read_to_string(daemon.log_path()).unwrap_or_default(),
            NodeService::Guest(unit) => {
                let argv = vec!["cat".to_owned(), unit.log.to_string_lossy().into_owned()];
                match unit.node.run(&argv, NODE_COMMAND_DEADLINE) {
                    Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
                    Err(e) => format!("(could not read {} on the node: {e})", unit.log.display()),
                }
            }
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        process::tail_of_text(&self.log(), lines)
    }

    pub fn stop(self) {
        match self {
            NodeService::Local(mut daemon) => {
                daemon.stop(Duration::from_secs(5));
            }
            NodeService::Guest(mut unit) => unit.stop(),
        }
    }
}
