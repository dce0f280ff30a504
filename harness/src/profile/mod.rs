//! Component versions and where their binaries come from.
//!
//! Invariant: versions are data. Everything version-dependent (config schema, CRI API,
//! kubeadm API) is decided from a parsed [`Version`] here, never by sniffing output later.

pub mod check;
pub mod file;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("failed to parse version {text:?}: expected MAJOR.MINOR[.PATCH]")]
    BadVersion { text: String },
    #[error("containerd {wanted} is not in the cache ({dir} is missing); run scripts/fetch-containerd")]
    NotCached { wanted: String, dir: PathBuf },
    #[error("no containerd binary in {dir}")]
    NoBinary { dir: PathBuf },
    #[error("failed to ask {binary} for its version")]
    Probe {
        binary: PathBuf,
        #[source]
        source: crate::process::ProcessError,
    },
}

/// `<dir>/<name>.yaml`, parsed and checked.
pub fn load_named(dir: &Path, name: &str) -> Result<file::Profile, file::ProfileFileError> {
    let path = dir.join(format!("{name}.yaml"));
    if !path.is_file() {
        let known = file::names_in(dir).join(", ");
        return Err(file::ProfileFileError {
            file: path,
            field: String::new(),
            message: format!("no such profile (profiles in {}: {known})", dir.display()),
        });
    }
    load(&path)
}

/// A profile file, parsed and checked.
pub fn load(path: &Path) -> Result<file::Profile, file::ProfileFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| file::ProfileFileError {
        file: path.to_owned(),
        field: String::new(),
        message: format!("failed to read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and checks: a profile that loads is one that can work.
pub fn parse(path: &Path, text: &str) -> Result<file::Profile, file::ProfileFileError> {
    let profile = file::parse_unchecked(path, text)?;
    check::check(&profile).map_err(|(field, message)| file::ProfileFileError {
        file: path.to_owned(),
        field,
        message,
    })?;
    Ok(profile)
}

/// What a report says of the default profile's components (the test runners run it); a
/// profile that does not load says why instead.
pub fn default_components(repo: &Path) -> Vec<(String, String)> {
    match load_named(&repo.join("profiles"), file::DEFAULT_PROFILE) {
        Ok(profile) => profile.components(),
        Err(e) => vec![("profile".into(), format!("{}: {e}", file::DEFAULT_PROFILE))],
    }
}

/// A MAJOR.MINOR.PATCH version; ordering is numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version { major, minor, patch }
    }
}

impl FromStr for Version {
    type Err = ProfileError;
    /// Accepts `1.6`, `1.6.20`, `v1.20.2`, and Debian forms like `1.6.20~ds1`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ProfileError::BadVersion {
            text: text.to_owned(),
        };
        let core = text.trim().trim_start_matches('v');
        let core = core
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or("");
        let mut parts = core
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>());
        let major = parts.next().ok_or_else(bad)?.map_err(|_| bad())?;
        let minor = parts.next().ok_or_else(bad)?.map_err(|_| bad())?;
        let patch = parts.next().transpose().map_err(|_| bad())?.unwrap_or(0);
        Ok(Version { major, minor, patch })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The harness's cache directory: `$KATA_HARNESS_CACHE`, else `/var/cache/kata-harness`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KATA_HARNESS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kata-harness"))
}

/// Which containerd to run: a cached release line (`1.6`, `1.7`, `2.1`) or a directory
/// holding `containerd`, `ctr` and the shims (`bin/` or `usr/bin/` inside it also work).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerdChoice {
    Line(String),
    Dir(PathBuf),
}

impl FromStr for ContainerdChoice {
    type Err = ProfileError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.contains('/') {
            Ok(ContainerdChoice::Dir(PathBuf::from(text)))
        } else {
            text.parse::<Version>()?;
            Ok(ContainerdChoice::Line(text.to_owned()))
        }
    }
}

impl fmt::Display for ContainerdChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerdChoice::Line(line) => write!(f, "{line}"),
            ContainerdChoice::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// The containerd release lines every suite runs against by default.
pub const DEFAULT_CONTAINERD_LINES: [&str; 4] = ["1.6", "1.7", "2.1", "2.3"];

/// The VM images a run covers unless told (`run --image`, the test drivers'
/// `KATA_HARNESS_VM_IMAGES`): containerd 1.6 (config schema 2) and 2.1 (schema 3).
pub const DEFAULT_VM_IMAGES: [&str; 2] = ["bookworm", "bookworm-containerd21"];

/// A resolved containerd: where its binaries are and which version they report.
#[derive(Debug, Clone)]
pub struct Containerd {
    pub bin_dir: PathBuf,
    pub version: Version,
    /// The version line as the binary printed it (kept for reports).
    pub version_text: String,
}

impl Containerd {
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

impl ContainerdChoice {
    /// The directory this choice points at, without probing it.
    pub fn dir(&self) -> PathBuf {
        match self {
            ContainerdChoice::Line(line) => cache_dir().join("containerd").join(line),
            ContainerdChoice::Dir(dir) => dir.clone(),
        }
    }

    /// Finds the binaries and asks containerd for its version.
    pub fn resolve(&self) -> Result<Containerd, ProfileError> {
        let dir = self.dir();
        if !dir.exists() {
            return Err(ProfileError::NotCached {
                wanted: self.to_string(),
                dir,
            });
        }
        let bin_dir = ["usr/bin", "bin", ""]
            .iter()
            .map(|sub| dir.join(sub))
            .find(|d| d.join("containerd").exists())
            .ok_or_else(|| ProfileError::NoBinary { dir: dir.clone() })?;
        let (version, version_text) = probe_version(&bin_dir.join("containerd"))?;
        Ok(Containerd {
            bin_dir,
            version,
            version_text,
        })
    }
}

/// `containerd --version` prints e.g. `containerd github.com/containerd/containerd 1.6.20~ds1 ...`.
fn probe_version(binary: &Path) -> Result<(Version, String), ProfileError> {
    let mut cmd = Command::new(binary);
    cmd.arg("--version");
    let out = crate::process::run(cmd, Duration::from_secs(20)).map_err(|source| ProfileError::Probe {
        binary: binary.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    parse_containerd_version(&text).map(|v| (v, text))
}

pub fn parse_containerd_version(text: &str) -> Result<Version, ProfileError> {
    text.split_whitespace()
        .find_map(|word| {
            let looks_like = word
                .trim_start_matches('v')
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
                && word.contains('.');
            looks_like.then(|| word.parse::<Version>().ok()).flatten()
        })
        .ok_or_else(|| ProfileError::BadVersion {
            text: text.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1.6", Version::new(1, 6, 0))]
    #[case("v1.20.2", Version::new(1, 20, 2))]
    #[case("1.6.20~ds1", Version::new(1, 6, 20))]
    #[case("2.1.9", Version::new(2, 1, 9))]
    fn parses_versions(#[case] text: &str, #[case] want: Version) {
        assert_eq!(text.parse::<Version>().unwrap(), want);
    }

    #[rstest]
    #[case("")]
    #[case("x.y")]
    #[case("1")]
    fn rejects_bad_versions(#[case] text: &str) {
        assert!(text.parse::<Version>().is_err());
    }

    #[test]
    fn parses_containerd_version_lines() {
        let line = "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3";
        assert_eq!(parse_containerd_version(line).unwrap(), Version::new(1, 6, 20));
        let line = "containerd github.com/containerd/containerd/v2 2.1.9~ds1 2.1.9~ds1-1";
        assert_eq!(parse_containerd_version(line).unwrap(), Version::new(2, 1, 9));
    }

    #[test]
    fn versions_order_numerically() {
        assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
    }

    #[test]
    fn choice_from_text() {
        assert_eq!(
            "1.7".parse::<ContainerdChoice>().unwrap(),
            ContainerdChoice::Line("1.7".into())
        );
        assert!(matches!(
            "/opt/ctd".parse::<ContainerdChoice>().unwrap(),
            ContainerdChoice::Dir(_)
        ));
        assert!("latest".parse::<ContainerdChoice>().is_err());
    }
}
