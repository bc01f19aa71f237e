//! The client's connections: the control channel (commands out, replies in, parsed by
//! [`crate::protocol::reply::parse_reply`]) and the byte streams under it and under data
//! connections, plain or TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::ClientError;
use crate::protocol::Reply;
use crate::protocol::reply::parse_reply;

/// A client-side byte stream, plain or TLS.
#[derive(Debug)]
pub(crate) enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while TLS is being started; a failure leaves the stream here.
    Switching,
}

impl ClientStream {
    /// Runs a TLS handshake as the client.
    pub(crate) async fn connect_tls(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        limit: Duration,
    ) -> Result<Self, ClientError> {
        let handshake = TlsConnector::from(config).connect(name, tcp);
        let tls = tokio::time::timeout(limit, handshake)
            .await
            .map_err(|_| ClientError::Timeout("the TLS handshake"))?
            .map_err(|e| ClientError::Tls(super::tls::describe_handshake_error(&e)))?;
        Ok(Self::Tls(Box::new(tls)))
    }

    /// The TLS version in use (`None` for plain streams).
    pub(crate) fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match self {
            Self::Tls(tls) => tls.get_ref().1.protocol_version(),
            _ => None,
        }
    }

    /// Whether the TLS handshake resumed an earlier session (false for plain streams).
    pub(crate) fn resumed(&self) -> bool {
        match self {
            Self::Tls(tls) => {
                tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
            }
            _ => false,
        }
    }

    /// Ends the stream: TLS close_notify, then waits for the server's close (so nothing it sent —
    /// a session ticket, say — is left unread to turn our close into a reset), then FIN.
    pub(crate) async fn finish(mut self, limit: Duration) -> io::Result<()> {
        if let Self::Tls(tls) = &mut self {
            tls.get_mut().1.send_close_notify();
            tls.flush().await?;
            let mut scratch = [0u8; 1024];
            let _ = tokio::time::timeout(limit, async {
                while matches!(tls.read(&mut scratch).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        self.shutdown().await
    }
}

fn switching() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection failed while starting TLS",
    )
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Switching => Poll::Ready(Err(switching())),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Switching => Poll::Ready(Err(switching())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Switching => Poll::Ready(Err(switching())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Switching => Poll::Ready(Ok(())),
        }
    }
}

/// The control channel: one command out, one complete reply in.
#[derive(Debug)]
pub(crate) struct ControlChannel {
    pub(crate) stream: ClientStream,
    buf: BytesMut,
    reply_timeout: Duration,
}

impl ControlChannel {
    pub(crate) fn new(stream: ClientStream, reply_timeout: Duration) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(1024),
            reply_timeout,
        }
    }

    /// Reads the next complete reply (all lines of a multi-line one).
    pub(crate) async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        loop {
            if let Some((reply, used)) =
                parse_reply(&self.buf).map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                self.buf.advance(used);
                return Ok(reply);
            }
            let read =
                tokio::time::timeout(self.reply_timeout, self.stream.read_buf(&mut self.buf))
                    .await
                    .map_err(|_| ClientError::Timeout("a reply from the server"))?
                    .map_err(ClientError::Io)?;
            if read == 0 {
                return Err(ClientError::ConnectionClosed);
            }
        }
    }

    /// Sends one command line.
    pub(crate) async fn send(&mut self, line: &str) -> Result<(), ClientError> {
        if line.contains(['\r', '\n']) {
            return Err(ClientError::Protocol(format!(
                "refusing to send a command with a line break in it: {:?}",
                line.replace(['\r', '\n'], " ")
            )));
        }
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.stream
            .write_all(&bytes)
            .await
            .map_err(ClientError::Io)?;
        self.stream.flush().await.map_err(ClientError::Io)
    }

    /// Starts TLS on the control connection after `234` (AUTH TLS).
    pub(crate) async fn start_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        limit: Duration,
    ) -> Result<(), ClientError> {
        if !self.buf.is_empty() {
            // Bytes after 234 and before the handshake are not from an honest server.
            return Err(ClientError::Protocol(
                "the server sent data after agreeing to AUTH TLS; refusing to go on".to_owned(),
            ));
        }
        let ClientStream::Plain(tcp) = std::mem::replace(&mut self.stream, ClientStream::Switching)
        else {
            return Err(ClientError::Protocol("TLS is already active".to_owned()));
        };
        self.stream = ClientStream::connect_tls(tcp, config, name, limit).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A control channel on a loopback connection and the server's end of it.
    async fn channel() -> (ControlChannel, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let control =
            ControlChannel::new(ClientStream::Plain(client.unwrap()), Duration::from_secs(5));
        (control, accepted.unwrap().0)
    }

    #[tokio::test]
    async fn replies_split_across_reads_and_packed_together_are_read_one_by_one() {
        let (mut control, mut server) = channel().await;
        let writer = tokio::spawn(async move {
            for chunk in [
                &b"211-Features:\r\n EPSV\r\n 211 no"[..],
                b"t the end\r\n MLST size*;\r\n211 End\r\n150 Opening\r\n22",
                b"6 Done\r\n",
            ] {
                server.write_all(chunk).await.unwrap();
                server.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            server
        });
        let feat = control.read_reply().await.unwrap();
        assert_eq!(feat.code.get(), 211);
        assert_eq!(feat.lines().count(), 5, "{feat}");
        assert!(feat.lines().any(|l| l == " 211 not the end"));
        assert_eq!(control.read_reply().await.unwrap().code.get(), 150);
        let done = control.read_reply().await.unwrap();
        assert_eq!((done.code.get(), &*done.text), (226, "Done"));
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_close_inside_a_reply_is_an_error_not_a_reply() {
        let (mut control, mut server) = channel().await;
        server.write_all(b"226-Transfer\r\n").await.unwrap();
        drop(server);
        assert!(matches!(
            control.read_reply().await,
            Err(ClientError::ConnectionClosed)
        ));
    }

    #[tokio::test]
    async fn a_line_that_is_no_reply_is_a_protocol_error() {
        let (mut control, mut server) = channel().await;
        server.write_all(b"HTTP/1.1 400 Bad\r\n").await.unwrap();
        assert!(matches!(
            control.read_reply().await,
            Err(ClientError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (control, _server) = channel().await;
        let mut control = ControlChannel {
            reply_timeout: Duration::from_millis(50),
            ..control
        };
        assert!(matches!(
            control.read_reply().await,
            Err(ClientError::Timeout(_))
        ));
    }

    #[tokio::test]
    async fn commands_with_line_breaks_are_never_sent() {
        let (mut control, mut server) = channel().await;
        let injected = control.send("DELE a.txt\r\nRMD /").await;
        assert!(matches!(injected, Err(ClientError::Protocol(_))));
        control.send("NOOP").await.unwrap();
        let mut line = [0u8; 6];
        server.read_exact(&mut line).await.unwrap();
        assert_eq!(
            &line, b"NOOP\r\n",
            "only the clean command reached the server"
        );
    }
}
