//! Profile files: one combination of component versions, each with the source its artifact
//! comes from, as a strict YAML file in `profiles/` (unknown keys are errors, like the suites).
//!
//! A profile is data only: [`super::check`] rejects the combinations that cannot work, the
//! CLI turns a profile into its run's variants, and the renderers turn it into files.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Version;

/// The profile every run uses when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// A profile that could not be read, or a combination that cannot work: the file and the
/// field, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{message}", file.display(), if field.is_empty() { ": ".to_owned() } else { format!(", field {field}: ") })]
pub struct ProfileFileError {
    pub file: PathBuf,
    /// Dotted path of the field (`kubernetes.kubeadm_api`), empty for the whole file.
    pub field: String,
    pub message: String,
}

/// Where a component's artifact comes from. Written as the word `host` or `setup`, or as a
/// one-key map: `{ debian: bookworm }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Whatever this host has, where local nodes look for it (runc and crun on PATH, the CNI
    /// plugins in `/usr/lib/cni`): a host tool only ([`HostTool`]).
    Host,
    /// Whatever scripts/setup provided in the cache, by its order (an explicit path, the
    /// sources directory's build, upstream's release, Debian's archive): the run's
    /// `artifact-*` lines say which, read from the manifests beside the files.
    Setup,
    /// A Debian package of this suite (installed by scripts/setup, or unpacked into the cache).
    Debian(String),
    /// An upstream release download; the value names what its files are verified against:
    /// the lock file of the checkout that pins their sha256 (`kata-release.lock`: Kata
    /// publishes no checksums), or [`PUBLISHED_SHA256`] (Kubernetes: the `.sha256` dl.k8s.io
    /// publishes beside each binary).
    Release(String),
    /// A local directory or tarball (a kata-static layout, a Kubernetes bundle).
    Bundle(PathBuf),
    /// Built from source by the harness (the value names the script and its source).
    Build(String),
    /// Installed by hand outside the harness (the seed's yum and OBS packages): such a
    /// profile can be rendered and checked, not run.
    External(String),
}

/// `release: published-sha256`: each file is verified against the sha256 upstream publishes
/// beside it.
pub const PUBLISHED_SHA256: &str = "published-sha256";

/// A source as written: a map with exactly one of these keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceMap {
    debian: Option<String>,
    release: Option<String>,
    bundle: Option<PathBuf>,
    build: Option<String>,
    external: Option<String>,
}

/// `host`, `setup`, or a [`SourceMap`].
impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Source, D::Error> {
        use serde::de::{self, MapAccess, Visitor};

        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = Source;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SOURCE_FORMS)
            }
            fn visit_str<E: de::Error>(self, word: &str) -> Result<Source, E> {
                match word {
                    "host" => Ok(Source::Host),
                    "setup" => Ok(Source::Setup),
                    other => Err(E::custom(format!("{other:?}: {SOURCE_FORMS}"))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Source, A::Error> {
                let map = SourceMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Source::try_from(map).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(SourceVisitor)
    }
}

const SOURCE_FORMS: &str =
    "a source is `host`, `setup`, or a map with exactly one key: debian, release, bundle, build or external";

impl TryFrom<SourceMap> for Source {
    type Error = String;
    fn try_from(map: SourceMap) -> Result<Source, String> {
        let all = [
            map.debian.map(Source::Debian),
            map.release.map(Source::Release),
            map.bundle.map(Source::Bundle),
            map.build.map(Source::Build),
            map.external.map(Source::External),
        ];
        let mut given = all.into_iter().flatten();
        match (given.next(), given.next()) {
            (Some(one), None) => Ok(one),
            _ => Err(SOURCE_FORMS.into()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Host => write!(f, "this host's"),
            Source::Setup => write!(f, "provided by scripts/setup"),
            Source::Debian(suite) => write!(f, "Debian package ({suite})"),
            Source::Release(by) if by == PUBLISHED_SHA256 => {
                write!(f, "upstream release, verified against its published sha256")
            }
            Source::Release(lock) => write!(f, "upstream release pinned in {lock}"),
            Source::Bundle(path) => write!(f, "local bundle {}", path.display()),
            Source::Build(how) => write!(f, "source build ({how})"),
            Source::External(how) => write!(f, "installed outside the harness ({how})"),
        }
    }
}

/// A component at a version from a source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub version: String,
    pub source: Source,
}

impl Component {
    /// `1.6.20 (Debian package (bookworm))`, for reports.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.version, self.source)
    }
}

/// A tool local nodes take from the host: runc, crun, the CNI plugins. With `source: host` and
/// no `version` it is whatever this host has: the run reports what it found and enforces
/// nothing. A `version` is enforced: `run` stops (exit 2) when the host's differs. Any other
/// source says where the host's copy came from and needs a `version` ([`super::check`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostTool {
    /// Default: none, only with `source: host` (the host's, whatever it is).
    #[serde(default)]
    pub version: Option<String>,
    pub source: Source,
}

impl HostTool {
    /// `1.1.5 (Debian package (bookworm))`, or `this host's (version not pinned)`, for reports.
    pub fn describe(&self) -> String {
        match &self.version {
            Some(version) => format!("{version} ({})", self.source),
            None => format!("{} (version not pinned)", self.source),
        }
    }
}

/// The cluster's Kubernetes and the APIs the harness speaks to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    pub version: String,
    pub source: Source,
    /// `kubeadm.k8s.io/v1beta2|3|4`; default: the one the version reads.
    #[serde(default)]
    pub kubeadm_api: Option<String>,
    /// `node.k8s.io/v1beta1|v1`; default: the newest the version serves.
    #[serde(default)]
    pub runtime_class_api: Option<String>,
    /// The containerd line (`1.6`) the cluster's node runs, from the cache.
    #[serde(default = "default_cluster_containerd")]
    pub containerd: String,
    /// The containerd handler RuntimeClass `kata` points at: `kata` (the Go runtime, the
    /// default) or `kata-qemu-runtime-rs` (runtime-rs, as kata-deploy 4.x installs it). The
    /// rows that name RuntimeClass `kata` then expect that handler's runtime.
    #[serde(default = "default_kata_runtime_class")]
    pub kata_runtime_class: String,
}

fn default_cluster_containerd() -> String {
    "1.6".into()
}

fn default_kata_runtime_class() -> String {
    "kata".into()
}

/// One CRI runtime handler as the profile declares it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerSpec {
    pub name: String,
    /// The shim: `io.containerd.runc.v2`, `io.containerd.kata.v2`, or the schema-1
    /// `io.containerd.runtime.v1.linux`.
    pub runtime_type: String,
    /// The OCI runtime the shim calls (`BinaryName`; schema 1's `runtime_engine`).
    #[serde(default)]
    pub engine: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handlers {
    /// The handler a pod without one gets; must be among `runtimes`.
    pub default: String,
    pub runtimes: Vec<HandlerSpec>,
    /// containerd 1.x's `untrusted_workload_runtime`, for pods annotated
    /// `io.kubernetes.cri.untrusted-workload: "true"`.
    #[serde(default)]
    pub untrusted_workload: Option<HandlerSpec>,
}

/// How containerd's config file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigStyle {
    /// Only what the harness sets (containerd fills in its defaults).
    #[default]
    Minimal,
    /// Every default spelled out, as `containerd config default` printed schema 1 (the seed's
    /// file).
    Defaults,
}

/// A registry mirror of schema 1 (`[plugins.cri.registry.mirrors."<host>"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    pub host: String,
    pub endpoints: Vec<String>,
}

/// What the profile says about containerd's config beyond the handlers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSettings {
    /// The config schema number; default: the one each containerd version reads.
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub style: ConfigStyle,
    /// The pause image; default: the harness's.
    #[serde(default)]
    pub sandbox_image: Option<String>,
    /// Where the CNI plugins are; default: Debian's `/usr/lib/cni`.
    #[serde(default)]
    pub cni_bin_dir: Option<PathBuf>,
    #[serde(default)]
    pub registry_mirrors: Vec<Mirror>,
}

/// A profile file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name: the file's stem.
    pub profile: String,
    pub about: String,
    /// The target `run` uses unless `--target` names one.
    #[serde(default = "default_target")]
    pub target: String,
    /// The local variants, one private containerd each, in this order.
    #[serde(default)]
    pub containerd: Vec<Component>,
    /// VM image recipes (`vm-images/<name>`); each brings its own containerd.
    #[serde(default)]
    pub vm_images: Vec<String>,
    pub runc: HostTool,
    #[serde(default)]
    pub crun: Option<HostTool>,
    /// The CNI plugins (the bridge, host-local and loopback plugins local nodes use).
    pub cni: HostTool,
    #[serde(default)]
    pub kata: Option<Component>,
    #[serde(default)]
    pub kubernetes: Option<Kubernetes>,
    pub handlers: Handlers,
    #[serde(default)]
    pub containerd_config: ConfigSettings,
    /// Where the profile was read from (not a YAML field).
    #[serde(skip)]
    pub file: PathBuf,
}

fn default_target() -> String {
    "all".into()
}

impl Profile {
    /// The containerd versions, parsed (checked at load).
    pub fn containerd_versions(&self) -> Vec<Version> {
        self.containerd
            .iter()
            .filter_map(|c| c.version.parse().ok())
            .collect()
    }

    /// The cache line a containerd of the profile lives in (`1.6.20` -> `1.6`).
    pub fn line_of(version: Version) -> String {
        format!("{}.{}", version.major, version.minor)
    }

    /// What the reports say the run used: the profile and every component's version and
    /// source, in a fixed order.
    pub fn components(&self) -> Vec<(String, String)> {
        let mut out = vec![(
            "profile".to_owned(),
            format!("{} ({})", self.profile, self.file.display()),
        )];
        if !self.containerd.is_empty() {
            let all: Vec<String> = self.containerd.iter().map(Component::describe).collect();
            out.push(("containerd".into(), all.join(", ")));
        }
        if !self.vm_images.is_empty() {
            out.push(("vm-images".into(), self.vm_images.join(", ")));
        }
        out.push(("runc".into(), self.runc.describe()));
        if let Some(crun) = &self.crun {
            out.push(("crun".into(), crun.describe()));
        }
        out.push(("cni-plugins".into(), self.cni.describe()));
        if let Some(kata) = &self.kata {
            out.push(("kata".into(), kata.describe()));
        }
        if let Some(k8s) = &self.kubernetes {
            out.push((
                "kubernetes".into(),
                format!(
                    "{} ({}; node containerd {})",
                    k8s.version, k8s.source, k8s.containerd
                ),
            ));
        }
        let handlers: Vec<String> = self
            .handlers
            .runtimes
            .iter()
            .chain(&self.handlers.untrusted_workload)
            .map(|h| format!("{}={}", h.name, h.runtime_type))
            .collect();
        out.push(("handlers".into(), handlers.join(", ")));
        out
    }
}

/// Parses without the checks ([`super::load`] and [`super::parse`] check).
pub fn parse_unchecked(file: &Path, text: &str) -> Result<Profile, ProfileFileError> {
    let mut profile: Profile = serde_norway::from_str(text).map_err(|e| ProfileFileError {
        file: file.to_owned(),
        field: String::new(),
        message: e.to_string(),
    })?;
    profile.file = file.to_owned();
    Ok(profile)
}

/// The profile names in a folder (file stems of `*.yaml`), sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            (path.extension().is_some_and(|x| x == "yaml"))
                .then(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .flatten()
        })
        .collect();
    names.sort();
    names
}
