//! The upstream-release bundle source against a real HTTP server on 127.0.0.1
//! (`common/http.rs`, serving a directory laid out like dl.k8s.io, with a `<binary>.sha256`
//! beside each binary, and logging every GET): every binary verified against its published
//! sha256 on the first download, nothing asked of the network the second time; a wrong,
//! missing or malformed `.sha256` and a truncated binary refused, with nothing installed and
//! nothing left in the cache; an unreachable server named quickly; and the `--k8s-release`
//! flag end to end.
//!
//! The served binaries are stand-ins (shell scripts answering `--version` like kubelet), so the
//! test takes seconds; what is under test is the fetching, verifying and caching, not
//! Kubernetes.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kata_harness::artifacts::fetch::Limits;
use kata_harness::kube::bundle::Bundle;
use kata_harness::kube::release::{kube_arch, Release, ReleaseError, BINARIES};
use kata_harness::kube::KubeError;
use kata_harness::profile::Version;
use kata_harness::report::chain;
use sha2::{Digest, Sha256};

#[path = "common/http.rs"]
mod http;
use http::{Reply, Server};

const VERSION: &str = "v1.20.2";
/// What every release error's message starts with ([`KubeError::Release`]).
const FAILED: &str = "failed to fetch the upstream Kubernetes release: ";

fn arch() -> &'static str {
    kube_arch(std::env::consts::ARCH).unwrap()
}

/// `<root>/release/v1.20.2/bin/linux/<arch>/<binary>`: executable stand-ins, each different,
/// each with `<binary>.sha256` beside it holding its digest (as dl.k8s.io publishes them: the
/// hex digits alone).
fn release_tree(root: &Path) -> PathBuf {
    let dir = root.join("release").join(VERSION).join("bin/linux").join(arch());
    std::fs::create_dir_all(&dir).unwrap();
    for binary in BINARIES {
        let path = dir.join(binary);
        std::fs::write(
            &path,
            format!("#!/bin/sh\n# {binary} stand-in\necho Kubernetes {VERSION}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join(format!("{binary}.sha256")), sha256_of(&path)).unwrap();
    }
    dir
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A release fetched from `k8s_url` (dl.k8s.io's layout) into `cache` (as
/// `$KATA_HARNESS_CACHE/k8s/release`).
fn release(k8s_url: &str, cache: &Path) -> Release {
    Release {
        version: VERSION.into(),
        arch: arch().into(),
        k8s_url: k8s_url.into(),
        cache: cache.join("k8s/release"),
        limits: Limits {
            connect: Duration::from_secs(5),
            stall: Duration::from_secs(60),
            total: Duration::from_secs(300),
        },
    }
}

/// `/release/v1.20.2/bin/linux/<arch>/<file>`, as the server logs it.
fn path_of(file: &str) -> String {
    format!("/release/{VERSION}/bin/linux/{}/{file}", arch())
}

/// Every file under `dir`, relative (symlinks included).
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// What a refused fetch leaves in the cache: no blob, no link, no partial download (the
/// cache's `.lock` only), and nothing that opens as a bundle.
fn assert_nothing_cached(release: &Release) {
    assert_eq!(files_under(&release.cache), [".lock"], "left in the cache");
    assert!(Bundle::open(&release.dir()).is_err());
    assert!(release.open_cached().is_err());
}

/// A release tree served over HTTP, and a work dir for the cache.
struct Fixture {
    /// Held so the served tree lives as long as the test.
    _served: tempfile::TempDir,
    /// The served `<version>/bin/linux/<arch>` dir.
    tree: PathBuf,
    server: Server,
    work: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let served = tempfile::tempdir().unwrap();
        let tree = release_tree(served.path());
        let server = Server::serving_dir(served.path());
        Fixture {
            _served: served,
            tree,
            server,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// The release from this server into `<work>/cache`.
    fn release(&self) -> Release {
        release(&self.server.url(""), &self.work.path().join("cache"))
    }
}

#[test]
fn every_binary_is_verified_against_its_published_sha256_and_the_second_run_asks_nothing() {
    let fx = Fixture::new();
    let release = fx.release();

    let bundle = release.fetch().unwrap();
    assert_eq!(bundle.version, Version::new(1, 20, 2));
    assert_eq!(bundle.label(), "k8s-1.20");
    assert_eq!(bundle.dir, release.dir());
    assert_eq!(
        bundle.pause(),
        None,
        "upstream has no pause: the busybox pause image is used"
    );
    // Each binary's .sha256 first, then the binary.
    let want: Vec<String> = BINARIES
        .iter()
        .flat_map(|b| {
            [
                format!("GET {}", path_of(&format!("{b}.sha256"))),
                format!("GET {}", path_of(b)),
            ]
        })
        .collect();
    assert_eq!(fx.server.requests(), want);
    for binary in BINARIES {
        let digest = sha256_of(&fx.tree.join(binary));
        assert_eq!(sha256_of(&bundle.bin(binary)), digest, "{binary}");
        // Content-addressed: the blob's name is the published digest.
        let target = std::fs::read_link(release.dir().join("bin").join(binary)).unwrap();
        assert_eq!(target.file_name().unwrap().to_string_lossy(), digest);
        let mode = std::fs::metadata(bundle.bin(binary))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{binary}");
    }
    assert!(
        files_under(&release.cache.join("tmp")).is_empty(),
        "no partial downloads"
    );
    // Nothing was recorded anywhere but the cache (no lock file beside it).
    let work: Vec<String> = std::fs::read_dir(fx.work.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(work, ["cache"]);

    // Second run, server up: not one request.
    assert_eq!(release.fetch().unwrap(), bundle);
    assert_eq!(
        fx.server.requests().len(),
        2 * BINARIES.len(),
        "a second fetch asked the network"
    );

    // Server gone: fetching (and opening the cache, as `list` does) still works.
    let Fixture { server, .. } = fx;
    drop(server);
    assert_eq!(release.fetch().unwrap(), bundle);
    assert_eq!(release.open_cached().unwrap(), bundle);
}

#[test]
fn a_binary_that_differs_from_its_published_sha256_is_refused_and_nothing_is_left() {
    let fx = Fixture::new();
    let release = fx.release();
    // kubeadm's .sha256 says another digest than the binary's (a tampered binary reads the same).
    let good = sha256_of(&fx.tree.join("kubeadm"));
    let wrong = hex::encode(Sha256::digest(b"another kubeadm"));
    std::fs::write(fx.tree.join("kubeadm.sha256"), format!("{wrong}  kubeadm\n")).unwrap();

    let error = release.fetch().unwrap_err();
    let url = release.url("kubeadm");
    let KubeError::Release(inner) = &error else {
        panic!("expected a release error, got {}", chain(&error));
    };
    match &**inner {
        ReleaseError::Digest {
            binary,
            url: got_url,
            expected,
            actual,
            published,
        } => {
            assert_eq!(binary, "kubeadm");
            assert_eq!(got_url, &url);
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &good);
            assert_eq!(published, &release.sha256_url("kubeadm"));
        }
        other => panic!("expected a digest error, got {}", chain(other)),
    }
    let message = chain(&error);
    assert_eq!(
        message,
        format!(
            "{FAILED}refused kubeadm from {url}: sha256 {good}, but {url}.sha256 says {wrong}; the \
             download was deleted"
        )
    );
    // kubeadm comes first: nothing at all is installed.
    assert_nothing_cached(&release);

    // The .sha256 right again: the same cache completes.
    std::fs::write(fx.tree.join("kubeadm.sha256"), &good).unwrap();
    release.fetch().unwrap();
}

#[test]
fn a_missing_sha256_is_refused_before_the_binary_is_downloaded() {
    let fx = Fixture::new();
    let release = fx.release();
    std::fs::remove_file(fx.tree.join("kubeadm.sha256")).unwrap();

    let error = release.fetch().unwrap_err();
    let message = chain(&error);
    assert!(
        message.starts_with(&format!(
            "{FAILED}failed to download kubeadm.sha256 from {}: the server answered with an HTTP error",
            release.sha256_url("kubeadm")
        )),
        "{message}"
    );
    assert!(message.contains("404"), "curl's own line is kept: {message}");
    assert!(matches!(&error, KubeError::Release(e) if matches!(**e, ReleaseError::Download { .. })));
    // The binary was never asked for.
    assert_eq!(
        fx.server.requests(),
        [format!("GET {}", path_of("kubeadm.sha256"))]
    );
    assert_nothing_cached(&release);
}

#[test]
fn a_malformed_sha256_is_refused_naming_its_url_and_what_it_held() {
    let fx = Fixture::new();
    let release = fx.release();
    let good = sha256_of(&fx.tree.join("kubeadm"));
    for (held, problem) in [
        (
            "<html>Moved</html>\n".to_owned(),
            "expected 64 hex digits first, found \"<html>Moved</html>\\n\"",
        ),
        (good[..40].to_owned(), "expected 64 hex digits first"),
        (format!("{good}  kubelet\n"), "it names another file than kubeadm"),
        (String::new(), "expected one line, found 0"),
    ] {
        std::fs::write(fx.tree.join("kubeadm.sha256"), &held).unwrap();
        let error = release.fetch().unwrap_err();
        let message = chain(&error);
        let sha_url = release.sha256_url("kubeadm");
        assert!(
            message.starts_with(&format!(
                "{FAILED}refused kubeadm: {sha_url} is not a published sha256 ("
            )),
            "{held:?}: {message}"
        );
        assert!(message.contains(problem), "{held:?}: {message}");
        assert!(message.ends_with("); nothing was downloaded"), "{message}");
        assert!(matches!(&error, KubeError::Release(e) if matches!(**e, ReleaseError::Checksum { .. })));
        assert_nothing_cached(&release);
    }
    assert!(
        !fx.server
            .requests()
            .contains(&format!("GET {}", path_of("kubeadm"))),
        "the binary was never asked for: {:?}",
        fx.server.requests()
    );
}

#[test]
fn a_truncated_binary_is_refused_and_nothing_is_left() {
    let fx = Fixture::new();
    let release = fx.release();
    let body = std::fs::read(fx.tree.join("kubeadm")).unwrap();
    fx.server.set_path(&path_of("kubeadm"), Reply::Truncated(body));

    let error = release.fetch().unwrap_err();
    let message = chain(&error);
    assert!(
        message.starts_with(&format!(
            "{FAILED}failed to download kubeadm from {}: the connection broke off",
            release.url("kubeadm")
        )),
        "{message}"
    );
    assert_nothing_cached(&release);
}

#[test]
fn a_cached_blob_is_linked_again_after_reading_only_its_published_sha256() {
    let fx = Fixture::new();
    let release = fx.release();
    release.fetch().unwrap();
    let asked = fx.server.requests().len();
    std::fs::remove_file(release.dir().join("bin/kubelet")).unwrap();
    assert!(release.open_cached().is_err(), "a missing link is not cached");

    release.fetch().unwrap();
    assert_eq!(
        fx.server.requests()[asked..],
        [format!("GET {}", path_of("kubelet.sha256"))]
    );
    assert_eq!(
        sha256_of(&release.dir().join("bin/kubelet")),
        sha256_of(&fx.tree.join("kubelet"))
    );
}

#[test]
fn an_unreachable_server_fails_within_seconds_naming_the_url() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let work = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{closed}");
    let release = release(&base, &work.path().join("cache"));
    let started = Instant::now();
    let error = release.fetch().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let message = chain(&error);
    assert!(
        message.contains(&format!(
            "failed to download kubeadm.sha256 from {base}/release/{VERSION}/bin/linux/{}/kubeadm.sha256: unreachable",
            arch()
        )),
        "{message}"
    );
    assert!(matches!(&error, KubeError::Release(e) if matches!(**e, ReleaseError::Download { .. })));
    assert_nothing_cached(&release);
}

#[test]
fn a_release_the_server_does_not_have_is_an_http_error() {
    let fx = Fixture::new();
    let mut release = fx.release();
    release.version = "v1.99.0".into();
    let message = chain(&release.fetch().unwrap_err());
    assert!(
        message.contains(&format!(
            "failed to download kubeadm.sha256 from {}/release/v1.99.0/bin/linux/{}/kubeadm.sha256: the server answered with an HTTP error",
            fx.server.url(""),
            arch()
        )),
        "{message}"
    );
    assert!(message.contains("404"), "curl's own line is kept: {message}");
    assert_eq!(fx.server.requests().len(), 1);
    assert_nothing_cached(&release);
}

/// `kata-harness <subcommand>` as a user runs it, isolated: a temp cache, the
/// cluster suite only, and a stand-in containerd so that `--target local` plans without one.
fn cli(work: &Path, k8s_url: &str, subcommand: &str, extra: &[&str]) -> std::process::Output {
    let containerd = work.join("containerd");
    std::fs::create_dir_all(&containerd).unwrap();
    let script = containerd.join("containerd");
    std::fs::write(
        &script,
        "#!/bin/sh\necho containerd github.com/containerd/containerd 1.6.20 stand-in\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(env!("CARGO_BIN_EXE_kata-harness"))
        .current_dir(&repo)
        .env("KATA_HARNESS_CACHE", work.join("cache"))
        .env("KATA_HARNESS_K8S_URL", k8s_url)
        .env_remove("KATA_HARNESS_K8S_BUNDLE")
        .args([subcommand, "--target", "local", "--containerd"])
        .arg(&containerd)
        .arg("--suites")
        .arg(repo.join("suites/kubernetes.yaml"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn cli_unreachable_release_is_an_input_error_within_seconds() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let work = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{closed}");
    let started = Instant::now();
    let results = work.path().join("results");
    let results = results.to_str().unwrap();
    let out = cli(
        work.path(),
        &base,
        "run",
        &["--k8s-release", VERSION, "--results", results],
    );
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("error: --k8s-release {VERSION}: failed to fetch the upstream Kubernetes release: failed to download kubeadm.sha256 from {base}/release/")),
        "{stderr}"
    );
    assert!(last.contains("unreachable"), "{stderr}");
}

#[test]
fn cli_lists_a_cached_release_and_names_one_that_is_not() {
    let fx = Fixture::new();
    let work = &fx.work;
    let server = fx.server;

    // `list` never downloads: before the first `run`, it says how to get the release.
    let out = cli(work.path(), &server.url(""), "list", &["--k8s-release", VERSION]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not in the cache yet"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`kata-harness run --k8s-release {VERSION}` downloads it"
        )),
        "{stderr}"
    );
    assert!(server.requests().is_empty());

    // Fetched into the same cache the CLI uses: the cluster variant is k8s-1.20.
    release(&server.url(""), &work.path().join("cache"))
        .fetch()
        .unwrap();
    let out = cli(work.path(), &server.url(""), "list", &["--k8s-release", "1.20.2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("kubernetes::system-pods-on-runc::k8s-1.20"),
        "{stdout}"
    );

    // --k8s-release and --k8s-bundle name two different bundles.
    let out = cli(
        work.path(),
        &server.url(""),
        "list",
        &["--k8s-release", VERSION, "--k8s-bundle", "/tmp"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
