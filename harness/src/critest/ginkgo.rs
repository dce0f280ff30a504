//! critest's ginkgo JSON report (`--ginkgo.json-report`) read back into one outcome per spec.
//!
//! Why the JSON and not the JUnit: it keeps the container texts apart from the leaf text, the
//! node type (a failed `BeforeSuite` must not vanish), the skip message of a spec that called
//! `Skip()`, and the failure location, each as a field rather than text to parse.
//!
//! Invariant: pure. Every spec is kept, those critest only listed (not selected by focus or
//! skip, e.g. its benchmarks) marked [`SpecState::NotSelected`]; suite-level nodes are kept
//! only when they failed.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecState {
    Passed,
    /// Skipped by the spec itself (`Skip()`), with its message.
    Skipped,
    /// Not selected by `--ginkgo.focus`/`--ginkgo.skip` (ours, or critest's own `benchmark`).
    NotSelected,
    /// Failed, panicked, timed out, interrupted or aborted (ginkgo's word is in `state_word`).
    Failed,
}

/// One spec (or a failed suite-level node such as `BeforeSuite`) as critest reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecOutcome {
    /// The full text: container texts and the leaf text joined by spaces, as `--ginkgo.focus`
    /// matches it (`[k8s.io] PodSandbox ... should support running PodSandbox [Conformance]`);
    /// `[BeforeSuite]` for suite nodes.
    pub text: String,
    pub state: SpecState,
    /// ginkgo's own state (`passed`, `failed`, `panicked`, `timedout`, ...).
    pub state_word: String,
    /// The failure or skip message (empty when none).
    pub message: String,
    /// `file:line` of the failure.
    pub location: String,
    /// What the spec wrote (ginkgo writer and stdout/stderr), for failure bundles.
    pub output: String,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("failed to read critest's ginkgo JSON report")]
pub struct ReportError(#[from] serde_json::Error);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuiteReport {
    #[serde(default)]
    spec_reports: Vec<SpecReport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SpecReport {
    #[serde(default)]
    container_hierarchy_texts: Option<Vec<String>>,
    #[serde(default)]
    leaf_node_text: String,
    #[serde(default)]
    leaf_node_type: String,
    state: String,
    /// Nanoseconds.
    #[serde(default)]
    run_time: u64,
    #[serde(default)]
    failure: Option<Failure>,
    #[serde(default)]
    captured_ginkgo_writer_output: String,
    #[serde(default, rename = "CapturedStdOutErr")]
    captured_std_out_err: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Failure {
    #[serde(default)]
    message: String,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Location {
    #[serde(default)]
    file_name: String,
    #[serde(default)]
    line_number: u64,
}

/// Every spec of the report, in critest's order.
pub fn parse(json: &str) -> Result<Vec<SpecOutcome>, ReportError> {
    let suites: Vec<SuiteReport> = serde_json::from_str(json)?;
    let mut outcomes = Vec::new();
    for report in suites.into_iter().flat_map(|s| s.spec_reports) {
        let is_spec = report.leaf_node_type == "It";
        let failure = report.failure.as_ref();
        let message = failure.map(|f| f.message.trim().to_owned()).unwrap_or_default();
        let state = match report.state.as_str() {
            "passed" => SpecState::Passed,
            // Not selected (focus, skip, critest's own "benchmark" skip): no message.
            "skipped" | "pending" if message.is_empty() && is_spec => SpecState::NotSelected,
            "skipped" | "pending" => SpecState::Skipped,
            _ => SpecState::Failed,
        };
        // Suite nodes matter only when they fail: a failed BeforeSuite skips everything.
        if !is_spec && state != SpecState::Failed {
            continue;
        }
        let mut parts = report.container_hierarchy_texts.unwrap_or_default();
        if is_spec {
            parts.push(report.leaf_node_text);
        } else {
            parts = vec![format!("[{}]", report.leaf_node_type)];
        }
        let location = failure
            .and_then(|f| f.location.as_ref())
            .filter(|l| !l.file_name.is_empty())
            .map(|l| format!("{}:{}", l.file_name, l.line_number))
            .unwrap_or_default();
        let mut output = report.captured_ginkgo_writer_output;
        if !report.captured_std_out_err.is_empty() {
            output.push_str("\n--- stdout/stderr\n");
            output.push_str(&report.captured_std_out_err);
        }
        outcomes.push(SpecOutcome {
            text: parts.join(" "),
            state,
            state_word: report.state,
            message,
            location,
            output,
            seconds: report.run_time as f64 / 1e9,
        });
    }
    Ok(outcomes)
}

/// `text` as a regular expression that matches itself only (for `--ginkgo.focus`/`skip`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `--ginkgo.focus` that selects the spec named `text` and no other. ginkgo matches the
/// regex against `<suite description> <spec text>` ("CRI validation [k8s.io] ..."), so a `^`
/// before the spec text never matches (`--filter ... --exact` once selected nothing that
/// way); the text is anchored at the space after the description and at the end instead.
pub fn exactly(text: &str) -> String {
    format!(" {}$", escape(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as ginkgo 2.28 writes it (fields trimmed).
    const REPORT: &str = r#"[{"SuitePath":"/x","SpecReports":[
      {"ContainerHierarchyTexts":null,"LeafNodeType":"BeforeSuite","LeafNodeText":"","State":"passed","RunTime":1000},
      {"ContainerHierarchyTexts":["[k8s.io] PodSandbox","runtime should support basic operations on PodSandbox"],
       "LeafNodeType":"It","LeafNodeText":"runtime should support running PodSandbox [Conformance]","State":"passed","RunTime":1500000000},
      {"ContainerHierarchyTexts":["[k8s.io] Image Manager"],"LeafNodeType":"It","LeafNodeText":"public image with digest should be pulled and removed [Conformance]","State":"skipped","RunTime":0},
      {"ContainerHierarchyTexts":["[k8s.io] AppArmor"],"LeafNodeType":"It","LeafNodeText":"should enforce","State":"skipped",
       "Failure":{"Message":"AppArmor is not enabled","Location":{"FileName":"apparmor.go","LineNumber":40}}},
      {"ContainerHierarchyTexts":["[k8s.io] Networking"],"LeafNodeType":"It","LeafNodeText":"should support DNS config [Conformance]","State":"failed",
       "Failure":{"Message":"Expected\n    <string>: x\nto contain y","Location":{"FileName":"/src/pkg/validate/networking.go","LineNumber":120}},
       "CapturedGinkgoWriterOutput":"STEP: create a PodSandbox","RunTime":2000000000},
      {"ContainerHierarchyTexts":null,"LeafNodeType":"AfterSuite","LeafNodeText":"","State":"panicked",
       "Failure":{"Message":"boom"}}
    ]}]"#;

    #[test]
    fn specs_keep_their_state_message_and_location() {
        let specs = parse(REPORT).unwrap();
        let texts: Vec<&str> = specs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "[k8s.io] PodSandbox runtime should support basic operations on PodSandbox runtime should support running PodSandbox [Conformance]",
                "[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]",
                "[k8s.io] AppArmor should enforce",
                "[k8s.io] Networking should support DNS config [Conformance]",
                "[AfterSuite]",
            ],
            "a passed BeforeSuite is not a spec"
        );
        assert_eq!(specs[0].state, SpecState::Passed);
        assert_eq!(specs[0].seconds, 1.5);
        assert_eq!(specs[1].state, SpecState::NotSelected);
        assert_eq!(specs[2].state, SpecState::Skipped);
        assert_eq!(specs[2].message, "AppArmor is not enabled");
        assert_eq!(specs[3].state, SpecState::Failed);
        assert_eq!(specs[3].location, "/src/pkg/validate/networking.go:120");
        assert!(specs[3].output.contains("STEP: create"));
        assert_eq!(specs[4].state, SpecState::Failed);
        assert_eq!(specs[4].state_word, "panicked");
    }

    #[test]
    fn escaped_text_is_a_literal_regex() {
        assert_eq!(escape("a [k8s.io] b (c)|d"), r"a \[k8s\.io\] b \(c\)\|d");
    }

    /// Matched the way ginkgo matches a focus: against the suite description, a space and
    /// the spec's full text (ginkgo's Go regexp and the regex crate agree on this syntax).
    #[test]
    fn an_exact_focus_selects_that_spec_only() {
        let spec = "[k8s.io] Container runtime should support execSync [Conformance]";
        let focus = regex::Regex::new(&exactly(spec)).unwrap();
        let selects = |text: &str| focus.is_match(&format!("CRI validation {text}"));
        assert!(selects(spec));
        assert!(!selects(&format!("{spec} with timeout")));
        assert!(!selects(
            "[k8s.io] Container runtime should support execSync (Conformance)"
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("{").is_err());
    }
}
