//! The s3 backend against a real Garage: the conformance suite, then what only object storage
//! has (multipart uploads, markers, rename limits, objects other clients wrote).

use futures_util::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::test_garage::garage;
use super::*;
use crate::protocol::ReplyCode;
use crate::storage::conformance::{Fixture, storage_conformance_tests};

/// Settings for a fresh, empty corner of the shared test bucket.
fn settings() -> S3Settings {
    let garage = garage();
    S3Settings {
        bucket: garage.bucket.clone(),
        prefix: Some(garage.new_prefix()),
        endpoint: Some(garage.endpoint.clone()),
        region: Some(garage.region.clone()),
        access_key_id: Some(garage.key_id.clone()),
        secret_access_key: Some(garage.secret.clone()),
        path_style: true,
        allow_http: true,
        part_size_mib: Some(5),
        ..S3Settings::default()
    }
}

async fn fixture() -> Fixture {
    let provider = S3Provider::connect(&settings()).await.unwrap();
    Fixture::shared(provider.open("home").await.unwrap(), ())
}

storage_conformance_tests!(fixture().await);

const MIB: usize = 1024 * 1024;

fn path(text: &str) -> VirtualPath {
    VirtualPath::parse(text).unwrap()
}

/// A provider, its key prefix, and the storage of the home `home`.
async fn home_with(settings: S3Settings) -> (S3Provider, String, S3Storage) {
    let prefix = settings.prefix.clone().unwrap();
    let provider = S3Provider::connect(&settings).await.unwrap();
    let storage = provider.open_home("home").await.unwrap();
    (provider, format!("{prefix}/home/"), storage)
}

async fn put(storage: &dyn Storage, at: &str, content: &[u8]) {
    let mut upload = storage.write(&path(at), WriteMode::Replace).await.unwrap();
    upload.write_all(content).await.unwrap();
    upload.commit().await.unwrap();
}

async fn get_from(storage: &dyn Storage, at: &str, offset: u64) -> Vec<u8> {
    let mut reader = storage.read(&path(at), offset).await.unwrap();
    let mut content = Vec::new();
    reader.read_to_end(&mut content).await.unwrap();
    content
}

async fn names(storage: &dyn Storage, at: &str) -> Vec<(String, EntryKind)> {
    let entries: Vec<DirEntry> = storage
        .list(&path(at))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut names: Vec<_> = entries
        .into_iter()
        .map(|entry| (entry.name, entry.metadata.kind))
        .collect();
    names.sort_by_key(|(name, kind)| (name.clone(), *kind == EntryKind::Dir));
    names
}

fn file(name: &str) -> (String, EntryKind) {
    (name.to_owned(), EntryKind::File)
}

fn dir(name: &str) -> (String, EntryKind) {
    (name.to_owned(), EntryKind::Dir)
}

/// Every key below `prefix`, as another S3 client lists them (markers keep their `/`).
async fn raw_keys(provider: &S3Provider, prefix: &str) -> Vec<String> {
    let bucket = &provider.bucket;
    let mut keys = Vec::new();
    let mut pending = vec![prefix.to_owned()];
    while let Some(prefix) = pending.pop() {
        let page = bucket.list_page(&prefix, true, None, None).await.unwrap();
        assert!(page.page_token.is_none(), "small test directories");
        for object in page.result.objects {
            let key = object.location.to_string();
            // The only object a delimited listing shows without its `/` is the marker itself.
            if key == prefix.trim_end_matches('/') {
                keys.push(prefix.clone());
            } else {
                keys.push(key);
            }
        }
        pending.extend(
            page.result
                .common_prefixes
                .iter()
                .map(|dir| format!("{dir}/")),
        );
    }
    keys.sort();
    keys
}

/// The multipart uploads in progress below `prefix`, from a raw ListMultipartUploads.
async fn uploads_in_progress(provider: &S3Provider, prefix: &str) -> usize {
    let raw = &provider.bucket.raw;
    let url = raw.bucket_url(&format!(
        "?uploads&prefix={}",
        percent_encoding::utf8_percent_encode(prefix, percent_encoding::NON_ALPHANUMERIC)
    ));
    let response = raw.send(http::Method::GET, &url).await.unwrap();
    assert!(response.status.is_success(), "{response:?}");
    String::from_utf8_lossy(&response.body)
        .matches("<UploadId>")
        .count()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[tokio::test]
async fn large_upload_goes_in_parts_and_reads_back_from_any_offset() {
    let (provider, prefix, storage) = home_with(settings()).await;
    // Five 5 MiB parts and a short sixth.
    let content = pattern(25 * MIB + 1234);
    let mut upload = storage
        .write(&path("/big.bin"), WriteMode::Replace)
        .await
        .unwrap();
    for chunk in content.chunks(100_000) {
        upload.write_all(chunk).await.unwrap();
    }
    assert!(
        matches!(
            storage.metadata(&path("/big.bin")).await,
            Err(StorageError::NotFound)
        ),
        "nothing visible before commit"
    );
    assert_eq!(upload.commit().await.unwrap(), content.len() as u64);

    let meta = provider
        .bucket
        .store
        .head(&Path::parse(format!("{prefix}big.bin")).unwrap())
        .await
        .unwrap();
    assert_eq!(meta.size, content.len() as u64);
    let etag = meta.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-6"), "six parts: {etag}");
    assert!(get_from(&storage, "/big.bin", 0).await == content);
    for offset in [1, 7 * MIB + 3, 25 * MIB] {
        let tail = get_from(&storage, "/big.bin", offset as u64).await;
        assert!(tail == content[offset..], "from {offset}");
    }
    assert!(uploads_in_progress(&provider, &prefix).await == 0);
}

#[tokio::test]
async fn dropped_multipart_upload_is_aborted_and_leaves_nothing() {
    let (provider, prefix, storage) = home_with(settings()).await;
    let mut upload = storage
        .write(&path("/abandoned.bin"), WriteMode::Replace)
        .await
        .unwrap();
    let content = pattern(12 * MIB);
    for chunk in content.chunks(256 * 1024) {
        upload.write_all(chunk).await.unwrap();
    }
    assert_eq!(uploads_in_progress(&provider, &prefix).await, 1);
    drop(upload);

    // The abort runs on the runtime after the drop: wait for it, with a generous deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while uploads_in_progress(&provider, &prefix).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the multipart upload was never aborted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(names(&storage, "/").await.is_empty());
    assert!(matches!(
        storage.metadata(&path("/abandoned.bin")).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(raw_keys(&provider, &prefix).await, [prefix]);
}

#[tokio::test]
async fn create_new_with_parts_fails_at_commit_if_the_name_was_taken_meanwhile() {
    let (provider, prefix, storage) = home_with(settings()).await;
    let mut upload = storage
        .write(&path("/contested"), WriteMode::CreateNew)
        .await
        .unwrap();
    upload.write_all(&pattern(6 * MIB)).await.unwrap();
    put(&storage, "/contested", b"first").await;
    let committed = upload.commit().await;
    assert!(
        matches!(committed, Err(StorageError::AlreadyExists)),
        "{committed:?}"
    );
    assert_eq!(get_from(&storage, "/contested", 0).await, b"first");
    assert_eq!(uploads_in_progress(&provider, &prefix).await, 0);
}

#[tokio::test]
async fn directory_rename_beyond_the_limit_is_refused_with_550() {
    let (_provider, _prefix, storage) = home_with(S3Settings {
        rename_dir_limit: Some(3),
        ..settings()
    })
    .await;
    storage.mkdir(&path("/small")).await.unwrap();
    storage.mkdir(&path("/small/sub")).await.unwrap();
    put(&storage, "/small/a", b"a").await;
    put(&storage, "/small/sub/b", b"b").await;
    // Three objects to copy: `sub/`, `a`, `sub/b`.
    storage
        .rename(&path("/small"), &path("/moved"))
        .await
        .unwrap();
    assert_eq!(get_from(&storage, "/moved/sub/b", 0).await, b"b");

    put(&storage, "/moved/c", b"c").await;
    let refused = storage
        .rename(&path("/moved"), &path("/again"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StorageError::RenameTooLarge { limit: 3 }),
        "{refused:?}"
    );
    assert_eq!(refused.reply_code(), ReplyCode::FILE_UNAVAILABLE);
    let message = refused.to_string();
    assert!(
        message.contains("more than 3 objects") && message.contains("rename_dir_limit"),
        "{message}"
    );
    assert_eq!(names(&storage, "/").await, [dir("moved")]);
    assert_eq!(
        names(&storage, "/moved").await,
        [file("a"), file("c"), dir("sub")]
    );
}

#[tokio::test]
async fn empty_directory_is_a_zero_byte_marker_to_other_clients() {
    let (provider, prefix, storage) = home_with(settings()).await;
    storage.mkdir(&path("/empty")).await.unwrap();
    storage.mkdir(&path("/empty/inner")).await.unwrap();
    assert_eq!(
        raw_keys(&provider, &prefix).await,
        [
            prefix.clone(),
            format!("{prefix}empty/"),
            format!("{prefix}empty/inner/")
        ]
    );
    let marker = provider
        .bucket
        .raw
        .send(
            http::Method::GET,
            &provider.bucket.raw.object_url(&format!("{prefix}empty/")),
        )
        .await
        .unwrap();
    assert!(
        marker.status.is_success() && marker.body.is_empty(),
        "{marker:?}"
    );

    // Removing the only entry keeps the directory: it gets a marker of its own.
    storage.rmdir(&path("/empty/inner")).await.unwrap();
    assert_eq!(names(&storage, "/").await, [dir("empty")]);
    assert!(names(&storage, "/empty").await.is_empty());
}

#[tokio::test]
async fn objects_written_by_another_client_show_up_with_their_directories() {
    let (provider, prefix, storage) = home_with(settings()).await;
    let store = &provider.bucket.store;
    // No markers: only the objects, as `aws s3 cp` or a backup tool writes them.
    for (key, content) in [("a/b/c.txt", "deep"), ("a/top.txt", "top"), ("x", "file x")] {
        let key = Path::parse(format!("{prefix}{key}")).unwrap();
        store.put(&key, content.into()).await.unwrap();
    }
    assert_eq!(names(&storage, "/").await, [dir("a"), file("x")]);
    assert_eq!(names(&storage, "/a").await, [dir("b"), file("top.txt")]);
    assert!(storage.metadata(&path("/a/b")).await.unwrap().is_dir());
    assert_eq!(get_from(&storage, "/a/b/c.txt", 0).await, b"deep");
    assert!(matches!(
        storage.metadata(&path("/x/y")).await,
        Err(StorageError::NotADirectory)
    ));

    // The last file of a directory without a marker goes: the directory stays, empty.
    storage.remove(&path("/a/b/c.txt")).await.unwrap();
    assert!(storage.metadata(&path("/a/b")).await.unwrap().is_dir());
    assert!(names(&storage, "/a/b").await.is_empty());

    // A file `x` beside a prefix `x/`: both listed, the name is a directory, the file readable.
    store
        .put(
            &Path::parse(format!("{prefix}x/inside")).unwrap(),
            "in".into(),
        )
        .await
        .unwrap();
    assert_eq!(names(&storage, "/").await, [dir("a"), file("x"), dir("x")]);
    assert!(storage.metadata(&path("/x")).await.unwrap().is_dir());
    assert_eq!(get_from(&storage, "/x", 0).await, b"file x");
    assert_eq!(get_from(&storage, "/x/inside", 0).await, b"in");
}

#[tokio::test]
async fn homes_are_prefixes_created_at_open() {
    let settings = settings();
    let prefix = settings.prefix.clone().unwrap();
    let provider = S3Provider::connect(&settings).await.unwrap();
    let alice = provider.open("users/alice").await.unwrap();
    put(&*alice, "/note", b"from alice").await;
    let everything = provider.open("/").await.unwrap();
    assert_eq!(
        everything
            .metadata(&path("/users/alice/note"))
            .await
            .unwrap()
            .size,
        10
    );
    assert_eq!(
        raw_keys(&provider, &format!("{prefix}/")).await,
        [
            format!("{prefix}/users/alice/"),
            format!("{prefix}/users/alice/note")
        ]
    );
    assert!(matches!(
        provider.open("users/../../escape").await,
        Err(StorageError::InvalidName)
    ));
    let bob = provider.open("users/bob").await.unwrap();
    assert!(names(&*bob, "/").await.is_empty());
    assert_eq!(
        names(&*everything, "/users").await,
        [dir("alice"), dir("bob")]
    );
}

#[tokio::test]
async fn connect_names_what_is_wrong() {
    let wrong_bucket = S3Provider::connect(&S3Settings {
        bucket: "no-such-bucket".to_owned(),
        ..settings()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        wrong_bucket.contains("\"no-such-bucket\"") && wrong_bucket.contains("correct `bucket`"),
        "{wrong_bucket}"
    );
    let wrong_secret = S3Provider::connect(&S3Settings {
        secret_access_key: Some("not the secret".to_owned()),
        ..settings()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(wrong_secret.contains("access"), "{wrong_secret}");
    assert!(!wrong_secret.contains("not the secret"), "{wrong_secret}");
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nobody_there = S3Provider::connect(&S3Settings {
        endpoint: Some(format!("http://127.0.0.1:{closed_port}")),
        ..settings()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(nobody_there.contains("endpoint"), "{nobody_there}");
}

#[tokio::test]
async fn capabilities_offer_ranged_reads_only() {
    let provider = S3Provider::connect(&settings()).await.unwrap();
    let capabilities = provider.capabilities();
    assert!(capabilities.read_at_offset);
    assert!(!capabilities.append && !capabilities.write_at_offset);
    assert!(!capabilities.set_modified && !capabilities.chmod);
}

#[tokio::test]
async fn names_a_key_cannot_hold_are_refused() {
    let (_provider, _prefix, storage) = home_with(settings()).await;
    assert!(matches!(
        storage.write(&path("/tab\there"), WriteMode::Replace).await,
        Err(StorageError::InvalidName)
    ));
    assert!(matches!(
        storage.mkdir(&path("/bell\u{7}")).await,
        Err(StorageError::InvalidName)
    ));
    assert!(names(&storage, "/").await.is_empty());
}
