//! The `sandbox:` row: run a pod sandbox (crictl runp), optionally a container in it, and
//! judge which runtime really holds each: the CRI's runtimeType, containerd's own record, the
//! OCI runtime's state, and the VMM process of a Kata sandbox.

use std::path::PathBuf;

use serde_json::Value;

use super::model::{ExpectError, GuestKernel, Row, SandboxAction};
use super::trial::{
    file_name, judge_status, pretty, record_info, remove_sandbox, runp_line, short_error, start_and_inspect,
    unique, vmm_child_of_shim, Failure, Holders, CREATE_AND_START, CRI_NAMESPACE,
};
use crate::cri::{CriError, RuntimeInfo};
use crate::provision::{Testbed, BUSYBOX_IMAGE, NODE_COMMAND_DEADLINE};
use crate::render::cri::{ContainerSpec, PodSpec};
use crate::report::bundle::RUNTIME_TYPE_TEMPLATE;
use crate::report::Evidence;

pub(super) async fn run_sandbox(
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
        annotations: action.annotations.clone().into_iter().collect(),
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
    let holders = Holders::of(testbed, &id);
    let observed = holders
        .watch(
            testbed,
            &id,
            observe_sandbox(testbed, row, action, &pod, &id, evidence),
        )
        .await;
    let cleanup = remove_sandbox(testbed, &id).await;
    let observed = observed?;
    cleanup.map_err(|message| Failure::new(observed.clone(), message))?;
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
        let container = ContainerSpec::sleeping_busybox(BUSYBOX_IMAGE);
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
        let runtime_type = observations[0].cri.runtime_type.clone();
        observed = super::guest::judge_console(testbed, id, &runtime_type, observed, evidence)?;
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
        // What was found, not what was wanted: a failed row's observed text says who held it.
        let mut holders: Vec<String> = Vec::new();
        for o in observations {
            match state_holder(testbed, &o.cri, &o.id) {
                Ok(holder) => {
                    if &holder != want {
                        problems.push(format!(
                            "{} {} is held by {holder}, expected {want}",
                            o.what, o.id
                        ));
                    }
                    if !holders.contains(&holder) {
                        holders.push(holder);
                    }
                }
                Err(e) => problems.push(format!("{} {}: {e}", o.what, o.id)),
            }
        }
        if !holders.is_empty() {
            observed.push(format!("state in {}", holders.join(" and ")));
        }
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
