//! Renderers: one typed model in, the text each component version expects out.
//!
//! Invariant: pure functions (no I/O), so every schema is golden-tested and fed to the real
//! daemon of its version by the tests.

pub mod cni;
pub mod containerd;
pub mod containerd_defaults;
pub mod cri;
pub mod crictl;
pub mod hosts;
pub mod kata;
pub mod kubeadm;

pub use containerd::{ConfigSchema, ContainerdConfig, RuntimeHandler, RuntimeOptions};
