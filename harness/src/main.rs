//! The `kata-harness` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use suite_args::SuiteArgs;

mod diff_cmd;
mod docs_cmd;
mod existing_cmd;
mod merge_cmd;
mod plan_cmd;
mod profile_cmd;
mod run_cmd;
mod suite_args;
mod up_cmd;
mod vm_cmd;

/// Exit code for bad input (malformed suites, unknown flags, missing components).
const EXIT_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "kata-harness",
    version,
    about = "Conformance harness for Kata Containers on containerd and Kubernetes",
    long_about = "Conformance harness for Kata Containers on containerd and Kubernetes: starts real \
daemons (a throw-away VM, private containerds on this host, a kubeadm cluster) or uses an existing \
node, runs the scenario tables of suites/*.yaml, and proves for every sandbox and container which \
runtime really ran it (runtimeType read back from the CRI, checked against containerd's record and \
the OCI runtime's state).",
    after_help = "Examples:
  kata-harness run --target local --containerd 2.1 --filter cri
  kata-harness run --target cri:///run/containerd/containerd.sock
  kata-harness list --target vm
  kata-harness doctor

Results go to results/ (junit.xml, results.json, results.html, and bundles/<trial>/ with a
reproduce.sh for each failed row). Guide: docs/guide.md in the repository."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenario suites and report which runtime ran every sandbox and container.
    #[command(after_help = "Examples:
  kata-harness run                                       every placement this machine has
  kata-harness run --target local --containerd 2.1 --filter cri::kata
  kata-harness run --target local --k8s --filter kubernetes::
  kata-harness run --suites mine.yaml --target local --containerd 2.1

Prints a table (expected, observed, verdict per row) and writes --results: junit.xml,
results.json, results.html, and bundles/<trial>/ for each failed row (error, CRI inspect JSON,
containerd config and log, reproduce.sh). Exit 0: every row passed, skipped, flaky or
quarantined; 1: a row failed; 2: bad input, before anything started; 130: interrupted, cleaned up.")]
    Run(RunArgs),
    /// List the trials the suites expand to (suite::scenario::variant), with skip reasons.
    #[command(after_help = "Examples:
  kata-harness list --target local --containerd 1.7,2.1
  kata-harness list --suites mine.yaml --target local --containerd 2.1

Loads and checks the suites, the profile and the quarantine list as run does (exit 2 on bad
input) and starts nothing.")]
    List(SuiteArgs),
    /// Show what a workload sees differently under Kata than under runc: the same pod under
    /// both, the same probes in both, each difference declared (with its reason) or not.
    #[command(after_help = "Examples:
  kata-harness diff
  kata-harness diff --handler kata --containerd 2.1
  kata-harness diff --target cri:///run/containerd/containerd.sock

Prints one table per Kata handler (probe, runc's answer, Kata's, verdict) and writes --results as
run does (results.json carries each table as data, results.html as a table). Exit 0: only
declared differences; 1: a difference no probe declares, a failed row, or no table (e.g. no Kata
here: the skip says why); 2: bad input.")]
    Diff(diff_cmd::DiffArgs),
    /// Join the result dirs of a run's shards (`run --shard K/N`) into the one report the
    /// whole run would have written.
    #[command(after_help = "Examples:
  kata-harness run --shard 1/2 --results shard-1 && kata-harness run --shard 2/2 --results shard-2
  kata-harness merge shard-1 shard-2 --out results

Writes junit.xml, results.json, results.html and bundles/ into --out, with the results in plan
order. Checks first and writes nothing when a check fails (exit 2): a dir without a readable
results.json or without a shard record, shards of different N or of different runs (command,
target, filter, planned trials), a trial or a shard given twice, a shard missing. Exit 0: every
row passed, skipped, flaky or quarantined; 1: a row failed.")]
    Merge(merge_cmd::MergeArgs),
    /// Print a file as a profile renders it: containerd's config.toml, kubeadm's config,
    /// Kata's configuration.toml, a CRI pod or container spec (crictl JSON).
    #[command(after_help = "Examples:
  kata-harness render containerd-config --containerd-version 2.1.9
  kata-harness render kata-config
  kata-harness render pod-spec --handler kata

Writes to stdout; nothing is started (kata-config unpacks the profile's Kata into a scratch dir
and removes it).")]
    Render(RenderArgs),
    /// Check what this machine can run, and why not.
    #[command(
        after_help = "One line per check (containerd versions, crun, CNI, crictl and critest, \
Kata layout and shim, KVM, vhost_vsock, vhost-net). Exit 1 when something is missing."
    )]
    Doctor,
    /// Start a node on this host to try things on by hand (every handler, Kata included),
    /// and leave it running.
    #[command(after_help = "Example:
  kata-harness up --target local --containerd 2.1
  kata-harness down

Prints crictl and ctr lines that work against it (an example pod.json and container.json are
in its run dir), e.g. for a failed row's reproduce.sh:
  CONTAINERD_SOCKET=<its socket> sh reproduce.sh")]
    Up(up_cmd::UpArgs),
    /// Stop a node started by `up` and remove everything of it.
    Down(up_cmd::DownArgs),
    /// Boot, enter and stop a test VM by hand (for debugging).
    #[command(subcommand)]
    Vm(vm_cmd::VmCommand),
    /// Write the generated references (docs/reference/: CLI, man pages, completions, suite
    /// fields; bench/README.md; suites/schema.json), or check that they are current with --check.
    Docs(docs_cmd::DocsArgs),
    /// Print the JSON Schema of a suite file (what suites/schema.json holds): editors complete
    /// and check rows with it.
    #[command(after_help = "Examples:
  kata-harness schema > my-suites/schema.json
  # then, as the first line of each suite file in my-suites/:
  # yaml-language-server: $schema=schema.json")]
    Schema,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    suites: SuiteArgs,
    /// Where JUnit, JSON and failure bundles go.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Keep run dirs (configs, logs) after they stop; with --target vm, leave a VM running
    /// when its rows fail and print how to reach it.
    #[arg(long)]
    keep: bool,
    /// Run a failed row again up to N times; one that then passes is reported flaky (never
    /// as a clean pass: with its failed attempts in every report, and the first one's bundle)
    /// and does not fail the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// What to render.
    #[arg(value_parser = profile_cmd::RENDERABLE)]
    what: String,
    /// The profile to render for (a name in profiles/, or a file) [default: default].
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// containerd version the config is for (picks the schema) [default: the profile's first].
    #[arg(long = "containerd-version")]
    containerd_version: Option<String>,
    /// With pod-spec: the runtime handler the pod asks for [default: none, the default handler].
    #[arg(long, default_value = "")]
    handler: String,
}

/// The checkout: where `suites/`, `vm-images/` and `scripts/` are.
fn repo_root() -> PathBuf {
    let here = PathBuf::from(".");
    if here.join("vm-images").is_dir() {
        here.canonicalize().unwrap_or(here)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }
}

/// A path as a rerun line names it: absolute, so the line works from any directory.
fn path_arg(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .to_string_lossy()
        .into_owned()
}

fn default_suites_dir() -> PathBuf {
    repo_root().join("suites")
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KATA_HARNESS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::List(args) => run_cmd::list(args),
        Command::Diff(args) => diff_cmd::diff(args),
        Command::Merge(args) => merge_cmd::run(args),
        Command::Render(args) => profile_cmd::render(args),
        Command::Doctor => doctor(),
        Command::Up(args) => up_cmd::up(args, &repo_root()),
        Command::Down(args) => up_cmd::down(args),
        Command::Vm(command) => vm_cmd::run(command, &repo_root()),
        Command::Docs(args) => docs_cmd::run(args, &repo_root()),
        Command::Schema => {
            print!("{}", kata_harness::scenario::model::suite_schema_json());
            Ok(ExitCode::SUCCESS)
        }
    };
    if let Some(code) = kata_harness::teardown::finish_interrupted() {
        return code;
    }
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Input problems end the command with exit code 2 and a one-line message.
fn input_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_INPUT)
}

fn doctor() -> Result<ExitCode> {
    let checks = kata_harness::doctor::checks();
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(10);
    let mut missing = false;
    for check in &checks {
        println!(
            "{:<width$}  {:<7}  {}",
            check.name,
            check.status.to_string(),
            check.detail
        );
        missing |= check.status == kata_harness::doctor::Status::Missing;
    }
    Ok(if missing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
