//! A row's own node (`node:`): a containerd set up just for that row, differently from the
//! variant's shared testbed: upgraded from an older line with the older line's config, given
//! a config rendered for another line, or with the legacy `untrusted_workload_runtime`.
//!
//! Invariant: a `node:` block that loads names containerd lines this harness runs, an upgrade
//! that goes forward, and a config the target line really reads; anything else is an error
//! naming the field (`node.<field>`), before anything boots.

use serde::Deserialize;

use super::{Action, Requirement, Row, CONFIGURED_HANDLERS};
use crate::profile::{Version, DEFAULT_CONTAINERD_LINES};

/// The pod annotation that sends a pod to `untrusted_workload_runtime` (containerd 1.x CRI).
pub const UNTRUSTED_WORKLOAD: &str = "io.kubernetes.cri.untrusted-workload";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSetup {
    /// The containerd line the row runs on (`1.6`, `1.7`, `2.1`, required): the row runs in
    /// that line's variant only, and is skipped in the others with the reason.
    pub containerd: String,
    /// First run this older line on the node with a config rendered for it (its schema),
    /// import the standard images with it and stop it; then start `containerd` on the same
    /// config file, root and state dirs (an in-place upgrade). Default: none.
    #[serde(default)]
    pub upgrade_from: Option<String>,
    /// Render the config for this other line instead of `containerd`'s own (the file a
    /// downgrade would leave behind). Default: none, the config of `containerd`.
    #[serde(default)]
    pub config_for: Option<String>,
    /// Route pods annotated `io.kubernetes.cri.untrusted-workload: "true"` (and no handler)
    /// to this configured handler's runtime through the legacy `untrusted_workload_runtime`
    /// table (containerd 1.x; 2.x ignores the key). Default: none.
    #[serde(default)]
    pub untrusted_workload_runtime: Option<String>,
    /// Where the runtime handlers are written: `main` (the config file itself) or `drop-in`
    /// (a file in a `conf.d` directory the main file imports, as kata-deploy 4.x writes them;
    /// containerd 2.0+). Default: `main`.
    #[serde(default)]
    pub handlers: HandlersIn,
}

/// Where a node's runtime handler tables are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HandlersIn {
    /// In the config file itself.
    #[default]
    Main,
    /// In `conf.d/kata-deploy.toml`, which the main file imports (containerd 2.0+).
    DropIn,
}

impl NodeSetup {
    /// Why this row does not run on the variant of `line` (a containerd line, or `None` for a
    /// variant that is not a cached local line), or `None` when it runs there.
    pub fn skip_reason(&self, line: Option<&str>) -> Option<String> {
        if line == Some(self.containerd.as_str()) {
            return None;
        }
        let role = if self.upgrade_from.is_some() {
            " (the upgrade target)"
        } else {
            ""
        };
        Some(format!(
            "runs on containerd {} only{role}, on a node of its own",
            self.containerd
        ))
    }

    /// One line for reports: what is special about this node.
    pub fn describe(&self) -> String {
        let mut text = format!("own node: containerd {}", self.containerd);
        if let Some(from) = &self.upgrade_from {
            text.push_str(&format!(", upgraded from {from} keeping its config"));
        }
        if let Some(other) = &self.config_for {
            text.push_str(&format!(", config rendered for {other}"));
        }
        if let Some(handler) = &self.untrusted_workload_runtime {
            text.push_str(&format!(", untrusted_workload_runtime = {handler}"));
        }
        if self.handlers == HandlersIn::DropIn {
            text.push_str(", handlers in a conf.d drop-in file");
        }
        text
    }
}

/// A known line, as a version; the error names the field.
fn line(field: &'static str, text: &str) -> Result<Version, (&'static str, String)> {
    if !DEFAULT_CONTAINERD_LINES.contains(&text) {
        return Err((
            field,
            format!(
                "unknown containerd line {text:?} (known: {})",
                DEFAULT_CONTAINERD_LINES.join(", ")
            ),
        ));
    }
    text.parse()
        .map_err(|e| (field, format!("{text:?} is not a version: {e}")))
}

/// The checks of a row's `node:` block, and of what fits with it.
pub(super) fn validate_row(row: &Row, node: &NodeSetup) -> Result<(), (&'static str, String)> {
    let target = line("node.containerd", &node.containerd)?;
    if let Some(from) = &node.upgrade_from {
        let older = line("node.upgrade_from", from)?;
        if older >= target {
            return Err((
                "node.upgrade_from",
                format!(
                    "an upgrade goes to a newer line: {from} is not older than {}",
                    node.containerd
                ),
            ));
        }
    }
    if let Some(other) = &node.config_for {
        if line("node.config_for", other)? == target {
            return Err((
                "node.config_for",
                format!("{other} is the node's own line; config_for names another one"),
            ));
        }
        if node.upgrade_from.is_some() {
            return Err((
                "node.config_for",
                "an upgrade keeps the config of upgrade_from: set one of upgrade_from, config_for".into(),
            ));
        }
    }
    if node.handlers == HandlersIn::DropIn {
        let reads = node
            .upgrade_from
            .as_deref()
            .or(node.config_for.as_deref())
            .unwrap_or(&node.containerd);
        if line("node.containerd", reads)?.major < 2 {
            return Err((
                "node.handlers",
                format!("containerd {reads} puts an imported CRI plugin table in place of the main file's whole table: handlers in a drop-in file need 2.0+ (as kata-deploy 4.x does)"),
            ));
        }
        if node.untrusted_workload_runtime.is_some() {
            return Err((
                "node.handlers",
                "the legacy untrusted_workload_runtime is written in the main file: set one of handlers: drop-in, untrusted_workload_runtime".into(),
            ));
        }
    }
    if let Some(handler) = &node.untrusted_workload_runtime {
        if !CONFIGURED_HANDLERS.contains(&handler.as_str()) {
            return Err((
                "node.untrusted_workload_runtime",
                format!(
                    "unknown handler {handler:?} (configured: {})",
                    CONFIGURED_HANDLERS.join(", ")
                ),
            ));
        }
        // Read by the config of the line that writes it: the rendered file's line.
        let reads = node.config_for.as_deref().unwrap_or(&node.containerd);
        if line("node.containerd", reads)?.major >= 2 {
            return Err((
                "node.untrusted_workload_runtime",
                format!(
                    "containerd {reads} ignores untrusted_workload_runtime (removed in 2.0: \"Ignoring unknown key in TOML\"); it needs a 1.x line"
                ),
            ));
        }
        let untrusted = row
            .sandbox()
            .is_some_and(|s| s.annotations.get(UNTRUSTED_WORKLOAD).map(String::as_str) == Some("true"));
        if let Some(needed) = Requirement::for_handler(handler).filter(|_| untrusted) {
            if !row.requires.contains(&needed) {
                return Err((
                    "requires",
                    format!("a pod annotated untrusted-workload runs on Kata here: declare `requires: [{needed}]`"),
                ));
            }
        }
    }
    if matches!(row.action, Action::Kube(_) | Action::Critest(_)) {
        return Err((
            "node",
            format!(
                "a {} row does not run on a containerd node of its own",
                row.action.key()
            ),
        ));
    }
    let start_error = row.expect.start_error.as_deref();
    match (&row.action, start_error) {
        (Action::NodeStart, Some(text)) if text.trim().is_empty() => Err((
            "expect.start_error",
            "needs the text containerd's start error must contain".into(),
        )),
        (Action::NodeStart, Some(_)) => {
            let others = row.expect.clone();
            let only_start_error = super::Expect {
                start_error: None,
                ..others
            } == super::Expect::default();
            if only_start_error {
                Ok(())
            } else {
                Err((
                    "expect",
                    "a node that must fail to start expects only start_error".into(),
                ))
            }
        }
        (Action::NodeStart, None) => Err((
            "expect.start_error",
            "a node row without an action is the node's start: it must expect start_error".into(),
        )),
        (_, Some(_)) => Err((
            "expect.start_error",
            "a node that fails to start runs no action: drop the action, or the start_error".into(),
        )),
        (_, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Action, Suite};

    const UPGRADE: &str = r#"
suite: upgrade
placements: [local]
rows:
  - scenario: upgraded-runc
    node: { containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2 }
  - scenario: upgraded-kata
    requires: [kata]
    node: { containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { handler: kata }
    expect: { runtime_type: io.containerd.kata.v2 }
  - scenario: v3-on-17
    node: { containerd: "1.7", config_for: "2.1" }
    expect: { start_error: "unsupported config version" }
  - scenario: untrusted-kata
    requires: [kata]
    node: { containerd: "1.6", untrusted_workload_runtime: kata }
    sandbox: { annotations: { io.kubernetes.cri.untrusted-workload: "true" } }
    expect: { runtime_type: io.containerd.kata.v2 }
"#;

    fn parse(text: &str) -> Result<Suite, String> {
        Suite::parse(Path::new("suites/u.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn node_rows_load_and_a_row_without_action_is_the_node_start() {
        let suite = parse(UPGRADE).unwrap();
        let node = suite.rows[0].node.as_ref().unwrap();
        assert_eq!(node.upgrade_from.as_deref(), Some("1.7"));
        assert_eq!(suite.rows[2].action, Action::NodeStart);
        assert_eq!(
            suite.rows[3].sandbox().unwrap().annotations["io.kubernetes.cri.untrusted-workload"],
            "true"
        );
        assert_eq!(
            suite.rows[2].expected_summary(),
            "containerd refuses to start: unsupported config version"
        );
    }

    #[test]
    fn the_suite_in_the_checkout_loads() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/upgrade.yaml");
        let suite = Suite::load(&file).unwrap();
        assert!(suite.rows.iter().all(|r| r.node.is_some()));
    }

    #[test]
    fn node_mistakes_name_the_row_and_field() {
        let cases = [
            // a typo inside the block
            (
                r#"upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                r#"upgrade_form: "1.7" }
    sandbox: { container: true }"#,
                "row 1 (upgraded-runc): ",
                "upgrade_form",
            ),
            // a line the harness does not run
            (
                r#"containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                r#"containerd: "2.0", upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                "row 1 (upgraded-runc), field node.containerd: ",
                "unknown containerd line \"2.0\"",
            ),
            // an upgrade that goes backwards
            (
                r#"containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                r#"containerd: "1.7", upgrade_from: "2.1" }
    sandbox: { container: true }"#,
                "row 1 (upgraded-runc), field node.upgrade_from: ",
                "2.1 is not older than 1.7",
            ),
            // ... or nowhere
            (
                r#"containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                r#"containerd: "2.1", upgrade_from: "2.1" }
    sandbox: { container: true }"#,
                "row 1 (upgraded-runc), field node.upgrade_from: ",
                "2.1 is not older than 2.1",
            ),
            // config_for names another line, and not together with an upgrade
            (
                r#"config_for: "2.1" }"#,
                r#"config_for: "1.7" }"#,
                "row 3 (v3-on-17), field node.config_for: ",
                "the node's own line",
            ),
            (
                r#"config_for: "2.1" }"#,
                r#"config_for: "2.1", upgrade_from: "1.6" }"#,
                "row 3 (v3-on-17), field node.config_for: ",
                "set one of upgrade_from, config_for",
            ),
            // handlers in a drop-in: 2.0+ only, for the line that writes the file
            (
                r#"containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                r#"containerd: "1.7", handlers: drop-in }
    sandbox: { container: true }"#,
                "row 1 (upgraded-runc), field node.handlers: ",
                "handlers in a drop-in file need 2.0+",
            ),
            (
                r#"containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                r#"containerd: "2.3", upgrade_from: "1.7", handlers: drop-in }
    sandbox: { container: true }"#,
                "row 1 (upgraded-runc), field node.handlers: ",
                "containerd 1.7 puts an imported CRI plugin table",
            ),
            (
                r#"containerd: "2.1", upgrade_from: "1.7" }
    sandbox: { container: true }"#,
                r#"containerd: "2.3", handlers: conf.d }
    sandbox: { container: true }"#,
                "row 1 (upgraded-runc): ",
                "unknown variant `conf.d`",
            ),
            // the legacy table on a line that ignores it
            (
                r#"containerd: "1.6", untrusted_workload_runtime: kata"#,
                r#"containerd: "2.1", untrusted_workload_runtime: kata"#,
                "row 4 (untrusted-kata), field node.untrusted_workload_runtime: ",
                "containerd 2.1 ignores untrusted_workload_runtime",
            ),
            (
                r#"untrusted_workload_runtime: kata"#,
                r#"untrusted_workload_runtime: gvisor"#,
                "row 4 (untrusted-kata), field node.untrusted_workload_runtime: ",
                "unknown handler \"gvisor\"",
            ),
            // an untrusted pod on Kata is a Kata row
            (
                "    requires: [kata]\n    node: { containerd: \"1.6\"",
                "    node: { containerd: \"1.6\"",
                "row 4 (untrusted-kata), field requires: ",
                "requires: [kata]",
            ),
            // a refused start is the whole row
            (
                r#"expect: { start_error: "unsupported config version" }"#,
                r#"expect: { start_error: "unsupported config version", runtime_type: io.containerd.runc.v2 }"#,
                "row 3 (v3-on-17), field expect: ",
                "expects only start_error",
            ),
            (
                r#"expect: { start_error: "unsupported config version" }"#,
                r#"expect: {}"#,
                "row 3 (v3-on-17), field expect.start_error: ",
                "must expect start_error",
            ),
            (
                r#"expect: { start_error: "unsupported config version" }"#,
                r#"expect: { start_error: " " }"#,
                "row 3 (v3-on-17), field expect.start_error: ",
                "needs the text",
            ),
            (
                r#"sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2 }"#,
                r#"sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2, start_error: x }"#,
                "row 1 (upgraded-runc), field expect.start_error: ",
                "runs no action",
            ),
        ];
        for (from, to, location, message) in cases {
            assert!(UPGRADE.contains(from), "{from}");
            let err = parse(&UPGRADE.replacen(from, to, 1)).unwrap_err();
            assert!(
                err.starts_with(&format!("suites/u.yaml: {location}")),
                "{to}: {err}"
            );
            assert!(err.contains(message), "{to}: {err}");
        }
    }

    #[test]
    fn only_a_node_row_expects_a_refused_start() {
        let text = "suite: s\nrows:\n  - scenario: r\n    sandbox: {}\n    expect: { start_error: x }\n";
        let err = parse(text).unwrap_err();
        assert!(
            err.contains("row 1 (r), field expect.start_error: only a row with a node"),
            "{err}"
        );
        let text = "suite: s\nrows:\n  - scenario: r\n    expect: { runtime_type: io.containerd.runc.v2 }\n";
        let err = parse(text).unwrap_err();
        assert!(err.contains("field sandbox: a row needs one action"), "{err}");
    }
}
