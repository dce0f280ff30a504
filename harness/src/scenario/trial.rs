//! What every kind of row shares: the failure type, unique names, the CRI helpers
//! (start-and-inspect, status judgement, sandbox removal, settled image status), the
//! reproduce lines, and the skipped result. Below the kinds (sandbox, images, ctr_run,
//! guest), which import from here and never from each other's runner.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::model::{grpc_code, ExpectError};
use super::plan::Trial;
use crate::cri::{CriError, RuntimeInfo};
use crate::node::Proc;
use crate::process::shell_quote;
use crate::provision::Testbed;
use crate::render::cri::PodSpec;
use crate::report::{Evidence, ScriptNode, TrialResult, Verdict};
use crate::wait::{wait_for, Attempt};

/// How long a removed sandbox's shim may take to exit.
pub(super) const SHIM_EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// containerd's namespace of the CRI's objects.
pub(super) const CRI_NAMESPACE: &str = "k8s.io";

/// The container lines of `reproduce.sh` (after `POD=$(crictl runp ...)`).
pub(super) const CREATE_AND_START: &str =
    "CTR=$(crictl create \"$POD\" container.json pod.json) && crictl start \"$CTR\"";

/// `crictl runp [-r <handler>] pod.json`.
pub(super) fn runp_line(handler: &str) -> String {
    if handler.is_empty() {
        "crictl runp pod.json".into()
    } else {
        format!("crictl runp -r {} pod.json", shell_quote(handler))
    }
}

/// The node as `reproduce.sh`'s header names it: its crictl, its ctr, its socket.
pub(crate) fn script_node(testbed: &Testbed) -> ScriptNode {
    ScriptNode {
        crictl: testbed.crictl.clone(),
        ctr: testbed.containerd.binary("ctr").to_string_lossy().into_owned(),
        socket: testbed.paths.node_socket.to_string_lossy().into_owned(),
        description: testbed.describe(),
    }
}

/// A failed judgement: what was seen, and why it is wrong.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) observed: String,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn new(observed: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            observed: observed.into(),
            message: message.into(),
        }
    }
}

/// The result of a trial that was skipped before it ran.
pub fn skipped(trial: &Trial, reason: &str) -> TrialResult {
    trial.result(Verdict::Skipped, "-", reason, Duration::ZERO, Evidence::default())
}

/// A row's pod sandbox of `handler`: a fresh name after `scenario`, its logs under the
/// testbed's pod logs, its cgroup under the testbed's; the rest at the defaults.
pub(super) fn row_pod(testbed: &Testbed, scenario: &str, handler: &str) -> PodSpec {
    let name = unique(scenario);
    PodSpec {
        namespace: "kata-harness".into(),
        uid: unique("uid"),
        handler: handler.to_owned(),
        log_directory: testbed.paths.pod_logs.join(&name).to_string_lossy().into_owned(),
        cgroup_parent: format!("/{}", testbed.cgroup_parent),
        name,
        ..PodSpec::default()
    }
}

pub(super) fn unique(prefix: &str) -> String {
    use sha2::{Digest, Sha256};
    let seed = format!(
        "{prefix}{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    format!("{prefix}-{}", hex::encode(&Sha256::digest(seed.as_bytes())[..3]))
}

/// A CRI error must carry the expected code and message; the exact error goes to evidence
/// (`cri-error.txt`: the bundle's `error.txt` is the trial's summary).
pub(super) fn judge_status(
    error: &CriError,
    expected: &ExpectError,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    evidence.file("cri-error.txt", &error.to_string());
    let Some(status) = error.status() else {
        return Err(Failure::new(
            short_error(error),
            format!("expected a CRI error status, got: {error}"),
        ));
    };
    let observed = format!("{:?} error: {}", status.code(), status.message());
    let want = grpc_code(&expected.code).expect("validated code");
    if status.code() != want || !status.message().contains(&expected.message) {
        return Err(Failure::new(
            observed,
            format!("expected {:?} containing {:?}", want, expected.message),
        ));
    }
    Ok(observed)
}

/// Starts a created container and reads its runtime back, requiring it to be running (or,
/// with `may_exit`, to have run: a command that ends by itself).
/// CRI: StartContainer, then ContainerStatus verbose info.runtimeType (crictl start / inspect).
pub(super) async fn start_and_inspect(
    testbed: &Testbed,
    cid: &str,
    may_exit: bool,
    evidence: &mut Evidence,
) -> Result<RuntimeInfo, Failure> {
    testbed
        .cri
        .start_container(cid)
        .await
        .map_err(|e| Failure::new(short_error(&e), format!("StartContainer failed: {e}")))?;
    let status = testbed
        .cri
        .container_status(cid)
        .await
        .map_err(|e| Failure::new(short_error(&e), format!("ContainerStatus failed: {e}")))?;
    record_info(evidence, "inspect.json", &status.info);
    let state = status.status.as_ref().map(|s| s.state).unwrap_or_default();
    let exited = may_exit && state == k8s_cri::v1::ContainerState::ContainerExited as i32;
    if state != k8s_cri::v1::ContainerState::ContainerRunning as i32 && !exited {
        return Err(Failure::new(
            format!("container state {state}"),
            "the container is not running after StartContainer",
        ));
    }
    RuntimeInfo::from_verbose_info("container", &status.info)
        .map_err(|e| Failure::new("unreadable", e.to_string()))
}

/// The VMM a Kata shim starts: a child of the shim process for this sandbox.
pub(super) fn vmm_child_of_shim(testbed: &Testbed, sandbox_id: &str) -> Result<Option<String>, String> {
    let shims: Vec<i32> = testbed
        .node
        .processes(sandbox_id)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| p.cmdline.contains("containerd-shim-kata"))
        .map(|p| p.pid)
        .collect();
    let vmms = ["qemu", "cloud-hyperviso", "firecracker"];
    let all = testbed.node.all_processes().map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .find(|p| shims.contains(&p.ppid) && vmms.iter().any(|v| p.comm.starts_with(v)))
        .map(|p| p.comm))
}

/// The processes that hold a sandbox (its shim; a Kata sandbox's VMM too), taken once it
/// runs, so the row can tell whether one of them died under it: a killed shim or QEMU shows
/// in the CRI only as "ttrpc: closed", a NOTREADY sandbox, or not at all.
pub(super) struct Holders(Vec<Proc>);

impl Holders {
    pub(super) fn of(testbed: &Testbed, sandbox_id: &str) -> Holders {
        let long_lived = ["containerd-shim", "qemu", "cloud-hyperviso", "firecracker"];
        let held = testbed.node.processes(sandbox_id).unwrap_or_default();
        Holders(
            held.into_iter()
                .filter(|p| long_lived.iter().any(|name| p.comm.starts_with(name)))
                .collect(),
        )
    }

    /// The holders that are gone now, named; `None` when all still run (or the node cannot
    /// be asked).
    fn gone(&self, testbed: &Testbed, sandbox_id: &str) -> Option<String> {
        let now = testbed.node.processes(sandbox_id).ok()?;
        let gone: Vec<String> = self
            .0
            .iter()
            .filter(|held| !now.iter().any(|p| p.pid == held.pid))
            .map(|p| format!("pid {} ({})", p.pid, p.comm))
            .collect();
        (!gone.is_empty()).then(|| gone.join(", "))
    }

    /// Runs `row` (the row's CRI calls on this sandbox), abandoning it as soon as a holder
    /// dies: a CRI call on a sandbox whose VMM is gone can wait a minute for the shim's own
    /// deadline. The outcome then carries the true cause first, also when a holder died
    /// after the row's calls returned (containerd may clean up after a dead shim before the
    /// row looks).
    pub(super) async fn watch(
        &self,
        testbed: &Testbed,
        sandbox_id: &str,
        row: impl std::future::Future<Output = Result<String, Failure>>,
    ) -> Result<String, Failure> {
        let died = async {
            loop {
                tokio::time::sleep(HOLDER_POLL).await;
                if self.gone(testbed, sandbox_id).is_some() {
                    return;
                }
            }
        };
        let outcome = tokio::select! {
            outcome = row => outcome,
            () = died => Err(Failure::new("(abandoned)", "its CRI call still waiting, abandoned")),
        };
        let Some(gone) = self.gone(testbed, sandbox_id) else {
            return outcome;
        };
        let (observed, saw) = match outcome {
            Ok(observed) => (observed, "nothing wrong".to_owned()),
            Err(failure) => (failure.observed, failure.message),
        };
        Err(Failure::new(
            format!("{observed}; {gone} gone"),
            format!("the sandbox's {gone} exited mid-row, before the row removed it; the row saw: {saw}"),
        ))
    }
}

/// How often a row looks at its sandbox's holders (on a VM, each look is a `ps` over SSH).
const HOLDER_POLL: Duration = Duration::from_secs(1);

/// Stops and removes a sandbox, then waits for its shim to exit: a shim left running fails the trial.
pub(super) async fn remove_sandbox(testbed: &Testbed, id: &str) -> Result<(), String> {
    testbed
        .cri
        .stop_pod_sandbox(id)
        .await
        .map_err(|e| format!("cleanup: StopPodSandbox failed: {e}"))?;
    testbed
        .cri
        .remove_pod_sandbox(id)
        .await
        .map_err(|e| format!("cleanup: RemovePodSandbox failed: {e}"))?;
    wait_for(
        "the sandbox's shim to exit",
        SHIM_EXIT_DEADLINE * testbed.slowdown,
        Duration::from_millis(50),
        || {
            let left = testbed.node.processes(id);
            async move {
                match left {
                    Ok(left) if left.is_empty() => Attempt::Ready(()),
                    Ok(left) => Attempt::NotYet(
                        left.iter()
                            .map(|p| format!("{}: {}", p.pid, p.cmdline))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            }
        },
    )
    .await
    .map_err(|e| format!("cleanup: left behind after removal: {e}"))
}

/// How long the CRI may take to learn of an import: it follows containerd's image events
/// asynchronously (seen here: 2.1 under load answered ImageStatus before its own import
/// event had been handled).
pub(super) const IMPORT_VISIBLE_DEADLINE: Duration = Duration::from_secs(15);

/// How long a row expecting "not visible" keeps looking, so a late appearance is caught.
pub(super) const IMPORT_INVISIBLE_SETTLE: Duration = Duration::from_secs(2);

/// ImageStatus once the CRI has caught up: until the image shows (a row expecting it
/// visible) or for a short settle (a row expecting it not to be).
pub(super) async fn settled_image_status(
    testbed: &Testbed,
    image: &str,
    expect_visible: bool,
) -> Result<Option<k8s_cri::v1::Image>, CriError> {
    let deadline = if expect_visible {
        IMPORT_VISIBLE_DEADLINE
    } else {
        IMPORT_INVISIBLE_SETTLE
    };
    // Ready with an answer worth stopping for (the image, or a CRI error); not seeing the
    // image by the deadline is an answer too.
    let seen = wait_for(
        &format!("{image} to reach the CRI"),
        deadline,
        Duration::from_millis(200),
        || async move {
            match testbed.cri.image_status(image).await {
                Ok(None) => Attempt::NotYet("ImageStatus is empty".into()),
                answer => Attempt::Ready(answer),
            }
        },
    )
    .await;
    seen.unwrap_or(Ok(None))
}

pub(super) fn record_info(evidence: &mut Evidence, file: &str, info: &HashMap<String, String>) {
    let parsed: Value = info
        .get("info")
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or(Value::Null);
    evidence.file(file, &pretty(&serde_json::json!({ "info": parsed })));
}

pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("json values serialise")
}

pub(super) fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned())
}

pub(super) fn short_error(error: &CriError) -> String {
    match error.status() {
        Some(status) => format!("{:?} error", status.code()),
        None => "no answer".into(),
    }
}
