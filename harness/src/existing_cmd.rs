//! The variants of nodes and clusters someone else set up (`--target cri://`, `ssh://`,
//! `--kubeconfig`), discovered when the run is planned.

use std::path::Path;

use kata_harness::kube::cluster::attach::{ExistingCluster, RuntimeFrom};
use kata_harness::node::Target;
use kata_harness::provision::reach::Reach;
use kata_harness::scenario::Variant;

use crate::path_arg;

/// The variant of an existing node, with what it offers: discovered through its CRI now.
pub(crate) fn existing_variant(
    target: &Target,
    reach: Reach,
    socket: &Path,
    allow_changes: bool,
) -> Result<(Variant, kata_harness::scenario::Capabilities), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("async runtime: {e}"))?;
    let found = runtime
        .block_on(kata_harness::provision::existing::discover_node(&reach, socket))
        .map_err(|e| format!("--target {target}: {}", kata_harness::errors::chain_line(&e)))?;
    let node = kata_harness::scenario::plan::ExistingNode {
        reach,
        socket: socket.to_owned(),
        handlers: found
            .handlers
            .iter()
            .map(|h| (h.name.clone(), h.runtime_type.clone()))
            .collect(),
        allow_changes,
        registry: found.registry.clone(),
    };
    // runtime-rs's rows only from Kata 4.x's minimum containerd, as on the harness's nodes.
    let line = format!("{}.{}", found.version.major, found.version.minor);
    let capabilities = node.capabilities().on_containerd_line(&line);
    Ok((Variant::existing(node, found.version), capabilities))
}

/// The variant of an existing cluster: its version, and Kata rows where it has a RuntimeClass
/// named kata.
pub(crate) fn existing_cluster_variant(
    kubeconfig: &Path,
    from: RuntimeFrom,
) -> Result<(Variant, kata_harness::scenario::Capabilities), String> {
    if !kubeconfig.is_file() {
        return Err(format!("--kubeconfig {}: no such file", kubeconfig.display()));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("async runtime: {e}"))?;
    let (version, classes) = runtime
        .block_on(kata_harness::kube::cluster::attach::probe(kubeconfig))
        .map_err(|e| {
            format!(
                "--kubeconfig {}: {}",
                kubeconfig.display(),
                kata_harness::errors::chain_line(&e)
            )
        })?;
    let capabilities = kata_harness::scenario::Capabilities {
        kata_absent: (!classes.iter().any(|c| c == "kata")).then(|| {
            format!(
                "the cluster has no RuntimeClass kata (its RuntimeClasses: {})",
                classes.join(", ")
            )
        }),
        kata_conditions: vec![],
        kata: None,
        kata_rs_absent: (!classes.iter().any(|c| c == "kata-qemu-runtime-rs")).then(|| {
            format!(
                "the cluster has no RuntimeClass kata-qemu-runtime-rs (its RuntimeClasses: {})",
                classes.join(", ")
            )
        }),
        kata_rs: None,
    };
    Ok((
        Variant::existing_cluster(
            ExistingCluster {
                kubeconfig: path_arg(kubeconfig).into(),
                from,
            },
            version,
        ),
        capabilities,
    ))
}

/// `--runtime-from`: [`RuntimeFrom`] as the command line spells it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RuntimeFromArg {
    Cri,
    PodStatus,
}

impl RuntimeFromArg {
    /// As it is written on the command line (the reproduce command repeats it).
    pub(crate) fn name(self) -> &'static str {
        match self {
            RuntimeFromArg::Cri => "cri",
            RuntimeFromArg::PodStatus => "pod-status",
        }
    }
}

impl From<RuntimeFromArg> for RuntimeFrom {
    fn from(arg: RuntimeFromArg) -> Self {
        match arg {
            RuntimeFromArg::Cri => RuntimeFrom::Cri,
            RuntimeFromArg::PodStatus => RuntimeFrom::PodStatus,
        }
    }
}
