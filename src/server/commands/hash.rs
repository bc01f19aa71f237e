//! HASH, OPTS HASH and RANG (draft-bryan-ftpext-hash-02, draft-bryan-ftp-range-09), and the
//! XCRC, XMD5, XSHA1 and XSHA256 commands that came before them.
//!
//! A hash is the digest of what RETR in TYPE I would send (§3), so it needs the permission to
//! download (§6: only files the user may read). It is computed by the storage, off the async
//! workers and streamed (`crate::storage::digest`); a server-wide number of hashes run at once,
//! and one more is refused with `450` so the client may retry (§3.5). HASH covers the whole file,
//! the range of a `RANG` sent just before it, or what follows a `REST` offset; the X commands take
//! their own `start end` offsets.

use std::sync::Arc;

use tracing::info;

use super::{Handled, storage_reply};
use crate::auth::Permission;
use crate::protocol::hash::{ByteSpan, HashAlgorithm, RangSelection, XHashRange, hash_reply_text};
use crate::protocol::{Reply, ReplyCode, VirtualPath};
use crate::server::session::{Flow, Session};
use crate::storage::Storage;
use crate::storage::digest::FileDigest;

/// Which reply codes a refusal gets: HASH has its own (§3.5), the X commands answer as other
/// file commands do.
#[derive(Clone, Copy)]
struct Refusals {
    /// The account may not read files.
    forbidden: ReplyCode,
    /// The path is a directory.
    directory: ReplyCode,
}

/// §3.5: 552 for a user who may not use HASH, 553 for a directory.
const HASH_REFUSALS: Refusals = Refusals {
    forbidden: ReplyCode::EXCEEDED_STORAGE,
    directory: ReplyCode::FILE_NAME_NOT_ALLOWED,
};

const X_REFUSALS: Refusals = Refusals {
    forbidden: ReplyCode::FILE_UNAVAILABLE,
    directory: ReplyCode::FILE_UNAVAILABLE,
};

impl Session {
    pub(super) async fn hash(&mut self, arg: &[u8]) -> Handled {
        let rang = self.hash_range.take();
        let rest = std::mem::take(&mut self.restart_offset);
        let algorithm = self.hash_algorithm;
        let storage = self.hashing_storage(HASH_REFUSALS)?;
        let path = self.resolve(arg)?;
        let size = file_size(storage.as_ref(), &path, HASH_REFUSALS).await?;
        let span = match rang {
            Some(selection) => selection.within(size),
            None if rest > size => {
                return Err(Reply::new(
                    ReplyCode::INVALID_REST_PARAMETER,
                    format!(
                        "Restart offset {rest} is beyond the end of {path} ({size} bytes); send REST 0 or a smaller offset."
                    ),
                ));
            }
            None => ByteSpan {
                start: rest,
                len: size - rest,
            },
        };
        let Some(digest) = self.compute(&storage, &path, algorithm, span).await? else {
            return Ok(Flow::Close(shutting_down()));
        };
        let hashed = ByteSpan {
            start: span.start,
            len: digest.bytes,
        };
        let text = hash_reply_text(
            algorithm,
            hashed,
            &digest.hex,
            &String::from_utf8_lossy(arg),
        );
        Ok(Reply::new(ReplyCode::FILE_STATUS, text).into())
    }

    /// XCRC, XMD5, XSHA1, XSHA256: `250 <hex>`, as ProFTPD, Serv-U and GlobalSCAPE answer.
    pub(super) async fn x_hash(
        &mut self,
        algorithm: HashAlgorithm,
        arg: &[u8],
        range: Option<XHashRange>,
    ) -> Handled {
        let storage = self.hashing_storage(X_REFUSALS)?;
        let path = self.resolve(arg)?;
        let size = file_size(storage.as_ref(), &path, X_REFUSALS).await?;
        let span = match range {
            None => ByteSpan {
                start: 0,
                len: size,
            },
            Some(range) => range.within(size).map_err(|beyond| {
                Reply::new(
                    ReplyCode::ARGUMENT_SYNTAX_ERROR,
                    format!(
                        "The end offset {} is beyond the end of {path} ({} bytes); give offsets within the file.",
                        range.end, beyond.size
                    ),
                )
            })?,
        };
        let Some(digest) = self.compute(&storage, &path, algorithm, span).await? else {
            return Ok(Flow::Close(shutting_down()));
        };
        Ok(Reply::new(ReplyCode::FILE_ACTION_OK, digest.hex).into())
    }

    /// OPTS HASH (§3.2): shows the selected algorithm, or selects another for this session.
    pub(super) fn opts_hash(&mut self, choice: Option<HashAlgorithm>) -> Handled {
        if let Some(algorithm) = choice {
            self.hash_algorithm = algorithm;
        }
        Ok(Reply::new(ReplyCode::COMMAND_OK, self.hash_algorithm.name()).into())
    }

    /// RANG (draft-bryan-ftp-range-09 §3): remembered for the next command, which only HASH
    /// honours here (see `Session::dispatch`).
    pub(super) fn rang(&mut self, selection: Option<RangSelection>) -> Handled {
        self.hash_range = selection;
        let text = match selection {
            Some(RangSelection { start, end }) => {
                format!("Restarting at {start}. End byte range at {end}; HASH hashes that range.")
            }
            None => "Byte range reset: HASH hashes whole files again.".to_owned(),
        };
        Ok(Reply::new(ReplyCode::FILE_ACTION_PENDING, text).into())
    }

    /// The storage, if this account may read files and the storage can hash them.
    fn hashing_storage(&self, refusals: Refusals) -> Result<Arc<dyn Storage>, Reply> {
        let storage =
            self.storage_with(Permission::Retrieve)
                .map_err(|reply| match reply.code {
                    ReplyCode::FILE_UNAVAILABLE => Reply::new(
                        refusals.forbidden,
                        "Permission denied: hashing a file needs the right to download it (r).",
                    ),
                    _ => reply,
                })?;
        if !storage.capabilities().hash {
            return Err(Reply::new(
                ReplyCode::NOT_IMPLEMENTED,
                "This storage cannot compute file hashes; download the file and hash it locally.",
            ));
        }
        Ok(storage)
    }

    /// Runs the hash, holding one of the server's hash slots. `None` when the server is
    /// shutting down at once (the hash is dropped, and stops reading).
    async fn compute(
        &self,
        storage: &Arc<dyn Storage>,
        path: &VirtualPath,
        algorithm: HashAlgorithm,
        span: ByteSpan,
    ) -> Result<Option<FileDigest>, Reply> {
        let Ok(_slot) = Arc::clone(&self.server.hash_slots).try_acquire_owned() else {
            return Err(Reply::new(
                ReplyCode::FILE_BUSY,
                "The server is busy hashing other files; try again in a moment.",
            ));
        };
        let started = std::time::Instant::now();
        let digest = tokio::select! {
            digest = storage.hash(path, algorithm, span.start, span.len) => {
                digest.map_err(|e| storage_reply(path, &e))?
            }
            () = self.shutdown.immediate.cancelled() => return Ok(None),
        };
        info!(
            path = %path,
            %algorithm,
            start = span.start,
            bytes = digest.bytes,
            duration_ms = started.elapsed().as_millis() as u64,
            "hashed"
        );
        Ok(Some(digest))
    }
}

/// The size of the regular file at `path`, or the refusal for anything else.
async fn file_size(
    storage: &dyn Storage,
    path: &VirtualPath,
    refusals: Refusals,
) -> Result<u64, Reply> {
    let metadata = storage
        .metadata(path)
        .await
        .map_err(|e| storage_reply(path, &e))?;
    if metadata.is_dir() {
        return Err(Reply::new(
            refusals.directory,
            format!("{path} is a directory; only files have a hash."),
        ));
    }
    if !metadata.is_file() {
        return Err(Reply::new(
            ReplyCode::FILE_UNAVAILABLE,
            format!("{path}: not a regular file."),
        ));
    }
    Ok(metadata.size)
}

fn shutting_down() -> Reply {
    Reply::new(
        ReplyCode::SERVICE_NOT_AVAILABLE,
        "The server is shutting down; please reconnect later.",
    )
}
