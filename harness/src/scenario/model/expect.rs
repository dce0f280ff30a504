//! What a row must observe (`expect:`), and the gRPC code names an expected error uses.

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// CRI `info.runtimeType` of the sandbox and container, and containerd's own record.
    #[serde(default)]
    pub runtime_type: Option<String>,
    /// `BinaryName` in the runtime options the CRI reports.
    #[serde(default)]
    pub binary_name: Option<String>,
    /// The OCI runtime that holds the container state (`runc` or `crun`): proven by asking
    /// both binaries for the state of the sandbox and container.
    #[serde(default)]
    pub oci_runtime: Option<String>,
    /// A VMM process (qemu, cloud-hypervisor, firecracker) is a child of the shim.
    #[serde(default)]
    pub vmm_process: Option<bool>,
    /// `uname -r` inside the container (CRI ExecSync) against the node's kernel: `differs`
    /// (a VM guest's kernel: Kata) or `host` (a plain container: the runc control). Needs
    /// `sandbox.container: true`.
    #[serde(default)]
    pub guest_kernel: Option<GuestKernel>,
    /// Getting into the Kata VM: `kata-runtime exec <sandbox>` opens the
    /// agent's debug console, where `uname -r` prints the guest's kernel (not the node's).
    #[serde(default)]
    pub guest_console: Option<bool>,
    /// The action must fail with this CRI error, and leave no sandbox behind.
    #[serde(default)]
    pub error: Option<ExpectError>,
    /// Whether the imported image is visible through the CRI image service.
    #[serde(default)]
    pub cri_visible: Option<bool>,
    /// `pull` rows: the image arrived (and ran, for CRI pulls). `sandbox_image` rows: false
    /// means no image was pulled (no `/images/create` event while the sandbox started).
    #[serde(default)]
    pub pulled: Option<bool>,
    /// A node command (`ctr images pull`) must exit non-zero with this in its stderr.
    #[serde(default)]
    pub command_error: Option<String>,
    /// The action must finish (success or the expected error) within this many seconds.
    #[serde(default)]
    pub within_seconds: Option<u64>,
    /// `node:` rows without an action: the node's containerd must exit at start, with this
    /// text in its log (e.g. a config schema it does not read).
    #[serde(default)]
    pub start_error: Option<String>,
    /// Kubernetes rows: the API refuses the object with a message containing this text.
    #[serde(default)]
    pub rejected: Option<String>,
    /// Kubernetes rows: the pod stays Pending and gets an event with this reason.
    #[serde(default)]
    pub event: Option<String>,
}

/// Which kernel a container must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestKernel {
    /// Not the node's kernel (the container runs in a VM).
    Differs,
    /// The node's own kernel.
    Host,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectError {
    /// gRPC code name, e.g. `Unknown`, `NotFound`.
    pub code: String,
    /// A substring of the status message.
    pub message: String,
}

/// gRPC code names as tonic spells them.
pub fn grpc_code(name: &str) -> Option<tonic::Code> {
    use tonic::Code::*;
    let codes = [
        Ok,
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    ];
    codes.into_iter().find(|c| format!("{c:?}") == name)
}
