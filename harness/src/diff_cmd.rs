//! `kata-harness diff`: what a workload sees differently under Kata. It runs one `diff` row per
//! Kata handler (the same pod under runc and under that handler, the same probes in both, every
//! difference judged against what its probe declares) through `run`, and prints each table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use kata_harness::report::{TrialResult, Verdict};

use crate::plan_cmd::load_plan_with;
use crate::run_cmd::execute;
use crate::suite_args::SuiteArgs;
use crate::{input_error, RunArgs};

/// The Kata handlers a diff compares with runc unless told.
const KATA_HANDLERS: [&str; 2] = ["kata", "kata-qemu-runtime-rs"];

#[derive(clap::Args)]
pub(crate) struct DiffArgs {
    /// The Kata handlers to compare with runc, one table each [default: kata,
    /// kata-qemu-runtime-rs; one the node does not have is skipped, naming why].
    #[arg(long = "handler", value_delimiter = ',', value_name = "HANDLER")]
    handlers: Option<Vec<String>>,
    /// Where: local (a private containerd on this host), cri:///path/to/containerd.sock or
    /// ssh://user@host[:port] (an existing node, as it is configured) [default: local].
    #[arg(long, default_value = "local")]
    target: String,
    /// With --target local: the containerd line (or binary directory); the diff runs on the
    /// newest one given [default: the profile's newest].
    #[arg(long = "containerd", value_delimiter = ',')]
    containerd: Option<Vec<String>>,
    /// The profile (a name in profiles/, or a profile file), as for `run`.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Kata in the kata-static layout (a directory or tarball), as for `run`.
    #[arg(long = "kata-bundle", value_name = "DIR|TARBALL")]
    kata_bundle: Option<PathBuf>,
    /// An upstream Kata release, as for `run`.
    #[arg(long = "kata-release", value_name = "VERSION", conflicts_with = "kata_bundle")]
    kata_release: Option<String>,
    /// Where the suite it runs (diff-suite.yaml), JUnit, JSON, HTML and failure bundles go.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Keep the node's run dir (configs, logs) after it stops.
    #[arg(long)]
    keep: bool,
}

/// `run`'s flags for the diff's own suite file.
#[derive(Parser)]
struct AsRun {
    #[command(flatten)]
    suites: SuiteArgs,
}

pub(crate) fn diff(args: DiffArgs) -> Result<ExitCode> {
    if matches!(args.target.as_str(), "vm" | "all") {
        return Ok(input_error(format!(
            "--target {}: a diff runs on one node: local, cri://... or ssh://...",
            args.target
        )));
    }
    let handlers = args
        .handlers
        .clone()
        .unwrap_or_else(|| KATA_HANDLERS.map(String::from).to_vec());
    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("failed to create {}", args.results.display()))?;
    let suite = args.results.join("diff-suite.yaml");
    std::fs::write(&suite, suite_text(&handlers))
        .with_context(|| format!("failed to write {}", suite.display()))?;
    let mut argv: Vec<String> = vec!["kata-harness".into(), "--target".into(), args.target.clone()];
    argv.extend([
        "--suites".into(),
        crate::path_arg(&suite),
        "--quarantine".into(),
        "none".into(),
    ]);
    let flags = [
        (
            "--containerd",
            args.containerd.as_ref().map(|lines| lines.join(",")),
        ),
        ("--profile", args.profile.clone()),
        (
            "--kata-bundle",
            args.kata_bundle.as_ref().map(|p| crate::path_arg(p)),
        ),
        ("--kata-release", args.kata_release.clone()),
    ];
    for (flag, value) in flags {
        if let Some(value) = value {
            argv.extend([flag.to_owned(), value]);
        }
    }
    let suites = match AsRun::try_parse_from(&argv) {
        Ok(parsed) => parsed.suites,
        Err(e) => return Ok(input_error(e.to_string().trim())),
    };
    let planned = match load_plan_with(&suites, false) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let run = RunArgs {
        suites,
        results: args.results.clone(),
        keep: args.keep,
        retries: 0,
    };
    let results = match execute(&planned, &run)? {
        Ok(results) => results,
        Err(code) => return Ok(code),
    };
    Ok(print_tables(&results))
}

/// The diff's suite: one `diff` row, expanded to one row per handler.
fn suite_text(handlers: &[String]) -> String {
    format!(
        "# Written by `kata-harness diff`; `kata-harness run --suites <this file>` runs it again.\n\
         suite: diff\n\
         about: what a workload sees differently under Kata than under runc\n\
         placements: [local]\n\
         local_lines: newest\n\
         rows:\n  - scenario: runc-vs\n    diff: {{ handlers: [{}] }}\n",
        handlers.join(", ")
    )
}

/// Each diff row's table on stdout, then its verdict. Exit 0 when every table has only
/// declared differences, 1 when one has a surprise, a row failed otherwise or none ran.
fn print_tables(results: &[TrialResult]) -> ExitCode {
    let mut compared = 0;
    let mut failed = false;
    for result in results {
        if let Some(differences) = &result.evidence.differences {
            println!("{}", differences.text());
            compared += 1;
        }
        match result.verdict {
            Verdict::Passed => {}
            Verdict::Skipped => eprintln!("{}: skipped: {}", result.name, result.message),
            _ => {
                failed = true;
                eprintln!("{}: {}: {}", result.name, result.observed, result.message);
            }
        }
    }
    if compared == 0 {
        eprintln!("no difference table: no diff row ran to its probes (see above)");
        return ExitCode::from(1);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_it_writes_loads_as_one_diff_row_per_handler() {
        let text = suite_text(&["kata".into(), "kata-qemu-runtime-rs".into()]);
        let suite =
            kata_harness::scenario::Suite::parse(std::path::Path::new("results/diff-suite.yaml"), &text)
                .unwrap();
        let names: Vec<&str> = suite.rows.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(names, ["runc-vs-kata", "runc-vs-kata-qemu-runtime-rs"]);
        let err = kata_harness::scenario::Suite::parse(
            std::path::Path::new("results/diff-suite.yaml"),
            &suite_text(&["runc".into()]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("runc is not a Kata handler"), "{err}");
    }

    fn result(verdict: Verdict, surprise: Option<&str>) -> TrialResult {
        use kata_harness::report::differences::{Differences, ProbeAnswers};
        let mut result = TrialResult::cleanup_failure("containerd-2.1", &[]);
        result.verdict = verdict;
        result.evidence.differences = Some(Differences {
            handler: "kata".into(),
            probes: vec![ProbeAnswers {
                probe: "hostname".into(),
                runc: "a".into(),
                kata: if surprise.is_some() { "b" } else { "a" }.into(),
                declared: "same".into(),
                reason: None,
                surprise: surprise.map(Into::into),
            }],
        });
        result
    }

    #[test]
    fn it_exits_0_only_when_every_table_ran_and_held() {
        assert_eq!(print_tables(&[result(Verdict::Passed, None)]), ExitCode::SUCCESS);
        let surprise = result(Verdict::Failed, Some("nothing declares a difference"));
        assert_eq!(
            print_tables(&[result(Verdict::Passed, None), surprise]),
            ExitCode::from(1)
        );
        let mut skipped = result(Verdict::Skipped, None);
        skipped.evidence.differences = None;
        assert_eq!(print_tables(&[skipped.clone()]), ExitCode::from(1));
        assert_eq!(
            print_tables(&[result(Verdict::Passed, None), skipped]),
            ExitCode::SUCCESS
        );
    }
}
