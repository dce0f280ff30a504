//! The checks of one row: only the expectations that fit its action (the one action is
//! [`Row::from_file`]'s), each error naming the field.

use super::*;

impl Row {
    fn validate_ctr_run(&self, action: &CtrRunAction) -> Result<(), (&'static str, String)> {
        let e = &self.expect;
        if !action.runtime.starts_with("io.containerd.") || action.runtime.split('.').count() < 4 {
            return Err((
                "ctr_run.runtime",
                format!(
                    "{:?} is not a runtime type like io.containerd.kata.v2",
                    action.runtime
                ),
            ));
        }
        Requirement::check(
            &self.requires,
            Requirement::for_runtime_type(&action.runtime),
            "runtime",
        )
        .map_err(|e| ("requires", e))?;
        if e.runtime_type.is_none() {
            return Err((
                "expect.runtime_type",
                "a ctr_run row expects the runtime containerd records".into(),
            ));
        }
        let foreign = e.binary_name.is_some()
            || e.oci_runtime.is_some()
            || e.error.is_some()
            || e.cri_visible.is_some()
            || e.pulled.is_some()
            || e.command_error.is_some()
            || e.within_seconds.is_some()
            || e.rejected.is_some()
            || e.event.is_some();
        if foreign {
            return Err((
                "expect",
                "a ctr_run row expects runtime_type and vmm_process".into(),
            ));
        }
        Ok(())
    }

    /// Checks one row; the error names the offending field.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        let e = &self.expect;
        match &self.node {
            Some(node) => super::node::validate_row(self, node)?,
            None if e.start_error.is_some() => {
                return Err((
                    "expect.start_error",
                    "only a row with a node of its own (`node:`) can expect that node not to start".into(),
                ))
            }
            None => {}
        }
        if self.sandbox().is_none() && self.pod().is_none() {
            for (field, set) in [
                ("expect.guest_kernel", e.guest_kernel.is_some()),
                ("expect.guest_console", e.guest_console.is_some()),
            ] {
                if set {
                    return Err((field, "only a sandbox row reads the guest".into()));
                }
            }
        }
        if let Some(kube) = self.kube() {
            return kube::validate_row(self, kube);
        }
        if self.skip.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(("skip", "needs the reason the row is skipped".into()));
        }
        // The rest was checked before the row was split per handler (pod::PodAction::validate).
        if let Some(pod) = self.pod() {
            return self.validate_handler(pod.handler());
        }
        if let Some((_, handlers)) = self.kata_handlers() {
            return self.validate_handler(handlers.handler());
        }
        // The node's start is the whole row: node::validate_row checked its expectation.
        if self.action == Action::NodeStart {
            return Ok(());
        }
        if let Some(action) = self.critest() {
            return critest::validate_row(self, action);
        }
        if e.within_seconds == Some(0) {
            return Err(("expect.within_seconds", "must be at least 1".into()));
        }
        let new_fields = e.pulled.is_some() || e.command_error.is_some() || e.within_seconds.is_some();
        if let Some(action) = self.ctr_run() {
            return self.validate_ctr_run(action);
        }
        if let Some(pull) = self.pull() {
            self.validate_pull(pull)?;
        } else if let Some(action) = self.sandbox_image() {
            self.validate_handler(&action.handler)?;
            if e.cri_visible.is_some() || e.command_error.is_some() || e.binary_name.is_some() {
                return Err((
                    "expect",
                    "a sandbox_image row expects runtime_type + pulled: false, or an error".into(),
                ));
            }
            match (action.preloaded, &e.error) {
                (true, None) if e.pulled == Some(false) && e.runtime_type.is_some() => {}
                (true, None) => {
                    return Err((
                        "expect.pulled",
                        "a preloaded sandbox_image row must expect runtime_type and pulled: false (no pull happened)".into(),
                    ))
                }
                (false, Some(_)) if e.pulled.is_none() && e.runtime_type.is_none() => {}
                (false, _) => {
                    return Err((
                        "expect.error",
                        "with the sandbox image removed on an air-gapped node, expect only the CRI error".into(),
                    ))
                }
                (true, Some(_)) => {
                    return Err((
                        "expect.error",
                        "a preloaded sandbox image must start the sandbox".into(),
                    ))
                }
            }
        } else if self.sandbox().is_some() && new_fields {
            return Err((
                "expect",
                "pulled, command_error and within_seconds fit pull, sandbox_image and image_import rows"
                    .into(),
            ));
        }
        match (self.sandbox(), self.image_import()) {
            // pull and sandbox_image were checked above; kube, critest and ctr_run returned.
            (None, None) => {}
            (Some(_), Some(_)) => unreachable!("a Row has one Action"),
            (Some(sandbox), None) => {
                if e.cri_visible.is_some() {
                    return Err(("expect.cri_visible", "only fits an image_import row".into()));
                }
                if sandbox.annotations.keys().any(|k| k.trim().is_empty()) {
                    return Err(("sandbox.annotations", "annotation keys must not be empty".into()));
                }
                let known =
                    sandbox.handler.is_empty() || CONFIGURED_HANDLERS.contains(&sandbox.handler.as_str());
                if !known && e.error.is_none() {
                    return Err((
                        "sandbox.handler",
                        format!(
                            "unknown handler {:?} (configured: {}); a row that uses an unconfigured handler on purpose must expect an error",
                            sandbox.handler,
                            CONFIGURED_HANDLERS.join(", ")
                        ),
                    ));
                }
                let kata = sandbox.handler.starts_with("kata");
                Requirement::check(
                    &self.requires,
                    Requirement::for_handler(&sandbox.handler),
                    "handler",
                )
                .map_err(|e| ("requires", e))?;
                if e.guest_kernel.is_some() && !sandbox.container {
                    return Err((
                        "expect.guest_kernel",
                        "the kernel is read inside a container: needs `sandbox.container: true`".into(),
                    ));
                }
                if e.guest_console.is_some() && !kata {
                    return Err((
                        "expect.guest_console",
                        "only a Kata sandbox has a guest console (sandbox.handler kata...)".into(),
                    ));
                }
                if e.error.is_some() {
                    if e.runtime_type.is_some() || e.binary_name.is_some() || e.oci_runtime.is_some() {
                        return Err((
                            "expect.error",
                            "an error row cannot also expect a running sandbox".into(),
                        ));
                    }
                } else if e.runtime_type.is_none() {
                    return Err((
                        "expect.runtime_type",
                        "a sandbox row must expect a runtime_type or an error".into(),
                    ));
                }
                if let Some(oci) = &e.oci_runtime {
                    if !["runc", "crun"].contains(&oci.as_str()) {
                        return Err(("expect.oci_runtime", format!("{oci:?} is not runc or crun")));
                    }
                }
            }
            (None, Some(import)) => {
                if import.namespace.is_empty() {
                    return Err(("image_import.namespace", "must not be empty".into()));
                }
                if e.cri_visible.is_none() {
                    return Err((
                        "expect.cri_visible",
                        "an image_import row must expect cri_visible".into(),
                    ));
                }
                if !import.container && !import.handler.is_empty() {
                    return Err(("image_import.handler", "only fits with container: true".into()));
                }
                self.validate_handler(&import.handler)?;
                if e.binary_name.is_some()
                    || e.oci_runtime.is_some()
                    || e.pulled.is_some()
                    || e.within_seconds.is_some()
                {
                    return Err((
                        "expect",
                        "an image_import row expects cri_visible, command_error (the import fails), and with container: true a runtime_type or the CreateContainer error".into(),
                    ));
                }
                if e.command_error.is_some() && (import.container || e.cri_visible == Some(true)) {
                    return Err((
                        "expect.command_error",
                        "a failing import leaves nothing to run or see: use container: false and cri_visible: false".into(),
                    ));
                }
                if import
                    .platforms
                    .as_deref()
                    .is_some_and(|p| p != "all" && !p.contains('/'))
                {
                    return Err((
                        "image_import.platforms",
                        "expected `all` or an os/arch platform such as linux/amd64".into(),
                    ));
                }
                if import.container && e.runtime_type.is_none() && e.error.is_none() {
                    return Err((
                        "expect.runtime_type",
                        "with container: true, expect the container's runtime_type or the CRI error".into(),
                    ));
                }
                if !import.container && (e.runtime_type.is_some() || e.error.is_some()) {
                    return Err((
                        "expect",
                        "runtime_type and error need container: true in an image_import row".into(),
                    ));
                }
            }
        }
        if let Some(error) = &e.error {
            if grpc_code(&error.code).is_none() {
                return Err((
                    "expect.error.code",
                    format!(
                        "{:?} is not a gRPC code name (e.g. Unknown, NotFound)",
                        error.code
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A handler named by a non-`sandbox` action must be configured, and Kata needs the
    /// requirement declared.
    fn validate_handler(&self, handler: &str) -> Result<(), (&'static str, String)> {
        if !handler.is_empty() && !CONFIGURED_HANDLERS.contains(&handler) {
            return Err((
                "handler",
                format!(
                    "unknown handler {handler:?} (configured: {})",
                    CONFIGURED_HANDLERS.join(", ")
                ),
            ));
        }
        Requirement::check(&self.requires, Requirement::for_handler(handler), "handler")
            .map_err(|e| ("requires", e))?;
        Ok(())
    }

    fn validate_pull(&self, pull: &PullAction) -> Result<(), (&'static str, String)> {
        let e = &self.expect;
        self.validate_handler(&pull.handler)?;
        if pull.registry == RegistryKind::Plain && pull.ca.is_some() {
            return Err(("pull.ca", "a plain-HTTP registry takes no CA".into()));
        }
        if !pull.hosts_toml && pull.ca.is_some() {
            return Err((
                "pull.ca",
                "the CA is a line of hosts.toml, and hosts_toml is false".into(),
            ));
        }
        if pull.mirror.is_some() && !pull.hosts_toml {
            return Err((
                "pull.mirror",
                "a mirror entry is a hosts.toml; hosts_toml is false".into(),
            ));
        }
        if let Some(mirror) = &pull.mirror {
            if mirror.is_empty() || mirror.contains('/') {
                return Err(("pull.mirror", format!("{mirror:?} is not a registry host")));
            }
        }
        if e.cri_visible.is_some() || e.binary_name.is_some() || e.oci_runtime.is_some() {
            return Err((
                "expect",
                "a pull row expects pulled: true, an error (cri) or a command_error (ctr)".into(),
            ));
        }
        let outcomes = [
            e.pulled == Some(true),
            e.error.is_some(),
            e.command_error.is_some(),
        ];
        if outcomes.iter().filter(|o| **o).count() != 1 || e.pulled == Some(false) {
            return Err((
                "expect",
                "a pull row expects exactly one of pulled: true, error, command_error".into(),
            ));
        }
        match pull.client {
            PullClient::Cri => {
                if pull.hosts_dir {
                    return Err((
                        "pull.hosts_dir",
                        "only fits client: ctr (the CRI uses config_path)".into(),
                    ));
                }
                if e.command_error.is_some() {
                    return Err((
                        "expect.command_error",
                        "fits client: ctr; CRI rows expect error".into(),
                    ));
                }
            }
            PullClient::Ctr => {
                if e.error.is_some() {
                    return Err(("expect.error", "ctr is a command: expect command_error".into()));
                }
                if !pull.handler.is_empty() || e.runtime_type.is_some() {
                    return Err(("pull.handler", "ctr pulls are not run in a sandbox".into()));
                }
            }
        }
        if e.runtime_type.is_some() && e.pulled != Some(true) {
            return Err(("expect.runtime_type", "only fits a successful CRI pull".into()));
        }
        Ok(())
    }

    /// The expectation in one line, for the report's "expected" column.
    pub fn expected_summary(&self) -> String {
        if let Some(summary) = kube::expected_summary(self) {
            return summary;
        }
        if let Some(action) = self.critest() {
            return critest::expected_summary(action);
        }
        match &self.action {
            Action::Diff(diff) => {
                return format!("runc vs {}: differences only where declared", diff.handler())
            }
            Action::KataCheck(check) => {
                return format!(
                    "{}'s own host check agrees with the harness's (KVM, vhost_vsock, vhost_net)",
                    check.handler()
                )
            }
            _ => {}
        }
        let e = &self.expect;
        if let Some(text) = &e.start_error {
            return format!("containerd refuses to start: {text}");
        }
        if let Some(error) = &e.error {
            return format!("{} error: {}", error.code, error.message);
        }
        if let Some(message) = &e.command_error {
            return format!("command fails: {message}");
        }
        if e.pulled == Some(true) {
            return match &e.runtime_type {
                Some(rt) => format!("pulled, container runs on {rt}"),
                None => "pulled".into(),
            };
        }
        if e.pulled == Some(false) {
            return format!("{}, no image pulled", e.runtime_type.clone().unwrap_or_default());
        }
        if let Some(visible) = e.cri_visible {
            return if visible {
                "visible to the CRI"
            } else {
                "not visible to the CRI"
            }
            .into();
        }
        let mut parts = vec![e.runtime_type.clone().unwrap_or_default()];
        if let Some(binary) = &e.binary_name {
            parts.push(format!("BinaryName={binary}"));
        }
        if let Some(oci) = &e.oci_runtime {
            parts.push(format!("state in {oci}"));
        }
        if e.vmm_process == Some(true) {
            parts.push("VMM process".into());
        }
        match e.guest_kernel {
            Some(GuestKernel::Differs) => parts.push("guest kernel".into()),
            Some(GuestKernel::Host) => parts.push("host kernel".into()),
            None => {}
        }
        if e.guest_console == Some(true) {
            parts.push("guest console".into());
        }
        if let Some(pod) = self.pod().filter(|p| !p.steps.is_empty()) {
            let steps: Vec<&str> = pod.steps.iter().map(|s| s.key()).collect();
            parts.push(format!("then {}", steps.join(", ")));
        }
        parts.join(", ")
    }
}
