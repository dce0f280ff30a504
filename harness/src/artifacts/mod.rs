//! Artifacts a node installs that Debian does not package, in the layouts upstream ships them
//! in, from a source build, a local bundle or a pinned upstream release.
//!
//! * [`cri_tools`]: where crictl and critest are (the cache's build, else PATH).
//! * [`kata`]: the kata-static layout and where it comes from.
//! * [`kata_release`]: upstream kata-static tarballs pinned by version, verified by the sha256
//!   in `kata-release.lock`, cached and unpacked.
//! * [`deb`]: Debian packages unpacked into the cache as file sources, never installed.
//! * [`fetch`]: curl downloads into the cache under deadlines, and the cache's flock.
//! * [`lock`]: the release lock files (`<version> <arch> <name> <sha256>`).
//! * [`provenance`]: where an installed artifact came from, from the manifest beside it.
//! * [`upstream`]: the base URL of each upstream host (GitHub, dl.k8s.io), one variable each.

pub mod cri_tools;
pub mod deb;
pub mod fetch;
pub mod kata;
pub mod kata_release;
pub mod lock;
pub mod provenance;
pub mod upstream;
