//! Debian packages used as file sources, never installed: `apt-get download <package>` into a
//! cache directory and `dpkg-deb -x` there, once.
//!
//! Invariant: the host's package state is never changed (no dpkg database entry, no file
//! outside the cache), and a root is used only once it is complete (`.complete` is written
//! last), so an interrupted unpack is redone on the next run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, ProcessError};

/// `apt-get download` of one package from Debian's archive (or its mirror) here.
const APT_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("failed to fetch or unpack the Debian package {package}")]
    Run {
        package: String,
        #[source]
        source: ProcessError,
    },
    #[error("failed to prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DebError + '_ {
    move |source| DebError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The unpacked root of `package` under `base` (`<base>/root-<package>`), downloading and
/// unpacking it on first use.
pub fn unpack(package: &str, base: &Path) -> Result<PathBuf, DebError> {
    let root = base.join(format!("root-{package}"));
    let done = root.join(".complete");
    if done.exists() {
        return Ok(root);
    }
    std::fs::create_dir_all(base).map_err(io_err(base))?;
    let deb_err = |source| DebError::Run {
        package: package.to_owned(),
        source,
    };
    let mut download = Command::new("apt-get");
    download.args(["download", package]).current_dir(base);
    process::run(download, APT_DEADLINE).map_err(deb_err)?;
    let deb = std::fs::read_dir(base)
        .map_err(io_err(base))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .max()
        .ok_or_else(|| DebError::Io {
            path: base.to_owned(),
            source: std::io::Error::other(format!("apt-get download left no {package}_*.deb")),
        })?;
    let _ = std::fs::remove_dir_all(&root);
    let mut extract = Command::new("dpkg-deb");
    extract.arg("-x").arg(&deb).arg(&root);
    process::run(extract, APT_DEADLINE).map_err(deb_err)?;
    std::fs::write(&done, deb.to_string_lossy().as_bytes()).map_err(io_err(&done))?;
    Ok(root)
}
