//! kata-harness: provision a disposable node, run table-driven scenarios against containerd
//! (and Kubernetes), and prove which runtime really ran every sandbox and container.

pub mod artifacts;
pub mod cri;
pub mod critest;
pub mod doctor;
pub mod errors;
pub mod images;
pub mod kube;
pub mod node;
pub mod process;
pub mod profile;
pub mod provision;
pub mod registry;
pub mod render;
pub mod report;
pub mod scenario;
pub mod teardown;
pub mod vm;
pub mod wait;
