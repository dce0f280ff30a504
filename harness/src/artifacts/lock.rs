//! A release lock file checked into the repository: one line per upstream file,
//! `<version> <arch> <name> <sha256>`, `#` comments. The harness records a file's digest on
//! its first download and refuses any later download that differs: for upstreams that publish
//! no checksums the harness could check instead (Kata's `kata-release.lock`; Kubernetes
//! releases are checked against the `.sha256` dl.k8s.io publishes, `kube::release`).
//!
//! Invariant: a [`LockFile`] only holds lines its [`LockKind`] accepts, and [`LockFile::save`]
//! replaces the file whole, so a crash never leaves half a lock. What a version looks like,
//! what the third column names and the header text are the kind's (Kata's tarballs).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::fetch::is_sha256;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("bad release lock file {path}, line {line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("failed to read the release lock file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write the release lock file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What one lock file records.
pub trait LockKind {
    /// The text above the entries: `#` lines, the last one naming the columns.
    const HEADER: &'static str;
    /// What the third column names (`binary`, `asset`), in syntax errors.
    const NAME: &'static str;
    /// `Err(what a version looks like)` for a version this lock does not record.
    fn check_version(version: &str) -> Result<(), String>;
    /// `Err(what names are allowed)` for a name that is not a file of `version`.
    fn check_name(version: &str, name: &str) -> Result<(), String>;
}

/// The parsed lock: `(version, arch, name) -> sha256`, rendered sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockFile<K> {
    entries: BTreeMap<(String, String, String), String>,
    kind: PhantomData<K>,
}

impl<K: LockKind> LockFile<K> {
    /// Parses the lock's text; errors name the file and the line.
    pub fn parse(text: &str, path: &Path) -> Result<Self, LockError> {
        let mut entries = BTreeMap::new();
        let mut first_line = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let bad = |reason: String| LockError::Syntax {
                path: path.to_owned(),
                line,
                reason,
            };
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            let [version, arch, name, digest] = fields[..] else {
                return Err(bad(format!(
                    "expected `<version> <arch> <{}> <sha256>`, found {} fields",
                    K::NAME,
                    fields.len()
                )));
            };
            K::check_version(version).map_err(|like| bad(format!("bad version {version:?} ({like})")))?;
            if arch.is_empty() || !arch.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                return Err(bad(format!("bad architecture {arch:?} (like amd64)")));
            }
            K::check_name(version, name)
                .map_err(|allowed| bad(format!("unknown {} {name:?} ({allowed})", K::NAME)))?;
            if !is_sha256(digest) {
                return Err(bad(format!("bad sha256 {digest:?} (64 lowercase hex digits)")));
            }
            let key = (version.to_owned(), arch.to_owned(), name.to_owned());
            if let Some(earlier) = first_line.insert(key.clone(), line) {
                return Err(bad(format!(
                    "{version} {arch} {name} is already on line {earlier}"
                )));
            }
            entries.insert(key, digest.to_owned());
        }
        Ok(LockFile {
            entries,
            kind: PhantomData,
        })
    }

    /// The lock's text: the header, then one sorted line per file.
    pub fn render(&self) -> String {
        let mut text = K::HEADER.to_owned();
        for ((version, arch, name), digest) in &self.entries {
            text.push_str(&format!("{version} {arch} {name} {digest}\n"));
        }
        text
    }

    /// Reads the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Self, LockError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::empty()),
            Err(source) => Err(LockError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the lock file whole (a temp file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let write_err = |source| LockError::Write {
            path: path.to_owned(),
            source,
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let next = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
        std::fs::write(&next, self.render()).map_err(write_err)?;
        std::fs::rename(&next, path).map_err(|e| {
            let _ = std::fs::remove_file(&next);
            write_err(e)
        })
    }
}

impl<K> LockFile<K> {
    /// No entries (`Default` needs `K: Default`; this does not).
    pub fn empty() -> Self {
        LockFile {
            entries: BTreeMap::new(),
            kind: PhantomData,
        }
    }

    pub fn get(&self, version: &str, arch: &str, name: &str) -> Option<&str> {
        self.entries
            .get(&(version.to_owned(), arch.to_owned(), name.to_owned()))
            .map(String::as_str)
    }

    pub fn insert(&mut self, version: &str, arch: &str, name: &str, digest: &str) {
        self.entries.insert(
            (version.to_owned(), arch.to_owned(), name.to_owned()),
            digest.to_owned(),
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    /// A lock of a few binaries by release tag, as the checks of a real kind go.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct Binaries;

    impl LockKind for Binaries {
        const HEADER: &'static str = "# a test lock\n# <version> <arch> <binary> <sha256>\n";
        const NAME: &'static str = "binary";

        fn check_version(version: &str) -> Result<(), String> {
            let numbers: Vec<&str> = version.strip_prefix('v').unwrap_or("").split('.').collect();
            if numbers.len() == 3 && numbers.iter().all(|n| n.parse::<u32>().is_ok()) {
                Ok(())
            } else {
                Err("a release tag like v1.20.2".into())
            }
        }

        fn check_name(_version: &str, name: &str) -> Result<(), String> {
            const NAMES: [&str; 4] = ["kubeadm", "kubelet", "kubectl", "kube-proxy"];
            if NAMES.contains(&name) {
                Ok(())
            } else {
                Err(format!("one of {}", NAMES.join(", ")))
            }
        }
    }

    fn parse(text: &str) -> Result<LockFile<Binaries>, LockError> {
        LockFile::parse(text, Path::new("test.lock"))
    }

    #[test]
    fn lock_round_trips_sorted_with_its_header() {
        let mut lock = LockFile::<Binaries>::default();
        lock.insert("v1.20.2", "amd64", "kubelet", B);
        lock.insert("v1.20.2", "amd64", "kubeadm", A);
        let text = lock.render();
        assert!(text.starts_with(Binaries::HEADER), "{text}");
        assert!(
            text.ends_with(&format!("v1.20.2 amd64 kubeadm {A}\nv1.20.2 amd64 kubelet {B}\n")),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), lock);
        assert_eq!(lock.get("v1.20.2", "amd64", "kubelet"), Some(B));
        assert_eq!(lock.get("v1.20.2", "arm64", "kubelet"), None);
    }

    #[test]
    fn lock_accepts_comments_blank_lines_and_extra_spaces() {
        let lock = parse(&format!("# comment\n\n  v1.21.0   arm64\tkube-proxy  {A}  \n")).unwrap();
        assert_eq!(lock.len(), 1);
        assert_eq!(lock.get("v1.21.0", "arm64", "kube-proxy"), Some(A));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn lock_errors_name_the_file_line_and_problem() {
        let cases = [
            (
                "v1.20.2 amd64 kubeadm\n".to_string(),
                "line 1: expected `<version> <arch> <binary> <sha256>`, found 3",
            ),
            (
                format!("# x\nv1.20.2 amd64 kubeadmm {A}\n"),
                "line 2: unknown binary \"kubeadmm\"",
            ),
            (
                format!("v1.20.2 amd64 kubeadm {}\n", &A[..63]),
                "line 1: bad sha256",
            ),
            (
                format!("v1.20.2 amd64 kubeadm {}\n", A.to_uppercase()),
                "line 1: bad sha256",
            ),
            (
                format!("1.20.2 amd64 kubeadm {A}\n"),
                "line 1: bad version \"1.20.2\"",
            ),
            (format!("v1.20 amd64 kubeadm {A}\n"), "line 1: bad version"),
            (format!("v1.20.2 AMD64 kubeadm {A}\n"), "line 1: bad architecture"),
            (
                format!("v1.20.2 amd64 kubeadm {A}\nv1.20.2 amd64 kubeadm {B}\n"),
                "line 2: v1.20.2 amd64 kubeadm is already on line 1",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.starts_with("bad release lock file test.lock, "), "{err}");
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_missing_lock_file_is_an_empty_lock_and_save_writes_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.lock");
        assert!(LockFile::<Binaries>::load(&path).unwrap().is_empty());
        let mut lock = LockFile::<Binaries>::default();
        lock.insert("v1.20.2", "amd64", "kubectl", A);
        lock.save(&path).unwrap();
        assert_eq!(LockFile::load(&path).unwrap(), lock);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("test.lock")],
            "no temp file left"
        );
    }
}
