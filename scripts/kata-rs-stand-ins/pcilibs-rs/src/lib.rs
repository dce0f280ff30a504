// kata-harness stand-in for github.com/zvonkok/pcilibs-rs rev ce6486db (not obtainable on an
// offline machine). Kata 4.1.0 uses exactly these four items from it; their values and
// behaviour are what Kata 4.0.0 had in its own tree before moving them out:
//   - IOMMUFD_SYSFS_CLASS, IOMMUFD_VFIO_DIR: 4.0.0's runtime-rs
//     crates/hypervisor/src/device/driver/vfio_device/core.rs (SYS_CLASS_VFIO_DEV, DEV_VFIO);
//   - is_vfio_device_type, snapshot_infiniband: 4.0.0's src/libs/kata-sys-util/src/pcilibs.
// Only VFIO/GPU passthrough paths (runtime-rs) and the guest's VFIO/InfiniBand handling
// (kata-agent) reach them. Upstream pcilibs-rs also carries a PCI ID database (pci-ids), which
// Kata 4.1.0 does not call; it is not here.
//
// SPDX-License-Identifier: Apache-2.0

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use nix::sys::stat;

/// Where the kernel lists IOMMUFD VFIO character devices (`vfioX`) in sysfs.
pub const IOMMUFD_SYSFS_CLASS: &str = "/sys/class/vfio-dev";

/// The VFIO device directory; callers join `vfio` (the container node) or `devices`.
pub const IOMMUFD_VFIO_DIR: &str = "/dev/vfio";

// Kata's device types (kata-types src/device.rs); kept literal so this crate depends on no
// Kata crate (the original does not either).
const DRIVER_VFIO_PCI_TYPE: &str = "vfio-pci";
const DRIVER_VFIO_PCI_GK_TYPE: &str = "vfio-pci-gk";
const DRIVER_VFIO_AP_TYPE: &str = "vfio-ap";
const DRIVER_VFIO_AP_COLD_TYPE: &str = "vfio-ap-cold";

/// Whether a Kata device type names a VFIO device.
pub fn is_vfio_device_type(device_type: &str) -> bool {
    matches!(
        device_type,
        DRIVER_VFIO_PCI_TYPE | DRIVER_VFIO_PCI_GK_TYPE | DRIVER_VFIO_AP_TYPE | DRIVER_VFIO_AP_COLD_TYPE
    )
}

/// One line describing every InfiniBand device this kernel exposes (`/sys/class/infiniband*`,
/// the char devices under `/dev/infiniband`, the PCI BDF behind each): a log field only.
pub fn snapshot_infiniband() -> String {
    let mut ib_parts: Vec<String> = Vec::new();
    if let Ok(entries) = fs::read_dir("/sys/class/infiniband") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let pci_bdf = fs::read_link(path.join("device"))
                .ok()
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "<none>".to_string());
            let node_type = fs::read_to_string(path.join("node_type"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            let fw = fs::read_to_string(path.join("fw_ver"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            ib_parts.push(format!("{name}=[bdf={pci_bdf},node_type={node_type:?},fw={fw}]"));
        }
    }

    let mut verbs_parts: Vec<String> = Vec::new();
    if let Ok(entries) = fs::read_dir("/sys/class/infiniband_verbs") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("uverbs") {
                continue;
            }
            let path = entry.path();
            let ibdev = fs::read_to_string(path.join("ibdev"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            let dev = fs::read_to_string(path.join("dev"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            verbs_parts.push(format!("{name}=[ibdev={ibdev},dev={dev}]"));
        }
    }

    let mut chardev_parts: Vec<String> = Vec::new();
    if let Ok(entries) = fs::read_dir("/dev/infiniband") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let metadata = match entry.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            let kind = if metadata.file_type().is_char_device() {
                "char"
            } else if metadata.file_type().is_block_device() {
                "block"
            } else {
                "other"
            };
            let rdev = metadata.rdev();
            chardev_parts.push(format!(
                "{name}=[{kind},{}:{}]",
                stat::major(rdev),
                stat::minor(rdev)
            ));
        }
    }

    format!(
        "ib_devices=[{}] uverbs=[{}] chardevs=[{}]",
        ib_parts.join(", "),
        verbs_parts.join(", "),
        chardev_parts.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vfio_types() {
        for t in ["vfio-pci", "vfio-pci-gk", "vfio-ap", "vfio-ap-cold"] {
            assert!(is_vfio_device_type(t), "{t}");
        }
        for t in ["", "vfio", "c", "b", "vfio-pci "] {
            assert!(!is_vfio_device_type(t), "{t}");
        }
    }

    #[test]
    fn snapshot_is_one_line() {
        let s = snapshot_infiniband();
        assert!(s.starts_with("ib_devices=["), "{s}");
        assert!(!s.contains('\n'));
    }
}
