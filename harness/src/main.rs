//! The `kata-harness` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use existing_cmd::RuntimeFromArg;
use kata_harness::artifacts::kata::KataChoice;
use kata_harness::artifacts::kata_release::KataRelease;
use kata_harness::kube::bundle::Bundle;
use kata_harness::kube::cluster::attach::RuntimeFrom;
use kata_harness::kube::release::Release;
use kata_harness::kube::source::Source;
use kata_harness::node::Target;
use kata_harness::profile::file::Profile;
use kata_harness::profile::{ContainerdChoice, DEFAULT_CONTAINERD_LINES};
use kata_harness::provision::kata::KataPlan;
use kata_harness::provision::reach::Reach;
use kata_harness::provision::Settings;
use kata_harness::report::quarantine::{self, Quarantine};
use kata_harness::report::{self, terminal::Terminal, Recorder, RunInfo, Summary, Tee, Verdict};
use kata_harness::scenario::{plan, session, Capabilities, Suite, Variant};

mod existing_cmd;
mod profile_cmd;
mod vm_cmd;

/// Exit code for bad input (malformed suites, unknown flags, missing components).
const EXIT_INPUT: u8 = 2;

/// The VM images a `--target vm` run covers: containerd 1.6 (config schema 2) and 2.1 (schema 3).
const DEFAULT_VM_IMAGES: [&str; 2] = ["bookworm", "bookworm-containerd21"];

#[derive(Parser)]
#[command(
    name = "kata-harness",
    version,
    about = "Conformance harness for Kata Containers on containerd and Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenario suites and report which runtime ran every sandbox and container.
    Run(RunArgs),
    /// List the trials the suites expand to (suite::scenario::variant), with skip reasons.
    List(SuiteArgs),
    /// Print a file as a profile renders it: containerd's config.toml, kubeadm's config,
    /// Kata's configuration.toml, a CRI pod or container spec (crictl JSON).
    Render(RenderArgs),
    /// Check what this machine can run, and why not.
    Doctor,
    /// Boot, enter and stop a test VM by hand (for debugging).
    #[command(subcommand)]
    Vm(vm_cmd::VmCommand),
}

#[derive(clap::Args, Clone)]
struct SuiteArgs {
    /// The combination of component versions to run (a name in profiles/, or a profile
    /// file): containerd versions, VM images, Kata, Kubernetes, handlers. Default: the
    /// `default` profile. A flag given as well (--containerd, --image, --k8s-*, --kata-*,
    /// --target) overrides the profile's value, and the report says so.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Directory of suite files (*.yaml), or one suite file.
    #[arg(long, default_value_os_t = default_suites_dir())]
    suites: PathBuf,
    /// Where the suites run: all (the default profile's: the VM images, the local containerds
    /// and the local kubeadm cluster, in one report), vm (a throw-away QEMU VM per image),
    /// local (private containerds on this host), cri:///path/to/containerd.sock (an existing
    /// containerd, as it is configured: its handlers are discovered, its config is never
    /// rewritten, and what the rows create is removed), or ssh://user@host[:port] (the same
    /// for a containerd on that host, over SSH: --node-socket, --ssh-identity, --known-hosts).
    /// Default: the profile's.
    #[arg(long)]
    target: Option<String>,
    /// With --target cri://: also run the rows that change the node and undo it (they remove
    /// and re-import its sandbox image); without it they are skipped, naming what they touch.
    #[arg(long)]
    allow_node_changes: bool,
    /// Run the cluster suites against an existing cluster through this kubeconfig, as it is
    /// (nothing started or torn down; the rows work in a namespace of the run's own, deleted
    /// at the end, on Ctrl-C too). runtimeType is read through the node's CRI where its
    /// socket is on this host (single-node clusters), else from the pods' status.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: where the pods' runtimes are read: cri (the node's CRI socket must
    /// be on this host) or pod-status (the API only: each pod's RuntimeClass handler, the
    /// handlers its node reports, its containers' IDs; every row says runtimeType was not
    /// read) [default: cri where the socket is here, else pod-status].
    #[arg(long, value_enum, value_name = "cri|pod-status", requires = "kubeconfig")]
    runtime_from: Option<RuntimeFromArg>,
    /// With --target ssh://: the CRI socket on that host.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    node_socket: PathBuf,
    /// With --target ssh://: the private key to log in with [default: ~/.ssh/id_ed25519, else
    /// ~/.ssh/id_rsa].
    #[arg(long, value_name = "FILE")]
    ssh_identity: Option<PathBuf>,
    /// With --target ssh://: the known_hosts file the host's key must be in (never trusted on
    /// first use) [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Set from a profile without a cluster: `all` then has none.
    #[arg(skip)]
    no_cluster: bool,
    /// With --target local: containerd release lines or binary directories [default: the
    /// profile's, 1.6,1.7,2.1].
    #[arg(long = "containerd", value_delimiter = ',')]
    containerd: Option<Vec<String>>,
    /// With --target vm: image recipes under vm-images/, one VM and variant each
    /// [default: bookworm,bookworm-containerd21].
    #[arg(long = "image", value_delimiter = ',')]
    images: Option<Vec<String>>,
    /// Keep only trials whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// With --filter: keep only the trial with exactly this name.
    #[arg(long, requires = "filter")]
    exact: bool,
    /// Also run the cluster suites (suites with `placements: [cluster]`) against a kubeadm
    /// cluster on this host; `run` builds the offline bundle first if it is missing.
    #[arg(long)]
    k8s: bool,
    /// A Kubernetes bundle directory (bin/kubeadm, bin/kubelet, ...; any version); implies --k8s.
    /// Default: $KATA_HARNESS_K8S_BUNDLE, else the one scripts/build-k8s-bundle builds.
    #[arg(long = "k8s-bundle")]
    k8s_bundle: Option<PathBuf>,
    /// An upstream Kubernetes release (e.g. v1.20.2); implies --k8s. `run` downloads its
    /// binaries from dl.k8s.io ($KATA_HARNESS_K8S_RELEASE_URL overrides the base URL) into the
    /// cache once, verified by the sha256 in k8s-release.lock ($KATA_HARNESS_K8S_RELEASE_LOCK),
    /// which records them on the first download. Upstream has no pause binary: the pause image
    /// is then busybox-based.
    #[arg(long = "k8s-release", value_name = "VERSION", conflicts_with = "k8s_bundle")]
    k8s_release: Option<String>,
    /// Kata in the kata-static layout (a directory holding opt/kata, or a kata-static tarball,
    /// unpacked once into the cache). Default: $KATA_HARNESS_KATA_BUNDLE, else the source build
    /// of scripts/build-kata.
    #[arg(long = "kata-bundle", value_name = "DIR|TARBALL")]
    kata_bundle: Option<PathBuf>,
    /// An upstream Kata release (e.g. 3.30.0). `run` downloads its kata-static tarball(s) from
    /// GitHub releases ($KATA_HARNESS_KATA_RELEASE_URL overrides the base URL, e.g. a mirror
    /// laid out as <base>/<version>/<asset>) into the cache once, verified by the sha256 in
    /// kata-release.lock ($KATA_HARNESS_KATA_RELEASE_LOCK), which records them on the first
    /// download (upstream publishes no checksums); `list` uses the cache only. Assets:
    /// kata-static-<V>-x86_64.tar.xz (2.0 to 3.1), kata-static-<V>-amd64.tar.xz (3.2 to 3.20),
    /// kata-static-<V>-amd64.tar.zst (3.21 to 4.0); from 4.1 that and
    /// kata-go-static-<V>-amd64.tar.zst, unpacked into one layout.
    #[arg(long = "kata-release", value_name = "VERSION", conflicts_with = "kata_bundle")]
    kata_release: Option<String>,
    /// Known failures (row pattern, reason, tracker link, expiry date), reported as
    /// quarantined instead of failed until their date; an expired entry is an error. Default:
    /// quarantine.yaml in the --suites folder, if it has one; `none` reports every failure as
    /// failed.
    #[arg(long, value_name = "FILE|none")]
    quarantine: Option<String>,
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

impl SuiteArgs {
    fn containerd_lines(&self) -> Vec<String> {
        self.containerd
            .clone()
            .unwrap_or_else(|| DEFAULT_CONTAINERD_LINES.map(String::from).to_vec())
    }

    /// The cluster's bundle source, if the run has a cluster: `--k8s-release` (over
    /// $KATA_HARNESS_K8S_BUNDLE), `--k8s-bundle` or the variable, else the built one with --k8s.
    fn k8s_source(&self) -> Result<Option<Source>, String> {
        if let Some(version) = &self.k8s_release {
            let release = Release::new(version, &repo_root())
                .map_err(|e| format!("--k8s-release {version}: {}", report::chain(&e)))?;
            return Ok(Some(Source::Release(release)));
        }
        Ok(match Bundle::user_dir(self.k8s_bundle.as_deref()) {
            Some(dir) => Some(Source::Dir(dir)),
            None if self.k8s => Some(Source::Default),
            None => None,
        })
    }

    /// The flag that names the cluster, for messages about it.
    fn k8s_flag(&self) -> Option<String> {
        match (&self.k8s_release, self.k8s || self.k8s_bundle.is_some()) {
            (Some(version), _) => Some(format!("--k8s-release {version}")),
            (None, true) => Some("--k8s".into()),
            (None, false) => None,
        }
    }

    /// Which Kata the local nodes and the cluster get. `fetch`: download a `--kata-release`
    /// that is not cached yet (`run`); else the cache only (`list`).
    fn kata_choice(&self, fetch: bool) -> Result<KataChoice, String> {
        if let Some(version) = &self.kata_release {
            let layout = KataRelease::new(version, &repo_root()).and_then(|release| {
                if fetch {
                    release.fetch()
                } else {
                    release.open_cached()
                }
            });
            // One line: a tar or curl stderr tail may hold several.
            return layout.map(KataChoice::Resolved).map_err(|e| {
                format!(
                    "--kata-release {version}: {}",
                    report::chain(&e).replace('\n', "; ")
                )
            });
        }
        Ok(match &self.kata_bundle {
            Some(path) => KataChoice::Bundle(path.clone()),
            None => KataChoice::Default,
        })
    }

    /// `kata-harness run` with the flags that rerun this run's placements and suites (the
    /// failure bundles' hint narrows it with `--filter <trial> --exact`).
    fn rerun_argv(&self, target: &Target) -> Vec<String> {
        let mut argv: Vec<String> = ["kata-harness", "run"].map(String::from).to_vec();
        // An existing cluster is the whole run (`--kubeconfig`, below): no target of its own.
        let placements = if self.kubeconfig.is_some() {
            None
        } else {
            Some(target)
        };
        if let Some(target) = placements {
            argv.extend(["--target".into(), target.to_string()]);
        }
        if matches!(placements, Some(Target::Vm | Target::All)) {
            argv.extend(["--image".into(), self.image_recipes().join(",")]);
        }
        if matches!(placements, Some(Target::Local | Target::All)) {
            argv.extend(["--containerd".into(), self.containerd_lines().join(",")]);
        }
        // Suites from elsewhere than the checkout's suites/ are named, or the rerun would
        // load other rows (or none of that name).
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
        if canonical(&self.suites) != canonical(&default_suites_dir()) {
            argv.extend(["--suites".into(), path_arg(&self.suites)]);
        }
        match (&self.k8s_release, &self.k8s_bundle) {
            (Some(version), _) => argv.extend(["--k8s-release".into(), version.clone()]),
            (None, Some(dir)) => argv.extend(["--k8s-bundle".into(), path_arg(dir)]),
            (None, None) if self.k8s => argv.push("--k8s".into()),
            (None, None) => {}
        }
        match (&self.kata_release, &self.kata_bundle) {
            (Some(version), _) => argv.extend(["--kata-release".into(), version.clone()]),
            (None, Some(path)) => argv.extend(["--kata-bundle".into(), path_arg(path)]),
            (None, None) => {}
        }
        if self.allow_node_changes {
            argv.push("--allow-node-changes".into());
        }
        if let Some(kubeconfig) = &self.kubeconfig {
            argv.extend(["--kubeconfig".into(), path_arg(kubeconfig)]);
            if let Some(from) = self.runtime_from {
                argv.extend(["--runtime-from".into(), from.name().into()]);
            }
        }
        if let Target::Ssh { .. } = target {
            argv.extend(["--node-socket".into(), path_arg(&self.node_socket)]);
            for (flag, file) in [
                ("--ssh-identity", &self.ssh_identity),
                ("--known-hosts", &self.known_hosts),
            ] {
                if let Some(file) = file {
                    argv.extend([flag.into(), path_arg(file)]);
                }
            }
        }
        match self.quarantine.as_deref() {
            Some("none") => argv.extend(["--quarantine".into(), "none".into()]),
            Some(file) => argv.extend(["--quarantine".into(), path_arg(Path::new(file))]),
            None => {}
        }
        argv
    }

    /// How `--target ssh://user@host:port` is reached: the identity and known_hosts given,
    /// else the user's own; both must exist.
    fn ssh_reach(&self, user: &str, host: &str, port: u16) -> Result<Reach, String> {
        let ssh_dir = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".ssh");
        let identity = match &self.ssh_identity {
            Some(file) => file.clone(),
            None => ["id_ed25519", "id_rsa"]
                .iter()
                .map(|name| ssh_dir.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    format!(
                        "--target ssh://{user}@{host}: no --ssh-identity, and no ~/.ssh/id_ed25519 or id_rsa"
                    )
                })?,
        };
        let known_hosts = self
            .known_hosts
            .clone()
            .unwrap_or_else(|| ssh_dir.join("known_hosts"));
        for (flag, file) in [("--ssh-identity", &identity), ("--known-hosts", &known_hosts)] {
            if !file.is_file() {
                return Err(format!("{flag} {}: no such file", file.display()));
            }
        }
        Ok(Reach::Ssh {
            user: user.to_owned(),
            host: host.to_owned(),
            port,
            identity: path_arg(&identity).into(),
            known_hosts: path_arg(&known_hosts).into(),
        })
    }

    fn quarantine(&self) -> Result<Quarantine, String> {
        let today = quarantine::today();
        match self.quarantine.as_deref() {
            Some("none") => Ok(Quarantine::default()),
            Some(file) => Quarantine::load(Path::new(file), today).map_err(|e| e.to_string()),
            None => Quarantine::beside(&self.suites, today).map_err(|e| e.to_string()),
        }
    }

    fn image_recipes(&self) -> Vec<String> {
        self.images
            .clone()
            .unwrap_or_else(|| DEFAULT_VM_IMAGES.map(String::from).to_vec())
    }
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
        Command::Run(args) => run(args),
        Command::List(args) => list(args),
        Command::Render(args) => profile_cmd::render(args),
        Command::Doctor => doctor(),
        Command::Vm(command) => vm_cmd::run(command, &repo_root()),
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

struct Planned {
    /// The flags as the run uses them: the given ones, the rest from the profile.
    args: SuiteArgs,
    profile: Profile,
    /// What the reports say about the run's components.
    environment: Vec<(String, String)>,
    target: Target,
    trials: Vec<plan::Trial>,
    variants: Vec<Variant>,
    /// How local nodes install Kata (from the host's capabilities).
    kata: Option<KataPlan>,
    quarantine: Quarantine,
}

fn load_plan(args: &SuiteArgs) -> Result<Planned, ExitCode> {
    load_plan_with(args, false)
}

/// `build_bundle`: build the default Kubernetes bundle if it is missing and download the Kata
/// release if it is not cached (`run`, not `list`).
fn load_plan_with(given: &SuiteArgs, build_bundle: bool) -> Result<Planned, ExitCode> {
    let profile = profile_cmd::load(&repo_root(), given.profile.as_deref()).map_err(input_error)?;
    let (args, environment) = profile_cmd::with_profile(given, &profile).map_err(input_error)?;
    let args = &args;
    let suites = if args.suites.is_dir() {
        Suite::load_dir(&args.suites)
    } else {
        Suite::load(&args.suites).map(|s| vec![s])
    };
    let suites = suites.map_err(input_error)?;
    let quarantine = args.quarantine().map_err(input_error)?;
    let target: Target = args
        .target
        .as_deref()
        .unwrap_or("all")
        .parse()
        .map_err(input_error)?;
    let mut variants = Vec::new();
    let kata = args.kata_choice(build_bundle).map_err(input_error)?;
    let local = Capabilities::probe_local_with(&kata)
        .map_err(|e| input_error(format!("--kata-bundle: {}", report::chain(&e))))?;
    // A flag for the other target would be silently ignored: refuse it instead.
    match (&target, &args.containerd, &args.images) {
        (Target::Local, _, Some(_)) => return Err(input_error("--image applies to --target vm")),
        (Target::Vm, Some(_), _) => {
            return Err(input_error(
                "--containerd applies to --target local (VM images bring their own containerd: use --image)",
            ))
        }
        _ => {}
    }
    let attached = args.kubeconfig.is_some();
    if let Some(kubeconfig) = &args.kubeconfig {
        if given.target.is_some()
            || given.containerd.is_some()
            || given.images.is_some()
            || given.k8s_flag().is_some()
        {
            return Err(input_error(
                "--kubeconfig runs that cluster as it is: --target, --containerd, --image and --k8s* do not apply",
            ));
        }
        let from = args.runtime_from.map_or(RuntimeFrom::Auto, RuntimeFromArg::into);
        variants.push(existing_cmd::existing_cluster_variant(kubeconfig, from).map_err(input_error)?);
    }
    let local_target = !attached && matches!(target, Target::Local | Target::All);
    let vm_target = !attached && matches!(target, Target::Vm | Target::All);
    let existing = match &target {
        Target::Cri(socket) => Some((Reach::Local, socket.clone())),
        Target::Ssh { user, host, port } => {
            let reach = args.ssh_reach(user, host, *port).map_err(input_error)?;
            Some((reach, args.node_socket.clone()))
        }
        _ => None,
    };
    if let Some((reach, socket)) = existing {
        if given.containerd.is_some() || given.images.is_some() || given.k8s_flag().is_some() {
            return Err(input_error(format!(
                "--target {target} runs the node as it is: --containerd, --image and --k8s* do not apply"
            )));
        }
        let variant = existing_cmd::existing_variant(&target, reach, &socket, args.allow_node_changes)
            .map_err(input_error)?;
        variants.push(variant);
    } else if args.allow_node_changes {
        return Err(input_error(
            "--allow-node-changes applies to --target cri://... and ssh://...",
        ));
    }
    if local_target {
        for text in &args.containerd_lines() {
            let choice: ContainerdChoice = text
                .parse()
                .map_err(|e| input_error(format!("--containerd {text}: {e}")))?;
            let found = choice
                .resolve()
                .map_err(|e| input_error(format!("--containerd {text}: {e}")))?;
            if given.containerd.is_none() {
                profile_cmd::check_containerd(&profile, &choice, found.version).map_err(input_error)?;
            }
            variants.push((Variant::containerd(choice), local.clone()));
        }
    }
    // `all` includes the cluster (its best placement here is this host); `list` shows its
    // rows once the bundle exists (`run` builds it).
    let (source, implicit) = match args.k8s_source().map_err(input_error)? {
        _ if attached => (None, false),
        None if target == Target::All && !args.no_cluster => {
            (Some(kata_harness::kube::source::Source::Default), true)
        }
        other => (other, false),
    };
    if let Some(source) = source {
        let bundle = if build_bundle {
            source.ensure(&repo_root())
        } else {
            source.open()
        };
        let flag = args.k8s_flag().unwrap_or_else(|| "--k8s".into());
        match bundle {
            Ok(bundle) => {
                if let (Some(k8s), None) = (&profile.kubernetes, given.k8s_flag()) {
                    let wanted: kata_harness::profile::Version = k8s.version.parse().map_err(input_error)?;
                    if wanted != bundle.version {
                        return Err(input_error(format!(
                            "profile {}: Kubernetes {wanted} wanted, the bundle {} is {}",
                            profile.profile,
                            bundle.dir.display(),
                            bundle.version
                        )));
                    }
                }
                variants.push((Variant::cluster(bundle), local.clone()))
            }
            Err(e) if implicit && !build_bundle => eprintln!(
                "note: the kubernetes suite is not listed: {} (`run` builds the bundle)",
                report::chain(&e)
            ),
            Err(e) => return Err(input_error(format!("{flag}: {}", report::chain(&e)))),
        }
    }
    if vm_target {
        let repo = repo_root();
        for recipe in &args.image_recipes() {
            if !repo.join("vm-images").join(recipe).join("recipe.conf").is_file() {
                return Err(input_error(format!(
                    "--image {recipe}: no recipe vm-images/{recipe}/recipe.conf"
                )));
            }
            variants.push((Variant::vm(recipe), Capabilities::for_vm(recipe, None)));
        }
    }
    let trials = plan::plan(&suites, &variants);
    let trials = plan::filter(trials, args.filter.as_deref(), args.exact);
    if trials.is_empty() {
        return Err(input_error("no trials match (check --filter and the suites)"));
    }
    Ok(Planned {
        args: args.clone(),
        profile,
        environment,
        target,
        trials,
        variants: variants.into_iter().map(|(v, _)| v).collect(),
        kata: local.kata,
        quarantine,
    })
}

fn list(args: SuiteArgs) -> Result<ExitCode> {
    let planned = match load_plan(&args) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    for trial in &planned.trials {
        match &trial.skip {
            Some(reason) => println!("{}  (skipped: {reason})", trial.name),
            None => println!("{}", trial.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let planned = match load_plan_with(&args.suites, true) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
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
        let crun = kata_harness::provision::crun_binary();
        match profile_cmd::host_tools(&planned.profile, &crun) {
            Ok(found) => environment.extend(found),
            Err(message) => return Ok(input_error(message)),
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
    };
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    let mut terminal = Terminal::new();
    let mut recorder = Recorder::default();
    let mut results = {
        let mut tee = Tee(vec![&mut terminal, &mut recorder]);
        runtime.block_on(session::run(
            &planned.trials,
            &planned.variants,
            &settings,
            &planned.quarantine,
            args.retries,
            &mut tee,
        ))
    };
    let mut info = info;
    info.environment.extend(recorder.testbed_facts());
    report::write_results(&args.results, &info, &mut results)
        .with_context(|| format!("failed to write results to {}", args.results.display()))?;
    let summary = Summary::of(&results);
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
    Ok(if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
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
