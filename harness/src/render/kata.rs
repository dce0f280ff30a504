//! Kata's `configuration.toml` for one node: the file the layout ships, changed only where a
//! named [`Condition`] requires it, and the small wrappers those conditions need.
//!
//! Invariant: every key the rendered file changes belongs to a condition's
//! [`Condition::edits`], and every condition is a line on every Kata row; the shipped file
//! itself is never written (the node reads the rendered copy through containerd's
//! `ConfigPath`). Paths in both are the node's: the layout is mounted at `/opt/kata` there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::artifacts::kata::KataRuntime;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KataRenderError {
    #[error("the layout's configuration-qemu.toml does not parse: {0}")]
    BaseConfig(String),
    #[error("the layout's configuration has no [{0}] table")]
    MissingTable(String),
}

/// Seconds the shim waits for a TCG guest's agent: it boots in seconds when the machine is
/// idle, tens when it is not; below the CRI call deadline (120 s), so a stuck agent channel
/// fails with Kata's own error rather than a CRI timeout.
pub const TCG_DIAL_TIMEOUT_S: i64 = 90;

/// The same inside a VM guest that itself runs under TCG: its agent's first log line came
/// minutes after the sandbox was asked for (bench/kata-in-guest.json); below that testbed's
/// CRI call deadline.
pub const NESTED_TCG_DIAL_TIMEOUT_S: i64 = 900;

/// Why the harness changes the shipped configuration. Observation conditions hold on every
/// host; the others only where this host or this layout differs from a KVM host running
/// upstream's release.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The guest's serial console goes to a file per sandbox: the log scan and failure bundles
    /// read it (Kata's own console is a socket only a debug shim drains).
    SerialConsole,
    /// The agent's debug console: the rows that get into the guest (`kata-runtime exec`).
    DebugConsole,
    /// No usable KVM: the guest runs under TCG (QEMU's arguments rewritten by the wrapper);
    /// the shim waits `dial_timeout_s` for its agent.
    Tcg { why: String, dial_timeout_s: i64 },
    /// A VM guest without KVM: the node `/dev/kvm` is made (no module behind it), because
    /// Kata's shim builds a sandbox's device cgroup from it whatever its QEMU runs.
    KvmDeviceNode,
    /// The layout's QEMU cannot run this guest here: `qemu` (the host's) runs it.
    HostQemu { why: String, qemu: PathBuf },
    /// No `/dev/vhost-vsock`: the agent channel goes through the layout's user-space backend.
    UserSpaceVsock,
    /// No `/dev/vhost-net`: virtio-net in QEMU.
    NoVhostNet,
    /// No `/dev/log`: virtiofsd without `--syslog` (it would exit).
    NoSyslog,
    /// The guest root the configuration names is not in the layout: the one it ships.
    GuestRoot { named: String, shipped: GuestRoot },
}

/// A guest root file, by the configuration key that names it.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestRoot {
    Image(PathBuf),
    Initrd(PathBuf),
}

impl GuestRoot {
    fn key(&self) -> &'static str {
        match self {
            GuestRoot::Image(_) => "image",
            GuestRoot::Initrd(_) => "initrd",
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            GuestRoot::Image(p) | GuestRoot::Initrd(p) => p,
        }
    }
}

/// The wrappers a node's conditions call for, at their node paths.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFiles {
    /// What runs as the hypervisor: [`qemu_wrapper`].
    pub qemu_wrapper: PathBuf,
    /// [`vsock_daemon_wrapper`], under [`Condition::UserSpaceVsock`].
    pub vsock_wrapper: PathBuf,
    /// [`virtiofsd_wrapper`], under [`Condition::NoSyslog`].
    pub virtiofsd_wrapper: PathBuf,
}

/// One change: `key` of `[table]` set to a value, or removed (`None`).
type Edit = (&'static str, &'static str, Option<Value>);

impl Condition {
    /// Holds on every host (what observing a row needs), not because of this host.
    pub fn is_observation(&self) -> bool {
        matches!(self, Condition::SerialConsole | Condition::DebugConsole)
    }

    /// The line reports show.
    pub fn line(&self) -> String {
        match self {
            Condition::SerialConsole => "serial console: the guest's kernel and agent log go to a file per sandbox (hypervisor path is a wrapper adding -serial file: and console=ttyS0)".into(),
            Condition::DebugConsole => "debug console: enabled for the rows that get into the guest (kata-runtime exec, kata-ctl exec)".into(),
            Condition::Tcg { why, dial_timeout_s } => format!(
                "TCG: the Kata guest runs under TCG, not KVM ({why}); the wrapper turns accel=kvm and -cpu host into accel=tcg and -cpu max; the shim waits {dial_timeout_s} s for its agent and for a container create"
            ),
            Condition::KvmDeviceNode => "/dev/kvm node: the VM guest has no KVM, and Kata's shim builds each sandbox's device cgroup from /dev/kvm, so the harness makes the node (10:232) with no kvm module behind it (nothing can open it; QEMU runs TCG)".into(),
            Condition::HostQemu { why, qemu } => {
                format!("host QEMU: {why}, so {} runs the guest", qemu.display())
            }
            Condition::UserSpaceVsock => "user-space vsock: the agent channel goes through vhost-device-vsock (no /dev/vhost-vsock on this host)".into(),
            Condition::NoVhostNet => "no vhost-net: virtio-net in QEMU (no /dev/vhost-net on this host)".into(),
            Condition::NoSyslog => "no syslog: virtiofsd without --syslog (no /dev/log on this host)".into(),
            Condition::GuestRoot { named, shipped } => format!(
                "guest root: the configuration names {named}, which this layout does not ship; its {} {} instead",
                shipped.key(),
                shipped.path().display()
            ),
        }
    }

    /// The configuration keys this condition sets in `runtime`'s configuration (`None`:
    /// removes). The two runtimes name most keys alike; where not, runtime-rs's are from its
    /// `configuration-qemu-runtime-rs.toml`.
    fn edits(&self, files: &NodeFiles, runtime: KataRuntime) -> Vec<Edit> {
        let path = |p: &Path| Some(Value::String(p.to_string_lossy().into_owned()));
        let paths = |p: &Path| {
            Some(Value::Array(vec![Value::String(
                p.to_string_lossy().into_owned(),
            )]))
        };
        const QEMU: &str = "hypervisor.qemu";
        match self {
            Condition::SerialConsole => vec![
                (QEMU, "path", path(&files.qemu_wrapper)),
                (QEMU, "valid_hypervisor_paths", paths(&files.qemu_wrapper)),
            ],
            Condition::DebugConsole => {
                vec![("agent.kata", "debug_console_enabled", Some(Value::Boolean(true)))]
            }
            // The agent is as slow to create a container as to answer at all: a container
            // create under TCG inside TCG outlasted the shipped 60 s on a loaded host.
            Condition::Tcg { dial_timeout_s, .. } if runtime == KataRuntime::Rust => vec![
                // runtime-rs retries its dial every dial_timeout_ms until this much has passed.
                (
                    "agent.kata",
                    "reconnect_timeout_ms",
                    Some(Value::Integer(dial_timeout_s * 1000)),
                ),
                (
                    "agent.kata",
                    "create_container_timeout",
                    Some(Value::Integer(*dial_timeout_s)),
                ),
            ],
            Condition::Tcg { dial_timeout_s, .. } => vec![
                (
                    "agent.kata",
                    "dial_timeout",
                    Some(Value::Integer(*dial_timeout_s)),
                ),
                (
                    "runtime",
                    "create_container_timeout",
                    Some(Value::Integer(*dial_timeout_s)),
                ),
            ],
            // A node outside the configuration.
            Condition::KvmDeviceNode => vec![],
            // The wrapper execs the host's QEMU: no key changes.
            Condition::HostQemu { .. } => vec![],
            // runtime-rs's patch shares the memory virtio-fs already has QEMU share.
            Condition::UserSpaceVsock if runtime == KataRuntime::Rust => {
                vec![(QEMU, "hybrid_vsock_daemon", path(&files.vsock_wrapper))]
            }
            Condition::UserSpaceVsock => vec![
                (QEMU, "hybrid_vsock_daemon", path(&files.vsock_wrapper)),
                // vhost-user devices need guest memory that QEMU shares with the backend.
                (QEMU, "file_mem_backend", Some(Value::String("/dev/shm".into()))),
                (
                    QEMU,
                    "valid_file_mem_backends",
                    Some(Value::Array(vec![Value::String("/dev/shm".into())])),
                ),
            ],
            Condition::NoVhostNet => vec![(QEMU, "disable_vhost_net", Some(Value::Boolean(true)))],
            // runtime-rs does not pass --syslog to virtiofsd.
            Condition::NoSyslog if runtime == KataRuntime::Rust => vec![],
            Condition::NoSyslog => vec![
                (QEMU, "virtio_fs_daemon", path(&files.virtiofsd_wrapper)),
                (
                    QEMU,
                    "valid_virtio_fs_daemon_paths",
                    paths(&files.virtiofsd_wrapper),
                ),
            ],
            // Kata refuses a configuration that names both an initrd and an image.
            Condition::GuestRoot { shipped, .. } => vec![
                (QEMU, "image", None),
                (QEMU, "initrd", None),
                (QEMU, shipped.key(), path(shipped.path())),
            ],
        }
    }

    /// `table.key` of every key this condition changes in `runtime`'s configuration.
    pub fn keys(&self, files: &NodeFiles, runtime: KataRuntime) -> BTreeSet<String> {
        self.edits(files, runtime)
            .into_iter()
            .map(|(table, key, _)| format!("{table}.{key}"))
            .collect()
    }
}

/// The shipped configuration with `conditions` applied, and a header naming them.
pub fn configuration(
    base: &str,
    conditions: &[Condition],
    files: &NodeFiles,
    runtime: KataRuntime,
) -> Result<String, KataRenderError> {
    let mut doc = parse(base)?;
    for condition in conditions {
        for (table_name, key, value) in condition.edits(files, runtime) {
            let table = table(&mut doc, table_name)
                .ok_or_else(|| KataRenderError::MissingTable(table_name.to_owned()))?;
            match value {
                Some(value) => table.insert(key.into(), value),
                None => table.remove(key),
            };
        }
    }
    let mut header = format!(
        "# Rendered by kata-harness from the layout's {} ({}); changed only for:\n",
        runtime.config_rel().rsplit('/').next().unwrap_or_default(),
        runtime.name()
    );
    for condition in conditions {
        header += &format!("#  - {}\n", condition.line());
    }
    Ok(format!(
        "{header}{}",
        toml::to_string(&doc).expect("a parsed TOML table serializes")
    ))
}

/// The shipped configuration's `[table]` `key`, as a string (the paths it names).
pub fn shipped_str(base: &str, table_name: &str, key: &str) -> Result<Option<String>, KataRenderError> {
    let mut doc = parse(base)?;
    Ok(table(&mut doc, table_name)
        .and_then(|t| t.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// `table.key` of every key whose value differs between two configurations (added, removed
/// or changed), over every table.
pub fn changed_keys(before: &str, after: &str) -> Result<BTreeSet<String>, KataRenderError> {
    fn walk(prefix: &str, a: &Table, b: &Table, out: &mut BTreeSet<String>) {
        for key in a.keys().chain(b.keys()) {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match (a.get(key), b.get(key)) {
                (Some(Value::Table(x)), Some(Value::Table(y))) => walk(&name, x, y, out),
                (x, y) if x != y => {
                    out.insert(name);
                }
                _ => {}
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", &parse(before)?, &parse(after)?, &mut out);
    Ok(out)
}

fn parse(text: &str) -> Result<Table, KataRenderError> {
    text.parse()
        .map_err(|e: toml::de::Error| KataRenderError::BaseConfig(e.message().to_owned()))
}

fn table<'a>(doc: &'a mut Table, dotted: &str) -> Option<&'a mut Table> {
    let mut current = doc;
    for key in dotted.split('.') {
        current = current.get_mut(key)?.as_table_mut()?;
    }
    Some(current)
}

/// The hypervisor `path`: `qemu` as this node runs it.
///
/// The guest always gets a serial console written to `<log_dir>/guest-console.<sandbox id>.log`,
/// the last `console=` so the agent's own log goes there too. With `tcg`, what Kata passes for
/// KVM (`accel=kvm`, `-cpu host`, the KVM PIT) is rewritten for TCG: Kata's configuration has
/// no TCG switch.
pub fn qemu_wrapper(qemu: &Path, tcg: Option<&str>, log_dir: &Path) -> String {
    let (headline, tcg_cases) = match tcg {
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

    /// The file Kata 3.30.0's `make PREFIX=/opt/kata` installs, as upstream ships it.
    pub(crate) const SHIPPED: &str = include_str!("testdata/configuration-qemu-3.30.0.toml");

    fn files() -> NodeFiles {
        NodeFiles {
            qemu_wrapper: "/run/kh/kata/qemu".into(),
            vsock_wrapper: "/run/kh/kata/vhost-device-vsock".into(),
            virtiofsd_wrapper: "/run/kh/kata/virtiofsd".into(),
        }
    }

    fn every_condition() -> Vec<Condition> {
        vec![
            Condition::SerialConsole,
            Condition::DebugConsole,
            Condition::Tcg {
                why: "no KVM".into(),
                dial_timeout_s: TCG_DIAL_TIMEOUT_S,
            },
            Condition::HostQemu {
                why: "this layout ships no QEMU".into(),
                qemu: "/usr/bin/qemu-system-x86_64".into(),
            },
            Condition::UserSpaceVsock,
            Condition::NoVhostNet,
            Condition::NoSyslog,
            Condition::GuestRoot {
                named: "/opt/kata/share/kata-containers/kata-containers.img".into(),
                shipped: GuestRoot::Initrd(
                    "/opt/kata/share/kata-containers/kata-containers-initrd.img".into(),
                ),
            },
        ]
    }

    #[test]
    fn only_the_keys_the_conditions_name_change() {
        let conditions = every_condition();
        let text = configuration(SHIPPED, &conditions, &files(), KataRuntime::Go).unwrap();
        let declared: BTreeSet<String> = conditions
            .iter()
            .flat_map(|c| c.keys(&files(), KataRuntime::Go))
            .collect();
        assert_eq!(changed_keys(SHIPPED, &text).unwrap(), declared);
        for condition in &conditions {
            assert!(text.contains(&condition.line()), "the header names {condition:?}");
        }
        let doc: Table = text.parse().unwrap();
        let qemu = doc["hypervisor"]["qemu"].as_table().unwrap();
        assert_eq!(qemu["path"].as_str(), Some("/run/kh/kata/qemu"));
        assert!(!qemu.contains_key("image"), "initrd and image are exclusive");
        assert_eq!(
            qemu["default_memory"].as_integer(),
            Some(2048),
            "upstream's memory"
        );
        assert_eq!(
            doc["agent"]["kata"]["dial_timeout"].as_integer(),
            Some(TCG_DIAL_TIMEOUT_S)
        );
        assert_eq!(
            doc["runtime"]["create_container_timeout"].as_integer(),
            Some(TCG_DIAL_TIMEOUT_S)
        );
    }

    /// runtime-rs 4.1.0's, as its Makefile generates it with PREFIX=/opt/kata.
    const SHIPPED_RS: &str = include_str!("testdata/configuration-qemu-runtime-rs-4.1.0.toml");

    #[test]
    fn runtime_rs_gets_its_own_keys_for_the_same_conditions() {
        let conditions = every_condition();
        let text = configuration(SHIPPED_RS, &conditions, &files(), KataRuntime::Rust).unwrap();
        let declared: BTreeSet<String> = conditions
            .iter()
            .flat_map(|c| c.keys(&files(), KataRuntime::Rust))
            .collect();
        assert_eq!(changed_keys(SHIPPED_RS, &text).unwrap(), declared);
        assert!(text.starts_with(
            "# Rendered by kata-harness from the layout's configuration-qemu-runtime-rs.toml (Rust runtime (runtime-rs))"
        ));
        let doc: Table = text.parse().unwrap();
        let agent = doc["agent"]["kata"].as_table().unwrap();
        assert_eq!(
            agent["reconnect_timeout_ms"].as_integer(),
            Some(TCG_DIAL_TIMEOUT_S * 1000)
        );
        assert_eq!(
            agent["create_container_timeout"].as_integer(),
            Some(TCG_DIAL_TIMEOUT_S)
        );
        assert!(!agent.contains_key("dial_timeout"), "a Go-only key");
        let qemu = doc["hypervisor"]["qemu"].as_table().unwrap();
        assert_eq!(
            qemu["hybrid_vsock_daemon"].as_str(),
            Some("/run/kh/kata/vhost-device-vsock")
        );
        assert_eq!(
            qemu["virtio_fs_daemon"].as_str(),
            Some("/opt/kata/libexec/virtiofsd"),
            "runtime-rs passes no --syslog: no wrapper"
        );
        assert!(!qemu.contains_key("file_mem_backend"));
        // The Go keys would be changes no condition declares for runtime-rs.
        let go = configuration(SHIPPED_RS, &conditions, &files(), KataRuntime::Go).unwrap();
        assert_ne!(changed_keys(SHIPPED_RS, &go).unwrap(), declared);
    }

    #[test]
    fn no_condition_renders_the_shipped_file() {
        let text = configuration(SHIPPED, &[], &files(), KataRuntime::Go).unwrap();
        assert_eq!(changed_keys(SHIPPED, &text).unwrap(), BTreeSet::new());
    }

    /// The check above could not pass over a change no condition declares.
    #[test]
    fn an_undeclared_change_is_seen() {
        let text = configuration(SHIPPED, &[Condition::NoVhostNet], &files(), KataRuntime::Go).unwrap();
        let tampered = text.replace("default_memory = 2048", "default_memory = 1024");
        let changed = changed_keys(SHIPPED, &tampered).unwrap();
        assert!(changed.contains("hypervisor.qemu.default_memory"), "{changed:?}");
        assert_ne!(changed, Condition::NoVhostNet.keys(&files(), KataRuntime::Go));
    }

    #[test]
    fn a_base_without_the_qemu_table_is_an_error() {
        let err =
            configuration("[runtime]\n", &[Condition::NoVhostNet], &files(), KataRuntime::Go).unwrap_err();
        assert_eq!(err, KataRenderError::MissingTable("hypervisor.qemu".into()));
        assert!(matches!(
            configuration("[x", &[], &files(), KataRuntime::Go),
            Err(KataRenderError::BaseConfig(_))
        ));
    }

    #[test]
    fn the_shipped_paths_are_read_from_the_file() {
        assert_eq!(
            shipped_str(SHIPPED, "hypervisor.qemu", "path")
                .unwrap()
                .as_deref(),
            Some("/opt/kata/bin/qemu-system-x86_64")
        );
        assert_eq!(shipped_str(SHIPPED, "hypervisor.qemu", "initrd").unwrap(), None);
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
