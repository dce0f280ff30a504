//! The user-space vsock device under the race that made Kata's agent channel flaky here: a
//! host client dialling the hybrid vsock socket while the guest's driver sets the device up.
//! vhost-device-vsock 0.3.0 as released ends its vring worker thread in that window and never
//! answers a CONNECT again (scripts/kata-patches/vhost-device-vsock/); the build's patched
//! one must answer once the agent listens.
//!
//! Real pieces, no shim: the layout's vhost-device-vsock, QEMU (TCG on a host without usable
//! KVM), the layout's guest kernel and initrd with kata-agent as init, and a client that dials
//! every 2 ms, as Kata's shim would if it did not back off. Needs the Kata layout scripts/setup
//! builds (scripts/build-kata).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kata_harness::scenario::Capabilities;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_answers_a_client_that_dials_while_the_guest_sets_up_its_vsock() {
    let capabilities = Capabilities::probe_local();
    let plan = capabilities.kata.unwrap_or_else(|| {
        panic!(
            "no Kata to test ({}): scripts/setup builds it with scripts/build-kata",
            capabilities.kata_absent.unwrap_or_default()
        )
    });
    let layout = &plan.layout;
    let daemon = layout
        .vsock_daemon()
        .expect("the source build ships libexec/vhost-device-vsock");
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
    while !vhost_socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "vhost-device-vsock made no {} within 10 s: {}",
            vhost_socket.display(),
            tail(&daemon_log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let accel = if plan.host.no_kvm.is_some() { "tcg" } else { "kvm" };
    let _qemu = Reaped(
        Command::new(&plan.qemu)
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
            .arg(layout.kernel().expect("the layout has a guest kernel"))
            .arg("-initrd")
            .arg(layout.initrd().expect("the source build has an initrd"))
            .args(["-append", "console=ttyS0 panic=1 quiet"])
            .args(["-serial", &format!("file:{}", console.display())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("qemu.log")).unwrap())
            .spawn()
            .expect("QEMU starts"),
    );

    // Dial every 2 ms and keep every dial open: some land in the window in which the guest
    // has handed over its memory but not yet its queues. The first "OK <port>" wins.
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
    assert!(
        std::fs::read_to_string(&console)
            .unwrap_or_default()
            .contains("kata-agent-init"),
        "the guest ran the initrd's init: {}",
        tail(&console)
    );
}
