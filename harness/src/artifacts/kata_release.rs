//! An upstream Kata release as a Kata source: the kata-static tarball(s) of one release from
//! `<github>/kata-containers/kata-containers/releases/download/<version>/<asset>` (`<github>`:
//! [`super::upstream::github_url`], `https://github.com` unless `KATA_HARNESS_GITHUB_URL` names
//! a mirror),
//! downloaded once into the cache, verified by the sha256 in a lock file checked into the
//! repository (`kata-release.lock`; upstream publishes no checksums, so the lock records each
//! asset's digest on its first download), and unpacked into a [`KataLayout`].
//!
//! Invariant: a layout directory becomes visible only after every asset it is unpacked from
//! was checked against the lock (or recorded in it) and the unpacked tree opened as a complete
//! layout, and only by rename; any failure leaves nothing installed. Cache layout under
//! `<cache>/kata/release/`:
//!
//! * `blobs/sha256/<hex>`: verified tarballs, content-addressed (never rewritten);
//! * `<version>-amd64/`: the unpacked layout (`opt/kata/...`), with a `SOURCE` manifest naming
//!   the release and each asset's digest (how a later run knows what it was unpacked from);
//! * `tmp/`: downloads (`*.part`) and unpacks in progress, deleted on failure;
//! * `.lock`: held (flock) by the one process fetching.
//!
//! A second run finds the blobs the lock names and a layout unpacked from them, and downloads
//! and unpacks nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fetch::{self, FetchError, Limits, PartFile};
use super::kata::{KataError, KataLayout, KataSource};
use super::lock::LockError;
use crate::process::ProcessError;

mod assets;
pub use assets::{assets, normalise_version, KataLock, LockFile};

/// Where Kata's releases are below GitHub's base URL ([`super::upstream::github_url`]).
pub const RELEASES_PATH: &str = "kata-containers/kata-containers/releases/download";
/// Overrides the lock file (default: `kata-release.lock` at the repository root).
pub const LOCK_ENV: &str = "KATA_HARNESS_KATA_RELEASE_LOCK";
pub const LOCK_FILE: &str = "kata-release.lock";
/// The architecture of the tarballs: the harness's Kata nodes (KVM or the TCG wrapper) are
/// x86_64 only. Older assets spell it `x86_64`; the lock and the cache always say `amd64`.
pub const ARCH: &str = "amd64";

/// One kata-static tarball (a few hundred MB) at a slow but moving 100 kB/s; a dead transfer
/// ends much earlier, at the stall time.
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(90 * 60);
/// Unpacking one tarball (xz, the slow one, takes a minute or two on 2 cores).
const UNPACK_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// What the layout's manifest is called (the source build writes the same file).
const MANIFEST: &str = "SOURCE";

#[derive(Debug, thiserror::Error)]
pub enum KataReleaseError {
    #[error("bad Kata release {text:?}: expected a version like 3.30.0 (N.N.N, optionally -suffix)")]
    Version { text: String },
    #[error("Kata {version} has no kata-static release the harness can use (they start at 2.0.0)")]
    TooOld { version: String },
    #[error("upstream Kata releases are used for x86_64 only, not this machine's {arch}")]
    Arch { arch: String },
    /// Names the asset and the URL.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "refused {asset} from {url}: sha256 {actual}, but {lock} expects {expected}; the download \
         was deleted (if upstream really changed the file, delete its line from the lock to record \
         the new digest)"
    )]
    Digest {
        asset: String,
        url: String,
        expected: String,
        actual: String,
        lock: PathBuf,
    },
    #[error("failed to unpack {asset} from {url}")]
    Unpack {
        asset: String,
        url: String,
        #[source]
        source: ProcessError,
    },
    #[error("{asset} from {url} is not a kata-static tarball: it has no opt/kata/")]
    NotKataStatic { asset: String, url: String },
    #[error("the Kata release {version} from {url} is not a complete Kata layout")]
    Incomplete {
        version: String,
        url: String,
        #[source]
        source: KataError,
    },
    #[error(
        "Kata release {version} ({ARCH}) is not in the cache yet ({missing}); `kata-harness run \
         --kata-release {version}` downloads it"
    )]
    NotFetched { version: String, missing: String },
    #[error("failed to prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KataReleaseError + '_ {
    move |source| KataReleaseError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One pinned upstream release, and where it is fetched from, cached and locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KataRelease {
    /// `3.30.0` (Kata's tags have no `v`).
    pub version: String,
    /// GitHub's base URL, without the trailing slash: `https://github.com`, or a mirror of
    /// its layout ([`super::upstream::github_url`]).
    pub github_url: String,
    pub lock: PathBuf,
    /// `<cache>/kata/release`.
    pub cache: PathBuf,
    /// Per download; the stall time comes from [`fetch::STALL_ENV`].
    pub limits: Limits,
}

impl KataRelease {
    /// The release `version` (`3.30.0` or `v3.30.0`), with GitHub's base URL and the lock file
    /// from the environment (else `https://github.com` and `<repo>/kata-release.lock`) and the
    /// harness cache.
    pub fn new(version: &str, repo: &Path) -> Result<KataRelease, KataReleaseError> {
        let version = normalise_version(version)?;
        assets(&version)?;
        if std::env::consts::ARCH != "x86_64" {
            return Err(KataReleaseError::Arch {
                arch: std::env::consts::ARCH.into(),
            });
        }
        let lock = std::env::var_os(LOCK_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join(LOCK_FILE));
        Ok(KataRelease {
            version,
            github_url: super::upstream::github_url(),
            lock,
            cache: crate::profile::cache_dir().join("kata/release"),
            limits: Limits::from_env(DOWNLOAD_DEADLINE),
        })
    }

    /// What this release publishes, in unpacking order.
    pub fn assets(&self) -> Result<Vec<String>, KataReleaseError> {
        assets(&self.version)
    }

    /// `<github>/kata-containers/kata-containers/releases/download/3.30.0/kata-static-3.30.0-amd64.tar.zst`;
    /// `url("")` is the release's own.
    pub fn url(&self, asset: &str) -> String {
        format!("{}/{RELEASES_PATH}/{}/{asset}", self.github_url, self.version)
    }

    /// The layout directory: `<cache>/kata/release/3.30.0-amd64`.
    pub fn dir(&self) -> PathBuf {
        self.cache.join(format!("{}-{ARCH}", self.version))
    }

    fn blobs(&self) -> PathBuf {
        self.cache.join("blobs/sha256")
    }

    fn label(&self) -> String {
        format!("kata release {}/{ARCH}", self.version)
    }

    /// The cached layout, without downloading (for `list`): unpacked from every asset and,
    /// where the lock names a digest, from the one the lock names.
    pub fn open_cached(&self) -> Result<KataLayout, KataReleaseError> {
        let lock = LockFile::load(&self.lock)?;
        let installed = installed_digests(&self.dir());
        let missing: Vec<String> = self
            .assets()?
            .into_iter()
            .filter(
                |asset| match (installed.get(asset), lock.get(&self.version, ARCH, asset)) {
                    (Some(installed), Some(locked)) => installed != locked,
                    (installed, _) => installed.is_none(),
                },
            )
            .map(|asset| format!("{asset} from {}", self.url(&asset)))
            .collect();
        if !missing.is_empty() {
            return Err(KataReleaseError::NotFetched {
                version: self.version.clone(),
                missing: missing.join(", "),
            });
        }
        self.open(&self.dir())
    }

    /// Downloads what is not cached yet, verifies it against the lock, unpacks it into the
    /// layout directory if that was not unpacked from exactly these assets, records the new
    /// digests in the lock, and opens the layout.
    pub fn fetch(&self) -> Result<KataLayout, KataReleaseError> {
        let blobs = self.blobs();
        let tmp = self.cache.join("tmp");
        std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let _held = fetch::lock_cache(&self.cache)?;
        // Holding the cache lock, nothing else downloads: what is in tmp/ was left by a
        // process that died mid-download or mid-unpack.
        fetch::clear_tmp(&tmp)?;
        let mut lock = LockFile::load(&self.lock)?;
        let installed = installed_digests(&self.dir());
        let assets = self.assets()?;
        let mut verified = Vec::new();
        for (index, asset) in assets.iter().enumerate() {
            let expected = lock.get(&self.version, ARCH, asset).map(str::to_owned);
            verified.push(match expected {
                Some(expected) if blobs.join(&expected).is_file() => {
                    Verified::cached(&blobs, asset, &expected, false)
                }
                // Cached under another lock file: recorded here after checking the blob.
                None if installed.get(asset).is_some_and(|d| blob_holds(&blobs, d)) => {
                    Verified::cached(&blobs, asset, &installed[asset], true)
                }
                expected => self.download(asset, expected, (index + 1, assets.len()), &tmp)?,
            });
        }
        let wanted: BTreeMap<String, String> = verified
            .iter()
            .map(|v| (v.asset.clone(), v.digest.clone()))
            .collect();
        if installed != wanted || self.open(&self.dir()).is_err() {
            self.install(&verified, &blobs, &tmp)?;
        }
        let mut recorded = Vec::new();
        for v in verified.iter().filter(|v| v.record) {
            lock.insert(&self.version, ARCH, &v.asset, &v.digest);
            recorded.push(format!("{} sha256 {}", v.asset, v.digest));
        }
        if !recorded.is_empty() {
            lock.save(&self.lock)?;
            eprintln!(
                "{}: recorded in {}: {}",
                self.label(),
                self.lock.display(),
                recorded.join(", ")
            );
        }
        self.open(&self.dir())
    }

    /// One asset into a part file, checked against the lock's digest if it has one.
    fn download(
        &self,
        asset: &str,
        expected: Option<String>,
        (number, of): (usize, usize),
        tmp: &Path,
    ) -> Result<Verified, KataReleaseError> {
        let url = self.url(asset);
        eprintln!("{}: downloading {asset} ({number}/{of}) from {url}", self.label());
        let part = PartFile(tmp.join(format!("{asset}.{}.part", std::process::id())));
        let started = Instant::now();
        fetch::download(asset, &url, part.path(), &self.limits)?;
        let actual = fetch::sha256_file(part.path())?;
        if let Some(expected) = &expected {
            if *expected != actual {
                return Err(KataReleaseError::Digest {
                    asset: asset.into(),
                    url,
                    expected: expected.clone(),
                    actual,
                    lock: self.lock.clone(),
                });
            }
        }
        let size = std::fs::metadata(part.path()).map(|m| m.len()).unwrap_or(0);
        let verdict = match expected {
            Some(_) => format!("verified against {}", self.lock.display()),
            None => format!("new (recorded in {} once it unpacks)", self.lock.display()),
        };
        eprintln!(
            "{}: {asset} {:.1} MiB in {:.1} s, sha256 {actual} {verdict}",
            self.label(),
            size as f64 / (1024.0 * 1024.0),
            started.elapsed().as_secs_f64()
        );
        Ok(Verified {
            asset: asset.into(),
            path: part.path().to_owned(),
            digest: actual,
            record: expected.is_none(),
            part: Some(part),
        })
    }

    /// Unpacks every asset (in order: where two ship the same file, the later one's wins)
    /// into a temporary directory, checks that it is a complete layout, moves new downloads
    /// into the blob store, and renames the directory into place.
    fn install(&self, verified: &[Verified], blobs: &Path, tmp: &Path) -> Result<(), KataReleaseError> {
        let started = Instant::now();
        // Deleted on drop on any failure below; after the rename there is nothing left to delete.
        let staging = tempfile::Builder::new()
            .prefix("unpack.")
            .tempdir_in(tmp)
            .map_err(io_err(tmp))?;
        let mut manifest = format!("kata-version: {}\nsource: upstream release\n", self.version);
        for v in verified {
            let url = self.url(&v.asset);
            let compression = if v.asset.ends_with(".zst") {
                "--zstd"
            } else {
                "--xz"
            };
            let mut tar = std::process::Command::new("tar");
            tar.arg(compression)
                .arg("-xf")
                .arg(&v.path)
                .arg("-C")
                .arg(staging.path());
            crate::process::run(tar, UNPACK_DEADLINE).map_err(|source| KataReleaseError::Unpack {
                asset: v.asset.clone(),
                url: url.clone(),
                source,
            })?;
            if !staging.path().join("opt/kata").is_dir() {
                return Err(KataReleaseError::NotKataStatic {
                    asset: v.asset.clone(),
                    url,
                });
            }
            manifest.push_str(&format!("asset: {} {}\n", v.asset, v.digest));
        }
        let manifest_path = staging.path().join(MANIFEST);
        std::fs::write(&manifest_path, manifest).map_err(io_err(&manifest_path))?;
        // A temp dir is private (0700); the layout is read by containerd and its shims.
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(staging.path()))?;
        self.open(staging.path())?;
        for v in verified.iter().filter(|v| v.part.is_some()) {
            let blob = blobs.join(&v.digest);
            std::fs::rename(&v.path, &blob).map_err(io_err(&blob))?;
        }
        // The old layout (unpacked from other assets, or damaged) is moved aside first, so the
        // directory holds the old layout or the new one (for an instant neither), never a mix.
        let dir = self.dir();
        let old = tmp.join(format!("old.{}", std::process::id()));
        if std::fs::symlink_metadata(&dir).is_ok() {
            std::fs::rename(&dir, &old).map_err(io_err(&dir))?;
        }
        std::fs::rename(staging.path(), &dir).map_err(io_err(&dir))?;
        let _ = std::fs::remove_dir_all(&old);
        eprintln!(
            "{}: unpacked into {} in {:.1} s",
            self.label(),
            dir.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn open(&self, dir: &Path) -> Result<KataLayout, KataReleaseError> {
        KataLayout::open(dir, KataSource::Release(self.version.clone())).map_err(|source| {
            KataReleaseError::Incomplete {
                version: self.version.clone(),
                url: self.url(""),
                source,
            }
        })
    }
}

/// An asset whose content is known to be what the lock names (or what it will record).
struct Verified {
    asset: String,
    path: PathBuf,
    digest: String,
    /// Not in the lock yet: recorded once the layout is installed.
    record: bool,
    /// A fresh download, deleted unless it reaches the blob store.
    part: Option<PartFile>,
}

impl Verified {
    fn cached(blobs: &Path, asset: &str, digest: &str, record: bool) -> Verified {
        Verified {
            asset: asset.into(),
            path: blobs.join(digest),
            digest: digest.into(),
            record,
            part: None,
        }
    }
}

/// Whether the blob named `digest` exists and holds that content (read whole: only for a
/// blob the lock does not vouch for).
fn blob_holds(blobs: &Path, digest: &str) -> bool {
    fetch::sha256_file(&blobs.join(digest)).is_ok_and(|actual| actual == digest)
}

/// `asset -> sha256` from a layout's manifest; empty when there is no layout.
fn installed_digests(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.strip_prefix("asset: ")?.split_once(' '))
        .map(|(asset, digest)| (asset.to_owned(), digest.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn urls_and_dirs_follow_the_release() {
        let release = KataRelease {
            version: "3.30.0".into(),
            github_url: crate::artifacts::upstream::DEFAULT_GITHUB_URL.into(),
            lock: LOCK_FILE.into(),
            cache: "/cache/kata/release".into(),
            limits: Limits::from_env(DOWNLOAD_DEADLINE),
        };
        let asset = &release.assets().unwrap()[0];
        assert_eq!(
            release.url(asset),
            "https://github.com/kata-containers/kata-containers/releases/download/3.30.0/\
             kata-static-3.30.0-amd64.tar.zst"
        );
        assert_eq!(release.dir(), PathBuf::from("/cache/kata/release/3.30.0-amd64"));
    }

    #[test]
    fn the_manifest_names_what_a_layout_was_unpacked_from() {
        let dir = tempfile::tempdir().unwrap();
        assert!(installed_digests(dir.path()).is_empty(), "no layout");
        std::fs::write(
            dir.path().join(MANIFEST),
            format!("kata-version: 3.30.0\nsource: upstream release\nasset: a.tar.zst {A}\n"),
        )
        .unwrap();
        assert_eq!(
            installed_digests(dir.path()),
            BTreeMap::from([("a.tar.zst".to_owned(), A.to_owned())])
        );
    }
}
