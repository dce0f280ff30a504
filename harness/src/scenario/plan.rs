//! Expanding suites into trials (one per row x variant) and deciding skips before anything runs.

use std::path::{Path, PathBuf};

use super::model::{PlacementKind, Requirement, Row, Suite};
use crate::profile::ContainerdChoice;

/// Where a variant's testbed lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placement {
    /// A private containerd of this release on this host.
    Local(ContainerdChoice),
    /// The containerd of a VM booted from this image recipe (`vm-images/<recipe>`).
    Vm(String),
    /// A single-node kubeadm cluster from this offline bundle, on this host (node namespace).
    Cluster(crate::kube::bundle::Bundle),
}

impl Placement {
    pub fn kind(&self) -> PlacementKind {
        match self {
            Placement::Local(_) => PlacementKind::Local,
            Placement::Vm(_) => PlacementKind::Vm,
            Placement::Cluster(_) => PlacementKind::Cluster,
        }
    }
}

/// One configuration the whole suite runs against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    /// `containerd-1.6` or `vm-bookworm`: the last part of trial names.
    pub label: String,
    pub placement: Placement,
}

impl Variant {
    pub fn vm(recipe: &str) -> Self {
        Variant {
            label: format!("vm-{recipe}"),
            placement: Placement::Vm(recipe.to_owned()),
        }
    }

    /// `k8s-1.20`: a kubeadm cluster of the bundle's version.
    pub fn cluster(bundle: crate::kube::bundle::Bundle) -> Self {
        Variant {
            label: bundle.label(),
            placement: Placement::Cluster(bundle),
        }
    }

    pub fn containerd(choice: ContainerdChoice) -> Self {
        let label = match &choice {
            ContainerdChoice::Line(line) => format!("containerd-{line}"),
            ContainerdChoice::Dir(dir) => format!(
                "containerd-{}",
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "custom".into())
            ),
        };
        Variant {
            label,
            placement: Placement::Local(choice),
        }
    }
}

/// What the node offers, probed once before planning.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Why Kata cannot run here; `None` when it can.
    pub kata_absent: Option<String>,
}

impl Capabilities {
    /// Probes this host: the Kata shim on PATH and a KVM proven usable.
    pub fn probe_local() -> Self {
        let mut reasons = Vec::new();
        if find_on_path("containerd-shim-kata-v2").is_none() {
            reasons.push("no containerd-shim-kata-v2 on PATH (no Kata artifacts)".to_owned());
        }
        let kvm = crate::doctor::kvm_verdict();
        if !kvm.usable {
            reasons.push(format!("no usable KVM ({})", kvm.reason));
        }
        Capabilities {
            kata_absent: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
    }
    /// What a VM from our images offers: Debian has no Kata, and nested Kata needs the VM
    /// itself to run under a working KVM.
    pub fn for_vm(recipe: &str, accel: Option<&crate::vm::accel::Verdict>) -> Self {
        let mut reasons = vec![format!(
            "no containerd-shim-kata-v2 in VM image {recipe} (Debian packages no Kata)"
        )];
        match accel {
            Some(v) if v.accel == crate::vm::accel::Accel::Kvm => {}
            Some(v) => reasons.push(format!(
                "the VM runs under TCG, so no KVM for nested Kata ({})",
                v.reason
            )),
            None => reasons.push("KVM not yet proven by a probe boot".into()),
        }
        Capabilities {
            kata_absent: Some(reasons.join("; ")),
        }
    }

    fn missing(&self, requirement: Requirement) -> Option<String> {
        match requirement {
            Requirement::Kata => self.kata_absent.clone(),
        }
    }
}

pub fn find_on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One row against one variant.
#[derive(Debug, Clone)]
pub struct Trial {
    /// `suite::scenario::variant`
    pub name: String,
    pub suite: String,
    pub row: Row,
    pub variant: Variant,
    /// Decided before running: the missing precondition.
    pub skip: Option<String>,
}

/// All trials, in suite, row, variant order; each variant with what its node offers.
pub fn plan(suites: &[Suite], variants: &[(Variant, Capabilities)]) -> Vec<Trial> {
    let mut trials = Vec::new();
    for suite in suites {
        for row in &suite.rows {
            for (variant, capabilities) in variants {
                // A suite's rows expand only against the placements it declares.
                if !suite.placements.contains(&variant.placement.kind()) {
                    continue;
                }
                let skip = row
                    .requires
                    .iter()
                    .find_map(|r| capabilities.missing(*r).map(|why| format!("needs {r}: {why}")));
                trials.push(Trial {
                    name: format!("{}::{}::{}", suite.name, row.scenario, variant.label),
                    suite: suite.name.clone(),
                    row: row.clone(),
                    variant: variant.clone(),
                    skip,
                });
            }
        }
    }
    trials
}

/// Keeps trials whose name contains `filter` (or equals it, with `exact`).
pub fn filter(trials: Vec<Trial>, filter: Option<&str>, exact: bool) -> Vec<Trial> {
    match filter {
        None => trials,
        Some(f) => trials
            .into_iter()
            .filter(|t| if exact { t.name == f } else { t.name.contains(f) })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> Suite {
        let text = r#"
suite: cri
rows:
  - scenario: default-handler
    sandbox: {}
    expect: { runtime_type: io.containerd.runc.v2 }
  - scenario: kata-handler
    requires: [kata]
    sandbox: { handler: kata }
    expect: { runtime_type: io.containerd.kata.v2 }
"#;
        Suite::parse(Path::new("t.yaml"), text).unwrap()
    }

    #[test]
    fn one_trial_per_row_and_variant_with_kata_skipped_for_its_reason() {
        let variants = vec![
            Variant::containerd(ContainerdChoice::Line("1.6".into())),
            Variant::containerd(ContainerdChoice::Line("2.1".into())),
        ];
        let caps = Capabilities {
            kata_absent: Some("no containerd-shim-kata-v2 on PATH".into()),
        };
        let variants: Vec<_> = variants.into_iter().map(|v| (v, caps.clone())).collect();
        let trials = plan(&[suite()], &variants);
        let names: Vec<&str> = trials.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cri::default-handler::containerd-1.6",
                "cri::default-handler::containerd-2.1",
                "cri::kata-handler::containerd-1.6",
                "cri::kata-handler::containerd-2.1"
            ]
        );
        assert_eq!(trials[0].skip, None);
        assert_eq!(
            trials[2].skip.as_deref(),
            Some("needs kata: no containerd-shim-kata-v2 on PATH")
        );
    }

    /// One local variant on a node that has Kata.
    fn with_kata(line: &str) -> Vec<(Variant, Capabilities)> {
        vec![(
            Variant::containerd(ContainerdChoice::Line(line.into())),
            Capabilities { kata_absent: None },
        )]
    }

    #[test]
    fn kata_rows_run_where_kata_is_present() {
        let trials = plan(&[suite()], &with_kata("1.6"));
        assert!(trials.iter().all(|t| t.skip.is_none()));
    }

    #[test]
    fn filters_by_substring_or_exact_name() {
        let trials = plan(&[suite()], &with_kata("1.6"));
        assert_eq!(filter(trials.clone(), Some("kata"), false).len(), 1);
        assert_eq!(
            filter(trials.clone(), Some("cri::kata-handler::containerd-1.6"), true).len(),
            1
        );
        assert_eq!(filter(trials, Some("cri::kata"), true).len(), 0);
    }
}
