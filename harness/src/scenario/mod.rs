//! Scenario tables: model and validation, planning into trials, and running them.

pub mod ctr_run;
pub mod diff;
pub mod guest;
pub mod image_import;
pub mod images;
pub mod kata_check;
pub mod lifecycle;
pub mod model;
pub mod plan;
pub mod pod;
pub mod pods;
pub mod run;
pub mod sandbox;
pub mod session;
pub mod shard;
pub mod trial;
pub mod witness;

pub use model::{Row, Suite, SuiteError};
pub use plan::{Capabilities, Trial, Variant};
