//! A thin CRI client over containerd's unix socket: one channel, one facade.
//!
//! Runtime API v1 is tried first and `v1alpha2` is the fallback (containerd before 1.5).
//! The two packages have wire-identical messages, so the facade speaks the v1 message types on
//! either package's method paths instead of duplicating every call.
//! Errors keep the `tonic::Status`, so callers branch on the gRPC code, never on strings alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as api;
use serde_json::Value;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::render::cri::{ContainerSpec, PodSpec};

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("failed to connect to the CRI socket {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("CRI {method} failed: {}: {}", .status.code(), .status.message())]
    Call { method: String, status: tonic::Status },
    #[error("CRI {method} did not answer within {deadline:?}")]
    Deadline { method: String, deadline: Duration },
    #[error("failed to parse the verbose info of {what}: {reason}")]
    Info { what: String, reason: String },
}

impl CriError {
    /// The gRPC status of a failed call (what the CRI itself answered).
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            CriError::Call { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// The CRI runtime API package the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriApi {
    V1,
    V1alpha2,
}

impl CriApi {
    fn package(self) -> &'static str {
        match self {
            CriApi::V1 => "runtime.v1",
            CriApi::V1alpha2 => "runtime.v1alpha2",
        }
    }
}

/// Connects a tonic channel to a unix socket (the URI is a placeholder tonic requires).
pub async fn unix_channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    containerd_client::connect(socket).await
}

#[derive(Clone)]
pub struct CriClient {
    channel: Channel,
    api: CriApi,
    socket: PathBuf,
    deadline: Duration,
}

impl CriClient {
    /// Connects and picks the API version the server answers `Version` on.
    /// The same client with another per-call deadline (a node whose sandboxes take minutes).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub async fn connect(socket: &Path, deadline: Duration) -> Result<Self, CriError> {
        let channel = unix_channel(socket).await.map_err(|source| CriError::Connect {
            socket: socket.to_owned(),
            source,
        })?;
        let mut client = CriClient {
            channel,
            api: CriApi::V1,
            socket: socket.to_owned(),
            deadline,
        };
        if let Err(e) = client.version().await {
            match e.status().map(|s| s.code()) {
                Some(tonic::Code::Unimplemented) => client.api = CriApi::V1alpha2,
                _ => return Err(e),
            }
            client.version().await?;
        }
        Ok(client)
    }

    /// Connects speaking one API package only (tests, and servers known to be old).
    pub async fn connect_with(socket: &Path, deadline: Duration, api: CriApi) -> Result<Self, CriError> {
        let channel = unix_channel(socket).await.map_err(|source| CriError::Connect {
            socket: socket.to_owned(),
            source,
        })?;
        let client = CriClient {
            channel,
            api,
            socket: socket.to_owned(),
            deadline,
        };
        client.version().await?;
        Ok(client)
    }

    pub fn api(&self) -> CriApi {
        self.api
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    async fn unary<Req, Resp>(&self, service: &str, method: &str, request: Req) -> Result<Resp, CriError>
    where
        Req: prost::Message + Send + 'static,
        Resp: prost::Message + Default + Send + 'static,
    {
        let path = format!("/{}.{service}/{method}", self.api.package());
        let path = PathAndQuery::try_from(path).expect("CRI method paths are valid URIs");
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let call = async {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}")))?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            grpc.unary(tonic::Request::new(request), path, codec).await
        };
        match tokio::time::timeout(self.deadline, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(CriError::Call {
                method: method.to_owned(),
                status,
            }),
            Err(_) => Err(CriError::Deadline {
                method: method.to_owned(),
                deadline: self.deadline,
            }),
        }
    }

    async fn runtime<Req, Resp>(&self, method: &str, request: Req) -> Result<Resp, CriError>
    where
        Req: prost::Message + Send + 'static,
        Resp: prost::Message + Default + Send + 'static,
    {
        self.unary("RuntimeService", method, request).await
    }

    async fn image<Req, Resp>(&self, method: &str, request: Req) -> Result<Resp, CriError>
    where
        Req: prost::Message + Send + 'static,
        Resp: prost::Message + Default + Send + 'static,
    {
        self.unary("ImageService", method, request).await
    }

    pub async fn version(&self) -> Result<api::VersionResponse, CriError> {
        self.runtime("Version", api::VersionRequest { version: "v1".into() })
            .await
    }

    /// Runtime conditions (RuntimeReady, NetworkReady).
    pub async fn status(&self) -> Result<api::StatusResponse, CriError> {
        self.runtime("Status", api::StatusRequest { verbose: false })
            .await
    }

    /// `crictl info`: the conditions plus the verbose `info` map (its `config` key is the CRI
    /// plugin's effective configuration as JSON: handlers, CNI, registry).
    pub async fn status_verbose(&self) -> Result<api::StatusResponse, CriError> {
        self.runtime("Status", api::StatusRequest { verbose: true }).await
    }

    /// `crictl runp -r <handler>`: returns the sandbox id.
    pub async fn run_pod_sandbox(&self, pod: &PodSpec) -> Result<String, CriError> {
        let request = api::RunPodSandboxRequest {
            config: Some(pod.to_cri()),
            runtime_handler: pod.handler.clone(),
        };
        let response: api::RunPodSandboxResponse = self.runtime("RunPodSandbox", request).await?;
        Ok(response.pod_sandbox_id)
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let _: api::StopPodSandboxResponse = self
            .runtime(
                "StopPodSandbox",
                api::StopPodSandboxRequest {
                    pod_sandbox_id: id.into(),
                },
            )
            .await?;
        Ok(())
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let _: api::RemovePodSandboxResponse = self
            .runtime(
                "RemovePodSandbox",
                api::RemovePodSandboxRequest {
                    pod_sandbox_id: id.into(),
                },
            )
            .await?;
        Ok(())
    }

    /// `crictl inspectp`: the status plus the verbose `info` map.
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatusResponse, CriError> {
        self.runtime(
            "PodSandboxStatus",
            api::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            },
        )
        .await
    }

    pub async fn list_pod_sandboxes(&self) -> Result<Vec<api::PodSandbox>, CriError> {
        let response: api::ListPodSandboxResponse = self
            .runtime("ListPodSandbox", api::ListPodSandboxRequest { filter: None })
            .await?;
        Ok(response.items)
    }

    /// `crictl create`: returns the container id.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        container: &ContainerSpec,
        pod: &PodSpec,
    ) -> Result<String, CriError> {
        let request = api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(container.to_cri()),
            sandbox_config: Some(pod.to_cri()),
        };
        let response: api::CreateContainerResponse = self.runtime("CreateContainer", request).await?;
        Ok(response.container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), CriError> {
        let _: api::StartContainerResponse = self
            .runtime(
                "StartContainer",
                api::StartContainerRequest {
                    container_id: id.into(),
                },
            )
            .await?;
        Ok(())
    }

    pub async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<(), CriError> {
        let request = api::StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_seconds,
        };
        let _: api::StopContainerResponse = self.runtime("StopContainer", request).await?;
        Ok(())
    }

    /// `crictl exec -s <id> <cmd...>`: the command's exit code and output.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_seconds: i64,
    ) -> Result<api::ExecSyncResponse, CriError> {
        let request = api::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|c| c.to_string()).collect(),
            timeout: timeout_seconds,
        };
        self.runtime("ExecSync", request).await
    }

    /// `crictl update --cpu-quota ... --memory ...`: new limits for a running container.
    pub async fn update_container_resources(
        &self,
        id: &str,
        resources: crate::render::cri::Resources,
    ) -> Result<(), CriError> {
        let request = api::UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(resources.to_cri()),
            ..Default::default()
        };
        let _: api::UpdateContainerResourcesResponse =
            self.runtime("UpdateContainerResources", request).await?;
        Ok(())
    }

    /// `crictl stats <id>`: the container's CPU and memory use as the runtime reports it.
    pub async fn container_stats(&self, id: &str) -> Result<api::ContainerStats, CriError> {
        let request = api::ContainerStatsRequest {
            container_id: id.into(),
        };
        let response: api::ContainerStatsResponse = self.runtime("ContainerStats", request).await?;
        response.stats.ok_or_else(|| CriError::Info {
            what: format!("container {id}'s stats"),
            reason: "ContainerStats answered without stats".into(),
        })
    }

    /// `crictl inspect`: the status plus the verbose `info` map.
    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatusResponse, CriError> {
        self.runtime(
            "ContainerStatus",
            api::ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            },
        )
        .await
    }

    /// `crictl inspecti`: `None` when the CRI does not know the image.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError> {
        let request = api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        let response: api::ImageStatusResponse = self.image("ImageStatus", request).await?;
        Ok(response.image)
    }

    pub async fn list_images(&self) -> Result<Vec<api::Image>, CriError> {
        let response: api::ListImagesResponse = self
            .image("ListImages", api::ListImagesRequest { filter: None })
            .await?;
        Ok(response.images)
    }

    /// `crictl rmi`: removes an image by reference or id.
    pub async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        let request = api::RemoveImageRequest {
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
        };
        let _: api::RemoveImageResponse = self.image("RemoveImage", request).await?;
        Ok(())
    }

    /// `crictl pull`: returns the image ref.
    pub async fn pull_image(&self, image: &str) -> Result<String, CriError> {
        let request = api::PullImageRequest {
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        };
        let response: api::PullImageResponse = self.image("PullImage", request).await?;
        Ok(response.image_ref)
    }

    /// Stops and removes every sandbox (and so its containers) labelled as ours.
    pub async fn remove_all_sandboxes(&self) -> Result<usize, CriError> {
        self.remove_all_sandboxes_but(&Default::default()).await
    }

    /// [`CriClient::remove_all_sandboxes`] except those in `keep` (by id).
    pub async fn remove_all_sandboxes_but(
        &self,
        keep: &std::collections::HashSet<String>,
    ) -> Result<usize, CriError> {
        let mut removed = 0;
        for sandbox in self.list_pod_sandboxes().await? {
            if sandbox.labels.get("kata-harness").map(String::as_str) != Some("true")
                || keep.contains(&sandbox.id)
            {
                continue;
            }
            self.stop_pod_sandbox(&sandbox.id).await?;
            self.remove_pod_sandbox(&sandbox.id).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// What the CRI says about the runtime of one sandbox or container
/// (the verbose `info` of `PodSandboxStatus` / `ContainerStatus`, key `info`, JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeInfo {
    /// `runtimeType`: the containerd shim, e.g. `io.containerd.runc.v2`.
    pub runtime_type: String,
    /// `runtimeHandler` (sandboxes only; containers inherit their sandbox's).
    pub runtime_handler: Option<String>,
    /// `runtimeOptions` as JSON (runc options: `binary_name`, `root`, ...).
    pub runtime_options: Option<Value>,
    pub pid: Option<u32>,
    /// `sandboxID` (containers only).
    pub sandbox_id: Option<String>,
}

impl RuntimeInfo {
    pub fn from_verbose_info(what: &str, info: &HashMap<String, String>) -> Result<Self, CriError> {
        let err = |reason: String| CriError::Info {
            what: what.to_owned(),
            reason,
        };
        let raw = info
            .get("info")
            .ok_or_else(|| err("no \"info\" key (was verbose requested?)".into()))?;
        let json: Value = serde_json::from_str(raw).map_err(|e| err(format!("not JSON: {e}")))?;
        let runtime_type = json
            .get("runtimeType")
            .and_then(Value::as_str)
            .ok_or_else(|| err("no runtimeType".into()))?
            .to_owned();
        let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(RuntimeInfo {
            runtime_type,
            runtime_handler: text("runtimeHandler"),
            runtime_options: json.get("runtimeOptions").filter(|v| !v.is_null()).cloned(),
            pid: json
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            sandbox_id: text("sandboxID"),
        })
    }

    /// The OCI runtime binary named in the runc shim options (`BinaryName`), if any.
    pub fn binary_name(&self) -> Option<&str> {
        self.option("binary_name", "BinaryName")
    }

    /// The OCI runtime state root named in the runc shim options (`Root`), if any.
    pub fn root(&self) -> Option<&str> {
        self.option("root", "Root")
    }

    fn option(&self, snake: &str, pascal: &str) -> Option<&str> {
        let options = self.runtime_options.as_ref()?;
        options
            .get(snake)
            .or_else(|| options.get(pascal))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape of containerd 1.6's ContainerStatus verbose info (trimmed).
    const CONTAINER_INFO: &str = r#"{"sandboxID":"abc","pid":4242,"removing":false,
        "snapshotKey":"k","snapshotter":"overlayfs","runtimeType":"io.containerd.runc.v2",
        "runtimeOptions":{"binary_name":"crun","root":"/tmp/r"},"config":{},"runtimeSpec":{}}"#;

    #[test]
    fn parses_container_info() {
        let info = HashMap::from([("info".to_owned(), CONTAINER_INFO.to_owned())]);
        let parsed = RuntimeInfo::from_verbose_info("container", &info).unwrap();
        assert_eq!(parsed.runtime_type, "io.containerd.runc.v2");
        assert_eq!(parsed.binary_name(), Some("crun"));
        assert_eq!(parsed.root(), Some("/tmp/r"));
        assert_eq!(parsed.pid, Some(4242));
        assert_eq!(parsed.sandbox_id.as_deref(), Some("abc"));
        assert_eq!(parsed.runtime_handler, None);
    }

    #[test]
    fn parses_sandbox_info_with_pascal_case_options() {
        let raw = r#"{"pid":1,"runtimeHandler":"kata","runtimeType":"io.containerd.kata.v2",
            "runtimeOptions":{"BinaryName":"x"}}"#;
        let info = HashMap::from([("info".to_owned(), raw.to_owned())]);
        let parsed = RuntimeInfo::from_verbose_info("sandbox", &info).unwrap();
        assert_eq!(parsed.runtime_handler.as_deref(), Some("kata"));
        assert_eq!(parsed.binary_name(), Some("x"));
    }

    #[test]
    fn missing_runtime_type_is_an_error() {
        let info = HashMap::from([("info".to_owned(), "{}".to_owned())]);
        let err = RuntimeInfo::from_verbose_info("sandbox", &info).unwrap_err();
        assert!(err.to_string().contains("runtimeType"), "{err}");
        let err = RuntimeInfo::from_verbose_info("sandbox", &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("verbose"), "{err}");
    }
}
