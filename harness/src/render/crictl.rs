//! `crictl.yaml`: crictl's client config, naming one node's containerd socket.
//!
//! crictl reads `/etc/crictl.yaml` by default. Only a disposable VM guest gets that file; on
//! this host it would be the user's, so local nodes get theirs in the run dir (`--config`).

use std::path::Path;

/// How long crictl waits for an answer, in seconds (its default, 2 s, is shorter than a
/// sandbox start under load, and far shorter than a Kata one under TCG).
pub const TIMEOUT_SECONDS: u64 = 60;

/// The config for a node whose CRI (runtime and image services) is at `socket`.
pub fn config(socket: &Path) -> String {
    let endpoint = format!("unix://{}", socket.display());
    format!(
        "# crictl client config written by kata-harness\nruntime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\ntimeout: {TIMEOUT_SECONDS}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_both_endpoints_and_the_timeout() {
        let text = config(Path::new("/run/containerd/containerd.sock"));
        assert!(text.contains("runtime-endpoint: unix:///run/containerd/containerd.sock\n"));
        assert!(text.contains("image-endpoint: unix:///run/containerd/containerd.sock\n"));
        assert!(text.contains("timeout: 60\n"));
    }
}
