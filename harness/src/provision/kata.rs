//! Installing Kata on a node: which way Kata can run on this host, and the files that wire a
//! layout into containerd (a rendered configuration, the shim names containerd looks up, and
//! the wrappers a host without KVM or syslog needs).
//!
//! Invariant: every way this host makes Kata run differently from a KVM host with
//! vhost_vsock (TCG, a user-space vsock, no vhost-net) is a [`KataPlan::conditions`] line, and
//! those lines are reported on every Kata row.

use std::path::{Path, PathBuf};

use crate::artifacts::kata::KataLayout;
use crate::render::kata::{self as render, KataNodeConfig};
use crate::render::RuntimeHandler;

/// What this host offers Kata.
#[derive(Debug, Clone, PartialEq)]
pub struct KataHost {
    /// `None` when KVM was proven usable by a probe boot; else why not.
    pub no_kvm: Option<String>,
    pub vhost_vsock: bool,
    pub vhost_net: bool,
    pub syslog: bool,
    pub qemu: Option<PathBuf>,
}

impl KataHost {
    /// `no_kvm`: the KVM verdict (`None` when a probe boot proved KVM usable).
    pub fn probe(no_kvm: Option<String>) -> Self {
        KataHost {
            no_kvm,
            vhost_vsock: Path::new("/dev/vhost-vsock").exists(),
            vhost_net: Path::new("/dev/vhost-net").exists(),
            syslog: Path::new("/dev/log").exists(),
            qemu: crate::process::find_on_path("qemu-system-x86_64"),
        }
    }
}

/// How Kata will run on this host, decided before any row runs.
#[derive(Debug, Clone, PartialEq)]
pub struct KataPlan {
    pub layout: KataLayout,
    pub host: KataHost,
    pub qemu: PathBuf,
    /// How this differs from a KVM host with vhost_vsock (reported on every Kata row).
    pub conditions: Vec<String>,
}

impl KataPlan {
    /// `Err(reason)` when Kata cannot run here at all (the Kata rows are skipped with it).
    pub fn new(layout: KataLayout, host: KataHost) -> Result<Self, String> {
        let bundled = layout.kata_dir().join("bin/qemu-system-x86_64");
        let qemu = Some(bundled)
            .filter(|q| q.exists())
            .or_else(|| host.qemu.clone())
            .ok_or("no qemu-system-x86_64 (neither in the Kata layout nor on PATH)")?;
        let mut conditions = vec![layout.describe()];
        if let Some(why) = &host.no_kvm {
            conditions.push(format!("Kata guest under TCG, not KVM ({why})"));
        }
        if !host.vhost_vsock {
            if layout.vsock_daemon().is_none() || !layout.shim_supports_hybrid_vsock() {
                return Err(format!(
                    "this host has no /dev/vhost-vsock, and {} has no user-space vsock support \
                     (libexec/vhost-device-vsock and a shim with hybrid_vsock_daemon: scripts/build-kata)",
                    layout.describe()
                ));
            }
            conditions.push("agent channel over a user-space vsock (vhost-device-vsock; no vhost_vsock in this host's kernel)".into());
        }
        if !host.vhost_net {
            conditions.push("no vhost-net (virtio-net in QEMU)".into());
        }
        Ok(KataPlan {
            layout,
            host,
            qemu,
            conditions,
        })
    }
}

/// The files of one node's Kata install, under `<run dir>/kata/`.
#[derive(Debug, Clone, PartialEq)]
pub struct KataInstall {
    pub config_path: PathBuf,
    /// Holds `containerd-shim-kata-v2` and `containerd-shim-kata-qemu-v2`: put it first on
    /// containerd's PATH.
    pub bin_dir: PathBuf,
    /// Per sandbox: the guest's serial console and the vsock backend's log.
    pub log_dir: PathBuf,
    pub kata_runtime: PathBuf,
}

/// Writes the configuration, wrappers and shim links for a node whose paths are as on this
/// host (the local target).
pub fn install_local(plan: &KataPlan, run_dir: &Path) -> std::io::Result<KataInstall> {
    let dir = run_dir.join("kata");
    let bin_dir = dir.join("bin");
    let log_dir = dir.join("logs");
    std::fs::create_dir_all(&bin_dir)?;
    std::fs::create_dir_all(&log_dir)?;
    let layout = &plan.layout;
    let hypervisor = write_script(
        &dir.join("qemu"),
        &render::qemu_wrapper(&plan.qemu, plan.host.no_kvm.as_deref(), &log_dir),
    )?;
    let hybrid_vsock_daemon = match layout.vsock_daemon().filter(|_| !plan.host.vhost_vsock) {
        Some(daemon) => Some(write_script(
            &dir.join("vhost-device-vsock"),
            &render::vsock_daemon_wrapper(&daemon, &log_dir),
        )?),
        None => None,
    };
    let virtiofsd = layout.virtiofsd().expect("KataLayout::open checked virtiofsd");
    let virtiofsd = if plan.host.syslog {
        virtiofsd
    } else {
        write_script(&dir.join("virtiofsd"), &render::virtiofsd_wrapper(&virtiofsd))?
    };
    let node = KataNodeConfig {
        hypervisor,
        kernel: layout.kernel().expect("KataLayout::open checked the kernel"),
        initrd: layout.initrd(),
        image: layout.image(),
        virtiofsd,
        hybrid_vsock_daemon,
        disable_vhost_net: !plan.host.vhost_net,
        memory_mib: 1024,
        // Under TCG a guest boots in seconds when the machine is idle, tens when it is not;
        // below the CRI call deadline (120 s), so a stuck agent channel fails with Kata's
        // own error rather than a CRI timeout.
        dial_timeout_s: if plan.host.no_kvm.is_some() { 90 } else { 45 },
        debug_console: true,
        disable_guest_seccomp: true,
        // Off: containerd (at info level) drops the shim's debug lines anyway.
        runtime_debug: false,
    };
    let base = std::fs::read_to_string(layout.base_config())?;
    let text = render::configuration(&base, &node).map_err(std::io::Error::other)?;
    let config_path = dir.join("configuration.toml");
    std::fs::write(&config_path, text)?;
    // containerd derives the shim's name from the runtime type: one binary, two names.
    for name in ["containerd-shim-kata-v2", "containerd-shim-kata-qemu-v2"] {
        let link = bin_dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(layout.shim(), &link)?;
    }
    Ok(KataInstall {
        config_path,
        bin_dir,
        log_dir,
        kata_runtime: layout.kata_runtime(),
    })
}

impl KataInstall {
    /// For a failure bundle: the configuration Kata ran with, and the tails of the newest
    /// sandbox's guest console and vsock backend logs (the sandbox the failed row started
    /// last: rows run one at a time on a testbed).
    pub fn evidence(&self) -> Vec<(String, String)> {
        let mut files = vec![(
            "kata-configuration.toml".to_owned(),
            std::fs::read_to_string(&self.config_path).unwrap_or_default(),
        )];
        for prefix in ["guest-console.", "vhost-device-vsock."] {
            if let Some(log) = newest_with_prefix(&self.log_dir, prefix) {
                let name = log.file_name().unwrap_or_default().to_string_lossy();
                files.push((
                    format!("kata-{name}.tail"),
                    crate::process::tail_of_file(&log, 300),
                ));
            }
        }
        files
    }
}

fn newest_with_prefix(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, path)| path)
}

/// Points the Kata handlers (`io.containerd.kata*`) at this node's configuration.
pub fn use_config(handlers: &mut [RuntimeHandler], config: &Path) {
    for handler in handlers
        .iter_mut()
        .filter(|h| h.runtime_type.starts_with("io.containerd.kata"))
    {
        handler.options.config_path = Some(config.to_owned());
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
    use super::*;
    use crate::artifacts::kata::KataSource;

    fn layout(dir: &Path, shim: &[u8], vsock_daemon: bool) -> KataLayout {
        let k = dir.join("opt/kata");
        let files: [(&str, &[u8]); 5] = [
            ("bin/containerd-shim-kata-v2", shim),
            (
                "share/defaults/kata-containers/configuration-qemu.toml",
                b"[hypervisor.qemu]\n[agent.kata]\n[runtime]\n",
            ),
            ("share/kata-containers/kata-containers-initrd.img", b"x"),
            ("share/kata-containers/vmlinux.container", b"x"),
            ("libexec/virtiofsd", b"x"),
        ];
        for (rel, content) in files {
            std::fs::create_dir_all(k.join(rel).parent().unwrap()).unwrap();
            std::fs::write(k.join(rel), content).unwrap();
        }
        if vsock_daemon {
            std::fs::write(k.join("libexec/vhost-device-vsock"), "x").unwrap();
        }
        KataLayout::open(dir, KataSource::SourceBuild).unwrap()
    }

    fn this_host() -> KataHost {
        KataHost {
            no_kvm: Some("probe boot did not reach userspace".into()),
            vhost_vsock: false,
            vhost_net: false,
            syslog: false,
            qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        }
    }

    #[test]
    fn a_host_without_vhost_vsock_needs_the_patched_shim_and_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = layout(dir.path(), b"an upstream shim", true);
        let why = KataPlan::new(upstream, this_host()).unwrap_err();
        assert!(why.contains("no /dev/vhost-vsock"), "{why}");

        let dir = tempfile::tempdir().unwrap();
        let patched = layout(dir.path(), b"...hybrid_vsock_daemon...", true);
        let plan = KataPlan::new(patched, this_host()).unwrap();
        let conditions = plan.conditions.join("\n");
        assert!(conditions.contains("under TCG"), "{conditions}");
        assert!(conditions.contains("user-space vsock"), "{conditions}");
    }

    #[test]
    fn a_kvm_host_with_vhost_vsock_runs_upstream_kata_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let host = KataHost {
            no_kvm: None,
            vhost_vsock: true,
            vhost_net: true,
            syslog: true,
            ..this_host()
        };
        let plan = KataPlan::new(layout(dir.path(), b"upstream", false), host).unwrap();
        assert_eq!(
            plan.conditions.len(),
            1,
            "only the layout line: {:?}",
            plan.conditions
        );
        let run = tempfile::tempdir().unwrap();
        let install = install_local(&plan, run.path()).unwrap();
        let config = std::fs::read_to_string(&install.config_path).unwrap();
        let wrapper = std::fs::read_to_string(run.path().join("kata/qemu")).unwrap();
        assert!(wrapper.contains("exec /usr/bin/qemu-system-x86_64 "), "{wrapper}");
        assert!(
            !wrapper.contains("accel=tcg"),
            "a KVM host runs QEMU with KVM: {wrapper}"
        );
        assert!(!config.contains("hybrid_vsock_daemon"), "{config}");
        assert!(!run.path().join("kata/vhost-device-vsock").exists());
        let shim = std::fs::read_link(install.bin_dir.join("containerd-shim-kata-qemu-v2")).unwrap();
        assert_eq!(shim, plan.layout.shim());
    }

    #[test]
    fn this_host_gets_the_tcg_vsock_and_virtiofsd_wrappers() {
        let dir = tempfile::tempdir().unwrap();
        let plan = KataPlan::new(layout(dir.path(), b"hybrid_vsock_daemon", true), this_host()).unwrap();
        let run = tempfile::tempdir().unwrap();
        let install = install_local(&plan, run.path()).unwrap();
        let config = std::fs::read_to_string(&install.config_path).unwrap();
        let kata = run.path().join("kata");
        assert!(
            config.contains(&format!("path = \"{}\"", kata.join("qemu").display())),
            "{config}"
        );
        let wrapper = std::fs::read_to_string(kata.join("qemu")).unwrap();
        assert!(wrapper.contains("accel=tcg"), "{wrapper}");
        assert!(config.contains(&format!(
            "hybrid_vsock_daemon = \"{}\"",
            kata.join("vhost-device-vsock").display()
        )));
        assert!(install.log_dir.is_dir());
        assert!(config.contains(&format!(
            "virtio_fs_daemon = \"{}\"",
            run.path().join("kata/virtiofsd").display()
        )));
    }
}
