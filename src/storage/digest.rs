//! File digests for HASH and the X hash commands: computed while the file streams past, on the
//! blocking pool, never with the whole file in memory.
//!
//! Hashing is CPU work (SHA-256 runs at a few hundred MB/s a core), so it never runs on the
//! async workers: [`digest_reader`] reads a backend's stream asynchronously and hands chunks to
//! a hasher on the blocking pool through a channel two chunks deep, and [`digest_file`] reads and
//! hashes a local file on the blocking pool alone. Either stops early when the caller goes away
//! (the session ended), so an abandoned hash does not read a large file to its end.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::{FileReader, StorageError, StorageResult};
use crate::protocol::hash::{HashAlgorithm, Hasher};

/// Bytes read per step: large enough that the channel and the system calls cost little.
const CHUNK: usize = 256 * 1024;

/// A finished digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Lower-case hexadecimal (a CRC-32 as 8 digits, zero-padded).
    pub hex: String,
    /// How many bytes went in: fewer than asked if the file was shorter.
    pub bytes: u64,
}

/// Hashes up to `len` bytes of an already positioned local file on the blocking pool.
pub async fn digest_file(
    file: std::fs::File,
    algorithm: HashAlgorithm,
    len: u64,
) -> StorageResult<FileDigest> {
    let abandoned = AbandonFlag::new();
    let flag = abandoned.shared();
    run_on_blocking_pool(move || {
        let mut hasher = Hasher::new(algorithm);
        let mut limited = file.take(len);
        let mut buffer = vec![0u8; CHUNK];
        let mut bytes = 0u64;
        loop {
            if flag.load(Ordering::Relaxed) {
                return Err(StorageError::Unavailable(
                    "the hash was abandoned".to_owned(),
                ));
            }
            let n = limited.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bytes += n as u64;
        }
        Ok(FileDigest {
            hex: hasher.finish(),
            bytes,
        })
    })
    .await
}

/// Hashes up to `len` bytes of a backend's stream: read here, hashed on the blocking pool.
pub async fn digest_reader(
    mut reader: FileReader,
    algorithm: HashAlgorithm,
    len: u64,
) -> StorageResult<FileDigest> {
    let (chunks, mut received) = mpsc::channel::<Bytes>(2);
    let hashing = tokio::task::spawn_blocking(move || {
        let mut hasher = Hasher::new(algorithm);
        while let Some(chunk) = received.blocking_recv() {
            hasher.update(&chunk);
        }
        hasher.finish()
    });
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let mut buffer = BytesMut::with_capacity(want);
        let n = (&mut reader)
            .take(want as u64)
            .read_buf(&mut buffer)
            .await?;
        if n == 0 {
            break;
        }
        left -= n as u64;
        if chunks.send(buffer.freeze()).await.is_err() {
            break;
        }
    }
    // Closing the channel lets the hasher finish; dropping this future instead ends it too.
    drop(chunks);
    let hex = hashing.await.map_err(|error| {
        StorageError::Io(std::io::Error::other(format!(
            "the hash task failed: {error}"
        )))
    })?;
    Ok(FileDigest {
        hex,
        bytes: len - left,
    })
}

async fn run_on_blocking_pool<T, F>(op: F) -> StorageResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StorageResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(op).await.map_err(|error| {
        StorageError::Io(std::io::Error::other(format!(
            "the hash task failed: {error}"
        )))
    })?
}

/// Set when the future that started a blocking hash is dropped, so the hash stops reading.
struct AbandonFlag(Arc<AtomicBool>);

impl AbandonFlag {
    fn new() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    fn shared(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

impl Drop for AbandonFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(algorithm: HashAlgorithm, bytes: &[u8]) -> String {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// Known answers: FIPS 180 and RFC 1321 for "abc", zlib for the CRC.
    #[test]
    fn algorithms_give_the_published_digests() {
        assert_eq!(
            hex_of(HashAlgorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_of(HashAlgorithm::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex_of(HashAlgorithm::Md5, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        // zlib.crc32(b"123456789") == 0xcbf43926, the CRC-32 check value.
        assert_eq!(hex_of(HashAlgorithm::Crc32, b"123456789"), "cbf43926");
        assert_eq!(hex_of(HashAlgorithm::Crc32, b""), "00000000");
    }

    #[tokio::test]
    async fn a_stream_is_hashed_in_chunks_up_to_the_length() {
        let content: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        let reader: FileReader = Box::new(std::io::Cursor::new(content.clone()));
        let whole = digest_reader(reader, HashAlgorithm::Sha256, u64::MAX)
            .await
            .unwrap();
        assert_eq!(whole.hex, hex_of(HashAlgorithm::Sha256, &content));
        assert_eq!(whole.bytes, content.len() as u64);

        let reader: FileReader = Box::new(std::io::Cursor::new(content.clone()));
        let part = digest_reader(reader, HashAlgorithm::Md5, 1000)
            .await
            .unwrap();
        assert_eq!(part.hex, hex_of(HashAlgorithm::Md5, &content[..1000]));
        let reader: FileReader = Box::new(std::io::Cursor::new(content));
        let nothing = digest_reader(reader, HashAlgorithm::Sha1, 0).await.unwrap();
        assert_eq!(
            (nothing.bytes, nothing.hex),
            (0, hex_of(HashAlgorithm::Sha1, b""))
        );
    }

    #[tokio::test]
    async fn a_local_file_is_hashed_from_its_position() {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        file.seek(SeekFrom::Start(3)).unwrap();
        let digest = digest_file(file, HashAlgorithm::Crc32, 4).await.unwrap();
        assert_eq!(digest.hex, hex_of(HashAlgorithm::Crc32, b"3456"));
        assert_eq!(digest.bytes, 4);
    }
}
