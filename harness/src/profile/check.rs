//! The combinations that cannot work, rejected when a profile loads: before anything is
//! fetched, built or booted, with the field and the reason.
//!
//! Each rule is a fact of an upstream project (the version that added or removed something),
//! stated in its message so a maintainer can check it.

use super::file::{Profile, Source, PUBLISHED_SHA256};
use super::Version;

/// A field (dotted path) and what is wrong with it.
pub type Problem = (String, String);

/// The Kata release fetcher's lock file (`artifacts::kata_release::LOCK_FILE`), named here
/// because that module builds on this one; `harness/tests/profiles.rs` checks they agree.
const KATA_LOCK: &str = "kata-release.lock";
const RUNC_V2: &str = "io.containerd.runc.v2";
/// The oldest containerd Kata 4.x supports.
pub const KATA_4_MIN_CONTAINERD: Version = Version::new(1, 7, 0);
const RUNTIME_V1_LINUX: &str = "io.containerd.runtime.v1.linux";

pub fn check(profile: &Profile) -> Result<(), Problem> {
    let fail = |field: &str, message: String| Err((field.to_owned(), message));
    if let Some(stem) = profile.file.file_stem().map(|s| s.to_string_lossy()) {
        if stem != profile.profile {
            return fail(
                "profile",
                format!("{:?} differs from the file's name {stem:?}", profile.profile),
            );
        }
    }

    host_tool_versions(profile)?;
    let containerd = containerd_versions(profile)?;
    let kata = match &profile.kata {
        Some(kata) => Some(version("kata.version", &kata.version)?),
        None => None,
    };
    for (field, source, allowed) in sources(profile) {
        let kind = source_kind(source);
        if !allowed.contains(&kind) {
            return fail(
                &format!("{field}.source"),
                format!(
                    "{kind} is not a source the harness can use for {field} (it takes {})",
                    allowed.join(", ")
                ),
            );
        }
        if let Source::Release(by) = source {
            let (expected, why) = match field {
                "kata" => (
                    KATA_LOCK,
                    format!("kata releases are pinned in {KATA_LOCK} (or the file KATA_HARNESS_KATA_RELEASE_LOCK names)"),
                ),
                _ => (
                    PUBLISHED_SHA256,
                    format!("{field} releases are verified against the .sha256 dl.k8s.io publishes beside each binary: write `release: {PUBLISHED_SHA256}`"),
                ),
            };
            if by != expected {
                return fail(&format!("{field}.source.release"), format!("{by:?}: {why}"));
            }
        }
    }

    let config_version = profile.containerd_config.version;
    for (i, (ctd, _)) in containerd.iter().enumerate() {
        let field = format!("containerd[{i}].version");
        if let Some(number) = config_version {
            if let Some(why) = schema_refuses(number, *ctd) {
                return fail(
                    "containerd_config.version",
                    format!("containerd {ctd} (from {field}): {why}"),
                );
            }
        }
        if *ctd < KATA_4_MIN_CONTAINERD && kata.is_some_and(|k| k.major >= 4) {
            return fail(
                "kata.version",
                format!("Kata 4.x supports containerd {KATA_4_MIN_CONTAINERD} and later (its versions.yaml: externals.containerd minimum v1.7, latest v2.3); containerd {ctd} (from {field}) is below that minimum"),
            );
        }
        if *ctd >= Version::new(2, 0, 0) && kata.is_some_and(|k| k.major < 2) {
            return fail(
                "kata.version",
                format!("Kata 1.x runs through the v1 runtime or a Kata 1 shim containerd 2.0 no longer loads; containerd {ctd} (from {field}) needs Kata 2.0 or later"),
            );
        }
    }
    if let Some(number) = config_version {
        if !(1..=4).contains(&number) {
            return fail(
                "containerd_config.version",
                format!("{number}: containerd config schemas are 1 to 4"),
            );
        }
    }
    if profile.containerd_config.style == super::file::ConfigStyle::Defaults && config_version != Some(1) {
        return fail(
            "containerd_config.style",
            "`defaults` spells out schema 1's defaults (containerd 1.2's `config default`): it needs `version: 1`".into(),
        );
    }

    let handlers = &profile.handlers;
    if !handlers.runtimes.iter().any(|h| h.name == handlers.default) {
        return fail(
            "handlers.default",
            format!("{:?} is not among handlers.runtimes", handlers.default),
        );
    }
    let every = handlers
        .runtimes
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("handlers.runtimes[{i}]"), h))
        .chain(
            handlers
                .untrusted_workload
                .iter()
                .map(|h| ("handlers.untrusted_workload".to_owned(), h)),
        );
    for (field, handler) in every {
        let name_field = format!("{field}.name");
        if handler.name.is_empty() || handler.name.contains(|c: char| c.is_whitespace() || c == '.') {
            return fail(
                &name_field,
                format!(
                    "{:?}: handler names are non-empty, without dots or spaces",
                    handler.name
                ),
            );
        }
        if handlers
            .runtimes
            .iter()
            .filter(|h| h.name == handler.name)
            .count()
            > 1
        {
            return fail(&name_field, format!("{:?} is configured twice", handler.name));
        }
        let type_field = format!("{field}.runtime_type");
        for (ctd, from) in &containerd {
            if handler.runtime_type == RUNC_V2 && *ctd < Version::new(1, 3, 0) {
                return fail(
                    &type_field,
                    format!("{RUNC_V2}: the runc v2 shim came with containerd 1.3; {from} is {ctd}"),
                );
            }
            if handler.runtime_type == RUNTIME_V1_LINUX && *ctd >= Version::new(2, 0, 0) {
                return fail(
                    &type_field,
                    format!("{RUNTIME_V1_LINUX}: containerd 2.0 removed the v1 runtime; {from} is {ctd}"),
                );
            }
        }
        if handler.runtime_type.starts_with("io.containerd.kata") && kata.is_none() {
            return fail(
                &type_field,
                format!("{}: the profile has no kata component", handler.runtime_type),
            );
        }
        let kata_runtime = handler
            .engine
            .as_deref()
            .is_some_and(|e| e.ends_with("kata-runtime"));
        if kata_runtime && kata.is_some_and(|k| k.major >= 2) {
            return fail(
                &format!("{field}.engine"),
                "kata-runtime as an OCI runtime is Kata 1.x's path: Kata 2.0 removed it (use runtime_type io.containerd.kata.v2)".into(),
            );
        }
    }
    if handlers.untrusted_workload.is_some() {
        if let Some((ctd, from)) = containerd.iter().find(|(v, _)| *v >= Version::new(2, 0, 0)) {
            return fail(
                "handlers.untrusted_workload",
                format!("containerd 2.0 removed untrusted_workload_runtime; {from} is {ctd}"),
            );
        }
    }

    if let Some(k8s) = &profile.kubernetes {
        let v = version("kubernetes.version", &k8s.version)?;
        let node: Version = version("kubernetes.containerd", &k8s.containerd)?;
        if let Some(api) = &k8s.kubeadm_api {
            let (from, until) = match api.as_str() {
                "kubeadm.k8s.io/v1beta2" => (Version::new(1, 15, 0), Some(Version::new(1, 26, 0))),
                "kubeadm.k8s.io/v1beta3" => (Version::new(1, 22, 0), Some(Version::new(1, 37, 0))),
                "kubeadm.k8s.io/v1beta4" => (Version::new(1, 31, 0), None),
                other => {
                    return fail(
                        "kubernetes.kubeadm_api",
                        format!(
                        "{other:?} is not a kubeadm config API (kubeadm.k8s.io/v1beta2, v1beta3, v1beta4)"
                    ),
                    )
                }
            };
            if v < from || until.is_some_and(|u| v >= u) {
                let span = match until {
                    Some(u) => format!(
                        "kubeadm {}.{} to {}.{}",
                        from.major,
                        from.minor,
                        u.major,
                        u.minor - 1
                    ),
                    None => format!("kubeadm {}.{} and later", from.major, from.minor),
                };
                return fail(
                    "kubernetes.kubeadm_api",
                    format!("{api} is read by {span}, not by {v}"),
                );
            }
        }
        if let Some(api) = &k8s.runtime_class_api {
            let (from, until) = match api.as_str() {
                "node.k8s.io/v1beta1" => (Version::new(1, 14, 0), Some(Version::new(1, 25, 0))),
                "node.k8s.io/v1" => (Version::new(1, 20, 0), None),
                other => {
                    return fail(
                        "kubernetes.runtime_class_api",
                        format!("{other:?} is not a RuntimeClass API (node.k8s.io/v1beta1, node.k8s.io/v1)"),
                    )
                }
            };
            if v < from || until.is_some_and(|u| v >= u) {
                return fail(
                    "kubernetes.runtime_class_api",
                    format!(
                        "{api} is served by Kubernetes {}.{}{}, not by {v}",
                        from.major,
                        from.minor,
                        until
                            .map(|u| format!(" to 1.{}", u.minor - 1))
                            .unwrap_or_else(|| " and later".into())
                    ),
                );
            }
        }
        if node >= Version::new(2, 0, 0) && kata.is_some_and(|k| k.major < 2) {
            return fail("kata.version", format!("Kata 1.x cannot run on the cluster's containerd {node} (containerd 2.0 no longer loads Kata 1's runtime)"));
        }
        let class = k8s.kata_runtime_class.as_str();
        let declared = profile.handlers.runtimes.iter().find(|h| h.name == class);
        match declared {
            // The default names the handler `kata` whatever runs it (Kata 1.x's runtime v1 too).
            _ if class == "kata" => {}
            Some(h) if h.runtime_type.starts_with("io.containerd.kata") => {}
            _ => {
                return fail(
                    "kubernetes.kata_runtime_class",
                    format!("{class:?} is not one of the profile's Kata handlers (handlers.runtimes with an io.containerd.kata* runtime_type)"),
                )
            }
        }
        if class.ends_with("-runtime-rs") && node < KATA_4_MIN_CONTAINERD {
            return fail(
                "kubernetes.kata_runtime_class",
                format!("{class} is Kata 4.x's runtime-rs, which supports containerd {KATA_4_MIN_CONTAINERD} and later; the cluster's node runs {node} (kubernetes.containerd)"),
            );
        }
        if v >= Version::new(1, 26, 0) && node < Version::new(1, 6, 0) {
            return fail(
                "kubernetes.containerd",
                format!("Kubernetes {v} speaks only CRI v1 (1.26 removed v1alpha2), which containerd serves from 1.6; the node runs {node}"),
            );
        }
    }
    Ok(())
}

fn version(field: &str, text: &str) -> Result<Version, Problem> {
    text.parse()
        .map_err(|e: super::ProfileError| (field.to_owned(), e.to_string()))
}

/// The containerd versions with the field each came from; one per cache line.
fn containerd_versions(profile: &Profile) -> Result<Vec<(Version, String)>, Problem> {
    let mut out: Vec<(Version, String)> = Vec::new();
    for (i, c) in profile.containerd.iter().enumerate() {
        let field = format!("containerd[{i}].version");
        let v = version(&field, &c.version)?;
        if let Some((_, other)) = out.iter().find(|(o, _)| (o.major, o.minor) == (v.major, v.minor)) {
            return Err((field, format!("{v} is a second containerd {}.{} (after {other}): local variants are one per release line", v.major, v.minor)));
        }
        out.push((v, format!("containerd {}", c.version)));
    }
    if let Some(k8s) = &profile.kubernetes {
        let v = version("kubernetes.containerd", &k8s.containerd)?;
        out.push((v, "the cluster's containerd".into()));
    }
    Ok(out)
}

/// A host tool without a version is whatever is there: only `source: host` (the host's) and
/// `source: setup` (what scripts/setup provided, else the host's) say so.
fn host_tool_versions(profile: &Profile) -> Result<(), Problem> {
    let tools = [
        ("runc", Some(&profile.runc)),
        ("crun", profile.crun.as_ref()),
        ("cni", Some(&profile.cni)),
    ];
    for (field, tool) in tools {
        let Some(tool) = tool else { continue };
        match &tool.version {
            None if !matches!(tool.source, Source::Host | Source::Setup) => {
                return Err((
                    format!("{field}.version"),
                    format!(
                        "missing: a {} source needs the version it gives (only `source: host` and `source: setup` take whatever version is there)",
                        source_kind(&tool.source)
                    ),
                ))
            }
            Some(v) if v.trim().is_empty() => {
                return Err((
                    format!("{field}.version"),
                    "empty: leave it out to take whatever version this host has".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a schema number cannot be given to this containerd, if anything.
fn schema_refuses(number: i64, ctd: Version) -> Option<String> {
    let v = |major, minor| Version::new(major, minor, 0);
    match number {
        1 if ctd >= v(2, 0) => Some("containerd 2.0 no longer reads config version 1".into()),
        2 if ctd < v(1, 3) => Some("config version 2 came with containerd 1.3".into()),
        3 if ctd < v(2, 0) => {
            Some("config version 3 came with containerd 2.0 (1.x refuses it at start)".into())
        }
        4 if ctd < v(2, 3) => Some("config version 4 came with containerd 2.3".into()),
        _ => None,
    }
}

fn source_kind(source: &Source) -> &'static str {
    match source {
        Source::Host => "host",
        Source::Setup => "setup",
        Source::Debian(_) => "debian",
        Source::Release(_) => "release",
        Source::Bundle(_) => "bundle",
        Source::Build(_) => "build",
        Source::External(_) => "external",
    }
}

/// Each component's source with the kinds the harness can provide it from.
fn sources(profile: &Profile) -> Vec<(&'static str, &Source, &'static [&'static str])> {
    const HOST_TOOL: &[&str] = &["host", "setup", "debian", "build", "external"];
    let mut out: Vec<(&'static str, &Source, &'static [&'static str])> = Vec::new();
    for c in &profile.containerd {
        out.push((
            "containerd",
            &c.source,
            &["setup", "debian", "bundle", "external"],
        ));
    }
    out.push(("runc", &profile.runc.source, HOST_TOOL));
    if let Some(crun) = &profile.crun {
        out.push(("crun", &crun.source, HOST_TOOL));
    }
    out.push(("cni", &profile.cni.source, HOST_TOOL));
    if let Some(kata) = &profile.kata {
        out.push((
            "kata",
            &kata.source,
            &["setup", "build", "release", "bundle", "external"],
        ));
    }
    if let Some(k8s) = &profile.kubernetes {
        out.push((
            "kubernetes",
            &k8s.source,
            &["setup", "build", "release", "bundle", "external"],
        ));
    }
    out
}
