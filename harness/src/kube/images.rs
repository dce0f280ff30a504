//! Control-plane images built locally as OCI archives, named and tagged as kubeadm expects, so
//! kubeadm and kubelet pull nothing.
//!
//! Invariant: built from files on this machine only (the bundle's static binaries, Debian's
//! `etcd-server` and `conntrack` unpacked from `apt-get download` into the cache, never
//! installed, and the host's iptables for kube-proxy), deterministic, and cached under
//! `<cache>/k8s/images/<key>/` where the key hashes every input's identity, so a second run
//! builds nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::bundle::Bundle;
use super::{io_err, KubeError};
use crate::images::{self, ImageArchive, ImageBuilder};
use crate::process;
use crate::profile::Version;
use crate::render::kubeadm::default_image_repository;

/// Bump when what goes into an image changes: the cache key includes it.
const RECIPE: &str = "kube-images-1";
/// Workload image for the suite's pods (busybox `httpd`, `wget`, `sleep`).
pub const WORKLOAD_IMAGE: &str = "localhost/kata-harness/busybox:1";

/// The images one cluster needs, and the names kubeadm will look for.
#[derive(Debug, Clone)]
pub struct ClusterImages {
    pub archives: Vec<ImageArchive>,
    pub image_repository: String,
    /// `etcd.local.imageTag`: the Debian etcd's own version.
    pub etcd_tag: String,
    /// containerd's `sandbox_image` (kubelet 1.20 passes no pod-infra image to remote runtimes).
    pub pause_image: String,
    /// Debian's conntrack, unpacked (kube-proxy's image ships it; kubeadm's preflight wants
    /// one on the node's PATH). It runs on this host: its libraries are the host's.
    pub conntrack: PathBuf,
}

/// The pause tag kubeadm lists for a Kubernetes minor release.
pub fn pause_tag(version: Version) -> &'static str {
    match version.minor {
        0..=20 => "3.2",
        21 => "3.4.1",
        22 => "3.5",
        23 => "3.6",
        24 => "3.7",
        25 => "3.8",
        26..=30 => "3.9",
        _ => "3.10",
    }
}

/// Builds (or reuses from the cache) every image the cluster needs.
pub fn ensure(bundle: &Bundle) -> Result<ClusterImages, KubeError> {
    let etcd_root = unpack_deb("etcd-server")?;
    let conntrack_root = unpack_deb("conntrack")?;
    let etcd = etcd_root.join("usr/bin/etcd");
    let etcd_tag = etcd_version(&etcd)?;
    let repo = default_image_repository(bundle.version);
    let tag = format!("v{}", bundle.version);
    let pause_image = format!("{repo}/pause:{}", pause_tag(bundle.version));

    let key = cache_key(bundle, &[&etcd, &conntrack_root.join("usr/sbin/conntrack")]);
    let dir = crate::profile::cache_dir().join("k8s/images").join(&key);
    let done = dir.join(".complete");

    let mut specs: Vec<(String, String)> = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]
    .iter()
    .map(|c| (c.to_string(), format!("{repo}/{c}:{tag}")))
    .collect();
    specs.push(("etcd".into(), format!("{repo}/etcd:{etcd_tag}")));
    specs.push(("pause".into(), pause_image.clone()));
    specs.push(("busybox".into(), WORKLOAD_IMAGE.into()));

    let mut archives = Vec::new();
    if done.exists() {
        for (file, name) in &specs {
            archives.push(ImageArchive {
                name: name.clone(),
                path: dir.join(format!("{file}.tar")),
                manifest_digest: String::new(),
            });
        }
    } else {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for (file, name) in &specs {
            let image = build(file, bundle, &etcd, &conntrack_root).map_err(|source| KubeError::Image {
                image: name.clone(),
                source,
            })?;
            let archive = image
                .write_archive(name, &dir.join(format!("{file}.tar")))
                .map_err(|source| KubeError::Image {
                    image: name.clone(),
                    source,
                })?;
            archives.push(archive);
        }
        std::fs::write(&done, RECIPE).map_err(io_err(&done))?;
    }
    Ok(ClusterImages {
        archives,
        image_repository: repo.into(),
        etcd_tag,
        pause_image,
        conntrack: conntrack_root.join("usr/sbin/conntrack"),
    })
}

fn build(
    which: &str,
    bundle: &Bundle,
    etcd: &Path,
    conntrack_root: &Path,
) -> Result<ImageBuilder, images::ImageError> {
    match which {
        // kubeadm's static-pod manifests call the bare command name; kube-proxy's DaemonSet
        // calls /usr/local/bin/kube-proxy.
        "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" => {
            local_bin(ImageBuilder::new(), which, &bundle.bin(which))
        }
        "etcd" => {
            // Debian's etcd is dynamically linked: ship its loader and libraries.
            let image = local_bin(ImageBuilder::new(), "etcd", etcd)?;
            image.with_libraries(&[etcd.to_owned()])
        }
        "kube-proxy" => kube_proxy(bundle, conntrack_root),
        // Upstream releases have no pause binary: then a busybox-based pause.
        "pause" => images::pause(
            bundle.pause().as_deref(),
            Path::new(crate::images::BUSYBOX_BINARY),
        ),
        "busybox" => images::busybox(Path::new(crate::images::BUSYBOX_BINARY)),
        other => unreachable!("no recipe for image {other}"),
    }
}

fn local_bin(image: ImageBuilder, name: &str, host: &Path) -> Result<ImageBuilder, images::ImageError> {
    Ok(image
        .host_file(&format!("usr/local/bin/{name}"), host, 0o755)?
        .symlink(&format!("usr/bin/{name}"), &format!("/usr/local/bin/{name}"))
        .dir("tmp")
        .dir("var/run"))
}

/// kube-proxy's iptables mode runs iptables, iptables-save/-restore (and the ip6 twins) and
/// conntrack inside its container: ship the host's nft-backed xtables (matching the host's
/// iptables alternative), its extensions, Debian's conntrack, their libraries, and the
/// /etc tables they read.
fn kube_proxy(bundle: &Bundle, conntrack_root: &Path) -> Result<ImageBuilder, images::ImageError> {
    let xtables = PathBuf::from("/usr/sbin/xtables-nft-multi");
    let conntrack = conntrack_root.join("usr/sbin/conntrack");
    let mut image = local_bin(ImageBuilder::new(), "kube-proxy", &bundle.bin("kube-proxy"))?
        .host_file("usr/sbin/xtables-nft-multi", &xtables, 0o755)?
        .host_file("usr/sbin/conntrack", &conntrack, 0o755)?;
    for name in [
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ] {
        image = image.symlink(&format!("usr/sbin/{name}"), "xtables-nft-multi");
    }
    for etc in ["protocols", "services", "ethertypes"] {
        let host = Path::new("/etc").join(etc);
        if host.is_file() {
            image = image.host_file(&format!("etc/{etc}"), &host, 0o644)?;
        }
    }
    let mut binaries = vec![xtables, conntrack];
    let extensions = Path::new("/usr/lib/x86_64-linux-gnu/xtables");
    if let Ok(entries) = std::fs::read_dir(extensions) {
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "so"))
            .collect();
        found.sort();
        for so in found {
            let inside = so.to_string_lossy().trim_start_matches('/').to_owned();
            image = image.host_file(&inside, &so, 0o644)?;
            binaries.push(so);
        }
    }
    image.with_libraries(&binaries)
}

/// `apt-get download <package>` into the cache and `dpkg-deb -x` it there (once): the package
/// is never installed on the host.
fn unpack_deb(package: &str) -> Result<PathBuf, KubeError> {
    let base = crate::profile::cache_dir().join("k8s/debs");
    crate::artifacts::deb::unpack(package, &base).map_err(KubeError::from)
}

fn etcd_version(etcd: &Path) -> Result<String, KubeError> {
    let mut command = Command::new(etcd);
    command.arg("--version");
    let out = process::run(command, Duration::from_secs(30)).map_err(|source| KubeError::Step {
        step: "read the etcd version".into(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "3.4.23".into()))
}

/// A short hash of every input's identity (path, size, mtime) and the recipe.
fn cache_key(bundle: &Bundle, extra: &[&Path]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(RECIPE);
    // Pause last, as when it was required: the Debian bundle's key (and cached images) stay.
    let binaries = super::bundle::REQUIRED.iter().chain([&super::bundle::PAUSE]);
    let mut inputs: Vec<PathBuf> = binaries.map(|b| bundle.bin(b)).collect();
    inputs.extend(extra.iter().map(|p| p.to_path_buf()));
    inputs.push("/usr/sbin/xtables-nft-multi".into());
    inputs.push(crate::images::BUSYBOX_BINARY.into());
    for input in inputs {
        let real = std::fs::canonicalize(&input).unwrap_or(input);
        hasher.update(real.to_string_lossy().as_bytes());
        if let Ok(meta) = std::fs::metadata(&real) {
            use std::os::unix::fs::MetadataExt;
            hasher.update(meta.len().to_le_bytes());
            hasher.update(meta.mtime().to_le_bytes());
        }
    }
    hex::encode(&hasher.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_tags_follow_kubeadm() {
        assert_eq!(pause_tag(Version::new(1, 20, 2)), "3.2");
        assert_eq!(pause_tag(Version::new(1, 31, 0)), "3.10");
    }
}
