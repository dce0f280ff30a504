//! One QEMU process: a throw-away overlay on a cached image, the serial console to a file,
//! QMP on a unix socket, SSH forwarded on 127.0.0.1 only.
//!
//! Invariant: the cached image is never written (every boot gets its own qcow2 overlay in
//! the run dir); QEMU is supervised like every child (own process group, killed on drop and
//! on Ctrl-C), and waits on the guest watch QEMU so a dead VM fails at once with its console.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::accel::Accel;
use super::image::Image;
use super::qmp::Qmp;
use super::ssh::{known_hosts_line, SshTarget};
use crate::process::{self, Daemon, ProcessError};
use crate::wait::{wait_for, Attempt, WaitError};

/// Boot to sshd: seconds under KVM; under TCG a systemd boot measured 37-69 s here.
pub fn boot_deadline(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => Duration::from_secs(60),
        Accel::Tcg => Duration::from_secs(240),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("failed to create the overlay for {image}")]
    Overlay {
        image: PathBuf,
        #[source]
        source: ProcessError,
    },
    #[error("failed to prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start QEMU")]
    Spawn(#[source] ProcessError),
    #[error("the VM did not become reachable over SSH; console ends with:\n{console_tail}")]
    Boot {
        #[source]
        source: WaitError,
        console_tail: String,
    },
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub image: Image,
    pub accel: Accel,
    pub memory_mb: u32,
    pub cpus: u32,
    /// Per-run directory for the overlay, console log, QMP socket and known_hosts.
    pub run_dir: PathBuf,
}

pub struct Vm {
    pub spec: VmSpec,
    pub ssh: SshTarget,
    pub console: PathBuf,
    pub qmp_socket: PathBuf,
    pub overlay: PathBuf,
    qemu: Option<Daemon>,
    /// The SSH master connection every later command shares (see [`SshTarget::master`]).
    ssh_master: Option<Daemon>,
}

fn free_local_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Vm {
    /// Creates the overlay and starts QEMU (does not wait for the guest).
    pub fn start(spec: VmSpec) -> Result<Vm, VmError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| VmError::Io { path, source }
        };
        std::fs::create_dir_all(&spec.run_dir).map_err(io(&spec.run_dir))?;
        let overlay = spec.run_dir.join("overlay.qcow2");
        let mut create = Command::new("qemu-img");
        create.args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            &spec.image.manifest.files.disk_format,
            "-b",
        ]);
        create.arg(spec.image.disk()).arg(&overlay);
        process::run(create, Duration::from_secs(30)).map_err(|source| VmError::Overlay {
            image: spec.image.disk(),
            source,
        })?;

        let port = free_local_port().map_err(io(&spec.run_dir))?;
        let known_hosts = spec.run_dir.join("known_hosts");
        let host_key = spec.image.host_key().map_err(|e| VmError::Io {
            path: spec.image.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        std::fs::write(&known_hosts, known_hosts_line("127.0.0.1", port, &host_key))
            .map_err(io(&known_hosts))?;
        let console = spec.run_dir.join("console.log");
        let qmp_socket = spec.run_dir.join("qmp.sock");
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", spec.accel.qemu_arg()]);
        cmd.args(["-cpu", if spec.accel == Accel::Kvm { "host" } else { "max" }]);
        cmd.args(["-m", &spec.memory_mb.to_string(), "-smp", &spec.cpus.to_string()]);
        // The shape the image builder measured fastest under TCG (vm-images/README.md).
        cmd.args([
            "-machine",
            "pc",
            "-nographic",
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
        ]);
        cmd.arg("-kernel")
            .arg(spec.image.kernel())
            .arg("-initrd")
            .arg(spec.image.initrd());
        cmd.args(["-append", &spec.image.manifest.cmdline]);
        cmd.arg("-drive").arg(format!(
            "file={},if=virtio,format=qcow2,cache=unsafe",
            overlay.display()
        ));
        // restrict=on: the guest reaches nothing beyond QEMU (an air-gapped node), while the
        // explicit SSH forward on 127.0.0.1 still works.
        cmd.args([
            "-netdev",
            &format!(
                "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{}",
                spec.image.manifest.guest.ssh_port
            ),
        ]);
        cmd.args([
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
            "-device",
            "virtio-rng-pci",
        ]);
        cmd.args(["-device", "vmgenid,guid=auto", "-monitor", "none"]);
        cmd.arg("-serial").arg(format!("file:{}", console.display()));
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()));
        let qemu = Daemon::spawn("qemu", cmd, &spec.run_dir.join("qemu.log")).map_err(VmError::Spawn)?;
        let ssh = SshTarget {
            user: spec.image.manifest.guest.ssh_user.clone(),
            host: "127.0.0.1".into(),
            port,
            identity: spec.image.ssh_key(),
            known_hosts,
            control_path: None,
        };
        Ok(Vm {
            spec,
            ssh,
            console,
            qmp_socket,
            overlay,
            qemu: Some(qemu),
            ssh_master: None,
        })
    }

    /// QEMU's exit status, if it is gone.
    pub fn exited(&mut self) -> Option<String> {
        match self.qemu.as_mut() {
            Some(q) => q
                .exited()
                .map(|s| format!("QEMU exited ({s}): {}", q.log_tail(5))),
            None => Some("QEMU was stopped".into()),
        }
    }

    pub fn console_tail(&self, lines: usize) -> String {
        process::tail_of_file(&self.console, lines)
    }

    pub fn qemu_pid(&self) -> Option<u32> {
        self.qemu.as_ref().map(Daemon::pid)
    }

    /// Waits until `ssh true` succeeds, failing at once if QEMU exits.
    pub async fn wait_for_ssh(&mut self, deadline: Duration) -> Result<(), VmError> {
        let ssh = self.ssh.clone();
        let qemu = std::sync::Mutex::new(self.qemu.take());
        let waited = wait_for("the guest's sshd", deadline, Duration::from_millis(250), || {
            let dead = qemu
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .and_then(|q| {
                    q.exited()
                        .map(|s| format!("QEMU exited ({s}): {}", q.log_tail(5)))
                });
            let probe = ssh.command(&["true".to_owned()]);
            async move {
                if let Some(reason) = dead {
                    return Attempt::Fatal(reason);
                }
                match tokio::task::spawn_blocking(move || process::run(probe, Duration::from_secs(15))).await
                {
                    Ok(Ok(_)) => Attempt::Ready(()),
                    Ok(Err(e)) => Attempt::NotYet(e.to_string()),
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        })
        .await;
        self.qemu = qemu.into_inner().unwrap_or_else(|p| p.into_inner());
        waited.map_err(|source| VmError::Boot {
            source,
            console_tail: self.console_tail(40),
        })?;
        self.start_ssh_master().await;
        Ok(())
    }

    /// Starts the shared SSH connection; without it (it did not come up within seconds)
    /// every command simply makes its own connection, slower but the same.
    async fn start_ssh_master(&mut self) {
        if self.ssh_master.is_some() {
            return;
        }
        let control = self.spec.run_dir.join("ssh-master.sock");
        let log = self.spec.run_dir.join("ssh-master.log");
        let Ok(mut master) = Daemon::spawn("ssh-master", self.ssh.master(&control), &log) else {
            return;
        };
        let up = wait_for(
            "the SSH master connection",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                let state = match master.exited() {
                    Some(status) => Err(status.to_string()),
                    None => Ok(control.exists()),
                };
                async move {
                    match state {
                        Err(status) => Attempt::Fatal(format!("ssh -M exited ({status})")),
                        Ok(true) => Attempt::Ready(()),
                        Ok(false) => Attempt::NotYet("no control socket yet".into()),
                    }
                }
            },
        )
        .await;
        match up {
            Ok(()) => {
                self.ssh.control_path = Some(control);
                self.ssh_master = Some(master);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no shared SSH connection; each command connects on its own");
                master.stop(Duration::from_secs(2));
            }
        }
    }

    /// Leaves the VM running past our exit (`vm up`, `run --keep`): returns QEMU's pid.
    pub fn detach(mut self) -> Option<u32> {
        if let Some(mut master) = self.ssh_master.take() {
            master.stop(Duration::from_secs(2));
        }
        let pid = self.qemu.take().map(Daemon::detach);
        std::mem::forget(self);
        pid
    }

    /// Asks QEMU to quit through QMP, then makes sure it is gone; removes the overlay.
    pub fn stop(&mut self) {
        if let Some(mut master) = self.ssh_master.take() {
            master.stop(Duration::from_secs(2));
        }
        if let Ok(mut qmp) = Qmp::connect(&self.qmp_socket, Duration::from_secs(5)) {
            let _ = qmp.quit();
        }
        if let Some(mut qemu) = self.qemu.take() {
            qemu.stop(Duration::from_secs(10));
        }
        let _ = std::fs::remove_file(&self.overlay);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}
