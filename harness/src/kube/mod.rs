//! Kubernetes on the local target: an offline kubeadm cluster on a private containerd, and the
//! `kubernetes` suite's rows run against it.
//!
//! Invariant: the whole node (containerd, kubelet, kubeadm and every pod) lives in one private
//! mount+net+UTS namespace held by a holder process, with copy-on-write overlays over the host
//! dirs kubeadm and kubelet write to, so the host is left exactly as it was found; everything
//! outside that namespace (veth host end, cgroup subtree, processes) is registered with
//! [`crate::teardown`] before it exists.
//!
//! * [`bundle`]: the offline Kubernetes binaries (built by `scripts/build-k8s-bundle`, a
//!   user's directory of any version, or an upstream release).
//! * [`release`]: upstream release binaries pinned by version, cached, and verified against
//!   the `.sha256` dl.k8s.io publishes beside each.
//! * [`images`]: control-plane images built locally as OCI archives, named as kubeadm expects.
//! * [`cluster`]: bring-up and teardown of the namespaced node.
//! * [`client`]: the `kube` client facade and what the suite repeats.
//! * [`suite`]: the row actions (`kube: { check: ... }`) and their judgement.
//! * [`session`]: one cluster per variant, its trials in order, failure bundles.

pub mod bundle;
pub mod client;
pub mod cluster;
pub mod images;
pub mod release;
pub mod session;
pub mod source;
pub mod suite;

use std::path::PathBuf;

use crate::process::ProcessError;
use crate::wait::WaitError;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("no Kubernetes bundle at {dir} (expected bin/kubeadm, bin/kubelet, ...): {reason}")]
    Bundle { dir: PathBuf, reason: String },
    #[error("failed to build the Kubernetes bundle with {script}")]
    BundleBuild {
        script: PathBuf,
        #[source]
        source: ProcessError,
    },
    /// Boxed: its digest error is the largest, and every `KubeError` would carry its size.
    #[error("failed to fetch the upstream Kubernetes release")]
    Release(#[source] Box<release::ReleaseError>),
    #[error(
        "RuntimeClass {name} created through node.k8s.io/v1beta1 reads back through node.k8s.io/v1 \
         with handler {found:?}, not {handler:?}"
    )]
    RuntimeClassRoundTrip {
        name: String,
        handler: String,
        found: Option<String>,
    },
    #[error("failed to fetch a Debian package for an image")]
    Deb(#[from] crate::artifacts::deb::DebError),
    #[error("failed to build image {image}")]
    Image {
        image: String,
        #[source]
        source: crate::images::ImageError,
    },
    #[error("failed to render the kubeadm config")]
    Render(#[from] crate::render::kubeadm::KubeadmRenderError),
    #[error("failed to render the containerd config")]
    RenderContainerd(#[from] crate::render::containerd::RenderError),
    #[error("failed to resolve containerd")]
    Profile(#[from] crate::profile::ProfileError),
    #[error("failed to prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {step}")]
    Step {
        step: String,
        #[source]
        source: ProcessError,
    },
    #[error("failed to start {what}")]
    Spawn {
        what: String,
        #[source]
        source: ProcessError,
    },
    #[error("{what} did not happen; {context}")]
    Wait {
        what: String,
        context: String,
        #[source]
        source: WaitError,
    },
    #[error("kubeadm init failed: {first_error}\n----- kubeadm output (tail) -----\n{tail}")]
    KubeadmInit { first_error: String, tail: String },
    #[error("failed to import {image} into k8s.io")]
    Import {
        image: String,
        #[source]
        source: ProcessError,
    },
    #[error("failed to read the admin kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("failed to build the Kubernetes client")]
    Client(#[source] kube::Error),
    #[error("Kubernetes API call failed: {call}")]
    Api {
        call: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to connect to the CRI")]
    Cri(#[from] crate::cri::CriError),
    #[error("the cluster of {kubeconfig}: {reason}")]
    Attach { kubeconfig: PathBuf, reason: String },
}

impl From<release::ReleaseError> for KubeError {
    fn from(error: release::ReleaseError) -> Self {
        KubeError::Release(Box::new(error))
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> KubeError + '_ {
    move |source| KubeError::Io {
        path: path.to_owned(),
        source,
    }
}
