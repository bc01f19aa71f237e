//! The suppaftp crate (async) against ferry: transfers in PASV, EPSV and active mode, REST both
//! ways, APPE, file management, LIST/NLST/MLSD parsed by suppaftp, SIZE/MDTM, ABOR during a
//! download, a read-only account, a wrong password and 500 sessions at once.

use std::str::FromStr;
use std::time::Duration;

use futures_lite::future::block_on;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt, Cursor};
use suppaftp::list::File;
use suppaftp::types::FileType;
use suppaftp::{AsyncFtpStream, FtpError, Mode, Status};

use crate::support::*;

async fn login_as(server: &TestServer, user: &str) -> AsyncFtpStream {
    let mut ftp = AsyncFtpStream::connect(server.addr).await.expect("connect");
    ftp.login(user, PASSWORD).await.expect("login");
    ftp.transfer_type(FileType::Binary).await.expect("TYPE I");
    ftp
}

async fn login(server: &TestServer) -> AsyncFtpStream {
    login_as(server, USER).await
}

async fn download(ftp: &mut AsyncFtpStream, name: &str) -> Vec<u8> {
    let mut stream = ftp.retr_as_stream(name).await.expect("RETR");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("reading");
    ftp.finalize_retr_stream(stream)
        .await
        .expect("226 after RETR");
    bytes
}

async fn upload(ftp: &mut AsyncFtpStream, name: &str, bytes: &[u8]) {
    let sent = ftp
        .put_file(name, &mut Cursor::new(bytes))
        .await
        .expect("STOR");
    assert_eq!(sent, bytes.len() as u64);
}

/// The status of an FTP error reply, for asserting on refusals.
fn status_of<T: std::fmt::Debug>(result: Result<T, FtpError>) -> Status {
    match result {
        Err(FtpError::UnexpectedResponse(response)) => response.status,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn suppaftp_transfers_in_pasv_epsv_and_active_mode() {
    let server = TestServer::start();
    block_on(async {
        for (mode_name, mode) in [
            ("pasv", Mode::Passive),
            ("epsv", Mode::ExtendedPassive),
            ("active", Mode::Active),
        ] {
            let mut ftp = login(&server).await;
            ftp = match mode {
                Mode::Active => ftp.active_mode(Duration::from_secs(60)),
                mode => {
                    ftp.set_mode(mode);
                    ftp
                }
            };
            for (len, seed) in [(0usize, 50), (1, 51), (1 << 20, 52)] {
                let bytes = pattern(len, seed);
                let name = format!("{mode_name}-{len}.bin");
                upload(&mut ftp, &name, &bytes).await;
                assert_eq!(
                    sha256_file(&server.home().join(&name)),
                    sha256(&bytes),
                    "{name} on the server"
                );
                assert_eq!(ftp.size(&name).await.unwrap(), len);
                let back = download(&mut ftp, &name).await;
                assert_eq!(sha256(&back), sha256(&bytes), "{name} downloaded");
            }
            ftp.quit().await.unwrap();
        }
    });
}

#[test]
fn suppaftp_resumes_both_ways_and_appends() {
    let server = TestServer::start();
    let whole = pattern(2 << 20, 53);
    std::fs::write(server.home().join("get.bin"), &whole).unwrap();
    std::fs::write(server.home().join("put.bin"), &whole[..777_777]).unwrap();
    block_on(async {
        let mut ftp = login(&server).await;
        // REST + RETR: only the tail comes.
        ftp.resume_transfer(1_000_000).await.unwrap();
        let tail = download(&mut ftp, "get.bin").await;
        assert_eq!(sha256(&tail), sha256(&whole[1_000_000..]));

        // REST + STOR: the server keeps the head and writes from the offset.
        let offset = ftp.size("put.bin").await.unwrap();
        assert_eq!(offset, 777_777);
        ftp.resume_transfer(offset).await.unwrap();
        let mut stream = ftp.put_with_stream("put.bin").await.unwrap();
        stream.write_all(&whole[offset..]).await.unwrap();
        ftp.finalize_put_stream(stream).await.unwrap();
        assert_eq!(sha256_file(&server.home().join("put.bin")), sha256(&whole));

        // APPE twice.
        let first = pattern(10_000, 54);
        let second = pattern(3, 55);
        ftp.append_file("log.bin", &mut Cursor::new(&first))
            .await
            .unwrap();
        ftp.append_file("log.bin", &mut Cursor::new(&second))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(server.home().join("log.bin")).unwrap(),
            [first, second].concat()
        );
        ftp.quit().await.unwrap();
    });
}

#[test]
fn suppaftp_manages_files_and_parses_listings() {
    let server = TestServer::start();
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    block_on(async {
        let mut ftp = login(&server).await;
        ftp.mkdir("répertoire 一").await.unwrap();
        ftp.cwd("répertoire 一").await.unwrap();
        assert_eq!(ftp.pwd().await.unwrap(), "/répertoire 一");
        upload(&mut ftp, "a file.txt", &pattern(2048, 56)).await;
        ftp.rename("a file.txt", "b file.txt").await.unwrap();
        ftp.mkdir("sub").await.unwrap();
        ftp.cdup().await.unwrap();
        assert_eq!(ftp.pwd().await.unwrap(), "/");

        std::fs::File::options()
            .write(true)
            .open(server.home().join("répertoire 一/b file.txt"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let modified = ftp.mdtm("répertoire 一/b file.txt").await.unwrap();
        assert_eq!(
            modified.format("%Y%m%d%H%M%S").to_string(),
            "20200913122640"
        );
        assert_eq!(ftp.size("répertoire 一/b file.txt").await.unwrap(), 2048);

        let list = ftp.list(Some("répertoire 一")).await.unwrap();
        let files: Vec<File> = list
            .iter()
            .map(|line| File::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
            .collect();
        let file = files.iter().find(|f| f.name() == "b file.txt").unwrap();
        assert!(file.is_file() && file.size() == 2048, "{list:?}");
        let dir = files.iter().find(|f| f.name() == "sub").unwrap();
        assert!(dir.is_directory(), "{list:?}");

        let mlsd = ftp.mlsd(Some("répertoire 一")).await.unwrap();
        let files: Vec<File> = mlsd
            .iter()
            .map(|line| File::from_mlsx_line(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
            .collect();
        assert_eq!(files.len(), 2, "{mlsd:?}");
        let file = files.iter().find(|f| f.name() == "b file.txt").unwrap();
        assert!(file.is_file() && file.size() == 2048, "{mlsd:?}");
        assert!(files.iter().any(|f| f.name() == "sub" && f.is_directory()));

        let mut names = ftp.nlst(Some("répertoire 一")).await.unwrap();
        names.sort();
        assert!(
            names == ["b file.txt", "sub"]
                || names == ["répertoire 一/b file.txt", "répertoire 一/sub"],
            "{names:?}"
        );

        assert_eq!(
            status_of(ftp.rmdir("répertoire 一").await),
            Status::FileUnavailable
        );
        ftp.rm("répertoire 一/b file.txt").await.unwrap();
        ftp.rmdir("répertoire 一/sub").await.unwrap();
        ftp.rmdir("répertoire 一").await.unwrap();
        assert_eq!(status_of(ftp.rm("gone.txt").await), Status::FileUnavailable);
        ftp.quit().await.unwrap();
    });
    assert_eq!(std::fs::read_dir(server.home()).unwrap().count(), 0);
}

#[test]
fn suppaftp_abort_during_a_download_leaves_the_session_usable() {
    let server = TestServer::start();
    write_pattern_file(&server.home().join("big.bin"), 32 << 20, 57);
    std::fs::write(server.home().join("small.txt"), b"after abort\n").unwrap();
    block_on(async {
        let mut ftp = login(&server).await;
        let mut stream = ftp.retr_as_stream("big.bin").await.unwrap();
        let mut head = vec![0u8; 128 * 1024];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(head, pattern(128 * 1024, 57));
        // ABOR: 426 for the transfer, then 226 (suppaftp reads both).
        ftp.abort(stream).await.expect("ABOR answered 426 then 226");
        ftp.noop().await.unwrap();
        assert_eq!(ftp.pwd().await.unwrap(), "/");
        assert_eq!(download(&mut ftp, "small.txt").await, b"after abort\n");
        ftp.quit().await.unwrap();
    });
}

#[test]
fn suppaftp_read_only_account_and_wrong_password_are_refused() {
    let server = TestServer::start();
    std::fs::write(server.home().join("kept.txt"), b"kept").unwrap();
    block_on(async {
        let mut ftp = login_as(&server, READER).await;
        let refused = ftp
            .put_file("new.txt", &mut Cursor::new(b"new".to_vec()))
            .await;
        assert_eq!(status_of(refused), Status::FileUnavailable);
        assert_eq!(status_of(ftp.mkdir("made").await), Status::FileUnavailable);
        assert_eq!(status_of(ftp.rm("kept.txt").await), Status::FileUnavailable);
        assert_eq!(download(&mut ftp, "kept.txt").await, b"kept");
        ftp.quit().await.unwrap();

        let mut ftp = AsyncFtpStream::connect(server.addr).await.unwrap();
        assert_eq!(
            status_of(ftp.login(USER, "wrong").await),
            Status::NotLoggedIn
        );
    });
    let names: Vec<_> = std::fs::read_dir(server.home())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept.txt"]);
}

/// 500 sessions logged in at the same time, each listing its home.
#[test]
fn suppaftp_500_sessions_at_once() {
    const SESSIONS: usize = 500;
    let server = TestServer::start_with(|config| {
        config.max_connections = SESSIONS + 50;
        config.max_connections_per_ip = SESSIONS + 50;
        config.timeouts.login = Duration::from_secs(300);
    });
    std::fs::write(server.home().join("shared.txt"), b"shared").unwrap();
    block_on(async {
        // Every session connects and logs in before any of them leaves.
        let sessions =
            futures_util::future::join_all((0..SESSIONS).map(|_| async { login(&server).await }))
                .await;
        assert_eq!(sessions.len(), SESSIONS);
        let results =
            futures_util::future::join_all(sessions.into_iter().map(|mut ftp| async move {
                assert_eq!(ftp.pwd().await.unwrap(), "/");
                let list = ftp.list(None).await.unwrap();
                assert!(
                    list.len() == 1 && list[0].ends_with(" shared.txt"),
                    "{list:?}"
                );
                ftp.quit().await.unwrap();
            }))
            .await;
        assert_eq!(results.len(), SESSIONS);
    });
}
