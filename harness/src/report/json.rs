//! `results.json`: the run's facts and every trial result, for machines.

use std::path::Path;

use serde_json::json;

use super::{RunInfo, Summary, TrialResult};

pub fn write(path: &Path, info: &RunInfo, results: &[TrialResult]) -> std::io::Result<()> {
    let doc = json!({
        "run": info,
        "summary": Summary::of(results),
        "trials": results,
    });
    std::fs::write(
        path,
        serde_json::to_string_pretty(&doc).expect("json values serialise"),
    )
}
