//! The local disk as a [`Storage`], jailed to one user's home directory.
//!
//! Every path is resolved by cap-std below a directory handle opened on the home (on Linux with
//! `openat2(RESOLVE_BENEATH)`), so neither `..`, an absolute path nor a symlink can lead outside
//! it: such an attempt fails with [`StorageError::PermissionDenied`]. Symlinks that stay inside
//! the home work as usual. Nothing here holds a whole file or a whole directory listing in memory.
//!
//! Writes (creating, writing, renaming, removing) run on the blocking pool: the kernel may make a
//! writer wait a long time (dirty-page throttling, a full journal). Lookups that only read
//! metadata (stat, opening a file for a download) run on the calling thread when the home is on
//! a local file system, whose caches answer them in microseconds — as `sendfile` already reads
//! the page cache there; a trip to the pool costs more than the call. So does the rename that
//! makes a staged upload visible (one syscall, like the unlink of an abandoned upload's temporary
//! file). On network and FUSE file systems, where any of these can wait on a server, they go to
//! the blocking pool too.

use std::io::{self, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, Permissions, PermissionsExt, ReadDir};
use futures_util::StreamExt;
use futures_util::stream;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    Capabilities, DirEntry, DirStream, Download, DownloadSource, EntryKind, FileReader, Metadata,
    StagedUpload, Storage, StorageError, StorageProvider, StorageResult, Upload, WriteMode,
};
use crate::protocol::VirtualPath;

/// Uploads in progress live under a hidden name beginning with this, beside their target, so the
/// final rename stays within one directory and one file system. Listings skip such names, and
/// clients may not create them.
pub const UPLOAD_TEMP_PREFIX: &str = ".ferry-upload.";

/// Directory entries read per blocking call while listing.
const LIST_BATCH_LEN: usize = 256;

/// Batches read ahead of the listener: enough to keep the data channel busy, small enough that a
/// huge directory never sits in memory.
const LIST_BATCHES_AHEAD: usize = 2;

/// Permission bits a client may set or an upload may inherit: setuid, setgid and sticky bits are
/// never passed on, so an FTP account cannot make a privileged executable.
const CLIENT_MODE_MASK: u32 = 0o777;

/// Opens each user's home below one root directory on the local disk.
#[derive(Debug, Clone)]
pub struct FsProvider {
    /// Where relative homes live (`--root`).
    pub root: PathBuf,
}

impl FsProvider {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where `home` lives on disk: an absolute home as it is, a relative one below the root.
    fn home_path(&self, home: &str) -> StorageResult<PathBuf> {
        let home = Path::new(home);
        if home.is_absolute() {
            return Ok(home.to_path_buf());
        }
        // A relative home is an account setting meant to stay below the root; `..` would quietly
        // put it elsewhere, so it is refused (an absolute home says so openly).
        if home.components().any(|part| part == Component::ParentDir) {
            return Err(StorageError::InvalidName);
        }
        Ok(self.root.join(home))
    }
}

#[async_trait]
impl StorageProvider for FsProvider {
    fn capabilities(&self) -> Capabilities {
        FsStorage::CAPABILITIES
    }

    async fn open(&self, home: &str) -> StorageResult<Arc<dyn Storage>> {
        let home = self.home_path(home)?;
        let storage = run_blocking(move || {
            std::fs::create_dir_all(&home)?;
            FsStorage::open(&home)
        })
        .await?;
        Ok(Arc::new(storage))
    }
}

/// One user's home on the local disk. Cheap to share: the directory handle sits in an `Arc`.
#[derive(Debug)]
pub struct FsStorage {
    /// Only for `Debug` and logs; every access goes through `dir`.
    home: PathBuf,
    dir: Arc<Dir>,
    /// The home is on a local file system: metadata lookups run inline (see the module docs).
    local: bool,
}

impl FsStorage {
    /// Opens an existing directory as a home. Blocking: call it from `spawn_blocking` (or a test).
    pub fn open(home: &Path) -> StorageResult<Self> {
        let dir = Dir::open_ambient_dir(home, cap_std::ambient_authority())?;
        Ok(Self {
            home: home.to_path_buf(),
            local: is_local_file_system(&dir),
            dir: Arc::new(dir),
        })
    }

    /// The directory this storage is jailed to.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Runs `op` on the home directory in the blocking pool.
    async fn blocking<T, F>(&self, op: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> StorageResult<T> + Send + 'static,
    {
        let dir = Arc::clone(&self.dir);
        run_blocking(move || op(&dir)).await
    }

    /// Runs `op`, which only reads metadata, on this thread where the home is on a local file
    /// system, else in the blocking pool (see the module docs).
    async fn lookup<T, F>(&self, op: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> StorageResult<T> + Send + 'static,
    {
        if self.local {
            op(&self.dir)
        } else {
            self.blocking(op).await
        }
    }
}

impl FsStorage {
    /// Opens a regular file positioned at `offset`, with its metadata.
    async fn open_for_reading(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> StorageResult<(std::fs::File, Metadata)> {
        let on_disk = on_disk(path);
        self.lookup(move |dir| {
            // Checked before opening: opening a FIFO for reading would block this thread.
            require_regular_file(&dir.metadata(&on_disk)?)?;
            let file = dir.open(&on_disk)?;
            // And again on the open file, in case the name changed in between.
            let metadata = file.metadata()?;
            require_regular_file(&metadata)?;
            let mut file = file.into_std();
            if offset > 0 {
                file.seek(SeekFrom::Start(offset))?;
            }
            Ok((file, describe(&metadata)))
        })
        .await
    }

    /// Everything the trait offers.
    pub const CAPABILITIES: Capabilities = Capabilities {
        append: true,
        write_at_offset: true,
        read_at_offset: true,
        set_modified: true,
        chmod: true,
        hash: true,
    };
}

#[async_trait]
impl Storage for FsStorage {
    fn capabilities(&self) -> Capabilities {
        FsStorage::CAPABILITIES
    }

    async fn metadata(&self, path: &VirtualPath) -> StorageResult<Metadata> {
        let on_disk = on_disk(path);
        self.lookup(move |dir| Ok(describe(&dir.metadata(on_disk)?)))
            .await
    }

    async fn list(&self, path: &VirtualPath) -> StorageResult<DirStream> {
        let on_disk = on_disk(path);
        // Opening happens before the stream exists, so a missing path or a file fails the call
        // itself rather than the first item.
        let (listed, entries) = self
            .blocking(move |dir| {
                let listed = dir.open_dir(on_disk)?;
                let entries = listed.entries()?;
                Ok((listed, entries))
            })
            .await?;
        let (batches, receiver) = mpsc::channel(LIST_BATCHES_AHEAD);
        tokio::spawn(read_listing(listed, entries, batches));
        let batches = stream::unfold(receiver, |mut receiver| async move {
            let batch = receiver.recv().await?;
            Some((stream::iter(batch), receiver))
        });
        Ok(batches.flatten().boxed())
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> StorageResult<FileReader> {
        let (file, _) = self.open_for_reading(path, offset).await?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn download(&self, path: &VirtualPath, offset: u64) -> StorageResult<Download> {
        let (file, metadata) = self.open_for_reading(path, offset).await?;
        Ok(Download {
            metadata,
            source: DownloadSource::Local(file),
        })
    }

    /// Read and hashed on the blocking pool in one go: no trip through an async reader.
    async fn hash(
        &self,
        path: &VirtualPath,
        algorithm: crate::protocol::hash::HashAlgorithm,
        start: u64,
        len: u64,
    ) -> StorageResult<super::digest::FileDigest> {
        let (file, _) = self.open_for_reading(path, start).await?;
        super::digest::digest_file(file, algorithm, len).await
    }

    async fn write(&self, path: &VirtualPath, mode: WriteMode) -> StorageResult<Box<dyn Upload>> {
        let Some(name) = path.file_name() else {
            return Err(StorageError::IsADirectory);
        };
        refuse_reserved_name(name)?;
        let upload = match mode {
            WriteMode::Replace => self.open_staged(path, false).await?,
            WriteMode::CreateNew => self.open_staged(path, true).await?,
            WriteMode::Append => self.open_appending(path).await?,
            WriteMode::At(offset) => self.open_at(path, offset).await?,
        };
        Ok(Box::new(upload))
    }

    async fn mkdir(&self, path: &VirtualPath) -> StorageResult<()> {
        let Some(name) = path.file_name() else {
            return Err(StorageError::AlreadyExists);
        };
        refuse_reserved_name(name)?;
        let on_disk = on_disk(path);
        self.blocking(move |dir| Ok(dir.create_dir(on_disk)?)).await
    }

    async fn rmdir(&self, path: &VirtualPath) -> StorageResult<()> {
        refuse_root(path)?;
        let on_disk = on_disk(path);
        self.blocking(move |dir| Ok(dir.remove_dir(on_disk)?)).await
    }

    async fn remove(&self, path: &VirtualPath) -> StorageResult<()> {
        refuse_root(path)?;
        let on_disk = on_disk(path);
        // Linux's unlink answers EISDIR for a directory, which maps to `IsADirectory`. A symlink
        // is removed itself, never its target.
        self.blocking(move |dir| Ok(dir.remove_file(on_disk)?))
            .await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> StorageResult<()> {
        refuse_root(from)?;
        refuse_root(to)?;
        if let Some(name) = to.file_name() {
            refuse_reserved_name(name)?;
        }
        let into_itself = to != from && to.starts_with(from);
        let (from, to) = (on_disk(from), on_disk(to));
        self.blocking(move |dir| {
            if into_itself {
                // The kernel would refuse with EINVAL, which says nothing to a client; a missing
                // source still reads as missing.
                dir.symlink_metadata(&from)?;
                return Err(StorageError::InvalidName);
            }
            Ok(dir.rename(from, dir, to)?)
        })
        .await
    }

    async fn set_modified(&self, path: &VirtualPath, unix_secs: i64) -> StorageResult<()> {
        let modified = system_time(unix_secs)?;
        let on_disk = on_disk(path);
        self.blocking(move |dir| {
            let metadata = dir.metadata(&on_disk)?;
            if !metadata.is_dir() {
                require_regular_file(&metadata)?;
            }
            // A read-only handle is enough for futimens, and works for directories too (the
            // handle of `open_dir` is an `O_PATH` one, which futimens refuses).
            let handle = dir.open(&on_disk)?.into_std();
            Ok(handle.set_modified(modified)?)
        })
        .await
    }

    async fn chmod(&self, path: &VirtualPath, mode: u32) -> StorageResult<()> {
        let on_disk = on_disk(path);
        let permissions = Permissions::from_mode(mode & CLIENT_MODE_MASK);
        self.blocking(move |dir| Ok(dir.set_permissions(on_disk, permissions)?))
            .await
    }
}

impl FsStorage {
    /// Starts an `Append` upload: bytes go straight to the end of the file, created if missing.
    async fn open_appending(&self, path: &VirtualPath) -> StorageResult<FsUpload> {
        let on_disk = on_disk(path);
        let file = self
            .blocking(move |dir| {
                // Refuses a directory or special file before opening it.
                existing_file(dir, &on_disk)?;
                let file = dir.open_with(&on_disk, OpenOptions::new().append(true).create(true))?;
                require_regular_file(&file.metadata()?)?;
                Ok(file.into_std())
            })
            .await?;
        Ok(FsUpload::in_place(file))
    }

    /// Starts an `At(offset)` upload: the file is cut at `offset` now and written from there.
    async fn open_at(&self, path: &VirtualPath, offset: u64) -> StorageResult<FsUpload> {
        let on_disk = on_disk(path);
        let file = self
            .blocking(move |dir| {
                if existing_file(dir, &on_disk)?.is_none() && offset > 0 {
                    return Err(StorageError::NotFound);
                }
                let mut file =
                    dir.open_with(&on_disk, OpenOptions::new().write(true).create(offset == 0))?;
                let metadata = file.metadata()?;
                require_regular_file(&metadata)?;
                if offset > metadata.len() {
                    return Err(StorageError::InvalidOffset(offset));
                }
                file.set_len(offset)?;
                file.seek(SeekFrom::Start(offset))?;
                Ok(file.into_std())
            })
            .await?;
        Ok(FsUpload::in_place(file))
    }

    /// Starts a `Replace` (or, if `exclusive`, a `CreateNew`) upload into a temporary file beside
    /// the target. Only looks now, so that what can be refused is refused before any byte is
    /// sent; the temporary file is created when the bytes outgrow memory, or at the end.
    async fn open_staged(&self, path: &VirtualPath, exclusive: bool) -> StorageResult<FsUpload> {
        let parent = on_disk(&path.parent().unwrap_or_else(VirtualPath::root));
        let target_name = path.file_name().unwrap_or_default().to_owned();
        let local = self.local;
        let plan = self
            .lookup(move |dir| {
                // The upload keeps its own handle on the parent, so the final rename lands where
                // the temporary file is even if the parent is renamed meanwhile.
                let parent = dir.open_dir(parent)?;
                let existing = existing_file(&parent, Path::new(&target_name))?;
                if existing.is_some() && exclusive {
                    // Checked again, atomically, at commit; this only fails early.
                    return Err(StorageError::AlreadyExists);
                }
                require_writable(&parent)?;
                Ok(StagePlan {
                    parent,
                    target_name,
                    exclusive,
                    mode: existing.map(|existing| existing.mode() & CLIENT_MODE_MASK),
                    local,
                })
            })
            .await?;
        Ok(FsUpload::staged(plan))
    }
}

/// Where a `Replace` or `CreateNew` upload puts its temporary file, before the file exists.
#[derive(Debug)]
struct StagePlan {
    parent: Dir,
    target_name: String,
    /// `CreateNew`: the name must still be free at the end.
    exclusive: bool,
    /// The permission bits of the file being replaced: a replaced script stays executable.
    mode: Option<u32>,
    /// On a local file system (see [`FsStorage::local`]).
    local: bool,
}

impl StagePlan {
    /// Creates the temporary file. Blocking.
    fn create(self) -> StorageResult<(StagedFile, std::fs::File)> {
        let (mut staged, file) = StagedFile::create(self.parent, self.target_name, self.exclusive)?;
        staged.local = self.local;
        if let Some(mode) = self.mode {
            // Best effort: a file we cannot chmod still takes the upload.
            let _ = file.set_permissions(Permissions::from_mode(mode));
        }
        Ok((staged, file.into_std()))
    }

    /// Creates the temporary file with `bytes` in it. Blocking.
    fn create_with(self, bytes: &[u8]) -> StorageResult<StagedFile> {
        let (staged, mut file) = self.create()?;
        io::Write::write_all(&mut file, bytes)?;
        Ok(staged)
    }
}

/// Uploads up to this size are kept in memory and written at the end, with the creation of their
/// temporary file and its rename, in one trip to the blocking pool.
const SMALL_UPLOAD: usize = 64 * 1024;

/// An upload into a file on disk.
#[derive(Debug)]
pub struct FsUpload {
    state: UploadState,
    /// A `Replace` upload whose target existed when it was opened.
    replaces_file: bool,
}

/// Where the bytes of an upload are until it is committed.
#[derive(Debug)]
enum UploadState {
    /// A staged upload of no more than [`SMALL_UPLOAD`] bytes so far: kept here (nothing is
    /// visible before the commit anyway); its temporary file does not exist yet.
    Small { plan: StagePlan, bytes: Vec<u8> },
    /// Grown past [`SMALL_UPLOAD`]: its temporary file is being created, the bytes so far wait.
    Creating {
        creating: JoinHandle<StorageResult<(StagedFile, std::fs::File)>>,
        pending: Vec<u8>,
    },
    /// Streamed to a file, `pending[written..]` still to go before the next write. `staged` is
    /// the temporary file to make visible at the end; `Append` and `At` have none, they write
    /// into the file itself.
    Streaming {
        file: tokio::fs::File,
        staged: Option<StagedFile>,
        pending: Vec<u8>,
        written: usize,
    },
    /// After a failure that lost bytes: the upload cannot be completed.
    Broken,
}

impl FsUpload {
    fn staged(plan: StagePlan) -> Self {
        Self {
            replaces_file: plan.mode.is_some(),
            state: UploadState::Small {
                plan,
                bytes: Vec::new(),
            },
        }
    }

    /// `Append` and `At`: the client asked to write into the file itself, so the bytes go there
    /// as they come (what arrived before a broken connection stays, for the client to resume).
    fn in_place(file: std::fs::File) -> Self {
        Self {
            state: UploadState::Streaming {
                file: tokio::fs::File::from_std(file),
                staged: None,
                pending: Vec::new(),
                written: 0,
            },
            replaces_file: false,
        }
    }

    /// Gets a growing upload to streaming: waits for its temporary file, then writes out the
    /// bytes kept so far.
    fn poll_streaming(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let UploadState::Creating { creating, pending } = &mut self.state {
            let created = std::task::ready!(Pin::new(creating).poll(cx));
            let pending = std::mem::take(pending);
            match created.map_err(join_error).and_then(|created| created) {
                Ok((staged, file)) => {
                    self.state = UploadState::Streaming {
                        file: tokio::fs::File::from_std(file),
                        staged: Some(staged),
                        pending,
                        written: 0,
                    };
                }
                Err(error) => {
                    self.state = UploadState::Broken;
                    return Poll::Ready(Err(into_io_error(error)));
                }
            }
        }
        let UploadState::Streaming {
            file,
            pending,
            written,
            ..
        } = &mut self.state
        else {
            return Poll::Ready(Ok(()));
        };
        while *written < pending.len() {
            let n = std::task::ready!(Pin::new(&mut *file).poll_write(cx, &pending[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        *pending = Vec::new();
        *written = 0;
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl Upload for FsUpload {
    async fn commit(mut self: Box<Self>) -> StorageResult<u64> {
        std::future::poll_fn(|cx| self.poll_streaming(cx)).await?;
        // No fsync: it costs most of the throughput, and the rename below is what keeps a
        // half-written file from ever showing under the target's name.
        match self.state {
            UploadState::Small { plan, bytes } => {
                run_blocking(move || {
                    plan.create_with(&bytes)?.complete()?;
                    Ok(bytes.len() as u64)
                })
                .await
            }
            UploadState::Streaming {
                mut file, staged, ..
            } => {
                file.flush().await?;
                let size = file.metadata().await?.len();
                if let Some(staged) = staged {
                    run_blocking(move || staged.complete()).await?;
                }
                Ok(size)
            }
            UploadState::Creating { .. } | UploadState::Broken => Err(broken()),
        }
    }

    fn replaces_file(&self) -> bool {
        self.replaces_file
    }

    fn can_stage(&self) -> bool {
        !matches!(self.state, UploadState::Streaming { staged: None, .. })
    }

    async fn stage(mut self: Box<Self>) -> StorageResult<(u64, Box<dyn StagedUpload>)> {
        std::future::poll_fn(|cx| self.poll_streaming(cx)).await?;
        let (size, staged) = match self.state {
            UploadState::Small { plan, bytes } => {
                let size = bytes.len() as u64;
                (size, run_blocking(move || plan.create_with(&bytes)).await?)
            }
            UploadState::Streaming {
                mut file,
                staged: Some(staged),
                ..
            } => {
                file.flush().await?;
                (file.metadata().await?.len(), staged)
            }
            UploadState::Streaming { staged: None, .. } => {
                return Err(StorageError::Unsupported(
                    "staging an upload into the file itself",
                ));
            }
            UploadState::Creating { .. } | UploadState::Broken => return Err(broken()),
        };
        Ok((size, Box::new(StagedFsUpload(staged))))
    }
}

fn broken() -> StorageError {
    StorageError::Io(io::Error::other("an earlier write to this upload failed"))
}

/// A storage error where `AsyncWrite` needs an `io::Error`, of the kind that maps back to it.
fn into_io_error(error: StorageError) -> io::Error {
    use io::ErrorKind as K;
    let kind = match &error {
        StorageError::NotFound => K::NotFound,
        StorageError::AlreadyExists => K::AlreadyExists,
        StorageError::NotADirectory => K::NotADirectory,
        StorageError::IsADirectory => K::IsADirectory,
        StorageError::PermissionDenied => K::PermissionDenied,
        StorageError::InvalidName => K::InvalidFilename,
        StorageError::InsufficientSpace => K::StorageFull,
        StorageError::QuotaExceeded => K::QuotaExceeded,
        _ => K::Other,
    };
    match error {
        StorageError::Io(error) => error,
        error => io::Error::new(kind, error),
    }
}

/// A staged upload on disk: its bytes are in the temporary file, the rename is left.
struct StagedFsUpload(StagedFile);

#[async_trait]
impl StagedUpload for StagedFsUpload {
    async fn publish(self: Box<Self>) -> StorageResult<()> {
        let staged = self.0;
        if staged.local {
            staged.complete()
        } else {
            run_blocking(move || staged.complete()).await
        }
    }
}

impl AsyncWrite for FsUpload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let UploadState::Small { bytes, .. } = &mut this.state {
            if bytes.len() + buf.len() <= SMALL_UPLOAD {
                bytes.extend_from_slice(buf);
                return Poll::Ready(Ok(buf.len()));
            }
            // Too big to keep: create the temporary file and stream from here on, what was kept
            // first.
            let UploadState::Small { plan, bytes } =
                std::mem::replace(&mut this.state, UploadState::Broken)
            else {
                unreachable!("matched above")
            };
            this.state = UploadState::Creating {
                creating: tokio::task::spawn_blocking(move || plan.create()),
                pending: bytes,
            };
        }
        std::task::ready!(this.poll_streaming(cx))?;
        match &mut this.state {
            UploadState::Streaming { file, .. } => Pin::new(file).poll_write(cx, buf),
            _ => Poll::Ready(Err(io::Error::other("the upload cannot take more bytes"))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_streaming(cx))?;
        match &mut this.state {
            UploadState::Streaming { file, .. } => Pin::new(file).poll_flush(cx),
            // Kept bytes reach the file at commit; nothing is visible before that anyway.
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_streaming(cx))?;
        match &mut this.state {
            UploadState::Streaming { file, .. } => Pin::new(file).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// The temporary file of a `Replace` or `CreateNew` upload. Dropping it removes the temporary
/// name, so an abandoned or failed upload leaves nothing behind.
#[derive(Debug)]
struct StagedFile {
    parent: Dir,
    temp_name: String,
    target_name: String,
    /// `CreateNew`: linked to its name at the end, which fails if the name is taken.
    exclusive: bool,
    /// On a local file system: made visible inline (see the module docs).
    local: bool,
    /// False once the temporary name has been renamed away.
    temp_name_exists: bool,
}

impl StagedFile {
    /// Creates a new, uniquely named temporary file in `parent`.
    fn create(
        parent: Dir,
        target_name: String,
        exclusive: bool,
    ) -> StorageResult<(Self, cap_std::fs::File)> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        // 64 random bits: a clash is all but impossible, and `create_new` makes one harmless.
        let mut attempts = 0;
        loop {
            let temp_name = format!("{UPLOAD_TEMP_PREFIX}{:016x}", rand::random::<u64>());
            match parent.open_with(&temp_name, &options) {
                Ok(file) => {
                    let staged = Self {
                        parent,
                        temp_name,
                        target_name,
                        exclusive,
                        local: false,
                        temp_name_exists: true,
                    };
                    return Ok((staged, file));
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => {
                    attempts += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Makes the upload visible under its name.
    fn complete(self) -> StorageResult<()> {
        if self.exclusive {
            self.link_as_new_target()
        } else {
            self.rename_over_target()
        }
    }

    /// `Replace`: one atomic rename; readers see the old file or the new one, never a mix.
    fn rename_over_target(mut self) -> StorageResult<()> {
        self.parent
            .rename(&self.temp_name, &self.parent, &self.target_name)?;
        self.temp_name_exists = false;
        Ok(())
    }

    /// `CreateNew`: `link` fails with EEXIST if the name is taken, atomically, unlike a check
    /// followed by a rename, which could replace a file created in between. The temporary name
    /// is then removed by `Drop`.
    fn link_as_new_target(self) -> StorageResult<()> {
        self.parent
            .hard_link(&self.temp_name, &self.parent, &self.target_name)?;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if self.temp_name_exists {
            // One unlink, done here rather than in the blocking pool so that the temporary file
            // is gone by the time the upload is; its cost is that of a single syscall.
            let _ = self.parent.remove_file(&self.temp_name);
        }
    }
}

/// Reads a directory in batches on the blocking pool and hands them to `batches` until the
/// directory ends or the listener goes away. Each batch is its own blocking call, so a slow
/// client holds no blocking thread while its data channel drains.
async fn read_listing(
    listed: Dir,
    entries: ReadDir,
    batches: mpsc::Sender<Vec<StorageResult<DirEntry>>>,
) {
    let (mut listed, mut entries) = (listed, entries);
    loop {
        let step = tokio::task::spawn_blocking(move || {
            let (batch, ended) = read_batch(&listed, &mut entries);
            (listed, entries, batch, ended)
        })
        .await;
        let (next_listed, next_entries, batch, ended) = match step {
            Ok(step) => step,
            Err(error) => {
                let _ = batches.send(vec![Err(join_error(error))]).await;
                return;
            }
        };
        if !batch.is_empty() && batches.send(batch).await.is_err() {
            return; // The listing was dropped: stop reading.
        }
        if ended {
            return;
        }
        (listed, entries) = (next_listed, next_entries);
    }
}

/// Up to [`LIST_BATCH_LEN`] entries, and whether the directory has ended.
fn read_batch(listed: &Dir, entries: &mut ReadDir) -> (Vec<StorageResult<DirEntry>>, bool) {
    let mut batch = Vec::with_capacity(LIST_BATCH_LEN);
    while batch.len() < LIST_BATCH_LEN {
        match entries.next() {
            None => return (batch, true),
            Some(Ok(entry)) => batch.extend(describe_entry(listed, &entry).map(Ok)),
            Some(Err(error)) => {
                // A failing read of the directory itself will not recover: report and stop.
                batch.push(Err(error.into()));
                return (batch, true);
            }
        }
    }
    (batch, false)
}

/// One listing entry, or `None` for upload temporary files and names that vanished meanwhile.
fn describe_entry(listed: &Dir, entry: &cap_std::fs::DirEntry) -> Option<DirEntry> {
    let file_name = entry.file_name();
    // A name that is not UTF-8 is shown with replacement characters: the client sees that it
    // exists, though it cannot name it back.
    let name = file_name.to_string_lossy().into_owned();
    if name.starts_with(UPLOAD_TEMP_PREFIX) {
        return None;
    }
    let own = entry.metadata().ok()?; // lstat: does not follow symlinks.
    let metadata = if own.is_symlink() {
        // A symlink shows what it points to. One that dangles or leads outside the home cannot
        // be followed; rather than failing the whole listing, it is shown as a symlink of size
        // 0, so the user sees it is there (and can remove it).
        match listed.metadata(&file_name) {
            Ok(target) => describe(&target),
            Err(_) => Metadata {
                size: 0,
                ..describe(&own)
            },
        }
    } else {
        describe(&own)
    };
    Some(DirEntry { name, metadata })
}

/// The storage-level facts of a file system entry.
fn describe(metadata: &cap_std::fs::Metadata) -> Metadata {
    let kind = if metadata.is_dir() {
        EntryKind::Dir
    } else if metadata.is_symlink() {
        EntryKind::Symlink
    } else {
        // Devices, FIFOs and sockets show as files; reading or writing them is refused.
        EntryKind::File
    };
    Metadata {
        kind,
        size: metadata.len(),
        modified: Some(metadata.mtime()),
        mode: Some(metadata.mode() & 0o7777),
        unique: Some((metadata.dev(), metadata.ino())),
    }
}

/// The target of a write, if it exists: it must be a regular file. Blocking.
fn existing_file(dir: &Dir, path: &Path) -> StorageResult<Option<cap_std::fs::Metadata>> {
    match dir.metadata(path) {
        Ok(metadata) => {
            require_regular_file(&metadata)?;
            Ok(Some(metadata))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Whether `dir` lies on a file system whose metadata the kernel answers from its caches or a
/// local disk (see the module docs): the common local file systems, by their magic number.
#[cfg(target_os = "linux")]
fn is_local_file_system(dir: &Dir) -> bool {
    const LOCAL: [u64; 9] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0x794C_7630, // overlayfs (containers)
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0xCA45_1A4E, // bcachefs
    ];
    rustix::fs::fstatfs(dir)
        .is_ok_and(|stats| u64::try_from(stats.f_type).is_ok_and(|kind| LOCAL.contains(&kind)))
}

#[cfg(not(target_os = "linux"))]
fn is_local_file_system(_: &Dir) -> bool {
    false
}

/// Refuses an upload into a directory it could not create its temporary file in, before the
/// client sends a byte (read-only file system, no write permission). Blocking.
#[cfg(target_os = "linux")]
fn require_writable(parent: &Dir) -> StorageResult<()> {
    use rustix::fs::{Access, AtFlags};
    rustix::fs::accessat(
        parent,
        ".",
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(|error| io::Error::from(error).into())
}

#[cfg(not(target_os = "linux"))]
fn require_writable(_: &Dir) -> StorageResult<()> {
    Ok(())
}

/// Refuses directories and special files (a FIFO would block a thread forever).
fn require_regular_file(metadata: &cap_std::fs::Metadata) -> StorageResult<()> {
    if metadata.is_dir() {
        Err(StorageError::IsADirectory)
    } else if metadata.is_file() {
        Ok(())
    } else {
        Err(StorageError::PermissionDenied)
    }
}

fn refuse_root(path: &VirtualPath) -> StorageResult<()> {
    if path.is_root() {
        Err(StorageError::PermissionDenied)
    } else {
        Ok(())
    }
}

/// Upload temporary names belong to the storage: a client file under one would be invisible.
fn refuse_reserved_name(name: &str) -> StorageResult<()> {
    if name.starts_with(UPLOAD_TEMP_PREFIX) {
        Err(StorageError::InvalidName)
    } else {
        Ok(())
    }
}

/// The path cap-std resolves below the home: `.` for the home itself.
fn on_disk(path: &VirtualPath) -> PathBuf {
    if path.is_root() {
        PathBuf::from(".")
    } else {
        PathBuf::from(path.relative())
    }
}

fn system_time(unix_secs: i64) -> StorageResult<SystemTime> {
    let offset = Duration::from_secs(unix_secs.unsigned_abs());
    let time = if unix_secs >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    time.ok_or(StorageError::Unsupported(
        "a modification time that far from 1970",
    ))
}

async fn run_blocking<T, F>(op: F) -> StorageResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StorageResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(op).await.map_err(join_error)?
}

/// A blocking task that panicked or was cancelled at shutdown.
fn join_error(error: tokio::task::JoinError) -> StorageError {
    StorageError::Io(io::Error::other(error))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use futures_util::TryStreamExt;
    use tempfile::TempDir;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::storage::conformance::{Fixture, storage_conformance_tests};

    fn fixture() -> Fixture {
        let (storage, home) = storage_in_temp_dir();
        Fixture::new(storage, home)
    }

    storage_conformance_tests!(fixture());

    fn storage_in_temp_dir() -> (FsStorage, TempDir) {
        let home = TempDir::new().unwrap();
        (FsStorage::open(home.path()).unwrap(), home)
    }

    fn path(text: &str) -> VirtualPath {
        VirtualPath::parse(text).unwrap()
    }

    async fn put(storage: &dyn Storage, at: &str, content: &[u8]) {
        let mut upload = storage.write(&path(at), WriteMode::Replace).await.unwrap();
        upload.write_all(content).await.unwrap();
        upload.commit().await.unwrap();
    }

    async fn get(storage: &dyn Storage, at: &str) -> StorageResult<Vec<u8>> {
        let mut reader = storage.read(&path(at), 0).await?;
        let mut content = Vec::new();
        reader.read_to_end(&mut content).await?;
        Ok(content)
    }

    async fn list(storage: &dyn Storage, at: &str) -> StorageResult<Vec<DirEntry>> {
        let mut entries: Vec<DirEntry> = storage.list(&path(at)).await?.try_collect().await?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Names in a directory on disk, temporary files included.
    fn names_on_disk(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// cap-std reports every attempt to leave the home as `PermissionDenied`.
    fn is_escape_refused<T>(result: &StorageResult<T>) -> bool {
        matches!(result, Err(StorageError::PermissionDenied))
    }

    #[tokio::test]
    async fn an_upload_kept_in_memory_switches_to_the_file_when_it_grows() {
        let (storage, home) = storage_in_temp_dir();
        // Writes of an odd size, so one straddles the in-memory limit.
        let content: Vec<u8> = (0..SMALL_UPLOAD * 3 + 7).map(|i| (i % 241) as u8).collect();
        let mut upload = storage
            .write(&path("/grown.bin"), WriteMode::Replace)
            .await
            .unwrap();
        for chunk in content.chunks(1000) {
            upload.write_all(chunk).await.unwrap();
        }
        assert!(
            !home.path().join("grown.bin").exists(),
            "visible before the commit"
        );
        assert_eq!(upload.commit().await.unwrap(), content.len() as u64);
        assert_eq!(
            std::fs::read(home.path().join("grown.bin")).unwrap(),
            content
        );

        // A small one is written at the commit, whole; dropped, it leaves nothing.
        let mut small = storage
            .write(&path("/small.txt"), WriteMode::Replace)
            .await
            .unwrap();
        small.write_all(b"small").await.unwrap();
        small.flush().await.unwrap();
        drop(small);
        let names: Vec<_> = std::fs::read_dir(home.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["grown.bin"]);
    }

    #[tokio::test]
    async fn symlink_to_etc_cannot_be_read_listed_or_written_through() {
        let (storage, home) = storage_in_temp_dir();
        symlink("/etc", home.path().join("etc-link")).unwrap();
        symlink("/etc/passwd", home.path().join("passwd-link")).unwrap();

        let passwd = get(&storage, "/etc-link/passwd").await;
        assert!(is_escape_refused(&passwd), "{passwd:?}");
        let passwd = get(&storage, "/passwd-link").await;
        assert!(is_escape_refused(&passwd), "{passwd:?}");
        let listing = list(&storage, "/etc-link").await;
        assert!(is_escape_refused(&listing), "{listing:?}");
        assert!(is_escape_refused(
            &storage.metadata(&path("/etc-link/passwd")).await
        ));

        for mode in [
            WriteMode::Replace,
            WriteMode::CreateNew,
            WriteMode::Append,
            WriteMode::At(0),
        ] {
            let through_dir = storage.write(&path("/etc-link/ferry-test"), mode).await;
            assert!(
                is_escape_refused(&through_dir),
                "{mode:?} through a linked directory"
            );
            let onto_file = storage.write(&path("/passwd-link"), mode).await;
            assert!(is_escape_refused(&onto_file), "{mode:?} onto a linked file");
        }
        assert!(is_escape_refused(
            &storage.mkdir(&path("/etc-link/ferry-test")).await
        ));
        assert!(is_escape_refused(
            &storage.remove(&path("/etc-link/passwd")).await
        ));
        assert!(is_escape_refused(
            &storage.chmod(&path("/passwd-link"), 0o777).await
        ));
        assert!(is_escape_refused(
            &storage.set_modified(&path("/passwd-link"), 0).await
        ));
        assert!(!Path::new("/etc/ferry-test").exists());
    }

    #[tokio::test]
    async fn relative_symlink_climbing_out_is_escape_refused() {
        let outside = TempDir::new().unwrap();
        std::fs::write(outside.path().join("secret"), b"outside").unwrap();
        let home = outside.path().join("home");
        std::fs::create_dir(&home).unwrap();
        symlink("../secret", home.join("up-file")).unwrap();
        symlink("..", home.join("up-dir")).unwrap();
        let storage = FsStorage::open(&home).unwrap();

        assert!(is_escape_refused(&get(&storage, "/up-file").await));
        assert!(is_escape_refused(&get(&storage, "/up-dir/secret").await));
        assert!(is_escape_refused(&list(&storage, "/up-dir").await));
        let rename_out = storage
            .rename(&path("/up-dir/secret"), &path("/stolen"))
            .await;
        assert!(is_escape_refused(&rename_out), "{rename_out:?}");
        assert_eq!(
            std::fs::read(outside.path().join("secret")).unwrap(),
            b"outside"
        );
    }

    #[tokio::test]
    async fn escaping_and_dangling_symlinks_show_in_listings_as_symlinks() {
        let (storage, home) = storage_in_temp_dir();
        symlink("/etc", home.path().join("escaping")).unwrap();
        symlink("nowhere", home.path().join("dangling")).unwrap();
        put(&storage, "/file", b"x").await;

        let entries = list(&storage, "/").await.unwrap();
        let kinds: Vec<(&str, EntryKind, u64)> = entries
            .iter()
            .map(|entry| {
                (
                    entry.name.as_str(),
                    entry.metadata.kind,
                    entry.metadata.size,
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("dangling", EntryKind::Symlink, 0),
                ("escaping", EntryKind::Symlink, 0),
                ("file", EntryKind::File, 1),
            ]
        );
        // Such a link can still be removed, which removes the link only.
        storage.remove(&path("/escaping")).await.unwrap();
        assert!(Path::new("/etc").is_dir());
    }

    #[tokio::test]
    async fn symlinks_inside_the_home_work() {
        let (storage, home) = storage_in_temp_dir();
        storage.mkdir(&path("/real")).await.unwrap();
        put(&storage, "/real/file.txt", b"inside").await;
        symlink("real", home.path().join("alias-dir")).unwrap();
        symlink("real/file.txt", home.path().join("alias.txt")).unwrap();

        assert_eq!(get(&storage, "/alias.txt").await.unwrap(), b"inside");
        assert_eq!(
            get(&storage, "/alias-dir/file.txt").await.unwrap(),
            b"inside"
        );
        let listed = list(&storage, "/alias-dir").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "file.txt");
        put(&storage, "/alias-dir/new.txt", b"via link").await;
        assert_eq!(get(&storage, "/real/new.txt").await.unwrap(), b"via link");

        let entries = list(&storage, "/").await.unwrap();
        let alias = entries
            .iter()
            .find(|entry| entry.name == "alias.txt")
            .unwrap();
        assert_eq!(
            alias.metadata.kind,
            EntryKind::File,
            "a link shows its target"
        );
        assert_eq!(alias.metadata.size, 6);
        let alias_dir = entries
            .iter()
            .find(|entry| entry.name == "alias-dir")
            .unwrap();
        assert_eq!(alias_dir.metadata.kind, EntryKind::Dir);
    }

    #[tokio::test]
    async fn dot_dot_in_client_input_stays_inside_the_home() {
        let outside = TempDir::new().unwrap();
        std::fs::write(outside.path().join("secret"), b"outside").unwrap();
        let home = outside.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let storage = FsStorage::open(&home).unwrap();

        for weird in [
            "/../../etc/passwd",
            "../secret",
            "/a/../../secret",
            "/./../secret",
        ] {
            let normalised = VirtualPath::parse(weird).unwrap();
            let read = storage.read(&normalised, 0).await;
            assert!(matches!(read, Err(StorageError::NotFound)), "{weird}");
        }
        // Writing through such a path lands inside the home.
        put(&storage, "/../../secret", b"inside").await;
        assert_eq!(std::fs::read(home.join("secret")).unwrap(), b"inside");
        assert_eq!(
            std::fs::read(outside.path().join("secret")).unwrap(),
            b"outside"
        );
    }

    #[tokio::test]
    async fn upload_stages_in_a_hidden_temporary_file_that_an_abort_removes() {
        let (storage, home) = storage_in_temp_dir();
        put(&storage, "/file", b"old").await;
        let mut upload = storage
            .write(&path("/file"), WriteMode::Replace)
            .await
            .unwrap();
        // A small upload is kept in memory: nothing on disk yet.
        upload.write_all(b"partial").await.unwrap();
        upload.flush().await.unwrap();
        assert_eq!(names_on_disk(home.path()), ["file"]);
        // Past the in-memory limit, it goes to its temporary file.
        upload.write_all(&vec![7; SMALL_UPLOAD]).await.unwrap();
        upload.flush().await.unwrap();

        let on_disk = names_on_disk(home.path());
        assert_eq!(on_disk.len(), 2, "{on_disk:?}");
        assert!(on_disk[0].starts_with(UPLOAD_TEMP_PREFIX), "{on_disk:?}");
        let listed = list(&storage, "/").await.unwrap();
        assert_eq!(listed.len(), 1, "the temporary file is not listed");

        drop(upload);
        assert_eq!(names_on_disk(home.path()), ["file"]);
        assert_eq!(get(&storage, "/file").await.unwrap(), b"old");
    }

    #[tokio::test]
    async fn committed_uploads_leave_no_temporary_files() {
        let (storage, home) = storage_in_temp_dir();
        put(&storage, "/replaced", b"x").await;
        put(&storage, "/replaced", b"y").await;
        let mut upload = storage
            .write(&path("/unique"), WriteMode::CreateNew)
            .await
            .unwrap();
        upload.write_all(b"z").await.unwrap();
        upload.commit().await.unwrap();
        assert_eq!(names_on_disk(home.path()), ["replaced", "unique"]);
    }

    #[tokio::test]
    async fn temporary_upload_names_are_reserved() {
        let (storage, _home) = storage_in_temp_dir();
        let name = format!("/{UPLOAD_TEMP_PREFIX}sneaky");
        assert!(matches!(
            storage.write(&path(&name), WriteMode::Replace).await,
            Err(StorageError::InvalidName)
        ));
        assert!(matches!(
            storage.mkdir(&path(&name)).await,
            Err(StorageError::InvalidName)
        ));
        put(&storage, "/file", b"x").await;
        assert!(matches!(
            storage.rename(&path("/file"), &path(&name)).await,
            Err(StorageError::InvalidName)
        ));
    }

    #[tokio::test]
    async fn replacing_a_file_keeps_its_permission_bits() {
        let (storage, _home) = storage_in_temp_dir();
        put(&storage, "/deploy.sh", b"#!/bin/sh\n").await;
        storage.chmod(&path("/deploy.sh"), 0o750).await.unwrap();
        put(&storage, "/deploy.sh", b"#!/bin/sh\necho new\n").await;
        let metadata = storage.metadata(&path("/deploy.sh")).await.unwrap();
        assert_eq!(metadata.mode, Some(0o750));
    }

    #[tokio::test]
    async fn chmod_never_sets_setuid_setgid_or_sticky_bits() {
        let (storage, _home) = storage_in_temp_dir();
        put(&storage, "/tool", b"x").await;
        storage.chmod(&path("/tool"), 0o7755).await.unwrap();
        let metadata = storage.metadata(&path("/tool")).await.unwrap();
        assert_eq!(metadata.mode, Some(0o755));
    }

    #[tokio::test]
    async fn metadata_reports_mode_and_inode() {
        let (storage, home) = storage_in_temp_dir();
        put(&storage, "/file", b"x").await;
        let metadata = storage.metadata(&path("/file")).await.unwrap();
        let on_disk = std::fs::metadata(home.path().join("file")).unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(metadata.unique, Some((on_disk.dev(), on_disk.ino())));
        assert_eq!(metadata.mode, Some(on_disk.mode() & 0o7777));
        assert_eq!(metadata.modified, Some(on_disk.mtime()));
    }

    #[tokio::test]
    async fn special_files_are_listed_but_never_opened() {
        let (storage, home) = storage_in_temp_dir();
        let fifo = home.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|status| status.success()) {
            return; // No mkfifo here: nothing to test.
        }
        assert!(matches!(
            storage.read(&path("/pipe"), 0).await,
            Err(StorageError::PermissionDenied)
        ));
        assert!(matches!(
            storage.write(&path("/pipe"), WriteMode::Append).await,
            Err(StorageError::PermissionDenied)
        ));
        assert_eq!(list(&storage, "/").await.unwrap()[0].name, "pipe");
    }

    #[tokio::test]
    async fn provider_creates_relative_and_absolute_homes() {
        let root = TempDir::new().unwrap();
        let provider = FsProvider::new(root.path());

        let relative = provider.open("users/alice").await.unwrap();
        put(&*relative, "/hello", b"alice").await;
        assert_eq!(
            std::fs::read(root.path().join("users/alice/hello")).unwrap(),
            b"alice"
        );

        let elsewhere = TempDir::new().unwrap();
        let absolute_home = elsewhere.path().join("shared/site");
        let absolute = provider
            .open(absolute_home.to_str().unwrap())
            .await
            .unwrap();
        put(&*absolute, "/index.html", b"site").await;
        assert_eq!(
            std::fs::read(absolute_home.join("index.html")).unwrap(),
            b"site"
        );

        // An existing home opens as it is.
        let again = provider.open("users/alice").await.unwrap();
        assert_eq!(get(&*again, "/hello").await.unwrap(), b"alice");
    }

    #[tokio::test]
    async fn provider_refuses_relative_homes_that_climb_out_of_the_root() {
        let root = TempDir::new().unwrap();
        let provider = FsProvider::new(root.path().join("ftp-root"));
        assert!(matches!(
            provider.open("../elsewhere").await,
            Err(StorageError::InvalidName)
        ));
        assert!(!root.path().join("elsewhere").exists());
    }

    #[tokio::test]
    async fn dropping_a_listing_early_stops_the_reader() {
        let (storage, _home) = storage_in_temp_dir();
        for index in 0..(LIST_BATCH_LEN * (LIST_BATCHES_AHEAD + 3)) {
            std::fs::write(_home.path().join(format!("{index}")), b"").unwrap();
        }
        let mut stream = storage.list(&VirtualPath::root()).await.unwrap();
        use futures_util::StreamExt as _;
        assert!(stream.next().await.unwrap().is_ok());
        drop(stream);
        // The reader notices the closed channel and ends; the storage stays usable.
        assert_eq!(
            list(&storage, "/").await.unwrap().len(),
            LIST_BATCH_LEN * (LIST_BATCHES_AHEAD + 3)
        );
    }
}
