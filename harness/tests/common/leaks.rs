//! The leak check run after every test that starts a testbed (include with
//! `#[path = "common/leaks.rs"] mod leaks;`): nothing of a run may outlive it on this host.
//!
//! A run owns `/tmp/kata-harness-<id>` and names everything else after `<id>`: the cgroup
//! parent `kata-harness-<id>`, the CNI bridge `khbr-<id>`. So a leak is anything alive or
//! present that names the run dir or the id.

use std::path::{Path, PathBuf};

use kata_harness::provision::cleanup::{is_zombie, mounts_under, processes_matching, tagged_processes};

/// Panics with every kind of leftover found: processes, mounts (overlays whose layers are in
/// the run dir too), cgroups, network namespaces and links, temp dirs, the run dir itself.
pub fn assert_nothing_left(run_dir: &Path) {
    let left = leftovers(run_dir);
    assert!(
        left.is_empty(),
        "left behind by {}:\n{}",
        run_dir.display(),
        left.join("\n")
    );
}

/// What is left of the run whose dir is `run_dir`, one line per leftover.
pub fn leftovers(run_dir: &Path) -> Vec<String> {
    let needle = run_dir.to_string_lossy().into_owned();
    let id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().trim_start_matches("kata-harness-").to_owned())
        .expect("a run dir /tmp/kata-harness-<id>");
    assert!(!id.is_empty(), "{needle} carries no id");
    let mut left = Vec::new();

    let mut processes: Vec<(i32, String)> = processes_matching(&needle);
    processes.extend(tagged_processes(&needle));
    processes.sort();
    processes.dedup();
    left.extend(
        processes
            .into_iter()
            .filter(|(pid, _)| !is_zombie(*pid))
            .map(|(pid, command)| format!("process {pid}: {command}")),
    );

    left.extend(
        mounts_under(run_dir)
            .into_iter()
            .map(|m| format!("mount {}", m.display())),
    );
    // An overlay mounted elsewhere with its layers in the run dir shows only in its options.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    left.extend(
        mountinfo
            .lines()
            .filter(|line| {
                line.contains(&format!("{needle}/"))
                    && !line.split(' ').nth(4).is_some_and(|m| m.starts_with(&needle))
            })
            .map(|line| format!("mount with its source in the run dir: {line}")),
    );

    let cgroup = format!("kata-harness-{id}");
    left.extend(
        cgroup_dirs_named(&cgroup)
            .into_iter()
            .map(|d| format!("cgroup {}", d.display())),
    );

    left.extend(
        names_in(Path::new("/run/netns"))
            .into_iter()
            .filter(|n| n.contains(&id))
            .map(|n| format!("netns /run/netns/{n}")),
    );
    left.extend(
        names_in(Path::new("/sys/class/net"))
            .into_iter()
            .filter(|n| n.contains(&id))
            .map(|n| format!("network link {n}")),
    );

    left.extend(
        names_in(&std::env::temp_dir())
            .into_iter()
            .filter(|n| n.contains(&id))
            .map(|n| format!("temp entry {}", std::env::temp_dir().join(n).display())),
    );
    left
}

/// `/sys/fs/cgroup/<name>` and `/sys/fs/cgroup/<controller>/<name>` (v2, hybrid or v1).
fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(name)];
    dirs.extend(names_in(root).into_iter().map(|c| root.join(c).join(name)));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
