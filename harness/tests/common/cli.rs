//! The kata-harness binary as the integration tests run it (include with
//! `#[path = "common/cli.rs"] mod cli;`).

use std::path::Path;
use std::process::Command;

/// `kata-harness`, run from the repository root (where `suites/` and `results/` are).
pub fn harness() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kata-harness"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    cmd
}

/// The stdout of a command that must have succeeded; on failure, both streams in the panic.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn stdout_of_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Sends SIGINT to `child` and waits (up to `deadline`) for it to exit.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn interrupt_and_wait(
    child: &mut std::process::Child,
    deadline: std::time::Duration,
) -> std::process::ExitStatus {
    use kata_harness::wait::{wait_blocking, Attempt};
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    wait_blocking(
        "kata-harness to exit after SIGINT",
        deadline,
        std::time::Duration::from_millis(50),
        || match child.try_wait() {
            Ok(Some(status)) => Attempt::Ready(status),
            Ok(None) => Attempt::NotYet("running".into()),
            Err(e) => Attempt::Fatal(e.to_string()),
        },
    )
    .unwrap()
}
