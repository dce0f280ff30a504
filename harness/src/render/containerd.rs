//! containerd `config.toml` for every config schema, from one model.
//!
//! | containerd | schema | runtime table |
//! |---|---|---|
//! | 1.0-1.2 | 1 (no `version` key) | `[plugins.cri.containerd.runtimes.<h>]` |
//! | 1.3-1.7 | 2 | `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<h>]` |
//! | 2.0-2.2 | 3 | `[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.<h>]` |
//! | 2.3+    | 4 | as 3; grpc/ttrpc/debug/metrics become `io.containerd.server.v1.*` plugins |

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::profile::Version;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    #[error("containerd {version} is too old: config schemas start at 1.0")]
    TooOld { version: Version },
    #[error("runtime handler {handler:?}: {reason}")]
    Handler { handler: String, reason: String },
    #[error("{field} needs containerd {needs} or later (this profile has {version})")]
    Unsupported {
        field: &'static str,
        needs: &'static str,
        version: Version,
    },
}

/// The drop-in file [`ContainerdConfig::render_with_drop_in`] writes, named as kata-deploy
/// names its own.
pub const DROP_IN: &str = "kata-deploy.toml";

/// The config schema a containerd version reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigSchema {
    V1,
    V2,
    V3,
    V4,
}

impl ConfigSchema {
    pub fn for_version(version: Version) -> Result<Self, RenderError> {
        Ok(match (version.major, version.minor) {
            (0, _) => return Err(RenderError::TooOld { version }),
            (1, 0..=2) => ConfigSchema::V1,
            (1, _) => ConfigSchema::V2,
            (2, 0..=2) => ConfigSchema::V3,
            _ => ConfigSchema::V4,
        })
    }

    pub fn number(self) -> i64 {
        self as i64 + 1
    }
}

/// Options of a runc-compatible shim (`io.containerd.runc.v2`) or of the Kata shim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeOptions {
    /// The OCI runtime binary the runc shim calls (`crun` for a crun handler).
    pub binary_name: Option<String>,
    /// Where the OCI runtime keeps container state; per run, so we never touch /run/containerd.
    pub root: Option<PathBuf>,
    /// Kata's configuration file (`ConfigPath`).
    pub config_path: Option<PathBuf>,
}

/// One CRI runtime handler (`crictl runp -r <name>`, a RuntimeClass's `handler`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeHandler {
    pub name: String,
    /// containerd shim name, e.g. `io.containerd.runc.v2` or `io.containerd.kata.v2`.
    pub runtime_type: String,
    pub options: RuntimeOptions,
    /// Pod annotations passed through to the shim (Kata reads `io.katacontainers.*`).
    pub pod_annotations: Vec<String>,
}

impl RuntimeHandler {
    /// The default handler: runc through the v2 shim.
    pub fn runc(root: Option<PathBuf>) -> Self {
        RuntimeHandler {
            name: "runc".into(),
            runtime_type: "io.containerd.runc.v2".into(),
            options: RuntimeOptions {
                binary_name: None,
                root,
                config_path: None,
            },
            pod_annotations: vec![],
        }
    }

    /// crun through the runc shim: same runtime type, different `BinaryName`.
    pub fn crun(root: Option<PathBuf>) -> Self {
        RuntimeHandler {
            name: "crun".into(),
            runtime_type: "io.containerd.runc.v2".into(),
            options: RuntimeOptions {
                binary_name: Some("crun".into()),
                root,
                config_path: None,
            },
            pod_annotations: vec![],
        }
    }

    /// `kata` (hypervisor None) or `kata-<hypervisor>` with `io.containerd.kata[-<hv>].v2`.
    pub fn kata(hypervisor: Option<&str>) -> Self {
        let (name, runtime_type) = match hypervisor {
            None => ("kata".to_owned(), "io.containerd.kata.v2".to_owned()),
            Some(hv) => (format!("kata-{hv}"), format!("io.containerd.kata-{hv}.v2")),
        };
        RuntimeHandler {
            name,
            runtime_type,
            options: RuntimeOptions::default(),
            pod_annotations: vec!["io.katacontainers.*".into()],
        }
    }

    /// The shim binary containerd derives from the runtime type:
    /// `io.containerd.kata-qemu.v2` -> `containerd-shim-kata-qemu-v2`.
    pub fn shim_binary(&self) -> String {
        shim_binary_for(&self.runtime_type)
    }
}

pub fn shim_binary_for(runtime_type: &str) -> String {
    let parts: Vec<&str> = runtime_type.split('.').collect();
    match parts.as_slice() {
        [.., name, version] if parts.len() >= 3 => format!("containerd-shim-{name}-{version}"),
        _ => format!("containerd-shim-{runtime_type}"),
    }
}

/// Everything of containerd's config the harness decides.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerdConfig {
    pub version: Version,
    pub root: PathBuf,
    pub state: PathBuf,
    pub grpc_address: PathBuf,
    /// containerd's scratch dir (`temp`) and its opt plugin's dir: both would default to
    /// system paths (`/opt/containerd` is created at start otherwise).
    pub temp_dir: PathBuf,
    pub opt_dir: PathBuf,
    pub sandbox_image: String,
    /// Name of the default handler; must be one of `runtimes`.
    pub default_runtime: String,
    pub runtimes: Vec<RuntimeHandler>,
    /// The pre-1.3 `untrusted_workload_runtime` (schema 1 only), used for pods annotated
    /// `io.kubernetes.cri.untrusted-workload: "true"`.
    pub untrusted_workload_runtime: Option<RuntimeHandler>,
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    /// `hosts.toml` directory for registries (containerd 1.5+).
    pub registry_config_path: Option<PathBuf>,
    pub snapshotter: String,
    /// Clamp containers' `oom_score_adj` to containerd's own: needed where the daemon lacks
    /// CAP_SYS_RESOURCE (sandboxed CI hosts), since the pause container asks for -998.
    pub restrict_oom_score_adj: bool,
}

impl ContainerdConfig {
    pub fn schema(&self) -> Result<ConfigSchema, RenderError> {
        ConfigSchema::for_version(self.version)
    }

    /// Checks the combinations a daemon would reject or silently ignore.
    pub fn validate(&self) -> Result<(), RenderError> {
        let schema = self.schema()?;
        if !self.runtimes.iter().any(|r| r.name == self.default_runtime) {
            return Err(RenderError::Handler {
                handler: self.default_runtime.clone(),
                reason: "is the default but is not among the configured runtimes".into(),
            });
        }
        for (i, r) in self.runtimes.iter().enumerate() {
            if self.runtimes[..i].iter().any(|o| o.name == r.name) {
                return Err(RenderError::Handler {
                    handler: r.name.clone(),
                    reason: "is configured twice".into(),
                });
            }
            if r.runtime_type == "io.containerd.runc.v2" && self.version < Version::new(1, 3, 0) {
                return Err(RenderError::Unsupported {
                    field: "runtime_type io.containerd.runc.v2",
                    needs: "1.3",
                    version: self.version,
                });
            }
            if r.name.is_empty() || r.name.contains(|c: char| c.is_whitespace() || c == '.') {
                return Err(RenderError::Handler {
                    handler: r.name.clone(),
                    reason: "handler names must be non-empty, without dots or spaces".into(),
                });
            }
        }
        if self.untrusted_workload_runtime.is_some() && schema != ConfigSchema::V1 && self.version.major >= 2
        {
            return Err(RenderError::Unsupported {
                field: "untrusted_workload_runtime (removed in 2.0)",
                needs: "1.x",
                version: self.version,
            });
        }
        if self.registry_config_path.is_some() && self.version < Version::new(1, 5, 0) {
            return Err(RenderError::Unsupported {
                field: "registry config_path",
                needs: "1.5",
                version: self.version,
            });
        }
        Ok(())
    }

    /// The TOML text for this containerd version.
    pub fn render(&self) -> Result<String, RenderError> {
        self.validate()?;
        Ok(to_text(&self.table(self.schema()?)))
    }

    /// The config with its runtime handlers in a drop-in file, as kata-deploy 4.x writes them
    /// on containerd 2.0+: the main file imports `<conf_d>/*.toml` (containerd 2.2+ imports
    /// `/etc/containerd/conf.d/*.toml` by default) and [`DROP_IN`] there holds the CRI
    /// plugin's `containerd.runtimes` table, with the main file's `version`. Returns the main
    /// file's text and the drop-in's.
    pub fn render_with_drop_in(&self, conf_d: &Path) -> Result<(String, String), RenderError> {
        self.validate()?;
        let schema = self.schema()?;
        // containerd 1.x reads `imports` but puts an imported plugin table in place of the
        // main file's whole table (the sandbox image, CNI dirs, ... back to defaults); 2.0
        // merges them, which is why kata-deploy writes drop-ins only from 2.0.
        if schema < ConfigSchema::V3 {
            return Err(RenderError::Unsupported {
                field: "handlers in a drop-in file (1.x replaces the whole CRI plugin table with an imported one)",
                needs: "2.0",
                version: self.version,
            });
        }
        let cri = "io.containerd.cri.v1.runtime";
        let mut main = self.table(schema);
        let runtimes = main
            .get_mut("plugins")
            .and_then(|t| t.get_mut(cri))
            .and_then(|t| t.get_mut("containerd"))
            .and_then(Value::as_table_mut)
            .and_then(|t| t.remove("runtimes"))
            .expect("schemas 2-4 have the CRI plugin's runtimes table");
        main.insert("imports".into(), Value::Array(vec![p(&conf_d.join("*.toml"))]));
        let mut drop_in = table([("version", Value::Integer(schema.number()))]);
        insert_path(
            &mut drop_in,
            &["plugins", cri, "containerd"],
            table([("runtimes", runtimes)]),
        );
        Ok((to_text(&main), to_text(&drop_in)))
    }

    fn table(&self, schema: ConfigSchema) -> Table {
        match schema {
            ConfigSchema::V1 => self.table_v1(),
            ConfigSchema::V2 => self.table_v2(),
            ConfigSchema::V3 | ConfigSchema::V4 => self.table_v3(schema),
        }
    }

    fn table_v1(&self) -> Table {
        let mut doc = self.top_level(None);
        let mut cri = Table::new();
        cri.insert("sandbox_image".into(), s(&self.sandbox_image));
        cri.insert(
            "containerd".into(),
            Value::Table(self.containerd_table_v1(runtime_v1)),
        );
        cri.insert("cni".into(), Value::Table(self.cni_table()));
        insert_path(&mut doc, &["plugins", "cri"], cri);
        doc
    }

    /// Schema 1's `[plugins.cri.containerd]`: the snapshotter, the default runtime, the
    /// untrusted-workload runtime and the others by name, each written by `runtime`.
    pub(super) fn containerd_table_v1(&self, runtime: fn(&RuntimeHandler) -> Table) -> Table {
        let mut ctd = Table::new();
        ctd.insert("snapshotter".into(), s(&self.snapshotter));
        let default = self
            .runtimes
            .iter()
            .find(|r| r.name == self.default_runtime)
            .expect("validated: the default is configured");
        ctd.insert("default_runtime".into(), Value::Table(runtime(default)));
        if let Some(untrusted) = &self.untrusted_workload_runtime {
            ctd.insert(
                "untrusted_workload_runtime".into(),
                Value::Table(runtime(untrusted)),
            );
        }
        let others: Table = self
            .runtimes
            .iter()
            .filter(|r| r.name != self.default_runtime)
            .map(|r| (r.name.clone(), Value::Table(runtime(r))))
            .collect();
        if !others.is_empty() {
            ctd.insert("runtimes".into(), Value::Table(others));
        }
        ctd
    }

    fn table_v2(&self) -> Table {
        let mut doc = self.top_level(Some(2));
        let mut cri = Table::new();
        cri.insert("sandbox_image".into(), s(&self.sandbox_image));
        let mut ctd = Table::new();
        ctd.insert("snapshotter".into(), s(&self.snapshotter));
        ctd.insert("default_runtime_name".into(), s(&self.default_runtime));
        if let Some(untrusted) = &self.untrusted_workload_runtime {
            ctd.insert(
                "untrusted_workload_runtime".into(),
                Value::Table(runtime_v2(untrusted)),
            );
        }
        ctd.insert("runtimes".into(), Value::Table(self.runtimes_v2()));
        cri.insert("containerd".into(), Value::Table(ctd));
        cri.insert("cni".into(), Value::Table(self.cni_table()));
        if self.restrict_oom_score_adj {
            cri.insert("restrict_oom_score_adj".into(), Value::Boolean(true));
        }
        if self.version >= Version::new(1, 6, 0) {
            // Pod network namespaces under our state dir, not /run/netns.
            cri.insert("netns_mounts_under_state_dir".into(), Value::Boolean(true));
        }
        if let Some(path) = &self.registry_config_path {
            cri.insert("registry".into(), Value::Table(table([("config_path", p(path))])));
        }
        insert_path(&mut doc, &["plugins", "io.containerd.grpc.v1.cri"], cri);
        insert_path(
            &mut doc,
            &["plugins", "io.containerd.internal.v1.opt"],
            table([("path", p(&self.opt_dir))]),
        );
        doc
    }

    fn table_v3(&self, schema: ConfigSchema) -> Table {
        let mut doc = self.top_level(Some(schema.number()));
        let mut runtime = Table::new();
        let mut ctd = Table::new();
        ctd.insert("default_runtime_name".into(), s(&self.default_runtime));
        ctd.insert("runtimes".into(), Value::Table(self.runtimes_v2()));
        runtime.insert("containerd".into(), Value::Table(ctd));
        runtime.insert("cni".into(), Value::Table(self.cni_table()));
        runtime.insert("netns_mounts_under_state_dir".into(), Value::Boolean(true));
        if self.restrict_oom_score_adj {
            runtime.insert("restrict_oom_score_adj".into(), Value::Boolean(true));
        }
        insert_path(&mut doc, &["plugins", "io.containerd.cri.v1.runtime"], runtime);
        insert_path(
            &mut doc,
            &["plugins", "io.containerd.internal.v1.opt"],
            table([("path", p(&self.opt_dir))]),
        );
        // NRI is on by default from 2.0 and would leave /var/run/nri/nri.sock behind.
        insert_path(
            &mut doc,
            &["plugins", "io.containerd.nri.v1.nri"],
            table([("disable", Value::Boolean(true))]),
        );

        let mut images = Table::new();
        images.insert("snapshotter".into(), s(&self.snapshotter));
        images.insert(
            "pinned_images".into(),
            Value::Table(table([("sandbox", s(&self.sandbox_image))])),
        );
        if let Some(path) = &self.registry_config_path {
            images.insert("registry".into(), Value::Table(table([("config_path", p(path))])));
        }
        insert_path(&mut doc, &["plugins", "io.containerd.cri.v1.images"], images);
        doc
    }

    /// root/state and the sockets. Schema 4 moves the listeners into server plugins.
    fn top_level(&self, version: Option<i64>) -> Table {
        let mut doc = Table::new();
        if let Some(v) = version {
            doc.insert("version".into(), Value::Integer(v));
        }
        doc.insert("root".into(), p(&self.root));
        doc.insert("state".into(), p(&self.state));
        if version.is_some() {
            doc.insert("temp".into(), p(&self.temp_dir));
        }
        let grpc = table([("address", p(&self.grpc_address))]);
        // An explicit ttrpc address keeps the ttrpc socket beside ours, not in /run/containerd.
        let ttrpc = table([(
            "address",
            Value::String(format!("{}.ttrpc", self.grpc_address.display())),
        )]);
        if version == Some(4) {
            insert_path(&mut doc, &["plugins", "io.containerd.server.v1.grpc"], grpc);
            insert_path(&mut doc, &["plugins", "io.containerd.server.v1.ttrpc"], ttrpc);
        } else {
            doc.insert("grpc".into(), Value::Table(grpc));
            doc.insert("ttrpc".into(), Value::Table(ttrpc));
        }
        doc
    }

    fn cni_table(&self) -> Table {
        // 2.1 reads a list of plugin dirs; `bin_dir` is deprecated there.
        let bin = if self.version >= Version::new(2, 1, 0) {
            ("bin_dirs", Value::Array(vec![p(&self.cni_bin_dir)]))
        } else {
            ("bin_dir", p(&self.cni_bin_dir))
        };
        table([bin, ("conf_dir", p(&self.cni_conf_dir))])
    }

    fn runtimes_v2(&self) -> Table {
        self.runtimes
            .iter()
            .map(|r| (r.name.clone(), Value::Table(runtime_v2(r))))
            .collect()
    }
}

/// Schema 1 runtimes: `runtime_type` plus `runtime_engine` for a non-runc OCI binary.
fn runtime_v1(r: &RuntimeHandler) -> Table {
    let mut t = table([("runtime_type", s(&r.runtime_type))]);
    if let Some(binary) = &r.options.binary_name {
        t.insert("runtime_engine".into(), s(binary));
    }
    if let Some(root) = &r.options.root {
        t.insert("runtime_root".into(), p(root));
    }
    t
}

/// Schema 2-4 runtimes: `runtime_type` and a typed `options` table (runc's or Kata's).
fn runtime_v2(r: &RuntimeHandler) -> Table {
    let mut t = table([("runtime_type", s(&r.runtime_type))]);
    if !r.pod_annotations.is_empty() {
        t.insert(
            "pod_annotations".into(),
            Value::Array(r.pod_annotations.iter().map(|a| s(a)).collect()),
        );
    }
    let mut options = Table::new();
    if let Some(binary) = &r.options.binary_name {
        options.insert("BinaryName".into(), s(binary));
    }
    if let Some(root) = &r.options.root {
        options.insert("Root".into(), p(root));
    }
    if let Some(config) = &r.options.config_path {
        options.insert("ConfigPath".into(), p(config));
    }
    if !options.is_empty() {
        t.insert("options".into(), Value::Table(options));
    }
    t
}

fn to_text(doc: &Table) -> String {
    toml::to_string(doc).expect("a toml::Table always serialises")
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn p(path: &Path) -> Value {
    Value::String(path.display().to_string())
}

fn table<const N: usize>(entries: [(&str, Value); N]) -> Table {
    entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Inserts `value` at a dotted path of tables, creating the parents.
fn insert_path(doc: &mut Table, path: &[&str], value: Table) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cursor = doc;
    for key in parents {
        cursor = cursor
            .entry(key.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("config paths are tables");
    }
    cursor.insert(last.to_string(), Value::Table(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1.2.13", ConfigSchema::V1)]
    #[case("1.3.0", ConfigSchema::V2)]
    #[case("1.7.24", ConfigSchema::V2)]
    #[case("2.0.0", ConfigSchema::V3)]
    #[case("2.2.1", ConfigSchema::V3)]
    #[case("2.3.0", ConfigSchema::V4)]
    fn schema_by_version(#[case] version: &str, #[case] want: ConfigSchema) {
        assert_eq!(ConfigSchema::for_version(version.parse().unwrap()).unwrap(), want);
    }

    #[test]
    fn too_old_is_rejected() {
        assert!(ConfigSchema::for_version(Version::new(0, 2, 3)).is_err());
    }

    #[rstest]
    #[case("io.containerd.kata.v2", "containerd-shim-kata-v2")]
    #[case("io.containerd.kata-qemu.v2", "containerd-shim-kata-qemu-v2")]
    #[case("io.containerd.runc.v2", "containerd-shim-runc-v2")]
    fn shim_binary_from_runtime_type(#[case] runtime_type: &str, #[case] binary: &str) {
        assert_eq!(shim_binary_for(runtime_type), binary);
    }
}
