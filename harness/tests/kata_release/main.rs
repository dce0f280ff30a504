//! The upstream Kata release as a Kata source, against a real HTTP server on 127.0.0.1 that
//! the test starts ([`server`]): the digest recorded in the lock on the first download,
//! nothing downloaded the second time, a tampered, truncated, missing or stalled download
//! refused with nothing installed, a tarball that is no complete layout neither installed nor
//! recorded, the two tarballs of 4.1 in one layout; and the `--kata-release` flag end to end
//! ([`cli`]).
//!
//! The served tarballs are real kata-static tarballs (`tar --zstd` of `./opt/kata`) of a
//! stand-in layout, so the tests take seconds; one test serves the real source build
//! (`scripts/build-kata`) when this machine has it. Every test uses its own cache and lock in
//! a temp dir (the library through `KataRelease`'s fields, the CLI through
//! `KATA_HARNESS_CACHE`), so the machine's cache is untouched.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kata_harness::artifacts::fetch::{FetchError, Limits};
use kata_harness::artifacts::kata::{KataRuntime, KataSource};
use kata_harness::artifacts::kata_release::{KataRelease, KataReleaseError, LockFile, ARCH};
use kata_harness::report::chain;
use sha2::{Digest, Sha256};

mod cli;
#[path = "../common/kata_stand_in.rs"]
mod kata_stand_in;
#[path = "../common/http.rs"]
mod server;

use kata_stand_in::CONFIGURATION;
use server::{Reply, Server};

const VERSION: &str = "3.30.0";
const ASSET: &str = "kata-static-3.30.0-amd64.tar.zst";
/// Where the real source build is (`scripts/build-kata`), for the one test that serves it.
const SOURCE_BUILD: &str = "/var/cache/kata-harness/kata/source";

/// The files `KataLayout::open` requires, plus what lets a host without vhost_vsock plan
/// Kata (a shim naming hybrid_vsock_daemon, vhost-device-vsock, a QEMU), each file distinct.
fn fake_layout(dir: &Path, tag: &str) {
    let kata = dir.join("opt/kata");
    for rel in [
        "bin/containerd-shim-kata-v2",
        "bin/qemu-system-x86_64",
        "share/defaults/kata-containers/configuration-qemu.toml",
        "share/kata-containers/vmlinux.container",
        "share/kata-containers/kata-containers-initrd.img",
        "libexec/virtiofsd",
        "libexec/vhost-device-vsock",
    ] {
        let path = kata.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = format!("# {rel} stand-in ({tag}) hybrid_vsock_daemon\n");
        if rel.ends_with(".toml") {
            text.push_str(CONFIGURATION);
        }
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// `tar --zstd -cf <out> -C <dir> ./opt/kata`, as upstream packs kata-static; the bytes.
fn pack(dir: &Path, out: &Path) -> Vec<u8> {
    let status = Command::new("tar")
        .arg("--zstd")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg("./opt/kata")
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
    std::fs::read(out).unwrap()
}

/// A kata-static tarball of a stand-in layout tagged `tag` (different tags, different bytes).
fn tarball(tag: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    fake_layout(dir.path(), tag);
    pack(dir.path(), &dir.path().join(ASSET))
}

fn sha256_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The release fetched from `github_url` (GitHub's layout) into `<work>/cache` (as `$KATA_HARNESS_CACHE`), locked
/// by `<work>/kata-release.lock`.
fn release(github_url: &str, work: &Path) -> KataRelease {
    KataRelease {
        version: VERSION.into(),
        github_url: github_url.into(),
        lock: work.join("kata-release.lock"),
        cache: work.join("cache/kata/release"),
        limits: Limits {
            connect: Duration::from_secs(5),
            stall: Duration::from_secs(60),
            total: Duration::from_secs(300),
        },
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

/// Nothing installed and nothing left over: no layout dir, no partial download or unpack, no
/// blob but the ones in `blobs`.
fn assert_nothing_installed(release: &KataRelease, blobs: &[&str]) {
    assert!(
        std::fs::symlink_metadata(release.dir()).is_err(),
        "{} exists",
        release.dir().display()
    );
    let tmp = files_under(&release.cache.join("tmp"));
    assert!(tmp.is_empty(), "left in tmp/: {tmp:?}");
    let mut want: Vec<String> = blobs.iter().map(|b| b.to_string()).collect();
    want.sort();
    assert_eq!(files_under(&release.cache.join("blobs/sha256")), want);
    let cached = release.open_cached().unwrap_err().to_string();
    assert!(cached.contains("is not in the cache yet"), "{cached}");
}

#[test]
fn first_download_records_the_digest_and_the_second_downloads_nothing() {
    let server = Server::start();
    let bytes = tarball("good");
    let digest = sha256_of(&bytes);
    server.set(VERSION, ASSET, Reply::Body(bytes.clone()));
    let work = tempfile::tempdir().unwrap();
    let release = release(&server.github_url(), work.path());

    let layout = release.fetch().unwrap();
    assert_eq!(layout.root, release.dir());
    assert_eq!(layout.source, KataSource::Release(VERSION.into()));
    assert_eq!(layout.version, VERSION, "from the manifest the fetch writes");
    assert_eq!(
        std::fs::read_to_string(layout.shim(KataRuntime::Go)).unwrap(),
        "# bin/containerd-shim-kata-v2 stand-in (good) hybrid_vsock_daemon\n"
    );
    let mode = std::fs::metadata(release.dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "the layout is readable by containerd");
    assert_eq!(
        server.requests(),
        vec![format!("GET {}/{VERSION}/{ASSET}", server::KATA_RELEASES)]
    );

    // The lock has the asset's digest; the blob store has the tarball under it.
    let text = std::fs::read_to_string(&release.lock).unwrap();
    assert!(
        text.starts_with("# sha256 of the upstream Kata release tarballs"),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("{VERSION} {ARCH} {ASSET} {digest}\n")),
        "{text}"
    );
    let lock = LockFile::parse(&text, &release.lock).unwrap();
    assert_eq!(lock.get(VERSION, ARCH, ASSET), Some(digest.as_str()));
    let blob = release.cache.join("blobs/sha256").join(&digest);
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);
    assert!(
        files_under(&release.cache.join("tmp")).is_empty(),
        "no partial download"
    );

    // Second fetch, server up: not one request; the lock is unchanged.
    assert_eq!(release.fetch().unwrap(), layout);
    assert_eq!(server.requests().len(), 1, "a second fetch downloaded something");
    assert_eq!(std::fs::read_to_string(&release.lock).unwrap(), text);

    // Server gone: fetching, and opening the cache as `list` does, still work.
    drop(server);
    assert_eq!(release.fetch().unwrap(), layout);
    assert_eq!(release.open_cached().unwrap(), layout);

    // The layout deleted, the blob kept: unpacked again, without a server.
    std::fs::remove_dir_all(release.dir()).unwrap();
    assert_eq!(release.fetch().unwrap(), layout);
}

#[test]
fn a_tampered_tarball_is_refused_with_both_digests_and_nothing_is_installed() {
    let server = Server::start();
    let good = tarball("good");
    let good_digest = sha256_of(&good);
    let bad = tarball("tampered");
    let bad_digest = sha256_of(&bad);
    let work = tempfile::tempdir().unwrap();
    let release = release(&server.github_url(), work.path());
    // The lock has the good digest (as after an earlier download); upstream now serves other
    // bytes.
    let mut lock = LockFile::empty();
    lock.insert(VERSION, ARCH, ASSET, &good_digest);
    lock.save(&release.lock).unwrap();
    let recorded = std::fs::read_to_string(&release.lock).unwrap();
    server.set(VERSION, ASSET, Reply::Body(bad));

    let error = release.fetch().unwrap_err();
    let url = format!("{}/{VERSION}/{ASSET}", server.kata_releases());
    match &error {
        KataReleaseError::Digest {
            asset,
            url: got_url,
            expected,
            actual,
            lock,
        } => {
            assert_eq!(asset, ASSET);
            assert_eq!(got_url, &url);
            assert_eq!(expected, &good_digest);
            assert_eq!(actual, &bad_digest);
            assert_eq!(lock, &release.lock);
        }
        other => panic!("expected a digest error, got {}", chain(other)),
    }
    let message = chain(&error);
    for part in [
        ASSET,
        url.as_str(),
        good_digest.as_str(),
        bad_digest.as_str(),
        "deleted",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert_nothing_installed(&release, &[]);
    assert_eq!(std::fs::read_to_string(&release.lock).unwrap(), recorded);

    // Upstream back to the recorded file: the same cache completes.
    server.set(VERSION, ASSET, Reply::Body(good));
    release.fetch().unwrap();
}

#[test]
fn a_truncated_transfer_fails_in_one_line_and_nothing_is_installed() {
    let server = Server::start();
    server.set(VERSION, ASSET, Reply::Truncated(tarball("good")));
    let work = tempfile::tempdir().unwrap();
    let release = release(&server.github_url(), work.path());

    let error = release.fetch().unwrap_err();
    let message = chain(&error);
    assert!(
        message.starts_with(&format!(
            "failed to download {ASSET} from {}/{VERSION}/{ASSET}: the connection broke off",
            server.kata_releases()
        )),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(matches!(
        error,
        KataReleaseError::Fetch(FetchError::Download { .. })
    ));
    assert_nothing_installed(&release, &[]);
    assert!(!release.lock.exists(), "nothing recorded");
}

#[test]
fn a_release_the_server_does_not_have_fails_naming_the_url() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let release = release(&server.github_url(), work.path());

    let message = chain(&release.fetch().unwrap_err());
    assert!(
        message.starts_with(&format!(
            "failed to download {ASSET} from {}/{VERSION}/{ASSET}: the server answered with an HTTP error",
            server.kata_releases()
        )),
        "{message}"
    );
    assert!(message.contains("404"), "curl's own line is kept: {message}");
    assert_eq!(server.requests().len(), 1);
    assert_nothing_installed(&release, &[]);
    assert!(!release.lock.exists(), "nothing recorded");
}

#[test]
fn a_stalled_server_fails_within_seconds() {
    let server = Server::start();
    server.set(VERSION, ASSET, Reply::Stall);
    let work = tempfile::tempdir().unwrap();
    let mut release = release(&server.github_url(), work.path());
    release.limits.stall = Duration::from_secs(2);

    let started = Instant::now();
    let message = chain(&release.fetch().unwrap_err());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert!(
        message.starts_with(&format!(
            "failed to download {ASSET} from {}/{VERSION}/{ASSET}: timed out (connect 5s, stalled \
             below 1024 B/s for 2s",
            server.kata_releases()
        )),
        "{message}"
    );
    assert_nothing_installed(&release, &[]);
}

#[test]
fn a_tarball_that_is_not_a_complete_layout_is_neither_installed_nor_recorded() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let release = release(&server.github_url(), work.path());
    let url = format!("{}/{VERSION}/{ASSET}", server.kata_releases());

    // No opt/kata at all (a mirror serving the wrong file).
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("opt/other")).unwrap();
    std::fs::write(src.path().join("opt/other/file"), "x").unwrap();
    let status = Command::new("tar")
        .arg("--zstd")
        .arg("-cf")
        .arg(src.path().join("other.tar.zst"))
        .arg("-C")
        .arg(src.path())
        .arg("./opt/other")
        .status()
        .unwrap();
    assert!(status.success());
    server.set(
        VERSION,
        ASSET,
        Reply::Body(std::fs::read(src.path().join("other.tar.zst")).unwrap()),
    );
    let message = chain(&release.fetch().unwrap_err());
    assert_eq!(
        message,
        format!("{ASSET} from {url} is not a kata-static tarball: it has no opt/kata/")
    );
    assert_nothing_installed(&release, &[]);
    assert!(
        !release.lock.exists(),
        "a digest is recorded only for a layout that unpacks"
    );

    // opt/kata without a guest kernel: named, and again nothing installed.
    let src = tempfile::tempdir().unwrap();
    fake_layout(src.path(), "no kernel");
    std::fs::remove_file(
        src.path()
            .join("opt/kata/share/kata-containers/vmlinux.container"),
    )
    .unwrap();
    server.set(
        VERSION,
        ASSET,
        Reply::Body(pack(src.path(), &src.path().join(ASSET))),
    );
    let message = chain(&release.fetch().unwrap_err());
    assert!(
        message.starts_with(&format!(
            "the Kata release {VERSION} from {}/{VERSION}/ is not a complete Kata layout: ",
            server.kata_releases()
        )) && message.contains("a guest kernel"),
        "{message}"
    );
    assert_nothing_installed(&release, &[]);
    assert!(!release.lock.exists());
}

#[test]
fn from_4_1_both_tarballs_unpack_into_one_layout_and_the_go_shim_wins() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let mut release = release(&server.github_url(), work.path());
    release.version = "4.1.0".into();
    let rs = "kata-static-4.1.0-amd64.tar.zst";
    let go = "kata-go-static-4.1.0-amd64.tar.zst";
    assert_eq!(release.assets().unwrap(), [rs, go]);

    // runtime-rs: the whole layout with its own shim; Go: only its shim and configuration.
    let rs_dir = tempfile::tempdir().unwrap();
    fake_layout(rs_dir.path(), "runtime-rs");
    let rs_bytes = pack(rs_dir.path(), &rs_dir.path().join(rs));
    let go_dir = tempfile::tempdir().unwrap();
    for rel in [
        "bin/containerd-shim-kata-v2",
        "share/defaults/kata-containers/configuration-qemu.toml",
    ] {
        let path = go_dir.path().join("opt/kata").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{rel} (go)\n")).unwrap();
    }
    let go_bytes = pack(go_dir.path(), &go_dir.path().join(go));
    server.set("4.1.0", rs, Reply::Body(rs_bytes.clone()));
    server.set("4.1.0", go, Reply::Body(go_bytes.clone()));

    let layout = release.fetch().unwrap();
    assert_eq!(layout.version, "4.1.0");
    assert_eq!(
        std::fs::read_to_string(layout.shim(KataRuntime::Go)).unwrap(),
        "bin/containerd-shim-kata-v2 (go)\n"
    );
    assert!(
        layout.vsock_daemon().is_some(),
        "runtime-rs's files are there too"
    );
    let lock = LockFile::load(&release.lock).unwrap();
    assert_eq!(lock.len(), 2);
    assert_eq!(lock.get("4.1.0", ARCH, rs), Some(sha256_of(&rs_bytes).as_str()));
    assert_eq!(lock.get("4.1.0", ARCH, go), Some(sha256_of(&go_bytes).as_str()));
    assert_eq!(release.fetch().unwrap(), layout);
    assert_eq!(server.requests().len(), 2, "one GET per asset, once");
}

#[test]
fn a_cached_release_is_recorded_into_a_new_lock_without_downloading() {
    let server = Server::start();
    server.set(VERSION, ASSET, Reply::Body(tarball("good")));
    let work = tempfile::tempdir().unwrap();
    let first = release(&server.github_url(), work.path());
    let layout = first.fetch().unwrap();
    drop(server);
    // Another checkout (its own lock) sharing the cache: the blob checked and recorded offline.
    let second = KataRelease {
        lock: work.path().join("second.lock"),
        ..first.clone()
    };
    assert_eq!(second.fetch().unwrap(), layout);
    assert_eq!(
        std::fs::read_to_string(&second.lock).unwrap(),
        std::fs::read_to_string(&first.lock).unwrap()
    );
}

#[test]
fn the_real_source_build_served_as_a_release_installs_and_opens() {
    let source = Path::new(SOURCE_BUILD);
    if !source.join("opt/kata").is_dir() {
        eprintln!(
            "skipped, because there is no source build at {SOURCE_BUILD} (scripts/build-kata makes it)"
        );
        return;
    }
    // Packed as upstream (and `scripts/build-kata --pack`) packs kata-static; zstd's default
    // level rather than -19, so that packing takes seconds.
    let packed = tempfile::tempdir().unwrap();
    let tarball = packed.path().join(ASSET);
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"tar -C "$1" --owner=0 --group=0 --sort=name -cf - ./opt/kata | zstd -q -T0 >"$2""#)
        .args(["sh", SOURCE_BUILD])
        .arg(&tarball)
        .status()
        .unwrap();
    assert!(status.success(), "packing {SOURCE_BUILD} failed");
    let bytes = std::fs::read(&tarball).unwrap();
    let server = Server::start();
    server.set(VERSION, ASSET, Reply::Body(bytes.clone()));
    let work = tempfile::tempdir().unwrap();
    let release = release(&server.github_url(), work.path());

    let layout = release.fetch().unwrap();
    assert_eq!(layout.version, VERSION);
    assert!(
        layout.shim_supports_hybrid_vsock(KataRuntime::Go),
        "the patched shim of the source build"
    );
    assert!(layout.kernel().is_some() && layout.initrd().is_some() && layout.virtiofsd().is_some());
    assert_eq!(
        files_under(&layout.kata_dir()),
        files_under(&source.join("opt/kata")),
        "every file of the build, no more"
    );
    let shim =
        |root: &Path| sha256_of(&std::fs::read(root.join("opt/kata/bin/containerd-shim-kata-v2")).unwrap());
    assert_eq!(shim(&layout.root), shim(source));
    let lock = LockFile::load(&release.lock).unwrap();
    assert_eq!(lock.get(VERSION, ARCH, ASSET), Some(sha256_of(&bytes).as_str()));
}
