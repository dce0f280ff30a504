//! Image rows: pulls from a real registry on the node (custom CA, plain HTTP, down, mirror;
//! CRI and `ctr`), the pinned sandbox image on an air-gapped node, and containers from
//! imported images.
//!
//! Invariant: every registry a row starts listens only inside the node's network namespace
//! and is stopped when the row ends; every `hosts.toml` a row writes is removed when it ends;
//! a row that removes the sandbox image puts it back. The registry log, the rendered
//! `hosts.toml` and the exact error always go into the row's evidence (the failure bundle).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::model::{CaChoice, PullAction, PullClient, RegistryKind, Row, SandboxImageAction};
use super::trial::{
    judge_status, pretty, remove_sandbox, row_pod, runp_line, short_error, start_and_inspect, unique,
    Failure, CREATE_AND_START, CRI_NAMESPACE,
};
use crate::cri::RuntimeInfo;
use crate::images;
use crate::process::{shell_line, shell_quote};
use crate::provision::node_net::{NodeService, NodeUndo};
use crate::provision::{Testbed, BUSYBOX_BINARY, SANDBOX_IMAGE};
use crate::registry::{Pki, Registry, REGISTRY_IP};
use crate::render::cri::{ContainerSpec, PodSpec};
use crate::render::hosts::HostsToml;
use crate::report::bundle::RUNTIME_TYPE_TEMPLATE;
use crate::report::Evidence;
use crate::wait::{wait_for, Attempt};

/// `ctr images pull` of one small image; a blackholed registry would take 30 s per host.
const CTR_PULL_DEADLINE: Duration = Duration::from_secs(90);
/// How long the `ctr events` subscriber may take to show a probe event.
const EVENTS_DEADLINE: Duration = Duration::from_secs(20);

/// Removes every reference a pull made of `image`: its tag, and the `<repository>@sha256:`
/// the CRI records beside it (a node that is not the harness's must keep neither).
fn remove_pulled(testbed: &Testbed, image: &str) {
    let repository = image.rsplit_once(':').map_or(image, |(repository, _)| repository);
    let digest_prefix = format!("{repository}@");
    let mut refs = vec![image.to_owned()];
    if let Ok(out) = testbed.ctr(CRI_NAMESPACE, &["images", "ls", "-q"]) {
        refs.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|r| r.starts_with(&digest_prefix))
                .map(str::to_owned),
        );
    }
    let mut args = vec!["images", "rm"];
    args.extend(refs.iter().map(String::as_str));
    let _ = testbed.ctr(CRI_NAMESPACE, &args);
}

/// A pull row: start the registry, push, write hosts.toml, pull, judge, undo.
pub(super) async fn run_pull(
    testbed: &Testbed,
    row: &Row,
    action: &PullAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let name = unique(&row.scenario);
    let dir = testbed.paths.run_dir.join(format!("registry-{name}"));
    let mut hosts_file = None;
    let mut registry = None;
    let mut outcome = pull_inner(
        testbed,
        row,
        action,
        &name,
        &dir,
        &mut registry,
        &mut hosts_file,
        evidence,
    )
    .await;
    // Evidence for the bundle whatever happened: the registry's log and config, hosts.toml.
    if let Some(mut registry) = registry {
        // A registry that died under the pull is the cause; the CRI says only "connection
        // reset" or "EOF".
        if let (Err(failure), Some(status)) = (&mut outcome, registry.exited()) {
            failure.message = format!(
                "docker-registry exited ({status}) during the row; the row saw: {}",
                failure.message
            );
        }
        evidence.file("registry.log", &registry.log_tail(200));
        evidence.file(
            "registry-config.yml",
            &std::fs::read_to_string(&registry.config).unwrap_or_default(),
        );
        registry.stop();
    }
    if let Some((staged, on_node, removal)) = hosts_file {
        evidence.file(
            "hosts.toml",
            &format!(
                "# {}\n{}",
                on_node.display(),
                std::fs::read_to_string(&staged).unwrap_or_default()
            ),
        );
        drop(removal);
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn pull_inner(
    testbed: &Testbed,
    row: &Row,
    action: &PullAction,
    name: &str,
    dir: &Path,
    registry_slot: &mut Option<Registry>,
    hosts_slot: &mut Option<(PathBuf, PathBuf, NodeUndo)>,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let setup = |e: &dyn std::error::Error| format!("setup: {}", crate::errors::chain(e));
    // Generated here, used on the node (the CA key never leaves this process).
    let pki = Pki::generate(
        &dir.join("pki"),
        &[REGISTRY_IP, "registry.kata-harness.test", "localhost"],
    )
    .map_err(|e| Failure::new("no PKI", setup(&e)))?
    .map_paths(|p| testbed.put_file(p))
    .map_err(|e| Failure::new("no PKI", setup(&e)))?;
    let (addr, scheme) = super::plan::registry_of_row(action);
    // On an existing node, its network may lack the registry's address: added, and removed
    // again when the row ends (the guard), only where it was missing.
    let _address = testbed
        .ensure_registry_address()
        .map_err(|e| Failure::new("no registry address", setup(&e)))?;
    let repository = format!("kata-harness/{name}:1");
    if action.registry != RegistryKind::Down {
        let tls = (action.registry == RegistryKind::Tls).then_some(&pki);
        let started = Registry::start(testbed, dir, &addr, tls)
            .map_err(|e| Failure::new("registry did not start", setup(&e)))?;
        let registry = registry_slot.insert(started);
        let archive = images::busybox(Path::new(BUSYBOX_BINARY))
            .and_then(|b| testbed.put_image(&format!("{name}.tar"), &format!("{addr}/{repository}"), &b))
            .map_err(|e| Failure::new("no archive", format!("setup: failed to build the image: {e}")))?;
        evidence.reproduce(shell_line(&testbed.net_argv(&registry.push_argv(
            &archive.path,
            &repository,
            false,
        ))));
        registry
            .push(testbed, &archive.path, &repository, false)
            .map_err(|e| Failure::new("push failed", setup(&e)))?;
    }

    let config_path = testbed.config.registry_config_path.clone().ok_or_else(|| {
        Failure::new(
            "no config_path",
            "the testbed's containerd has no registry config_path",
        )
    })?;
    let namespace = super::plan::hosts_namespace(action);
    let image = format!("{namespace}/{repository}");
    if action.hosts_toml {
        let url = format!("{scheme}://{addr}");
        let ca = match action.ca.unwrap_or(CaChoice::Right) {
            _ if action.registry == RegistryKind::Plain => None,
            CaChoice::Right => Some(pki.ca.as_path()),
            CaChoice::Wrong => Some(pki.wrong_ca.as_path()),
            CaChoice::Absent => None,
        };
        let hosts = match &action.mirror {
            Some(mirror) => HostsToml::mirror(mirror, &upstream(mirror), &url, ca),
            None => HostsToml::direct(&namespace, &url, ca),
        };
        let text = hosts
            .render()
            .map_err(|e| Failure::new("no hosts.toml", format!("setup: {e}")))?;
        let path = hosts.path_under(&config_path);
        // Never over a registry's config the node already has (cleanup removes the dir).
        if let Some(host_dir) = path.parent().filter(|d| testbed.node_path_exists(d)) {
            return Err(Failure::new(
                "hosts.toml not written",
                format!(
                    "setup: {} already exists on the node: not written over",
                    host_dir.display()
                ),
            ));
        }
        let staged = dir.join("hosts.toml");
        std::fs::write(&staged, &text).map_err(|e| {
            Failure::new(
                "no hosts.toml",
                format!("setup: failed to write {}: {e}", staged.display()),
            )
        })?;
        let host_dir = path.parent().unwrap_or(&path).to_string_lossy().into_owned();
        // Registered before it is written: removed when the row ends, on Ctrl-C too.
        let removal = testbed.undo_on_node(
            format!("{host_dir} on the node"),
            vec!["rm".into(), "-rf".into(), host_dir],
        );
        *hosts_slot = Some((staged.clone(), path.clone(), removal));
        testbed
            .node
            .upload(&staged, &path)
            .map_err(|e| Failure::new("no hosts.toml", setup(&e)))?;
    }

    let start = Instant::now();
    let observed = match action.client {
        PullClient::Cri => {
            evidence.reproduce(format!("crictl pull {}", shell_quote(&image)));
            // CRI: PullImage (crictl pull)
            let result = testbed.cri.pull_image(&image).await;
            let elapsed = start.elapsed();
            match (result, &row.expect.error) {
                (Err(e), Some(expected)) => {
                    let observed = judge_status(&e, expected, evidence)?;
                    within(row, elapsed, observed)?
                }
                (Err(e), None) => {
                    evidence.file("cri-error.txt", &e.to_string());
                    return Err(Failure::new(short_error(&e), format!("PullImage failed: {e}")));
                }
                (Ok(reference), Some(expected)) => {
                    remove_pulled(testbed, &image);
                    return Err(Failure::new(
                        format!("pulled {reference}"),
                        format!(
                            "expected PullImage to fail: {}: {}",
                            expected.code, expected.message
                        ),
                    ));
                }
                (Ok(_), None) => {
                    let observed = within(row, elapsed, format!("pulled {image}"))?;
                    // The pulled image must be usable: a container from it runs.
                    let ran = run_container(testbed, row, &action.handler, &image, evidence).await;
                    remove_pulled(testbed, &image);
                    format!("{observed}; {}", ran?)
                }
            }
        }
        PullClient::Ctr => {
            let mut args = vec!["images", "pull"];
            let hosts_dir = config_path.to_string_lossy().into_owned();
            if action.hosts_dir {
                args.extend(["--hosts-dir", hosts_dir.as_str()]);
            }
            args.push(&image);
            let argv = testbed.ctr_argv(CRI_NAMESPACE, &args);
            // ctr 1.6/1.7 fetch in the client process: it must share the node's network.
            evidence.reproduce(shell_line(&testbed.net_argv(&argv)));
            let out = testbed
                .run_in_net(&argv, CTR_PULL_DEADLINE)
                .map_err(|e| Failure::new("ctr did not finish", crate::errors::chain(&e)))?;
            let elapsed = start.elapsed();
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            evidence.file(
                "ctr-pull.txt",
                &format!(
                    "$ {}\nexit: {}\n--- stdout\n{}\n--- stderr\n{stderr}\n",
                    shell_line(&argv),
                    out.status,
                    String::from_utf8_lossy(&out.stdout)
                ),
            );
            let last = stderr.lines().last().unwrap_or_default().to_owned();
            match (&row.expect.command_error, out.status.success()) {
                (Some(want), false) if stderr.contains(want.as_str()) => within(row, elapsed, last)?,
                (Some(want), false) => {
                    return Err(Failure::new(
                        last,
                        format!("expected ctr's error to contain {want:?}"),
                    ))
                }
                (Some(want), true) => {
                    remove_pulled(testbed, &image);
                    return Err(Failure::new(
                        format!("pulled {image}"),
                        format!("expected ctr images pull to fail with {want:?}"),
                    ));
                }
                (None, false) => return Err(Failure::new(last, format!("ctr images pull failed: {stderr}"))),
                (None, true) => {
                    // containerd's record: the image is in k8s.io, so the CRI sees it too
                    // (once it has followed the image event: polled as for imports).
                    let visible = super::trial::settled_image_status(testbed, &image, true).await;
                    remove_pulled(testbed, &image);
                    match visible {
                        Ok(Some(_)) => within(row, elapsed, format!("pulled {image}, visible to the CRI"))?,
                        Ok(None) => {
                            return Err(Failure::new(
                                format!("pulled {image}"),
                                "ctr reported success but the CRI does not see the image",
                            ))
                        }
                        Err(e) => {
                            return Err(Failure::new(short_error(&e), format!("ImageStatus failed: {e}")))
                        }
                    }
                }
            }
        }
    };
    Ok(observed)
}

/// The upstream `server` of a mirror entry (tried last; unreachable on the air-gapped node).
fn upstream(namespace: &str) -> String {
    match namespace {
        "docker.io" => "https://registry-1.docker.io".into(),
        other => format!("https://{other}"),
    }
}

/// `expect.within_seconds`: the outcome must arrive within the deadline.
fn within(row: &Row, elapsed: Duration, observed: String) -> Result<String, Failure> {
    match row.expect.within_seconds {
        Some(limit) if elapsed > Duration::from_secs(limit) => Err(Failure::new(
            format!("{observed} after {elapsed:.1?}"),
            format!("expected the outcome within {limit} s"),
        )),
        Some(_) => Ok(format!("{observed} (in {elapsed:.1?})")),
        None => Ok(observed),
    }
}

/// Runs a container from `image` in a new sandbox of `handler`; Ok is the container's
/// runtimeType (checked against `expect.runtime_type`), Err the failure. With
/// `expect.error`, CreateContainer must fail that way instead.
pub(super) async fn run_container(
    testbed: &Testbed,
    row: &Row,
    handler: &str,
    image: &str,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let pod = row_pod(testbed, &row.scenario, handler);
    evidence.file("pod.json", &pretty(&pod.to_crictl_json()));
    // CRI: RunPodSandbox (crictl runp)
    let id = testbed
        .cri
        .run_pod_sandbox(&pod)
        .await
        .map_err(|e| Failure::new(short_error(&e), format!("RunPodSandbox failed: {e}")))?;
    evidence.reproduce(format!("POD=$({})", runp_line(handler)));
    let result = container_in(testbed, row, &pod, &id, image, evidence).await;
    let cleanup = remove_sandbox(testbed, &id).await;
    let observed = result?;
    cleanup.map_err(|message| Failure::new(observed.clone(), message))?;
    Ok(observed)
}

async fn container_in(
    testbed: &Testbed,
    row: &Row,
    pod: &PodSpec,
    id: &str,
    image: &str,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let container = ContainerSpec::sleeping_busybox(image);
    evidence.file("container.json", &pretty(&container.to_crictl_json()));
    evidence.reproduce(CREATE_AND_START.into());
    // CRI: CreateContainer (crictl create)
    let created = testbed.cri.create_container(id, &container, pod).await;
    let cid = match (created, &row.expect.error) {
        (Err(e), Some(expected)) => return judge_status(&e, expected, evidence),
        (Err(e), None) => {
            evidence.file("cri-error.txt", &e.to_string());
            return Err(Failure::new(
                short_error(&e),
                format!("CreateContainer failed: {e}"),
            ));
        }
        (Ok(cid), Some(expected)) => {
            return Err(Failure::new(
                format!("container {cid} created"),
                format!(
                    "expected CreateContainer to fail: {}: {}",
                    expected.code, expected.message
                ),
            ))
        }
        (Ok(cid), None) => cid,
    };
    let info = start_and_inspect(testbed, &cid, false, evidence).await?;
    evidence.reproduce(format!("crictl inspect {RUNTIME_TYPE_TEMPLATE} \"$CTR\""));
    let observed = format!("container from {image} running on {}", info.runtime_type);
    if let Some(want) = &row.expect.runtime_type {
        if &info.runtime_type != want {
            return Err(Failure::new(observed, format!("expected runtimeType {want}")));
        }
    }
    Ok(observed)
}

/// A `ctr events` subscriber, supervised, writing to a file: the witness that no image was
/// pulled (a pull, including the CRI's implicit sandbox-image pull, emits `/images/create`).
struct Events {
    service: NodeService,
    probes: usize,
}

impl Events {
    async fn start(testbed: &Testbed, dir: &Path) -> Result<Events, Failure> {
        let argv = testbed.ctr_argv(CRI_NAMESPACE, &["events"]);
        let service = testbed
            .spawn_service("ctr-events", &argv, &[], &dir.join("events.log"))
            .map_err(|e| Failure::new("no event subscriber", format!("setup: {e}")))?;
        let mut events = Events { service, probes: 0 };
        events.sync(testbed).await?;
        Ok(events)
    }

    /// Emits a probe event (a label change on the k8s.io namespace) and waits until the
    /// subscriber shows it: everything emitted before the probe has been delivered too.
    async fn sync(&mut self, testbed: &Testbed) -> Result<(), Failure> {
        self.probes += 1;
        let marker = format!("kata-harness.sync={}", self.probes);
        let result = wait_for(
            "the ctr events subscriber to show a probe event",
            EVENTS_DEADLINE,
            Duration::from_millis(100),
            || {
                let exited = self.service.exited();
                let seen = self
                    .service
                    .log()
                    .contains(&format!("\"kata-harness.sync\":\"{}\"", self.probes));
                let labelled = if seen {
                    Ok(())
                } else {
                    testbed
                        .ctr(CRI_NAMESPACE, &["namespaces", "label", CRI_NAMESPACE, &marker])
                        .map(|_| ())
                };
                async move {
                    match (exited, seen, labelled) {
                        (Some(status), _, _) => Attempt::Fatal(format!("ctr events exited ({status})")),
                        (None, true, _) => Attempt::Ready(()),
                        (None, false, Err(e)) => Attempt::NotYet(e.to_string()),
                        (None, false, Ok(())) => Attempt::NotYet("probe event not seen yet".into()),
                    }
                }
            },
        )
        .await;
        result.map_err(|e| Failure::new("no events", format!("setup: {e}")))
    }

    /// Stops the subscriber; the topics it saw, in order (`ctr events` prints
    /// `<time> <namespace> <topic> <event>` per line).
    fn finish(self, testbed: &Testbed) -> (Vec<String>, String) {
        let text = self.service.log();
        self.service.stop();
        let _ = testbed.ctr(
            CRI_NAMESPACE,
            &["namespaces", "label", CRI_NAMESPACE, "kata-harness.sync="],
        );
        let topics = text
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
            .map(str::to_owned)
            .collect();
        (topics, text)
    }
}

/// A sandbox_image row on the air-gapped node.
pub(super) async fn run_sandbox_image(
    testbed: &Testbed,
    row: &Row,
    action: &SandboxImageAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    if !testbed.air_gapped() {
        return Err(Failure::new(
            "node not air-gapped",
            "sandbox-image rows need a node without a route out (a harness bug if seen)",
        ));
    }
    let pause_archive = testbed.paths.images.join("pause.tar");
    if !action.preloaded {
        evidence.reproduce(Testbed::ctr_line(CRI_NAMESPACE, &["images", "rm", SANDBOX_IMAGE]));
        testbed
            .ctr(CRI_NAMESPACE, &["images", "rm", SANDBOX_IMAGE])
            .map_err(|e| {
                Failure::new(
                    "not removed",
                    format!("setup: ctr images rm {SANDBOX_IMAGE} failed: {e}"),
                )
            })?;
        let outcome = sandbox_image_removed(testbed, row, action, evidence).await;
        // Put it back for the rows after this one (the node cannot pull it).
        let restored = testbed.ctr_import(CRI_NAMESPACE, &pause_archive);
        let observed = outcome?;
        restored.map_err(|e| {
            Failure::new(
                observed.clone(),
                format!("cleanup: re-import of the sandbox image failed: {e}"),
            )
        })?;
        return Ok(observed);
    }
    let dir = testbed.paths.run_dir.join(unique(&row.scenario));
    std::fs::create_dir_all(&dir).map_err(|e| Failure::new("no dir", format!("setup: {e}")))?;
    let mut events = Events::start(testbed, &dir).await?;
    // The subscriber shows any /images/* event while the sandbox starts (there must be none).
    evidence.reproduce(format!("{} &", Testbed::ctr_line(CRI_NAMESPACE, &["events"])));
    let pod = row_pod(testbed, &row.scenario, &action.handler);
    evidence.file("pod.json", &pretty(&pod.to_crictl_json()));
    evidence.reproduce(format!("POD=$({})", runp_line(&action.handler)));
    evidence.reproduce(format!("crictl inspectp {RUNTIME_TYPE_TEMPLATE} \"$POD\""));
    // CRI: RunPodSandbox with the pinned, preloaded sandbox image (crictl runp)
    let result = testbed.cri.run_pod_sandbox(&pod).await;
    let synced = events.sync(testbed).await;
    let (topics, text) = events.finish(testbed);
    evidence.file("events.log", &text);
    let id = result.map_err(|e| {
        evidence.file("cri-error.txt", &e.to_string());
        Failure::new(short_error(&e), format!("RunPodSandbox failed: {e}"))
    })?;
    let status = testbed.cri.pod_sandbox_status(&id).await;
    let cleanup = remove_sandbox(testbed, &id).await;
    synced?;
    let status =
        status.map_err(|e| Failure::new(short_error(&e), format!("PodSandboxStatus failed: {e}")))?;
    let info = RuntimeInfo::from_verbose_info("sandbox", &status.info)
        .map_err(|e| Failure::new("unreadable", e.to_string()))?;
    let pulls: Vec<&String> = topics.iter().filter(|t| t.starts_with("/images/")).collect();
    // The subscriber really saw this sandbox start (a positive control for "no pull seen").
    let saw_start = topics.iter().any(|t| t == "/tasks/start");
    let observed = format!(
        "{}, events: {}",
        info.runtime_type,
        if pulls.is_empty() {
            "no /images/*".to_owned()
        } else {
            format!("{pulls:?}")
        }
    );
    let mut problems = Vec::new();
    if let Some(want) = &row.expect.runtime_type {
        if &info.runtime_type != want {
            problems.push(format!(
                "sandbox runtimeType is {}, expected {want}",
                info.runtime_type
            ));
        }
    }
    if !saw_start {
        problems.push("the event subscriber did not see the sandbox's /tasks/start".into());
    }
    if !pulls.is_empty() {
        problems.push(format!(
            "an image was pulled while the sandbox started: {pulls:?}"
        ));
    }
    if let Err(message) = cleanup {
        problems.push(message);
    }
    if problems.is_empty() {
        Ok(observed)
    } else {
        Err(Failure::new(observed, problems.join("; ")))
    }
}

async fn sandbox_image_removed(
    testbed: &Testbed,
    row: &Row,
    action: &SandboxImageAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let expected = row
        .expect
        .error
        .as_ref()
        .expect("validated: removed rows expect an error");
    let pod = row_pod(testbed, &row.scenario, &action.handler);
    evidence.file("pod.json", &pretty(&pod.to_crictl_json()));
    evidence.reproduce(format!(
        "if {}; then echo 'the sandbox started: expected the sandbox image pull to fail' >&2; exit 1; fi",
        runp_line(&action.handler)
    ));
    let start = Instant::now();
    // CRI: RunPodSandbox must try to pull the missing sandbox image and fail.
    match testbed.cri.run_pod_sandbox(&pod).await {
        Ok(id) => {
            let _ = remove_sandbox(testbed, &id).await;
            Err(Failure::new(
                format!("sandbox {id} started"),
                "expected RunPodSandbox to fail: the sandbox image is gone and the node is air-gapped",
            ))
        }
        Err(e) => {
            let observed = judge_status(&e, expected, evidence)?;
            within(row, start.elapsed(), observed)
        }
    }
}
