//! crictl, the CRI's own command-line client (not packaged by Debian): found, never assumed.
//!
//! The harness itself speaks the CRI over gRPC; crictl is for people and for the tools that
//! insist on it: every failure bundle's `reproduce.sh` is written in crictl, and kubeadm's
//! preflight checks the container runtime with it. `scripts/build-cri-tools` builds it into
//! the cache; a crictl on PATH serves too.
//!
//! Invariant: [`crictl`] only looks (no build, no download), and what it returns is an
//! absolute path to an executable file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where `scripts/build-cri-tools` leaves its binaries, under the cache directory.
pub const CACHED_BIN_DIR: &str = "cri-tools/current/bin";

/// Where crictl is on this host: the cache's build (`$KATA_HARNESS_CACHE`, default
/// /var/cache/kata-harness, `/cri-tools/current/bin/crictl`), else `crictl` on PATH, else none.
pub fn crictl() -> Option<PathBuf> {
    tool("crictl")
}

/// critest: `$KATA_HARNESS_CRITEST`, else found the same way as [`crictl`].
pub fn critest() -> Option<PathBuf> {
    std::env::var_os("KATA_HARNESS_CRITEST")
        .map(PathBuf::from)
        .or_else(|| tool("critest"))
}

fn tool(name: &str) -> Option<PathBuf> {
    tool_in(
        name,
        &crate::profile::cache_dir(),
        std::env::var_os("PATH").as_deref(),
    )
}

/// [`crictl`] / [`critest`] with their inputs explicit (for tests).
pub fn tool_in(name: &str, cache: &Path, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let cached = cache.join(CACHED_BIN_DIR).join(name);
    if is_executable(&cached) {
        return Some(cached);
    }
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path`'s directory is on this process's PATH (so plain `crictl` finds it).
pub fn on_path(path: &Path) -> bool {
    let (Some(dir), Some(var)) = (path.parent(), std::env::var_os("PATH")) else {
        return false;
    };
    std::env::split_paths(&var).any(|d| d == dir)
}

/// What a report says when there is none.
pub const MISSING: &str =
    "no crictl (scripts/build-cri-tools builds one into the cache; or put crictl on PATH)";

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_cache_wins_then_path_then_none() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let bin = dir.path().join("bin");
        let path = std::env::join_paths([&bin]).unwrap();
        assert_eq!(tool_in("crictl", &cache, Some(&path)), None);
        assert_eq!(tool_in("crictl", &cache, None), None);
        // Not executable: not a crictl.
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("crictl"), "").unwrap();
        assert_eq!(tool_in("crictl", &cache, Some(&path)), None);
        executable(&bin.join("crictl"));
        assert_eq!(tool_in("crictl", &cache, Some(&path)), Some(bin.join("crictl")));
        executable(&cache.join(CACHED_BIN_DIR).join("crictl"));
        assert_eq!(
            tool_in("crictl", &cache, Some(&path)),
            Some(cache.join(CACHED_BIN_DIR).join("crictl"))
        );
    }

    #[test]
    fn relative_path_entries_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::ffi::OsString::from(".:bin");
        assert_eq!(tool_in("crictl", dir.path(), Some(&path)), None);
    }
}
