//! An async FTP/FTPS client built on the same [`crate::protocol`] code as the server.
//!
//! Every reply is checked: a command either gets the reply it needs or becomes a
//! [`ClientError`] that names the command and the server's answer. Errors say whether trying again
//! could help ([`ClientError::is_transient`]); [`FtpClient::reconnect`] starts a fresh session
//! with the same settings, so callers can retry with backoff after a `421` or a dropped
//! connection.
//!
//! Data connections: EPSV first, PASV when the server refuses it (a PASV address that is not
//! routable — a server behind NAT naming its private address — is replaced by the control
//! connection's peer), or active mode on request. Under FTPS every data connection resumes the
//! control connection's TLS session: when a TLS 1.3 session has no ticket left to resume with,
//! the client logs in again with TLS 1.2 (whose sessions resume any number of times) before the
//! next transfer, and goes back to the directory it was in.

pub mod bounded;
mod connection;
pub mod listing;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use self::bounded::{BoundedSink, ReadLimits};
use self::connection::{ClientStream, ControlChannel};
pub use self::listing::{RemoteEntry, RemoteKind};
use self::tls::SessionStore;
pub use self::tls::Verification;
use crate::protocol::address::{self, NetworkProtocol};
use crate::protocol::hash::{HashAlgorithm, HashReply, parse_hash_reply};
use crate::protocol::path::unquote_257;
use crate::protocol::time::UtcDateTime;
use crate::protocol::{Reply, ReplyCode};

/// Where TLS starts, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain FTP.
    None,
    /// AUTH TLS on the control connection, then PROT P (RFC 4217); `ftpes://`, or `ftps://` in
    /// `ferry deploy` target URLs.
    Explicit,
    /// TLS from the first byte (port 990 by custom); `ftps-implicit://`.
    Implicit,
}

/// How data connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// EPSV, or PASV where EPSV is not offered.
    Passive,
    /// EPRT/PORT: the server connects back to us.
    Active,
}

/// Everything needed to open (and reopen) a session.
#[derive(Clone)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub security: Security,
    pub verification: Verification,
    pub data_mode: DataMode,
    pub connect_timeout: Duration,
    /// How long to wait for any reply.
    pub reply_timeout: Duration,
    /// How long a data connection may make no progress.
    pub data_timeout: Duration,
    /// Offer only TLS 1.2. rustls spends each TLS 1.3 session ticket once, so against a server
    /// that requires resumption and issues no new tickets on data connections, only TLS 1.2
    /// session resumption lasts a whole session; [`FtpClient`] switches to it by itself (logging
    /// in again) when a TLS 1.3 session has no ticket left for the next data connection, or when
    /// a server refuses a data connection that did not resume.
    pub tls12_only: bool,
    /// Ask for EPSV before PASV (RFC 2428). Off sends PASV only, for servers or firewalls that
    /// mishandle EPSV.
    pub use_epsv: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("security", &self.security)
            .field("verification", &self.verification)
            .field("data_mode", &self.data_mode)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Plain FTP to `host:port` with default timeouts.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            password: password.into(),
            security: Security::None,
            verification: Verification::SystemRoots,
            data_mode: DataMode::Passive,
            connect_timeout: Duration::from_secs(15),
            reply_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(60),
            tls12_only: false,
            use_epsv: true,
        }
    }
}

/// How often and how patiently to try connecting again after a transient failure (`421`, a
/// dropped or refused connection, a timeout): exponential delays with ±25 % jitter, so that
/// parallel connections do not all come back at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Connection attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles each time after that.
    pub first_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry), without jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    fn jittered_delay(&self, retry: u32) -> Duration {
        use rand::Rng;
        self.delay(retry)
            .mul_f64(rand::thread_rng().gen_range(0.75..=1.25))
            .min(self.max_delay)
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the server closed the connection")]
    ConnectionClosed,
    #[error("connection error: {0}")]
    Io(std::io::Error),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("login refused: {0}")]
    LoginRefused(Reply),
    #[error("{command} refused: {reply}")]
    Refused { command: String, reply: Reply },
    #[error("the server refused a data connection that did not resume the TLS session: {0}")]
    ResumptionRefused(Reply),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Nothing answered like an FTP server after connecting.
    #[error(
        "{addr} sent no FTP greeting within {waited:?}: if it expects TLS from the first byte \
         (implicit FTPS, customarily port 990), use ftps-implicit://; otherwise check the host \
         and port"
    )]
    NoGreeting { addr: String, waited: Duration },
    /// The server sent more than the client keeps in memory for this download.
    #[error("{what} holds {limit}, more than ferry reads; it is not what ferry expects there")]
    TooLarge { what: String, limit: String },
}

impl ClientError {
    /// True when trying again (after reconnecting) may succeed: dropped connections, timeouts,
    /// `421` and other 4xx replies.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout(_) | Self::ConnectionClosed | Self::Io(_) => true,
            Self::ResumptionRefused(_) => true,
            Self::Refused { reply, .. } => (400..500).contains(&reply.code.get()),
            Self::LoginRefused(reply) => reply.code == ReplyCode::SERVICE_NOT_AVAILABLE,
            Self::Tls(_) | Self::Protocol(_) | Self::TooLarge { .. } | Self::NoGreeting { .. } => {
                false
            }
        }
    }

    /// The server's reply code, where the server answered.
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            Self::Refused { reply, .. }
            | Self::LoginRefused(reply)
            | Self::ResumptionRefused(reply) => Some(reply.code.get()),
            _ => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// How STOR treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// STOR: create or replace.
    Replace,
    /// APPE.
    Append,
    /// REST n + STOR: keep the first n bytes.
    Resume(u64),
}

/// What FEAT said.
#[derive(Debug, Clone, Default)]
struct Features {
    mlst: bool,
    epsv: bool,
    utf8: bool,
    mfmt: bool,
    rest_stream: bool,
    /// The algorithms of FEAT's HASH line (draft-bryan-ftpext-hash-02 §3.1); empty: no HASH.
    hash: Vec<HashAlgorithm>,
    /// The one marked `*` there, or chosen since with OPTS HASH.
    hash_selected: Option<HashAlgorithm>,
}

impl Features {
    fn parse(reply: &Reply) -> Self {
        let mut features = Self::default();
        for line in reply.lines().skip(1) {
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match name.as_str() {
                "MLST" => features.mlst = true,
                "EPSV" => features.epsv = true,
                "UTF8" => features.utf8 = true,
                "MFMT" => features.mfmt = true,
                "REST" => features.rest_stream = line.to_ascii_uppercase().contains("STREAM"),
                "HASH" => features.parse_hash_line(line),
                _ => {}
            }
        }
        features
    }

    /// ` HASH SHA-256*;SHA-1;MD5`: names the server offers, the selected one starred; names
    /// ferry does not compute are skipped.
    fn parse_hash_line(&mut self, line: &str) {
        let list = line.split_whitespace().nth(1).unwrap_or("");
        for name in list.split(';').filter(|n| !n.is_empty()) {
            let (name, selected) = match name.strip_suffix('*') {
                Some(name) => (name, true),
                None => (name, false),
            };
            if let Some(algorithm) = HashAlgorithm::from_name(name.as_bytes()) {
                self.hash.push(algorithm);
                if selected {
                    self.hash_selected = Some(algorithm);
                }
            }
        }
    }
}

/// One logged-in FTP session.
pub struct FtpClient {
    config: ClientConfig,
    control: ControlChannel,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The TLS sessions data connections resume.
    sessions: Option<Arc<SessionStore>>,
    features: Features,
    /// Set once EPSV has been refused; PASV from then on.
    epsv_refused: bool,
    /// Set once MLSD has been refused although FEAT offered MLST; LIST from then on.
    mlsd_refused: bool,
    /// Set when a TLS 1.2 session could not be had; data connections then do full handshakes.
    tls12_unavailable: bool,
    /// When the last command was sent.
    last_activity: Instant,
}

impl std::fmt::Debug for FtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpClient")
            .field("peer", &self.peer)
            .field("user", &self.config.user)
            .finish_non_exhaustive()
    }
}

impl FtpClient {
    /// Connects, starts TLS as configured, logs in and prepares binary transfers.
    pub async fn connect(config: ClientConfig) -> ClientResult<Self> {
        let tcp = connect_tcp(&config.host, config.port, config.connect_timeout).await?;
        let peer = tcp.peer_addr().map_err(ClientError::Io)?;
        let local = tcp.local_addr().map_err(ClientError::Io)?;
        let (tls, sessions) = match config.security {
            Security::None => (None, None),
            _ => {
                let (tls_config, sessions) =
                    tls::client_config(&config.verification, config.tls12_only)?;
                (
                    Some((tls_config, tls::server_name(&config.host)?)),
                    Some(sessions),
                )
            }
        };
        let stream = match (&tls, config.security) {
            (Some((tls_config, name)), Security::Implicit) => {
                ClientStream::connect_tls(
                    tcp,
                    Arc::clone(tls_config),
                    name.clone(),
                    config.connect_timeout,
                )
                .await?
            }
            _ => ClientStream::Plain(tcp),
        };
        let mut client = Self {
            control: ControlChannel::new(stream, config.reply_timeout),
            config,
            peer,
            local,
            tls,
            sessions,
            features: Features::default(),
            epsv_refused: false,
            mlsd_refused: false,
            tls12_unavailable: false,
            last_activity: Instant::now(),
        };
        client.greet_and_login().await?;
        Ok(client)
    }

    /// [`Self::connect`], trying again with `backoff` while the failure is transient (a `421`
    /// greeting, a refused or dropped connection, a timeout). A wrong password is not retried.
    pub async fn connect_with_backoff(
        config: ClientConfig,
        backoff: Backoff,
    ) -> ClientResult<Self> {
        let mut retry = 0;
        loop {
            match Self::connect(config.clone()).await {
                Ok(client) => return Ok(client),
                Err(error) if error.is_transient() && retry + 1 < backoff.attempts => {
                    let wait = backoff.jittered_delay(retry);
                    warn!(
                        %error,
                        attempt = retry + 1,
                        of = backoff.attempts,
                        wait_ms = wait.as_millis() as u64,
                        "connecting failed; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn greet_and_login(&mut self) -> ClientResult<()> {
        // A server greets at once; one that says nothing (or hangs up) while waiting for a TLS
        // handshake is an implicit-FTPS port reached without it, and is told as such.
        let waited = self.config.connect_timeout;
        let no_greeting = || ClientError::NoGreeting {
            addr: self.peer.to_string(),
            waited,
        };
        let mut greeting = match tokio::time::timeout(waited, self.control.read_reply()).await {
            Ok(Ok(reply)) => reply,
            Err(_) | Ok(Err(ClientError::ConnectionClosed | ClientError::Timeout(_)))
                if self.config.security != Security::Implicit =>
            {
                return Err(no_greeting());
            }
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(ClientError::Timeout("the server's greeting")),
        };
        while greeting.code.is_preliminary() {
            greeting = self.control.read_reply().await?;
        }
        if greeting.code != ReplyCode::SERVICE_READY {
            return Err(ClientError::LoginRefused(greeting));
        }
        if self.config.security == Security::Explicit {
            let reply = self.command("AUTH TLS").await?;
            if reply.code != ReplyCode::AUTH_OK {
                return Err(ClientError::Refused {
                    command: "AUTH TLS (the server does not offer FTPS)".to_owned(),
                    reply,
                });
            }
            let (config, name) = self.tls.clone().expect("TLS configured for explicit FTPS");
            self.control
                .start_tls(config, name, self.config.connect_timeout)
                .await?;
        }
        let user = format!("USER {}", self.config.user);
        let reply = self.command(&user).await?;
        let reply = match reply.code {
            ReplyCode::LOGGED_IN => reply,
            ReplyCode::NEED_PASSWORD => {
                let pass = format!("PASS {}", self.config.password);
                self.control.send(&pass).await?;
                self.control.read_reply().await?
            }
            _ => return Err(ClientError::LoginRefused(reply)),
        };
        if reply.code != ReplyCode::LOGGED_IN {
            return Err(ClientError::LoginRefused(reply));
        }
        let feat = self.command("FEAT").await?;
        if feat.code == ReplyCode::SYSTEM_STATUS {
            self.features = Features::parse(&feat);
        }
        if self.features.utf8 {
            // Informational for servers that switch encodings on it; failures change nothing.
            let _ = self.command("OPTS UTF8 ON").await?;
        }
        self.expect("TYPE I", &[ReplyCode::COMMAND_OK]).await?;
        if self.tls.is_some() {
            self.expect("PBSZ 0", &[ReplyCode::COMMAND_OK]).await?;
            self.expect("PROT P", &[ReplyCode::COMMAND_OK]).await?;
        }
        debug!(server = %self.peer, user = self.config.user, "logged in");
        Ok(())
    }

    /// Starts a fresh session with the same settings (after `421` or a dropped connection). The
    /// new session starts in the login directory.
    pub async fn reconnect(&mut self) -> ClientResult<()> {
        let fresh = Self::connect(self.config.clone()).await?;
        self.replace_session(fresh);
        Ok(())
    }

    /// [`Self::reconnect`] with [`Self::connect_with_backoff`]'s patience.
    pub async fn reconnect_with_backoff(&mut self, backoff: Backoff) -> ClientResult<()> {
        let fresh = Self::connect_with_backoff(self.config.clone(), backoff).await?;
        self.replace_session(fresh);
        Ok(())
    }

    /// Takes over a fresh session, keeping what this one learnt about the server.
    fn replace_session(&mut self, fresh: Self) {
        let tls12_unavailable = self.tls12_unavailable;
        *self = fresh;
        self.tls12_unavailable |= tls12_unavailable;
    }

    /// How long since the last command was sent.
    pub fn idle_for(&self) -> Duration {
        self.last_activity.elapsed()
    }

    /// Sends NOOP if the session has been idle for `after` or longer, so that the server (or a
    /// NAT table on the way) does not drop it during long work between commands.
    pub async fn keep_alive(&mut self, after: Duration) -> ClientResult<()> {
        if self.idle_for() >= after {
            self.noop().await?;
        }
        Ok(())
    }

    /// The settings this session was opened with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends a command and returns whatever the server answered (preliminary replies skipped).
    pub async fn command(&mut self, line: &str) -> ClientResult<Reply> {
        self.last_activity = Instant::now();
        self.control.send(line).await?;
        let mut reply = self.control.read_reply().await?;
        while reply.code.is_preliminary() {
            reply = self.control.read_reply().await?;
        }
        Ok(reply)
    }

    /// Sends a command and requires one of `codes`.
    async fn expect(&mut self, line: &str, codes: &[ReplyCode]) -> ClientResult<Reply> {
        let reply = self.command(line).await?;
        if codes.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(ClientError::Refused {
                command: line.to_owned(),
                reply,
            })
        }
    }

    /// NOOP, to keep an idle session alive.
    pub async fn noop(&mut self) -> ClientResult<()> {
        self.expect("NOOP", &[ReplyCode::COMMAND_OK])
            .await
            .map(drop)
    }

    /// Ends the session politely.
    pub async fn quit(mut self) -> ClientResult<()> {
        let _ = self.command("QUIT").await;
        let _ = self.control.stream.shutdown().await;
        Ok(())
    }

    pub async fn pwd(&mut self) -> ClientResult<String> {
        let reply = self.expect("PWD", &[ReplyCode::PATH_CREATED]).await?;
        unquote_257(&reply.text)
            .ok_or_else(|| ClientError::Protocol(format!("cannot read the directory from {reply}")))
    }

    pub async fn cwd(&mut self, path: &str) -> ClientResult<()> {
        self.expect(&format!("CWD {path}"), &[ReplyCode::FILE_ACTION_OK])
            .await
            .map(drop)
    }

    pub async fn mkdir(&mut self, path: &str) -> ClientResult<()> {
        self.expect(&format!("MKD {path}"), &[ReplyCode::PATH_CREATED])
            .await
            .map(drop)
    }

    /// Creates `path` and any missing parents; existing directories are fine.
    pub async fn mkdir_all(&mut self, path: &str) -> ClientResult<()> {
        let absolute = path.starts_with('/');
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if absolute || !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.mkdir(&prefix).await {
                Ok(()) => {}
                Err(ClientError::Refused { reply, .. })
                    if reply.code == ReplyCode::FILE_UNAVAILABLE =>
                {
                    // Usually "already exists"; make sure it is a directory and not a file.
                    if self.kind_of(&prefix).await? != Some(RemoteKind::Dir) {
                        return Err(ClientError::Refused {
                            command: format!("MKD {prefix}"),
                            reply,
                        });
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    pub async fn rmdir(&mut self, path: &str) -> ClientResult<()> {
        self.expect(&format!("RMD {path}"), &[ReplyCode::FILE_ACTION_OK])
            .await
            .map(drop)
    }

    pub async fn delete(&mut self, path: &str) -> ClientResult<()> {
        self.expect(&format!("DELE {path}"), &[ReplyCode::FILE_ACTION_OK])
            .await
            .map(drop)
    }

    pub async fn rename(&mut self, from: &str, to: &str) -> ClientResult<()> {
        self.expect(&format!("RNFR {from}"), &[ReplyCode::FILE_ACTION_PENDING])
            .await?;
        self.expect(&format!("RNTO {to}"), &[ReplyCode::FILE_ACTION_OK])
            .await
            .map(drop)
    }

    pub async fn size(&mut self, path: &str) -> ClientResult<u64> {
        let reply = self
            .expect(&format!("SIZE {path}"), &[ReplyCode::FILE_STATUS])
            .await?;
        reply
            .text
            .trim()
            .parse()
            .map_err(|_| ClientError::Protocol(format!("SIZE reply without a number: {reply}")))
    }

    pub async fn mdtm(&mut self, path: &str) -> ClientResult<UtcDateTime> {
        let reply = self
            .expect(&format!("MDTM {path}"), &[ReplyCode::FILE_STATUS])
            .await?;
        UtcDateTime::parse_mdtm(reply.text.trim().as_bytes())
            .ok_or_else(|| ClientError::Protocol(format!("MDTM reply without a time: {reply}")))
    }

    /// MFMT: sets a file's modification time, where the server offers it.
    pub async fn mfmt(&mut self, path: &str, time: UtcDateTime) -> ClientResult<()> {
        self.expect(
            &format!("MFMT {} {path}", time.to_mdtm()),
            &[ReplyCode::FILE_STATUS],
        )
        .await
        .map(drop)
    }

    /// Whether the server offers MFMT.
    pub fn supports_mfmt(&self) -> bool {
        self.features.mfmt
    }

    /// Whether the server's FEAT offers HASH with `algorithm` (draft-bryan-ftpext-hash-02).
    pub fn supports_hash(&self, algorithm: HashAlgorithm) -> bool {
        self.features.hash.contains(&algorithm)
    }

    /// The server's `algorithm` hash of the whole file at `path`, as HASH reports it (the
    /// digest in lower-case hexadecimal, and the byte range it covers). Selects the algorithm
    /// with OPTS HASH first when another one is selected. Comparing it with the local file's
    /// digest verifies an upload without downloading it again.
    pub async fn hash(&mut self, path: &str, algorithm: HashAlgorithm) -> ClientResult<HashReply> {
        if !self.supports_hash(algorithm) {
            return Err(ClientError::Protocol(format!(
                "the server does not offer HASH with {algorithm} (its FEAT has no such HASH line)"
            )));
        }
        if self.features.hash_selected != Some(algorithm) {
            let line = format!("OPTS HASH {algorithm}");
            let reply = self.expect(&line, &[ReplyCode::COMMAND_OK]).await?;
            if HashAlgorithm::from_name(reply.text.trim().as_bytes()) != Some(algorithm) {
                return Err(ClientError::Protocol(format!(
                    "{line} selected something else: {reply}"
                )));
            }
            self.features.hash_selected = Some(algorithm);
        }
        let reply = self
            .expect(&format!("HASH {path}"), &[ReplyCode::FILE_STATUS])
            .await?;
        let hash = parse_hash_reply(&reply.text)
            .ok_or_else(|| ClientError::Protocol(format!("cannot read the HASH reply {reply}")))?;
        if HashAlgorithm::from_name(hash.algorithm.as_bytes()) != Some(algorithm) {
            return Err(ClientError::Protocol(format!(
                "HASH answered with {} instead of {algorithm}: {reply}",
                hash.algorithm
            )));
        }
        Ok(hash)
    }

    /// What `path` is, or `None` if it does not exist.
    pub async fn kind_of(&mut self, path: &str) -> ClientResult<Option<RemoteKind>> {
        if self.features.mlst {
            let reply = self.command(&format!("MLST {path}")).await?;
            return Ok(match reply.code {
                ReplyCode::FILE_ACTION_OK => reply
                    .lines()
                    .find(|line| line.starts_with(' '))
                    .and_then(crate::protocol::listing::parse_mlsx_line)
                    .map(|entry| match entry.kind.as_deref() {
                        Some("dir" | "cdir") => RemoteKind::Dir,
                        Some("file") => RemoteKind::File,
                        _ => RemoteKind::Other,
                    }),
                _ => None,
            });
        }
        // Without MLST: SIZE answers for files, CWD for directories.
        if self.command(&format!("SIZE {path}")).await?.code == ReplyCode::FILE_STATUS {
            return Ok(Some(RemoteKind::File));
        }
        let here = self.pwd().await?;
        if self.command(&format!("CWD {path}")).await?.code == ReplyCode::FILE_ACTION_OK {
            self.cwd(&here).await?;
            return Ok(Some(RemoteKind::Dir));
        }
        Ok(None)
    }

    /// Lists a directory: MLSD where offered, else (or when MLSD is refused as unknown) LIST.
    pub async fn list(&mut self, path: &str) -> ClientResult<Vec<RemoteEntry>> {
        if self.features.mlst && !self.mlsd_refused {
            match self.read_listing(&format!("MLSD {path}")).await {
                Ok(body) => return Ok(listing::parse_mlsd(&body)),
                Err(ClientError::Refused { reply, .. })
                    if matches!(reply.code.get(), 500 | 502 | 504) =>
                {
                    debug!(%reply, "MLSD refused although FEAT offers MLST; using LIST");
                    self.mlsd_refused = true;
                }
                Err(error) => return Err(error),
            }
        }
        let body = self.read_listing(&format!("LIST {path}")).await?;
        Ok(listing::parse_list(&body))
    }

    async fn read_listing(&mut self, command: &str) -> ClientResult<String> {
        self.ensure_data_tls_can_resume().await?;
        let what = format!("the {command} listing");
        let body = self
            .retrieve_bounded_into(command, &what, ReadLimits::LISTING)
            .await?;
        String::from_utf8(body)
            .map_err(|_| ClientError::Protocol(format!("{command}: the listing is not UTF-8")))
    }

    /// Downloads `path` whole into memory, refusing ([`ClientError::TooLarge`]) more than
    /// `max_bytes`.
    pub async fn retrieve_small(&mut self, path: &str, max_bytes: u64) -> ClientResult<Vec<u8>> {
        self.ensure_data_tls_can_resume().await?;
        self.retrieve_bounded_into(&format!("RETR {path}"), path, ReadLimits::file(max_bytes))
            .await
    }

    async fn retrieve_bounded_into(
        &mut self,
        command: &str,
        what: &str,
        limits: ReadLimits,
    ) -> ClientResult<Vec<u8>> {
        let mut sink = BoundedSink::new(limits);
        let result = self.retrieve_into(command, &mut sink).await;
        // The server answers a transfer cut short as it likes; the limit is the reason.
        if let Some(exceeded) = sink.exceeded() {
            return Err(ClientError::TooLarge {
                what: what.to_owned(),
                limit: exceeded.to_owned(),
            });
        }
        result?;
        Ok(sink.into_inner())
    }

    /// Downloads `path` from `offset` into `sink`. Returns the bytes received.
    pub async fn retrieve<W: AsyncWrite + Unpin>(
        &mut self,
        path: &str,
        offset: u64,
        sink: &mut W,
    ) -> ClientResult<u64> {
        self.ensure_data_tls_can_resume().await?;
        if offset > 0 {
            self.expect(&format!("REST {offset}"), &[ReplyCode::FILE_ACTION_PENDING])
                .await?;
        }
        self.retrieve_into(&format!("RETR {path}"), sink).await
    }

    async fn retrieve_into<W: AsyncWrite + Unpin>(
        &mut self,
        command: &str,
        sink: &mut W,
    ) -> ClientResult<u64> {
        let mut data = self.open_data(command).await?;
        let resumed = data.resumed();
        let copied = copy_with_timeout(&mut data, sink, self.config.data_timeout).await;
        let _ = data.finish(Duration::from_secs(2)).await;
        self.finish_transfer(command, copied, resumed).await
    }

    /// Uploads `source` to `path`. Returns the bytes sent.
    pub async fn store<R: AsyncRead + Unpin>(
        &mut self,
        path: &str,
        source: &mut R,
        mode: StoreMode,
    ) -> ClientResult<u64> {
        self.ensure_data_tls_can_resume().await?;
        let command = match mode {
            StoreMode::Replace => format!("STOR {path}"),
            StoreMode::Append => format!("APPE {path}"),
            StoreMode::Resume(offset) => {
                self.expect(&format!("REST {offset}"), &[ReplyCode::FILE_ACTION_PENDING])
                    .await?;
                format!("STOR {path}")
            }
        };
        let mut data = self.open_data(&command).await?;
        let resumed = data.resumed();
        let copied = copy_with_timeout(source, &mut data, self.config.data_timeout).await;
        // The end of the upload is the end of the data connection: close it cleanly.
        let closed = data.finish(self.config.data_timeout).await;
        let copied = match (copied, closed) {
            (Ok(n), Ok(())) => Ok(n),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        };
        self.finish_transfer(&command, copied, resumed).await
    }

    /// Before a transfer under FTPS: makes sure its data connection can resume the control
    /// connection's TLS session. A TLS 1.3 ticket resumes one connection only (RFC 8446 §C.4),
    /// and servers that send tickets only on the control connection leave none for the second
    /// transfer; servers that require resumption (FileZilla Server, vsftpd's `require_ssl_reuse`,
    /// ferry's `--require-tls-resumption`) would refuse it. So the session is opened again with
    /// TLS 1.2, whose session resumes any number of times, in the same directory.
    async fn ensure_data_tls_can_resume(&mut self) -> ClientResult<()> {
        let Some(sessions) = &self.sessions else {
            return Ok(());
        };
        if self.control.stream.tls_version() != Some(rustls::ProtocolVersion::TLSv1_3)
            || sessions.tls13_tickets() > 0
            || self.tls12_unavailable
        {
            return Ok(());
        }
        info!(
            "the server sent no TLS 1.3 session ticket for the next data connection; logging in \
             again with TLS 1.2 so that every data connection resumes the control session"
        );
        let directory = self.pwd().await?;
        // Leave first: a server with a per-address connection limit may allow only one session.
        let _ = self.command("QUIT").await;
        self.config.tls12_only = true;
        match Self::connect(self.config.clone()).await {
            Ok(fresh) => self.replace_session(fresh),
            Err(ClientError::Tls(reason)) => {
                warn!(
                    reason,
                    "the server offers no TLS 1.2; data connections will not resume the TLS session"
                );
                self.config.tls12_only = false;
                self.tls12_unavailable = true;
                self.reconnect().await?;
            }
            Err(error) => return Err(error),
        }
        self.cwd(&directory).await
    }

    /// Reads the final reply of a transfer and combines it with how the copy went.
    async fn finish_transfer(
        &mut self,
        command: &str,
        copied: std::io::Result<u64>,
        resumed: bool,
    ) -> ClientResult<u64> {
        let reply = self.control.read_reply().await?;
        if !matches!(reply.code.get(), 226 | 250) {
            return Err(self.refusal(command, reply, resumed));
        }
        copied.map_err(ClientError::Io)
    }

    /// Sets up a data connection and sends `command` over the control connection; returns the
    /// open (and, under FTPS, protected) data stream once the server has said `150`/`125`.
    async fn open_data(&mut self, command: &str) -> ClientResult<ClientStream> {
        let tcp = match self.config.data_mode {
            DataMode::Passive => {
                let target = self.passive_target().await?;
                let tcp =
                    tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(target))
                        .await
                        .map_err(|_| ClientError::Timeout("the data connection"))?
                        .map_err(|source| ClientError::Connect {
                            addr: target.to_string(),
                            source,
                        })?;
                self.send_transfer_command(command).await?;
                tcp
            }
            DataMode::Active => {
                let listener = self.announce_active_port().await?;
                self.send_transfer_command(command).await?;
                self.accept_active(listener).await?
            }
        };
        let _ = tcp.set_nodelay(true);
        let Some((config, name)) = self.tls.clone() else {
            return Ok(ClientStream::Plain(tcp));
        };
        match ClientStream::connect_tls(tcp, config, name, self.config.connect_timeout).await {
            Ok(stream) => Ok(stream),
            Err(error) => {
                // The server has its own view of what went wrong; report that if it sends one.
                warn!(command, %error, "TLS on the data connection failed");
                let reply = self.control.read_reply().await?;
                Err(self.refusal(command, reply, false))
            }
        }
    }

    /// A negative final reply to a transfer as an error. A 425/522 after a data connection that
    /// did not resume the TLS session means the server requires resumption: the next
    /// [`Self::reconnect`] then offers TLS 1.2 only, whose sessions can be resumed again and
    /// again (rustls spends a TLS 1.3 ticket once).
    fn refusal(&mut self, command: &str, reply: Reply, resumed: bool) -> ClientError {
        let tls = self.tls.is_some();
        if tls && !resumed && matches!(reply.code.get(), 425 | 522) {
            if !self.config.tls12_only {
                warn!(
                    "the server refused a data connection that did not resume the TLS session; \
                     reconnecting with TLS 1.2, whose sessions can be resumed for every transfer"
                );
                self.config.tls12_only = true;
            }
            return ClientError::ResumptionRefused(reply);
        }
        ClientError::Refused {
            command: command.to_owned(),
            reply,
        }
    }

    async fn send_transfer_command(&mut self, command: &str) -> ClientResult<()> {
        self.control.send(command).await?;
        let reply = self.control.read_reply().await?;
        if !reply.code.is_preliminary() {
            return Err(ClientError::Refused {
                command: command.to_owned(),
                reply,
            });
        }
        Ok(())
    }

    /// EPSV (or PASV) and where to connect.
    async fn passive_target(&mut self) -> ClientResult<SocketAddr> {
        let ipv6 = NetworkProtocol::of(self.peer.ip()) == NetworkProtocol::Ipv6;
        // EPSV even where FEAT does not list it: RFC 2428 predates FEAT and many servers that
        // support it do not say so. PASV carries IPv4 only, so over IPv6 EPSV is the only way.
        if ipv6 || (self.config.use_epsv && !self.epsv_refused) {
            let reply = self.command("EPSV").await?;
            if reply.code == ReplyCode::EXTENDED_PASSIVE_MODE {
                let port = address::parse_epsv_reply(&reply.text)
                    .map_err(|e| ClientError::Protocol(format!("{e}: {reply}")))?;
                return Ok(SocketAddr::new(self.peer.ip(), port));
            }
            if ipv6 || reply.code == ReplyCode::SERVICE_NOT_AVAILABLE {
                return Err(ClientError::Refused {
                    command: "EPSV".to_owned(),
                    reply,
                });
            }
            // A permanent refusal holds for the session; a 4xx may be passing.
            if reply.code.get() >= 500 {
                debug!(%reply, "EPSV refused; using PASV for this session");
                self.epsv_refused = true;
            }
        }
        let reply = self.expect("PASV", &[ReplyCode::PASSIVE_MODE]).await?;
        let announced = address::parse_pasv_reply(&reply.text)
            .map_err(|e| ClientError::Protocol(format!("{e}: {reply}")))?;
        Ok(pasv_target(announced.into(), self.peer.ip()))
    }

    /// Listens for the server's data connection and tells it where (EPRT, or PORT for IPv4).
    async fn announce_active_port(&mut self) -> ClientResult<TcpListener> {
        let listener = TcpListener::bind(SocketAddr::new(self.local.ip(), 0))
            .await
            .map_err(ClientError::Io)?;
        let addr = listener.local_addr().map_err(ClientError::Io)?;
        let eprt = format!("EPRT {}", address::format_eprt_argument(addr));
        let reply = self.command(&eprt).await?;
        if reply.code != ReplyCode::COMMAND_OK {
            let SocketAddr::V4(v4) = addr else {
                return Err(ClientError::Refused {
                    command: eprt,
                    reply,
                });
            };
            self.expect(
                &format!("PORT {}", address::format_port_argument(v4)),
                &[ReplyCode::COMMAND_OK],
            )
            .await?;
        }
        Ok(listener)
    }

    async fn accept_active(&mut self, listener: TcpListener) -> ClientResult<TcpStream> {
        let deadline = tokio::time::Instant::now() + self.config.connect_timeout;
        loop {
            let (stream, from) = tokio::time::timeout_at(deadline, listener.accept())
                .await
                .map_err(|_| ClientError::Timeout("the server's active-mode data connection"))?
                .map_err(ClientError::Io)?;
            if from.ip().to_canonical() == self.peer.ip().to_canonical() {
                return Ok(stream);
            }
            warn!(%from, "ignored a data connection from an address other than the server's");
        }
    }
}

/// RFC 1123 §4.1.2.6 leaves the PASV address to the server, and servers behind NAT announce their
/// private address. Where the announced address cannot be the server we talk to — unspecified,
/// private, loopback or link-local while the control connection is not — use the control peer.
fn pasv_target(announced: SocketAddr, peer: IpAddr) -> SocketAddr {
    let ip = announced.ip().to_canonical();
    let peer = peer.to_canonical();
    let unroutable = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified()
                || v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || is_carrier_grade_nat(v4)
        }
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_loopback(),
    };
    if ip != peer && unroutable(ip) && !same_class(ip, peer) {
        debug!(announced = %ip, using = %peer, "PASV announced an unroutable address");
        return SocketAddr::new(peer, announced.port());
    }
    if ip.is_unspecified() {
        return SocketAddr::new(peer, announced.port());
    }
    announced
}

/// 100.64.0.0/10 (RFC 6598), the shared space of carrier-grade NAT.
fn is_carrier_grade_nat(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (b & 0xC0) == 64
}

/// Both private (a LAN server naming another LAN address is plausible), or both loopback.
fn same_class(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (a.is_private() && b.is_private()) || (a.is_loopback() && b.is_loopback())
        }
        _ => false,
    }
}

async fn connect_tcp(host: &str, port: u16, limit: Duration) -> ClientResult<TcpStream> {
    let addr = format!("{host}:{port}");
    let connect = async {
        let mut last = None;
        for target in tokio::net::lookup_host((host, port)).await? {
            match TcpStream::connect(target).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the host name has no address")))
    };
    let stream = tokio::time::timeout(limit, connect)
        .await
        .map_err(|_| ClientError::Timeout("the control connection"))?
        .map_err(|source| ClientError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Copies until EOF; each read and write must progress within `stall`.
async fn copy_with_timeout<R, W>(
    source: &mut R,
    sink: &mut W,
    stall: Duration,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    let timed_out =
        || std::io::Error::new(std::io::ErrorKind::TimedOut, "the data connection stalled");
    loop {
        let n = tokio::time::timeout(stall, source.read(&mut buf))
            .await
            .map_err(|_| timed_out())??;
        if n == 0 {
            break;
        }
        tokio::time::timeout(stall, sink.write_all(&buf[..n]))
            .await
            .map_err(|_| timed_out())??;
        total += n as u64;
    }
    tokio::time::timeout(stall, sink.flush())
        .await
        .map_err(|_| timed_out())??;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_address_behind_nat_is_replaced_by_the_peer() {
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        let announced: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        assert_eq!(
            pasv_target(announced, peer),
            "203.0.113.5:40000".parse().unwrap()
        );
        let unspecified: SocketAddr = "0.0.0.0:40000".parse().unwrap();
        assert_eq!(
            pasv_target(unspecified, peer),
            "203.0.113.5:40000".parse().unwrap()
        );
        // A public address, or a LAN address on a LAN, is taken as announced.
        let public: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        assert_eq!(pasv_target(public, peer), public);
        let lan: SocketAddr = "192.168.1.9:40000".parse().unwrap();
        assert_eq!(pasv_target(lan, "192.168.1.8".parse().unwrap()), lan);
    }

    #[test]
    fn pasv_target_keeps_reachable_addresses_and_replaces_the_rest() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let target = |announced: &str, peer: IpAddr| {
            pasv_target(format!("{announced}:2121").parse().unwrap(), peer)
        };
        // A server masquerading as a private address, reached over loopback.
        assert_eq!(
            target("10.1.2.3", loopback),
            "127.0.0.1:2121".parse().unwrap()
        );
        // Loopback announced by a remote server: its own view, not reachable from here.
        let public: IpAddr = "198.51.100.20".parse().unwrap();
        assert_eq!(
            target("127.0.0.1", public),
            "198.51.100.20:2121".parse().unwrap()
        );
        // Link-local and carrier-grade NAT addresses are private too.
        assert_eq!(
            target("169.254.1.1", public),
            "198.51.100.20:2121".parse().unwrap()
        );
        assert_eq!(
            target("100.64.0.9", public),
            "198.51.100.20:2121".parse().unwrap()
        );
        // 100.128.0.1 is outside 100.64.0.0/10: a public address, kept.
        assert_eq!(
            target("100.128.0.1", public),
            "100.128.0.1:2121".parse().unwrap()
        );
        // Loopback to loopback, and the peer's own address, are kept.
        assert_eq!(
            target("127.0.0.2", loopback),
            "127.0.0.2:2121".parse().unwrap()
        );
        assert_eq!(
            target("198.51.100.20", public),
            "198.51.100.20:2121".parse().unwrap()
        );
        // An IPv4-mapped peer (dual-stack socket) compares as IPv4.
        let mapped: IpAddr = "::ffff:203.0.113.5".parse().unwrap();
        assert_eq!(
            target("10.0.0.5", mapped),
            "203.0.113.5:2121".parse().unwrap()
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_bounded_jitter() {
        let backoff = Backoff {
            attempts: 10,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
        };
        let delays: Vec<u128> = (0..5).map(|r| backoff.delay(r).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(3));
        for retry in 0..5 {
            let jittered = backoff.jittered_delay(retry);
            let base = backoff.delay(retry);
            assert!(jittered >= base.mul_f64(0.75) && jittered <= base.mul_f64(1.25));
        }
    }

    #[test]
    fn transient_errors_are_the_ones_worth_retrying() {
        let reply = |code| Reply::new(ReplyCode::new(code).unwrap(), "x");
        assert!(ClientError::ConnectionClosed.is_transient());
        assert!(
            ClientError::Refused {
                command: "STOR".into(),
                reply: reply(421)
            }
            .is_transient()
        );
        assert!(
            ClientError::Refused {
                command: "STOR".into(),
                reply: reply(452)
            }
            .is_transient()
        );
        assert!(
            !ClientError::Refused {
                command: "STOR".into(),
                reply: reply(553)
            }
            .is_transient()
        );
        assert!(!ClientError::LoginRefused(reply(530)).is_transient());
        assert!(ClientError::LoginRefused(reply(421)).is_transient());
        assert!(!ClientError::Tls("certificate".into()).is_transient());
        assert_eq!(
            ClientError::LoginRefused(reply(530)).reply_code(),
            Some(530)
        );
        assert_eq!(ClientError::ConnectionClosed.reply_code(), None);
    }

    #[test]
    fn feat_without_extensions_or_in_lower_case() {
        let reply = Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            [
                "Features:",
                " mdtm",
                " mfmt",
                " Mlst size*;",
                " rest stream",
                "End",
            ],
        );
        let features = Features::parse(&reply);
        assert!(features.mfmt && features.mlst && features.rest_stream);
        assert!(!features.epsv && !features.utf8);
        // A one-line reply (no extension lines) offers nothing.
        let none = Features::parse(&Reply::new(ReplyCode::SYSTEM_STATUS, "No features"));
        assert!(!none.mlst && !none.mfmt);
    }

    #[test]
    fn feat_reply_is_understood() {
        let reply = Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            [
                "Extensions supported:",
                " EPSV",
                " MLST type*;size*;",
                " REST STREAM",
                " UTF8",
                "End",
            ],
        );
        let features = Features::parse(&reply);
        assert!(features.epsv && features.mlst && features.rest_stream && features.utf8);
        assert!(!features.mfmt);
        assert!(features.hash.is_empty());
    }

    #[test]
    fn feat_hash_line_lists_algorithms_and_the_selected_one() {
        let reply = Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            [
                "Extensions supported:",
                " HASH SHA-256;SHA-512;sha-1*;MD5",
                "End",
            ],
        );
        let features = Features::parse(&reply);
        // SHA-512 is not one ferry computes, so it is left out.
        assert_eq!(
            features.hash,
            [
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha1,
                HashAlgorithm::Md5
            ]
        );
        assert_eq!(features.hash_selected, Some(HashAlgorithm::Sha1));
    }
}
