//! `kata-harness --kata-release` end to end: the binary as a user runs it, against the test
//! server or a closed port.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kata_harness::artifacts::kata_release::ARCH;

use super::server::{Reply, Server};
use super::{release, tarball, ASSET, VERSION};

/// `kata-harness <args>` as a user runs it, isolated: a temp cache (`KATA_HARNESS_CACHE`) and
/// lock, GitHub's layout mirrored at `github_url`, and no Kata from the environment.
fn cli(work: &Path, github_url: &str, args: &[&str], extra_env: &[(&str, &str)]) -> std::process::Output {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(env!("CARGO_BIN_EXE_kata-harness"))
        .current_dir(&repo)
        .env("KATA_HARNESS_CACHE", work.join("cache"))
        .env("KATA_HARNESS_GITHUB_URL", github_url)
        .env("KATA_HARNESS_KATA_RELEASE_LOCK", work.join("kata-release.lock"))
        .env_remove("KATA_HARNESS_KATA_BUNDLE")
        .env_remove("KATA_HARNESS_DOWNLOAD_STALL_SECONDS")
        .envs(extra_env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A stand-in containerd directory, so that `--target local` plans without a real one.
fn stand_in_containerd(work: &Path) -> PathBuf {
    let dir = work.join("containerd");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("containerd");
    std::fs::write(
        &script,
        "#!/bin/sh\necho containerd github.com/containerd/containerd 1.6.20 stand-in\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn list_of_a_release_not_cached_exits_2_with_one_line_naming_the_url() {
    let work = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}", closed_port());
    let releases = format!("{base}{}", super::server::KATA_RELEASES);
    let out = cli(
        work.path(),
        &base,
        &[
            "list",
            "--target",
            "local",
            "--containerd",
            "1.6",
            "--kata-release",
            VERSION,
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: --kata-release {VERSION}: Kata release {VERSION} ({ARCH}) is not in the cache yet \
             ({ASSET} from {releases}/{VERSION}/{ASSET}); `kata-harness run --kata-release {VERSION}` \
             downloads it\n"
        )
    );
    assert!(
        !work.path().join("cache/kata/release").exists(),
        "list downloads nothing"
    );
}

#[test]
fn run_against_a_stalled_mirror_exits_2_within_seconds_naming_the_url() {
    let server = Server::start();
    server.set(VERSION, ASSET, Reply::Stall);
    let work = tempfile::tempdir().unwrap();
    let results = work.path().join("results");
    let started = Instant::now();
    let out = cli(
        work.path(),
        &server.github_url(),
        &[
            "run",
            "--target",
            "local",
            "--containerd",
            "1.6",
            "--kata-release",
            VERSION,
            "--results",
            results.to_str().unwrap(),
        ],
        &[("KATA_HARNESS_DOWNLOAD_STALL_SECONDS", "2")],
    );
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let url = format!("{}/{VERSION}/{ASSET}", server.kata_releases());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!("kata release {VERSION}/{ARCH}: downloading {ASSET} (1/1) from {url}"),
        "a progress line per file: {stderr}"
    );
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert_eq!(Some(*errors[0]), lines.last().copied(), "{stderr}");
    assert!(
        errors[0].starts_with(&format!(
            "error: --kata-release {VERSION}: failed to download {ASSET} from {url}: timed out \
             (connect 15s, stalled below 1024 B/s for 2s"
        )),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn list_uses_a_cached_release_for_the_kata_rows() {
    let server = Server::start();
    server.set(VERSION, ASSET, Reply::Body(tarball("good")));
    let work = tempfile::tempdir().unwrap();
    let containerd = stand_in_containerd(work.path());
    let containerd = containerd.to_str().unwrap();
    let list = |extra: &[&str]| {
        let mut args = vec![
            "list",
            "--target",
            "local",
            "--containerd",
            containerd,
            "--filter",
            "cri::kata-handler",
        ];
        args.extend_from_slice(extra);
        cli(work.path(), &server.github_url(), &args, &[])
    };

    // Without the flag (and an empty cache): no Kata, the row is skipped for that reason.
    let out = list(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("(skipped: needs kata: no Kata artifacts"),
        "{stdout}"
    );

    // Fetched into the cache and lock the CLI uses: the Kata row plans, and nothing is
    // downloaded by `list`.
    release(&server.github_url(), work.path()).fetch().unwrap();
    let out = list(&["--kata-release", &format!("v{VERSION}")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The variant is named after the stand-in's directory.
    assert_eq!(stdout, "cri::kata-handler::containerd-containerd\n");
    assert_eq!(server.requests().len(), 1, "only the library's fetch");

    // --kata-release and --kata-bundle name two different Katas.
    let out = list(&["--kata-release", VERSION, "--kata-bundle", "/tmp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
