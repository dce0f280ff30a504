//! Named VMs left running on purpose (`vm up`, `run --keep`), so `vm ssh` and `vm down` can
//! find them: a small JSON file per name under the cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::qmp::Qmp;
use super::ssh::SshTarget;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptVm {
    pub name: String,
    pub qemu_pid: u32,
    pub run_dir: PathBuf,
    pub qmp_socket: PathBuf,
    pub ssh_user: String,
    pub ssh_port: u16,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    pub image: String,
}

fn dir() -> PathBuf {
    crate::profile::cache_dir().join("vms")
}

pub fn path(name: &str) -> PathBuf {
    dir().join(format!("{name}.json"))
}

impl KeptVm {
    /// The record of a running VM that is about to be detached.
    pub fn of(name: &str, vm: &super::qemu::Vm, run_dir: PathBuf) -> KeptVm {
        KeptVm {
            name: name.to_owned(),
            qemu_pid: vm.qemu_pid().unwrap_or_default(),
            run_dir,
            qmp_socket: vm.qmp_socket.clone(),
            ssh_user: vm.ssh.user.clone(),
            ssh_port: vm.ssh.port,
            identity: vm.ssh.identity.clone(),
            known_hosts: vm.ssh.known_hosts.clone(),
            image: vm.spec.image.describe(),
        }
    }

    pub fn ssh(&self) -> SshTarget {
        SshTarget {
            user: self.ssh_user.clone(),
            host: "127.0.0.1".into(),
            port: self.ssh_port,
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            control_path: None,
        }
    }

    pub fn save(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(dir())?;
        std::fs::write(
            path(&self.name),
            serde_json::to_vec_pretty(self).expect("serialisable"),
        )
    }

    pub fn load(name: &str) -> std::io::Result<KeptVm> {
        let bytes = std::fs::read(path(name))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// Quits QEMU through QMP (SIGKILL if that fails), removes its run dir and this record.
    pub fn destroy(&self) {
        let quit = Qmp::connect(&self.qmp_socket, Duration::from_secs(5)).and_then(|mut q| q.quit());
        if quit.is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.qemu_pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let pid = self.qemu_pid as i32;
        let _ = crate::wait::wait_blocking(
            "QEMU to exit",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if Path::new(&format!("/proc/{pid}")).exists() {
                    crate::wait::Attempt::NotYet("running".into())
                } else {
                    crate::wait::Attempt::Ready(())
                }
            },
        );
        let _ = std::fs::remove_dir_all(&self.run_dir);
        let _ = std::fs::remove_file(path(&self.name));
    }
}
