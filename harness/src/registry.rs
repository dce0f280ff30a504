//! A real image registry on the node: Debian's `docker-registry`, over HTTPS with a server
//! certificate from a CA generated per run, or over plain HTTP.
//!
//! Invariant: the registry listens only on an address of the node's own network (containerd's
//! private namespace on the local target, the air-gapped guest in a VM), never on a host
//! interface; the CA's private key is never written anywhere (it lives in memory long enough
//! to sign the server certificate); the registry is a [`NodeService`], so it stops with the
//! trial that started it.
//!
//! Why a non-loopback address (`10.254.254.254` on `lo` of the node): containerd 1.7+
//! treats `127.0.0.1`/`localhost` registries as insecure (it retries with TLS verification
//! off, then plain HTTP) and 1.6 defaults them to plain HTTP, so a loopback registry can
//! never produce the "unknown authority" error the scenarios must observe
//! (scripts/notes/registry-facts.md §4, §8).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::node::NodeError;
use crate::provision::node_net::NodeService;
use crate::provision::Testbed;
use crate::wait::{wait_blocking, Attempt, WaitError};

pub use crate::provision::node_net::REGISTRY_IP;
pub const TLS_PORT: u16 = 5443;
pub const PLAIN_PORT: u16 = 5080;
/// A port nothing listens on: "registry down" is an instant connection refused.
pub const DOWN_PORT: u16 = 5999;
/// The registry answers `/v2/` 0.05-0.07 s after spawn here; 20 s covers a loaded TCG guest.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// One `skopeo copy` of a busybox archive takes about 0.3 s.
const PUSH_DEADLINE: Duration = Duration::from_secs(120);
const PROBE_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("failed to generate the {what} certificate")]
    Certificate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("failed to write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start docker-registry")]
    Spawn(#[source] NodeError),
    #[error("failed to prepare the registry on the node")]
    Node(#[source] NodeError),
    #[error("docker-registry on {addr} did not answer /v2/; its log ends with:\n{log_tail}")]
    NotReady {
        addr: String,
        #[source]
        source: WaitError,
        log_tail: String,
    },
    #[error("failed to push {archive} to {reference}")]
    Push {
        archive: PathBuf,
        reference: String,
        #[source]
        source: NodeError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The run's PKI: a CA (certificate only on disk), a server certificate it signed, and a
/// second, unrelated CA for "wrong CA" scenarios.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (what `hosts.toml`'s `ca` names).
    pub ca: PathBuf,
    /// A directory holding only `ca.crt`: skopeo's `--dest-cert-dir` takes a directory.
    pub ca_dir: PathBuf,
    /// A CA that did not sign the server certificate.
    pub wrong_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl Pki {
    /// Generates the CAs and a server certificate for `addresses` (IP SANs for IPs, DNS SANs
    /// otherwise) under `dir`. containerd checks the SAN against the host of the endpoint it
    /// dials, so every address a `hosts.toml` dials must be here.
    pub fn generate(dir: &Path, addresses: &[&str]) -> Result<Pki, RegistryError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose,
        };
        let cert_err = |what| move |source| RegistryError::Certificate { what, source };
        let ca_dir = dir.join("ca");
        std::fs::create_dir_all(&ca_dir).map_err(io_err(&ca_dir))?;

        let new_ca = |name: &str| -> Result<(String, Issuer<'static, KeyPair>), rcgen::Error> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            Ok((cert.pem(), Issuer::new(params, key)))
        };
        let (ca_pem, issuer) = new_ca("kata-harness test CA").map_err(cert_err("CA"))?;
        let (wrong_pem, _) = new_ca("kata-harness wrong CA").map_err(cert_err("wrong CA"))?;

        let mut params = CertificateParams::new(addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            .map_err(cert_err("server"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "registry.kata-harness.test");
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().map_err(cert_err("server"))?;
        let server = params
            .signed_by(&server_key, &issuer)
            .map_err(cert_err("server"))?;

        let pki = Pki {
            ca: ca_dir.join("ca.crt"),
            ca_dir: ca_dir.clone(),
            wrong_ca: dir.join("wrong-ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        };
        for (path, text) in [
            (&pki.ca, ca_pem),
            (&pki.wrong_ca, wrong_pem),
            (&pki.server_cert, server.pem()),
            (&pki.server_key, server_key.serialize_pem()),
        ] {
            std::fs::write(path, text).map_err(io_err(path))?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pki.server_key, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&pki.server_key))?;
        Ok(pki)
    }

    /// The same PKI with every path mapped (e.g. put on the node, returning the node's path).
    pub fn map_paths<E>(&self, mut f: impl FnMut(&Path) -> Result<PathBuf, E>) -> Result<Pki, E> {
        let ca = f(&self.ca)?;
        Ok(Pki {
            ca_dir: ca.parent().map(Path::to_owned).unwrap_or_default(),
            ca,
            wrong_ca: f(&self.wrong_ca)?,
            server_cert: f(&self.server_cert)?,
            server_key: f(&self.server_key)?,
        })
    }
}

/// A running docker-registry in the node's network.
pub struct Registry {
    /// `10.254.254.254:5443`: what image references and `hosts.toml` use.
    pub addr: String,
    pub tls: bool,
    /// The config as written on this host (the node has a copy at the same relative place).
    pub config: PathBuf,
    /// skopeo's `--dest-cert-dir` on the node.
    ca_dir: Option<PathBuf>,
    /// The registry's dir on the node (storage, skopeo's TMPDIR).
    node_dir: PathBuf,
    service: NodeService,
}

impl Registry {
    /// Writes a config under `dir` (a host dir under the testbed's run dir), starts
    /// docker-registry in the node's network and waits until `/v2/` answers (over TLS
    /// verified with the CA when `pki` is given; its paths are the node's).
    pub fn start(
        testbed: &Testbed,
        dir: &Path,
        addr: &str,
        pki: Option<&Pki>,
    ) -> Result<Registry, RegistryError> {
        let node_dir = testbed.node_path(dir);
        let storage = node_dir.join("storage");
        testbed.make_node_dir(&storage).map_err(RegistryError::Node)?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let config = dir.join("config.yml");
        std::fs::write(&config, config_yaml(addr, &storage, pki)).map_err(io_err(&config))?;
        let node_config = testbed.put_file(&config).map_err(RegistryError::Node)?;
        let argv = vec![
            "docker-registry".to_owned(),
            "serve".into(),
            node_config.to_string_lossy().into_owned(),
        ];
        // A fixed secret silences "No HTTP secret provided" (one registry instance, no HA).
        let mut service = testbed
            .spawn_service(
                "docker-registry",
                &argv,
                &[("REGISTRY_HTTP_SECRET", "kata-harness")],
                &dir.join("registry.log"),
            )
            .map_err(RegistryError::Spawn)?;
        let url = format!("{}://{addr}/v2/", if pki.is_some() { "https" } else { "http" });
        let mut probe = vec![
            "curl".to_owned(),
            "-sS".into(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
            "--max-time".into(),
            "2".into(),
        ];
        if let Some(pki) = pki {
            probe.extend(["--cacert".into(), pki.ca.to_string_lossy().into_owned()]);
        }
        probe.push(url.clone());
        let ready = wait_blocking(
            &format!("docker-registry to answer {url}"),
            READY_DEADLINE,
            Duration::from_millis(50),
            || {
                if let Some(status) = service.exited() {
                    return Attempt::Fatal(format!("docker-registry exited ({status})"));
                }
                match testbed.run_in_net(&probe, PROBE_DEADLINE) {
                    Ok(out) if out.stdout == b"200" => Attempt::Ready(()),
                    Ok(out) => Attempt::NotYet(format!(
                        "HTTP {} {}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                    Err(e) => Attempt::NotYet(e.to_string()),
                }
            },
        );
        if let Err(source) = ready {
            let log_tail = service.log_tail(20);
            service.stop();
            return Err(RegistryError::NotReady {
                addr: addr.into(),
                source,
                log_tail,
            });
        }
        Ok(Registry {
            addr: addr.into(),
            tls: pki.is_some(),
            config,
            ca_dir: pki.map(|p| p.ca_dir.clone()),
            node_dir,
            service,
        })
    }

    /// The `skopeo copy` command line (on the node, in its network) that pushes `archive`
    /// (a node path) as `<addr>/<repository>` (`--all` keeps a multi-platform index whole).
    /// skopeo unpacks the archive under TMPDIR: keep that in the registry's dir.
    pub fn push_argv(&self, archive: &Path, repository: &str, all: bool) -> Vec<String> {
        let mut argv = vec![
            "env".to_owned(),
            format!("TMPDIR={}", self.node_dir.display()),
            "skopeo".into(),
            "copy".into(),
            "--insecure-policy".into(),
        ];
        if all {
            argv.push("--all".into());
        }
        match &self.ca_dir {
            Some(dir) => argv.extend(["--dest-cert-dir".into(), dir.to_string_lossy().into_owned()]),
            None => argv.push("--dest-tls-verify=false".into()),
        }
        argv.push(format!("oci-archive:{}", archive.display()));
        argv.push(format!("docker://{}/{repository}", self.addr));
        argv
    }

    /// Pushes a harness-built OCI archive that is on the node; returns the full reference.
    pub fn push(
        &self,
        testbed: &Testbed,
        archive: &Path,
        repository: &str,
        all: bool,
    ) -> Result<String, RegistryError> {
        let reference = format!("{}/{repository}", self.addr);
        let argv = testbed.net_argv(&self.push_argv(archive, repository, all));
        testbed
            .node
            .run(&argv, PUSH_DEADLINE)
            .map_err(|source| RegistryError::Push {
                archive: archive.to_owned(),
                reference: reference.clone(),
                source,
            })?;
        Ok(reference)
    }

    /// The registry's log (access lines on stdout, logrus and TLS handshake errors on stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        self.service.log_tail(lines)
    }

    /// Whether the registry process has exited (it must not, mid-trial).
    pub fn exited(&mut self) -> Option<String> {
        self.service.exited()
    }

    pub fn stop(self) {
        self.service.stop();
    }
}

/// docker-registry's config: `version: 0.1` is required ("unsupported version" without it).
pub fn config_yaml(addr: &str, storage: &Path, pki: Option<&Pki>) -> String {
    let mut text = format!(
        "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        storage.display()
    );
    if let Some(pki) = pki {
        text.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            pki.server_cert.display(),
            pki.server_key.display()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn pki_writes_certificates_but_never_the_ca_key() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path(), &[REGISTRY_IP, "localhost"]).unwrap();
        let ca = std::fs::read_to_string(&pki.ca).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(ca, std::fs::read_to_string(&pki.wrong_ca).unwrap());
        let mut files: Vec<String> = walk(dir.path());
        files.sort();
        assert_eq!(files, ["ca/ca.crt", "server.crt", "server.key", "wrong-ca.crt"]);
        let key = std::fs::read_to_string(&pki.server_key).unwrap();
        assert!(key.contains("PRIVATE KEY"));
    }

    /// The server certificate verifies against the CA and not the wrong CA, for the IP SAN
    /// (openssl is the independent judge here).
    #[test]
    fn server_certificate_chains_to_the_ca_only() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path(), &[REGISTRY_IP]).unwrap();
        let verify = |ca: &Path| {
            Command::new("openssl")
                .args(["verify", "-verify_ip", REGISTRY_IP, "-CAfile"])
                .arg(ca)
                .arg(&pki.server_cert)
                .output()
        };
        let Ok(good) = verify(&pki.ca) else {
            eprintln!("no openssl here; skipping the chain check");
            return;
        };
        assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
        assert!(!verify(&pki.wrong_ca).unwrap().status.success());
    }

    #[test]
    fn config_has_version_and_tls_only_with_a_pki() {
        let plain = config_yaml("10.254.254.254:5080", Path::new("/s"), None);
        assert!(plain.starts_with("version: 0.1\n"));
        assert!(!plain.contains("tls:"));
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path(), &[REGISTRY_IP]).unwrap();
        let tls = config_yaml("10.254.254.254:5443", Path::new("/s"), Some(&pki));
        assert!(tls.contains("  tls:\n    certificate: "), "{tls}");
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                for inner in walk(&path) {
                    out.push(format!("{}/{inner}", entry.file_name().to_string_lossy()));
                }
            } else {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out
    }
}
