//! Saved states of provisioned VMs, kept next to their image: boot and provision once, then
//! every later VM of the same image, QEMU, command line and provisioning starts from the
//! state in a second or two instead of booting.
//!
//! Invariant: a saved state is found only under the key of everything it depends on (the
//! QEMU build, the image's files, the command line, the caller's provisioning fingerprint),
//! so a mismatch is simply a miss (a cold boot, said in the report); it is published whole
//! (written under a temporary name, then renamed) and never written afterwards: each VM
//! copies it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::image::Image;

/// Where saved states live: `<image dir>/saved-<key>/` with `state.qcow2` and `meta.json`.
const PREFIX: &str = "saved-";

/// The key of a saved state: a hash of every input it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub String);

impl Key {
    /// `machine_shape` is [`super::qemu::machine_shape`]; `provisioning` whatever the caller
    /// did to the guest before saving (its code and inputs).
    pub fn new(image: &Image, machine_shape: &[String], provisioning: &str) -> Key {
        let mut hash = Sha256::new();
        hash.update(qemu_version().as_bytes());
        hash.update(image.dir.to_string_lossy().as_bytes());
        for file in [image.disk(), image.kernel(), image.initrd()] {
            hash.update(file_identity(&file).as_bytes());
        }
        for arg in machine_shape {
            hash.update(arg.as_bytes());
            hash.update([0]);
        }
        hash.update(provisioning.as_bytes());
        Key(hex::encode(&hash.finalize()[..8]))
    }
}

/// A file's identity for a key: its path, size and modification time (hashing a disk
/// image of gigabytes at every start would cost more than the boot it saves).
pub fn file_identity(path: &Path) -> String {
    let meta = std::fs::metadata(path);
    let (len, modified) = meta.map(|m| (m.len(), m.modified().ok())).unwrap_or((0, None));
    format!("{}:{len}:{modified:?}", path.display())
}

fn qemu_version() -> String {
    std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// A saved state on disk.
#[derive(Debug, Clone)]
pub struct Saved {
    pub dir: PathBuf,
    pub key: Key,
}

impl Saved {
    /// The qcow2 holding the state ([`super::qemu::SNAPSHOT_TAG`]); copy it, never write it.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.qcow2")
    }

    /// What the caller stored with the state (what provisioning learned about the guest).
    pub fn meta(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.dir.join("meta.json"))
    }

    /// Removes a saved state that failed to restore, so the next start boots and saves anew.
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The saved state under `key`, if one is complete.
pub fn find(image: &Image, key: &Key) -> Option<Saved> {
    let dir = image.dir.join(format!("{PREFIX}{}", key.0));
    (dir.join("state.qcow2").is_file() && dir.join("meta.json").is_file()).then(|| Saved {
        dir,
        key: key.clone(),
    })
}

/// Publishes `overlay` (a VM's overlay after `savevm`) with `meta` as the saved state under
/// `key`, and removes the image's older saved states (each is a few hundred MB). Another
/// process that published the same key first wins; its state is as good as ours.
pub fn publish(image: &Image, key: &Key, overlay: &Path, meta: &str) -> std::io::Result<Saved> {
    let fin = image.dir.join(format!("{PREFIX}{}", key.0));
    let tmp = image
        .dir
        .join(format!(".{PREFIX}{}.{}", key.0, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let written = std::fs::copy(overlay, tmp.join("state.qcow2"))
        .and_then(|_| std::fs::write(tmp.join("meta.json"), meta));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, &fin).is_err() {
        // Published meanwhile by another run (rename onto a non-empty dir fails).
        let _ = std::fs::remove_dir_all(&tmp);
    }
    for entry in std::fs::read_dir(&image.dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && name != format!("{PREFIX}{}", key.0) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(Saved {
        dir: fin,
        key: key.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_in(dir: &Path) -> Image {
        let manifest = r#"{"recipe":"t","hash":"abc","kernel":"6.1.0-56-amd64",
          "versions":{"containerd":"1.6.20~ds1-1+deb12u3"},"files":{"disk":"disk.raw","disk_format":"raw","kernel":"vmlinux","bzimage":"vmlinuz",
          "initrd":"initrd.img","cmdline":"cmdline","ssh_key":"id_ed25519","known_hosts":"known_hosts",
          "host_key":"ssh_host_ed25519_key.pub","packages":"packages.txt"},
          "cmdline":"console=ttyS0","guest":{"ip":"10.0.2.15","ssh_user":"root","ssh_port":22}}"#;
        std::fs::write(dir.join("manifest.json"), manifest).unwrap();
        std::fs::write(dir.join("disk.raw"), b"disk").unwrap();
        Image::open(dir).unwrap()
    }

    #[test]
    fn a_key_changes_with_the_image_the_command_line_and_the_provisioning() {
        let dir = tempfile::tempdir().unwrap();
        let image = image_in(dir.path());
        let shape = vec!["-m".to_owned(), "2048".to_owned()];
        let key = Key::new(&image, &shape, "p1");
        assert_eq!(key, Key::new(&image, &shape, "p1"));
        assert_ne!(key, Key::new(&image, &shape, "p2"));
        assert_ne!(key, Key::new(&image, &["-m".to_owned(), "4096".to_owned()], "p1"));
        std::fs::write(dir.path().join("disk.raw"), b"a rebuilt disk").unwrap();
        assert_ne!(key, Key::new(&image, &shape, "p1"));
    }

    #[test]
    fn a_published_state_is_found_under_its_key_only_and_replaces_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let image = image_in(dir.path());
        let overlay = dir.path().join("overlay.qcow2");
        std::fs::write(&overlay, b"state").unwrap();
        let old = publish(&image, &Key("old".into()), &overlay, "{}").unwrap();
        assert!(find(&image, &Key("old".into())).is_some());
        let new = publish(&image, &Key("new".into()), &overlay, "{\"a\":1}").unwrap();
        assert!(!old.dir.exists(), "the older state is removed");
        assert!(find(&image, &Key("old".into())).is_none());
        let found = find(&image, &Key("new".into())).unwrap();
        assert_eq!(found.dir, new.dir);
        assert_eq!(found.meta().unwrap(), "{\"a\":1}");
        assert_eq!(std::fs::read(found.state()).unwrap(), b"state");
        found.discard();
        assert!(find(&image, &Key("new".into())).is_none());
    }
}
