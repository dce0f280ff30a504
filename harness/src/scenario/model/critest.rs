//! The `critest:` row action: the handler critest runs with and an optional focus; its
//! validation and its one-line expectation. critest itself runs in crate::critest.

use serde::Deserialize;

use super::{Requirement, Row, CONFIGURED_HANDLERS};

/// A critest row: `critest: { handler: crun }`. The specs are critest's, so the row expects
/// nothing more (`expect: {}`): every spec is a row of the report.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
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

/// A critest row with handler runc: the control the suite's Kata rows are judged against.
pub fn is_runc_control(row: &Row) -> bool {
    row.critest().is_some_and(|a| a.handler == "runc")
}

/// Checks a critest row: the handler is configured, Kata handlers declare `requires: [kata]`,
/// the focus is given as text, and nothing is expected besides critest's own verdicts.
pub fn validate_row(row: &Row, action: &CritestAction) -> Result<(), (&'static str, String)> {
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
    Requirement::check(
        &row.requires,
        Requirement::for_handler(&action.handler),
        "critest",
    )
    .map_err(|e| ("requires", e))?;
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
