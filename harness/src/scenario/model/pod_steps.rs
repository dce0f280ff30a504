//! The steps of a `pod:` row, in the order a user writes them (`- exec: {...}`), each with
//! what it must observe. Run by crate::scenario::pod; their checks against the pod's
//! containers and mounts are in [`super::pod::PodAction`]'s validation.

use serde::Deserialize;

use super::resources::Resources;

/// One thing done to the running pod, with what it must observe. Written as a one-key map:
/// `- exec: {...}`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Run a command in a container (CRI ExecSync, `crictl exec -s`).
    Exec(ExecStep),
    /// Change a running container's limits (CRI UpdateContainerResources, `crictl update`).
    Update(UpdateStep),
    /// Stop a container with a grace period (CRI StopContainer, `crictl stop --timeout`):
    /// SIGTERM, then SIGKILL when the period ends.
    Stop(StopStep),
    /// Wait until a container reaches a state (it exits by itself, is OOM-killed, ...).
    WaitFor(WaitStep),
    /// Write a file on one side of a mount and read it on the other.
    File(FileStep),
    /// The container's CPU and memory use as the runtime reports it (CRI ContainerStats,
    /// `crictl stats`): both must be present and non-zero.
    Stats(StatsStep),
    /// Kill a process that holds the sandbox (SIGKILL): the shim must then exit by itself and
    /// the sandbox be removable, with nothing left running. The pod's last step.
    Kill(KillStep),
}

impl Step {
    /// The key the suite files use for it.
    pub fn key(&self) -> &'static str {
        match self {
            Step::Exec(_) => "exec",
            Step::Update(_) => "update",
            Step::Stop(_) => "stop",
            Step::WaitFor(_) => "wait_for",
            Step::File(_) => "file",
            Step::Stats(_) => "stats",
            Step::Kill(_) => "kill",
        }
    }

    /// The container the step acts on, when it names one.
    pub fn container(&self) -> Option<&str> {
        match self {
            Step::Exec(s) => s.container.as_deref(),
            Step::Update(s) => s.container.as_deref(),
            Step::Stop(s) => s.container.as_deref(),
            Step::WaitFor(s) => s.container.as_deref(),
            Step::File(s) => s.container.as_deref(),
            Step::Stats(s) => s.container.as_deref(),
            Step::Kill(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecStep {
    /// The container. Default: the pod's first.
    #[serde(default)]
    pub container: Option<String>,
    /// The command and its arguments (required).
    pub command: Vec<String>,
    /// The exit code it must return. Default: 0.
    #[serde(default)]
    pub exit_code: i32,
    /// What its standard output (trimmed) must be. Default: anything.
    #[serde(default)]
    pub stdout: Option<TextMatch>,
    /// What its standard error (trimmed) must be. Default: anything.
    #[serde(default)]
    pub stderr: Option<TextMatch>,
}

/// A text check: `{ equals: "2" }`, `{ matches: "^nameserver 10\\.0\\.0\\.10$" }` (a regular
/// expression, multi-line: `^` and `$` match at line ends) or `{ contains: "..." }`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TextMatch {
    /// Exactly this text.
    Equals(String),
    /// A regular expression (Rust's `regex` syntax), multi-line.
    Matches(String),
    /// This text somewhere in it.
    Contains(String),
}

impl TextMatch {
    /// Whether `text` passes; a bad regular expression was refused when the row loaded.
    pub fn accepts(&self, text: &str) -> bool {
        match self {
            TextMatch::Equals(want) => text == want,
            TextMatch::Contains(want) => text.contains(want.as_str()),
            TextMatch::Matches(pattern) => Self::regex(pattern).is_ok_and(|re| re.is_match(text)),
        }
    }

    fn regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(pattern).multi_line(true).build()
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        match self {
            TextMatch::Matches(pattern) => Self::regex(pattern).map(|_| ()).map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for TextMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextMatch::Equals(want) => write!(f, "{want:?}"),
            TextMatch::Matches(pattern) => write!(f, "matching /{pattern}/"),
            TextMatch::Contains(want) => write!(f, "containing {want:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStep {
    /// The container. Default: the pod's first.
    #[serde(default)]
    pub container: Option<String>,
    /// The new limits (required).
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopStep {
    /// The container. Default: the pod's first.
    #[serde(default)]
    pub container: Option<String>,
    /// Seconds between SIGTERM and SIGKILL (required).
    pub grace_seconds: u32,
    /// The exit code it must end with (SIGKILL: 137). Default: any.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// It must have exited within this many seconds of the stop (less than the grace period:
    /// SIGTERM reached it). Default: no bound beyond the grace period.
    #[serde(default)]
    pub within_seconds: Option<u64>,
    /// What its log (the CRI log file, the container's output) must hold afterwards.
    /// Default: anything.
    #[serde(default)]
    pub log: Option<TextMatch>,
}

/// A container state to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Started and not exited.
    Running,
    /// Exited (by itself, killed, OOM-killed).
    Exited,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// The container. Default: the pod's first.
    #[serde(default)]
    pub container: Option<String>,
    /// The state (required).
    pub state: ContainerState,
    /// With `exited`: the exit code. Default: any.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// With `exited`: the reason the CRI gives (`OOMKilled`, `Completed`, `Error`).
    /// Default: any.
    #[serde(default)]
    pub reason: Option<String>,
    /// How long to wait (required, at least 1).
    pub within_seconds: u64,
}

/// Which side of a mount writes the file; the other reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Writer {
    /// The node writes into the mounted directory; the container reads (`cat` via ExecSync).
    Node,
    /// The container writes (`sh -c` via ExecSync); the node reads the directory.
    Container,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileStep {
    /// The container. Default: the pod's first.
    #[serde(default)]
    pub container: Option<String>,
    /// The file as the container sees it: under one of its `mounts` (required).
    pub path: String,
    /// Who writes (required).
    pub writer: Writer,
    /// What is written and must be read back (required).
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsStep {
    /// The container. Default: the pod's first.
    #[serde(default)]
    pub container: Option<String>,
}

/// A process holding a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HolderProcess {
    /// The Kata VMM (QEMU): Kata handlers only.
    Vmm,
    /// The sandbox's containerd shim.
    Shim,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillStep {
    /// What to kill (required).
    pub process: HolderProcess,
    /// With `vmm`: the shim must exit by itself within this many seconds. Default: 30.
    #[serde(default = "thirty")]
    pub shim_exits_within_seconds: u64,
}

fn thirty() -> u64 {
    30
}
