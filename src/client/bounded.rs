//! Bounded downloads into memory: a server decides how many bytes it sends, so whatever the
//! client keeps in memory (a listing, a small file such as the deploy marker) has a ceiling,
//! and a line that never ends does too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// How much of a download may be kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Bytes in all.
    pub max_bytes: u64,
    /// Bytes between two line feeds (`None`: the content is not line-based).
    pub max_line: Option<usize>,
    /// Lines in all.
    pub max_lines: Option<usize>,
}

impl ReadLimits {
    /// A listing: 64 MiB, lines of 16 KiB (a 4 KiB name and its facts fit many times over) and
    /// 100,000 entries in one directory — far past any site, far below what would exhaust
    /// memory.
    pub const LISTING: ReadLimits = ReadLimits {
        max_bytes: 64 * 1024 * 1024,
        max_line: Some(16 * 1024),
        max_lines: Some(100_000),
    };

    /// A small file of `max_bytes` at most.
    pub const fn file(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_line: None,
            max_lines: None,
        }
    }
}

/// An in-memory sink that refuses to grow past its [`ReadLimits`]: the write that would cross
/// one fails, which stops the copy, and [`BoundedSink::exceeded`] says which limit it was.
#[derive(Debug)]
pub struct BoundedSink {
    limits: ReadLimits,
    bytes: Vec<u8>,
    line: usize,
    lines: usize,
    exceeded: Option<String>,
}

impl BoundedSink {
    pub fn new(limits: ReadLimits) -> Self {
        Self {
            limits,
            bytes: Vec::new(),
            line: 0,
            lines: 0,
            exceeded: None,
        }
    }

    /// Which limit a write crossed, in words, if one did.
    pub fn exceeded(&self) -> Option<&str> {
        self.exceeded.as_deref()
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.bytes
    }

    fn accept(&mut self, buf: &[u8]) -> Result<(), String> {
        let limits = self.limits;
        if self.bytes.len() as u64 + buf.len() as u64 > limits.max_bytes {
            return Err(format!("more than {} bytes", limits.max_bytes));
        }
        for &byte in buf {
            if byte == b'\n' {
                self.line = 0;
                self.lines += 1;
                if limits.max_lines.is_some_and(|max| self.lines > max) {
                    return Err(format!("more than {} lines", self.lines - 1));
                }
            } else {
                self.line += 1;
                if let Some(max) = limits.max_line.filter(|max| self.line > *max) {
                    return Err(format!("a line longer than {max} bytes"));
                }
            }
        }
        self.bytes.extend_from_slice(buf);
        Ok(())
    }
}

impl AsyncWrite for BoundedSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.accept(buf) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(why) => {
                let error = io::Error::new(io::ErrorKind::FileTooLarge, why.clone());
                this.exceeded = Some(why);
                Poll::Ready(Err(error))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test]
    async fn each_limit_stops_the_write_that_crosses_it_and_says_which() {
        let mut sink = BoundedSink::new(ReadLimits::file(10));
        sink.write_all(b"0123456789").await.unwrap();
        assert!(sink.write_all(b"x").await.is_err());
        assert_eq!(sink.exceeded(), Some("more than 10 bytes"));

        let limits = ReadLimits {
            max_bytes: 1000,
            max_line: Some(4),
            max_lines: Some(2),
        };
        let mut sink = BoundedSink::new(limits);
        sink.write_all(b"abcd\nef\n").await.unwrap();
        assert!(sink.write_all(b"g\n").await.is_err());
        assert_eq!(sink.exceeded(), Some("more than 2 lines"));

        let mut sink = BoundedSink::new(limits);
        assert!(sink.write_all(b"abcde").await.is_err());
        assert_eq!(sink.exceeded(), Some("a line longer than 4 bytes"));
        assert!(sink.into_inner().is_empty(), "nothing past a limit is kept");
    }
}
