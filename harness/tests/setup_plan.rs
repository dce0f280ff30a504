//! scripts/setup's install decision, against apt's own simulation: the failure a new user hit
//! (this image ships qemu-utils from bookworm-backports; installing bookworm's
//! qemu-system-x86 made apt remove it, and qemu-img with it) is reproduced with a dpkg status
//! file in which qemu-system-x86 is not installed yet, so the machine's packages stay as
//! they are. Needs apt and the Debian archive (as setup itself does).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Stanzas of a dpkg status file, by package name.
fn stanzas(status: &str) -> Vec<(String, String)> {
    status
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let name = s
                .lines()
                .find_map(|l| l.strip_prefix("Package: "))
                .unwrap_or("")
                .to_owned();
            (name, s.trim_end().to_owned())
        })
        .collect()
}

fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// qemu-utils as bookworm-backports has it, marked installed (fields of a status entry only).
fn backports_qemu_utils(dir: &Path) -> String {
    let parts = dir.join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    std::fs::create_dir_all(dir.join("lists/partial")).unwrap();
    std::fs::write(
        parts.join("bpo.list"),
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main\n",
    )
    .unwrap();
    let conf = dir.join("apt.conf");
    std::fs::write(
        &conf,
        format!(
            "Dir::Etc::SourceList \"/dev/null\";\nDir::Etc::SourceParts \"{}\";\nDir::State::Lists \"{}\";\n",
            parts.display(),
            dir.join("lists").display()
        ),
    )
    .unwrap();
    let apt = |args: &[&str]| -> Output {
        Command::new(args[0])
            .args(&args[1..])
            .env("APT_CONFIG", &conf)
            .output()
            .unwrap()
    };
    assert!(
        apt(&["apt-get", "-q", "update"]).status.success(),
        "apt-get update of bookworm-backports"
    );
    let show = apt(&["apt-cache", "show", "qemu-utils/bookworm-backports"]);
    let text = String::from_utf8_lossy(&show.stdout);
    let first = text.split("\n\n").next().unwrap_or("");
    let keep = [
        "Package",
        "Source",
        "Version",
        "Architecture",
        "Depends",
        "Pre-Depends",
        "Breaks",
        "Replaces",
        "Conflicts",
        "Recommends",
        "Suggests",
        "Multi-Arch",
        "Maintainer",
        "Installed-Size",
        "Section",
        "Priority",
    ];
    let mut stanza: Vec<String> = first
        .lines()
        .filter(|l| keep.iter().any(|k| l.starts_with(&format!("{k}: "))))
        .map(str::to_owned)
        .collect();
    assert!(
        !stanza.is_empty(),
        "bookworm-backports has no qemu-utils:\n{text}"
    );
    stanza.insert(1, "Status: install ok installed".into());
    stanza.join("\n")
}

/// The real status with qemu-system-x86 (and what only it pulls in) not installed, and
/// qemu-utils from bookworm-backports installed: this image as it was before setup.
fn status_before_setup(dir: &Path) -> PathBuf {
    let real = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let dropped = [
        "qemu-system-x86",
        "qemu-system-common",
        "qemu-system-data",
        "qemu-system-gui",
        "seabios",
        "ipxe-qemu",
        "qemu-utils",
    ];
    let mut out: Vec<String> = stanzas(&real)
        .into_iter()
        .filter(|(name, _)| !dropped.contains(&name.as_str()))
        .map(|(_, s)| s)
        .collect();
    let bpo = stanzas(&real)
        .into_iter()
        .find(|(name, s)| name == "qemu-utils" && field(s, "Version").is_some_and(|v| v.contains("bpo")))
        .map(|(_, s)| s)
        .unwrap_or_else(|| backports_qemu_utils(&dir.join("apt")));
    out.push(bpo);
    let path = dir.join("status");
    std::fs::write(&path, out.join("\n\n") + "\n").unwrap();
    path
}

fn plan(status: &Path, packages: &[&str]) -> Output {
    Command::new(repo().join("scripts/setup"))
        .arg("--plan")
        .args(packages)
        .env("KATA_HARNESS_SETUP_STATUS", status)
        .env("KATA_HARNESS_CACHE", status.parent().unwrap())
        .output()
        .unwrap()
}

#[test]
fn a_plain_install_that_would_remove_qemu_utils_is_taken_from_backports() {
    let dir = tempfile::tempdir().unwrap();
    let status = status_before_setup(dir.path());
    // apt itself, against that status: the plain install removes qemu-utils (the failure).
    let simulated = Command::new("apt-get")
        .args(["-s", "-o"])
        .arg(format!("Dir::State::status={}", status.display()))
        .args(["install", "--no-install-recommends", "qemu-system-x86"])
        .output()
        .unwrap();
    let simulated = String::from_utf8_lossy(&simulated.stdout);
    assert!(
        simulated.lines().any(|l| l.starts_with("Remv qemu-utils")),
        "{simulated}"
    );

    let out = plan(&status, &["qemu-system-x86"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "backports",
        "{stderr}"
    );
    assert!(
        stderr.contains("a plain install would remove: qemu-utils"),
        "{stderr}"
    );
    assert!(stderr.contains("keeps every installed package"), "{stderr}");
}

#[test]
fn an_install_that_removes_nothing_uses_the_systems_sources() {
    let dir = tempfile::tempdir().unwrap();
    let status = status_before_setup(dir.path());
    let out = plan(&status, &["cpio"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "system", "{stderr}");
}
