//! The failure bundle: everything needed to understand one red row without rerunning it.

use std::path::{Path, PathBuf};

use super::{RunInfo, ScriptNode, TrialResult};
use crate::process::shell_quote;

/// crictl's own formatting of the runtime type (`crictl inspect`/`inspectp`), for the lines
/// of `reproduce.sh`: the nodes have no jq.
pub const RUNTIME_TYPE_TEMPLATE: &str = "-o go-template --template '{{.info.runtimeType}}'";

/// A file-system-safe directory name for a trial (`cri::x::containerd-1.6` -> `cri__x__containerd-1.6`).
pub fn dir_name(trial: &str) -> String {
    trial
        .replace("::", "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `bundles/<trial>/`: the error, the evidence files (CRI inspect JSON, containerd log
/// tail, effective config), and `reproduce.sh`.
pub fn write(results_dir: &Path, info: &RunInfo, result: &TrialResult) -> std::io::Result<PathBuf> {
    let dir = results_dir.join("bundles").join(dir_name(&result.name));
    std::fs::create_dir_all(&dir)?;
    let summary = format!(
        "trial:    {}\nexpected: {}\nobserved: {}\n\n{}\n",
        result.name, result.expected, result.observed, result.message
    );
    std::fs::write(dir.join("error.txt"), summary)?;
    for (name, content) in &result.evidence.files {
        std::fs::write(dir.join(name), content)?;
    }
    let reproduce = dir.join("reproduce.sh");
    std::fs::write(&reproduce, script(info, result))?;
    std::fs::set_permissions(&reproduce, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(dir)
}

/// `reproduce.sh`: the trial's lines after a header that defines `crictl` and `ctr` as shell
/// functions bound to the node's socket, so every line runs with only what the node has
/// (crictl's and ctr's own output formats, no jq), then the harness command for the row.
pub fn script(info: &RunInfo, result: &TrialResult) -> String {
    let mut script = format!(
        "#!/bin/sh\n# Redo {} by hand (run from this directory: it holds pod.json and container.json).\n",
        result.name
    );
    if let Some(node) = &result.evidence.node {
        script.push_str(&node_header(node));
    }
    script.push_str("set -ex\n");
    for line in &result.evidence.reproduce {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!(
        "\n# Or rerun just this row with the harness:\n# {}\n",
        info.rerun_line(&result.name)
    ));
    script
}

fn node_header(node: &ScriptNode) -> String {
    let mut header = format!(
        "# It ran on {}. The tools and socket below are that node's defaults: set\n\
         # CONTAINERD_SOCKET (and CRICTL_BIN, CTR_BIN) to run it against another node, e.g.\n\
         #   CONTAINERD_SOCKET=/run/containerd/containerd.sock sh reproduce.sh\n",
        node.description
    );
    let crictl = match &node.crictl {
        Some(crictl) => crictl.clone(),
        None => {
            header.push_str(&format!(
                "# That node had {}.\n",
                crate::artifacts::cri_tools::MISSING
            ));
            "crictl".to_owned()
        }
    };
    let default = |var: &str, value: &str| format!("{var}=${{{var}:-{}}}\n", shell_quote(value));
    header.push_str(&default("CONTAINERD_SOCKET", &node.socket));
    // *_BIN: the lines keep $POD and $CTR for the objects they create.
    header.push_str(&default("CRICTL_BIN", &crictl));
    header.push_str(&default("CTR_BIN", &node.ctr));
    // Both endpoints on the command line, so no config file is needed: `--config /dev/null`
    // keeps crictl from reading (and warning about) a missing or foreign /etc/crictl.yaml.
    header.push_str(&format!(
        "crictl() {{ \"$CRICTL_BIN\" --config /dev/null --runtime-endpoint \"unix://$CONTAINERD_SOCKET\" --image-endpoint \"unix://$CONTAINERD_SOCKET\" --timeout {}s \"$@\"; }}\n",
        crate::render::crictl::TIMEOUT_SECONDS
    ));
    header.push_str("ctr() { \"$CTR_BIN\" --address \"$CONTAINERD_SOCKET\" \"$@\"; }\n");
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Evidence, Verdict};

    fn result(node: Option<ScriptNode>) -> TrialResult {
        TrialResult {
            name: "cri::default-handler::containerd-1.6".into(),
            suite: "cri".into(),
            scenario: "default-handler".into(),
            variant: "containerd-1.6".into(),
            verdict: Verdict::Failed,
            expected: "x".into(),
            observed: "y".into(),
            message: "z".into(),
            seconds: 0.0,
            conditions: vec![],
            bundle: None,
            attempts: vec![],
            evidence: Evidence {
                files: vec![],
                reproduce: vec!["POD=$(crictl runp pod.json)".into()],
                node,
                differences: None,
            },
        }
    }

    #[test]
    fn the_header_binds_crictl_and_ctr_to_the_nodes_socket() {
        let info = RunInfo {
            command: "kata-harness run --target local --containerd 1.6".into(),
            ..RunInfo::default()
        };
        let node = ScriptNode {
            crictl: Some("/cache/crictl".into()),
            ctr: "/usr/bin/ctr".into(),
            socket: "/tmp/kh x/containerd.sock".into(),
            description: "containerd 1.6.20 on local".into(),
        };
        let text = script(&info, &result(Some(node)));
        assert!(
            text.contains("CONTAINERD_SOCKET=${CONTAINERD_SOCKET:-'/tmp/kh x/containerd.sock'}\n"),
            "{text}"
        );
        assert!(
            text.contains("CRICTL_BIN=${CRICTL_BIN:-/cache/crictl}\n"),
            "{text}"
        );
        assert!(
            text.contains("--image-endpoint \"unix://$CONTAINERD_SOCKET\""),
            "{text}"
        );
        assert!(text.contains("set -ex\nPOD=$(crictl runp pod.json)\n"), "{text}");
        assert!(text.ends_with(
            "# kata-harness run --target local --containerd 1.6 --filter cri::default-handler::containerd-1.6 --exact\n"
        ), "{text}");
        assert!(!text.contains("jq"), "{text}");
    }

    #[test]
    fn a_node_without_crictl_says_so() {
        let node = ScriptNode {
            crictl: None,
            ctr: "ctr".into(),
            socket: "/run/containerd/containerd.sock".into(),
            description: "vm".into(),
        };
        let text = script(&RunInfo::default(), &result(Some(node)));
        assert!(text.contains("scripts/build-cri-tools"), "{text}");
        assert!(text.contains("CRICTL_BIN=${CRICTL_BIN:-crictl}\n"), "{text}");
    }
}
