//! `results.html` in a real headless browser (Debian's chromium): a run with a passing and a
//! failing row and a critest trial of two specs in two containerd variants writes it beside
//! JUnit and JSON; the page loads from the file with no network and no script error, its
//! matrix cells stand for every result of `results.json` (a critest trial's cell shows its
//! specs' counts), every in-page link lands on a row or a node, every bundle link on a file;
//! and its screenshot is kept (`$CARGO_TARGET_TMPDIR/html-report.png`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[path = "common/cli.rs"]
mod cli;
use cli::harness;

const SUITE: &str = r#"suite: cri
rows:
  - scenario: default-handler
    sandbox: { container: true }
    expect: { runtime_type: io.containerd.runc.v2, oci_runtime: runc }
  - scenario: expects-kata-gets-runc
    about: "fails on purpose: the report must show it with its bundle"
    sandbox: { container: true }
    expect: { runtime_type: io.containerd.kata.v2 }
  - scenario: critest-hostipc
    about: "two critest specs (and the digest spec, skipped offline): one matrix cell with their counts"
    critest: { handler: runc, focus: "HostIpc is" }
    expect: {}
"#;

/// Chromium headless as root on a closed network: no sandbox (root), no background
/// connections, an empty profile of its own.
fn chromium(profile: &Path, args: &[String]) -> std::process::Output {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args);
    kata_harness::process::run_unchecked(&mut command, Duration::from_secs(120))
        .expect("chromium runs (scripts/setup installs it)")
}

/// The value of `name="..."` in the first tag that has it.
fn attribute(dom: &str, name: &str) -> Option<String> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    let end = start + dom[start..].find('"')?;
    Some(dom[start..end].to_owned())
}

#[test]
fn the_html_report_loads_in_chromium_with_a_cell_per_trial() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("cri.yaml");
    std::fs::write(&suite, SUITE).unwrap();
    let results = dir.path().join("results");
    let out = harness()
        .args(["run", "--target", "local", "--containerd", "1.6,2.1", "--suites"])
        .arg(&suite)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "one row fails on purpose:\n{stderr}");
    assert!(stderr.contains("results.html"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("results.json")).unwrap()).unwrap();
    let trials = json["trials"].as_array().unwrap();
    let specs = trials
        .iter()
        .filter(|t| t["scenario"] == "critest-hostipc" && t["variant"] == "containerd-2.1")
        .count();
    // The two focused specs, and the digest spec that is skipped offline (our reason).
    assert_eq!(specs, 3, "{trials:?}");
    let trials = trials.len();
    assert_eq!(trials, 10);

    let page = results.join("results.html");
    let url = format!("file://{}", page.display());
    let profile = dir.path().join("chromium-profile");
    let loaded = chromium(&profile, &["--dump-dom".into(), url.clone()]);
    let dom = String::from_utf8_lossy(&loaded.stdout);
    let console = String::from_utf8_lossy(&loaded.stderr);
    assert!(loaded.status.success(), "{console}");
    assert_eq!(
        attribute(&dom, "data-checked").as_deref(),
        Some("yes"),
        "the script ran:\n{console}"
    );
    assert_eq!(attribute(&dom, "data-errors").as_deref(), Some("0"), "{console}");
    assert!(!console.contains("Uncaught"), "{console}");
    // 3 scenarios x 2 variants; the cells stand for all 10 results, the critest trial's cell
    // for its three specs.
    assert_eq!(attribute(&dom, "data-cells").as_deref(), Some("6"));
    assert_eq!(attribute(&dom, "data-results"), Some(trials.to_string()));
    assert_eq!(
        dom.matches("data-results=\"3\" data-counts=\"2 passed, 1 skipped\"")
            .count(),
        2,
        "{dom}"
    );
    assert!(
        dom.contains("<tr data-runtime=\"runc\">"),
        "the time per runtime: {dom}"
    );
    assert_eq!(attribute(&dom, "data-broken-links").as_deref(), Some("0"));
    // The failing row's bundle, linked relatively, is there beside the page.
    let bundle_links: Vec<&str> = dom
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with("bundles/"))
        .collect();
    assert!(
        bundle_links.iter().any(|l| l.ends_with("/reproduce.sh")),
        "{bundle_links:?}"
    );
    for link in &bundle_links {
        assert!(results.join(link).is_file(), "{link} is not in the results dir");
    }
    assert!(dom.contains("expects-kata-gets-runc") && dom.contains("v-failed"));
    assert!(dom.contains("containerd-2.1") && dom.contains("containerd-1.6"));

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = chromium(
        &profile,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,1600".into(),
            url,
        ],
    );
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let png = std::fs::read(&screenshot).expect("the screenshot is kept");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
