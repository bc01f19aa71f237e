//! The virtual file system: one [`Storage`] per logged-in user, rooted at that user's home.
//!
//! The server only ever speaks to `Arc<dyn Storage>` with normalised [`VirtualPath`]s, so a
//! backend never sees `..` and decides alone how a path maps onto its medium. [`Capabilities`] tell
//! the server what it may promise (FEAT, REST, APPE, SITE CHMOD) before a client relies on it, and
//! [`StorageError::reply_code`] is the one typed map from storage failures to FTP replies.
//!
//! Backends: [`fs`] (local disk, jailed to the home), [`memory`], and `s3` (object storage, behind
//! the `s3` cargo feature). Another backend is a type that implements [`Storage`] — see the
//! example on the trait.

pub mod digest;
pub mod fs;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

#[cfg(test)]
pub(crate) mod conformance;

use std::fmt;
use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::protocol::VirtualPath;
use crate::protocol::hash::HashAlgorithm;
pub use crate::protocol::listing::EntryKind;
use crate::protocol::reply::ReplyCode;

/// What a backend can do beyond reading, writing whole files and managing directories.
///
/// The server advertises and accepts only what is set here: `REST` + `STOR` needs
/// `write_at_offset`, `APPE` needs `append`, MFMT needs `set_modified`, SITE CHMOD needs `chmod`,
/// HASH and XCRC/XMD5/XSHA1/XSHA256 need `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `WriteMode::Append`.
    pub append: bool,
    /// `WriteMode::At(offset)`, to resume an upload.
    pub write_at_offset: bool,
    /// `read(path, offset > 0)`, to resume a download.
    pub read_at_offset: bool,
    /// `set_modified`.
    pub set_modified: bool,
    /// `chmod`, with Unix permission bits.
    pub chmod: bool,
    /// `hash`: HASH and the X hash commands (a backend that cannot read cheaply says no).
    pub hash: bool,
}

/// The facts a listing shows about a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub kind: EntryKind,
    /// Bytes; 0 for directories where the medium has no size for them.
    pub size: u64,
    /// Last modification, Unix seconds (UTC).
    pub modified: Option<i64>,
    /// Unix permission bits, where the medium has them.
    pub mode: Option<u32>,
    /// Identity within the storage (device, inode) for the MLSD `unique` fact.
    pub unique: Option<(u64, u64)>,
}

impl Metadata {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    pub fn is_file(&self) -> bool {
        self.kind == EntryKind::File
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub metadata: Metadata,
}

/// How an upload treats the file it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// STOR: a new file, or a full replacement of an existing one. Until `commit`, the old content
    /// (if any) stays visible; an upload dropped before `commit` leaves no trace.
    Replace,
    /// STOU: like `Replace`, but fails with [`StorageError::AlreadyExists`] if the name is taken.
    CreateNew,
    /// APPE: bytes go after the current end; a missing file is created.
    Append,
    /// REST n + STOR: keep the first `n` bytes, write from there and cut off whatever followed.
    /// `n` greater than the current size is [`StorageError::InvalidOffset`].
    At(u64),
}

/// Why a storage operation failed. Each maps to one FTP reply code.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no such file or directory")]
    NotFound,
    #[error("a file or directory with that name already exists")]
    AlreadyExists,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("directory not empty")]
    DirectoryNotEmpty,
    #[error("permission denied")]
    PermissionDenied,
    #[error("file name not allowed")]
    InvalidName,
    #[error("offset {0} is beyond the end of the file")]
    InvalidOffset(u64),
    #[error("no space left on the storage")]
    InsufficientSpace,
    #[error("storage quota exceeded")]
    QuotaExceeded,
    #[error("not supported by this storage: {0}")]
    Unsupported(&'static str),
    /// Object storage renames a directory by copying each object below it, up to a limit.
    #[error(
        "this directory holds more than {limit} objects; object storage renames by copying each \
         one — move its files in smaller steps, or raise rename_dir_limit"
    )]
    RenameTooLarge { limit: usize },
    #[error("storage temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("storage I/O error: {0}")]
    Io(#[source] io::Error),
}

impl StorageError {
    /// The reply code for this failure (RFC 959 §4.2, RFC 3659 §4).
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::NotFound
            | Self::AlreadyExists
            | Self::NotADirectory
            | Self::IsADirectory
            | Self::DirectoryNotEmpty
            | Self::PermissionDenied
            | Self::RenameTooLarge { .. } => ReplyCode::FILE_UNAVAILABLE,
            Self::InvalidOffset(_) => ReplyCode::INVALID_REST_PARAMETER,
            Self::InvalidName => ReplyCode::FILE_NAME_NOT_ALLOWED,
            Self::InsufficientSpace => ReplyCode::INSUFFICIENT_STORAGE,
            Self::QuotaExceeded => ReplyCode::EXCEEDED_STORAGE,
            Self::Unsupported(_) => ReplyCode::PARAMETER_NOT_IMPLEMENTED,
            Self::Unavailable(_) => ReplyCode::FILE_BUSY,
            Self::Io(_) => ReplyCode::LOCAL_ERROR,
        }
    }
}

impl From<io::Error> for StorageError {
    fn from(error: io::Error) -> Self {
        use io::ErrorKind as K;
        match error.kind() {
            K::NotFound => Self::NotFound,
            K::AlreadyExists => Self::AlreadyExists,
            K::PermissionDenied => Self::PermissionDenied,
            K::NotADirectory => Self::NotADirectory,
            K::IsADirectory => Self::IsADirectory,
            K::DirectoryNotEmpty => Self::DirectoryNotEmpty,
            K::InvalidFilename => Self::InvalidName,
            K::StorageFull => Self::InsufficientSpace,
            K::QuotaExceeded => Self::QuotaExceeded,
            _ => Self::Io(error),
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// A stream of directory entries, so a listing of 100,000 files is never held whole.
pub type DirStream = BoxStream<'static, StorageResult<DirEntry>>;

/// A download: the file's bytes from the requested offset.
pub type FileReader = Box<dyn AsyncRead + Send + Unpin>;

/// A file opened for a download.
pub struct Download {
    /// The file as it was opened; a download sends `size - offset` bytes.
    pub metadata: Metadata,
    pub source: DownloadSource,
}

/// Where a download's bytes come from.
pub enum DownloadSource {
    /// A file of the local file system, positioned at the offset: plain binary downloads send it
    /// with `sendfile(2)`, from the page cache to the socket, never through a buffer of ours.
    Local(std::fs::File),
    /// The bytes from the offset on, from any other medium.
    Stream(FileReader),
}

/// An upload in progress. Bytes written are not visible under the file's name (for
/// [`WriteMode::Replace`] and [`WriteMode::CreateNew`]) until [`Upload::commit`] succeeds; dropping
/// the upload without committing abandons it.
#[async_trait]
pub trait Upload: AsyncWrite + Send + Unpin {
    /// Flushes and makes the upload visible. Returns the size of the file afterwards.
    async fn commit(self: Box<Self>) -> StorageResult<u64>;

    /// Whether committing replaces a file that existed when the upload was opened: a truncated
    /// upload must not replace a good file, so the server makes sure such an upload was meant
    /// to end. Backends that cannot tell keep the default, `true`.
    fn replaces_file(&self) -> bool {
        true
    }

    /// Whether [`Upload::stage`] is offered.
    fn can_stage(&self) -> bool {
        false
    }

    /// Commits in two steps, for backends where the second step (making the upload visible
    /// under its name, as a rename does) cannot fail for want of space or of a network: stores
    /// every byte and returns the size of the file and that last step. Until
    /// [`StagedUpload::publish`], the upload stays invisible; dropping the staged upload abandons
    /// it. Backends without such a step keep the default, which refuses (see
    /// [`Upload::can_stage`]).
    async fn stage(self: Box<Self>) -> StorageResult<(u64, Box<dyn StagedUpload>)> {
        Err(StorageError::Unsupported("staging uploads"))
    }
}

/// An upload whose bytes are all stored, waiting to be made visible (see [`Upload::stage`]).
#[async_trait]
pub trait StagedUpload: Send + Sync {
    /// Makes the upload visible under its name.
    async fn publish(self: Box<Self>) -> StorageResult<()>;
}

/// One user's view of a storage medium, rooted at the user's home.
///
/// Paths are already normalised; `VirtualPath::root()` is the home itself. A third backend needs
/// only this trait:
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use ferry::protocol::VirtualPath;
/// use ferry::storage::*;
///
/// /// A read-only view of another storage.
/// #[derive(Debug)]
/// struct ReadOnly(Arc<dyn Storage>);
///
/// #[async_trait]
/// impl Storage for ReadOnly {
///     fn capabilities(&self) -> Capabilities {
///         Capabilities { append: false, write_at_offset: false, set_modified: false, chmod: false, ..self.0.capabilities() }
///     }
///     async fn metadata(&self, p: &VirtualPath) -> StorageResult<Metadata> { self.0.metadata(p).await }
///     async fn list(&self, p: &VirtualPath) -> StorageResult<DirStream> { self.0.list(p).await }
///     async fn read(&self, p: &VirtualPath, offset: u64) -> StorageResult<FileReader> { self.0.read(p, offset).await }
///     async fn write(&self, _: &VirtualPath, _: WriteMode) -> StorageResult<Box<dyn Upload>> { Err(StorageError::PermissionDenied) }
///     async fn mkdir(&self, _: &VirtualPath) -> StorageResult<()> { Err(StorageError::PermissionDenied) }
///     async fn rmdir(&self, _: &VirtualPath) -> StorageResult<()> { Err(StorageError::PermissionDenied) }
///     async fn remove(&self, _: &VirtualPath) -> StorageResult<()> { Err(StorageError::PermissionDenied) }
///     async fn rename(&self, _: &VirtualPath, _: &VirtualPath) -> StorageResult<()> { Err(StorageError::PermissionDenied) }
/// }
/// ```
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    fn capabilities(&self) -> Capabilities;

    /// Facts about one file or directory.
    async fn metadata(&self, path: &VirtualPath) -> StorageResult<Metadata>;

    /// The entries of a directory (without `.` and `..`), in no particular order.
    async fn list(&self, path: &VirtualPath) -> StorageResult<DirStream>;

    /// Opens a file for reading from `offset`.
    async fn read(&self, path: &VirtualPath, offset: u64) -> StorageResult<FileReader>;

    /// Opens a regular file for a download from `offset`: its metadata and its bytes, in one
    /// call where the medium allows (one trip to the disk, one request to a store). A directory
    /// is [`StorageError::IsADirectory`]. The default asks [`Storage::metadata`], then
    /// [`Storage::read`].
    async fn download(&self, path: &VirtualPath, offset: u64) -> StorageResult<Download> {
        let metadata = self.metadata(path).await?;
        if metadata.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        let source = DownloadSource::Stream(self.read(path, offset).await?);
        Ok(Download { metadata, source })
    }

    /// Opens a file for writing; see [`WriteMode`] for what becomes visible when.
    async fn write(&self, path: &VirtualPath, mode: WriteMode) -> StorageResult<Box<dyn Upload>>;

    /// Creates one directory; its parent must exist.
    async fn mkdir(&self, path: &VirtualPath) -> StorageResult<()>;

    /// Removes an empty directory.
    async fn rmdir(&self, path: &VirtualPath) -> StorageResult<()>;

    /// Removes a file.
    async fn remove(&self, path: &VirtualPath) -> StorageResult<()>;

    /// Renames a file or directory, replacing an existing file at `to`.
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> StorageResult<()>;

    /// Sets the modification time (MFMT), in Unix seconds.
    async fn set_modified(&self, path: &VirtualPath, unix_secs: i64) -> StorageResult<()> {
        let _ = (path, unix_secs);
        Err(StorageError::Unsupported("setting modification times"))
    }

    /// Sets Unix permission bits (SITE CHMOD).
    async fn chmod(&self, path: &VirtualPath, mode: u32) -> StorageResult<()> {
        let _ = (path, mode);
        Err(StorageError::Unsupported("changing permissions"))
    }

    /// The digest of up to `len` bytes of a file from `start` (HASH, XSHA256, ...). The default
    /// streams [`Storage::read`] through a hasher on the blocking pool ([`digest::digest_reader`]);
    /// a backend with local files hashes them there instead.
    async fn hash(
        &self,
        path: &VirtualPath,
        algorithm: HashAlgorithm,
        start: u64,
        len: u64,
    ) -> StorageResult<digest::FileDigest> {
        let reader = self.read(path, start).await?;
        digest::digest_reader(reader, algorithm, len).await
    }
}

/// Opens each user's [`Storage`] at login.
#[async_trait]
pub trait StorageProvider: Send + Sync + fmt::Debug {
    /// What every storage this provider opens can do (FEAT before login is built from this).
    fn capabilities(&self) -> Capabilities;

    /// The storage rooted at `home`, a path relative to the provider's root (or absolute, for
    /// backends that allow it). The home is created if it does not exist yet.
    async fn open(&self, home: &str) -> StorageResult<Arc<dyn Storage>>;
}
