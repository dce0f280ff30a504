//! Whether KVM can run a guest here: the device answers, and a probe boot proved it (see
//! [`crate::vm::accel`], which runs the probe and writes [`probe_record`]).

use crate::profile::cache_dir;

/// Whether KVM can run a guest here.
#[derive(Debug, Clone, PartialEq)]
pub struct KvmVerdict {
    pub usable: bool,
    pub reason: String,
}

/// `KVM_GET_API_VERSION` = `_IO(KVMIO, 0x00)`.
const KVM_GET_API_VERSION: u64 = 0xAE00;

/// The file a successful KVM probe boot writes (see the VM target); its absence means KVM
/// is not proven, whatever `/dev/kvm` answers: many hosts have a `/dev/kvm` that cannot boot.
pub fn probe_record() -> std::path::PathBuf {
    cache_dir().join("kvm-probe-passed")
}

/// The device-level half of the KVM check: `/dev/kvm` opens read-write and reports API 12.
/// Necessary, never sufficient (see [`crate::vm::accel`]).
pub fn check_device() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    // SAFETY: KVM_GET_API_VERSION takes no argument (0 is passed) and returns an integer.
    let api = unsafe { nix::libc::ioctl(device.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    match api {
        12 => Ok(()),
        -1 => Err(format!(
            "KVM_GET_API_VERSION failed: {}",
            std::io::Error::last_os_error()
        )),
        v => Err(format!("/dev/kvm reports API version {v}, expected 12")),
    }
}

/// KVM is usable when the device answers and a probe boot under it has passed on this host.
pub fn verdict() -> KvmVerdict {
    if let Err(reason) = check_device() {
        return KvmVerdict {
            usable: false,
            reason,
        };
    }
    if probe_record().exists() {
        KvmVerdict {
            usable: true,
            reason: "a probe boot under KVM reached userspace".into(),
        }
    } else {
        KvmVerdict {
            usable: false,
            reason: "/dev/kvm answers ioctls, but no probe boot has proven it can run a guest kernel".into(),
        }
    }
}
