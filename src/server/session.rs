//! One control connection from greeting to goodbye: the session state and its event loop.
//!
//! The loop waits for the next command, a running transfer's end, the idle timeout or shutdown.
//! While a transfer runs it keeps reading the control connection, because ABOR, STAT and QUIT
//! must be acted on then (RFC 959 §4.1.3); any other command, NOOP included, is answered after
//! the transfer's final reply: a client reads replies in order, and a `200` between the `150` and
//! the `226` would be taken as the transfer's end. State is split into small independent parts
//! (login, working directory, data setup, pending REST/RNFR) rather than one big state enum.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::control::{ClientSign, ControlConnection, ControlStream, Incoming};
use super::data::{DataParams, DataSetup, DataTls};
use super::events::{self, EventKind};
use super::limits::{ConnectionSlot, LimitExceeded};
use super::metrics::{Direction as TransferDirection, TransferOutcome, UploadEnd};
use super::tls::{Direction, SessionTls};
use super::transfer::TransferError;
use super::virtual_hosts::VirtualHost;
use super::{Server, proxy};
use crate::auth::{TlsRequirement, UserDetails};
use crate::protocol::command::{Command, ProtectionLevel, TransferType, parse_command};
use crate::protocol::hash::{HashAlgorithm, RangSelection};
use crate::protocol::listing::MlstFacts;
use crate::protocol::{Reply, ReplyCode, VirtualPath};
use crate::storage::{StagedUpload, Storage, Upload};

/// How long an upload that replaces an existing file stays in doubt once its data connection has
/// ended without a TLS close_notify: a plain upload ends with a bare close, which a killed client
/// sends too, and only the control connection tells the two apart. A dying client's control
/// connection closes microseconds after its data connection (the kernel releases a dying
/// process's sockets in reverse order), but the dying process can be preempted in between on a
/// busy machine.
///
/// Nobody waits for it on local disk: the upload is staged (every byte written), answered with
/// `226` at once, and renamed into place as soon as the client sends its next command — a
/// killed client never does — or after this long without a close. On storage that cannot stage
/// (object storage, where making a file visible is the upload itself), the final reply waits up
/// to this long instead. Uploads of new files are committed at once: there is no good file for a
/// truncated one to replace.
const UPLOAD_END_GRACE: Duration = Duration::from_millis(25);

/// The two stages of shutdown: stop taking commands when idle, then stop everything.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Idle sessions close; running transfers may finish.
    pub graceful: CancellationToken,
    /// Everything closes now.
    pub immediate: CancellationToken,
}

/// Where the session is in logging in (RFC 959 §5.4 state diagram for USER/PASS).
pub(crate) enum Login {
    AwaitingUser,
    /// `refused` says why the account may not log in from here, decided at USER; the client is
    /// not told until its PASS fails like a wrong password.
    AwaitingPassword {
        user: String,
        refused: Option<&'static str>,
    },
    LoggedIn(Box<LoggedIn>),
}

/// A logged-in user and their storage.
pub(crate) struct LoggedIn {
    pub(crate) details: UserDetails,
    pub(crate) storage: Arc<dyn Storage>,
}

/// What a command handler asks the loop to do next.
pub(crate) enum Flow {
    Reply(Reply),
    /// Send the preliminary reply (150), then run the transfer.
    Transfer(Reply, Transfer),
    /// Send the reply and close the connection.
    Close(Reply),
    /// Send the reply (`234`), then the TLS handshake (AUTH TLS).
    StartTls(Reply),
    /// Send the reply, then end TLS on the control connection (CCC).
    ClearTls(Reply),
}

impl From<Reply> for Flow {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

/// How a finished transfer went.
pub(crate) enum Completed {
    /// A download or listing: this many bytes went out.
    Sent(u64),
    /// An upload that waits for the loop to commit it (see [`Session::finish_upload`]).
    Received {
        upload: Box<dyn Upload>,
        bytes: u64,
        /// The client ended the data with a TLS close_notify: it finished on purpose.
        closed_cleanly: bool,
    },
}

/// The final reply of a transfer that went well.
fn transfer_complete(bytes: u64) -> Reply {
    Reply::new(
        ReplyCode::CLOSING_DATA,
        format!("Transfer complete ({bytes} bytes)."),
    )
}

/// Why a transfer failed, as the reply to send.
pub(crate) struct Failed {
    pub(crate) reply: Reply,
    pub(crate) reason: String,
}

impl From<TransferError> for Failed {
    fn from(error: TransferError) -> Self {
        let reply = match &error {
            TransferError::Stalled(_) | TransferError::Network(_) => Reply::new(
                ReplyCode::TRANSFER_ABORTED,
                format!("Transfer aborted: {error}."),
            ),
            TransferError::Storage(e) => {
                Reply::new(e.reply_code(), format!("Transfer failed: {e}."))
            }
        };
        Self {
            reply,
            reason: error.to_string(),
        }
    }
}

/// A transfer running alongside the control loop.
pub(crate) struct Transfer {
    pub(crate) future: BoxFuture<'static, Result<Completed, Failed>>,
    pub(crate) info: TransferInfo,
}

/// What the session knows about a running transfer, for STAT and the log line.
pub(crate) struct TransferInfo {
    /// Bytes moved so far.
    pub(crate) progress: Arc<AtomicU64>,
    /// RETR, STOR, LIST, ... for the log line.
    pub(crate) verb: &'static str,
    pub(crate) path: VirtualPath,
    pub(crate) started: Instant,
}

/// An upload that replaces a file, answered with `226` and waiting to be made visible until its
/// client shows it is still there (see [`UPLOAD_END_GRACE`]).
pub(crate) struct PendingUpload {
    staged: Box<dyn StagedUpload>,
    info: TransferInfo,
    bytes: u64,
    /// When a client that stayed silent and connected counts as present.
    deadline: tokio::time::Instant,
    /// Keeps the account's other sessions waiting until the upload is settled.
    _unsettled: Option<super::unsettled::Unsettled>,
}

/// One control connection's state.
pub(crate) struct Session {
    /// The connection's id, as in log lines.
    pub(crate) id: u64,
    pub(crate) server: Arc<Server>,
    /// The client: the TCP peer, or the address a trusted balancer's PROXY header names.
    pub(crate) peer: SocketAddr,
    /// The balancer the control connection came through, if it did (see [`DataParams`]).
    pub(crate) balancer: Option<IpAddr>,
    pub(crate) local: SocketAddr,
    pub(crate) control: ControlConnection,
    pub(crate) login: Login,
    pub(crate) cwd: VirtualPath,
    pub(crate) transfer_type: TransferType,
    pub(crate) data: DataSetup,
    pub(crate) epsv_all: bool,
    /// REST offset for the next RETR/STOR.
    pub(crate) restart_offset: u64,
    /// RNFR source for the next RNTO.
    pub(crate) rename_from: Option<VirtualPath>,
    pub(crate) mlst_facts: MlstFacts,
    /// When the current login began: at connect, and again when a logged-in user starts over.
    pub(crate) login_started: Instant,
    /// This session's TLS configurations, once AUTH TLS (or implicit TLS) has started TLS.
    pub(crate) tls: Option<SessionTls>,
    /// PROT: whether data connections are encrypted.
    pub(crate) protection: ProtectionLevel,
    /// PBSZ was sent (RFC 4217 §8).
    pub(crate) pbsz_set: bool,
    /// What HASH computes (OPTS HASH), and the range of a RANG sent just before it.
    pub(crate) hash_algorithm: HashAlgorithm,
    pub(crate) hash_range: Option<RangSelection>,
    /// The site chosen with HOST (RFC 7151), if any.
    pub(crate) virtual_host: Option<Arc<VirtualHost>>,
    /// A replacing upload answered but not yet visible; settled before the next command.
    pending_upload: Option<Box<PendingUpload>>,
    pub(crate) shutdown: Shutdown,
}

/// What woke the loop.
enum Event {
    Incoming(std::io::Result<Incoming>),
    TransferDone(Result<Completed, Failed>),
    Timeout(SessionTimeout),
    /// A PASV/EPSV port waited the data-accept timeout for a transfer command.
    PassiveExpired,
    Shutdown,
}

/// Which timeout closed a session.
#[derive(Debug, Clone, Copy)]
enum SessionTimeout {
    /// No command for this long.
    Idle(Duration),
    /// No successful login this long after connecting (or after leaving a login by REIN/USER).
    Login(Duration),
}

/// How a control connection begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    /// Plain text; AUTH TLS may follow.
    Plain,
    /// TLS from the first byte (implicit FTPS, customarily port 990).
    ImplicitTls,
}

/// Runs one control connection to its end.
pub(crate) async fn run(
    mut stream: TcpStream,
    tcp_peer: SocketAddr,
    mut slot: ConnectionSlot,
    server: Arc<Server>,
    shutdown: Shutdown,
    kind: ListenerKind,
    id: u64,
) {
    let local = match stream.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            debug!(%error, "connection gone before the greeting");
            return;
        }
    };
    let peer =
        match proxy::identify(&mut stream, tcp_peer, &server.config.proxy_protocol_from).await {
            Ok(peer) => peer,
            Err(error @ proxy::ProxyReadError::Silent) => {
                debug!(balancer = %tcp_peer, %error, "closed a connection from a balancer network");
                return;
            }
            Err(error) => {
                warn!(balancer = %tcp_peer, %error, "closed a connection from a balancer network");
                return;
            }
        };
    let span = tracing::Span::current();
    span.record("peer", tracing::field::display(peer.client));
    if let Some(balancer) = peer.balancer {
        span.record("balancer", tracing::field::display(balancer));
    }
    let (balancer, peer) = (peer.balancer.map(|b| b.ip()), peer.client);
    // A balancer's connection was counted in the total at accept; now its client is known.
    if let Err(refusal) = slot.assign(peer.ip()) {
        warn!(%refusal, "connection refused");
        if kind == ListenerKind::Plain {
            refuse(
                ControlConnection::new(ControlStream::Plain(stream)),
                &server,
                refusal,
            )
            .await;
        }
        return;
    }
    let (control_stream, tls) = match (kind, &server.config.tls) {
        (ListenerKind::ImplicitTls, Some(context)) => {
            let tls = context.session(peer.ip());
            let limit = server.config.timeouts.data_accept;
            let accepted = ControlStream::accept_tls(stream, Arc::clone(&tls.control), limit).await;
            server.metrics.tls_handshake("control", accepted.is_ok());
            match accepted {
                Ok(stream) => (stream, Some(tls)),
                Err(error) => {
                    debug!(%error, "implicit TLS handshake failed");
                    return;
                }
            }
        }
        _ => (ControlStream::Plain(stream), None),
    };
    serve_control(
        control_stream,
        tls,
        Peer {
            client: peer,
            balancer,
            local,
        },
        slot,
        server,
        shutdown,
        id,
    )
    .await;
}

/// Sends the `421` of a connection over a limit and closes it.
async fn refuse(mut control: ControlConnection, server: &Server, refusal: LimitExceeded) {
    let reply = Reply::new(ReplyCode::SERVICE_NOT_AVAILABLE, format!("{refusal}."));
    server.metrics.reply(reply.code.get());
    let _ = control.send(&reply).await;
    control.shutdown().await;
}

/// Where a control connection comes from and arrives.
struct Peer {
    client: SocketAddr,
    balancer: Option<IpAddr>,
    local: SocketAddr,
}

/// Runs a whole session over an in-memory pipe from `peer` (no PROXY header, no TLS): the
/// control loop, commands, storage and replies as on a socket, without one. For fuzzing.
#[cfg(feature = "fuzzing")]
pub(crate) async fn run_in_memory(
    stream: tokio::io::DuplexStream,
    peer: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
    shutdown: Shutdown,
) {
    let control_stream = ControlStream::Memory(stream);
    let slot = match server.limits.acquire(peer.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            refuse(ControlConnection::new(control_stream), &server, refusal).await;
            return;
        }
    };
    let peer = Peer {
        client: peer,
        balancer: None,
        local,
    };
    let id = server.next_session_id.fetch_add(1, Ordering::Relaxed);
    serve_control(control_stream, None, peer, slot, server, shutdown, id).await;
}

/// The session on an accepted control stream, holding its connection slot: greeting, commands,
/// until it ends.
async fn serve_control(
    control_stream: ControlStream,
    tls: Option<SessionTls>,
    Peer {
        client: peer,
        balancer,
        local,
    }: Peer,
    _slot: ConnectionSlot,
    server: Arc<Server>,
    shutdown: Shutdown,
    id: u64,
) {
    let implicit = tls.is_some();
    let control = ControlConnection::new(control_stream);
    let mut session = Session {
        id,
        server,
        peer,
        balancer,
        local,
        control,
        login: Login::AwaitingUser,
        login_started: Instant::now(),
        cwd: VirtualPath::root(),
        transfer_type: TransferType::Binary,
        data: DataSetup::None,
        epsv_all: false,
        restart_offset: 0,
        rename_from: None,
        mlst_facts: MlstFacts::default_set(),
        tls,
        // Implicit FTPS protects data connections from the start.
        protection: if implicit {
            ProtectionLevel::Private
        } else {
            ProtectionLevel::Clear
        },
        pbsz_set: implicit,
        hash_algorithm: HashAlgorithm::default(),
        hash_range: None,
        virtual_host: None,
        pending_upload: None,
        shutdown,
    };
    debug!("connected");
    session.adopt_tls_server_name();
    let metrics = Arc::clone(&session.server.metrics);
    metrics.session_opened();
    if let Err(error) = session.serve().await {
        debug!(%error, "control connection ended with an error");
    }
    if let Some(pending) = session.pending_upload.take() {
        // The `226` could not be sent: the client does not know the upload ended.
        session.drop_upload(&pending.info, pending.bytes);
    }
    if session.user().is_some() {
        session.emit(EventKind::Logout, |event| event);
    }
    session.control.shutdown().await;
    metrics.session_closed();
    debug!("disconnected");
}

impl Session {
    async fn serve(&mut self) -> std::io::Result<()> {
        let banner = Reply::new(ReplyCode::SERVICE_READY, self.server.config.banner.clone());
        self.send_reply(&banner).await?;
        let mut transfer: Option<Transfer> = None;
        // A command that arrived during a transfer and must wait for its end.
        let mut deferred: Option<Bytes> = None;
        let mut quit_after_transfer = false;
        loop {
            if let Some(pending) = self.pending_upload.take() {
                // A command that arrived during the transfer is a sign of life already.
                let spoke = deferred.is_some() || quit_after_transfer;
                Box::pin(self.settle_upload(*pending, spoke)).await;
            }
            if transfer.is_none() {
                if quit_after_transfer {
                    let bye = self.goodbye();
                    return self.send_reply(&bye).await;
                }
                if let Some(line) = deferred.take() {
                    let flow = Box::pin(self.execute(&line)).await;
                    if !Box::pin(self.apply(flow, &mut transfer)).await? {
                        return Ok(());
                    }
                    continue;
                }
            }
            let event = match transfer.as_mut() {
                Some(running) => {
                    tokio::select! {
                        outcome = &mut running.future => Event::TransferDone(outcome),
                        incoming = self.control.next_line(), if deferred.is_none() => Event::Incoming(incoming),
                        () = self.shutdown.immediate.cancelled() => Event::Shutdown,
                    }
                }
                None => {
                    let (wait, timeout) = self.command_timeout();
                    if !self.control.has_buffered_input() {
                        self.control.release_idle_buffer();
                    }
                    // One timer for the session timeout and an unused passive port, whichever
                    // comes first: every byte here is held by each idle session.
                    let timeout_at = tokio::time::Instant::now() + wait;
                    let passive_expiry = self.data.passive_expiry().filter(|at| *at < timeout_at);
                    tokio::select! {
                        incoming = self.control.next_line() => Event::Incoming(incoming),
                        () = tokio::time::sleep_until(passive_expiry.unwrap_or(timeout_at)) => {
                            match passive_expiry {
                                Some(_) => Event::PassiveExpired,
                                None => Event::Timeout(timeout),
                            }
                        }
                        () = self.shutdown.graceful.cancelled() => Event::Shutdown,
                    }
                }
            };
            match event {
                Event::Incoming(incoming) => {
                    let line = match incoming? {
                        Incoming::Line(line) => line,
                        Incoming::TooLong => {
                            let reply = Reply::new(
                                ReplyCode::SYNTAX_ERROR,
                                format!(
                                    "Command line too long (the limit is {} bytes); it was ignored.",
                                    crate::protocol::MAX_LINE_LEN
                                ),
                            );
                            self.send_reply(&reply).await?;
                            continue;
                        }
                        Incoming::Closed => {
                            if let Some(running) = transfer.take() {
                                let bytes = running.info.progress.load(Ordering::Relaxed);
                                self.log_transfer(
                                    &running.info,
                                    TransferOutcome::Aborted,
                                    "aborted: client closed the control connection",
                                    bytes,
                                );
                            }
                            return Ok(());
                        }
                    };
                    let Some(running) = transfer.as_ref().map(|t| &t.info) else {
                        // Boxed: the futures of the command handlers (logins, TLS handshakes,
                        // storage calls) live on the heap only while a command runs, so an idle
                        // session's task holds little more than its state.
                        let flow = Box::pin(self.execute(&line)).await;
                        if !Box::pin(self.apply(flow, &mut transfer)).await? {
                            return Ok(());
                        }
                        continue;
                    };
                    match parse_command(&line) {
                        Ok(Command::Abor) => {
                            let aborted = transfer.take().expect("checked above");
                            let bytes = aborted.info.progress.load(Ordering::Relaxed);
                            self.log_transfer(
                                &aborted.info,
                                TransferOutcome::Aborted,
                                "aborted by the client",
                                bytes,
                            );
                            drop(aborted);
                            self.control
                                .send(&Reply::new(
                                    ReplyCode::TRANSFER_ABORTED,
                                    "Connection closed; transfer aborted.",
                                ))
                                .await?;
                            self.control
                                .send(&Reply::new(
                                    ReplyCode::CLOSING_DATA,
                                    "ABOR command successful.",
                                ))
                                .await?;
                        }
                        Ok(Command::Stat(None)) => {
                            let bytes = running.progress.load(Ordering::Relaxed);
                            let reply = Reply::new(
                                ReplyCode::FILE_STATUS,
                                format!(
                                    "{} {} in progress: {bytes} bytes so far.",
                                    running.verb, running.path
                                ),
                            );
                            self.send_reply(&reply).await?;
                        }
                        Ok(Command::Quit) => quit_after_transfer = true,
                        _ => deferred = Some(line),
                    }
                }
                Event::TransferDone(outcome) => {
                    let finished = transfer.take().expect("a transfer was running");
                    let reply = self.finish_transfer(finished.info, outcome).await;
                    match reply {
                        Some(reply) => self.send_reply(&reply).await?,
                        None => return Ok(()),
                    }
                }
                Event::PassiveExpired => {
                    // The port goes back to the pool; a later transfer command gets 425.
                    debug!("no transfer used the passive port in time; closing it");
                    self.data = DataSetup::None;
                }
                Event::Timeout(timeout) => {
                    let text = match timeout {
                        SessionTimeout::Idle(idle) => {
                            info!(idle_secs = idle.as_secs(), "closing an idle session");
                            format!(
                                "No command for {} seconds; closing the connection.",
                                idle.as_secs()
                            )
                        }
                        SessionTimeout::Login(limit) => {
                            info!(login_secs = limit.as_secs(), "no login in time; closing");
                            format!(
                                "Not logged in within {} seconds; closing the connection.",
                                limit.as_secs()
                            )
                        }
                    };
                    let reply = Reply::new(ReplyCode::SERVICE_NOT_AVAILABLE, text);
                    return self.send_reply(&reply).await;
                }
                Event::Shutdown => {
                    if let Some(running) = transfer.take() {
                        let bytes = running.info.progress.load(Ordering::Relaxed);
                        self.log_transfer(
                            &running.info,
                            TransferOutcome::Aborted,
                            "aborted: server shutting down",
                            bytes,
                        );
                    }
                    let reply = Reply::new(
                        ReplyCode::SERVICE_NOT_AVAILABLE,
                        "The server is shutting down; please reconnect later.",
                    );
                    return self.send_reply(&reply).await;
                }
            }
        }
    }

    /// Carries out what a command asked for. `false` means the session is over.
    async fn apply(
        &mut self,
        flow: Flow,
        transfer: &mut Option<Transfer>,
    ) -> std::io::Result<bool> {
        match flow {
            Flow::Reply(reply) => self.send_reply(&reply).await?,
            Flow::Transfer(preliminary, started) => {
                self.send_reply(&preliminary).await?;
                *transfer = Some(started);
            }
            Flow::Close(reply) => {
                self.send_reply(&reply).await?;
                return Ok(false);
            }
            Flow::StartTls(reply) => {
                self.send_reply(&reply).await?;
                let config = match &self.tls {
                    Some(tls) => Arc::clone(&tls.control),
                    None => return Ok(false),
                };
                let limit = self.server.config.timeouts.data_accept;
                let started = self.control.start_tls(config, limit).await;
                self.server
                    .metrics
                    .tls_handshake("control", started.is_ok());
                if let Err(error) = started {
                    info!(%error, "TLS handshake on the control connection failed");
                    return Ok(false);
                }
                self.adopt_tls_server_name();
                debug!("control connection is now TLS");
            }
            Flow::ClearTls(reply) => {
                self.send_reply(&reply).await?;
                let limit = self.server.config.timeouts.data_accept;
                if let Err(error) = self.control.clear_tls(limit).await {
                    info!(%error, "CCC: TLS close on the control connection failed");
                    return Ok(false);
                }
                debug!("control connection is back in clear text (CCC)");
            }
        }
        Ok(true)
    }

    /// How long to wait for the next command, and which timeout ends the wait. Before login
    /// the login timeout counts from the start of the login, and commands do not reset it: a
    /// client that never logs in cannot hold a connection slot by sending NOOPs.
    fn command_timeout(&self) -> (Duration, SessionTimeout) {
        let timeouts = &self.server.config.timeouts;
        if matches!(self.login, Login::LoggedIn(_)) {
            return (timeouts.idle, SessionTimeout::Idle(timeouts.idle));
        }
        let left = timeouts.login.saturating_sub(self.login_started.elapsed());
        if left < timeouts.idle {
            (left, SessionTimeout::Login(timeouts.login))
        } else {
            (timeouts.idle, SessionTimeout::Idle(timeouts.idle))
        }
    }

    /// Parses and runs one command line.
    async fn execute(&mut self, line: &[u8]) -> Flow {
        if let Some(user) = self.user() {
            // What another connection of this account was told is uploaded is there.
            self.server
                .unsettled
                .settled(user.details.name.as_str())
                .await;
        }
        let command = match parse_command(line) {
            Ok(command) => {
                self.server.metrics.command(command.verb());
                command
            }
            Err(error) => {
                debug!(%error, "unparsable command");
                return error.reply().into();
            }
        };
        if !matches!(command, Command::Pass(_)) {
            debug!(command = %String::from_utf8_lossy(line), "command");
        }
        let keeps_rename = matches!(command, Command::Rnto(_) | Command::Rnfr(_));
        let flow = self.dispatch(command).await;
        if !keeps_rename {
            // RNTO must directly follow RNFR (RFC 959 §4.1.3).
            self.rename_from = None;
        }
        flow
    }

    /// Ends a transfer: commits an upload unless the client has gone, logs one line, and returns
    /// the final reply (`None` when the client is gone and nothing should be sent).
    async fn finish_transfer(
        &mut self,
        running: TransferInfo,
        outcome: Result<Completed, Failed>,
    ) -> Option<Reply> {
        match outcome {
            Ok(Completed::Sent(bytes)) => {
                self.log_transfer(&running, TransferOutcome::Ok, "ok", bytes);
                Some(transfer_complete(bytes))
            }
            Ok(Completed::Received {
                upload,
                bytes,
                closed_cleanly,
            }) => {
                self.finish_upload(running, upload, bytes, closed_cleanly)
                    .await
            }
            Err(failed) => {
                let bytes = running.progress.load(Ordering::Relaxed);
                self.log_transfer(
                    &running,
                    TransferOutcome::Failed,
                    &format!("failed: {}", failed.reason),
                    bytes,
                );
                Some(failed.reply)
            }
        }
    }

    /// An upload whose data connection ended is kept only if the client is still there: a client
    /// killed mid-upload closes both connections, and its truncated file must not replace a good
    /// one. Decided on what is known at once where possible: a closed control connection (gone),
    /// a TLS close_notify on the data connection or a command already sent (there), no file to
    /// replace (nothing to lose). Otherwise the upload is staged and answered at once, and made
    /// visible by [`Session::settle_upload`] (see [`UPLOAD_END_GRACE`]).
    async fn finish_upload(
        &mut self,
        running: TransferInfo,
        upload: Box<dyn Upload>,
        bytes: u64,
        closed_cleanly: bool,
    ) -> Option<Reply> {
        let sign = self.control.client_sign();
        if let ClientSign::Closed { .. } = sign {
            drop(upload);
            self.drop_upload(&running, bytes);
            return None;
        }
        let in_doubt = upload.replaces_file() && !closed_cleanly && sign == ClientSign::Quiet;
        if !in_doubt {
            self.server.metrics.upload_end(UploadEnd::AtOnce);
            return Some(self.commit_upload(&running, upload, bytes).await);
        }
        if upload.can_stage() {
            return match upload.stage().await {
                Ok((_, staged)) => {
                    let unsettled = self
                        .user()
                        .map(|user| self.server.unsettled.hold(user.details.name.as_str()));
                    self.pending_upload = Some(Box::new(PendingUpload {
                        staged,
                        info: running,
                        bytes,
                        deadline: tokio::time::Instant::now() + UPLOAD_END_GRACE,
                        _unsettled: unsettled,
                    }));
                    Some(transfer_complete(bytes))
                }
                Err(error) => Some(self.upload_failed(&running, &error, bytes)),
            };
        }
        self.server.metrics.upload_end(UploadEnd::Waited);
        if self.control.closes_within(UPLOAD_END_GRACE).await {
            drop(upload);
            self.drop_upload(&running, bytes);
            return None;
        }
        Some(self.commit_upload(&running, upload, bytes).await)
    }

    /// Makes a staged upload visible once its client shows it is still there: a next command
    /// (`spoke`: one arrived already), a close after reading every reply, or silence until the
    /// deadline. A killed client shows none of these: its connection closes, and its kernel
    /// resets it when the `226` arrives unread.
    async fn settle_upload(&mut self, pending: PendingUpload, spoke: bool) {
        let sign = if spoke {
            ClientSign::Talking
        } else {
            tokio::select! {
                sign = self.control.next_sign(pending.deadline) => sign,
                // Shutting down: a client that has not left is taken as present.
                () = self.shutdown.graceful.cancelled() => ClientSign::Quiet,
            }
        };
        let keep = match sign {
            ClientSign::Talking => Some(UploadEnd::NextCommand),
            ClientSign::Quiet => Some(UploadEnd::Quiet),
            ClientSign::Closed { reset: true } => None,
            ClientSign::Closed { reset: false } => {
                // The close may have crossed the `226`: a dead client's kernel resets the
                // connection when the reply arrives. Wait for that until the deadline (the
                // client has left: nobody waits for this).
                tokio::time::sleep_until(pending.deadline).await;
                (!self.control.reset_after_close()).then_some(UploadEnd::Quiet)
            }
        };
        let PendingUpload {
            staged,
            info,
            bytes,
            ..
        } = pending;
        let Some(how) = keep else {
            drop(staged);
            self.drop_upload(&info, bytes);
            return;
        };
        self.server.metrics.upload_end(how);
        match staged.publish().await {
            Ok(()) => self.log_transfer(&info, TransferOutcome::Ok, "ok", bytes),
            Err(error) => {
                // The client was told `226`; say loudly that the file is not there.
                warn!(path = %info.path, %error, "an upload answered 226 could not be made visible");
                self.log_transfer(
                    &info,
                    TransferOutcome::Failed,
                    &format!("failed after its 226: {error}"),
                    bytes,
                );
            }
        }
    }

    /// Commits an upload and returns the final reply.
    async fn commit_upload(
        &mut self,
        running: &TransferInfo,
        upload: Box<dyn Upload>,
        bytes: u64,
    ) -> Reply {
        match upload.commit().await {
            Ok(_) => {
                self.log_transfer(running, TransferOutcome::Ok, "ok", bytes);
                transfer_complete(bytes)
            }
            Err(error) => self.upload_failed(running, &error, bytes),
        }
    }

    /// Logs an upload that could not be saved and returns the reply that says so.
    fn upload_failed(
        &self,
        running: &TransferInfo,
        error: &crate::storage::StorageError,
        bytes: u64,
    ) -> Reply {
        self.log_transfer(
            running,
            TransferOutcome::Failed,
            &format!("failed: {error}"),
            bytes,
        );
        Reply::new(
            error.reply_code(),
            format!("Could not save {}: {error}.", running.path),
        )
    }

    /// Logs and counts an upload thrown away because its client is gone.
    fn drop_upload(&self, running: &TransferInfo, bytes: u64) {
        self.server.metrics.upload_end(UploadEnd::Discarded);
        self.log_transfer(
            running,
            TransferOutcome::Discarded,
            "discarded: client closed the control connection",
            bytes,
        );
    }

    /// Sends one reply on the control connection, counted by class.
    async fn send_reply(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.server.metrics.reply(reply.code.get());
        self.control.send(reply).await
    }

    /// Logs the one line of a finished transfer (`result` says why, for people) and counts it.
    fn log_transfer(
        &self,
        running: &TransferInfo,
        outcome: TransferOutcome,
        result: &str,
        bytes: u64,
    ) {
        let direction = match running.verb {
            "STOR" | "APPE" | "STOU" => TransferDirection::In,
            _ => TransferDirection::Out,
        };
        self.server.metrics.transfer(direction, outcome, bytes);
        self.record_xferlog(running, outcome, bytes);
        let kind = match (direction, outcome) {
            (TransferDirection::In, TransferOutcome::Ok) => Some(EventKind::Upload),
            (TransferDirection::In, _) => Some(EventKind::UploadAborted),
            (TransferDirection::Out, TransferOutcome::Ok) if running.verb == "RETR" => {
                Some(EventKind::Download)
            }
            // Listings, and downloads that did not finish.
            (TransferDirection::Out, _) => None,
        };
        if let Some(kind) = kind {
            self.emit(kind, |event| {
                let event = event
                    .path(&running.path)
                    .transfer(bytes, running.started.elapsed());
                match outcome {
                    TransferOutcome::Ok => event,
                    _ => event.reason(result),
                }
            });
        }
        let user = match &self.login {
            Login::LoggedIn(logged_in) => logged_in.details.name.as_str(),
            _ => "-",
        };
        info!(
            user,
            command = running.verb,
            path = %running.path,
            bytes,
            duration_ms = running.started.elapsed().as_millis() as u64,
            result,
            "transfer"
        );
    }

    /// What opening the data connection for a transfer in `direction` needs from this session.
    pub(crate) fn data_params(&self, direction: Direction) -> DataParams {
        DataParams {
            peer_ip: self.peer.ip(),
            balancer_ip: self.balancer,
            local_ip: self.local.ip(),
            timeout: self.server.config.timeouts.data_accept,
            tls: self.data_tls(direction),
        }
    }

    /// Whether data connections are encrypted: under TLS, after PROT P.
    pub(crate) fn data_is_protected(&self) -> bool {
        self.tls.is_some() && self.protection == ProtectionLevel::Private
    }

    /// TLS for one data connection, under PROT P.
    pub(crate) fn data_tls(&self, direction: Direction) -> Option<DataTls> {
        if !self.data_is_protected() {
            return None;
        }
        let (config, resumed_from) = self.tls.as_ref()?.data(direction);
        let require_resumption = self
            .server
            .config
            .tls
            .as_ref()
            .is_some_and(|context| context.settings.require_resumption);
        Some(DataTls {
            config,
            resumed_from,
            require_resumption,
            metrics: Arc::clone(&self.server.metrics),
        })
    }

    /// What must be encrypted for this session: the server's policy, tightened by the account's.
    pub(crate) fn tls_requirement(&self) -> TlsRequirement {
        let server = self
            .server
            .config
            .tls
            .as_ref()
            .map_or(TlsRequirement::None, |context| context.settings.required);
        let account = self
            .user()
            .and_then(|user| user.details.tls_required)
            .unwrap_or(TlsRequirement::None);
        server.combine(account)
    }

    /// Offers an event of `kind` to the operator's hooks, if there are any: `facts` adds what
    /// the event knows beyond the session, the account and the client.
    pub(crate) fn emit(&self, kind: EventKind, facts: impl FnOnce(events::Event) -> events::Event) {
        let Some(hooks) = &self.server.config.events else {
            return;
        };
        let user = self.user().map(|user| user.details.name.as_str());
        hooks.emit(facts(events::Event::new(
            kind,
            self.id,
            user,
            self.peer.ip(),
        )));
    }

    /// The pace of a transfer in `direction`, when it is limited.
    pub(crate) fn pacer(&self, direction: Direction) -> Option<super::pace::Pacer> {
        let config = &self.server.config;
        let limit = match direction {
            Direction::Upload => config.upload_rate,
            Direction::Download => config.download_rate,
        };
        limit.map(super::pace::Pacer::new)
    }

    /// The logged-in user, if any.
    pub(crate) fn user(&self) -> Option<&LoggedIn> {
        match &self.login {
            Login::LoggedIn(logged_in) => Some(logged_in),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::SqliteAuthenticator;
    use crate::auth::store::AccountStore;
    use crate::server::ServerConfig;
    use crate::storage::memory::MemoryProvider;

    /// Every idle session's task holds this future: what a command needs while it runs (logins,
    /// TLS handshakes, storage calls) is boxed, so it costs nothing between commands. Before
    /// that, the future was 3.5 KiB.
    #[tokio::test]
    async fn a_session_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let server = Server::new(
            ServerConfig::default(),
            Arc::new(SqliteAuthenticator::new(Arc::new(
                AccountStore::open_in_memory().unwrap(),
            ))),
            Arc::new(MemoryProvider::new()),
        );
        let slot = server.limits.acquire(peer.ip()).unwrap();
        let session = run(
            stream,
            peer,
            slot,
            server,
            Shutdown::default(),
            ListenerKind::Plain,
            1,
        );
        let size = std::mem::size_of_val(&session);
        assert!(size <= 2560, "a session's future grew to {size} bytes");
        drop(client);
    }
}
