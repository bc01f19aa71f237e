//! The behaviour every [`Storage`] backend must show, as one suite each backend runs.
//!
//! A backend's test module calls `storage_conformance_tests!(fixture())`, where the expression
//! (which may `.await`) builds a fresh, empty [`Fixture`]; the macro expands to one
//! `#[tokio::test]` per behaviour, so a failure names what broke. The tests themselves are plain
//! async functions below. What a backend's [`Capabilities`](super::Capabilities) leave out
//! (append, writing at an offset, setting times) must fail with `Unsupported` and change nothing.

use std::any::Any;
use std::sync::Arc;

use futures_util::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Storage, StorageError, WriteMode};
use crate::protocol::{ReplyCode, VirtualPath};

/// A fresh, empty storage and whatever must live as long as it (a temporary directory).
pub(crate) struct Fixture {
    storage: Arc<dyn Storage>,
    _keep_alive: Box<dyn Any + Send>,
}

impl Fixture {
    pub(crate) fn new(storage: impl Storage + 'static, keep_alive: impl Any + Send) -> Self {
        Self::shared(Arc::new(storage), keep_alive)
    }

    /// A fixture around a storage a provider opened.
    pub(crate) fn shared(storage: Arc<dyn Storage>, keep_alive: impl Any + Send) -> Self {
        Self {
            storage,
            _keep_alive: Box::new(keep_alive),
        }
    }

    pub(crate) fn storage(&self) -> &dyn Storage {
        &*self.storage
    }
}

/// Expands to one `#[tokio::test]` per behaviour of the suite; `$fixture` builds a [`Fixture`].
macro_rules! storage_conformance_tests {
    ($fixture:expr) => {
        $crate::storage::conformance::storage_conformance_tests!(@each $fixture;
            write_commit_read_round_trip,
            commit_returns_the_size,
            zero_byte_file,
            large_streamed_file_reads_back_identical,
            replace_keeps_old_content_visible_until_commit,
            an_upload_says_whether_it_replaces_a_file,
            a_staged_upload_stays_invisible_until_published,
            download_gives_the_metadata_with_the_bytes,
            dropped_replace_upload_leaves_old_content_and_no_entries,
            dropped_upload_of_a_new_file_leaves_nothing,
            create_new_writes_a_fresh_name,
            create_new_on_an_existing_name_fails,
            create_new_fails_at_commit_if_the_name_was_taken_meanwhile,
            append_creates_then_appends,
            write_at_offset_keeps_the_head_and_cuts_the_tail,
            write_at_offset_beyond_the_end_is_invalid_offset,
            write_at_offset_of_a_missing_file,
            read_at_offset,
            read_of_a_directory_or_missing_file_fails,
            write_to_a_directory_or_the_root_is_a_directory,
            write_with_a_missing_parent_is_not_found,
            path_through_a_file_is_not_a_directory,
            metadata_of_file_dir_and_missing,
            new_file_has_a_recent_modification_time,
            list_shows_files_and_dirs_with_unusual_names,
            list_of_many_entries_is_complete,
            list_of_a_file_or_missing_dir_fails,
            mkdir_of_an_existing_name_is_already_exists,
            mkdir_with_a_missing_parent_is_not_found,
            rmdir_removes_an_empty_directory_only,
            remove_removes_files_only,
            rename_file_over_an_existing_file,
            rename_directory_with_its_contents,
            rename_of_a_missing_name_is_not_found,
            rename_to_the_same_name_is_a_no_op,
            rename_directory_into_itself_is_refused,
            rename_file_over_a_directory_is_refused,
            root_cannot_be_removed_or_renamed,
            set_modified_shows_in_metadata,
            errors_map_to_reply_codes,
        );
    };
    (@each $fixture:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $behaviour() {
                let fixture = $fixture;
                $crate::storage::conformance::$behaviour(fixture.storage()).await;
            }
        )*
    };
}
pub(crate) use storage_conformance_tests;

/// Asserts that `$result` is an `Err` matching `$pattern`.
macro_rules! assert_fails {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err(error) => assert!(
                matches!(error, $pattern),
                "expected {}, got {error:?}",
                stringify!($pattern)
            ),
            Ok(_) => panic!("expected {}, got success", stringify!($pattern)),
        }
    };
}

fn path(text: &str) -> VirtualPath {
    VirtualPath::parse(text).expect("test paths are valid")
}

/// The write modes `storage` offers: `Replace` and `CreateNew` always, `Append` and `At` when its
/// capabilities say so.
fn offered_modes(storage: &dyn Storage) -> Vec<WriteMode> {
    let capabilities = storage.capabilities();
    let mut modes = vec![WriteMode::Replace, WriteMode::CreateNew];
    if capabilities.append {
        modes.push(WriteMode::Append);
    }
    if capabilities.write_at_offset {
        modes.push(WriteMode::At(0));
    }
    modes
}

/// Uploads `content` to `at` with `Replace` and commits.
async fn put(storage: &dyn Storage, at: &str, content: &[u8]) {
    write_with(storage, at, WriteMode::Replace, content).await;
}

async fn write_with(storage: &dyn Storage, at: &str, mode: WriteMode, content: &[u8]) -> u64 {
    let mut upload = storage.write(&path(at), mode).await.expect("open upload");
    upload.write_all(content).await.expect("write upload");
    upload.commit().await.expect("commit upload")
}

async fn get(storage: &dyn Storage, at: &str) -> Vec<u8> {
    get_from(storage, at, 0).await
}

async fn get_from(storage: &dyn Storage, at: &str, offset: u64) -> Vec<u8> {
    let mut reader = storage.read(&path(at), offset).await.expect("open read");
    let mut content = Vec::new();
    reader.read_to_end(&mut content).await.expect("read");
    content
}

/// The names in a directory, sorted.
async fn names(storage: &dyn Storage, at: &str) -> Vec<String> {
    let stream = storage.list(&path(at)).await.expect("list");
    let entries: Vec<_> = stream.try_collect().await.expect("list entries");
    let mut names: Vec<String> = entries.into_iter().map(|entry| entry.name).collect();
    names.sort();
    names
}

pub(crate) async fn write_commit_read_round_trip(storage: &dyn Storage) {
    put(storage, "/hello.txt", b"hello, world\n").await;
    assert_eq!(get(storage, "/hello.txt").await, b"hello, world\n");
}

pub(crate) async fn commit_returns_the_size(storage: &dyn Storage) {
    assert_eq!(
        write_with(storage, "/a", WriteMode::Replace, b"12345").await,
        5
    );
    if storage.capabilities().append {
        assert_eq!(
            write_with(storage, "/a", WriteMode::Append, b"678").await,
            8
        );
    }
}

pub(crate) async fn zero_byte_file(storage: &dyn Storage) {
    put(storage, "/empty", b"").await;
    assert_eq!(get(storage, "/empty").await, b"");
    let metadata = storage.metadata(&path("/empty")).await.unwrap();
    assert!(metadata.is_file());
    assert_eq!(metadata.size, 0);
    assert_eq!(names(storage, "/").await, ["empty"]);
}

pub(crate) async fn large_streamed_file_reads_back_identical(storage: &dyn Storage) {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 128; // 8 MiB
    let chunk_of = |index: usize| -> Vec<u8> {
        (0..CHUNK)
            .map(|byte| (byte.wrapping_mul(31) ^ index.wrapping_mul(7)) as u8)
            .collect()
    };
    let mut upload = storage
        .write(&path("/big.bin"), WriteMode::Replace)
        .await
        .unwrap();
    for index in 0..CHUNKS {
        upload.write_all(&chunk_of(index)).await.unwrap();
    }
    assert_eq!(upload.commit().await.unwrap(), (CHUNK * CHUNKS) as u64);

    let mut reader = storage.read(&path("/big.bin"), 0).await.unwrap();
    let mut chunk = vec![0; CHUNK];
    for index in 0..CHUNKS {
        reader.read_exact(&mut chunk).await.unwrap();
        assert!(chunk == chunk_of(index), "chunk {index} differs");
    }
    assert_eq!(reader.read(&mut chunk).await.unwrap(), 0, "nothing after");
}

pub(crate) async fn replace_keeps_old_content_visible_until_commit(storage: &dyn Storage) {
    put(storage, "/page.html", b"old").await;
    let mut upload = storage
        .write(&path("/page.html"), WriteMode::Replace)
        .await
        .unwrap();
    upload.write_all(b"new content").await.unwrap();
    upload.flush().await.unwrap();
    assert_eq!(get(storage, "/page.html").await, b"old");
    assert_eq!(names(storage, "/").await, ["page.html"]);
    upload.commit().await.unwrap();
    assert_eq!(get(storage, "/page.html").await, b"new content");
    assert_eq!(names(storage, "/").await, ["page.html"]);
}

pub(crate) async fn an_upload_says_whether_it_replaces_a_file(storage: &dyn Storage) {
    put(storage, "/old.txt", b"old").await;
    let replacing = storage
        .write(&path("/old.txt"), WriteMode::Replace)
        .await
        .unwrap();
    assert!(replacing.replaces_file());
    let fresh = storage
        .write(&path("/new.txt"), WriteMode::Replace)
        .await
        .unwrap();
    assert!(!fresh.replaces_file());
}

/// Where staging is offered: every byte stored, nothing visible until the publish, nothing left
/// by a staged upload that is dropped.
pub(crate) async fn a_staged_upload_stays_invisible_until_published(storage: &dyn Storage) {
    put(storage, "/page.html", b"old").await;
    let mut upload = storage
        .write(&path("/page.html"), WriteMode::Replace)
        .await
        .unwrap();
    if !upload.can_stage() {
        return;
    }
    upload.write_all(b"new content").await.unwrap();
    let (size, staged) = upload.stage().await.unwrap();
    assert_eq!(size, 11);
    assert_eq!(get(storage, "/page.html").await, b"old");
    assert_eq!(names(storage, "/").await, ["page.html"]);
    staged.publish().await.unwrap();
    assert_eq!(get(storage, "/page.html").await, b"new content");

    let mut abandoned = storage
        .write(&path("/page.html"), WriteMode::Replace)
        .await
        .unwrap();
    abandoned.write_all(b"from a killed client").await.unwrap();
    let (_, staged) = abandoned.stage().await.unwrap();
    drop(staged);
    assert_eq!(get(storage, "/page.html").await, b"new content");
    assert_eq!(names(storage, "/").await, ["page.html"]);
}

pub(crate) async fn download_gives_the_metadata_with_the_bytes(storage: &dyn Storage) {
    put(storage, "/file.bin", b"0123456789").await;
    let download = storage.download(&path("/file.bin"), 4).await.unwrap();
    assert!(download.metadata.is_file());
    assert_eq!(download.metadata.size, 10);
    let mut content = Vec::new();
    match download.source {
        super::DownloadSource::Local(file) => {
            let mut file = tokio::fs::File::from_std(file);
            file.read_to_end(&mut content).await.unwrap();
        }
        super::DownloadSource::Stream(mut reader) => {
            reader.read_to_end(&mut content).await.unwrap();
        }
    }
    assert_eq!(content, b"456789");
    storage.mkdir(&path("/dir")).await.unwrap();
    assert_fails!(
        storage.download(&path("/dir"), 0).await,
        StorageError::IsADirectory
    );
    assert_fails!(
        storage.download(&path("/missing"), 0).await,
        StorageError::NotFound
    );
}

pub(crate) async fn dropped_replace_upload_leaves_old_content_and_no_entries(
    storage: &dyn Storage,
) {
    put(storage, "/page.html", b"old").await;
    let mut upload = storage
        .write(&path("/page.html"), WriteMode::Replace)
        .await
        .unwrap();
    upload.write_all(b"half of the new").await.unwrap();
    upload.flush().await.unwrap();
    drop(upload);
    assert_eq!(get(storage, "/page.html").await, b"old");
    assert_eq!(names(storage, "/").await, ["page.html"]);
}

pub(crate) async fn dropped_upload_of_a_new_file_leaves_nothing(storage: &dyn Storage) {
    storage.mkdir(&path("/dir")).await.unwrap();
    for mode in [WriteMode::Replace, WriteMode::CreateNew] {
        let mut upload = storage.write(&path("/dir/new"), mode).await.unwrap();
        upload.write_all(b"abandoned").await.unwrap();
        drop(upload);
    }
    assert_fails!(
        storage.metadata(&path("/dir/new")).await,
        StorageError::NotFound
    );
    assert!(names(storage, "/dir").await.is_empty());
    storage.rmdir(&path("/dir")).await.unwrap();
}

pub(crate) async fn create_new_writes_a_fresh_name(storage: &dyn Storage) {
    write_with(storage, "/unique", WriteMode::CreateNew, b"first").await;
    assert_eq!(get(storage, "/unique").await, b"first");
    assert_eq!(names(storage, "/").await, ["unique"]);
}

pub(crate) async fn create_new_on_an_existing_name_fails(storage: &dyn Storage) {
    put(storage, "/taken", b"mine").await;
    assert_fails!(
        storage.write(&path("/taken"), WriteMode::CreateNew).await,
        StorageError::AlreadyExists
    );
    assert_eq!(get(storage, "/taken").await, b"mine");
}

pub(crate) async fn create_new_fails_at_commit_if_the_name_was_taken_meanwhile(
    storage: &dyn Storage,
) {
    let mut upload = storage
        .write(&path("/contested"), WriteMode::CreateNew)
        .await
        .unwrap();
    upload.write_all(b"second").await.unwrap();
    put(storage, "/contested", b"first").await;
    assert_fails!(upload.commit().await, StorageError::AlreadyExists);
    assert_eq!(get(storage, "/contested").await, b"first");
    assert_eq!(names(storage, "/").await, ["contested"]);
}

pub(crate) async fn append_creates_then_appends(storage: &dyn Storage) {
    if !storage.capabilities().append {
        put(storage, "/log", b"one\n").await;
        assert_fails!(
            storage.write(&path("/log"), WriteMode::Append).await,
            StorageError::Unsupported(_)
        );
        assert_fails!(
            storage.write(&path("/new"), WriteMode::Append).await,
            StorageError::Unsupported(_)
        );
        assert_eq!(get(storage, "/log").await, b"one\n");
        assert_eq!(names(storage, "/").await, ["log"]);
        return;
    }
    write_with(storage, "/log", WriteMode::Append, b"one\n").await;
    assert_eq!(get(storage, "/log").await, b"one\n");
    write_with(storage, "/log", WriteMode::Append, b"two\n").await;
    assert_eq!(get(storage, "/log").await, b"one\ntwo\n");
}

pub(crate) async fn write_at_offset_keeps_the_head_and_cuts_the_tail(storage: &dyn Storage) {
    put(storage, "/resume", b"0123456789").await;
    if !storage.capabilities().write_at_offset {
        for offset in [4, 10] {
            assert_fails!(
                storage.write(&path("/resume"), WriteMode::At(offset)).await,
                StorageError::Unsupported(_)
            );
        }
        assert_eq!(get(storage, "/resume").await, b"0123456789");
        return;
    }
    assert_eq!(
        write_with(storage, "/resume", WriteMode::At(4), b"ab").await,
        6
    );
    assert_eq!(get(storage, "/resume").await, b"0123ab");
    // At the very end: a plain continuation.
    write_with(storage, "/resume", WriteMode::At(6), b"XYZ").await;
    assert_eq!(get(storage, "/resume").await, b"0123abXYZ");
    // At 0: the whole file is rewritten.
    write_with(storage, "/resume", WriteMode::At(0), b"z").await;
    assert_eq!(get(storage, "/resume").await, b"z");
}

pub(crate) async fn write_at_offset_beyond_the_end_is_invalid_offset(storage: &dyn Storage) {
    put(storage, "/short", b"abc").await;
    if storage.capabilities().write_at_offset {
        assert_fails!(
            storage.write(&path("/short"), WriteMode::At(4)).await,
            StorageError::InvalidOffset(4)
        );
    } else {
        assert_fails!(
            storage.write(&path("/short"), WriteMode::At(4)).await,
            StorageError::Unsupported(_)
        );
    }
    assert_eq!(get(storage, "/short").await, b"abc");
}

pub(crate) async fn write_at_offset_of_a_missing_file(storage: &dyn Storage) {
    if !storage.capabilities().write_at_offset {
        assert_fails!(
            storage.write(&path("/missing"), WriteMode::At(3)).await,
            StorageError::Unsupported(_)
        );
        assert!(names(storage, "/").await.is_empty());
        return;
    }
    assert_fails!(
        storage.write(&path("/missing"), WriteMode::At(3)).await,
        StorageError::NotFound
    );
    write_with(storage, "/missing", WriteMode::At(0), b"created").await;
    assert_eq!(get(storage, "/missing").await, b"created");
}

pub(crate) async fn read_at_offset(storage: &dyn Storage) {
    put(storage, "/digits", b"0123456789").await;
    assert_eq!(get_from(storage, "/digits", 0).await, b"0123456789");
    assert_eq!(get_from(storage, "/digits", 7).await, b"789");
    assert_eq!(get_from(storage, "/digits", 10).await, b"");
    assert_eq!(get_from(storage, "/digits", 1000).await, b"");
}

pub(crate) async fn read_of_a_directory_or_missing_file_fails(storage: &dyn Storage) {
    storage.mkdir(&path("/dir")).await.unwrap();
    assert_fails!(
        storage.read(&path("/dir"), 0).await,
        StorageError::IsADirectory
    );
    assert_fails!(
        storage.read(&VirtualPath::root(), 0).await,
        StorageError::IsADirectory
    );
    assert_fails!(
        storage.read(&path("/nothing"), 0).await,
        StorageError::NotFound
    );
}

pub(crate) async fn write_to_a_directory_or_the_root_is_a_directory(storage: &dyn Storage) {
    storage.mkdir(&path("/dir")).await.unwrap();
    for mode in offered_modes(storage) {
        assert_fails!(
            storage.write(&path("/dir"), mode).await,
            StorageError::IsADirectory
        );
        assert_fails!(
            storage.write(&VirtualPath::root(), mode).await,
            StorageError::IsADirectory
        );
    }
    assert!(storage.metadata(&path("/dir")).await.unwrap().is_dir());
}

pub(crate) async fn write_with_a_missing_parent_is_not_found(storage: &dyn Storage) {
    for mode in offered_modes(storage) {
        assert_fails!(
            storage.write(&path("/no/such/dir/file"), mode).await,
            StorageError::NotFound
        );
    }
    assert!(names(storage, "/").await.is_empty());
}

pub(crate) async fn path_through_a_file_is_not_a_directory(storage: &dyn Storage) {
    put(storage, "/file", b"x").await;
    assert_fails!(
        storage.metadata(&path("/file/inner")).await,
        StorageError::NotADirectory
    );
    assert_fails!(
        storage
            .write(&path("/file/inner"), WriteMode::Replace)
            .await,
        StorageError::NotADirectory
    );
    assert_fails!(
        storage.mkdir(&path("/file/inner")).await,
        StorageError::NotADirectory
    );
}

pub(crate) async fn metadata_of_file_dir_and_missing(storage: &dyn Storage) {
    put(storage, "/file.txt", b"twelve bytes").await;
    storage.mkdir(&path("/dir")).await.unwrap();

    let file = storage.metadata(&path("/file.txt")).await.unwrap();
    assert!(file.is_file() && !file.is_dir());
    assert_eq!(file.size, 12);
    assert!(file.modified.is_some());

    let dir = storage.metadata(&path("/dir")).await.unwrap();
    assert!(dir.is_dir() && !dir.is_file());
    assert!(
        storage
            .metadata(&VirtualPath::root())
            .await
            .unwrap()
            .is_dir()
    );
    assert_ne!(file.unique, dir.unique, "unique facts tell entries apart");

    assert_fails!(
        storage.metadata(&path("/missing")).await,
        StorageError::NotFound
    );
    assert_fails!(
        storage.metadata(&path("/missing/deeper")).await,
        StorageError::NotFound
    );
}

pub(crate) async fn new_file_has_a_recent_modification_time(storage: &dyn Storage) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    put(storage, "/fresh", b"x").await;
    let modified = storage.metadata(&path("/fresh")).await.unwrap().modified;
    let modified = modified.expect("a modification time");
    assert!(
        (now - 5..=now + 5).contains(&modified),
        "{modified} vs {now}"
    );
}

pub(crate) async fn list_shows_files_and_dirs_with_unusual_names(storage: &dyn Storage) {
    let files = [
        "plain.txt",
        "with space.txt",
        " leading space",
        "hash#tag",
        "日本語.txt",
        "файл",
        "emoji 🚀",
        "quote\"d",
    ];
    for name in files {
        put(storage, &format!("/{name}"), name.as_bytes()).await;
    }
    storage.mkdir(&path("/sub dir")).await.unwrap();
    storage.mkdir(&path("/Документы")).await.unwrap();
    put(storage, "/sub dir/inner", b"not listed at the top").await;

    let stream = storage.list(&VirtualPath::root()).await.unwrap();
    let mut entries: Vec<_> = stream.try_collect().await.unwrap();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut expected: Vec<&str> = files.to_vec();
    expected.extend(["sub dir", "Документы"]);
    expected.sort();
    let listed: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(listed, expected);

    for entry in &entries {
        if files.contains(&entry.name.as_str()) {
            assert!(entry.metadata.is_file(), "{}", entry.name);
            assert_eq!(entry.metadata.size, entry.name.len() as u64);
            assert_eq!(
                get(storage, &format!("/{}", entry.name)).await,
                entry.name.as_bytes()
            );
        } else {
            assert!(entry.metadata.is_dir(), "{}", entry.name);
        }
    }
    assert_eq!(names(storage, "/sub dir").await, ["inner"]);
    assert!(names(storage, "/Документы").await.is_empty());
}

pub(crate) async fn list_of_many_entries_is_complete(storage: &dyn Storage) {
    // More than a few batches of any reasonable size.
    const COUNT: usize = 1100;
    storage.mkdir(&path("/many")).await.unwrap();
    for index in 0..COUNT {
        put(storage, &format!("/many/{index:05}"), b"").await;
    }
    let listed = names(storage, "/many").await;
    let expected: Vec<String> = (0..COUNT).map(|index| format!("{index:05}")).collect();
    assert_eq!(listed, expected);
}

pub(crate) async fn list_of_a_file_or_missing_dir_fails(storage: &dyn Storage) {
    put(storage, "/file", b"x").await;
    assert_fails!(
        storage.list(&path("/file")).await,
        StorageError::NotADirectory
    );
    assert_fails!(
        storage.list(&path("/missing")).await,
        StorageError::NotFound
    );
}

pub(crate) async fn mkdir_of_an_existing_name_is_already_exists(storage: &dyn Storage) {
    storage.mkdir(&path("/dir")).await.unwrap();
    put(storage, "/file", b"x").await;
    assert_fails!(
        storage.mkdir(&path("/dir")).await,
        StorageError::AlreadyExists
    );
    assert_fails!(
        storage.mkdir(&path("/file")).await,
        StorageError::AlreadyExists
    );
    assert_fails!(
        storage.mkdir(&VirtualPath::root()).await,
        StorageError::AlreadyExists
    );
}

pub(crate) async fn mkdir_with_a_missing_parent_is_not_found(storage: &dyn Storage) {
    assert_fails!(storage.mkdir(&path("/a/b")).await, StorageError::NotFound);
    storage.mkdir(&path("/a")).await.unwrap();
    storage.mkdir(&path("/a/b")).await.unwrap();
    assert!(storage.metadata(&path("/a/b")).await.unwrap().is_dir());
}

pub(crate) async fn rmdir_removes_an_empty_directory_only(storage: &dyn Storage) {
    storage.mkdir(&path("/full")).await.unwrap();
    put(storage, "/full/file", b"x").await;
    assert_fails!(
        storage.rmdir(&path("/full")).await,
        StorageError::DirectoryNotEmpty
    );
    assert_fails!(
        storage.rmdir(&path("/full/file")).await,
        StorageError::NotADirectory
    );
    assert_fails!(
        storage.rmdir(&path("/missing")).await,
        StorageError::NotFound
    );
    storage.remove(&path("/full/file")).await.unwrap();
    storage.rmdir(&path("/full")).await.unwrap();
    assert!(names(storage, "/").await.is_empty());
}

pub(crate) async fn remove_removes_files_only(storage: &dyn Storage) {
    storage.mkdir(&path("/dir")).await.unwrap();
    put(storage, "/file", b"x").await;
    assert_fails!(
        storage.remove(&path("/dir")).await,
        StorageError::IsADirectory
    );
    assert_fails!(
        storage.remove(&path("/missing")).await,
        StorageError::NotFound
    );
    storage.remove(&path("/file")).await.unwrap();
    assert_eq!(names(storage, "/").await, ["dir"]);
}

pub(crate) async fn rename_file_over_an_existing_file(storage: &dyn Storage) {
    put(storage, "/upload.tmp", b"new").await;
    put(storage, "/index.html", b"old").await;
    storage
        .rename(&path("/upload.tmp"), &path("/index.html"))
        .await
        .unwrap();
    assert_eq!(get(storage, "/index.html").await, b"new");
    assert_eq!(names(storage, "/").await, ["index.html"]);
}

pub(crate) async fn rename_directory_with_its_contents(storage: &dyn Storage) {
    storage.mkdir(&path("/old")).await.unwrap();
    storage.mkdir(&path("/old/inner")).await.unwrap();
    put(storage, "/old/inner/file", b"kept").await;
    storage.mkdir(&path("/elsewhere")).await.unwrap();
    storage
        .rename(&path("/old"), &path("/elsewhere/new"))
        .await
        .unwrap();
    assert_eq!(get(storage, "/elsewhere/new/inner/file").await, b"kept");
    assert_eq!(names(storage, "/").await, ["elsewhere"]);
    assert_fails!(
        storage.metadata(&path("/old")).await,
        StorageError::NotFound
    );
}

pub(crate) async fn rename_of_a_missing_name_is_not_found(storage: &dyn Storage) {
    assert_fails!(
        storage.rename(&path("/missing"), &path("/other")).await,
        StorageError::NotFound
    );
    put(storage, "/file", b"x").await;
    assert_fails!(
        storage.rename(&path("/file"), &path("/no/dir/file")).await,
        StorageError::NotFound
    );
    assert_eq!(get(storage, "/file").await, b"x");
}

pub(crate) async fn rename_to_the_same_name_is_a_no_op(storage: &dyn Storage) {
    put(storage, "/same", b"x").await;
    storage
        .rename(&path("/same"), &path("/same"))
        .await
        .unwrap();
    assert_eq!(get(storage, "/same").await, b"x");
}

pub(crate) async fn rename_directory_into_itself_is_refused(storage: &dyn Storage) {
    storage.mkdir(&path("/parent")).await.unwrap();
    storage.mkdir(&path("/parent/child")).await.unwrap();
    for into in ["/parent/inside", "/parent/child/deeper"] {
        assert_fails!(
            storage.rename(&path("/parent"), &path(into)).await,
            StorageError::InvalidName
        );
    }
    assert!(
        storage
            .metadata(&path("/parent/child"))
            .await
            .unwrap()
            .is_dir()
    );
}

pub(crate) async fn rename_file_over_a_directory_is_refused(storage: &dyn Storage) {
    put(storage, "/file", b"x").await;
    storage.mkdir(&path("/dir")).await.unwrap();
    put(storage, "/dir/inner", b"y").await;
    assert_fails!(
        storage.rename(&path("/file"), &path("/dir")).await,
        StorageError::IsADirectory
    );
    assert_fails!(
        storage.rename(&path("/dir"), &path("/file")).await,
        StorageError::NotADirectory
    );
    assert_eq!(get(storage, "/file").await, b"x");
    assert_eq!(get(storage, "/dir/inner").await, b"y");
}

pub(crate) async fn root_cannot_be_removed_or_renamed(storage: &dyn Storage) {
    let root = VirtualPath::root();
    put(storage, "/file", b"x").await;
    assert_fails!(storage.rmdir(&root).await, StorageError::PermissionDenied);
    assert_fails!(storage.remove(&root).await, StorageError::PermissionDenied);
    assert_fails!(
        storage.rename(&root, &path("/elsewhere")).await,
        StorageError::PermissionDenied
    );
    assert_fails!(
        storage.rename(&path("/file"), &root).await,
        StorageError::PermissionDenied
    );
    assert_eq!(names(storage, "/").await, ["file"]);
}

pub(crate) async fn set_modified_shows_in_metadata(storage: &dyn Storage) {
    if !storage.capabilities().set_modified {
        assert_fails!(
            storage.set_modified(&path("/x"), 0).await,
            StorageError::Unsupported(_)
        );
        return;
    }
    // 2001-09-09T01:46:40Z
    const WHEN: i64 = 1_000_000_000;
    put(storage, "/file", b"x").await;
    storage.mkdir(&path("/dir")).await.unwrap();
    storage.set_modified(&path("/file"), WHEN).await.unwrap();
    storage.set_modified(&path("/dir"), WHEN + 1).await.unwrap();
    let modified =
        |at: &'static str| async move { storage.metadata(&path(at)).await.unwrap().modified };
    assert_eq!(modified("/file").await, Some(WHEN));
    assert_eq!(modified("/dir").await, Some(WHEN + 1));
    assert_eq!(get(storage, "/file").await, b"x", "content untouched");
    assert_fails!(
        storage.set_modified(&path("/missing"), WHEN).await,
        StorageError::NotFound
    );
}

pub(crate) async fn errors_map_to_reply_codes(storage: &dyn Storage) {
    put(storage, "/file", b"abc").await;
    storage.mkdir(&path("/dir")).await.unwrap();
    let code = |error: StorageError| error.reply_code();

    let missing = storage.read(&path("/missing"), 0).await.err().unwrap();
    assert_eq!(code(missing), ReplyCode::FILE_UNAVAILABLE);
    let exists = storage.mkdir(&path("/dir")).await.unwrap_err();
    assert_eq!(code(exists), ReplyCode::FILE_UNAVAILABLE);
    let offset = storage
        .write(&path("/file"), WriteMode::At(10))
        .await
        .err()
        .unwrap();
    if storage.capabilities().write_at_offset {
        assert_eq!(code(offset), ReplyCode::INVALID_REST_PARAMETER);
    } else {
        assert_eq!(code(offset), ReplyCode::PARAMETER_NOT_IMPLEMENTED);
    }
    let into_itself = storage
        .rename(&path("/dir"), &path("/dir/sub"))
        .await
        .unwrap_err();
    assert_eq!(code(into_itself), ReplyCode::FILE_NAME_NOT_ALLOWED);
    let not_empty = {
        put(storage, "/dir/inner", b"").await;
        storage.rmdir(&path("/dir")).await.unwrap_err()
    };
    assert_eq!(code(not_empty), ReplyCode::FILE_UNAVAILABLE);
    if !storage.capabilities().chmod {
        let unsupported = storage.chmod(&path("/file"), 0o644).await.unwrap_err();
        assert_eq!(code(unsupported), ReplyCode::PARAMETER_NOT_IMPLEMENTED);
    }
}
