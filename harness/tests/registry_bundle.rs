//! A broken registry row (a CA that did not sign the registry's certificate, but the row
//! expects the pull to work) against a real private containerd and docker-registry: the
//! failure bundle must hold the registry log, the rendered hosts.toml and the exact error.

#[path = "common/cli.rs"]
mod cli;
use cli::harness;

#[test]
fn wrong_ca_bundle_has_registry_log_hosts_toml_and_error() {
    let dir = tempfile::tempdir().unwrap();
    let suites = dir.path().join("suites");
    std::fs::create_dir_all(&suites).unwrap();
    std::fs::write(
        suites.join("broken.yaml"),
        "suite: broken\nrows:\n  - scenario: wrong-ca\n    pull: { registry: tls, ca: wrong, handler: runc }\n    expect: { pulled: true, runtime_type: io.containerd.runc.v2 }\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let out = harness()
        .args(["run", "--target", "local", "--containerd", "1.6", "--suites"])
        .arg(&suites)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = results.join("bundles/broken__wrong-ca__containerd-1.6");
    let read = |f: &str| {
        std::fs::read_to_string(bundle.join(f))
            .unwrap_or_else(|e| panic!("{}: {e}", bundle.join(f).display()))
    };
    let error = read("error.txt");
    assert!(
        error.contains("trial:    broken::wrong-ca::containerd-1.6"),
        "{error}"
    );
    assert!(
        error.contains("x509: certificate signed by unknown authority"),
        "{error}"
    );
    let cri_error = read("cri-error.txt");
    assert!(
        cri_error.contains("x509: certificate signed by unknown authority"),
        "{cri_error}"
    );
    let hosts = read("hosts.toml");
    assert!(
        hosts.contains("server = \"https://10.254.254.254:5443\""),
        "{hosts}"
    );
    assert!(hosts.contains("wrong-ca.crt"), "{hosts}");
    // The registry saw containerd reject its certificate (Go's TLS handshake error line).
    let log = read("registry.log");
    assert!(log.contains("TLS handshake error"), "{log}");
}
