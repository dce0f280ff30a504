//! The `pod:` row, as a user writes it: a pod sandbox with containers (command, env,
//! resources, directories from the node), then steps run in order, each with what it must
//! observe. The runtime checks every row has are not written: they follow from each handler.
//!
//! A row lists its handlers (`handlers: [runc, crun, kata, kata-qemu-runtime-rs]`) and loads
//! as one row per handler, `<scenario>-<handler>`, whose requirement and runtime checks are
//! that handler's: runtimeType read back from the CRI and containerd, the OCI runtime holding
//! the state (runc, crun) or a VMM child of the shim (Kata), the guest kernel against the node's.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use super::pod_steps::*;
pub use super::resources::{Quantity, Resources};
use super::{Expect, GuestKernel, Requirement, CONFIGURED_HANDLERS};
use crate::artifacts::kata::KataRuntime;

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodAction {
    /// The runtime handlers to run it with, one row each (`<scenario>-<handler>`): `runc`,
    /// `crun`, `kata`, `kata-qemu`, `kata-qemu-runtime-rs`. Each gets its runtime checks.
    /// Required (at least one).
    pub handlers: Vec<String>,
    /// Annotations of the pod sandbox config. Default: none.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Share the node's network namespace. Default: false.
    #[serde(default)]
    pub host_network: bool,
    /// The pod's hostname. Default: the pod's (generated) name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The pod's resolv.conf (CRI `dns_config`). Default: the node's.
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// The pod's containers, created and started in order (at least one).
    pub containers: Vec<Container>,
    /// What is done to the pod once its containers run, in order, each with what it must
    /// observe. Default: none (the runtime checks alone).
    // Steps and their text checks are one-key maps (`- exec: {...}`), not YAML tags.
    #[serde(
        default,
        deserialize_with = "serde_norway::with::singleton_map_recursive::deserialize"
    )]
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `nameserver` lines.
    #[serde(default)]
    pub servers: Vec<String>,
    /// The `search` line.
    #[serde(default)]
    pub searches: Vec<String>,
    /// The `options` line.
    #[serde(default)]
    pub options: Vec<String>,
}

/// An image the harness provides on every node without a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OfflineImage {
    /// Busybox (`localhost/kata-harness/busybox:1`): sh, sleep, cat, nproc, printenv, tail.
    #[default]
    Busybox,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Unique within the pod; lower-case words joined by `-`. Steps name it.
    pub name: String,
    /// Default: busybox.
    #[serde(default)]
    pub image: OfflineImage,
    /// The entrypoint. Default: `[sleep, "3600"]`.
    #[serde(default = "sleep_an_hour")]
    pub command: Vec<String>,
    /// Arguments after the command. Default: none.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables. Default: none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Limits, as a pod's `resources.limits`. Default: none.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Directories from the node, each a fresh empty one per trial (what a hostPath or
    /// emptyDir volume is at the CRI). Default: none.
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

fn sleep_an_hour() -> Vec<String> {
    vec!["sleep".into(), "3600".into()]
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Where the container sees it.
    pub container_path: String,
    /// Mounted read-only. Default: false.
    #[serde(default)]
    pub read_only: bool,
}

impl PodAction {
    /// The container a step acts on: the named one, or the first.
    pub fn container_of(&self, step: &Step) -> &Container {
        step.container()
            .and_then(|name| self.containers.iter().find(|c| c.name == name))
            .unwrap_or(&self.containers[0])
    }

    /// The one handler of an expanded row.
    pub fn handler(&self) -> &str {
        self.handlers.first().map(String::as_str).unwrap_or_default()
    }

    /// The row's checks; the error names the field under `pod.`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let field = |f: &str| format!("pod.{f}");
        if self.handlers.is_empty() {
            return Err((
                field("handlers"),
                "list the handlers to run it with (runc, crun, kata, kata-qemu, kata-qemu-runtime-rs)".into(),
            ));
        }
        for (i, handler) in self.handlers.iter().enumerate() {
            if !CONFIGURED_HANDLERS.contains(&handler.as_str()) {
                return Err((
                    field(&format!("handlers[{i}]")),
                    format!(
                        "unknown handler {handler:?}; configured: {}",
                        CONFIGURED_HANDLERS.join(", ")
                    ),
                ));
            }
            if self.handlers[..i].contains(handler) {
                return Err((
                    field(&format!("handlers[{i}]")),
                    format!("{handler} is listed twice"),
                ));
            }
        }
        if self.containers.is_empty() {
            return Err((field("containers"), "a pod needs at least one container".into()));
        }
        for (i, c) in self.containers.iter().enumerate() {
            let at = |f: &str| field(&format!("containers[{i}].{f}"));
            if !super::is_slug(&c.name) {
                return Err((
                    at("name"),
                    format!("{:?} must be lower-case words joined by '-'", c.name),
                ));
            }
            if self.containers[..i].iter().any(|o| o.name == c.name) {
                return Err((at("name"), format!("{} is used by an earlier container", c.name)));
            }
            if c.command.is_empty() {
                return Err((at("command"), "needs at least the program".into()));
            }
            if let Some(r) = &c.resources {
                r.validate()
                    .map_err(|(f, m)| (at(&format!("resources.{f}")), m))?;
            }
            for (j, m) in c.mounts.iter().enumerate() {
                if !m.container_path.starts_with('/') || m.container_path.len() < 2 {
                    return Err((
                        at(&format!("mounts[{j}].container_path")),
                        format!("{:?} must be an absolute path below /", m.container_path),
                    ));
                }
            }
        }
        let kill_at = self.steps.iter().position(|s| matches!(s, Step::Kill(_)));
        for (i, step) in self.steps.iter().enumerate() {
            let at = |f: &str| field(&format!("steps[{i}].{}{f}", step.key()));
            if let Some(name) = step.container() {
                if !self.containers.iter().any(|c| c.name == name) {
                    return Err((at(".container"), format!("the pod has no container {name:?}")));
                }
            }
            if kill_at.is_some_and(|k| k < i) {
                return Err((at(""), "no step can follow a kill: the sandbox is gone".into()));
            }
            self.validate_step(step).map_err(|(f, m)| (at(f), m))?;
        }
        Ok(())
    }

    fn validate_step(&self, step: &Step) -> Result<(), (&'static str, String)> {
        match step {
            Step::Exec(exec) => {
                if exec.command.is_empty() {
                    return Err((".command", "needs at least the program".into()));
                }
                for (f, text) in [(".stdout", &exec.stdout), (".stderr", &exec.stderr)] {
                    if let Some(text) = text {
                        text.validate().map_err(|e| (f, e))?;
                    }
                }
            }
            Step::Update(update) => {
                update.resources.validate().map_err(|(_, m)| (".resources", m))?;
                if update.resources.cpu.is_none() && update.resources.memory.is_none() {
                    return Err((".resources", "name the cpu or memory limit to set".into()));
                }
            }
            Step::Stop(stop) => {
                if stop.within_seconds.is_some_and(|w| w == 0) {
                    return Err((".within_seconds", "must be at least 1".into()));
                }
                if let Some(log) = &stop.log {
                    log.validate().map_err(|e| (".log", e))?;
                }
            }
            Step::WaitFor(wait) => {
                if wait.within_seconds == 0 {
                    return Err((".within_seconds", "must be at least 1".into()));
                }
                if wait.state == ContainerState::Running
                    && (wait.exit_code.is_some() || wait.reason.is_some())
                {
                    return Err((".state", "exit_code and reason belong to `exited`".into()));
                }
            }
            Step::File(file) => {
                let container = self.container_of(step);
                if !container
                    .mounts
                    .iter()
                    .any(|m| under(&file.path, &m.container_path))
                {
                    return Err((
                        ".path",
                        format!(
                            "{} is under none of container {}'s mounts",
                            file.path, container.name
                        ),
                    ));
                }
                let read_only = container
                    .mounts
                    .iter()
                    .any(|m| m.read_only && under(&file.path, &m.container_path));
                if read_only && file.writer == Writer::Container {
                    return Err((
                        ".writer",
                        "the container cannot write to a read-only mount".into(),
                    ));
                }
            }
            Step::Stats(_) => {}
            Step::Kill(kill) => {
                if kill.process == HolderProcess::Vmm {
                    if let Some(h) = self
                        .handlers
                        .iter()
                        .find(|h| KataRuntime::of_handler(h).is_none())
                    {
                        return Err((
                            ".process",
                            format!("handler {h} has no VMM: kill the vmm in Kata pods only"),
                        ));
                    }
                }
                if kill.shim_exits_within_seconds == 0 {
                    return Err((".shim_exits_within_seconds", "must be at least 1".into()));
                }
            }
        }
        Ok(())
    }

    /// One row per handler: `(scenario suffix, action with that one handler, requirement,
    /// runtime checks)`.
    pub fn per_handler(&self) -> Vec<(String, PodAction, Option<Requirement>, Expect)> {
        self.handlers
            .iter()
            .map(|handler| {
                let action = PodAction {
                    handlers: vec![handler.clone()],
                    ..self.clone()
                };
                (
                    handler.clone(),
                    action,
                    Requirement::for_handler(handler),
                    runtime_checks(handler),
                )
            })
            .collect()
    }
}

fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// What every row of `handler` checks, as the sandbox rows spell it: the runtimeType (from the
/// CRI, agreeing with containerd), who holds the state or the VMM, and the guest kernel.
pub fn runtime_checks(handler: &str) -> Expect {
    match handler {
        "crun" => Expect {
            runtime_type: Some("io.containerd.runc.v2".into()),
            binary_name: Some("crun".into()),
            oci_runtime: Some("crun".into()),
            guest_kernel: Some(GuestKernel::Host),
            ..Expect::default()
        },
        h if KataRuntime::of_handler(h).is_some() => Expect {
            runtime_type: Some(format!("io.containerd.{h}.v2")),
            vmm_process: Some(true),
            guest_kernel: Some(GuestKernel::Differs),
            ..Expect::default()
        },
        _ => Expect {
            runtime_type: Some("io.containerd.runc.v2".into()),
            oci_runtime: Some("runc".into()),
            guest_kernel: Some(GuestKernel::Host),
            ..Expect::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        let text = |t: &str| Quantity::Text(t.into());
        assert_eq!(Quantity::Number(2.0).millis(), Ok(2000));
        assert_eq!(text("500m").millis(), Ok(500));
        assert_eq!(text("1.5").millis(), Ok(1500));
        assert!(text("two").millis().is_err());
        assert!(Quantity::Number(0.0).millis().is_err());
        assert_eq!(text("256Mi").bytes(), Ok(256 << 20));
        assert_eq!(text("1Gi").bytes(), Ok(1 << 30));
        assert_eq!(text("1M").bytes(), Ok(1_000_000));
        assert_eq!(Quantity::Number(4096.0).bytes(), Ok(4096));
        assert!(text("256MB").bytes().is_err());
        assert!(text("0Mi").bytes().is_err());
        assert!(Quantity::Number(1.5).bytes().is_err());
    }

    #[test]
    fn text_matches_are_exact_regex_or_substring() {
        assert!(TextMatch::Equals("2".into()).accepts("2"));
        assert!(!TextMatch::Equals("2".into()).accepts("20"));
        assert!(TextMatch::Matches("^nameserver 10\\.0\\.0\\.10$".into())
            .accepts("search x\nnameserver 10.0.0.10\n"));
        assert!(!TextMatch::Matches("^nameserver 10\\.0\\.0\\.10$".into()).accepts("nameserver 10.0.0.100"));
        assert!(TextMatch::Contains("TERM".into()).accepts("got TERM"));
        assert!(TextMatch::Matches("(".into()).validate().is_err());
    }

    const POD: &str = r#"
suite: w
rows:
  - scenario: limits
    about: memory
    pod:
      handlers: [runc, crun, kata, kata-qemu-runtime-rs]
      containers:
        - name: app
          resources: { memory: 256Mi, cpu: "500m" }
          mounts: [{ container_path: /data }, { container_path: /ro, read_only: true }]
      steps:
        - exec: { command: [cat, /sys/fs/cgroup/memory.max], stdout: { equals: "268435456" } }
        - update: { resources: { memory: 512Mi } }
        - file: { path: /data/f, writer: container, content: x }
        - stop: { grace_seconds: 5, log: { matches: "^done$" } }
"#;

    fn parse(text: &str) -> Result<super::super::Suite, String> {
        super::super::Suite::parse(std::path::Path::new("suites/w.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_pod_row_loads_as_one_row_per_handler_with_its_requirement_and_checks() {
        let suite = parse(POD).unwrap();
        let names: Vec<&str> = suite.rows.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(
            names,
            [
                "limits-runc",
                "limits-crun",
                "limits-kata",
                "limits-kata-qemu-runtime-rs"
            ]
        );
        assert_eq!(suite.rows[0].requires, vec![]);
        assert_eq!(suite.rows[2].requires, vec![Requirement::Kata]);
        assert_eq!(suite.rows[3].requires, vec![Requirement::KataRs]);
        assert_eq!(suite.rows[1].expect, runtime_checks("crun"));
        let pod = suite.rows[3].pod().unwrap();
        assert_eq!(pod.handler(), "kata-qemu-runtime-rs");
        assert_eq!(pod.steps.len(), 4);
        assert_eq!(
            pod.containers[0]
                .resources
                .as_ref()
                .unwrap()
                .to_render()
                .cpu_millis,
            Some(500)
        );
        assert!(suite.rows[2].about.ends_with("[handler kata]"));
    }

    #[test]
    fn pod_row_mistakes_name_the_file_row_and_field() {
        let cases = [
            (
                "handlers: [runc, crun, kata, kata-qemu-runtime-rs]",
                "handlers: [runc, krun]",
                "row 1 (limits), field pod.handlers[1]: unknown handler \"krun\"",
            ),
            (
                "handlers: [runc, crun, kata, kata-qemu-runtime-rs]",
                "handlers: []",
                "field pod.handlers: list the handlers",
            ),
            (
                "- exec: { command:",
                "- exec: { comand:",
                "unknown field `comand`",
            ),
            (
                "- exec: { command:",
                "- exce: { command:",
                "unknown variant `exce`",
            ),
            (
                "equals: \"268435456\"",
                "matches: \"(\"",
                "field pod.steps[0].exec.stdout: regex parse error",
            ),
            (
                "- update: { resources: { memory: 512Mi } }",
                "- update: { resources: { memory: 512MB } }",
                "field pod.steps[1].update.resources: \"512MB\" is not a memory quantity",
            ),
            (
                "- update: { resources: { memory: 512Mi } }",
                "- update: { container: web, resources: { memory: 512Mi } }",
                "field pod.steps[1].update.container: the pod has no container \"web\"",
            ),
            (
                "path: /data/f",
                "path: /etc/f",
                "field pod.steps[2].file.path: /etc/f is under none of container app's mounts",
            ),
            (
                "path: /data/f",
                "path: /ro/f",
                "field pod.steps[2].file.writer: the container cannot write to a read-only mount",
            ),
            (
                "cpu: \"500m\"",
                "cpu: \"half\"",
                "field pod.containers[0].resources.cpu: \"half\" is not a CPU quantity",
            ),
            (
                "- stop: { grace_seconds: 5, log: { matches: \"^done$\" } }",
                "- kill: { process: vmm }",
                "field pod.steps[3].kill.process: handler runc has no VMM",
            ),
            (
                "- stop: { grace_seconds: 5, log: { matches: \"^done$\" } }",
                "- kill: { process: shim }\n        - stats: {}",
                "field pod.steps[4].stats: no step can follow a kill",
            ),
            (
                "- name: app",
                "- name: App",
                "field pod.containers[0].name: \"App\" must be lower-case",
            ),
            (
                "    about: memory\n",
                "    about: memory\n    expect: { runtime_type: io.containerd.runc.v2 }\n",
                "row 1 (limits), field expect: a pod, diff or kata_check row's checks follow from its handlers",
            ),
        ];
        for (from, to, want) in cases {
            assert!(POD.contains(from), "{from}");
            let err = parse(&POD.replacen(from, to, 1)).unwrap_err();
            assert!(err.starts_with("suites/w.yaml: "), "{to}: {err}");
            assert!(err.contains(want), "{to}: {err}");
        }
    }

    #[test]
    fn runtime_checks_follow_the_handler() {
        assert_eq!(runtime_checks("runc").oci_runtime.as_deref(), Some("runc"));
        assert_eq!(runtime_checks("crun").binary_name.as_deref(), Some("crun"));
        let rs = runtime_checks("kata-qemu-runtime-rs");
        assert_eq!(
            rs.runtime_type.as_deref(),
            Some("io.containerd.kata-qemu-runtime-rs.v2")
        );
        assert_eq!(rs.guest_kernel, Some(GuestKernel::Differs));
        assert_eq!(rs.vmm_process, Some(true));
    }
}
