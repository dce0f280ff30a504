//! What a sandbox's or container's runtime looks like from each witness (the CRI's
//! runtimeType, containerd's own record, the OCI runtime's state, the VMM process, the kernel
//! the container sees), and the judgement of a row's runtime checks against them. Shared by
//! the kinds of row that start sandboxes (sandbox, pod).

use std::path::PathBuf;

use serde_json::Value;

use super::model::{GuestKernel, Row};
use super::trial::{file_name, pretty, vmm_child_of_shim, Failure, CRI_NAMESPACE};
use crate::cri::RuntimeInfo;
use crate::provision::{Testbed, NODE_COMMAND_DEADLINE};
use crate::report::Evidence;

/// What one sandbox or container looks like from each witness.
pub(super) struct Observation {
    pub(super) what: &'static str,
    pub(super) id: String,
    pub(super) cri: RuntimeInfo,
    /// containerd's own record: `ctr -n k8s.io containers info <id>` -> `.Runtime.Name`.
    pub(super) containerd_runtime: String,
    /// A container that had already exited when it was judged: no OCI runtime holds its state.
    pub(super) exited: bool,
}

/// `uname -r` in the container (CRI ExecSync) against the node's own kernel.
pub(super) async fn judge_guest_kernel(
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
pub(super) fn judge_runtime(
    testbed: &Testbed,
    row: &Row,
    observations: &[Observation],
) -> Result<String, Failure> {
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
        for o in observations.iter().filter(|o| !o.exited) {
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
pub(super) fn containerd_record(
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
