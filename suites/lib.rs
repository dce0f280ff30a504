//! The scenario tables of kata-harness live in this directory (`*.yaml`, data only);
//! `conformance.rs` runs them as libtest-mimic trials under `cargo test` / `cargo nextest`.
