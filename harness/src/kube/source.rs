//! Where the cluster's bundle comes from: the default Debian-built bundle, a user's
//! directory, or an upstream release ([`super::release`]), each opened as a [`Bundle`].

use std::path::Path;
use std::path::PathBuf;

use super::bundle::Bundle;
use super::release::Release;
use super::KubeError;

/// Where the cluster's bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// What `scripts/build-k8s-bundle` builds (built on first use by [`Source::ensure`]).
    Default,
    /// A user's bundle directory (`--k8s-bundle`, `KATA_HARNESS_K8S_BUNDLE`).
    Dir(PathBuf),
    /// An upstream release (`--k8s-release`), downloaded on first use by [`Source::ensure`].
    Release(Release),
}

impl Source {
    /// The bundle, built or downloaded first if it is not there yet (`run`).
    pub fn ensure(&self, repo: &Path) -> Result<Bundle, KubeError> {
        match self {
            Source::Default => Bundle::ensure(repo, None),
            Source::Dir(dir) => Bundle::open(dir),
            Source::Release(release) => release.fetch(),
        }
    }

    /// The bundle if it is already there: nothing is built or downloaded (`list`).
    pub fn open(&self) -> Result<Bundle, KubeError> {
        match self {
            Source::Default => Bundle::open(&Bundle::default_dir()),
            Source::Dir(dir) => Bundle::open(dir),
            Source::Release(release) => release.open_cached(),
        }
    }
}
