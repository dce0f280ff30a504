//! Kata teardown with real Kata on a private containerd: after a row, after a killed shim and
//! after a killed QEMU, no QEMU, virtiofsd, vsock backend or shim of the sandbox is left, and
//! the testbed's own cleanup finds nothing. (Ctrl-C during a Kata row: tests/cli.rs.)
//!
//! These need the Kata layout scripts/setup builds (scripts/build-kata); without it they fail
//! saying so, since setup is what the test command runs first.

use std::collections::HashMap;
use std::time::Duration;

use kata_harness::cri::RuntimeInfo;
use kata_harness::node::local_processes;
use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::cleanup::{is_zombie, tagged_processes};
use kata_harness::provision::{Settings, Testbed};
use kata_harness::render::cri::PodSpec;
use kata_harness::scenario::Capabilities;
use kata_harness::wait::{wait_for, Attempt};

/// The processes a Kata sandbox brings up on the node, by the names they run as.
const KATA_PROCESSES: [&str; 4] = [
    "qemu-system",
    "vhost-device-vsock",
    "virtiofsd",
    "containerd-shim-kata",
];

async fn kata_testbed() -> Testbed {
    let capabilities = Capabilities::probe_local();
    let kata = capabilities.kata.unwrap_or_else(|| {
        panic!(
            "no Kata to test ({}): scripts/setup builds it with scripts/build-kata",
            capabilities.kata_absent.unwrap_or_default()
        )
    });
    let settings = Settings {
        containerd: ContainerdChoice::Line("1.6".into()),
        keep: false,
        pause_binary: None,
        repo: ".".into(),
        kata: Some(kata),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_kata_sandbox_leaves_no_vmm_backend_or_shim() {
    let testbed = kata_testbed().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_kata_shim_leaves_nothing_after_teardown() {
    let testbed = kata_testbed().await;
    let (id, _ns) = start_kata_sandbox(&testbed, "teardown-shim").await;
    kill(pid_of(&_ns, &id, "containerd-shim-kata"));
    shutdown_clean(testbed, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_kata_qemu_is_seen_and_removal_cleans_up_its_backends() {
    let testbed = kata_testbed().await;
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
