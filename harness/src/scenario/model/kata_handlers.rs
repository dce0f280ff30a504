//! The rows that name Kata handlers and load as one row per handler, runc being their
//! control by construction: `diff:` (what a workload sees differently under Kata, the same pod
//! under runc and under the handler: crate::scenario::diff) and `kata_check:` (the runtime's
//! own host check against what the harness found: crate::scenario::kata_check).

use serde::Deserialize;

use super::{Requirement, CONFIGURED_HANDLERS};
use crate::artifacts::kata::KataRuntime;

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KataHandlers {
    /// The Kata handlers, one row each (`<scenario>-<handler>`): `kata`, `kata-qemu`,
    /// `kata-qemu-runtime-rs`. Required (at least one).
    pub handlers: Vec<String>,
}

impl KataHandlers {
    /// The one handler of an expanded row.
    pub fn handler(&self) -> &str {
        self.handlers.first().map(String::as_str).unwrap_or_default()
    }

    /// The row's checks; the error names the field under `<key>.` (the row's action key).
    pub fn validate(&self, key: &str) -> Result<(), (String, String)> {
        if self.handlers.is_empty() {
            return Err((format!("{key}.handlers"), "list the Kata handlers".into()));
        }
        for (i, handler) in self.handlers.iter().enumerate() {
            let at = format!("{key}.handlers[{i}]");
            if !CONFIGURED_HANDLERS.contains(&handler.as_str()) {
                return Err((
                    at,
                    format!(
                        "unknown handler {handler:?}; configured: {}",
                        CONFIGURED_HANDLERS.join(", ")
                    ),
                ));
            }
            if KataRuntime::of_handler(handler).is_none() {
                return Err((
                    at,
                    format!("{handler} is not a Kata handler (runc is every such row's control)"),
                ));
            }
            if self.handlers[..i].contains(handler) {
                return Err((at, format!("{handler} is listed twice")));
            }
        }
        Ok(())
    }

    /// One action per handler, with the requirement of each.
    pub fn per_handler(&self) -> Vec<(String, KataHandlers, Option<Requirement>)> {
        self.handlers
            .iter()
            .map(|h| {
                (
                    h.clone(),
                    KataHandlers {
                        handlers: vec![h.clone()],
                    },
                    Requirement::for_handler(h),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str =
        "suite: d\nrows:\n  - scenario: runc-vs\n    diff: { handlers: [kata, kata-qemu-runtime-rs] }\n";

    fn parse(text: &str) -> Result<super::super::Suite, String> {
        super::super::Suite::parse(std::path::Path::new("suites/d.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_diff_row_loads_as_one_row_per_kata_handler_and_is_its_own_runc_control() {
        let suite = parse(DIFF).unwrap();
        let names: Vec<&str> = suite.rows.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(names, ["runc-vs-kata", "runc-vs-kata-qemu-runtime-rs"]);
        assert_eq!(suite.rows[0].requires, vec![Requirement::Kata]);
        assert_eq!(suite.rows[1].requires, vec![Requirement::KataRs]);
        assert_eq!(suite.rows[1].diff().unwrap().handler(), "kata-qemu-runtime-rs");
    }

    #[test]
    fn diff_row_mistakes_name_the_field() {
        for (to, want) in [
            (
                "[kata, runc]",
                "row 1 (runc-vs), field diff.handlers[1]: runc is not a Kata handler (runc is every",
            ),
            ("[kata, krun]", "field diff.handlers[1]: unknown handler \"krun\""),
            ("[]", "field diff.handlers: list the Kata handlers"),
            ("[kata, kata]", "field diff.handlers[1]: kata is listed twice"),
        ] {
            let err = parse(&DIFF.replace("[kata, kata-qemu-runtime-rs]", to)).unwrap_err();
            assert!(err.contains(want), "{to}: {err}");
        }
        let err = parse(&format!(
            "{DIFF}    expect: {{ runtime_type: io.containerd.kata.v2 }}\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("field expect: a pod, diff or kata_check row's checks follow"),
            "{err}"
        );
    }

    #[test]
    fn a_kata_check_row_loads_the_same_way_and_names_its_own_field() {
        // Unlike a diff row, a check runs no runc pod: its suite needs a control row.
        let check = DIFF
            .replace("diff:", "kata_check:")
            .replace("runc-vs", "host-check");
        let err = parse(&check).unwrap_err();
        assert!(err.contains("Kata rows need a runc control row"), "{err}");
        let check = format!(
            "{check}  - scenario: control\n    sandbox: {{}}\n    expect: {{ runtime_type: io.containerd.runc.v2 }}\n"
        );
        let suite = parse(&check).unwrap();
        let names: Vec<&str> = suite.rows.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(
            names,
            ["host-check-kata", "host-check-kata-qemu-runtime-rs", "control"]
        );
        assert_eq!(suite.rows[1].requires, vec![Requirement::KataRs]);
        assert!(suite.rows[0].diff().is_none());
        assert_eq!(suite.rows[0].kata_handlers().unwrap().0, "kata_check");
        let err = parse(&check.replace("[kata, kata-qemu-runtime-rs]", "[crun]")).unwrap_err();
        assert!(
            err.contains("row 1 (host-check), field kata_check.handlers[0]: crun is not a Kata handler"),
            "{err}"
        );
        let err = parse(&check.replace(
            "kata_check: { handlers: [kata, kata-qemu-runtime-rs] }",
            "kata_check: { handlers: [kata] }\n    diff: { handlers: [kata] }",
        ))
        .unwrap_err();
        assert!(
            err.contains("field kata_check: a row has one action; diff is already set"),
            "{err}"
        );
    }
}
