//! A fresh clone anywhere: `scripts/setup` in a copy of the checkout with no sources directory
//! beside it, every artifact Debian does not package taken from a local server that serves
//! upstream's URL layout (GitHub releases for cri-tools, Kata and containerd; dl.k8s.io for
//! Kubernetes), packed exactly as upstream packs them. Debian's archive is pointed at a closed
//! port, so nothing comes from it either.
//!
//! * `refuses_*`: a tampered file, a wrong `.sha256`, a 404, a truncated and a stalled download,
//!   each one line naming the URL and what was wrong, a non-zero exit, nothing in the cache
//!   (small stand-in files: these run everywhere);
//! * `says_what_is_missing`: no server and no sources: one line per component, at once;
//! * `installs_from_mirrored_upstream_and_runs_kata_rows`: the mirror serves this machine's own
//!   builds (crictl and critest, the Kata source build, the Kubernetes bundle, containerd 1.7
//!   and 2.1) repacked as upstream's release files, and a Kata 4.1-style pair (`kata-static`
//!   with runtime-rs, the guest and the tools; `kata-go-static` with the Go shim); setup
//!   installs them all, a second setup downloads nothing, and `kata-harness run --target local
//!   --filter cri::kata --containerd 1.7` passes with the report naming the mirror as every
//!   artifact's origin; then `--kata-release 4.1.0` runs both runtimes' handlers from the pair
//!   alone. Skipped, with the reason, where this machine has not built them (scripts/setup does).
//!
//! The pair's Go shim is this machine's Kata 3.30 build (the Go shim of 4.x cannot be built
//! offline), so that Kata row runs a 3.30 shim with 4.1's guest, as a 4.1 release runs its Go
//! shim with the guest of kata-static; its report line says so (the shim's own version).
//!
//! A libtest-mimic harness so that a trial whose precondition is absent is reported skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

use libtest_mimic::{Arguments, Failed, Trial};
use sha2::{Digest, Sha256};

#[path = "common/http.rs"]
mod server;
use server::{Reply, Server};

const CRI_TOOLS: &str = "1.36.0";
const KATA: &str = "3.30.0";
/// The Kata 4.x release whose kata-static holds runtime-rs (setup's kata-rs component).
const KATA_RS: &str = "4.1.0";
const K8S: &str = "v1.20.2";
/// The lines Debian serves (one setup component), then the newest (built from source or
/// released: containerd-new).
const CONTAINERD: [&str; 3] = ["1.7.24", "2.1.9", "2.3.4"];
/// What a Kubernetes release bundle holds, as the harness's own download names it.
use kata_harness::kube::release::BINARIES as K8S_BINARIES;
/// Nothing listens here: Debian's archive and upstream, unreachable.
const CLOSED: &str = "http://127.0.0.1:9";
const COMPONENTS: [&str; 7] = [
    "containerd",
    "containerd-new",
    "crun",
    "cri-tools",
    "kata",
    "kata-rs",
    "k8s",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// This machine's harness cache: where the builds the mirror serves are.
fn machine_cache() -> PathBuf {
    std::env::var_os("KATA_HARNESS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/kata-harness".into())
}

fn cri_tools_path(file: &str) -> String {
    format!("/kubernetes-sigs/cri-tools/releases/download/v{CRI_TOOLS}/{file}")
}
fn kata_path(file: &str) -> String {
    kata_release_path(KATA, file)
}
fn kata_release_path(version: &str, file: &str) -> String {
    format!("/kata-containers/kata-containers/releases/download/{version}/{file}")
}
fn containerd_path(version: &str, file: &str) -> String {
    format!("/containerd/containerd/releases/download/v{version}/{file}")
}
fn k8s_path(binary: &str) -> String {
    format!("/release/{K8S}/bin/linux/amd64/{binary}")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The checkout's files (tracked and new, not ignored) copied into `<dir>/kata-harness`, with
/// nothing beside it: what a user's fresh clone holds.
fn fresh_clone(dir: &Path) -> PathBuf {
    let clone = dir.join("kata-harness");
    std::fs::create_dir_all(&clone).unwrap();
    // One tar of the listed files; a tracked file deleted in the working tree is skipped.
    let copy = format!(
        "git ls-files -z --cached --others --exclude-standard \
         | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C '{}'",
        clone.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(copy)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "copying the checkout: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(clone.join("scripts/setup").is_file());
    assert!(!dir.join("shared").exists());
    clone
}

/// `scripts/setup` in `clone` with its own cache, the base URLs at `base`, Debian's archive
/// unreachable and `skip` components skipped; no sources directory, no bundles of the user's.
fn setup(clone: &Path, cache: &Path, base: &str, skip: &[&str]) -> Output {
    let mut cmd = Command::new(clone.join("scripts/setup"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KATA_HARNESS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("KATA_HARNESS_CACHE", cache)
        .env("KATA_HARNESS_GITHUB_URL", base)
        .env("KATA_HARNESS_K8S_URL", base)
        .env("KATA_HARNESS_DEBIAN_MIRROR", format!("{CLOSED}/debian"))
        .env("KATA_HARNESS_DOWNLOAD_STALL_SECONDS", "3")
        .env("KATA_HARNESS_SKIP", skip.join(","))
        .current_dir(clone)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir` (symlinks included), relative: what a failed setup left.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found
}

/// A tar.gz of files `(name, content)`, executable, at the top level (as cri-tools packs
/// crictl) or under a prefix (`bin/`, as containerd packs its binaries).
fn tar_gz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, name, content.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn script(text: &str) -> Vec<u8> {
    format!("#!/bin/sh\n{text}\n").into_bytes()
}

/// Serves a small stand-in cri-tools release (scripts that print a version) with correct
/// `.sha256` files: the refusal trials change one reply each.
fn serve_stand_in_cri_tools(server: &Server) -> Vec<u8> {
    let crictl = tar_gz(&[("crictl", script("echo crictl version v1.36.0"))]);
    let critest = tar_gz(&[("critest", script("echo critest"))]);
    for (name, body) in [("crictl", &crictl), ("critest", &critest)] {
        let file = format!("{name}-v{CRI_TOOLS}-linux-amd64.tar.gz");
        server.set_path(&cri_tools_path(&file), Reply::Body(body.clone()));
        server.set_path(
            &cri_tools_path(&format!("{file}.sha256")),
            Reply::Body(sha256_hex(body).into_bytes()),
        );
    }
    crictl
}

/// One refused download: setup exits non-zero with one line naming `url` and `what`, and the
/// cache holds no file.
fn assert_refused(out: &Output, cache: &Path, url: &str, what: &str) -> Result<(), Failed> {
    let text = stderr(out);
    if out.status.success() {
        return Err(format!("setup passed although {url} should be refused:\n{text}").into());
    }
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(url) && l.contains(what))
        .collect();
    if lines.len() != 1 {
        return Err(format!("wanted one line naming {url} and {what:?}, got {lines:?}:\n{text}").into());
    }
    let left = files_under(cache);
    if !left.is_empty() {
        return Err(format!("the refused download left files in the cache: {left:?}\n{text}").into());
    }
    Ok(())
}

/// Skipping everything but `component`.
fn skip_all_but(component: &str) -> Vec<&'static str> {
    COMPONENTS.into_iter().filter(|c| *c != component).collect()
}

fn refuses_a_tampered_crictl() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let clone = fresh_clone(dir.path());
    let server = Server::start();
    let crictl = serve_stand_in_cri_tools(&server);
    let file = format!("crictl-v{CRI_TOOLS}-linux-amd64.tar.gz");
    let mut tampered = crictl.clone();
    *tampered.last_mut().unwrap() ^= 0xff;
    server.set_path(&cri_tools_path(&file), Reply::Body(tampered));
    let cache = dir.path().join("cache");
    let out = setup(&clone, &cache, &server.url(""), &skip_all_but("cri-tools"));
    assert_refused(&out, &cache, &server.url(&cri_tools_path(&file)), "refused")
}

fn refuses_a_stalled_critest() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let clone = fresh_clone(dir.path());
    let server = Server::start();
    serve_stand_in_cri_tools(&server);
    let file = format!("critest-v{CRI_TOOLS}-linux-amd64.tar.gz");
    server.set_path(&cri_tools_path(&file), Reply::Stall);
    let cache = dir.path().join("cache");
    let out = setup(&clone, &cache, &server.url(""), &skip_all_but("cri-tools"));
    assert_refused(&out, &cache, &server.url(&cri_tools_path(&file)), "stalled")
}

fn refuses_a_kubelet_whose_sha256_is_wrong() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let clone = fresh_clone(dir.path());
    let server = Server::start();
    for binary in K8S_BINARIES {
        let body = script(&format!("echo Kubernetes {K8S}"));
        let digest = match binary {
            "kubelet" => sha256_hex(b"another kubelet"),
            _ => sha256_hex(&body),
        };
        server.set_path(&k8s_path(binary), Reply::Body(body));
        server.set_path(
            &k8s_path(&format!("{binary}.sha256")),
            Reply::Body(digest.into_bytes()),
        );
    }
    let cache = dir.path().join("cache");
    let out = setup(&clone, &cache, &server.url(""), &skip_all_but("k8s"));
    assert_refused(&out, &cache, &server.url(&k8s_path("kubelet")), "refused")
}

fn refuses_a_containerd_release_that_is_not_there() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let clone = fresh_clone(dir.path());
    let server = Server::start();
    // Its checksum is published, the tarball is not (404).
    let file = format!("containerd-{}-linux-amd64.tar.gz", CONTAINERD[0]);
    let digest = format!("{}  {file}\n", sha256_hex(b"never served"));
    server.set_path(
        &containerd_path(CONTAINERD[0], &format!("{file}.sha256sum")),
        Reply::Body(digest.into_bytes()),
    );
    let cache = dir.path().join("cache");
    let out = setup(&clone, &cache, &server.url(""), &skip_all_but("containerd"));
    assert_refused(
        &out,
        &cache,
        &server.url(&containerd_path(CONTAINERD[0], &file)),
        "HTTP 404",
    )
}

fn refuses_a_truncated_kata_release() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let clone = fresh_clone(dir.path());
    let server = Server::start();
    let file = format!("kata-static-{KATA}-amd64.tar.zst");
    server.set_path(&kata_path(&file), Reply::Truncated(vec![0x28; 1000]));
    let cache = dir.path().join("cache");
    let out = setup(&clone, &cache, &server.url(""), &skip_all_but("kata"));
    assert_refused(&out, &cache, &server.url(&kata_path(&file)), "truncated")?;
    let lock = std::fs::read_to_string(clone.join("kata-release.lock"))?;
    if lock.lines().any(|l| !l.starts_with('#')) {
        return Err(format!("a refused asset was recorded in the lock:\n{lock}").into());
    }
    Ok(())
}

fn says_what_is_missing() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let clone = fresh_clone(dir.path());
    let cache = dir.path().join("cache");
    let out = setup(&clone, &cache, CLOSED, &[]);
    let text = stderr(&out);
    if out.status.success() {
        return Err(format!("setup passed with nothing to fetch from:\n{text}").into());
    }
    let missing: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("setup: missing: "))
        .collect();
    let names = [
        "containerd 1.7.24",
        "containerd 2.3.4:",
        "crun:",
        "crictl + critest",
        "Kata 3.30.0:",
        "Kata 4.1.0 runtime-rs:",
        "Kubernetes v1.20.2",
    ];
    for name in names {
        let lines: Vec<_> = missing.iter().filter(|l| l.contains(name)).collect();
        if lines.len() != 1 || !lines[0].contains("KATA_HARNESS_SKIP=") {
            return Err(format!("wanted one line for {name} saying how to provide it:\n{text}").into());
        }
    }
    if missing.len() != names.len() {
        return Err(format!("wanted {} missing lines:\n{text}", names.len()).into());
    }
    let left = files_under(&cache);
    if !left.is_empty() {
        return Err(format!("nothing should be fetched, the cache has {left:?}").into());
    }
    Ok(())
}

/// runtime-rs built by hand (`scripts/build-kata-rs` leaves `kata-rs/source`), nothing to fetch
/// it from: setup takes it from the cache and links it as the current one (what a clone with
/// no sources beside it, on a machine that built it, needs).
fn takes_a_hand_built_runtime_rs_from_the_cache() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let clone = fresh_clone(dir.path());
    let cache = dir.path().join("cache");
    let shim = cache.join("kata-rs/source-0123/opt/kata/runtime-rs/bin/containerd-shim-kata-v2");
    std::fs::create_dir_all(shim.parent().unwrap())?;
    std::fs::write(&shim, "#!/bin/sh\n")?;
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::os::unix::fs::symlink("source-0123", cache.join("kata-rs/source"))?;
    let out = setup(&clone, &cache, CLOSED, &skip_all_but("kata-rs"));
    let text = stderr(&out);
    if !out.status.success() || !text.contains("Kata runtime-rs: cached (source build") {
        return Err(format!("setup did not take the cached runtime-rs:\n{text}").into());
    }
    let current = std::fs::read_link(cache.join("kata-rs/current"))?;
    if current != Path::new("source") {
        return Err(format!("kata-rs/current points at {current:?}, not source").into());
    }
    Ok(())
}

/// What the mirror serves, from this machine's builds; `Err` names the build that is missing.
struct MachineBuilds {
    cri_tools: PathBuf,
    kata: PathBuf,
    kata_rs: PathBuf,
    k8s: PathBuf,
    containerd: Vec<PathBuf>,
}

impl MachineBuilds {
    fn find() -> Result<MachineBuilds, String> {
        let cache = machine_cache();
        let need = |rel: &str, what: &str| {
            let path = cache.join(rel);
            if path.exists() {
                Ok(path)
            } else {
                Err(format!(
                    "no {what} at {} to serve as its upstream release (scripts/setup builds it)",
                    path.display()
                ))
            }
        };
        let builds = MachineBuilds {
            cri_tools: need("cri-tools/current/bin", "crictl + critest")?,
            kata: need("kata/source/opt/kata", "Kata source build")?,
            kata_rs: need(
                "kata-rs/source/opt/kata",
                "runtime-rs source build (scripts/build-kata-rs)",
            )?,
            k8s: need(&format!("k8s/{K8S}/bin"), "Kubernetes bundle")?,
            containerd: vec![
                need("containerd/1.7/usr/bin", "containerd 1.7")?,
                need("containerd/2.1/usr/bin", "containerd 2.1")?,
                need("containerd/2.3/usr/bin", "containerd 2.3")?,
            ],
        };
        Ok(builds)
    }

    /// Packs each build as upstream publishes it, under upstream's URL layout in `root`.
    fn mirror(&self, root: &Path) {
        let put = |path: &str, body: &[u8]| {
            let file = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, body).unwrap();
        };
        for tool in ["crictl", "critest"] {
            let file = format!("{tool}-v{CRI_TOOLS}-linux-amd64.tar.gz");
            let body = tar_gz(&[(tool, std::fs::read(self.cri_tools.join(tool)).unwrap())]);
            put(&cri_tools_path(&file), &body);
            // cri-tools publishes the digest alone.
            put(
                &cri_tools_path(&format!("{file}.sha256")),
                sha256_hex(&body).as_bytes(),
            );
        }
        // kata-static: a tar of ./opt/kata, zstd-compressed. 4.1's pair: runtime-rs with the
        // guest and tools in kata-static, the Go shim with its configurations in kata-go-static.
        let layout_root = |kata: &Path| kata.parent().unwrap().parent().unwrap().to_owned();
        let pack = |from: &Path, parts: &[&str], version: &str, asset: &str| {
            let target = root.join(kata_release_path(version, asset).trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let status = Command::new("tar")
                .args(["--zstd", "-cf"])
                .arg(&target)
                .arg("-C")
                .arg(from)
                .args(parts)
                .status()
                .unwrap();
            assert!(status.success(), "packing {asset}");
        };
        pack(
            &layout_root(&self.kata),
            &["./opt/kata"],
            KATA,
            &format!("kata-static-{KATA}-amd64.tar.zst"),
        );
        pack(
            &layout_root(&self.kata_rs),
            &["./opt/kata"],
            KATA_RS,
            &format!("kata-static-{KATA_RS}-amd64.tar.zst"),
        );
        pack(
            &layout_root(&self.kata),
            &["./opt/kata/bin", "./opt/kata/share/defaults"],
            KATA_RS,
            &format!("kata-go-static-{KATA_RS}-amd64.tar.zst"),
        );
        for binary in K8S_BINARIES {
            let body = std::fs::read(self.k8s.join(binary)).unwrap();
            put(&k8s_path(binary), &body);
            put(
                &k8s_path(&format!("{binary}.sha256")),
                sha256_hex(&body).as_bytes(),
            );
        }
        for (version, bin) in CONTAINERD.iter().zip(&self.containerd) {
            let file = format!("containerd-{version}-linux-amd64.tar.gz");
            let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(bin)
                .unwrap()
                .flatten()
                .map(|e| {
                    (
                        format!("bin/{}", e.file_name().to_string_lossy()),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
            let body = tar_gz(&refs);
            put(&containerd_path(version, &file), &body);
            // containerd publishes `<digest>  <file>`.
            put(
                &containerd_path(version, &format!("{file}.sha256sum")),
                format!("{}  {file}\n", sha256_hex(&body)).as_bytes(),
            );
        }
    }
}

fn installs_from_mirrored_upstream_and_runs_kata_rows(builds: MachineBuilds) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let mirror = dir.path().join("mirror");
    builds.mirror(&mirror);
    let server = Server::serving_dir(&mirror);
    let base = server.url("");
    let checkout = dir.path().join("checkout");
    let clone = fresh_clone(&checkout);
    let cache = dir.path().join("cache");

    // crun is built from Debian's source, unreachable here: the host's serves.
    let out = setup(&clone, &cache, &base, &["crun"]);
    let text = stderr(&out);
    if !out.status.success() {
        return Err(format!("setup failed:\n{text}").into());
    }
    for said in [
        format!("containerd 1.7.24, 2.1.9: upstream releases from {base}"),
        format!("containerd 2.3.4: upstream release from {base}"),
        format!("crictl + critest {CRI_TOOLS}: upstream release from {base}"),
        format!("Kata {KATA}: upstream release from {base}"),
        format!("Kata {KATA_RS} runtime-rs: upstream release from {base}"),
        format!("Kubernetes {K8S}: upstream release from {base}"),
    ] {
        if !text.contains(&said) {
            return Err(format!("setup did not say {said:?}:\n{text}").into());
        }
    }
    let lock = std::fs::read_to_string(clone.join("kata-release.lock"))?;
    for asset in [
        format!("{KATA} amd64 kata-static-{KATA}-amd64.tar.zst "),
        format!("{KATA_RS} amd64 kata-static-{KATA_RS}-amd64.tar.zst "),
        format!("{KATA_RS} amd64 kata-go-static-{KATA_RS}-amd64.tar.zst "),
    ] {
        if !lock.contains(&asset) {
            return Err(format!("the Kata asset's digest was not recorded ({asset}):\n{lock}").into());
        }
    }

    // A second setup finds everything and downloads nothing.
    let served = server.requests().len();
    let again = setup(&clone, &cache, &base, &["crun"]);
    if !again.status.success() || server.requests().len() != served {
        return Err(format!(
            "the second setup (rc {:?}) made {} requests:\n{}",
            again.status.code(),
            server.requests().len() - served,
            stderr(&again)
        )
        .into());
    }

    let run = |name: &str, args: &[&str]| -> Result<serde_json::Value, Failed> {
        let results = dir.path().join(name);
        let mut run = Command::new(env!("CARGO_BIN_EXE_kata-harness"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KATA_HARNESS_") {
                run.env_remove(key);
            }
        }
        let out = run
            .args(["run", "--target", "local"])
            .args(args)
            .arg("--results")
            .arg(&results)
            .env("KATA_HARNESS_CACHE", &cache)
            .env("KATA_HARNESS_GITHUB_URL", &base)
            .current_dir(&clone)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "kata-harness run {args:?} failed ({:?}):\n{}",
                out.status.code(),
                stderr(&out)
            )
            .into());
        }
        Ok(serde_json::from_str(&std::fs::read_to_string(
            results.join("results.json"),
        )?)?)
    };
    let report = run("results", &["--filter", "cri::kata", "--containerd", "1.7"])?;
    for key in [
        "artifact-kata",
        "artifact-kata-rs",
        "artifact-crictl",
        "artifact-containerd-1.7",
    ] {
        let line = environment_value(&report, key).unwrap_or_default();
        if !line.contains("upstream release") || !line.contains(&base) {
            return Err(format!("the report's {key} is {line:?}, not the mirrored upstream release").into());
        }
    }
    passed_with_runtime(&report, "cri::kata-handler::containerd-1.7", "Go runtime")?;
    passed_with_runtime(
        &report,
        "cri::kata-rs-handler::containerd-1.7",
        "Rust runtime (runtime-rs)",
    )?;

    // The 4.1 pair alone: both runtimes from its two tarballs (cached by setup's kata-rs).
    let served = server.requests().len();
    let pair = run(
        "results-4.1",
        &[
            "--kata-release",
            KATA_RS,
            "--containerd",
            "2.3",
            "--filter",
            "cri::kata",
        ],
    )?;
    for (trial, runtime) in [
        ("cri::kata-handler::containerd-2.3", "Go runtime"),
        ("cri::kata-guest-console::containerd-2.3", "Go runtime"),
        (
            "cri::kata-rs-handler::containerd-2.3",
            "Rust runtime (runtime-rs)",
        ),
        (
            "cri::kata-rs-guest-console::containerd-2.3",
            "Rust runtime (runtime-rs)",
        ),
    ] {
        let conditions = passed_with_runtime(&pair, trial, runtime)?;
        if !conditions.contains(&format!("from Kata {KATA_RS} (upstream release {KATA_RS})")) {
            return Err(format!("{trial} did not run the {KATA_RS} release: {conditions}").into());
        }
    }
    if server.requests().len() != served {
        return Err("--kata-release downloaded what setup had installed".into());
    }
    Ok(())
}

/// `trial` of `report` passed, and its conditions name `runtime`; its conditions, joined.
fn passed_with_runtime(report: &serde_json::Value, trial: &str, runtime: &str) -> Result<String, Failed> {
    let found = report["trials"]
        .as_array()
        .and_then(|trials| trials.iter().find(|t| t["name"] == trial))
        .ok_or_else(|| format!("{trial} did not run: {report}"))?;
    let conditions = found["conditions"].to_string();
    if found["verdict"] != "passed"
        || !conditions.contains(&format!("{runtime}: Kata Containers containerd shim"))
    {
        return Err(format!("{trial} did not pass on the {runtime}: {found}").into());
    }
    Ok(conditions)
}

/// A value of results.json's `run.environment` (a list of `[key, value]` pairs).
fn environment_value(report: &serde_json::Value, key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_json::from_value(report["run"]["environment"].clone()).ok()?;
    pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    // /proc/self belongs to the effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let mut trials = vec![
        Trial::test("refuses_a_tampered_crictl", refuses_a_tampered_crictl),
        Trial::test("refuses_a_stalled_critest", refuses_a_stalled_critest),
        Trial::test(
            "refuses_a_kubelet_whose_sha256_is_wrong",
            refuses_a_kubelet_whose_sha256_is_wrong,
        ),
        Trial::test(
            "refuses_a_containerd_release_that_is_not_there",
            refuses_a_containerd_release_that_is_not_there,
        ),
        Trial::test(
            "refuses_a_truncated_kata_release",
            refuses_a_truncated_kata_release,
        ),
        Trial::test("says_what_is_missing", says_what_is_missing),
        Trial::test(
            "takes_a_hand_built_runtime_rs_from_the_cache",
            takes_a_hand_built_runtime_rs_from_the_cache,
        ),
    ];
    let mirrored = "installs_from_mirrored_upstream_and_runs_kata_rows";
    trials.push(match MachineBuilds::find() {
        Ok(builds) => Trial::test(mirrored, move || {
            installs_from_mirrored_upstream_and_runs_kata_rows(builds)
        }),
        Err(reason) => {
            eprintln!("skipped fresh_clone::{mirrored}: {reason}");
            // Forced to run anyway (--include-ignored), it fails with the reason: never a pass.
            Trial::test(mirrored, move || {
                Err(format!("cannot run here (it is skipped): {reason}").into())
            })
            .with_ignored_flag(true)
        }
    });
    if !root {
        // scripts/setup runs as root (it installs packages): every trial needs it.
        eprintln!("skipped every fresh_clone trial: scripts/setup must run as root");
        trials = trials.into_iter().map(|t| t.with_ignored_flag(true)).collect();
    }
    libtest_mimic::run(&args, trials).exit_code()
}
