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
use super::kvm::{Nesting, Vendor};
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
    /// Hand the guest this CPU's virtualization extension (`+vmx`/`+svm`), so the guest has
    /// a /dev/kvm of its own: only under KVM, on a host whose KVM allows nesting.
    pub nested: Option<Vendor>,
    pub memory_mb: u32,
    pub cpus: u32,
    /// Per-run directory for the overlay, console log, QMP socket and known_hosts.
    pub run_dir: PathBuf,
    /// Start from this saved state (a qcow2 on the image's disk holding the internal
    /// snapshot [`SNAPSHOT_TAG`]) instead of booting: it is copied to the run's overlay, so
    /// the saved file is never written.
    pub restore: Option<PathBuf>,
}

/// The internal snapshot a saved state holds (`savevm` / `-loadvm`).
pub const SNAPSHOT_TAG: &str = "provisioned";

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

/// Whether a VM under `accel` gets nested virtualization: under KVM, where the host's KVM
/// module (read from `sysfs`, `/sys` on a real host) allows it.
pub fn nested_cpu(accel: Accel, sysfs: &Path) -> Option<Vendor> {
    match accel {
        Accel::Kvm => Nesting::probe(sysfs).vendor(),
        Accel::Tcg => None,
    }
}

fn free_local_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// QEMU's arguments for `spec` (all but `-loadvm`). A saved state is only valid for the
/// command line it was saved under (paths and the forwarded port aside), so
/// [`machine_shape`] hashes exactly these.
fn qemu_args(spec: &VmSpec, overlay: &Path, console: &Path, qmp_socket: &Path, port: u16) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&["-accel", spec.accel.qemu_arg()]);
    let cpu = match (spec.accel, spec.nested) {
        (Accel::Kvm, Some(vendor)) => format!("host,{}", vendor.cpu_feature()),
        (Accel::Kvm, None) => "host".to_owned(),
        // TCG emulates no nested VMX/SVM worth using.
        (Accel::Tcg, _) => "max".to_owned(),
    };
    push(&["-cpu", &cpu]);
    push(&["-m", &spec.memory_mb.to_string(), "-smp", &spec.cpus.to_string()]);
    // The shape the image builder measured fastest under TCG (vm-images/README.md).
    push(&[
        "-machine",
        "pc",
        "-nographic",
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
    ]);
    push(&[
        "-kernel",
        &spec.image.kernel().to_string_lossy(),
        "-initrd",
        &spec.image.initrd().to_string_lossy(),
    ]);
    push(&["-append", &spec.image.manifest.cmdline]);
    push(&[
        "-drive",
        &format!("file={},if=virtio,format=qcow2,cache=unsafe", overlay.display()),
    ]);
    // restrict=on: the guest reaches nothing beyond QEMU (an air-gapped node), while the
    // explicit SSH forward on 127.0.0.1 still works.
    push(&[
        "-netdev",
        &format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{}",
            spec.image.manifest.guest.ssh_port
        ),
    ]);
    push(&[
        "-device",
        "virtio-net-pci,netdev=n0,romfile=",
        "-device",
        "virtio-rng-pci",
    ]);
    // A new VM generation ID at every start: a guest restored from a saved state reseeds
    // its RNG, so two trials from one state never share random numbers.
    push(&["-device", "vmgenid,guid=auto", "-monitor", "none"]);
    push(&["-serial", &format!("file:{}", console.display())]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", qmp_socket.display()),
    ]);
    args
}

/// The command line a VM of `spec` runs with, its per-run paths and port replaced by
/// placeholders: what a saved state must have been saved under to be restored.
pub fn machine_shape(spec: &VmSpec) -> Vec<String> {
    let run = Path::new("/RUN");
    qemu_args(
        spec,
        &run.join("overlay.qcow2"),
        &run.join("console.log"),
        &run.join("qmp.sock"),
        0,
    )
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
        match &spec.restore {
            // -loadvm finds internal snapshots only in the top image (not through a backing
            // chain), so the saved state is copied (a reflink where the filesystem can).
            Some(saved) => {
                let mut copy = Command::new("cp");
                copy.arg("--reflink=auto").arg(saved).arg(&overlay);
                process::run(copy, Duration::from_secs(60)).map_err(|source| VmError::Overlay {
                    image: saved.clone(),
                    source,
                })?;
            }
            None => {
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
            }
        }

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
        cmd.args(qemu_args(&spec, &overlay, &console, &qmp_socket, port));
        if spec.restore.is_some() {
            cmd.args(["-loadvm", SNAPSHOT_TAG]);
        }
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

    /// Saves the running guest's whole state (RAM, devices, disk) as the internal snapshot
    /// [`SNAPSHOT_TAG`] of its overlay, then quits QEMU: the overlay is then a saved state a
    /// later VM of the same shape starts from ([`VmSpec::restore`]).
    pub fn save_and_quit(&mut self) -> Result<PathBuf, String> {
        if let Some(mut master) = self.ssh_master.take() {
            master.stop(Duration::from_secs(2));
        }
        let mut qmp = Qmp::connect(&self.qmp_socket, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let said = qmp
            .human(&format!("savevm {SNAPSHOT_TAG}"))
            .map_err(|e| e.to_string())?;
        // HMP prints nothing when savevm succeeds.
        if !said.trim().is_empty() {
            return Err(format!("savevm: {}", said.trim()));
        }
        let _ = qmp.quit();
        if let Some(mut qemu) = self.qemu.take() {
            qemu.stop(Duration::from_secs(20));
        }
        Ok(self.overlay.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image(dir: &Path) -> Image {
        let manifest = r#"{"recipe":"bookworm","hash":"abc","kernel":"6.1.0-56-amd64",
          "files":{"disk":"disk.raw","disk_format":"raw","kernel":"vmlinux","bzimage":"vmlinuz",
            "initrd":"initrd.img","cmdline":"cmdline","ssh_key":"id_ed25519","known_hosts":"known_hosts",
            "host_key":"ssh_host_ed25519_key.pub","packages":"packages.txt"},
          "cmdline":"console=ttyS0","guest":{"ip":"10.0.2.15","ssh_user":"root","ssh_port":22}}"#;
        std::fs::write(dir.join("manifest.json"), manifest).unwrap();
        Image::open(dir).unwrap()
    }

    use crate::vm::kvm::fake_sysfs as sysfs;

    /// The `-cpu` value QEMU gets for a VM under `accel` on a host with this sysfs.
    fn cpu_arg(accel: Accel, sysfs: &Path) -> String {
        let dir = tempfile::tempdir().unwrap();
        let spec = VmSpec {
            image: image(dir.path()),
            accel,
            nested: nested_cpu(accel, sysfs),
            memory_mb: 2048,
            cpus: 2,
            run_dir: dir.path().to_owned(),
            restore: None,
        };
        let args = machine_shape(&spec);
        let at = args.iter().position(|a| a == "-cpu").expect("a -cpu argument");
        assert_eq!(args.iter().filter(|a| *a == "-cpu").count(), 1, "{args:?}");
        args[at + 1].clone()
    }

    #[test]
    fn a_kvm_guest_gets_the_virtualization_extension_only_where_the_host_nests() {
        let intel = sysfs("kvm_intel", "Y\n");
        assert_eq!(cpu_arg(Accel::Kvm, intel.path()), "host,+vmx");
        let amd = sysfs("kvm_amd", "1\n");
        assert_eq!(cpu_arg(Accel::Kvm, amd.path()), "host,+svm");
        let off = sysfs("kvm_intel", "N\n");
        assert_eq!(cpu_arg(Accel::Kvm, off.path()), "host");
        let missing = tempfile::tempdir().unwrap();
        assert_eq!(cpu_arg(Accel::Kvm, missing.path()), "host");
        // TCG has no -cpu host, nesting or not.
        assert_eq!(cpu_arg(Accel::Tcg, intel.path()), "max");
    }
}
