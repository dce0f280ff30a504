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
