//! The user-space vsock device under the fault that made Kata's agent channel flaky here: a
//! host client dialling the hybrid vsock socket while the guest's vsock queues are not ready.
//! vhost-device-vsock 0.3.0 as released then ends its vring worker thread and never answers a
//! CONNECT again (scripts/kata-patches/vhost-device-vsock/); the build's patched one must
//! answer once the agent listens.
//!
//! In a Kata boot the window is short (after QEMU hands over the guest's memory, before the
//! queues are set up) and was hit by about one sandbox in 15 here. This test makes it long and
//! certain: its guest init brings the vsock driver up, unloads it (the device is reset: QEMU
//! stops the vhost-user queues, the memory stays mapped), waits 3 s while the client dials
//! every 2 ms, loads it again and starts kata-agent.
//!
//! Real pieces, no shim: the layout's vhost-device-vsock, QEMU (TCG on a host without usable
//! KVM), the layout's guest kernel and initrd with kata-agent, plus a second initramfs archive
//! that replaces /init (the kernel unpacks concatenated archives in order).
//!
//! It runs where the Kata layout ships the user-space vsock backend (scripts/build-kata's
//! `libexec/vhost-device-vsock`) and boots from an initrd; elsewhere (no Kata, or upstream's
//! kata-static, which ships neither) it is skipped with the reason, decided before it runs by
//! [`parts`], whose own trials (`precondition::*`) check that decision against stand-in
//! layouts (libtest-mimic, `harness = false`: see `common/trials.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use kata_harness::scenario::Capabilities;
use kata_harness::wait::{wait_for, Attempt};
use libtest_mimic::Failed;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

#[path = "common/kata_stand_in.rs"]
mod kata_stand_in;
#[path = "common/trials.rs"]
mod trials;
use trials::{block_on, kata_plan, Planned};

/// The agent's ttRPC port (Kata's vSockPort).
const AGENT_PORT: u32 = 1024;
/// A guest boot under TCG on a busy 2-core host takes 5-30 s; the agent listens right after.
const DEADLINE: Duration = Duration::from_secs(180);

/// A child that is killed and reaped however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tail(path: &Path) -> String {
    kata_harness::process::tail_of_file(path, 30)
}

/// The guest's /init for this test: the layout initrd's modules, then a vsock device reset
/// with the queues stopped for 3 s, then kata-agent.
const RESET_INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev 2>/dev/null
while read -r m; do insmod "/lib/modules/$m"; done </modules.order
echo "vsock-reset: driver up; unloading it (device reset, queues stopped)"
busybox rmmod vmw_vsock_virtio_transport || echo "vsock-reset: rmmod failed"
busybox sleep 3
insmod /lib/modules/vmw_vsock_virtio_transport.ko
echo "vsock-reset: driver up again; starting kata-agent"
umount /proc
umount /dev 2>/dev/null
exec /usr/bin/kata-agent
"#;

/// The layout's initrd followed by a newc archive holding only [`RESET_INIT`] as /init.
fn initrd_with_reset_init(layout_initrd: &Path, dir: &Path) -> PathBuf {
    let root = dir.join("overlay-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("init"), RESET_INIT).unwrap();
    std::fs::set_permissions(
        root.join("init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let overlay = Command::new("sh")
        .arg("-c")
        .arg("echo init | cpio --quiet -o -H newc -R 0:0")
        .current_dir(&root)
        .output()
        .expect("cpio runs (scripts/setup installs it)");
    assert!(
        overlay.status.success(),
        "{}",
        String::from_utf8_lossy(&overlay.stderr)
    );
    let mut initrd = std::fs::read(layout_initrd).unwrap();
    initrd.extend_from_slice(&overlay.stdout);
    let path = dir.join("initrd-with-reset.img");
    std::fs::write(&path, initrd).unwrap();
    path
}

/// What the test boots, from the host's Kata.
#[derive(Debug)]
struct Parts {
    /// The layout's `libexec/vhost-device-vsock`.
    daemon: PathBuf,
    qemu: PathBuf,
    kernel: PathBuf,
    /// The layout's initrd, which the test's /init is appended to.
    initrd: PathBuf,
    /// `kvm`, or `tcg` where KVM is not usable.
    accel: &'static str,
}

/// The parts this test needs from the host's Kata, or why it cannot run here.
fn parts(capabilities: &Capabilities) -> Result<Parts, String> {
    let plan = kata_plan(capabilities)?;
    let layout = &plan.layout;
    let daemon = layout.vsock_daemon().ok_or_else(|| {
        format!(
            "{} ships no user-space vsock backend ({}/libexec/vhost-device-vsock; upstream's \
             kata-static has none, scripts/build-kata's layout does): this test is of that backend",
            layout.describe(),
            layout.kata_dir().display()
        )
    })?;
    let kernel = layout
        .kernel()
        .ok_or_else(|| format!("{} has no guest kernel", layout.describe()))?;
    let initrd = layout.initrd().ok_or_else(|| {
        format!(
            "{} boots its guest from an image, not an initrd (share/kata-containers/\
             kata-containers-initrd.img): this test appends its /init to an initrd",
            layout.describe()
        )
    })?;
    Ok(Parts {
        daemon,
        qemu: plan.qemu.clone(),
        kernel,
        initrd,
        accel: if plan.host.no_kvm.is_some() { "tcg" } else { "kvm" },
    })
}

async fn the_agent_answers_a_client_that_dialled_while_the_guest_reset_its_vsock(parts: Parts) {
    let Parts {
        daemon,
        qemu,
        kernel,
        initrd,
        accel,
    } = parts;
    let dir = tempfile::tempdir().unwrap();
    let vhost_socket = dir.path().join("vhost-vsock.sock");
    let hybrid_socket = dir.path().join("kata.hvsock");
    let daemon_log = dir.path().join("vhost-device-vsock.log");
    let console = dir.path().join("console.log");

    let _daemon = Reaped(
        Command::new(&daemon)
            .arg(format!(
                "--vm=guest-cid=3,socket={},uds-path={}",
                vhost_socket.display(),
                hybrid_socket.display()
            ))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&daemon_log).unwrap())
            .spawn()
            .expect("vhost-device-vsock starts"),
    );
    let started = Instant::now();
    wait_for(
        "vhost-device-vsock's vhost-user socket",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || async {
            if vhost_socket.exists() {
                Attempt::Ready(())
            } else {
                Attempt::NotYet(format!("no {} yet", vhost_socket.display()))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", tail(&daemon_log)));

    let _qemu = Reaped(
        Command::new(&qemu)
            .args(["-machine", &format!("q35,accel={accel}"), "-cpu", "max"])
            .args([
                "-m",
                "512M",
                "-smp",
                "1",
                "-nodefaults",
                "-nographic",
                "-no-reboot",
            ])
            // vhost-user needs guest memory the backend can map.
            .args(["-object", "memory-backend-memfd,id=mem,size=512M,share=on"])
            .args(["-numa", "node,memdev=mem"])
            .args([
                "-chardev",
                &format!("socket,id=vsock,path={}", vhost_socket.display()),
            ])
            .args(["-device", "vhost-user-vsock-pci,chardev=vsock"])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(initrd_with_reset_init(&initrd, dir.path()))
            .args(["-append", "console=ttyS0 panic=1 quiet"])
            .args(["-serial", &format!("file:{}", console.display())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("qemu.log")).unwrap())
            .spawn()
            .expect("QEMU starts"),
    );

    // Dial every 2 ms and keep every dial open: many land while the queues are stopped. The
    // first "OK <port>" wins.
    let mut pending: Vec<UnixStream> = Vec::new();
    let mut dials = 0u32;
    let answered = loop {
        if started.elapsed() > DEADLINE {
            break None;
        }
        // (a backlog that stays full, as behind a dead worker, fails the dial at once)
        if let Ok(mut stream) = UnixStream::connect(&hybrid_socket).await {
            if stream
                .write_all(format!("CONNECT {AGENT_PORT}\n").as_bytes())
                .await
                .is_ok()
            {
                dials += 1;
                pending.push(stream);
            }
        }
        let mut answer = None;
        pending.retain(|stream| {
            let mut buf = [0u8; 64];
            match stream.try_read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    answer = Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned());
                    false
                }
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            }
        });
        if let Some(line) = answer.filter(|l| l.starts_with("OK")) {
            break Some(line);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let answered = answered.unwrap_or_else(|| {
        panic!(
            "no CONNECT {AGENT_PORT} was answered within {DEADLINE:?} ({dials} dials, {} still \
             pending)\n--- vhost-device-vsock log:\n{}\n--- guest console:\n{}",
            pending.len(),
            tail(&daemon_log),
            tail(&console)
        )
    });
    assert!(
        answered.starts_with("OK "),
        "the backend answers OK <local port>: {answered}"
    );
    let console_text = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(
        console_text.contains("vsock-reset: driver up again") && !console_text.contains("rmmod failed"),
        "the guest reset its vsock device as planned: {}",
        tail(&console)
    );
}

/// The decision [`parts`] makes, against stand-in layouts: each precondition absent is a skip
/// naming what is missing, and a layout with all of them runs.
mod precondition {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use kata_harness::artifacts::kata::{KataLayout, KataSource};
    use kata_harness::provision::kata::{KataHost, KataPlan};
    use kata_harness::scenario::Capabilities;
    use libtest_mimic::Failed;

    use super::kata_stand_in::CONFIGURATION;

    /// A layout as `KataLayout::open` requires it, plus `extra` files (under `opt/kata`).
    fn layout(dir: &Path, extra: &[&str]) -> KataLayout {
        for rel in [
            "bin/containerd-shim-kata-v2",
            "share/defaults/kata-containers/configuration-qemu.toml",
            "share/kata-containers/vmlinux.container",
            "libexec/virtiofsd",
        ]
        .iter()
        .chain(extra)
        {
            let path = dir.join("opt/kata").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let text = match *rel {
                "share/defaults/kata-containers/configuration-qemu.toml" => CONFIGURATION.to_owned(),
                _ => format!("{rel} stand-in\n"),
            };
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        KataLayout::open(dir, KataSource::Bundle(dir.to_owned())).expect("a complete stand-in layout")
    }

    /// What a host with vhost_vsock and KVM would probe for `layout` (so that a layout without
    /// the user-space backend still plans, as upstream's kata-static does there).
    fn capabilities(layout: KataLayout) -> Capabilities {
        let host = KataHost {
            no_kvm: None,
            vhost_vsock: true,
            vhost_net: true,
            syslog: true,
            qemu: Some("/usr/bin/qemu-system-x86_64".into()),
            node: kata_harness::provision::kata::NodeKind::Local,
        };
        let plan = KataPlan::new(layout, host, kata_harness::artifacts::kata::KataRuntime::Go)
            .expect("plans on a host with vhost_vsock");
        Capabilities {
            kata_conditions: plan.conditions.clone(),
            kata: Some(plan),
            kata_absent: None,
            ..Capabilities::without_kata("no runtime-rs here")
        }
    }

    fn expect_skip(capabilities: &Capabilities, naming: &str) -> Result<(), Failed> {
        match super::parts(capabilities) {
            Err(reason) if reason.contains(naming) => Ok(()),
            Err(reason) => Err(format!("skipped, but the reason does not name {naming:?}: {reason}").into()),
            Ok(parts) => Err(format!("would run ({parts:?}), expected a skip naming {naming:?}").into()),
        }
    }

    pub fn no_kata_is_a_skip_with_the_probes_reason() -> Result<(), Failed> {
        let absent = Capabilities::without_kata("no Kata artifacts (run scripts/build-kata)");
        expect_skip(&absent, "no Kata artifacts (run scripts/build-kata)")
    }

    pub fn an_upstream_layout_without_vhost_device_vsock_is_a_skip() -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let upstream = layout(dir.path(), &["share/kata-containers/kata-containers-initrd.img"]);
        expect_skip(&capabilities(upstream), "libexec/vhost-device-vsock")
    }

    pub fn a_layout_booting_from_an_image_is_a_skip() -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let image_only = layout(
            dir.path(),
            &[
                "share/kata-containers/kata-containers.img",
                "libexec/vhost-device-vsock",
            ],
        );
        expect_skip(&capabilities(image_only), "kata-containers-initrd.img")
    }

    pub fn a_layout_with_the_backend_and_an_initrd_runs() -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let built = layout(
            dir.path(),
            &[
                "share/kata-containers/kata-containers-initrd.img",
                "libexec/vhost-device-vsock",
            ],
        );
        let parts = super::parts(&capabilities(built)).map_err(|reason| format!("skipped: {reason}"))?;
        let kata = dir.path().join("opt/kata");
        if parts.daemon != kata.join("libexec/vhost-device-vsock")
            || parts.initrd != kata.join("share/kata-containers/kata-containers-initrd.img")
            || parts.accel != "kvm"
        {
            return Err(format!("not the layout's parts: {parts:?}").into());
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    kata_harness::teardown::install_interrupt_handler();
    let here = parts(&Capabilities::probe_local());
    let check = |name: &str, decision: fn() -> Result<(), Failed>| {
        Planned::needing(&format!("precondition::{name}"), Ok(()), move |()| decision())
    };
    trials::run(vec![
        Planned::needing(
            "the_agent_answers_a_client_that_dialled_while_the_guest_reset_its_vsock",
            here,
            |parts| block_on(the_agent_answers_a_client_that_dialled_while_the_guest_reset_its_vsock(parts)),
        ),
        check(
            "no_kata_is_a_skip_with_the_probes_reason",
            precondition::no_kata_is_a_skip_with_the_probes_reason,
        ),
        check(
            "an_upstream_layout_without_vhost_device_vsock_is_a_skip",
            precondition::an_upstream_layout_without_vhost_device_vsock_is_a_skip,
        ),
        check(
            "a_layout_booting_from_an_image_is_a_skip",
            precondition::a_layout_booting_from_an_image_is_a_skip,
        ),
        check(
            "a_layout_with_the_backend_and_an_initrd_runs",
            precondition::a_layout_with_the_backend_and_an_initrd_runs,
        ),
    ])
}
