//! The `kata_check:` row: the Kata runtime's own check of the host (`kata-runtime check` for
//! the Go runtime, `kata-ctl check all` for runtime-rs), run on the node, judged against what
//! the harness found when it planned Kata there. Where the harness found KVM, vhost_vsock and
//! vhost_net, the check must pass; where it had to do without one (TCG, a user-space vsock,
//! virtio-net in QEMU), the check must fail and name each missing piece. A check that says
//! "capable" on a host where Kata only runs with those workarounds misleads its users.

use std::time::Duration;

use super::model::kata_handlers::KataHandlers;
use super::trial::Failure;
use crate::artifacts::kata::KataRuntime;
use crate::provision::kata::KataHost;
use crate::provision::Testbed;
use crate::report::Evidence;

/// The check reads /proc and probes /dev/kvm: seconds; a minute is a hang.
const CHECK_DEADLINE: Duration = Duration::from_secs(60);

/// A host feature Kata wants that the harness found missing, and the words a check's
/// complaint about it contains.
#[derive(Debug, Clone, PartialEq)]
struct Gap {
    feature: &'static str,
    words: &'static [&'static str],
    why: String,
}

fn gaps(host: &KataHost) -> Vec<Gap> {
    let mut gaps = Vec::new();
    if let Some(why) = &host.no_kvm {
        gaps.push(Gap {
            feature: "KVM",
            words: &["kvm", "svm", "vmx", "virtualization support"],
            why: why.clone(),
        });
    }
    if !host.vhost_vsock {
        gaps.push(Gap {
            feature: "vhost_vsock",
            words: &["vhost_vsock"],
            why: "no /dev/vhost-vsock".into(),
        });
    }
    if !host.vhost_net {
        gaps.push(Gap {
            feature: "vhost_net",
            words: &["vhost_net"],
            why: "no /dev/vhost-net".into(),
        });
    }
    gaps
}

/// The lines of a check's output that complain (the Go runtime's `level=error`/`warning`,
/// kata-ctl's `WARN`/`ERRO`): a feature it found is named on its other lines too.
fn complaints(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| {
            ["level=error", "level=warning", " WARN ", " ERRO", "ERROR"]
                .iter()
                .any(|mark| l.contains(mark))
        })
        .collect()
}

/// The check's verdict (`passed`: it exited 0) against the harness's gaps.
fn judge(tool: &str, gaps: &[Gap], passed: bool, output: &str) -> Result<String, Failure> {
    let found = gaps
        .iter()
        .map(|g| format!("{} ({})", g.feature, g.why))
        .collect::<Vec<_>>()
        .join(", ");
    let complaints = complaints(output).join("\n").to_lowercase();
    let names = |g: &Gap| g.words.iter().any(|w| complaints.contains(w));
    match (gaps.is_empty(), passed) {
        (true, true) => Ok(format!(
            "{tool}: capable, as the harness found (KVM, vhost_vsock, vhost_net)"
        )),
        (true, false) => Err(Failure::new(
            format!("{tool}: not capable"),
            format!(
                "{tool} says this host cannot run Kata, where the harness found KVM, vhost_vsock and vhost_net and runs Kata without workarounds (output in host-check.txt)"
            ),
        )),
        (false, true) => Err(Failure::new(
            format!("{tool}: capable (exit 0)"),
            format!(
                "{tool} exited 0, where the harness found missing: {found}; Kata runs here only with workarounds the check does not mention (output in host-check.txt)"
            ),
        )),
        (false, false) => {
            let unnamed: Vec<&str> = gaps.iter().filter(|g| !names(g)).map(|g| g.feature).collect();
            let named: Vec<&str> = gaps.iter().filter(|g| names(g)).map(|g| g.feature).collect();
            let observed = format!("{tool}: not capable, naming {}", named.join(", "));
            if unnamed.is_empty() {
                Ok(format!("{observed}, as the harness found ({found})"))
            } else {
                Err(Failure::new(
                    format!("{tool}: not capable"),
                    format!(
                        "{tool} failed without naming {} among its complaints, where the harness found missing: {found} (output in host-check.txt)",
                        unnamed.join(", ")
                    ),
                ))
            }
        }
    }
}

pub(super) async fn run_kata_check(
    testbed: &Testbed,
    action: &KataHandlers,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let handler = action.handler();
    let install = KataRuntime::of_handler(handler)
        .and_then(|runtime| testbed.kata_install(runtime))
        .ok_or_else(|| Failure::new("-", format!("the node has no Kata install for {handler}")))?;
    let tool = match install.runtime {
        KataRuntime::Go => "kata-runtime check",
        KataRuntime::Rust => "kata-ctl check",
    };
    let argv = testbed.node_argv(&["sh".into(), "-c".into(), format!("{} 2>&1", install.host_check)]);
    let out = testbed
        .node
        .run_unchecked(&argv, CHECK_DEADLINE)
        .map_err(|e| Failure::new("-", format!("`{}` on the node: {e}", install.host_check)))?;
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    evidence.file(
        "host-check.txt",
        &format!("$ {}\n({})\n{output}", install.host_check, out.status),
    );
    evidence.reproduce(format!("{} # on the node", install.host_check));
    judge(tool, &gaps(&install.host), out.status.success(), &output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(no_kvm: bool, vhost_vsock: bool, vhost_net: bool) -> KataHost {
        KataHost {
            no_kvm: no_kvm.then(|| "a probe boot under KVM failed".into()),
            vhost_vsock,
            vhost_net,
            syslog: true,
            qemu: None,
            node: crate::provision::kata::NodeKind::Local,
        }
    }

    /// What kata-runtime 3.30 says on this kind of host (AMD, no usable KVM, no vhost modules).
    const GO_NOT_CAPABLE: &str = r#"time="x" level=info msg="CPU property found" description="AMD Architecture CPU" name=AuthenticAMD
time="x" level=error msg="CPU property not found" description="Virtualization support" name=svm
time="x" level=info msg="kernel property found" description="Kernel-based Virtual Machine" name=kvm
time="x" level=error msg="kernel property vhost_vsock not found" name=vhost_vsock
time="x" level=error msg="kernel property vhost_net not found" name=vhost_net
time="x" level=error msg="ERROR: System is not capable of running Kata Containers"
"#;

    /// What kata-ctl 4.1 says there, exiting 0.
    const RS_WARNS: &str = " Dec 08 INFO check CPU: x86_64\n Dec 08 WARN Missing CPU flags [\"vmx\"]\n Dec 08 WARN modinfo: ERROR: Module vhost_vsock not found.\n";

    #[test]
    fn a_failing_check_must_name_each_gap_the_harness_found() {
        let gaps = gaps(&host(true, false, false));
        assert_eq!(
            gaps.iter().map(|g| g.feature).collect::<Vec<_>>(),
            ["KVM", "vhost_vsock", "vhost_net"]
        );
        let seen = judge("kata-runtime check", &gaps, false, GO_NOT_CAPABLE).unwrap();
        assert!(
            seen.starts_with("kata-runtime check: not capable, naming KVM, vhost_vsock, vhost_net, as the harness found (KVM (a probe boot"),
            "{seen}"
        );
        // A complaint list without vhost_net: the check missed one.
        let without = GO_NOT_CAPABLE.replace(
            "level=error msg=\"kernel property vhost_net",
            "level=info msg=\"kernel property vhost_net",
        );
        let err = judge("kata-runtime check", &gaps, false, &without).unwrap_err();
        assert!(
            err.message
                .contains("failed without naming vhost_net among its complaints"),
            "{}",
            err.message
        );
        // `name=kvm` on a line that found it is no complaint about KVM.
        let only_kvm_found =
            "level=info msg=\"kernel property found\" name=kvm\nlevel=error msg=\"not capable\"\n";
        let err = judge("kata-runtime check", &gaps[..1], false, only_kvm_found).unwrap_err();
        assert!(err.message.contains("without naming KVM"), "{}", err.message);
    }

    #[test]
    fn a_check_that_passes_where_the_harness_found_gaps_fails_the_row() {
        let err = judge("kata-ctl check", &gaps(&host(true, false, true)), true, RS_WARNS).unwrap_err();
        assert_eq!(err.observed, "kata-ctl check: capable (exit 0)");
        assert!(
            err.message.contains("exited 0, where the harness found missing: KVM (a probe boot under KVM failed), vhost_vsock (no /dev/vhost-vsock)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn on_a_host_with_everything_the_check_must_pass() {
        let none = gaps(&host(false, true, true));
        assert!(none.is_empty());
        assert!(judge("kata-runtime check", &none, true, "")
            .unwrap()
            .contains("capable, as the harness found"));
        let err = judge("kata-runtime check", &none, false, GO_NOT_CAPABLE).unwrap_err();
        assert!(
            err.message.contains("says this host cannot run Kata"),
            "{}",
            err.message
        );
    }
}
