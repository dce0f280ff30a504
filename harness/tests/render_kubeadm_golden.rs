//! Golden files: the kubeadm config for each config API (v1beta2, v1beta3, v1beta4).
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test render_kubeadm_golden`.

mod common;

use kata_harness::profile::Version;
use kata_harness::render::kubeadm::{default_image_repository, KubeadmConfig};

fn model(version: &str) -> KubeadmConfig {
    let version: Version = version.parse().unwrap();
    KubeadmConfig {
        version,
        node_name: "kh-node".into(),
        advertise_address: "172.31.250.2".into(),
        cri_socket: "unix:///tmp/kata-harness-k8s-000000/ctd/containerd.sock".into(),
        image_repository: default_image_repository(version).into(),
        etcd_image_tag: Some("3.4.23".into()),
        pod_subnet: "10.244.0.0/16".into(),
        service_subnet: "10.96.0.0/12".into(),
        cluster_name: "kh".into(),
        cgroup_root: "/kata-harness-k8s-000000".into(),
    }
}

fn check(version: &str, golden: &str) {
    common::assert_golden(&model(version).render().unwrap(), golden);
}

#[test]
fn v1beta2_for_kubernetes_1_20() {
    check("1.20.2", "kubeadm-v1beta2.yaml");
}

#[test]
fn v1beta3_for_kubernetes_1_28() {
    check("1.28.15", "kubeadm-v1beta3.yaml");
}

#[test]
fn v1beta4_for_kubernetes_1_33() {
    check("1.33.1", "kubeadm-v1beta4.yaml");
}

#[test]
fn kubernetes_1_14_is_refused() {
    assert!(model("1.14.10").render().is_err());
}
