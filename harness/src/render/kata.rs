//! Kata's `configuration.toml` for one node, and the small wrappers a host may need.
//!
//! The configuration starts from the layout's own `configuration-qemu.toml` (so every default
//! of that Kata version stays as upstream ships it) and sets only what the node decides: the
//! layout's paths, the hypervisor path, the agent channel, and the knobs a host without KVM,
//! vhost-net, vhost-vsock or syslog needs. Each such knob is a fact the reports repeat.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KataRenderError {
    #[error("the layout's configuration-qemu.toml does not parse: {0}")]
    BaseConfig(String),
    #[error("the layout's configuration has no [{0}] table")]
    MissingTable(&'static str),
}

/// What this node's Kata configuration decides.
#[derive(Debug, Clone, PartialEq)]
pub struct KataNodeConfig {
    /// QEMU, or the TCG wrapper around it.
    pub hypervisor: PathBuf,
    pub kernel: PathBuf,
    /// The guest root: an initrd (our build) or a rootfs image (upstream releases).
    pub initrd: Option<PathBuf>,
    pub image: Option<PathBuf>,
    pub virtiofsd: PathBuf,
    /// A user-space vhost-user-vsock backend, for hosts without `/dev/vhost-vsock`.
    pub hybrid_vsock_daemon: Option<PathBuf>,
    /// No `/dev/vhost-net` on the host.
    pub disable_vhost_net: bool,
    pub memory_mib: i64,
    /// Seconds the shim waits for the agent (a TCG guest boots slower).
    pub dial_timeout_s: i64,
    /// The agent's debug console (`kata-runtime exec`, the "getting into the VM" rows).
    pub debug_console: bool,
    /// The agent was built without seccomp support.
    pub disable_guest_seccomp: bool,
    /// The shim logs at debug level (into containerd's log, and so into failure bundles).
    pub runtime_debug: bool,
}

/// The layout's base configuration with this node's settings applied.
pub fn configuration(base: &str, node: &KataNodeConfig) -> Result<String, KataRenderError> {
    let mut doc: Table = base
        .parse()
        .map_err(|e: toml::de::Error| KataRenderError::BaseConfig(e.message().to_owned()))?;
    let path = |p: &Path| Value::String(p.to_string_lossy().into_owned());
    let paths = |p: &Path| Value::Array(vec![path(p)]);

    let qemu =
        table(&mut doc, &["hypervisor", "qemu"]).ok_or(KataRenderError::MissingTable("hypervisor.qemu"))?;
    qemu.insert("path".into(), path(&node.hypervisor));
    qemu.insert("valid_hypervisor_paths".into(), paths(&node.hypervisor));
    qemu.insert("kernel".into(), path(&node.kernel));
    // Kata refuses a configuration that names both an initrd and an image.
    qemu.remove("image");
    qemu.remove("initrd");
    if let Some(initrd) = &node.initrd {
        qemu.insert("initrd".into(), path(initrd));
    } else if let Some(image) = &node.image {
        qemu.insert("image".into(), path(image));
    }
    qemu.insert("shared_fs".into(), Value::String("virtio-fs".into()));
    qemu.insert("virtio_fs_daemon".into(), path(&node.virtiofsd));
    qemu.insert("valid_virtio_fs_daemon_paths".into(), paths(&node.virtiofsd));
    qemu.insert("default_memory".into(), Value::Integer(node.memory_mib));
    qemu.insert("disable_vhost_net".into(), Value::Boolean(node.disable_vhost_net));
    if let Some(daemon) = &node.hybrid_vsock_daemon {
        qemu.insert("hybrid_vsock_daemon".into(), path(daemon));
        // vhost-user devices need guest memory that QEMU shares with the backend.
        qemu.insert("file_mem_backend".into(), Value::String("/dev/shm".into()));
        qemu.insert(
            "valid_file_mem_backends".into(),
            Value::Array(vec![Value::String("/dev/shm".into())]),
        );
    }

    let agent = table(&mut doc, &["agent", "kata"]).ok_or(KataRenderError::MissingTable("agent.kata"))?;
    agent.insert("dial_timeout".into(), Value::Integer(node.dial_timeout_s));
    agent.insert("debug_console_enabled".into(), Value::Boolean(node.debug_console));

    let runtime = table(&mut doc, &["runtime"]).ok_or(KataRenderError::MissingTable("runtime"))?;
    runtime.insert(
        "disable_guest_seccomp".into(),
        Value::Boolean(node.disable_guest_seccomp),
    );
    runtime.insert("enable_debug".into(), Value::Boolean(node.runtime_debug));

    Ok(format!(
        "# Rendered by kata-harness for this node from the layout's configuration-qemu.toml.\n{}",
        toml::to_string(&doc).expect("a parsed TOML table serializes")
    ))
}

fn table<'a>(doc: &'a mut Table, keys: &[&str]) -> Option<&'a mut Table> {
    let mut current = doc;
    for key in keys {
        current = current.get_mut(*key)?.as_table_mut()?;
    }
    Some(current)
}

/// The hypervisor `path`: QEMU as this node runs it.
///
/// With `no_kvm` (why this host has no usable KVM) it runs under TCG: Kata's configuration has
/// no TCG switch, so this rewrites what Kata passes for KVM (`accel=kvm`, `-cpu host`, the KVM
/// PIT). Always, the guest gets a serial console written to
/// `<log_dir>/guest-console.<sandbox id>.log`, the last `console=` so the agent's own log goes
/// there too: Kata's console is a socket that only a debug shim reads, and a sandbox whose
/// agent never answers leaves no other trace of what its guest did.
pub fn qemu_wrapper(qemu: &Path, no_kvm: Option<&str>, log_dir: &Path) -> String {
    let (headline, tcg_cases) = match no_kvm {
        Some(reason) => (
            format!("under TCG. This host has no usable KVM ({reason})."),
            r#"        -machine) args+=("$1" "${2//accel=kvm/accel=tcg}"); shift 2 ;;
        -cpu) args+=("$1" "${2/#host/max}"); shift 2 ;;
        -global) [[ $2 == kvm-* ]] || args+=("$1" "$2"); shift 2 ;;
        -enable-kvm) shift ;;
"#,
        ),
        None => ("with KVM.".to_owned(), ""),
    };
    format!(
        r#"#!/bin/bash
# kata-harness: Kata's QEMU {headline}
# The guest's serial console (kernel and agent log) goes to a file per sandbox.
args=()
sandbox=unnamed
while (($#)); do
    case $1 in
        -name) sandbox=${{2#sandbox-}}; sandbox=${{sandbox%%,*}}; args+=("$1" "$2"); shift 2 ;;
        -append) args+=("$1" "$2 console=ttyS0"); shift 2 ;;
{tcg_cases}        *) args+=("$1"); shift ;;
    esac
done
exec {qemu} "${{args[@]}}" -serial "file:{log_dir}/guest-console.$sandbox.log"
"#,
        qemu = qemu.display(),
        log_dir = log_dir.display(),
    )
}

/// The user-space vsock backend with its log kept, per sandbox, in
/// `<log_dir>/vhost-device-vsock.<sandbox id>.log` (the sandbox id is the directory of the
/// `uds-path` Kata passes): when the agent channel never comes up, this says whether the
/// backend saw the guest and the shim's CONNECTs.
pub fn vsock_daemon_wrapper(daemon: &Path, log_dir: &Path) -> String {
    format!(
        r#"#!/bin/bash
# kata-harness: vhost-device-vsock, logging to a file per sandbox.
sandbox=unnamed
for a in "$@"; do
    case $a in
        *uds-path=*) uds=${{a##*uds-path=}}; uds=${{uds%%,*}}; sandbox=$(basename "$(dirname "$uds")") ;;
    esac
done
RUST_LOG=${{KATA_HARNESS_VSOCK_LOG:-debug}} exec {daemon} "$@" 2>>"{log_dir}/vhost-device-vsock.$sandbox.log"
"#,
        daemon = daemon.display(),
        log_dir = log_dir.display(),
    )
}

/// virtiofsd without `--syslog`, for hosts with no `/dev/log` (virtiofsd would exit).
pub fn virtiofsd_wrapper(virtiofsd: &Path) -> String {
    format!(
        r#"#!/bin/bash
# kata-harness: this host has no /dev/log; Kata passes --syslog to virtiofsd.
args=()
for a in "$@"; do [[ $a == --syslog ]] || args+=("$a"); done
exec {virtiofsd} "${{args[@]}}"
"#,
        virtiofsd = virtiofsd.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[hypervisor.qemu]
path = "/opt/kata/bin/qemu-system-x86_64"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
image = "/opt/kata/share/kata-containers/kata-containers.img"
machine_type = "q35"
default_memory = 2048
disable_vhost_net = false
file_mem_backend = ""

[agent.kata]
dial_timeout = 45

[runtime]
internetworking_model = "tcfilter"
"#;

    fn node() -> KataNodeConfig {
        KataNodeConfig {
            hypervisor: "/run/kh/kata/qemu-tcg".into(),
            kernel: "/k/vmlinux.container".into(),
            initrd: Some("/k/kata-containers-initrd.img".into()),
            image: None,
            virtiofsd: "/run/kh/kata/virtiofsd".into(),
            hybrid_vsock_daemon: Some("/k/libexec/vhost-device-vsock".into()),
            disable_vhost_net: true,
            memory_mib: 1024,
            dial_timeout_s: 90,
            debug_console: true,
            disable_guest_seccomp: true,
            runtime_debug: true,
        }
    }

    #[test]
    fn the_node_settings_replace_the_layout_defaults_and_keep_the_rest() {
        let text = configuration(BASE, &node()).unwrap();
        let doc: Table = text.parse().unwrap();
        let qemu = doc["hypervisor"]["qemu"].as_table().unwrap();
        assert_eq!(qemu["path"].as_str(), Some("/run/kh/kata/qemu-tcg"));
        assert_eq!(
            qemu["valid_hypervisor_paths"].as_array().unwrap()[0].as_str(),
            Some("/run/kh/kata/qemu-tcg")
        );
        assert_eq!(qemu["initrd"].as_str(), Some("/k/kata-containers-initrd.img"));
        assert!(!qemu.contains_key("image"), "initrd and image are exclusive");
        assert_eq!(
            qemu["hybrid_vsock_daemon"].as_str(),
            Some("/k/libexec/vhost-device-vsock")
        );
        assert_eq!(qemu["file_mem_backend"].as_str(), Some("/dev/shm"));
        assert_eq!(qemu["disable_vhost_net"].as_bool(), Some(true));
        assert_eq!(qemu["default_memory"].as_integer(), Some(1024));
        assert_eq!(
            qemu["machine_type"].as_str(),
            Some("q35"),
            "upstream's other keys stay"
        );
        assert_eq!(doc["agent"]["kata"]["dial_timeout"].as_integer(), Some(90));
        assert_eq!(doc["runtime"]["internetworking_model"].as_str(), Some("tcfilter"));
        assert_eq!(doc["runtime"]["disable_guest_seccomp"].as_bool(), Some(true));
        assert_eq!(doc["runtime"]["enable_debug"].as_bool(), Some(true));
    }

    #[test]
    fn a_host_with_vhost_vsock_gets_no_hybrid_backend_and_an_image_stays_an_image() {
        let node = KataNodeConfig {
            hybrid_vsock_daemon: None,
            initrd: None,
            image: Some("/k/kata-containers.img".into()),
            ..node()
        };
        let doc: Table = configuration(BASE, &node).unwrap().parse().unwrap();
        let qemu = doc["hypervisor"]["qemu"].as_table().unwrap();
        assert!(!qemu.contains_key("hybrid_vsock_daemon"));
        assert_eq!(qemu["file_mem_backend"].as_str(), Some(""));
        assert_eq!(qemu["image"].as_str(), Some("/k/kata-containers.img"));
        assert!(!qemu.contains_key("initrd"));
    }

    #[test]
    fn a_base_without_the_qemu_table_is_an_error() {
        let err = configuration("[runtime]\n", &node()).unwrap_err();
        assert_eq!(err, KataRenderError::MissingTable("hypervisor.qemu"));
        assert!(matches!(
            configuration("[x", &node()),
            Err(KataRenderError::BaseConfig(_))
        ));
    }

    /// Runs a wrapper with bash: what the wrapped program would get.
    fn run_wrapper(text: &str, args: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("wrapper");
        std::fs::write(&wrapper, text).unwrap();
        let out = std::process::Command::new("bash")
            .arg(&wrapper)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    const KATA_QEMU_ARGS: [&str; 14] = [
        "-name",
        "sandbox-abc123",
        "-machine",
        "q35,accel=kvm,nvdimm=on",
        "-cpu",
        "host,pmu=off",
        "-global",
        "kvm-pit.lost_tick_policy=discard",
        "-global",
        "virtio-x.y=1",
        "-append",
        "console=hvc0 quiet",
        "-m",
        "1024M",
    ];

    #[test]
    fn the_qemu_wrapper_rewrites_what_kata_passes_for_kvm_and_logs_the_console() {
        let text = qemu_wrapper(
            Path::new("/bin/echo"),
            Some("probe boot failed"),
            Path::new("/logs"),
        );
        assert_eq!(
            run_wrapper(&text, &KATA_QEMU_ARGS),
            "-name sandbox-abc123 -machine q35,accel=tcg,nvdimm=on -cpu max,pmu=off \
             -global virtio-x.y=1 -append console=hvc0 quiet console=ttyS0 -m 1024M \
             -serial file:/logs/guest-console.abc123.log"
        );
    }

    #[test]
    fn with_kvm_the_qemu_wrapper_only_adds_the_console_log() {
        let text = qemu_wrapper(Path::new("/bin/echo"), None, Path::new("/logs"));
        assert_eq!(
            run_wrapper(&text, &KATA_QEMU_ARGS),
            "-name sandbox-abc123 -machine q35,accel=kvm,nvdimm=on -cpu host,pmu=off \
             -global kvm-pit.lost_tick_policy=discard -global virtio-x.y=1 \
             -append console=hvc0 quiet console=ttyS0 -m 1024M \
             -serial file:/logs/guest-console.abc123.log"
        );
    }

    /// The backend's stderr lands in the sandbox's log file, with RUST_LOG set.
    #[test]
    fn the_vsock_wrapper_logs_per_sandbox() {
        let logs = tempfile::tempdir().unwrap();
        let fake = logs.path().join("fake-daemon");
        std::fs::write(&fake, "#!/bin/sh\necho \"RUST_LOG=$RUST_LOG $*\" >&2\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let arg = "--vm=guest-cid=3,socket=/run/vc/vm/abc123/vhost-vsock.sock,uds-path=/run/vc/vm/abc123/kata.hvsock";
        run_wrapper(&vsock_daemon_wrapper(&fake, logs.path()), &[arg]);
        let log = std::fs::read_to_string(logs.path().join("vhost-device-vsock.abc123.log")).unwrap();
        assert_eq!(log.trim(), format!("RUST_LOG=debug {arg}"));
    }

    #[test]
    fn the_virtiofsd_wrapper_drops_only_syslog() {
        let text = virtiofsd_wrapper(Path::new("/bin/echo"));
        assert_eq!(
            run_wrapper(
                &text,
                &["--syslog", "--cache=auto", "--shared-dir=/a b", "--fd=3"]
            ),
            "--cache=auto --shared-dir=/a b --fd=3"
        );
    }
}
