//! Where scenarios run: this host (`local`), a disposable VM, or a host over SSH.
//!
//! Invariant: scenario code reaches the node only through [`Node`], so the same suites run
//! unchanged on every target.

use std::fmt;
use std::process::{Command, Output};
use std::str::FromStr;
use std::time::Duration;

pub mod vm;

use crate::process::{self, ProcessError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("failed to run a command on the {node} node")]
    Run {
        node: String,
        /// Boxed: node errors travel inside many other errors.
        #[source]
        source: Box<ProcessError>,
    },
    #[error(
        "unknown target {text:?}: expected all, local, vm, cri:///path/to/containerd.sock or ssh://user@host"
    )]
    BadTarget { text: String },
    #[error("the {target} target is not available yet in this build of kata-harness")]
    Unavailable { target: String },
}

/// The `--target` of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every placement this machine offers: the VM images, the local containerds and the
    /// local kubeadm cluster, in one run and one report.
    All,
    Local,
    Vm,
    /// An existing containerd on a host reached over SSH (`ssh://user@host[:port]`).
    Ssh {
        user: String,
        host: String,
        port: u16,
    },
    /// An existing containerd at this CRI socket (`cri:///run/containerd/containerd.sock`).
    Cri(std::path::PathBuf),
}

impl FromStr for Target {
    type Err = NodeError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "all" => Ok(Target::All),
            "local" => Ok(Target::Local),
            "vm" => Ok(Target::Vm),
            _ if text.starts_with("cri://") => {
                let path = &text["cri://".len()..];
                if !path.starts_with('/') {
                    return Err(NodeError::BadTarget { text: text.into() });
                }
                Ok(Target::Cri(path.into()))
            }
            _ => {
                let rest = text
                    .strip_prefix("ssh://")
                    .ok_or_else(|| NodeError::BadTarget { text: text.into() })?;
                let bad = || NodeError::BadTarget { text: text.into() };
                let (user, host) = rest.split_once('@').unwrap_or(("root", rest));
                let (host, port) = match host.rsplit_once(':') {
                    Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
                    None => (host, 22),
                };
                if host.is_empty() || user.is_empty() || host.contains('/') {
                    return Err(bad());
                }
                Ok(Target::Ssh {
                    user: user.into(),
                    host: host.into(),
                    port,
                })
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => write!(f, "all"),
            Target::Local => write!(f, "local"),
            Target::Vm => write!(f, "vm"),
            Target::Ssh { user, host, port: 22 } => write!(f, "ssh://{user}@{host}"),
            Target::Ssh { user, host, port } => write!(f, "ssh://{user}@{host}:{port}"),
            Target::Cri(socket) => write!(f, "cri://{}", socket.display()),
        }
    }
}

/// A process on the node.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// The kernel's short name (`comm`), e.g. `qemu-system-x86`.
    pub comm: String,
    pub cmdline: String,
}

/// A machine scenarios can run commands on.
pub trait Node: Send + Sync {
    /// A short name for reports (`local`, `vm:bookworm`).
    fn name(&self) -> String;
    /// Runs `argv` on the node; a non-zero exit is an error with the stderr tail.
    fn run(&self, argv: &[String], deadline: Duration) -> Result<Output, NodeError>;
    /// Runs `argv` on the node and returns its output whatever the exit status.
    fn run_unchecked(&self, argv: &[String], deadline: Duration) -> Result<Output, NodeError>;
    /// Live (non-zombie) processes whose command line contains `needle`.
    fn processes(&self, needle: &str) -> Result<Vec<Proc>, NodeError>;
    /// Every live process (for parent/child questions such as "is a VMM a child of the shim").
    fn all_processes(&self) -> Result<Vec<Proc>, NodeError>;
    /// Makes a host file available on the node at `remote`.
    fn upload(&self, local: &std::path::Path, remote: &std::path::Path) -> Result<(), NodeError>;
}

/// All live processes of this host, from /proc.
pub fn local_processes() -> Vec<Proc> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        if state == "Z" {
            continue;
        }
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let comm = head
            .split_once('(')
            .map(|(_, c)| c.to_owned())
            .unwrap_or_default();
        let raw = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_owned();
        found.push(Proc {
            pid,
            ppid,
            comm,
            cmdline,
        });
    }
    found
}

/// This host.
#[derive(Debug, Default, Clone)]
pub struct LocalNode;

impl LocalNode {
    fn command(argv: &[String]) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

impl Node for LocalNode {
    fn name(&self) -> String {
        "local".into()
    }

    fn run(&self, argv: &[String], deadline: Duration) -> Result<Output, NodeError> {
        process::run(Self::command(argv), deadline).map_err(|source| NodeError::Run {
            node: self.name(),
            source: Box::new(source),
        })
    }

    fn run_unchecked(&self, argv: &[String], deadline: Duration) -> Result<Output, NodeError> {
        process::run_unchecked(&mut Self::command(argv), deadline).map_err(|source| NodeError::Run {
            node: self.name(),
            source: Box::new(source),
        })
    }

    fn processes(&self, needle: &str) -> Result<Vec<Proc>, NodeError> {
        let me = std::process::id() as i32;
        Ok(local_processes()
            .into_iter()
            .filter(|p| p.pid != me && p.cmdline.contains(needle))
            .collect())
    }

    fn all_processes(&self) -> Result<Vec<Proc>, NodeError> {
        Ok(local_processes())
    }

    fn upload(&self, local: &std::path::Path, remote: &std::path::Path) -> Result<(), NodeError> {
        if local != remote {
            let parent = remote.parent().unwrap_or(std::path::Path::new("/"));
            std::fs::create_dir_all(parent)
                .and_then(|()| std::fs::copy(local, remote))
                .map_err(|source| NodeError::Run {
                    node: self.name(),
                    source: Box::new(ProcessError::Spawn {
                        program: format!("copy to {}", remote.display()),
                        source,
                    }),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!("local".parse::<Target>().unwrap(), Target::Local);
        assert_eq!("vm".parse::<Target>().unwrap(), Target::Vm);
        assert_eq!(
            "ssh://ci@runner-1".parse::<Target>().unwrap(),
            Target::Ssh {
                user: "ci".into(),
                host: "runner-1".into(),
                port: 22
            }
        );
        let with_port: Target = "ssh://root@127.0.0.1:2222".parse().unwrap();
        assert_eq!(with_port.to_string(), "ssh://root@127.0.0.1:2222");
        assert!("ssh://root@host:port".parse::<Target>().is_err());
        assert_eq!(
            "cri:///run/containerd/containerd.sock".parse::<Target>().unwrap(),
            Target::Cri("/run/containerd/containerd.sock".into())
        );
        assert!("cri://relative.sock".parse::<Target>().is_err());
        assert!("docker".parse::<Target>().is_err());
        assert!("ssh://".parse::<Target>().is_err());
    }

    #[test]
    fn local_node_runs_and_reports_failures() {
        let node = LocalNode;
        let out = node
            .run(&["echo".into(), "hi".into()], Duration::from_secs(5))
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
        let err = node.run(&["false".into()], Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, NodeError::Run { .. }));
    }
}
