//! `ctr run --runtime <type>`: a container through containerd's own API in the `default`
//! namespace, no CRI involved (how Kata is often first tried). The witness is
//! containerd's record (`ctr containers info` -> `.Runtime.Name`), the task's state, and for a
//! Kata runtime the VMM process the shim started.
//!
//! Invariant: the row removes its task, container and the image it imported into `default`.

use std::time::Duration;

use serde_json::Value;

use super::model::{CtrRunAction, Row};
use super::trial::{pretty, unique, vmm_child_of_shim, Failure};
use crate::provision::{Testbed, BUSYBOX_IMAGE};
use crate::report::Evidence;
use crate::wait::{wait_for, Attempt};

const NAMESPACE: &str = "default";
/// A Kata task under TCG takes seconds to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

pub(super) async fn run_ctr_run(
    testbed: &Testbed,
    row: &Row,
    action: &CtrRunAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let id = unique("ctr-run");
    let archive = testbed.paths.images.join("busybox.tar");
    testbed.ctr_import(NAMESPACE, &archive).map_err(|e| {
        Failure::new(
            "import failed",
            format!("ctr -n default images import failed: {e}"),
        )
    })?;
    let outcome = run_and_observe(testbed, row, action, &id, evidence).await;
    let cleanup = remove(testbed, &id).await;
    let _ = testbed.ctr(NAMESPACE, &["images", "rm", BUSYBOX_IMAGE]);
    let observed = outcome?;
    cleanup.map_err(|e| Failure::new(observed.clone(), e))?;
    Ok(observed)
}

async fn run_and_observe(
    testbed: &Testbed,
    row: &Row,
    action: &CtrRunAction,
    id: &str,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    // No FIFOs (--null-io): the node's shims may live in another mount namespace than ctr.
    let mut args = vec!["run", "-d", "--null-io", "--runtime", action.runtime.as_str()];
    let config;
    if action.runtime.starts_with("io.containerd.kata") {
        let Some(kata) = testbed.kata_for(&action.runtime) else {
            return Err(Failure::new("-", "this testbed has no Kata install"));
        };
        config = kata.config_path.to_string_lossy().into_owned();
        args.extend(["--runtime-config-path", config.as_str()]);
    }
    // The script's own container ID ($CID), and busybox copied from k8s.io (where every
    // testbed has it) into the default namespace: nothing of the failed run is reused.
    evidence.reproduce("CID=ctr-run-$$".into());
    evidence.reproduce(format!(
        "{} | {}",
        Testbed::ctr_line("k8s.io", &["images", "export", "-", BUSYBOX_IMAGE]),
        Testbed::ctr_line(NAMESPACE, &["images", "import", "-"])
    ));
    evidence.reproduce(format!(
        "{} \"$CID\" sleep 3600",
        Testbed::ctr_line(NAMESPACE, &[&args[..], &[BUSYBOX_IMAGE]].concat())
    ));
    args.extend([BUSYBOX_IMAGE, id, "sleep", "3600"]);
    testbed
        .ctr(NAMESPACE, &args)
        .map_err(|e| Failure::new("ctr run failed", format!("ctr run failed: {e}")))?;

    // containerd's record of the container.
    let info = testbed
        .ctr(NAMESPACE, &["containers", "info", id])
        .map_err(|e| Failure::new("ctr failed", format!("ctr containers info {id} failed: {e}")))?;
    let info: Value = serde_json::from_slice(&info.stdout)
        .map_err(|e| Failure::new("unreadable", format!("ctr containers info is not JSON: {e}")))?;
    evidence.file("ctr-containers-info.json", &pretty(&info));
    // ctr's table has the RUNTIME column: no JSON tool needed on the node.
    evidence.reproduce(format!(
        "{} \"id==$CID\"",
        Testbed::ctr_line(NAMESPACE, &["containers", "ls"])
    ));
    let runtime = info["Runtime"]["Name"].as_str().unwrap_or("(none)").to_owned();
    let status = task_status(testbed, id).unwrap_or_else(|e| e);
    let mut observed = vec![
        format!("{runtime} (ctr containers info)"),
        format!("task {status}"),
    ];
    let mut problems = Vec::new();
    if let Some(want) = &row.expect.runtime_type {
        if &runtime != want {
            problems.push(format!("containerd records runtime {runtime}, expected {want}"));
        }
    }
    if status != "RUNNING" {
        problems.push(format!("the task is {status}, not RUNNING"));
    }
    if row.expect.vmm_process == Some(true) {
        match vmm_child_of_shim(testbed, id) {
            Ok(Some(vmm)) => observed.push(format!("VMM process ({vmm})")),
            Ok(None) => problems.push("no VMM process is a child of the shim".into()),
            Err(e) => problems.push(format!("failed to list the node's processes: {e}")),
        }
    }
    let observed = observed.join(", ");
    if problems.is_empty() {
        Ok(observed)
    } else {
        Err(Failure::new(observed, problems.join("; ")))
    }
}

/// The task's status column of `ctr task ls` (RUNNING, STOPPED, ...).
fn task_status(testbed: &Testbed, id: &str) -> Result<String, String> {
    let out = testbed
        .ctr(NAMESPACE, &["tasks", "ls"])
        .map_err(|e| format!("ctr tasks ls failed: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&id)).then(|| cols.last().copied().unwrap_or("").to_owned())
        })
        .next()
        .unwrap_or_else(|| "absent".into()))
}

/// Kills the task, waits for it to stop, deletes task and container.
async fn remove(testbed: &Testbed, id: &str) -> Result<(), String> {
    if task_status(testbed, id)? != "absent" {
        let _ = testbed.ctr(NAMESPACE, &["tasks", "kill", "-s", "SIGKILL", id]);
        wait_for(
            "the ctr task to stop",
            STOP_DEADLINE,
            Duration::from_millis(200),
            || async {
                match task_status(testbed, id) {
                    Ok(s) if s == "RUNNING" => Attempt::NotYet(s),
                    Ok(_) => Attempt::Ready(()),
                    Err(e) => Attempt::NotYet(e),
                }
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        testbed
            .ctr(NAMESPACE, &["tasks", "delete", id])
            .map_err(|e| format!("ctr tasks delete {id} failed: {e}"))?;
    }
    testbed
        .ctr(NAMESPACE, &["containers", "delete", id])
        .map_err(|e| format!("ctr containers delete {id} failed: {e}"))?;
    Ok(())
}
