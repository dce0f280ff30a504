//! Kata artifacts in the kata-static layout (`opt/kata/...`), from one of three sources: the
//! source build (`scripts/build-kata`, cached), a local bundle (a directory or a tarball of
//! one, for air-gapped sites), or an upstream release (see [`super::kata_release`]).
//!
//! Invariant: a [`KataLayout`] exists only for a directory that holds everything a node needs
//! (a runtime's shim and its QEMU configuration, kernel, initrd or image, virtiofsd); what is
//! missing is named. A layout holds one or both runtimes ([`KataRuntime`]): Kata 4.x's release
//! unpacks runtime-rs and the Go shim into one tree.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::profile::cache_dir;

#[derive(Debug, thiserror::Error)]
pub enum KataError {
    #[error(
        "{dir} is not a Kata layout: {missing} is missing (expected the kata-static layout opt/kata/...)"
    )]
    Incomplete { dir: PathBuf, missing: String },
    #[error("Kata bundle {path} does not exist")]
    NoBundle { path: PathBuf },
    #[error("failed to unpack the Kata bundle {path}: {detail}")]
    Unpack { path: PathBuf, detail: String },
    #[error("failed to read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where a node sees the layout: upstream's configuration files, its QEMU's compiled-in data
/// directory and every path in them refer to it, so a node mounts the layout there.
pub const NODE_DIR: &str = "/opt/kata";

/// Which of Kata's two runtimes (containerd shims): the Go one (`bin/`, Kata 3.x's only one,
/// deprecated in 4.x) or runtime-rs (`runtime-rs/bin/`, Kata 4.x's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KataRuntime {
    Go,
    Rust,
}

impl KataRuntime {
    /// The shim, under `opt/kata`.
    pub fn shim_rel(self) -> &'static str {
        match self {
            KataRuntime::Go => "bin/containerd-shim-kata-v2",
            KataRuntime::Rust => "runtime-rs/bin/containerd-shim-kata-v2",
        }
    }

    /// Its QEMU configuration as upstream installs it, under `opt/kata`.
    pub fn config_rel(self) -> &'static str {
        match self {
            KataRuntime::Go => "share/defaults/kata-containers/configuration-qemu.toml",
            KataRuntime::Rust => {
                "share/defaults/kata-containers/runtime-rs/configuration-qemu-runtime-rs.toml"
            }
        }
    }

    /// The runtime handlers kata-deploy installs for it with QEMU: `kata` and `kata-qemu`
    /// (Go), `kata-qemu-runtime-rs` (the default of kata-deploy 4.x).
    pub fn handlers(self) -> &'static [&'static str] {
        match self {
            KataRuntime::Go => &["kata", "kata-qemu"],
            KataRuntime::Rust => &["kata-qemu-runtime-rs"],
        }
    }

    /// Which runtime a Kata handler (`kata-qemu-runtime-rs`) starts: kata-deploy names
    /// runtime-rs's handlers `*-runtime-rs`; `None` for a handler that is not Kata's.
    pub fn of_handler(handler: &str) -> Option<KataRuntime> {
        match handler.starts_with("kata") {
            false => None,
            true if handler.ends_with("-runtime-rs") => Some(KataRuntime::Rust),
            true => Some(KataRuntime::Go),
        }
    }

    /// The same for a runtime type (`io.containerd.kata-qemu-runtime-rs.v2`).
    pub fn of_runtime_type(runtime_type: &str) -> Option<KataRuntime> {
        let name = runtime_type.strip_prefix("io.containerd.")?.strip_suffix(".v2")?;
        KataRuntime::of_handler(name)
    }

    /// A node's folder for its configuration, wrappers, shim links and logs.
    pub fn install_dir(self) -> &'static str {
        match self {
            KataRuntime::Go => "kata",
            KataRuntime::Rust => "kata-rs",
        }
    }

    /// How reports name it.
    pub fn name(self) -> &'static str {
        match self {
            KataRuntime::Go => "Go runtime",
            KataRuntime::Rust => "Rust runtime (runtime-rs)",
        }
    }
}

/// Where a layout came from (reported on every Kata row).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KataSource {
    /// `scripts/build-kata` into the cache.
    SourceBuild,
    /// A user's directory or tarball.
    Bundle(PathBuf),
    /// An upstream kata-static release, verified against the lock file.
    Release(String),
}

impl fmt::Display for KataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KataSource::SourceBuild => write!(f, "source build"),
            KataSource::Bundle(path) => write!(f, "bundle {}", path.display()),
            KataSource::Release(version) => write!(f, "upstream release {version}"),
        }
    }
}

/// A complete Kata layout: `root` holds `opt/kata`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KataLayout {
    pub root: PathBuf,
    pub source: KataSource,
    /// What `containerd-shim-kata-v2 --version` would say, read from the layout's files.
    pub version: String,
}

impl KataLayout {
    /// Checks `root` (the directory holding `opt/kata`, or `opt/kata` itself).
    pub fn open(root: &Path, source: KataSource) -> Result<Self, KataError> {
        let root = if root.ends_with("opt/kata") {
            root.parent().and_then(Path::parent).unwrap_or(root).to_owned()
        } else {
            root.to_owned()
        };
        let layout = KataLayout {
            root,
            source,
            version: String::new(),
        };
        let kata = layout.kata_dir();
        if layout.runtimes().is_empty() {
            return Err(KataError::Incomplete {
                dir: kata,
                missing: format!(
                    "a runtime ({} with {}, or {} with {})",
                    KataRuntime::Go.shim_rel(),
                    KataRuntime::Go.config_rel(),
                    KataRuntime::Rust.shim_rel(),
                    KataRuntime::Rust.config_rel()
                ),
            });
        }
        let required: [(&str, Option<PathBuf>); 3] = [
            (
                "a guest kernel (share/kata-containers/vmlinux.container or vmlinuz.container)",
                layout.kernel(),
            ),
            (
                "a guest initrd or image (share/kata-containers/kata-containers-initrd.img or .img)",
                layout.guest_boot(),
            ),
            ("virtiofsd (libexec/virtiofsd)", layout.virtiofsd()),
        ];
        for (what, path) in required {
            if !path.is_some_and(|p| p.exists()) {
                return Err(KataError::Incomplete {
                    dir: kata,
                    missing: what.to_owned(),
                });
            }
        }
        let version = layout.read_version();
        Ok(KataLayout { version, ..layout })
    }

    pub fn kata_dir(&self) -> PathBuf {
        self.root.join("opt/kata")
    }

    /// Where a path the layout's configuration names (`/opt/kata/...`, as the node sees it)
    /// is on this host; a path outside `/opt/kata` is the same on both.
    pub fn on_host(&self, node_path: &Path) -> PathBuf {
        match node_path.strip_prefix(NODE_DIR) {
            Ok(rel) => self.kata_dir().join(rel),
            Err(_) => node_path.to_owned(),
        }
    }

    /// Where one of the layout's files is on a node (under [`NODE_DIR`]).
    pub fn on_node(&self, host_path: &Path) -> PathBuf {
        match host_path.strip_prefix(self.kata_dir()) {
            Ok(rel) => Path::new(NODE_DIR).join(rel),
            Err(_) => host_path.to_owned(),
        }
    }

    /// The runtimes this layout ships: a shim and its configuration each.
    pub fn runtimes(&self) -> Vec<KataRuntime> {
        [KataRuntime::Go, KataRuntime::Rust]
            .into_iter()
            .filter(|r| self.shim(*r).exists() && self.base_config(*r).exists())
            .collect()
    }

    pub fn shim(&self, runtime: KataRuntime) -> PathBuf {
        self.kata_dir().join(runtime.shim_rel())
    }

    /// What gets into a runtime's guest: `kata-runtime` (Go) or `kata-ctl` (runtime-rs).
    pub fn guest_exec_tool(&self, runtime: KataRuntime) -> PathBuf {
        match runtime {
            KataRuntime::Go => self.kata_runtime(),
            KataRuntime::Rust => self.kata_dir().join("bin/kata-ctl"),
        }
    }

    pub fn kata_runtime(&self) -> PathBuf {
        self.kata_dir().join("bin/kata-runtime")
    }

    pub fn base_config(&self, runtime: KataRuntime) -> PathBuf {
        self.kata_dir().join(runtime.config_rel())
    }

    fn share(&self) -> PathBuf {
        self.kata_dir().join("share/kata-containers")
    }

    pub fn kernel(&self) -> Option<PathBuf> {
        ["vmlinux.container", "vmlinuz.container"]
            .into_iter()
            .map(|name| self.share().join(name))
            .find(|p| p.exists())
    }

    /// The guest's root: the initrd (what our build ships) or upstream's rootfs image.
    pub fn guest_boot(&self) -> Option<PathBuf> {
        self.initrd().or_else(|| self.image())
    }

    /// The initrd, by the name its link points at where it is one (upstream and our builds
    /// name the file by version): beside another layout that ships an initrd of its own (the
    /// Go 3.x shim's next to runtime-rs 4.x's), that name still reaches this one.
    pub fn initrd(&self) -> Option<PathBuf> {
        let link = self.share().join("kata-containers-initrd.img");
        let named = match std::fs::read_link(&link) {
            Ok(target) if target.is_relative() && target.components().count() == 1 => {
                self.share().join(target)
            }
            _ => link,
        };
        Some(named).filter(|p| p.exists())
    }

    pub fn image(&self) -> Option<PathBuf> {
        Some(self.share().join("kata-containers.img")).filter(|p| p.exists())
    }

    /// virtiofsd where kata-static puts it (`libexec/`, or `libexec/kata-qemu/` in some releases).
    pub fn virtiofsd(&self) -> Option<PathBuf> {
        ["libexec/virtiofsd", "libexec/kata-qemu/virtiofsd"]
            .into_iter()
            .map(|rel| self.kata_dir().join(rel))
            .find(|p| p.exists())
    }

    /// The user-space vhost-user-vsock backend, shipped by our source build only.
    pub fn vsock_daemon(&self) -> Option<PathBuf> {
        Some(self.kata_dir().join("libexec/vhost-device-vsock")).filter(|p| p.exists())
    }

    /// Whether the shim can reach its agent through a user-space vsock backend (the
    /// `hybrid_vsock_daemon` setting of scripts/kata-patches/0001-*): upstream shims cannot.
    pub fn shim_supports_hybrid_vsock(&self, runtime: KataRuntime) -> bool {
        binary_contains(&self.shim(runtime), b"hybrid_vsock_daemon")
    }

    /// The Kata version: the source build's SOURCE manifest, else the layout's VERSION file,
    /// else what the shim says (`--version`).
    fn read_version(&self) -> String {
        let manifest = std::fs::read_to_string(self.root.join("SOURCE")).unwrap_or_default();
        if let Some(v) = super::provenance::manifest_value(&manifest, "kata-version") {
            return v.to_owned();
        }
        if let Ok(v) = std::fs::read_to_string(self.kata_dir().join("VERSION")) {
            return v.trim().to_owned();
        }
        self.runtimes()
            .first()
            .and_then(|r| self.shim_version(*r))
            .unwrap_or_else(|| "unknown".into())
    }

    /// What `containerd-shim-kata-v2 --version` says: `..., version: 3.30.0, commit: ...`.
    fn shim_version(&self, runtime: KataRuntime) -> Option<String> {
        let mut command = std::process::Command::new(self.shim(runtime));
        command.arg("--version");
        let out = crate::process::run(command, std::time::Duration::from_secs(10)).ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (_, rest) = text.split_once("version: ")?;
        let version = rest.split([',', ' ', '\n']).next()?.trim();
        (!version.is_empty()).then(|| version.to_owned())
    }

    /// How a source build was made, for reports: the script, its patches and any stand-in
    /// crate, from its SOURCE manifest; `None` for other layouts.
    pub fn built(&self, runtime: KataRuntime) -> Option<String> {
        if self.source != KataSource::SourceBuild {
            return None;
        }
        let manifest = std::fs::read_to_string(self.root.join("SOURCE")).ok()?;
        let values = |key: &str| -> Vec<String> {
            manifest
                .lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
                .map(str::to_owned)
                .collect()
        };
        let patches: Vec<String> = values("patch")
            .iter()
            .map(|p| p.split(" sha256 ").next().unwrap_or(p).to_owned())
            .collect();
        let stand_ins: Vec<String> = values("stand-in")
            .iter()
            .map(|s| s.split(", through").next().unwrap_or(s).to_owned())
            .collect();
        let script = match runtime {
            KataRuntime::Go => "scripts/build-kata",
            KataRuntime::Rust => "scripts/build-kata-rs",
        };
        let mut line = format!("built by {script}");
        if !patches.is_empty() {
            line += &format!("; patches: {}", patches.join(", "));
        }
        if !stand_ins.is_empty() {
            line += &format!("; stand-in crate: {}", stand_ins.join(", "));
        }
        Some(line)
    }

    /// One line for reports: version and source.
    pub fn describe(&self) -> String {
        format!("Kata {} ({})", self.version, self.source)
    }

    /// Which runtime a shim of the layout is, from its `--version` (`Kata Containers
    /// containerd shim (Golang): ...` or `(Rust)`): `Go runtime` or `Rust runtime
    /// (runtime-rs)`, with the version line.
    pub fn runtime_line(&self, runtime: KataRuntime) -> String {
        let shim = self.shim(runtime);
        let mut command = std::process::Command::new(&shim);
        command.arg("--version");
        let line = crate::process::run(command, std::time::Duration::from_secs(10))
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default();
        let kind = if line.contains("(Golang)") {
            KataRuntime::Go.name()
        } else if line.contains("(Rust)") {
            KataRuntime::Rust.name()
        } else {
            return format!("runtime unknown ({} --version said {line:?})", shim.display());
        };
        format!("{kind}: {line}")
    }
}

fn binary_contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

/// Which Kata a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KataChoice {
    /// `$KATA_HARNESS_KATA_BUNDLE`, else what scripts/setup installed in the cache (the
    /// source build or an upstream release), else none.
    Default,
    /// `--kata-bundle DIR|TARBALL`.
    Bundle(PathBuf),
    /// `--kata-release VERSION`: resolved by the caller (it downloads) into a directory.
    Resolved(KataLayout),
}

/// The source build's stable link (`scripts/build-kata`).
pub fn source_build_dir() -> PathBuf {
    cache_dir().join("kata/source")
}

/// runtime-rs's source build's stable link (`scripts/build-kata-rs`).
pub fn rs_source_build_dir() -> PathBuf {
    cache_dir().join("kata-rs/source")
}

/// The runtime-rs scripts/setup chose: a link to the source build or to a Kata 4.x release
/// (`scripts/fetch-release kata-rs`).
pub fn rs_current_dir() -> PathBuf {
    cache_dir().join("kata-rs/current")
}

/// The Kata scripts/setup chose (a source build, or an upstream release it fetched): a link
/// to that layout.
pub fn current_dir() -> PathBuf {
    cache_dir().join("kata/current")
}

/// What a cached layout was installed from, by its manifest: the upstream release it was
/// unpacked from (`source: upstream release`), else a source build.
pub fn installed_source(dir: &Path) -> KataSource {
    let manifest = std::fs::read_to_string(dir.join("SOURCE")).unwrap_or_default();
    let value = |key| super::provenance::manifest_value(&manifest, key);
    match (value("source"), value("kata-version")) {
        (Some("upstream release"), Some(version)) => KataSource::Release(version.to_owned()),
        _ => KataSource::SourceBuild,
    }
}

impl KataChoice {
    /// The layout, or `None` when the default finds no Kata (then the Kata rows are skipped
    /// with that reason). An explicit bundle that is missing or incomplete is an error.
    pub fn locate(&self) -> Result<Option<KataLayout>, KataError> {
        match self {
            KataChoice::Resolved(layout) => Ok(Some(layout.clone())),
            KataChoice::Bundle(path) => open_bundle(path).map(Some),
            KataChoice::Default => match std::env::var_os("KATA_HARNESS_KATA_BUNDLE") {
                Some(path) if !path.is_empty() => open_bundle(Path::new(&path)).map(Some),
                _ => match [current_dir(), source_build_dir()]
                    .into_iter()
                    .find(|d| d.exists())
                {
                    Some(dir) => {
                        let source = installed_source(&dir);
                        KataLayout::open(&dir, source).map(Some)
                    }
                    None => Ok(None),
                },
            },
        }
    }
}

impl KataChoice {
    /// Where runtime-rs comes from: `chosen` (the layout [`Self::locate`] found) where it ships
    /// runtime-rs (Kata 4.x's release pair, a bundle), else for the default choice
    /// scripts/build-kata-rs's build; `None` when neither has it.
    pub fn locate_rs(&self, chosen: Option<&KataLayout>) -> Result<Option<KataLayout>, KataError> {
        if let Some(layout) = chosen.filter(|l| l.runtimes().contains(&KataRuntime::Rust)) {
            return Ok(Some(layout.clone()));
        }
        let bundle_set = std::env::var_os("KATA_HARNESS_KATA_BUNDLE").is_some_and(|p| !p.is_empty());
        let found = [rs_current_dir(), rs_source_build_dir()]
            .into_iter()
            .find(|d| d.exists());
        match (self, found) {
            (KataChoice::Default, Some(dir)) if !bundle_set => {
                KataLayout::open(&dir, installed_source(&dir)).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// A bundle directory as it is, or a tarball unpacked once into the cache by its sha256
/// (visible only when complete: unpacked into a temporary name, then renamed).
pub fn open_bundle(path: &Path) -> Result<KataLayout, KataError> {
    if !path.exists() {
        return Err(KataError::NoBundle { path: path.into() });
    }
    let source = KataSource::Bundle(path.to_owned());
    if path.is_dir() {
        return KataLayout::open(path, source);
    }
    let dir = unpack_tarball(path, &cache_dir().join("kata/bundles"))?;
    KataLayout::open(&dir, source)
}

/// Unpacks a kata-static tarball (`.tar.xz`, `.tar.zst`, `.tar.gz`, `.tar`) into
/// `<parent>/<sha256 prefix>/` and returns that directory; a second call unpacks nothing.
pub fn unpack_tarball(path: &Path, parent: &Path) -> Result<PathBuf, KataError> {
    use sha2::{Digest, Sha256};
    let io = |source| KataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io)?;
    let digest = hex(&hasher.finalize());
    let dir = parent.join(&digest[..16]);
    if dir.join("opt/kata").is_dir() {
        return Ok(dir);
    }
    let tmp = parent.join(format!(".{}.{}", &digest[..16], std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|source| KataError::Io {
        path: tmp.clone(),
        source,
    })?;
    let name = path.to_string_lossy();
    let decompress = if name.ends_with(".zst") {
        "--zstd"
    } else if name.ends_with(".xz") {
        "--xz"
    } else if name.ends_with(".gz") || name.ends_with(".tgz") {
        "--gzip"
    } else {
        "--no-auto-compress"
    };
    let mut tar = std::process::Command::new("tar");
    tar.arg(decompress).arg("-xf").arg(path).arg("-C").arg(&tmp);
    let unpacked = crate::process::run(tar, std::time::Duration::from_secs(600));
    let fail = |detail: String| {
        let _ = std::fs::remove_dir_all(&tmp);
        KataError::Unpack {
            path: path.to_owned(),
            detail,
        }
    };
    if let Err(e) = unpacked {
        return Err(fail(crate::errors::chain(&e)));
    }
    if !tmp.join("opt/kata").is_dir() {
        return Err(fail("it has no opt/kata/ (not a kata-static tarball)".into()));
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|source| KataError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_layout_says_whether_it_is_an_upstream_release() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(installed_source(dir.path()), KataSource::SourceBuild);
        std::fs::write(
            dir.path().join("SOURCE"),
            "kata-version: 3.30.0\nsource: upstream release\n",
        )
        .unwrap();
        assert_eq!(installed_source(dir.path()), KataSource::Release("3.30.0".into()));
        std::fs::write(
            dir.path().join("SOURCE"),
            "kata-version: 3.30.0\nlayout-key: ab\n",
        )
        .unwrap();
        assert_eq!(installed_source(dir.path()), KataSource::SourceBuild);
    }

    fn fake_layout(dir: &Path, with_kernel: bool) {
        let k = dir.join("opt/kata");
        for rel in [
            "bin/containerd-shim-kata-v2",
            "share/defaults/kata-containers/configuration-qemu.toml",
            "share/kata-containers/kata-containers-initrd.img",
            "libexec/virtiofsd",
        ] {
            std::fs::create_dir_all(k.join(rel).parent().unwrap()).unwrap();
            std::fs::write(k.join(rel), "x").unwrap();
        }
        if with_kernel {
            std::fs::write(k.join("share/kata-containers/vmlinux.container"), "x").unwrap();
        }
        std::fs::write(dir.join("SOURCE"), "kata-version: 3.30.0\n").unwrap();
    }

    #[test]
    fn a_complete_layout_opens_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        fake_layout(dir.path(), true);
        let layout = KataLayout::open(dir.path(), KataSource::SourceBuild).unwrap();
        assert_eq!(layout.version, "3.30.0");
        assert_eq!(
            layout.initrd().unwrap(),
            dir.path()
                .join("opt/kata/share/kata-containers/kata-containers-initrd.img")
        );
        assert!(
            !layout.shim_supports_hybrid_vsock(KataRuntime::Go),
            "a shim without the setting"
        );
        assert_eq!(layout.runtimes(), vec![KataRuntime::Go]);
        assert_eq!(
            layout.built(KataRuntime::Go).as_deref(),
            Some("built by scripts/build-kata")
        );
        // opt/kata itself names the same layout.
        let same = KataLayout::open(&dir.path().join("opt/kata"), KataSource::SourceBuild).unwrap();
        assert_eq!(same.root, dir.path());
    }

    #[test]
    fn a_layout_without_a_kernel_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        fake_layout(dir.path(), false);
        let err = KataLayout::open(dir.path(), KataSource::SourceBuild)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a guest kernel"), "{err}");
    }

    #[test]
    fn a_runtime_rs_layout_opens_and_finds_its_versioned_initrd() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("opt/kata");
        let share = k.join("share/kata-containers");
        for rel in [
            KataRuntime::Rust.shim_rel(),
            KataRuntime::Rust.config_rel(),
            "share/kata-containers/kata-containers-initrd-4.1.0.img",
            "share/kata-containers/vmlinux.container",
            "libexec/virtiofsd",
        ] {
            std::fs::create_dir_all(k.join(rel).parent().unwrap()).unwrap();
            std::fs::write(k.join(rel), "x").unwrap();
        }
        std::os::unix::fs::symlink(
            "kata-containers-initrd-4.1.0.img",
            share.join("kata-containers-initrd.img"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("SOURCE"),
            "kata-version: 4.1.0\npatch: runtime-rs/0001-a.patch sha256 ab\npatch: runtime-rs/0002-b.patch sha256 cd\n\
             stand-in: pcilibs-rs 0.1.0 = scripts/kata-rs-stand-ins/pcilibs-rs for https://github.com/zvonkok/pcilibs-rs, through [patch]\n",
        )
        .unwrap();
        let layout = KataLayout::open(dir.path(), KataSource::SourceBuild).unwrap();
        assert_eq!(layout.runtimes(), vec![KataRuntime::Rust]);
        assert_eq!(
            layout.built(KataRuntime::Rust).as_deref(),
            Some("built by scripts/build-kata-rs; patches: runtime-rs/0001-a.patch, runtime-rs/0002-b.patch; stand-in crate: pcilibs-rs 0.1.0 = scripts/kata-rs-stand-ins/pcilibs-rs for https://github.com/zvonkok/pcilibs-rs")
        );
        let released = KataLayout::open(dir.path(), KataSource::Release("4.1.0".into())).unwrap();
        assert_eq!(released.built(KataRuntime::Rust), None);
        assert_eq!(
            layout.initrd().unwrap(),
            share.join("kata-containers-initrd-4.1.0.img")
        );
        // Neither runtime: the error names both.
        std::fs::remove_file(k.join(KataRuntime::Rust.shim_rel())).unwrap();
        let err = KataLayout::open(dir.path(), KataSource::SourceBuild)
            .unwrap_err()
            .to_string();
        assert!(err.contains("runtime-rs/bin/containerd-shim-kata-v2"), "{err}");
        assert!(err.contains("configuration-qemu.toml"), "{err}");
    }

    #[test]
    fn runtime_types_name_their_runtime() {
        for (runtime_type, want) in [
            ("io.containerd.kata.v2", Some(KataRuntime::Go)),
            ("io.containerd.kata-qemu.v2", Some(KataRuntime::Go)),
            ("io.containerd.kata-qemu-runtime-rs.v2", Some(KataRuntime::Rust)),
            ("io.containerd.runc.v2", None),
            ("kata-qemu-runtime-rs", None),
        ] {
            assert_eq!(KataRuntime::of_runtime_type(runtime_type), want, "{runtime_type}");
        }
    }

    #[test]
    fn a_tarball_unpacks_once_by_content() {
        let src = tempfile::tempdir().unwrap();
        fake_layout(src.path(), true);
        let out = tempfile::tempdir().unwrap();
        let tarball = out.path().join("kata-static-3.30.0-amd64.tar.xz");
        let status = std::process::Command::new("tar")
            .arg("-C")
            .arg(src.path())
            .args(["--xz", "-cf"])
            .arg(&tarball)
            .arg("./opt/kata")
            .status()
            .unwrap();
        assert!(status.success());
        let cache = out.path().join("bundles");
        let first = unpack_tarball(&tarball, &cache).unwrap();
        let second = unpack_tarball(&tarball, &cache).unwrap();
        assert_eq!(first, second);
        assert!(first.join("opt/kata/bin/containerd-shim-kata-v2").exists());
        // Not a kata-static tarball: an error naming the file, nothing left half-unpacked.
        let bogus = out.path().join("bogus.tar");
        std::process::Command::new("tar")
            .arg("-C")
            .arg(src.path())
            .arg("-cf")
            .arg(&bogus)
            .arg("SOURCE")
            .status()
            .unwrap();
        let err = unpack_tarball(&bogus, &cache).unwrap_err().to_string();
        assert!(err.contains("bogus.tar") && err.contains("no opt/kata"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "only the good bundle: {left:?}");
    }
}
