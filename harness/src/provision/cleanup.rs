//! Undo everything a local containerd testbed created outside its own files.
//!
//! Invariant: runs the same way from a normal shutdown, a drop and a Ctrl-C, is idempotent,
//! and ends by checking that nothing is left: no containerd, no shim, no container process,
//! no mount under the run dir, no bridge, no cgroup.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::wait::{wait_blocking, Attempt};

/// What a testbed must undo, as plain data (so the interrupt handler can hold a copy, and a
/// node kept running by `kata-harness up` can be removed by `down`, another process).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CleanupPlan {
    pub run_dir: PathBuf,
    pub socket: PathBuf,
    /// containerd's process group (it is spawned as a group leader).
    pub daemon: Option<GroupLeader>,
    pub bridge: String,
    /// Our pods' cgroup parent, e.g. `kata-harness-1a2b3c` (no leading slash).
    pub cgroup_parent: String,
    pub keep_run_dir: bool,
    /// The value of [`TESTBED_ENV`] in containerd's environment: every process that still
    /// carries it after the daemon stops is ours. Shims, and what they start (Kata's QEMU,
    /// virtiofsd and vsock backend), inherit it, even once reparented, in another mount
    /// namespace, and with no socket path on their command line.
    pub env_tag: Option<String>,
}

/// The environment variable that marks a testbed's containerd and everything it starts.
pub const TESTBED_ENV: &str = "KATA_HARNESS_TESTBED";

/// What cleanup found still there at the end; empty means a clean exit.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Leftovers(pub Vec<String>);

impl Leftovers {
    pub fn is_clean(&self) -> bool {
        self.0.is_empty()
    }
}

/// containerd 1.7+ creates `/run/containerd` (shim sockets) whatever its config says. Several
/// testbeds may run at once, so the last one out removes it, and only if none had found it.
static SYSTEM_PATHS: Mutex<(usize, Option<bool>)> = Mutex::new((0, None));
const RUN_CONTAINERD: &str = "/run/containerd";

pub fn enter_system_paths() {
    let mut guard = SYSTEM_PATHS.lock().unwrap_or_else(|p| p.into_inner());
    if guard.0 == 0 {
        guard.1 = Some(Path::new(RUN_CONTAINERD).exists());
    }
    guard.0 += 1;
}

fn leave_system_paths() {
    let mut guard = SYSTEM_PATHS.lock().unwrap_or_else(|p| p.into_inner());
    guard.0 = guard.0.saturating_sub(1);
    if guard.0 == 0 && guard.1 == Some(false) {
        let _ = std::fs::remove_dir_all(RUN_CONTAINERD);
        guard.1 = None;
    }
}

/// Stops the daemon and removes what it left. The CRI removal of sandboxes is done by the
/// caller first when the daemon still answers; this is the part that works without it.
pub fn run(plan: &CleanupPlan) -> Leftovers {
    if let Some(daemon) = plan.daemon {
        stop_group(daemon);
    }
    // What containerd's shims started (Kata's QEMU and backends) carries its tag, even
    // orphaned: kill all of it, whatever process group or namespace it ended up in.
    kill_matching(&plan.socket.to_string_lossy());
    if let Some(tag) = &plan.env_tag {
        kill_tagged(tag);
    }
    kill_cgroup_members(&plan.cgroup_parent);
    unmount_under(&plan.run_dir);
    remove_cgroups(&plan.cgroup_parent);
    delete_bridge(&plan.bridge);
    leave_system_paths();
    let leftovers = find_leftovers(plan);
    if !plan.keep_run_dir && leftovers.is_clean() {
        let _ = std::fs::remove_dir_all(&plan.run_dir);
    }
    leftovers
}

fn stop_group(daemon: GroupLeader) {
    if daemon.signal(Signal::SIGTERM) && !daemon.wait_exit("containerd to exit", Duration::from_secs(10)) {
        daemon.signal(Signal::SIGKILL);
    }
}

/// A process group we started, known by its leader's pid *and start time*: by the time a
/// teardown signals it, the leader may have been reaped and its pid handed to a stranger
/// (pid_max 32768 here, compilers forking thousands; another run's containerd once got our
/// SIGTERM that way). The kernel never reuses a pid that is still some group's id, so a
/// missing leader means only our own orphans can hold the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupLeader {
    pgid: i32,
    started: u64,
}

impl GroupLeader {
    /// The group led by `pid`, a process this harness just spawned as a group leader.
    pub fn of(pid: u32) -> Option<Self> {
        let pgid = pid as i32;
        start_ticks(pgid).map(|started| Self { pgid, started })
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Whether the group can still be ours: its leader is the process we started (maybe a
    /// zombie), or gone while the group may live on.
    pub fn is_ours(&self) -> bool {
        start_ticks(self.pgid).is_none_or(|t| t == self.started)
    }

    /// Sends `signal` to the group unless its id now belongs to someone else; whether it was
    /// delivered.
    pub fn signal(&self, signal: Signal) -> bool {
        self.is_ours() && killpg(Pid::from_raw(self.pgid), signal).is_ok()
    }

    /// Whether the leader has exited (reaped or a zombie) or its pid is someone else's now.
    pub fn has_exited(&self) -> bool {
        proc_stat(self.pgid).is_none_or(|(state, started)| state == 'Z' || started != self.started)
    }

    /// Waits (bounded) until the leader has exited; whether it did.
    pub fn wait_exit(&self, what: &str, timeout: Duration) -> bool {
        wait_blocking(what, timeout, Duration::from_millis(20), || {
            if self.has_exited() {
                Attempt::Ready(())
            } else {
                Attempt::NotYet("still running".into())
            }
        })
        .is_ok()
    }
}

fn start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, started)| started)
}

/// The state letter (field 3) and the start time in clock ticks since boot (field 22) of
/// `/proc/<pid>/stat`; the fields after the `)` that closes the command name start at 3.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// A process that has exited but was not reaped yet (or is gone).
pub fn is_zombie(pid: i32) -> bool {
    proc_stat(pid).is_none_or(|(state, _)| state == 'Z')
}

/// Processes of this host whose command line mentions `needle` (shims carry `-address <our socket>`).
pub fn processes_matching(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    crate::node::local_processes()
        .into_iter()
        .filter(|p| p.pid != me && p.cmdline.contains(needle))
        .map(|p| (p.pid, p.cmdline))
        .collect()
}

/// Processes (other than this one) whose environment has `KATA_HARNESS_TESTBED=<tag>`.
pub fn tagged_processes(tag: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    crate::node::local_processes()
        .into_iter()
        .filter(|p| p.pid != me && carries_tag(p.pid, tag))
        .map(|p| (p.pid, p.cmdline))
        .collect()
}

/// Whether process `pid` has `KATA_HARNESS_TESTBED=<tag>` in its environment.
fn carries_tag(pid: i32, tag: &str) -> bool {
    let needle = format!("{TESTBED_ENV}={tag}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
}

/// Kills every tagged process and waits (bounded) until each is gone. Each poll looks for
/// tagged processes again (a dying shim may have forked one after the first pass), and the
/// killed ones are followed by pid: a process still exiting (a VMM unmapping its guest
/// memory) no longer shows its environment but is not gone yet.
fn kill_tagged(tag: &str) {
    let mut killed = std::collections::BTreeSet::new();
    let _ = wait_blocking(
        "the node's processes to exit",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            for (pid, _) in tagged_processes(tag) {
                if killed.insert(pid) || !is_zombie(pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            let alive = killed.iter().filter(|pid| !is_zombie(**pid)).count();
            if alive == 0 {
                Attempt::Ready(())
            } else {
                Attempt::NotYet(format!("{alive} still exiting"))
            }
        },
    );
}

fn kill_matching(needle: &str) {
    for (pid, _) in processes_matching(needle) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Every directory named `parent` directly under a cgroup hierarchy root (v1 and v2 layouts).
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(parent)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join(parent)));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

fn walk_depth_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk_depth_first(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_owned());
}

fn kill_cgroup_members(parent: &str) {
    for dir in cgroup_dirs(parent) {
        let mut all = Vec::new();
        walk_depth_first(&dir, &mut all);
        for d in all {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Empties and removes our pods' cgroup parent (only our pods live under it, on any node);
/// what is still there afterwards.
pub fn clear_cgroup_parent(parent: &str) -> Vec<String> {
    kill_cgroup_members(parent);
    remove_cgroups(parent);
    cgroup_dirs(parent)
        .into_iter()
        .map(|dir| format!("cgroup {}", dir.display()))
        .collect()
}

fn remove_cgroups(parent: &str) {
    for dir in cgroup_dirs(parent) {
        let mut all = Vec::new();
        walk_depth_first(&dir, &mut all);
        for d in all {
            // A cgroup empties a moment after its last process is killed.
            let _ = wait_blocking(
                "an empty cgroup",
                Duration::from_secs(5),
                Duration::from_millis(20),
                || match std::fs::remove_dir(&d) {
                    Ok(()) => Attempt::Ready(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Attempt::Ready(()),
                    Err(e) => Attempt::NotYet(e.to_string()),
                },
            );
        }
    }
}

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut mounts: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn unmount_under(dir: &Path) {
    // Repeat: a path can carry stacked mounts, and detaching one reveals the next.
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for mount in mounts {
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn bridge_exists(bridge: &str) -> bool {
    Path::new("/sys/class/net").join(bridge).exists()
}

fn delete_bridge(bridge: &str) {
    if bridge_exists(bridge) {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["link", "delete", bridge]);
        if let Err(e) = crate::process::run(cmd, Duration::from_secs(10)) {
            tracing::warn!(%bridge, error = %e, "failed to delete the CNI bridge");
        }
    }
}

fn find_leftovers(plan: &CleanupPlan) -> Leftovers {
    let mut left = Vec::new();
    for (pid, cmdline) in processes_matching(&plan.socket.to_string_lossy()) {
        left.push(format!("process {pid}: {cmdline}"));
    }
    if let Some(tag) = &plan.env_tag {
        for (pid, cmdline) in tagged_processes(tag) {
            if !is_zombie(pid) {
                left.push(format!(
                    "process {pid} (started by the node's containerd): {cmdline}"
                ));
            }
        }
    }
    for mount in mounts_under(&plan.run_dir) {
        left.push(format!("mount {}", mount.display()));
    }
    if bridge_exists(&plan.bridge) {
        left.push(format!("network bridge {}", plan.bridge));
    }
    for dir in cgroup_dirs(&plan.cgroup_parent) {
        left.push(format!("cgroup {}", dir.display()));
    }
    Leftovers(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_processes_by_command_line() {
        let marker = format!("kh-test-marker-{}", std::process::id());
        // Short sleeps in a loop: once the marked shell is killed, nothing outlives the test.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do sleep 0.1; done", &marker])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let found = wait_blocking(
            "the marked process",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                let found = processes_matching(&marker);
                if found.is_empty() {
                    Attempt::NotYet("not yet".into())
                } else {
                    Attempt::Ready(found)
                }
            },
        )
        .unwrap();
        assert!(
            found.iter().any(|(pid, _)| *pid == child.id() as i32),
            "{found:?}"
        );
        kill_matching(&marker);
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    /// A group leader is known by its start time: a stranger given the same pid would not
    /// match, and a leader that was killed and reaped has exited.
    #[test]
    fn a_group_leader_is_known_by_pid_and_start_time() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let leader = GroupLeader::of(child.id()).expect("a running child has a start time");
        let stranger = GroupLeader {
            started: leader.started + 1,
            ..leader
        };
        let verdicts = (leader.is_ours(), stranger.is_ours(), leader.has_exited());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(verdicts, (true, false, false));
        assert!(leader.has_exited(), "a reaped leader has exited");
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
    }
}
