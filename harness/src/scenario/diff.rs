//! The `diff:` row: the same pod under runc and under a Kata handler, the same probes in both,
//! and every difference judged. A probe declares whether runc and Kata must agree, or why
//! they differ (the guest's kernel, its vCPUs, ...); a difference it does not declare fails the
//! row. The table of every probe's two answers goes to the row's evidence (`diff.txt`): what a
//! workload moving to Kata will see differently.

use super::model::kata_handlers::KataHandlers;
use super::model::pod::{runtime_checks, Container, OfflineImage, PodAction, Quantity, Resources};
use super::model::{Action, Row};
use super::pods::{self, Pod, EXEC_TIMEOUT_SECONDS};
use super::trial::{Failure, Holders};
use crate::provision::Testbed;
use crate::report::differences::{Differences, ProbeAnswers};
use crate::report::Evidence;

/// What a probe's two answers may be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Declared {
    /// runc and Kata must answer alike.
    Same,
    /// They differ, for this reason (an equal answer fails too: the probe is not seeing Kata).
    Differs(&'static str),
    /// They may differ, for this reason.
    MayDiffer(&'static str),
    /// Seconds since the epoch, answered as the offset from the node's clock: both within
    /// this many seconds of it.
    Within(u64),
}

impl Declared {
    fn name(self) -> String {
        match self {
            Declared::Same => "same".into(),
            Declared::Differs(_) => "differs".into(),
            Declared::MayDiffer(_) => "may differ".into(),
            Declared::Within(seconds) => format!("within {seconds} s"),
        }
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            Declared::Differs(why) | Declared::MayDiffer(why) => Some(why),
            Declared::Same | Declared::Within(_) => None,
        }
    }
}

struct Probe {
    name: &'static str,
    /// Run with `sh -c` in the container.
    script: &'static str,
    declared: Declared,
}

/// The probes, in report order. The declared differences are those of Kata by design; a
/// difference that is not declared is a surprise a workload would meet.
const PROBES: &[Probe] = &[
    Probe { name: "kernel", script: "uname -r", declared: Declared::Differs("the container runs on the guest's kernel, not the node's") },
    Probe { name: "kernel command line", script: "cat /proc/cmdline", declared: Declared::Differs("the guest kernel's own command line") },
    Probe { name: "online CPUs", script: "nproc", declared: Declared::MayDiffer("the guest's vCPUs: default_vcpus plus those hotplugged for CPU limits, at most the host's") },
    Probe { name: "MemTotal", script: "grep MemTotal /proc/meminfo", declared: Declared::MayDiffer("the guest's RAM: default_memory plus what is hotplugged for memory limits") },
    Probe { name: "memory limit (cgroup)", script: "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes", declared: Declared::Same },
    Probe { name: "CPU quota (cgroup)", script: "cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)", declared: Declared::Same },
    Probe { name: "cgroup filesystem", script: "stat -fc %T /sys/fs/cgroup", declared: Declared::MayDiffer("the guest's cgroup hierarchy is the agent's choice, not the node's") },
    Probe { name: "hostname", script: "hostname", declared: Declared::Same },
    Probe { name: "resolv.conf", script: "cat /etc/resolv.conf", declared: Declared::Same },
    Probe { name: "user and groups", script: "id", declared: Declared::Same },
    Probe { name: "user namespace (uid_map)", script: "cat /proc/self/uid_map", declared: Declared::Same },
    Probe { name: "capabilities", script: "grep ^Cap /proc/self/status", declared: Declared::Same },
    Probe { name: "no_new_privs and seccomp", script: "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status", declared: Declared::Same },
    Probe { name: "PID 1", script: "cat /proc/1/comm", declared: Declared::Same },
    Probe { name: "PATH", script: "echo $PATH", declared: Declared::Same },
    Probe { name: "open files limit", script: "ulimit -n", declared: Declared::MayDiffer("the CRI sets no rlimits: runc's process inherits containerd's RLIMIT_NOFILE, Kata's the agent's in the guest") },
    Probe { name: "rootfs mount type", script: "awk '$2 == \"/\" { print $3 }' /proc/mounts", declared: Declared::Differs("runc mounts the image's overlay on the node; Kata shares the rootfs into the guest") },
    Probe { name: "sysctls set by the CRI", script: "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range", declared: Declared::Same },
    Probe { name: "kernel defaults (pid_max, overcommit)", script: "cat /proc/sys/kernel/pid_max /proc/sys/vm/overcommit_memory", declared: Declared::MayDiffer("the guest kernel's defaults, sized for the guest") },
    Probe { name: "network interfaces", script: "ls /sys/class/net", declared: Declared::Same },
    Probe { name: "block devices", script: "ls /sys/block", declared: Declared::MayDiffer("the guest's (virtio) block devices, not the node's disks") },
    Probe { name: "clock offset from the node (s)", script: "date +%s", declared: Declared::Within(5) },
];

pub(super) async fn run_diff(
    testbed: &Testbed,
    row: &Row,
    action: &KataHandlers,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let kata = action.handler();
    let runc = run_probes(testbed, row, "runc", evidence).await?;
    let inside = run_probes(testbed, row, kata, evidence).await?;
    let differences = Differences {
        handler: kata.to_owned(),
        probes: PROBES
            .iter()
            .zip(runc.answers.into_iter().zip(inside.answers))
            .map(|(probe, (runc, kata))| ProbeAnswers {
                probe: probe.name.to_owned(),
                surprise: judge(probe.declared, &runc, &kata),
                runc,
                kata,
                declared: probe.declared.name(),
                reason: probe.declared.reason().map(str::to_owned),
            })
            .collect(),
    };
    evidence.file("diff.txt", &differences.text());
    let same = differences.probes.iter().filter(|p| p.runc == p.kata).count();
    let differ: Vec<&str> = differences
        .probes
        .iter()
        .filter(|p| p.runc != p.kata && p.surprise.is_none())
        .map(|p| p.probe.as_str())
        .collect();
    let observed = format!(
        "runc: {}; {kata}: {}; {} probes: {same} alike, {} differ as declared ({})",
        runc.observed,
        inside.observed,
        differences.probes.len(),
        differ.len(),
        differ.join(", ")
    );
    let surprises: Vec<String> = differences
        .surprises()
        .map(|p| format!("{}: {}", p.probe, p.surprise.as_deref().unwrap_or_default()))
        .collect();
    evidence.differences = Some(differences);
    if surprises.is_empty() {
        Ok(observed)
    } else {
        Err(Failure::new(
            format!("{observed}; {} not as declared", surprises.len()),
            format!(
                "probes not as declared (table in diff.txt): {}",
                surprises.join("; ")
            ),
        ))
    }
}

fn judge(declared: Declared, runc: &str, kata: &str) -> Option<String> {
    match declared {
        Declared::Same if runc != kata => Some(format!(
            "runc says {runc:?}, Kata {kata:?}: nothing declares a difference"
        )),
        Declared::Differs(why) if runc == kata => Some(format!(
            "both say {runc:?}, but they should differ ({why}): is the Kata pod in a VM?"
        )),
        Declared::Within(seconds) => {
            let near = |offset: &str| offset.parse::<i64>().is_ok_and(|o| o.unsigned_abs() <= seconds);
            match (near(runc), near(kata)) {
                (true, true) => None,
                _ => Some(format!(
                    "runc is {runc} s off, Kata {kata} s: more than {seconds} s from the node's clock"
                )),
            }
        }
        _ => None,
    }
}

/// The probes' answers in one pod, and what its runtime checks observed.
struct Side {
    observed: String,
    answers: Vec<String>,
}

/// The diff's pod under `handler`: a busybox with a CPU and a memory limit, a fixed hostname;
/// its runtime checked as a pod row's, the probes run in it, then removed.
async fn run_probes(
    testbed: &Testbed,
    row: &Row,
    handler: &str,
    evidence: &mut Evidence,
) -> Result<Side, Failure> {
    let action = PodAction {
        handlers: vec![handler.to_owned()],
        annotations: Default::default(),
        host_network: false,
        hostname: Some("kh-diff".into()),
        dns: None,
        containers: vec![Container {
            name: "app".into(),
            image: OfflineImage::Busybox,
            command: vec!["sleep".into(), "3600".into()],
            args: vec![],
            env: Default::default(),
            resources: Some(Resources {
                cpu: Some(Quantity::Number(1.0)),
                memory: Some(Quantity::Text("256Mi".into())),
            }),
            mounts: vec![],
        }],
        steps: vec![],
    };
    let pod_row = Row {
        action: Action::Pod(action.clone()),
        expect: runtime_checks(handler),
        ..row.clone()
    };
    let mut pod = Pod::begin(testbed, &format!("{}-{handler}", row.scenario), &action, evidence).await?;
    let holders = Holders::of(testbed, &pod.sandbox);
    let sandbox = pod.sandbox.clone();
    let mut answers = Vec::new();
    let observed = holders
        .watch(testbed, &sandbox, async {
            let observed = pods::start(testbed, &pod_row, &action, &mut pod, evidence).await?;
            let cid = pod.container_id("app").to_owned();
            for probe in PROBES {
                let asked = now_seconds();
                let out = testbed
                    .cri
                    .exec_sync(&cid, &["sh", "-c", probe.script], EXEC_TIMEOUT_SECONDS)
                    .await
                    .map_err(|e| {
                        Failure::new(
                            observed.clone(),
                            format!("{handler}: probe {}: ExecSync failed: {e}", probe.name),
                        )
                    })?;
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                // The clock against the node's, at the middle of the exec.
                let text = match (probe.declared, text.parse::<f64>()) {
                    (Declared::Within(_), Ok(inside)) => {
                        format!("{:+.0}", inside - (asked + now_seconds()) / 2.0)
                    }
                    _ => text,
                };
                answers.push(match out.exit_code {
                    0 => text,
                    code => format!("(exit {code}: {})", String::from_utf8_lossy(&out.stderr).trim()),
                });
            }
            Ok(observed)
        })
        .await;
    let observed = pod.end(testbed, false, observed).await?;
    Ok(Side { observed, answers })
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_judged_by_what_it_declares() {
        assert_eq!(judge(Declared::Same, "a", "a"), None);
        assert!(judge(Declared::Same, "a", "b")
            .unwrap()
            .contains("nothing declares a difference"));
        assert_eq!(judge(Declared::Differs("guest"), "6.1", "6.18"), None);
        assert!(judge(Declared::Differs("guest"), "6.1", "6.1")
            .unwrap()
            .contains("is the Kata pod in a VM?"));
        assert_eq!(judge(Declared::MayDiffer("vcpus"), "2", "1"), None);
        assert_eq!(judge(Declared::MayDiffer("vcpus"), "2", "2"), None);
        assert_eq!(judge(Declared::Within(5), "+0", "-4"), None);
        assert!(judge(Declared::Within(5), "+0", "+6")
            .unwrap()
            .contains("more than 5 s from the node's clock"));
        assert!(judge(Declared::Within(5), "+0", "(exit 1: no date)").is_some());
    }
}
