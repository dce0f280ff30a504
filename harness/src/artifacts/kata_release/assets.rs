//! Which kata-static tarballs a Kata version publishes, and the lock kind that records their
//! digests: pure logic, a file of [`super`] (whose error enum it shares) kept apart so that
//! the version table reads on its own.

use super::KataReleaseError;
use crate::artifacts::lock::{self, LockKind};

/// `(major, minor, patch)` of `N.N.N[-suffix]`; the text goes into a URL and a path, so the
/// suffix may only hold the characters of release tags (`3.2.0-rc0`, `3.0.0-alpha1`).
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let (core, suffix) = match text.split_once('-') {
        Some((core, suffix)) => (core, Some(suffix)),
        None => (text, None),
    };
    if let Some(suffix) = suffix {
        if suffix.is_empty()
            || !suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            return None;
        }
    }
    let numbers: Vec<u32> = core
        .split('.')
        .map(|p| (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?)
        .collect::<Option<_>>()?;
    match numbers[..] {
        [major, minor, patch] => Some((major, minor, patch)),
        _ => None,
    }
}

/// `3.30.0` or `v3.30.0` -> `3.30.0`.
pub fn normalise_version(text: &str) -> Result<String, KataReleaseError> {
    let trimmed = text.trim();
    let version = trimmed.strip_prefix('v').unwrap_or(trimmed);
    match parse_version(version) {
        Some(_) => Ok(version.to_owned()),
        None => Err(KataReleaseError::Version { text: text.into() }),
    }
}

/// The kata-static asset names of `version` (normalised), in unpacking order, as upstream
/// has named them over the years.
pub fn assets(version: &str) -> Result<Vec<String>, KataReleaseError> {
    let (major, minor, _) =
        parse_version(version).ok_or_else(|| KataReleaseError::Version { text: version.into() })?;
    let kata_static = |arch: &str, ext: &str| format!("kata-static-{version}-{arch}.tar.{ext}");
    Ok(match (major, minor) {
        (0 | 1, _) => {
            return Err(KataReleaseError::TooOld {
                version: version.into(),
            })
        }
        (2, _) | (3, 0..=1) => vec![kata_static("x86_64", "xz")],
        (3, 2..=20) => vec![kata_static("amd64", "xz")],
        (3, _) | (4, 0) => vec![kata_static("amd64", "zst")],
        // From 4.1 the Go runtime ships in a tarball of its own beside the runtime-rs one; it
        // unpacks last, so the Go shim and its configuration (what the harness installs and
        // checks) win where both ship a file. Later majors are assumed to keep this naming; if
        // not, the download fails naming the URL.
        _ => vec![
            kata_static("amd64", "zst"),
            format!("kata-go-static-{version}-amd64.tar.zst"),
        ],
    })
}

/// `kata-release.lock`: one line per asset, `<version> amd64 <asset> <sha256>`; `#` comments.
pub type LockFile = lock::LockFile<KataLock>;

/// What `kata-release.lock` records: Kata versions and each one's assets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KataLock;

impl LockKind for KataLock {
    const HEADER: &'static str = "\
# sha256 of the upstream Kata release tarballs `kata-harness --kata-release <version>` uses
# (https://github.com/kata-containers/kata-containers/releases/download/<version>/<asset>).
# Upstream publishes no checksums: the harness records an asset's digest here on its first
# download and refuses any later download that differs. Delete a line only to record a new file
# you trust. Kept sorted by the harness; comments are not kept.
# <version> <arch> <asset> <sha256>
";
    const NAME: &'static str = "asset";

    fn check_version(version: &str) -> Result<(), String> {
        match normalise_version(version) {
            Ok(v) if v == version && assets(version).is_ok() => Ok(()),
            _ => Err("a Kata release from 2.0.0 on, like 3.30.0".into()),
        }
    }

    fn check_name(version: &str, name: &str) -> Result<(), String> {
        let assets = assets(version).unwrap_or_default();
        if assets.iter().any(|a| a == name) {
            Ok(())
        } else {
            Err(format!("Kata {version} publishes {}", assets.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{ARCH, LOCK_FILE};
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn asset_names_follow_upstream_naming_by_version() {
        let table: [(&str, &[&str]); 12] = [
            ("2.0.0", &["kata-static-2.0.0-x86_64.tar.xz"]),
            ("2.5.2", &["kata-static-2.5.2-x86_64.tar.xz"]),
            ("3.0.0", &["kata-static-3.0.0-x86_64.tar.xz"]),
            ("3.1.3", &["kata-static-3.1.3-x86_64.tar.xz"]),
            ("3.2.0", &["kata-static-3.2.0-amd64.tar.xz"]),
            ("3.2.0-rc0", &["kata-static-3.2.0-rc0-amd64.tar.xz"]),
            ("3.20.0", &["kata-static-3.20.0-amd64.tar.xz"]),
            ("3.21.0", &["kata-static-3.21.0-amd64.tar.zst"]),
            ("3.30.0", &["kata-static-3.30.0-amd64.tar.zst"]),
            ("4.0.0", &["kata-static-4.0.0-amd64.tar.zst"]),
            (
                "4.1.0",
                &[
                    "kata-static-4.1.0-amd64.tar.zst",
                    "kata-go-static-4.1.0-amd64.tar.zst",
                ],
            ),
            (
                "5.0.1",
                &[
                    "kata-static-5.0.1-amd64.tar.zst",
                    "kata-go-static-5.0.1-amd64.tar.zst",
                ],
            ),
        ];
        for (version, want) in table {
            assert_eq!(assets(version).unwrap(), want, "{version}");
        }
        let old = assets("1.13.0").unwrap_err().to_string();
        assert!(old.contains("1.13.0") && old.contains("2.0.0"), "{old}");
    }

    #[test]
    fn versions_are_normalised_and_checked() {
        assert_eq!(normalise_version("3.30.0").unwrap(), "3.30.0");
        assert_eq!(normalise_version("v3.30.0").unwrap(), "3.30.0");
        assert_eq!(normalise_version(" 3.2.0-rc0\n").unwrap(), "3.2.0-rc0");
        for bad in [
            "",
            "3.30",
            "3.30.0.1",
            "latest",
            "3.x.0",
            "+3.30.0",
            "3.+30.0",
            "3.30.0-",
            "3.30.0-a/b",
            "3.30.0/../../x",
            "vv3.30.0",
        ] {
            let err = normalise_version(bad).unwrap_err().to_string();
            assert!(err.starts_with("bad Kata release"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_lock_takes_only_a_versions_own_assets() {
        let path = Path::new(LOCK_FILE);
        let good = format!("3.30.0 amd64 kata-static-3.30.0-amd64.tar.zst {A}\n");
        let lock = LockFile::parse(&good, path).unwrap();
        assert_eq!(
            lock.get("3.30.0", ARCH, "kata-static-3.30.0-amd64.tar.zst"),
            Some(A)
        );
        assert!(lock.render().ends_with(&good));
        let cases = [
            (
                format!("3.30.0 amd64 kata-static-3.30.0-amd64.tar.xz {A}\n"),
                "line 1: unknown asset \"kata-static-3.30.0-amd64.tar.xz\" (Kata 3.30.0 publishes \
                 kata-static-3.30.0-amd64.tar.zst)",
            ),
            (
                format!("v3.30.0 amd64 kata-static-3.30.0-amd64.tar.zst {A}\n"),
                "line 1: bad version \"v3.30.0\" (a Kata release from 2.0.0 on, like 3.30.0)",
            ),
            (
                format!("1.13.0 amd64 kata-static-1.13.0-x86_64.tar.xz {A}\n"),
                "line 1: bad version \"1.13.0\"",
            ),
            (
                "3.30.0 amd64 kata-static-3.30.0-amd64.tar.zst\n".into(),
                "line 1: expected `<version> <arch> <asset> <sha256>`, found 3 fields",
            ),
        ];
        for (text, want) in cases {
            let err = LockFile::parse(&text, path).unwrap_err().to_string();
            assert!(
                err.starts_with("bad release lock file kata-release.lock, ") && err.contains(want),
                "{text:?}: {err}"
            );
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
}
