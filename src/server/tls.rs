//! FTPS (RFC 4217): certificates, reload on SIGHUP, and the TLS configurations of one session.
//!
//! Every control session gets its own configurations and TLS 1.2 session-id cache; session tickets
//! carry the control connection they were issued to (see [`super::resumption`]). A data connection
//! can therefore resume the control connection's TLS session, or one issued to another control
//! connection logged in as the same user from the same address — and nothing else: a thief who
//! races the client to a passive port cannot present one, which is what `--require-tls-resumption`
//! enforces (as FileZilla Server and vsftpd's `require_ssl_reuse` do).
//!
//! TLS 1.3 clients use a session ticket once (rustls and OpenSSL do; GnuTLS reuses), so a session
//! that requires resumption needs a fresh ticket for every data connection. rustls can only send
//! tickets right after a handshake, never later on demand, so the control connection sends
//! [`CONTROL_TICKETS`] of them, and each data connection that carries a download sends one more.
//! Upload data connections send none: a client that uploads and closes without reading them makes
//! the kernel reset the connection and the tail of the upload is lost. A TLS 1.3 client that only
//! uploads therefore runs out after [`CONTROL_TICKETS`] uploads (curl, which keeps only the newest
//! ticket, after one); TLS 1.2 sessions resume without limit, which is why ferry's own client falls
//! back to TLS 1.2 when a server refuses a data connection that did not resume.
//!
//! Virtual hosts (`[hosts."NAME"]` with `certfile`/`keyfile`) get their own certificates: a
//! client that names one in its handshake (SNI) is sent that certificate, any other client the
//! server's. The name then also picks the host (see `commands::host`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use super::resumption::{ControlBinding, LoginState, ResumedFrom, ResumptionRegistry};
use crate::auth::TlsRequirement;

/// TLS 1.3 session tickets sent on a control connection: as many as a rustls client keeps per
/// server, one per later data connection.
pub const CONTROL_TICKETS: usize = 8;

/// The marker in the subject of the certificate `ferry certs dev` makes.
pub const DEV_CERT_MARKER: &str = "ferry development certificate";

/// TLS settings of a server.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    /// What must be encrypted (accounts can require more, never less).
    pub required: TlsRequirement,
    /// Refuse data connections that do not resume a TLS session of their control connection or
    /// of another one logged in as the same user from the same address.
    pub require_resumption: bool,
    /// Allow CCC (clear the control channel after login), for NAT helpers that read it.
    pub allow_ccc: bool,
}

/// Why a certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read the certificate file {path}: {reason}")]
    ReadCertificate { path: PathBuf, reason: String },
    #[error("cannot read the private key file {path}: {reason}")]
    ReadKey { path: PathBuf, reason: String },
    #[error("{0} holds no certificate (expected PEM blocks of type CERTIFICATE)")]
    NoCertificate(PathBuf),
    #[error("the certificate {path} cannot be parsed: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error(
        "the certificate {path} expired at {not_after}; renew it (or run `ferry certs dev` for a development certificate)"
    )]
    Expired { path: PathBuf, not_after: String },
    #[error("the certificate {path} is not valid before {not_before}")]
    NotYetValid { path: PathBuf, not_before: String },
    #[error(
        "the private key {key} does not belong to the certificate {cert}; give the key the \
         certificate was made with"
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("the private key {key} cannot be used with the certificate {cert}: {reason}")]
    UnusableKey {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// A loaded certificate chain and key, checked for expiry and for matching each other.
#[derive(Debug)]
pub struct LoadedCertificate {
    pub key: Arc<CertifiedKey>,
    /// True for the certificate `ferry certs dev` makes.
    pub is_development: bool,
    /// The subject, for logs.
    pub subject: String,
}

/// Loads a PEM certificate chain and private key (RSA, ECDSA or Ed25519).
pub fn load_certificate(
    certfile: &Path,
    keyfile: &Path,
) -> Result<LoadedCertificate, CertificateError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certfile)
        .map_err(|e| CertificateError::ReadCertificate {
            path: certfile.to_owned(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError::ReadCertificate {
            path: certfile.to_owned(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(CertificateError::NoCertificate(certfile.to_owned()));
    };
    let (subject, is_development) = check_validity(certfile, leaf)?;
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| CertificateError::ReadKey {
        path: keyfile.to_owned(),
        reason: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, &crypto_provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => CertificateError::Mismatch {
                cert: certfile.to_owned(),
                key: keyfile.to_owned(),
            },
            other => CertificateError::UnusableKey {
                cert: certfile.to_owned(),
                key: keyfile.to_owned(),
                reason: other.to_string(),
            },
        })?;
    Ok(LoadedCertificate {
        key: Arc::new(certified),
        is_development,
        subject,
    })
}

fn check_validity(
    path: &Path,
    leaf: &CertificateDer<'_>,
) -> Result<(String, bool), CertificateError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
        CertificateError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        return Err(CertificateError::Expired {
            path: path.to_owned(),
            not_after: validity.not_after.to_string(),
        });
    }
    if validity.not_before.timestamp() > now {
        return Err(CertificateError::NotYetValid {
            path: path.to_owned(),
            not_before: validity.not_before.to_string(),
        });
    }
    let subject = cert.subject().to_string();
    let is_development = subject.contains(DEV_CERT_MARKER);
    Ok((subject, is_development))
}

/// The process's crypto provider (installed by `main`), else aws-lc-rs: library users and tests
/// need not install one first.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// A virtual host's own certificate: the names it is sent for, and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCertificate {
    /// Lower case: the host's name and aliases.
    pub names: Vec<String>,
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

/// The certificates of the virtual hosts, by name.
type CertificatesByName = BTreeMap<String, Arc<CertifiedKey>>;

/// The server's TLS state: settings and the current certificates, replaceable while running.
#[derive(Debug)]
pub struct TlsContext {
    pub settings: TlsSettings,
    current: RwLock<Arc<CertifiedKey>>,
    /// The virtual hosts' certificates, and where they are loaded from.
    hosts: RwLock<Arc<CertificatesByName>>,
    host_files: Vec<HostCertificate>,
    /// The ticket key and the control connections that sessions are issued to.
    resumption: Arc<ResumptionRegistry>,
}

impl TlsContext {
    /// Loads the certificate; an error here should stop the server from starting.
    pub fn new(settings: TlsSettings) -> Result<Self, CertificateError> {
        let loaded = load_certificate(&settings.certfile, &settings.keyfile)?;
        announce(&settings, &loaded);
        Ok(Self {
            current: RwLock::new(loaded.key),
            settings,
            hosts: RwLock::default(),
            host_files: Vec::new(),
            resumption: ResumptionRegistry::new(),
        })
    }

    /// Adds the virtual hosts' certificates, sent to clients that name a host in their
    /// handshake (SNI). An error here should stop the server from starting.
    pub fn with_host_certificates(
        mut self,
        hosts: Vec<HostCertificate>,
    ) -> Result<Self, CertificateError> {
        self.host_files = hosts;
        *self.hosts.get_mut().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(load_host_certificates(&self.host_files)?);
        Ok(self)
    }

    /// Reloads the certificates from disk (SIGHUP). New connections use them; running sessions
    /// keep theirs. On error the old certificates all stay in use.
    pub fn reload(&self) -> Result<(), CertificateError> {
        let loaded = load_certificate(&self.settings.certfile, &self.settings.keyfile)?;
        let hosts = load_host_certificates(&self.host_files)?;
        announce(&self.settings, &loaded);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded.key;
        *self.hosts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(hosts);
        Ok(())
    }

    /// Fresh configurations for one control session from `client_ip` (behind a balancer, the
    /// client its PROXY header names).
    pub(crate) fn session(&self, client_ip: IpAddr) -> SessionTls {
        let resolver = ByServerName {
            default: Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner())),
            hosts: Arc::clone(&self.hosts.read().unwrap_or_else(|e| e.into_inner())),
        };
        let mut control = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        control.session_storage = ServerSessionMemoryCache::new(8);
        let binding = self.resumption.bind(client_ip);
        if let Some(ticketer) = self.resumption.control_ticketer(&binding) {
            control.ticketer = ticketer;
        }
        control.send_tls13_tickets = CONTROL_TICKETS;
        let mut download = control.clone();
        download.send_tls13_tickets = 1;
        let mut upload = control.clone();
        upload.send_tls13_tickets = 0;
        SessionTls {
            control: Arc::new(control),
            download: Arc::new(download),
            upload: Arc::new(upload),
            binding,
            registry: Arc::clone(&self.resumption),
        }
    }
}

fn load_host_certificates(
    hosts: &[HostCertificate],
) -> Result<CertificatesByName, CertificateError> {
    let mut by_name = CertificatesByName::new();
    for host in hosts {
        let loaded = load_certificate(&host.certfile, &host.keyfile)?;
        info!(
            certificate = %host.certfile.display(),
            subject = loaded.subject,
            names = host.names.join(","),
            "TLS certificate of a virtual host loaded"
        );
        for name in &host.names {
            by_name.insert(name.clone(), Arc::clone(&loaded.key));
        }
    }
    Ok(by_name)
}

/// Picks the certificate of the host a client names in its handshake (SNI), else the server's.
#[derive(Debug)]
struct ByServerName {
    default: Arc<CertifiedKey>,
    hosts: Arc<CertificatesByName>,
}

impl ResolvesServerCert for ByServerName {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = client_hello
            .server_name()
            .and_then(|name| self.hosts.get(&name.to_ascii_lowercase()));
        Some(Arc::clone(named.unwrap_or(&self.default)))
    }
}

fn announce(settings: &TlsSettings, loaded: &LoadedCertificate) {
    info!(
        certificate = %settings.certfile.display(),
        subject = loaded.subject,
        "TLS certificate loaded"
    );
    if loaded.is_development {
        warn!(
            certificate = %settings.certfile.display(),
            "the development certificate is in use: clients cannot verify it; use a real certificate in production"
        );
    }
}

/// The TLS configurations of one control session; data connections resume its sessions.
#[derive(Debug)]
pub(crate) struct SessionTls {
    pub(crate) control: Arc<ServerConfig>,
    /// What data connections that carry a download or listing start from: the client reads them
    /// to the end, so they can hand it a fresh ticket for the next data connection.
    download: Arc<ServerConfig>,
    /// What data connections that carry an upload start from: no tickets (see the module notes).
    upload: Arc<ServerConfig>,
    /// Who the session's TLS sessions are issued to, for the resumption rule.
    binding: Arc<ControlBinding>,
    registry: Arc<ResumptionRegistry>,
}

impl SessionTls {
    /// Records where the session is in logging in, for the resumption rule.
    pub(crate) fn set_login(&self, state: LoginState) {
        self.binding.set_login(state);
    }

    /// The configuration of one data connection carrying bytes in `direction`, and what it will
    /// have resumed (`None` without session tickets). Each data connection gets its own ticketer
    /// to note that in; the TLS 1.2 session-id cache is the session's.
    pub(crate) fn data(&self, direction: Direction) -> (Arc<ServerConfig>, Option<ResumedFrom>) {
        let mut config = match direction {
            Direction::Download => ServerConfig::clone(&self.download),
            Direction::Upload => ServerConfig::clone(&self.upload),
        };
        let resumed = self
            .registry
            .data_ticketer(&self.binding)
            .map(|(ticketer, resumed)| {
                config.ticketer = ticketer;
                resumed
            });
        (Arc::new(config), resumed)
    }
}

/// Which way a transfer's bytes go, as seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// RETR and listings: the server sends.
    Download,
    /// STOR, APPE, STOU: the client sends.
    Upload,
}

/// Writes a self-signed certificate for localhost (`ferry certs dev`): `cert.pem` and `key.pem`.
pub fn write_development_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), std::io::Error> {
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(std::io::Error::other)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{DEV_CERT_MARKER} (localhost)"),
    );
    let key = rcgen::KeyPair::generate().map_err(std::io::Error::other)?;
    let cert = params.self_signed(&key).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem())?;
    // The key is its owner's alone from the moment it exists, whatever the umask; a key left
    // there before (perhaps readable by others) is replaced, not rewritten in place.
    match std::fs::remove_file(&key_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)?
    };
    std::io::Write::write_all(&mut file, key.serialize_pem().as_bytes())?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cert(dir: &Path, not_after: Option<(i32, u8, u8)>) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        if let Some((y, m, d)) = not_after {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_path = dir.join("c.pem");
        let key_path = dir.join("k.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    #[test]
    fn development_certificate_loads_and_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_development_certificate(dir.path()).unwrap();
        let loaded = load_certificate(&cert, &key).unwrap();
        assert!(loaded.is_development);
    }

    #[test]
    fn expired_certificate_is_refused_with_its_date() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_cert(dir.path(), Some((2001, 1, 1)));
        let error = load_certificate(&cert, &key).unwrap_err();
        assert!(matches!(error, CertificateError::Expired { .. }), "{error}");
        assert!(error.to_string().contains("2001"), "{error}");
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_cert(dir.path(), None);
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = write_cert(other.path(), None);
        let error = load_certificate(&cert, &other_key).unwrap_err();
        assert!(
            matches!(error, CertificateError::Mismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn missing_and_garbage_files_say_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let error = load_certificate(&missing, &missing).unwrap_err();
        assert!(error.to_string().contains("nope.pem"), "{error}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").unwrap();
        let error = load_certificate(&garbage, &garbage).unwrap_err();
        assert!(
            matches!(error, CertificateError::NoCertificate(_)),
            "{error}"
        );
    }

    #[test]
    fn each_session_gets_its_own_session_cache_and_each_data_connection_its_ticketer() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_development_certificate(dir.path()).unwrap();
        let context = TlsContext::new(TlsSettings {
            certfile: cert,
            keyfile: key,
            required: TlsRequirement::All,
            require_resumption: false,
            allow_ccc: false,
        })
        .unwrap();
        let ip = IpAddr::from([192, 0, 2, 1]);
        let a = context.session(ip);
        let b = context.session(ip);
        let (upload, _) = a.data(Direction::Upload);
        let (download, resumed) = a.data(Direction::Download);
        assert!(resumed.is_some());
        assert!(Arc::ptr_eq(
            &a.control.session_storage,
            &upload.session_storage
        ));
        // Each data connection notes what it resumed in a ticketer of its own.
        assert!(!Arc::ptr_eq(&a.control.ticketer, &download.ticketer));
        assert!(!Arc::ptr_eq(&upload.ticketer, &download.ticketer));
        assert!(!Arc::ptr_eq(
            &a.control.session_storage,
            &b.control.session_storage
        ));
        assert_eq!(upload.send_tls13_tickets, 0);
        assert_eq!(download.send_tls13_tickets, 1);
        assert_eq!(a.control.send_tls13_tickets, CONTROL_TICKETS);
    }
}
