//! Every child process the harness starts goes through here.
//!
//! Invariant: each child runs in its own process group, its output goes to a log file (never
//! to our terminal), it is registered with [`crate::teardown`] before it can outlive us, and it
//! is stopped (SIGTERM to the group, then SIGKILL after a grace period) when dropped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::teardown::{self, Registration};
use crate::wait::{wait_blocking, Attempt};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("failed to start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} did not finish within {deadline:?}; killed")]
    Deadline { command: String, deadline: Duration },
    #[error("{command} failed ({status}): {stderr_tail}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr_tail: String,
    },
}

/// A long-running child (a daemon), supervised for its whole life.
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
    registration: Option<Registration>,
}

impl Daemon {
    /// Starts `command` in its own process group with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, ProcessError> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| ProcessError::Log {
                path: log.to_owned(),
                source,
            })?;
        let err = out.try_clone().map_err(|source| ProcessError::Log {
            path: log.to_owned(),
            source,
        })?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: program_of(&command),
            source,
        })?;
        let pgid = Pid::from_raw(child.id() as i32);
        let registration = teardown::register(format!("kill {name} (pgid {pgid})"), move || {
            let _ = killpg(pgid, Signal::SIGKILL);
        });
        Ok(Daemon {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            registration: Some(registration),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status if the daemon has already exited: what makes any wait on it pointless.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log, lines)
    }

    /// Lets the daemon outlive us (`--keep`, `vm up`): no kill on drop or on Ctrl-C.
    /// Returns its pid so it can be found and stopped later.
    pub fn detach(mut self) -> u32 {
        if let Some(registration) = self.registration.take() {
            registration.disarm();
        }
        let pid = self.child.id();
        std::mem::forget(self);
        pid
    }

    /// SIGTERM to the process group, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let pgid = Pid::from_raw(self.child.id() as i32);
        if self.exited().is_none() {
            let _ = killpg(pgid, Signal::SIGTERM);
            let waited = wait_blocking(
                &format!("{} to exit", self.name),
                grace,
                Duration::from_millis(20),
                || match self.child.try_wait() {
                    Ok(Some(status)) => Attempt::Ready(status),
                    Ok(None) => Attempt::NotYet("still running".into()),
                    Err(e) => Attempt::Fatal(e.to_string()),
                },
            );
            if waited.is_err() {
                tracing::warn!(daemon = %self.name, "did not stop on SIGTERM; killing");
            }
        }
        // Whatever else is left in the group (helpers it forked) goes too.
        let _ = killpg(pgid, Signal::SIGKILL);
        if let Some(registration) = self.registration.take() {
            registration.disarm();
        }
        self.child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.registration.is_some() {
            self.stop(Duration::from_secs(10));
        }
    }
}

/// Runs a short command to completion under a deadline, in its own process group.
/// A non-zero exit is an error carrying the stderr tail.
pub fn run(mut command: Command, deadline: Duration) -> Result<Output, ProcessError> {
    let output = run_unchecked(&mut command, deadline)?;
    if !output.status.success() {
        return Err(ProcessError::Failed {
            command: display_command(&command),
            status: output.status,
            stderr_tail: tail_of_text(&String::from_utf8_lossy(&output.stderr), 20),
        });
    }
    Ok(output)
}

/// Like [`run`] but returns the output whatever the exit status (for commands expected to fail).
pub fn run_unchecked(command: &mut Command, deadline: Duration) -> Result<Output, ProcessError> {
    run_piped(command, deadline, false)
}

/// Runs a long command (an image build) whose stderr is progress for the user: stderr goes
/// to ours as it comes, stdout is captured. Same process-group and deadline rules as [`run`].
pub fn run_streaming_stderr(mut command: Command, deadline: Duration) -> Result<Output, ProcessError> {
    let output = run_piped(&mut command, deadline, true)?;
    if !output.status.success() {
        return Err(ProcessError::Failed {
            command: display_command(&command),
            status: output.status,
            stderr_tail: "(see the output above)".into(),
        });
    }
    Ok(output)
}

/// The one way short commands run: own process group, registered for Ctrl-C, killed at the
/// deadline, pipes drained on threads (a chatty child cannot block on a full pipe), and
/// whatever is left in the group killed when the command itself is done.
fn run_piped(
    command: &mut Command,
    deadline: Duration,
    stderr_to_terminal: bool,
) -> Result<Output, ProcessError> {
    let shown = display_command(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if stderr_to_terminal {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        .process_group(0);
    let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
        program: program_of(command),
        source,
    })?;
    let pgid = Pid::from_raw(child.id() as i32);
    let registration = teardown::register(format!("kill {shown}"), move || {
        let _ = killpg(pgid, Signal::SIGKILL);
    });
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_reader = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err_reader = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = wait_blocking(&shown, deadline, Duration::from_millis(10), || {
        match child.try_wait() {
            Ok(Some(status)) => Attempt::Ready(status),
            Ok(None) => Attempt::NotYet("running".into()),
            Err(e) => Attempt::Fatal(e.to_string()),
        }
    });
    let _ = killpg(pgid, Signal::SIGKILL);
    registration.disarm();
    let status = match status {
        Ok(status) => status,
        Err(_) => {
            let _ = child.wait();
            return Err(ProcessError::Deadline {
                command: shown,
                deadline,
            });
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// A command as a shell-like line, for error messages and reproduce scripts.
pub fn display_command(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word for a POSIX shell only when it needs it.
/// `argv` as one shell line a person can paste (each word quoted as needed).
pub fn shell_line(argv: &[String]) -> String {
    argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn program_of(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

/// The last `lines` lines of a file, reading at most the final 64 KiB.
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    tail_of_text(&String::from_utf8_lossy(&buf), lines)
}

pub fn tail_of_text(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The first executable `binary` on `$PATH`.
pub fn find_on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_reports_stderr_of_failures() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let err = run(cmd, Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn run_kills_at_deadline() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let err = run(cmd, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, ProcessError::Deadline { .. }), "{err}");
    }

    #[test]
    fn daemon_group_is_killed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        // The grandchild shares the group: dropping the daemon must take it too.
        cmd.args(["-c", "sleep 300 & echo $! > pid; wait"])
            .current_dir(dir.path());
        let daemon = Daemon::spawn("sleeper", cmd, &dir.path().join("log")).unwrap();
        let pid_file = dir.path().join("pid");
        let grandchild: i32 = wait_blocking(
            "pid file",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || match std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                Some(pid) => Attempt::Ready(pid),
                None => Attempt::NotYet("no pid yet".into()),
            },
        )
        .unwrap();
        drop(daemon);
        let gone = wait_blocking(
            "grandchild to exit",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                match nix::sys::signal::kill(Pid::from_raw(grandchild), None) {
                    Err(_) => Attempt::Ready(()),
                    Ok(()) => {
                        // A zombie still answers kill(0); it is gone for our purposes when reaped by init.
                        let state =
                            std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
                        if state.contains(") Z") {
                            Attempt::Ready(())
                        } else {
                            Attempt::NotYet("alive".into())
                        }
                    }
                }
            },
        );
        assert!(gone.is_ok(), "grandchild {grandchild} survived the daemon's drop");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
