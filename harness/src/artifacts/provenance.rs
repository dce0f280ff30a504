//! Where an installed artifact came from, as the reports say it: one line read from the
//! manifest its fetch or build left beside its files (`SOURCE`, written by scripts/setup's
//! steps, or a Kubernetes bundle's `manifest.json`). Pure file reading, so that what a run
//! states is what the cache holds, not what a profile hoped for.

use std::path::Path;

/// One line for the directory holding an artifact (a containerd line's directory, a Kata
/// layout's root, a cri-tools or Kubernetes bundle directory), or `None` when it has no
/// manifest (something installed by hand, or the host's own packages).
pub fn of_dir(dir: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("SOURCE")) {
        return Some(of_source(&text));
    }
    let json = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&json).ok()?;
    let field = |name: &str| {
        manifest
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    Some(format!(
        "built from Debian {}'s {} {} (scripts/build-k8s-bundle)",
        field("source_suite"),
        field("source_package"),
        field("source_version")
    ))
}

/// The value of `key: value` in a `SOURCE` manifest (the first such line), trimmed.
pub fn manifest_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .map(str::trim)
}

/// The line for a `SOURCE` manifest: an upstream release names its version and URLs; a
/// Debian package its suite and version; a source build what it was built from (its
/// `source:` line, else its first line).
fn of_source(text: &str) -> String {
    let value = |key: &str| manifest_value(text, key);
    let urls: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("url: "))
        .map(str::trim)
        .collect();
    if value("source") == Some("upstream release") {
        let version = value("kata-version").or(value("version")).unwrap_or("?");
        return format!("upstream release {version} ({})", urls.join(", "));
    }
    if let Some(suite) = value("suite") {
        return format!("Debian package {} ({suite})", value("version").unwrap_or("?"));
    }
    if let Some(source) = value("source") {
        // scripts/build-kata names the source tree or tarball it built.
        let version = value("kata-version").or(value("version")).unwrap_or("?");
        return format!("source build of {version} from {source}");
    }
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("empty manifest");
    if first.contains("upstream release") {
        // cri-tools and Kubernetes releases say it in their first line, with the URL.
        return first.to_owned();
    }
    format!("source build: {first}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(name: &str, text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
        dir
    }

    #[test]
    fn a_kata_release_names_its_version_and_urls() {
        let dir = dir_with(
            "SOURCE",
            "kata-version: 3.30.0\nsource: upstream release\nasset: a.tar.zst 00\nurl: http://m/a.tar.zst\n",
        );
        assert_eq!(
            of_dir(dir.path()).unwrap(),
            "upstream release 3.30.0 (http://m/a.tar.zst)"
        );
    }

    #[test]
    fn a_debian_containerd_names_its_suite() {
        let dir = dir_with(
            "SOURCE",
            "package: containerd\nsuite: trixie\nversion: 1.7.24~ds1-6\nupstream-version: 1.7.24\n",
        );
        assert_eq!(
            of_dir(dir.path()).unwrap(),
            "Debian package 1.7.24~ds1-6 (trixie)"
        );
    }

    #[test]
    fn a_source_build_is_never_called_a_release() {
        let dir = dir_with(
            "SOURCE",
            "cri-tools: 1.36.0 (/src/cri-tools-1.36.0.tar.gz, key ab)\n",
        );
        let line = of_dir(dir.path()).unwrap();
        assert!(line.starts_with("source build: cri-tools: 1.36.0"), "{line}");
        let dir = dir_with(
            "SOURCE",
            "cri-tools: 1.36.0 (upstream release, http://m/kubernetes-sigs/cri-tools/releases/download/v1.36.0/)\n",
        );
        assert!(of_dir(dir.path())
            .unwrap()
            .starts_with("cri-tools: 1.36.0 (upstream release"));
    }

    #[test]
    fn a_kata_source_build_names_its_source() {
        let dir = dir_with(
            "SOURCE",
            "kata-version: 3.30.0\nsource: /src/kata-containers-3.30.0.tar.gz (content key e3)\nlayout-key: 0b\n",
        );
        assert_eq!(
            of_dir(dir.path()).unwrap(),
            "source build of 3.30.0 from /src/kata-containers-3.30.0.tar.gz (content key e3)"
        );
    }

    #[test]
    fn a_debian_built_bundle_names_its_source_package() {
        let dir = dir_with(
            "manifest.json",
            r#"{"source_package": "kubernetes", "source_version": "1.20.2-1", "source_suite": "bookworm"}"#,
        );
        assert_eq!(
            of_dir(dir.path()).unwrap(),
            "built from Debian bookworm's kubernetes 1.20.2-1 (scripts/build-k8s-bundle)"
        );
        assert_eq!(of_dir(tempfile::tempdir().unwrap().path()), None);
    }
}
