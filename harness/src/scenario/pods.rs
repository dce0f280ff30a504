//! A pod of a row's containers, as the `pod` and `diff` rows start it: the sandbox run, every
//! container created and started with its limits, env and node directories, the runtime of
//! each read back from every witness (and the kernel the first running container sees), and
//! at the end the sandbox removed with nothing of it left running.

use std::path::PathBuf;
use std::time::Duration;

use k8s_cri::v1::ContainerState as CriState;

use super::model::pod::{Container, PodAction};
use super::model::Row;
use super::trial::{
    pretty, record_info, remove_sandbox, row_pod, runp_line, short_error, start_and_inspect, Failure,
};
use super::witness::{containerd_record, judge_guest_kernel, judge_runtime, Observation};
use crate::process::shell_quote;
use crate::provision::{Testbed, BUSYBOX_IMAGE, NODE_COMMAND_DEADLINE};
use crate::render::cri::{ContainerSpec, DnsSpec, MountSpec, PodSpec};
use crate::report::bundle::RUNTIME_TYPE_TEMPLATE;
use crate::report::Evidence;
use crate::wait::{wait_for, Attempt};

/// How long one ExecSync may run (a Kata exec under TCG takes a few seconds).
pub(super) const EXEC_TIMEOUT_SECONDS: i64 = 60;

/// A pod of the row's: its sandbox, its containers by name, and where their mounts are on the
/// node.
pub(super) struct Pod {
    pub(super) spec: PodSpec,
    pub(super) sandbox: String,
    pub(super) containers: Vec<(String, String)>,
    pub(super) mounts: Vec<(String, MountSpec)>,
    /// The node directory under which its containers' mounts are made.
    volumes: PathBuf,
}

impl Pod {
    /// Runs the sandbox of `action` (CRI RunPodSandbox, `crictl runp`), named after `scenario`.
    pub(super) async fn begin(
        testbed: &Testbed,
        scenario: &str,
        action: &PodAction,
        evidence: &mut Evidence,
    ) -> Result<Pod, Failure> {
        let spec = PodSpec {
            host_network: action.host_network,
            annotations: action.annotations.clone().into_iter().collect(),
            hostname: action.hostname.clone(),
            dns: action.dns.as_ref().map(|d| DnsSpec {
                servers: d.servers.clone(),
                searches: d.searches.clone(),
                options: d.options.clone(),
            }),
            ..row_pod(testbed, scenario, action.handler())
        };
        evidence.file("pod.json", &pretty(&spec.to_crictl_json()));
        evidence.reproduce(format!("POD=$({})", runp_line(&spec.handler)));
        // CRI: RunPodSandbox (crictl runp)
        let sandbox = testbed
            .cri
            .run_pod_sandbox(&spec)
            .await
            .map_err(|e| Failure::new(short_error(&e), format!("RunPodSandbox failed: {e}")))?;
        Ok(Pod {
            volumes: testbed.paths.node_run_dir.join("volumes").join(&spec.name),
            spec,
            sandbox,
            containers: Vec::new(),
            mounts: Vec::new(),
        })
    }

    /// Removes the sandbox (retried after a killed holder, as the kubelet retries, while
    /// containerd learns of the dead process) and the row's directories; what the row
    /// observed, failed if anything of the pod is left.
    pub(super) async fn end(
        self,
        testbed: &Testbed,
        killed: bool,
        observed: Result<String, Failure>,
    ) -> Result<String, Failure> {
        let cleanup = if killed {
            remove_killed_sandbox(testbed, &self.sandbox).await
        } else {
            remove_sandbox(testbed, &self.sandbox).await
        };
        let _ = node_shell(
            testbed,
            &format!("rm -rf {}", shell_quote(&self.volumes.to_string_lossy())),
        );
        let observed = observed?;
        cleanup.map_err(|message| Failure::new(observed.clone(), message))?;
        Ok(format!("{observed}; sandbox removed, nothing left"))
    }

    pub(super) fn container_id(&self, name: &str) -> &str {
        self.containers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
            .expect("steps name validated containers")
    }
}

/// Creates and starts every container, then judges the runtime of the sandbox and of each
/// container from every witness, and the kernel the first container sees.
pub(super) async fn start(
    testbed: &Testbed,
    row: &Row,
    action: &PodAction,
    started: &mut Pod,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let volumes = started.volumes.clone();
    let id = started.sandbox.clone();
    // CRI: PodSandboxStatus verbose info.runtimeType (crictl inspectp)
    let status = testbed
        .cri
        .pod_sandbox_status(&id)
        .await
        .map_err(|e| Failure::new(short_error(&e), format!("PodSandboxStatus failed: {e}")))?;
    record_info(evidence, "inspectp.json", &status.info);
    evidence.reproduce(format!("crictl inspectp {RUNTIME_TYPE_TEMPLATE} \"$POD\""));
    let mut observations = vec![Observation {
        what: "sandbox",
        id: id.clone(),
        containerd_runtime: containerd_record(testbed, &id, "$POD", evidence)?,
        cri: crate::cri::RuntimeInfo::from_verbose_info("sandbox", &status.info)
            .map_err(|e| Failure::new("unreadable", e.to_string()))?,
        exited: false,
    }];
    for container in &action.containers {
        let spec = container_spec(testbed, container, &volumes, started)?;
        let file = format!("container-{}.json", container.name);
        evidence.file(&file, &pretty(&spec.to_crictl_json()));
        let var = format!("CTR_{}", container.name.replace('-', "_").to_uppercase());
        evidence.reproduce(format!(
            "{var}=$(crictl create \"$POD\" {file} pod.json) && crictl start \"${var}\""
        ));
        // CRI: CreateContainer + StartContainer (crictl create / start)
        let cid = testbed
            .cri
            .create_container(&id, &spec, &started.spec)
            .await
            .map_err(|e| {
                Failure::new(
                    short_error(&e),
                    format!("CreateContainer {} failed: {e}", container.name),
                )
            })?;
        let info = start_and_inspect(testbed, &cid, true, evidence).await?;
        observations.push(Observation {
            what: "container",
            id: cid.clone(),
            containerd_runtime: containerd_record(testbed, &cid, &format!("${var}"), evidence)?,
            cri: info,
            exited: false,
        });
        started.containers.push((container.name.clone(), cid));
    }
    // A container may end by itself (a job, an OOM kill): its runtime is then read from the CRI
    // and containerd alone, and the kernel from a container still running.
    mark_exited(testbed, &mut observations[1..], &started.containers).await?;
    let mut judged = judge_runtime(testbed, row, &observations);
    // A container that exited while its state was read is judged again, as exited.
    if judged.is_err() && mark_exited(testbed, &mut observations[1..], &started.containers).await? {
        judged = judge_runtime(testbed, row, &observations);
    }
    let mut observed = judged?;
    let (exited, running): (Vec<_>, Vec<_>) = observations[1..]
        .iter()
        .zip(&started.containers)
        .partition(|(o, _)| o.exited);
    if !exited.is_empty() {
        let names: Vec<&str> = exited.iter().map(|(_, (name, _))| name.as_str()).collect();
        observed += &format!(" ({} exited already: no state to read)", names.join(", "));
    }
    match (row.expect.guest_kernel, running.first()) {
        (Some(want), Some((_, (_, cid)))) => judge_guest_kernel(testbed, cid, want, observed, evidence).await,
        (Some(_), None) => Ok(format!(
            "{observed}; no container still runs to read the kernel in"
        )),
        (None, _) => Ok(observed),
    }
}

/// Marks the containers that no longer run (CRI ContainerStatus); whether any newly did.
async fn mark_exited(
    testbed: &Testbed,
    observations: &mut [Observation],
    containers: &[(String, String)],
) -> Result<bool, Failure> {
    let mut newly = false;
    for (o, (_, cid)) in observations.iter_mut().zip(containers) {
        let exited = !is_running(testbed, cid).await?;
        newly |= exited && !o.exited;
        o.exited = exited;
    }
    Ok(newly)
}

/// Whether the container runs now (CRI ContainerStatus).
pub(super) async fn is_running(testbed: &Testbed, cid: &str) -> Result<bool, Failure> {
    let status = testbed
        .cri
        .container_status(cid)
        .await
        .map_err(|e| Failure::new(short_error(&e), format!("ContainerStatus failed: {e}")))?;
    Ok(status
        .status
        .is_some_and(|s| s.state == CriState::ContainerRunning as i32))
}

/// The CRI config of `container`, its mounts made as fresh directories on the node.
fn container_spec(
    testbed: &Testbed,
    container: &Container,
    volumes: &std::path::Path,
    started: &mut Pod,
) -> Result<ContainerSpec, Failure> {
    let mut mounts = Vec::new();
    for (i, mount) in container.mounts.iter().enumerate() {
        let host = volumes.join(format!("{}-{i}", container.name));
        node_shell(
            testbed,
            &format!("mkdir -p {}", shell_quote(&host.to_string_lossy())),
        )
        .map_err(|e| {
            Failure::new(
                "no volume",
                format!("creating {} on the node failed: {e}", host.display()),
            )
        })?;
        let spec = MountSpec {
            host_path: host.to_string_lossy().into_owned(),
            container_path: mount.container_path.clone(),
            readonly: mount.read_only,
        };
        started.mounts.push((container.name.clone(), spec.clone()));
        mounts.push(spec);
    }
    Ok(ContainerSpec {
        name: container.name.clone(),
        image: BUSYBOX_IMAGE.into(),
        command: container.command.clone(),
        args: container.args.clone(),
        env: container.env.clone().into_iter().collect(),
        log_path: format!("{}.log", container.name),
        resources: container.resources.as_ref().map(|r| r.to_render()),
        mounts,
    })
}

/// How long a sandbox whose shim or VMM was killed may take to become removable.
const KILLED_REMOVAL_DEADLINE: Duration = Duration::from_secs(20);

/// [`remove_sandbox`] retried until it succeeds or [`KILLED_REMOVAL_DEADLINE`] passes; the
/// last error is the row's.
async fn remove_killed_sandbox(testbed: &Testbed, id: &str) -> Result<(), String> {
    wait_for(
        "the sandbox to be removable after the kill",
        KILLED_REMOVAL_DEADLINE * testbed.slowdown,
        Duration::from_secs(1),
        || async move {
            match remove_sandbox(testbed, id).await {
                Ok(()) => Attempt::Ready(()),
                Err(e) => Attempt::NotYet(e),
            }
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// Runs `script` with `sh -c` where the node's shims see files (its mount namespace).
pub(super) fn node_shell(testbed: &Testbed, script: &str) -> Result<Vec<u8>, String> {
    let argv = testbed.node_argv(&["sh".into(), "-c".into(), script.into()]);
    let out = testbed
        .node
        .run_unchecked(&argv, NODE_COMMAND_DEADLINE)
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`{script}` on the node exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
