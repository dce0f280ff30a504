//! `--profile`: a profile file turned into the flags of a run, the facts of its report, and
//! the files `render` prints.
//!
//! A profile only supplies defaults: a flag given as well (`--containerd 1.7`) wins, and the
//! report says that component came from the flag.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kata_harness::artifacts::kata::KataChoice;
use kata_harness::artifacts::kata_release::KataRelease;
use kata_harness::report;

use crate::{input_error, path_arg, repo_root, RenderArgs, SuiteArgs};
use std::process::Command;
use std::time::Duration;

use kata_harness::profile::file::{ConfigStyle, HandlerSpec, Profile, Source, DEFAULT_PROFILE};
use kata_harness::profile::{ContainerdChoice, Version};
use kata_harness::render::containerd_defaults::{self, Mirror};
use kata_harness::render::cri::{ContainerSpec, PodSpec};
use kata_harness::render::kubeadm::{default_image_repository, KubeadmApi, KubeadmConfig};
use kata_harness::render::{ConfigSchema, ContainerdConfig, RuntimeHandler, RuntimeOptions};

/// The annotation containerd 1.x's CRI reads to pick `untrusted_workload_runtime`.
pub const UNTRUSTED_ANNOTATION: &str = "io.kubernetes.cri.untrusted-workload";

/// `--profile NAME|FILE`: a name in the checkout's `profiles/`, or a path to a profile file;
/// none: the default profile.
pub fn load(repo: &Path, arg: Option<&str>) -> Result<Profile, String> {
    let result = match arg {
        Some(path) if path.contains('/') || path.ends_with(".yaml") => {
            kata_harness::profile::load(Path::new(path))
        }
        Some(name) => kata_harness::profile::load_named(&repo.join("profiles"), name),
        None => kata_harness::profile::load_named(&repo.join("profiles"), DEFAULT_PROFILE),
    };
    result.map_err(|e| format!("--profile: {e}"))
}

/// Why a component of this source cannot be provisioned by a run, if it cannot.
fn not_runnable(profile: &Profile, what: &str, version: &str, source: &Source) -> Result<(), String> {
    match source {
        Source::External(how) => Err(format!(
            "profile {}: {what} {version} is installed outside the harness ({how}): this profile can be rendered (`kata-harness render --profile {}`), not run",
            profile.profile, profile.profile
        )),
        _ => Ok(()),
    }
}

/// The containerd choices of the profile's local variants, in order.
pub fn containerd_choices(profile: &Profile) -> Result<Vec<ContainerdChoice>, String> {
    profile
        .containerd
        .iter()
        .map(|c| {
            not_runnable(profile, "containerd", &c.version, &c.source)?;
            let version: Version = c.version.parse().map_err(|e| format!("{e}"))?;
            Ok(match &c.source {
                Source::Bundle(dir) => ContainerdChoice::Dir(dir.clone()),
                _ => ContainerdChoice::Line(Profile::line_of(version)),
            })
        })
        .collect()
}

/// The resolved containerd must be the version the profile names: a cache line updated by a
/// newer Debian package is a different combination.
pub fn check_containerd(profile: &Profile, choice: &ContainerdChoice, found: Version) -> Result<(), String> {
    let wanted = profile
        .containerd
        .iter()
        .filter_map(|c| c.version.parse::<Version>().ok())
        .find(|v| match choice {
            ContainerdChoice::Line(line) => Profile::line_of(*v) == *line,
            ContainerdChoice::Dir(_) => true,
        });
    match wanted {
        Some(v) if v != found => Err(format!(
            "profile {}: containerd {v} wanted, {} has {found} ({})",
            profile.profile,
            choice.dir().display(),
            profile.file.display()
        )),
        _ => Ok(()),
    }
}

/// Local nodes and the cluster configure the harness's own handler set (the one the suites'
/// rows name); a profile that declares another can be rendered, not run.
pub fn standard_handlers_only(profile: &Profile) -> Result<(), String> {
    let standard = kata_harness::provision::standard_handlers(Path::new("/"), "crun");
    let declared: Vec<(&str, &str)> = profile
        .handlers
        .runtimes
        .iter()
        .map(|h| (h.name.as_str(), h.runtime_type.as_str()))
        .collect();
    let ours: Vec<(&str, &str)> = standard
        .iter()
        .map(|h| (h.name.as_str(), h.runtime_type.as_str()))
        .collect();
    if declared != ours || profile.handlers.default != "runc" || profile.handlers.untrusted_workload.is_some()
    {
        let names: Vec<String> = ours.iter().map(|(n, t)| format!("{n}={t}")).collect();
        return Err(format!(
            "profile {}: its handlers differ from the ones local nodes configure (default runc; {}): it can be rendered, not run",
            profile.profile,
            names.join(", ")
        ));
    }
    Ok(())
}

/// A component as its `--*-bundle` and `--*-release` flags say it (neither: the source
/// build, the default).
#[derive(Debug, Default)]
pub struct ArtifactFlags {
    pub bundle: Option<PathBuf>,
    pub release: Option<String>,
}

impl ArtifactFlags {
    fn of(source: &Source, release: String) -> ArtifactFlags {
        match source {
            Source::Bundle(path) => ArtifactFlags {
                bundle: Some(path.clone()),
                release: None,
            },
            Source::Release(_) => ArtifactFlags {
                bundle: None,
                release: Some(release),
            },
            _ => ArtifactFlags::default(),
        }
    }
}

/// The profile's Kata as the `--kata-*` flags say it.
pub fn kata_flags(profile: &Profile) -> Result<ArtifactFlags, String> {
    let Some(kata) = &profile.kata else {
        return Ok(ArtifactFlags::default());
    };
    not_runnable(profile, "Kata", &kata.version, &kata.source)?;
    Ok(ArtifactFlags::of(&kata.source, kata.version.clone()))
}

/// The profile's cluster as the `--k8s-*` flags say it, or `None` when it has no cluster.
pub fn k8s_flags(profile: &Profile) -> Result<Option<ArtifactFlags>, String> {
    let Some(k8s) = &profile.kubernetes else {
        return Ok(None);
    };
    not_runnable(profile, "Kubernetes", &k8s.version, &k8s.source)?;
    let release = format!("v{}", k8s.version.trim_start_matches('v'));
    Ok(Some(ArtifactFlags::of(&k8s.source, release)))
}

/// Where the host tools a local node runs are, and how their versions are asked for.
#[derive(Debug, Clone)]
pub struct HostProbe {
    /// `runc` (on PATH).
    pub runc: PathBuf,
    /// The crun local nodes use ([`kata_harness::provision::crun_binary`]).
    pub crun: PathBuf,
    /// `dpkg-query` (on PATH): the CNI plugins print no version of their own on Debian.
    pub dpkg_query: PathBuf,
    /// A CNI plugin local nodes run (`/usr/lib/cni/bridge`), which upstream builds make say
    /// their version.
    pub cni_plugin: PathBuf,
}

impl HostProbe {
    /// This host, as local nodes find the tools.
    pub fn this_host(crun: PathBuf) -> HostProbe {
        HostProbe {
            runc: "runc".into(),
            crun,
            dpkg_query: "dpkg-query".into(),
            cni_plugin: "/usr/lib/cni/bridge".into(),
        }
    }

    /// The CNI plugins' version: their Debian package's, else what the plugin says of itself
    /// (`CNI bridge plugin v1.4.0`), else why neither could be had.
    fn cni(&self) -> Result<String, String> {
        let package = version_line(
            &self.dpkg_query,
            &[
                "-W",
                "-f=containernetworking-plugins ${Version}",
                "containernetworking-plugins",
            ],
            Stream::Stdout,
        );
        // Run without CNI_COMMAND, a plugin prints its "about" line on stderr.
        package.or_else(|no_package| {
            version_line(&self.cni_plugin, &[], Stream::Stderr)
                .map_err(|no_plugin| format!("{no_package}; {no_plugin}"))
        })
    }
}

/// The host tools a local node runs (runc, crun, the CNI plugins) as this host has them:
/// `(<name>-found, what was found)` for the report. A version the profile pins is enforced
/// (an error naming the profile file and field); a host tool without one is reported as
/// found, or as unknown with the reason, and never fails the run here.
pub fn host_tools(profile: &Profile, probe: &HostProbe) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    let mut tools = vec![(
        "runc",
        "runc",
        &profile.runc,
        version_line(&probe.runc, &["--version"], Stream::Stdout),
    )];
    if let Some(c) = &profile.crun {
        tools.push((
            "crun",
            "crun",
            c,
            version_line(&probe.crun, &["--version"], Stream::Stdout),
        ));
    }
    tools.push(("cni-plugins", "cni", &profile.cni, probe.cni()));
    for (name, field, tool, line) in tools {
        let Some(version) = &tool.version else {
            let line = line.unwrap_or_else(|why| format!("unknown ({why})"));
            found.push((format!("{name}-found"), line));
            continue;
        };
        not_runnable(profile, name, version, &tool.source)?;
        let pinned = |what: String| {
            format!(
                "{}, field {field}.version: {name} {version} wanted, {what}",
                profile.file.display()
            )
        };
        let line = line.map_err(|e| pinned(format!("but its version cannot be read here: {e}")))?;
        let matches = line.split_whitespace().any(|word| {
            let word = word.trim_start_matches('v');
            word == version
                || word
                    .strip_prefix(version.as_str())
                    .is_some_and(|rest| rest.starts_with(['+', '~', '-']))
        });
        if !matches {
            return Err(pinned(format!("this host has {line:?}")));
        }
        found.push((format!("{name}-found"), line));
    }
    Ok(found)
}

/// Which output of a program holds its version line.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// The first non-empty line a program that exits 0 prints on `stream` for these arguments
/// (dpkg-query without the package exits 1: no version, and the reason says so).
fn version_line(program: &Path, args: &[&str], stream: Stream) -> Result<String, String> {
    let mut command = Command::new(program);
    command.args(args).env_remove("CNI_COMMAND");
    let output = kata_harness::process::run(command, Duration::from_secs(20))
        .map_err(|e| format!("{}: {}", program.display(), kata_harness::report::chain(&e)))?;
    let text = match stream {
        Stream::Stdout => output.stdout,
        Stream::Stderr => output.stderr,
    };
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} printed no version", program.display()))
}

/// A profile handler as containerd's config model has it; runc-shim handlers keep their
/// state under `runtime_root`.
pub fn runtime_handler(spec: &HandlerSpec, runtime_root: &Path) -> RuntimeHandler {
    let runc_shim = spec.runtime_type == "io.containerd.runc.v2";
    RuntimeHandler {
        name: spec.name.clone(),
        runtime_type: spec.runtime_type.clone(),
        options: RuntimeOptions {
            binary_name: spec.engine.clone().filter(|e| !e.is_empty()),
            root: runc_shim.then(|| runtime_root.to_owned()),
            config_path: None,
        },
        pod_annotations: if spec.runtime_type.starts_with("io.containerd.kata") {
            vec!["io.katacontainers.*".into()]
        } else {
            vec![]
        },
    }
}

/// What `render` can print.
pub const RENDERABLE: [&str; 5] = [
    "containerd-config",
    "kubeadm-config",
    "kata-config",
    "pod-spec",
    "container-spec",
];

/// containerd's config.toml for one of the profile's containerd versions (default: its first),
/// at the system paths a node installed by hand uses.
pub fn containerd_config(profile: &Profile, version: Option<&str>) -> Result<String, String> {
    let version: Version = match version {
        Some(text) => text.parse().map_err(|e| format!("--containerd-version: {e}"))?,
        None => *profile.containerd_versions().first().ok_or_else(|| {
            format!(
                "profile {} names no containerd: pass --containerd-version",
                profile.profile
            )
        })?,
    };
    let settings = &profile.containerd_config;
    let defaults_style = settings.style == ConfigStyle::Defaults;
    let config = ContainerdConfig {
        version,
        root: "/var/lib/containerd".into(),
        state: "/run/containerd".into(),
        grpc_address: "/run/containerd/containerd.sock".into(),
        temp_dir: "/var/lib/kata-harness/tmp".into(),
        opt_dir: "/opt/containerd".into(),
        sandbox_image: settings
            .sandbox_image
            .clone()
            .unwrap_or_else(|| kata_harness::provision::SANDBOX_IMAGE.into()),
        default_runtime: profile.handlers.default.clone(),
        runtimes: profile
            .handlers
            .runtimes
            .iter()
            .map(|h| runtime_handler(h, Path::new("/run/containerd/runc")))
            .collect(),
        untrusted_workload_runtime: profile
            .handlers
            .untrusted_workload
            .as_ref()
            .map(|h| runtime_handler(h, Path::new("/run/containerd/runc"))),
        cni_bin_dir: settings
            .cni_bin_dir
            .clone()
            .unwrap_or_else(|| "/usr/lib/cni".into()),
        cni_conf_dir: "/etc/cni/net.d".into(),
        registry_config_path: (!defaults_style && version >= Version::new(1, 5, 0))
            .then(|| "/etc/containerd/certs.d".into()),
        snapshotter: "overlayfs".into(),
        restrict_oom_score_adj: false,
    };
    if defaults_style {
        let mirrors: Vec<Mirror> = settings
            .registry_mirrors
            .iter()
            .map(|m| Mirror {
                host: m.host.clone(),
                endpoints: m.endpoints.clone(),
            })
            .collect();
        return containerd_defaults::render(&config, &mirrors).map_err(|e| e.to_string());
    }
    if let Some(number) = settings.version {
        let natural = config.schema().map_err(|e| e.to_string())?;
        if natural.number() != number {
            return Err(format!(
                "profile {}: containerd_config.version {number}: the harness writes version {} for containerd {version} ({})",
                profile.profile,
                natural.number(),
                profile.file.display()
            ));
        }
    }
    if !settings.registry_mirrors.is_empty() && config.schema().ok() != Some(ConfigSchema::V1) {
        return Err(format!(
            "profile {}: containerd_config.registry_mirrors are schema 1's; from containerd 1.5 registries are hosts.toml files",
            profile.profile
        ));
    }
    config.render().map_err(|e| e.to_string())
}

/// kubeadm's config for the profile's Kubernetes, on a node named like the harness's own.
pub fn kubeadm_config(profile: &Profile) -> Result<String, String> {
    let k8s = profile
        .kubernetes
        .as_ref()
        .ok_or_else(|| format!("profile {} has no kubernetes", profile.profile))?;
    let version: Version = k8s.version.parse().map_err(|e| format!("{e}"))?;
    let api = KubeadmApi::for_version(version).map_err(|e| e.to_string())?;
    if let Some(wanted) = &k8s.kubeadm_api {
        if wanted != api.api_version() {
            return Err(format!(
                "profile {}: kubernetes.kubeadm_api {wanted}: the harness writes {} for Kubernetes {version}",
                profile.profile,
                api.api_version()
            ));
        }
    }
    let config = KubeadmConfig {
        version,
        node_name: kata_harness::kube::cluster::NODE_NAME.into(),
        advertise_address: "10.0.0.10".into(),
        cri_socket: "unix:///run/containerd/containerd.sock".into(),
        image_repository: default_image_repository(version).into(),
        etcd_image_tag: None,
        pod_subnet: "10.244.0.0/16".into(),
        service_subnet: "10.96.0.0/12".into(),
        cluster_name: "kubernetes".into(),
        cgroup_root: "/kubepods-kata-harness".into(),
    };
    config.render().map_err(|e| e.to_string())
}

/// The crictl JSON of a pod for `handler` (`""`: the default). The profile's
/// untrusted-workload handler is asked for the containerd 1.x way: no handler, the annotation.
pub fn pod_spec(profile: &Profile, handler: &str) -> Result<String, String> {
    let untrusted = profile.handlers.untrusted_workload.as_ref();
    let is_untrusted = untrusted.is_some_and(|h| h.name == handler);
    if !handler.is_empty() && !is_untrusted && !profile.handlers.runtimes.iter().any(|h| h.name == handler) {
        let mut known: Vec<&str> = profile
            .handlers
            .runtimes
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        known.extend(untrusted.map(|h| h.name.as_str()));
        return Err(format!(
            "--handler {handler}: profile {} has no such handler ({})",
            profile.profile,
            known.join(", ")
        ));
    }
    let mut annotations = std::collections::HashMap::new();
    if is_untrusted {
        annotations.insert(UNTRUSTED_ANNOTATION.to_owned(), "true".to_owned());
    }
    let pod = PodSpec {
        name: "example".into(),
        namespace: "kata-harness".into(),
        uid: "example-uid".into(),
        handler: if is_untrusted {
            String::new()
        } else {
            handler.to_owned()
        },
        log_directory: "/var/log/pods/kata-harness_example".into(),
        cgroup_parent: String::new(),
        host_network: false,
        annotations,
        ..PodSpec::default()
    };
    Ok(serde_json::to_string_pretty(&pod.to_crictl_json()).expect("JSON values serialize"))
}

pub fn container_spec() -> String {
    let container = ContainerSpec::sleeping_busybox(kata_harness::provision::BUSYBOX_IMAGE);
    serde_json::to_string_pretty(&container.to_crictl_json()).expect("JSON values serialize")
}

/// The flags a run uses: those given, the rest from the profile; and what the reports say of
/// each component (the profile's version and source, or the flag that replaced it).
pub(crate) fn with_profile(
    given: &SuiteArgs,
    profile: &Profile,
) -> Result<(SuiteArgs, Vec<(String, String)>), String> {
    let mut args = given.clone();
    let mut environment = profile.components();
    let mut replaced = |component: &str, flag: String| {
        for (key, value) in environment.iter_mut().filter(|(k, _)| k == component) {
            *value = format!("{flag} (replaces the profile's {})", std::mem::take(value));
            let _ = key;
        }
    };
    if let Some(kubeconfig) = &given.kubeconfig {
        let note = format!(
            "none: the cluster of {} was set up outside the harness (its versions are the testbed's facts)",
            kubeconfig.display()
        );
        return Ok((args, vec![("profile".into(), note)]));
    }
    let target = args.target.get_or_insert_with(|| profile.target.clone()).clone();
    if target.starts_with("cri://") || target.starts_with("ssh://") {
        // The node's components are whatever it was set up with: the rows' testbed facts say.
        let note =
            format!("none: {target} was set up outside the harness (its versions are the testbed's facts)");
        return Ok((args, vec![("profile".into(), note)]));
    }
    let local = matches!(target.as_str(), "all" | "local");
    if let Some(lines) = &given.containerd {
        replaced("containerd", format!("--containerd {}", lines.join(",")));
    } else if local {
        let choices = containerd_choices(profile)?;
        args.containerd = Some(choices.iter().map(ToString::to_string).collect());
    }
    if local {
        standard_handlers_only(profile)?;
    }
    match &given.images {
        Some(images) => replaced("vm-images", format!("--image {}", images.join(","))),
        None if matches!(target.as_str(), "all" | "vm") => args.images = Some(profile.vm_images.clone()),
        None => {}
    }
    if given.kata_bundle.is_some() || given.kata_release.is_some() {
        let flag = match (&given.kata_bundle, &given.kata_release) {
            (Some(path), _) => format!("--kata-bundle {}", path.display()),
            (None, release) => format!("--kata-release {}", release.clone().unwrap_or_default()),
        };
        replaced("kata", flag);
    } else if local {
        let kata = kata_flags(profile)?;
        (args.kata_bundle, args.kata_release) = (kata.bundle, kata.release);
    }
    match given.k8s_flag() {
        Some(flag) => replaced("kubernetes", flag),
        None if target == "all" => match k8s_flags(profile)? {
            Some(k8s) => (args.k8s_bundle, args.k8s_release) = (k8s.bundle, k8s.release),
            None => args.no_cluster = true,
        },
        None => {}
    }
    Ok((args, environment))
}

/// A `--profile` value as a rerun line names it: a name stays a name, a file becomes absolute.
pub(crate) fn path_or_name(profile: &str) -> String {
    if profile.contains('/') || profile.ends_with(".yaml") {
        path_arg(Path::new(profile))
    } else {
        profile.to_owned()
    }
}

pub(crate) fn render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let profile = match load(&repo_root(), args.profile.as_deref()) {
        Ok(p) => p,
        Err(e) => return Ok(input_error(e)),
    };
    let text = match args.what.as_str() {
        "containerd-config" => containerd_config(&profile, args.containerd_version.as_deref()),
        "kubeadm-config" => kubeadm_config(&profile),
        "kata-config" => kata_config(&profile),
        "pod-spec" => pod_spec(&profile, &args.handler).map(|t| t + "\n"),
        "container-spec" => Ok(container_spec() + "\n"),
        other => Err(format!("cannot render {other}")),
    };
    match text {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(input_error(e)),
    }
}

/// Kata's configuration.toml exactly as a local node of this host gets it: installed into a
/// scratch dir from the profile's Kata (its layout's base configuration with this host's
/// settings), printed, and removed.
fn kata_config(profile: &Profile) -> Result<String, String> {
    let flags = kata_flags(profile)?;
    if profile.kata.is_none() {
        return Err(format!("profile {} has no kata", profile.profile));
    }
    let choice = match (flags.bundle, flags.release) {
        (Some(path), _) => KataChoice::Bundle(path),
        (None, Some(version)) => KataRelease::new(&version, &repo_root())
            .and_then(|r| r.open_cached())
            .map(KataChoice::Resolved)
            .map_err(|e| format!("Kata {version}: {}", kata_harness::errors::chain_line(&e)))?,
        (None, None) => KataChoice::Default,
    };
    let capabilities =
        kata_harness::scenario::Capabilities::probe_local_with(&choice).map_err(|e| report::chain(&e))?;
    let plan = capabilities.kata.ok_or_else(|| {
        format!(
            "Kata cannot run on this host, so there is no configuration to render: {}",
            capabilities.kata_absent.unwrap_or_default()
        )
    })?;
    let scratch = tempfile::tempdir().map_err(|e| format!("scratch dir: {e}"))?;
    let install = kata_harness::provision::kata::install_local(&plan, scratch.path())
        .map_err(|e| format!("installing Kata into {}: {e}", scratch.path().display()))?;
    let text = std::fs::read_to_string(&install.config_path)
        .map_err(|e| format!("{}: {e}", install.config_path.display()))?;
    Ok(format!(
        "# Installed for printing into {}, removed since: a node's own run dir stands in its place.\n{text}",
        scratch.path().display()
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A profile whose runc and CNI plugins are as given (`runc: { ... }` and `cni: { ... }`).
    fn profile(runc: &str, cni: &str) -> Profile {
        let text = format!(
            "profile: p\nabout: a test profile\nrunc: {runc}\ncni: {cni}\nhandlers:\n  default: runc\n  runtimes:\n    - {{ name: runc, runtime_type: io.containerd.runc.v2 }}\n"
        );
        kata_harness::profile::parse(Path::new("/profiles/p.yaml"), &text).unwrap()
    }

    /// A stand-in program printing `stdout` and `stderr`.
    fn program(dir: &Path, name: &str, stdout: &str, stderr: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nprintf '%s\\n' '{stdout}'\nprintf '%s\\n' '{stderr}' >&2\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A host whose runc says `runc version <runc>`, with no dpkg-query and a bridge plugin
    /// saying `bridge` on stderr (`None`: no plugin either).
    fn host(dir: &Path, runc: &str, bridge: Option<&str>) -> HostProbe {
        HostProbe {
            runc: program(dir, "runc", &format!("runc version {runc}"), ""),
            crun: dir.join("no-crun"),
            dpkg_query: dir.join("no-dpkg-query"),
            cni_plugin: match bridge {
                Some(line) => program(dir, "bridge", "", line),
                None => dir.join("no-bridge"),
            },
        }
    }

    fn fact<'a>(found: &'a [(String, String)], key: &str) -> &'a str {
        found
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {found:?}"))
    }

    #[test]
    fn host_tools_are_reported_whatever_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let probe = host(dir.path(), "1.3.0", Some("CNI bridge plugin v1.4.0"));
        let found = host_tools(&profile("{ source: host }", "{ source: host }"), &probe).unwrap();
        assert_eq!(fact(&found, "runc-found"), "runc version 1.3.0");
        // No dpkg here: the plugin's own line.
        assert_eq!(fact(&found, "cni-plugins-found"), "CNI bridge plugin v1.4.0");
    }

    #[test]
    fn an_unreadable_host_tool_is_reported_unknown_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let probe = host(dir.path(), "1.3.0", None);
        let found = host_tools(&profile("{ source: host }", "{ source: host }"), &probe).unwrap();
        let cni = fact(&found, "cni-plugins-found");
        assert!(
            cni.starts_with("unknown (") && cni.contains("no-dpkg-query") && cni.contains("no-bridge"),
            "{cni}"
        );
    }

    #[test]
    fn a_pinned_version_the_host_lacks_names_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let probe = host(dir.path(), "1.3.0", Some("CNI bridge plugin v1.4.0"));
        let pinned = profile(
            "{ version: 1.1.5, source: { debian: bookworm } }",
            "{ source: host }",
        );
        let error = host_tools(&pinned, &probe).unwrap_err();
        assert_eq!(
            error,
            "/profiles/p.yaml, field runc.version: runc 1.1.5 wanted, this host has \"runc version 1.3.0\""
        );
        // The host's own runc pinned to its version passes, and is reported.
        let matching = profile(
            "{ version: 1.3.0, source: host }",
            "{ version: 1.4.0, source: host }",
        );
        let found = host_tools(&matching, &probe).unwrap();
        assert_eq!(fact(&found, "runc-found"), "runc version 1.3.0");
        // Pinned, but nothing says the CNI plugins' version: refused, not guessed.
        let blind = host(dir.path(), "1.3.0", None);
        let error = host_tools(&matching, &blind).unwrap_err();
        assert!(
            error.starts_with("/profiles/p.yaml, field cni.version: cni-plugins 1.4.0 wanted, but its version cannot be read here: "),
            "{error}"
        );
    }

    #[test]
    fn the_debian_package_is_the_cni_version_where_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut probe = host(dir.path(), "1.1.5", Some("CNI bridge plugin version unknown"));
        probe.dpkg_query = program(
            dir.path(),
            "dpkg-query",
            "containernetworking-plugins 1.1.1+ds1-3+b5",
            "",
        );
        let profile = profile(
            "{ source: host }",
            "{ version: 1.1.1, source: { debian: bookworm } }",
        );
        let found = host_tools(&profile, &probe).unwrap();
        assert_eq!(
            fact(&found, "cni-plugins-found"),
            "containernetworking-plugins 1.1.1+ds1-3+b5"
        );
    }
}
