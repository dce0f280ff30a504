//! Golden files: the containerd config of every schema, from one fixed model.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test render_golden`.

mod common;

use std::path::PathBuf;

use kata_harness::profile::Version;
use kata_harness::render::{ContainerdConfig, RuntimeHandler};

fn model(version: &str) -> ContainerdConfig {
    let version: Version = version.parse().unwrap();
    let runtime_root = PathBuf::from("/run/kata-harness/runtime-root");
    let legacy = version < Version::new(1, 3, 0);
    ContainerdConfig {
        version,
        root: "/var/lib/kata-harness/root".into(),
        state: "/run/kata-harness/state".into(),
        grpc_address: "/run/kata-harness/containerd.sock".into(),
        temp_dir: "/var/lib/kata-harness/tmp".into(),
        opt_dir: "/var/lib/kata-harness/opt".into(),
        sandbox_image: "k8s.gcr.io/pause:3.2".into(),
        default_runtime: "runc".into(),
        runtimes: vec![
            runc_like(RuntimeHandler::runc(Some(runtime_root.clone())), legacy),
            runc_like(RuntimeHandler::crun(Some(runtime_root)), legacy),
            RuntimeHandler::kata(None),
            RuntimeHandler::kata(Some("qemu")),
        ],
        // containerd 1.x's legacy table: pods annotated io.kubernetes.cri.untrusted-workload.
        untrusted_workload_runtime: legacy.then(|| {
            let mut kata = RuntimeHandler::kata(None);
            kata.runtime_type = "io.containerd.runtime.v1.linux".into();
            kata.options.binary_name = Some("/usr/bin/kata-runtime".into());
            kata
        }),
        cni_bin_dir: "/usr/lib/cni".into(),
        cni_conf_dir: "/etc/cni/net.d".into(),
        registry_config_path: (version >= Version::new(1, 5, 0)).then(|| "/etc/containerd/certs.d".into()),
        snapshotter: "overlayfs".into(),
        restrict_oom_score_adj: true,
    }
}

/// Before 1.3 there is no runc v2 shim: runc runs through the v1 linux runtime, as in the
/// `seed-2020` profile's config.
fn runc_like(mut handler: RuntimeHandler, legacy: bool) -> RuntimeHandler {
    if legacy {
        handler.runtime_type = "io.containerd.runtime.v1.linux".into();
    }
    handler
}

fn check(version: &str, golden: &str) {
    common::assert_golden(&model(version).render().unwrap(), golden);
}

#[test]
fn schema_1_for_containerd_1_2() {
    check("1.2.13", "containerd-schema1.toml");
}

#[test]
fn schema_2_for_containerd_1_6() {
    check("1.6.20", "containerd-schema2.toml");
}

#[test]
fn schema_3_for_containerd_2_1() {
    check("2.1.9", "containerd-schema3.toml");
}

#[test]
fn schema_4_for_containerd_2_3() {
    check("2.3.0", "containerd-schema4.toml");
}

#[test]
fn schema_1_keeps_the_legacy_tables() {
    let text = model("1.2.13").render().unwrap();
    assert!(
        text.contains("[plugins.cri.containerd.untrusted_workload_runtime]"),
        "{text}"
    );
    assert!(
        text.contains("[plugins.cri.containerd.default_runtime]"),
        "{text}"
    );
    assert!(!text.contains("version ="), "schema 1 has no version key: {text}");
}

#[test]
fn impossible_combinations_are_rejected_before_anything_runs() {
    let mut config = model("2.1.9");
    config.untrusted_workload_runtime = Some(RuntimeHandler::kata(None));
    assert!(config
        .render()
        .unwrap_err()
        .to_string()
        .contains("untrusted_workload_runtime"));
    let mut config = model("1.4.0");
    config.registry_config_path = Some("/etc/containerd/certs.d".into());
    assert!(config.render().unwrap_err().to_string().contains("config_path"));
    let mut config = model("1.2.13");
    config.runtimes[0] = RuntimeHandler::runc(None);
    assert!(config.render().unwrap_err().to_string().contains("1.3"));
    let mut config = model("1.6.20");
    config.default_runtime = "kata-fc".into();
    assert!(config.render().unwrap_err().to_string().contains("kata-fc"));
}
