//! The kubeadm config file (`kubeadm init --config`) for a Kubernetes version.
//!
//! Invariant: the config API follows the version (v1beta2 for 1.15-1.21, v1beta3 for
//! 1.22-1.30, v1beta4 from 1.31); versions kubeadm's config API cannot express are errors,
//! not guesses. Four documents: InitConfiguration, ClusterConfiguration, KubeletConfiguration,
//! KubeProxyConfiguration. The last two pin what a node we do not own needs: cgroupfs under our
//! own cgroup root, a short pod sync (mirror pods appear within seconds), and kube-proxy never
//! writing the host-global conntrack sysctls.

use std::fmt::Write as _;

use crate::profile::Version;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KubeadmRenderError {
    #[error(
        "Kubernetes {version} is older than any kubeadm config API we render (v1beta2 needs 1.15 or later)"
    )]
    TooOld { version: Version },
}

/// kubeadm's config API group version for a Kubernetes release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmApi {
    V1beta2,
    V1beta3,
    V1beta4,
}

impl KubeadmApi {
    pub fn for_version(version: Version) -> Result<Self, KubeadmRenderError> {
        match (version.major, version.minor) {
            (1, 15..=21) => Ok(KubeadmApi::V1beta2),
            (1, 22..=30) => Ok(KubeadmApi::V1beta3),
            (1, m) if m >= 31 => Ok(KubeadmApi::V1beta4),
            (major, _) if major > 1 => Ok(KubeadmApi::V1beta4),
            _ => Err(KubeadmRenderError::TooOld { version }),
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            KubeadmApi::V1beta2 => "kubeadm.k8s.io/v1beta2",
            KubeadmApi::V1beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApi::V1beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// Everything the kubeadm config says, as data.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeadmConfig {
    pub version: Version,
    pub node_name: String,
    /// The API server's advertise address (the node's IP).
    pub advertise_address: String,
    /// `unix:///...` path of containerd's CRI socket.
    pub cri_socket: String,
    /// `k8s.gcr.io` before 1.25, `registry.k8s.io` from 1.25 (kubeadm's own defaults).
    pub image_repository: String,
    /// The tag of the etcd image we built (kubeadm's default tag names a release we do not have).
    pub etcd_image_tag: Option<String>,
    pub pod_subnet: String,
    pub service_subnet: String,
    pub cluster_name: String,
    /// kubelet's `cgroupRoot` (cgroupfs driver): every pod cgroup lives below it.
    pub cgroup_root: String,
}

/// The image repository kubeadm defaults to for a version.
pub fn default_image_repository(version: Version) -> &'static str {
    if version >= Version::new(1, 25, 0) {
        "registry.k8s.io"
    } else {
        "k8s.gcr.io"
    }
}

impl KubeadmConfig {
    pub fn render(&self) -> Result<String, KubeadmRenderError> {
        let api = KubeadmApi::for_version(self.version)?.api_version();
        let mut out = String::new();
        // InitConfiguration: this node, the containerd CRI (never dockershim), no taint changes
        // here (the harness removes the control-plane taint through the API).
        let _ = writeln!(out, "apiVersion: {api}");
        let _ = writeln!(out, "kind: InitConfiguration");
        let _ = writeln!(out, "localAPIEndpoint:");
        let _ = writeln!(out, "  advertiseAddress: {}", self.advertise_address);
        let _ = writeln!(out, "  bindPort: 6443");
        let _ = writeln!(out, "nodeRegistration:");
        let _ = writeln!(out, "  name: {}", self.node_name);
        let _ = writeln!(out, "  criSocket: {}", self.cri_socket);
        let _ = writeln!(out, "---");
        let _ = writeln!(out, "apiVersion: {api}");
        let _ = writeln!(out, "kind: ClusterConfiguration");
        let _ = writeln!(out, "kubernetesVersion: v{}", self.version);
        let _ = writeln!(out, "imageRepository: {}", self.image_repository);
        let _ = writeln!(out, "clusterName: {}", self.cluster_name);
        let _ = writeln!(out, "networking:");
        let _ = writeln!(out, "  podSubnet: {}", self.pod_subnet);
        let _ = writeln!(out, "  serviceSubnet: {}", self.service_subnet);
        if let Some(tag) = &self.etcd_image_tag {
            let _ = writeln!(out, "etcd:");
            let _ = writeln!(out, "  local:");
            let _ = writeln!(out, "    imageTag: \"{tag}\"");
        }
        let _ = writeln!(out, "---");
        let _ = writeln!(out, "apiVersion: kubelet.config.k8s.io/v1beta1");
        let _ = writeln!(out, "kind: KubeletConfiguration");
        let _ = writeln!(out, "cgroupDriver: cgroupfs");
        let _ = writeln!(out, "cgroupRoot: {}", self.cgroup_root);
        // Mirror pods are created on a pod sync after the node exists: 1m by default.
        let _ = writeln!(out, "syncFrequency: 10s");
        // The node's disk is the host's: on a host that is 85% full (a CI runner, or this one
        // after a few builds) the defaults put the node under disk pressure and garbage-collect
        // the control-plane images built locally, which it then cannot pull back. Absolute
        // floors instead, and image collection only on a full disk.
        let _ = writeln!(out, "evictionHard:");
        let _ = writeln!(out, "  memory.available: 100Mi");
        let _ = writeln!(out, "  nodefs.available: 1Gi");
        let _ = writeln!(out, "  imagefs.available: 1Gi");
        let _ = writeln!(out, "imageGCHighThresholdPercent: 100");
        let _ = writeln!(out, "imageGCLowThresholdPercent: 99");
        let _ = writeln!(out, "---");
        let _ = writeln!(out, "apiVersion: kubeproxy.config.k8s.io/v1alpha1");
        let _ = writeln!(out, "kind: KubeProxyConfiguration");
        // Zeros: kube-proxy leaves nf_conntrack_max, the hashsize and the tcp timeouts alone.
        let _ = writeln!(out, "conntrack:");
        let _ = writeln!(out, "  maxPerCore: 0");
        let _ = writeln!(out, "  tcpEstablishedTimeout: 0s");
        let _ = writeln!(out, "  tcpCloseWaitTimeout: 0s");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn api_follows_the_version() {
        assert_eq!(KubeadmApi::for_version(v("1.15.0")), Ok(KubeadmApi::V1beta2));
        assert_eq!(KubeadmApi::for_version(v("1.20.2")), Ok(KubeadmApi::V1beta2));
        assert_eq!(KubeadmApi::for_version(v("1.21.14")), Ok(KubeadmApi::V1beta2));
        assert_eq!(KubeadmApi::for_version(v("1.22.0")), Ok(KubeadmApi::V1beta3));
        assert_eq!(KubeadmApi::for_version(v("1.30.9")), Ok(KubeadmApi::V1beta3));
        assert_eq!(KubeadmApi::for_version(v("1.31.0")), Ok(KubeadmApi::V1beta4));
        assert_eq!(KubeadmApi::for_version(v("1.35.0")), Ok(KubeadmApi::V1beta4));
        assert!(KubeadmApi::for_version(v("1.14.10")).is_err());
    }

    #[test]
    fn image_repository_moves_at_1_25() {
        assert_eq!(default_image_repository(v("1.24.17")), "k8s.gcr.io");
        assert_eq!(default_image_repository(v("1.25.0")), "registry.k8s.io");
    }
}
