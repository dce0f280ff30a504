//! Provisioning's two ways into a VM guest: run a command, put a file.

use std::path::Path;

use super::{io_err, ProvisionError, NODE_COMMAND_DEADLINE};
use crate::node::Node;

/// The guest's state directory: the harness's run dir, images, logs and Kata files.
pub(super) const GUEST_STATE: &str = "/var/lib/kata-harness";

/// Runs a command in the guest during provisioning.
pub(super) fn guest(node: &dyn Node, argv: &[&str]) -> Result<String, ProvisionError> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = node
        .run(&argv, NODE_COMMAND_DEADLINE)
        .map_err(ProvisionError::Guest)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `content` to `remote` in the guest through a staged host file.
pub(super) fn put(
    node: &dyn Node,
    run_dir: &Path,
    remote: &str,
    content: &str,
) -> Result<(), ProvisionError> {
    let staged = run_dir.join(Path::new(remote).file_name().unwrap_or_default());
    std::fs::write(&staged, content).map_err(io_err(&staged))?;
    node.upload(&staged, Path::new(remote))
        .map_err(ProvisionError::Guest)
}
