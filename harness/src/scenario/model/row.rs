//! A row as the suites spell it (`RowFile`, strict) and as it runs (`Row`: one action and
//! its expectation), with the split of a handler-listing row into one row per handler.

use serde::Deserialize;

use super::{critest, kata_handlers, kube, pod, Expect, NodeSetup, Requirement};
use super::{CtrRunAction, ImageImportAction, PullAction, SandboxAction, SandboxImageAction};

/// One scenario row: what it is, when it runs, its one action and what it must observe.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Unique within the suite; lower-case words joined by `-`.
    pub scenario: String,
    /// What the row checks, for the report.
    pub about: String,
    /// Preconditions; a row whose precondition is absent is skipped with the reason.
    pub requires: Vec<Requirement>,
    /// Skip this row everywhere, with this reason.
    pub skip: Option<String>,
    /// The row's own node, when it needs one set up differently from the variant's testbed.
    pub node: Option<NodeSetup>,
    pub action: Action,
    /// What must be observed (which fields fit which action: [`Row`]'s validation).
    pub expect: Expect,
}

/// What a row does. The suite files name it by its key (`sandbox: {...}`, `pull: {...}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Sandbox(SandboxAction),
    ImageImport(ImageImportAction),
    Pull(PullAction),
    SandboxImage(SandboxImageAction),
    CtrRun(CtrRunAction),
    Kube(kube::KubeAction),
    Critest(critest::CritestAction),
    /// A pod with containers and steps, as a user writes it (one handler once loaded).
    Pod(pod::PodAction),
    /// The same probes in a runc pod and a Kata pod, their differences judged (one Kata
    /// handler once loaded).
    Diff(kata_handlers::KataHandlers),
    /// The Kata runtime's own host check against what the harness found (one Kata handler
    /// once loaded).
    KataCheck(kata_handlers::KataHandlers),
    /// No action key, on a row with `node:`: starting that node is what the row checks
    /// (`expect.start_error`).
    NodeStart,
}

impl Action {
    /// The key the suite files use for it.
    pub fn key(&self) -> &'static str {
        match self {
            Action::Sandbox(_) => "sandbox",
            Action::ImageImport(_) => "image_import",
            Action::Pull(_) => "pull",
            Action::SandboxImage(_) => "sandbox_image",
            Action::CtrRun(_) => "ctr_run",
            Action::Kube(_) => "kube",
            Action::Critest(_) => "critest",
            Action::Pod(_) => "pod",
            Action::Diff(_) => "diff",
            Action::KataCheck(_) => "kata_check",
            Action::NodeStart => "node",
        }
    }
}

impl Row {
    /// The row with its one action; more or fewer is an error naming the field.
    pub(super) fn from_file(file: RowFile) -> Result<Row, (&'static str, String)> {
        let RowFile {
            scenario,
            about,
            requires,
            skip,
            node,
            sandbox,
            image_import,
            pull,
            sandbox_image,
            ctr_run,
            kube,
            critest,
            pod,
            diff,
            kata_check,
            expect,
        } = file;
        // `kube` first: a cluster row with a containerd action is reported at the latter.
        let mut actions: Vec<Action> = [
            kube.map(Action::Kube),
            sandbox.map(Action::Sandbox),
            image_import.map(Action::ImageImport),
            pull.map(Action::Pull),
            sandbox_image.map(Action::SandboxImage),
            ctr_run.map(Action::CtrRun),
            critest.map(Action::Critest),
            pod.map(Action::Pod),
            diff.map(Action::Diff),
            kata_check.map(Action::KataCheck),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let [first, second, ..] = actions.as_slice() {
            return Err((
                second.key(),
                format!("a row has one action; {} is already set", first.key()),
            ));
        }
        let action = match actions.pop() {
            Some(action) => action,
            // A node row may have no action: the node's start is what it checks.
            None if node.is_some() => Action::NodeStart,
            None => return Err((
                "sandbox",
                "a row needs one action: sandbox, image_import, pull, sandbox_image, ctr_run, kube, critest, pod, diff or kata_check (or a node: block whose start it checks)".into(),
            )),
        };
        let expect = match (expect, &action) {
            (Some(expect), Action::Pod(_) | Action::Diff(_) | Action::KataCheck(_))
                if expect != Expect::default() =>
            {
                return Err((
                    "expect",
                    "a pod, diff or kata_check row's checks follow from its handlers, steps or probes: leave expect out".into(),
                ))
            }
            (_, Action::Pod(_) | Action::Diff(_) | Action::KataCheck(_)) => Expect::default(),
            (Some(expect), _) => expect,
            (None, _) => return Err(("expect", "missing: what the row must observe".into())),
        };
        Ok(Row {
            scenario,
            about,
            requires,
            skip,
            node,
            action,
            expect,
        })
    }

    pub fn sandbox(&self) -> Option<&SandboxAction> {
        match &self.action {
            Action::Sandbox(a) => Some(a),
            _ => None,
        }
    }

    pub fn image_import(&self) -> Option<&ImageImportAction> {
        match &self.action {
            Action::ImageImport(a) => Some(a),
            _ => None,
        }
    }

    pub fn pull(&self) -> Option<&PullAction> {
        match &self.action {
            Action::Pull(a) => Some(a),
            _ => None,
        }
    }

    pub fn sandbox_image(&self) -> Option<&SandboxImageAction> {
        match &self.action {
            Action::SandboxImage(a) => Some(a),
            _ => None,
        }
    }

    pub fn ctr_run(&self) -> Option<&CtrRunAction> {
        match &self.action {
            Action::CtrRun(a) => Some(a),
            _ => None,
        }
    }

    pub fn kube(&self) -> Option<&kube::KubeAction> {
        match &self.action {
            Action::Kube(a) => Some(a),
            _ => None,
        }
    }

    pub fn critest(&self) -> Option<&critest::CritestAction> {
        match &self.action {
            Action::Critest(a) => Some(a),
            _ => None,
        }
    }

    pub fn pod(&self) -> Option<&pod::PodAction> {
        match &self.action {
            Action::Pod(a) => Some(a),
            _ => None,
        }
    }

    pub fn diff(&self) -> Option<&kata_handlers::KataHandlers> {
        match &self.action {
            Action::Diff(a) => Some(a),
            _ => None,
        }
    }

    /// The Kata handlers of a `diff` or `kata_check` row, and its action key.
    pub fn kata_handlers(&self) -> Option<(&'static str, &kata_handlers::KataHandlers)> {
        match &self.action {
            Action::Diff(a) | Action::KataCheck(a) => Some((self.action.key(), a)),
            _ => None,
        }
    }

    /// A pod or diff row as its handlers' rows (`<scenario>-<handler>`), each requiring that
    /// handler's runtime (and a pod row expecting its runtime checks); any other row as it is.
    pub(super) fn per_handler(self) -> Vec<Row> {
        let split: Vec<(String, Action, Option<Requirement>, Expect)> = match &self.action {
            Action::Pod(action) => action
                .per_handler()
                .into_iter()
                .map(|(h, a, needed, expect)| (h, Action::Pod(a), needed, expect))
                .collect(),
            Action::Diff(action) => action
                .per_handler()
                .into_iter()
                .map(|(h, a, needed)| (h, Action::Diff(a), needed, Expect::default()))
                .collect(),
            Action::KataCheck(action) => action
                .per_handler()
                .into_iter()
                .map(|(h, a, needed)| (h, Action::KataCheck(a), needed, Expect::default()))
                .collect(),
            _ => return vec![self],
        };
        split
            .into_iter()
            .map(|(handler, action, needed, expect)| {
                let mut requires = self.requires.clone();
                requires.extend(needed.filter(|n| !requires.contains(n)));
                Row {
                    scenario: format!("{}-{handler}", self.scenario),
                    about: format!("{} [handler {handler}]", self.about),
                    requires,
                    action,
                    expect,
                    ..self.clone()
                }
            })
            .collect()
    }
}

/// One row: its name, what it checks, its preconditions, exactly one action key (or only a
/// `node:` block, whose start it checks) and what it must observe.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RowFile {
    /// Unique within the suite; lower-case words joined by `-`.
    scenario: String,
    /// What the row checks, for the report. Default: empty.
    #[serde(default)]
    about: String,
    /// Preconditions; a row whose precondition is absent is skipped with the reason.
    /// Default: none.
    #[serde(default)]
    requires: Vec<Requirement>,
    /// Skip this row everywhere, with this reason (a row kept in the table on purpose but
    /// not run by default, e.g. far too slow here). Default: run.
    #[serde(default)]
    skip: Option<String>,
    /// The row's own node (containerd line, upgrade, config, legacy runtime): started for
    /// this row alone and stopped after it. Default: the variant's shared testbed.
    #[serde(default)]
    node: Option<NodeSetup>,
    /// Action: run a pod sandbox (`crictl runp`), optionally with a container in it.
    #[serde(default)]
    sandbox: Option<SandboxAction>,
    /// Action: import an image archive with `ctr -n <namespace> images import`.
    #[serde(default)]
    image_import: Option<ImageImportAction>,
    /// Action: push an image to a registry on the node, then pull it (CRI or `ctr`).
    #[serde(default)]
    pull: Option<PullAction>,
    /// Action: start a sandbox on the air-gapped node with the pinned sandbox image preloaded
    /// or removed.
    #[serde(default)]
    sandbox_image: Option<SandboxImageAction>,
    /// Action: `ctr run --runtime <type>` in containerd's `default` namespace (no CRI).
    #[serde(default)]
    ctr_run: Option<CtrRunAction>,
    /// Action: a Kubernetes check against the cluster (`kube: { check: ... }`); only in suites
    /// with `placements: [cluster]`.
    #[serde(default)]
    kube: Option<kube::KubeAction>,
    /// Action: run critest (the upstream CRI validation suite) with a handler; each of its
    /// specs is a row of the report.
    #[serde(default)]
    critest: Option<critest::CritestAction>,
    /// Action: a pod with containers, then steps, each with what it must observe; one row
    /// per handler.
    #[serde(default)]
    pod: Option<pod::PodAction>,
    /// Action: the same probes in a runc pod and a Kata pod, the differences listed and
    /// judged; one row per Kata handler.
    #[serde(default)]
    diff: Option<kata_handlers::KataHandlers>,
    /// Action: the Kata runtime's own host check on the node (`kata-runtime check`,
    /// `kata-ctl check all`), its verdict against what the harness found (KVM, vhost_vsock,
    /// vhost_net); one row per Kata handler.
    #[serde(default)]
    kata_check: Option<kata_handlers::KataHandlers>,
    /// What must be observed. Required, except on pod rows (whose checks follow from their
    /// handlers and steps).
    #[serde(default)]
    expect: Option<Expect>,
}
