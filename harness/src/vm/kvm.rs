//! What this host's KVM offers: whether `/dev/kvm` answers (the device-level half of the
//! verdict; the probe boot that decides is in [`crate::vm::accel`]), and whether KVM lets a
//! guest run guests of its own (nested virtualization).

use std::path::{Path, PathBuf};

/// Whether KVM can run a guest here, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct KvmVerdict {
    pub usable: bool,
    pub reason: String,
}

/// `KVM_GET_API_VERSION` = `_IO(KVMIO, 0x00)`.
const KVM_GET_API_VERSION: u64 = 0xAE00;

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

/// Whose virtualization extension a nested guest is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
}

impl Vendor {
    /// The QEMU `-cpu` feature that hands the extension to the guest.
    pub fn cpu_feature(self) -> &'static str {
        match self {
            Vendor::Intel => "+vmx",
            Vendor::Amd => "+svm",
        }
    }

    fn module(self) -> &'static str {
        match self {
            Vendor::Intel => "kvm_intel",
            Vendor::Amd => "kvm_amd",
        }
    }
}

/// What the KVM module says of nested virtualization (its `nested` parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nesting {
    On {
        vendor: Vendor,
    },
    Off {
        path: PathBuf,
        value: String,
    },
    /// Neither `kvm_intel` nor `kvm_amd` is loaded (or its parameter is unreadable).
    Unknown {
        reason: String,
    },
}

impl Nesting {
    /// Reads `<sysfs>/module/kvm_{intel,amd}/parameters/nested` (`Y` or `1` is on); `sysfs`
    /// is `/sys` on a real host.
    pub fn probe(sysfs: &Path) -> Nesting {
        let mut unreadable = Vec::new();
        for vendor in [Vendor::Intel, Vendor::Amd] {
            let path = sysfs
                .join("module")
                .join(vendor.module())
                .join("parameters/nested");
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let value = text.trim().to_owned();
                    return if matches!(value.as_str(), "Y" | "y" | "1") {
                        Nesting::On { vendor }
                    } else {
                        Nesting::Off { path, value }
                    };
                }
                Err(_) => unreadable.push(path.display().to_string()),
            }
        }
        Nesting::Unknown {
            reason: format!("no readable {}", unreadable.join(" or ")),
        }
    }

    /// The extension to hand a guest, when nesting is on.
    pub fn vendor(&self) -> Option<Vendor> {
        match self {
            Nesting::On { vendor } => Some(*vendor),
            _ => None,
        }
    }

    /// One clause for reports: "nested virtualization is ... on this host (...)".
    pub fn describe(&self) -> String {
        match self {
            Nesting::On { vendor } => format!(
                "nested virtualization is on on this host ({} nested = Y: guests get {})",
                vendor.module(),
                vendor.cpu_feature()
            ),
            Nesting::Off { path, value } => format!(
                "nested virtualization is off on this host ({} = {value})",
                path.display()
            ),
            Nesting::Unknown { reason } => {
                format!("nested virtualization is unknown on this host ({reason})")
            }
        }
    }
}

/// A sysfs with `module`'s `nested` parameter set to `value`, for tests.
#[cfg(test)]
pub(crate) fn fake_sysfs(module: &str, value: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("module").join(module).join("parameters");
    std::fs::create_dir_all(&params).unwrap();
    std::fs::write(params.join("nested"), value).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::fake_sysfs as sysfs;
    use super::*;

    #[test]
    fn nesting_is_read_from_the_kvm_modules_parameter() {
        let intel_y = sysfs("kvm_intel", "Y\n");
        assert_eq!(
            Nesting::probe(intel_y.path()),
            Nesting::On {
                vendor: Vendor::Intel
            }
        );
        let amd_1 = sysfs("kvm_amd", "1\n");
        let amd = Nesting::probe(amd_1.path());
        assert_eq!(amd.vendor(), Some(Vendor::Amd));
        assert_eq!(amd.vendor().unwrap().cpu_feature(), "+svm");

        let intel_n = sysfs("kvm_intel", "N\n");
        let off = Nesting::probe(intel_n.path());
        assert_eq!(off.vendor(), None);
        let path = intel_n.path().join("module/kvm_intel/parameters/nested");
        assert_eq!(
            off.describe(),
            format!(
                "nested virtualization is off on this host ({} = N)",
                path.display()
            )
        );
        let amd_0 = sysfs("kvm_amd", "0\n");
        assert!(matches!(Nesting::probe(amd_0.path()), Nesting::Off { value, .. } if value == "0"));

        let empty = tempfile::tempdir().unwrap();
        let unknown = Nesting::probe(empty.path());
        assert_eq!(unknown.vendor(), None);
        assert!(
            unknown
                .describe()
                .starts_with("nested virtualization is unknown on this host")
                && unknown.describe().contains("no readable ")
                && unknown.describe().contains("kvm_intel/parameters/nested")
                && unknown.describe().contains("kvm_amd/parameters/nested"),
            "{}",
            unknown.describe()
        );
    }
}
