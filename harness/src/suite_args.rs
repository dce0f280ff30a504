//! The flags that choose what a run covers (`run` and `list` share them), and what they
//! mean: which containerds, images, cluster and Kata, the rerun line, the SSH reach.

use std::path::{Path, PathBuf};

use kata_harness::artifacts::kata::KataChoice;
use kata_harness::artifacts::kata_release::KataRelease;
use kata_harness::kube::bundle::Bundle;
use kata_harness::kube::release::Release;
use kata_harness::kube::source::Source;
use kata_harness::node::Target;
use kata_harness::profile::{DEFAULT_CONTAINERD_LINES, DEFAULT_VM_IMAGES};
use kata_harness::provision::reach::Reach;
use kata_harness::report::{
    self,
    quarantine::{self, Quarantine},
};
use kata_harness::scenario::shard::Shard;

use crate::existing_cmd::RuntimeFromArg;
use crate::{default_suites_dir, path_arg, repo_root};

#[derive(clap::Args, Clone)]
pub(crate) struct SuiteArgs {
    /// The combination of component versions to run (a name in profiles/, or a profile
    /// file): containerd versions, VM images, Kata, Kubernetes, handlers. Default: the
    /// `default` profile. A flag given as well (--containerd, --image, --k8s-*, --kata-*,
    /// --target) overrides the profile's value, and the report says so.
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) profile: Option<String>,
    /// Directory of suite files (*.yaml), or one suite file [default: suites/ of this checkout].
    #[arg(long, default_value_os_t = default_suites_dir(), hide_default_value = true)]
    pub(crate) suites: PathBuf,
    /// Where the suites run: all (the default profile's: the VM images, the local containerds
    /// and the local kubeadm cluster, in one report), vm (a throw-away QEMU VM per image),
    /// local (private containerds on this host), cri:///path/to/containerd.sock (an existing
    /// containerd, as it is configured: its handlers are discovered, its config is never
    /// rewritten, and what the rows create is removed), or ssh://user@host[:port] (the same
    /// for a containerd on that host, over SSH: --node-socket, --ssh-identity, --known-hosts).
    /// Default: the profile's.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// With --target cri://: also run the rows that change the node and undo it (they remove
    /// and re-import its sandbox image); without it they are skipped, naming what they touch.
    #[arg(long)]
    pub(crate) allow_node_changes: bool,
    /// Run the cluster suites against an existing cluster through this kubeconfig, as it is
    /// (nothing started or torn down; the rows work in a namespace of the run's own, deleted
    /// at the end, on Ctrl-C too). runtimeType is read through the node's CRI where its
    /// socket is on this host (single-node clusters), else from the pods' status.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: where the pods' runtimes are read: cri (the node's CRI socket must
    /// be on this host) or pod-status (the API only: each pod's RuntimeClass handler, the
    /// handlers its node reports, its containers' IDs; every row says runtimeType was not
    /// read) [default: cri where the socket is here, else pod-status].
    #[arg(long, value_enum, value_name = "cri|pod-status", requires = "kubeconfig")]
    pub(crate) runtime_from: Option<RuntimeFromArg>,
    /// With --target ssh://: the CRI socket on that host.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub(crate) node_socket: PathBuf,
    /// With --target ssh://: the private key to log in with [default: ~/.ssh/id_ed25519, else
    /// ~/.ssh/id_rsa].
    #[arg(long, value_name = "FILE")]
    pub(crate) ssh_identity: Option<PathBuf>,
    /// With --target ssh://: the known_hosts file the host's key must be in (never trusted on
    /// first use) [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub(crate) known_hosts: Option<PathBuf>,
    /// Set from a profile without a cluster: `all` then has none.
    #[arg(skip)]
    pub(crate) no_cluster: bool,
    /// With --target local: containerd release lines or binary directories [default: the
    /// profile's, 1.6,1.7,2.1,2.3].
    #[arg(long = "containerd", value_delimiter = ',')]
    pub(crate) containerd: Option<Vec<String>>,
    /// With --target vm: image recipes under vm-images/, one VM and variant each
    /// [default: bookworm,bookworm-containerd21].
    #[arg(long = "image", value_delimiter = ',')]
    pub(crate) images: Option<Vec<String>>,
    /// Keep only trials whose name contains this text.
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// With --filter: keep only the trial with exactly this name.
    #[arg(long, requires = "filter")]
    pub(crate) exact: bool,
    /// Keep only the K-th of N shares of the trials (K from 1), for running one run on N
    /// machines: a share is whole testbeds (a containerd line's, a VM image's, the cluster's
    /// trials), balanced by --durations, else by counts of trials; the N shares hold every
    /// trial once. `kata-harness merge` joins their results.
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<Shard>,
    /// With --shard: the seconds each testbed took, to balance the shares by: a results.json
    /// of an earlier run (its trials' seconds summed per variant) or a file of
    /// {"groups": {"<variant>": seconds}}. Every shard must be given the same file.
    #[arg(long, value_name = "FILE", requires = "shard")]
    pub(crate) durations: Option<PathBuf>,
    /// Also run the cluster suites (suites with `placements: [cluster]`) against a kubeadm
    /// cluster on this host; `run` builds the offline bundle first if it is missing.
    #[arg(long)]
    pub(crate) k8s: bool,
    /// A Kubernetes bundle directory (bin/kubeadm, bin/kubelet, ...; any version); implies --k8s.
    /// Default: $KATA_HARNESS_K8S_BUNDLE, else the one scripts/build-k8s-bundle builds.
    #[arg(long = "k8s-bundle")]
    pub(crate) k8s_bundle: Option<PathBuf>,
    /// An upstream Kubernetes release (e.g. v1.20.2); implies --k8s. `run` downloads its
    /// binaries from dl.k8s.io ($KATA_HARNESS_K8S_URL replaces https://dl.k8s.io) into the
    /// cache once, each verified against the <binary>.sha256 published beside it. Upstream has
    /// no pause binary: the pause image is then busybox-based.
    #[arg(long = "k8s-release", value_name = "VERSION", conflicts_with = "k8s_bundle")]
    pub(crate) k8s_release: Option<String>,
    /// Kata in the kata-static layout (a directory holding opt/kata, or a kata-static tarball,
    /// unpacked once into the cache). Default: $KATA_HARNESS_KATA_BUNDLE, else the source build
    /// of scripts/build-kata.
    #[arg(long = "kata-bundle", value_name = "DIR|TARBALL")]
    pub(crate) kata_bundle: Option<PathBuf>,
    /// An upstream Kata release (e.g. 3.30.0). `run` downloads its kata-static tarball(s) from
    /// GitHub releases ($KATA_HARNESS_GITHUB_URL replaces https://github.com, e.g. a mirror laid
    /// out as <base>/kata-containers/kata-containers/releases/download/<version>/<asset>) into
    /// the cache once, verified by the sha256 in
    /// kata-release.lock ($KATA_HARNESS_KATA_RELEASE_LOCK), which records them on the first
    /// download (upstream publishes no checksums); `list` uses the cache only. Assets:
    /// kata-static-<V>-x86_64.tar.xz (2.0 to 3.1), kata-static-<V>-amd64.tar.xz (3.2 to 3.20),
    /// kata-static-<V>-amd64.tar.zst (3.21 to 4.0); from 4.1 that and
    /// kata-go-static-<V>-amd64.tar.zst, unpacked into one layout.
    #[arg(long = "kata-release", value_name = "VERSION", conflicts_with = "kata_bundle")]
    pub(crate) kata_release: Option<String>,
    /// Known failures (row pattern, reason, tracker link, expiry date), reported as
    /// quarantined instead of failed until their date; an expired entry is an error. Default:
    /// quarantine.yaml in the --suites folder, if it has one; `none` reports every failure as
    /// failed.
    #[arg(long, value_name = "FILE|none")]
    pub(crate) quarantine: Option<String>,
}

impl SuiteArgs {
    pub(crate) fn containerd_lines(&self) -> Vec<String> {
        self.containerd
            .clone()
            .unwrap_or_else(|| DEFAULT_CONTAINERD_LINES.map(String::from).to_vec())
    }

    /// The cluster's bundle source, if the run has a cluster: `--k8s-release` (over
    /// $KATA_HARNESS_K8S_BUNDLE), `--k8s-bundle` or the variable, else the built one with --k8s.
    pub(crate) fn k8s_source(&self) -> Result<Option<Source>, String> {
        if let Some(version) = &self.k8s_release {
            let release = Release::new(version)
                .map_err(|e| format!("--k8s-release {version}: {}", report::chain(&e)))?;
            return Ok(Some(Source::Release(release)));
        }
        Ok(match Bundle::user_dir(self.k8s_bundle.as_deref()) {
            Some(dir) => Some(Source::Dir(dir)),
            None if self.k8s => Some(Source::Default),
            None => None,
        })
    }

    /// The flag that names the cluster, for messages about it.
    pub(crate) fn k8s_flag(&self) -> Option<String> {
        match (&self.k8s_release, self.k8s || self.k8s_bundle.is_some()) {
            (Some(version), _) => Some(format!("--k8s-release {version}")),
            (None, true) => Some("--k8s".into()),
            (None, false) => None,
        }
    }

    /// Which Kata the local nodes and the cluster get. `fetch`: download a `--kata-release`
    /// that is not cached yet (`run`); else the cache only (`list`).
    pub(crate) fn kata_choice(&self, fetch: bool) -> Result<KataChoice, String> {
        if let Some(version) = &self.kata_release {
            let layout = KataRelease::new(version, &repo_root()).and_then(|release| {
                if fetch {
                    release.fetch()
                } else {
                    release.open_cached()
                }
            });
            return layout.map(KataChoice::Resolved).map_err(|e| {
                format!(
                    "--kata-release {version}: {}",
                    kata_harness::errors::chain_line(&e)
                )
            });
        }
        Ok(match &self.kata_bundle {
            Some(path) => KataChoice::Bundle(path.clone()),
            None => KataChoice::Default,
        })
    }

    /// `kata-harness run` with the flags that rerun this run's placements and suites (the
    /// failure bundles' hint narrows it with `--filter <trial> --exact`).
    pub(crate) fn rerun_argv(&self, target: &Target) -> Vec<String> {
        let mut argv: Vec<String> = ["kata-harness", "run"].map(String::from).to_vec();
        // An existing cluster is the whole run (`--kubeconfig`, below): no target of its own.
        let placements = if self.kubeconfig.is_some() {
            None
        } else {
            Some(target)
        };
        if let Some(target) = placements {
            argv.extend(["--target".into(), target.to_string()]);
        }
        if matches!(placements, Some(Target::Vm | Target::All)) {
            argv.extend(["--image".into(), self.image_recipes().join(",")]);
        }
        if matches!(placements, Some(Target::Local | Target::All)) {
            argv.extend(["--containerd".into(), self.containerd_lines().join(",")]);
        }
        // Suites from elsewhere than the checkout's suites/ are named, or the rerun would
        // load other rows (or none of that name).
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
        if canonical(&self.suites) != canonical(&default_suites_dir()) {
            argv.extend(["--suites".into(), path_arg(&self.suites)]);
        }
        match (&self.k8s_release, &self.k8s_bundle) {
            (Some(version), _) => argv.extend(["--k8s-release".into(), version.clone()]),
            (None, Some(dir)) => argv.extend(["--k8s-bundle".into(), path_arg(dir)]),
            (None, None) if self.k8s => argv.push("--k8s".into()),
            (None, None) => {}
        }
        match (&self.kata_release, &self.kata_bundle) {
            (Some(version), _) => argv.extend(["--kata-release".into(), version.clone()]),
            (None, Some(path)) => argv.extend(["--kata-bundle".into(), path_arg(path)]),
            (None, None) => {}
        }
        if self.allow_node_changes {
            argv.push("--allow-node-changes".into());
        }
        if let Some(kubeconfig) = &self.kubeconfig {
            argv.extend(["--kubeconfig".into(), path_arg(kubeconfig)]);
            if let Some(from) = self.runtime_from {
                argv.extend(["--runtime-from".into(), from.name().into()]);
            }
        }
        if let Target::Ssh { .. } = target {
            argv.extend(["--node-socket".into(), path_arg(&self.node_socket)]);
            for (flag, file) in [
                ("--ssh-identity", &self.ssh_identity),
                ("--known-hosts", &self.known_hosts),
            ] {
                if let Some(file) = file {
                    argv.extend([flag.into(), path_arg(file)]);
                }
            }
        }
        match self.quarantine.as_deref() {
            Some("none") => argv.extend(["--quarantine".into(), "none".into()]),
            Some(file) => argv.extend(["--quarantine".into(), path_arg(Path::new(file))]),
            None => {}
        }
        argv
    }

    /// How `--target ssh://user@host:port` is reached: the identity and known_hosts given,
    /// else the user's own; both must exist.
    pub(crate) fn ssh_reach(&self, user: &str, host: &str, port: u16) -> Result<Reach, String> {
        let ssh_dir = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".ssh");
        let identity = match &self.ssh_identity {
            Some(file) => file.clone(),
            None => ["id_ed25519", "id_rsa"]
                .iter()
                .map(|name| ssh_dir.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    format!(
                        "--target ssh://{user}@{host}: no --ssh-identity, and no ~/.ssh/id_ed25519 or id_rsa"
                    )
                })?,
        };
        let known_hosts = self
            .known_hosts
            .clone()
            .unwrap_or_else(|| ssh_dir.join("known_hosts"));
        for (flag, file) in [("--ssh-identity", &identity), ("--known-hosts", &known_hosts)] {
            if !file.is_file() {
                return Err(format!("{flag} {}: no such file", file.display()));
            }
        }
        Ok(Reach::Ssh {
            user: user.to_owned(),
            host: host.to_owned(),
            port,
            identity: path_arg(&identity).into(),
            known_hosts: path_arg(&known_hosts).into(),
        })
    }

    pub(crate) fn quarantine(&self) -> Result<Quarantine, String> {
        let today = quarantine::today();
        match self.quarantine.as_deref() {
            Some("none") => Ok(Quarantine::default()),
            Some(file) => Quarantine::load(Path::new(file), today).map_err(|e| e.to_string()),
            None => Quarantine::beside(&self.suites, today).map_err(|e| e.to_string()),
        }
    }

    pub(crate) fn image_recipes(&self) -> Vec<String> {
        self.images
            .clone()
            .unwrap_or_else(|| DEFAULT_VM_IMAGES.map(String::from).to_vec())
    }
}
