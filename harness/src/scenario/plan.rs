//! Expanding suites into trials (one per row x variant) and deciding skips before anything runs.

use std::time::Duration;

use super::model::{LocalLines, PlacementKind, Requirement, Row, Suite};
use crate::artifacts::kata::{KataChoice, KataError, KataLayout, KataRuntime};
use crate::profile::ContainerdChoice;
use crate::provision::kata::{KataHost, KataPlan};
use crate::report::{Evidence, TrialResult, Verdict};

/// Where a variant's testbed lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placement {
    /// A private containerd of this release on this host.
    Local(ContainerdChoice),
    /// The containerd of a VM booted from this image recipe (`vm-images/<recipe>`).
    Vm(String),
    /// A single-node kubeadm cluster from this offline bundle, on this host (node namespace).
    Cluster(crate::kube::bundle::Bundle),
    /// A containerd someone else set up, at its CRI socket (`--target cri://...`).
    Existing(ExistingNode),
    /// A cluster someone else set up, through its kubeconfig (`--kubeconfig FILE`), and
    /// where its pods' runtimes are read (`--runtime-from`).
    ExistingCluster(crate::kube::cluster::attach::ExistingCluster),
}

/// An existing node as discovered when the run was planned: what its rows may use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExistingNode {
    /// Where the node is: this host, or over SSH.
    pub reach: crate::provision::reach::Reach,
    /// The CRI socket as the node has it.
    pub socket: std::path::PathBuf,
    /// `(handler, runtime type)` as the node's CRI config has them.
    pub handlers: Vec<(String, String)>,
    /// `--allow-node-changes`: rows that change the node (and undo it) may run.
    pub allow_changes: bool,
    /// What the pull rows would need of it.
    pub registry: crate::provision::existing::RegistrySupport,
}

impl ExistingNode {
    /// Why a row cannot run on this node, if it cannot: a handler it lacks, a change it
    /// would make to the node without leave, or a part only the harness's own nodes have.
    pub fn skip(&self, row: &Row) -> Option<String> {
        use super::model::Action;
        if row.critest().is_some() {
            return Some("critest runs on nodes the harness starts, not on an existing node".into());
        }
        let names: Vec<&str> = self.handlers.iter().map(|(n, _)| n.as_str()).collect();
        let handler = match &row.action {
            Action::Sandbox(a) => a.handler.as_str(),
            Action::ImageImport(a) => a.handler.as_str(),
            Action::Pull(a) => a.handler.as_str(),
            Action::SandboxImage(a) => a.handler.as_str(),
            Action::Pod(a) => a.handler(),
            Action::Diff(a) | Action::KataCheck(a) => a.handler(),
            _ => "",
        };
        let configured_by_us = crate::scenario::model::CONFIGURED_HANDLERS.contains(&handler);
        if configured_by_us && !names.contains(&handler) {
            return Some(format!(
                "handler {handler} is not configured on this node (its handlers: {})",
                names.join(", ")
            ));
        }
        let kata_install = "needs the harness's own Kata install (its configuration file and kata-runtime), which an existing node does not have";
        match &row.action {
            Action::CtrRun(a) if a.runtime.starts_with("io.containerd.kata") => return Some(kata_install.into()),
            Action::KataCheck(_) => return Some(kata_install.into()),
            Action::Sandbox(_) if row.expect.guest_console == Some(true) => return Some(kata_install.into()),
            Action::Pull(pull) => return self.pull_skip(pull),
            Action::SandboxImage(a) if !a.preloaded && !self.allow_changes => {
                return Some(
                    "changes the node: removes its sandbox image (and imports it again); --allow-node-changes lets it".into(),
                )
            }
            _ => {}
        }
        None
    }

    /// Why a pull row cannot run here: it changes the node (named, for the user to allow),
    /// or the node lacks what it needs, or it would write over the node's own registry config.
    fn pull_skip(&self, pull: &super::model::PullAction) -> Option<String> {
        let registry = &self.registry;
        let Some(config_path) = &registry.config_path else {
            return Some("the node's CRI has no registry config_path (where hosts.toml is read)".into());
        };
        let (addr, _) = registry_of_row(pull);
        let host = hosts_namespace(pull);
        let ip = crate::registry::REGISTRY_IP;
        if !self.allow_changes {
            let hosts = if pull.hosts_toml {
                format!(", writes {}/{host}/hosts.toml", config_path.display())
            } else {
                String::new()
            };
            return Some(format!(
                "changes the node: adds {ip}/32 to lo in containerd's network where missing, runs docker-registry at {addr}{hosts} and pulls an image, each undone when the row ends; --allow-node-changes lets it"
            ));
        }
        if !registry.missing.is_empty() {
            return Some(format!(
                "needs {} on the node to run and fill a registry",
                registry.missing.join(", ")
            ));
        }
        if pull.hosts_toml && registry.hosts.contains(&host) {
            return Some(format!(
                "would write over {}/{host}, which the node already has",
                config_path.display()
            ));
        }
        None
    }

    /// Kata rows run where the node has a Kata handler.
    pub fn capabilities(&self) -> Capabilities {
        let has = |runtime: KataRuntime| {
            self.handlers
                .iter()
                .any(|(_, t)| KataRuntime::of_runtime_type(t) == Some(runtime))
        };
        Capabilities {
            kata_absent: (!has(KataRuntime::Go)).then(|| "the node has no Kata handler".to_owned()),
            kata_conditions: vec![],
            kata: None,
            kata_rs_absent: (!has(KataRuntime::Rust)).then(|| {
                "the node has no runtime-rs handler (io.containerd.kata-*-runtime-rs.v2)".to_owned()
            }),
            kata_rs: None,
        }
    }
}

impl Placement {
    /// The cached containerd line of a local placement (`2.1`); `None` for a directory
    /// choice, a VM or a cluster.
    pub fn containerd_line(&self) -> Option<&str> {
        match self {
            Placement::Local(ContainerdChoice::Line(line)) => Some(line),
            _ => None,
        }
    }

    pub fn kind(&self) -> PlacementKind {
        match self {
            Placement::Local(_) => PlacementKind::Local,
            Placement::Vm(_) => PlacementKind::Vm,
            Placement::Cluster(_) => PlacementKind::Cluster,
            // The suites that run on a containerd node of this host run on it too.
            Placement::Existing(_) => PlacementKind::Local,
            Placement::ExistingCluster(_) => PlacementKind::Cluster,
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

    /// `existing-containerd-1.6`: a node someone else set up, by its containerd line.
    pub fn existing(node: ExistingNode, version: crate::profile::Version) -> Self {
        Variant {
            label: format!("existing-containerd-{}.{}", version.major, version.minor),
            placement: Placement::Existing(node),
        }
    }

    /// `existing-k8s-1.20`: a cluster someone else set up, by its Kubernetes version.
    pub fn existing_cluster(
        cluster: crate::kube::cluster::attach::ExistingCluster,
        version: crate::profile::Version,
    ) -> Self {
        Variant {
            label: format!("existing-k8s-{}.{}", version.major, version.minor),
            placement: Placement::ExistingCluster(cluster),
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
    /// How Kata runs here, when it does, if not as on a KVM host with vhost_vsock (TCG, a
    /// user-space vsock, which build): repeated on every Kata row's report.
    pub kata_conditions: Vec<String>,
    /// The plan the local testbeds install Kata by.
    pub kata: Option<KataPlan>,
    /// Why runtime-rs cannot run here; `None` when it can.
    pub kata_rs_absent: Option<String>,
    /// The plan the local testbeds install runtime-rs by (its conditions are its rows').
    pub kata_rs: Option<KataPlan>,
}

/// Why runtime-rs rows are skipped where no layout has it.
const NO_RS: &str =
    "no Kata runtime-rs (run scripts/build-kata-rs, or pass a Kata 4.x --kata-release or --kata-bundle)";

/// Why they are skipped in VM guests.
const RS_LOCAL_ONLY: &str =
    "runtime-rs is installed on this host's own containerd nodes; VM guests get the Go runtime only";

impl Capabilities {
    /// The same on a node whose containerd is `line` (a cluster's): runtime-rs only from
    /// Kata 4.x's minimum containerd.
    pub fn on_containerd_line(&self, line: &str) -> Capabilities {
        match below_kata_4_minimum(line) {
            Some(why) => Capabilities {
                kata_rs_absent: Some(why),
                kata_rs: None,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// A node without Kata, for `why`.
    pub fn without_kata(why: &str) -> Self {
        Capabilities {
            kata_absent: Some(why.to_owned()),
            kata_conditions: vec![],
            kata: None,
            kata_rs_absent: Some(why.to_owned()),
            kata_rs: None,
        }
    }

    /// Probes this host for the default Kata (see [`KataChoice::Default`]).
    pub fn probe_local() -> Self {
        Self::probe_local_with(&KataChoice::Default).unwrap_or_else(|e| Capabilities {
            kata_absent: Some(crate::errors::chain(&e)),
            kata_conditions: vec![],
            kata: None,
            kata_rs_absent: Some(NO_RS.into()),
            kata_rs: None,
        })
    }

    /// Probes this host for a chosen Kata: the layout, then whether this host can run it
    /// (KVM, or TCG through the wrapper; vhost_vsock, or the user-space backend).
    /// An explicitly chosen layout that is missing or incomplete is an error.
    pub fn probe_local_with(choice: &KataChoice) -> Result<Self, KataError> {
        let chosen = choice.locate()?;
        let rs_layout = choice.locate_rs(chosen.as_ref())?;
        // One KVM verdict for both runtimes (they boot the same kind of guest).
        let host = chosen.as_ref().or(rs_layout.as_ref()).map(|layout| {
            let kvm = crate::vm::accel::kata_kvm_verdict(
                &crate::vm::accel::ProbeStore::for_this_boot(),
                layout.kernel().as_deref(),
            );
            KataHost::probe((!kvm.usable).then_some(kvm.reason))
        });
        let plan = |layout: Option<KataLayout>, runtime: KataRuntime, none: &str| match (layout, &host) {
            (Some(layout), Some(host)) => KataPlan::new(layout, host.clone(), runtime),
            _ => Err(none.to_owned()),
        };
        let go = plan(
            chosen.filter(|l| l.runtimes().contains(&KataRuntime::Go)),
            KataRuntime::Go,
            "no Kata artifacts (run scripts/build-kata, or pass --kata-bundle or --kata-release)",
        );
        let rs = plan(rs_layout, KataRuntime::Rust, NO_RS);
        Ok(Capabilities {
            kata_absent: go.as_ref().err().cloned(),
            kata_conditions: go.as_ref().map(|p| p.conditions.clone()).unwrap_or_default(),
            kata: go.ok(),
            kata_rs_absent: rs.as_ref().err().cloned(),
            kata_rs: rs.ok(),
        })
    }
    /// What a VM of `recipe` offers: Kata where the image ships a QEMU for it and this host
    /// has a Kata layout the local nodes can run (the same layout is installed in the guest).
    pub fn for_vm(recipe: &str, repo: &std::path::Path, local: &Capabilities) -> Self {
        Self::for_vm_on(
            recipe,
            crate::vm::image::ships_qemu(repo, recipe),
            local,
            &crate::vm::kvm::Nesting::probe(std::path::Path::new("/sys")),
        )
    }

    /// [`Self::for_vm`] for an image that does or does not ship QEMU, on a host whose KVM
    /// nesting is `nesting`.
    pub fn for_vm_on(
        recipe: &str,
        ships_qemu: bool,
        local: &Capabilities,
        nesting: &crate::vm::kvm::Nesting,
    ) -> Self {
        let absent = |why: String| Capabilities::without_kata(&why);
        if !ships_qemu {
            return absent(format!(
                "VM image {recipe} ships no QEMU for Kata's guests (vm-images/{recipe}/packages lists no qemu-system-x86; bookworm's does)"
            ));
        }
        let Some(host_plan) = &local.kata else {
            return absent(format!(
                "VM guests get this host's Kata layout, and it cannot run here: {}",
                local.kata_absent.as_deref().unwrap_or("no Kata")
            ));
        };
        match host_plan.in_vm_guest(nesting) {
            Ok(plan) => Capabilities {
                kata_absent: None,
                kata_conditions: std::iter::once(format!("in a VM guest ({recipe})"))
                    .chain(plan.conditions.iter().cloned())
                    .collect(),
                kata: Some(plan),
                kata_rs_absent: Some(RS_LOCAL_ONLY.into()),
                kata_rs: None,
            },
            Err(why) => absent(why),
        }
    }

    fn missing(&self, requirement: Requirement) -> Option<String> {
        match requirement {
            Requirement::Kata => self.kata_absent.clone(),
            Requirement::KataRs => self.kata_rs_absent.clone(),
            Requirement::Kvm => match &self.kata {
                Some(plan) => plan
                    .host
                    .no_kvm
                    .as_ref()
                    .map(|why| format!("Kata runs under TCG here ({why}); {}", tcg_sandbox_cost())),
                None => self.kata_absent.clone(),
            },
        }
    }
}

/// What `scripts/bench-kata` measured a Kata sandbox to cost under TCG, for the reason of a
/// row that needs KVM.
fn tcg_sandbox_cost() -> String {
    const BENCH: &str = include_str!("../../../bench/kata-1.6.json");
    let bench: serde_json::Value = serde_json::from_str(BENCH).unwrap_or_default();
    let median = |runtime: &str| bench["row_seconds"][runtime]["median"].as_f64();
    match (median("kata"), median("runc")) {
        (Some(kata), Some(runc)) => format!(
            "a Kata row took a median {kata} s under TCG against {runc} s for runc (bench/kata-1.6.json)"
        ),
        _ => "bench/kata-1.6.json has no Kata figure".into(),
    }
}

/// The Kata rows that run where Kata's guest is TCG inside a VM that runs under TCG: one
/// sandbox there takes minutes (bench/kata-in-guest.json), so the two that prove the runtime
/// and the guest kernel, not every Kata row.
pub const NESTED_TCG_ROWS: [&str; 2] = ["cri::kata-handler", "cri::kata-container"];

/// Why the other Kata rows are skipped there: what `scripts/bench-kata-in-guest` measured.
fn nested_tcg_cost() -> String {
    const BENCH: &str = include_str!("../../../bench/kata-in-guest.json");
    let bench: serde_json::Value = serde_json::from_str(BENCH).unwrap_or_default();
    let ready = |runtime: &str| bench["seconds"][runtime]["sandbox_ready"].as_f64();
    let figure = match (ready("kata"), ready("runc")) {
        (Some(kata), Some(runc)) => format!(
            "one Kata sandbox took {kata} s to become ready in a {} VM guest under TCG, against {runc} s for runc (bench/kata-in-guest.json)",
            bench["recipe"].as_str().unwrap_or("?")
        ),
        _ => "bench/kata-in-guest.json has no Kata figure".into(),
    };
    format!(
        "Kata's guest here is TCG inside a VM that runs under TCG: {figure}; of the Kata rows only {} run in VM guests here",
        NESTED_TCG_ROWS.join(" and ")
    )
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
    /// How this row runs here differently from a user's KVM host (e.g. Kata under TCG).
    pub conditions: Vec<String>,
    /// A critest trial expands into one row per spec (`<trial>::<spec>`); `--filter
    /// <trial>::<text>` keeps the trial and narrows its specs to this.
    pub spec_filter: Option<SpecFilter>,
}

/// The spec part of a `--filter` aimed at a critest trial's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFilter {
    pub text: String,
    /// `--exact`: the spec's full text, not a substring of it.
    pub exact: bool,
}

impl SpecFilter {
    pub fn matches(&self, spec: &str) -> bool {
        if self.exact {
            spec == self.text
        } else {
            spec.contains(&self.text)
        }
    }
}

/// The newest cached containerd line among the local variants (`2.3` of 1.7, 2.3).
fn newest_line<'a>(variants: impl Iterator<Item = &'a Variant>) -> Option<String> {
    let version = |line: &str| -> Vec<u32> { line.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    variants
        .filter_map(|v| v.placement.containerd_line())
        .max_by_key(|line| version(line))
        .map(str::to_owned)
}

/// All trials, in suite, row, variant order; each variant with what its node offers.
pub fn plan(suites: &[Suite], variants: &[(Variant, Capabilities)]) -> Vec<Trial> {
    // A local variant's containerd line is known here: what it offers follows from it.
    let variants: Vec<(Variant, Capabilities)> = variants
        .iter()
        .map(
            |(variant, capabilities)| match variant.placement.containerd_line() {
                Some(line) => (variant.clone(), capabilities.on_containerd_line(line)),
                None => (variant.clone(), capabilities.clone()),
            },
        )
        .collect();
    let newest = newest_line(variants.iter().map(|(v, _)| v));
    let mut trials = Vec::new();
    for suite in suites {
        for row in &suite.rows {
            for (variant, capabilities) in &variants {
                // A suite's rows expand only against the placements it declares.
                if !suite.placements.contains(&variant.placement.kind()) {
                    continue;
                }
                // ... and the local lines.
                let line = variant.placement.containerd_line();
                if suite.local_lines == LocalLines::Newest && line.is_some() && line != newest.as_deref() {
                    continue;
                }
                // A row with a node of its own runs in its containerd line's variant only.
                let skip = row
                    .node
                    .as_ref()
                    .and_then(|node| node.skip_reason(variant.placement.containerd_line()))
                    .or_else(|| {
                        row.requires
                            .iter()
                            .find_map(|r| capabilities.missing(*r).map(|why| format!("needs {r}: {why}")))
                    })
                    .or_else(|| row.skip.clone())
                    .or_else(|| {
                        let name = format!("{}::{}", suite.name, row.scenario);
                        (row.requires.contains(&Requirement::Kata)
                            && capabilities.kata.as_ref().is_some_and(|k| k.slowdown() > 1)
                            && !NESTED_TCG_ROWS.contains(&name.as_str()))
                        .then(|| format!("needs kata: {}", nested_tcg_cost()))
                    })
                    .or_else(|| match &variant.placement {
                        Placement::Existing(node) => node.skip(row),
                        _ => None,
                    })
                    .or_else(|| {
                        row.critest()
                            .and_then(|_| crate::critest::unavailable(variant.placement.kind()))
                    });
                let conditions = match &capabilities.kata_rs {
                    _ if skip.is_some() => vec![],
                    Some(rs) if row.requires.contains(&Requirement::KataRs) => rs.conditions.clone(),
                    _ if row.requires.contains(&Requirement::Kata) => capabilities.kata_conditions.clone(),
                    _ => vec![],
                };
                trials.push(Trial {
                    name: format!("{}::{}::{}", suite.name, row.scenario, variant.label),
                    suite: suite.name.clone(),
                    row: row.clone(),
                    variant: variant.clone(),
                    skip,
                    conditions,
                    spec_filter: None,
                });
            }
        }
    }
    trials
}

/// Why a runtime-rs row does not run on a containerd `line` below Kata 4.x's minimum.
fn below_kata_4_minimum(line: &str) -> Option<String> {
    use crate::profile::check::KATA_4_MIN_CONTAINERD as MIN;
    let version: crate::profile::Version = line.parse().ok()?;
    (version < MIN).then(|| {
        format!(
            "Kata 4.x supports containerd {}.{} and later (its versions.yaml), this node runs {line}",
            MIN.major, MIN.minor
        )
    })
}

/// Keeps trials whose name contains `filter` (or equals it, with `exact`). A critest trial
/// is also kept when the filter names one of its spec rows (`<trial>::<spec text>`): it then
/// runs only the specs that match the rest.
pub fn filter(trials: Vec<Trial>, filter: Option<&str>, exact: bool) -> Vec<Trial> {
    let Some(f) = filter else {
        return trials;
    };
    trials
        .into_iter()
        .filter_map(|mut t| {
            let whole = if exact { t.name == f } else { t.name.contains(f) };
            if whole {
                return Some(t);
            }
            let rest = f.strip_prefix(t.name.as_str())?.strip_prefix("::")?;
            if t.row.critest().is_none() || rest.is_empty() {
                return None;
            }
            t.spec_filter = Some(SpecFilter {
                text: rest.to_owned(),
                exact,
            });
            Some(t)
        })
        .collect()
}

impl Trial {
    /// This trial's result (the report's row).
    pub fn result(
        &self,
        verdict: Verdict,
        observed: &str,
        message: &str,
        took: Duration,
        evidence: Evidence,
    ) -> TrialResult {
        TrialResult {
            name: self.name.clone(),
            suite: self.suite.clone(),
            scenario: self.row.scenario.clone(),
            variant: self.variant.label.clone(),
            verdict,
            expected: self.row.expected_summary(),
            observed: observed.to_owned(),
            message: message.to_owned(),
            seconds: took.as_secs_f64(),
            conditions: self.conditions.clone(),
            bundle: None,
            attempts: vec![],
            evidence,
        }
    }
}

/// The registry a pull row starts (`10.254.254.254:5443`), and the scheme it speaks. Here, not
/// in crate::registry, which serves any image and knows nothing of rows (and critest uses it).
pub fn registry_of_row(action: &super::model::PullAction) -> (String, &'static str) {
    let (port, scheme) = match action.registry {
        super::model::RegistryKind::Tls => (crate::registry::TLS_PORT, "https"),
        super::model::RegistryKind::Plain => (crate::registry::PLAIN_PORT, "http"),
        super::model::RegistryKind::Down => (crate::registry::DOWN_PORT, "https"),
    };
    (format!("{}:{port}", crate::registry::REGISTRY_IP), scheme)
}

/// The registry host a pull row's image names, and so the dir under config_path its
/// hosts.toml goes in: the mirrored one (`docker.io`), else the row's own registry.
pub fn hosts_namespace(action: &super::model::PullAction) -> String {
    action.mirror.clone().unwrap_or_else(|| registry_of_row(action).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runc row and a Kata row.
    const CRI: &str = r#"
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

    fn suite() -> Suite {
        Suite::parse(std::path::Path::new("t.yaml"), CRI).unwrap()
    }

    #[test]
    fn one_trial_per_row_and_variant_with_kata_skipped_for_its_reason() {
        let variants = vec![
            Variant::containerd(ContainerdChoice::Line("1.6".into())),
            Variant::containerd(ContainerdChoice::Line("2.1".into())),
        ];
        let caps = Capabilities {
            kata_absent: Some("no containerd-shim-kata-v2 on PATH".into()),
            kata_conditions: vec![],
            kata: None,
            kata_rs_absent: Some(NO_RS.into()),
            kata_rs: None,
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

    #[test]
    fn a_newest_line_suite_runs_on_the_newest_local_line_of_the_run_only() {
        let caps = Capabilities {
            kata_absent: Some("no Kata".into()),
            kata_conditions: vec![],
            kata: None,
            kata_rs_absent: Some(NO_RS.into()),
            kata_rs: None,
        };
        let lines = |lines: &[&str]| -> Vec<(Variant, Capabilities)> {
            lines
                .iter()
                .map(|l| {
                    (
                        Variant::containerd(ContainerdChoice::Line((*l).into())),
                        caps.clone(),
                    )
                })
                .collect()
        };
        let text = "suite: w\nlocal_lines: newest\nrows:\n  - scenario: r\n    sandbox: {}\n    expect: { runtime_type: io.containerd.runc.v2 }\n";
        let newest = Suite::parse(std::path::Path::new("w.yaml"), text).unwrap();
        let names = |suite: &Suite, variants: &[(Variant, Capabilities)]| -> Vec<String> {
            plan(std::slice::from_ref(suite), variants)
                .into_iter()
                .map(|t| t.name)
                .collect()
        };
        // 2.3 is newer than 1.7 and 2.1 whatever the order (and 2.10 than 2.9).
        assert_eq!(
            names(&newest, &lines(&["2.3", "1.7", "2.1"])),
            ["w::r::containerd-2.3"]
        );
        assert_eq!(
            names(&newest, &lines(&["2.9", "2.10"])),
            ["w::r::containerd-2.10"]
        );
        assert_eq!(names(&newest, &lines(&["1.7"])), ["w::r::containerd-1.7"]);
        // The default runs on every line.
        let all = Suite::parse(
            std::path::Path::new("w.yaml"),
            &text.replace("local_lines: newest\n", ""),
        )
        .unwrap();
        assert_eq!(names(&all, &lines(&["1.7", "2.3"])).len(), 2);
    }

    /// Capabilities with a Kata plan whose host has KVM (`no_kvm: None`) or not.
    fn kata_with(no_kvm: Option<&str>) -> Capabilities {
        use crate::artifacts::kata::{KataLayout, KataSource};
        use crate::provision::kata::{KataHost, KataPlan};
        let plan = KataPlan {
            layout: KataLayout {
                root: "/l".into(),
                source: KataSource::SourceBuild,
                version: "3.30.0".into(),
            },
            runtime: KataRuntime::Go,
            host: KataHost {
                no_kvm: no_kvm.map(str::to_owned),
                vhost_vsock: true,
                vhost_net: true,
                syslog: true,
                qemu: None,
                node: crate::provision::kata::NodeKind::Local,
            },
            qemu: "/opt/kata/bin/qemu-system-x86_64".into(),
            changes: vec![],
            conditions: vec![],
        };
        Capabilities {
            kata_absent: None,
            kata_conditions: vec![],
            kata: Some(plan),
            kata_rs_absent: Some(NO_RS.into()),
            kata_rs: None,
        }
    }

    #[test]
    fn a_row_needing_kvm_runs_only_where_kata_has_it_and_says_the_tcg_cost_elsewhere() {
        let caps = kata_with(Some("no /dev/kvm"));
        let why = caps.missing(Requirement::Kvm).expect("skipped under TCG");
        assert!(why.contains("under TCG here (no /dev/kvm)"), "{why}");
        assert!(
            why.contains("a Kata row took a median ") && why.contains("bench/kata-1.6.json"),
            "{why}"
        );
        assert_eq!(
            caps.missing(Requirement::Kata),
            None,
            "Kata itself runs under TCG"
        );
        assert_eq!(kata_with(None).missing(Requirement::Kvm), None);
        let absent = Capabilities {
            kata_absent: Some("no Kata artifacts".into()),
            kata_conditions: vec![],
            kata: None,
            kata_rs_absent: Some(NO_RS.into()),
            kata_rs: None,
        };
        assert_eq!(
            absent.missing(Requirement::Kvm).as_deref(),
            Some("no Kata artifacts")
        );
    }

    #[test]
    fn runtime_rs_rows_take_its_conditions_and_skip_below_kata_4s_containerd() {
        let text = format!(
            "{CRI}  - scenario: kata-rs-handler
    requires: [kata-rs]
    sandbox: {{ handler: kata-qemu-runtime-rs }}
    expect: {{ runtime_type: io.containerd.kata-qemu-runtime-rs.v2 }}
"
        );
        let suite = Suite::parse(std::path::Path::new("t.yaml"), &text).unwrap();
        let mut rs = kata_with(Some("no /dev/kvm")).kata.unwrap();
        rs.runtime = KataRuntime::Rust;
        rs.conditions = vec!["Rust runtime (runtime-rs)".into()];
        let caps = Capabilities {
            kata_conditions: vec!["Go runtime".into()],
            kata_rs_absent: None,
            kata_rs: Some(rs),
            ..kata_with(Some("no /dev/kvm"))
        };
        let variants: Vec<_> = ["1.6", "1.7"]
            .into_iter()
            .map(|line| {
                (
                    Variant::containerd(ContainerdChoice::Line(line.into())),
                    caps.clone(),
                )
            })
            .collect();
        let trials = plan(&[suite], &variants);
        let trial = |name: &str| trials.iter().find(|t| t.name == name).unwrap();
        assert_eq!(
            trial("cri::kata-handler::containerd-1.7").conditions,
            ["Go runtime"]
        );
        assert_eq!(
            trial("cri::kata-rs-handler::containerd-1.7").conditions,
            ["Rust runtime (runtime-rs)"]
        );
        assert_eq!(trial("cri::kata-rs-handler::containerd-1.7").skip, None);
        assert_eq!(
            trial("cri::kata-rs-handler::containerd-1.6").skip.as_deref(),
            Some("needs kata-rs: Kata 4.x supports containerd 1.7 and later (its versions.yaml), this node runs 1.6")
        );
        assert_eq!(trial("cri::kata-handler::containerd-1.6").skip, None);
        // A cluster on 1.6 has no runtime-rs, with the same reason.
        let on_16 = caps.on_containerd_line("1.6");
        assert!(on_16.kata_rs.is_none() && on_16.kata.is_some());
        assert_eq!(
            on_16.missing(Requirement::KataRs).as_deref(),
            Some("Kata 4.x supports containerd 1.7 and later (its versions.yaml), this node runs 1.6")
        );
        assert!(caps.on_containerd_line("2.3").kata_rs.is_some());
    }

    /// One local variant on a node that has Kata.
    fn with_kata(line: &str) -> Vec<(Variant, Capabilities)> {
        vec![(
            Variant::containerd(ContainerdChoice::Line(line.into())),
            Capabilities {
                kata_absent: None,
                kata_conditions: vec!["Kata guest under TCG".into()],
                kata: None,
                kata_rs_absent: Some(NO_RS.into()),
                kata_rs: None,
            },
        )]
    }

    #[test]
    fn a_row_with_its_own_node_runs_in_its_line_only_and_says_why_elsewhere() {
        let text = r#"
suite: upgrade
placements: [local]
rows:
  - scenario: upgraded
    node: { containerd: "2.1", upgrade_from: "1.7" }
    sandbox: {}
    expect: { runtime_type: io.containerd.runc.v2 }
"#;
        let suite = Suite::parse(std::path::Path::new("u.yaml"), text).unwrap();
        let mut variants = with_kata("1.7");
        variants.extend(with_kata("2.1"));
        let dir = ContainerdChoice::Dir("/opt/containerd-2.1".into());
        variants.push((Variant::containerd(dir), variants[0].1.clone()));
        let trials = plan(&[suite], &variants);
        let skips: Vec<Option<&str>> = trials.iter().map(|t| t.skip.as_deref()).collect();
        let elsewhere = Some("runs on containerd 2.1 only (the upgrade target), on a node of its own");
        assert_eq!(skips, [elsewhere, None, elsewhere]);
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

    #[test]
    fn a_filter_naming_critest_specs_keeps_the_trial_and_narrows_its_specs() {
        let text = "suite: critest\nplacements: [local, vm]\nrows:\n  - scenario: runc\n    critest: {}\n    expect: {}\n";
        let suite = Suite::parse(std::path::Path::new("c.yaml"), text).unwrap();
        let mut variants = with_kata("2.1");
        let no_kata = Capabilities::without_kata("no Kata");
        variants.push((
            Variant::vm("bookworm"),
            Capabilities::for_vm_on(
                "bookworm",
                true,
                &no_kata,
                &crate::vm::kvm::Nesting::Unknown {
                    reason: "test".into(),
                },
            ),
        ));
        let trials = plan(&[suite], &variants);
        assert_eq!(trials.len(), 2);
        let vm = trials
            .iter()
            .find(|t| t.name == "critest::runc::vm-bookworm")
            .unwrap();
        assert!(
            vm.skip.as_deref().unwrap().contains("local containerds only"),
            "{:?}",
            vm.skip
        );

        let whole = filter(trials.clone(), Some("critest::runc"), false);
        assert_eq!(whole.len(), 2);
        assert!(whole.iter().all(|t| t.spec_filter.is_none()));

        let spec = "[k8s.io] Image Manager listImage";
        let narrowed = filter(
            trials.clone(),
            Some(&format!("critest::runc::containerd-2.1::{spec}")),
            false,
        );
        assert_eq!(narrowed.len(), 1);
        let f = narrowed[0].spec_filter.as_ref().unwrap();
        assert!(f.matches(
            "[k8s.io] Image Manager listImage should get exactly 3 image in the result list [Conformance]"
        ));
        assert!(!f.matches("[k8s.io] PodSandbox"));

        let exact = filter(
            trials,
            Some(&format!("critest::runc::containerd-2.1::{spec}")),
            true,
        );
        let f = exact[0].spec_filter.as_ref().unwrap();
        assert!(f.exact && f.matches(spec) && !f.matches(&format!("{spec} x")));
    }
}
