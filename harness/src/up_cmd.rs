//! `kata-harness up --target local` and `kata-harness down`: a node on this host to try
//! things on by hand (crictl and ctr, a failed row's reproduce.sh), provisioned exactly as a
//! local row's node (every handler, Kata included where this host can run it), left running,
//! and removed again leaving nothing.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use kata_harness::process::shell_line;
use kata_harness::profile::{ContainerdChoice, DEFAULT_CONTAINERD_LINES};
use kata_harness::provision::kept::KeptNode;
use kata_harness::provision::{Settings, Testbed};
use kata_harness::scenario::Capabilities;

use crate::{input_error, vm_cmd};

#[derive(clap::Args)]
pub(crate) struct UpArgs {
    /// Where the node runs: `local` (a private containerd on this host, in its own namespaces).
    /// For a VM: `kata-harness vm up`.
    #[arg(long, default_value = "local")]
    target: String,
    /// The containerd line the node runs.
    #[arg(long, default_value = "2.1")]
    containerd: String,
    /// The name `down` removes it by.
    #[arg(long, default_value = "default")]
    name: String,
}

#[derive(clap::Args)]
pub(crate) struct DownArgs {
    /// The name given to `up`.
    #[arg(long, default_value = "default")]
    name: String,
}

pub(crate) fn up(args: UpArgs, repo: &Path) -> Result<ExitCode> {
    if args.target != "local" {
        return Ok(input_error(format!(
            "up --target {}: only `local` (for a VM: kata-harness vm up)",
            args.target
        )));
    }
    if !DEFAULT_CONTAINERD_LINES.contains(&args.containerd.as_str()) {
        return Ok(input_error(format!(
            "up --containerd {}: unknown containerd line (known: {})",
            args.containerd,
            DEFAULT_CONTAINERD_LINES.join(", ")
        )));
    }
    let name = &args.name;
    if KeptNode::load(name).is_ok() {
        return Ok(input_error(format!(
            "a node named {name} is already up (kata-harness down --name {name})"
        )));
    }
    // Kata as a local row gets it: this host's layout, with this host's conditions.
    let capabilities = Capabilities::probe_local();
    let settings = Settings {
        containerd: ContainerdChoice::Line(args.containerd.clone()),
        kata: capabilities.kata.clone(),
        kata_rs: capabilities.kata_rs.clone(),
        ..Settings::plain(repo.to_owned())
    };
    let kata_line = match &capabilities.kata_absent {
        None => format!(
            "Kata: at /opt/kata in the node's mount namespace ({})",
            capabilities.kata_conditions.join("; ")
        ),
        Some(why) => format!("Kata: not installed ({why})"),
    };
    eprintln!(
        "starting {name}: containerd {} on this host, as `run --target local` does...",
        args.containerd
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let testbed = runtime
        .block_on(Testbed::start_local(&settings))
        .context("failed to start the node")?;
    let examples = vm_cmd::write_examples(&testbed).context("failed to write the example pod")?;
    let handlers: Vec<&str> = testbed.config.runtimes.iter().map(|h| h.name.as_str()).collect();
    let crictl = shell_line(&[
        testbed.crictl.clone().unwrap_or_else(|| "crictl".into()),
        "--config".into(),
        testbed
            .paths
            .run_dir
            .join("crictl.yaml")
            .to_string_lossy()
            .into_owned(),
    ]);
    let ctr = shell_line(&testbed.ctr_argv("k8s.io", &[]));
    let handler = if capabilities.kata_absent.is_none() {
        "kata"
    } else {
        "runc"
    };
    let pod = examples.pod.display();
    let container = examples.container.display();
    let lines = [
        format!("{crictl} runp -r {handler} {pod}"),
        format!("{crictl} create POD_ID {container} {pod}"),
        format!("{crictl} start CONTAINER_ID"),
        format!("{crictl} inspect CONTAINER_ID | grep runtimeType"),
        format!("{ctr} images import IMAGE.tar"),
    ];
    let describe = testbed.describe();
    let run_dir = testbed.paths.run_dir.clone();
    let Some(kept) = testbed.keep_local(name) else {
        anyhow::bail!("the testbed is not a local node");
    };
    kept.with_context(|| {
        format!(
            "failed to record node {name} (so it was removed again, run dir {})",
            run_dir.display()
        )
    })?;
    println!(
        "node {name} is up: {describe}\n  handlers: {} (default {})\n  {kata_line}\n  {}\n  stop it and remove everything with: kata-harness down --name {name}",
        handlers.join(", "),
        testbed.config.default_runtime,
        lines.join("\n  "),
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn down(args: DownArgs) -> Result<ExitCode> {
    let name = &args.name;
    let kept = KeptNode::load(name)
        .with_context(|| format!("no node named {name} (kata-harness up --name {name})"))?;
    let leftovers = kept.destroy();
    if !leftovers.is_clean() {
        anyhow::bail!(
            "node {name}: cleanup left {:?}; try kata-harness down --name {name} again",
            leftovers.0
        );
    }
    println!("node {name} is down: {}", kept.describe);
    Ok(ExitCode::SUCCESS)
}
