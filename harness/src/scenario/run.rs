//! Running one trial against a ready testbed and judging what was observed.
//!
//! Invariant: a trial acts through the CRI (as crictl would), observes through the CRI *and*
//! through containerd's own record and the OCI runtimes' state, cleans up what it created, and
//! fails if anything it started is still running afterwards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::model::{grpc_code, ExpectError, GuestKernel, ImageImportAction, Row, SandboxAction};
use super::plan::Trial;
use crate::cri::{CriError, RuntimeInfo};
use crate::images;
use crate::process::shell_quote;
use crate::provision::{Testbed, BUSYBOX_BINARY, BUSYBOX_IMAGE, NODE_COMMAND_DEADLINE};
use crate::render::cri::{ContainerSpec, PodSpec};
use crate::report::bundle::RUNTIME_TYPE_TEMPLATE;
use crate::report::{Evidence, ScriptNode, TrialResult, Verdict};
use crate::wait::{wait_for, Attempt};

/// The whole trial, from the first CRI call to the leftover check.
pub const TRIAL_DEADLINE: Duration = Duration::from_secs(300);
/// How long a removed sandbox's shim may take to exit.
const SHIM_EXIT_DEADLINE: Duration = Duration::from_secs(15);
const CRI_NAMESPACE: &str = "k8s.io";

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
pub(super) struct Failure {
    observed: String,
    message: String,
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
    TrialResult::new(
        trial,
        Verdict::Skipped,
        "-",
        reason,
        Duration::ZERO,
        Evidence::default(),
    )
}

/// Runs one trial. Never panics on a bad observation: every outcome is a [`TrialResult`].
pub async fn run_trial(testbed: &Testbed, trial: &Trial) -> TrialResult {
    if let Some(reason) = &trial.skip {
        return skipped(trial, reason);
    }
    let start = Instant::now();
    let mut evidence = Evidence {
        node: Some(script_node(testbed)),
        ..Evidence::default()
    };
    let outcome =
        match tokio::time::timeout(TRIAL_DEADLINE, run_row(testbed, &trial.row, &mut evidence)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::new(
                "(no answer)",
                format!("trial did not finish within {TRIAL_DEADLINE:?}"),
            )),
        };
    // A daemon that died mid-trial explains everything else: say so first. A failure can
    // arrive a moment before the death is observable (the socket closes as the process
    // exits, before it can be reaped), so a failed row looks again for a second.
    let gone = match &outcome {
        Ok(_) => testbed.daemon_exit(),
        Err(_) => settled_daemon_exit(testbed).await,
    };
    let outcome = match (outcome, gone) {
        (Ok(observed), None) => Ok(observed),
        (Ok(_), Some(status)) | (Err(_), Some(status)) => Err(Failure::new(
            "containerd is gone",
            format!(
                "containerd exited ({status}); its log ends with:\n{}",
                testbed.log_tail(30)
            ),
        )),
        (Err(failure), None) => Err(failure),
    };
    let (verdict, observed, message) = match outcome {
        Ok(observed) => (Verdict::Passed, observed, String::new()),
        Err(failure) => (Verdict::Failed, failure.observed, failure.message),
    };
    let mut result = TrialResult::new(trial, verdict, &observed, &message, start.elapsed(), evidence);
    result.expected = trial.row.expected_summary();
    result
}

/// [`Testbed::daemon_exit`], looked at for up to a second.
async fn settled_daemon_exit(testbed: &Testbed) -> Option<String> {
    wait_for(
        "the testbed to be seen gone",
        Duration::from_secs(1),
        Duration::from_millis(100),
        || {
            let gone = testbed.daemon_exit();
            async move { gone.map_or_else(|| Attempt::NotYet("still running".into()), Attempt::Ready) }
        },
    )
    .await
    .ok()
}

async fn run_row(testbed: &Testbed, row: &Row, evidence: &mut Evidence) -> Result<String, Failure> {
    if row.kube.is_some() {
        return Err(Failure::new(
            "-",
            "kube rows run against a cluster variant (crate::kube::session)",
        ));
    }
    if row.critest.is_some() {
        return Err(Failure::new(
            "-",
            "critest rows yield one row per spec (crate::critest::run, through scenario::session)",
        ));
    }
    if let Some(pull) = &row.pull {
        return super::images::run_pull(testbed, row, pull, evidence).await;
    }
    if let Some(action) = &row.sandbox_image {
        return super::images::run_sandbox_image(testbed, row, action, evidence).await;
    }
    if let Some(action) = &row.ctr_run {
        return super::ctr_run::run_ctr_run(testbed, row, action, evidence).await;
    }
    match (&row.sandbox, &row.image_import) {
        (Some(sandbox), _) => run_sandbox(testbed, row, sandbox, evidence).await,
        (_, Some(import)) => run_image_import(testbed, row, import, evidence).await,
        (None, None) => unreachable!("validated rows have an action"),
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

async fn run_sandbox(
    testbed: &Testbed,
    row: &Row,
    action: &SandboxAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let pod = PodSpec {
        name: name.clone(),
        namespace: "kata-harness".into(),
        uid: unique("uid"),
        handler: action.handler.clone(),
        log_directory: testbed.paths.pod_logs.join(&name).to_string_lossy().into_owned(),
        cgroup_parent: format!("/{}", testbed.cgroup_parent),
        host_network: action.host_network,
        annotations: HashMap::new(),
    };
    evidence.file("pod.json", &pretty(&pod.to_crictl_json()));
    evidence.reproduce(format!("POD=$({})", runp_line(&pod.handler)));

    // CRI: RunPodSandbox (crictl runp)
    let result = testbed.cri.run_pod_sandbox(&pod).await;
    if let Some(expected) = &row.expect.error {
        return match result {
            Err(e) => judge_expected_error(testbed, &pod, expected, &e, evidence).await,
            Ok(id) => {
                let _ = remove_sandbox(testbed, &id).await;
                Err(Failure::new(
                    format!("sandbox {id} started"),
                    format!(
                        "expected the CRI to refuse: {}: {}",
                        expected.code, expected.message
                    ),
                ))
            }
        };
    }
    let id = result.map_err(|e| Failure::new(short_error(&e), format!("RunPodSandbox failed: {e}")))?;
    let observed = observe_sandbox(testbed, row, action, &pod, &id, evidence).await;
    let cleanup = remove_sandbox(testbed, &id).await;
    let observed = observed?;
    cleanup.map_err(|message| Failure::new(observed.clone(), message))?;
    Ok(observed)
}

/// A CRI error must carry the expected code and message; the exact error goes to evidence.
pub(super) fn judge_status(
    error: &CriError,
    expected: &ExpectError,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    evidence.file("error.txt", &error.to_string());
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

/// CRI error rows: the code and message must match, and no sandbox may be left behind.
async fn judge_expected_error(
    testbed: &Testbed,
    pod: &PodSpec,
    expected: &ExpectError,
    error: &CriError,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let observed = judge_status(error, expected, evidence)?;
    // CRI: ListPodSandbox must not show the refused pod.
    let left: Vec<String> = testbed
        .cri
        .list_pod_sandboxes()
        .await
        .map_err(|e| Failure::new(observed.clone(), format!("ListPodSandbox failed: {e}")))?
        .into_iter()
        .filter(|s| s.metadata.as_ref().is_some_and(|m| m.name == pod.name))
        .map(|s| s.id)
        .collect();
    if !left.is_empty() {
        for id in &left {
            let _ = remove_sandbox(testbed, id).await;
        }
        return Err(Failure::new(
            observed,
            format!("the refused pod left sandboxes behind: {left:?}"),
        ));
    }
    Ok(format!("{observed}; no sandbox left"))
}

/// What one sandbox or container looks like from each witness.
struct Observation {
    what: &'static str,
    id: String,
    cri: RuntimeInfo,
    /// containerd's own record: `ctr -n k8s.io containers info <id>` -> `.Runtime.Name`.
    containerd_runtime: String,
}

async fn observe_sandbox(
    testbed: &Testbed,
    row: &Row,
    action: &SandboxAction,
    pod: &PodSpec,
    id: &str,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let mut observations = Vec::new();
    // CRI: PodSandboxStatus verbose info.runtimeType (crictl inspectp)
    let status = testbed
        .cri
        .pod_sandbox_status(id)
        .await
        .map_err(|e| Failure::new(short_error(&e), format!("PodSandboxStatus failed: {e}")))?;
    record_info(evidence, "inspectp.json", &status.info);
    evidence.reproduce(format!("crictl inspectp {RUNTIME_TYPE_TEMPLATE} \"$POD\""));
    let info = RuntimeInfo::from_verbose_info("sandbox", &status.info)
        .map_err(|e| Failure::new("unreadable", e.to_string()))?;
    observations.push(Observation {
        what: "sandbox",
        id: id.to_owned(),
        containerd_runtime: containerd_record(testbed, id, "$POD", evidence)?,
        cri: info,
    });

    let mut container_id = None;
    if action.container {
        let container = ContainerSpec {
            name: "busybox".into(),
            image: BUSYBOX_IMAGE.into(),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "busybox.log".into(),
        };
        evidence.file("container.json", &pretty(&container.to_crictl_json()));
        evidence.reproduce(CREATE_AND_START.into());
        // CRI: CreateContainer + StartContainer (crictl create / start)
        let cid = testbed
            .cri
            .create_container(id, &container, pod)
            .await
            .map_err(|e| Failure::new(short_error(&e), format!("CreateContainer failed: {e}")))?;
        let info = start_and_inspect(testbed, &cid, evidence).await?;
        evidence.reproduce(format!("crictl inspect {RUNTIME_TYPE_TEMPLATE} \"$CTR\""));
        observations.push(Observation {
            what: "container",
            id: cid.clone(),
            containerd_runtime: containerd_record(testbed, &cid, "$CTR", evidence)?,
            cri: info,
        });
        container_id = Some(cid);
    }
    let mut observed = judge_runtime(testbed, row, &observations)?;
    if let (Some(want), Some(cid)) = (row.expect.guest_kernel, &container_id) {
        observed = judge_guest_kernel(testbed, cid, want, observed, evidence).await?;
    }
    if row.expect.guest_console == Some(true) {
        observed = super::guest::judge_console(testbed, id, observed, evidence)?;
    }
    Ok(observed)
}

/// `uname -r` in the container (CRI ExecSync) against the node's own kernel.
async fn judge_guest_kernel(
    testbed: &Testbed,
    cid: &str,
    want: GuestKernel,
    observed: String,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    evidence.reproduce("crictl exec -s \"$CTR\" uname -r; uname -r".into());
    let exec = testbed
        .cri
        .exec_sync(cid, &["uname", "-r"], 60)
        .await
        .map_err(|e| Failure::new(observed.clone(), format!("ExecSync uname -r failed: {e}")))?;
    if exec.exit_code != 0 {
        return Err(Failure::new(
            observed,
            format!(
                "uname -r in the container exited {}: {}",
                exec.exit_code,
                String::from_utf8_lossy(&exec.stderr)
            ),
        ));
    }
    let inside = String::from_utf8_lossy(&exec.stdout).trim().to_owned();
    let node = testbed
        .node_kernel()
        .map_err(|e| Failure::new(observed.clone(), format!("uname -r on the node failed: {e}")))?;
    let observed = format!("{observed}, container kernel {inside} (node {node})");
    match (want, inside == node) {
        (GuestKernel::Differs, false) | (GuestKernel::Host, true) => Ok(observed),
        (GuestKernel::Differs, true) => Err(Failure::new(
            observed,
            format!("the container sees the node's kernel {node}: it is not in a VM"),
        )),
        (GuestKernel::Host, false) => Err(Failure::new(
            observed,
            format!("the container sees kernel {inside}, not the node's {node}"),
        )),
    }
}

/// Starts a created container and reads its runtime back, requiring it to be running.
/// CRI: StartContainer, then ContainerStatus verbose info.runtimeType (crictl start / inspect).
pub(super) async fn start_and_inspect(
    testbed: &Testbed,
    cid: &str,
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
    if state != k8s_cri::v1::ContainerState::ContainerRunning as i32 {
        return Err(Failure::new(
            format!("container state {state}"),
            "the container is not running after StartContainer",
        ));
    }
    RuntimeInfo::from_verbose_info("container", &status.info)
        .map_err(|e| Failure::new("unreadable", e.to_string()))
}

/// Every witness of every object must agree with the expectation.
fn judge_runtime(testbed: &Testbed, row: &Row, observations: &[Observation]) -> Result<String, Failure> {
    let expect = &row.expect;
    let first = &observations[0];
    let mut observed = vec![first.cri.runtime_type.clone()];
    if let Some(binary) = first.cri.binary_name() {
        observed.push(format!("BinaryName={}", file_name(binary)));
    }
    let mut problems = Vec::new();
    for o in observations {
        if let Some(want) = &expect.runtime_type {
            if &o.cri.runtime_type != want {
                problems.push(format!(
                    "{} runtimeType (CRI) is {}, expected {want}",
                    o.what, o.cri.runtime_type
                ));
            }
        }
        // containerd's own record must agree with what the CRI reports, whatever was expected.
        if o.containerd_runtime != o.cri.runtime_type {
            problems.push(format!(
                "{} {}: the CRI says {} but containerd records {}",
                o.what, o.id, o.cri.runtime_type, o.containerd_runtime
            ));
        }
        if let Some(want) = &expect.binary_name {
            let got = o
                .cri
                .binary_name()
                .map(file_name)
                .unwrap_or_else(|| "(none: runc)".into());
            if &got != want {
                problems.push(format!("{} BinaryName is {got}, expected {want}", o.what));
            }
        }
    }
    if let Some(want) = &expect.oci_runtime {
        for o in observations {
            match state_holder(testbed, &o.cri, &o.id) {
                Ok(holder) if &holder == want => {}
                Ok(holder) => problems.push(format!(
                    "{} {} is held by {holder}, expected {want}",
                    o.what, o.id
                )),
                Err(e) => problems.push(format!("{} {}: {e}", o.what, o.id)),
            }
        }
        observed.push(format!("state in {want}"));
    }
    if expect.vmm_process == Some(true) {
        match vmm_child_of_shim(testbed, &first.id) {
            Ok(Some(vmm)) => observed.push(format!("VMM process ({vmm})")),
            Ok(None) => problems
                .push("no VMM process (qemu, cloud-hypervisor, firecracker) is a child of the shim".into()),
            Err(e) => problems.push(format!("failed to list the node's processes: {e}")),
        }
    }
    if observations.len() > 1 {
        observed.push(format!("container: {}", observations[1].cri.runtime_type));
    }
    let observed = observed.join(", ");
    if problems.is_empty() {
        Ok(observed)
    } else {
        Err(Failure::new(observed, problems.join("; ")))
    }
}

/// Which OCI runtime holds `id`'s state: ask runc and crun for it under the shim's root.
/// Exactly one of them must know it (they keep different state files).
fn state_holder(testbed: &Testbed, info: &RuntimeInfo, id: &str) -> Result<String, String> {
    let root = info
        .root()
        .map(PathBuf::from)
        .unwrap_or_else(|| testbed.paths.runtime_root.clone())
        .join(CRI_NAMESPACE);
    let mut holders = Vec::new();
    for (name, binary) in [("runc", "runc"), ("crun", testbed.crun.as_str())] {
        let argv = vec![
            binary.to_owned(),
            "--root".into(),
            root.to_string_lossy().into_owned(),
            "state".into(),
            id.into(),
        ];
        let out = testbed
            .node
            .run_unchecked(&argv, NODE_COMMAND_DEADLINE)
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            let state: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if state.get("status").and_then(Value::as_str) == Some("running") {
                holders.push(name.to_owned());
            }
        }
    }
    match holders.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "neither runc nor crun knows it as running under {}",
            root.display()
        )),
        _ => Err(format!("both runc and crun claim it under {}", root.display())),
    }
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

/// containerd's own record of the runtime (`ctr -n k8s.io containers info <id>`); `var` is
/// the shell variable that holds the same object's ID in `reproduce.sh`.
fn containerd_record(
    testbed: &Testbed,
    id: &str,
    var: &str,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let out = testbed
        .ctr(CRI_NAMESPACE, &["containers", "info", id])
        .map_err(|e| Failure::new("ctr failed", format!("ctr containers info {id} failed: {e}")))?;
    let info: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::new("unreadable", format!("ctr containers info is not JSON: {e}")))?;
    evidence.file(
        &format!("ctr-containers-info-{}.json", &id[..12.min(id.len())]),
        &pretty(&info),
    );
    // ctr's table has the RUNTIME column: no JSON tool needed on the node.
    evidence.reproduce(format!("ctr -n {CRI_NAMESPACE} containers ls \"id=={var}\""));
    info.pointer("/Runtime/Name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Failure::new("no Runtime.Name", "ctr containers info has no Runtime.Name"))
}

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
        SHIM_EXIT_DEADLINE,
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

async fn run_image_import(
    testbed: &Testbed,
    row: &Row,
    action: &ImageImportAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let image = format!("localhost/kata-harness/import-{}-{}:1", row.scenario, testbed.id);
    let file = format!("{}.tar", row.scenario);
    // A file naming the image makes every row's blobs its own: content left in the store by
    // an earlier row would otherwise hide a missing blob (registry-facts.md §6).
    let archive = images::busybox(Path::new(BUSYBOX_BINARY))
        .map(|b| b.file("etc/kata-harness-image", image.clone().into_bytes(), 0o644))
        .and_then(|b| testbed.put_image_layout(&file, &image, &b, action.archive))
        .map_err(|e| Failure::new("no archive", format!("failed to build the image archive: {e}")))?;
    let archive_path = archive.path.to_string_lossy();
    let mut args = vec!["images", "import"];
    match action.platforms.as_deref() {
        Some("all") => args.push("--all-platforms"),
        Some(platform) => args.extend(["--platform", platform]),
        None => {}
    }
    args.push(&archive_path);
    let import = testbed.ctr_argv(&action.namespace, &args);
    evidence.reproduce(Testbed::ctr_line(&action.namespace, &args));
    let out = testbed
        .node
        .run_unchecked(&import, crate::provision::NODE_COMMAND_DEADLINE)
        .map_err(|e| Failure::new("ctr did not finish", crate::report::chain(&e)))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    evidence.file(
        "ctr-import.txt",
        &format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{stderr}\n",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ),
    );
    let import_failed = match (&row.expect.command_error, out.status.success()) {
        (None, true) => None,
        (None, false) => {
            return Err(Failure::new(
                "import failed",
                format!("ctr images import failed: {stderr}"),
            ))
        }
        (Some(want), true) => {
            let _ = testbed.ctr(&action.namespace, &["images", "rm", &image]);
            return Err(Failure::new(
                "imported",
                format!("expected ctr images import to fail with {want:?}"),
            ));
        }
        (Some(want), false) if stderr.contains(want.as_str()) => {
            Some(stderr.lines().last().unwrap_or_default().to_owned())
        }
        (Some(want), false) => {
            return Err(Failure::new(
                stderr.lines().last().unwrap_or_default().to_owned(),
                format!("expected ctr's error to contain {want:?}"),
            ))
        }
    };
    evidence.reproduce(format!("crictl inspecti {}", shell_quote(&image)));
    // CRI: ImageStatus (crictl inspecti) and ListImages (crictl images)
    let status = settled_image_status(testbed, &image, row.expect.cri_visible == Some(true)).await;
    let listed = testbed.cri.list_images().await;
    // A container from the imported image: runs when the CRI sees it, NotFound otherwise
    // (nothing can be pulled on the air-gapped node, so success proves no pull was needed).
    let ran = if action.container {
        Some(super::images::run_container(testbed, row, &action.handler, &image, evidence).await)
    } else {
        None
    };
    let _ = testbed.ctr(&action.namespace, &["images", "rm", &image]);
    let status = status.map_err(|e| Failure::new(short_error(&e), format!("ImageStatus failed: {e}")))?;
    let listed = listed.map_err(|e| Failure::new(short_error(&e), format!("ListImages failed: {e}")))?;
    let in_list = listed.iter().any(|i| i.repo_tags.iter().any(|t| t == &image));
    let visible = status.is_some();
    let observed = match &import_failed {
        Some(error) => format!(
            "{error}; {} to the CRI",
            if visible { "visible" } else { "not visible" }
        ),
        None => format!(
            "{} to the CRI (imported into {})",
            if visible { "visible" } else { "not visible" },
            action.namespace
        ),
    };
    if visible != in_list {
        return Err(Failure::new(
            observed,
            format!("ImageStatus ({visible}) and ListImages ({in_list}) disagree"),
        ));
    }
    let want = row.expect.cri_visible.expect("validated");
    if visible != want {
        return Err(Failure::new(
            observed,
            format!(
                "expected the image to be {}visible to the CRI",
                if want { "" } else { "not " }
            ),
        ));
    }
    match ran {
        Some(ran) => Ok(format!("{observed}; {}", ran?)),
        None => Ok(observed),
    }
}

/// How long the CRI may take to learn of an import: it follows containerd's image events
/// asynchronously (seen here: 2.1 under load answered ImageStatus before its own import
/// event had been handled).
const IMPORT_VISIBLE_DEADLINE: Duration = Duration::from_secs(15);
/// How long a row expecting "not visible" keeps looking, so a late appearance is caught.
const IMPORT_INVISIBLE_SETTLE: Duration = Duration::from_secs(2);

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

fn record_info(evidence: &mut Evidence, file: &str, info: &HashMap<String, String>) {
    let parsed: Value = info
        .get("info")
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or(Value::Null);
    evidence.file(file, &pretty(&serde_json::json!({ "info": parsed })));
}

pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("json values serialise")
}

fn file_name(path: &str) -> String {
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
