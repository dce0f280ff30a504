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
