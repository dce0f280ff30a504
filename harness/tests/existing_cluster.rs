//! `--kubeconfig`: the cluster suite against a cluster that was set up beforehand (a kubeadm
//! cluster this test brings up, then treats as someone else's), left as it was found: its
//! namespaces, pods, DaemonSets and RuntimeClasses.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kata_harness::kube::bundle::Bundle;
use kata_harness::kube::client::{runtime_class_names, RuntimeClassApi};
use kata_harness::kube::cluster::{Cluster, ClusterSettings};
use kata_harness::profile::ContainerdChoice;
use kata_harness::scenario::model::Requirement;
use kata_harness::scenario::Capabilities;
use kube::api::{Api, ListParams};

#[path = "common/cli.rs"]
mod cli;
use cli::{harness, interrupt_and_wait, stdout_of_success};

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What "as found" means for a cluster: every namespace, pod (with its uid: a pod deleted and
/// recreated is not the same pod), DaemonSet and RuntimeClass.
async fn state_of(cluster: &Cluster) -> BTreeSet<String> {
    let client = &cluster.client;
    let lp = ListParams::default();
    let mut state = BTreeSet::new();
    for ns in Api::<Namespace>::all(client.clone()).list(&lp).await.unwrap() {
        state.insert(format!("namespace {}", ns.metadata.name.unwrap_or_default()));
    }
    for pod in Api::<Pod>::all(client.clone()).list(&lp).await.unwrap() {
        let m = pod.metadata;
        state.insert(format!(
            "pod {}/{} {}",
            m.namespace.unwrap_or_default(),
            m.name.unwrap_or_default(),
            m.uid.unwrap_or_default()
        ));
    }
    for ds in Api::<DaemonSet>::all(client.clone()).list(&lp).await.unwrap() {
        state.insert(format!("daemonset {}", ds.metadata.name.unwrap_or_default()));
    }
    let api = RuntimeClassApi::for_version(cluster.bundle.version);
    for class in runtime_class_names(client, api).await.unwrap() {
        state.insert(format!("runtimeclass {class}"));
    }
    state
}

/// Points the node's kubeadm CRI-socket annotation at `socket`; returns what it was.
async fn point_cri_socket(cluster: &Cluster, socket: &str) -> String {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Patch, PatchParams};
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = nodes.get("kh-node").await.unwrap();
    let key = "kubeadm.alpha.kubernetes.io/cri-socket";
    let was = node
        .metadata
        .annotations
        .unwrap_or_default()
        .get(key)
        .cloned()
        .unwrap();
    let patch = serde_json::json!({ "metadata": { "annotations": { key: socket } } });
    nodes
        .patch("kh-node", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    was
}

/// `run --kubeconfig <cluster's> <extra> --suites suites/kubernetes.yaml`, which must succeed:
/// its stdout and results.json.
fn run_against(cluster: &Cluster, extra: &[&str]) -> (String, serde_json::Value) {
    let results = tempfile::tempdir().unwrap();
    let out = harness()
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cluster.admin_kubeconfig)
        .args(extra)
        .arg("--suites")
        .arg(repo().join("suites/kubernetes.yaml"))
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    let json = serde_json::from_slice(&std::fs::read(results.path().join("results.json")).unwrap()).unwrap();
    (stdout, json)
}

/// Starts a run against `cluster`, sends SIGINT once a row's pod exists in the run's
/// namespace, and waits for the run to exit 130.
fn interrupt_mid_row(runtime: &tokio::runtime::Runtime, cluster: &Cluster) {
    use kata_harness::wait::{wait_blocking, Attempt};
    use std::time::Duration;
    let results = tempfile::tempdir().unwrap();
    let mut child = harness()
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cluster.admin_kubeconfig)
        .arg("--suites")
        .arg(repo().join("suites/kubernetes.yaml"))
        .args(["--filter", "crun-runtime-class-web"])
        .arg("--results")
        .arg(results.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(results.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(results.path().join("stderr")).unwrap_or_default();
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    wait_blocking(
        "a row's pod in the run's namespace",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                return Attempt::Fatal(format!("the run ended first: {status}\n{}", said()));
            }
            let list = runtime.block_on(pods.list(&ListParams::default())).unwrap();
            match list.items.iter().any(|p| {
                p.metadata
                    .namespace
                    .as_deref()
                    .is_some_and(|n| n.starts_with("kata-harness-"))
            }) {
                true => Attempt::Ready(()),
                false => Attempt::NotYet("no pod yet".into()),
            }
        },
    )
    .unwrap();
    let status = interrupt_and_wait(&mut child, Duration::from_secs(150));
    assert_eq!(status.code(), Some(130), "{}", said());
}

#[test]
fn the_cluster_suite_runs_on_an_existing_cluster_and_leaves_it_as_found() {
    let bundle = Bundle::ensure(&repo(), Bundle::user_dir(None).as_deref()).expect("the bundle");
    let images = kata_harness::kube::images::ensure(&bundle).expect("the control-plane images");
    let capabilities = Capabilities::probe_local();
    let settings = ClusterSettings {
        bundle,
        keep: false,
        kata: capabilities.kata.clone(),
        kata_rs: None,
        kata_runtime_class: "kata".into(),
        containerd: ContainerdChoice::Line("1.6".into()),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cluster = runtime
        .block_on(Cluster::start(&settings, &images))
        .unwrap_or_else(|f| panic!("the cluster starts: {}", kata_harness::report::chain(&f.error)));
    let version = cluster.bundle.version;
    let before = runtime.block_on(state_of(&cluster));

    let (stdout, json) = run_against(&cluster, &[]);
    let label = format!("existing-k8s-{}.{}", version.major, version.minor);
    let rows = [
        "system-pods-on-runc",
        "crun-runtime-class-web",
        "missing-runtime-class",
        "unconfigured-handler",
    ];
    for row in rows {
        assert!(
            stdout.contains(&format!("kubernetes::{row}::{label}")),
            "{stdout}"
        );
    }
    // Every row ran (Kata ones where the cluster has Kata), none failed; runtime-rs's are
    // skipped: this cluster's node runs containerd 1.6, so it has no RuntimeClass for it.
    let summary = &json["summary"];
    assert_eq!(summary["failed"], 0, "{stdout}");
    let suite = kata_harness::scenario::Suite::load(&repo().join("suites/kubernetes.yaml")).unwrap();
    let needing = |r: Requirement| suite.rows.iter().filter(|row| row.requires.contains(&r)).count();
    let rs_rows = needing(Requirement::KataRs);
    assert!(rs_rows >= 2, "the suite has runtime-rs rows");
    let skipped = rs_rows
        + if capabilities.kata_absent.is_none() {
            0
        } else {
            needing(Requirement::Kata)
        };
    assert_eq!(summary["skipped"], skipped, "{stdout}");
    assert_eq!(summary["passed"], suite.rows.len() - skipped, "{stdout}");
    assert!(json["run"]["environment"]
        .to_string()
        .contains("was set up outside the harness"));

    let after = runtime.block_on(state_of(&cluster));
    assert_eq!(before, after, "the cluster is not as it was found");

    // The same rows with the node's CRI socket elsewhere (its kubeadm annotation pointed at a
    // path not on this host, put back afterwards): read from the API only, the same verdicts,
    // each row saying how its runtime was read, each handler the one its pods got.
    let elsewhere = "unix:///elsewhere/containerd/containerd.sock";
    let original = runtime.block_on(point_cri_socket(&cluster, elsewhere));
    let refused = harness()
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cluster.admin_kubeconfig)
        .args(["--runtime-from", "cri", "--suites"])
        .arg(repo().join("suites/kubernetes.yaml"))
        .arg("--results")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let (stdout, json) = run_against(&cluster, &[]);
    runtime.block_on(point_cri_socket(&cluster, &original));
    assert_eq!(refused.status.code(), Some(1));
    let refused = String::from_utf8_lossy(&refused.stderr);
    assert!(
        refused.contains("is not on this host, and --runtime-from cri reads runtimeType through it"),
        "{refused}"
    );
    assert_eq!(json["summary"]["failed"], 0, "{stdout}");
    assert_eq!(json["summary"]["passed"], suite.rows.len() - skipped, "{stdout}");
    let trials = json["trials"].as_array().unwrap();
    let observed = |scenario: &str| -> String {
        let trial = trials
            .iter()
            .find(|t| t["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no row {scenario}: {stdout}"));
        trial["observed"].as_str().unwrap().to_owned()
    };
    for trial in trials.iter().filter(|t| t["verdict"] == "passed") {
        let conditions = trial["conditions"].to_string();
        assert!(
            conditions.contains("not the node's CRI (node kh-node's CRI socket /elsewhere/containerd/containerd.sock is not on this host)"),
            "{trial}"
        );
    }
    assert!(observed("system-pods-on-runc").contains("(pod status): handler default, started by containerd"));
    assert!(observed("crun-runtime-class-web").contains("(pod status): handler crun,"));
    assert!(observed("host-network-daemonset-on-runc")
        .contains(&format!("node address {} visible", cluster.node_ip)));
    assert!(observed("unconfigured-handler").contains("0 started containers (pod status)"));
    if capabilities.kata_absent.is_none() {
        assert!(observed("kata-nginx").contains("(pod status): handler kata,"));
        assert!(observed("kata-host-network").contains("not visible"));
    }
    let after = runtime.block_on(state_of(&cluster));
    assert_eq!(
        before, after,
        "the cluster is not as it was found after --runtime-from pod-status"
    );

    // Ctrl-C while a row's pod runs: the run's namespace (and the pod in it) goes too.
    interrupt_mid_row(&runtime, &cluster);
    let after = runtime.block_on(state_of(&cluster));
    assert_eq!(before, after, "the cluster is not as it was found after Ctrl-C");

    let leftovers = runtime.block_on(cluster.shutdown());
    assert!(leftovers.is_clean(), "{leftovers:?}");
}
