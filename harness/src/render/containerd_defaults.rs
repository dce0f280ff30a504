//! containerd's config schema 1 with every default spelled out, the way the seed's
//! `config.toml` is written: the tables `containerd config default` printed before schema 2
//! (containerd 1.1 and 1.2), in the layout of the TOML encoder it used (two spaces per table
//! level, a header for every table, empty ones too, a blank line before each top-level table),
//! with this config's values in place. containerd 1.3 and 1.4 still read such a file.
//!
//! [`super::containerd`] writes the minimal form of every schema; this is only for profiles
//! that ask for the whole file (`containerd_config: { version: 1, style: defaults }`).

use std::fmt::Write as _;

use toml::{Table, Value};

use super::containerd::{ContainerdConfig, RenderError, RuntimeHandler};
use crate::profile::Version;

/// A registry mirror (`[plugins.cri.registry.mirrors."<host>"] endpoint = [...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub host: String,
    pub endpoints: Vec<String>,
}

/// The whole schema-1 file for `config`, with these registry mirrors.
pub fn render(config: &ContainerdConfig, mirrors: &[Mirror]) -> Result<String, RenderError> {
    config.validate()?;
    if config.version >= Version::new(2, 0, 0) {
        return Err(RenderError::Unsupported {
            field: "config version 1 (containerd 2.0 no longer reads it)",
            needs: "1.x",
            version: config.version,
        });
    }
    if config.registry_config_path.is_some() {
        return Err(RenderError::Handler {
            handler: "registry".into(),
            reason: "schema 1 configures registries as mirrors, not a config_path".into(),
        });
    }
    let mut doc = Table::new();
    doc.insert("root".into(), path(&config.root));
    doc.insert("state".into(), path(&config.state));
    doc.insert("oom_score".into(), Value::Integer(0));
    doc.insert(
        "grpc".into(),
        table([
            ("address", path(&config.grpc_address)),
            ("uid", Value::Integer(0)),
            ("gid", Value::Integer(0)),
            ("max_recv_message_size", Value::Integer(16 << 20)),
            ("max_send_message_size", Value::Integer(16 << 20)),
        ]),
    );
    doc.insert(
        "debug".into(),
        table([
            ("address", text("")),
            ("uid", Value::Integer(0)),
            ("gid", Value::Integer(0)),
            ("level", text("")),
        ]),
    );
    doc.insert(
        "metrics".into(),
        table([("address", text("")), ("grpc_histogram", Value::Boolean(false))]),
    );
    doc.insert("cgroup".into(), table([("path", text(""))]));

    let mut plugins = Table::new();
    plugins.insert(
        "cgroups".into(),
        table([("no_prometheus", Value::Boolean(false))]),
    );
    plugins.insert("cri".into(), Value::Table(cri(config, mirrors)));
    plugins.insert(
        "diff-service".into(),
        table([("default", Value::Array(vec![text("walking")]))]),
    );
    plugins.insert(
        "linux".into(),
        table([
            ("shim", text("containerd-shim")),
            ("runtime", text("runc")),
            ("runtime_root", text("")),
            ("no_shim", Value::Boolean(false)),
            ("shim_debug", Value::Boolean(false)),
        ]),
    );
    plugins.insert(
        "scheduler".into(),
        table([
            ("pause_threshold", Value::Float(0.02)),
            ("deletion_threshold", Value::Integer(0)),
            ("mutation_threshold", Value::Integer(100)),
            ("schedule_delay", text("0s")),
            ("startup_delay", text("100ms")),
        ]),
    );
    doc.insert("plugins".into(), Value::Table(plugins));

    let mut out = String::new();
    write_tables(&mut out, &mut Vec::new(), &doc);
    Ok(out)
}

fn cri(config: &ContainerdConfig, mirrors: &[Mirror]) -> Table {
    let mut cri = Table::new();
    cri.insert("stream_server_address".into(), text(""));
    cri.insert("stream_server_port".into(), text("10010"));
    cri.insert("enable_selinux".into(), Value::Boolean(false));
    cri.insert("sandbox_image".into(), text(&config.sandbox_image));
    cri.insert("stats_collect_period".into(), Value::Integer(10));
    cri.insert("systemd_cgroup".into(), Value::Boolean(false));
    cri.insert("enable_tls_streaming".into(), Value::Boolean(false));

    cri.insert(
        "containerd".into(),
        Value::Table(config.containerd_table_v1(runtime)),
    );
    cri.insert(
        "cni".into(),
        table([
            ("bin_dir", path(&config.cni_bin_dir)),
            ("conf_dir", path(&config.cni_conf_dir)),
            ("conf_template", text("")),
        ]),
    );
    let mirrors: Table = mirrors
        .iter()
        .map(|m| {
            let endpoints = Value::Array(m.endpoints.iter().map(|e| text(e)).collect());
            (m.host.clone(), table([("endpoint", endpoints)]))
        })
        .collect();
    cri.insert("registry".into(), table([("mirrors", Value::Table(mirrors))]));
    cri
}

/// A schema-1 runtime with all three keys (`""`: the v1 runtime's own default).
fn runtime(r: &RuntimeHandler) -> Table {
    let engine = r.options.binary_name.as_deref().unwrap_or("");
    let root = r
        .options
        .root
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    [
        ("runtime_type", text(&r.runtime_type)),
        ("runtime_engine", text(engine)),
        ("runtime_root", text(&root)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Writes a table's keys, then its sub-tables, each under its full dotted header, indented
/// two spaces per level below the top.
fn write_tables(out: &mut String, path: &mut Vec<String>, table: &Table) {
    let indent = "  ".repeat(path.len());
    for (key, value) in table.iter().filter(|(_, v)| !v.is_table()) {
        let _ = writeln!(out, "{indent}{} = {}", bare_or_quoted(key), inline(value));
    }
    for (key, value) in table {
        let Value::Table(child) = value else { continue };
        path.push(key.clone());
        if path.len() == 1 {
            out.push('\n');
        }
        let header: Vec<String> = path.iter().map(|k| bare_or_quoted(k)).collect();
        let _ = writeln!(out, "{}[{}]", "  ".repeat(path.len() - 1), header.join("."));
        write_tables(out, path, child);
        path.pop();
    }
}

fn bare_or_quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        quoted(key)
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Datetime(d) => d.to_string(),
        Value::Table(_) => unreachable!("tables are written as sections"),
    }
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn path(p: &std::path::Path) -> Value {
    Value::String(p.display().to_string())
}

fn table<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Table(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_bare_are_quoted_and_escaped() {
        assert_eq!(bare_or_quoted("diff-service"), "diff-service");
        assert_eq!(bare_or_quoted("docker.io"), "\"docker.io\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn nested_tables_are_indented_under_full_headers() {
        let mut doc = Table::new();
        doc.insert("a".into(), Value::Integer(1));
        let mut inner = Table::new();
        inner.insert(
            "x.y".into(),
            table([("k", Value::Array(vec![text("p"), text("q")]))]),
        );
        doc.insert("t".into(), Value::Table(inner));
        let mut out = String::new();
        write_tables(&mut out, &mut Vec::new(), &doc);
        assert_eq!(out, "a = 1\n\n[t]\n  [t.\"x.y\"]\n    k = [\"p\", \"q\"]\n");
    }
}
