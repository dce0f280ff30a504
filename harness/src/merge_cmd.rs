//! `kata-harness merge`: the shards' result dirs as one report (see
//! `kata_harness::report::merge` for the checks).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use kata_harness::report::{self, merge, Summary};

use crate::input_error;

#[derive(clap::Args)]
pub(crate) struct MergeArgs {
    /// The result dirs of `run --shard K/N`, one per shard (each with its results.json),
    /// in any order.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where the merged junit.xml, results.json, results.html and bundles/ go.
    #[arg(long, default_value = "results")]
    out: PathBuf,
}

pub(crate) fn run(args: MergeArgs) -> Result<ExitCode> {
    let merged = args
        .dirs
        .iter()
        .map(|dir| merge::load(dir))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|shards| merge::merge(shards, &args.out))
        .and_then(|merged| merge::write(&args.out, &merged, &args.dirs).map(|()| merged));
    let merged = match merged {
        Ok(merged) => merged,
        Err(e) => return Ok(input_error(format!("merge: {}", report::chain(&e)))),
    };
    let summary = Summary::of(&merged.results);
    let dir = args.out.display();
    println!(
        "merged {} shards: {} passed, {} failed, {} skipped, {} flaky, {} quarantined",
        args.dirs.len(),
        summary.passed,
        summary.failed,
        summary.skipped,
        summary.flaky,
        summary.quarantined
    );
    eprintln!("results: {dir}/junit.xml, {dir}/results.json, {dir}/results.html");
    Ok(if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
