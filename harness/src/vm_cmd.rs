//! `kata-harness vm up | ssh | down`: a test VM by hand, for debugging.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use kata_harness::provision::{Settings, Testbed, BUSYBOX_BINARY, BUSYBOX_IMAGE};
use kata_harness::render::cri::{ContainerSpec, PodSpec};
use kata_harness::scenario::Capabilities;
use kata_harness::vm::{accel, image::Image, state::KeptVm};

#[derive(Subcommand)]
pub enum VmCommand {
    /// Boot a VM from an image recipe, provision it as `run` does, and leave it running.
    #[command(after_help = "Example:
  kata-harness vm up --image bookworm
  kata-harness vm ssh --name default -- crictl pods
  kata-harness vm down --name default

Prints crictl lines that work in the guest; an example pod.json and container.json are in
/var/lib/kata-harness/run/ there.")]
    Up {
        #[arg(long, default_value = "bookworm")]
        image: String,
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Open a shell (or run a command) in a VM started by `vm up` or kept by `run --keep`.
    Ssh {
        #[arg(long, default_value = "default")]
        name: String,
        /// A command to run instead of a shell.
        #[arg(trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Stop a VM and remove its overlay.
    Down {
        #[arg(long, default_value = "default")]
        name: String,
    },
}

pub fn run(command: VmCommand, repo: &Path) -> Result<ExitCode> {
    match command {
        VmCommand::Up { image, name } => {
            if KeptVm::load(&name).is_ok() {
                anyhow::bail!("a VM named {name} is already up (kata-harness vm down --name {name})");
            }
            // Kata as a VM row gets it: this host's layout, where the image ships a QEMU.
            let guest_kata = Capabilities::for_vm(&image, repo, &Capabilities::probe_local());
            let image = Image::ensure(repo, &image).context("failed to get the VM image")?;
            let verdict = accel::cached_probe(
                &image.kernel(),
                Path::new(BUSYBOX_BINARY),
                &accel::ProbeStore::for_this_boot(),
            );
            eprintln!("accelerator: {} ({})", verdict.accel.qemu_arg(), verdict.reason);
            eprintln!("booting and provisioning {name} as `run` does (handlers, CNI, images, crictl)...");
            // The same node a VM row gets; `keep_vm` then hands it over instead of stopping it.
            let settings = Settings {
                kata: guest_kata.kata.clone(),
                ..Settings::plain(repo.to_owned())
            };
            let kata_line = match &guest_kata.kata_absent {
                None => format!(
                    "Kata: installed at /opt/kata ({})",
                    guest_kata.kata_conditions.join("; ")
                ),
                Some(why) => format!("Kata: not installed ({why})"),
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let testbed = runtime
                .block_on(Testbed::start_vm(&settings, image, &verdict))
                .context("failed to provision the VM")?;
            let examples = write_examples(&testbed).context("failed to write the example pod")?;
            let handlers: Vec<&str> = testbed.config.runtimes.iter().map(|h| h.name.as_str()).collect();
            let describe = testbed.describe();
            let Some(how) = testbed.keep_vm(&name) else {
                anyhow::bail!("the testbed is not a VM");
            };
            let ssh = format!("kata-harness vm ssh --name {name} --");
            println!(
                "VM {name} is up: {describe}\n  handlers: {} (default {})\n  {kata_line}\n  {ssh} crictl pods\n  {ssh} crictl runp -r crun {}\n  {ssh} crictl create POD_ID {} {}\n  {how}",
                handlers.join(", "),
                testbed.config.default_runtime,
                examples.pod.display(),
                examples.container.display(),
                examples.pod.display(),
            );
            Ok(ExitCode::SUCCESS)
        }
        VmCommand::Ssh { name, command } => {
            let kept = KeptVm::load(&name)
                .with_context(|| format!("no VM named {name} (kata-harness vm up --name {name})"))?;
            let mut cmd = if command.is_empty() {
                kept.ssh().interactive()
            } else {
                kept.ssh().command(&command)
            };
            // Replace this process: the user's terminal talks to ssh directly.
            Err(cmd.exec()).context("failed to run ssh")
        }
        VmCommand::Down { name } => {
            let kept = KeptVm::load(&name).with_context(|| format!("no VM named {name}"))?;
            kept.destroy();
            println!("VM {name} is down");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Example CRI configs on the node, for the crictl lines `vm up` and `up` print.
pub(crate) struct Examples {
    pub(crate) pod: PathBuf,
    pub(crate) container: PathBuf,
}

/// Writes `pod.json` and `container.json` into the node's run dir: a pod in the harness's
/// namespace and cgroup parent (so `vm down` and a later run find its leftovers), and a
/// busybox container from the image the node already has.
pub(crate) fn write_examples(testbed: &Testbed) -> Result<Examples> {
    let logs = testbed.paths.pod_logs.join("example");
    let pod = PodSpec {
        name: "example".into(),
        namespace: "kata-harness".into(),
        uid: "example-uid".into(),
        handler: String::new(),
        log_directory: logs.to_string_lossy().into_owned(),
        cgroup_parent: format!("/{}", testbed.cgroup_parent),
        host_network: false,
        annotations: Default::default(),
        ..PodSpec::default()
    };
    let container = ContainerSpec::sleeping_busybox(BUSYBOX_IMAGE);
    testbed.make_node_dir(&logs)?;
    testbed.make_node_dir(&testbed.paths.node_run_dir)?;
    let put = |name: &str, value: serde_json::Value| -> Result<PathBuf> {
        let local = testbed.paths.run_dir.join(name);
        std::fs::write(&local, serde_json::to_string_pretty(&value)?)?;
        Ok(testbed.put_file(&local)?)
    };
    Ok(Examples {
        pod: put("pod.json", pod.to_crictl_json())?,
        container: put("container.json", container.to_crictl_json())?,
    })
}
