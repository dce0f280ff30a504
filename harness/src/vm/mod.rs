//! The disposable VM test node: cached images, the acceleration probe, QEMU, QMP and SSH.

pub mod accel;
pub mod image;
pub mod kvm;
pub mod qemu;
pub mod qmp;
pub mod snapshot;
pub mod ssh;
pub mod state;
