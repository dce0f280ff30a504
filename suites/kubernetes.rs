//! The cluster suites (`placements: [cluster]`, e.g. `suites/kubernetes.yaml`) as one
//! libtest-mimic trial per Kubernetes bundle: `kubernetes::k8s-1.20`.
//!
//! Why one trial and not one per row: a kubeadm cluster takes about a minute to come up, and
//! nextest runs every trial in its own process, so per-row trials would each bring up a
//! cluster. This trial brings one up, runs every row against it through the same session code
//! as `kata-harness run --k8s`, prints the rows' table, writes JUnit and JSON with one case per
//! row to `target/kata-harness-results/kubernetes/`, and fails if any row failed (skipped Kata
//! rows stay skipped, with their reason in the table).
//!
//! Bundle: `KATA_HARNESS_K8S_BUNDLE` (any version), else the default one, built by
//! `scripts/build-k8s-bundle` first if missing (about 10 minutes cold, then cached).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kata_harness::kube::bundle::Bundle;
use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::Settings;
use kata_harness::report::quarantine::{self, Quarantine};
use kata_harness::report::{self, Recorder, RunInfo, Summary, Verdict};
use kata_harness::scenario::{plan, session, Capabilities, Suite, Variant};
use libtest_mimic::{Arguments, Failed, Trial};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_suite(bundle_label: &str) -> Result<(), Failed> {
    let suites =
        Suite::load_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).map_err(|e| Failed::from(e.to_string()))?;
    let user = Bundle::user_dir(None);
    let bundle = Bundle::ensure(&repo(), user.as_deref()).map_err(|e| Failed::from(report::chain(&e)))?;
    if bundle.label() != bundle_label {
        return Err(Failed::from(format!(
            "bundle is {}, trial is {bundle_label}",
            bundle.label()
        )));
    }
    let variant = Variant::cluster(bundle);
    // The node's containerd as the default profile names it (`kubernetes.containerd`).
    let profile = kata_harness::profile::load_named(&repo().join("profiles"), "default")
        .map_err(|e| Failed::from(e.to_string()))?;
    let (line, kata_runtime_class) = profile.kubernetes.map_or_else(
        || ("1.6".to_owned(), "kata".to_owned()),
        |k| (k.containerd, k.kata_runtime_class),
    );
    let suites: Vec<Suite> = suites
        .into_iter()
        .map(|s| s.with_kata_runtime_class(&kata_runtime_class))
        .collect();
    let capabilities = Capabilities::probe_local().on_containerd_line(&line);
    let trials = plan::plan(&suites, &[(variant.clone(), capabilities.clone())]);
    if trials.is_empty() {
        return Err(Failed::from(
            "no cluster suite rows (suites with placements: [cluster])",
        ));
    }
    let settings = Settings {
        containerd: ContainerdChoice::Line(line),
        keep: false,
        pause_binary: None,
        repo: repo(),
        kata: capabilities.kata.clone(),
        kata_rs: capabilities.kata_rs.clone(),
        kata_runtime_class,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failed::from(e.to_string()))?;
    let mut recorder = Recorder::default();
    let mut results = runtime.block_on(Box::pin(session::run(
        &trials,
        &[variant],
        &settings,
        &quarantine()?,
        0,
        &mut recorder,
    )));
    let mut info = RunInfo {
        command: "kata-harness run --target local --k8s".into(),
        target: "local".into(),
        environment: vec![("target".into(), "local".into())],
        ..RunInfo::default()
    };
    info.environment
        .extend(kata_harness::profile::default_components(&repo()));
    info.environment.extend(recorder.testbed_facts());
    let out = repo().join("target/kata-harness-results/kubernetes");
    report::write_results(&out, &info, &mut results).map_err(|e| Failed::from(e.to_string()))?;
    eprintln!("{}", report::terminal::table(&results));
    for (what, value) in recorder.testbed_facts() {
        eprintln!("  {what}: {value}");
    }
    let summary = Summary::of(&results);
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Failed)
        .map(|r| format!("{}: {} ({})", r.name, r.observed, r.message))
        .collect();
    if summary.failed > 0 {
        return Err(Failed::from(format!(
            "{} rows failed (bundles in {}):\n  {}",
            failed.len(),
            out.join("bundles").display(),
            failed.join("\n  ")
        )));
    }
    Ok(())
}

fn main() -> ExitCode {
    kata_harness::teardown::install_interrupt_handler();
    let args = Arguments::from_args();
    // The label needs the bundle's version: read it without building (listing must be fast).
    let dir = Bundle::user_dir(None).unwrap_or_else(Bundle::default_dir);
    let label = Bundle::open(&dir).map(|b| b.label()).unwrap_or_else(|_| {
        format!(
            "k8s-{}",
            kata_harness::kube::bundle::DEFAULT_VERSION
                .trim_start_matches('v')
                .rsplit_once('.')
                .map(|(mm, _)| mm)
                .unwrap_or("1.20")
        )
    });
    let name = format!("kubernetes::{label}");
    let trials = vec![Trial::test(name, move || run_suite(&label)).with_kind("cluster")];
    libtest_mimic::run(&args, trials).exit_code()
}

/// The suites' quarantine list, as `kata-harness run` applies it.
fn quarantine() -> Result<Quarantine, Failed> {
    Quarantine::beside(Path::new(env!("CARGO_MANIFEST_DIR")), quarantine::today())
        .map_err(|e| Failed::from(e.to_string()))
}
