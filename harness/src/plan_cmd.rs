//! From the flags and the profile to the trials a run has: the suites loaded, the targets'
//! variants resolved, every flag that does not apply refused with its name.

use std::process::ExitCode;

use kata_harness::artifacts::{cri_tools, provenance};
use kata_harness::kube::cluster::attach::RuntimeFrom;
use kata_harness::node::Target;
use kata_harness::profile::file::Profile;
use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::kata::KataPlan;
use kata_harness::provision::reach::Reach;
use kata_harness::report::identity::{Selection, ShardRecord};
use kata_harness::report::{self, quarantine::Quarantine};
use kata_harness::scenario::shard::{self, Durations};
use kata_harness::scenario::{plan, Capabilities, Suite, Variant};

use crate::existing_cmd::{self, RuntimeFromArg};
use crate::suite_args::SuiteArgs;
use crate::{input_error, profile_cmd, repo_root};

pub(crate) struct Planned {
    /// The flags as the run uses them: the given ones, the rest from the profile.
    pub(crate) args: SuiteArgs,
    pub(crate) profile: Profile,
    /// What the reports say about the run's components.
    pub(crate) environment: Vec<(String, String)>,
    pub(crate) target: Target,
    pub(crate) trials: Vec<plan::Trial>,
    pub(crate) variants: Vec<Variant>,
    /// How local nodes install Kata (from the host's capabilities).
    pub(crate) kata: Option<KataPlan>,
    /// runtime-rs for the local nodes, where this host has it.
    pub(crate) kata_rs: Option<KataPlan>,
    pub(crate) quarantine: Quarantine,
    /// The trials planned before `--shard` took its share.
    pub(crate) selection: Selection,
    /// With `--shard`: which share `trials` are.
    pub(crate) shard: Option<ShardRecord>,
}

pub(crate) fn load_plan(args: &SuiteArgs) -> Result<Planned, ExitCode> {
    load_plan_with(args, false)
}

/// `build_bundle`: build the default Kubernetes bundle if it is missing and download the Kata
/// release if it is not cached (`run`, not `list`).
pub(crate) fn load_plan_with(given: &SuiteArgs, build_bundle: bool) -> Result<Planned, ExitCode> {
    let profile = profile_cmd::load(&repo_root(), given.profile.as_deref()).map_err(input_error)?;
    let (args, mut environment) = profile_cmd::with_profile(given, &profile).map_err(input_error)?;
    let args = &args;
    let suites = if args.suites.is_dir() {
        Suite::load_dir(&args.suites)
    } else {
        Suite::load(&args.suites).map(|s| vec![s])
    };
    // The cluster's RuntimeClass kata as the profile points it (its rows expect that runtime).
    let kata_class = profile
        .kubernetes
        .as_ref()
        .map_or("kata", |k| k.kata_runtime_class.as_str());
    let suites: Vec<Suite> = suites
        .map_err(input_error)?
        .into_iter()
        .map(|s| s.with_kata_runtime_class(kata_class))
        .collect();
    if kata_class != "kata" {
        environment.push((
            "kata-runtime-class".into(),
            format!("RuntimeClass kata -> handler {kata_class} (profile kubernetes.kata_runtime_class)"),
        ));
    }
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
    if local_target || vm_target {
        environment.push(("kvm".into(), kvm_line(&kata)));
    }
    if local_target {
        environment.extend(kata_and_crictl_origins(&local));
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
            let from = provenance::of_dir(&choice.dir()).unwrap_or_else(|| found.version_text.clone());
            environment.push((format!("artifact-containerd-{text}"), from));
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
                let from =
                    provenance::of_dir(&bundle.dir).unwrap_or_else(|| bundle.dir.display().to_string());
                environment.push(("artifact-kubernetes".into(), from));
                let line = profile
                    .kubernetes
                    .as_ref()
                    .map_or("1.6", |k| k.containerd.as_str());
                variants.push((Variant::cluster(bundle), local.on_containerd_line(line)))
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
            variants.push((Variant::vm(recipe), Capabilities::for_vm(recipe, &repo, &local)));
        }
    }
    let trials = plan::plan(&suites, &variants);
    let trials = plan::filter(trials, args.filter.as_deref(), args.exact);
    if trials.is_empty() {
        return Err(input_error("no trials match (check --filter and the suites)"));
    }
    let selection = Selection::of(
        trials.iter().map(|t| t.name.as_str()),
        args.filter.as_deref(),
        args.exact,
    );
    let variants: Vec<Variant> = variants.into_iter().map(|(v, _)| v).collect();
    let (trials, shard) = match args.shard {
        Some(k_of_n) => {
            let durations = args
                .durations
                .as_deref()
                .map(Durations::load)
                .transpose()
                .map_err(|e| input_error(format!("--durations: {}", report::chain(&e))))?;
            let (mine, record) = shard::select(trials, &variants, k_of_n, durations.as_ref());
            (mine, Some(record))
        }
        None => (trials, None),
    };
    Ok(Planned {
        args: args.clone(),
        profile,
        environment,
        target,
        trials,
        variants,
        kata: local.kata,
        kata_rs: local.kata_rs,
        quarantine,
        selection,
        shard,
    })
}

/// The KVM verdict Kata's rows were planned by (the planner's own call; its probe record
/// makes this one cheap), as the report's `kvm` line.
fn kvm_line(kata: &kata_harness::artifacts::kata::KataChoice) -> String {
    let verdict = kata_harness::doctor::kata_kvm_verdict(kata);
    let usable = if verdict.usable { "usable" } else { "not usable" };
    format!("{usable}: {}", verdict.reason)
}

/// Where the local nodes' Kata and crictl came from (`artifact-*` lines of the report), as the
/// manifests beside them say: a source build, a bundle or an upstream release.
fn kata_and_crictl_origins(local: &Capabilities) -> Vec<(String, String)> {
    let kata = match &local.kata {
        Some(plan) => {
            let layout = &plan.layout;
            provenance::of_dir(&layout.root).unwrap_or_else(|| layout.describe())
        }
        None => format!("none ({})", local.kata_absent.as_deref().unwrap_or("no Kata")),
    };
    let crictl = match cri_tools::crictl() {
        // <dir>/bin/crictl: the manifest is in <dir>.
        Some(path) => path
            .parent()
            .and_then(|bin| bin.parent())
            .and_then(provenance::of_dir)
            .unwrap_or_else(|| format!("{} (no manifest)", path.display())),
        None => cri_tools::MISSING.to_owned(),
    };
    let kata_rs = match &local.kata_rs {
        Some(plan) => provenance::of_dir(&plan.layout.root).unwrap_or_else(|| plan.layout.describe()),
        None => format!(
            "none ({})",
            local.kata_rs_absent.as_deref().unwrap_or("no runtime-rs")
        ),
    };
    vec![
        ("artifact-kata".into(), kata),
        ("artifact-kata-rs".into(), kata_rs),
        ("artifact-crictl".into(), crictl),
    ]
}
