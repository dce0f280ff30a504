//! Every scenario row of a local containerd as a libtest-mimic trial named
//! `suite::scenario::variant`, so `cargo test` and `cargo nextest run` list, filter (`--exact`)
//! and report each row; the rows of a VM image as one trial per image, `vm-rows::vm-<image>`,
//! which boots one VM and runs them all in it (as `kata-harness run` does), each row judged and
//! reported on its own (table on stderr, JUnit and JSON in
//! `target/kata-harness-results/vm-rows-<image>/`), and each row's own leftover check between
//! rows. A TCG boot is 15-30 s here: one per image instead of one per row.
//!
//! Local trials of one variant share one testbed (a private containerd), started on first use
//! and stopped after the last trial; under nextest (a process per trial) each trial gets its
//! own. A row with a node of its own (`node:`, e.g. suites/upgrade.yaml) always starts and
//! stops its own. Variants: `KATA_HARNESS_CONTAINERD=1.6,1.7,2.1,2.3` (local; the default) and
//! `KATA_HARNESS_VM_IMAGES=bookworm,bookworm-containerd21` (VMs; the default; empty for none).
//! Skips are decided before a trial runs: such trials are marked ignored, and their reasons
//! printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, LazyLock, Mutex};

use kata_harness::profile::{ContainerdChoice, DEFAULT_CONTAINERD_LINES, DEFAULT_VM_IMAGES};
use kata_harness::provision::{Settings, Testbed};
use kata_harness::report::quarantine::{self, Quarantine};
use kata_harness::report::{
    self, terminal::Terminal, Event, Recorder, RunInfo, Sink, Tee, TrialResult, Verdict,
};
use kata_harness::scenario::plan::Placement;
use kata_harness::scenario::{plan, run::run_trial, session, Capabilities, Suite, Variant};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// One runtime for the whole binary: testbeds' gRPC channels live on it across trials.
static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Runtime::new().expect("failed to start the async runtime"));

/// What this host offers (Kata layout and how it can run here), probed once.
static LOCAL: LazyLock<Capabilities> = LazyLock::new(Capabilities::probe_local);

/// The suites' quarantine list (loaded and checked in `main`).
static QUARANTINE: std::sync::OnceLock<Quarantine> = std::sync::OnceLock::new();

type Testbeds = Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Result<Testbed, String>>>>>;
static TESTBEDS: LazyLock<Testbeds> = LazyLock::new(Default::default);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Local variants from `KATA_HARNESS_CONTAINERD`, VM variants from `KATA_HARNESS_VM_IMAGES`,
/// each with what its node offers.
fn variants() -> Result<Vec<(Variant, Capabilities)>, String> {
    let mut variants = Vec::new();
    let lines =
        std::env::var("KATA_HARNESS_CONTAINERD").unwrap_or_else(|_| DEFAULT_CONTAINERD_LINES.join(","));
    let local = LOCAL.clone();
    for text in lines.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let choice: ContainerdChoice = text
            .parse()
            .map_err(|e| format!("KATA_HARNESS_CONTAINERD={text}: {e}"))?;
        choice
            .resolve()
            .map_err(|e| format!("KATA_HARNESS_CONTAINERD={text}: {e}"))?;
        variants.push((Variant::containerd(choice), local.clone()));
    }
    let images = std::env::var("KATA_HARNESS_VM_IMAGES").unwrap_or_else(|_| DEFAULT_VM_IMAGES.join(","));
    for recipe in images.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !repo()
            .join("vm-images")
            .join(recipe)
            .join("recipe.conf")
            .is_file()
        {
            return Err(format!("KATA_HARNESS_VM_IMAGES: no recipe vm-images/{recipe}"));
        }
        variants.push((Variant::vm(recipe), Capabilities::for_vm(recipe, &repo(), &local)));
    }
    Ok(variants)
}

/// Notes from testbed start-up (e.g. "the VM runs under TCG") go to stderr.
struct Stderr;

impl Sink for Stderr {
    fn event(&mut self, event: &Event) {
        if let Event::Note(text) = event {
            eprintln!("note: {text}");
        }
    }
}

/// The shared testbed of a variant, started once (concurrent trials wait for the same start).
async fn testbed(variant: &Variant) -> Arc<tokio::sync::OnceCell<Result<Testbed, String>>> {
    let cell = TESTBEDS
        .lock()
        .unwrap()
        .entry(variant.label.clone())
        .or_default()
        .clone();
    let settings = local_settings();
    cell.get_or_init(|| async move { session::start_testbed(variant, &settings, &mut Stderr).await })
        .await;
    cell
}

/// What local testbeds start with: this host's Kata (the variant sets the containerd).
fn local_settings() -> Settings {
    Settings {
        containerd: ContainerdChoice::Line("1.6".into()),
        keep: false,
        pause_binary: None,
        repo: repo(),
        kata: LOCAL.kata.clone(),
        kata_rs: LOCAL.kata_rs.clone(),
        kata_runtime_class: "kata".into(),
    }
}

/// The rows of one VM image in one VM, through the same session code as `kata-harness run`:
/// fails when any row failed (naming each, with its bundle), passes when every row passed or
/// was skipped with its reason (the table lists both).
fn run_vm_rows(variant: &Variant, rows: &[plan::Trial]) -> Result<(), Failed> {
    // This host's Kata, which the session installs in guests whose image ships a QEMU.
    let settings = Settings {
        kata: LOCAL.kata.clone(),
        ..Settings::plain(repo())
    };
    let quarantine = QUARANTINE.get().cloned().unwrap_or_default();
    let mut recorder = Recorder::default();
    let mut results = {
        // Terminal: a line per row as it finishes, and the table at the end.
        let mut terminal = Terminal::new();
        let mut sinks = Tee(vec![&mut terminal, &mut recorder]);
        RUNTIME.block_on(Box::pin(session::run(
            rows,
            std::slice::from_ref(variant),
            &settings,
            &quarantine,
            0,
            &mut sinks,
        )))
    };
    let mut info = RunInfo {
        command: match &variant.placement {
            Placement::Vm(recipe) => format!("kata-harness run --target vm --image {recipe}"),
            _ => "kata-harness run --target vm".into(),
        },
        target: "vm".into(),
        environment: vec![("target".into(), "vm".into())],
        ..RunInfo::default()
    };
    info.environment
        .extend(kata_harness::profile::default_components(&repo()));
    info.environment.extend(recorder.testbed_facts());
    let out = repo().join(format!("target/kata-harness-results/vm-rows-{}", variant.label));
    report::write_results(&out, &info, &mut results).map_err(|e| Failed::from(e.to_string()))?;
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Failed)
        .map(|r| {
            format!(
                "{}: expected {}; observed {}\n    {}\n    bundle: {}",
                r.name,
                r.expected,
                r.observed,
                r.message.lines().next().unwrap_or(""),
                r.bundle
                    .as_deref()
                    .map(|b| b.display().to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failed::from(format!(
            "{} of {} rows failed:\n  {}",
            failed.len(),
            results.len(),
            failed.join("\n  ")
        )))
    }
}

fn run_one(trial: &plan::Trial) -> Result<Completion, Failed> {
    if let Some(reason) = &trial.skip {
        return Ok(Completion::ignored_with(reason));
    }
    RUNTIME.block_on(async {
        // A row with a node of its own starts (and stops) that node itself.
        if trial.row.node.is_some() {
            let result = session::run_on_own_node(trial, &local_settings(), &mut Stderr).await;
            return judged(result);
        }
        let cell = testbed(&trial.variant).await;
        let testbed = match cell.get().expect("initialised") {
            Ok(testbed) => testbed,
            Err(e) => return Err(Failed::from(format!("testbed did not start: {e}"))),
        };
        let mut result = run_trial(testbed, trial).await;
        if result.verdict == Verdict::Failed {
            session::attach_testbed_evidence(testbed, &mut result.evidence);
        }
        judged(result)
    })
}

/// A trial's result as libtest-mimic's outcome, after the quarantine list: a failure says
/// what was expected and observed, how to reproduce it, and the containerd log's tail.
fn judged(mut result: TrialResult) -> Result<Completion, Failed> {
    if let Some(note) = QUARANTINE.get().and_then(|q| q.apply(&mut result)) {
        eprintln!("note: {note}");
    }
    match result.verdict {
        // Retries are nextest's here (the CI profile): a harness-level flaky row cannot occur.
        Verdict::Passed | Verdict::Flaky => Ok(Completion::Completed),
        Verdict::Skipped | Verdict::Quarantined => Ok(Completion::ignored_with(result.message)),
        Verdict::Failed => {
            let log = result
                .evidence
                .files
                .iter()
                .find(|(n, _)| n == "containerd.log.tail")
                .map(|(_, t)| t.as_str())
                .unwrap_or("");
            let tail = kata_harness::process::tail_of_text(log, 15);
            Err(Failed::from(format!(
                "expected: {}\nobserved: {}\n{}\nreproduce:\n  {}\n----- containerd log (tail) -----\n{tail}",
                result.expected,
                result.observed,
                result.message,
                result.evidence.reproduce.join("\n  "),
            )))
        }
    }
}

fn main() -> ExitCode {
    kata_harness::teardown::install_interrupt_handler();
    let args = Arguments::from_args();
    let suites = match Suite::load_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) {
        Ok(suites) => suites,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match Quarantine::beside(Path::new(env!("CARGO_MANIFEST_DIR")), quarantine::today()) {
        Ok(q) => QUARANTINE.set(q).expect("set once"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let variants = match variants() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut trials = plan::plan(&suites, &variants);
    // A critest row is a whole critest run with a row per spec: suites/critest.rs runs it.
    trials.retain(|t| t.row.critest().is_none());
    if trials.is_empty() {
        eprintln!("error: the suites expand to zero trials");
        return ExitCode::from(2);
    }
    // Skipped trials are marked ignored up front, so every runner (cargo test, nextest) shows
    // them as skipped, never as passed; their reasons go to stderr here, and a trial run with
    // --include-ignored still answers "ignored" with its reason instead of running.
    if !args.list {
        for trial in trials.iter().filter(|t| t.skip.is_some()) {
            eprintln!(
                "skip {}: {}",
                trial.name,
                trial.skip.as_deref().unwrap_or_default()
            );
        }
    }
    let (vm_rows, trials): (Vec<plan::Trial>, Vec<plan::Trial>) = trials
        .into_iter()
        .partition(|t| matches!(t.variant.placement, Placement::Vm(_)));
    let mut vm_variants: Vec<Variant> = Vec::new();
    for trial in &vm_rows {
        if !vm_variants.contains(&trial.variant) {
            vm_variants.push(trial.variant.clone());
        }
    }
    let vm_trials = vm_variants.into_iter().map(|variant| {
        let rows: Vec<plan::Trial> = vm_rows.iter().filter(|t| t.variant == variant).cloned().collect();
        Trial::test(format!("vm-rows::{}", variant.label), move || {
            run_vm_rows(&variant, &rows)
        })
        .with_kind("vm")
    });
    let trials: Vec<Trial> = trials
        .into_iter()
        .map(|trial| {
            let name = trial.name.clone();
            let ignored = trial.skip.is_some();
            Trial::ignorable_test(name, move || run_one(&trial))
                .with_kind("scenario")
                .with_ignored_flag(ignored)
        })
        .chain(vm_trials)
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);

    // Stop every testbed; anything left behind fails the run.
    let mut leftovers = Vec::new();
    let cells: Vec<_> = TESTBEDS.lock().unwrap().drain().collect();
    for (label, cell) in cells {
        if let Some(Ok(testbed)) = Arc::try_unwrap(cell).ok().and_then(|c| c.into_inner()) {
            let left = RUNTIME.block_on(testbed.shutdown());
            leftovers.extend(left.0.into_iter().map(|l| format!("{label}: {l}")));
        }
    }
    if !leftovers.is_empty() {
        eprintln!(
            "error: testbeds left things behind:\n  {}",
            leftovers.join("\n  ")
        );
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}
