//! Getting into a Kata VM: `kata-runtime exec <sandbox>` (the Go runtime) or `kata-ctl exec
//! <sandbox>` (runtime-rs) opens the agent's debug console, and what the guest prints there
//! proves which kernel it runs.
//!
//! Both want a terminal (they set the console raw), so they run under `script`, which gives
//! them a pseudo-terminal; their input is the two commands and their output is read back.

use super::trial::Failure;
use crate::provision::{Testbed, NODE_COMMAND_DEADLINE};
use crate::report::Evidence;

/// What is typed into the guest's console.
const CONSOLE_INPUT: &str = "uname -r\nexit\n";

pub(super) fn judge_console(
    testbed: &Testbed,
    sandbox_id: &str,
    runtime_type: &str,
    observed: String,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let Some(kata) = testbed.kata_for(runtime_type) else {
        return Err(Failure::new(
            observed,
            format!("this testbed has no Kata install for {runtime_type} to exec into"),
        ));
    };
    let exec = format!("{} {sandbox_id}", kata.guest_exec);
    evidence.reproduce(format!(
        "printf 'uname -r\\nexit\\n' | script -qec '{exec}' /dev/null"
    ));
    let argv = testbed.node_argv(&[
        "sh".into(),
        "-c".into(),
        format!(
            "printf '{}' | script -qec '{exec}' /dev/null",
            CONSOLE_INPUT.replace('\n', "\\n")
        ),
    ]);
    let out = testbed
        .node
        .run_unchecked(&argv, NODE_COMMAND_DEADLINE)
        .map_err(|e| Failure::new(observed.clone(), format!("{exec} failed to run: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    evidence.file("guest-console.txt", &text);
    let node = testbed
        .node_kernel()
        .map_err(|e| Failure::new(observed.clone(), format!("uname -r on the node failed: {e}")))?;
    match guest_release(&text, &node) {
        Some(release) => Ok(format!("{observed}, guest console: uname -r {release}")),
        None => Err(Failure::new(
            format!("{observed}, no guest console"),
            format!(
                "{exec} (exit {}) printed no kernel release other than the node's {node}:\n{}\n{}",
                out.status,
                crate::process::tail_of_text(&text, 15),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
    }
}

/// A line of console output that is a kernel release (`6.1.0-50-amd64`) and not the node's.
fn guest_release(output: &str, node_release: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| *l != node_release)
        .find(|l| {
            let mut parts = l.splitn(3, '.');
            let numeric =
                |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            numeric(parts.next())
                && numeric(parts.next())
                && parts
                    .next()
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                && !l.contains(' ')
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_release_is_found_among_the_echo_and_prompts() {
        let console = "uname -r\n/ # uname -r\n6.1.0-50-amd64\n/ # exit\n";
        assert_eq!(
            guest_release(console, "6.18.44-fc").as_deref(),
            Some("6.1.0-50-amd64")
        );
    }

    #[test]
    fn the_nodes_own_release_or_noise_is_not_a_guest() {
        assert_eq!(guest_release("6.18.44-fc\n", "6.18.44-fc"), None);
        assert_eq!(guest_release("connection refused 1.2.3\n", "6.18.44-fc"), None);
        assert_eq!(guest_release("", "6.18.44-fc"), None);
    }
}
