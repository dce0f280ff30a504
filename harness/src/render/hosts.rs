//! Registry host configuration: `certs.d/<host>/hosts.toml` (containerd 1.5+, read from the
//! CRI's `registry.config_path` and from `ctr --hosts-dir`) and, for containerd 1.3-1.4, the old
//! `registry.configs."<host>".tls` + `registry.mirrors` tables of the CRI plugin.
//!
//! Facts encoded here (scripts/notes/registry-facts.md §4):
//! - 1.6.20 and 1.7.24 reject a `hosts.toml` without any `[host."..."]` table ("invalid `host`
//!   tree") and silently fall back to defaults, so we always write at least one host table.
//! - `configs.tls` and `config_path` are mutually exclusive (the CRI plugin fails to load), and
//!   2.x ignores `configs.*.tls`: the legacy form is refused from 1.5 on.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::profile::Version;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HostsError {
    #[error("hosts.toml for {namespace} needs at least one [host] entry (containerd 1.6/1.7 ignore the file otherwise)")]
    NoHosts { namespace: String },
    #[error("the legacy registry.configs.tls table is for containerd 1.3-1.4 (this is {version}): use hosts.toml under config_path")]
    LegacyUnsupported { version: Version },
    #[error("registry.configs.tls arrived in the CRI plugin of containerd 1.3 (this is {version})")]
    TlsTooOld { version: Version },
}

/// What a host endpoint may do (`capabilities` in hosts.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Pull,
    Resolve,
    Push,
}

impl Capability {
    fn name(self) -> &'static str {
        match self {
            Capability::Pull => "pull",
            Capability::Resolve => "resolve",
            Capability::Push => "push",
        }
    }
}

/// One `[host."<url>"]` entry: an endpoint tried in file order before `server`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEntry {
    /// `https://10.254.254.254:5443` or `http://...`.
    pub url: String,
    /// Empty: containerd's default (all).
    pub capabilities: Vec<Capability>,
    /// The CA file that verifies this endpoint's certificate.
    pub ca: Option<PathBuf>,
    /// `skip_verify = true` (never used by the suites: they prove verification happens).
    pub skip_verify: bool,
}

/// `certs.d/<namespace>/hosts.toml`: `namespace` is the registry host of image references
/// (`docker.io`, `10.254.254.254:5443`), `server` the upstream tried last.
#[derive(Debug, Clone, PartialEq)]
pub struct HostsToml {
    pub namespace: String,
    pub server: String,
    pub hosts: Vec<HostEntry>,
}

impl HostsToml {
    /// A registry served directly by `url`, verified with `ca` (none: the system roots).
    pub fn direct(namespace: &str, url: &str, ca: Option<&Path>) -> Self {
        HostsToml {
            namespace: namespace.into(),
            server: url.into(),
            hosts: vec![HostEntry {
                url: url.into(),
                capabilities: vec![Capability::Pull, Capability::Resolve],
                ca: ca.map(Path::to_owned),
                skip_verify: false,
            }],
        }
    }

    /// A mirror: `namespace` (e.g. `docker.io`, upstream `server`) is served by `mirror_url`.
    pub fn mirror(namespace: &str, server: &str, mirror_url: &str, ca: Option<&Path>) -> Self {
        let mut hosts = HostsToml::direct(namespace, mirror_url, ca);
        hosts.server = server.into();
        hosts
    }

    /// Where the file goes under a `config_path` / `--hosts-dir` directory.
    pub fn path_under(&self, dir: &Path) -> PathBuf {
        dir.join(&self.namespace).join("hosts.toml")
    }

    /// The file's text (the same for 1.5 through 2.x).
    pub fn render(&self) -> Result<String, HostsError> {
        if self.hosts.is_empty() {
            return Err(HostsError::NoHosts {
                namespace: self.namespace.clone(),
            });
        }
        // Written by hand rather than through `toml`: `server` must precede the host tables
        // and the file should read like the one in containerd's docs.
        let mut text = format!("server = {}\n", quote(&self.server));
        for host in &self.hosts {
            text.push_str(&format!("\n[host.{}]\n", quote(&host.url)));
            if !host.capabilities.is_empty() {
                let caps: Vec<String> = host.capabilities.iter().map(|c| quote(c.name())).collect();
                text.push_str(&format!("  capabilities = [{}]\n", caps.join(", ")));
            }
            if let Some(ca) = &host.ca {
                text.push_str(&format!("  ca = {}\n", quote(&ca.display().to_string())));
            }
            if host.skip_verify {
                text.push_str("  skip_verify = true\n");
            }
        }
        Ok(text)
    }
}

fn quote(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The containerd ≤1.4 form: `registry.mirrors."<host>".endpoint` plus
/// `registry.configs."<host>".tls.ca_file` of the CRI plugin, as a TOML fragment to merge into
/// config.toml. `configs` is keyed by the *endpoint* host; the mirror is needed because 1.x
/// otherwise talks plain HTTP to some hosts (localhost).
pub fn legacy_registry_toml(
    version: Version,
    host: &str,
    endpoint: &str,
    ca_file: &Path,
) -> Result<String, HostsError> {
    if version >= Version::new(1, 5, 0) {
        return Err(HostsError::LegacyUnsupported { version });
    }
    if version < Version::new(1, 3, 0) {
        return Err(HostsError::TlsTooOld { version });
    }
    let endpoint_host = endpoint
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let mut mirror = Table::new();
    mirror.insert(
        "endpoint".into(),
        Value::Array(vec![Value::String(endpoint.into())]),
    );
    let mut tls = Table::new();
    tls.insert("ca_file".into(), Value::String(ca_file.display().to_string()));
    let mut config = Table::new();
    config.insert("tls".into(), Value::Table(tls));
    let mut registry = Table::new();
    registry.insert(
        "mirrors".into(),
        Value::Table([(host.to_owned(), Value::Table(mirror))].into_iter().collect()),
    );
    registry.insert(
        "configs".into(),
        Value::Table(
            [(endpoint_host.to_owned(), Value::Table(config))]
                .into_iter()
                .collect(),
        ),
    );
    let plugin = "io.containerd.grpc.v1.cri";
    let mut cri = Table::new();
    cri.insert("registry".into(), Value::Table(registry));
    let mut plugins = Table::new();
    plugins.insert(plugin.into(), Value::Table(cri));
    let mut doc = Table::new();
    doc.insert("plugins".into(), Value::Table(plugins));
    Ok(toml::to_string(&doc).expect("a toml::Table always serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_file_without_host_tables_is_refused() {
        let hosts = HostsToml {
            namespace: "docker.io".into(),
            server: "https://registry-1.docker.io".into(),
            hosts: vec![],
        };
        assert!(matches!(hosts.render(), Err(HostsError::NoHosts { .. })));
    }

    #[test]
    fn legacy_form_is_refused_where_config_path_exists() {
        let err = legacy_registry_toml(
            Version::new(1, 6, 20),
            "h:5443",
            "https://h:5443",
            Path::new("/ca.crt"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            HostsError::LegacyUnsupported {
                version: Version::new(1, 6, 20)
            }
        );
    }

    #[test]
    fn path_is_keyed_by_the_registry_host() {
        let hosts = HostsToml::direct("10.254.254.254:5443", "https://10.254.254.254:5443", None);
        assert_eq!(
            hosts.path_under(Path::new("/r/certs.d")),
            Path::new("/r/certs.d/10.254.254.254:5443/hosts.toml")
        );
    }
}
