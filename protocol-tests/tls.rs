//! FTPS (RFC 4217): explicit and implicit TLS with curl, lftp, Python's ftplib and suppaftp
//! (rustls), the policies (`--tls-required`, per account, resumption), and hand-driven TLS
//! dialogues for what clients never do: commands piggy-backed on AUTH TLS, CCC, REIN, a data
//! connection that never starts its handshake, a certificate reloaded while sessions run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferry::auth::TlsRequirement;
use ferry::auth::store::AccountStore;
use ferry::server::tls::{CertificateError, load_certificate};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::dialogue::Dialogue;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(120);

fn cacert() -> String {
    dev_certificate().0.display().to_string()
}

/// `ftp://alice:pass@127.0.0.1:PORT/` or `ftps://...` on the given port.
fn url_on(scheme: &str, port: u16) -> String {
    format!(
        "{scheme}://{USER}:{}@127.0.0.1:{port}/",
        PASSWORD.replace(' ', "%20")
    )
}

fn curl(args: &[&str]) -> std::process::Output {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(cacert())
        .args(args);
    run_with_timeout(&mut command, LIMIT)
}

fn lftp(server: &TestServer, script: &str) -> std::process::Output {
    let settings = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-allow true; \
         set ssl:ca-file {}; set ssl:check-hostname true; set ftp:passive-mode true; \
         set net:max-retries 1; set net:timeout 30; set xfer:clobber true; \
         open -u {USER},'{PASSWORD}' -p {} 127.0.0.1; {script}",
        cacert(),
        server.port()
    );
    let mut command = Command::new("lftp");
    command.args(["-c", &settings]);
    run_with_timeout(&mut command, LIMIT)
}

fn python_ftps(server: &TestServer, upload: &Path, remote: &str, download: &Path) -> String {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/python/ftps_session.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(server.port().to_string())
        .arg(cacert())
        .args([USER, PASSWORD])
        .arg(upload)
        .arg(remote)
        .arg(download);
    let output = run_with_timeout(&mut command, LIMIT);
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// A rustls client configuration that trusts the development certificate.
pub(crate) fn client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    client_config_trusting(&dev_certificate().0, versions)
}

fn client_config_trusting(
    cert: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub(crate) fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

pub(crate) type TlsTcp = StreamOwned<ClientConnection, TcpStream>;

/// Reads one complete FTP reply (all lines of a multi-line reply).
pub(crate) fn read_reply(reader: &mut impl BufRead) -> String {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading a reply");
        assert!(!line.is_empty(), "connection closed; got so far: {text:?}");
        text.push_str(&line);
        let first = text.lines().next().unwrap_or("");
        let multi = first.len() > 3 && first.as_bytes()[3] == b'-';
        if !multi || (line.len() > 3 && line[..3] == first[..3] && line.as_bytes()[3] == b' ') {
            return text;
        }
    }
}

/// A control connection driven by hand under TLS (explicit: AUTH TLS on a plain connection).
pub(crate) struct TlsSession {
    pub(crate) stream: BufReader<TlsTcp>,
    /// The client configuration, whose session cache data connections resume from.
    pub(crate) config: Arc<ClientConfig>,
}

impl TlsSession {
    /// Connects, reads the greeting, sends AUTH TLS and completes the handshake.
    pub(crate) fn connect(server: &TestServer, config: Arc<ClientConfig>) -> Self {
        Self::secure(TcpStream::connect(server.addr).unwrap(), config)
    }

    /// Like [`TlsSession::connect`], from a chosen loopback address.
    pub(crate) fn connect_from(
        server: &TestServer,
        local: std::net::IpAddr,
        config: Arc<ClientConfig>,
    ) -> Self {
        Self::secure(crate::dialogue::connect_from(server.addr, local), config)
    }

    /// Reads the greeting on `tcp`, sends AUTH TLS and completes the handshake.
    fn secure(tcp: TcpStream, config: Arc<ClientConfig>) -> Self {
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut plain = BufReader::new(tcp);
        assert!(read_reply(&mut plain).starts_with("220"));
        plain.get_mut().write_all(b"AUTH TLS\r\n").unwrap();
        let reply = read_reply(&mut plain);
        assert!(reply.starts_with("234"), "{reply}");
        assert!(plain.buffer().is_empty());
        Self::handshake(plain.into_inner(), config)
    }

    pub(crate) fn handshake(tcp: TcpStream, config: Arc<ClientConfig>) -> Self {
        let connection = ClientConnection::new(Arc::clone(&config), localhost()).unwrap();
        let mut stream = StreamOwned::new(connection, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        Self {
            stream: BufReader::new(stream),
            config,
        }
    }

    /// Connects, secures and logs in with PBSZ 0 and PROT P.
    pub(crate) fn login(server: &TestServer, config: Arc<ClientConfig>) -> Self {
        let mut session = Self::connect(server, config);
        session.expect(&format!("USER {USER}"), "331");
        session.expect(&format!("PASS {PASSWORD}"), "230");
        session.expect("PBSZ 0", "200");
        session.expect("PROT P", "200");
        session
    }

    pub(crate) fn send(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        stream.flush().unwrap();
    }

    pub(crate) fn reply(&mut self) -> String {
        read_reply(&mut self.stream)
    }

    #[track_caller]
    pub(crate) fn expect(&mut self, line: &str, code: &str) -> String {
        self.send(line);
        let reply = self.reply();
        assert!(
            reply.starts_with(code),
            "{line:?}: expected {code}, got {reply:?}"
        );
        reply
    }

    /// PASV, then a TCP connection to the port it names.
    pub(crate) fn pasv_tcp(&mut self) -> TcpStream {
        let reply = self.expect("PASV", "227");
        let addr = ferry::protocol::address::parse_pasv_reply(&reply[4..]).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        tcp
    }

    /// A TLS data connection: resumes the control session when the configuration can.
    pub(crate) fn data_tls(&self, tcp: TcpStream) -> TlsTcp {
        let connection = ClientConnection::new(Arc::clone(&self.config), localhost()).unwrap();
        StreamOwned::new(connection, tcp)
    }

    /// LIST over a TLS data connection; returns the listing and whether the data TLS resumed.
    pub(crate) fn list(&mut self) -> (String, bool) {
        let tcp = self.pasv_tcp();
        self.expect("LIST", "150");
        let mut data = self.data_tls(tcp);
        let mut listing = String::new();
        data.read_to_string(&mut listing).unwrap();
        let resumed = data.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let done = self.reply();
        assert!(done.starts_with("226"), "{done}");
        (listing, resumed)
    }
}

// ---- curl ----------------------------------------------------------------------------------

#[test]
fn curl_explicit_ftps_uploads_lists_and_downloads_with_integrity() {
    let server = TestServer::start_with_tls(|_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.bin");
    write_pattern_file(&source, 3 << 20, 31);
    let url = server.url();
    let output = curl(&[
        "--ssl-reqd",
        "-T",
        source.to_str().unwrap(),
        &format!("{url}curl.bin"),
    ]);
    assert_success(&output);
    assert_eq!(
        sha256_file(&server.home().join("curl.bin")),
        sha256_file(&source)
    );

    // One invocation, one control connection: a listing and two downloads.
    let listing = dir.path().join("listing.txt");
    let first = dir.path().join("first.bin");
    let second = dir.path().join("second.bin");
    let output = curl(&[
        "--ssl-reqd",
        "--list-only",
        &url,
        "-o",
        listing.to_str().unwrap(),
        "--next",
        "--ssl-reqd",
        "--cacert",
        &cacert(),
        &format!("{url}curl.bin"),
        "-o",
        first.to_str().unwrap(),
        &format!("{url}curl.bin"),
        "-o",
        second.to_str().unwrap(),
    ]);
    assert_success(&output);
    let names = std::fs::read_to_string(&listing).unwrap();
    assert!(names.lines().any(|l| l == "curl.bin"), "{names}");
    assert_eq!(sha256_file(&first), sha256_file(&source));
    assert_eq!(sha256_file(&second), sha256_file(&source));
}

/// Active mode (PORT/EPRT): the server connects back and is still the TLS server (RFC 4217 §9).
/// lftp drives it; curl 7.88 cannot take an active data connection at all ("sa_addr inet_ntop()
/// failed"), with or without TLS.
#[test]
fn lftp_active_mode_data_connections_are_protected_too() {
    let server = TestServer::start_with_tls(|_, _| {});
    let content = pattern(700_000, 13);
    std::fs::write(server.home().join("active.bin"), &content).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("active.bin");
    let output = lftp(
        &server,
        &format!(
            "set ftp:passive-mode false; get active.bin -o {out}; put {out} -o active-up.bin",
            out = out.display()
        ),
    );
    assert_success(&output);
    assert_eq!(sha256_file(&out), sha256(&content));
    assert_eq!(
        sha256_file(&server.home().join("active-up.bin")),
        sha256(&content)
    );
}

#[test]
fn curl_implicit_ftps_downloads_and_resumes() {
    let server = TestServer::start_with_implicit_tls(|_, _| {});
    let content = pattern(1 << 20, 7);
    std::fs::write(server.home().join("implicit.bin"), &content).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("implicit.bin");
    // A partial file: curl resumes it with REST.
    std::fs::write(&out, &content[..300_000]).unwrap();
    let url = url_on("ftps", server.implicit_addr.unwrap().port());
    let output = curl(&[
        "-C",
        "-",
        &format!("{url}implicit.bin"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_success(&output);
    assert_eq!(sha256_file(&out), sha256(&content));
}

#[test]
fn curl_implicit_ftps_with_a_wrong_ca_fails_verification() {
    let server = TestServer::start_with_implicit_tls(|_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let (other_cert, _) = ferry::server::tls::write_development_certificate(dir.path()).unwrap();
    let url = url_on("ftps", server.implicit_addr.unwrap().port());
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(other_cert)
        .arg(&url);
    let output = run_with_timeout(&mut command, LIMIT);
    assert!(!output.status.success(), "{output:?}");
}

// ---- lftp ----------------------------------------------------------------------------------

#[test]
fn lftp_forced_tls_uploads_lists_and_downloads_with_integrity() {
    let server = TestServer::start_with_tls(|_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("lftp-up.bin");
    write_pattern_file(&source, 2 << 20, 41);
    let back = dir.path().join("lftp-back.bin");
    let output = lftp(
        &server,
        &format!(
            "put {} -o lftp.bin; cls -1; get lftp.bin -o {}",
            source.display(),
            back.display()
        ),
    );
    assert_success(&output);
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|l| l.trim() == "lftp.bin"),
        "{output:?}"
    );
    assert_eq!(
        sha256_file(&server.home().join("lftp.bin")),
        sha256_file(&source)
    );
    assert_eq!(sha256_file(&back), sha256_file(&source));
}

// ---- Python's ftplib -----------------------------------------------------------------------

#[test]
fn python_ftplib_prot_p_round_trip_when_resumption_is_optional() {
    let server = TestServer::start_with_tls(|_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("py.bin");
    write_pattern_file(&source, 1 << 20, 51);
    let back = dir.path().join("py-back.bin");
    let output = python_ftps(&server, &source, "py.bin", &back);
    assert!(output.contains("download ok"), "{output}");
    assert!(output.contains("list py.bin"), "{output}");
    assert_eq!(
        sha256_file(&server.home().join("py.bin")),
        sha256_file(&source)
    );
    assert_eq!(sha256_file(&back), sha256_file(&source));
}

#[test]
fn python_ftplib_never_resumes_so_required_resumption_refuses_its_data_connection() {
    let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = true);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("py.bin");
    std::fs::write(&source, b"not resumed").unwrap();
    let output = python_ftps(&server, &source, "py.bin", &dir.path().join("x"));
    assert!(output.contains("login ok"), "{output}");
    assert!(!output.contains("upload ok"), "{output}");
    assert!(
        output.contains("error 522") || output.contains("error 425"),
        "{output}"
    );
    assert!(!server.home().join("py.bin").exists());
}

// ---- policies ------------------------------------------------------------------------------

#[test]
fn plain_login_is_refused_before_the_password_when_tls_is_required() {
    let server = TestServer::start_with_tls(|_, _| {});
    let mut session = Dialogue::connect(&server);
    let reply = session.command(&format!("USER {USER}"));
    assert_eq!(reply.code, 530, "{reply:?}");
    // No login is in progress, so a password is not taken.
    let reply = session.command(&format!("PASS {PASSWORD}"));
    assert_eq!(reply.code, 503, "{reply:?}");
    session.expect("PWD", 530);
    // curl without TLS cannot log in either.
    let output = curl(&[&server.url()]);
    assert!(!output.status.success(), "{output:?}");
}

#[test]
fn prot_c_is_refused_when_data_must_be_encrypted() {
    let server = TestServer::start_with_tls(|tls, _| tls.required = TlsRequirement::Data);
    let mut session = TlsSession::connect(&server, client_config(rustls::DEFAULT_VERSIONS));
    session.expect(&format!("USER {USER}"), "331");
    session.expect(&format!("PASS {PASSWORD}"), "230");
    session.expect("PBSZ 0", "200");
    session.expect("PROT C", "536");
    // Without PROT P a transfer is refused before any data connection.
    session.expect("PASV", "227");
    session.expect("LIST", "521");
    session.expect("PROT P", "200");
    let (listing, _) = session.list();
    assert!(listing.is_empty() || listing.contains('\n'));
}

#[test]
fn plain_ftp_still_works_when_tls_is_optional() {
    let server = TestServer::start_with_tls(|tls, _| tls.required = TlsRequirement::None);
    std::fs::write(server.home().join("plain.txt"), "plain").unwrap();
    let output = curl(&[&format!("{}plain.txt", server.url())]);
    assert_success(&output);
    assert_eq!(output.stdout, b"plain");
}

#[test]
fn an_account_can_require_tls_when_the_server_does_not() {
    let server = TestServer::start_with_tls(|tls, _| tls.required = TlsRequirement::None);
    let store = AccountStore::open(&server.db_path()).unwrap();
    store
        .set_user_tls_required(USER, Some(TlsRequirement::All))
        .unwrap();
    let mut session = Dialogue::connect(&server);
    session.expect(&format!("USER {USER}"), 530);
    // Another account without the requirement logs in in clear text.
    let mut reader = Dialogue::connect(&server);
    reader.log_in(READER);
    // Under TLS the account logs in, and its data must be protected too.
    let mut secure = TlsSession::connect(&server, client_config(rustls::DEFAULT_VERSIONS));
    secure.expect(&format!("USER {USER}"), "331");
    secure.expect(&format!("PASS {PASSWORD}"), "230");
    secure.expect("PBSZ 0", "200");
    secure.expect("PROT C", "536");
    secure.expect("PROT P", "200");
    secure.list();
}

#[test]
fn a_group_can_require_tls_for_its_members() {
    let server = TestServer::start_with_tls(|tls, _| tls.required = TlsRequirement::None);
    let store = AccountStore::open(&server.db_path()).unwrap();
    store.add_group("secure", None, None).unwrap();
    store
        .set_group_tls_required("secure", Some(TlsRequirement::Control))
        .unwrap();
    store.set_user_group(READER, Some("secure")).unwrap();
    let mut session = Dialogue::connect(&server);
    session.expect(&format!("USER {READER}"), 530);
    let _alice = Dialogue::login(&server);
    let mut secure = TlsSession::connect(&server, client_config(rustls::DEFAULT_VERSIONS));
    secure.expect(&format!("USER {READER}"), "331");
    secure.expect(&format!("PASS {PASSWORD}"), "230");
}

// ---- session resumption ---------------------------------------------------------------------

#[test]
fn data_connection_without_resumption_is_refused_only_when_required() {
    for required in [false, true] {
        let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = required);
        let mut session = TlsSession::login(&server, client_config(rustls::DEFAULT_VERSIONS));
        // A data connection with a fresh client configuration cannot resume the session.
        let tcp = session.pasv_tcp();
        session.expect("NLST", "150");
        let stranger = client_config(rustls::DEFAULT_VERSIONS);
        let mut data = StreamOwned::new(ClientConnection::new(stranger, localhost()).unwrap(), tcp);
        let mut listing = Vec::new();
        let _ = data.read_to_end(&mut listing);
        let reply = session.reply();
        if required {
            assert!(
                reply.starts_with("522") || reply.starts_with("425"),
                "{reply}"
            );
        } else {
            assert!(reply.starts_with("226"), "{reply}");
        }
        // The session's own configuration resumes, so it is accepted either way.
        let (_, resumed) = session.list();
        assert!(resumed);
    }
}

#[test]
fn tls12_sessions_resume_on_every_data_connection_when_required() {
    let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = true);
    let mut session = TlsSession::login(&server, client_config(&[&rustls::version::TLS12]));
    for _ in 0..4 {
        let (_, resumed) = session.list();
        assert!(resumed);
    }
}

#[test]
fn tls13_sessions_resume_on_several_data_connections_when_required() {
    let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = true);
    let mut session = TlsSession::login(&server, client_config(&[&rustls::version::TLS13]));
    for _ in 0..4 {
        let (_, resumed) = session.list();
        assert!(resumed);
    }
}

/// With TLS 1.3 and resumption required, every data connection needs a fresh session ticket:
/// the control connection hands out several and every download one more, uploads none (see
/// `ferry::server::tls`). curl keeps only the newest ticket, so after an upload it has none left
/// and needs TLS 1.2 for a session that uploads more than once; lftp (GnuTLS) reuses its session
/// and needs nothing.
#[test]
fn curl_and_lftp_transfer_several_files_when_resumption_is_required() {
    let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = true);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("r.bin");
    write_pattern_file(&source, 256 << 10, 61);
    let url = server.url();
    let out = |n: &str| dir.path().join(n).display().to_string();
    // Uploads, then a download, over one TLS 1.2 control connection.
    let output = curl(&[
        "--ssl-reqd",
        "--tls-max",
        "1.2",
        "-T",
        source.to_str().unwrap(),
        &format!("{url}r1.bin"),
        "-T",
        source.to_str().unwrap(),
        &format!("{url}r2.bin"),
        "--next",
        "--ssl-reqd",
        "--tls-max",
        "1.2",
        "--cacert",
        &cacert(),
        &format!("{url}r1.bin"),
        "-o",
        &out("c0"),
    ]);
    assert_success(&output);
    // Downloads and a listing over one TLS 1.3 control connection.
    let output = curl(&[
        "--ssl-reqd",
        "--tlsv1.3",
        &format!("{url}r1.bin"),
        "-o",
        &out("c1"),
        &format!("{url}r2.bin"),
        "-o",
        &out("c2"),
        &format!("{url}r1.bin"),
        "-o",
        &out("c3"),
        "--next",
        "--ssl-reqd",
        "--tlsv1.3",
        "--cacert",
        &cacert(),
        "--list-only",
        &url,
        "-o",
        &out("names"),
    ]);
    assert_success(&output);
    let names = std::fs::read_to_string(out("names")).unwrap();
    assert!(names.lines().any(|l| l == "r2.bin"), "{names}");
    // lftp over TLS 1.3: uploads and downloads mixed.
    let output = lftp(
        &server,
        &format!(
            "put {src} -o l1.bin; put {src} -o l2.bin; get r1.bin -o {}; put {src} -o l3.bin; \
             get l3.bin -o {}; cls -1",
            out("l1"),
            out("l2"),
            src = source.display(),
        ),
    );
    assert_success(&output);
    for name in ["c0", "c1", "c2", "c3", "l1", "l2"] {
        assert_eq!(
            sha256_file(Path::new(&out(name))),
            sha256_file(&source),
            "{name}"
        );
    }
    for name in ["r1.bin", "r2.bin", "l1.bin", "l2.bin", "l3.bin"] {
        assert_eq!(
            sha256_file(&server.home().join(name)),
            sha256_file(&source),
            "{name}"
        );
    }
}

// ---- hand-driven TLS dialogues -----------------------------------------------------------------

#[test]
fn commands_piggybacked_on_auth_tls_are_not_executed() {
    let server = TestServer::start_with_tls(|tls, _| tls.required = TlsRequirement::None);
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut plain = BufReader::new(tcp);
    assert!(read_reply(&mut plain).starts_with("220"));
    // One packet: AUTH TLS and, before the handshake, a login and a delete.
    std::fs::write(server.home().join("victim.txt"), "keep me").unwrap();
    plain
        .get_mut()
        .write_all(
            format!("AUTH TLS\r\nUSER {USER}\r\nPASS {PASSWORD}\r\nDELE victim.txt\r\n").as_bytes(),
        )
        .unwrap();
    let reply = read_reply(&mut plain);
    assert!(reply.starts_with("234"), "{reply}");
    assert!(
        plain.buffer().is_empty(),
        "no reply to the injected commands"
    );
    let mut session =
        TlsSession::handshake(plain.into_inner(), client_config(rustls::DEFAULT_VERSIONS));
    // Not logged in: the injected USER/PASS were thrown away unread.
    session.expect("PWD", "530");
    session.expect("NOOP", "200");
    assert_eq!(
        std::fs::read_to_string(server.home().join("victim.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn rein_and_a_new_user_keep_the_session_protected() {
    let server = TestServer::start_with_tls(|_, _| {});
    let mut session = TlsSession::login(&server, client_config(rustls::DEFAULT_VERSIONS));
    session.expect("REIN", "220");
    session.expect("PWD", "530");
    // Still under TLS (the replies arrive through it) and still allowed to log in.
    session.expect(&format!("USER {READER}"), "331");
    session.expect(&format!("PASS {PASSWORD}"), "230");
    session.expect(&format!("USER {USER}"), "331");
    session.expect(&format!("PASS {PASSWORD}"), "230");
    // Data connections stay protected: a LIST goes through a TLS data connection.
    std::fs::write(server.home().join("after-rein.txt"), "x").unwrap();
    let (listing, _) = session.list();
    assert!(listing.contains("after-rein.txt"), "{listing}");
    session.expect("AUTH TLS", "503");
}

#[test]
fn ccc_is_refused_unless_enabled() {
    let server = TestServer::start_with_tls(|_, _| {});
    let mut session = TlsSession::login(&server, client_config(rustls::DEFAULT_VERSIONS));
    session.expect("CCC", "533");
    session.expect("NOOP", "200");
}

#[test]
fn ccc_returns_to_clear_text_without_losing_the_next_command() {
    let server = TestServer::start_with_tls(|tls, _| {
        tls.allow_ccc = true;
        tls.required = TlsRequirement::Data;
    });
    let mut session = TlsSession::login(&server, client_config(rustls::DEFAULT_VERSIONS));
    session.send("CCC");
    let reply = session.reply();
    assert!(reply.starts_with("200"), "{reply}");
    // The client's close_notify and its next clear-text command leave in one packet.
    let mut tls = session.stream.into_inner();
    tls.conn.send_close_notify();
    let mut packet = Vec::new();
    tls.conn.write_tls(&mut packet).unwrap();
    packet.extend_from_slice(b"PWD\r\n");
    tls.sock.write_all(&packet).unwrap();
    // The server's close_notify, then plain text. Read record by record, exactly: the reply to
    // PWD may already be in the socket right behind the alert, and must stay there. (The alert
    // may also have come in already, with the reply to CCC.)
    while !tls.conn.process_new_packets().unwrap().peer_has_closed() {
        let mut header = [0u8; 5];
        tls.sock
            .read_exact(&mut header)
            .expect("reading the server's close_notify");
        let mut record = header.to_vec();
        record.resize(
            5 + usize::from(u16::from_be_bytes([header[3], header[4]])),
            0,
        );
        tls.sock
            .read_exact(&mut record[5..])
            .expect("reading the server's close_notify");
        tls.conn.read_tls(&mut record.as_slice()).unwrap();
    }
    let mut plain = BufReader::new(tls.sock);
    let reply = read_reply(&mut plain);
    assert!(reply.starts_with("257"), "{reply}");
    plain.get_mut().write_all(b"NOOP\r\n").unwrap();
    assert!(read_reply(&mut plain).starts_with("200"));
    // Data connections stay encrypted after CCC.
    plain.get_mut().write_all(b"PASV\r\n").unwrap();
    assert!(read_reply(&mut plain).starts_with("227"));
}

#[test]
fn data_connection_that_never_starts_tls_gets_522_not_a_hang() {
    let server = TestServer::start_with_tls(|_, config| {
        config.timeouts.data_accept = Duration::from_secs(3);
    });
    let mut session = TlsSession::login(&server, client_config(rustls::DEFAULT_VERSIONS));
    // Connected, but silent: no ClientHello.
    let tcp = session.pasv_tcp();
    session.expect("LIST", "150");
    let reply = session.reply();
    assert!(reply.starts_with("522"), "{reply}");
    drop(tcp);
    // Clear text on a protected data connection fails the handshake at once.
    let mut tcp = session.pasv_tcp();
    session.expect("STOR plain.txt", "150");
    tcp.write_all(b"this is not a TLS record\r\n").unwrap();
    let reply = session.reply();
    assert!(reply.starts_with("522"), "{reply}");
    drop(tcp);
    session.expect("NOOP", "200");
    let (_, resumed) = session.list();
    assert!(resumed);
}

#[test]
fn certificate_reload_reaches_new_connections_while_sessions_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let certfile = dir.path().join("cert.pem");
    let keyfile = dir.path().join("key.pem");
    let (dev_cert, dev_key) = dev_certificate();
    std::fs::copy(&dev_cert, &certfile).unwrap();
    std::fs::copy(&dev_key, &keyfile).unwrap();
    let (c, k) = (certfile.clone(), keyfile.clone());
    let server = TestServer::start_with_tls(move |tls, _| {
        tls.certfile = c;
        tls.keyfile = k;
    });
    let old_config = client_config(rustls::DEFAULT_VERSIONS);
    let mut old = TlsSession::login(&server, Arc::clone(&old_config));

    // A second certificate, made by rcgen, replaces the first on disk; then the reload SIGHUP runs.
    let next = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferry reload test");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let new_cert_path = next.path().join("new.pem");
    std::fs::write(&new_cert_path, cert.pem()).unwrap();
    std::fs::write(&certfile, cert.pem()).unwrap();
    std::fs::write(&keyfile, key.serialize_pem()).unwrap();
    server.tls.as_ref().unwrap().reload().unwrap();

    // A new connection is served the new certificate: trusting only it, the handshake succeeds...
    let mut fresh = TlsSession::connect(
        &server,
        client_config_trusting(&new_cert_path, rustls::DEFAULT_VERSIONS),
    );
    let presented = fresh.stream.get_ref().conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented.as_ref(), cert.der().as_ref());
    fresh.expect(&format!("USER {USER}"), "331");
    fresh.expect(&format!("PASS {PASSWORD}"), "230");
    // ...and one trusting only the old certificate is refused.
    let tcp = TcpStream::connect(server.addr).unwrap();
    let mut plain = BufReader::new(tcp);
    read_reply(&mut plain);
    plain.get_mut().write_all(b"AUTH TLS\r\n").unwrap();
    assert!(read_reply(&mut plain).starts_with("234"));
    let mut stale = StreamOwned::new(
        ClientConnection::new(Arc::clone(&old_config), localhost()).unwrap(),
        plain.into_inner(),
    );
    let mut handshake = Ok(0);
    while stale.conn.is_handshaking() && handshake.is_ok() {
        handshake = stale.conn.complete_io(&mut stale.sock).map(|_| 0);
    }
    assert!(handshake.is_err(), "the old certificate was still served");

    // The session opened before the reload goes on, data connections included.
    std::fs::write(server.home().join("still.txt"), "x").unwrap();
    let (listing, _) = old.list();
    assert!(listing.contains("still.txt"), "{listing}");
    old.expect("NOOP", "200");
}

// ---- certificates at start-up ------------------------------------------------------------------

fn serve_with_certificate(cert: &Path, key: &Path) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .arg("--db")
        .arg(dir.path().join("ferry.db"))
        .args(["serve", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("root"))
        .arg("--certfile")
        .arg(cert)
        .arg("--keyfile")
        .arg(key);
    run_with_timeout(&mut command, LIMIT)
}

#[test]
fn the_server_refuses_to_start_with_a_missing_mismatched_or_expired_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (dev_cert, dev_key) = dev_certificate();
    let missing = dir.path().join("missing.pem");
    let output = serve_with_certificate(&missing, &dev_key);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.pem"), "{stderr}");

    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = ferry::server::tls::write_development_certificate(other.path()).unwrap();
    let output = serve_with_certificate(&dev_cert, &other_key);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not belong"), "{stderr}");

    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let expired = dir.path().join("expired.pem");
    let expired_key = dir.path().join("expired-key.pem");
    std::fs::write(&expired, cert.pem()).unwrap();
    std::fs::write(&expired_key, key.serialize_pem()).unwrap();
    let output = serve_with_certificate(&expired, &expired_key);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expired"), "{stderr}");
    // The loader says the same to library users.
    assert!(matches!(
        load_certificate(&expired, &expired_key),
        Err(CertificateError::Expired { .. })
    ));
}

// ---- suppaftp with rustls --------------------------------------------------------------------

mod suppaftp_rustls {
    use super::*;
    use futures_util::{AsyncReadExt as _, AsyncWriteExt as _};
    use suppaftp::types::FileType;
    use suppaftp::{AsyncRustlsConnector, AsyncRustlsFtpStream, Status};

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    async fn connect(
        addr: SocketAddr,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> AsyncRustlsFtpStream {
        let plain = AsyncRustlsFtpStream::connect(addr).await.unwrap();
        let connector = futures_rustls::TlsConnector::from(client_config(versions));
        let mut ftp = plain
            .into_secure(AsyncRustlsConnector::from(connector), "localhost")
            .await
            .unwrap();
        ftp.login(USER, PASSWORD).await.unwrap();
        ftp.transfer_type(FileType::Binary).await.unwrap();
        ftp
    }

    #[test]
    fn login_list_upload_download_resume_and_abort() {
        let server = TestServer::start_with_tls(|_, _| {});
        let content = pattern(2 << 20, 71);
        block_on(async {
            let mut ftp = connect(server.addr, rustls::DEFAULT_VERSIONS).await;
            let written = ftp.put_file("suppa.bin", &mut &content[..]).await.unwrap();
            assert_eq!(written, content.len() as u64);
            let names = ftp.nlst(None).await.unwrap();
            assert!(names.iter().any(|n| n == "suppa.bin"), "{names:?}");
            let listing = ftp.list(None).await.unwrap();
            assert!(
                listing.iter().any(|l| l.contains("suppa.bin")),
                "{listing:?}"
            );

            let mut stream = ftp.retr_as_stream("suppa.bin").await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            ftp.finalize_retr_stream(stream).await.unwrap();
            assert_eq!(sha256(&got), sha256(&content));

            // Resume a download from an offset.
            ftp.resume_transfer(1_000_000).await.unwrap();
            let mut stream = ftp.retr_as_stream("suppa.bin").await.unwrap();
            let mut tail = Vec::new();
            stream.read_to_end(&mut tail).await.unwrap();
            ftp.finalize_retr_stream(stream).await.unwrap();
            assert_eq!(sha256(&tail), sha256(&content[1_000_000..]));

            // Resume an upload: the first half, then REST and the rest.
            ftp.put_file("half.bin", &mut &content[..777_777])
                .await
                .unwrap();
            ftp.resume_transfer(777_777).await.unwrap();
            let mut stream = ftp.put_with_stream("half.bin").await.unwrap();
            stream.write_all(&content[777_777..]).await.unwrap();
            ftp.finalize_put_stream(stream).await.unwrap();

            // ABOR in the middle of a download under TLS, then the session goes on.
            let stream = ftp.retr_as_stream("suppa.bin").await.unwrap();
            ftp.abort(stream).await.unwrap();
            assert_eq!(ftp.size("suppa.bin").await.unwrap(), content.len());
            ftp.quit().await.unwrap();
        });
        assert_eq!(
            sha256_file(&server.home().join("suppa.bin")),
            sha256(&content)
        );
        assert_eq!(
            sha256_file(&server.home().join("half.bin")),
            sha256(&content)
        );
    }

    #[test]
    fn abort_right_after_a_finished_transfer_gets_226() {
        let server = TestServer::start_with_tls(|_, _| {});
        std::fs::write(server.home().join("small.txt"), "small").unwrap();
        block_on(async {
            let mut ftp = connect(server.addr, rustls::DEFAULT_VERSIONS).await;
            let mut stream = ftp.retr_as_stream("small.txt").await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"small");
            // The server has sent its 226 for the transfer; ABOR now finds nothing running.
            ftp.abort(stream).await.unwrap();
            let status = ftp.custom_command("NOOP", &[Status::CommandOk]).await;
            assert!(status.is_ok(), "{status:?}");
        });
    }

    #[test]
    fn several_transfers_resume_when_resumption_is_required() {
        let server = TestServer::start_with_tls(|tls, _| tls.require_resumption = true);
        let content = pattern(100_000, 81);
        block_on(async {
            let mut ftp = connect(server.addr, rustls::DEFAULT_VERSIONS).await;
            for i in 0..4 {
                ftp.put_file(format!("r{i}.bin"), &mut &content[..])
                    .await
                    .unwrap();
                let names = ftp.nlst(None).await.unwrap();
                assert!(names.contains(&format!("r{i}.bin")), "{names:?}");
            }
            ftp.quit().await.unwrap();
        });
        for i in 0..4 {
            assert_eq!(
                sha256_file(&server.home().join(format!("r{i}.bin"))),
                sha256(&content)
            );
        }
    }
}
