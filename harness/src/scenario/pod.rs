//! The `pod:` row: a pod sandbox of one handler with the row's containers, their runtime read
//! back from every witness, then the row's steps in order, each observing what it must. The
//! sandbox is removed at the end and nothing of it may be left running.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_cri::v1::ContainerState as CriState;

use super::model::pod::{
    Container, ContainerState, ExecStep, FileStep, HolderProcess, KillStep, PodAction, StatsStep, Step,
    StopStep, UpdateStep, WaitStep, Writer,
};
use super::model::Row;
use super::pods::{self, node_shell, Pod, EXEC_TIMEOUT_SECONDS};
use super::trial::{Failure, Holders};
use crate::process::shell_quote;
use crate::provision::{Testbed, NODE_COMMAND_DEADLINE};
use crate::report::Evidence;
use crate::wait::{wait_for, Attempt};

pub(super) async fn run_pod(
    testbed: &Testbed,
    row: &Row,
    action: &PodAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let mut pod = Pod::begin(testbed, &row.scenario, action, evidence).await?;
    let holders = Holders::of(testbed, &pod.sandbox);
    let (steps, kill) = match action.steps.split_last() {
        Some((Step::Kill(kill), before)) => (before, Some(kill)),
        _ => (action.steps.as_slice(), None),
    };
    let sandbox = pod.sandbox.clone();
    let observed = holders
        .watch(testbed, &sandbox, async {
            let observed = pods::start(testbed, row, action, &mut pod, evidence).await?;
            run_steps(testbed, action, steps, &pod, observed, evidence).await
        })
        .await;
    let observed = match (observed, kill) {
        (Ok(observed), Some(kill)) => judge_kill(testbed, kill, &pod, observed, evidence).await,
        (observed, _) => observed,
    };
    pod.end(testbed, kill.is_some(), observed).await
}

async fn run_steps(
    testbed: &Testbed,
    action: &PodAction,
    steps: &[Step],
    started: &Pod,
    mut observed: String,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    for (index, step) in steps.iter().enumerate() {
        let container = action.container_of(step);
        let cid = started.container_id(&container.name);
        let seen = match step {
            Step::Exec(exec) => run_exec(testbed, cid, exec, evidence).await,
            Step::Update(update) => run_update(testbed, cid, update, evidence).await,
            Step::Stop(stop) => run_stop(testbed, cid, container, started, stop, evidence).await,
            Step::WaitFor(wait) => run_wait(testbed, cid, wait).await,
            Step::File(file) => run_file(testbed, cid, container, started, file, evidence).await,
            Step::Stats(stats) => run_stats(testbed, cid, stats).await,
            Step::Kill(_) => unreachable!("a kill is the last step, run after the others"),
        };
        match seen {
            Ok(seen) => observed = format!("{observed}; {seen}"),
            Err(message) => {
                return Err(Failure::new(
                    observed,
                    format!("step {} ({}): {message}", index + 1, step.key()),
                ))
            }
        }
    }
    Ok(observed)
}

async fn run_exec(
    testbed: &Testbed,
    cid: &str,
    exec: &ExecStep,
    evidence: &mut Evidence,
) -> Result<String, String> {
    let argv: Vec<&str> = exec.command.iter().map(String::as_str).collect();
    let line = exec
        .command
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    evidence.reproduce(format!("crictl exec -s \"$CTR\" {line}"));
    // CRI: ExecSync (crictl exec -s)
    let out = testbed
        .cri
        .exec_sync(cid, &argv, EXEC_TIMEOUT_SECONDS)
        .await
        .map_err(|e| format!("ExecSync {line} failed: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let seen = format!("`{line}` exited {}{}", out.exit_code, quoted_output(&stdout));
    let mut problems = Vec::new();
    if out.exit_code != exec.exit_code {
        problems.push(format!(
            "exit code {}, expected {}",
            out.exit_code, exec.exit_code
        ));
    }
    for (what, text, want) in [
        ("stdout", &stdout, &exec.stdout),
        ("stderr", &stderr, &exec.stderr),
    ] {
        if let Some(want) = want.as_ref().filter(|w| !w.accepts(text)) {
            problems.push(format!("{what} is {text:?}, expected {want}"));
        }
    }
    if problems.is_empty() {
        Ok(seen)
    } else {
        Err(format!("{seen}: {} (stderr: {stderr:?})", problems.join("; ")))
    }
}

fn quoted_output(stdout: &str) -> String {
    match stdout.lines().count() {
        0 => String::new(),
        1 if stdout.len() <= 60 => format!(", printed {stdout:?}"),
        lines => format!(", printed {lines} line(s)"),
    }
}

async fn run_update(
    testbed: &Testbed,
    cid: &str,
    update: &UpdateStep,
    evidence: &mut Evidence,
) -> Result<String, String> {
    let resources = update.resources.to_render();
    let mut flags = Vec::new();
    let cri = resources.to_cri();
    if resources.cpu_millis.is_some() {
        flags.push(format!(
            "--cpu-period {} --cpu-quota {}",
            cri.cpu_period, cri.cpu_quota
        ));
    }
    if let Some(bytes) = resources.memory_bytes {
        flags.push(format!("--memory {bytes}"));
    }
    evidence.reproduce(format!("crictl update {} \"$CTR\"", flags.join(" ")));
    // CRI: UpdateContainerResources (crictl update)
    testbed
        .cri
        .update_container_resources(cid, resources)
        .await
        .map_err(|e| format!("UpdateContainerResources failed: {e}"))?;
    Ok(format!("updated ({})", flags.join(" ")))
}

async fn run_stop(
    testbed: &Testbed,
    cid: &str,
    container: &Container,
    started: &Pod,
    stop: &StopStep,
    evidence: &mut Evidence,
) -> Result<String, String> {
    evidence.reproduce(format!("crictl stop --timeout {} \"$CTR\"", stop.grace_seconds));
    let began = Instant::now();
    // CRI: StopContainer (crictl stop --timeout)
    testbed
        .cri
        .stop_container(cid, i64::from(stop.grace_seconds))
        .await
        .map_err(|e| format!("StopContainer failed: {e}"))?;
    let took = began.elapsed();
    let status = exited_status(testbed, cid).await?;
    let mut seen = format!(
        "stopped in {:.1} s (grace {} s), exit code {}",
        took.as_secs_f64(),
        stop.grace_seconds,
        status.exit_code
    );
    let mut problems = Vec::new();
    if let Some(want) = stop.exit_code.filter(|w| *w != status.exit_code) {
        problems.push(format!("exit code {}, expected {want}", status.exit_code));
    }
    if let Some(within) = stop.within_seconds.filter(|w| took > Duration::from_secs(*w)) {
        problems.push(format!(
            "took {:.1} s, more than {within} s: SIGTERM did not end it",
            took.as_secs_f64()
        ));
    }
    if let Some(want) = &stop.log {
        let log = container_log(testbed, started, container)?;
        evidence.file(&format!("{}.log", container.name), &log);
        let lines = log_messages(&log);
        if want.accepts(&lines) {
            seen += &format!(", log {want}");
        } else {
            problems.push(format!("its log is {lines:?}, expected {want}"));
        }
    }
    if problems.is_empty() {
        Ok(seen)
    } else {
        Err(format!("{seen}: {}", problems.join("; ")))
    }
}

/// The status of a container that must have exited.
async fn exited_status(testbed: &Testbed, cid: &str) -> Result<k8s_cri::v1::ContainerStatus, String> {
    let status = testbed
        .cri
        .container_status(cid)
        .await
        .map_err(|e| format!("ContainerStatus failed: {e}"))?
        .status
        .ok_or("ContainerStatus has no status")?;
    if status.state != CriState::ContainerExited as i32 {
        return Err(format!(
            "the container is in state {}, not exited",
            state_name(status.state)
        ));
    }
    Ok(status)
}

fn state_name(state: i32) -> String {
    CriState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| state.to_string())
}

/// The container's output as it wrote it: the CRI log file's lines without their
/// `<time> <stream> <tag>` prefixes, trimmed.
fn log_messages(log: &str) -> String {
    log.lines()
        .map(|line| line.splitn(4, ' ').nth(3).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

fn container_log(testbed: &Testbed, started: &Pod, container: &Container) -> Result<String, String> {
    let path = PathBuf::from(&started.spec.log_directory).join(format!("{}.log", container.name));
    let out = node_shell(testbed, &format!("cat {}", shell_quote(&path.to_string_lossy())))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

async fn run_wait(testbed: &Testbed, cid: &str, wait: &WaitStep) -> Result<String, String> {
    let want = match wait.state {
        ContainerState::Running => CriState::ContainerRunning,
        ContainerState::Exited => CriState::ContainerExited,
    } as i32;
    let deadline = Duration::from_secs(wait.within_seconds);
    let began = Instant::now();
    let status = wait_for(
        &format!("the container to be {}", state_name(want)),
        deadline,
        Duration::from_millis(250),
        || async move {
            match testbed.cri.container_status(cid).await {
                Ok(response) => match response.status {
                    Some(status) if status.state == want => Attempt::Ready(status),
                    Some(status) => Attempt::NotYet(format!("state {}", state_name(status.state))),
                    None => Attempt::NotYet("no status".into()),
                },
                Err(e) => Attempt::NotYet(e.to_string()),
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut seen = format!(
        "{} after {:.1} s",
        state_name(want),
        began.elapsed().as_secs_f64()
    );
    if wait.state == ContainerState::Running {
        return Ok(seen);
    }
    seen += &format!(", exit code {}, reason {:?}", status.exit_code, status.reason);
    let mut problems = Vec::new();
    if let Some(code) = wait.exit_code.filter(|c| *c != status.exit_code) {
        problems.push(format!("exit code {}, expected {code}", status.exit_code));
    }
    if let Some(reason) = wait.reason.as_ref().filter(|r| **r != status.reason) {
        problems.push(format!("reason {:?}, expected {reason:?}", status.reason));
    }
    if problems.is_empty() {
        Ok(seen)
    } else {
        Err(format!("{seen}: {}", problems.join("; ")))
    }
}

async fn run_file(
    testbed: &Testbed,
    cid: &str,
    container: &Container,
    started: &Pod,
    file: &FileStep,
    evidence: &mut Evidence,
) -> Result<String, String> {
    let (mount, rest) = started
        .mounts
        .iter()
        .filter(|(name, _)| *name == container.name)
        .find_map(|(_, m)| {
            file.path
                .strip_prefix(&m.container_path)
                .filter(|r| r.starts_with('/'))
                .map(|r| (m, r))
        })
        .expect("validated: the path is under a mount");
    let on_node = format!("{}{rest}", mount.host_path);
    let read = match file.writer {
        Writer::Node => {
            node_shell(
                testbed,
                &format!(
                    "printf %s {} > {}",
                    shell_quote(&file.content),
                    shell_quote(&on_node)
                ),
            )?;
            evidence.reproduce(format!("crictl exec -s \"$CTR\" cat {}", shell_quote(&file.path)));
            let out = testbed
                .cri
                .exec_sync(cid, &["cat", &file.path], EXEC_TIMEOUT_SECONDS)
                .await
                .map_err(|e| format!("ExecSync cat {} failed: {e}", file.path))?;
            if out.exit_code != 0 {
                return Err(format!(
                    "cat {} in the container exited {}: {}",
                    file.path,
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Writer::Container => {
            let script = format!(
                "printf %s {} > {}",
                shell_quote(&file.content),
                shell_quote(&file.path)
            );
            evidence.reproduce(format!("crictl exec -s \"$CTR\" sh -c {}", shell_quote(&script)));
            let out = testbed
                .cri
                .exec_sync(cid, &["sh", "-c", &script], EXEC_TIMEOUT_SECONDS)
                .await
                .map_err(|e| format!("ExecSync sh -c {script:?} failed: {e}"))?;
            if out.exit_code != 0 {
                return Err(format!(
                    "writing {} in the container exited {}: {}",
                    file.path,
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let out = node_shell(testbed, &format!("cat {}", shell_quote(&on_node)))?;
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let (writer, reader) = match file.writer {
        Writer::Node => ("node", "container"),
        Writer::Container => ("container", "node"),
    };
    if read == file.content {
        Ok(format!(
            "{} written by the {writer}, read back by the {reader}",
            file.path
        ))
    } else {
        Err(format!(
            "the {writer} wrote {:?} to {}, the {reader} read {read:?}",
            file.content, file.path
        ))
    }
}

async fn run_stats(testbed: &Testbed, cid: &str, _stats: &StatsStep) -> Result<String, String> {
    // CRI: ContainerStats (crictl stats)
    let stats = testbed
        .cri
        .container_stats(cid)
        .await
        .map_err(|e| format!("ContainerStats failed: {e}"))?;
    let memory = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    let cpu = stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or(0);
    let seen = format!("stats: working set {memory} bytes, CPU {cpu} ns");
    match (memory, cpu) {
        (0, _) | (_, 0) => Err(format!("{seen}: both must be reported and non-zero")),
        _ => Ok(seen),
    }
}

/// Kills a holder of the sandbox; with the VMM killed, its shim must exit by itself. The
/// removal afterwards (by the caller) must succeed and leave nothing.
async fn judge_kill(
    testbed: &Testbed,
    kill: &KillStep,
    started: &Pod,
    observed: String,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let holders = testbed.node.processes(&started.sandbox).map_err(|e| {
        Failure::new(
            observed.clone(),
            format!("listing the node's processes failed: {e}"),
        )
    })?;
    let shims: Vec<_> = holders
        .iter()
        .filter(|p| p.comm.starts_with("containerd-shim"))
        .collect();
    let all = testbed.node.all_processes().map_err(|e| {
        Failure::new(
            observed.clone(),
            format!("listing the node's processes failed: {e}"),
        )
    })?;
    let target = match kill.process {
        HolderProcess::Shim => shims.first().map(|p| (*p).clone()),
        HolderProcess::Vmm => all
            .into_iter()
            .find(|p| shims.iter().any(|s| s.pid == p.ppid) && p.comm.starts_with("qemu")),
    };
    let Some(target) = target else {
        return Err(Failure::new(
            observed,
            format!("step kill: no {:?} process holds the sandbox", kill.process),
        ));
    };
    evidence.reproduce(format!("kill -KILL {}   # {}", target.pid, target.comm));
    testbed
        .node
        .run(
            &["kill".into(), "-KILL".into(), target.pid.to_string()],
            NODE_COMMAND_DEADLINE,
        )
        .map_err(|e| {
            Failure::new(
                observed.clone(),
                format!("step kill: kill -KILL {} failed: {e}", target.pid),
            )
        })?;
    let mut seen = format!("{observed}; killed {} (pid {})", target.comm, target.pid);
    if kill.process == HolderProcess::Vmm {
        let began = Instant::now();
        let shim_pids: Vec<i32> = shims.iter().map(|p| p.pid).collect();
        wait_for(
            "the shim to exit after its VMM was killed",
            Duration::from_secs(kill.shim_exits_within_seconds) * testbed.slowdown,
            Duration::from_millis(200),
            || {
                let left = testbed.node.all_processes();
                let shim_pids = &shim_pids;
                async move {
                    match left {
                        Ok(all) if all.iter().any(|p| shim_pids.contains(&p.pid)) => {
                            Attempt::NotYet(format!("shim pid(s) {shim_pids:?} still running"))
                        }
                        Ok(_) => Attempt::Ready(()),
                        Err(e) => Attempt::NotYet(e.to_string()),
                    }
                }
            },
        )
        .await
        .map_err(|e| Failure::new(seen.clone(), format!("step kill: {e}")))?;
        seen += &format!(", its shim exited {:.1} s later", began.elapsed().as_secs_f64());
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::pod::TextMatch;

    #[test]
    fn log_messages_drop_the_cri_prefixes() {
        let log = "2026-12-07T21:00:00.1Z stdout F got TERM\n2026-12-07T21:00:00.2Z stderr F bye now\n";
        assert_eq!(log_messages(log), "got TERM\nbye now");
        assert!(TextMatch::Matches("^got TERM$".into()).accepts(&log_messages(log)));
    }
}
