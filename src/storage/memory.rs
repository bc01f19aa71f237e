//! An in-memory [`Storage`]: a tree of directories and files behind one mutex.
//!
//! For tests and for servers that need no disk. It follows the fs backend operation for
//! operation and error for error (the conformance suite holds both to that), with two
//! documented differences: every upload, `Append` and `At` included, is buffered in the upload and
//! applied at [`Upload::commit`] (so a dropped `Append`/`At` upload changes nothing), and there are
//! no permission bits, so `chmod` is not offered.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use tokio::io::AsyncWrite;

use super::{
    Capabilities, DirEntry, DirStream, EntryKind, FileReader, Metadata, StagedUpload, Storage,
    StorageError, StorageProvider, StorageResult, Upload, WriteMode,
};
use crate::protocol::VirtualPath;

/// One tree shared by every storage a provider opens, so users whose homes overlap see each
/// other's files, as they would on disk.
type SharedTree = Arc<Mutex<Tree>>;

/// Opens views of one shared in-memory tree, each rooted at a user's home.
#[derive(Debug, Clone, Default)]
pub struct MemoryProvider {
    tree: SharedTree,
}

impl MemoryProvider {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl StorageProvider for MemoryProvider {
    fn capabilities(&self) -> Capabilities {
        MemoryStorage::CAPABILITIES
    }

    async fn open(&self, home: &str) -> StorageResult<Arc<dyn Storage>> {
        // Absolute and relative homes mean the same here: the tree has no other root.
        let home = VirtualPath::parse(home).map_err(|_| StorageError::InvalidName)?;
        let home: Vec<String> = home.components().map(str::to_owned).collect();
        lock(&self.tree).create_dir_all(&home)?;
        Ok(Arc::new(MemoryStorage {
            tree: Arc::clone(&self.tree),
            home,
        }))
    }
}

/// One user's view of an in-memory tree.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    tree: SharedTree,
    /// Where the view's `/` lies in the tree.
    home: Vec<String>,
}

impl MemoryStorage {
    /// An empty storage of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// `path` as components from the root of the tree.
    fn in_tree<'a>(&'a self, path: &'a VirtualPath) -> Vec<&'a str> {
        self.home
            .iter()
            .map(String::as_str)
            .chain(path.components())
            .collect()
    }
}

impl MemoryStorage {
    /// Everything the trait offers, but Unix permissions (the tree keeps none).
    pub const CAPABILITIES: Capabilities = Capabilities {
        append: true,
        write_at_offset: true,
        read_at_offset: true,
        set_modified: true,
        chmod: false,
        hash: true,
    };
}

#[async_trait]
impl Storage for MemoryStorage {
    fn capabilities(&self) -> Capabilities {
        MemoryStorage::CAPABILITIES
    }

    async fn metadata(&self, path: &VirtualPath) -> StorageResult<Metadata> {
        Ok(lock(&self.tree).node(&self.in_tree(path))?.metadata())
    }

    async fn list(&self, path: &VirtualPath) -> StorageResult<DirStream> {
        let tree = lock(&self.tree);
        let Node::Dir(dir) = tree.node(&self.in_tree(path))? else {
            return Err(StorageError::NotADirectory);
        };
        // A snapshot: the whole tree is in memory anyway, and the lock must not outlive this call.
        let entries: Vec<StorageResult<DirEntry>> = dir
            .entries
            .iter()
            .map(|(name, node)| {
                Ok(DirEntry {
                    name: name.clone(),
                    metadata: node.metadata(),
                })
            })
            .collect();
        Ok(stream::iter(entries).boxed())
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> StorageResult<FileReader> {
        let tree = lock(&self.tree);
        let Node::File(file) = tree.node(&self.in_tree(path))? else {
            return Err(StorageError::IsADirectory);
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(file.content.len());
        // `Bytes::slice` shares the buffer: a snapshot without a copy.
        Ok(Box::new(io::Cursor::new(file.content.slice(start..))))
    }

    async fn write(&self, path: &VirtualPath, mode: WriteMode) -> StorageResult<Box<dyn Upload>> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let target = self.in_tree(path);
        let tree = lock(&self.tree);
        // Everything commit would refuse is refused here too, before the client sends a byte.
        tree.check_write(&target, mode)?;
        let replaces_file =
            mode == WriteMode::Replace && matches!(tree.node(&target), Ok(Node::File(_)));
        drop(tree);
        Ok(Box::new(MemoryUpload {
            tree: Arc::clone(&self.tree),
            target: target.into_iter().map(str::to_owned).collect(),
            mode,
            buffer: Vec::new(),
            replaces_file,
        }))
    }

    async fn mkdir(&self, path: &VirtualPath) -> StorageResult<()> {
        if path.is_root() {
            return Err(StorageError::AlreadyExists);
        }
        let target = self.in_tree(path);
        let (parent, name) = split_last(&target).ok_or(StorageError::AlreadyExists)?;
        let mut tree = lock(&self.tree);
        let id = tree.allocate_id();
        let parent = tree.dir_mut(&parent)?;
        if parent.entries.contains_key(name) {
            return Err(StorageError::AlreadyExists);
        }
        parent.insert(name, Node::Dir(DirNode::new(id)));
        Ok(())
    }

    async fn rmdir(&self, path: &VirtualPath) -> StorageResult<()> {
        refuse_root(path)?;
        let target = self.in_tree(path);
        let mut tree = lock(&self.tree);
        match tree.node(&target)? {
            Node::File(_) => return Err(StorageError::NotADirectory),
            Node::Dir(dir) if !dir.entries.is_empty() => {
                return Err(StorageError::DirectoryNotEmpty);
            }
            Node::Dir(_) => {}
        }
        tree.detach(&target)?;
        Ok(())
    }

    async fn remove(&self, path: &VirtualPath) -> StorageResult<()> {
        refuse_root(path)?;
        let target = self.in_tree(path);
        let mut tree = lock(&self.tree);
        if let Node::Dir(_) = tree.node(&target)? {
            return Err(StorageError::IsADirectory);
        }
        tree.detach(&target)?;
        Ok(())
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> StorageResult<()> {
        refuse_root(from)?;
        refuse_root(to)?;
        let (source, target) = (self.in_tree(from), self.in_tree(to));
        let mut tree = lock(&self.tree);
        let moving_dir = matches!(tree.node(&source)?, Node::Dir(_));
        if from == to {
            return Ok(()); // As rename(2): the same name is a successful no-op.
        }
        if to.starts_with(from) {
            return Err(StorageError::InvalidName); // Same answer as the fs backend.
        }
        let (target_parent, target_name) = split_last(&target).ok_or(StorageError::NotFound)?;
        // rename(2)'s rules for an existing target: a file replaces a file, a directory an empty
        // directory.
        match (
            moving_dir,
            tree.dir(&target_parent)?.entries.get(target_name),
        ) {
            (_, None) => {}
            (false, Some(Node::File(_))) => {}
            (false, Some(Node::Dir(_))) => return Err(StorageError::IsADirectory),
            (true, Some(Node::File(_))) => return Err(StorageError::NotADirectory),
            (true, Some(Node::Dir(dir))) if !dir.entries.is_empty() => {
                return Err(StorageError::DirectoryNotEmpty);
            }
            (true, Some(Node::Dir(_))) => {}
        }
        // Both ends were checked under this lock and the target does not lie inside the source,
        // so neither step below can fail half way.
        let node = tree.detach(&source)?;
        tree.dir_mut(&target_parent)?.insert(target_name, node);
        Ok(())
    }

    async fn set_modified(&self, path: &VirtualPath, unix_secs: i64) -> StorageResult<()> {
        let mut tree = lock(&self.tree);
        match tree.node_mut(&self.in_tree(path))? {
            Node::File(file) => file.modified = unix_secs,
            Node::Dir(dir) => dir.modified = unix_secs,
        }
        Ok(())
    }
}

/// An upload held in memory until [`Upload::commit`] applies it to the tree.
#[derive(Debug)]
pub struct MemoryUpload {
    tree: SharedTree,
    target: Vec<String>,
    mode: WriteMode,
    buffer: Vec<u8>,
    replaces_file: bool,
}

#[async_trait]
impl Upload for MemoryUpload {
    fn replaces_file(&self) -> bool {
        self.replaces_file
    }

    /// A replacement's size is its own; the tree changes only at [`StagedUpload::publish`].
    fn can_stage(&self) -> bool {
        self.mode == WriteMode::Replace
    }

    async fn stage(self: Box<Self>) -> StorageResult<(u64, Box<dyn StagedUpload>)> {
        if !self.can_stage() {
            return Err(StorageError::Unsupported("staging appends"));
        }
        Ok((self.buffer.len() as u64, Box::new(StagedMemoryUpload(self))))
    }

    async fn commit(self: Box<Self>) -> StorageResult<u64> {
        let target: Vec<&str> = self.target.iter().map(String::as_str).collect();
        let mut tree = lock(&self.tree);
        // The tree may have changed since the upload began: check again under the lock.
        tree.check_write(&target, self.mode)?;
        let (parent, name) = split_last(&target).ok_or(StorageError::IsADirectory)?;
        let id = tree.allocate_id();
        let parent = tree.dir_mut(&parent)?;
        let kept = match (self.mode, parent.entries.get(name)) {
            (WriteMode::Append, Some(Node::File(old))) => old.content.as_ref(),
            (WriteMode::At(offset), Some(Node::File(old))) => {
                // `check_write` guarantees `offset <= len`, which fits in usize.
                &old.content[..usize::try_from(offset).unwrap_or(usize::MAX)]
            }
            _ => &[],
        };
        let mut content = Vec::with_capacity(kept.len() + self.buffer.len());
        content.extend_from_slice(kept);
        content.extend_from_slice(&self.buffer);
        let size = content.len() as u64;
        let file = FileNode {
            content: Bytes::from(content),
            modified: now(),
            // A replacement is a new file, as a rename over the old one is on disk.
            id: match (self.mode, parent.entries.get(name)) {
                (WriteMode::Append | WriteMode::At(_), Some(Node::File(old))) => old.id,
                _ => id,
            },
        };
        parent.insert(name, Node::File(file));
        Ok(size)
    }
}

/// A replacement waiting to be applied to the tree.
struct StagedMemoryUpload(Box<MemoryUpload>);

#[async_trait]
impl StagedUpload for StagedMemoryUpload {
    async fn publish(self: Box<Self>) -> StorageResult<()> {
        self.0.commit().await.map(|_| ())
    }
}

impl AsyncWrite for MemoryUpload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.buffer.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The whole in-memory file system.
#[derive(Debug)]
struct Tree {
    root: Node,
    /// The next value for the MLSD `unique` fact.
    next_id: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self {
            root: Node::Dir(DirNode::new(0)),
            next_id: 1,
        }
    }
}

impl Tree {
    fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The node at `path`. As on disk, a file in the middle of a path is `NotADirectory`.
    fn node(&self, path: &[&str]) -> StorageResult<&Node> {
        let mut node = &self.root;
        for name in path {
            let Node::Dir(dir) = node else {
                return Err(StorageError::NotADirectory);
            };
            node = dir.entries.get(*name).ok_or(StorageError::NotFound)?;
        }
        Ok(node)
    }

    fn node_mut(&mut self, path: &[&str]) -> StorageResult<&mut Node> {
        let mut node = &mut self.root;
        for name in path {
            let Node::Dir(dir) = node else {
                return Err(StorageError::NotADirectory);
            };
            node = dir.entries.get_mut(*name).ok_or(StorageError::NotFound)?;
        }
        Ok(node)
    }

    fn dir(&self, path: &[&str]) -> StorageResult<&DirNode> {
        match self.node(path)? {
            Node::Dir(dir) => Ok(dir),
            Node::File(_) => Err(StorageError::NotADirectory),
        }
    }

    fn dir_mut(&mut self, path: &[&str]) -> StorageResult<&mut DirNode> {
        match self.node_mut(path)? {
            Node::Dir(dir) => Ok(dir),
            Node::File(_) => Err(StorageError::NotADirectory),
        }
    }

    /// Takes the node at `path` out of its parent.
    fn detach(&mut self, path: &[&str]) -> StorageResult<Node> {
        let (parent, name) = split_last(path).ok_or(StorageError::PermissionDenied)?;
        let parent = self.dir_mut(&parent)?;
        let node = parent.entries.remove(name).ok_or(StorageError::NotFound)?;
        parent.modified = now();
        Ok(node)
    }

    fn create_dir_all(&mut self, path: &[String]) -> StorageResult<()> {
        for depth in 1..=path.len() {
            let id = self.allocate_id();
            let prefix: Vec<&str> = path[..depth].iter().map(String::as_str).collect();
            let (parent, name) = split_last(&prefix).ok_or(StorageError::NotFound)?;
            let parent = self.dir_mut(&parent)?;
            if !parent.entries.contains_key(name) {
                parent.insert(name, Node::Dir(DirNode::new(id)));
            }
        }
        // The last component may have existed as a file.
        self.dir(&path.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(())
    }

    /// Whether an upload in `mode` may write `target`, with the fs backend's answers.
    fn check_write(&self, target: &[&str], mode: WriteMode) -> StorageResult<()> {
        let (parent, name) = split_last(target).ok_or(StorageError::IsADirectory)?;
        match (mode, self.dir(&parent)?.entries.get(name)) {
            (_, Some(Node::Dir(_))) => Err(StorageError::IsADirectory),
            (WriteMode::CreateNew, Some(_)) => Err(StorageError::AlreadyExists),
            (WriteMode::At(offset), None) if offset > 0 => Err(StorageError::NotFound),
            (WriteMode::At(offset), Some(Node::File(file)))
                if offset > file.content.len() as u64 =>
            {
                Err(StorageError::InvalidOffset(offset))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

impl Node {
    fn metadata(&self) -> Metadata {
        let (kind, size, modified, id) = match self {
            Node::File(file) => (
                EntryKind::File,
                file.content.len() as u64,
                file.modified,
                file.id,
            ),
            Node::Dir(dir) => (EntryKind::Dir, 0, dir.modified, dir.id),
        };
        Metadata {
            kind,
            size,
            modified: Some(modified),
            mode: None,
            unique: Some((0, id)),
        }
    }
}

#[derive(Debug)]
struct FileNode {
    content: Bytes,
    /// Unix seconds.
    modified: i64,
    id: u64,
}

#[derive(Debug)]
struct DirNode {
    entries: BTreeMap<String, Node>,
    /// Unix seconds; changes when an entry is added or removed, as on disk.
    modified: i64,
    id: u64,
}

impl DirNode {
    fn new(id: u64) -> Self {
        Self {
            entries: BTreeMap::new(),
            modified: now(),
            id,
        }
    }

    fn insert(&mut self, name: &str, node: Node) {
        self.entries.insert(name.to_owned(), node);
        self.modified = now();
    }
}

/// Locks the tree. A panic while it was held cannot have left it half changed (every change is
/// one map operation), so a poisoned lock is still good to use.
fn lock(tree: &Mutex<Tree>) -> MutexGuard<'_, Tree> {
    tree.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A path's parent and last component; `None` for the root.
fn split_last<'a>(path: &[&'a str]) -> Option<(Vec<&'a str>, &'a str)> {
    let (name, parent) = path.split_last()?;
    Some((parent.to_vec(), name))
}

fn refuse_root(path: &VirtualPath) -> StorageResult<()> {
    if path.is_root() {
        Err(StorageError::PermissionDenied)
    } else {
        Ok(())
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::storage::conformance::{Fixture, storage_conformance_tests};

    storage_conformance_tests!(Fixture::new(MemoryStorage::new(), ()));

    fn path(text: &str) -> VirtualPath {
        VirtualPath::parse(text).unwrap()
    }

    async fn put(storage: &dyn Storage, at: &str, content: &[u8]) {
        let mut upload = storage.write(&path(at), WriteMode::Replace).await.unwrap();
        upload.write_all(content).await.unwrap();
        upload.commit().await.unwrap();
    }

    #[tokio::test]
    async fn provider_homes_are_views_of_one_tree() {
        let provider = MemoryProvider::new();
        let everything = provider.open("/").await.unwrap();
        let alice = provider.open("users/alice").await.unwrap();
        put(&*alice, "/note", b"from alice").await;

        let seen_from_root = everything.metadata(&path("/users/alice/note")).await;
        assert_eq!(seen_from_root.unwrap().size, 10);
        // An absolute home names the same place.
        let again = provider.open("/users/alice").await.unwrap();
        assert!(again.metadata(&path("/note")).await.unwrap().is_file());
    }

    #[tokio::test]
    async fn provider_refuses_a_home_below_a_file() {
        let provider = MemoryProvider::new();
        let root = provider.open("").await.unwrap();
        put(&*root, "/file", b"x").await;
        assert!(matches!(
            provider.open("file/home").await,
            Err(StorageError::NotADirectory)
        ));
        assert!(matches!(
            provider.open("file").await,
            Err(StorageError::NotADirectory)
        ));
    }

    #[tokio::test]
    async fn dropped_append_upload_changes_nothing() {
        // Documented difference from the fs backend, where appended bytes land as they come.
        let storage = MemoryStorage::new();
        put(&storage, "/log", b"kept").await;
        let mut upload = storage
            .write(&path("/log"), WriteMode::Append)
            .await
            .unwrap();
        upload.write_all(b" lost").await.unwrap();
        drop(upload);
        assert_eq!(storage.metadata(&path("/log")).await.unwrap().size, 4);
    }

    #[tokio::test]
    async fn append_and_at_keep_the_file_identity() {
        let storage = MemoryStorage::new();
        put(&storage, "/file", b"abc").await;
        let before = storage.metadata(&path("/file")).await.unwrap().unique;
        let mut upload = storage
            .write(&path("/file"), WriteMode::Append)
            .await
            .unwrap();
        upload.write_all(b"d").await.unwrap();
        upload.commit().await.unwrap();
        assert_eq!(
            storage.metadata(&path("/file")).await.unwrap().unique,
            before
        );
    }
}
