//! Each rendered config is fed to the real containerd of its version (`config dump`): the
//! daemon must accept it, warn about nothing, and keep every key we set with our value.
//! Schema 2 goes to containerd 1.6.20 (bookworm) and 1.7.24 (trixie), schema 3 to 2.1.9 (sid),
//! schema 4 to 2.3.4 (the source build). The same for the handlers in a drop-in file, as
//! kata-deploy 4.x writes them: the daemon merges it, and every key of both files is there.

use std::process::Command;
use std::time::Duration;

use kata_harness::profile::{Containerd, ContainerdChoice};
use kata_harness::provision::standard_handlers;
use kata_harness::render::containerd::DROP_IN;
use kata_harness::render::ContainerdConfig;
use rstest::rstest;
use toml::Value;

fn config_for(containerd: &Containerd, dir: &std::path::Path) -> ContainerdConfig {
    ContainerdConfig {
        version: containerd.version,
        root: dir.join("root"),
        state: dir.join("state"),
        grpc_address: dir.join("containerd.sock"),
        temp_dir: dir.join("tmp"),
        opt_dir: dir.join("opt"),
        sandbox_image: "k8s.gcr.io/pause:3.2".into(),
        default_runtime: "runc".into(),
        runtimes: standard_handlers(&dir.join("runtime-root"), "crun"),
        untrusted_workload_runtime: None,
        cni_bin_dir: "/usr/lib/cni".into(),
        cni_conf_dir: dir.join("net.d"),
        registry_config_path: Some(dir.join("certs.d")),
        snapshotter: "overlayfs".into(),
        restrict_oom_score_adj: true,
    }
}

/// containerd `line` from the cache, a scratch dir and the config rendered for both.
fn node(line: &str) -> (Containerd, tempfile::TempDir, ContainerdConfig) {
    let containerd = ContainerdChoice::Line(line.into())
        .resolve()
        .expect("containerd is in the cache (scripts/setup)");
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&containerd, dir.path());
    (containerd, dir, config)
}

/// Every leaf of `want` is in `got` with the same value; returns the paths that are not.
fn missing_leaves(want: &Value, got: Option<&Value>, path: &str, out: &mut Vec<String>) {
    match want {
        Value::Table(table) => {
            for (key, value) in table {
                let child = got.and_then(|g| g.get(key));
                missing_leaves(value, child, &format!("{path}.{key}"), out);
            }
        }
        leaf => {
            if got != Some(leaf) {
                out.push(format!(
                    "{path} = {leaf} (daemon has {})",
                    got.map(|g| g.to_string()).unwrap_or_else(|| "nothing".into())
                ));
            }
        }
    }
}

/// `containerd --config <path> config dump`: the dump, after checking containerd complained
/// about nothing.
fn dump(containerd: &Containerd, path: &std::path::Path, line: &str) -> Value {
    let mut cmd = Command::new(containerd.binary("containerd"));
    cmd.arg("--config").arg(path).args(["config", "dump"]);
    let out =
        kata_harness::process::run(cmd, Duration::from_secs(30)).expect("containerd accepts the config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("level=warning")
                || l.contains("level=error")
                || l.contains("unknown key")
                || l.contains("deprecated")
        })
        .collect();
    assert!(
        complaints.is_empty(),
        "containerd {line} complained about our config:\n{}",
        complaints.join("\n")
    );
    toml::from_str(&String::from_utf8_lossy(&out.stdout)).expect("the dump is TOML")
}

#[rstest]
#[case("1.6", 2)]
#[case("1.7", 2)]
#[case("2.1", 3)]
#[case("2.3", 4)]
fn daemon_keeps_every_rendered_key(#[case] line: &str, #[case] schema: i64) {
    let (containerd, dir, config) = node(line);
    assert_eq!(config.schema().unwrap().number(), schema);
    let text = config.render().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &text).unwrap();

    let dump = dump(&containerd, &path, line);
    assert_eq!(
        dump.get("version").and_then(Value::as_integer),
        Some(schema),
        "containerd {line} migrated the config"
    );
    let want: Value = toml::from_str(&text).unwrap();
    let mut missing = Vec::new();
    missing_leaves(&want, Some(&dump), "", &mut missing);
    assert!(
        missing.is_empty(),
        "containerd {line} ignored keys we set:\n{}",
        missing.join("\n")
    );
}

#[rstest]
#[case("2.1", 3)]
#[case("2.3", 4)]
fn daemon_merges_the_handlers_drop_in(#[case] line: &str, #[case] schema: i64) {
    let (containerd, dir, config) = node(line);
    let conf_d = dir.path().join("conf.d");
    let (main, drop_in) = config.render_with_drop_in(&conf_d).unwrap();
    assert!(
        !main.contains("runtime_type"),
        "the handlers left the main file:\n{main}"
    );
    assert!(drop_in.contains("runtime_type"), "{drop_in}");
    std::fs::create_dir_all(&conf_d).unwrap();
    std::fs::write(conf_d.join(DROP_IN), &drop_in).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &main).unwrap();

    let dump = dump(&containerd, &path, line);
    assert_eq!(dump.get("version").and_then(Value::as_integer), Some(schema));
    let imports: Vec<&str> = dump
        .get("imports")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // 1.x lists the files it loaded; 2.x the patterns as written (2.2+ also shows its
    // default /etc/containerd/conf.d/*.toml, which only a daemon without a config file reads).
    let pattern = conf_d.join("*.toml");
    let file = conf_d.join(DROP_IN);
    assert!(
        [&pattern, &file]
            .iter()
            .any(|p| imports.contains(&p.to_str().unwrap())),
        "containerd {line} does not import {}: imports = {imports:?}",
        pattern.display()
    );
    // Every key of both files, merged: the handlers from the drop-in, the rest from the main.
    let mut missing = Vec::new();
    let mut main: Value = toml::from_str(&main).unwrap();
    main.as_table_mut().unwrap().remove("imports");
    missing_leaves(&main, Some(&dump), "", &mut missing);
    missing_leaves(&toml::from_str(&drop_in).unwrap(), Some(&dump), "", &mut missing);
    assert!(
        missing.is_empty(),
        "containerd {line} lost keys of the two files:\n{}",
        missing.join("\n")
    );
    let whole: Value = toml::from_str(&config.render().unwrap()).unwrap();
    missing_leaves(&whole, Some(&dump), "", &mut missing);
    assert!(
        missing.is_empty(),
        "the merge differs from the one file:\n{}",
        missing.join("\n")
    );
}

/// Why the renderer refuses a drop-in below 2.0: 1.x puts the imported CRI plugin table in
/// place of the main file's, so the main file's CRI settings are lost.
#[rstest]
#[case("1.6")]
#[case("1.7")]
fn containerd_1x_replaces_the_cri_table_with_the_drop_ins(#[case] line: &str) {
    let (containerd, dir, config) = node(line);
    let conf_d = dir.path().join("conf.d");
    let err = config.render_with_drop_in(&conf_d).unwrap_err().to_string();
    assert!(err.contains("needs containerd 2.0"), "{err}");

    // The split by hand, as a 2.x drop-in would be: the handlers alone in the imported file.
    let cri = "io.containerd.grpc.v1.cri";
    let mut main: Value = toml::from_str(&config.render().unwrap()).unwrap();
    let runtimes = main["plugins"][cri]["containerd"]
        .as_table_mut()
        .unwrap()
        .remove("runtimes")
        .unwrap();
    let mut drop_in = toml::Table::new();
    drop_in.insert("version".into(), Value::Integer(2));
    let mut ctd = toml::Table::new();
    ctd.insert("runtimes".into(), runtimes);
    let mut plugin = toml::Table::new();
    plugin.insert("containerd".into(), Value::Table(ctd));
    let mut plugins = toml::Table::new();
    plugins.insert(cri.into(), Value::Table(plugin));
    drop_in.insert("plugins".into(), Value::Table(plugins));
    main.as_table_mut().unwrap().insert(
        "imports".into(),
        Value::Array(vec![Value::String(
            conf_d.join("*.toml").to_string_lossy().into_owned(),
        )]),
    );
    std::fs::create_dir_all(&conf_d).unwrap();
    std::fs::write(conf_d.join(DROP_IN), toml::to_string(&drop_in).unwrap()).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml::to_string(&main).unwrap()).unwrap();
    let dump = dump(&containerd, &path, line);
    let conf_dir = dump["plugins"][cri]["cni"]["conf_dir"].as_str();
    assert_ne!(
        conf_dir,
        Some(dir.path().join("net.d").to_str().unwrap()),
        "containerd {line} merged the drop-in into the main file's CRI table"
    );
    assert!(dump["plugins"][cri]["containerd"]["runtimes"]
        .get("kata")
        .is_some());
}

#[test]
fn a_drop_in_not_imported_is_caught() {
    // The check above must be able to fail: the same main file with its drop-in elsewhere
    // loses every handler.
    let (containerd, dir, config) = node("2.3");
    let (main, drop_in) = config.render_with_drop_in(&dir.path().join("conf.d")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join(DROP_IN), &drop_in).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &main).unwrap();
    let dump = dump(&containerd, &path, "2.3");
    let mut missing = Vec::new();
    missing_leaves(&toml::from_str(&drop_in).unwrap(), Some(&dump), "", &mut missing);
    assert!(
        missing.iter().any(|m| m.contains("runtime_type")),
        "the handlers were found without their drop-in: {missing:?}"
    );
}

#[test]
fn a_misspelt_key_is_caught_by_the_same_check() {
    // The check above must be able to fail: a typo'd key is missing from the dump.
    let (containerd, dir, config) = node("1.6");
    let text = config
        .render()
        .unwrap()
        .replace("restrict_oom_score_adj", "restrict_oom_score_adjust");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &text).unwrap();
    let mut cmd = Command::new(containerd.binary("containerd"));
    cmd.arg("--config").arg(&path).args(["config", "dump"]);
    let out = kata_harness::process::run(cmd, Duration::from_secs(30)).unwrap();
    let dump: Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let mut missing = Vec::new();
    missing_leaves(&toml::from_str(&text).unwrap(), Some(&dump), "", &mut missing);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("restrict_oom_score_adjust"), "{missing:?}");
}
