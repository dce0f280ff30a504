//! What stand-in Kata layouts in the tests carry.

/// The keys of upstream's `configuration-qemu.toml` that planning reads, with upstream's
/// `/opt/kata` paths (guest root: the initrd).
pub const CONFIGURATION: &str = r#"[hypervisor.qemu]
path = "/opt/kata/bin/qemu-system-x86_64"
kernel = "/opt/kata/share/kata-containers/vmlinux.container"
initrd = "/opt/kata/share/kata-containers/kata-containers-initrd.img"
virtio_fs_daemon = "/opt/kata/libexec/virtiofsd"
[agent.kata]
[runtime]
"#;
