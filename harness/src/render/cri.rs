//! The CRI pod sandbox and container configs, as the CRI takes them and as `crictl` reads them.
//!
//! One small model ([`PodSpec`], [`ContainerSpec`]) feeds both: the gRPC request the harness
//! sends and the JSON files of the reproduce command (`crictl runp -r <h> pod.json`), so the
//! command a human reruns is exactly what the harness did.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use serde_json::{json, Value};

/// A pod sandbox as the harness asks for it.
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// The pod's hostname; `None`: the pod's name.
    pub hostname: Option<String>,
    /// The pod's resolv.conf; `None`: the node's.
    pub dns: Option<DnsSpec>,
}

/// A pod's DNS settings (CRI `DNSConfig`): what its resolv.conf holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DnsSpec {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// A container inside a sandbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log_path: String,
    pub resources: Option<Resources>,
    pub mounts: Vec<MountSpec>,
}

/// A container's CPU and memory limits, as the kubelet turns a pod's limits into CRI fields
/// (CPU as a CFS quota over a 100 ms period).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Resources {
    /// CPU limit in thousandths of a core (`2` cores: 2000).
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// The CFS period the kubelet uses.
pub const CPU_PERIOD_US: i64 = 100_000;

impl Resources {
    pub fn to_cri(self) -> cri::LinuxContainerResources {
        let mut linux = cri::LinuxContainerResources::default();
        if let Some(millis) = self.cpu_millis {
            linux.cpu_period = CPU_PERIOD_US;
            linux.cpu_quota = millis as i64 * CPU_PERIOD_US / 1000;
            // The kubelet's shares for a pod without a request take the limit.
            linux.cpu_shares = (millis as i64 * 1024 / 1000).max(2);
        }
        if let Some(bytes) = self.memory_bytes {
            linux.memory_limit_in_bytes = bytes as i64;
        }
        linux
    }

    fn to_crictl_json(self) -> Value {
        let r = self.to_cri();
        json!({
            "cpu_period": r.cpu_period,
            "cpu_quota": r.cpu_quota,
            "cpu_shares": r.cpu_shares,
            "memory_limit_in_bytes": r.memory_limit_in_bytes,
        })
    }
}

/// A host directory bind-mounted into a container (what a kubelet hostPath or emptyDir
/// volume becomes at the CRI).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MountSpec {
    pub host_path: String,
    pub container_path: String,
    pub readonly: bool,
}

impl ContainerSpec {
    /// The container rows run: `busybox`, sleeping an hour, logging to `busybox.log`.
    pub fn sleeping_busybox(image: &str) -> ContainerSpec {
        ContainerSpec {
            name: "busybox".into(),
            image: image.into(),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "busybox.log".into(),
            ..ContainerSpec::default()
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
            hostname: self.hostname().to_owned(),
            log_directory: self.log_directory.clone(),
            annotations: self.annotations.clone(),
            dns_config: self.dns.as_ref().map(|d| cri::DnsConfig {
                servers: d.servers.clone(),
                searches: d.searches.clone(),
                options: d.options.clone(),
            }),
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

    pub fn hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.name)
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
        let mut pod = json!({
            "metadata": { "name": self.name, "uid": self.uid, "namespace": self.namespace, "attempt": 0 },
            "hostname": self.hostname(),
            "log_directory": self.log_directory,
            "annotations": self.annotations,
            "labels": { "kata-harness": "true" },
            "linux": {
                "cgroup_parent": self.cgroup_parent,
                "security_context": {
                    "namespace_options": { "network": if self.host_network { 2 } else { 0 } }
                }
            }
        });
        if let Some(dns) = &self.dns {
            pod["dns_config"] =
                json!({ "servers": dns.servers, "searches": dns.searches, "options": dns.options });
        }
        pod
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
            args: self.args.clone(),
            envs: self
                .env
                .iter()
                .map(|(key, value)| cri::KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            mounts: self
                .mounts
                .iter()
                .map(|m| cri::Mount {
                    container_path: m.container_path.clone(),
                    host_path: m.host_path.clone(),
                    readonly: m.readonly,
                    ..Default::default()
                })
                .collect(),
            log_path: self.log_path.clone(),
            labels: HashMap::from([("kata-harness".to_owned(), "true".to_owned())]),
            linux: Some(cri::LinuxContainerConfig {
                resources: self.resources.map(Resources::to_cri),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn to_crictl_json(&self) -> Value {
        let mut container = json!({
            "metadata": { "name": self.name },
            "image": { "image": self.image },
            "command": self.command,
            "log_path": self.log_path,
            "labels": { "kata-harness": "true" },
            "linux": {}
        });
        if !self.args.is_empty() {
            container["args"] = json!(self.args);
        }
        if !self.env.is_empty() {
            container["envs"] = self
                .env
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": v }))
                .collect();
        }
        if !self.mounts.is_empty() {
            container["mounts"] = self
                .mounts
                .iter()
                .map(|m| json!({ "container_path": m.container_path, "host_path": m.host_path, "readonly": m.readonly }))
                .collect();
        }
        if let Some(resources) = self.resources {
            container["linux"] = json!({ "resources": resources.to_crictl_json() });
        }
        container
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
            ..PodSpec::default()
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
            ..ContainerSpec::default()
        };
        let cri = spec.to_cri();
        let json = spec.to_crictl_json();
        assert_eq!(cri.image.unwrap().image, json["image"]["image"]);
        assert_eq!(cri.command, vec!["sleep", "3600"]);
        assert_eq!(json["command"][1], "3600");
    }
}
