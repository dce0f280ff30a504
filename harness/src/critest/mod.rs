//! critest, the upstream CRI validation suite (cri-tools), run against a testbed offline, its
//! specs reported as rows of our report.
//!
//! * [`images`]: critest's default test images, rebuilt offline under their upstream names
//!   and served by a mirror registry in the node's network.
//! * [`ginkgo`]: critest's ginkgo JSON report read back into one outcome per spec (pure).
//! * [`run`]: one critest trial: mirror, critest under a deadline in the node's namespaces,
//!   one [`TrialResult`](crate::report::TrialResult) per spec.
//!
//! Invariant: a spec is reported passed only when critest itself reported it passed; a spec
//! that cannot run offline is skipped with its reason (decided here, passed to critest as
//! `--ginkgo.skip`, never run), and everything critest did not report is a failure.

pub mod ginkgo;
pub mod images;
pub mod run;

pub use crate::scenario::model::critest::CritestAction;
use crate::scenario::model::PlacementKind;

/// Why a critest row cannot run on this placement, decided before anything starts.
pub fn unavailable(placement: PlacementKind) -> Option<String> {
    match placement {
        PlacementKind::Local => crate::artifacts::cri_tools::critest().is_none().then(|| {
            "no critest binary (run scripts/build-cri-tools, or set KATA_HARNESS_CRITEST)".into()
        }),
        // Measured: a CRI row takes about 10x longer in the TCG guest than locally (README), and
        // nearly every one of critest's 117 specs starts a sandbox; critest, its test images
        // and a mirror registry would also have to be copied into the guest. The local target
        // runs the same containerd versions (1.6 and 2.1 are the VM images' too).
        PlacementKind::Vm => Some(
            "critest runs against the local containerds only: in a TCG VM guest its 117 specs would take most of an hour (CRI rows run about ten times slower there than locally), and the local target covers the same containerd versions".into(),
        ),
        PlacementKind::Cluster => Some("critest talks to a CRI socket, not a cluster".into()),
    }
}
