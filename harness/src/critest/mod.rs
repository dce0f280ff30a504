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

use serde::Deserialize;

use crate::scenario::model::{PlacementKind, Row};

/// A critest row: `critest: { handler: crun }`. The specs are critest's, so the row expects
/// nothing more (`expect: {}`): every spec is a row of the report.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CritestAction {
    /// The runtime handler critest runs every sandbox with (`--runtime-handler`).
    /// Default: `runc`.
    #[serde(default = "default_handler")]
    pub handler: String,
    /// A ginkgo regular expression: only specs whose full text matches run
    /// (`--ginkgo.focus`). Default: every validation spec.
    #[serde(default)]
    pub focus: Option<String>,
}

fn default_handler() -> String {
    "runc".into()
}

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

/// A critest row with handler runc: the control the suite's Kata rows are judged against.
pub fn is_runc_control(row: &Row) -> bool {
    row.critest.as_ref().is_some_and(|a| a.handler == "runc")
}

/// Checks a critest row: the handler is configured, Kata handlers declare `requires: [kata]`,
/// the focus is given as text, and nothing is expected besides critest's own verdicts.
pub fn validate_row(row: &Row, action: &CritestAction) -> Result<(), (&'static str, String)> {
    use crate::scenario::model::{Requirement, CONFIGURED_HANDLERS};
    if !CONFIGURED_HANDLERS.contains(&action.handler.as_str()) {
        return Err((
            "critest.handler",
            format!(
                "unknown handler {:?} (configured: {})",
                action.handler,
                CONFIGURED_HANDLERS.join(", ")
            ),
        ));
    }
    if action.handler.starts_with("kata") && !row.requires.contains(&Requirement::Kata) {
        return Err((
            "requires",
            "a Kata critest row must declare `requires: [kata]`".into(),
        ));
    }
    if action.focus.as_deref().is_some_and(str::is_empty) {
        return Err(("critest.focus", "is empty: leave it out to run every spec".into()));
    }
    if row.expect != Default::default() {
        return Err((
            "expect",
            "a critest row expects nothing itself (`expect: {}`): each critest spec is a row".into(),
        ));
    }
    Ok(())
}

/// The expectation of every spec row.
pub fn expected_summary(action: &CritestAction) -> String {
    format!("critest spec passes (handler {})", action.handler)
}
