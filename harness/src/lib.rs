//! kata-harness: provision a disposable node, run table-driven scenarios against containerd
//! (and Kubernetes), and prove which runtime really ran every sandbox and container.
//!
//! # Layers
//!
//! Bottom to top. A module imports only from its own layer or below, and no two modules
//! import each other, directly or round a circle (a folder's `mod.rs` may use the children it
//! declares). `harness/tests/layering.rs` reads this list and checks every `crate::` and
//! `super::` path in `src/` against it (`cargo nextest run -E 'binary(layering)'`); a new
//! module must be placed here.
//!
//! 1. base: `errors`, `wait`, `teardown`, `process`
//! 2. data, renderers and artifacts: `profile`, `render`, `images`, `artifacts`,
//!    `scenario::model`
//! 3. clients, mechanisms and results: `cri`, `node`, `vm`, `kube`, `kube::client`,
//!    `kube::bundle`, `kube::release`, `kube::source`, `kube::images`, `report`,
//!    `report::identity`, `report::merge`
//! 4. provisioning a node or cluster: `provision`, `kube::cluster`
//! 5. what scenarios share: `registry`, `scenario`, `scenario::plan`, `scenario::shard`,
//!    `scenario::trial`, `scenario::witness`, `scenario::pods`, `scenario::lifecycle`, `critest`,
//!    `critest::images`, `critest::ginkgo`
//! 6. the kinds of row, each running and judging its own action: `scenario::sandbox`,
//!    `scenario::image_import`, `scenario::images`, `scenario::ctr_run`, `scenario::guest`,
//!    `scenario::pod`, `scenario::diff`, `scenario::kata_check`, `critest::run`, `kube::suite`
//! 7. runs and checks: `scenario::run`, `scenario::session`, `kube::session`, `doctor`
//!
//! The CLI (`main.rs`, `suite_args.rs`, `plan_cmd.rs`, `run_cmd.rs`, `merge_cmd.rs`,
//! `profile_cmd.rs`, `existing_cmd.rs`, `vm_cmd.rs`, `up_cmd.rs`, `docs_cmd.rs`, `diff_cmd.rs`)
//! sits on top of all of them.

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
