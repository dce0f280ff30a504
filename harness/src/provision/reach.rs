//! How the harness reaches an existing node's CRI socket: on this host, or over SSH with the
//! socket forwarded into the run dir.
//!
//! Invariant: SSH never trusts on first use: `BatchMode`, `StrictHostKeyChecking=yes` and the
//! user's (or a given) known_hosts file; a host whose key is not there fails with ssh's own
//! words before anything else happens. Every ssh process is supervised and stopped by
//! [`Connection::close`] (also on drop).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ProvisionError, NODE_COMMAND_DEADLINE};
use crate::node::vm::SshNode;
use crate::node::{LocalNode, Node};
use crate::process::Daemon;
use crate::vm::ssh::SshTarget;
use crate::wait::{wait_for, Attempt};

/// How long the SSH connection and the socket forward may take to come up.
const SSH_DEADLINE: Duration = Duration::from_secs(20);

/// Where the node is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reach {
    /// The socket is on this host.
    Local,
    /// Over SSH: commands on the node run through it, the socket is forwarded.
    Ssh {
        user: String,
        host: String,
        port: u16,
        identity: PathBuf,
        known_hosts: PathBuf,
    },
}

/// A live way to the node: the CRI socket on this host (the node's own, or the forward) and
/// the node to run commands on.
pub struct Connection {
    pub socket: PathBuf,
    pub node: Arc<dyn Node>,
    ssh: Vec<Daemon>,
}

impl Connection {
    /// Nothing to do for a local socket; for SSH, one plain command (a wrong host key or
    /// identity fails here), a master connection the commands share, and the socket forward.
    pub async fn open(
        reach: &Reach,
        node_socket: &Path,
        run_dir: &Path,
    ) -> Result<Connection, ProvisionError> {
        let Reach::Ssh {
            user,
            host,
            port,
            identity,
            known_hosts,
        } = reach
        else {
            return Ok(Connection {
                socket: node_socket.to_owned(),
                node: Arc::new(LocalNode),
                ssh: vec![],
            });
        };
        let destination = format!("ssh://{user}@{host}:{port}");
        let fail = |message: String| ProvisionError::Existing {
            socket: node_socket.to_owned(),
            message: format!("{destination}: {message}"),
        };
        let mut target = SshTarget {
            user: user.clone(),
            host: host.clone(),
            port: *port,
            identity: identity.clone(),
            known_hosts: known_hosts.clone(),
            control_path: None,
        };
        let probe = SshNode {
            name: destination.clone(),
            ssh: target.clone(),
        };
        probe
            .run(&["true".to_owned()], SSH_DEADLINE)
            .map_err(|e| fail(crate::errors::chain_line(&e)))?;
        let mut connection = Connection {
            socket: run_dir.join("cri.sock"),
            node: Arc::new(probe),
            ssh: vec![],
        };
        let control = run_dir.join("ssh-master.sock");
        let master = Daemon::spawn(
            "ssh-master",
            target.master(&control),
            &run_dir.join("ssh-master.log"),
        )
        .map_err(ProvisionError::Spawn)?;
        connection.ssh.push(master);
        // Without the master every command makes its own connection: slower, the same.
        if wait_for_socket(&control, &mut connection.ssh[0], "the SSH master connection")
            .await
            .is_ok()
        {
            target.control_path = Some(control);
        }
        let forward = Daemon::spawn(
            "ssh-forward",
            target.forward_socket(&connection.socket, node_socket),
            &run_dir.join("ssh-forward.log"),
        )
        .map_err(ProvisionError::Spawn)?;
        connection.ssh.push(forward);
        let socket = connection.socket.clone();
        if let Err(e) = wait_for_socket(&socket, &mut connection.ssh[1], "the forwarded CRI socket").await {
            let said = connection.ssh[1].log_tail(5);
            return Err(fail(format!("{e}; ssh said: {said}")));
        }
        connection.node = Arc::new(SshNode {
            name: destination,
            ssh: target,
        });
        Ok(connection)
    }

    pub fn is_remote(&self) -> bool {
        !self.ssh.is_empty()
    }

    /// Why the connection is gone, if it is.
    pub fn lost(&mut self) -> Option<String> {
        let name = self.node.name();
        self.ssh.iter_mut().find_map(|daemon| {
            daemon.exited().map(|status| {
                format!(
                    "the SSH connection to {name} ended ({status}): {}",
                    daemon.log_tail(5)
                )
            })
        })
    }

    pub fn close(&mut self) {
        for daemon in &mut self.ssh {
            daemon.stop(Duration::from_secs(5));
        }
        self.ssh.clear();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// Waits for the unix socket `path` to accept connections while `daemon` runs.
async fn wait_for_socket(path: &Path, daemon: &mut Daemon, what: &str) -> Result<(), String> {
    let daemon = Mutex::new(daemon);
    wait_for(what, SSH_DEADLINE, Duration::from_millis(50), || {
        let exited = daemon.lock().unwrap_or_else(|p| p.into_inner()).exited();
        // A unix socket's file appears at bind(), a moment before listen(): until something
        // answers, a connect is refused, so "there" means accepting.
        let there = std::os::unix::net::UnixStream::connect(path).is_ok();
        async move {
            match (exited, there) {
                (Some(status), _) => Attempt::Fatal(format!("ssh exited ({status})")),
                (None, true) => Attempt::Ready(()),
                (None, false) => Attempt::NotYet(format!("no {}", path.display())),
            }
        }
    })
    .await
    .map_err(|e| e.to_string())
}

/// Where a program is on the node (`command -v`), if it is there.
pub fn on_node(node: &dyn Node, program: &str) -> Option<PathBuf> {
    let argv = ["sh", "-c", &format!("command -v {program}")].map(String::from);
    let out = node.run(&argv, NODE_COMMAND_DEADLINE).ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}
