//! Kata in a VM guest: the layout unpacked at `/opt/kata` as upstream installs it, and beside
//! it the configuration and wrappers rendered for the guest's conditions.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::guest::{guest, put, GUEST_STATE};
use super::kata::{self, KataInstall, KataPlan};
use super::ProvisionError;
use crate::node::vm::SshNode;
use crate::node::Node;

/// Kata's configuration, wrappers, logs and shim links in the guest (the layout itself is
/// at `/opt/kata`, where upstream installs it).
const GUEST_KATA: &str = "/var/lib/kata-harness/kata";
/// containerd finds a shim by its name on its PATH; the guest's systemd PATH has this.
const GUEST_SHIM_DIR: &str = "/usr/local/bin";
/// Packing the layout (a few hundred MB) here and unpacking it in the guest.
const LAYOUT_COPY_DEADLINE: Duration = Duration::from_secs(600);
/// `plan`'s files and install as the guest has them, under [`GUEST_KATA`].
pub(super) fn guest_kata_files(
    plan: &KataPlan,
) -> Result<(Vec<kata::NodeFile>, KataInstall), ProvisionError> {
    kata::node_files(plan, Path::new(GUEST_KATA)).map_err(|e| {
        ProvisionError::GuestKata(format!(
            "{}: {e}",
            plan.layout.base_config(plan.runtime).display()
        ))
    })
}

/// Installs Kata in the guest as upstream's release installs it: the layout unpacked at
/// `/opt/kata`, unchanged; beside it (under [`GUEST_KATA`]) the configuration rendered for
/// `plan`'s conditions and its wrappers, the shim on containerd's PATH, the kernel's vsock and
/// vhost-net modules, and the guest's QEMU asked for the accelerator it will be given.
pub(super) fn install_guest_kata(
    node: &SshNode,
    run_dir: &Path,
    plan: &KataPlan,
) -> Result<KataInstall, ProvisionError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| ProvisionError::GuestKata(format!("{what}: {e}"));
    let kata_dir = plan.layout.kata_dir();
    let packed = run_dir.join("kata-layout.tar");
    let mut pack = Command::new("tar");
    pack.arg("-C").arg(&kata_dir).arg("-cf").arg(&packed).arg(".");
    crate::process::run(pack, LAYOUT_COPY_DEADLINE)
        .map_err(|e| fail(&format!("packing {}", kata_dir.display()), &e))?;
    let remote = format!("{GUEST_STATE}/kata-layout.tar");
    let copied = node.upload(&packed, Path::new(&remote));
    let _ = std::fs::remove_file(&packed);
    copied.map_err(|e| fail("copying the layout into the guest", &e))?;
    let (files, install) = guest_kata_files(plan)?;
    let mut script = format!(
        "set -e\nmkdir -p /opt/kata {bin} {logs}\ntar -C /opt/kata -xf {remote}\nrm -f {remote}\n\
         modprobe vhost_vsock\nmodprobe vhost_net\n\
         test -c /dev/vhost-vsock || {{ echo 'no /dev/vhost-vsock after modprobe vhost_vsock' >&2; exit 1; }}\n",
        bin = install.bin_dir.display(),
        logs = install.log_dir.display(),
    );
    if plan
        .changes
        .contains(&crate::render::kata::Condition::KvmDeviceNode)
    {
        script += "test -e /dev/kvm || { mknod -m 660 /dev/kvm c 10 232; chgrp kvm /dev/kvm 2>/dev/null || true; }\n";
    } else if plan.accel() == "kvm" {
        script += "test -c /dev/kvm || { echo 'the guest has no /dev/kvm, though this host nests KVM' >&2; exit 1; }\n";
    }
    for name in kata::shim_names(plan.runtime) {
        script += &format!(
            "ln -sf {} {GUEST_SHIM_DIR}/{name}\n",
            plan.layout.on_node(&plan.layout.shim(plan.runtime)).display()
        );
    }
    script += &format!("{} -accel help\n", plan.qemu.display());
    let accel_help = node
        .run(&["sh".into(), "-c".into(), script], LAYOUT_COPY_DEADLINE)
        .map_err(|e| fail("setting up Kata in the guest", &e))?;
    kata::lists(&String::from_utf8_lossy(&accel_help.stdout), plan.accel())
        .map_err(|e| fail(&format!("the guest's QEMU {}", plan.qemu.display()), &e))?;
    for file in files {
        let path = file.path.to_string_lossy();
        put(node, run_dir, &path, &file.content)?;
        if file.executable {
            guest(node, &["chmod", "0755", &path])?;
        }
    }
    Ok(install)
}
