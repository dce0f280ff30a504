//! The upstream Kubernetes release as a bundle source: the binaries of one pinned release tag
//! from `<dl.k8s.io>/release/<version>/bin/linux/<arch>/<binary>` (`<dl.k8s.io>`:
//! [`crate::artifacts::upstream::k8s_url`], `https://dl.k8s.io` unless `KATA_HARNESS_K8S_URL`
//! names a mirror), downloaded once into
//! the cache and verified by the sha256 in a lock file checked into the repository
//! (`k8s-release.lock`), which records each file's digest on its first download.
//!
//! Invariant: a file becomes visible under `bin/` only after its digest was checked against
//! the lock (or recorded in it), and only by rename. Cache layout under
//! `<cache>/k8s/release/`:
//!
//! * `blobs/sha256/<hex>`: verified binaries, content-addressed (the name is the digest of
//!   the content; a blob is never rewritten);
//! * `<version>-<arch>/bin/<binary>`: symlinks to those blobs; the directory is a [`Bundle`];
//! * `tmp/`: downloads in progress (`*.part`), deleted when a download fails or is refused;
//! * `.lock`: held (flock) by the one process fetching, so concurrent runs do not race.
//!
//! A second run finds every symlink pointing at the blob the lock names and downloads nothing.
//!
//! The download machinery (curl, part files, the cache flock) is [`crate::artifacts::fetch`];
//! the lock file's format is [`crate::artifacts::lock`].

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;

use super::bundle::Bundle;
use super::KubeError;
use crate::artifacts::fetch::{self, is_sha256, FetchError, Limits, PartFile};
use crate::artifacts::lock::{self, LockError, LockKind};
use crate::process::ProcessError;
use crate::profile::Version;
use crate::wait::WaitError;

/// Where the releases are below dl.k8s.io's base URL ([`crate::artifacts::upstream::k8s_url`]).
pub const RELEASES_PATH: &str = "release";
/// Overrides the lock file (default: `k8s-release.lock` at the repository root).
pub const LOCK_ENV: &str = "KATA_HARNESS_K8S_RELEASE_LOCK";
pub const LOCK_FILE: &str = "k8s-release.lock";

/// What a release bundle holds. Upstream publishes no `pause` binary: the pause image is then
/// busybox-based (see [`crate::images::pause`]).
pub const BINARIES: [&str; 7] = [
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

/// One file (kube-apiserver is about 115 MB) at a slow but moving 100 kB/s: 20 minutes.
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(20 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("bad Kubernetes release {text:?}: expected a release tag like v1.20.2")]
    Version { text: String },
    #[error("no upstream Kubernetes binaries for this machine's architecture {arch}")]
    Arch { arch: String },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("failed to download {binary} from {url}: {reason}")]
    Download {
        binary: String,
        url: String,
        reason: String,
        /// Boxed: the largest cause, and every `ReleaseError` would carry its size.
        #[source]
        source: Box<ProcessError>,
    },
    #[error(
        "refused {binary} from {url}: sha256 {actual}, but {lock} expects {expected}; the download \
         was deleted (if upstream really changed the file, delete its line from the lock to record \
         the new digest)"
    )]
    Digest {
        binary: String,
        url: String,
        expected: String,
        actual: String,
        lock: PathBuf,
    },
    #[error("Kubernetes release {version} ({arch}) is not in the cache yet ({missing}); `kata-harness run --k8s-release {version}` downloads it")]
    NotFetched {
        version: String,
        arch: String,
        missing: String,
    },
    #[error("the binaries from {url} report Kubernetes v{found}, not {version}")]
    WrongVersion {
        version: String,
        found: Version,
        url: String,
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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Mapped variant by variant, not wrapped: callers match on `ReleaseError::Download`, and the
/// messages are the ones this module always had.
impl From<FetchError> for ReleaseError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Download {
                name,
                url,
                reason,
                source,
            } => ReleaseError::Download {
                binary: name,
                url,
                reason,
                source,
            },
            FetchError::Busy { dir, source } => ReleaseError::Busy { dir, source },
            FetchError::Io { path, source } => ReleaseError::Io { path, source },
        }
    }
}

/// One pinned upstream release, and where it is fetched from, cached and locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release tag, `v1.20.2`.
    pub version: String,
    /// Kubernetes' name for the architecture: `amd64`, `arm64`, ...
    pub arch: String,
    /// dl.k8s.io's base URL, without the trailing slash: `https://dl.k8s.io`, or a mirror of
    /// its layout ([`crate::artifacts::upstream::k8s_url`]).
    pub k8s_url: String,
    pub lock: PathBuf,
    /// `<cache>/k8s/release`.
    pub cache: PathBuf,
}

impl Release {
    /// The release `version` for this machine, with dl.k8s.io's base URL and the lock file
    /// from the environment (else `https://dl.k8s.io` and `<repo>/k8s-release.lock`) and the
    /// harness cache.
    pub fn new(version: &str, repo: &Path) -> Result<Release, ReleaseError> {
        let lock = std::env::var_os(LOCK_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join(LOCK_FILE));
        Ok(Release {
            version: normalise_version(version)?,
            arch: kube_arch(std::env::consts::ARCH)?.into(),
            k8s_url: crate::artifacts::upstream::k8s_url(),
            lock,
            cache: crate::profile::cache_dir().join("k8s/release"),
        })
    }

    /// `https://dl.k8s.io/release/v1.20.2/bin/linux/amd64/kubeadm`
    pub fn url(&self, binary: &str) -> String {
        format!(
            "{}/{RELEASES_PATH}/{}/bin/linux/{}/{binary}",
            self.k8s_url, self.version, self.arch
        )
    }

    /// The bundle directory: `<cache>/k8s/release/v1.20.2-amd64`.
    pub fn dir(&self) -> PathBuf {
        self.cache.join(format!("{}-{}", self.version, self.arch))
    }

    fn blobs(&self) -> PathBuf {
        self.cache.join("blobs/sha256")
    }

    /// The cached bundle, without downloading (for `list`): every binary in place and, where
    /// the lock names a digest, the one the lock names.
    pub fn open_cached(&self) -> Result<Bundle, KubeError> {
        let lock = LockFile::load(&self.lock).map_err(ReleaseError::from)?;
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|b| {
                let linked = linked_digest(&self.dir().join("bin").join(b), &self.blobs());
                match (linked, lock.get(&self.version, &self.arch, b)) {
                    (Some(linked), Some(locked)) => linked != locked,
                    (linked, _) => linked.is_none(),
                }
            })
            .collect();
        if !missing.is_empty() {
            return Err(ReleaseError::NotFetched {
                version: self.version.clone(),
                arch: self.arch.clone(),
                missing: missing.join(", "),
            }
            .into());
        }
        self.open()
    }

    /// Downloads what is not cached yet, verifies it against the lock (recording the digests
    /// the lock does not have), and opens the bundle.
    pub fn fetch(&self) -> Result<Bundle, KubeError> {
        self.fetch_binaries()?;
        self.open()
    }

    /// Every binary of [`BINARIES`] verified into the blob store and linked under `bin/`.
    fn fetch_binaries(&self) -> Result<(), ReleaseError> {
        let blobs = self.blobs();
        let bin = self.dir().join("bin");
        let tmp = self.cache.join("tmp");
        for dir in [&blobs, &bin] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let _held = self.lock_cache()?;
        // Holding the cache lock, nothing else downloads: what is in tmp/ was left by a
        // process that died mid-download.
        fetch::clear_tmp(&tmp)?;
        let mut lock = LockFile::load(&self.lock)?;
        let label = format!("k8s release {}/{}", self.version, self.arch);
        let mut downloaded = 0;
        for (index, binary) in BINARIES.iter().enumerate() {
            let link = bin.join(binary);
            let expected = lock.get(&self.version, &self.arch, binary).map(str::to_owned);
            match (&expected, linked_digest(&link, &blobs)) {
                (Some(expected), Some(linked)) if *expected == linked => continue,
                (Some(expected), _) if blobs.join(expected).is_file() => {
                    link_blob(&link, expected)?;
                    continue;
                }
                (None, Some(linked)) => {
                    // Cached under another lock file: record it, after checking the blob.
                    let actual = fetch::sha256_file(&blobs.join(&linked))?;
                    if actual == linked {
                        lock.insert(&self.version, &self.arch, binary, &actual);
                        lock.save(&self.lock)?;
                        eprintln!(
                            "{label}: {binary} from the cache, sha256 {actual} recorded in {}",
                            self.lock.display()
                        );
                        continue;
                    }
                    let _ = std::fs::remove_file(&link);
                    let _ = std::fs::remove_file(blobs.join(&linked));
                }
                _ => {}
            }
            let url = self.url(binary);
            eprintln!(
                "{label}: downloading {binary} ({}/{}) from {url}",
                index + 1,
                BINARIES.len()
            );
            let part = PartFile(tmp.join(format!("{binary}.{}.part", std::process::id())));
            let started = Instant::now();
            fetch::download(binary, &url, part.path(), &Limits::from_env(DOWNLOAD_DEADLINE))?;
            let actual = fetch::sha256_file(part.path())?;
            if let Some(expected) = &expected {
                if *expected != actual {
                    drop(part);
                    return Err(ReleaseError::Digest {
                        binary: binary.to_string(),
                        url,
                        expected: expected.clone(),
                        actual,
                        lock: self.lock.clone(),
                    });
                }
            }
            let size = std::fs::metadata(&part.0).map(|m| m.len()).unwrap_or(0);
            std::fs::set_permissions(&part.0, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err(&part.0))?;
            let blob = blobs.join(&actual);
            std::fs::rename(&part.0, &blob).map_err(io_err(&blob))?;
            link_blob(&link, &actual)?;
            let verdict = if expected.is_some() {
                format!("verified against {}", self.lock.display())
            } else {
                lock.insert(&self.version, &self.arch, binary, &actual);
                lock.save(&self.lock)?;
                format!("recorded in {}", self.lock.display())
            };
            eprintln!(
                "{label}: {binary} {:.1} MiB in {:.1} s, sha256 {actual} {verdict}",
                size as f64 / (1024.0 * 1024.0),
                started.elapsed().as_secs_f64()
            );
            downloaded += 1;
        }
        if downloaded > 0 {
            eprintln!(
                "{label}: {downloaded} files downloaded into {}",
                self.dir().display()
            );
        }
        Ok(())
    }

    /// Opens the bundle and checks that the binaries are the release they claim to be.
    fn open(&self) -> Result<Bundle, KubeError> {
        let bundle = Bundle::open(&self.dir())?;
        let wanted: Version = self.version.parse().map_err(|_| ReleaseError::Version {
            text: self.version.clone(),
        })?;
        if bundle.version != wanted {
            return Err(ReleaseError::WrongVersion {
                version: self.version.clone(),
                found: bundle.version,
                url: self.url("kubelet"),
            }
            .into());
        }
        Ok(bundle)
    }

    /// One fetching process per cache: an exclusive flock on `<cache>/k8s/release/.lock`.
    fn lock_cache(&self) -> Result<Flock<File>, ReleaseError> {
        Ok(fetch::lock_cache(&self.cache)?)
    }
}

/// The digest a cached `bin/<binary>` symlink points at, if its blob exists.
fn linked_digest(link: &Path, blobs: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    let name = target.file_name()?.to_str()?;
    (is_sha256(name) && blobs.join(name).is_file()).then(|| name.to_owned())
}

/// Points `bin/<binary>` at `blobs/sha256/<digest>` (relative, so the cache can move),
/// replacing whatever was there in one rename.
fn link_blob(link: &Path, digest: &str) -> Result<(), ReleaseError> {
    let name = link.file_name().expect("bin/<binary>").to_string_lossy();
    let next = link.with_file_name(format!(".{name}.new"));
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(format!("../../blobs/sha256/{digest}"), &next).map_err(io_err(&next))?;
    std::fs::rename(&next, link).map_err(io_err(link))
}

/// `1.20.2` or `v1.20.2` -> `v1.20.2`; the tag goes into a URL and a path, so only the
/// characters of release tags (`v1.33.0-rc.1`) pass.
pub fn normalise_version(text: &str) -> Result<String, ReleaseError> {
    let bad = || ReleaseError::Version {
        text: text.to_owned(),
    };
    let text = text.trim();
    let tag = if text.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{text}")
    } else {
        text.to_owned()
    };
    let body = tag.strip_prefix('v').ok_or_else(bad)?;
    let plain = body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    let core = body.split(['-', '+']).next().unwrap_or("");
    if !plain || core.split('.').count() != 3 || core.split('.').any(|p| p.parse::<u32>().is_err()) {
        return Err(bad());
    }
    Ok(tag)
}

/// Rust's architecture name -> the one in Kubernetes' release paths.
pub fn kube_arch(rust_arch: &str) -> Result<&'static str, ReleaseError> {
    match rust_arch {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        "s390x" => Ok("s390x"),
        "powerpc64" if cfg!(target_endian = "little") => Ok("ppc64le"),
        other => Err(ReleaseError::Arch { arch: other.into() }),
    }
}

/// `k8s-release.lock`: one line per file, `<version> <arch> <binary> <sha256>`; `#` comments.
pub type LockFile = lock::LockFile<K8sLock>;

/// What `k8s-release.lock` records: release tags and [`BINARIES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct K8sLock;

impl LockKind for K8sLock {
    const HEADER: &'static str = "\
# sha256 of the upstream Kubernetes release binaries `kata-harness --k8s-release <version>` uses
# (https://dl.k8s.io/release/<version>/bin/linux/<arch>/<binary>). The harness records a file's
# digest here on its first download and refuses any later download that differs. Delete a line
# only to record a new file you trust. Kept sorted by the harness; comments are not kept.
# <version> <arch> <binary> <sha256>
";
    const NAME: &'static str = "binary";

    fn check_version(version: &str) -> Result<(), String> {
        match normalise_version(version) {
            Ok(tag) if tag == version => Ok(()),
            _ => Err("a release tag like v1.20.2".into()),
        }
    }

    fn check_name(_version: &str, name: &str) -> Result<(), String> {
        if BINARIES.contains(&name) {
            Ok(())
        } else {
            Err(format!("one of {}", BINARIES.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn parse(text: &str) -> Result<LockFile, LockError> {
        LockFile::parse(text, Path::new("k8s-release.lock"))
    }

    #[test]
    fn lock_round_trips_sorted_with_its_header() {
        let mut lock = LockFile::default();
        lock.insert("v1.20.2", "amd64", "kubelet", B);
        lock.insert("v1.20.2", "amd64", "kubeadm", A);
        let text = lock.render();
        assert!(text.starts_with("# sha256 of the upstream Kubernetes"), "{text}");
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
            assert!(
                err.starts_with("bad release lock file k8s-release.lock, "),
                "{err}"
            );
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_checked_in_lock_parses_and_is_in_canonical_form() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(LOCK_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let lock = LockFile::parse(&text, &path).unwrap();
        assert_eq!(
            lock.render(),
            text,
            "{}: header or order differs from render()",
            path.display()
        );
    }

    #[test]
    fn a_missing_lock_file_is_an_empty_lock_and_save_writes_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k8s-release.lock");
        assert!(LockFile::load(&path).unwrap().is_empty());
        let mut lock = LockFile::default();
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
            vec![std::ffi::OsString::from("k8s-release.lock")],
            "no temp file left"
        );
    }

    #[test]
    fn release_tags_are_normalised_and_checked() {
        assert_eq!(normalise_version("v1.20.2").unwrap(), "v1.20.2");
        assert_eq!(normalise_version("1.20.2").unwrap(), "v1.20.2");
        assert_eq!(normalise_version("v1.33.0-rc.1").unwrap(), "v1.33.0-rc.1");
        assert_eq!(normalise_version(" v1.20.2\n").unwrap(), "v1.20.2");
        for bad in ["v1.20", "latest", "v1.20.2/../../x", "", "v1.x.2", "v1.20.2.1"] {
            assert!(normalise_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn architectures_map_to_kubernetes_names() {
        assert_eq!(kube_arch("x86_64").unwrap(), "amd64");
        assert_eq!(kube_arch("aarch64").unwrap(), "arm64");
        assert!(kube_arch("mips").unwrap_err().to_string().contains("mips"));
    }

    #[test]
    fn urls_and_cache_dirs_follow_the_release() {
        let release = Release {
            version: "v1.20.2".into(),
            arch: "amd64".into(),
            k8s_url: crate::artifacts::upstream::DEFAULT_K8S_URL.into(),
            lock: LOCK_FILE.into(),
            cache: "/cache/k8s/release".into(),
        };
        assert_eq!(
            release.url("kubeadm"),
            "https://dl.k8s.io/release/v1.20.2/bin/linux/amd64/kubeadm"
        );
        assert_eq!(release.dir(), PathBuf::from("/cache/k8s/release/v1.20.2-amd64"));
    }

    #[test]
    fn a_symlink_counts_as_cached_only_with_its_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        let bin = dir.path().join("v1.20.2-amd64/bin");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let link = bin.join("kubeadm");
        link_blob(&link, A).unwrap();
        assert_eq!(linked_digest(&link, &blobs), None, "dangling");
        std::fs::write(blobs.join(A), "x").unwrap();
        assert_eq!(linked_digest(&link, &blobs).as_deref(), Some(A));
        link_blob(&link, B).unwrap();
        assert_eq!(linked_digest(&link, &blobs), None, "repointed at a missing blob");
    }
}
