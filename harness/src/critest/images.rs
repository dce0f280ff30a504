//! critest's default test images, rebuilt offline under their upstream names, and a mirror
//! registry in the node's network that serves them for `registry.k8s.io`, `k8s.gcr.io` and
//! `gcr.io` (containerd `certs.d` hosts files), so critest's pulls work with no internet.
//!
//! The names are critest 1.36's (`pkg/framework/util.go`, `pkg/validate/consts.go`); the
//! contents follow cri-tools' `images/` recipes on Debian's *dynamic* busybox (the static
//! one runs `ls` in its shell's process, which breaks the MaskedPaths spec). Debian's busybox
//! has no `pgrep` or `ipcs` applet: small shell scripts stand in (what the specs read is
//! the same). Applets are hard links, as in upstream's image, so masking `/bin/ls` masks
//! only `ls`. "nginx" is busybox httpd executed under the file name `nginx`, so its process
//! name is `nginx` (`pidof nginx`), started by a script whose command line reads `nginx:
//! master process` (what the ContainerPID spec looks for in `/proc/1/cmdline`) and which
//! writes `/var/run/nginx.pid` as nginx does. "httpd" is busybox httpd that says so in its
//! log. "nonewprivs" is a setuid-root program that prints its effective uid, compiled here
//! from the few lines of C below (the harness links with `cc` anyway).
//!
//! Invariant: every image is deterministic (the same digests on every run), the CRI sandbox
//! image (`provision::SANDBOX_IMAGE`) is never one of them (a spec removes
//! `registry.k8s.io/pause:3.9`), and the registry and the hosts files live only as long as
//! the [`Mirror`].

use std::path::{Path, PathBuf};

use crate::images::{self, ImageBuilder, ImageError};
use crate::provision::{Testbed, BUSYBOX_BINARY};
use crate::registry::{Pki, Registry, RegistryError, REGISTRY_IP, TLS_PORT};
use crate::render::hosts::HostsToml;

/// The upstream registries critest's images come from: each gets a `hosts.toml` that sends
/// it to the mirror (the upstream, tried last, is unreachable on the air-gapped node).
pub const MIRRORED: [&str; 3] = ["registry.k8s.io", "k8s.gcr.io", "gcr.io"];

/// Specs that cannot pass offline, whatever the runtime does: skipped with the reason.
pub const OFFLINE_SKIPS: [(&str, &str); 1] = [(
    "[k8s.io] Image Manager public image with digest should be pulled and removed [Conformance]",
    "pulls gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9a2f5bf..., a digest only upstream's own build has; an offline rebuild cannot reproduce it",
)];

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("failed to fetch Debian's dynamic busybox")]
    Busybox(#[from] crate::artifacts::deb::DebError),
    #[error("failed to build the test image {reference}")]
    Image {
        reference: String,
        #[source]
        source: ImageError,
    },
    #[error("failed to run the mirror registry")]
    Registry(#[from] RegistryError),
    #[error("failed to write the hosts file {path} on the node")]
    Hosts {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the testbed's containerd has no registry config_path (containerd < 1.5)")]
    NoConfigPath,
    #[error("failed to compile the nonewprivs program with cc")]
    Compile(#[source] crate::process::ProcessError),
    #[error("failed to write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One image and every upstream reference it is served under.
pub struct TestImage {
    pub references: Vec<String>,
    pub image: ImageBuilder,
}

/// `gcr.io/k8s-staging-cri-tools/`: critest's own test images.
const STAGING: &str = "gcr.io/k8s-staging-cri-tools";
/// `registry.k8s.io/e2e-test-images/`: Kubernetes' e2e images critest borrows.
const E2E: &str = "registry.k8s.io/e2e-test-images";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
";
const GROUP: &str = "root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
";

/// `pgrep NAME`: pids whose process name is NAME, exit 1 when none (as procps' pgrep).
const PGREP: &str = r#"#!/bin/sh
found=1
for d in /proc/[0-9]*; do
    if [ "$(cat "$d/comm" 2>/dev/null)" = "$1" ]; then echo "${d#/proc/}"; found=0; fi
done
exit $found
"#;

/// `ipcs -m`: the System V shared memory segments of this IPC namespace, with their ids
/// (what the HostIpc specs look for), from the kernel's own table.
const IPCS: &str = "#!/bin/sh\ncat /proc/sysvipc/shm\n";

/// The script pid 1 of an "nginx" container runs: its file name puts `nginx: master
/// process` into `/proc/1/cmdline`; it starts busybox httpd as `nginx` on `port`, records
/// that worker's pid, and stops it on SIGTERM (a shell as pid 1 ignores signals it does not
/// trap).
fn nginx_master(port: u16) -> String {
    format!(
        "mkdir -p /var/run
(exec -a httpd /usr/sbin/nginx -f -p {port} -h /usr/share/nginx/html) &
worker=$!
echo $worker > /var/run/nginx.pid
trap 'kill $worker; exit 0' TERM INT
wait $worker
"
    )
}
const NGINX_MASTER: &str = "/nginx: master process";

/// `nonewprivs`: run as a non-root user, a setuid-root program reports whether the kernel
/// let it gain root (`no_new_privs` unset) or not.
const NONEWPRIVS_C: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void) { printf("Effective uid: %d\n", (int)geteuid()); return 0; }
"#;
/// Compiling and linking the 3-line program.
const CC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Debian's dynamic busybox (`apt-get download busybox`, unpacked into the cache).
pub fn dynamic_busybox() -> Result<PathBuf, MirrorError> {
    let base = crate::profile::cache_dir().join("critest/debs");
    Ok(crate::artifacts::deb::unpack("busybox", &base)?.join("bin/busybox"))
}

/// The base of every test image: busybox with one link per applet, its libraries, users
/// and groups of upstream's busybox image, and the pgrep/ipcs stand-ins.
fn base(busybox: &Path, applets: &[String]) -> Result<ImageBuilder, ImageError> {
    let mut image = ImageBuilder::new()
        .host_file("bin/busybox", busybox, 0o755)?
        .with_libraries(&[busybox.to_owned()])?
        .file("etc/passwd", PASSWD.as_bytes().to_vec(), 0o644)
        .file("etc/group", GROUP.as_bytes().to_vec(), 0o644)
        .file("bin/pgrep", PGREP.as_bytes().to_vec(), 0o755)
        .file("bin/ipcs", IPCS.as_bytes().to_vec(), 0o755)
        .dir("tmp")
        .dir("root")
        .dir("var/run")
        .cmd(&["sh"]);
    for applet in applets.iter().filter(|a| *a != "busybox") {
        image = image.hardlink(&format!("bin/{applet}"), "bin/busybox");
    }
    Ok(image)
}

/// The nonewprivs program, compiled once into the cache (static: nothing else in the image).
fn nonewprivs_binary() -> Result<PathBuf, MirrorError> {
    use sha2::{Digest, Sha256};
    let key = hex::encode(&Sha256::digest(NONEWPRIVS_C.as_bytes())[..6]);
    let dir = crate::profile::cache_dir().join("critest/nonewprivs").join(key);
    let binary = dir.join("nnp");
    if binary.is_file() {
        return Ok(binary);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| MirrorError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let source = dir.join("nnp.c");
    std::fs::write(&source, NONEWPRIVS_C).map_err(io(&source))?;
    // Unique per builder: two builds at once each rename their own into place.
    let partial = dir.join(format!(
        "nnp.tmp.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut cc = std::process::Command::new("cc");
    cc.args(["-static", "-O2", "-o"]).arg(&partial).arg(&source);
    crate::process::run(cc, CC_DEADLINE).map_err(MirrorError::Compile)?;
    std::fs::rename(&partial, &binary).map_err(io(&binary))?;
    Ok(binary)
}

fn nginx(base: &ImageBuilder, busybox: &Path, port: u16) -> Result<ImageBuilder, ImageError> {
    Ok(base
        .clone()
        .host_file("usr/sbin/nginx", busybox, 0o755)?
        .file(
            "usr/share/nginx/html/index.html",
            b"<title>Welcome to nginx!</title>\n".to_vec(),
            0o644,
        )
        .file(NGINX_MASTER, nginx_master(port).into_bytes(), 0o755)
        .entrypoint(&["/bin/sh", NGINX_MASTER])
        .cmd(&[]))
}

/// Every image critest 1.36 pulls on Linux, under its upstream references.
pub fn test_images(busybox: &Path) -> Result<Vec<TestImage>, MirrorError> {
    let err = |reference: &str| {
        let reference = reference.to_owned();
        move |source| MirrorError::Image { reference, source }
    };
    let applets = applets(busybox).map_err(err("busybox"))?;
    let base = base(busybox, &applets).map_err(err("busybox"))?;
    let one = |reference: String, image: ImageBuilder| TestImage {
        references: vec![reference],
        image,
    };
    // A file named after the image makes images with different names differ (upstream's
    // image-test recipe: `ADD ${TEST} ${TEST}`).
    let marked = |name: &str| base.clone().file(name, Vec::new(), 0o644);
    let mut set = vec![
        one(format!("{E2E}/busybox:1.29-2"), base.clone()),
        one(
            format!("{E2E}/nginx:1.14-2"),
            nginx(&base, busybox, 80).map_err(err("nginx"))?,
        ),
        one(
            format!("{STAGING}/hostnet-nginx-amd64:latest"),
            // The port critest's hostnet-nginx image listens on (webServerHostNetContainerPort).
            nginx(&base, busybox, 12003).map_err(err("hostnet-nginx"))?,
        ),
        one(
            format!("{E2E}/httpd:2.4.39-4"),
            base.clone()
                .file("usr/local/apache2/htdocs/index.html", b"<html>It works!</html>\n".to_vec(), 0o644)
                // The multi-container spec looks for "httpd" in the container's log.
                .entrypoint(&[
                    "/bin/sh",
                    "-c",
                    "echo 'httpd: serving /usr/local/apache2/htdocs on port 80'; exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs",
                ])
                .cmd(&[]),
        ),
        one(
            format!("{E2E}/nonewprivs:1.3"),
            base.clone()
                .host_file("usr/local/bin/nnp", &nonewprivs_binary()?, 0o4755)
                .map_err(err("nonewprivs"))?
                .entrypoint(&["/usr/local/bin/nnp"])
                .cmd(&[]),
        ),
        one(format!("{STAGING}/test-image-latest:latest"), marked("test-image-latest")),
        TestImage {
            references: vec![
                format!("{STAGING}/test-image-tag:test"),
                format!("{STAGING}/test-image-tag:all"),
            ],
            image: marked("test-image-tag"),
        },
        TestImage {
            references: (1..=3).map(|n| format!("{STAGING}/test-image-tags:{n}")).collect(),
            image: marked("test-image-tags"),
        },
        TestImage {
            // One image under two registries (one digest, two tags). The marker keeps it
            // apart from the testbed's own pause image, built the same way: with that digest
            // it would carry the sandbox image's tag too, and a spec counts exactly two.
            references: vec!["registry.k8s.io/pause:3.9".into(), "k8s.gcr.io/pause:3.9".into()],
            image: images::pause(None, Path::new(BUSYBOX_BINARY))
                .map_err(err("pause:3.9"))?
                .file("critest-pause-3.9", Vec::new(), 0o644),
        },
    ];
    for n in 1..=3 {
        let name = format!("test-image-{n}");
        set.push(one(format!("{STAGING}/{name}:latest"), marked(&name)));
    }
    // images/build: IMAGE_USERS.
    for (name, user) in [
        ("test-image-user-uid", "1002"),
        ("test-image-user-username", "www-data"),
        ("test-image-user-uid-group", "1003:1004"),
        ("test-image-user-username-group", "www-data:1004"),
    ] {
        set.push(one(format!("{STAGING}/{name}:latest"), base.clone().user(user)));
    }
    // images/image-predefined-group: user 1000 in group 50000, declared in the image.
    let predefined = base
        .clone()
        .file(
            "etc/passwd",
            format!("{PASSWD}default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")
                .into_bytes(),
            0o644,
        )
        .file(
            "etc/group",
            format!("{GROUP}default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
                .into_bytes(),
            0o644,
        )
        .dir("home/default-user")
        .user("1000");
    set.push(one(
        format!("{STAGING}/test-image-predefined-group:latest"),
        predefined,
    ));
    Ok(set)
}

fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let mut cmd = std::process::Command::new(busybox);
    cmd.arg("--list");
    let out = crate::process::run(cmd, std::time::Duration::from_secs(10)).map_err(|source| {
        ImageError::Applets {
            path: busybox.to_owned(),
            source,
        }
    })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect())
}

/// `registry.k8s.io/e2e-test-images/busybox:1.29-2` -> `e2e-test-images/busybox:1.29-2`: the
/// path in the mirror (a mirror receives the repository without the upstream host).
pub fn mirror_path(reference: &str) -> &str {
    reference
        .split_once('/')
        .map(|(_, rest)| rest)
        .unwrap_or(reference)
}

/// The running mirror: the registry, and the hosts files that point the upstream names at it.
pub struct Mirror {
    registry: Registry,
    /// The hosts files' directories on the node (removed on [`Mirror::stop`]).
    hosts_dirs: Vec<PathBuf>,
    /// The rendered hosts files and the references served, for evidence.
    pub hosts_text: String,
}

impl Mirror {
    /// Builds the images, starts a TLS registry (CA generated per run) in the node's
    /// network, pushes every reference, and writes one `hosts.toml` per upstream registry.
    pub fn start(testbed: &Testbed, dir: &Path) -> Result<Mirror, MirrorError> {
        let config_path = testbed
            .config
            .registry_config_path
            .clone()
            .ok_or(MirrorError::NoConfigPath)?;
        let busybox = dynamic_busybox()?;
        let set = test_images(&busybox)?;
        let pki = Pki::generate(&dir.join("pki"), &[REGISTRY_IP])?;
        let pki = pki
            .map_paths(|p| testbed.put_file(p))
            .map_err(RegistryError::Node)?;
        let addr = format!("{REGISTRY_IP}:{TLS_PORT}");
        let registry = Registry::start(testbed, &dir.join("registry"), &addr, Some(&pki))?;
        let mut served = Vec::new();
        for (index, test_image) in set.iter().enumerate() {
            let first = &test_image.references[0];
            let archive = testbed
                .put_image(&format!("critest-{index}.tar"), first, &test_image.image)
                .map_err(|source| MirrorError::Image {
                    reference: first.clone(),
                    source,
                })?;
            for reference in &test_image.references {
                registry.push(testbed, &archive.path, mirror_path(reference), false)?;
                served.push(format!("# serves {reference}\n"));
            }
        }
        let url = format!("https://{addr}");
        let mut mirror = Mirror {
            registry,
            hosts_dirs: Vec::new(),
            hosts_text: served.concat(),
        };
        for namespace in MIRRORED {
            let hosts = HostsToml::mirror(namespace, &format!("https://{namespace}"), &url, Some(&pki.ca));
            if let Err(e) = mirror.write_hosts(testbed, &hosts, &config_path, dir) {
                // Undo the hosts files already written, and the registry.
                mirror.stop(testbed);
                return Err(e);
            }
        }
        Ok(mirror)
    }

    /// Writes one `certs.d/<namespace>/hosts.toml` on the node (staged under `dir`).
    fn write_hosts(
        &mut self,
        testbed: &Testbed,
        hosts: &HostsToml,
        config_path: &Path,
        dir: &Path,
    ) -> Result<(), MirrorError> {
        let text = hosts.render().expect("a mirror entry has a host");
        let node_path = hosts.path_under(config_path);
        let staged = dir.join("hosts").join(&hosts.namespace).join("hosts.toml");
        let hosts_err = |source: Box<dyn std::error::Error + Send + Sync>| MirrorError::Hosts {
            path: node_path.clone(),
            source,
        };
        std::fs::create_dir_all(staged.parent().expect("has a parent")).map_err(|e| hosts_err(e.into()))?;
        std::fs::write(&staged, &text).map_err(|e| hosts_err(e.into()))?;
        testbed
            .node
            .upload(&staged, &node_path)
            .map_err(|e| hosts_err(e.into()))?;
        self.hosts_text
            .push_str(&format!("# {}\n{text}\n", node_path.display()));
        self.hosts_dirs
            .push(node_path.parent().expect("has a parent").to_owned());
        Ok(())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.registry.log_tail(lines)
    }

    /// Whether the registry died (every later pull would fail for that reason).
    pub fn exited(&mut self) -> Option<String> {
        self.registry.exited()
    }

    /// Stops the registry and removes the hosts files.
    pub fn stop(self, testbed: &Testbed) {
        for dir in &self.hosts_dirs {
            if let Err(e) = testbed.remove_node_path(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "failed to remove a critest hosts dir");
            }
        }
        self.registry.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_paths_drop_the_upstream_host() {
        assert_eq!(
            mirror_path("registry.k8s.io/e2e-test-images/busybox:1.29-2"),
            "e2e-test-images/busybox:1.29-2"
        );
        assert_eq!(mirror_path("k8s.gcr.io/pause:3.9"), "pause:3.9");
    }

    #[test]
    fn the_sandbox_image_is_not_a_test_image() {
        // A spec removes registry.k8s.io/pause:3.9: the testbed's sandbox image must differ.
        assert_ne!(crate::provision::SANDBOX_IMAGE, "registry.k8s.io/pause:3.9");
        assert_ne!(crate::provision::SANDBOX_IMAGE, "k8s.gcr.io/pause:3.9");
    }

    #[test]
    fn critest_pause_is_not_the_sandbox_image() {
        let busybox = Path::new(BUSYBOX_BINARY);
        let set = test_images(busybox).unwrap();
        let pause = set
            .iter()
            .find(|i| i.references[0] == "registry.k8s.io/pause:3.9")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ours = pause.image.write_archive("a", &dir.path().join("a.tar")).unwrap();
        let sandbox = images::pause(None, busybox)
            .unwrap()
            .write_archive("a", &dir.path().join("b.tar"))
            .unwrap();
        assert_ne!(ours.manifest_digest, sandbox.manifest_digest);
    }

    #[test]
    fn every_test_image_is_under_a_mirrored_registry() {
        let busybox = Path::new(BUSYBOX_BINARY);
        let set = test_images(busybox).expect("images build from the static busybox too");
        let references: Vec<&String> = set.iter().flat_map(|i| &i.references).collect();
        assert_eq!(references.len(), 21);
        for reference in references {
            let host = reference.split('/').next().unwrap();
            assert!(MIRRORED.contains(&host), "{reference}");
        }
    }
}
