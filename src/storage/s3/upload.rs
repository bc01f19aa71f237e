//! One upload to object storage: a single PUT at commit for a file smaller than a part, a
//! multipart upload for a larger one. Nothing is visible under the file's name before
//! [`Upload::commit`], and an upload dropped without a commit aborts its multipart upload, so no
//! partial object ever appears.
//!
//! Memory stays bounded: the part being filled plus at most [`PARTS_IN_FLIGHT`] parts on their
//! way to the store; a writer that outpaces the store waits for a part to finish.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, ObjectStoreExt, PutPayloadMut};
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

use super::{exists, store_error};
use crate::storage::{StorageError, StorageResult, Upload};

/// Parts sent at the same time by one upload.
const PARTS_IN_FLIGHT: usize = 2;

type PartUpload = JoinHandle<object_store::Result<(usize, PartId)>>;

/// An upload in progress; see the module documentation.
pub(super) struct S3Upload {
    store: AmazonS3,
    key: Path,
    /// STOU: refused if the name is taken at commit (checked again right before completing).
    create_new: bool,
    /// An object of this name existed when the upload was opened.
    replaces_file: bool,
    part_size: usize,
    written: u64,
    /// Bytes not sent yet: less than one part, or exactly one part waiting for room in flight.
    buffer: PutPayloadMut,
    multipart: Multipart,
    in_flight: FuturesUnordered<PartUpload>,
    /// Parts the store has accepted, with their numbers.
    parts: Vec<(usize, PartId)>,
    next_part: usize,
    /// A part failed: the upload can no longer be completed.
    failed: Option<String>,
}

/// Where the multipart upload stands.
enum Multipart {
    /// Not started: everything written so far fits in one part.
    NotStarted,
    Creating(JoinHandle<object_store::Result<MultipartId>>),
    Started(MultipartId),
    /// Completed or aborted: nothing left to clean up.
    Closed,
}

impl S3Upload {
    pub(super) fn new(
        store: AmazonS3,
        key: Path,
        part_size: usize,
        create_new: bool,
        replaces_file: bool,
    ) -> Self {
        Self {
            store,
            key,
            create_new,
            replaces_file,
            part_size,
            written: 0,
            buffer: PutPayloadMut::new().with_block_size(64 * 1024),
            multipart: Multipart::NotStarted,
            in_flight: FuturesUnordered::new(),
            parts: Vec::new(),
            next_part: 0,
            failed: None,
        }
    }

    /// Collects the parts that have finished; the first failure breaks the upload.
    fn poll_finished_parts(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while let Poll::Ready(Some(finished)) = self.in_flight.poll_next_unpin(cx) {
            match finished
                .map_err(object_store::Error::from)
                .and_then(|part| part)
            {
                Ok(part) => self.parts.push(part),
                Err(error) => {
                    self.failed = Some(error.to_string());
                }
            }
        }
        match &self.failed {
            Some(error) => Err(io::Error::other(format!("upload failed: {error}"))),
            None => Ok(()),
        }
    }

    /// The multipart upload's id, starting the upload if needed.
    fn poll_started(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MultipartId>> {
        loop {
            match &mut self.multipart {
                Multipart::NotStarted => {
                    let (store, key) = (self.store.clone(), self.key.clone());
                    self.multipart = Multipart::Creating(tokio::spawn(async move {
                        store.create_multipart(&key).await
                    }));
                }
                Multipart::Creating(creating) => {
                    let created = ready!(creating.poll_unpin(cx));
                    match created.map_err(object_store::Error::from).and_then(|id| id) {
                        Ok(id) => self.multipart = Multipart::Started(id),
                        Err(error) => {
                            self.multipart = Multipart::Closed;
                            return Poll::Ready(Err(error.into()));
                        }
                    }
                }
                Multipart::Started(id) => return Poll::Ready(Ok(id.clone())),
                Multipart::Closed => {
                    return Poll::Ready(Err(io::Error::other("the upload is already closed")));
                }
            }
        }
    }

    /// Sends the buffer as the next part, once there is room in flight (or at once if `last`).
    fn poll_send_part(&mut self, cx: &mut Context<'_>, last: bool) -> Poll<io::Result<()>> {
        let id = ready!(self.poll_started(cx))?;
        if !last && self.in_flight.len() >= PARTS_IN_FLIGHT {
            // `poll_finished_parts` saw them all pending, so a finished one wakes this task.
            return Poll::Pending;
        }
        let part = std::mem::take(&mut self.buffer).freeze();
        self.buffer = PutPayloadMut::new().with_block_size(64 * 1024);
        let index = self.next_part;
        self.next_part += 1;
        let (store, key) = (self.store.clone(), self.key.clone());
        self.in_flight.push(tokio::spawn(async move {
            let part = store.put_part(&key, &id, index, part).await?;
            Ok((index, part))
        }));
        Poll::Ready(Ok(()))
    }

    async fn complete_multipart(&mut self) -> StorageResult<u64> {
        let id = std::future::poll_fn(|cx| self.poll_started(cx)).await?;
        if !self.buffer.is_empty() {
            std::future::poll_fn(|cx| self.poll_send_part(cx, true)).await?;
        }
        while let Some(finished) = self.in_flight.next().await {
            let part = finished
                .map_err(object_store::Error::from)
                .and_then(|part| part)
                .map_err(store_error)?;
            self.parts.push(part);
        }
        if let Some(error) = &self.failed {
            return Err(StorageError::Io(io::Error::other(format!(
                "upload failed: {error}"
            ))));
        }
        if self.create_new && exists(&self.store, &self.key).await? {
            return Err(StorageError::AlreadyExists);
        }
        self.parts.sort_by_key(|(index, _)| *index);
        let parts = std::mem::take(&mut self.parts)
            .into_iter()
            .map(|(_, part)| part)
            .collect();
        self.store
            .complete_multipart(&self.key, &id, parts)
            .await
            .map_err(store_error)?;
        self.multipart = Multipart::Closed;
        Ok(self.written)
    }

    /// Aborts the multipart upload now (after a failed commit).
    async fn abort(&mut self) {
        for part in self.in_flight.iter() {
            part.abort();
        }
        if let Multipart::Started(id) = std::mem::replace(&mut self.multipart, Multipart::Closed)
            && let Err(error) = self.store.abort_multipart(&self.key, &id).await
        {
            tracing::warn!(key = %self.key, %error, "cannot abort a multipart upload");
        }
    }
}

#[async_trait]
impl Upload for S3Upload {
    fn replaces_file(&self) -> bool {
        self.replaces_file
    }

    async fn commit(mut self: Box<Self>) -> StorageResult<u64> {
        if let Some(error) = &self.failed {
            return Err(StorageError::Io(io::Error::other(format!(
                "upload failed: {error}"
            ))));
        }
        if let Multipart::NotStarted = self.multipart {
            // Smaller than a part: one PUT. (The check and the PUT are two requests: a file
            // created between them is replaced; S3 has no create-only PUT that every
            // compatible store honours.)
            if self.create_new && exists(&self.store, &self.key).await? {
                return Err(StorageError::AlreadyExists);
            }
            let payload = std::mem::take(&mut self.buffer).freeze();
            self.store
                .put(&self.key, payload)
                .await
                .map_err(store_error)?;
            self.multipart = Multipart::Closed;
            return Ok(self.written);
        }
        let completed = self.complete_multipart().await;
        if completed.is_err() {
            self.abort().await;
        }
        match completed {
            // The store lost the upload (NoSuchUpload): Garage drops an unfinished multipart
            // upload when another upload of the same name finishes first.
            Err(StorageError::NotFound) if self.create_new => {
                if exists(&self.store, &self.key).await? {
                    Err(StorageError::AlreadyExists)
                } else {
                    Err(upload_lost())
                }
            }
            Err(StorageError::NotFound) => Err(upload_lost()),
            completed => completed,
        }
    }
}

fn upload_lost() -> StorageError {
    StorageError::Unavailable(
        "the object store dropped this upload before it was complete (another upload of the \
         same name may have finished first); send the file again"
            .to_owned(),
    )
}

impl AsyncWrite for S3Upload {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            this.poll_finished_parts(cx)?;
            let room = this.part_size - this.buffer.content_length();
            if room > 0 {
                let taken = buf.len().min(room);
                this.buffer.extend_from_slice(&buf[..taken]);
                this.written += taken as u64;
                return Poll::Ready(Ok(taken));
            }
            ready!(this.poll_send_part(cx, false))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Bytes sit in the buffer or in flight until commit: that is the point of the upload.
        Poll::Ready(self.get_mut().poll_finished_parts(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for S3Upload {
    /// Abandoned before commit: abort the multipart upload, so the store frees its parts and no
    /// object appears. The abort runs on the runtime, after the drop.
    fn drop(&mut self) {
        let multipart = std::mem::replace(&mut self.multipart, Multipart::Closed);
        if matches!(multipart, Multipart::NotStarted | Multipart::Closed) {
            return;
        }
        for part in self.in_flight.iter() {
            part.abort();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key, "multipart upload left behind: no runtime to abort it");
            return;
        };
        let (store, key) = (self.store.clone(), self.key.clone());
        runtime.spawn(async move {
            let id = match multipart {
                Multipart::Started(id) => id,
                Multipart::Creating(creating) => match creating.await {
                    Ok(Ok(id)) => id,
                    _ => return,
                },
                Multipart::NotStarted | Multipart::Closed => return,
            };
            match store.abort_multipart(&key, &id).await {
                Ok(()) => tracing::debug!(%key, "abandoned multipart upload aborted"),
                Err(error) => {
                    tracing::warn!(%key, %error, "cannot abort an abandoned multipart upload");
                }
            }
        });
    }
}

impl std::fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Upload")
            .field("key", &self.key)
            .field("written", &self.written)
            .field("parts_in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}
