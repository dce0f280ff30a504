//! Installing Kata on a node: which way Kata can run on this host, and the files that wire a
//! layout into containerd (a rendered configuration, the shim names containerd looks up, and
//! the wrappers the conditions call for).
//!
//! Invariant: the node sees the layout at `/opt/kata` and reads upstream's configuration with
//! only the changes of [`KataPlan::changes`], each a named condition reported on every Kata
//! row; no file of the layout is written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::artifacts::kata::{KataLayout, KataRuntime, NODE_DIR};
use crate::render::kata::{self as render, Condition, GuestRoot, NodeFiles};
use crate::render::RuntimeHandler;

/// What a node offers Kata.
#[derive(Debug, Clone, PartialEq)]
pub struct KataHost {
    /// `None` when KVM was proven usable by a probe boot; else why not.
    pub no_kvm: Option<String>,
    pub vhost_vsock: bool,
    pub vhost_net: bool,
    pub syslog: bool,
    pub qemu: Option<PathBuf>,
    pub node: NodeKind,
}

/// Where the node that runs Kata is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeKind {
    /// This host (the local target, cluster nodes).
    Local,
    /// A VM guest of ours; `vm_under_tcg`: the VM itself runs under TCG.
    VmGuest { vm_under_tcg: bool },
}

/// The QEMU our VM images ship for Kata (Debian's, `vm-images/bookworm/packages`).
pub const GUEST_QEMU: &str = "/usr/bin/qemu-system-x86_64";

impl KataHost {
    /// `no_kvm`: the KVM verdict (`None` when a probe boot proved KVM usable).
    pub fn probe(no_kvm: Option<String>) -> Self {
        KataHost {
            no_kvm,
            vhost_vsock: Path::new("/dev/vhost-vsock").exists(),
            vhost_net: Path::new("/dev/vhost-net").exists(),
            syslog: Path::new("/dev/log").exists(),
            qemu: crate::process::find_on_path("qemu-system-x86_64"),
            node: NodeKind::Local,
        }
    }

    /// A VM guest from our images: its kernel has vhost_vsock and vhost_net (loaded at
    /// install), journald gives it /dev/log, and the image ships [`GUEST_QEMU`].
    pub fn vm_guest(no_kvm: Option<String>, vm_under_tcg: bool) -> Self {
        KataHost {
            no_kvm,
            vhost_vsock: true,
            vhost_net: true,
            syslog: true,
            qemu: Some(GUEST_QEMU.into()),
            node: NodeKind::VmGuest { vm_under_tcg },
        }
    }
}

/// How Kata will run on this host, decided before any row runs.
#[derive(Debug, Clone, PartialEq)]
pub struct KataPlan {
    pub layout: KataLayout,
    /// Which of the layout's runtimes this plan installs.
    pub runtime: KataRuntime,
    pub host: KataHost,
    /// The QEMU the hypervisor wrapper runs, as the node sees it.
    pub qemu: PathBuf,
    /// What the harness changes in the shipped configuration, and why.
    pub changes: Vec<Condition>,
    /// What every Kata row reports: the guest it boots, then [`Self::changes`].
    pub conditions: Vec<String>,
}

/// How long `qemu -accel help` may take.
const QEMU_QUERY_DEADLINE: Duration = Duration::from_secs(10);

impl KataPlan {
    /// `Err(reason)` when `runtime` cannot run here at all (its rows are skipped with it).
    pub fn new(layout: KataLayout, host: KataHost, runtime: KataRuntime) -> Result<Self, String> {
        if !layout.runtimes().contains(&runtime) {
            return Err(format!(
                "{} ships no {} ({} and {})",
                layout.describe(),
                runtime.name(),
                runtime.shim_rel(),
                runtime.config_rel()
            ));
        }
        let base_path = layout.base_config(runtime);
        let base =
            std::fs::read_to_string(&base_path).map_err(|e| format!("{}: {e}", base_path.display()))?;
        let shipped = |key: &str| {
            render::shipped_str(&base, "hypervisor.qemu", key)
                .map_err(|e| format!("{}: {e}", base_path.display()))
        };
        let mut changes = vec![Condition::SerialConsole, Condition::DebugConsole];
        let nested_tcg = host.node == NodeKind::VmGuest { vm_under_tcg: true };
        if let Some(why) = &host.no_kvm {
            changes.push(Condition::Tcg {
                why: why.clone(),
                dial_timeout_s: if nested_tcg {
                    render::NESTED_TCG_DIAL_TIMEOUT_S
                } else {
                    render::TCG_DIAL_TIMEOUT_S
                },
            });
            if matches!(host.node, NodeKind::VmGuest { .. }) {
                changes.push(Condition::KvmDeviceNode);
            }
        }
        let accel = if host.no_kvm.is_some() { "tcg" } else { "kvm" };
        let named_qemu =
            PathBuf::from(shipped("path")?.unwrap_or_else(|| format!("{NODE_DIR}/bin/qemu-system-x86_64")));
        let layout_qemu = layout.on_host(&named_qemu);
        let usable = match layout_qemu.exists() {
            true => offers(&layout_qemu, accel)
                .map_err(|e| format!("the layout's QEMU {} is {e}", named_qemu.display())),
            false => Err(format!("this layout ships no QEMU ({})", named_qemu.display())),
        };
        let qemu = match usable {
            Ok(()) => named_qemu,
            Err(why) => {
                let host_qemu = host
                    .qemu
                    .clone()
                    .ok_or_else(|| format!("{why}, and this host has no qemu-system-x86_64 on PATH"))?;
                // A guest's QEMU is asked in the guest, when Kata is installed there.
                if host.node == NodeKind::Local {
                    offers(&host_qemu, accel)
                        .map_err(|e| format!("{why}, and the host's {}: {e}", host_qemu.display()))?;
                }
                changes.push(Condition::HostQemu {
                    why,
                    qemu: host_qemu.clone(),
                });
                host_qemu
            }
        };
        if !host.vhost_vsock {
            if layout.vsock_daemon().is_none() || !layout.shim_supports_hybrid_vsock(runtime) {
                return Err(format!(
                    "this host has no /dev/vhost-vsock, and the {} of {} has no user-space vsock \
                     support (libexec/vhost-device-vsock and a shim with hybrid_vsock_daemon: {})",
                    runtime.name(),
                    layout.describe(),
                    match runtime {
                        KataRuntime::Go => "scripts/build-kata",
                        KataRuntime::Rust => "scripts/build-kata-rs",
                    }
                ));
            }
            changes.push(Condition::UserSpaceVsock);
        }
        if !host.vhost_net {
            changes.push(Condition::NoVhostNet);
        }
        // runtime-rs starts virtiofsd without --syslog.
        if !host.syslog && runtime == KataRuntime::Go {
            changes.push(Condition::NoSyslog);
        }
        let named_root = match (shipped("initrd")?, shipped("image")?) {
            (Some(initrd), _) if !initrd.is_empty() => GuestRoot::Initrd(initrd.into()),
            (_, Some(image)) if !image.is_empty() => GuestRoot::Image(image.into()),
            _ => return Err(format!("{} names no guest image or initrd", base_path.display())),
        };
        let root = if layout.on_host(named_root.path()).exists() {
            named_root
        } else {
            let shipped = match (layout.initrd(), layout.image()) {
                (Some(initrd), _) => GuestRoot::Initrd(layout.on_node(&initrd)),
                (None, Some(image)) => GuestRoot::Image(layout.on_node(&image)),
                (None, None) => unreachable!("KataLayout::open checked the guest root"),
            };
            changes.push(Condition::GuestRoot {
                named: named_root.path().display().to_string(),
                shipped: shipped.clone(),
            });
            shipped
        };
        let kernel = shipped("kernel")?.map(PathBuf::from).unwrap_or_default();
        if !layout.on_host(&kernel).exists() {
            return Err(format!(
                "{} names the guest kernel {:?}, which {} does not ship",
                base_path.display(),
                kernel,
                layout.describe()
            ));
        }
        let guest = format!(
            "guest: kernel {} ({}), {} {}, from {}",
            kernel.display(),
            kernel_release(&layout.on_host(&kernel)).unwrap_or_else(|| "release unknown".into()),
            match root {
                GuestRoot::Image(_) => "rootfs image",
                GuestRoot::Initrd(_) => "initrd",
            },
            root.path().display(),
            layout.describe()
        );
        let conditions = [
            Some(guest),
            Some(layout.runtime_line(runtime)),
            layout.built(runtime),
        ]
        .into_iter()
        .flatten()
        .chain(changes.iter().map(Condition::line))
        .collect();
        Ok(KataPlan {
            layout,
            runtime,
            host,
            qemu,
            changes,
            conditions,
        })
    }
}

impl KataPlan {
    /// The same layout in one of our VM guests on this host: its VM runs under KVM where
    /// this host's Kata does (one verdict), and the guest has KVM of its own only where this
    /// host's KVM nests.
    pub fn in_vm_guest(&self, nesting: &crate::vm::kvm::Nesting) -> Result<KataPlan, String> {
        let no_kvm = match (&self.host.no_kvm, nesting.vendor()) {
            (Some(why), _) => Some(format!("the VM guest itself runs under TCG: {why}")),
            (None, None) => Some(format!("the VM runs under KVM, but {}", nesting.describe())),
            (None, Some(_)) => None,
        };
        let vm_under_tcg = self.host.no_kvm.is_some();
        KataPlan::new(
            self.layout.clone(),
            KataHost::vm_guest(no_kvm, vm_under_tcg),
            self.runtime,
        )
    }

    /// The accelerator the Kata guest gets.
    pub fn accel(&self) -> &'static str {
        if self.host.no_kvm.is_some() {
            "tcg"
        } else {
            "kvm"
        }
    }

    /// How many times the usual deadlines a node's Kata needs: a Kata guest under TCG inside
    /// a VM that runs under TCG takes minutes to boot (bench/kata-in-guest.json).
    pub fn slowdown(&self) -> u32 {
        match (&self.host.no_kvm, self.host.node) {
            (Some(_), NodeKind::VmGuest { vm_under_tcg: true }) => 8,
            _ => 1,
        }
    }
}

/// `Ok` when `qemu -accel help` lists `accel`; else what it lists, or why it did not answer.
/// A QEMU is never started with an accelerator it was built without (upstream's x86_64 QEMU is
/// configured `--disable-tcg`).
pub fn offers(qemu: &Path, accel: &str) -> Result<(), String> {
    let mut command = Command::new(qemu);
    command.args(["-accel", "help"]);
    let out = crate::process::run(command, QEMU_QUERY_DEADLINE)
        .map_err(|e| format!("-accel help failed: {}", crate::errors::chain_line(&e)))?;
    lists(&String::from_utf8_lossy(&out.stdout), accel)
}

/// `Ok` when the output of `qemu -accel help` lists `accel`.
pub fn lists(accel_help: &str, accel: &str) -> Result<(), String> {
    let listed: Vec<&str> = accel_help
        .lines()
        .skip_while(|l| !l.starts_with("Accelerators supported"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if listed.contains(&accel) {
        Ok(())
    } else {
        Err(format!(
            "built without {accel} (-accel help lists: {})",
            listed.join(", ")
        ))
    }
}

/// The guest kernel's release: the name its `vmlinux.container` link points at (Kata's
/// `vmlinux-<release>`), else the `Linux version` string an uncompressed kernel holds.
fn kernel_release(kernel: &Path) -> Option<String> {
    if let Ok(target) = std::fs::read_link(kernel) {
        let name = target.file_name()?.to_string_lossy().into_owned();
        return Some(
            name.trim_start_matches("vmlinux-")
                .trim_start_matches("vmlinuz-")
                .to_owned(),
        );
    }
    let bytes = std::fs::read(kernel).ok()?;
    let needle = b"Linux version ";
    let at = bytes.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let release = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_graphic())
        .copied()
        .collect();
    String::from_utf8(release).ok()
}

/// The files of one node's Kata install, under `<run dir>/kata/`.
#[derive(Debug, Clone, PartialEq)]
pub struct KataInstall {
    /// The layout's `opt/kata` on this host: the node mounts it at `/opt/kata`, read-only.
    pub layout_dir: PathBuf,
    pub config_path: PathBuf,
    /// Holds the runtime's shim names ([`KataRuntime::shim_names`]): put it first on
    /// containerd's PATH.
    pub bin_dir: PathBuf,
    /// Per sandbox: the guest's serial console and the vsock backend's log.
    pub log_dir: PathBuf,
    pub runtime: KataRuntime,
    /// The command that opens a sandbox's debug console, the sandbox id to follow
    /// (`kata-runtime --config <file> exec`, `kata-ctl exec`), as the node runs it.
    pub guest_exec: String,
    /// The runtime's own check of the host (`kata-runtime --config <file> check`, `kata-ctl
    /// check all`), as the node runs it.
    pub host_check: String,
    /// What the node offered Kata when the harness planned it (KVM, vhost devices).
    pub host: KataHost,
}

/// One file of a node's Kata install: its node path, content, and whether it is a program.
pub struct NodeFile {
    pub path: PathBuf,
    pub content: String,
    pub executable: bool,
}

/// The shim names containerd derives from a runtime's runtime types
/// (`io.containerd.kata-qemu.v2` -> `containerd-shim-kata-qemu-v2`): one binary, a name per
/// handler.
pub fn shim_names(runtime: KataRuntime) -> Vec<String> {
    runtime
        .handlers()
        .iter()
        .map(|handler| format!("containerd-shim-{handler}-v2"))
        .collect()
}

/// What a node's Kata install is made of, under `dir` (a path the node sees): the rendered
/// configuration and the wrappers its conditions call for. The install's `bin_dir` is
/// `dir/bin`, for the shim links.
pub fn node_files(plan: &KataPlan, dir: &Path) -> std::io::Result<(Vec<NodeFile>, KataInstall)> {
    let log_dir = dir.join("logs");
    let layout = &plan.layout;
    let node_files = NodeFiles {
        qemu_wrapper: dir.join("qemu"),
        vsock_wrapper: dir.join("vhost-device-vsock"),
        virtiofsd_wrapper: dir.join("virtiofsd"),
    };
    let script = |path: &Path, content: String| NodeFile {
        path: path.to_owned(),
        content,
        executable: true,
    };
    let tcg = plan.changes.iter().find_map(|c| match c {
        Condition::Tcg { why, .. } => Some(why.as_str()),
        _ => None,
    });
    let mut files = vec![script(
        &node_files.qemu_wrapper,
        render::qemu_wrapper(&plan.qemu, tcg, &log_dir),
    )];
    let base = std::fs::read_to_string(layout.base_config(plan.runtime))?;
    for change in &plan.changes {
        match change {
            Condition::UserSpaceVsock => {
                let daemon = layout.vsock_daemon().expect("KataPlan::new checked the backend");
                files.push(script(
                    &node_files.vsock_wrapper,
                    render::vsock_daemon_wrapper(&layout.on_node(&daemon), &log_dir),
                ));
            }
            Condition::NoSyslog => {
                let named = render::shipped_str(&base, "hypervisor.qemu", "virtio_fs_daemon")
                    .map_err(std::io::Error::other)?
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        layout.on_node(&layout.virtiofsd().expect("KataLayout::open checked virtiofsd"))
                    });
                files.push(script(
                    &node_files.virtiofsd_wrapper,
                    render::virtiofsd_wrapper(&named),
                ));
            }
            _ => {}
        }
    }
    let config_path = dir.join("configuration.toml");
    files.push(NodeFile {
        path: config_path.clone(),
        content: render::configuration(&base, &plan.changes, &node_files, plan.runtime)
            .map_err(std::io::Error::other)?,
        executable: false,
    });
    let tool = layout.on_node(&layout.guest_exec_tool(plan.runtime));
    let guest_exec = match plan.runtime {
        KataRuntime::Go => format!("{} --config {} exec", tool.display(), config_path.display()),
        // kata-ctl finds the sandbox's agent from runtime-rs's state, not a configuration.
        KataRuntime::Rust => format!("{} exec", tool.display()),
    };
    let host_check = match plan.runtime {
        KataRuntime::Go => format!(
            "{} --config {} check --no-network-checks",
            tool.display(),
            config_path.display()
        ),
        // kata-ctl 4.x: `check no-network-checks` runs only the CPU check, and its network
        // checks are empty, so `all` is the whole check and stays offline.
        KataRuntime::Rust => format!("{} check all", tool.display()),
    };
    let install = KataInstall {
        layout_dir: layout.kata_dir(),
        config_path,
        bin_dir: dir.join("bin"),
        log_dir,
        runtime: plan.runtime,
        guest_exec,
        host_check,
        host: plan.host.clone(),
    };
    Ok((files, install))
}

/// The layouts (`opt/kata` dirs) a node mounts at `/opt/kata`, each once, in the order given
/// (the Go runtime's first: its files win where both ship one).
pub fn node_layouts(dirs: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut layouts: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !layouts.contains(&dir) {
            layouts.push(dir);
        }
    }
    layouts
}

/// Writes the configuration, wrappers and shim links for a node that mounts the layout at
/// `/opt/kata` and sees `run_dir` at the same path as this host.
pub fn install_local(plan: &KataPlan, run_dir: &Path) -> std::io::Result<KataInstall> {
    let (files, install) = node_files(plan, &run_dir.join(plan.runtime.install_dir()))?;
    std::fs::create_dir_all(&install.bin_dir)?;
    std::fs::create_dir_all(&install.log_dir)?;
    for file in files {
        if file.executable {
            write_script(&file.path, &file.content)?;
        } else {
            std::fs::write(&file.path, &file.content)?;
        }
    }
    for name in shim_names(plan.runtime) {
        let link = install.bin_dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(plan.layout.on_node(&plan.layout.shim(plan.runtime)), &link)?;
    }
    Ok(install)
}

impl KataInstall {
    /// For a failure bundle: the configuration Kata ran with, and the tails of the newest
    /// sandbox's guest console and vsock backend logs (the sandbox the failed row started
    /// last: rows run one at a time on a testbed), read on `node`.
    pub fn evidence(&self, node: &dyn crate::node::Node) -> Vec<(String, String)> {
        let read = |script: String| {
            node.run(
                &["sh".to_owned(), "-c".to_owned(), script],
                super::NODE_COMMAND_DEADLINE,
            )
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_else(|e| format!("(failed to read: {e})"))
        };
        let prefix = self.runtime.install_dir();
        let mut files = vec![(
            format!("{prefix}-configuration.toml"),
            read(format!("cat '{}'", self.config_path.display())),
        )];
        for prefix in ["guest-console.", "vhost-device-vsock."] {
            let newest = read(format!(
                "ls -t '{}' 2>/dev/null | grep '^{prefix}' | head -n 1",
                self.log_dir.display()
            ));
            let name = newest.trim();
            if !name.is_empty() && !name.starts_with("(failed") {
                files.push((
                    format!("{prefix}-{name}.tail"),
                    read(format!("tail -n 300 '{}/{name}'", self.log_dir.display())),
                ));
            }
        }
        files
    }
}

/// Points the handlers of `install`'s runtime ([`KataRuntime::of_runtime_type`]) at its
/// configuration.
pub fn use_config(handlers: &mut [RuntimeHandler], install: &KataInstall) {
    for handler in handlers
        .iter_mut()
        .filter(|h| KataRuntime::of_runtime_type(&h.runtime_type) == Some(install.runtime))
    {
        handler.options.config_path = Some(install.config_path.clone());
    }
}

fn write_script(path: &Path, text: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::artifacts::kata::KataSource;

    /// The configuration Kata 3.30.0 ships (`make PREFIX=/opt/kata`).
    const SHIPPED: &str = include_str!("../render/testdata/configuration-qemu-3.30.0.toml");

    /// A QEMU that lists `accels` under `-accel help` and, started any other way, leaves a
    /// `started` file beside itself.
    fn fake_qemu(path: &Path, accels: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let started = path.with_file_name("started");
        std::fs::write(
            path,
            format!(
                "#!/bin/sh\nif [ \"$1 $2\" = '-accel help' ]; then printf 'Accelerators supported in QEMU binary:\\n{}\\n'; exit 0; fi\necho \"$@\" > {}\n",
                accels.replace(',', "\\n"),
                started.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    struct Packed {
        shim: &'static [u8],
        vsock_daemon: bool,
        /// The `-accel help` list of a QEMU in the layout, if it ships one.
        qemu: Option<&'static str>,
        /// Ships the image the configuration names (upstream), else only an initrd (our build).
        image: bool,
    }

    /// A layout packed as upstream packs kata-static, with upstream's configuration.
    fn layout(dir: &Path, packed: Packed) -> KataLayout {
        let k = dir.join("opt/kata");
        let guest_root = if packed.image {
            "share/kata-containers/kata-containers.img"
        } else {
            "share/kata-containers/kata-containers-initrd.img"
        };
        let files: [(&str, &[u8]); 5] = [
            ("bin/containerd-shim-kata-v2", packed.shim),
            (
                "share/defaults/kata-containers/configuration-qemu.toml",
                SHIPPED.as_bytes(),
            ),
            (guest_root, b"x"),
            ("share/kata-containers/vmlinux-6.12.47-166", b"x"),
            ("libexec/virtiofsd", b"x"),
        ];
        for (rel, content) in files {
            std::fs::create_dir_all(k.join(rel).parent().unwrap()).unwrap();
            std::fs::write(k.join(rel), content).unwrap();
        }
        std::os::unix::fs::symlink(
            "vmlinux-6.12.47-166",
            k.join("share/kata-containers/vmlinux.container"),
        )
        .unwrap();
        if packed.vsock_daemon {
            std::fs::write(k.join("libexec/vhost-device-vsock"), "x").unwrap();
        }
        if let Some(accels) = packed.qemu {
            fake_qemu(&k.join("bin/qemu-system-x86_64"), accels);
        }
        KataLayout::open(dir, KataSource::SourceBuild).unwrap()
    }

    fn upstream() -> Packed {
        Packed {
            shim: b"an upstream shim",
            vsock_daemon: false,
            qemu: Some("kvm"),
            image: true,
        }
    }

    fn source_build() -> Packed {
        Packed {
            shim: b"...hybrid_vsock_daemon...",
            vsock_daemon: true,
            qemu: None,
            image: false,
        }
    }

    /// This machine: a /dev/kvm that cannot run a guest, no vhost_vsock, vhost-net or syslog.
    fn this_host(qemu: &Path) -> KataHost {
        KataHost {
            no_kvm: Some("probe boot did not reach userspace".into()),
            vhost_vsock: false,
            vhost_net: false,
            syslog: false,
            qemu: Some(qemu.to_owned()),
            node: NodeKind::Local,
        }
    }

    fn kvm_host(qemu: &Path) -> KataHost {
        KataHost {
            no_kvm: None,
            vhost_vsock: true,
            vhost_net: true,
            syslog: true,
            qemu: Some(qemu.to_owned()),
            node: NodeKind::Local,
        }
    }

    /// Installs `plan` into a run dir: (rendered configuration, that dir).
    fn install(plan: &KataPlan) -> (String, KataInstall, tempfile::TempDir) {
        let run = tempfile::tempdir().unwrap();
        let install = install_local(plan, run.path()).unwrap();
        let config = std::fs::read_to_string(&install.config_path).unwrap();
        (config, install, run)
    }

    fn kinds(plan: &KataPlan) -> Vec<&'static str> {
        plan.changes
            .iter()
            .map(|c| match c {
                Condition::SerialConsole => "serial console",
                Condition::DebugConsole => "debug console",
                Condition::Tcg { .. } => "TCG",
                Condition::HostQemu { .. } => "host QEMU",
                Condition::UserSpaceVsock => "user-space vsock",
                Condition::NoVhostNet => "no vhost-net",
                Condition::NoSyslog => "no syslog",
                Condition::GuestRoot { .. } => "guest root",
                Condition::KvmDeviceNode => "/dev/kvm node",
            })
            .collect()
    }

    /// The keys the rendered file changes are exactly those `plan`'s conditions name.
    fn assert_only_declared_changes(plan: &KataPlan, config: &str, run: &Path) {
        let files = NodeFiles {
            qemu_wrapper: run.join("kata/qemu"),
            vsock_wrapper: run.join("kata/vhost-device-vsock"),
            virtiofsd_wrapper: run.join("kata/virtiofsd"),
        };
        let declared: BTreeSet<String> = plan
            .changes
            .iter()
            .flat_map(|c| c.keys(&files, plan.runtime))
            .collect();
        assert_eq!(render::changed_keys(SHIPPED, config).unwrap(), declared);
    }

    #[test]
    fn on_a_kvm_host_upstreams_release_differs_only_in_what_observation_needs() {
        let dir = tempfile::tempdir().unwrap();
        let host_qemu = dir.path().join("host/qemu-system-x86_64");
        fake_qemu(&host_qemu, "tcg,kvm");
        let plan = KataPlan::new(
            layout(dir.path(), upstream()),
            kvm_host(&host_qemu),
            KataRuntime::Go,
        )
        .unwrap();
        assert!(
            plan.changes.iter().all(Condition::is_observation),
            "{:?}",
            plan.changes
        );
        assert_eq!(kinds(&plan), ["serial console", "debug console"]);
        assert_eq!(
            plan.qemu,
            Path::new("/opt/kata/bin/qemu-system-x86_64"),
            "the release's own QEMU"
        );
        let (config, install, run) = install(&plan);
        assert_only_declared_changes(&plan, &config, run.path());
        let wrapper = std::fs::read_to_string(run.path().join("kata/qemu")).unwrap();
        assert!(
            wrapper.contains("exec /opt/kata/bin/qemu-system-x86_64 "),
            "{wrapper}"
        );
        assert!(!wrapper.contains("accel=tcg"), "{wrapper}");
        assert!(!run.path().join("kata/vhost-device-vsock").exists());
        assert_eq!(
            std::fs::read_link(install.bin_dir.join("containerd-shim-kata-qemu-v2")).unwrap(),
            Path::new("/opt/kata/bin/containerd-shim-kata-v2")
        );
        assert_eq!(install.layout_dir, plan.layout.kata_dir());
        assert_eq!(
            plan.conditions[0],
            format!(
                "guest: kernel /opt/kata/share/kata-containers/vmlinux.container (6.12.47-166), rootfs image /opt/kata/share/kata-containers/kata-containers.img, from {}",
                plan.layout.describe()
            )
        );
    }

    #[test]
    fn on_this_host_the_build_adds_tcg_the_host_qemu_and_the_user_space_vsock() {
        let dir = tempfile::tempdir().unwrap();
        let host_qemu = dir.path().join("host/qemu-system-x86_64");
        fake_qemu(&host_qemu, "tcg,kvm");
        let plan = KataPlan::new(
            layout(dir.path(), source_build()),
            this_host(&host_qemu),
            KataRuntime::Go,
        )
        .unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "serial console",
                "debug console",
                "TCG",
                "host QEMU",
                "user-space vsock",
                "no vhost-net",
                "no syslog",
                "guest root"
            ]
        );
        let (config, _, run) = install(&plan);
        assert_only_declared_changes(&plan, &config, run.path());
        let kata = run.path().join("kata");
        let wrapper = std::fs::read_to_string(kata.join("qemu")).unwrap();
        assert!(wrapper.contains("accel=tcg"), "{wrapper}");
        assert!(
            wrapper.contains(&format!("exec {} ", host_qemu.display())),
            "{wrapper}"
        );
        let vsock = std::fs::read_to_string(kata.join("vhost-device-vsock")).unwrap();
        assert!(
            vsock.contains("exec /opt/kata/libexec/vhost-device-vsock "),
            "{vsock}"
        );
        let virtiofsd = std::fs::read_to_string(kata.join("virtiofsd")).unwrap();
        assert!(
            virtiofsd.contains("exec /opt/kata/libexec/virtiofsd "),
            "{virtiofsd}"
        );
        assert!(config.contains("initrd = \"/opt/kata/share/kata-containers/kata-containers-initrd.img\""));
        let lines = plan.conditions.join("\n");
        for said in ["TCG:", "user-space vsock:", "serial console:", "guest root:"] {
            assert!(lines.contains(said), "{said} in {lines}");
        }
    }

    /// The layout in a VM guest: the guest's kernel vsock (no user-space backend), the
    /// guest's QEMU where the layout ships none, and TCG with what it needs where the guest
    /// has no KVM of its own.
    #[test]
    fn in_a_vm_guest_kata_gets_the_guests_kvm_only_where_this_host_nests() {
        use crate::vm::kvm::{Nesting, Vendor};
        let dir = tempfile::tempdir().unwrap();
        let host_qemu = dir.path().join("host/qemu-system-x86_64");
        fake_qemu(&host_qemu, "tcg,kvm");
        let nesting_on = Nesting::On {
            vendor: Vendor::Intel,
        };
        let nesting_off = Nesting::Off {
            path: "/sys/module/kvm_intel/parameters/nested".into(),
            value: "N".into(),
        };
        let guest_kinds = [
            "serial console",
            "debug console",
            "TCG",
            "/dev/kvm node",
            "host QEMU",
            "guest root",
        ];
        let dial_timeout = |plan: &KataPlan| {
            plan.changes.iter().find_map(|c| match c {
                Condition::Tcg { dial_timeout_s, .. } => Some(*dial_timeout_s),
                _ => None,
            })
        };

        // This host: the VM runs under TCG, so Kata's guest is TCG inside TCG.
        let here = KataPlan::new(
            layout(dir.path(), source_build()),
            this_host(&host_qemu),
            KataRuntime::Go,
        )
        .unwrap();
        let guest = here.in_vm_guest(&nesting_on).unwrap();
        assert_eq!(kinds(&guest), guest_kinds);
        assert_eq!(guest.qemu, Path::new(GUEST_QEMU));
        assert_eq!(guest.accel(), "tcg");
        assert_eq!(dial_timeout(&guest), Some(render::NESTED_TCG_DIAL_TIMEOUT_S));
        assert_eq!(guest.slowdown(), 8);
        assert!(
            guest
                .conditions
                .join("\n")
                .contains("the VM guest itself runs under TCG: probe boot did not reach userspace"),
            "{:?}",
            guest.conditions
        );

        // A KVM host without nesting: the VM is fast, Kata's guest in it is plain TCG.
        let kvm_dir = tempfile::tempdir().unwrap();
        let kvm = KataPlan::new(
            layout(kvm_dir.path(), source_build()),
            kvm_host(&host_qemu),
            KataRuntime::Go,
        )
        .unwrap();
        let guest = kvm.in_vm_guest(&nesting_off).unwrap();
        assert_eq!(kinds(&guest), guest_kinds);
        assert_eq!(dial_timeout(&guest), Some(render::TCG_DIAL_TIMEOUT_S));
        assert_eq!(guest.slowdown(), 1);
        assert!(
            guest.conditions.join("\n").contains(
                "nested virtualization is off on this host (/sys/module/kvm_intel/parameters/nested = N)"
            ),
            "{:?}",
            guest.conditions
        );

        // A KVM host that nests: the guest's own KVM, nothing but what observation needs and
        // the layout's own gaps.
        let guest = kvm.in_vm_guest(&nesting_on).unwrap();
        assert_eq!(
            kinds(&guest),
            ["serial console", "debug console", "host QEMU", "guest root"]
        );
        assert_eq!(guest.accel(), "kvm");
        assert_eq!(guest.slowdown(), 1);
    }

    #[test]
    fn a_qemu_without_tcg_is_never_started_with_tcg() {
        let dir = tempfile::tempdir().unwrap();
        let host_qemu = dir.path().join("host/qemu-system-x86_64");
        fake_qemu(&host_qemu, "tcg,kvm");
        let packed = Packed {
            qemu: Some("kvm"),
            ..source_build()
        };
        let plan = KataPlan::new(layout(dir.path(), packed), this_host(&host_qemu), KataRuntime::Go).unwrap();
        assert_eq!(plan.qemu, host_qemu);
        let why = plan.conditions.join("\n");
        assert!(
            why.contains("the layout's QEMU /opt/kata/bin/qemu-system-x86_64 is built without tcg (-accel help lists: kvm)"),
            "{why}"
        );
        // Run the wrapper as Kata would: the host's QEMU starts, the layout's never does.
        let (_, _, run) = install(&plan);
        let out = Command::new("bash")
            .arg(run.path().join("kata/qemu"))
            .args(["-name", "sandbox-x", "-machine", "q35,accel=kvm", "-cpu", "host"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let started = std::fs::read_to_string(host_qemu.with_file_name("started")).unwrap();
        assert!(started.contains("accel=tcg"), "{started}");
        assert!(!plan.layout.kata_dir().join("bin/started").exists());

        // No QEMU with TCG at all: Kata cannot run, and says why.
        let no_tcg = dir.path().join("kvm-only/qemu-system-x86_64");
        fake_qemu(&no_tcg, "kvm");
        let dir2 = tempfile::tempdir().unwrap();
        let layout2 = layout(
            dir2.path(),
            Packed {
                qemu: Some("kvm"),
                ..source_build()
            },
        );
        let why = KataPlan::new(layout2, this_host(&no_tcg), KataRuntime::Go).unwrap_err();
        assert!(
            why.contains("built without tcg") && why.contains(&no_tcg.display().to_string()),
            "{why}"
        );
    }

    #[test]
    fn a_host_without_vhost_vsock_needs_the_patched_shim_and_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let host_qemu = dir.path().join("host/qemu-system-x86_64");
        fake_qemu(&host_qemu, "tcg");
        let unpatched = Packed {
            shim: b"an upstream shim",
            ..source_build()
        };
        let why = KataPlan::new(
            layout(dir.path(), unpatched),
            this_host(&host_qemu),
            KataRuntime::Go,
        )
        .unwrap_err();
        assert!(why.contains("no /dev/vhost-vsock"), "{why}");
    }

    #[test]
    fn the_kernel_release_comes_from_the_link_or_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(
            &kernel,
            b"\x7fELF...Linux version 6.1.0-50-amd64 (debian-kernel@lists)",
        )
        .unwrap();
        assert_eq!(kernel_release(&kernel).as_deref(), Some("6.1.0-50-amd64"));
        std::fs::write(dir.path().join("blob"), b"no version here").unwrap();
        assert_eq!(kernel_release(&dir.path().join("blob")), None);
    }
}
