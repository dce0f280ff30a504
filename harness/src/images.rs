//! Offline OCI image archives, built from files on this machine: no registry, no daemon.
//!
//! Invariant: builds are deterministic (sorted entries, zero mtimes, fixed gzip header), so the
//! same inputs give the same digests on every run and every machine, and an archive is what
//! `ctr images import` takes (OCI image layout in a tar, named by `io.containerd.image.name`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};

/// The static busybox (Debian's busybox-static) every image here is built from.
pub const BUSYBOX_BINARY: &str = "/bin/busybox";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("failed to read {path} for the image")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write the image archive {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to build OCI metadata for {image}")]
    Spec {
        image: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("failed to list busybox applets of {path}")]
    Applets {
        path: PathBuf,
        #[source]
        source: crate::process::ProcessError,
    },
    #[error("failed to list the shared libraries of {path} (ldd)")]
    Libraries {
        path: PathBuf,
        #[source]
        source: crate::process::ProcessError,
    },
}

/// One entry of a layer.
#[derive(Debug, Clone)]
enum Entry {
    Dir,
    File {
        data: Vec<u8>,
        mode: u32,
    },
    Symlink {
        target: String,
    },
    /// A hard link to another file of the layer (its path in the layer).
    Hardlink {
        target: String,
    },
}

/// A single-layer image under construction.
#[derive(Debug, Clone, Default)]
pub struct ImageBuilder {
    entries: BTreeMap<String, Entry>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    /// The config's `User` (`1002`, `www-data:1004`); empty: root.
    user: String,
}

/// A finished archive and the names it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageArchive {
    pub name: String,
    pub path: PathBuf,
    pub manifest_digest: String,
}

impl ImageBuilder {
    pub fn new() -> Self {
        ImageBuilder {
            env: vec!["PATH=/bin:/sbin:/usr/bin:/usr/sbin".into()],
            ..Default::default()
        }
    }

    pub fn dir(mut self, path: &str) -> Self {
        self.add_parents(path);
        self.entries.insert(clean(path), Entry::Dir);
        self
    }

    pub fn file(mut self, path: &str, data: Vec<u8>, mode: u32) -> Self {
        self.add_parents(path);
        self.entries.insert(clean(path), Entry::File { data, mode });
        self
    }

    pub fn host_file(self, path: &str, host: &Path, mode: u32) -> Result<Self, ImageError> {
        let data = std::fs::read(host).map_err(|source| ImageError::Read {
            path: host.to_owned(),
            source,
        })?;
        Ok(self.file(path, data, mode))
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.add_parents(path);
        self.entries.insert(
            clean(path),
            Entry::Symlink {
                target: target.to_owned(),
            },
        );
        self
    }

    /// A hard link `path` to the layer's file `target` (as upstream's busybox image links
    /// its applets: masking one path then leaves the others alone, unlike a symlink, whose
    /// bind-mount target is the file it points to).
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.add_parents(path);
        self.entries.insert(
            clean(path),
            Entry::Hardlink {
                target: clean(target),
            },
        );
        self
    }

    pub fn entrypoint(mut self, argv: &[&str]) -> Self {
        self.entrypoint = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.cmd = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The user the image's processes run as (`uid`, `name`, `uid:gid`, `name:gid`).
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_owned();
        self
    }

    /// Adds every shared library `ldd` names for `binaries` at the same path (plain
    /// directories: `/lib` and `/lib64` as symlinks would clash with real dirs in the same
    /// layer).
    pub fn with_libraries(mut self, binaries: &[PathBuf]) -> Result<Self, ImageError> {
        let mut libs = std::collections::BTreeSet::new();
        for binary in binaries {
            let mut command = std::process::Command::new("ldd");
            command.arg(binary);
            let out = crate::process::run_unchecked(&mut command, std::time::Duration::from_secs(30))
                .map_err(|source| ImageError::Libraries {
                    path: binary.clone(),
                    source,
                })?;
            libs.extend(parse_ldd(&String::from_utf8_lossy(&out.stdout)));
        }
        for lib in libs {
            let inside = lib.to_string_lossy().trim_start_matches('/').to_owned();
            self = self.host_file(&inside, &lib, 0o755)?;
        }
        Ok(self)
    }

    fn add_parents(&mut self, path: &str) {
        let path = clean(path);
        let mut parent = Path::new(&path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert(Entry::Dir);
            parent = dir.parent();
        }
    }

    /// The uncompressed layer tar.
    fn layer_tar(&self) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        // Hard links after every file: a link's target must precede it in the archive.
        let (links, others): (Vec<_>, Vec<_>) = self
            .entries
            .iter()
            .partition(|(_, e)| matches!(e, Entry::Hardlink { .. }));
        for (path, entry) in others.into_iter().chain(links) {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            let result = match entry {
                Entry::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
                }
                Entry::File { data, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())
                }
                Entry::Hardlink { target } => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_mode(0o755);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, path, target)
                }
            };
            result.expect("writing a tar to memory cannot fail");
        }
        tar.into_inner().expect("writing a tar to memory cannot fail")
    }

    /// Writes an OCI layout archive for `name` (e.g. `localhost/kata-harness/busybox:1`).
    pub fn write_archive(&self, name: &str, path: &Path) -> Result<ImageArchive, ImageError> {
        self.write_layout(name, path, ArchiveLayout::Amd64)
    }

    /// The manifest of this image for one architecture: its descriptor (with the platform)
    /// and its blobs (layer, config, manifest). The layer is the same for every architecture
    /// (nothing here runs a foreign one); the config says which it is.
    fn platform_manifest(&self, name: &str, arch: Arch) -> Result<(Descriptor, Vec<Vec<u8>>), ImageError> {
        let spec_err = |source| ImageError::Spec {
            image: name.to_owned(),
            source,
        };
        let layer = self.layer_tar();
        let diff_id = sha256(&layer);
        let gz = gzip(&layer);
        let layer_desc = descriptor(MediaType::ImageLayerGzip, &gz, None).map_err(spec_err)?;

        let mut config = ConfigBuilder::default().env(self.env.clone());
        if !self.entrypoint.is_empty() {
            config = config.entrypoint(self.entrypoint.clone());
        }
        if !self.cmd.is_empty() {
            config = config.cmd(self.cmd.clone());
        }
        if !self.user.is_empty() {
            config = config.user(self.user.clone());
        }
        let config = ImageConfigurationBuilder::default()
            .architecture(arch.clone())
            .os(Os::Linux)
            .config(config.build().map_err(spec_err)?)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![diff_id])
                    .build()
                    .map_err(spec_err)?,
            )
            .build()
            .map_err(spec_err)?;
        let config_json = canonical_json(&config);
        let config_desc = descriptor(MediaType::ImageConfig, &config_json, None).map_err(spec_err)?;

        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(vec![layer_desc])
            .build()
            .map_err(spec_err)?;
        let manifest_json = canonical_json(&manifest);
        let platform = PlatformBuilder::default()
            .architecture(arch)
            .os(Os::Linux)
            .build()
            .map_err(spec_err)?;
        let mut manifest_desc =
            descriptor(MediaType::ImageManifest, &manifest_json, None).map_err(spec_err)?;
        manifest_desc.set_platform(Some(platform));
        Ok((manifest_desc, vec![gz, config_json, manifest_json]))
    }

    /// Writes an OCI layout archive for `name` in one of the [`ArchiveLayout`]s.
    pub fn write_layout(
        &self,
        name: &str,
        path: &Path,
        layout: ArchiveLayout,
    ) -> Result<ImageArchive, ImageError> {
        let spec_err = |source| ImageError::Spec {
            image: name.to_owned(),
            source,
        };
        let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        let annotations: std::collections::HashMap<String, String> = [
            ("io.containerd.image.name".to_owned(), name.to_owned()),
            ("org.opencontainers.image.ref.name".to_owned(), tag.to_owned()),
        ]
        .into_iter()
        .collect();
        let index_of = |manifests: Vec<Descriptor>| -> Result<Vec<u8>, ImageError> {
            let index = ImageIndexBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageIndex)
                .manifests(manifests)
                .build()
                .map_err(spec_err)?;
            Ok(canonical_json(&index))
        };
        let (top, blobs) = match layout {
            ArchiveLayout::Amd64 | ArchiveLayout::Arm64 => {
                let arch = if layout == ArchiveLayout::Amd64 {
                    Arch::Amd64
                } else {
                    Arch::ARM64
                };
                let (mut desc, blobs) = self.platform_manifest(name, arch)?;
                desc.set_annotations(Some(annotations));
                (desc, blobs)
            }
            ArchiveLayout::Multi | ArchiveLayout::MultiPartial => {
                let (amd64, mut blobs) = self.platform_manifest(name, Arch::Amd64)?;
                let (arm64, arm64_blobs) = self.platform_manifest(name, Arch::ARM64)?;
                if layout == ArchiveLayout::Multi {
                    blobs.extend(arm64_blobs);
                }
                let nested = index_of(vec![amd64, arm64])?;
                let desc = descriptor(MediaType::ImageIndex, &nested, Some(annotations)).map_err(spec_err)?;
                blobs.push(nested);
                (desc, blobs)
            }
        };
        let manifest_digest = top.digest().to_string();
        let index_json = index_of(vec![top])?;

        let mut out = tar::Builder::new(Vec::new());
        append(&mut out, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        append(&mut out, "index.json", &index_json);
        let mut written = std::collections::BTreeSet::new();
        for data in &blobs {
            // The layer is shared by both architectures: one blob.
            let hex = layer_sha(data);
            if written.insert(hex.clone()) {
                append(&mut out, &format!("blobs/sha256/{hex}"), data);
            }
        }
        let bytes = out.into_inner().expect("writing a tar to memory cannot fail");
        let write_err = |source| ImageError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        std::fs::write(path, bytes).map_err(write_err)?;
        Ok(ImageArchive {
            name: name.to_owned(),
            path: path.to_owned(),
            manifest_digest,
        })
    }
}

/// What an archive holds, for the multi-platform import rows (scripts/notes/registry-facts.md §6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveLayout {
    /// One linux/amd64 manifest (what the harness uses everywhere else).
    #[default]
    Amd64,
    /// One linux/arm64 manifest: no image for this host's platform.
    Arm64,
    /// An image index of linux/amd64 and linux/arm64, every blob present.
    Multi,
    /// The same index with the arm64 manifest and config left out, as a single-platform
    /// pull or export leaves a multi-platform image.
    MultiPartial,
}

/// A busybox image from Debian's static busybox: `/bin/busybox` plus one link per applet.
pub fn busybox(busybox_binary: &Path) -> Result<ImageBuilder, ImageError> {
    let mut cmd = std::process::Command::new(busybox_binary);
    cmd.arg("--list");
    let out = crate::process::run(cmd, std::time::Duration::from_secs(10)).map_err(|source| {
        ImageError::Applets {
            path: busybox_binary.to_owned(),
            source,
        }
    })?;
    let mut image = ImageBuilder::new()
        .host_file("bin/busybox", busybox_binary, 0o755)?
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec(),
            0o644,
        )
        .file("etc/group", b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644)
        .dir("tmp")
        .dir("root")
        .cmd(&["sh"]);
    for applet in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if applet != "busybox" {
            image = image.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    Ok(image)
}

/// The sandbox (pause) image. With a real `pause` binary it is the upstream layout; without
/// one, busybox's shell holds the namespaces and exits cleanly on SIGTERM/SIGINT. Its timer
/// runs as `busybox sleep` so that no process is *named* `sleep`: in a pod that shares its PID
/// namespace every container sees the sandbox's processes, and critest's execSync-timeout
/// spec fails on any `pgrep sleep` match (it did, on every containerd, until this).
pub fn pause(pause_binary: Option<&Path>, busybox_binary: &Path) -> Result<ImageBuilder, ImageError> {
    match pause_binary {
        Some(binary) => Ok(ImageBuilder::new()
            .host_file("pause", binary, 0o755)?
            .entrypoint(&["/pause"])),
        None => Ok(ImageBuilder::new()
            .host_file("bin/busybox", busybox_binary, 0o755)?
            .symlink("bin/sh", "busybox")
            .entrypoint(&[
                "/bin/sh",
                "-c",
                "trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done",
            ])),
    }
}

/// Library paths from `ldd` output (`libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// the loader line `/lib64/ld-linux-x86-64.so.2 (0x...)`).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// JSON with sorted keys: oci-spec keeps annotations in a HashMap, whose order changes per run.
fn canonical_json(value: &impl serde::Serialize) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("OCI types serialise");
    serde_json::to_vec(&value).expect("json values serialise")
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_owned()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", layer_sha(data))
}

fn layer_sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip to memory cannot fail");
    encoder.finish().expect("gzip to memory cannot fail")
}

fn descriptor(
    media_type: MediaType,
    data: &[u8],
    annotations: Option<std::collections::HashMap<String, String>>,
) -> Result<Descriptor, oci_spec::OciSpecError> {
    let digest = Digest::from_str(&sha256(data))?;
    let mut builder = DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest)
        .size(data.len() as u64);
    if let Some(annotations) = annotations {
        builder = builder.annotations(annotations);
    }
    builder.build()
}

fn append(out: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_mtime(0);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_entry_type(tar::EntryType::Regular);
    out.append_data(&mut header, path, data)
        .expect("writing a tar to memory cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007fc25d9cb000)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    fn sample() -> ImageBuilder {
        ImageBuilder::new()
            .file("bin/hello", b"#!/bin/sh\necho hi\n".to_vec(), 0o755)
            .symlink("bin/hi", "hello")
            .cmd(&["/bin/hello"])
    }

    #[test]
    fn archives_are_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let a = sample()
            .write_archive("localhost/t/hello:1", &dir.path().join("a.tar"))
            .unwrap();
        let b = sample()
            .write_archive("localhost/t/hello:1", &dir.path().join("b.tar"))
            .unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!(
            layer_sha(&std::fs::read(&a.path).unwrap()),
            layer_sha(&std::fs::read(&b.path).unwrap())
        );
    }

    #[test]
    fn archive_is_an_oci_layout_naming_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let archive = sample()
            .write_archive("localhost/t/hello:1", &dir.path().join("a.tar"))
            .unwrap();
        let (names, index) = contents(&archive.path);
        assert!(names.contains(&"oci-layout".to_owned()));
        assert_eq!(names.iter().filter(|n| n.starts_with("blobs/sha256/")).count(), 3);
        let m = &index["manifests"][0];
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "localhost/t/hello:1"
        );
        assert_eq!(m["digest"], archive.manifest_digest.as_str());
        assert_eq!(m["platform"]["architecture"], "amd64");
    }

    /// Blob names of an archive and its parsed index.json.
    fn contents(path: &Path) -> (Vec<String>, serde_json::Value) {
        let mut tar = tar::Archive::new(std::fs::File::open(path).unwrap());
        let mut names = Vec::new();
        let mut index = String::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "index.json" {
                std::io::Read::read_to_string(&mut entry, &mut index).unwrap();
            }
            names.push(name);
        }
        (names, serde_json::from_str(&index).unwrap())
    }

    #[test]
    fn multi_platform_layouts_differ_only_in_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let write = |layout| {
            let path = dir.path().join(format!("{layout:?}.tar"));
            let archive = sample()
                .write_layout("localhost/t/hello:1", &path, layout)
                .unwrap();
            let (names, index) = contents(&path);
            (
                archive,
                names.into_iter().filter(|n| n.starts_with("blobs/")).count(),
                index,
            )
        };
        let (full, full_blobs, full_index) = write(ArchiveLayout::Multi);
        let (partial, partial_blobs, _) = write(ArchiveLayout::MultiPartial);
        // Same index (so the same image), two blobs fewer: arm64's config and manifest.
        assert_eq!(full.manifest_digest, partial.manifest_digest);
        // layer (shared) + 2 configs + 2 manifests + the nested index.
        assert_eq!(full_blobs, 6);
        assert_eq!(partial_blobs, 4);
        let top = &full_index["manifests"][0];
        assert_eq!(top["mediaType"], "application/vnd.oci.image.index.v1+json");
        assert_eq!(
            top["annotations"]["io.containerd.image.name"],
            "localhost/t/hello:1"
        );
        let (_, _, arm) = write(ArchiveLayout::Arm64);
        assert_eq!(arm["manifests"][0]["platform"]["architecture"], "arm64");
    }

    #[test]
    fn parents_are_added() {
        let tar = ImageBuilder::new().file("a/b/c", vec![], 0o644).layer_tar();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a/", "a/b/", "a/b/c"]);
    }
}
