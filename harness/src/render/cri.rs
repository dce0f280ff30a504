//! The CRI pod sandbox and container configs, as the CRI takes them and as `crictl` reads them.
//!
//! One small model ([`PodSpec`], [`ContainerSpec`]) feeds both: the gRPC request the harness
//! sends and the JSON files of the reproduce command (`crictl runp -r <h> pod.json`), so the
//! command a human reruns is exactly what the harness did.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use serde_json::{json, Value};

/// A pod sandbox as the harness asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// Runtime handler (`crictl runp -r`); empty means containerd's default.
    pub handler: String,
    pub log_directory: String,
    /// Parent cgroup, per run, so leftovers are easy to find and remove.
    pub cgroup_parent: String,
    pub host_network: bool,
    pub annotations: HashMap<String, String>,
}

/// A container inside a sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub log_path: String,
}

impl ContainerSpec {
    /// The container rows run: `busybox`, sleeping an hour, logging to `busybox.log`.
    pub fn sleeping_busybox(image: &str) -> ContainerSpec {
        ContainerSpec {
            name: "busybox".into(),
            image: image.into(),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "busybox.log".into(),
        }
    }
}

impl PodSpec {
    pub fn to_cri(&self) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: self.namespace.clone(),
                attempt: 0,
            }),
            hostname: self.name.clone(),
            log_directory: self.log_directory.clone(),
            annotations: self.annotations.clone(),
            labels: HashMap::from([("kata-harness".to_owned(), "true".to_owned())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(self.namespace_options()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn namespace_options(&self) -> cri::NamespaceOption {
        let network = if self.host_network {
            cri::NamespaceMode::Node
        } else {
            cri::NamespaceMode::Pod
        };
        cri::NamespaceOption {
            network: network as i32,
            ..Default::default()
        }
    }

    /// The same config in crictl's file format (protobuf field names).
    pub fn to_crictl_json(&self) -> Value {
        json!({
            "metadata": { "name": self.name, "uid": self.uid, "namespace": self.namespace, "attempt": 0 },
            "hostname": self.name,
            "log_directory": self.log_directory,
            "annotations": self.annotations,
            "labels": { "kata-harness": "true" },
            "linux": {
                "cgroup_parent": self.cgroup_parent,
                "security_context": {
                    "namespace_options": { "network": if self.host_network { 2 } else { 0 } }
                }
            }
        })
    }
}

impl ContainerSpec {
    pub fn to_cri(&self) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: self.name.clone(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: self.command.clone(),
            log_path: self.log_path.clone(),
            labels: HashMap::from([("kata-harness".to_owned(), "true".to_owned())]),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    pub fn to_crictl_json(&self) -> Value {
        json!({
            "metadata": { "name": self.name },
            "image": { "image": self.image },
            "command": self.command,
            "log_path": self.log_path,
            "labels": { "kata-harness": "true" },
            "linux": {}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodSpec {
        PodSpec {
            name: "p".into(),
            namespace: "ns".into(),
            uid: "u-1".into(),
            handler: "crun".into(),
            log_directory: "/tmp/logs".into(),
            cgroup_parent: "/kata-harness-x".into(),
            host_network: true,
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn pod_cri_and_crictl_agree() {
        let spec = pod();
        let cri = spec.to_cri();
        let json = spec.to_crictl_json();
        assert_eq!(cri.metadata.as_ref().unwrap().uid, json["metadata"]["uid"]);
        let linux = cri.linux.unwrap();
        assert_eq!(linux.cgroup_parent, json["linux"]["cgroup_parent"]);
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(
            json["linux"]["security_context"]["namespace_options"]["network"],
            ns.network
        );
    }

    #[test]
    fn container_cri_and_crictl_agree() {
        let spec = ContainerSpec {
            name: "c".into(),
            image: "docker.io/library/busybox:kh".into(),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "c.log".into(),
        };
        let cri = spec.to_cri();
        let json = spec.to_crictl_json();
        assert_eq!(cri.image.unwrap().image, json["image"]["image"]);
        assert_eq!(cri.command, vec!["sleep", "3600"]);
        assert_eq!(json["command"][1], "3600");
    }
}
