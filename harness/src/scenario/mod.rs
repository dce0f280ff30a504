//! Scenario tables: model and validation, planning into trials, and running them.

pub mod ctr_run;
pub mod guest;
pub mod images;
pub mod model;
pub mod plan;
pub mod run;
pub mod session;

pub use model::{Row, Suite, SuiteError};
pub use plan::{Capabilities, Trial, Variant};
