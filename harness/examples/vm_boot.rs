//! `cargo run --example vm_boot -- <image dir>`: boot under TCG, time to SSH, run a command.
#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: vm_boot <image dir>");
    let image = kata_harness::vm::image::Image::open(std::path::Path::new(&dir)).unwrap();
    let run = tempfile::tempdir().unwrap();
    let spec = kata_harness::vm::qemu::VmSpec {
        image,
        accel: kata_harness::vm::accel::Accel::Tcg,
        nested: None,
        memory_mb: 2048,
        cpus: 2,
        run_dir: run.path().to_owned(),
        restore: None,
    };
    let start = std::time::Instant::now();
    let mut vm = kata_harness::vm::qemu::Vm::start(spec).unwrap();
    vm.wait_for_ssh(std::time::Duration::from_secs(240))
        .await
        .unwrap();
    println!("ssh after {:.1}s", start.elapsed().as_secs_f64());
    let out = kata_harness::process::run(
        vm.ssh.command(&["ctr".into(), "version".into()]),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    println!("containerd after {:.1}s", start.elapsed().as_secs_f64());
    vm.stop();
}
