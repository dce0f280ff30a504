//! A real containerd started by the test, in a temp dir: sandbox, container, runtimeType.

use std::collections::HashMap;

use kata_harness::cri::RuntimeInfo;
use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::{Settings, Testbed, BUSYBOX_IMAGE};
use kata_harness::render::cri::{ContainerSpec, PodSpec};

#[path = "common/leaks.rs"]
mod leaks;

/// A private containerd 1.6 testbed (no VM, so no checkout paths are needed).
fn containerd_1_6() -> Settings {
    Settings {
        containerd: ContainerdChoice::Line("1.6".into()),
        keep: false,
        pause_binary: None,
        repo: ".".into(),
        kata: None,
        kata_rs: None,
        kata_runtime_class: "kata".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_handler_sandbox_reports_runc_and_cleans_up() {
    let settings = containerd_1_6();
    let testbed = Testbed::start_local(&settings).await.expect("testbed starts");
    let pod = PodSpec {
        name: "smoke".into(),
        namespace: "kata-harness".into(),
        uid: "smoke-1".into(),
        handler: String::new(),
        log_directory: testbed
            .paths
            .pod_logs
            .join("smoke")
            .to_string_lossy()
            .into_owned(),
        cgroup_parent: format!("/{}", testbed.cgroup_parent),
        host_network: false,
        annotations: HashMap::new(),
        ..PodSpec::default()
    };
    let id = testbed.cri.run_pod_sandbox(&pod).await.expect("sandbox runs");
    let status = testbed.cri.pod_sandbox_status(&id).await.unwrap();
    let info = RuntimeInfo::from_verbose_info("sandbox", &status.info).unwrap();
    assert_eq!(info.runtime_type, "io.containerd.runc.v2");
    let container = ContainerSpec {
        name: "c".into(),
        image: BUSYBOX_IMAGE.into(),
        command: vec!["sleep".into(), "3600".into()],
        log_path: "c.log".into(),
        ..ContainerSpec::default()
    };
    let cid = testbed
        .cri
        .create_container(&id, &container, &pod)
        .await
        .expect("container created");
    testbed
        .cri
        .start_container(&cid)
        .await
        .expect("container started");
    let status = testbed.cri.container_status(&cid).await.unwrap();
    let info = RuntimeInfo::from_verbose_info("container", &status.info).unwrap();
    assert_eq!(info.runtime_type, "io.containerd.runc.v2");
    let run_dir = testbed.paths.run_dir.clone();
    let leftovers = testbed.shutdown().await;
    assert!(leftovers.is_clean(), "{leftovers:?}");
    leaks::assert_nothing_left(&run_dir);
}

/// The v1alpha2 fallback speaks the same facade: containerd 1.6 still serves both packages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1alpha2_api_reads_the_same_runtime_type() {
    use kata_harness::cri::{CriApi, CriClient};
    let settings = containerd_1_6();
    let testbed = Testbed::start_local(&settings).await.expect("testbed starts");
    let old = CriClient::connect_with(
        &testbed.paths.socket,
        std::time::Duration::from_secs(60),
        CriApi::V1alpha2,
    )
    .await
    .expect("containerd 1.6 answers runtime.v1alpha2");
    assert_eq!(old.api(), CriApi::V1alpha2);
    let pod = PodSpec {
        name: "alpha".into(),
        namespace: "kata-harness".into(),
        uid: "alpha-1".into(),
        handler: "crun".into(),
        log_directory: testbed
            .paths
            .pod_logs
            .join("alpha")
            .to_string_lossy()
            .into_owned(),
        cgroup_parent: format!("/{}", testbed.cgroup_parent),
        host_network: false,
        annotations: HashMap::new(),
        ..PodSpec::default()
    };
    let id = old
        .run_pod_sandbox(&pod)
        .await
        .expect("sandbox runs over v1alpha2");
    let status = old.pod_sandbox_status(&id).await.unwrap();
    let info = RuntimeInfo::from_verbose_info("sandbox", &status.info).unwrap();
    assert_eq!(info.runtime_type, "io.containerd.runc.v2");
    assert_eq!(info.runtime_handler.as_deref(), Some("crun"));
    assert!(testbed.shutdown().await.is_clean());
}
