//! The control connection: reads command lines and writes replies, over TCP or TLS.
//!
//! It owns the socket and its buffers (and nothing else). The read buffer starts empty and is
//! returned to the allocator between commands, so an idle session costs a few hundred bytes here.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::protocol::{LineDecoder, LineError, Reply};

/// The byte stream under the control connection.
#[derive(Debug)]
pub(crate) enum ControlStream {
    Plain(TcpStream),
    /// Boxed: a TLS session is large, and plain sessions should not pay for it.
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while switching between plain and TLS; a failed switch leaves the connection here.
    Switching,
    /// An in-memory pipe, for fuzzing whole sessions without sockets (see
    /// `server::serve_in_memory`). It cannot start TLS.
    #[cfg(feature = "fuzzing")]
    Memory(tokio::io::DuplexStream),
}

impl ControlStream {
    /// Runs the server side of a TLS handshake on a plain connection.
    pub(crate) async fn accept_tls(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        limit: Duration,
    ) -> io::Result<Self> {
        let tls = tokio::time::timeout(limit, TlsAcceptor::from(config).accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(Self::Tls(Box::new(tls)))
    }
}

/// The largest TLS record on the wire: 2^14 bytes of data plus the most any protection adds
/// (RFC 8446 §5.2).
const MAX_TLS_RECORD: usize = (1 << 14) + 256;

/// Feeds `connection` whole TLS records from `tcp`, never a byte more, until the peer's
/// close_notify; application data that arrives meanwhile is dropped.
async fn read_until_close_notify(
    tcp: &mut TcpStream,
    connection: &mut rustls::ServerConnection,
) -> io::Result<()> {
    let mut record = Vec::with_capacity(512);
    loop {
        let state = connection
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let pending = state.plaintext_bytes_to_read();
        if pending > 0 {
            std::io::copy(
                &mut std::io::Read::take(connection.reader(), pending as u64),
                &mut std::io::sink(),
            )?;
        }
        if state.peer_has_closed() {
            return Ok(());
        }
        let mut header = [0u8; 5];
        tcp.read_exact(&mut header).await?;
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length > MAX_TLS_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a TLS record longer than TLS allows",
            ));
        }
        record.clear();
        record.extend_from_slice(&header);
        record.resize(5 + length, 0);
        tcp.read_exact(&mut record[5..]).await?;
        let mut whole = &record[..];
        while !whole.is_empty() {
            connection.read_tls(&mut whole)?;
        }
    }
}

fn switching() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the control connection changed TLS state and failed",
    )
}

impl ControlStream {
    /// Reads what has arrived into `buf`, waiting for at least one byte (0 at end of stream).
    ///
    /// Plain TCP is read with `readable` + `try_read_buf` rather than `AsyncRead`: tokio's
    /// `poll_read` takes a short read as "nothing more is waiting" and sleeps until the next
    /// readiness event, but a read also stops short at the urgent mark. Python's ftplib sends
    /// `ABOR\r\n` as urgent data, so the `\n` would sit in the socket with no event to come.
    /// `try_read_buf` keeps the readiness until a read really would block.
    async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => loop {
                tcp.readable().await?;
                match tcp.try_read_buf(buf) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return result,
                }
            },
            _ => self.read_buf(buf).await,
        }
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Switching => Poll::Ready(Err(switching())),
            #[cfg(feature = "fuzzing")]
            Self::Memory(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Switching => Poll::Ready(Err(switching())),
            #[cfg(feature = "fuzzing")]
            Self::Memory(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Switching => Poll::Ready(Err(switching())),
            #[cfg(feature = "fuzzing")]
            Self::Memory(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Switching => Poll::Ready(Err(switching())),
            #[cfg(feature = "fuzzing")]
            Self::Memory(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What reading the control connection produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    Line(Bytes),
    TooLong,
    /// The client closed the connection.
    Closed,
}

/// What the control connection shows of its client (see [`ControlConnection::client_sign`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientSign {
    /// Bytes are waiting: a next command, or any TLS record. A killed client sends nothing more.
    Talking,
    /// Nothing to read, and the connection is open.
    Quiet,
    /// The client closed the connection; `reset` when with (or after) a reset.
    Closed { reset: bool },
}

/// A control connection with its line decoder.
#[derive(Debug)]
pub(crate) struct ControlConnection {
    stream: ControlStream,
    read_buf: BytesMut,
    decoder: LineDecoder,
}

/// Read at least this much at a time, so a command rarely needs two reads.
const READ_CHUNK: usize = 512;

impl ControlConnection {
    pub(crate) fn new(stream: ControlStream) -> Self {
        Self {
            stream,
            read_buf: BytesMut::new(),
            decoder: LineDecoder::new(),
        }
    }

    /// The next line, waiting for it. Cancel-safe: a partly read line stays in the buffer.
    pub(crate) async fn next_line(&mut self) -> io::Result<Incoming> {
        loop {
            if let Some(item) = self.decoder.decode(&mut self.read_buf) {
                return Ok(match item {
                    Ok(line) => Incoming::Line(line),
                    Err(LineError::TooLong) => Incoming::TooLong,
                });
            }
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK {
                self.read_buf.reserve(READ_CHUNK);
            }
            if self.stream.read_some(&mut self.read_buf).await? == 0 {
                return Ok(Incoming::Closed);
            }
        }
    }

    /// True if bytes of a further command are already buffered (a pipelining client).
    pub(crate) fn has_buffered_input(&self) -> bool {
        !self.read_buf.is_empty()
    }

    /// True if the client closes the control connection within `grace`; false as soon as it
    /// sends something or when `grace` is over.
    ///
    /// A client killed mid-upload closes both connections, and the data connection's end then
    /// looks like a normal end of file: only the control connection's close tells the
    /// difference. The kernel releases a dying process's sockets in reverse order, so that close
    /// comes a moment *after* the data connection's; hence the wait.
    pub(crate) async fn closes_within(&mut self, grace: Duration) -> bool {
        // No timer for a zero grace: the runtime's timer has millisecond ticks.
        let sign = if grace.is_zero() {
            self.client_sign()
        } else {
            self.next_sign(tokio::time::Instant::now() + grace).await
        };
        matches!(sign, ClientSign::Closed { .. })
    }

    /// What the control connection shows of the client right now, without waiting and without
    /// taking a byte from it.
    ///
    /// The socket is peeked directly rather than read: the runtime's readiness may lag behind
    /// (a transfer can see its end before the runtime has polled the control connection), and
    /// peeking leaves the bytes of a next command where they are.
    pub(crate) fn client_sign(&mut self) -> ClientSign {
        if self.has_buffered_input() {
            return ClientSign::Talking;
        }
        let tcp = match &mut self.stream {
            ControlStream::Plain(tcp) => &*tcp,
            ControlStream::Tls(tls) => {
                let (tcp, connection) = tls.get_mut();
                // A command already decrypted, or a close_notify: a client that is there.
                let decrypted = connection.process_new_packets().is_ok_and(|state| {
                    state.plaintext_bytes_to_read() > 0 || state.peer_has_closed()
                });
                if decrypted {
                    return ClientSign::Talking;
                }
                &*tcp
            }
            ControlStream::Switching => return ClientSign::Closed { reset: true },
            // A pipe has no peek; its client is taken as present.
            #[cfg(feature = "fuzzing")]
            ControlStream::Memory(_) => return ClientSign::Talking,
        };
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(tcp).peek(&mut probe) {
            Ok(0) => ClientSign::Closed {
                reset: Self::was_reset(tcp),
            },
            Ok(_) => ClientSign::Talking,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => ClientSign::Quiet,
            Err(_) => ClientSign::Closed { reset: true },
        }
    }

    /// The first sign of the client that is not silence, or [`ClientSign::Quiet`] at `deadline`.
    pub(crate) async fn next_sign(&mut self, deadline: tokio::time::Instant) -> ClientSign {
        loop {
            let sign = self.client_sign();
            let tcp = match (&sign, &self.stream) {
                (ClientSign::Quiet, ControlStream::Plain(tcp)) => tcp,
                (ClientSign::Quiet, ControlStream::Tls(tls)) => tls.get_ref().0,
                _ => return sign,
            };
            // Clear the stale readiness, so `readable` below waits for news.
            let _ = tcp.try_io(tokio::io::Interest::READABLE, || {
                Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
            });
            match tokio::time::timeout_at(deadline, tcp.readable()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return ClientSign::Closed { reset: true },
                Err(_) => return ClientSign::Quiet,
            }
        }
    }

    /// Whether the client's side answered with a reset since the connection closed: the kernel
    /// of a client that is gone resets a connection that receives a reply nobody will read
    /// (RFC 1122 §4.2.2.13), where a client that read everything and closed sends only its FIN.
    pub(crate) fn reset_after_close(&self) -> bool {
        match &self.stream {
            ControlStream::Plain(tcp) => Self::was_reset(tcp),
            ControlStream::Tls(tls) => Self::was_reset(tls.get_ref().0),
            ControlStream::Switching => true,
            #[cfg(feature = "fuzzing")]
            ControlStream::Memory(_) => false,
        }
    }

    /// The socket's pending error (`SO_ERROR`), set by a reset.
    fn was_reset(tcp: &TcpStream) -> bool {
        !matches!(socket2::SockRef::from(tcp).take_error(), Ok(None))
    }

    /// Gives the read buffer back to the allocator while the session waits for its next command.
    pub(crate) fn release_idle_buffer(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, ControlStream::Tls(_))
    }

    /// The server name the client asked for in its TLS handshake (SNI), if it is on TLS and
    /// sent one.
    pub(crate) fn tls_server_name(&self) -> Option<&str> {
        match &self.stream {
            ControlStream::Tls(tls) => tls.get_ref().1.server_name(),
            _ => None,
        }
    }

    /// AUTH TLS (RFC 4217 §4): after the `234`, the TLS handshake. Anything the client sent after
    /// AUTH TLS and before the handshake is thrown away unread — executing it would let an
    /// attacker on the path inject commands into the protected session (the STARTTLS injection
    /// class).
    pub(crate) async fn start_tls(
        &mut self,
        config: Arc<rustls::ServerConfig>,
        limit: Duration,
    ) -> io::Result<()> {
        self.read_buf = BytesMut::new();
        self.decoder = LineDecoder::new();
        let ControlStream::Plain(tcp) =
            std::mem::replace(&mut self.stream, ControlStream::Switching)
        else {
            return Err(io::Error::other("TLS is already active"));
        };
        self.stream = ControlStream::accept_tls(tcp, config, limit).await?;
        Ok(())
    }

    /// CCC (RFC 4217 §6): end TLS with close_notify both ways and go on in plain text.
    ///
    /// The client may send its close_notify and its next clear-text command in one packet, so the
    /// socket is read one TLS record at a time: whatever follows the close_notify stays in the
    /// socket for the plain-text reader.
    pub(crate) async fn clear_tls(&mut self, limit: Duration) -> io::Result<()> {
        let ControlStream::Tls(mut tls) =
            std::mem::replace(&mut self.stream, ControlStream::Switching)
        else {
            return Err(io::Error::other("TLS is not active"));
        };
        tls.get_mut().1.send_close_notify();
        tls.flush().await?;
        let (mut tcp, mut connection) = tls.into_inner();
        tokio::time::timeout(limit, read_until_close_notify(&mut tcp, &mut connection))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no TLS close_notify from the client",
                )
            })??;
        self.read_buf = BytesMut::new();
        self.decoder = LineDecoder::new();
        self.stream = ControlStream::Plain(tcp);
        Ok(())
    }

    /// Sends one reply and flushes it.
    pub(crate) async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        let bytes = reply.to_bytes();
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await
    }

    /// Closes the connection (TLS close_notify first, where TLS is on).
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}
