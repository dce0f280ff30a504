//! `kata-harness up --target local` and `down`: a person types the usual sequence against the
//! node `up` leaves running, exactly as `up` prints it (`crictl runp -r kata pod.json`,
//! `crictl create`, `crictl start`, `crictl inspect | grep runtimeType`, `ctr -n=k8s.io images
//! import`), the runtime read back is Kata's for the pod and the container; then `down`
//! removes the node with a Kata sandbox still running in it, and nothing of it is left.
//!
//! Needs a Kata this host can run: where there is none, the trial is skipped with the reason
//! (libtest-mimic, see `common/trials.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use kata_harness::scenario::Capabilities;
use libtest_mimic::Failed;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/leaks.rs"]
mod leaks;
#[path = "common/trials.rs"]
mod trials;
use cli::{harness, stdout_of_success};
use trials::{kata_plan, Planned};

/// The printed line that contains `marker`, as words (the lines `up` prints are shell lines
/// of plain words: paths, flags, IDs to fill in).
fn printed(stdout: &str, marker: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("`up` printed no line with {marker:?}:\n{stdout}"));
    line.split_whitespace().map(str::to_owned).collect()
}

/// Runs a printed line, with its placeholders filled in, up to a `|` (what follows is for the
/// reader's shell: this test does the grep itself).
fn run(words: &[String], fill: &[(&str, &str)]) -> String {
    let words: Vec<String> = words
        .iter()
        .take_while(|w| *w != "|")
        .map(|w| fill.iter().fold(w.clone(), |w, (from, to)| w.replace(from, to)))
        .collect();
    let out = Command::new(&words[0]).args(&words[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        words.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn the_printed_crictl_sequence_runs_kata_and_down_leaves_nothing(name: &str) -> Result<(), Failed> {
    let up = harness()
        .args(["up", "--target", "local", "--containerd", "2.1", "--name", name])
        .output()
        .unwrap();
    let stdout = stdout_of_success(&up);
    let run_dir = PathBuf::from(
        stdout
            .split("run dir ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no run dir in:\n{stdout}")),
    );
    // Whatever happens below, the node goes.
    struct Down<'a>(&'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = harness().args(["down", "--name", self.0]).output();
        }
    }
    let guard = Down(name);

    assert!(
        stdout.contains("handlers: runc, crun, kata, kata-qemu"),
        "{stdout}"
    );
    let pod = run(&printed(&stdout, " runp -r kata "), &[]);
    let container = run(&printed(&stdout, " create POD_ID "), &[("POD_ID", &pod)]);
    run(
        &printed(&stdout, " start CONTAINER_ID"),
        &[("CONTAINER_ID", &container)],
    );
    // CRI: ContainerStatus verbose info.runtimeType, as `crictl inspect | grep runtimeType`.
    let inspect = run(
        &printed(&stdout, " inspect CONTAINER_ID"),
        &[("CONTAINER_ID", &container)],
    );
    let runtime_type: Vec<&str> = inspect
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("\"runtimeType\""))
        .collect();
    assert_eq!(
        runtime_type,
        ["\"runtimeType\": \"io.containerd.kata.v2\","],
        "{inspect}"
    );

    // ctr -n=k8s.io images import: an image exported from the node comes back under a new name.
    let import = printed(&stdout, " images import IMAGE.tar");
    let ctr: Vec<String> = import.iter().take_while(|w| *w != "-n").cloned().collect();
    let archive = run_dir.join("exported.tar");
    let archive = archive.to_string_lossy();
    let with = |args: &[&str]| -> Vec<String> {
        ctr.iter()
            .cloned()
            .chain(args.iter().map(|a| a.to_string()))
            .collect()
    };
    run(
        &with(&[
            "-n=k8s.io",
            "images",
            "export",
            &archive,
            "localhost/kata-harness/busybox:1",
        ]),
        &[],
    );
    run(
        &with(&["-n=k8s.io", "images", "rm", "localhost/kata-harness/busybox:1"]),
        &[],
    );
    run(&import, &[("IMAGE.tar", &archive)]);
    let images = run(&with(&["-n=k8s.io", "images", "ls", "-q"]), &[]);
    assert!(
        images.lines().any(|l| l == "localhost/kata-harness/busybox:1"),
        "{images}"
    );

    // down, with the Kata sandbox still running.
    std::mem::forget(guard);
    let down = harness().args(["down", "--name", name]).output().unwrap();
    let said = stdout_of_success(&down);
    assert!(said.contains(&format!("node {name} is down")), "{said}");
    leaks::assert_nothing_left(&run_dir);
    let again = harness().args(["down", "--name", name]).output().unwrap();
    assert_eq!(again.status.code(), Some(1), "a second down finds no node");
    Ok(())
}

fn a_second_up_of_the_same_name_and_a_vm_target_are_refused(name: &str) -> Result<(), Failed> {
    let vm = harness()
        .args(["up", "--target", "vm", "--name", name])
        .output()
        .unwrap();
    assert_eq!(vm.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&vm.stderr).contains("kata-harness vm up"));
    let first = harness()
        .args(["up", "--containerd", "2.1", "--name", name])
        .output()
        .unwrap();
    let stdout = stdout_of_success(&first);
    let second = harness()
        .args(["up", "--containerd", "2.1", "--name", name])
        .output()
        .unwrap();
    let down = harness().args(["down", "--name", name]).output().unwrap();
    assert_eq!(second.status.code(), Some(2), "{stdout}");
    assert!(String::from_utf8_lossy(&second.stderr).contains("already up"));
    stdout_of_success(&down);
    let run_dir = stdout
        .split("run dir ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    leaks::assert_nothing_left(Path::new(run_dir));
    Ok(())
}

/// A node whose record cannot be written is not left running where no `down` would find it.
fn a_node_that_cannot_be_recorded_is_removed_at_once(name: &str) -> Result<(), Failed> {
    let record = kata_harness::provision::kept::path(name);
    // A directory where the record goes: writing it fails.
    std::fs::create_dir_all(&record).unwrap();
    let up = harness()
        .args(["up", "--containerd", "2.1", "--name", name])
        .output()
        .unwrap();
    std::fs::remove_dir(&record).unwrap();
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("failed to record node {name}")),
        "{stderr}"
    );
    let run_dir = stderr
        .split("run dir ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c == ')' || c.is_whitespace()).next())
        .unwrap_or_else(|| panic!("no run dir in: {stderr}"));
    leaks::assert_nothing_left(Path::new(run_dir));
    Ok(())
}

fn main() -> ExitCode {
    let capabilities = Capabilities::probe_local();
    let name = format!("test-{}", std::process::id());
    let second = format!("{name}-b");
    let third = format!("{name}-c");
    trials::run(vec![
        Planned::needing(
            "the_printed_crictl_sequence_runs_kata_and_down_leaves_nothing",
            kata_plan(&capabilities),
            move |_| the_printed_crictl_sequence_runs_kata_and_down_leaves_nothing(&name),
        ),
        Planned::needing(
            "a_second_up_of_the_same_name_and_a_vm_target_are_refused",
            Ok(()),
            move |()| a_second_up_of_the_same_name_and_a_vm_target_are_refused(&second),
        ),
        Planned::needing(
            "a_node_that_cannot_be_recorded_is_removed_at_once",
            Ok(()),
            move |()| a_node_that_cannot_be_recorded_is_removed_at_once(&third),
        ),
    ])
}
