//! Downloading pinned upstream files into the harness cache: one curl transfer per file under
//! a connect timeout, stall detection and a deadline, into a part file that is deleted unless
//! the caller renames it into place; the sha256 of what arrived, and the digest a published
//! `.sha256` file holds; and one exclusive flock per
//! cache so that concurrent runs do not race. Used by the Kubernetes release
//! (`kube::release`) and the Kata release ([`super::kata_release`]); what is
//! verified against what, and where a file becomes visible, is theirs to decide.
//!
//! Why Debian's curl and not an HTTP crate: it needs no new dependency (hyper is in the tree
//! only behind kube and tonic, without a public client we could use), it is on every Debian
//! node the harness provisions, it handles HTTPS, redirects (dl.k8s.io and GitHub releases
//! redirect to their CDNs), proxies from the environment and stalled transfers
//! (`--speed-time`) exactly as users' own `curl` would; it runs through [`crate::process`]
//! like every other child, under a deadline, and its exit code tells "unreachable" from "not
//! found".

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use sha2::{Digest, Sha256};

use crate::process::{self, ProcessError};
use crate::wait::WaitError;

/// Overrides [`STALL_TIME`] in whole seconds (tests of a stalled server take seconds, not a
/// minute).
pub const STALL_ENV: &str = "KATA_HARNESS_DOWNLOAD_STALL_SECONDS";

/// Connecting is quick or never: a closed port or an unroutable address fails here.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A transfer slower than this many bytes per second for [`Limits::stall`] is given up.
pub const STALL_BYTES_PER_SECOND: u32 = 1024;
pub const STALL_TIME: Duration = Duration::from_secs(60);
/// Another harness downloading into the same cache (a whole release, file by file).
pub const CACHE_LOCK_DEADLINE: Duration = Duration::from_secs(60 * 60);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("failed to download {name} from {url}: {reason}")]
    Download {
        name: String,
        url: String,
        reason: String,
        /// Boxed: the largest cause, and every error that carries a `FetchError` would carry
        /// its size.
        #[source]
        source: Box<ProcessError>,
    },
    #[error("failed to wait for another kata-harness downloading into {dir}")]
    Busy {
        dir: PathBuf,
        #[source]
        source: WaitError,
    },
    #[error("failed to prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How long one transfer may take, and how slow it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connect: Duration,
    /// Below [`STALL_BYTES_PER_SECOND`] for this long: given up.
    pub stall: Duration,
    /// The whole transfer.
    pub total: Duration,
}

impl Limits {
    /// The default connect timeout, the stall time from [`STALL_ENV`] (else [`STALL_TIME`]),
    /// and `total` for the whole transfer.
    pub fn from_env(total: Duration) -> Limits {
        Limits {
            connect: CONNECT_TIMEOUT,
            stall: stall_time(std::env::var(STALL_ENV).ok().as_deref()),
            total,
        }
    }
}

/// The stall time a [`STALL_ENV`] value asks for: whole seconds, at least one; anything else
/// (unset, empty, a typo) is the default, since a download must never run without one.
fn stall_time(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
        .unwrap_or(STALL_TIME)
}

/// A download in progress: deleted unless it was renamed into place first.
#[derive(Debug)]
pub struct PartFile(pub PathBuf);

impl PartFile {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// curl `url` into `part` within `limits`, with a progress line for `name` on stderr every
/// few seconds.
pub fn download(name: &str, url: &str, part: &Path, limits: &Limits) -> Result<(), FetchError> {
    let mut command = Command::new("curl");
    command
        .args(["--fail", "--location", "--silent", "--show-error"])
        .args(["--proto", "=http,https", "--proto-redir", "=http,https"])
        .arg("--connect-timeout")
        .arg(limits.connect.as_secs().to_string())
        .arg("--speed-limit")
        .arg(STALL_BYTES_PER_SECOND.to_string())
        .arg("--speed-time")
        .arg(limits.stall.as_secs().to_string())
        .arg("--max-time")
        .arg(limits.total.as_secs().to_string())
        .arg("--output")
        .arg(part)
        .arg(url);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = Instant::now();
            // A progress ticker, not synchronisation: it only reports the file's size.
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    let size = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
                    eprintln!(
                        "  {name}: {:.1} MiB after {:.0} s",
                        size as f64 / (1024.0 * 1024.0),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
        // curl's own --max-time ends it first; this deadline is the backstop.
        let outcome = process::run(command, limits.total + limits.connect + Duration::from_secs(30));
        done.store(true, Ordering::Relaxed);
        outcome
    });
    outcome.map(|_| ()).map_err(|source| FetchError::Download {
        name: name.into(),
        url: url.into(),
        reason: curl_reason(&source, limits),
        source: Box::new(source),
    })
}

/// What a curl failure means, from its exit code (`man curl`, EXIT CODES).
pub fn curl_reason(error: &ProcessError, limits: &Limits) -> String {
    let code = match error {
        ProcessError::Failed { status, .. } => status.code(),
        ProcessError::Spawn { .. } => return "curl is not installed (apt-get install curl)".into(),
        ProcessError::Deadline { deadline, .. } => return format!("no answer within {deadline:?}"),
        ProcessError::Log { .. } => None,
    };
    match code {
        Some(5 | 6) => "the host name does not resolve".into(),
        Some(7) => "unreachable (connection refused or no route)".into(),
        Some(22) => "the server answered with an HTTP error (no such release or file?)".into(),
        Some(28) => format!(
            "timed out (connect {:?}, stalled below {STALL_BYTES_PER_SECOND} B/s for {:?}, or longer \
             than {:?})",
            limits.connect, limits.stall, limits.total
        ),
        Some(35 | 51 | 53 | 54 | 58 | 59 | 60 | 77 | 80 | 83 | 90 | 91) => "TLS failed".into(),
        Some(18 | 52 | 55 | 56 | 92) => "the connection broke off".into(),
        Some(23) => "cannot write the download into the cache".into(),
        Some(code) => format!("curl exit code {code}"),
        None => "curl was killed".into(),
    }
}

pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok(hex::encode(hasher.finalize()))
}

/// 64 lowercase hex digits, as the lock files and blob names spell a sha256.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The digest in a published `.sha256` file of `name` (dl.k8s.io's, cri-tools', containerd's
/// `.sha256sum`): one line, 64 hex digits (returned lowercase), optionally followed by
/// whitespace and the file's name as `sha256sum` prints it (`  name`, ` *name`, or a path
/// ending in it). `Err(what is wrong)` otherwise, quoting the start of what was there.
pub fn published_sha256(text: &[u8], name: &str) -> Result<String, String> {
    const QUOTED: usize = 80;
    let quoted = || {
        let text = String::from_utf8_lossy(&text[..text.len().min(QUOTED)]).into_owned();
        format!("{text:?}{}", if text.len() >= QUOTED { "..." } else { "" })
    };
    let text = std::str::from_utf8(text).map_err(|_| format!("not text: {}", quoted()))?;
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let [line] = lines[..] else {
        return Err(format!("expected one line, found {}: {}", lines.len(), quoted()));
    };
    let mut words = line.split_whitespace();
    let digest = words.next().unwrap_or_default().to_ascii_lowercase();
    if !is_sha256(&digest) {
        return Err(format!("expected 64 hex digits first, found {}", quoted()));
    }
    match (words.next(), words.next()) {
        (None, _) => Ok(digest),
        (Some(file), None)
            if Path::new(file.trim_start_matches('*')).file_name() == Some(OsStr::new(name)) =>
        {
            Ok(digest)
        }
        _ => Err(format!("it names another file than {name}: {}", quoted())),
    }
}

/// One fetching process per cache: an exclusive flock on `<cache>/.lock`, waited for up to
/// [`CACHE_LOCK_DEADLINE`]. `cache` must exist.
pub fn lock_cache(cache: &Path) -> Result<Flock<File>, FetchError> {
    let path = cache.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut announced = false;
    crate::wait::flock_exclusive(
        &format!("the release cache lock {}", path.display()),
        file,
        CACHE_LOCK_DEADLINE,
        Duration::from_millis(200),
        || {
            if !announced {
                eprintln!(
                    "waiting for another kata-harness downloading into {}",
                    cache.display()
                );
                announced = true;
            }
        },
    )
    .map_err(|source| FetchError::Busy {
        dir: cache.to_owned(),
        source,
    })
}

/// Empties `tmp` (creating it): called holding the cache lock, when nothing else downloads,
/// so whatever is there was left by a process that died mid-download.
pub fn clear_tmp(tmp: &Path) -> Result<(), FetchError> {
    std::fs::create_dir_all(tmp).map_err(io_err(tmp))?;
    for entry in std::fs::read_dir(tmp).map_err(io_err(tmp))?.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            connect: CONNECT_TIMEOUT,
            stall: STALL_TIME,
            total: Duration::from_secs(20 * 60),
        }
    }

    #[test]
    fn curl_exit_codes_say_what_went_wrong() {
        use std::os::unix::process::ExitStatusExt;
        let failed = |code: i32| ProcessError::Failed {
            command: "curl".into(),
            status: std::process::ExitStatus::from_raw(code << 8),
            stderr_tail: String::new(),
        };
        assert!(curl_reason(&failed(7), &limits()).contains("unreachable"));
        assert!(curl_reason(&failed(22), &limits()).contains("HTTP error"));
        assert!(curl_reason(&failed(18), &limits()).contains("broke off"));
        assert_eq!(
            curl_reason(&failed(28), &limits()),
            "timed out (connect 15s, stalled below 1024 B/s for 60s, or longer than 1200s)"
        );
        let stalled = Limits {
            stall: Duration::from_secs(2),
            ..limits()
        };
        assert!(curl_reason(&failed(28), &stalled).contains("for 2s"));
    }

    #[test]
    fn the_stall_override_takes_whole_positive_seconds_only() {
        assert_eq!(stall_time(Some("3")), Duration::from_secs(3));
        assert_eq!(stall_time(Some(" 3\n")), Duration::from_secs(3));
        for ignored in [None, Some(""), Some("0"), Some("2s"), Some("-1")] {
            assert_eq!(stall_time(ignored), STALL_TIME, "{ignored:?}");
        }
    }

    #[test]
    fn a_part_file_is_deleted_on_drop_unless_renamed_first() {
        let dir = tempfile::tempdir().unwrap();
        let part = PartFile(dir.path().join("x.part"));
        std::fs::write(part.path(), "partial").unwrap();
        drop(part);
        assert!(!dir.path().join("x.part").exists());
        let part = PartFile(dir.path().join("y.part"));
        std::fs::write(part.path(), "whole").unwrap();
        std::fs::rename(part.path(), dir.path().join("y")).unwrap();
        drop(part);
        assert_eq!(std::fs::read_to_string(dir.path().join("y")).unwrap(), "whole");
    }

    #[test]
    fn sha256_of_a_file_is_lowercase_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        let digest = sha256_file(&path).unwrap();
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256(&digest));
        assert!(!is_sha256(&digest.to_uppercase()));
        assert!(!is_sha256(&digest[1..]));
    }

    #[test]
    fn a_published_sha256_is_the_digest_alone_or_with_its_files_name() {
        const D: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for text in [
            D.to_owned(),
            format!("{D}\n"),
            format!("{}\n", D.to_uppercase()),
            format!("{D}  kubeadm\n"),
            format!("{D} *kubeadm"),
            format!("{D}  bin/linux/amd64/kubeadm\n"),
            format!("\n{D}\n\n"),
        ] {
            assert_eq!(
                published_sha256(text.as_bytes(), "kubeadm").as_deref(),
                Ok(D),
                "{text:?}"
            );
        }
        let refused = |text: &str, problem: &str| {
            let error = published_sha256(text.as_bytes(), "kubeadm").unwrap_err();
            assert!(error.contains(problem), "{text:?}: {error}");
        };
        refused("", "expected one line, found 0");
        refused(&D[1..], "expected 64 hex digits first");
        refused(&format!("{}g", &D[1..]), "expected 64 hex digits first");
        refused(
            "<html>404 Not Found</html>",
            "expected 64 hex digits first, found \"<html>",
        );
        refused(&format!("{D}  kubelet"), "names another file than kubeadm");
        refused(&format!("{D}  kubeadm extra"), "names another file");
        refused(&format!("{D}\n{D}\n"), "expected one line, found 2");
        assert!(published_sha256(&[0xff, 0xfe], "kubeadm")
            .unwrap_err()
            .starts_with("not text"));
        let long = "x".repeat(500);
        let error = published_sha256(long.as_bytes(), "kubeadm").unwrap_err();
        assert!(error.len() < 200 && error.ends_with("..."), "{error}");
    }

    #[test]
    fn the_cache_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_cache(dir.path()).unwrap();
        let other = File::open(dir.path().join(".lock")).unwrap();
        let (other, _) = Flock::lock(other, nix::fcntl::FlockArg::LockExclusiveNonblock).expect_err("held");
        drop(held);
        Flock::lock(other, nix::fcntl::FlockArg::LockExclusiveNonblock).expect("released");
    }
}
