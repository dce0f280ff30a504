//! The `diff:` row: what looks different to a workload moving from runc to Kata. The same pod
//! (busybox, the same limits) runs under runc and under a Kata handler; a fixed set of probes
//! runs in both, and every difference is listed, expected ones (declared per probe, with the
//! reason) apart from unexpected ones, which fail the row. The probes are in
//! crate::scenario::diff.

use serde::Deserialize;

use super::{Requirement, CONFIGURED_HANDLERS};
use crate::artifacts::kata::KataRuntime;

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffAction {
    /// The Kata handlers to compare with runc, one row each (`<scenario>-<handler>`): `kata`,
    /// `kata-qemu`, `kata-qemu-runtime-rs`. Required (at least one).
    pub handlers: Vec<String>,
}

impl DiffAction {
    /// The one handler of an expanded row.
    pub fn handler(&self) -> &str {
        self.handlers.first().map(String::as_str).unwrap_or_default()
    }

    /// The row's checks; the error names the field under `diff.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.handlers.is_empty() {
            return Err((
                "diff.handlers".into(),
                "list the Kata handlers to compare with runc".into(),
            ));
        }
        for (i, handler) in self.handlers.iter().enumerate() {
            let at = format!("diff.handlers[{i}]");
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
                    format!("{handler} is not a Kata handler: runc is the other side of every diff"),
                ));
            }
            if self.handlers[..i].contains(handler) {
                return Err((at, format!("{handler} is listed twice")));
            }
        }
        Ok(())
    }

    /// One action per handler, with the requirement of each.
    pub fn per_handler(&self) -> Vec<(String, DiffAction, Option<Requirement>)> {
        self.handlers
            .iter()
            .map(|h| {
                (
                    h.clone(),
                    DiffAction {
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
                "row 1 (runc-vs), field diff.handlers[1]: runc is not a Kata handler",
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
            err.contains("field expect: a pod or diff row's runtime checks follow"),
            "{err}"
        );
    }
}
