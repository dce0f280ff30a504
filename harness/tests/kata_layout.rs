//! Kata as upstream packs it: a kata-static tarball (`./opt/kata/...`, its configuration
//! naming `/opt/kata/...` paths), served through `--kata-bundle`, runs the CRI suite's Kata
//! rows on containerd 2.1 with the layout mounted at /opt/kata on the node; afterwards every
//! file of the unpacked layout is byte for byte what the tarball held, and each row lists the
//! conditions this host imposes.
//!
//! Needs a Kata this host can run (the layout scripts/setup builds, packed here as upstream
//! packs its release): where there is none, the trial is skipped with the reason
//! (libtest-mimic, see `common/trials.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use kata_harness::provision::kata::KataPlan;
use kata_harness::scenario::Capabilities;
use libtest_mimic::Failed;
use sha2::{Digest, Sha256};

#[path = "common/trials.rs"]
mod trials;
use trials::{kata_plan, Planned};

/// Every file and link under `dir`, by relative path: its content digest or link target,
/// and its mode.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                walk(root, &path, out);
            } else if meta.file_type().is_symlink() {
                out.insert(rel, format!("-> {:?}", std::fs::read_link(&path).unwrap()));
            } else {
                let digest = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
                out.insert(rel, format!("{digest} {mode:o}"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn upstream_packed_bundle_runs_as_shipped(plan: KataPlan) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let tarball = dir.path().join("kata-static-amd64.tar.zst");
    let packed = Command::new("tar")
        .args(["--zstd", "-cf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&plan.layout.root)
        .arg("./opt/kata")
        .status()?;
    if !packed.success() {
        return Err("packing the layout as kata-static failed".into());
    }
    let results = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_kata-harness"))
        .args([
            "run",
            "--target",
            "local",
            "--containerd",
            "2.1",
            "--filter",
            "cri::kata-",
        ])
        .arg("--kata-bundle")
        .arg(&tarball)
        .arg("--results")
        .arg(&results)
        .env_remove("KATA_HARNESS_KATA_BUNDLE")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "run failed ({}):\n{}\n{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(results.join("results.json"))?)?;
    let trials = json["trials"].as_array().ok_or("results.json has no trials")?;
    let names: Vec<&str> = trials.iter().filter_map(|t| t["name"].as_str()).collect();
    for row in [
        "cri::kata-handler::containerd-2.1",
        "cri::kata-container::containerd-2.1",
    ] {
        if !names.contains(&row) {
            return Err(format!("{row} did not run: {names:?}").into());
        }
    }
    for trial in trials {
        // The bundle holds the Go runtime only: runtime-rs's rows say so.
        if trial["name"].as_str().is_some_and(|n| n.contains("::kata-rs-")) {
            let why = trial["message"].as_str().unwrap_or_default();
            if trial["verdict"] != "skipped" || !why.contains("no Kata runtime-rs") {
                return Err(
                    format!("{} is not skipped for want of runtime-rs: {trial}", trial["name"]).into(),
                );
            }
            continue;
        }
        let listed: Vec<&str> = trial["conditions"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c.as_str()).collect())
            .unwrap_or_default();
        if trial["verdict"] != "passed" {
            return Err(format!("{} did not pass: {trial}", trial["name"]).into());
        }
        if !listed.iter().any(|c| c.starts_with("guest: kernel /opt/kata/")) {
            return Err(format!("{} does not say which guest it booted: {listed:?}", trial["name"]).into());
        }
        if !listed
            .iter()
            .any(|c| c.starts_with("Go runtime: Kata Containers containerd shim (Golang)"))
        {
            return Err(format!("{} does not say which runtime ran it: {listed:?}", trial["name"]).into());
        }
        // The KVM verdict names the kernel it probed with (this test's layout, the run's
        // unpacked bundle: the same kernel at two paths); the rest must be word for word.
        let listed: Vec<String> = listed.iter().map(|c| without_probe_kernel(c)).collect();
        for change in &plan.changes {
            if !listed.contains(&without_probe_kernel(&change.line())) {
                return Err(
                    format!("{} does not list {:?}: {listed:?}", trial["name"], change.line()).into(),
                );
            }
        }
    }
    // The run unpacked the tarball into the cache by its digest; nothing there may differ
    // from what was packed.
    let unpacked = kata_harness::artifacts::kata::open_bundle(&tarball)?;
    if tree(&unpacked.kata_dir()) != tree(&plan.layout.kata_dir()) {
        return Err(format!(
            "the unpacked layout {} differs from what was packed",
            unpacked.kata_dir().display()
        )
        .into());
    }
    Ok(())
}

/// The comparison above sees one changed byte, a changed mode and a new file.
fn the_tree_comparison_sees_a_rewritten_file(_: ()) -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("share/configuration-qemu.toml");
    std::fs::create_dir_all(file.parent().unwrap())?;
    std::fs::write(&file, "path = \"/opt/kata/bin/qemu\"\n")?;
    let before = tree(dir.path());
    std::fs::write(&file, "path = \"/opt/kata/bin/qemv\"\n")?;
    let rewritten = tree(dir.path());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    let chmodded = tree(dir.path());
    std::fs::write(dir.path().join("new"), "")?;
    let added = tree(dir.path());
    if before == rewritten || rewritten == chmodded || chmodded == added {
        return Err("a changed layout compared equal".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let capabilities = Capabilities::probe_local();
    trials::run(vec![
        Planned::needing(
            "precondition::the_tree_comparison_sees_a_rewritten_file",
            Ok(()),
            the_tree_comparison_sees_a_rewritten_file,
        ),
        Planned::needing(
            "upstream_packed_bundle_runs_as_shipped",
            kata_plan(&capabilities),
            upstream_packed_bundle_runs_as_shipped,
        ),
    ])
}

/// `line` without the "(probe kernel <path>)" of a KVM verdict.
fn without_probe_kernel(line: &str) -> String {
    match line.find(" (probe kernel ") {
        Some(at) => {
            let rest = &line[at + 1..];
            let end = rest.find(')').map_or(rest.len(), |i| i + 1);
            format!("{}{}", &line[..at], &rest[end..])
        }
        None => line.to_owned(),
    }
}
