//! `cargo run --release --example bench_crictl -- [RUNS]`: the harness's overhead next to
//! crictl. On one private containerd 1.6 (the local target), RUNS times each:
//!   harness: the `cri::default-handler` row, as `run` runs it (RunPodSandbox, a container,
//!            the CRI's runtimeType, containerd's record, the OCI runtime's state, the shim
//!            watch, removal, the wait for the shim's exit, the log scan);
//!   crictl:  the same operations by the real crictl, ctr and runc in a shell loop: runp,
//!            create, start, inspectp, inspect, `ctr containers info` of both, `runc state`
//!            of both, stopp, rmp.
//! Prints JSON: min/median/max seconds of each and the ratio of the medians.

use std::path::Path;
use std::time::{Duration, Instant};

use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::{Settings, Testbed, BUSYBOX_IMAGE};
use kata_harness::render::cri::{ContainerSpec, PodSpec};
use kata_harness::report::Verdict;
use kata_harness::scenario::{plan, run::run_trial, Capabilities, Suite, Variant};

fn stats(values: &mut [f64]) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    serde_json::json!({
        "min": round(values[0]),
        "median": round(median),
        "max": round(values[values.len() - 1]),
        "runs": values.iter().map(|v| round(*v)).collect::<Vec<_>>(),
    })
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(10, |n| n.parse().expect("RUNS: a number"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let settings = Settings::plain(repo.clone());
    let testbed = Testbed::start_local(&settings).await.expect("a local testbed");

    let suites = Suite::load_dir(&repo.join("suites")).expect("the suites");
    let variant = Variant::containerd(ContainerdChoice::Line("1.6".into()));
    let trials = plan::plan(&suites, &[(variant, Capabilities::probe_local())]);
    let trial = trials
        .iter()
        .find(|t| t.name == "cri::default-handler::containerd-1.6")
        .expect("the default-handler row");

    // The same pod and container the row asks for.
    let dir = tempfile::tempdir().unwrap();
    let pod = PodSpec {
        name: "bench".into(),
        namespace: "kata-harness".into(),
        uid: "bench-uid".into(),
        handler: String::new(),
        log_directory: testbed
            .paths
            .pod_logs
            .join("bench")
            .to_string_lossy()
            .into_owned(),
        cgroup_parent: format!("/{}", testbed.cgroup_parent),
        host_network: false,
        annotations: Default::default(),
        ..PodSpec::default()
    };
    let container = ContainerSpec::sleeping_busybox(BUSYBOX_IMAGE);
    std::fs::write(dir.path().join("pod.json"), pod.to_crictl_json().to_string()).unwrap();
    std::fs::write(
        dir.path().join("container.json"),
        container.to_crictl_json().to_string(),
    )
    .unwrap();
    let crictl = kata_harness::artifacts::cri_tools::crictl().expect("crictl (scripts/setup builds it)");
    let socket = testbed.paths.socket.display().to_string();
    // runc's root per containerd namespace under the handler's Root (as the row reads it).
    let runc_root = testbed.paths.runtime_root.join("k8s.io").display().to_string();
    let crictl_yaml = testbed.paths.run_dir.join("crictl.yaml").display().to_string();
    let script = format!(
        r#"set -e
c="{crictl} --config {crictl_yaml}"
POD=$($c runp {dir}/pod.json)
CTR=$($c create "$POD" {dir}/container.json {dir}/pod.json)
$c start "$CTR" >/dev/null
$c inspectp "$POD" >/dev/null
$c inspect "$CTR" >/dev/null
ctr --address {socket} -n k8s.io containers info "$POD" >/dev/null
ctr --address {socket} -n k8s.io containers info "$CTR" >/dev/null
runc --root {runc_root} state "$POD" >/dev/null
runc --root {runc_root} state "$CTR" >/dev/null
$c stopp "$POD" >/dev/null
$c rmp "$POD" >/dev/null
"#,
        crictl = crictl.display(),
        dir = dir.path().display(),
    );

    let mut harness = Vec::new();
    let mut shell = Vec::new();
    for i in 0..runs {
        eprintln!("bench_crictl: run {}/{runs}", i + 1);
        let start = Instant::now();
        let result = run_trial(&testbed, trial).await;
        harness.push(start.elapsed().as_secs_f64());
        assert_eq!(
            result.verdict,
            Verdict::Passed,
            "{}: {}",
            result.observed,
            result.message
        );

        let start = Instant::now();
        let out = kata_harness::process::run(
            {
                let mut cmd = std::process::Command::new("sh");
                cmd.args(["-c", &script]);
                cmd
            },
            Duration::from_secs(120),
        )
        .expect("the crictl loop");
        shell.push(start.elapsed().as_secs_f64());
        drop(out);
    }
    let harness_stats = stats(&mut harness);
    let shell_stats = stats(&mut shell);
    let ratio = harness_stats["median"].as_f64().unwrap() / shell_stats["median"].as_f64().unwrap();
    let report = serde_json::json!({
        "containerd": testbed.containerd.version_text,
        "row": trial.name,
        "runs": runs,
        "harness_row_s": harness_stats,
        "crictl_loop_s": shell_stats,
        "harness_over_crictl_median": (ratio * 100.0).round() / 100.0,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let leftovers = testbed.shutdown().await;
    assert!(leftovers.is_clean(), "{leftovers:?}");
}
