//! Kata teardown with real Kata on a private containerd: after a row, after a killed shim and
//! after a killed QEMU, no QEMU, virtiofsd, vsock backend or shim of the sandbox is left, and
//! the testbed's own cleanup finds nothing; and Ctrl-C during a Kata row of `kata-harness run`
//! leaves none of them either.
//!
//! These need a Kata this host can run (the layout scripts/setup builds with
//! scripts/build-kata, or one `KATA_HARNESS_KATA_BUNDLE` names): where there is none, every
//! trial is skipped with the reason, decided before it runs (libtest-mimic, `harness = false`:
//! see `common/trials.rs`).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use kata_harness::cri::RuntimeInfo;
use kata_harness::node::local_processes;
use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::cleanup::{is_zombie, tagged_processes};
use kata_harness::provision::kata::KataPlan;
use kata_harness::provision::{Settings, Testbed};
use kata_harness::render::cri::PodSpec;
use kata_harness::scenario::Capabilities;
use kata_harness::wait::{wait_for, Attempt};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/trials.rs"]
mod trials;
use trials::{block_on, kata_plan, Planned};

/// The processes a Kata sandbox brings up on the node, by the names they run as.
const KATA_PROCESSES: [&str; 4] = [
    "qemu-system",
    "vhost-device-vsock",
    "virtiofsd",
    "containerd-shim-kata",
];

async fn kata_testbed(kata: KataPlan) -> Testbed {
    let settings = Settings {
        containerd: ContainerdChoice::Line("1.6".into()),
        keep: false,
        pause_binary: None,
        repo: ".".into(),
        kata: Some(kata),
        kata_rs: None,
        kata_runtime_class: "kata".into(),
    };
    Testbed::start_local(&settings).await.expect("testbed starts")
}

fn pod(testbed: &Testbed, name: &str) -> PodSpec {
    PodSpec {
        name: name.into(),
        namespace: "kata-harness".into(),
        uid: format!("{name}-1"),
        handler: "kata".into(),
        log_directory: testbed.paths.pod_logs.join(name).to_string_lossy().into_owned(),
        cgroup_parent: format!("/{}", testbed.cgroup_parent),
        host_network: false,
        annotations: HashMap::new(),
        ..PodSpec::default()
    }
}

/// What marks the processes containerd and its shims start (their environment's
/// KATA_HARNESS_TESTBED, inherited by Kata's QEMU and backends).
fn testbed_tag(testbed: &Testbed) -> String {
    testbed.paths.run_dir.to_string_lossy().into_owned()
}

/// Kata's processes of sandbox `id` (the shim carries `-id <id>`, QEMU `-name sandbox-<id>`,
/// the backends live in the sandbox's /run/vc dirs): name -> pids.
fn kata_processes(ns: &str, id: &str) -> Vec<(i32, String)> {
    tagged_processes(ns)
        .into_iter()
        .filter(|(pid, cmdline)| {
            KATA_PROCESSES.iter().any(|p| cmdline.contains(p)) && cmdline.contains(id) && !is_zombie(*pid)
        })
        .collect()
}

async fn wait_until_gone(ns: &str, id: &str, after: &str) {
    wait_for(
        &format!("Kata's processes to exit after {after}"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let left = kata_processes(ns, id);
            if left.is_empty() {
                Attempt::Ready(())
            } else {
                Attempt::NotYet(format!("left: {left:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn start_kata_sandbox(testbed: &Testbed, name: &str) -> (String, String) {
    let id = testbed
        .cri
        .run_pod_sandbox(&pod(testbed, name))
        .await
        .expect("Kata sandbox runs");
    let status = testbed.cri.pod_sandbox_status(&id).await.unwrap();
    let info = RuntimeInfo::from_verbose_info("sandbox", &status.info).unwrap();
    assert_eq!(info.runtime_type, "io.containerd.kata.v2");
    let ns = testbed_tag(testbed);
    let running = kata_processes(&ns, &id);
    for name in KATA_PROCESSES {
        assert!(
            running.iter().any(|(_, c)| c.contains(name)),
            "no {name} for sandbox {id}: {running:?}"
        );
    }
    (id, ns)
}

fn pid_of(ns: &str, id: &str, name: &str) -> i32 {
    kata_processes(ns, id)
        .into_iter()
        .find(|(_, c)| c.contains(name))
        .map(|(pid, _)| pid)
        .unwrap_or_else(|| panic!("no {name} for {id}"))
}

fn kill(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
}

async fn shutdown_clean(testbed: Testbed, id: &str) {
    let leftovers = testbed.shutdown().await;
    assert!(leftovers.is_clean(), "{leftovers:?}");
    let anywhere: Vec<_> = local_processes()
        .into_iter()
        .filter(|p| p.cmdline.contains(id))
        .map(|p| p.cmdline)
        .collect();
    assert!(
        anywhere.is_empty(),
        "processes of sandbox {id} after teardown: {anywhere:?}"
    );
}

async fn a_removed_kata_sandbox_leaves_no_vmm_backend_or_shim(kata: KataPlan) {
    let testbed = kata_testbed(kata).await;
    let (id, ns) = start_kata_sandbox(&testbed, "teardown-row").await;
    testbed.cri.stop_pod_sandbox(&id).await.expect("StopPodSandbox");
    testbed
        .cri
        .remove_pod_sandbox(&id)
        .await
        .expect("RemovePodSandbox");
    wait_until_gone(&ns, &id, "RemovePodSandbox").await;
    shutdown_clean(testbed, &id).await;
}

async fn a_killed_kata_shim_leaves_nothing_after_teardown(kata: KataPlan) {
    let testbed = kata_testbed(kata).await;
    let (id, ns) = start_kata_sandbox(&testbed, "teardown-shim").await;
    kill(pid_of(&ns, &id, "containerd-shim-kata"));
    shutdown_clean(testbed, &id).await;
}

async fn a_killed_kata_qemu_is_seen_and_removal_cleans_up_its_backends(kata: KataPlan) {
    let testbed = kata_testbed(kata).await;
    let (id, ns) = start_kata_sandbox(&testbed, "teardown-qemu").await;
    kill(pid_of(&ns, &id, "qemu-system"));
    // CRI: the sandbox is no longer ready once its VM is gone.
    wait_for(
        "the sandbox to leave SANDBOX_READY",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            match testbed.cri.pod_sandbox_status(&id).await {
                Ok(s) if s.status.as_ref().is_some_and(|s| s.state != 0) => Attempt::Ready(()),
                Ok(_) => Attempt::NotYet("still ready".into()),
                Err(e) => Attempt::NotYet(e.to_string()),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    testbed
        .cri
        .stop_pod_sandbox(&id)
        .await
        .expect("StopPodSandbox after the VM died");
    testbed
        .cri
        .remove_pod_sandbox(&id)
        .await
        .expect("RemovePodSandbox after the VM died");
    wait_until_gone(&ns, &id, "the VM died and the sandbox was removed").await;
    shutdown_clean(testbed, &id).await;
}

/// Ctrl-C while a Kata sandbox of `kata-harness run` runs: its QEMU, virtiofsd, vsock backend
/// and shim go too. (`kata-harness run` finds the same Kata this binary probed.)
fn ctrl_c_during_a_kata_row_leaves_no_vmm_or_backend_behind(_kata: KataPlan) {
    cli::interrupt_when(
        &[
            "--target",
            "local",
            "--containerd",
            "1.6",
            "--filter",
            "cri::kata-handler",
        ],
        |run_dir| {
            // What this run's containerd started: its environment carries the run dir.
            let kata: Vec<_> = tagged_processes(&run_dir.to_string_lossy())
                .into_iter()
                .filter(|(_, c)| KATA_PROCESSES.iter().any(|n| c.contains(n)))
                .collect();
            kata.iter()
                .any(|(_, c)| c.contains("qemu-system"))
                .then_some(kata)
        },
    );
}

/// A trial running the async test `$test` with the Kata plan, or skipped with why there is none.
macro_rules! async_trial {
    ($kata:expr, $test:ident) => {
        Planned::needing(stringify!($test), $kata.clone(), |plan| block_on($test(plan)))
    };
}

fn main() -> ExitCode {
    kata_harness::teardown::install_interrupt_handler();
    let kata = kata_plan(&Capabilities::probe_local());
    trials::run(vec![
        async_trial!(kata, a_removed_kata_sandbox_leaves_no_vmm_backend_or_shim),
        async_trial!(kata, a_killed_kata_shim_leaves_nothing_after_teardown),
        async_trial!(
            kata,
            a_killed_kata_qemu_is_seen_and_removal_cleans_up_its_backends
        ),
        Planned::needing(
            "ctrl_c_during_a_kata_row_leaves_no_vmm_or_backend_behind",
            kata,
            |plan| {
                ctrl_c_during_a_kata_row_leaves_no_vmm_or_backend_behind(plan);
                Ok(())
            },
        ),
    ])
}
