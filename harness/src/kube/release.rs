//! The upstream Kubernetes release as a bundle source: the binaries of one pinned release tag
//! from `<dl.k8s.io>/release/<version>/bin/linux/<arch>/<binary>` (`<dl.k8s.io>`:
//! [`crate::artifacts::upstream::k8s_url`], `https://dl.k8s.io` unless `KATA_HARNESS_K8S_URL`
//! names a mirror), each verified against the sha256 upstream publishes beside it
//! (`<binary>.sha256`, fetched first) and downloaded once into the cache.
//!
//! Why no lock file, unlike Kata's (`kata-release.lock`): dl.k8s.io publishes a digest for
//! every binary, so a fresh clone verifies its first download instead of trusting it and
//! recording what came; Kata publishes none, so only there does the checkout pin digests.
//!
//! Invariant: a file becomes visible under `bin/` only after its digest matched the published
//! one, and only by rename; a missing or malformed `.sha256`, or a binary that differs from
//! it, leaves nothing installed and nothing in the cache. Cache layout under
//! `<cache>/k8s/release/`:
//!
//! * `blobs/sha256/<hex>`: verified binaries, content-addressed (the name is the digest of
//!   the content; a blob is never rewritten);
//! * `<version>-<arch>/bin/<binary>`: symlinks to those blobs; the directory is a [`Bundle`];
//! * `tmp/`: downloads in progress (`*.part`), deleted when a download fails or is refused;
//! * `.lock`: held (flock) by the one process fetching, so concurrent runs do not race.
//!
//! A second run finds every symlink pointing at a blob and asks the network nothing.
//!
//! The download machinery (curl, part files, the cache flock, reading a published `.sha256`)
//! is [`crate::artifacts::fetch`].

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;

use super::bundle::Bundle;
use super::KubeError;
use crate::artifacts::fetch::{self, is_sha256, FetchError, Limits, PartFile};
use crate::process::ProcessError;
use crate::profile::Version;
use crate::wait::WaitError;

/// Where the releases are below dl.k8s.io's base URL ([`crate::artifacts::upstream::k8s_url`]).
pub const RELEASES_PATH: &str = "release";

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

/// One file (kube-apiserver is about 115 MB) at a slow but moving 100 kB/s: 20 minutes. The
/// `.sha256` beside it gets the same limits (a dead server fails it at the stall time).
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(20 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("bad Kubernetes release {text:?}: expected a release tag like v1.20.2")]
    Version { text: String },
    #[error("no upstream Kubernetes binaries for this machine's architecture {arch}")]
    Arch { arch: String },
    #[error("failed to download {binary} from {url}: {reason}")]
    Download {
        binary: String,
        url: String,
        reason: String,
        /// Boxed: the largest cause, and every `ReleaseError` would carry its size.
        #[source]
        source: Box<ProcessError>,
    },
    #[error("refused {binary}: {url} is not a published sha256 ({problem}); nothing was downloaded")]
    Checksum {
        binary: String,
        /// The `.sha256` file's URL.
        url: String,
        problem: String,
    },
    #[error(
        "refused {binary} from {url}: sha256 {actual}, but {published} says {expected}; the \
         download was deleted"
    )]
    Digest {
        binary: String,
        url: String,
        expected: String,
        actual: String,
        /// The `.sha256` file's URL.
        published: String,
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

/// One pinned upstream release, and where it is fetched from and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release tag, `v1.20.2`.
    pub version: String,
    /// Kubernetes' name for the architecture: `amd64`, `arm64`, ...
    pub arch: String,
    /// dl.k8s.io's base URL, without the trailing slash: `https://dl.k8s.io`, or a mirror of
    /// its layout ([`crate::artifacts::upstream::k8s_url`]).
    pub k8s_url: String,
    /// `<cache>/k8s/release`.
    pub cache: PathBuf,
    /// Per download (a binary or its `.sha256`); the stall time comes from
    /// [`fetch::STALL_ENV`].
    pub limits: Limits,
}

impl Release {
    /// The release `version` for this machine, with dl.k8s.io's base URL from the environment
    /// (else `https://dl.k8s.io`) and the harness cache.
    pub fn new(version: &str) -> Result<Release, ReleaseError> {
        Ok(Release {
            version: normalise_version(version)?,
            arch: kube_arch(std::env::consts::ARCH)?.into(),
            k8s_url: crate::artifacts::upstream::k8s_url(),
            cache: crate::profile::cache_dir().join("k8s/release"),
            limits: Limits::from_env(DOWNLOAD_DEADLINE),
        })
    }

    /// `https://dl.k8s.io/release/v1.20.2/bin/linux/amd64/kubeadm`
    pub fn url(&self, binary: &str) -> String {
        format!(
            "{}/{RELEASES_PATH}/{}/bin/linux/{}/{binary}",
            self.k8s_url, self.version, self.arch
        )
    }

    /// The digest upstream publishes for `binary`: its URL with `.sha256`.
    pub fn sha256_url(&self, binary: &str) -> String {
        format!("{}.sha256", self.url(binary))
    }

    /// The bundle directory: `<cache>/k8s/release/v1.20.2-amd64`.
    pub fn dir(&self) -> PathBuf {
        self.cache.join(format!("{}-{}", self.version, self.arch))
    }

    fn blobs(&self) -> PathBuf {
        self.cache.join("blobs/sha256")
    }

    /// The cached bundle, without downloading (for `list`): every binary in place.
    pub fn open_cached(&self) -> Result<Bundle, KubeError> {
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|b| linked_digest(&self.dir().join("bin").join(b), &self.blobs()).is_none())
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

    /// Downloads what is not cached yet, each file verified against its published sha256, and
    /// opens the bundle.
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
        let label = format!("k8s release {}/{}", self.version, self.arch);
        let mut downloaded = 0;
        for (index, binary) in BINARIES.iter().enumerate() {
            let link = bin.join(binary);
            // Cached: the link names a blob, stored under its digest only once verified.
            if linked_digest(&link, &blobs).is_some() {
                continue;
            }
            let published = self.published_sha256(binary, &tmp)?;
            if blobs.join(&published).is_file() {
                link_blob(&link, &published)?;
                eprintln!("{label}: {binary} from the cache, sha256 {published} as published");
                continue;
            }
            let url = self.url(binary);
            eprintln!(
                "{label}: downloading {binary} ({}/{}) from {url}",
                index + 1,
                BINARIES.len()
            );
            let part = PartFile(tmp.join(format!("{binary}.{}.part", std::process::id())));
            let started = Instant::now();
            fetch::download(binary, &url, part.path(), &self.limits)?;
            let actual = fetch::sha256_file(part.path())?;
            if actual != published {
                drop(part);
                return Err(ReleaseError::Digest {
                    binary: binary.to_string(),
                    url,
                    expected: published,
                    actual,
                    published: self.sha256_url(binary),
                });
            }
            let size = std::fs::metadata(&part.0).map(|m| m.len()).unwrap_or(0);
            std::fs::set_permissions(&part.0, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err(&part.0))?;
            let blob = blobs.join(&actual);
            std::fs::rename(&part.0, &blob).map_err(io_err(&blob))?;
            link_blob(&link, &actual)?;
            eprintln!(
                "{label}: {binary} {:.1} MiB in {:.1} s, sha256 {actual} as published",
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

    /// The digest upstream publishes beside `binary`, downloaded into `tmp` (and deleted).
    fn published_sha256(&self, binary: &str, tmp: &Path) -> Result<String, ReleaseError> {
        let url = self.sha256_url(binary);
        let part = PartFile(tmp.join(format!("{binary}.sha256.{}.part", std::process::id())));
        fetch::download(&format!("{binary}.sha256"), &url, part.path(), &self.limits)?;
        let bytes = std::fs::read(part.path()).map_err(io_err(part.path()))?;
        fetch::published_sha256(&bytes, binary).map_err(|problem| ReleaseError::Checksum {
            binary: binary.to_owned(),
            url,
            problem,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

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
            cache: "/cache/k8s/release".into(),
            limits: Limits::from_env(DOWNLOAD_DEADLINE),
        };
        assert_eq!(
            release.url("kubeadm"),
            "https://dl.k8s.io/release/v1.20.2/bin/linux/amd64/kubeadm"
        );
        assert_eq!(
            release.sha256_url("kubeadm"),
            "https://dl.k8s.io/release/v1.20.2/bin/linux/amd64/kubeadm.sha256"
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
