//! `--target cri://<socket>`: the suites against a containerd that was set up beforehand (a
//! private containerd this test starts, then treats as someone else's), which must be left
//! exactly as it was found: its config file, its images, its pods and containers, the
//! addresses on its network's `lo` and the registry configs under its config_path.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use kata_harness::profile::ContainerdChoice;
use kata_harness::provision::{Settings, Testbed, BUSYBOX_IMAGE};
use kata_harness::render::cri::PodSpec;
use kata_harness::scenario::Capabilities;
use sha2::{Digest, Sha256};

#[path = "common/cli.rs"]
mod cli;
use cli::{harness, stdout_of_success};

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What "as found" means: the config file's digest, the images, the sandboxes and the
/// containers, as containerd's own CLI and the CRI list them.
#[derive(Debug, PartialEq)]
struct NodeState {
    config_sha256: String,
    images: BTreeSet<String>,
    sandboxes: BTreeSet<String>,
    containers: BTreeSet<String>,
    lo_addresses: String,
    registry_hosts: BTreeSet<String>,
}

/// `ip` in the node's network.
fn ip_in_node(testbed: &Testbed, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["ip".to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    testbed
        .run_in_net(&argv, std::time::Duration::from_secs(10))
        .expect("ip runs in the node's network")
}

async fn state_of(testbed: &Testbed) -> NodeState {
    let lines = |namespace: &str, args: &[&str]| -> BTreeSet<String> {
        let out = testbed.ctr(namespace, args).expect("ctr answers");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let config = std::fs::read(&testbed.paths.config).expect("the node's config file");
    let mut images = lines("k8s.io", &["images", "ls", "-q"]);
    images.extend(lines("default", &["images", "ls", "-q"]));
    let mut containers = lines("k8s.io", &["containers", "ls", "-q"]);
    containers.extend(lines("default", &["containers", "ls", "-q"]));
    NodeState {
        config_sha256: hex::encode(Sha256::digest(&config)),
        images,
        sandboxes: testbed
            .cri
            .list_pod_sandboxes()
            .await
            .expect("ListPodSandbox")
            .into_iter()
            .map(|s| s.id)
            .collect(),
        containers,
        lo_addresses: String::from_utf8_lossy(
            &ip_in_node(testbed, &["-o", "-4", "addr", "show", "dev", "lo"]).stdout,
        )
        .into_owned(),
        registry_hosts: std::fs::read_dir(testbed.config.registry_config_path.as_ref().unwrap())
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_run_on_an_existing_containerd_and_leave_it_as_found() {
    let kata = Capabilities::probe_local();
    let settings = Settings {
        containerd: ContainerdChoice::Line("1.6".into()),
        keep: false,
        pause_binary: None,
        repo: repo(),
        kata: kata.kata.clone(),
        kata_rs: None,
        kata_runtime_class: "kata".into(),
    };
    let node = Testbed::start_local(&settings).await.expect("the node starts");
    // The node's own pod (labelled like the harness's, so only the record of what was there
    // keeps the run from removing it) and a node without busybox: the run must import it,
    // and remove it again.
    let own = PodSpec {
        name: "node-own".into(),
        namespace: "someone-else".into(),
        uid: "node-own-1".into(),
        handler: String::new(),
        log_directory: node.paths.pod_logs.join("own").to_string_lossy().into_owned(),
        cgroup_parent: format!("/{}", node.cgroup_parent),
        host_network: false,
        annotations: HashMap::new(),
        ..PodSpec::default()
    };
    let own_id = node.cri.run_pod_sandbox(&own).await.expect("the node's own pod");
    node.ctr("k8s.io", &["images", "rm", BUSYBOX_IMAGE])
        .expect("busybox removed");
    // A node without the registry address: the pull rows must add it, and remove it again.
    let registry_address = format!("{}/32", kata_harness::registry::REGISTRY_IP);
    assert!(
        ip_in_node(&node, &["addr", "del", &registry_address, "dev", "lo"])
            .status
            .success()
    );
    // And a registry config of the node's own, which no row may write over or remove.
    let config_path = node.config.registry_config_path.clone().unwrap();
    std::fs::create_dir_all(config_path.join("docker.io")).unwrap();
    std::fs::write(
        config_path.join("docker.io/hosts.toml"),
        "server = \"https://registry-1.docker.io\"\n",
    )
    .unwrap();
    let before = state_of(&node).await;
    assert!(
        !before.lo_addresses.contains(&registry_address),
        "{}",
        before.lo_addresses
    );

    let results = tempfile::tempdir().unwrap();
    let target = format!("cri://{}", node.paths.socket.display());
    let out = harness()
        .args(["run", "--target", &target, "--suites"])
        .arg(repo().join("suites/cri.yaml"))
        .args(["--filter", "handler", "--results"])
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The node configures the Kata handlers either way; without Kata on this host its Kata
    // rows run and fail, as they would on such a node.
    let kata_here = kata.kata_absent.is_none();
    assert_eq!(
        out.status.code(),
        Some(if kata_here { 0 } else { 1 }),
        "{stdout}\n{stderr}"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.path().join("results.json")).unwrap()).unwrap();
    let verdict = |name: &str| {
        json["trials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["verdict"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no row {name}: {stdout}"))
    };
    // The same rows as on a node the harness starts, under the node's own label.
    for row in ["default-handler", "crun-handler", "unconfigured-handler"] {
        assert_eq!(
            verdict(&format!("cri::{row}::existing-containerd-1.6")),
            "passed",
            "{stdout}"
        );
    }
    // runtime-rs's handler is configured too, but this node's containerd is below Kata 4.x's.
    let rs = json["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "cri::kata-rs-handler::existing-containerd-1.6")
        .unwrap_or_else(|| panic!("no runtime-rs row: {stdout}"));
    assert_eq!(rs["verdict"], "skipped", "{rs}");
    assert!(
        rs["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Kata 4.x supports containerd 1.7"),
        "{rs}"
    );
    let kata_verdict = if kata_here { "passed" } else { "failed" };
    assert_eq!(
        verdict("cri::kata-handler::existing-containerd-1.6"),
        kata_verdict,
        "{stdout}"
    );
    let environment = json["run"]["environment"].to_string();
    assert!(
        environment.contains("imported") && environment.contains(BUSYBOX_IMAGE),
        "{environment}"
    );
    assert!(
        environment.contains("was set up outside the harness"),
        "{environment}"
    );

    let after = state_of(&node).await;
    assert_eq!(before, after, "the node is not as it was found");
    assert!(after.sandboxes.contains(&own_id));

    // With leave to change the node: the registry rows run (registry, address, hosts.toml),
    // with the same verdicts as on the harness's own nodes, and undo what they did.
    let results = tempfile::tempdir().unwrap();
    let out = harness()
        .args(["run", "--target", &target, "--allow-node-changes", "--suites"])
        .arg(repo().join("suites/images.yaml"))
        .args(["--filter", "pull", "--results"])
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.path().join("results.json")).unwrap()).unwrap();
    let trials = json["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 13, "{stdout}");
    for trial in trials {
        let want = match trial["scenario"].as_str().unwrap() {
            "pull-with-ca-kata" => kata_verdict,
            // Below Kata 4.x's minimum containerd.
            "pull-with-ca-kata-rs" => "skipped",
            // Its hosts.toml would replace the node's own docker.io config.
            "pull-docker-io-mirror" => "skipped",
            _ => "passed",
        };
        assert_eq!(trial["verdict"], want, "{trial}\n{stdout}\n{stderr}");
    }
    let mirror = trials
        .iter()
        .find(|t| t["scenario"] == "pull-docker-io-mirror")
        .unwrap();
    assert!(
        mirror["message"]
            .as_str()
            .unwrap()
            .contains("docker.io, which the node already has"),
        "{mirror}"
    );
    let after = state_of(&node).await;
    assert_eq!(
        before, after,
        "the node is not as it was found after the pull rows"
    );

    // Ctrl-C while a registry row runs (busybox imported, the address added, the registry up,
    // hosts.toml written): all of it goes.
    let mut child = harness()
        .args(["run", "--target", &target, "--allow-node-changes", "--suites"])
        .arg(repo().join("suites/images.yaml"))
        .args(["--filter", "pull-with-ca-runc", "--results"])
        .arg(tempfile::tempdir().unwrap().path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kata_harness::wait::wait_blocking(
        "the row's registry",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(20),
        || {
            let up = !kata_harness::provision::cleanup::processes_matching("registry-pull-with-ca-runc")
                .is_empty();
            match up {
                true => kata_harness::wait::Attempt::Ready(()),
                false => kata_harness::wait::Attempt::NotYet("no registry yet".into()),
            }
        },
    )
    .unwrap();
    let status = cli::interrupt_and_wait(&mut child, std::time::Duration::from_secs(60));
    assert_eq!(status.code(), Some(130));
    let after = state_of(&node).await;
    assert_eq!(before, after, "the node is not as it was found after Ctrl-C");

    let leftovers = node.shutdown().await;
    assert!(leftovers.is_clean(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_node_cannot_run_are_skipped_with_the_reason() {
    let settings = Settings {
        containerd: ContainerdChoice::Line("2.1".into()),
        keep: false,
        pause_binary: None,
        repo: repo(),
        kata: None,
        kata_rs: None,
        kata_runtime_class: "kata".into(),
    };
    let node = Testbed::start_local(&settings).await.expect("the node starts");
    let target = format!("cri://{}", node.paths.socket.display());
    let out = harness()
        .args(["list", "--target", &target, "--suites"])
        .arg(repo().join("suites"))
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"))
            .to_owned()
    };
    assert_eq!(
        line("cri::crun-handler::existing-containerd-2.1"),
        "cri::crun-handler::existing-containerd-2.1"
    );
    let pull = line("images::pull-with-ca-runc::existing-containerd-2.1");
    assert!(
        pull.contains("changes the node: adds 10.254.254.254/32 to lo")
            && pull.contains("hosts.toml and pulls an image")
            && pull.contains("--allow-node-changes lets it"),
        "{pull}"
    );
    assert!(
        line("images::sandbox-image-removed-runc::existing-containerd-2.1")
            .contains("--allow-node-changes lets it")
    );
    assert!(line("critest::").contains("critest runs on nodes the harness starts"));
    let leftovers = node.shutdown().await;
    assert!(leftovers.is_clean(), "{leftovers:?}");

    // A socket nobody answers on: exit 2 with the socket named, before anything starts.
    let out = harness().args(["list", "--target", &target]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("--target {target}")) && stderr.contains("no such socket"),
        "{stderr}"
    );
}

/// `--target ssh://`: the same rows against a host that was set up beforehand (a VM `vm up`
/// provisioned, reached only through SSH with its pinned host key), left as it was found; a
/// known_hosts without the host's key is refused before anything starts.
#[test]
fn rows_run_on_an_existing_host_over_ssh_and_leave_it_as_found() {
    let name = format!("s{}", std::process::id());
    let up = harness().args(["vm", "up", "--name", &name]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    // Taken down whatever the asserts below say.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = harness().args(["vm", "down", "--name", &self.0]).output();
        }
    }
    let _down = Down(name.clone());
    let kept = kata_harness::vm::state::KeptVm::load(&name).expect("vm up records the VM");
    let state = || {
        let script = "sha256sum /etc/containerd/config.toml; ctr -n k8s.io images ls -q | sort; \
                      ctr -n default images ls -q | sort; crictl pods -q | sort; \
                      ctr -n k8s.io containers ls -q | sort; ls /tmp; \
                      ls -A /etc/containerd/certs.d; ip -o -4 addr show dev lo; \
                      systemctl list-units --all --no-legend 'kata-harness-*'";
        let out = harness()
            .args(["vm", "ssh", "--name", &name, "--", "sh", "-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = state();

    let dir = tempfile::tempdir().unwrap();
    let suites = dir.path().join("suites");
    std::fs::create_dir(&suites).unwrap();
    let suite = suites.join("cri.yaml");
    // A registry row too: with --allow-node-changes it runs docker-registry on the host (a
    // transient unit) and writes a hosts.toml there, and removes both.
    std::fs::write(
        suites.join("images.yaml"),
        "suite: images\nrows:\n  - scenario: pull-with-ca-runc\n    pull: { registry: tls, ca: right, handler: runc }\n    expect: { pulled: true, runtime_type: io.containerd.runc.v2 }\n",
    )
    .unwrap();
    std::fs::write(
        &suite,
        "suite: cri\nrows:\n  - scenario: default-handler\n    sandbox: { container: true }\n    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: runc }\n  - scenario: crun-handler\n    sandbox: { handler: crun, container: true }\n    expect: { runtime_type: io.containerd.runc.v2, binary_name: crun }\n  - scenario: unconfigured-handler\n    sandbox: { handler: no-such-handler }\n    expect:\n      error: { code: Unknown, message: 'no runtime for \"no-such-handler\" is configured' }\n",
    )
    .unwrap();
    let target = format!("ssh://{}@127.0.0.1:{}", kept.ssh_user, kept.ssh_port);
    let results = dir.path().join("results");
    let out = harness()
        .args(["run", "--target", &target, "--allow-node-changes", "--suites"])
        .arg(&suites)
        .arg("--ssh-identity")
        .arg(&kept.identity)
        .arg("--known-hosts")
        .arg(&kept.known_hosts)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("4 passed, 0 failed, 0 skipped"), "{stdout}");
    assert!(
        stdout.contains("images::pull-with-ca-runc::existing-containerd-1.6"),
        "{stdout}"
    );
    for row in ["default-handler", "crun-handler", "unconfigured-handler"] {
        assert!(
            stdout.contains(&format!("cri::{row}::existing-containerd-1.6")),
            "{stdout}"
        );
    }
    assert_eq!(state(), before, "the host is not as it was found");

    // No blind trust: the same host against a known_hosts that lacks its key.
    let stranger = dir.path().join("known_hosts");
    std::fs::write(&stranger, "").unwrap();
    let out = harness()
        .args(["list", "--target", &target, "--suites"])
        .arg(&suite)
        .arg("--ssh-identity")
        .arg(&kept.identity)
        .arg("--known-hosts")
        .arg(&stranger)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Host key verification failed"), "{stderr}");
}
