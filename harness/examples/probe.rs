//! `cargo run --example probe -- <kernel>`: the KVM probe verdict, and a TCG probe boot time.
fn main() {
    let kernel = std::env::args().nth(1).expect("usage: probe <kernel>");
    let dir = tempfile::tempdir().unwrap();
    let kernel = std::path::Path::new(&kernel);
    let busybox = std::path::Path::new("/bin/busybox");
    println!(
        "{:?}",
        kata_harness::vm::accel::probe(kernel, busybox, dir.path())
    );
    let tcg = kata_harness::vm::accel::boot_probe(
        kernel,
        busybox,
        dir.path(),
        kata_harness::vm::accel::Accel::Tcg,
        std::time::Duration::from_secs(60),
    );
    println!("TCG probe boot: {tcg:?}");
}
