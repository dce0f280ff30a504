//! Scenario tables: the strict YAML model and its validation.
//!
//! Invariant: a suite that loads is valid. Unknown keys, misspelt handlers, rows with no or two
//! actions, and expectations that do not fit their action are errors naming the file, the row
//! and the field, reported before anything boots.
//!
//! The cluster and critest actions' fields and checks are in [`kube`] and [`critest`]; what
//! runs them lives with those scenarios (crate::kube::suite, crate::critest), above this.

pub mod critest;
pub mod kube;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Handlers every testbed configures (see `provision::standard_handlers`).
pub const CONFIGURED_HANDLERS: [&str; 4] = ["runc", "crun", "kata", "kata-qemu"];

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
#[derive(Debug, Deserialize)]
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
    /// The rows, parsed one by one so errors can name the row.
    rows: Vec<serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub about: String,
    pub file: PathBuf,
    pub rows: Vec<Row>,
    /// The placements whose variants the rows expand against (see `SuiteFile::placements`).
    pub placements: Vec<PlacementKind>,
}

/// Kinds of testbed a suite can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
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

/// One scenario row. Exactly one action (`sandbox`, `image_import`, `pull` or
/// `sandbox_image`) is set.
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
    /// Skip this row everywhere, with this reason (a row kept in the table on purpose but
    /// not run by default, e.g. far too slow here). Default: run.
    #[serde(default)]
    pub skip: Option<String>,
    /// Action: run a pod sandbox (`crictl runp`), optionally with a container in it.
    #[serde(default)]
    pub sandbox: Option<SandboxAction>,
    /// Action: import an image archive with `ctr -n <namespace> images import`.
    #[serde(default)]
    pub image_import: Option<ImageImportAction>,
    /// Action: push an image to a registry on the node, then pull it (CRI or `ctr`).
    #[serde(default)]
    pub pull: Option<PullAction>,
    /// Action: start a sandbox on the air-gapped node with the pinned sandbox image preloaded
    /// or removed.
    #[serde(default)]
    pub sandbox_image: Option<SandboxImageAction>,
    /// Action: `ctr run --runtime <type>` in containerd's `default` namespace (no CRI).
    #[serde(default)]
    pub ctr_run: Option<CtrRunAction>,
    /// Action: a Kubernetes check against the cluster (`kube: { check: ... }`); only in suites
    /// with `placements: [cluster]`. Fields: `kube::KubeAction`.
    #[serde(default)]
    pub kube: Option<kube::KubeAction>,
    /// Action: run critest (the upstream CRI validation suite) with a handler; each of its
    /// specs is a row of the report. Fields: `critest::CritestAction`.
    #[serde(default)]
    pub critest: Option<critest::CritestAction>,
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
    /// Then run a busybox container from the imported image, in a sandbox of `handler`
    /// (no pull is possible: the node is air-gapped). Default: false.
    #[serde(default)]
    pub container: bool,
    /// Runtime handler of that sandbox. Default: empty, containerd's default.
    #[serde(default)]
    pub handler: String,
    /// What the archive holds: `amd64` (default), `arm64`, `multi` (an amd64 + arm64 index)
    /// or `multi-partial` (that index without the arm64 blobs).
    #[serde(default)]
    pub archive: crate::images::ArchiveLayout,
    /// The import's platform flag: `all` (`--all-platforms`) or a platform such as
    /// `linux/amd64` (`--platform`). Default: none, ctr's default (the host platform).
    #[serde(default)]
    pub platforms: Option<String>,
}

/// Which registry a `pull` row talks to. All listen inside the node's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// docker-registry over HTTPS with a certificate from the run's CA.
    Tls,
    /// docker-registry over plain HTTP.
    Plain,
    /// Nothing listens on the address (connection refused).
    Down,
}

/// The `ca` line of the registry's `hosts.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaChoice {
    /// The CA that signed the registry's certificate.
    Right,
    /// Another CA generated for the run.
    Wrong,
    /// No `ca` line (the system roots).
    Absent,
}

/// Who pulls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullClient {
    /// CRI PullImage (crictl pull).
    #[default]
    Cri,
    /// `ctr -n k8s.io images pull` on the node.
    Ctr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullAction {
    /// The registry (required).
    pub registry: RegistryKind,
    /// The `ca` line of the hosts.toml. Default: right for tls and down (so only the refused
    /// connection can fail); plain registries take no CA.
    #[serde(default)]
    pub ca: Option<CaChoice>,
    /// Write `certs.d/<host>/hosts.toml` (CRI `config_path`, `ctr --hosts-dir`). Default: true.
    #[serde(default = "yes")]
    pub hosts_toml: bool,
    /// Who pulls. Default: cri.
    #[serde(default)]
    pub client: PullClient,
    /// With client ctr: pass `--hosts-dir <config_path>`. Default: false.
    #[serde(default)]
    pub hosts_dir: bool,
    /// Pull through a mirror entry for this registry namespace (e.g. `docker.io`): the image
    /// is named `<mirror>/...` and `certs.d/<mirror>/hosts.toml` points at our registry.
    /// Default: none (pull by the registry's address).
    #[serde(default)]
    pub mirror: Option<String>,
    /// After a successful CRI pull, run a container from the image in a sandbox of this
    /// handler. Default: empty, containerd's default handler.
    #[serde(default)]
    pub handler: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtrRunAction {
    /// The runtime type `ctr run --runtime` gets, e.g. `io.containerd.kata.v2` (required).
    /// Kata runtimes also get `--runtime-config-path` with the node's Kata configuration.
    pub runtime: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxImageAction {
    /// The pinned sandbox image is in `k8s.io` (as provisioned); false: it is removed first
    /// (and re-imported afterwards). Required.
    pub preloaded: bool,
    /// Runtime handler of the sandbox. Default: empty, containerd's default.
    #[serde(default)]
    pub handler: String,
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
    /// `uname -r` inside the container (CRI ExecSync) against the node's kernel: `differs`
    /// (a VM guest's kernel: Kata) or `host` (a plain container: the runc control). Needs
    /// `sandbox.container: true`.
    #[serde(default)]
    pub guest_kernel: Option<GuestKernel>,
    /// Getting into the Kata VM (the seed's issue 04): `kata-runtime exec <sandbox>` opens the
    /// agent's debug console, where `uname -r` prints the guest's kernel (not the node's).
    #[serde(default)]
    pub guest_console: Option<bool>,
    /// The action must fail with this CRI error, and leave no sandbox behind.
    #[serde(default)]
    pub error: Option<ExpectError>,
    /// Whether the imported image is visible through the CRI image service.
    #[serde(default)]
    pub cri_visible: Option<bool>,
    /// `pull` rows: the image arrived (and ran, for CRI pulls). `sandbox_image` rows: false
    /// means no image was pulled (no `/images/create` event while the sandbox started).
    #[serde(default)]
    pub pulled: Option<bool>,
    /// A node command (`ctr images pull`) must exit non-zero with this in its stderr.
    #[serde(default)]
    pub command_error: Option<String>,
    /// The action must finish (success or the expected error) within this many seconds.
    #[serde(default)]
    pub within_seconds: Option<u64>,
    /// Kubernetes rows: the API refuses the object with a message containing this text.
    #[serde(default)]
    pub rejected: Option<String>,
    /// Kubernetes rows: the pod stays Pending and gets an event with this reason.
    #[serde(default)]
    pub event: Option<String>,
}

/// Which kernel a container must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKernel {
    /// Not the node's kernel (the container runs in a VM).
    Differs,
    /// The node's own kernel.
    Host,
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
            placements: parsed.placements.unwrap_or_else(PlacementKind::default_set),
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
        let has_kata = self.rows.iter().any(|r| r.requires.contains(&Requirement::Kata));
        let has_control = self.rows.iter().any(|r| {
            let handler = r
                .sandbox
                .as_ref()
                .map(|s| s.handler.as_str())
                .or(r.pull.as_ref().map(|p| p.handler.as_str()))
                .or(r.sandbox_image.as_ref().map(|s| s.handler.as_str()))
                .or(r
                    .image_import
                    .as_ref()
                    .filter(|i| i.container)
                    .map(|i| i.handler.as_str()));
            handler.is_some_and(|h| h.is_empty() || h == "runc")
                && r.expect.runtime_type.as_deref() == Some("io.containerd.runc.v2")
        });
        let has_control = has_control
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

impl Row {
    fn validate_ctr_run(&self, action: &CtrRunAction) -> Result<(), (&'static str, String)> {
        let e = &self.expect;
        if !action.runtime.starts_with("io.containerd.") || action.runtime.split('.').count() < 4 {
            return Err((
                "ctr_run.runtime",
                format!(
                    "{:?} is not a runtime type like io.containerd.kata.v2",
                    action.runtime
                ),
            ));
        }
        if action.runtime.starts_with("io.containerd.kata") && !self.requires.contains(&Requirement::Kata) {
            return Err((
                "requires",
                "a Kata runtime row must declare `requires: [kata]`".into(),
            ));
        }
        if e.runtime_type.is_none() {
            return Err((
                "expect.runtime_type",
                "a ctr_run row expects the runtime containerd records".into(),
            ));
        }
        let foreign = e.binary_name.is_some()
            || e.oci_runtime.is_some()
            || e.error.is_some()
            || e.cri_visible.is_some()
            || e.pulled.is_some()
            || e.command_error.is_some()
            || e.within_seconds.is_some()
            || e.rejected.is_some()
            || e.event.is_some();
        if foreign {
            return Err((
                "expect",
                "a ctr_run row expects runtime_type and vmm_process".into(),
            ));
        }
        Ok(())
    }

    /// Checks one row; the error names the offending field.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let e = &self.expect;
        if self.sandbox.is_none() {
            for (field, set) in [
                ("expect.guest_kernel", e.guest_kernel.is_some()),
                ("expect.guest_console", e.guest_console.is_some()),
            ] {
                if set {
                    return Err((field, "only a sandbox row reads the guest".into()));
                }
            }
        }
        if let Some(kube) = &self.kube {
            return kube::validate_row(self, kube);
        }
        if self.skip.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(("skip", "needs the reason the row is skipped".into()));
        }
        let actions = [
            ("sandbox", self.sandbox.is_some()),
            ("image_import", self.image_import.is_some()),
            ("pull", self.pull.is_some()),
            ("sandbox_image", self.sandbox_image.is_some()),
            ("ctr_run", self.ctr_run.is_some()),
            ("critest", self.critest.is_some()),
        ];
        let set: Vec<&'static str> = actions.iter().filter(|a| a.1).map(|a| a.0).collect();
        if set.len() > 1 {
            return Err((set[1], format!("a row has one action; {} is already set", set[0])));
        }
        if let Some(action) = &self.critest {
            return critest::validate_row(self, action);
        }
        if e.within_seconds == Some(0) {
            return Err(("expect.within_seconds", "must be at least 1".into()));
        }
        let new_fields = e.pulled.is_some() || e.command_error.is_some() || e.within_seconds.is_some();
        if let Some(action) = &self.ctr_run {
            return self.validate_ctr_run(action);
        }
        if let Some(pull) = &self.pull {
            self.validate_pull(pull)?;
        } else if let Some(action) = &self.sandbox_image {
            self.validate_handler(&action.handler)?;
            if e.cri_visible.is_some() || e.command_error.is_some() || e.binary_name.is_some() {
                return Err((
                    "expect",
                    "a sandbox_image row expects runtime_type + pulled: false, or an error".into(),
                ));
            }
            match (action.preloaded, &e.error) {
                (true, None) if e.pulled == Some(false) && e.runtime_type.is_some() => {}
                (true, None) => {
                    return Err((
                        "expect.pulled",
                        "a preloaded sandbox_image row must expect runtime_type and pulled: false (no pull happened)".into(),
                    ))
                }
                (false, Some(_)) if e.pulled.is_none() && e.runtime_type.is_none() => {}
                (false, _) => {
                    return Err((
                        "expect.error",
                        "with the sandbox image removed on an air-gapped node, expect only the CRI error".into(),
                    ))
                }
                (true, Some(_)) => {
                    return Err((
                        "expect.error",
                        "a preloaded sandbox image must start the sandbox".into(),
                    ))
                }
            }
        } else if self.sandbox.is_some() && new_fields {
            return Err((
                "expect",
                "pulled, command_error and within_seconds fit pull, sandbox_image and image_import rows"
                    .into(),
            ));
        }
        match (&self.sandbox, &self.image_import) {
            (None, None) if self.pull.is_some() || self.sandbox_image.is_some() => {}
            (None, None) => {
                return Err((
                    "sandbox",
                    "a row needs one action: sandbox, image_import, pull or sandbox_image".into(),
                ))
            }
            (Some(_), Some(_)) => unreachable!("one action checked above"),
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
                if e.guest_kernel.is_some() && !sandbox.container {
                    return Err((
                        "expect.guest_kernel",
                        "the kernel is read inside a container: needs `sandbox.container: true`".into(),
                    ));
                }
                if e.guest_console.is_some() && !kata {
                    return Err((
                        "expect.guest_console",
                        "only a Kata sandbox has a guest console (sandbox.handler kata...)".into(),
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
                if !import.container && !import.handler.is_empty() {
                    return Err(("image_import.handler", "only fits with container: true".into()));
                }
                self.validate_handler(&import.handler)?;
                if e.binary_name.is_some()
                    || e.oci_runtime.is_some()
                    || e.pulled.is_some()
                    || e.within_seconds.is_some()
                {
                    return Err((
                        "expect",
                        "an image_import row expects cri_visible, command_error (the import fails), and with container: true a runtime_type or the CreateContainer error".into(),
                    ));
                }
                if e.command_error.is_some() && (import.container || e.cri_visible == Some(true)) {
                    return Err((
                        "expect.command_error",
                        "a failing import leaves nothing to run or see: use container: false and cri_visible: false".into(),
                    ));
                }
                if import
                    .platforms
                    .as_deref()
                    .is_some_and(|p| p != "all" && !p.contains('/'))
                {
                    return Err((
                        "image_import.platforms",
                        "expected `all` or an os/arch platform such as linux/amd64".into(),
                    ));
                }
                if import.container && e.runtime_type.is_none() && e.error.is_none() {
                    return Err((
                        "expect.runtime_type",
                        "with container: true, expect the container's runtime_type or the CRI error".into(),
                    ));
                }
                if !import.container && (e.runtime_type.is_some() || e.error.is_some()) {
                    return Err((
                        "expect",
                        "runtime_type and error need container: true in an image_import row".into(),
                    ));
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

    /// A handler named by a non-`sandbox` action must be configured, and Kata needs the
    /// requirement declared.
    fn validate_handler(&self, handler: &str) -> Result<(), (&'static str, String)> {
        if !handler.is_empty() && !CONFIGURED_HANDLERS.contains(&handler) {
            return Err((
                "handler",
                format!(
                    "unknown handler {handler:?} (configured: {})",
                    CONFIGURED_HANDLERS.join(", ")
                ),
            ));
        }
        if handler.starts_with("kata") && !self.requires.contains(&Requirement::Kata) {
            return Err((
                "requires",
                "a Kata handler row must declare `requires: [kata]`".into(),
            ));
        }
        Ok(())
    }

    fn validate_pull(&self, pull: &PullAction) -> Result<(), (&'static str, String)> {
        let e = &self.expect;
        self.validate_handler(&pull.handler)?;
        if pull.registry == RegistryKind::Plain && pull.ca.is_some() {
            return Err(("pull.ca", "a plain-HTTP registry takes no CA".into()));
        }
        if !pull.hosts_toml && pull.ca.is_some() {
            return Err((
                "pull.ca",
                "the CA is a line of hosts.toml, and hosts_toml is false".into(),
            ));
        }
        if pull.mirror.is_some() && !pull.hosts_toml {
            return Err((
                "pull.mirror",
                "a mirror entry is a hosts.toml; hosts_toml is false".into(),
            ));
        }
        if let Some(mirror) = &pull.mirror {
            if mirror.is_empty() || mirror.contains('/') {
                return Err(("pull.mirror", format!("{mirror:?} is not a registry host")));
            }
        }
        if e.cri_visible.is_some() || e.binary_name.is_some() || e.oci_runtime.is_some() {
            return Err((
                "expect",
                "a pull row expects pulled: true, an error (cri) or a command_error (ctr)".into(),
            ));
        }
        let outcomes = [
            e.pulled == Some(true),
            e.error.is_some(),
            e.command_error.is_some(),
        ];
        if outcomes.iter().filter(|o| **o).count() != 1 || e.pulled == Some(false) {
            return Err((
                "expect",
                "a pull row expects exactly one of pulled: true, error, command_error".into(),
            ));
        }
        match pull.client {
            PullClient::Cri => {
                if pull.hosts_dir {
                    return Err((
                        "pull.hosts_dir",
                        "only fits client: ctr (the CRI uses config_path)".into(),
                    ));
                }
                if e.command_error.is_some() {
                    return Err((
                        "expect.command_error",
                        "fits client: ctr; CRI rows expect error".into(),
                    ));
                }
            }
            PullClient::Ctr => {
                if e.error.is_some() {
                    return Err(("expect.error", "ctr is a command: expect command_error".into()));
                }
                if !pull.handler.is_empty() || e.runtime_type.is_some() {
                    return Err(("pull.handler", "ctr pulls are not run in a sandbox".into()));
                }
            }
        }
        if e.runtime_type.is_some() && e.pulled != Some(true) {
            return Err(("expect.runtime_type", "only fits a successful CRI pull".into()));
        }
        Ok(())
    }

    /// The expectation in one line, for the report's "expected" column.
    pub fn expected_summary(&self) -> String {
        if let Some(summary) = kube::expected_summary(self) {
            return summary;
        }
        if let Some(action) = &self.critest {
            return critest::expected_summary(action);
        }
        let e = &self.expect;
        if let Some(error) = &e.error {
            return format!("{} error: {}", error.code, error.message);
        }
        if let Some(message) = &e.command_error {
            return format!("command fails: {message}");
        }
        if e.pulled == Some(true) {
            return match &e.runtime_type {
                Some(rt) => format!("pulled, container runs on {rt}"),
                None => "pulled".into(),
            };
        }
        if e.pulled == Some(false) {
            return format!("{}, no image pulled", e.runtime_type.clone().unwrap_or_default());
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
        match e.guest_kernel {
            Some(GuestKernel::Differs) => parts.push("guest kernel".into()),
            Some(GuestKernel::Host) => parts.push("host kernel".into()),
            None => {}
        }
        if e.guest_console == Some(true) {
            parts.push("guest console".into());
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
    fn critest_rows_are_checked_like_other_rows() {
        let row = |body: &str| format!("suite: critest\nrows:\n  - scenario: c\n{body}");
        let ok = parse(&row(
            "    critest: { handler: crun, focus: Image }\n    expect: {}\n",
        ))
        .unwrap();
        assert_eq!(ok.rows[0].critest.as_ref().unwrap().handler, "crun");
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
        assert_eq!(suite.rows[0].pull.as_ref().unwrap().registry, RegistryKind::Tls);
        assert!(
            suite.rows[3].pull.as_ref().unwrap().hosts_toml,
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
