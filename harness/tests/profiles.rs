//! Profiles: the shipped ones load, the seed's config comes out of `render` line by line, and
//! combinations that cannot work stop the command with exit code 2 before anything starts.

use std::path::{Path, PathBuf};

use kata_harness::profile::file::Profile;
use rstest::rstest;

#[path = "common/cli.rs"]
mod cli;
use cli::harness;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The seed's `cat /etc/containerd/config.toml`, copied verbatim from ../shared/seed (its three
/// `##` lines are the note-taker's comments, not containerd's).
const SEED_CONFIG: &str = include_str!("golden/seed-2020-config.toml");

#[test]
fn render_seed_2020_gives_the_seeds_config_toml_line_by_line() {
    let out = harness()
        .args(["render", "containerd-config", "--profile", "seed-2020"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    let seed: Vec<&str> = SEED_CONFIG
        .lines()
        .filter(|l| !l.trim_start().starts_with("##"))
        .collect();
    let ours: Vec<&str> = rendered.lines().collect();
    for (n, (want, got)) in seed.iter().zip(&ours).enumerate() {
        assert_eq!(got, want, "line {} of the seed's config.toml", n + 1);
    }
    assert_eq!(ours.len(), seed.len(), "{rendered}");
    // What the seed relies on, named: runc by default, kata-runtime for untrusted pods.
    assert!(rendered.contains("[plugins.cri.containerd.untrusted_workload_runtime]\n        runtime_type = \"io.containerd.runtime.v1.linux\"\n        runtime_engine = \"/usr/bin/kata-runtime\""));
}

#[test]
fn the_seed_copy_is_the_seeds_text() {
    // Where the shared folder is beside the checkout (this workplace), the copy must still
    // be its text; elsewhere the copy stands alone.
    let shared = repo().join("../shared/seed");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return;
    };
    let notes: String = entries
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        notes.contains(SEED_CONFIG),
        "tests/golden/seed-2020-config.toml is not in {}",
        shared.display()
    );
}

#[test]
fn every_shipped_profile_loads() {
    let dir = repo().join("profiles");
    let names = kata_harness::profile::file::names_in(&dir);
    for wanted in [
        "default",
        "offline-containerd17",
        "offline-containerd21",
        "upstream-current",
        "seed-2020",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }
    for name in &names {
        let profile = kata_harness::profile::load_named(&dir, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&profile.profile, name);
    }
}

#[test]
fn the_default_profile_is_the_default_run() {
    let profile = kata_harness::profile::load_named(&repo().join("profiles"), "default").unwrap();
    let lines: Vec<String> = profile
        .containerd_versions()
        .into_iter()
        .map(Profile::line_of)
        .collect();
    assert_eq!(lines, kata_harness::profile::DEFAULT_CONTAINERD_LINES);
    assert_eq!(profile.vm_images, ["bookworm", "bookworm-containerd21"]);
    let k8s = profile.kubernetes.unwrap();
    assert_eq!(
        format!("v{}", k8s.version),
        kata_harness::kube::bundle::DEFAULT_VERSION
    );
    assert_eq!(profile.target, "all");
}

/// A runnable profile, as text, to break one field of at a time.
const BASE: &str = "profile: p
about: a test profile
containerd:
  - { version: 1.7.24, source: { debian: trixie } }
runc: { version: 1.1.5, source: { debian: bookworm } }
cni: { version: 1.1.1, source: { debian: bookworm } }
kata: { version: 3.30.0, source: { build: here } }
kubernetes: { version: 1.20.2, source: { build: here }, kubeadm_api: kubeadm.k8s.io/v1beta2, runtime_class_api: node.k8s.io/v1 }
handlers:
  default: runc
  runtimes:
    - { name: runc, runtime_type: io.containerd.runc.v2 }
    - { name: kata, runtime_type: io.containerd.kata.v2 }
";

fn parse(text: &str) -> Result<Profile, String> {
    kata_harness::profile::parse(Path::new("/profiles/p.yaml"), text).map_err(|e| e.to_string())
}

#[test]
fn the_base_profile_is_valid() {
    parse(BASE).unwrap();
}

const NO_CLUSTER: (&str, &str) = (
    "kubernetes: { version: 1.20.2, source: { build: here }, kubeadm_api: kubeadm.k8s.io/v1beta2, runtime_class_api: node.k8s.io/v1 }\n",
    "",
);
const KATA_1: (&str, &str) = ("kata: { version: 3.30.0", "kata: { version: 1.7.3");
const CONTAINERD_21: (&str, &str) = (
    "version: 1.7.24, source: { debian: trixie }",
    "version: 2.1.9, source: { debian: sid }",
);
const UNTRUSTED: (&str, &str) = (
    "    - { name: kata, runtime_type: io.containerd.kata.v2 }\n",
    "    - { name: kata, runtime_type: io.containerd.kata.v2 }\n  untrusted_workload: { name: kata-legacy, runtime_type: io.containerd.kata.v2 }\n",
);

#[rstest]
#[case::runc_v2_before_containerd_1_3(
    &[("version: 1.7.24,", "version: 1.2.13,"), NO_CLUSTER],
    "handlers.runtimes[0].runtime_type", "the runc v2 shim came with containerd 1.3; containerd 1.2.13 is 1.2.13"
)]
#[case::v1beta3_with_kubeadm_1_37(
    &[("1.20.2, source: { build: here }, kubeadm_api: kubeadm.k8s.io/v1beta2", "1.37.0, source: { build: here }, kubeadm_api: kubeadm.k8s.io/v1beta3")],
    "kubernetes.kubeadm_api", "read by kubeadm 1.22 to 1.36, not by 1.37.0"
)]
#[case::v1beta4_before_1_31(
    &[("1.20.2, source: { build: here }, kubeadm_api: kubeadm.k8s.io/v1beta2", "1.30.4, source: { build: here }, kubeadm_api: kubeadm.k8s.io/v1beta4")],
    "kubernetes.kubeadm_api", "read by kubeadm 1.31 and later, not by 1.30.4"
)]
#[case::runtime_class_v1_before_1_20(
    &[("version: 1.20.2,", "version: 1.19.2,")],
    "kubernetes.runtime_class_api", "node.k8s.io/v1 is served by Kubernetes 1.20 and later, not by 1.19.2"
)]
#[case::kata_1_with_containerd_2(
    &[CONTAINERD_21, KATA_1],
    "kata.version", "containerd 2.1.9 (from containerd[0].version) needs Kata 2.0 or later"
)]
#[case::kata_4_with_containerd_1_6(
    &[("version: 1.7.24, source: { debian: trixie }", "version: 1.6.20, source: { debian: bookworm }"), ("kata: { version: 3.30.0", "kata: { version: 4.1.0")],
    "kata.version", "Kata 4.x supports containerd 1.7.0 and later"
)]
#[case::untrusted_on_containerd_2(
    &[CONTAINERD_21, UNTRUSTED],
    "handlers.untrusted_workload", "containerd 2.0 removed untrusted_workload_runtime; containerd 2.1.9 is 2.1.9"
)]
#[case::config_version_3_for_containerd_1_7(
    &[("handlers:", "containerd_config: { version: 3 }\nhandlers:")],
    "containerd_config.version", "config version 3 came with containerd 2.0"
)]
#[case::defaults_style_needs_schema_1(
    &[("handlers:", "containerd_config: { version: 2, style: defaults }\nhandlers:")],
    "containerd_config.style", "it needs `version: 1`"
)]
#[case::default_handler_not_configured(&[("default: runc", "default: crun")], "handlers.default", "\"crun\" is not among")]
#[case::kata_runtime_with_kata_3(
    &[("- { name: kata, runtime_type: io.containerd.kata.v2 }", "- { name: kata, runtime_type: io.containerd.runc.v2, engine: /usr/bin/kata-runtime }")],
    "handlers.runtimes[1].engine", "Kata 2.0 removed it"
)]
#[case::two_sources_at_once(&[("{ build: here } }\nkubernetes", "{ build: here, debian: sid } }\nkubernetes")], "", "exactly one key")]
#[case::misspelt_field(&[("kubeadm_api:", "kubeadm_apy:")], "", "unknown field `kubeadm_apy`")]
#[case::release_in_another_lock(
    &[("kata: { version: 3.30.0, source: { build: here } }", "kata: { version: 3.30.0, source: { release: mine.lock } }")],
    "kata.source.release", "kata releases are pinned in kata-release.lock"
)]
#[case::kubernetes_release_in_a_lock(
    &[("kubernetes: { version: 1.20.2, source: { build: here }", "kubernetes: { version: 1.20.2, source: { release: k8s-release.lock }")],
    "kubernetes.source.release", "verified against the .sha256 dl.k8s.io publishes beside each binary: write `release: published-sha256`"
)]
#[case::name_differs_from_the_file(&[("profile: p\n", "profile: q\n")], "profile", "differs from the file's name \"p\"")]
#[case::host_tool_without_version_from_debian(
    &[("runc: { version: 1.1.5, source: { debian: bookworm } }", "runc: { source: { debian: bookworm } }")],
    "runc.version", "missing: a debian source needs the version it gives (only `source: host`"
)]
#[case::host_tool_with_empty_version(
    &[("cni: { version: 1.1.1, source: { debian: bookworm } }", "cni: { version: \"\", source: host }")],
    "cni.version", "empty: leave it out"
)]
#[case::kata_from_the_host(
    &[("kata: { version: 3.30.0, source: { build: here } }", "kata: { version: 3.30.0, source: host }")],
    "kata.source", "host is not a source the harness can use for kata"
)]
#[case::kata_class_not_a_kata_handler(
    &[("runtime_class_api: node.k8s.io/v1 }", "runtime_class_api: node.k8s.io/v1, kata_runtime_class: runc }")],
    "kubernetes.kata_runtime_class", "\"runc\" is not one of the profile's Kata handlers"
)]
#[case::kata_class_runtime_rs_on_containerd_1_6(
    &[
        ("runtime_class_api: node.k8s.io/v1 }", "runtime_class_api: node.k8s.io/v1, kata_runtime_class: kata-qemu-runtime-rs, containerd: \"1.6\" }"),
        ("    - { name: kata, runtime_type: io.containerd.kata.v2 }\n", "    - { name: kata, runtime_type: io.containerd.kata.v2 }\n    - { name: kata-qemu-runtime-rs, runtime_type: io.containerd.kata-qemu-runtime-rs.v2 }\n"),
    ],
    "kubernetes.kata_runtime_class", "supports containerd 1.7.0 and later; the cluster's node runs 1.6.0"
)]
#[case::misspelt_host(&[("runc: { version: 1.1.5, source: { debian: bookworm } }", "runc: { source: hots }")], "", "\"hots\": a source is `host`, `setup`, or a map")]
fn impossible_combinations_are_rejected_with_field_and_reason(
    #[case] edits: &[(&str, &str)],
    #[case] field: &str,
    #[case] reason: &str,
) {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "the case edits {from:?}, which is not in:\n{text}"
        );
        text = text.replacen(from, to, 1);
    }
    let message = parse(&text).expect_err("the combination must be rejected");
    let at = if field.is_empty() {
        "/profiles/p.yaml: ".to_owned()
    } else {
        format!("/profiles/p.yaml, field {field}: ")
    };
    assert!(
        message.starts_with(&at),
        "{message}\n(wanted it to start with {at:?})"
    );
    assert!(message.contains(reason), "{message}\n(wanted {reason:?})");
}

#[test]
fn host_tools_from_the_host_need_no_version() {
    let text = BASE
        .replace(
            "runc: { version: 1.1.5, source: { debian: bookworm } }",
            "runc: { source: host }",
        )
        .replace(
            "cni: { version: 1.1.1, source: { debian: bookworm } }",
            "cni: { version: 1.1.1, source: host }",
        );
    let profile = parse(&text).unwrap();
    assert_eq!(profile.runc.version, None);
    let components = profile.components();
    let component = |key: &str| {
        components
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap()
    };
    assert_eq!(component("runc"), "this host's (version not pinned)");
    assert_eq!(component("cni-plugins"), "1.1.1 (this host's)");
}

#[test]
fn the_release_sources_named_are_the_ones_the_fetchers_verify_by() {
    let text = BASE
        .replace(
            "kata: { version: 3.30.0, source: { build: here } }",
            &format!(
                "kata: {{ version: 3.30.0, source: {{ release: {} }} }}",
                kata_harness::artifacts::kata_release::LOCK_FILE
            ),
        )
        .replace(
            "kubernetes: { version: 1.20.2, source: { build: here }",
            &format!(
                "kubernetes: {{ version: 1.20.2, source: {{ release: {} }}",
                kata_harness::profile::file::PUBLISHED_SHA256
            ),
        );
    parse(&text).unwrap();
    // The shipped upstream profile says so too, and its report names it.
    let upstream = kata_harness::profile::load_named(&repo().join("profiles"), "upstream-current").unwrap();
    let k8s = upstream.kubernetes.as_ref().unwrap();
    assert_eq!(
        k8s.source,
        kata_harness::profile::file::Source::Release(kata_harness::profile::file::PUBLISHED_SHA256.into())
    );
    assert!(upstream.components().contains(&(
        "kubernetes".into(),
        "1.35.0 (upstream release, verified against its published sha256; node containerd 2.1)".into()
    )));
}

#[test]
fn an_impossible_profile_exits_2_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    let text = BASE
        .replace("version: 1.7.24,", "version: 1.2.13,")
        .replace(NO_CLUSTER.0, NO_CLUSTER.1);
    std::fs::write(&file, text).unwrap();
    for command in ["run", "list"] {
        let out = harness()
            .args([command, "--profile"])
            .arg(&file)
            .args(["--results"].iter().filter(|_| command == "run"))
            .args([dir.path().join("results")].iter().filter(|_| command == "run"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("field handlers.runtimes[0].runtime_type"),
            "{stderr}"
        );
        assert!(
            stderr.contains("containerd 1.3; containerd 1.2.13 is 1.2.13"),
            "{stderr}"
        );
        // Nothing ran: no results were written.
        assert!(!dir.path().join("results").exists());
    }
}

#[test]
fn the_seed_profile_renders_but_does_not_run() {
    let out = harness()
        .args(["list", "--profile", "seed-2020"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("containerd 1.4.3 is installed outside the harness"),
        "{stderr}"
    );
    for what in ["kubeadm-config", "pod-spec", "container-spec"] {
        let out = harness()
            .args(["render", what, "--profile", "seed-2020"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kubeadm = harness()
        .args(["render", "kubeadm-config", "--profile", "seed-2020"])
        .output()
        .unwrap();
    let kubeadm = String::from_utf8_lossy(&kubeadm.stdout);
    assert!(
        kubeadm.contains("apiVersion: kubeadm.k8s.io/v1beta2")
            && kubeadm.contains("kubernetesVersion: v1.19.2"),
        "{kubeadm}"
    );
    // The untrusted-workload handler is asked for the 1.x way: the annotation, no handler.
    let pod = harness()
        .args([
            "render",
            "pod-spec",
            "--profile",
            "seed-2020",
            "--handler",
            "kata-runtime",
        ])
        .output()
        .unwrap();
    let pod: serde_json::Value = serde_json::from_slice(&pod.stdout).unwrap();
    assert_eq!(
        pod["annotations"]["io.kubernetes.cri.untrusted-workload"], "true",
        "{pod}"
    );
    assert!(pod.get("runtime_handler").is_none_or(|h| h == ""), "{pod}");
    let unknown = harness()
        .args([
            "render",
            "pod-spec",
            "--profile",
            "seed-2020",
            "--handler",
            "kata",
        ])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such handler (runc, kata-runtime)"));
}

#[test]
fn render_for_the_default_profile_is_what_a_node_of_it_runs() {
    let out = harness().args(["render", "containerd-config"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // The default profile's first containerd, 1.6.20: schema 2 with the five handlers.
    assert!(text.starts_with("version = 2\n"), "{text}");
    for handler in ["runc", "crun", "kata", "kata-qemu", "kata-qemu-runtime-rs"] {
        assert!(
            text.contains(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{handler}]"
            )),
            "{text}"
        );
    }
    let v21 = harness()
        .args(["render", "containerd-config", "--containerd-version", "2.1.9"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v21.stdout).starts_with("version = 3\n"));
    let pod = harness()
        .args(["render", "pod-spec", "--handler", "kata"])
        .output()
        .unwrap();
    let pod: serde_json::Value = serde_json::from_slice(&pod.stdout).unwrap();
    assert!(pod.to_string().contains("kata"), "{pod}");
}

#[test]
fn a_cached_containerd_of_another_version_than_the_profiles_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    let text = BASE
        .replace("version: 1.7.24,", "version: 1.7.23,")
        .replace("    - { name: kata, runtime_type: io.containerd.kata.v2 }\n", "    - { name: crun, runtime_type: io.containerd.runc.v2, engine: crun }\n    - { name: kata, runtime_type: io.containerd.kata.v2 }\n    - { name: kata-qemu, runtime_type: io.containerd.kata-qemu.v2 }\n    - { name: kata-qemu-runtime-rs, runtime_type: io.containerd.kata-qemu-runtime-rs.v2 }\n")
        .replace(NO_CLUSTER.0, NO_CLUSTER.1)
        + "target: local\n";
    std::fs::write(&file, text).unwrap();
    let out = harness().args(["list", "--profile"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // The cache's 1.7 line is Debian's 1.7.24.
    assert!(
        stderr.contains("containerd 1.7.23 wanted,") && stderr.contains("has 1.7.24"),
        "{stderr}"
    );
}

/// BASE as a runnable local profile (the handlers local nodes configure, no cluster).
fn runnable_local(text: &str) -> String {
    text.replace("    - { name: kata, runtime_type: io.containerd.kata.v2 }\n", "    - { name: crun, runtime_type: io.containerd.runc.v2, engine: crun }\n    - { name: kata, runtime_type: io.containerd.kata.v2 }\n    - { name: kata-qemu, runtime_type: io.containerd.kata-qemu.v2 }\n    - { name: kata-qemu-runtime-rs, runtime_type: io.containerd.kata-qemu-runtime-rs.v2 }\n")
        .replace(NO_CLUSTER.0, NO_CLUSTER.1)
        + "target: local\n"
}

#[test]
fn a_pinned_runc_this_host_lacks_exits_2_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    let results = dir.path().join("results");
    std::fs::write(
        &file,
        runnable_local(&BASE.replace(
            "runc: { version: 1.1.5, source: { debian: bookworm } }",
            "runc: { version: 0.0.1, source: { debian: bookworm } }",
        )),
    )
    .unwrap();
    let out = harness()
        .args(["run", "--profile"])
        .arg(&file)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: {}, field runc.version: runc 0.0.1 wanted, this host has \"runc version ",
            file.display()
        )),
        "{stderr}"
    );
    assert!(!results.exists(), "nothing ran");
}

#[test]
fn a_profile_with_other_handlers_renders_but_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        BASE.replace(NO_CLUSTER.0, NO_CLUSTER.1) + "target: local\n",
    )
    .unwrap();
    let out = harness().args(["list", "--profile"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("its handlers differ from the ones local nodes configure"),
        "{stderr}"
    );
    let out = harness()
        .args(["render", "containerd-config", "--profile"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("runtimes.kata]") && !text.contains("runtimes.crun]"),
        "{text}"
    );
}

#[test]
fn render_kata_config_is_the_configuration_a_local_node_gets() {
    let out = harness().args(["render", "kata-config"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kata = kata_harness::scenario::Capabilities::probe_local();
    match &kata.kata_absent {
        None => {
            assert_eq!(out.status.code(), Some(0), "{stderr}");
            let scratch = stdout
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().find(|w| w.starts_with('/')))
                .map(|w| w.trim_end_matches(','))
                .expect("the scratch dir is named");
            assert!(!Path::new(scratch).exists(), "{scratch} is left behind");
            let doc: toml::Table = stdout.parse().expect("the configuration is TOML");
            assert_eq!(doc["hypervisor"]["qemu"]["shared_fs"].as_str(), Some("virtio-fs"));
            assert_eq!(
                doc["agent"]["kata"]["debug_console_enabled"].as_bool(),
                Some(true)
            );
        }
        Some(reason) => {
            assert_eq!(out.status.code(), Some(2), "{stdout}");
            assert!(stderr.contains(reason.as_str()), "{stderr}");
        }
    }
}
