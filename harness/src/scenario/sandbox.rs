//! The `sandbox:` row: run a pod sandbox (crictl runp), optionally a container in it, and
//! judge which runtime really holds each: the CRI's runtimeType, containerd's own record, the
//! OCI runtime's state, and the VMM process of a Kata sandbox.

use super::model::{ExpectError, Row, SandboxAction};
use super::trial::{
    judge_status, pretty, record_info, remove_sandbox, row_pod, runp_line, short_error, start_and_inspect,
    Failure, Holders, CREATE_AND_START,
};
use super::witness::{containerd_record, judge_guest_kernel, judge_runtime, Observation};
use crate::cri::{CriError, RuntimeInfo};
use crate::provision::{Testbed, BUSYBOX_IMAGE};
use crate::render::cri::{ContainerSpec, PodSpec};
use crate::report::bundle::RUNTIME_TYPE_TEMPLATE;
use crate::report::Evidence;

pub(super) async fn run_sandbox(
    testbed: &Testbed,
    row: &Row,
    action: &SandboxAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let pod = PodSpec {
        host_network: action.host_network,
        annotations: action.annotations.clone().into_iter().collect(),
        ..row_pod(testbed, &row.scenario, &action.handler)
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
        exited: false,
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
        let info = start_and_inspect(testbed, &cid, false, evidence).await?;
        evidence.reproduce(format!("crictl inspect {RUNTIME_TYPE_TEMPLATE} \"$CTR\""));
        observations.push(Observation {
            what: "container",
            id: cid.clone(),
            containerd_runtime: containerd_record(testbed, &cid, "$CTR", evidence)?,
            cri: info,
            exited: false,
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
