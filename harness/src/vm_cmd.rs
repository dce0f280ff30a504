//! `kata-harness vm up | ssh | down`: a test VM by hand, for debugging.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use kata_harness::provision::BUSYBOX_BINARY;
use kata_harness::vm::{accel, image::Image, qemu, state::KeptVm};

#[derive(Subcommand)]
pub enum VmCommand {
    /// Boot a VM from an image recipe and leave it running.
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
            let image = Image::ensure(repo, &image).context("failed to get the VM image")?;
            let verdict = accel::cached_probe(
                &image.kernel(),
                Path::new(BUSYBOX_BINARY),
                &accel::default_cache(),
            );
            eprintln!("accelerator: {} ({})", verdict.accel.qemu_arg(), verdict.reason);
            let run_dir = std::env::temp_dir().join(format!("kata-harness-vm-{name}"));
            let spec = qemu::VmSpec {
                image: image.clone(),
                accel: verdict.accel,
                memory_mb: 2048,
                cpus: 2,
                run_dir: run_dir.clone(),
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let mut vm = qemu::Vm::start(spec)?;
            runtime.block_on(vm.wait_for_ssh(qemu::boot_deadline(verdict.accel)))?;
            let kept = KeptVm::of(&name, &vm, run_dir);
            let line = vm.ssh.interactive_line();
            vm.detach();
            kept.save()?;
            println!("VM {name} is up: {}\n  kata-harness vm ssh --name {name}\n  {line}\n  kata-harness vm down --name {name}", kept.image);
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
