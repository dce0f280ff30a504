//! The VM backend: the containerd of a throw-away QEMU VM, driven over SSH, its CRI socket
//! forwarded to the run dir so the same CRI client and the same suites run unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cleanup::{processes_matching, Leftovers};
use super::guest::{guest, put, GUEST_STATE};
use super::kata::{self, KataPlan};
use super::vm_kata::{guest_kata_files, install_guest_kata};
use super::{
    daemon_gone, io_err, new_run_dir, standard_handlers, wait_ready, Backend, ProvisionError, RunPaths,
    Settings, Testbed, NODE_COMMAND_DEADLINE, SANDBOX_IMAGE,
};
use crate::node::vm::SshNode;
use crate::node::Node;
use crate::process::Daemon;
use crate::profile::{parse_containerd_version, Containerd, Version};
use crate::render::{cni, ContainerdConfig};
use crate::teardown::{self, Registration};
use crate::vm::accel::Verdict;
use crate::vm::image::Image;
use crate::vm::qemu::{boot_deadline, machine_shape, nested_cpu, Vm, VmSpec};
use crate::vm::snapshot;
use crate::wait::{wait_blocking, Attempt};

const GUEST_SOCKET: &str = "/run/containerd/containerd.sock";
const GUEST_CONFIG: &str = "/etc/containerd/config.toml";
/// containerd's registry `config_path` in the guest (hosts.toml per registry host).
const GUEST_CERTS_D: &str = "/etc/containerd/certs.d";
/// Where the guest gets this host's crictl (on the guest's PATH).
const GUEST_CRICTL: &str = "/usr/local/bin/crictl";
/// crictl's default config file: the guest is disposable, so it gets one naming its socket.
const GUEST_CRICTL_CONFIG: &str = "/etc/crictl.yaml";
/// crun learned OCI spec 1.2 (what containerd 2.x writes) in 1.14.3.
const CRUN_FOR_SPEC_1_2: Version = Version::new(1, 14, 3);

pub(super) struct VmBackend {
    vm: Vm,
    forward: Mutex<Option<Daemon>>,
    run_dir: PathBuf,
    keep: bool,
    registration: Option<Registration>,
    /// What provisioning learned, kept with a saved state of this VM.
    guest_facts: GuestFacts,
}

impl VmBackend {
    pub(super) fn qemu_pid(&self) -> Option<u32> {
        self.vm.qemu_pid()
    }

    pub(super) fn exited(&mut self) -> Option<String> {
        let forward = daemon_gone(&self.forward, "the SSH forward of the CRI socket");
        // The forward dies of the VM's death: its connection closes as QEMU exits, a moment
        // before QEMU can be reaped. So when it is gone, QEMU gets a second to be seen gone
        // too, and the cause is reported rather than the symptom.
        let look = if forward.is_some() {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
        let vm = &mut self.vm;
        let qemu = wait_blocking("QEMU to be seen gone", look, Duration::from_millis(50), || {
            vm.exited()
                .map_or_else(|| Attempt::NotYet("QEMU still runs".into()), Attempt::Ready)
        });
        match qemu {
            Ok(reason) => Some(format!(
                "{reason}\n----- console (tail) -----\n{}",
                self.vm.console_tail(30)
            )),
            Err(_) => forward,
        }
    }

    pub(super) fn console_path(&self) -> PathBuf {
        self.vm.console.clone()
    }

    pub(super) fn log_tail(&mut self, node: &dyn Node, lines: usize) -> String {
        if self.vm.exited().is_some() {
            return format!(
                "(the VM is gone)\n----- console (tail) -----\n{}",
                self.vm.console_tail(lines)
            );
        }
        let argv = [
            "journalctl",
            "-u",
            "containerd",
            "--no-pager",
            "-o",
            "short-precise",
            "-n",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([lines.to_string()])
        .collect::<Vec<_>>();
        match node.run(&argv, Duration::from_secs(30)) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => format!("(journalctl failed: {e})\n{}", self.vm.console_tail(lines)),
        }
    }

    /// Leaves the VM running (for `--keep` after a failure) and records it under `name` so
    /// `kata-harness vm ssh|down --name <name>` find it. Returns how to reach it.
    pub(super) fn keep(self, name: &str) -> String {
        let VmBackend {
            vm,
            forward,
            run_dir,
            registration,
            ..
        } = self;
        if let Some(mut forward) = forward.lock().unwrap_or_else(|p| p.into_inner()).take() {
            forward.stop(Duration::from_secs(5));
        }
        if let Some(registration) = registration {
            registration.disarm();
        }
        let kept = crate::vm::state::KeptVm::of(name, &vm, run_dir);
        let line = vm.ssh.interactive_line();
        vm.detach();
        match kept.save() {
            Ok(()) => format!(
                "kept VM {name}: kata-harness vm ssh --name {name}  (or: {line}); stop it with: kata-harness vm down --name {name}"
            ),
            Err(e) => format!("kept VM {name} (pid {}), but failed to record it: {e}; reach it with: {line}", kept.qemu_pid),
        }
    }

    pub(super) fn finish(mut self) -> Leftovers {
        if let Some(mut forward) = self.forward.lock().unwrap_or_else(|p| p.into_inner()).take() {
            forward.stop(Duration::from_secs(5));
        }
        self.vm.stop();
        if let Some(registration) = self.registration.take() {
            registration.disarm();
        }
        let leftovers: Vec<String> = processes_matching(&self.run_dir.to_string_lossy())
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid}: {cmd}"))
            .collect();
        if !self.keep && leftovers.is_empty() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
        Leftovers(leftovers)
    }
}

/// The crun the guest should use: its own, unless containerd 2.x meets a crun too old for
/// the OCI spec it writes; then the newer crun from the host cache is copied in.
fn guest_crun(node: &dyn Node, containerd: Version) -> Result<(String, String), ProvisionError> {
    let own = guest(node, &["crun", "--version"])?;
    let own_version = own
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<Version>().ok());
    let too_old = containerd.major >= 2 && own_version.is_some_and(|v| v < CRUN_FOR_SPEC_1_2);
    let cached = super::crun_binary();
    if too_old && cached.is_absolute() {
        let target = format!("{GUEST_STATE}/bin/crun");
        node.upload(&cached, Path::new(&target))
            .map_err(ProvisionError::Guest)?;
        guest(node, &["chmod", "0755", &target])?;
        let version = guest(node, &[&target, "--version"])?;
        return Ok((target, version.lines().next().unwrap_or("").to_owned()));
    }
    Ok(("crun".into(), own.lines().next().unwrap_or("").to_owned()))
}

/// Copies this host's crictl into the guest and writes the guest's `/etc/crictl.yaml`
/// (runtime and image endpoint: the guest's containerd socket). `None` when this host has no
/// crictl; the facts say so.
fn guest_crictl(node: &dyn Node, run_dir: &Path) -> Result<(Option<String>, String), ProvisionError> {
    let Some(host_crictl) = crate::artifacts::cri_tools::crictl() else {
        return Ok((None, crate::artifacts::cri_tools::MISSING.into()));
    };
    node.upload(&host_crictl, Path::new(GUEST_CRICTL))
        .map_err(ProvisionError::Guest)?;
    guest(node, &["chmod", "0755", GUEST_CRICTL])?;
    put(
        node,
        run_dir,
        GUEST_CRICTL_CONFIG,
        &crate::render::crictl::config(Path::new(GUEST_SOCKET)),
    )?;
    Ok((
        Some("crictl".into()),
        format!("{GUEST_CRICTL}, {GUEST_CRICTL_CONFIG}"),
    ))
}

/// `crictl version` in the guest once containerd answers: plain `crictl` (PATH and
/// /etc/crictl.yaml alone) must reach the guest's CRI, as a person and reproduce.sh run it.
fn check_guest_crictl(node: &dyn Node) -> Result<String, ProvisionError> {
    let out = guest(node, &["crictl", "version"])?;
    Ok(out
        .lines()
        .filter(|l| l.starts_with("RuntimeVersion") || l.starts_with("RuntimeApiVersion"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(", "))
}

/// What provisioning learned about a guest, kept with its saved state: a VM restored from
/// it needs to ask nothing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct GuestFacts {
    containerd_version_text: String,
    crun: String,
    crun_version: String,
    crictl: Option<String>,
    crictl_fact: String,
}

/// `KATA_HARNESS_VM_SNAPSHOTS=off`: every VM boots cold (and no state is saved).
pub const SNAPSHOTS_ENV: &str = "KATA_HARNESS_VM_SNAPSHOTS";

fn snapshots_enabled() -> bool {
    std::env::var(SNAPSHOTS_ENV).map_or(true, |v| v != "off" && v != "0")
}

/// Everything a provisioned guest depends on besides the image and QEMU: this module's code
/// and the code that renders what it writes, and the host files it copies in. A change to
/// any of them is a different saved state.
fn provisioning_fingerprint(settings: &Settings) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for source in [
        include_str!("vm.rs"),
        include_str!("mod.rs"),
        include_str!("../render/containerd.rs"),
        include_str!("../render/cni.rs"),
        include_str!("../render/crictl.rs"),
        include_str!("../images.rs"),
        include_str!("guest.rs"),
        include_str!("vm_kata.rs"),
        include_str!("kata.rs"),
        include_str!("../render/kata.rs"),
    ] {
        hash.update(source.as_bytes());
    }
    // The Kata install in the guest: the plan (its conditions) and the layout's files.
    if let Some(plan) = &settings.kata {
        hash.update(format!("{:?}", plan.conditions).as_bytes());
        for file in [
            plan.layout.shim(plan.runtime),
            plan.layout.base_config(plan.runtime),
        ] {
            hash.update(snapshot::file_identity(&file).as_bytes());
        }
    }
    let mut files = vec![PathBuf::from(super::BUSYBOX_BINARY)];
    files.extend(settings.pause_binary.clone());
    files.extend(crate::artifacts::cri_tools::crictl());
    for file in files {
        hash.update(snapshot::file_identity(&file).as_bytes());
    }
    hex::encode(hash.finalize())
}

impl Testbed {
    /// A VM testbed of `image`: restored from the saved state of a provisioned VM of the
    /// same image, QEMU, command line and provisioning when there is one (a second or two
    /// to the CRI instead of a boot); otherwise booted and provisioned, its state saved, and
    /// started from that (which proves it restores). How it started is one of its facts.
    pub async fn start_vm(
        settings: &Settings,
        image: Image,
        accel: &Verdict,
    ) -> Result<Testbed, ProvisionError> {
        if !snapshots_enabled() {
            let why = format!("cold boot ({SNAPSHOTS_ENV}=off)");
            return Self::boot_vm(settings, image, accel, None, why).await;
        }
        let shape = machine_shape(&vm_spec(image.clone(), accel, PathBuf::from("/RUN"), None));
        let key = snapshot::Key::new(&image, &shape, &provisioning_fingerprint(settings));
        let mut why = format!(
            "no saved state {} yet (image, QEMU, command line and provisioning)",
            key.0
        );
        if let Some(saved) = snapshot::find(&image, &key) {
            let how = format!("restored from saved state {}", key.0);
            match Self::boot_vm(settings, image.clone(), accel, Some(&saved), how).await {
                Ok(testbed) => return Ok(testbed),
                Err(e) => {
                    tracing::warn!(error = %crate::errors::chain(&e), "the saved state did not restore; booting");
                    saved.discard();
                    why = format!(
                        "saved state {} did not restore ({})",
                        key.0,
                        crate::errors::chain(&e)
                    );
                }
            }
        }
        let cold = Self::boot_vm(settings, image.clone(), accel, None, format!("cold boot: {why}")).await?;
        let saved = match cold.save_vm_state(&image, &key) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(error = %e, "could not save the VM's state; booting again");
                let how = format!("cold boot: {why}; saving its state failed: {e}");
                return Self::boot_vm(settings, image, accel, None, how).await;
            }
        };
        let how = format!("restored from saved state {} (just saved: {why})", key.0);
        match Self::boot_vm(settings, image.clone(), accel, Some(&saved), how).await {
            Ok(testbed) => Ok(testbed),
            Err(e) => {
                saved.discard();
                let how = format!(
                    "cold boot: a state just saved did not restore ({})",
                    crate::errors::chain(&e)
                );
                Self::boot_vm(settings, image, accel, None, how).await
            }
        }
    }

    /// Saves this (freshly provisioned, row-free) VM's state under `key` and ends it.
    fn save_vm_state(self, image: &Image, key: &snapshot::Key) -> Result<snapshot::Saved, String> {
        // Nothing in flight on the guest's disk when its state is taken.
        let _ = self.node.run(&["sync".to_owned()], NODE_COMMAND_DEADLINE);
        let mut guard = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        let Some(Backend::Vm(backend)) = guard.as_mut() else {
            return Err("not a VM testbed".into());
        };
        let meta = serde_json::to_string_pretty(&backend.guest_facts).map_err(|e| e.to_string())?;
        if let Some(mut forward) = backend.forward.lock().unwrap_or_else(|p| p.into_inner()).take() {
            forward.stop(Duration::from_secs(5));
        }
        let overlay = backend.vm.save_and_quit()?;
        let saved = snapshot::publish(image, key, &overlay, &meta).map_err(|e| e.to_string());
        drop(guard);
        saved
    }

    /// Boots (or, with `restore`, restores) a VM from `image` (overlay, console, QMP, SSH),
    /// configures its containerd with our handlers and CNI unless restored, forwards its CRI
    /// socket here, and loads the standard images. `how` says how it started (a fact).
    async fn boot_vm(
        settings: &Settings,
        image: Image,
        accel: &Verdict,
        restore: Option<&snapshot::Saved>,
        how: String,
    ) -> Result<Testbed, ProvisionError> {
        teardown::install_interrupt_handler();
        let (id, run_dir) = new_run_dir()?;
        // An interrupt before the backend exists still removes the run dir (QEMU and ssh are
        // killed by their own registrations).
        let registration = {
            let dir = run_dir.clone();
            let keep = settings.keep;
            teardown::register(format!("VM run dir {}", run_dir.display()), move || {
                if !keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            })
        };
        let recipe = image.manifest.recipe.clone();
        let description = image.describe();
        let spec = vm_spec(
            image,
            accel,
            run_dir.join("vm"),
            restore.map(snapshot::Saved::state),
        );
        let started = std::time::Instant::now();
        let mut vm = Vm::start(spec)?;
        vm.wait_for_ssh(boot_deadline(accel.accel)).await?;
        let node = SshNode {
            name: format!("vm:{recipe}"),
            ssh: vm.ssh.clone(),
        };
        let known = match restore {
            Some(saved) => {
                let facts = saved
                    .meta()
                    .map_err(|e| e.to_string())
                    .and_then(|meta| serde_json::from_str::<GuestFacts>(&meta).map_err(|e| e.to_string()))
                    .map_err(|message| ProvisionError::SavedState {
                        dir: saved.dir.clone(),
                        message,
                    })?;
                reset_clock_and_entropy(&node)?;
                Some(facts)
            }
            None => None,
        };
        let version_text = match &known {
            Some(facts) => facts.containerd_version_text.clone(),
            None => guest(&node, &["containerd", "--version"])?.trim().to_owned(),
        };
        let version = parse_containerd_version(&version_text)?;
        let containerd = Containerd {
            bin_dir: "/usr/bin".into(),
            version,
            version_text,
        };
        let ((crun, crun_version), (crictl, crictl_fact)) = match &known {
            Some(facts) => (
                (facts.crun.clone(), facts.crun_version.clone()),
                (facts.crictl.clone(), facts.crictl_fact.clone()),
            ),
            None => (guest_crun(&node, version)?, guest_crictl(&node, &run_dir)?),
        };
        let kata_install = match (&settings.kata, &known) {
            (Some(plan), None) => Some(install_guest_kata(&node, &run_dir, plan)?),
            // A restored guest has it (installed before its state was saved).
            (Some(plan), Some(_)) => Some(guest_kata_files(plan)?.1),
            (None, _) => None,
        };
        let slowdown = settings.kata.as_ref().map_or(1, KataPlan::slowdown);
        let staging = run_dir.join("images");
        std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        let paths = RunPaths {
            run_dir: run_dir.clone(),
            config: GUEST_CONFIG.into(),
            node_run_dir: format!("{GUEST_STATE}/run").into(),
            socket: run_dir.join("containerd.sock"),
            node_socket: GUEST_SOCKET.into(),
            pod_logs: format!("{GUEST_STATE}/pod-logs").into(),
            runtime_root: format!("{GUEST_STATE}/runtime-root").into(),
            images: format!("{GUEST_STATE}/images").into(),
            staging,
        };
        let config = ContainerdConfig {
            version,
            root: "/var/lib/containerd".into(),
            state: "/run/containerd".into(),
            grpc_address: GUEST_SOCKET.into(),
            temp_dir: format!("{GUEST_STATE}/tmp").into(),
            opt_dir: "/opt/containerd".into(),
            sandbox_image: SANDBOX_IMAGE.into(),
            default_runtime: "runc".into(),
            runtimes: {
                let mut handlers = standard_handlers(&paths.runtime_root, &crun);
                if let Some(install) = &kata_install {
                    kata::use_config(&mut handlers, install);
                }
                handlers
            },
            untrusted_workload_runtime: None,
            cni_bin_dir: "/usr/lib/cni".into(),
            cni_conf_dir: "/etc/cni/net.d".into(),
            registry_config_path: Some(GUEST_CERTS_D.into()),
            snapshotter: "overlayfs".into(),
            restrict_oom_score_adj: false,
        };
        if known.is_none() {
            configure_guest(&node, &run_dir, &paths, &config)?;
        }

        let forward = Daemon::spawn(
            "ssh-forward",
            vm.ssh.forward_socket(&paths.socket, Path::new(GUEST_SOCKET)),
            &run_dir.join("ssh-forward.log"),
        )
        .map_err(ProvisionError::Spawn)?;
        let forward = Mutex::new(Some(forward));
        let ready = {
            let vm_dead = Mutex::new(&mut vm);
            wait_ready(&paths.socket, || {
                vm_dead
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .exited()
                    .or_else(|| daemon_gone(&forward, "ssh"))
            })
            .await
        };
        let cri = match ready {
            Ok(cri) => cri.with_deadline(super::CRI_CALL_DEADLINE * slowdown),
            Err(source) => {
                let log_tail = vm.console_tail(40);
                return Err(ProvisionError::NotReady { source, log_tail });
            }
        };
        let crictl_fact = match (&crictl, &known) {
            (Some(_), None) => format!("{crictl_fact}: {}", check_guest_crictl(&node)?),
            _ => crictl_fact,
        };
        let guest_facts = GuestFacts {
            containerd_version_text: containerd.version_text.clone(),
            crun: crun.clone(),
            crun_version: crun_version.clone(),
            crictl: crictl.clone(),
            crictl_fact: crictl_fact.clone(),
        };
        let mut facts = vec![
            ("target".into(), format!("vm ({recipe})")),
            ("image".into(), description),
            (
                "accelerator".into(),
                format!("{} ({})", accel.accel.qemu_arg(), accel.reason),
            ),
            (
                "start".into(),
                format!(
                    "{how}; CRI ready {:.1} s after QEMU started",
                    started.elapsed().as_secs_f64()
                ),
            ),
            ("containerd".into(), containerd.version_text.clone()),
            ("crun".into(), crun_version),
            ("crictl".into(), crictl_fact),
        ];
        if let Some(plan) = &settings.kata {
            facts.push((
                "kata".into(),
                format!(
                    "{} at /opt/kata in the guest, its guest under {}",
                    plan.layout.describe(),
                    plan.accel()
                ),
            ));
        }
        let backend = VmBackend {
            vm,
            forward,
            run_dir: run_dir.clone(),
            keep: settings.keep,
            registration: Some(registration),
            guest_facts,
        };
        let testbed = Testbed {
            id,
            containerd,
            config,
            paths,
            cri,
            node: Arc::new(node),
            cgroup_parent: format!("kata-harness-{}", short(&run_dir)),
            crun,
            facts,
            kata: kata_install,
            kata_rs: None,
            slowdown,
            crictl,
            backend: Mutex::new(Some(Backend::Vm(backend))),
        };
        // A restored guest has them already (they were imported before its state was saved).
        if known.is_none() {
            testbed.import_standard_images(settings)?;
        }
        Ok(testbed)
    }
}

fn vm_spec(image: Image, accel: &Verdict, run_dir: PathBuf, restore: Option<PathBuf>) -> VmSpec {
    VmSpec {
        image,
        accel: accel.accel,
        nested: nested_cpu(accel.accel, Path::new("/sys")),
        memory_mb: 2048,
        cpus: 2,
        run_dir,
        restore,
    }
}

/// A restored guest's clock is the saved one's (minutes or days behind: TLS certificates a
/// row makes now would not be valid yet), and its entropy pool is the saved one's too
/// (vmgenid makes the kernel reseed; this host's randomness is mixed in as well).
fn reset_clock_and_entropy(node: &dyn Node) -> Result<(), ProvisionError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut seed = [0u8; 64];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut seed))
        .map_err(io_err(Path::new("/dev/urandom")))?;
    // Octal escapes: the guest's sh (dash) printf knows no \x.
    let octal: String = seed.iter().map(|b| format!("\\{b:03o}")).collect();
    let script = format!(
        "date -u -s @{}.{:09} >/dev/null && printf '{octal}' > /dev/urandom",
        now.as_secs(),
        now.subsec_nanos(),
    );
    guest(node, &["sh", "-c", &script]).map(drop)
}

/// The guest's side of provisioning: dirs, the registry address, the air gap, containerd's
/// config and CNI, and a restart of containerd on them.
fn configure_guest(
    node: &dyn Node,
    run_dir: &Path,
    paths: &RunPaths,
    config: &ContainerdConfig,
) -> Result<(), ProvisionError> {
    let ipam = format!("{GUEST_STATE}/ipam");
    for dir in [
        &paths.pod_logs,
        &paths.runtime_root,
        &paths.images,
        Path::new(&ipam),
        Path::new("/etc/cni/net.d"),
        Path::new(GUEST_CERTS_D),
    ] {
        guest(node, &["mkdir", "-p", &dir.to_string_lossy()])?;
    }
    // Scenario registries listen on the same non-loopback address as on the local target
    // (so TLS is really verified); the guest's network is already air-gapped.
    let registry_address = format!("{}/32", super::node_net::REGISTRY_IP);
    guest(node, &["ip", "addr", "replace", &registry_address, "dev", "lo"])?;
    // The air gap, guest side too (QEMU's restrict=on already drops what leaves the
    // guest, silently: a DNS lookup then waits out its 10 s timeout). Rejecting new
    // outbound traffic makes every attempt fail at once, as on an air-gapped host; SSH
    // (inbound, established) is untouched.
    for rule in [
        "OUTPUT -o eth0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "OUTPUT -o eth0 -j REJECT",
    ] {
        let mut argv = vec!["iptables", "-A"];
        argv.extend(rule.split(' '));
        guest(node, &argv)?;
    }
    put(node, run_dir, GUEST_CONFIG, &config.render()?)?;
    let conflist = cni::bridge_conflist("kata-harness", "khbr0", "10.88.0.0/16", Path::new(&ipam));
    put(
        node,
        run_dir,
        "/etc/cni/net.d/10-kata-harness.conflist",
        &conflist,
    )?;
    guest(node, &["systemctl", "restart", "containerd"])?;
    Ok(())
}

fn short(run_dir: &Path) -> String {
    run_dir
        .file_name()
        .map(|n| n.to_string_lossy().trim_start_matches("kata-harness-").to_owned())
        .unwrap_or_default()
}

/// Keeps a command type in scope for rustdoc links in this module's docs.
#[allow(dead_code)]
fn _doc(_: Command) {}
