//! A release lock file checked into the repository: one line per upstream file,
//! `<version> <arch> <name> <sha256>`, `#` comments. The harness records a file's digest on
//! its first download (upstream publishes none the harness could check instead) and refuses
//! any later download that differs.
//!
//! Invariant: a [`LockFile`] only holds lines its [`LockKind`] accepts, and [`LockFile::save`]
//! replaces the file whole, so a crash never leaves half a lock. What a version looks like,
//! what the third column names and the header text are the kind's (Kubernetes binaries, Kata
//! tarballs).

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
