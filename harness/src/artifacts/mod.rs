//! Artifacts a node installs that Debian does not package, in the layouts upstream ships them
//! in, from a source build, a local bundle or a pinned upstream release.

pub mod kata;
