//! Golden tests for registry host configuration: `certs.d/<host>/hosts.toml` (1.5+) and the
//! legacy `registry.configs.tls` / `registry.mirrors` tables (1.3-1.4, golden-only: no such
//! daemon runs here). Regenerate with `UPDATE_GOLDEN=1 cargo test --test render_hosts_golden`.

mod common;

use std::path::Path;

use kata_harness::profile::Version;
use kata_harness::render::hosts::{legacy_registry_toml, HostsToml};

fn check(rendered: &str, golden: &str) {
    common::assert_golden(rendered, golden);
}

#[test]
fn hosts_toml_for_a_private_registry_with_its_ca() {
    let hosts = HostsToml::direct(
        "10.254.254.254:5443",
        "https://10.254.254.254:5443",
        Some(Path::new("/run/kh/pki/ca/ca.crt")),
    );
    check(&hosts.render().unwrap(), "hosts-private-ca.toml");
}

#[test]
fn hosts_toml_for_a_docker_io_mirror() {
    let hosts = HostsToml::mirror(
        "docker.io",
        "https://registry-1.docker.io",
        "https://10.254.254.254:5443",
        Some(Path::new("/run/kh/pki/ca/ca.crt")),
    );
    check(&hosts.render().unwrap(), "hosts-docker-io-mirror.toml");
}

#[test]
fn hosts_toml_for_a_plain_http_registry() {
    let hosts = HostsToml::direct("10.254.254.254:5080", "http://10.254.254.254:5080", None);
    check(&hosts.render().unwrap(), "hosts-plain-http.toml");
}

#[test]
fn legacy_tls_table_for_containerd_1_4() {
    let text = legacy_registry_toml(
        Version::new(1, 4, 13),
        "10.254.254.254:5443",
        "https://10.254.254.254:5443",
        Path::new("/run/kh/pki/ca/ca.crt"),
    )
    .unwrap();
    check(&text, "containerd-1.4-registry-tls.toml");
}

#[test]
fn legacy_tls_table_is_refused_before_1_3_and_from_1_5() {
    for version in [
        Version::new(1, 2, 13),
        Version::new(1, 5, 0),
        Version::new(2, 1, 9),
    ] {
        assert!(legacy_registry_toml(version, "h:5443", "https://h:5443", Path::new("/ca.crt")).is_err());
    }
}
