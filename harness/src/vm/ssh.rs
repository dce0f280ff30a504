//! Driving the guest over SSH with a pinned host key: commands, file uploads, and the
//! containerd socket forwarded to a host-side unix socket.
//!
//! Invariant: never trust on first use. The guest's host key was generated when the image
//! was built and is pinned through a known_hosts file; a different key fails the connection.
//! Forwarded ports and sockets listen on 127.0.0.1 or in the run's temp dir only.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How to reach one guest.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub identity: PathBuf,
    /// A known_hosts file holding the guest's pinned host key for `[host]:port`.
    pub known_hosts: PathBuf,
    /// The socket of a running master connection ([`SshTarget::master`]): commands share it
    /// instead of a key exchange each (0.7 s -> 0.1 s per command against a TCG guest), and
    /// fall back to their own connection when it is gone.
    pub control_path: Option<PathBuf>,
}

impl SshTarget {
    fn base(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .args([
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
        .arg("-i")
        .arg(&self.identity);
        if let Some(path) = &self.control_path {
            cmd.args(["-o", "ControlMaster=no", "-o"])
                .arg(format!("ControlPath={}", path.display()));
        }
        cmd
    }

    /// `ssh -M -N`: a master connection in the foreground (so it is supervised like any
    /// daemon and dies with the VM), listening on `control`.
    pub fn master(&self, control: &Path) -> Command {
        let mut cmd = self.unshared().base("ssh");
        cmd.args(["-M", "-N", "-o", "ControlPersist=no", "-o"])
            .arg(format!("ControlPath={}", control.display()))
            .arg("-p")
            .arg(self.port.to_string())
            .arg(self.destination());
        cmd
    }

    /// `ssh ... user@host -- <argv, shell-quoted>`.
    pub fn command(&self, argv: &[String]) -> Command {
        let mut cmd = self.base("ssh");
        cmd.arg("-p")
            .arg(self.port.to_string())
            .arg(self.destination())
            .arg("--");
        cmd.arg(
            argv.iter()
                .map(|a| crate::process::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
        cmd
    }

    /// `ssh -t ... user@host`: an interactive login shell.
    pub fn interactive(&self) -> Command {
        let mut cmd = self.base("ssh");
        cmd.arg("-t")
            .arg("-p")
            .arg(self.port.to_string())
            .arg(self.destination());
        cmd
    }

    /// This target without the shared connection: a forward must be its own connection (a
    /// multiplexed `ssh -N -L` hands the forward to the master and exits at once).
    fn unshared(&self) -> SshTarget {
        SshTarget {
            control_path: None,
            ..self.clone()
        }
    }

    /// `ssh -N -L <local socket>:<remote socket>`: a forward that lives as long as the process.
    pub fn forward_socket(&self, local: &Path, remote: &Path) -> Command {
        let mut cmd = self.unshared().base("ssh");
        cmd.args([
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "StreamLocalBindUnlink=yes",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .arg("-L")
        .arg(format!("{}:{}", local.display(), remote.display()))
        .arg(self.destination());
        cmd
    }

    /// `ssh -N -L 127.0.0.1:<local port>:127.0.0.1:<remote port>`.
    pub fn forward_port(&self, local_port: u16, remote_port: u16) -> Command {
        let mut cmd = self.unshared().base("ssh");
        cmd.args(["-N", "-o", "ExitOnForwardFailure=yes"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-L")
            .arg(format!("127.0.0.1:{local_port}:127.0.0.1:{remote_port}"))
            .arg(self.destination());
        cmd
    }

    /// `scp` of one file to the guest.
    pub fn upload(&self, local: &Path, remote: &Path) -> Command {
        let mut cmd = self.base("scp");
        cmd.arg("-q")
            .arg("-P")
            .arg(self.port.to_string())
            .arg(local)
            .arg(format!("{}:{}", self.destination(), remote.display()));
        cmd
    }

    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// The command a human types to get a shell in the guest.
    pub fn interactive_line(&self) -> String {
        format!(
            "ssh -o UserKnownHostsFile={} -i {} -p {} {}",
            self.known_hosts.display(),
            self.identity.display(),
            self.port,
            self.destination()
        )
    }
}

/// A known_hosts line pinning `public_key` (`ssh-ed25519 AAAA...`) for 127.0.0.1:port.
pub fn known_hosts_line(host: &str, port: u16, public_key: &str) -> String {
    let key: Vec<&str> = public_key.split_whitespace().take(2).collect();
    format!("[{host}]:{port} {}\n", key.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            user: "root".into(),
            host: "127.0.0.1".into(),
            port: 2222,
            identity: "/cache/id_ed25519".into(),
            known_hosts: "/run/known_hosts".into(),
            control_path: None,
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn commands_pin_the_host_key_and_quote_arguments() {
        let cmd = target().command(&["echo".into(), "a b".into()]);
        let a = args(&cmd);
        assert!(a.contains(&"StrictHostKeyChecking=yes".to_owned()));
        assert!(a.contains(&"UserKnownHostsFile=/run/known_hosts".to_owned()));
        assert_eq!(a.last().unwrap(), "echo 'a b'");
    }

    #[test]
    fn forwards_bind_locally_only() {
        let a = args(&target().forward_port(6443, 6443));
        assert!(a.contains(&"127.0.0.1:6443:127.0.0.1:6443".to_owned()));
        let a = args(&target().forward_socket(
            Path::new("/tmp/r/c.sock"),
            Path::new("/run/containerd/containerd.sock"),
        ));
        assert!(a.contains(&"/tmp/r/c.sock:/run/containerd/containerd.sock".to_owned()));
    }

    #[test]
    fn known_hosts_pins_host_and_port() {
        let line = known_hosts_line("127.0.0.1", 2222, "ssh-ed25519 AAAAC3Nz root@image\n");
        assert_eq!(line, "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz\n");
    }
}
