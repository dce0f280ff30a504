//! Scenario tables: the strict YAML model and its validation.
//!
//! Invariant: a suite that loads is valid. Unknown keys, misspelt handlers, rows with no or two
//! actions (a row with a node of its own may have none: the node's start is then its action),
//! and expectations that do not fit their action are errors naming the file, the row and the
//! field, reported before anything boots.
//!
//! The cluster and critest actions' fields and checks are in [`kube`] and [`critest`]; what
//! runs them lives with those scenarios (crate::kube::suite, crate::critest), above this.

mod actions;
pub mod critest;
mod expect;
pub mod kata_handlers;
pub mod kube;
mod node;
pub mod pod;
mod pod_steps;
pub mod reference;
mod resources;
mod row;
mod validate;

pub use actions::*;
pub use expect::*;
pub use node::{HandlersIn, NodeSetup};
use row::RowFile;
pub use row::{Action, Row};

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::artifacts::kata::KataRuntime;

/// Handlers every testbed configures (see `provision::standard_handlers`).
pub const CONFIGURED_HANDLERS: [&str; 5] = ["runc", "crun", "kata", "kata-qemu", "kata-qemu-runtime-rs"];

/// The file in a suites folder that is the quarantine list (crate::report::quarantine), not a
/// suite.
pub const QUARANTINE_FILE: &str = "quarantine.yaml";

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{}: {location}{message}", file.display())]
pub struct SuiteError {
    pub file: PathBuf,
    /// `row 3 (crun-handler), field sandbox.handler: ` or empty for file-level errors.
    pub location: String,
    pub message: String,
}

/// A suite file: `suite`, `about`, `rows`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    /// The suite's name: the first part of every trial name.
    suite: String,
    /// One line on what the suite proves.
    #[serde(default)]
    about: String,
    /// Where the suite's rows run: `local`, `vm`, `cluster`. Default: every placement except
    /// `cluster` (a Kubernetes suite declares `placements: [cluster]`).
    #[serde(default)]
    placements: Option<Vec<PlacementKind>>,
    /// Which local containerd lines of a run its rows run on: `all`, or `newest` (the newest
    /// line of the run: rows about the runtimes more than about containerd). Default: all.
    #[serde(default)]
    local_lines: LocalLines,
    /// The rows (at least one), parsed one by one so errors can name the row.
    #[schemars(with = "Vec<RowFile>")]
    rows: Vec<serde_norway::Value>,
}

/// The JSON schema of a suite file, from the same types the loader deserialises (so the
/// generated scenario reference cannot drift from what loads): every field with its doc
/// comment and, where serde has one, its default.
pub fn suite_schema() -> schemars::Schema {
    schemars::schema_for!(SuiteFile)
}

/// [`suite_schema`] as the JSON file editors read (`suites/schema.json`, which every suite
/// file names in its first line: `# yaml-language-server: $schema=schema.json`).
pub fn suite_schema_json() -> String {
    let mut schema = suite_schema();
    schema.insert("title".into(), "kata-harness suite file".into());
    serde_json::to_string_pretty(&schema).expect("a schema is JSON") + "\n"
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub about: String,
    pub file: PathBuf,
    pub rows: Vec<Row>,
    /// The placements whose variants the rows expand against (see `SuiteFile::placements`).
    pub placements: Vec<PlacementKind>,
    /// Which local lines its rows run on (see `SuiteFile::local_lines`).
    pub local_lines: LocalLines,
}

/// Which local containerd lines of a run a suite's rows run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LocalLines {
    /// Every line of the run.
    #[default]
    All,
    /// Only the newest line of the run (`--containerd 1.7,2.3`: 2.3).
    Newest,
}

/// Kinds of testbed a suite can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementKind {
    /// A private containerd on this host.
    Local,
    /// The containerd of a throw-away VM.
    Vm,
    /// A single-node kubeadm cluster (local, in a node namespace).
    Cluster,
}

impl PlacementKind {
    /// Where a suite runs when it does not say.
    pub fn default_set() -> Vec<PlacementKind> {
        vec![PlacementKind::Local, PlacementKind::Vm]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// Kata's Go runtime (`bin/containerd-shim-kata-v2`: handlers `kata`, `kata-qemu`) this
    /// host can run (with KVM or under TCG).
    Kata,
    /// Kata's runtime-rs (`runtime-rs/bin/containerd-shim-kata-v2`: handler
    /// `kata-qemu-runtime-rs`) this host can run, on a containerd Kata 4.x supports.
    #[serde(rename = "kata-rs")]
    KataRs,
    /// Kata with KVM: rows that start so many sandboxes that under TCG they would take hours.
    Kvm,
}

impl Requirement {
    /// What a row naming this handler or RuntimeClass (`kata-qemu-runtime-rs`) must declare;
    /// `None` for a handler that is not Kata's.
    pub fn for_handler(handler: &str) -> Option<Requirement> {
        KataRuntime::of_handler(handler).map(Requirement::of_runtime)
    }

    /// The same for a runtime type (`io.containerd.kata-qemu-runtime-rs.v2`).
    pub fn for_runtime_type(runtime_type: &str) -> Option<Requirement> {
        KataRuntime::of_runtime_type(runtime_type).map(Requirement::of_runtime)
    }

    fn of_runtime(runtime: KataRuntime) -> Requirement {
        match runtime {
            KataRuntime::Go => Requirement::Kata,
            KataRuntime::Rust => Requirement::KataRs,
        }
    }

    /// Whether this is one of Kata's runtimes.
    pub fn is_kata(self) -> bool {
        matches!(self, Requirement::Kata | Requirement::KataRs)
    }

    /// `Err` naming what `requires` lacks, for a row that uses `handler` (`what`: "handler",
    /// "runtime", ...).
    pub fn check(requires: &[Requirement], needed: Option<Requirement>, what: &str) -> Result<(), String> {
        match needed {
            Some(needed) if !requires.contains(&needed) => {
                Err(format!("a Kata {what} row must declare `requires: [{needed}]`"))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Kata => write!(f, "kata"),
            Requirement::KataRs => write!(f, "kata-rs"),
            Requirement::Kvm => write!(f, "kvm"),
        }
    }
}

impl Suite {
    /// The suite on a cluster whose RuntimeClass `kata` points at `handler` (a profile's
    /// `kubernetes.kata_runtime_class`): the cluster rows naming that class require and expect
    /// that handler's runtime (`kata-qemu-runtime-rs`: runtime-rs, as kata-deploy 4.x installs
    /// it) and say so in their `about`.
    pub fn with_kata_runtime_class(mut self, handler: &str) -> Suite {
        if handler == "kata" {
            return self;
        }
        for row in &mut self.rows {
            let Action::Kube(kube) = &row.action else { continue };
            if kube.runtime_class.as_deref() != Some("kata") || kube.handler.is_some() {
                continue;
            }
            let needed = Requirement::for_handler(handler);
            for requirement in &mut row.requires {
                if requirement.is_kata() {
                    *requirement = needed.unwrap_or(*requirement);
                }
            }
            row.expect.runtime_type = Some(format!("io.containerd.{handler}.v2"));
            row.about = format!(
                "{} [RuntimeClass kata -> handler {handler} (profile kubernetes.kata_runtime_class)]",
                row.about
            );
        }
        self
    }

    /// Reads and validates one suite file.
    pub fn load(file: &Path) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(file).map_err(|e| SuiteError {
            file: file.to_owned(),
            location: String::new(),
            message: format!("failed to read: {e}"),
        })?;
        Suite::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Suite, SuiteError> {
        let file_err = |message: String| SuiteError {
            file: file.to_owned(),
            location: String::new(),
            message,
        };
        let parsed: SuiteFile = serde_norway::from_str(text).map_err(|e| file_err(e.to_string()))?;
        let mut rows = Vec::new();
        for (index, value) in parsed.rows.into_iter().enumerate() {
            let name = value
                .get("scenario")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_owned();
            let row: RowFile = serde_norway::from_value(value).map_err(|e| SuiteError {
                file: file.to_owned(),
                location: format!("row {} ({name}): ", index + 1),
                message: e.to_string(),
            })?;
            let at = |field: &str, message: String| SuiteError {
                file: file.to_owned(),
                location: format!("row {} ({name}), field {field}: ", index + 1),
                message,
            };
            let row = Row::from_file(row).map_err(|(field, message)| at(field, message))?;
            if let Some(pod) = row.pod() {
                pod.validate().map_err(|(field, message)| at(&field, message))?;
            }
            if let Some((key, handlers)) = row.kata_handlers() {
                handlers
                    .validate(key)
                    .map_err(|(field, message)| at(&field, message))?;
            }
            rows.extend(row.per_handler());
        }
        let suite = Suite {
            name: parsed.suite,
            about: parsed.about,
            file: file.to_owned(),
            rows,
            placements: parsed.placements.unwrap_or_else(PlacementKind::default_set),
            local_lines: parsed.local_lines,
        };
        suite.validate()?;
        Ok(suite)
    }

    /// Loads every `*.yaml` in a directory, sorted by name; zero suites is an error.
    pub fn load_dir(dir: &Path) -> Result<Vec<Suite>, SuiteError> {
        let entries = std::fs::read_dir(dir).map_err(|e| SuiteError {
            file: dir.to_owned(),
            location: String::new(),
            message: format!("failed to list suites: {e}"),
        })?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .filter(|p| p.file_name().is_some_and(|n| n != QUARANTINE_FILE))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SuiteError {
                file: dir.to_owned(),
                location: String::new(),
                message: "no *.yaml suites".into(),
            });
        }
        let suites = files
            .iter()
            .map(|f| Suite::load(f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = BTreeSet::new();
        for suite in &suites {
            if !names.insert(suite.name.clone()) {
                return Err(SuiteError {
                    file: suite.file.clone(),
                    location: "field suite: ".into(),
                    message: format!("suite name {:?} is used by another file", suite.name),
                });
            }
        }
        Ok(suites)
    }

    fn validate(&self) -> Result<(), SuiteError> {
        let err = |location: String, message: String| SuiteError {
            file: self.file.clone(),
            location,
            message,
        };
        if !is_slug(&self.name) {
            return Err(err(
                "field suite: ".into(),
                format!("{:?} must be lower-case words joined by '-'", self.name),
            ));
        }
        if self.rows.is_empty() {
            return Err(err(
                "field rows: ".into(),
                "a suite needs at least one row".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, row) in self.rows.iter().enumerate() {
            let at = |field: &str| format!("row {} ({}), field {field}: ", index + 1, row.scenario);
            if !is_slug(&row.scenario) {
                return Err(err(
                    at("scenario"),
                    "must be lower-case words joined by '-'".into(),
                ));
            }
            if !seen.insert(row.scenario.as_str()) {
                return Err(err(at("scenario"), "is used by an earlier row".into()));
            }
            row.validate()
                .map_err(|(field, message)| err(at(field), message))?;
        }
        // Every Kata row needs a runc control in its suite, so a harness bug cannot pass as Kata.
        let has_kata = self.rows.iter().any(|r| r.requires.iter().any(|q| q.is_kata()));
        let has_control = self.rows.iter().any(|r| {
            let handler = match &r.action {
                Action::Sandbox(s) => Some(s.handler.as_str()),
                Action::Pull(p) => Some(p.handler.as_str()),
                Action::SandboxImage(s) => Some(s.handler.as_str()),
                Action::ImageImport(i) if i.container => Some(i.handler.as_str()),
                Action::Pod(p) => Some(p.handler()),
                _ => None,
            };
            handler.is_some_and(|h| h.is_empty() || h == "runc")
                && r.expect.runtime_type.as_deref() == Some("io.containerd.runc.v2")
        });
        // A diff row runs its own runc pod beside the Kata one.
        let has_control = has_control
            || self.rows.iter().any(|r| r.diff().is_some())
            || self.rows.iter().any(kube::is_runc_control)
            || self.rows.iter().any(critest::is_runc_control);
        kube::validate_placements(self).map_err(|(location, message)| err(location, message))?;
        if has_kata && !has_control {
            return Err(err(
                "field rows: ".into(),
                "Kata rows need a runc control row (handler runc or default, runtime_type io.containerd.runc.v2)".into(),
            ));
        }
        Ok(())
    }
}

fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('-')
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite, SuiteError> {
        Suite::parse(Path::new("suites/t.yaml"), text)
    }

    const GOOD: &str = r#"
suite: cri
about: test
rows:
  - scenario: default-handler
    sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: runc }
  - scenario: kata-handler
    requires: [kata]
    sandbox: { handler: kata }
    expect: { runtime_type: io.containerd.kata.v2 }
  - scenario: unconfigured
    sandbox: { handler: nope }
    expect: { error: { code: Unknown, message: 'no runtime for "nope" is configured' } }
  - scenario: visible
    image_import: { namespace: k8s.io }
    expect: { cri_visible: true }
"#;

    #[test]
    fn good_suite_loads() {
        let suite = parse(GOOD).unwrap();
        assert_eq!(suite.rows.len(), 4);
        assert_eq!(suite.rows[1].requires, vec![Requirement::Kata]);
    }

    #[test]
    fn misspelt_field_names_file_row_and_field() {
        let text = GOOD.replace("sandbox: { container: true }", "sandbox: { contianer: true }");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("suites/t.yaml: row 1 (default-handler): "),
            "{err}"
        );
        assert!(err.contains("contianer"), "{err}");
    }

    #[test]
    fn critest_rows_are_checked_like_other_rows() {
        let row = |body: &str| format!("suite: critest\nrows:\n  - scenario: c\n{body}");
        let ok = parse(&row(
            "    critest: { handler: crun, focus: Image }\n    expect: {}\n",
        ))
        .unwrap();
        assert_eq!(ok.rows[0].critest().unwrap().handler, "crun");
        for (body, want) in [
            (
                "    critest: { handler: krun }\n    expect: {}\n",
                "field critest.handler: unknown handler",
            ),
            (
                "    critest: { handler: kata }\n    expect: {}\n",
                "field requires",
            ),
            (
                "    critest: {}\n    expect: { runtime_type: io.containerd.runc.v2 }\n",
                "field expect",
            ),
            ("    critest: { focs: x }\n    expect: {}\n", "focs"),
            (
                "    critest: {}\n    sandbox: {}\n    expect: {}\n",
                "a row has one action",
            ),
            ("    skip: ' '\n    critest: {}\n    expect: {}\n", "field skip"),
        ] {
            let err = parse(&row(body)).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn unknown_handler_without_expected_error_is_rejected() {
        let text = GOOD.replace(
            "sandbox: { container: true }",
            "sandbox: { handler: krun, container: true }",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("row 1 (default-handler), field sandbox.handler"),
            "{err}"
        );
        assert!(err.contains("krun"), "{err}");
    }

    #[test]
    fn kata_rows_must_declare_the_requirement() {
        let text = GOOD.replace("    requires: [kata]\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("row 2 (kata-handler), field requires"), "{err}");
    }

    #[test]
    fn a_kata_runtime_class_pointed_at_runtime_rs_changes_what_its_rows_require_and_expect() {
        let text = r#"
suite: kubernetes
placements: [cluster]
rows:
  - scenario: runc-web
    kube: { check: web-pod }
    expect: { runtime_type: io.containerd.runc.v2 }
  - scenario: kata-nginx
    about: "RuntimeClass kata"
    requires: [kata]
    kube: { check: web-pod, runtime_class: kata }
    expect: { runtime_type: io.containerd.kata.v2 }
  - scenario: kata-own-class
    requires: [kata]
    kube: { check: web-pod, runtime_class: kata, handler: kata-qemu }
    expect: { runtime_type: io.containerd.kata-qemu.v2 }
"#;
        let suite = parse(text).unwrap();
        assert_eq!(suite.clone().with_kata_runtime_class("kata").rows, suite.rows);
        let rs = suite.with_kata_runtime_class("kata-qemu-runtime-rs");
        assert_eq!(rs.rows[1].requires, vec![Requirement::KataRs]);
        assert_eq!(
            rs.rows[1].expect.runtime_type.as_deref(),
            Some("io.containerd.kata-qemu-runtime-rs.v2")
        );
        assert!(rs.rows[1]
            .about
            .contains("RuntimeClass kata -> handler kata-qemu-runtime-rs"));
        // A row that makes its own class, and the runc row, are as written.
        assert_eq!(rs.rows[2].requires, vec![Requirement::Kata]);
        assert_eq!(
            rs.rows[2].expect.runtime_type.as_deref(),
            Some("io.containerd.kata-qemu.v2")
        );
        assert_eq!(
            rs.rows[0].expect.runtime_type.as_deref(),
            Some("io.containerd.runc.v2")
        );
    }

    #[test]
    fn a_runtime_rs_row_must_declare_kata_rs_not_kata() {
        let rs = GOOD
            .replace(
                "sandbox: { handler: kata }",
                "sandbox: { handler: kata-qemu-runtime-rs }",
            )
            .replace(
                "runtime_type: io.containerd.kata.v2",
                "runtime_type: io.containerd.kata-qemu-runtime-rs.v2",
            );
        assert_ne!(rs, GOOD, "the row was rewritten");
        let err = parse(&rs).unwrap_err().to_string();
        assert!(
            err.contains(
                "row 2 (kata-handler), field requires: a Kata handler row must declare `requires: [kata-rs]`"
            ),
            "{err}"
        );
        let suite = parse(&rs.replace("requires: [kata]", "requires: [kata-rs]")).unwrap();
        assert_eq!(suite.rows[1].requires, vec![Requirement::KataRs]);
        assert_eq!(
            Requirement::for_runtime_type("io.containerd.kata-qemu-runtime-rs.v2"),
            Some(Requirement::KataRs)
        );
        assert_eq!(Requirement::for_handler("crun"), None);
    }

    #[test]
    fn kata_rows_need_a_runc_control() {
        let text = GOOD.replace("oci_runtime: runc", "oci_runtime: crun").replace(
            "runtime_type: io.containerd.runc.v2",
            "runtime_type: io.containerd.runc.v1",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("runc control"), "{err}");
    }

    #[test]
    fn bad_grpc_code_and_duplicate_names_are_rejected() {
        let err = parse(&GOOD.replace("code: Unknown", "code: Unknwon"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("field expect.error.code"), "{err}");
        let err = parse(&GOOD.replace("scenario: visible", "scenario: unconfigured"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 4 (unconfigured), field scenario"), "{err}");
    }

    #[test]
    fn rows_need_exactly_one_action() {
        let err = parse(&GOOD.replace("    image_import: { namespace: k8s.io }\n", ""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 4 (visible), field sandbox: a row needs one action"),
            "{err}"
        );
    }

    #[test]
    fn top_level_typo_is_an_error() {
        let err = parse(&GOOD.replace("about: test", "abuot: test"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("suites/t.yaml: "), "{err}");
        assert!(err.contains("abuot"), "{err}");
    }

    const IMAGES: &str = r#"
suite: images
rows:
  - scenario: pull-with-ca-runc
    pull: { registry: tls, ca: right, handler: runc }
    expect: { pulled: true, runtime_type: io.containerd.runc.v2 }
  - scenario: pull-with-ca-kata
    requires: [kata]
    pull: { registry: tls, ca: right, handler: kata }
    expect: { pulled: true, runtime_type: io.containerd.kata.v2 }
  - scenario: pull-wrong-ca
    pull: { registry: tls, ca: wrong }
    expect: { error: { code: Unknown, message: x509 } }
  - scenario: ctr-pull
    pull: { registry: tls, client: ctr, hosts_dir: true }
    expect: { pulled: true }
  - scenario: preloaded
    sandbox_image: { preloaded: true, handler: crun }
    expect: { runtime_type: io.containerd.runc.v2, pulled: false }
  - scenario: removed
    sandbox_image: { preloaded: false }
    expect: { error: { code: Unknown, message: "failed to get sandbox image" }, within_seconds: 10 }
  - scenario: default-ns
    image_import: { namespace: default, container: true, handler: runc }
    expect: { cri_visible: false, error: { code: NotFound, message: "failed to resolve image" } }
"#;

    #[test]
    fn image_rows_load_and_a_pull_row_is_the_runc_control() {
        let suite = parse(IMAGES).unwrap();
        assert_eq!(suite.rows.len(), 7);
        assert_eq!(suite.rows[0].pull().unwrap().registry, RegistryKind::Tls);
        assert!(
            suite.rows[3].pull().unwrap().hosts_toml,
            "hosts_toml defaults to true"
        );
    }

    #[test]
    fn image_row_mistakes_name_the_field() {
        let cases = [
            // a misspelt registry kind
            (
                "registry: tls, ca: wrong",
                "registry: tsl, ca: wrong",
                "row 3 (pull-wrong-ca): ",
            ),
            // ctr is a command, not a CRI call
            (
                "pull: { registry: tls, client: ctr, hosts_dir: true }\n    expect: { pulled: true }",
                "pull: { registry: tls, client: ctr }\n    expect: { error: { code: Unknown, message: x } }",
                "field expect.error: ctr is a command",
            ),
            // hosts_dir only fits ctr
            (
                "pull: { registry: tls, ca: wrong }",
                "pull: { registry: tls, ca: wrong, hosts_dir: true }",
                "field pull.hosts_dir",
            ),
            // a plain registry takes no CA
            (
                "pull: { registry: tls, ca: wrong }",
                "pull: { registry: plain, ca: wrong }",
                "field pull.ca",
            ),
            // a preloaded sandbox image must prove no pull
            (
                "expect: { runtime_type: io.containerd.runc.v2, pulled: false }",
                "expect: { runtime_type: io.containerd.runc.v2 }",
                "row 5 (preloaded), field expect.pulled",
            ),
            // two actions
            (
                "sandbox_image: { preloaded: false }",
                "sandbox_image: { preloaded: false }\n    sandbox: {}",
                "row 6 (removed), field sandbox_image: a row has one action; sandbox is already set",
            ),
            // a Kata pull row must declare the requirement
            (
                "    requires: [kata]\n    pull:",
                "    pull:",
                "row 2 (pull-with-ca-kata), field requires",
            ),
            // an unknown handler in a non-sandbox action
            (
                "handler: crun }",
                "handler: krun }",
                "row 5 (preloaded), field handler",
            ),
            // within_seconds must be positive
            (
                "within_seconds: 10",
                "within_seconds: 0",
                "field expect.within_seconds",
            ),
        ];
        for (from, to, want) in cases {
            assert!(IMAGES.contains(from), "{from}");
            let err = parse(&IMAGES.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(err.contains(want), "{to}: {err}");
        }
    }

    #[test]
    fn yaml_syntax_error_names_the_file() {
        let err = parse("suite: [").unwrap_err().to_string();
        assert!(err.starts_with("suites/t.yaml: "), "{err}");
    }
}
