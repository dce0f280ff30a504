//! The fields of the containerd row actions (`sandbox`, `image_import`, `pull`,
//! `sandbox_image`, `ctr_run`), as the suite files spell them.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxAction {
    /// Runtime handler (`crictl runp -r`). Default: empty, containerd's default handler.
    #[serde(default)]
    pub handler: String,
    /// Also create and start a busybox container in the sandbox. Default: false.
    #[serde(default)]
    pub container: bool,
    /// Share the node's network namespace. Default: false.
    #[serde(default)]
    pub host_network: bool,
    /// Annotations of the pod sandbox config (e.g. `io.kubernetes.cri.untrusted-workload:
    /// "true"`). Default: none.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageImportAction {
    /// containerd namespace to import into (`k8s.io` is the CRI's).
    pub namespace: String,
    /// Then run a busybox container from the imported image, in a sandbox of `handler`
    /// (no pull is possible: the node is air-gapped). Default: false.
    #[serde(default)]
    pub container: bool,
    /// Runtime handler of that sandbox. Default: empty, containerd's default.
    #[serde(default)]
    pub handler: String,
    /// What the archive holds: `amd64`, `arm64`, `multi` (an amd64 + arm64 index) or
    /// `multi-partial` (that index without the arm64 blobs). Default: `amd64`.
    #[serde(default)]
    pub archive: crate::images::ArchiveLayout,
    /// The import's platform flag: `all` (`--all-platforms`) or a platform such as
    /// `linux/amd64` (`--platform`). Default: none, ctr's default (the host platform).
    #[serde(default)]
    pub platforms: Option<String>,
}

/// Which registry a `pull` row talks to. All listen inside the node's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// docker-registry over HTTPS with a certificate from the run's CA.
    Tls,
    /// docker-registry over plain HTTP.
    Plain,
    /// Nothing listens on the address (connection refused).
    Down,
}

/// The `ca` line of the registry's `hosts.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaChoice {
    /// The CA that signed the registry's certificate.
    Right,
    /// Another CA generated for the run.
    Wrong,
    /// No `ca` line (the system roots).
    Absent,
}

/// Who pulls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullClient {
    /// CRI PullImage (crictl pull).
    #[default]
    Cri,
    /// `ctr -n k8s.io images pull` on the node.
    Ctr,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullAction {
    /// The registry (required).
    pub registry: RegistryKind,
    /// The `ca` line of the hosts.toml. Default: right for tls and down (so only the refused
    /// connection can fail); plain registries take no CA.
    #[serde(default)]
    pub ca: Option<CaChoice>,
    /// Write `certs.d/<host>/hosts.toml` (CRI `config_path`, `ctr --hosts-dir`). Default: true.
    #[serde(default = "yes")]
    pub hosts_toml: bool,
    /// Who pulls. Default: cri.
    #[serde(default)]
    pub client: PullClient,
    /// With client ctr: pass `--hosts-dir <config_path>`. Default: false.
    #[serde(default)]
    pub hosts_dir: bool,
    /// Pull through a mirror entry for this registry namespace (e.g. `docker.io`): the image
    /// is named `<mirror>/...` and `certs.d/<mirror>/hosts.toml` points at our registry.
    /// Default: none (pull by the registry's address).
    #[serde(default)]
    pub mirror: Option<String>,
    /// After a successful CRI pull, run a container from the image in a sandbox of this
    /// handler. Default: empty, containerd's default handler.
    #[serde(default)]
    pub handler: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtrRunAction {
    /// The runtime type `ctr run --runtime` gets, e.g. `io.containerd.kata.v2` (required).
    /// Kata runtimes also get `--runtime-config-path` with the node's Kata configuration.
    pub runtime: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxImageAction {
    /// The pinned sandbox image is in `k8s.io` (as provisioned); false: it is removed first
    /// (and re-imported afterwards). Required.
    pub preloaded: bool,
    /// Runtime handler of the sandbox. Default: empty, containerd's default.
    #[serde(default)]
    pub handler: String,
}
