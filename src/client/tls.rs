//! TLS for the client: how the server's certificate is verified, and one session store per FTP
//! session so that every data connection resumes the control connection's TLS session (FileZilla
//! Server 1.x and vsftpd with `require_ssl_reuse` refuse data connections that do not).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tracing::warn;

use super::ClientError;

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Against the system's trusted roots.
    SystemRoots,
    /// Against the certificates in this PEM file (a private CA, or a self-signed server).
    CaFile(PathBuf),
    /// Not at all (`--insecure`): anyone on the path can read and change the session.
    Insecure,
}

/// Builds the TLS configuration of one FTP session, with the session store its data connections
/// resume from.
pub(crate) fn client_config(
    verification: &Verification,
    tls12_only: bool,
) -> Result<(Arc<ClientConfig>, Arc<SessionStore>), ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut config = match verification {
        Verification::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Verification::CaFile(path) => builder
            .with_root_certificates(roots_from_file(path)?)
            .with_no_client_auth(),
        Verification::Insecure => {
            warn!(
                "TLS certificate verification is OFF (--insecure): the connection is encrypted but \
                 the server is not authenticated; use --ca-file with the server's certificate instead"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        }
    };
    // A store of this session's own: data connections resume the control session and nothing else.
    let sessions = Arc::new(SessionStore::default());
    config.resumption = Resumption::store(Arc::clone(&sessions) as Arc<dyn ClientSessionStore>);
    Ok((Arc::new(config), sessions))
}

/// The TLS sessions of one FTP session (one server name), counting the TLS 1.3 tickets it holds.
///
/// rustls spends each TLS 1.3 ticket once (RFC 8446 §C.4). A server that sends tickets only on the
/// control connection — ferry sends one — runs out after the first data connection; the client
/// must then know, before the next data connection, that it could not resume.
#[derive(Debug)]
pub(crate) struct SessionStore {
    inner: ClientSessionMemoryCache,
    tls13_tickets: AtomicUsize,
}

/// What [`ClientSessionMemoryCache`] keeps per server (it drops the oldest beyond that).
const TLS13_TICKETS_KEPT: usize = 8;

impl Default for SessionStore {
    fn default() -> Self {
        Self {
            // One server name per FTP session; a little room in case a name is ever added.
            inner: ClientSessionMemoryCache::new(4),
            tls13_tickets: AtomicUsize::new(0),
        }
    }
}

impl SessionStore {
    /// How many unused TLS 1.3 tickets the session holds.
    pub(crate) fn tls13_tickets(&self) -> usize {
        self.tls13_tickets.load(Ordering::Relaxed)
    }
}

impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(server_name, value);
        let _ = self
            .tls13_tickets
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n + 1).min(TLS13_TICKETS_KEPT))
            });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let ticket = self.inner.take_tls13_ticket(server_name);
        if ticket.is_some() {
            let _ = self
                .tls13_tickets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
        ticket
    }
}

/// A handshake failure as a message that says what to do about it.
pub(crate) fn describe_handshake_error(error: &std::io::Error) -> String {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(reason)) => format!(
            "certificate verification failed: the server's certificate is not trusted ({reason:?}); \
             pass the CA that signed it with --ca-file, or --insecure to skip verification"
        ),
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {error}"),
    }
}

/// The name the certificate must carry: the host as given (an IP address works too).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, ClientError> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| ClientError::Tls(format!("{host:?} is not a valid TLS server name")))
}

fn system_roots() -> Result<RootCertStore, ClientError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(ClientError::Tls(
            "no trusted root certificates found on this system; install ca-certificates or pass --ca-file"
                .to_owned(),
        ));
    }
    Ok(roots)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, ClientError> {
    let unreadable = |reason: String| {
        ClientError::Tls(format!(
            "cannot read the CA file {}: {reason}",
            path.display()
        ))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(unreadable("it holds no usable certificate".to_owned()));
    }
    Ok(roots)
}

/// `--insecure`: accepts any certificate, but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrusted_certificate_says_what_to_do() {
        let error = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let message = describe_handshake_error(&error);
        assert!(
            message.contains("certificate verification failed"),
            "{message}"
        );
        assert!(
            message.contains("UnknownIssuer") && message.contains("--ca-file"),
            "{message}"
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(describe_handshake_error(&reset).starts_with("TLS handshake failed"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let Err(ClientError::Tls(message)) =
            client_config(&Verification::CaFile(empty.clone()), false)
        else {
            panic!("an empty CA file was accepted");
        };
        assert!(message.contains("empty.pem"), "{message}");
        let missing = dir.path().join("missing.pem");
        assert!(client_config(&Verification::CaFile(missing), false).is_err());
    }
}
