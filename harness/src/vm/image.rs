//! Cached VM images built from `vm-images/<recipe>` by `scripts/build-vm-image`.
//!
//! Invariant: the cached image is read-only for the harness; every boot writes to its own
//! overlay. The image directory's `manifest.json` is the contract between the build script
//! and this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("failed to build VM image {recipe} (scripts/build-vm-image)")]
    Build {
        recipe: String,
        #[source]
        source: crate::process::ProcessError,
    },
    #[error("failed to read {path}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid image manifest: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("no VM image recipe {recipe:?} in {dir} (recipes: {known})")]
    UnknownRecipe {
        recipe: String,
        dir: PathBuf,
        known: String,
    },
}

/// How long a cold image build may take (the issue's target is 5 minutes; this is the ceiling).
const BUILD_DEADLINE: Duration = Duration::from_secs(1800);

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub recipe: String,
    pub hash: String,
    #[serde(default)]
    pub description: String,
    /// Guest kernel release, e.g. `6.1.0-56-amd64`.
    pub kernel: String,
    /// Debian package versions inside (containerd, runc, crun, ...).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    pub files: Files,
    pub cmdline: String,
    pub guest: Guest,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Files {
    pub disk: String,
    pub disk_format: String,
    /// The uncompressed kernel (PVH ELF): QEMU boots it directly, ~4 s faster under TCG
    /// than decompressing `bzimage`.
    #[serde(default)]
    pub kernel: Option<String>,
    /// The compressed kernel (bzImage).
    pub bzimage: String,
    pub initrd: String,
    pub ssh_key: String,
    pub known_hosts: String,
    pub host_key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Guest {
    pub ssh_user: String,
    pub ssh_port: u16,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Whether `vm-images/<recipe>/packages` installs QEMU (what Kata's guests run in there).
pub fn ships_qemu(repo: &Path, recipe: &str) -> bool {
    std::fs::read_to_string(repo.join("vm-images").join(recipe).join("packages")).is_ok_and(|text| {
        text.lines()
            .map(str::trim)
            .any(|line| line.split(['/', '=']).next() == Some("qemu-system-x86"))
    })
}

impl Image {
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn disk(&self) -> PathBuf {
        self.path(&self.manifest.files.disk)
    }

    /// The kernel to boot: the uncompressed one when the image has it.
    pub fn kernel(&self) -> PathBuf {
        self.path(
            self.manifest
                .files
                .kernel
                .as_deref()
                .unwrap_or(&self.manifest.files.bzimage),
        )
    }

    /// The bzImage (the KVM probe boots it: any bootable kernel of the image will do).
    pub fn bzimage(&self) -> PathBuf {
        self.path(&self.manifest.files.bzimage)
    }

    pub fn initrd(&self) -> PathBuf {
        self.path(&self.manifest.files.initrd)
    }

    pub fn ssh_key(&self) -> PathBuf {
        self.path(&self.manifest.files.ssh_key)
    }

    /// The pinned host public key (`ssh-ed25519 AAAA...`).
    pub fn host_key(&self) -> Result<String, ImageError> {
        let path = self.path(&self.manifest.files.host_key);
        std::fs::read_to_string(&path).map_err(|source| ImageError::Manifest { path, source })
    }

    /// Reads an image directory.
    pub fn open(dir: &Path) -> Result<Image, ImageError> {
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|source| ImageError::Manifest {
            path: path.clone(),
            source,
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| ImageError::BadManifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Image {
            dir: dir.to_owned(),
            manifest,
        })
    }

    /// Builds the recipe's image, or reuses the cached one (the script decides: it keys the
    /// cache by a hash of the recipe and itself). Build progress goes to our stderr.
    pub fn ensure(repo: &Path, recipe: &str) -> Result<Image, ImageError> {
        let recipes = repo.join("vm-images");
        if !recipes.join(recipe).join("recipe.conf").is_file() {
            let mut known: Vec<String> = std::fs::read_dir(&recipes)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| e.path().join("recipe.conf").is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            known.sort();
            return Err(ImageError::UnknownRecipe {
                recipe: recipe.into(),
                dir: recipes,
                known: known.join(", "),
            });
        }
        let mut cmd = Command::new(repo.join("scripts/build-vm-image"));
        cmd.arg(recipe);
        let out = crate::process::run_streaming_stderr(cmd, BUILD_DEADLINE).map_err(|source| {
            ImageError::Build {
                recipe: recipe.into(),
                source,
            }
        })?;
        let dir = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_owned();
        Image::open(Path::new(&dir))
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        let v = |k: &str| {
            self.manifest
                .versions
                .get(k)
                .cloned()
                .unwrap_or_else(|| "?".into())
        };
        format!(
            "image {}-{} (kernel {}, containerd {}, runc {}, crun {})",
            self.manifest.recipe,
            self.manifest.hash,
            self.manifest.kernel,
            v("containerd"),
            v("runc"),
            v("crun")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_build_scripts_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = r#"{"recipe":"bookworm","hash":"abc","kernel":"6.1.0-56-amd64",
          "versions":{"containerd":"1.6.20~ds1-1+deb12u3"},
          "files":{"disk":"disk.raw","disk_format":"raw","kernel":"vmlinux","bzimage":"vmlinuz",
            "initrd":"initrd.img","cmdline":"cmdline","ssh_key":"id_ed25519","known_hosts":"known_hosts",
            "host_key":"ssh_host_ed25519_key.pub","packages":"packages.txt"},
          "cmdline":"console=ttyS0","guest":{"ip":"10.0.2.15","ssh_user":"root","ssh_port":22}}"#;
        std::fs::write(dir.path().join("manifest.json"), manifest).unwrap();
        let image = Image::open(dir.path()).unwrap();
        assert_eq!(image.kernel(), dir.path().join("vmlinux"));
        assert_eq!(image.bzimage(), dir.path().join("vmlinuz"));
        assert!(image.describe().contains("containerd 1.6.20"));
    }

    #[test]
    fn unknown_recipe_lists_the_known_ones() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(repo.path().join("vm-images/bookworm")).unwrap();
        std::fs::write(
            repo.path().join("vm-images/bookworm/recipe.conf"),
            "suite = bookworm\n",
        )
        .unwrap();
        let err = Image::ensure(repo.path(), "bookwrom").unwrap_err().to_string();
        assert!(err.contains("bookwrom") && err.contains("bookworm"), "{err}");
    }
}
