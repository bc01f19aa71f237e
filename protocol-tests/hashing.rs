//! HASH (draft-bryan-ftpext-hash-02), RANG and XCRC/XMD5/XSHA1/XSHA256 checked against the
//! reference tools on the same bytes — `sha256sum`, `sha1sum`, `md5sum` and Python's
//! `zlib.crc32` — on local disk, in memory and (with the s3 feature) on a real Garage bucket,
//! through Python's ftplib, lftp's `quote`, curl's `-Q` and ferry's own client; the refusals
//! through raw dialogues.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry::auth::store::{AccountStore, NewAccount};
use ferry::client::{ClientConfig, FtpClient, StoreMode};
use ferry::protocol::hash::HashAlgorithm;

use crate::dialogue::Dialogue;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(120);

const QUOTE_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/python/quote_session.py"
);

/// The HASH name and the X command of each algorithm.
const ALGORITHMS: [(&str, &str); 4] = [
    ("SHA-256", "XSHA256"),
    ("SHA-1", "XSHA1"),
    ("MD5", "XMD5"),
    ("CRC32", "XCRC"),
];

/// The digest of `bytes` as the reference tool for `algorithm` prints it.
fn reference_digest(algorithm: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input");
    std::fs::write(&file, bytes).unwrap();
    let mut command = match algorithm {
        "SHA-256" => Command::new("sha256sum"),
        "SHA-1" => Command::new("sha1sum"),
        "MD5" => Command::new("md5sum"),
        "CRC32" => {
            let mut python = Command::new("python3");
            python.args([
                "-c",
                "import sys, zlib; print('%08x' % zlib.crc32(open(sys.argv[1], 'rb').read()))",
            ]);
            python
        }
        other => panic!("no reference tool for {other}"),
    };
    let output = run_with_timeout(command.arg(&file), LIMIT);
    assert_success(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

/// Logs in with ftplib, sends each command with `sendcmd` and returns the replies.
fn ftplib_replies(port: u16, user: &str, commands: &[String]) -> Vec<String> {
    let output = run_with_timeout(
        Command::new("python3")
            .arg(QUOTE_SCRIPT)
            .arg(port.to_string())
            .arg(user)
            .arg(PASSWORD)
            .args(commands),
        LIMIT,
    );
    assert_success(&output);
    let replies: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(replies.len(), commands.len(), "{replies:?}");
    replies
}

/// Uploads `bytes` as `name` with curl.
fn curl_upload(addr: std::net::SocketAddr, name: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("upload");
    std::fs::write(&local, bytes).unwrap();
    let url = format!(
        "ftp://{USER}:{}@{addr}/{}",
        PASSWORD.replace(' ', "%20"),
        name.replace(' ', "%20")
    );
    let output = run_with_timeout(
        Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--fail",
                "--max-time",
                "60",
                "-T",
            ])
            .arg(&local)
            .arg(url),
        LIMIT,
    );
    assert_success(&output);
}

/// The ways one file's bytes are hashed below: every byte, the first fifty (RANG 0 49), none at
/// all (REST at the end of the file), and a stretch in the middle (X command offsets).
fn expected_digests(algorithm: &str, content: &[u8]) -> [String; 4] {
    [
        reference_digest(algorithm, content),
        reference_digest(algorithm, &content[..50]),
        reference_digest(algorithm, b""),
        reference_digest(algorithm, &content[1000..200_000]),
    ]
}

/// Sends HASH with and without ranges and the X command for every algorithm through ftplib, and
/// checks each digest against the reference tool's.
fn check_every_algorithm_through_ftplib(port: u16, content: &[u8]) {
    let size = content.len();
    for (name, x_verb) in ALGORITHMS {
        let commands: Vec<String> = vec![
            format!("OPTS HASH {name}"),
            "HASH data.bin".into(),
            "RANG 0 49".into(),
            "HASH data.bin".into(),
            format!("REST {size}"),
            "HASH data.bin".into(),
            "HASH empty.bin".into(),
            format!("{x_verb} data.bin"),
            format!("{x_verb} data.bin 1000 200000"),
            format!("{x_verb} data.bin 7 7"),
        ];
        let replies = ftplib_replies(port, USER, &commands);
        let [whole, first_fifty, nothing, middle] = expected_digests(name, content);
        assert_eq!(replies[0], format!("200 {name}"));
        let last = size - 1;
        assert_eq!(replies[1], format!("213 {name} 0-{last} {whole} data.bin"));
        assert!(replies[2].starts_with("350 "), "{}", replies[2]);
        assert_eq!(
            replies[3],
            format!("213 {name} 0-49 {first_fifty} data.bin")
        );
        assert!(replies[4].starts_with("350 "), "{}", replies[4]);
        assert_eq!(
            replies[5],
            format!("213 {name} {size}-{size} {nothing} data.bin")
        );
        assert_eq!(replies[6], format!("213 {name} 0-0 {nothing} empty.bin"));
        assert_eq!(replies[7], format!("250 {whole}"));
        assert_eq!(replies[8], format!("250 {middle}"));
        assert_eq!(replies[9], format!("250 {nothing}"));
    }
}

/// 300,007 bytes: more than one read chunk, and not a multiple of any block size.
fn test_content() -> Vec<u8> {
    pattern(300_007, 19)
}

#[test]
fn hash_and_x_commands_on_disk_equal_sha256sum_sha1sum_md5sum_and_zlib_crc32() {
    let server = TestServer::start();
    let content = test_content();
    std::fs::write(server.home().join("data.bin"), &content).unwrap();
    std::fs::write(server.home().join("empty.bin"), b"").unwrap();
    check_every_algorithm_through_ftplib(server.port(), &content);
}

#[test]
fn hash_and_x_commands_in_memory_equal_the_reference_tools() {
    let server = TestServer::start_in_memory();
    let content = test_content();
    curl_upload(server.addr, "data.bin", &content);
    curl_upload(server.addr, "empty.bin", b"");
    check_every_algorithm_through_ftplib(server.port(), &content);
}

#[test]
fn lftp_quote_and_curl_quote_get_the_same_hash_as_sha256sum() {
    let server = TestServer::start_in_memory();
    let content = test_content();
    curl_upload(server.addr, "in dir.bin", &content);
    let expected = reference_digest("SHA-256", &content);

    // lftp prints the server's reply to a `quote`d command on standard output.
    let lftp = run_with_timeout(
        Command::new("lftp").arg("-c").arg(format!(
            "set cmd:fail-exit yes; set ftp:ssl-allow no; set net:max-retries 1; \
             open -u '{USER},{PASSWORD}' -p {} 127.0.0.1; quote HASH in dir.bin; \
             quote OPTS HASH MD5; quote HASH in dir.bin",
            server.port()
        )),
        LIMIT,
    );
    assert_success(&lftp);
    let printed = String::from_utf8(lftp.stdout).unwrap();
    let last = content.len() - 1;
    assert!(
        printed.contains(&format!("213 SHA-256 0-{last} {expected} in dir.bin")),
        "{printed}"
    );
    let md5 = reference_digest("MD5", &content);
    assert!(
        printed.contains(&format!("213 MD5 0-{last} {md5} in dir.bin")),
        "{printed}"
    );

    // curl sends -Q commands after logging in; its verbose log shows the replies.
    let curl = run_with_timeout(
        Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--fail",
                "--max-time",
                "60",
                "-v",
            ])
            .args(["-Q", "OPTS HASH CRC32", "-Q", "HASH in dir.bin"])
            .arg(format!(
                "ftp://{USER}:{}@{}/",
                PASSWORD.replace(' ', "%20"),
                server.addr
            )),
        LIMIT,
    );
    assert_success(&curl);
    let log = String::from_utf8_lossy(&curl.stderr);
    let crc = reference_digest("CRC32", &content);
    assert!(
        log.contains(&format!("< 213 CRC32 0-{last} {crc} in dir.bin")),
        "{log}"
    );
}

#[test]
fn ferry_client_verifies_an_upload_with_hash() {
    let server = TestServer::start();
    let content = test_content();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config = ClientConfig::new("127.0.0.1", server.port(), USER, PASSWORD);
        config.reply_timeout = Duration::from_secs(30);
        let mut client = FtpClient::connect(config).await.unwrap();
        for algorithm in HashAlgorithm::ALL {
            assert!(client.supports_hash(algorithm), "{algorithm}");
        }
        client
            .store("up.bin", &mut &content[..], StoreMode::Replace)
            .await
            .unwrap();
        for (algorithm, name) in [
            (HashAlgorithm::Sha256, "SHA-256"),
            (HashAlgorithm::Crc32, "CRC32"),
            (HashAlgorithm::Sha256, "SHA-256"),
            (HashAlgorithm::Md5, "MD5"),
        ] {
            let hash = client.hash("up.bin", algorithm).await.unwrap();
            assert_eq!(hash.hex, reference_digest(name, &content), "{name}");
            assert_eq!(hash.algorithm, name);
            assert_eq!((hash.start, hash.end), (0, content.len() as u64 - 1));
        }
        let missing = client
            .hash("missing.bin", HashAlgorithm::Sha1)
            .await
            .unwrap_err();
        assert_eq!(missing.reply_code(), Some(550), "{missing}");
        client.quit().await.unwrap();
    });
}

/// An account that may list and upload but not download.
fn add_writer(server: &TestServer) -> &'static str {
    let store = AccountStore::open(&server.db_path()).unwrap();
    store
        .add_user(NewAccount {
            name: "writer",
            home: Some(USER),
            permissions: Some("elw".parse().unwrap()),
            password: PASSWORD,
            ..NewAccount::default()
        })
        .unwrap();
    "writer"
}

#[test]
fn hash_refusals_use_the_drafts_reply_codes_and_say_what_to_do() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f.txt"), b"0123456789").unwrap();
    std::fs::create_dir(server.home().join("dir")).unwrap();

    let mut ftp = Dialogue::connect(&server);
    // FEAT before login already lists the algorithms, SHA-256 selected (§3.1, §5).
    let feat = ftp.command("FEAT");
    assert!(
        feat.text().contains("\n HASH SHA-256*;SHA-1;MD5;CRC32\n"),
        "{feat:?}"
    );
    for x in ["XCRC", "XMD5", "XSHA1", "XSHA256"] {
        assert!(feat.text().contains(&format!("\n {x}\n")), "{feat:?}");
    }
    assert_eq!(ftp.command("HASH f.txt").code, 530);
    ftp.log_in(USER);

    let missing = ftp.command("HASH nothing.txt");
    assert_eq!(missing.code, 550, "{missing:?}");
    assert!(missing.text().contains("no such file"), "{missing:?}");
    assert_eq!(ftp.command("HASH dir").code, 553);
    assert_eq!(ftp.command("XSHA1 dir").code, 550);
    assert_eq!(ftp.command("XMD5 nothing.txt").code, 550);

    // §3.2: an unknown algorithm is a 501 that leaves the selection alone.
    let unknown = ftp.command("OPTS HASH CRC-37");
    assert_eq!(unknown.code, 501, "{unknown:?}");
    assert!(unknown.text().contains("FEAT lists"), "{unknown:?}");
    assert_eq!(ftp.command("OPTS HASH").text(), "200 SHA-256");
    assert_eq!(ftp.command("OPTS HASH md5").text(), "200 MD5");
    assert!(
        ftp.command("FEAT")
            .text()
            .contains(" HASH SHA-256;SHA-1;MD5*;CRC32"),
    );

    // RANG: a reversed range is a 501 (RANG 1 0 is the reset), and a transfer after a RANG is
    // refused rather than sent whole.
    assert_eq!(ftp.command("RANG 5 3").code, 501);
    assert_eq!(ftp.command("RANG 1 0").code, 350);
    assert_eq!(ftp.command("RANG 0 4").code, 350);
    let retr = ftp.command("RETR f.txt");
    assert_eq!(retr.code, 504, "{retr:?}");
    assert!(retr.text().contains("RANG 1 0"), "{retr:?}");
    // The RANG was for that command only: HASH now covers the whole file.
    let whole = ftp.command("HASH f.txt");
    assert!(whole.text().starts_with("213 MD5 0-9 "), "{whole:?}");
    // A RANG past the end hashes nothing; a REST past the end is refused as for RETR.
    assert_eq!(ftp.command("RANG 20 30").code, 350);
    let beyond = ftp.command("HASH f.txt");
    assert!(beyond.text().starts_with("213 MD5 10-10 "), "{beyond:?}");
    assert_eq!(ftp.command("REST 11").code, 350);
    assert_eq!(ftp.command("HASH f.txt").code, 554);
    let past_end = ftp.command("XCRC f.txt 0 11");
    assert_eq!(past_end.code, 501);
    assert!(past_end.text().contains("(10 bytes)"), "{past_end:?}");
    assert_eq!(ftp.command("XCRC f.txt 5 4").code, 501);
    assert_eq!(ftp.command("XSHA256 ../../etc/passwd").code, 550);

    // REIN starts over: the selection is back to SHA-256 (§3.2).
    assert_eq!(ftp.command("REIN").code, 220);
    ftp.log_in(USER);
    assert_eq!(ftp.command("OPTS HASH").text(), "200 SHA-256");
    drop(ftp);

    // §6: only what the user may download. HASH says so with 552 (§3.5), XMD5 with 550.
    let writer = add_writer(&server);
    let mut ftp = Dialogue::connect(&server);
    ftp.log_in(writer);
    let refused = ftp.command("HASH f.txt");
    assert_eq!(refused.code, 552, "{refused:?}");
    assert!(refused.text().contains("download"), "{refused:?}");
    assert_eq!(ftp.command("XMD5 f.txt").code, 550);
}

#[cfg(feature = "s3")]
#[test]
fn object_storage_offers_hash_and_streams_it_from_ranged_reads() {
    use crate::garage::garage;
    let garage = garage();
    let dir = tempfile::tempdir().unwrap();
    let added = run_with_input(
        &mut ferry_command(
            dir.path(),
            &["--db", "ferry.db", "user", "add", USER, "--password-stdin"],
        ),
        PASSWORD,
        LIMIT,
    );
    assert_success(&added);
    let url = format!("s3://{}/{}", garage.bucket, garage.new_prefix());
    let node = FerryServe::start(
        ferry_command(
            dir.path(),
            &[
                "--db",
                "ferry.db",
                "serve",
                "127.0.0.1:0",
                "--storage",
                &url,
            ],
        )
        .env("AWS_ACCESS_KEY_ID", &garage.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &garage.secret)
        .env("AWS_ENDPOINT_URL", &garage.endpoint)
        .env("AWS_REGION", &garage.region),
    );
    let content = test_content();
    curl_upload(node.addr, "data.bin", &content);
    curl_upload(node.addr, "empty.bin", b"");
    let mut ftp = node.connect();
    assert!(
        ftp.command("FEAT")
            .text()
            .contains(" HASH SHA-256*;SHA-1;MD5;CRC32"),
    );
    drop(ftp);
    check_every_algorithm_through_ftplib(node.addr.port(), &content);
}

/// Keeps the helper honest: the reference tools agree with published digests.
#[test]
fn reference_tools_give_the_published_check_values() {
    assert_eq!(reference_digest("CRC32", b"123456789"), "cbf43926");
    assert_eq!(
        reference_digest("MD5", b"abc"),
        "900150983cd24fb0d6963f7d28e17f72"
    );
    let _ = Path::new(QUOTE_SCRIPT).canonicalize().unwrap();
}
