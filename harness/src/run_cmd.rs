//! `kata-harness list` and `kata-harness run`: the planned trials listed, or run with the
//! reports written and the failure bundles named.

use std::process::ExitCode;

use anyhow::{Context, Result};
use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::Settings;
use kata_harness::report::{self, terminal::Terminal, Recorder, RunInfo, Summary, Tee, TrialResult, Verdict};
use kata_harness::scenario::session;

use crate::plan_cmd::{load_plan, load_plan_with, Planned};
use crate::suite_args::SuiteArgs;
use crate::{input_error, profile_cmd, repo_root, RunArgs};

pub(crate) fn list(args: SuiteArgs) -> Result<ExitCode> {
    let planned = match load_plan(&args) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if let Some(shard) = &planned.shard {
        eprintln!("{}", shard_line(shard));
    }
    for trial in &planned.trials {
        match &trial.skip {
            Some(reason) => println!("{}  (skipped: {reason})", trial.name),
            None => println!("{}", trial.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: RunArgs) -> Result<ExitCode> {
    let planned = match load_plan_with(&args.suites, true) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if let Some(shard) = &planned.shard {
        eprintln!("{}", shard_line(shard));
    }
    Ok(match execute(&planned, &args)? {
        Ok(results) if Summary::of(&results).failed > 0 => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    })
}

/// Runs the planned trials and writes the reports; the results as the reports have them, or
/// the exit code of bad input found before anything started.
pub(crate) fn execute(planned: &Planned, args: &RunArgs) -> Result<Result<Vec<TrialResult>, ExitCode>> {
    let target = planned.target.clone();
    let mut environment = vec![
        ("target".into(), target.to_string()),
        ("host-kernel".into(), host_kernel()),
    ];
    environment.extend(planned.environment.clone());
    let local_nodes = planned.variants.iter().any(|v| {
        use kata_harness::scenario::plan::Placement;
        matches!(v.placement, Placement::Local(_) | Placement::Cluster(_))
    });
    if local_nodes {
        let probe = profile_cmd::HostProbe::this_host(kata_harness::provision::crun_binary());
        match profile_cmd::host_tools(&planned.profile, &probe) {
            Ok(found) => environment.extend(found),
            Err(message) => return Ok(Err(input_error(message))),
        }
    }
    let mut argv = planned.args.rerun_argv(&target);
    if let Some(profile) = &args.suites.profile {
        argv.splice(2..2, ["--profile".to_owned(), profile_cmd::path_or_name(profile)]);
    }
    let info = RunInfo {
        command: kata_harness::process::shell_line(&argv),
        target: target.to_string(),
        environment,
        selection: Some(planned.selection.clone()),
        shard: planned.shard.clone(),
    };
    let cluster_containerd = planned
        .profile
        .kubernetes
        .as_ref()
        .map(|k8s| k8s.containerd.clone())
        .unwrap_or_else(|| "1.6".into());
    let settings = Settings {
        containerd: ContainerdChoice::Line(cluster_containerd),
        keep: args.keep,
        pause_binary: None,
        repo: repo_root(),
        kata: planned.kata.clone(),
        kata_rs: planned.kata_rs.clone(),
        kata_runtime_class: planned
            .profile
            .kubernetes
            .as_ref()
            .map_or_else(|| "kata".to_owned(), |k| k.kata_runtime_class.clone()),
    };
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    let mut terminal = Terminal::new();
    let mut recorder = Recorder::default();
    let mut results = {
        let mut tee = Tee(vec![&mut terminal, &mut recorder]);
        runtime.block_on(Box::pin(session::run(
            &planned.trials,
            &planned.variants,
            &settings,
            &planned.quarantine,
            args.retries,
            &mut tee,
        )))
    };
    let mut info = info;
    info.environment.extend(recorder.testbed_facts());
    report::write_results(&args.results, &info, &mut results)
        .with_context(|| format!("failed to write results to {}", args.results.display()))?;
    let dir = args.results.display();
    eprintln!("results: {dir}/junit.xml, {dir}/results.json, {dir}/results.html");
    for result in &results {
        if let Some(bundle) = &result.bundle {
            let kind = match result.verdict {
                Verdict::Quarantined => "quarantined failure bundle",
                _ => "failure bundle",
            };
            eprintln!("{kind}: {}", bundle.display());
        }
    }
    Ok(Ok(results))
}

/// Which testbeds a shard runs, of which, and what balanced them (on stderr: `list`'s stdout
/// stays the trial names).
fn shard_line(shard: &kata_harness::report::identity::ShardRecord) -> String {
    let mine = if shard.groups.is_empty() {
        "no testbed (more shards than testbeds)".to_owned()
    } else {
        shard.groups.join(", ")
    };
    format!(
        "shard {shard}: {mine}, of {} (balanced by {})",
        shard.plan_groups.join(", "),
        shard.balanced_by
    )
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
