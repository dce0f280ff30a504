//! A node reached over SSH (a VM the harness booted, or an `ssh://` host).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use super::{Node, NodeError, Proc};
use crate::process;
use crate::vm::ssh::SshTarget;

pub struct SshNode {
    pub name: String,
    pub ssh: SshTarget,
}

impl SshNode {
    fn err(&self) -> impl FnOnce(process::ProcessError) -> NodeError + '_ {
        move |source| NodeError::Run {
            node: self.name.clone(),
            source: Box::new(source),
        }
    }
}

/// `ps` output with pid, ppid, comm and args; zombies (`Z`) left out.
fn parse_ps(text: &str) -> Vec<Proc> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let pid = fields.next()?.parse().ok()?;
            let ppid = fields.next()?.parse().ok()?;
            let state = fields.next()?;
            let comm = fields.next()?.to_owned();
            let cmdline = fields.collect::<Vec<_>>().join(" ");
            (!state.starts_with('Z')).then_some(Proc {
                pid,
                ppid,
                comm,
                cmdline,
            })
        })
        .collect()
}

impl Node for SshNode {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(&self, argv: &[String], deadline: Duration) -> Result<Output, NodeError> {
        process::run(self.ssh.command(argv), deadline).map_err(self.err())
    }

    fn run_unchecked(&self, argv: &[String], deadline: Duration) -> Result<Output, NodeError> {
        process::run_unchecked(&mut self.ssh.command(argv), deadline).map_err(self.err())
    }

    fn processes(&self, needle: &str) -> Result<Vec<Proc>, NodeError> {
        // The ps process itself (and its ssh session's shell) mention the needle only if it
        // were passed as an argument; it is filtered here instead.
        Ok(self
            .all_processes()?
            .into_iter()
            .filter(|p| p.cmdline.contains(needle))
            .collect())
    }

    fn all_processes(&self) -> Result<Vec<Proc>, NodeError> {
        let argv = ["ps", "-eo", "pid=,ppid=,stat=,comm=,args="].map(String::from);
        let out = self.run(&argv, Duration::from_secs(30))?;
        Ok(parse_ps(&String::from_utf8_lossy(&out.stdout)))
    }

    fn upload(&self, local: &Path, remote: &Path) -> Result<(), NodeError> {
        if let Some(parent) = remote.parent() {
            self.run(
                &["mkdir".into(), "-p".into(), parent.to_string_lossy().into_owned()],
                Duration::from_secs(30),
            )?;
        }
        process::run(self.ssh.upload(local, remote), Duration::from_secs(300))
            .map(drop)
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ps_and_drops_zombies() {
        let text = "    1     0 Ss   systemd /sbin/init\n  812     1 Sl   containerd-shim /usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id abc\n  900   812 Z    sh [sh] <defunct>\n";
        let procs = parse_ps(text);
        assert_eq!(procs.len(), 2);
        assert_eq!(procs[1].ppid, 1);
        assert_eq!(procs[1].comm, "containerd-shim");
        assert!(procs[1].cmdline.ends_with("-id abc"));
    }
}
