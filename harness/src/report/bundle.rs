//! The failure bundle: everything needed to understand one red row without rerunning it.

use std::path::{Path, PathBuf};

use super::{RunInfo, TrialResult};

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
    let mut script = String::from("#!/bin/sh\n# Redo this trial by hand (run from this directory: it holds pod.json and container.json).\nset -ex\n");
    for line in &result.evidence.reproduce {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(&format!(
        "\n# Or rerun just this row with the harness:\n# {} --exact {}\n",
        info.command, result.name
    ));
    std::fs::write(dir.join("reproduce.sh"), script)?;
    Ok(dir)
}
