//! Scenario tables: the strict YAML model and its validation.
//!
//! Invariant: a suite that loads is valid. Unknown keys, misspelt handlers, rows with no or two
//! actions, and expectations that do not fit their action are errors naming the file, the row
//! and the field, reported before anything boots.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Handlers every testbed configures (see `provision::standard_handlers`).
pub const CONFIGURED_HANDLERS: [&str; 4] = ["runc", "crun", "kata", "kata-qemu"];

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{}: {location}{message}", file.display())]
pub struct SuiteError {
    pub file: PathBuf,
    /// `row 3 (crun-handler), field sandbox.handler: ` or empty for file-level errors.
    pub location: String,
    pub message: String,
}

/// A suite file: `suite`, `about`, `rows`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    /// The suite's name: the first part of every trial name.
    suite: String,
    /// One line on what the suite proves.
    #[serde(default)]
    about: String,
    /// The rows, parsed one by one so errors can name the row.
    rows: Vec<serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub about: String,
    pub file: PathBuf,
    pub rows: Vec<Row>,
}

/// One scenario row. Exactly one action (`sandbox` or `image_import`) is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Unique within the suite; lower-case words joined by `-`.
    pub scenario: String,
    /// What the row checks, for the report. Default: empty.
    #[serde(default)]
    pub about: String,
    /// Preconditions; a row whose precondition is absent is skipped with the reason.
    /// Default: none.
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// Action: run a pod sandbox (`crictl runp`), optionally with a container in it.
    #[serde(default)]
    pub sandbox: Option<SandboxAction>,
    /// Action: import an image archive with `ctr -n <namespace> images import`.
    #[serde(default)]
    pub image_import: Option<ImageImportAction>,
    /// What must be observed.
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// Kata artifacts (`containerd-shim-kata-v2`) and a KVM proven usable.
    Kata,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Kata => write!(f, "kata"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxAction {
    /// Runtime handler (`crictl runp -r`). Default: empty, containerd's default handler.
    #[serde(default)]
    pub handler: String,
    /// Also create and start a busybox container in the sandbox. Default: false.
    #[serde(default)]
    pub container: bool,
    /// Share the node's network namespace. Default: false.
    #[serde(default)]
    pub host_network: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageImportAction {
    /// containerd namespace to import into (`k8s.io` is the CRI's).
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// CRI `info.runtimeType` of the sandbox and container, and containerd's own record.
    #[serde(default)]
    pub runtime_type: Option<String>,
    /// `BinaryName` in the runtime options the CRI reports.
    #[serde(default)]
    pub binary_name: Option<String>,
    /// The OCI runtime that holds the container state (`runc` or `crun`): proven by asking
    /// both binaries for the state of the sandbox and container.
    #[serde(default)]
    pub oci_runtime: Option<String>,
    /// A VMM process (qemu, cloud-hypervisor, firecracker) is a child of the shim.
    #[serde(default)]
    pub vmm_process: Option<bool>,
    /// The action must fail with this CRI error, and leave no sandbox behind.
    #[serde(default)]
    pub error: Option<ExpectError>,
    /// Whether the imported image is visible through the CRI image service.
    #[serde(default)]
    pub cri_visible: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectError {
    /// gRPC code name, e.g. `Unknown`, `NotFound`.
    pub code: String,
    /// A substring of the status message.
    pub message: String,
}

/// gRPC code names as tonic spells them.
pub fn grpc_code(name: &str) -> Option<tonic::Code> {
    use tonic::Code::*;
    let codes = [
        Ok,
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    ];
    codes.into_iter().find(|c| format!("{c:?}") == name)
}

impl Suite {
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
            let row: Row = serde_norway::from_value(value).map_err(|e| SuiteError {
                file: file.to_owned(),
                location: format!("row {} ({name}): ", index + 1),
                message: e.to_string(),
            })?;
            rows.push(row);
        }
        let suite = Suite {
            name: parsed.suite,
            about: parsed.about,
            file: file.to_owned(),
            rows,
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
        let has_kata = self.rows.iter().any(|r| r.requires.contains(&Requirement::Kata));
        let has_control = self.rows.iter().any(|r| {
            r.sandbox
                .as_ref()
                .is_some_and(|s| s.handler.is_empty() || s.handler == "runc")
                && r.expect.runtime_type.as_deref() == Some("io.containerd.runc.v2")
        });
        if has_kata && !has_control {
            return Err(err(
                "field rows: ".into(),
                "Kata rows need a runc control row (handler runc or default, runtime_type io.containerd.runc.v2)".into(),
            ));
        }
        Ok(())
    }
}

impl Row {
    /// Checks one row; the error names the offending field.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let e = &self.expect;
        match (&self.sandbox, &self.image_import) {
            (None, None) => {
                return Err((
                    "sandbox",
                    "a row needs one action: sandbox or image_import".into(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err((
                    "image_import",
                    "a row has one action; sandbox is already set".into(),
                ))
            }
            (Some(sandbox), None) => {
                if e.cri_visible.is_some() {
                    return Err(("expect.cri_visible", "only fits an image_import row".into()));
                }
                let known =
                    sandbox.handler.is_empty() || CONFIGURED_HANDLERS.contains(&sandbox.handler.as_str());
                if !known && e.error.is_none() {
                    return Err((
                        "sandbox.handler",
                        format!(
                            "unknown handler {:?} (configured: {}); a row that uses an unconfigured handler on purpose must expect an error",
                            sandbox.handler,
                            CONFIGURED_HANDLERS.join(", ")
                        ),
                    ));
                }
                let kata = sandbox.handler.starts_with("kata");
                if kata && !self.requires.contains(&Requirement::Kata) {
                    return Err((
                        "requires",
                        "a Kata handler row must declare `requires: [kata]`".into(),
                    ));
                }
                if e.error.is_some() {
                    if e.runtime_type.is_some() || e.binary_name.is_some() || e.oci_runtime.is_some() {
                        return Err((
                            "expect.error",
                            "an error row cannot also expect a running sandbox".into(),
                        ));
                    }
                } else if e.runtime_type.is_none() {
                    return Err((
                        "expect.runtime_type",
                        "a sandbox row must expect a runtime_type or an error".into(),
                    ));
                }
                if let Some(oci) = &e.oci_runtime {
                    if !["runc", "crun"].contains(&oci.as_str()) {
                        return Err(("expect.oci_runtime", format!("{oci:?} is not runc or crun")));
                    }
                }
            }
            (None, Some(import)) => {
                if import.namespace.is_empty() {
                    return Err(("image_import.namespace", "must not be empty".into()));
                }
                if e.cri_visible.is_none() {
                    return Err((
                        "expect.cri_visible",
                        "an image_import row must expect cri_visible".into(),
                    ));
                }
                if e.runtime_type.is_some()
                    || e.binary_name.is_some()
                    || e.oci_runtime.is_some()
                    || e.error.is_some()
                {
                    return Err(("expect", "an image_import row only expects cri_visible".into()));
                }
            }
        }
        if let Some(error) = &e.error {
            if grpc_code(&error.code).is_none() {
                return Err((
                    "expect.error.code",
                    format!(
                        "{:?} is not a gRPC code name (e.g. Unknown, NotFound)",
                        error.code
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The expectation in one line, for the report's "expected" column.
    pub fn expected_summary(&self) -> String {
        let e = &self.expect;
        if let Some(error) = &e.error {
            return format!("{} error: {}", error.code, error.message);
        }
        if let Some(visible) = e.cri_visible {
            return if visible {
                "visible to the CRI"
            } else {
                "not visible to the CRI"
            }
            .into();
        }
        let mut parts = vec![e.runtime_type.clone().unwrap_or_default()];
        if let Some(binary) = &e.binary_name {
            parts.push(format!("BinaryName={binary}"));
        }
        if let Some(oci) = &e.oci_runtime {
            parts.push(format!("state in {oci}"));
        }
        if e.vmm_process == Some(true) {
            parts.push("VMM process".into());
        }
        parts.join(", ")
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

    #[test]
    fn yaml_syntax_error_names_the_file() {
        let err = parse("suite: [").unwrap_err().to_string();
        assert!(err.starts_with("suites/t.yaml: "), "{err}");
    }
}
