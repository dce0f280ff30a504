//! `kata-harness doctor`: what this node can run, and why not.
//!
//! Invariant: every verdict is probed (open the device, run the binary), never inferred from
//! a file merely existing. The same probes decide the skips of the scenario planner.

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::artifacts::kata::{KataChoice, KataRuntime};
use crate::profile::{ContainerdChoice, DEFAULT_CONTAINERD_LINES};
use crate::vm::accel;
use crate::vm::kvm::KvmVerdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Missing,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Missing => "MISSING",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

fn version_of(binary: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(binary);
    cmd.args(args);
    crate::process::run(cmd, Duration::from_secs(20))
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .map_err(|e| e.to_string())
}

fn check(name: &str, result: Result<String, String>, missing: Status) -> Check {
    match result {
        Ok(detail) => Check {
            name: name.into(),
            status: Status::Ok,
            detail,
        },
        Err(detail) => Check {
            name: name.into(),
            status: missing,
            detail,
        },
    }
}

/// Every check, in display order.
pub fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    for line in DEFAULT_CONTAINERD_LINES {
        let resolved = ContainerdChoice::Line(line.into()).resolve();
        out.push(check(
            &format!("containerd {line}"),
            resolved
                .map(|c| format!("{} ({})", c.version, c.bin_dir.display()))
                .map_err(|e| e.to_string()),
            Status::Missing,
        ));
    }
    out.push(check("runc", version_of("runc", &["--version"]), Status::Missing));
    out.push(check("crun", version_of("crun", &["--version"]), Status::Missing));
    let crun = crate::provision::crun_binary();
    out.push(check(
        "crun for OCI spec 1.1+ (containerd 1.7+)",
        version_of(&crun.to_string_lossy(), &["--version"]).map(|v| format!("{v} ({})", crun.display())),
        Status::Warn,
    ));
    // Warn, not missing: without it only the critest suite's rows are skipped.
    out.push(check(
        "critest (critest suite)",
        crate::artifacts::cri_tools::critest()
            .ok_or_else(|| "not built: run scripts/build-cri-tools".to_owned())
            .and_then(|b| {
                version_of(&b.to_string_lossy(), &["--version"]).map(|v| format!("{v} ({})", b.display()))
            }),
        Status::Warn,
    ));
    let cni = ["bridge", "host-local", "loopback", "portmap"]
        .iter()
        .map(|p| Path::new("/usr/lib/cni").join(p))
        .collect::<Vec<_>>();
    let missing_cni: Vec<String> = cni
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    out.push(check(
        "CNI plugins",
        if missing_cni.is_empty() {
            Ok("bridge, host-local, loopback, portmap in /usr/lib/cni".into())
        } else {
            Err(format!("missing {}", missing_cni.join(", ")))
        },
        Status::Missing,
    ));
    out.push(check(
        "busybox (static)",
        version_of(crate::provision::BUSYBOX_BINARY, &["--help"])
            .map(|_| crate::provision::BUSYBOX_BINARY.into()),
        Status::Missing,
    ));
    let kvm = kata_kvm_verdict(&KataChoice::Default);
    out.extend(kata_checks(&kvm));
    out.push(Check {
        name: "KVM".into(),
        status: if kvm.usable { Status::Ok } else { Status::Warn },
        detail: if kvm.usable {
            kvm.reason
        } else {
            format!("{}: VMs and Kata guests run under TCG", kvm.reason)
        },
    });
    let nesting = crate::vm::kvm::Nesting::probe(Path::new("/sys"));
    out.push(Check {
        name: "nested virtualization".into(),
        status: if nesting.vendor().is_some() {
            Status::Ok
        } else {
            Status::Warn
        },
        detail: nesting.describe(),
    });
    out.push(Check {
        name: "cgroups".into(),
        status: Status::Ok,
        detail: if crate::provision::local::hybrid_cgroups_with_v2_controllers() {
            "hybrid, with controllers on the v2 hierarchy: hidden in containerd's mount namespace (crun refuses such hosts)".into()
        } else {
            "no v2 controllers next to v1".into()
        },
    });
    out.push(Check {
        name: "CAP_SYS_RESOURCE".into(),
        status: Status::Ok,
        detail: if crate::provision::local::has_capability(24) {
            "held".into()
        } else {
            "not held: containerd runs with restrict_oom_score_adj".into()
        },
    });
    let system_config = Path::new("/etc/containerd/config.toml");
    if let Ok(text) = std::fs::read_to_string(system_config) {
        out.push(sandbox_image_check(&system_config.display().to_string(), &text));
    }
    out
}

/// The KVM verdict Kata's rows are planned by (the same call the planner makes) for `choice`,
/// with its layout's guest kernel where the host's own is not readable.
pub fn kata_kvm_verdict(choice: &KataChoice) -> KvmVerdict {
    let kernel = choice.locate().ok().flatten().and_then(|layout| layout.kernel());
    accel::kata_kvm_verdict(&accel::ProbeStore::for_this_boot(), kernel.as_deref())
}

/// Kata's lines, in the spirit of `kata-runtime check`: the layout the harness will install,
/// its shim and guest, and for each host feature Kata wants, what the harness does without it
/// (or the remedy, when Kata cannot run here at all).
pub fn kata_checks(kvm: &KvmVerdict) -> Vec<Check> {
    use crate::provision::kata::{KataHost, KataPlan};
    let mut out = Vec::new();
    let layout = match KataChoice::Default.locate() {
        Ok(Some(layout)) => layout,
        Ok(None) => {
            out.push(check(
                "Kata",
                Err("no Kata artifacts: Kata rows are skipped (remedy: scripts/build-kata, or run --kata-bundle DIR / --kata-release X.Y.Z)".into()),
                Status::Warn,
            ));
            return out;
        }
        Err(e) => {
            out.push(check("Kata", Err(crate::errors::chain(&e)), Status::Missing));
            return out;
        }
    };
    out.push(check(
        "Kata layout",
        Ok(format!(
            "{} at {}",
            layout.describe(),
            layout.kata_dir().display()
        )),
        Status::Ok,
    ));
    out.push(check(
        "Kata shim",
        version_of(&layout.shim(KataRuntime::Go).to_string_lossy(), &["--version"])
            .map(|v| format!("{v} ({})", layout.shim(KataRuntime::Go).display())),
        Status::Missing,
    ));
    let guest = match (layout.kernel(), layout.guest_boot()) {
        (Some(kernel), Some(boot)) => Ok(format!("kernel {}, {}", kernel.display(), boot.display())),
        _ => Err("no guest kernel or initrd/image in the layout".to_owned()),
    };
    out.push(check("Kata guest", guest, Status::Missing));
    let host = KataHost::probe((!kvm.usable).then(|| kvm.reason.clone()));
    out.push(Check {
        name: "Kata accelerator".into(),
        status: if host.no_kvm.is_none() { Status::Ok } else { Status::Warn },
        detail: match &host.no_kvm {
            None => "KVM".into(),
            Some(why) => format!(
                "TCG: the hypervisor path is a wrapper that turns Kata's KVM arguments into TCG ({why}); remedy: a host whose /dev/kvm runs a guest"
            ),
        },
    });
    let user_space_vsock =
        layout.vsock_daemon().is_some() && layout.shim_supports_hybrid_vsock(KataRuntime::Go);
    out.push(Check {
        name: "vhost_vsock".into(),
        status: match (host.vhost_vsock, user_space_vsock) {
            (true, _) => Status::Ok,
            (false, true) => Status::Warn,
            (false, false) => Status::Missing,
        },
        detail: match (host.vhost_vsock, user_space_vsock) {
            (true, _) => "/dev/vhost-vsock: the agent channel is a kernel vsock".into(),
            (false, true) => "no /dev/vhost-vsock: the agent channel goes through vhost-device-vsock (user space, the layout's patched shim)".into(),
            (false, false) => "no /dev/vhost-vsock and this shim has no user-space vsock; remedy: modprobe vhost_vsock, or the scripts/build-kata layout".into(),
        },
    });
    out.push(Check {
        name: "vhost-net".into(),
        status: if host.vhost_net { Status::Ok } else { Status::Warn },
        detail: if host.vhost_net {
            "/dev/vhost-net".into()
        } else {
            "no /dev/vhost-net: disable_vhost_net (virtio-net emulated in QEMU)".into()
        },
    });
    let rs_layout = KataChoice::Default.locate_rs(Some(&layout));
    out.push(match KataPlan::new(layout, host.clone(), KataRuntime::Go) {
        Ok(plan) => Check {
            name: "Kata verdict".into(),
            status: Status::Ok,
            detail: format!("Kata rows run: {}", plan.conditions.join("; ")),
        },
        Err(why) => Check {
            name: "Kata verdict".into(),
            status: Status::Missing,
            detail: format!("Kata rows are skipped: {why}"),
        },
    });
    let rs = match rs_layout {
        Ok(Some(layout)) => KataPlan::new(layout, host, KataRuntime::Rust).map(|p| p.conditions.join("; ")),
        Ok(None) => Err("no runtime-rs layout (remedy: scripts/build-kata-rs, or scripts/setup)".into()),
        Err(e) => Err(crate::errors::chain(&e)),
    };
    out.push(Check {
        name: "Kata runtime-rs verdict".into(),
        status: if rs.is_ok() { Status::Ok } else { Status::Warn },
        detail: match rs {
            Ok(conditions) => format!("runtime-rs rows run (containerd 1.7 and later): {conditions}"),
            Err(why) => format!("runtime-rs rows are skipped: {why}"),
        },
    });
    out
}

/// The sandbox image kubeadm 1.20 preloads and expects (`kubeadm config images list`): on an
/// air-gapped node any other sandbox image means a pull on every pod start, which fails.
pub const KUBEADM_1_20_SANDBOX_IMAGE: &str = "k8s.gcr.io/pause:3.2";

/// The sandbox image a containerd config sets, for every config schema: `sandbox_image` of
/// the CRI plugin (schemas 1 and 2) or `pinned_images.sandbox` of the images plugin (3, 4).
pub fn configured_sandbox_image(config: &str) -> Result<Option<String>, String> {
    let doc: toml::Table = toml::from_str(config).map_err(|e| format!("not valid TOML: {e}"))?;
    let plugins = doc.get("plugins").and_then(|p| p.as_table());
    let lookup = |path: &[&str]| {
        let mut cursor = plugins?;
        let (last, parents) = path.split_last()?;
        for key in parents {
            cursor = cursor.get(*key)?.as_table()?;
        }
        cursor.get(*last)?.as_str().map(str::to_owned)
    };
    Ok(
        lookup(&["io.containerd.cri.v1.images", "pinned_images", "sandbox"])
            .or_else(|| lookup(&["io.containerd.grpc.v1.cri", "sandbox_image"]))
            .or_else(|| lookup(&["cri", "sandbox_image"])),
    )
}

/// Warns when a containerd config's sandbox image is not the one kubeadm 1.20 expects.
pub fn sandbox_image_check(source: &str, config: &str) -> Check {
    let name = "sandbox image (kubeadm 1.20)".to_owned();
    let (status, detail) = match configured_sandbox_image(config) {
        Err(e) => (Status::Warn, format!("{source}: {e}")),
        Ok(Some(image)) if image == KUBEADM_1_20_SANDBOX_IMAGE => {
            (Status::Ok, format!("{source} pins {image}"))
        }
        Ok(Some(image)) => (
            Status::Warn,
            format!(
                "{source} sets {image}, but kubeadm 1.20 preloads {KUBEADM_1_20_SANDBOX_IMAGE}: offline, every pod start would try to pull {image}"
            ),
        ),
        Ok(None) => (
            Status::Warn,
            format!(
                "{source} sets no sandbox image, so containerd's built-in default (registry.k8s.io/pause:3.x) applies, not kubeadm 1.20's {KUBEADM_1_20_SANDBOX_IMAGE}"
            ),
        ),
    };
    Check { name, status, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_image_check_reads_every_schema() {
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"k8s.gcr.io/pause:3.2\"\n";
        assert_eq!(sandbox_image_check("c", v2).status, Status::Ok);
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\nsandbox = 'registry.k8s.io/pause:3.10'\n";
        let check = sandbox_image_check("c", v3);
        assert_eq!(check.status, Status::Warn);
        assert!(
            check
                .detail
                .contains("sets registry.k8s.io/pause:3.10, but kubeadm 1.20 preloads k8s.gcr.io/pause:3.2"),
            "{}",
            check.detail
        );
        let v1 = "[plugins.cri]\nsandbox_image = \"k8s.gcr.io/pause:3.2\"\n";
        assert_eq!(
            configured_sandbox_image(v1).unwrap().as_deref(),
            Some("k8s.gcr.io/pause:3.2")
        );
        let unset = sandbox_image_check("c", "version = 2\n");
        assert_eq!(unset.status, Status::Warn);
        assert!(unset.detail.contains("sets no sandbox image"), "{}", unset.detail);
    }

    /// The testbed's own rendered config pins exactly what kubeadm 1.20 expects.
    #[test]
    fn the_testbed_sandbox_image_is_kubeadm_1_20s() {
        assert_eq!(crate::provision::SANDBOX_IMAGE, KUBEADM_1_20_SANDBOX_IMAGE);
    }

    #[test]
    fn kvm_verdict_always_gives_a_reason() {
        let verdict = kata_kvm_verdict(&KataChoice::Default);
        assert!(!verdict.reason.is_empty());
        if !Path::new("/dev/kvm").exists() {
            assert!(!verdict.usable);
        }
    }
}
