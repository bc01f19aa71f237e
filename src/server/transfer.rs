//! Moving bytes between storage and a data connection, with bounded buffers.
//!
//! Files are streamed through one fixed buffer, never held whole. TYPE A converts line ends on the
//! fly (RFC 959 §3.1.1.1: CRLF on the wire, LF on disk). Every read and write has the stall timeout,
//! so a client that stops reading or sending cannot pin a transfer forever.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::pace::{Pacer, chunk_limit};
use crate::storage::StorageError;

/// Bytes moved per read; large enough for line-rate on loopback, small enough per session.
pub(crate) const BUFFER_SIZE: usize = 128 * 1024;

/// The smallest download buffer, for files of a few bytes.
const SEND_BUFFER_MIN: usize = 4 * 1024;

/// An upload's first read buffer: enough for a small file at once.
const RECEIVE_BUFFER_START: usize = 64 * 1024;

/// The most an upload's read buffer grows to. Each write to disk is a hop to the blocking pool,
/// so a fast client is written in large pieces; a slow one never fills the first buffer.
const RECEIVE_BUFFER_MAX: usize = 1024 * 1024;

/// Why a transfer stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransferError {
    #[error("no data moved for {} s", .0.as_secs())]
    Stalled(Duration),
    #[error("data connection broken: {0}")]
    Network(io::Error),
    #[error("{0}")]
    Storage(StorageError),
}

pub(crate) async fn with_stall_timeout<T>(
    stall: Duration,
    operation: impl Future<Output = io::Result<T>>,
) -> Result<io::Result<T>, TransferError> {
    tokio::time::timeout(stall, operation)
        .await
        .map_err(|_| TransferError::Stalled(stall))
}

/// Copies a file from storage to the client. Returns the bytes read from storage.
///
/// `expected` is the size announced in the `150` reply: the buffer is no larger than that (a small
/// file costs a small buffer), though a file that grew meanwhile is still sent to its end.
pub(crate) async fn send(
    mut source: impl AsyncRead + Unpin,
    expected: u64,
    sink: &mut (impl AsyncWrite + Unpin),
    ascii: bool,
    stall: Duration,
    progress: &AtomicU64,
    mut pacer: Option<Pacer>,
) -> Result<u64, TransferError> {
    let capacity = usize::try_from(expected).map_or(BUFFER_SIZE, |expected| {
        expected.clamp(SEND_BUFFER_MIN, BUFFER_SIZE)
    });
    let capacity = chunk_limit(pacer.as_ref(), capacity);
    // Never zeroed: `read_buf` fills the spare capacity and says how much it filled.
    let mut buf = Vec::with_capacity(capacity);
    let mut converted = Vec::new();
    let mut last_was_cr = false;
    let mut total = 0u64;
    loop {
        buf.clear();
        let n = with_stall_timeout(stall, source.read_buf(&mut buf))
            .await?
            .map_err(|e| TransferError::Storage(e.into()))?;
        if n == 0 {
            break;
        }
        let chunk = if ascii {
            converted.clear();
            lf_to_crlf(&buf, &mut converted, &mut last_was_cr);
            &converted[..]
        } else {
            &buf[..]
        };
        with_stall_timeout(stall, sink.write_all(chunk))
            .await?
            .map_err(TransferError::Network)?;
        total += n as u64;
        progress.store(total, Ordering::Relaxed);
        if let Some(pacer) = &mut pacer {
            pacer.moved(chunk.len() as u64).await;
        }
    }
    with_stall_timeout(stall, sink.flush())
        .await?
        .map_err(TransferError::Network)?;
    Ok(total)
}

/// Sends `len` bytes of a local file from `offset` to a plain TCP data connection with
/// `sendfile(2)`: the kernel moves the bytes from the page cache to the socket, no copy passes
/// through user space. A file that shrank meanwhile ends the download early. Returns the bytes
/// sent.
///
/// A file not in the page cache makes `sendfile` wait for the disk on this thread, as a read
/// would on the blocking pool; the socket itself never blocks it (it is non-blocking).
#[cfg(target_os = "linux")]
pub(crate) async fn send_file(
    file: std::fs::File,
    offset: u64,
    len: u64,
    tcp: &mut tokio::net::TcpStream,
    stall: Duration,
    progress: &AtomicU64,
    mut pacer: Option<Pacer>,
) -> Result<u64, TransferError> {
    use tokio::io::Interest;

    /// The most one call hands the kernel; it sends what the socket buffer takes.
    const CHUNK: u64 = 1 << 30;

    let (start, end) = (offset, offset.saturating_add(len));
    let mut offset = offset;
    while offset < end {
        let count = usize::try_from((end - offset).min(CHUNK)).unwrap_or(1 << 30);
        let count = chunk_limit(pacer.as_ref(), count);
        let sent = with_stall_timeout(stall, async {
            loop {
                tcp.writable().await?;
                let result = tcp.try_io(Interest::WRITABLE, || {
                    rustix::fs::sendfile(&*tcp, &file, Some(&mut offset), count)
                        .map_err(io::Error::from)
                });
                match result {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return result,
                }
            }
        })
        .await?
        .map_err(TransferError::Network)?;
        if sent == 0 {
            // The file shrank since it was opened.
            break;
        }
        progress.store(offset - start, Ordering::Relaxed);
        if let Some(pacer) = &mut pacer {
            pacer.moved(sent as u64).await;
        }
    }
    Ok(offset - start)
}

/// Copies an upload from the client into storage. Returns the bytes written to storage.
pub(crate) async fn receive(
    source: &mut (impl AsyncRead + Unpin),
    sink: &mut (impl AsyncWrite + Unpin + ?Sized),
    ascii: bool,
    stall: Duration,
    progress: &AtomicU64,
    mut pacer: Option<Pacer>,
) -> Result<u64, TransferError> {
    // A paced upload reads no more than a burst at a time.
    let most = chunk_limit(pacer.as_ref(), RECEIVE_BUFFER_MAX);
    // Never zeroed: `read_buf` fills the spare capacity and says how much it filled.
    let mut buf = Vec::with_capacity(RECEIVE_BUFFER_START.min(most));
    let mut converted = Vec::new();
    let mut pending_cr = false;
    let mut total = 0u64;
    loop {
        buf.clear();
        let n = with_stall_timeout(stall, source.read_buf(&mut buf))
            .await?
            .map_err(TransferError::Network)?;
        if n == 0 {
            break;
        }
        let filled = n == buf.capacity();
        let chunk = if ascii {
            converted.clear();
            crlf_to_lf(&buf, &mut converted, &mut pending_cr);
            &converted[..]
        } else {
            &buf[..]
        };
        with_stall_timeout(stall, sink.write_all(chunk))
            .await?
            .map_err(|e| TransferError::Storage(e.into()))?;
        total += chunk.len() as u64;
        progress.store(total, Ordering::Relaxed);
        if let Some(pacer) = &mut pacer {
            pacer.moved(n as u64).await;
        }
        if filled && buf.capacity() < most {
            // The client sends faster than we write: fewer, larger writes.
            let larger = (buf.capacity() * 4).min(most);
            buf = Vec::with_capacity(larger);
        }
    }
    if pending_cr {
        // A CR at the very end was not part of a CRLF.
        with_stall_timeout(stall, sink.write_all(b"\r"))
            .await?
            .map_err(|e| TransferError::Storage(e.into()))?;
        total += 1;
    }
    Ok(total)
}

/// LF → CRLF, leaving existing CRLF pairs alone. `last_was_cr` carries across chunks.
pub(crate) fn lf_to_crlf(input: &[u8], out: &mut Vec<u8>, last_was_cr: &mut bool) {
    out.reserve(input.len() + input.len() / 16);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', input) {
        let preceded_by_cr = if i == 0 {
            *last_was_cr
        } else {
            input[i - 1] == b'\r'
        };
        out.extend_from_slice(&input[start..i]);
        if !preceded_by_cr {
            out.push(b'\r');
        }
        start = i;
    }
    out.extend_from_slice(&input[start..]);
    if let Some(&last) = input.last() {
        *last_was_cr = last == b'\r';
    }
}

/// CRLF → LF; a lone CR is kept. `pending_cr` holds a CR that ended the previous chunk.
pub(crate) fn crlf_to_lf(input: &[u8], out: &mut Vec<u8>, pending_cr: &mut bool) {
    out.reserve(input.len() + 1);
    let mut bytes = input.iter().copied().peekable();
    if std::mem::take(pending_cr) && bytes.peek() != Some(&b'\n') {
        out.push(b'\r');
    }
    while let Some(byte) = bytes.next() {
        if byte == b'\r' {
            match bytes.peek() {
                Some(b'\n') => continue,
                Some(_) => out.push(b'\r'),
                None => *pending_cr = true,
            }
        } else {
            out.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Seek as _;

    use super::*;

    fn to_crlf(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut state = false;
        for chunk in chunks {
            lf_to_crlf(chunk, &mut out, &mut state);
        }
        out
    }

    fn to_lf(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut state = false;
        for chunk in chunks {
            crlf_to_lf(chunk, &mut out, &mut state);
        }
        if state {
            out.push(b'\r');
        }
        out
    }

    #[test]
    fn ascii_download_adds_cr_only_where_missing() {
        assert_eq!(to_crlf(&[b"a\nb\r\nc\n"]), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_crlf(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(to_crlf(&[b"a", b"\n"]), b"a\r\n");
        assert_eq!(to_crlf(&[b"\n\n"]), b"\r\n\r\n");
    }

    #[test]
    fn ascii_upload_strips_cr_before_lf_across_chunks() {
        assert_eq!(to_lf(&[b"a\r\nb\r\n"]), b"a\nb\n");
        assert_eq!(to_lf(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(to_lf(&[b"a\r", b"b"]), b"a\rb");
        assert_eq!(to_lf(&[b"end\r"]), b"end\r");
        assert_eq!(to_lf(&[b"\r\r\n"]), b"\r\n");
    }

    #[tokio::test]
    async fn streams_through_a_bounded_buffer() {
        let data: Vec<u8> = (0..BUFFER_SIZE * 3 + 17).map(|i| (i % 251) as u8).collect();
        let progress = AtomicU64::new(0);
        let mut out = Vec::new();
        let sent = send(
            &data[..],
            data.len() as u64,
            &mut out,
            false,
            Duration::from_secs(5),
            &progress,
            None,
        )
        .await
        .unwrap();
        assert_eq!(sent, data.len() as u64);
        assert_eq!(out, data);
        assert_eq!(progress.load(Ordering::Relaxed), data.len() as u64);
    }

    #[tokio::test]
    async fn a_silent_peer_stalls_the_transfer() {
        let (mut client, _server_end) = tokio::io::duplex(64);
        let progress = AtomicU64::new(0);
        let mut sink = Vec::new();
        let result = receive(
            &mut client,
            &mut sink,
            false,
            Duration::from_millis(50),
            &progress,
            None,
        )
        .await;
        assert!(matches!(result, Err(TransferError::Stalled(_))));
    }

    /// A connected pair of loopback sockets: (server side, client side).
    #[cfg(target_os = "linux")]
    async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn sendfile_sends_from_the_offset_to_the_end() {
        use std::io::Write as _;
        // Larger than a socket buffer, so sendfile returns short and waits for the reader.
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let (mut server, mut client) = tcp_pair().await;
        let progress = AtomicU64::new(0);
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        });
        let len = (data.len() - 1234) as u64;
        let sent = send_file(
            file,
            1234,
            len,
            &mut server,
            Duration::from_secs(10),
            &progress,
            None,
        )
        .await
        .unwrap();
        drop(server);
        let received = reader.await.unwrap();
        assert_eq!(sent, (data.len() - 1234) as u64);
        assert_eq!(progress.load(Ordering::Relaxed), sent);
        assert!(
            received == data[1234..],
            "the bytes sent differ from the file's"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn sendfile_to_a_peer_that_stops_reading_stalls() {
        use std::io::Write as _;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![7u8; 64 << 20]).unwrap();
        file.rewind().unwrap();
        let (mut server, _client) = tcp_pair().await;
        let progress = AtomicU64::new(0);
        let result = send_file(
            file,
            0,
            64 << 20,
            &mut server,
            Duration::from_millis(200),
            &progress,
            None,
        )
        .await;
        assert!(
            matches!(result, Err(TransferError::Stalled(_))),
            "{result:?}"
        );
        assert!(progress.load(Ordering::Relaxed) < 64 << 20);
    }
}
