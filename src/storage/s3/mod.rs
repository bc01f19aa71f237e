//! Object storage (AWS S3 and S3-compatible stores such as Garage or MinIO) as a [`Storage`],
//! through the `object_store` crate. Several ferry nodes can serve one bucket: nothing is kept
//! on the node.
//!
//! How a file system maps onto a flat key space:
//! - A home is the key prefix `PREFIX/HOME/`; the file `/a/b.txt` is the object
//!   `PREFIX/HOME/a/b.txt`.
//! - A directory is a prefix. An empty one is a zero-byte object named `dir/` (the convention
//!   of the S3 console, rclone and s3fs); a directory that only other S3 clients wrote to, with
//!   objects below it but no marker, is a directory all the same.
//! - An object `x` beside a prefix `x/` (only other S3 clients can make both) is a file and a
//!   directory of the same name: listings show both, `metadata` reports the directory (it holds
//!   the other objects), reading and removing act on the file.
//!
//! What object storage cannot do is not offered (see [`S3Storage::CAPABILITIES`]): no append,
//! no upload resumed at an offset, no modification times or permissions to set. Downloads are
//! ranged GETs, so `REST` + `RETR` works. A rename copies and deletes: a file at once, a
//! directory only up to `rename_dir_limit` objects ([`StorageError::RenameTooLarge`]). If a
//! directory rename fails half way, the source is still whole (deletes come after every copy)
//! and the copies made so far stay at the target.
//!
//! Listings go out page by page (1,000 keys per request), never collected whole. Keys that
//! other clients wrote and `object_store` cannot represent (control characters, empty segments
//! as in `a//b`) make the listing of their directory fail.
//!
//! Uploads: see the `upload` module. STOU (`CreateNew`) checks the name when the upload opens
//! and again right before it completes; an upload of the same name that finishes in between is
//! replaced. A create-only PUT (`If-None-Match: *`) would close that gap, but not every
//! S3-compatible store honours it (Garage 2.5 ignores it). A file rename is one CopyObject,
//! which AWS limits to 5 GiB.

mod raw;
mod settings;
mod upload;

#[cfg(test)]
pub(crate) mod test_garage;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt,
    RetryConfig, StaticCredentialProvider,
};
use sha2::{Digest, Sha256};
use tokio_util::io::StreamReader;

use self::raw::RawS3;
use self::settings::Resolved;
pub use self::settings::{S3Error, S3Settings};
use self::upload::S3Upload;
use super::{
    Capabilities, DirEntry, DirStream, Download, DownloadSource, EntryKind, FileReader, Metadata,
    Storage, StorageError, StorageProvider, StorageResult, Upload, WriteMode,
};
use crate::protocol::VirtualPath;

/// Copies and deletes one rename sends at the same time.
const RENAME_CONCURRENCY: usize = 8;

/// Opens each user's home as a prefix of one bucket.
#[derive(Debug, Clone)]
pub struct S3Provider {
    bucket: Arc<Bucket>,
}

/// One bucket and the clients that reach it, shared by every home.
#[derive(Debug)]
struct Bucket {
    store: AmazonS3,
    raw: RawS3,
    /// `""` or `a/b/`: where the homes live.
    prefix: String,
    part_size: usize,
    rename_dir_limit: usize,
}

impl S3Provider {
    /// Builds the clients from `settings` and checks, with one listing request, that the bucket
    /// is there and the credentials may use it, so a misconfigured server fails at start.
    pub async fn connect(settings: &S3Settings) -> Result<S3Provider, S3Error> {
        let resolved = settings.resolve(|name| std::env::var(name).ok())?;
        let bucket = Bucket::new(&resolved)?;
        let probe = PaginatedListOptions {
            max_keys: Some(1),
            ..PaginatedListOptions::default()
        };
        let prefix = (!bucket.prefix.is_empty()).then_some(bucket.prefix.as_str());
        if let Err(error) = bucket.store.list_paginated(prefix, probe).await {
            // object_store wraps listing failures in a generic error: the store's code says
            // what went wrong.
            let text = error.to_string();
            let reason = if text.contains("NoSuchBucket") {
                "no such bucket: create it, or correct `bucket`".to_owned()
            } else if [
                "AccessDenied",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "403",
            ]
            .iter()
            .any(|code| text.contains(code))
            {
                format!(
                    "access denied: check the access key, its secret and its permissions on \
                     the bucket (read and write) ({text})"
                )
            } else {
                format!("{text} (check `endpoint`, `region` and `path_style`)")
            };
            return Err(S3Error::Unreachable {
                bucket: resolved.bucket,
                url: resolved.bucket_url,
                reason,
            });
        }
        Ok(S3Provider {
            bucket: Arc::new(bucket),
        })
    }

    /// The storage rooted at `home` (created if missing), as its concrete type.
    pub async fn open_home(&self, home: &str) -> StorageResult<S3Storage> {
        // Absolute and relative homes mean the same: the bucket has no other root. `..` would
        // quietly put a home elsewhere, so it is refused, as the fs backend does.
        if home.split('/').any(|part| part == "..") {
            return Err(StorageError::InvalidName);
        }
        let home = VirtualPath::parse(home).map_err(|_| StorageError::InvalidName)?;
        let mut root = self.bucket.prefix.clone();
        for part in home.components() {
            root.push_str(part);
            root.push('/');
        }
        let storage = S3Storage {
            bucket: Arc::clone(&self.bucket),
            root,
        };
        if !storage.root.is_empty() {
            Path::parse(&storage.root).map_err(|_| StorageError::InvalidName)?;
            if storage.dir_probe(&storage.root).await?.is_none() {
                storage.bucket.raw.put_marker(&storage.root).await?;
            }
        }
        Ok(storage)
    }
}

#[async_trait]
impl StorageProvider for S3Provider {
    fn capabilities(&self) -> Capabilities {
        S3Storage::CAPABILITIES
    }

    async fn open(&self, home: &str) -> StorageResult<Arc<dyn Storage>> {
        Ok(Arc::new(self.open_home(home).await?))
    }
}

impl Bucket {
    fn new(resolved: &Resolved) -> Result<Self, S3Error> {
        let credentials = &resolved.credentials;
        // One request's whole life is unbounded (a download to a slow client takes as long as
        // it takes); connecting and each read are not.
        let client = ClientOptions::new()
            .with_allow_http(resolved.allow_http)
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(60));
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 4,
            retry_timeout: Duration::from_secs(30),
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&resolved.bucket)
            .with_region(&resolved.region)
            .with_virtual_hosted_style_request(resolved.virtual_hosted)
            .with_allow_http(resolved.allow_http)
            .with_access_key_id(&credentials.key_id)
            .with_secret_access_key(&credentials.secret)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(token) = &credentials.token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &resolved.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder
            .build()
            .map_err(|error| S3Error::Client(error.to_string()))?;
        let provider = Arc::new(StaticCredentialProvider::new(
            object_store::aws::AwsCredential {
                key_id: credentials.key_id.clone(),
                secret_key: credentials.secret.clone(),
                token: credentials.token.clone(),
            },
        ));
        let raw = RawS3::new(provider, &resolved.bucket_url, &resolved.region)
            .map_err(|error| S3Error::Client(error.to_string()))?;
        Ok(Self {
            store,
            raw,
            prefix: resolved.prefix.clone(),
            part_size: resolved.part_size,
            rename_dir_limit: resolved.rename_dir_limit,
        })
    }

    /// One page of the keys below `prefix`: with `delimiter`, the direct children only
    /// (sub-directories as common prefixes).
    async fn list_page(
        &self,
        prefix: &str,
        delimiter: bool,
        max_keys: Option<usize>,
        page_token: Option<String>,
    ) -> StorageResult<PaginatedListResult> {
        let options = PaginatedListOptions {
            delimiter: delimiter.then_some(Cow::Borrowed("/")),
            max_keys,
            page_token,
            ..PaginatedListOptions::default()
        };
        let prefix = (!prefix.is_empty()).then_some(prefix);
        self.store
            .list_paginated(prefix, options)
            .await
            .map_err(store_error)
    }
}

/// One user's home in a bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    bucket: Arc<Bucket>,
    /// `""` or `prefix/home/`: the key prefix of this home.
    root: String,
}

/// What a path names in the bucket.
enum Found {
    /// A directory; the time its marker was written, when it has one.
    Dir(Option<i64>),
    File(ObjectMeta),
    Missing,
}

/// Facts about a prefix that has objects below it.
struct DirFacts {
    /// When its marker was written, if it has a marker.
    marker_modified: Option<i64>,
}

impl S3Storage {
    /// What object storage can do: read from an offset, nothing else beyond whole files.
    pub const CAPABILITIES: Capabilities = Capabilities {
        append: false,
        write_at_offset: false,
        read_at_offset: true,
        set_modified: false,
        chmod: false,
        // Ranged GETs stream through the hasher like a download (the default `Storage::hash`).
        hash: true,
    };

    /// The key of the file at `path` (not the root).
    fn file_key(&self, path: &VirtualPath) -> StorageResult<Path> {
        Path::parse(format!("{}{}", self.root, path.relative()))
            .map_err(|_| StorageError::InvalidName)
    }

    /// The prefix of the directory at `path`, ending in `/` (`root` for the root).
    fn dir_prefix(&self, path: &VirtualPath) -> String {
        if path.is_root() {
            self.root.clone()
        } else {
            format!("{}{}/", self.root, path.relative())
        }
    }

    /// Whether any object lies below `prefix`, and its marker's time if it has one.
    async fn dir_probe(&self, prefix: &str) -> StorageResult<Option<DirFacts>> {
        let page = self.bucket.list_page(prefix, false, Some(1), None).await?;
        let Some(first) = page.result.objects.first() else {
            return Ok(None);
        };
        // The marker `dir/` sorts before every other key below `dir/`.
        let is_marker = first.location.as_ref() == prefix.trim_end_matches('/');
        Ok(Some(DirFacts {
            marker_modified: is_marker.then(|| first.last_modified.timestamp()),
        }))
    }

    /// What `path` names: the file and the directory are looked up at the same time.
    async fn find(&self, path: &VirtualPath) -> StorageResult<Found> {
        if path.is_root() {
            return Ok(Found::Dir(None));
        }
        let key = self.file_key(path)?;
        let prefix = self.dir_prefix(path);
        let (file, dir) = tokio::join!(self.bucket.store.head(&key), self.dir_probe(&prefix));
        if let Some(dir) = dir? {
            return Ok(Found::Dir(dir.marker_modified));
        }
        match file {
            Ok(meta) => Ok(Found::File(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(Found::Missing),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Why `path` is missing: `NotADirectory` when a file stands where a directory on the way
    /// should be, as on disk; `NotFound` otherwise.
    async fn missing(&self, path: &VirtualPath) -> StorageError {
        let mut ancestor = path.parent();
        while let Some(at) = ancestor.filter(|at| !at.is_root()) {
            match self.find(&at).await {
                Ok(Found::Dir(_)) => return StorageError::NotFound,
                Ok(Found::File(_)) => return StorageError::NotADirectory,
                Ok(Found::Missing) => ancestor = at.parent(),
                Err(error) => return error,
            }
        }
        StorageError::NotFound
    }

    /// Succeeds when `path` is a directory.
    async fn require_dir(&self, path: &VirtualPath) -> StorageResult<()> {
        match self.find(path).await? {
            Found::Dir(_) => Ok(()),
            Found::File(_) => Err(StorageError::NotADirectory),
            Found::Missing => Err(self.missing(path).await),
        }
    }

    /// The parent directory of `path`, which must exist.
    async fn require_parent(&self, path: &VirtualPath) -> StorageResult<()> {
        match path.parent() {
            Some(parent) => self.require_dir(&parent).await,
            None => Ok(()),
        }
    }

    /// Gives the parent of `path` a marker if it has none, before `path` goes away: a directory
    /// that held only `path` must not vanish with it.
    async fn keep_parent(&self, path: &VirtualPath) -> StorageResult<()> {
        let Some(parent) = path.parent().filter(|parent| !parent.is_root()) else {
            return Ok(());
        };
        let prefix = self.dir_prefix(&parent);
        match self.dir_probe(&prefix).await? {
            Some(DirFacts {
                marker_modified: Some(_),
            }) => Ok(()),
            _ => self.bucket.raw.put_marker(&prefix).await,
        }
    }

    fn file_metadata(meta: &ObjectMeta) -> Metadata {
        Metadata {
            kind: EntryKind::File,
            size: meta.size,
            modified: Some(meta.last_modified.timestamp()),
            mode: None,
            unique: Some(unique(meta.location.as_ref())),
        }
    }

    fn dir_metadata(prefix: &str, modified: Option<i64>) -> Metadata {
        Metadata {
            kind: EntryKind::Dir,
            size: 0,
            modified,
            mode: None,
            unique: Some(unique(prefix)),
        }
    }

    /// Every directory and file below `top` (relative to it; `""` is `top` itself), walked level
    /// by level. Refused with [`StorageError::RenameTooLarge`] as soon as there are more than
    /// `limit` objects to copy.
    async fn subtree(&self, top: &str, limit: usize) -> StorageResult<Subtree> {
        let mut subtree = Subtree {
            dirs: vec![String::new()],
            files: Vec::new(),
        };
        let mut next = 0;
        while let Some(relative) = subtree.dirs.get(next).cloned() {
            next += 1;
            let prefix = format!("{top}{relative}");
            let mut page_token = None;
            loop {
                let page = self
                    .bucket
                    .list_page(&prefix, true, None, page_token)
                    .await?;
                for dir in &page.result.common_prefixes {
                    subtree.dirs.push(format!("{}/", below(top, dir.as_ref())?));
                }
                for object in &page.result.objects {
                    if object.location.as_ref() != prefix.trim_end_matches('/') {
                        subtree
                            .files
                            .push(below(top, object.location.as_ref())?.to_owned());
                    }
                }
                // Each sub-directory is a marker to copy; `top`'s own is not counted.
                if subtree.dirs.len() - 1 + subtree.files.len() > limit {
                    return Err(StorageError::RenameTooLarge { limit });
                }
                page_token = page.page_token;
                if page_token.is_none() {
                    break;
                }
            }
        }
        Ok(subtree)
    }

    /// Copies every object below `from` to `to`, then deletes the originals.
    async fn rename_dir(&self, from: &VirtualPath, to: &VirtualPath) -> StorageResult<()> {
        let (from_top, to_top) = (self.dir_prefix(from), self.dir_prefix(to));
        let Subtree { dirs, files } = self
            .subtree(&from_top, self.bucket.rename_dir_limit)
            .await?;
        let bucket = &self.bucket;
        // Every directory gets a marker at the target, so empty ones survive the move.
        concurrently(dirs.clone(), |dir| {
            let (bucket, marker) = (Arc::clone(bucket), format!("{to_top}{dir}"));
            async move { bucket.raw.put_marker(&marker).await }
        })
        .await?;
        concurrently(files.clone(), |file| {
            let bucket = Arc::clone(bucket);
            let keys = (key(&from_top, &file), key(&to_top, &file));
            async move {
                let (source, target) = (keys.0?, keys.1?);
                bucket
                    .store
                    .copy(&source, &target)
                    .await
                    .map_err(store_error)
            }
        })
        .await?;
        self.keep_parent(from).await?;
        concurrently(files, |file| {
            let (bucket, source) = (Arc::clone(bucket), key(&from_top, &file));
            async move { bucket.store.delete(&source?).await.map_err(store_error) }
        })
        .await?;
        concurrently(dirs, |dir| {
            let (bucket, marker) = (Arc::clone(bucket), format!("{from_top}{dir}"));
            async move { bucket.raw.delete_marker(&marker).await }
        })
        .await
    }
}

/// The key `top` + `relative`.
fn key(top: &str, relative: &str) -> StorageResult<Path> {
    Path::parse(format!("{top}{relative}")).map_err(|_| StorageError::InvalidName)
}

/// Runs `op` on every item, [`RENAME_CONCURRENCY`] at a time; the first failure ends it.
async fn concurrently<F, Fut>(items: Vec<String>, op: F) -> StorageResult<()>
where
    F: FnMut(String) -> Fut + Send,
    Fut: Future<Output = StorageResult<()>> + Send + 'static,
{
    stream::iter(items)
        .map(op)
        .buffer_unordered(RENAME_CONCURRENCY)
        .try_collect()
        .await
}

/// The listing page to send next.
enum NextPage {
    Fetched(PaginatedListResult),
    Token(String),
}

/// The directories and files below a directory, relative to it.
struct Subtree {
    /// `""` (the directory itself) first, then each sub-directory as `a/`, `a/b/`, ...
    dirs: Vec<String>,
    files: Vec<String>,
}

/// `key` relative to `top`, which it lies below.
fn below<'a>(top: &str, key: &'a str) -> StorageResult<&'a str> {
    key.strip_prefix(top).ok_or_else(|| {
        StorageError::Io(io::Error::other(format!(
            "the store listed {key:?} below {top:?}"
        )))
    })
}

/// The MLSD `unique` fact of a key: stable across nodes, distinct for `x` and `x/`.
fn unique(key: &str) -> (u64, u64) {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    (0, u64::from_be_bytes(first))
}

/// Whether an object exists at `key`.
async fn exists(store: &AmazonS3, key: &Path) -> StorageResult<bool> {
    match store.head(key).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(store_error(error)),
    }
}

/// The storage error for a failed `object_store` request.
fn store_error(error: object_store::Error) -> StorageError {
    use object_store::Error as E;
    match error {
        E::NotFound { .. } => StorageError::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } => StorageError::AlreadyExists,
        E::InvalidPath { .. } => StorageError::InvalidName,
        E::NotImplemented { .. } | E::NotSupported { .. } => {
            StorageError::Unsupported("this operation on this object store")
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            tracing::warn!(%error, "the object store refused the server's credentials");
            StorageError::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                error.to_string(),
            ))
        }
        error => {
            tracing::warn!(%error, "object store request failed");
            StorageError::Unavailable(error.to_string())
        }
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    async fn metadata(&self, path: &VirtualPath) -> StorageResult<Metadata> {
        match self.find(path).await? {
            Found::Dir(modified) => Ok(Self::dir_metadata(&self.dir_prefix(path), modified)),
            Found::File(meta) => Ok(Self::file_metadata(&meta)),
            Found::Missing => Err(self.missing(path).await),
        }
    }

    async fn list(&self, path: &VirtualPath) -> StorageResult<DirStream> {
        let prefix = self.dir_prefix(path);
        let first = self.bucket.list_page(&prefix, true, None, None).await?;
        let nothing_below = first.result.objects.is_empty()
            && first.result.common_prefixes.is_empty()
            && first.page_token.is_none();
        if nothing_below && !path.is_root() {
            match self.find(path).await? {
                Found::Dir(_) => {} // Emptied since the listing: an empty directory.
                Found::File(_) => return Err(StorageError::NotADirectory),
                Found::Missing => return Err(self.missing(path).await),
            }
        }
        // One page in hand at a time: the first, then each next one once the last is sent.
        let bucket = Arc::clone(&self.bucket);
        let pages = stream::try_unfold(Some(NextPage::Fetched(first)), move |next| {
            let bucket = Arc::clone(&bucket);
            let prefix = prefix.clone();
            async move {
                let page = match next {
                    None => return Ok::<_, StorageError>(None),
                    Some(NextPage::Fetched(page)) => page,
                    Some(NextPage::Token(token)) => {
                        bucket.list_page(&prefix, true, None, Some(token)).await?
                    }
                };
                let entries = page_entries(&prefix, &page)?;
                Ok(Some((entries, page.page_token.map(NextPage::Token))))
            }
        });
        Ok(pages
            .map_ok(|entries| stream::iter(entries.into_iter().map(Ok)))
            .try_flatten()
            .boxed())
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> StorageResult<FileReader> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let key = self.file_key(path)?;
        let options = GetOptions {
            // S3 answers 416 to any range of an empty object, so offset 0 asks for no range.
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            ..GetOptions::default()
        };
        match self.bucket.store.get_opts(&key, options).await {
            Ok(found) => Ok(Box::new(StreamReader::new(found.into_stream()))),
            Err(object_store::Error::NotFound { .. }) => match self.find(path).await? {
                Found::Dir(_) => Err(StorageError::IsADirectory),
                _ => Err(self.missing(path).await),
            },
            // Most likely 416, an offset at or beyond the end: nothing left to read.
            Err(error) if offset > 0 => match self.bucket.store.head(&key).await {
                Ok(meta) if meta.size <= offset => Ok(Box::new(tokio::io::empty())),
                _ => Err(store_error(error)),
            },
            Err(error) => Err(store_error(error)),
        }
    }

    /// One GET: the object's size and time come with its bytes.
    async fn download(&self, path: &VirtualPath, offset: u64) -> StorageResult<Download> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let key = self.file_key(path)?;
        let options = GetOptions {
            // S3 answers 416 to any range of an empty object, so offset 0 asks for no range.
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            ..GetOptions::default()
        };
        match self.bucket.store.get_opts(&key, options).await {
            Ok(found) => Ok(Download {
                metadata: Self::file_metadata(&found.meta),
                source: DownloadSource::Stream(Box::new(StreamReader::new(found.into_stream()))),
            }),
            Err(object_store::Error::NotFound { .. }) => match self.find(path).await? {
                Found::Dir(_) => Err(StorageError::IsADirectory),
                _ => Err(self.missing(path).await),
            },
            // Most likely 416, an offset at or beyond the end: the caller judges the offset.
            Err(error) if offset > 0 => match self.bucket.store.head(&key).await {
                Ok(meta) if meta.size <= offset => Ok(Download {
                    metadata: Self::file_metadata(&meta),
                    source: DownloadSource::Stream(Box::new(tokio::io::empty())),
                }),
                _ => Err(store_error(error)),
            },
            Err(error) => Err(store_error(error)),
        }
    }

    async fn write(&self, path: &VirtualPath, mode: WriteMode) -> StorageResult<Box<dyn Upload>> {
        let create_new = match mode {
            WriteMode::Replace | WriteMode::At(0) => false,
            WriteMode::CreateNew => true,
            WriteMode::Append => {
                return Err(StorageError::Unsupported(
                    "appending (APPE) on object storage",
                ));
            }
            WriteMode::At(_) => {
                return Err(StorageError::Unsupported(
                    "resuming an upload (REST + STOR) on object storage",
                ));
            }
        };
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let key = self.file_key(path)?;
        let (parent, target) = tokio::join!(self.require_parent(path), self.find(path));
        parent?;
        let replaces_file = match target? {
            Found::Dir(_) => return Err(StorageError::IsADirectory),
            Found::File(_) if create_new => return Err(StorageError::AlreadyExists),
            Found::File(_) => true,
            Found::Missing => false,
        };
        Ok(Box::new(S3Upload::new(
            self.bucket.store.clone(),
            key,
            self.bucket.part_size,
            create_new,
            replaces_file,
        )))
    }

    async fn mkdir(&self, path: &VirtualPath) -> StorageResult<()> {
        if path.is_root() {
            return Err(StorageError::AlreadyExists);
        }
        self.file_key(path)?;
        let (parent, target) = tokio::join!(self.require_parent(path), self.find(path));
        parent?;
        match target? {
            Found::Dir(_) | Found::File(_) => Err(StorageError::AlreadyExists),
            Found::Missing => self.bucket.raw.put_marker(&self.dir_prefix(path)).await,
        }
    }

    async fn rmdir(&self, path: &VirtualPath) -> StorageResult<()> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        match self.find(path).await? {
            Found::Dir(_) => {}
            Found::File(_) => return Err(StorageError::NotADirectory),
            Found::Missing => return Err(self.missing(path).await),
        }
        let prefix = self.dir_prefix(path);
        let page = self.bucket.list_page(&prefix, false, Some(2), None).await?;
        let marker = prefix.trim_end_matches('/');
        if page
            .result
            .objects
            .iter()
            .any(|object| object.location.as_ref() != marker)
        {
            return Err(StorageError::DirectoryNotEmpty);
        }
        self.keep_parent(path).await?;
        self.bucket.raw.delete_marker(&prefix).await
    }

    async fn remove(&self, path: &VirtualPath) -> StorageResult<()> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let key = self.file_key(path)?;
        if !exists(&self.bucket.store, &key).await? {
            return Err(match self.find(path).await? {
                Found::Dir(_) => StorageError::IsADirectory,
                _ => self.missing(path).await,
            });
        }
        self.keep_parent(path).await?;
        self.bucket.store.delete(&key).await.map_err(store_error)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> StorageResult<()> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let moving_dir = match self.find(from).await? {
            Found::Dir(_) => true,
            Found::File(_) => false,
            Found::Missing => return Err(self.missing(from).await),
        };
        if from == to {
            return Ok(()); // As rename(2): the same name is a successful no-op.
        }
        if to.starts_with(from) {
            return Err(StorageError::InvalidName); // Same answer as the fs backend.
        }
        let target_key = self.file_key(to)?;
        let (parent, target) = tokio::join!(self.require_parent(to), self.find(to));
        parent?;
        // rename(2)'s rules for an existing target: a file replaces a file, a directory an
        // empty directory.
        match (moving_dir, target?) {
            (_, Found::Missing) | (false, Found::File(_)) => {}
            (false, Found::Dir(_)) => return Err(StorageError::IsADirectory),
            (true, Found::File(_)) => return Err(StorageError::NotADirectory),
            (true, Found::Dir(_)) => {
                let page = self
                    .bucket
                    .list_page(&self.dir_prefix(to), false, Some(2), None)
                    .await?;
                let marker = self.dir_prefix(to);
                if page
                    .result
                    .objects
                    .iter()
                    .any(|object| object.location.as_ref() != marker.trim_end_matches('/'))
                {
                    return Err(StorageError::DirectoryNotEmpty);
                }
            }
        }
        if moving_dir {
            return self.rename_dir(from, to).await;
        }
        let source_key = self.file_key(from)?;
        let store = &self.bucket.store;
        store
            .copy(&source_key, &target_key)
            .await
            .map_err(store_error)?;
        self.keep_parent(from).await?;
        store.delete(&source_key).await.map_err(store_error)
    }
}

/// The entries of one listing page of the directory `prefix`, without the directory's own
/// marker.
fn page_entries(prefix: &str, page: &PaginatedListResult) -> StorageResult<Vec<DirEntry>> {
    let marker = prefix.trim_end_matches('/');
    let dirs = page.result.common_prefixes.iter().map(|dir| {
        let name = below(prefix, dir.as_ref())?;
        Ok(DirEntry {
            name: name.to_owned(),
            metadata: S3Storage::dir_metadata(&format!("{}/", dir.as_ref()), None),
        })
    });
    let files = page
        .result
        .objects
        .iter()
        .filter(|object| object.location.as_ref() != marker)
        .map(|object| {
            Ok(DirEntry {
                name: below(prefix, object.location.as_ref())?.to_owned(),
                metadata: S3Storage::file_metadata(object),
            })
        });
    dirs.chain(files).collect()
}
