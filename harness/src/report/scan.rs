//! What no row may leave in a kernel console or a daemon's log, whatever its verdict: a
//! kernel panic, oops, soft lockup, hung task or OOM kill (the VM's serial console, the Kata
//! guest's console as the shim logs it), and a Go panic, fatal error or fatal signal, or a Rust
//! panic (a shim's stderr, the Kata agent) in containerd's log. A row during which one
//! appears fails with the lines quoted.
//!
//! Invariant: only the text written while the row ran is scanned (see [`LogMark`]), so one
//! row's crash is never charged to the next; the patterns are the kernel's and the runtimes'
//! own fixed wording, never a row's expected error text.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The fixed wording of each kind of trouble, as the kernel and the runtimes print it.
const PATTERNS: [(&str, &str); 15] = [
    ("kernel panic", "Kernel panic - not syncing"),
    ("kernel oops", "Oops: "),
    ("kernel BUG", "BUG: unable to handle"),
    ("kernel fault", "general protection fault"),
    ("soft lockup", "BUG: soft lockup"),
    ("hung task", "blocked for more than"),
    ("OOM kill", "Out of memory: Killed process"),
    ("OOM kill", "Memory cgroup out of memory"),
    ("OOM kill", "oom-kill:"),
    ("Go panic", "panic: "),
    ("Go runtime fatal error", "fatal error: "),
    // A Go program's crash outside a panic (in cgo, or an abort): the runtime's dump header.
    ("Go fatal signal", "SIGSEGV: segmentation violation"),
    ("Go fatal signal", "SIGBUS: bus error"),
    ("Go fatal signal", "SIGABRT: abort"),
    ("Rust panic", "panicked at"),
];

/// A line that shows trouble, and what kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trouble {
    pub kind: &'static str,
    pub line: String,
}

/// The troubles in `text`, line by line. A Go panic counts where the line starts with it
/// (after a log prefix the runtimes add, `msg="` or a timestamp), so an error message that
/// merely mentions the word does not; "hung task" needs the kernel's `INFO: task`.
pub fn troubles(text: &str) -> Vec<Trouble> {
    let mut found = Vec::new();
    for line in text.lines() {
        for (kind, pattern) in PATTERNS {
            let Some(at) = line.find(pattern) else { continue };
            let starts_line = {
                let before = line[..at].trim_end();
                before.is_empty() || before.ends_with("msg=\"") || before.ends_with(']')
            };
            let counts = match kind {
                "Go panic" | "Go runtime fatal error" | "Go fatal signal" => starts_line,
                "hung task" => line.contains("INFO: task "),
                _ => true,
            };
            if counts {
                found.push(Trouble {
                    kind,
                    line: line.trim().to_owned(),
                });
                break;
            }
        }
    }
    found
}

/// Where a log file ended when a row started.
#[derive(Debug, Clone)]
pub struct LogMark {
    pub source: String,
    pub path: PathBuf,
    pub offset: u64,
}

impl LogMark {
    /// The current end of `path` (0 if it does not exist yet).
    pub fn at_end(source: &str, path: &Path) -> LogMark {
        LogMark {
            source: source.to_owned(),
            path: path.to_owned(),
            offset: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }

    /// What was written after the mark (from the start if the file was replaced by a
    /// shorter one), at most the last 4 MiB.
    pub fn since(&self) -> String {
        const LIMIT: u64 = 4 << 20;
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let from = if len < self.offset { 0 } else { self.offset };
        let from = from.max(len.saturating_sub(LIMIT));
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The troubles written to each marked log since its mark, as one message quoting them
/// (`None` when there are none).
pub fn report_since(marks: &[LogMark]) -> Option<String> {
    let mut message = String::new();
    for mark in marks {
        let found = troubles(&mark.since());
        if found.is_empty() {
            continue;
        }
        message.push_str(&format!("{} ({}) shows:\n", mark.source, mark.path.display()));
        for trouble in found.iter().take(20) {
            message.push_str(&format!("  [{}] {}\n", trouble.kind, trouble.line));
        }
    }
    (!message.is_empty()).then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the kernel (a guest's serial console), Go (a shim's stderr in containerd's
    /// log) and Rust (the Kata agent) print them.
    #[test]
    fn kernel_and_runtime_troubles_are_found_and_ordinary_errors_are_not() {
        let text = "\
[   12.345678] Kernel panic - not syncing: sysrq triggered crash
[    3.100000] Out of memory: Killed process 412 (stress) total-vm:1048576kB
[   61.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:33]
[  242.000000] INFO: task containerd:801 blocked for more than 120 seconds.
[    9.000000] Oops: 0000 [#1] PREEMPT SMP NOPTI
panic: runtime error: invalid memory address or nil pointer dereference
time=\"2026-12-03T10:00:00Z\" level=info msg=\"panic: send on closed channel\" runtime=io.containerd.kata.v2
time=\"2026-12-03T10:00:00Z\" level=error msg=\"vmconsole: thread 'main' panicked at src/main.rs:10:5\"
time=\"2026-12-03T10:00:00Z\" level=error msg=\"RunPodSandbox failed: no runtime for \\\"panic: x\\\" is configured\"
time=\"2026-12-03T10:00:00Z\" level=info msg=\"the row expects a fatal error: later\"
SIGABRT: abort
time=\"2026-12-03T10:00:00Z\" level=warning msg=\"cleanup: signal SIGABRT: abort was sent\"
";
        let kinds: Vec<&str> = troubles(text).iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                "kernel panic",
                "OOM kill",
                "soft lockup",
                "hung task",
                "kernel oops",
                "Go panic",
                "Go panic",
                "Rust panic",
                "Go fatal signal"
            ]
        );
    }

    #[test]
    fn only_what_was_written_after_the_mark_is_scanned() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        std::fs::write(&log, "[ 1.0] Kernel panic - not syncing: an earlier row's\n").unwrap();
        let mark = LogMark::at_end("VM console", &log);
        assert_eq!(report_since(std::slice::from_ref(&mark)), None);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, b"[ 2.0] Out of memory: Killed process 7 (sh)\n")
            })
            .unwrap();
        let message = report_since(&[mark]).unwrap();
        assert!(
            message.contains("[OOM kill] [ 2.0] Out of memory: Killed process 7 (sh)"),
            "{message}"
        );
        assert!(!message.contains("earlier row"), "{message}");
    }
}
