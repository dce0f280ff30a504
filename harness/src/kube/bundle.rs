//! The offline Kubernetes bundle: a directory with `bin/{kubeadm,kubelet,kube-apiserver,
//! kube-controller-manager,kube-scheduler,kube-proxy}`, optionally `bin/pause` (without it the
//! pause image is busybox-based) and `bin/kubectl` (used only for the human-readable parts of
//! failure bundles).
//!
//! Three sources give one: the bundle `scripts/build-k8s-bundle` builds from Debian's source
//! package (the default), a user's directory, and an upstream release pinned by version
//! ([`super::release`], verified against the published `.sha256`s); see [`super::source::Source`].
//!
//! Invariant: the version is read from the binaries (`kubelet --version`), never assumed, so a
//! user's bundle of any version gets the config API and image names of *its* version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::KubeError;
use crate::process;
use crate::profile::Version;

/// A user's bundle directory (any version); the `--k8s-bundle` flag sets the same.
pub const BUNDLE_ENV: &str = "KATA_HARNESS_K8S_BUNDLE";
/// What `scripts/build-k8s-bundle` builds (from Debian bookworm's `kubernetes` source package).
pub const DEFAULT_VERSION: &str = "v1.20.2";
/// A cold build is about 10 minutes on 2 cores; a warm one under a minute.
const BUILD_DEADLINE: Duration = Duration::from_secs(40 * 60);

/// The binaries kubeadm, kubelet and the control-plane images need.
pub const REQUIRED: [&str; 6] = [
    "kubeadm",
    "kubelet",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];
/// The pause image's binary, when the bundle has one (the Debian-built bundle does; upstream
/// releases publish none, and the pause image is then busybox-based).
pub const PAUSE: &str = "pause";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bundle {
    pub dir: PathBuf,
    pub version: Version,
}

impl Bundle {
    /// Where `scripts/build-k8s-bundle` puts (and re-points) the bundle.
    pub fn default_dir() -> PathBuf {
        crate::profile::cache_dir().join("k8s").join(DEFAULT_VERSION)
    }

    /// The user's choice: the flag, else the environment variable.
    pub fn user_dir(flag: Option<&Path>) -> Option<PathBuf> {
        flag.map(Path::to_owned).or_else(|| {
            std::env::var_os(BUNDLE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// Opens a bundle directory: every required binary present, version from `kubelet --version`
    /// (`pause` and `kubectl` are optional).
    pub fn open(dir: &Path) -> Result<Bundle, KubeError> {
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|b| !dir.join("bin").join(b).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(KubeError::Bundle {
                dir: dir.to_owned(),
                reason: format!("missing bin/{}", missing.join(", bin/")),
            });
        }
        let mut command = Command::new(dir.join("bin/kubelet"));
        command.arg("--version");
        let out = process::run(command, Duration::from_secs(30)).map_err(|e| KubeError::Bundle {
            dir: dir.to_owned(),
            reason: format!("kubelet --version failed: {e}"),
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_kubelet_version(&text).ok_or_else(|| KubeError::Bundle {
            dir: dir.to_owned(),
            reason: format!(
                "cannot read a version from `kubelet --version`: {:?}",
                text.trim()
            ),
        })?;
        Ok(Bundle {
            dir: dir.to_owned(),
            version,
        })
    }

    /// The user's bundle if one is named; else the default one, built by
    /// `scripts/build-k8s-bundle` first if it is not there yet (cached outside the repo).
    pub fn ensure(repo: &Path, user: Option<&Path>) -> Result<Bundle, KubeError> {
        if let Some(dir) = user {
            return Bundle::open(dir);
        }
        if let Ok(bundle) = Bundle::open(&Bundle::default_dir()) {
            return Ok(bundle);
        }
        let script = repo.join("scripts/build-k8s-bundle");
        eprintln!(
            "building the offline Kubernetes bundle with {} (about 10 minutes cold; cached afterwards)",
            script.display()
        );
        let out = process::run_streaming_stderr(Command::new(&script), BUILD_DEADLINE).map_err(|source| {
            KubeError::BundleBuild {
                script: script.clone(),
                source,
            }
        })?;
        let printed = String::from_utf8_lossy(&out.stdout);
        let dir = printed
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| PathBuf::from(l.trim()))
            .unwrap_or_else(Bundle::default_dir);
        Bundle::open(&dir)
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// The bundle's pause binary, if it has one.
    pub fn pause(&self) -> Option<PathBuf> {
        Some(self.bin(PAUSE)).filter(|p| p.is_file())
    }

    /// `k8s-1.20`: the variant label.
    pub fn label(&self) -> String {
        format!("k8s-{}.{}", self.version.major, self.version.minor)
    }
}

/// `Kubernetes v1.20.2` -> 1.20.2
pub fn parse_kubelet_version(text: &str) -> Option<Version> {
    text.split_whitespace()
        .find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|w| w.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubelet_version() {
        assert_eq!(
            parse_kubelet_version("Kubernetes v1.20.2\n"),
            Some(Version::new(1, 20, 2))
        );
        assert_eq!(
            parse_kubelet_version("Kubernetes v1.33.0-rc.1"),
            Some(Version::new(1, 33, 0))
        );
        assert_eq!(parse_kubelet_version("nothing here"), None);
    }

    /// A stand-in bundle: shell scripts, kubelet printing the version.
    fn stand_in(dir: &Path, with_pause: bool) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let names = REQUIRED.iter().chain(with_pause.then_some(&PAUSE));
        for name in names {
            let path = dir.join("bin").join(name);
            std::fs::write(&path, "#!/bin/sh\necho Kubernetes v1.19.7\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn pause_is_optional_and_found_when_present() {
        let dir = tempfile::tempdir().unwrap();
        stand_in(dir.path(), false);
        let bundle = Bundle::open(dir.path()).unwrap();
        assert_eq!(bundle.version, Version::new(1, 19, 7));
        assert_eq!(bundle.pause(), None);
        stand_in(dir.path(), true);
        assert_eq!(
            Bundle::open(dir.path()).unwrap().pause(),
            Some(dir.path().join("bin/pause"))
        );
    }

    #[test]
    fn a_directory_without_binaries_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bundle::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("missing bin/kubeadm"), "{err}");
    }
}
