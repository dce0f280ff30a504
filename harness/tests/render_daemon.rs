//! Each rendered config is fed to the real containerd of its version (`config dump`): the
//! daemon must accept it, warn about nothing, and keep every key we set with our value.
//! Schema 2 goes to containerd 1.6.20 (bookworm) and 1.7.24 (trixie), schema 3 to 2.1.9 (sid).

use std::process::Command;
use std::time::Duration;

use kata_harness::profile::{Containerd, ContainerdChoice};
use kata_harness::provision::standard_handlers;
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

#[rstest]
#[case("1.6", 2)]
#[case("1.7", 2)]
#[case("2.1", 3)]
fn daemon_keeps_every_rendered_key(#[case] line: &str, #[case] schema: i64) {
    let containerd = ContainerdChoice::Line(line.into())
        .resolve()
        .expect("containerd is in the cache (scripts/setup)");
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&containerd, dir.path());
    assert_eq!(config.schema().unwrap().number(), schema);
    let text = config.render().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &text).unwrap();

    let mut cmd = Command::new(containerd.binary("containerd"));
    cmd.arg("--config").arg(&path).args(["config", "dump"]);
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

    let dump: Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).expect("the dump is TOML");
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

#[test]
fn a_misspelt_key_is_caught_by_the_same_check() {
    // The check above must be able to fail: a typo'd key is missing from the dump.
    let containerd = ContainerdChoice::Line("1.6".into())
        .resolve()
        .expect("containerd 1.6");
    let dir = tempfile::tempdir().unwrap();
    let text = config_for(&containerd, dir.path())
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
