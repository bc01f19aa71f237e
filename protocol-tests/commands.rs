//! Hand-written control dialogues for what real clients never send: every command of RFC 959 and
//! its extensions, wrong sequences, bad arguments, Telnet bytes, over-long lines, hostile paths.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::dialogue::*;
use crate::support::*;

#[test]
fn login_commands_answer_in_sequence() {
    let server = TestServer::start();
    let mut ftp = Dialogue::connect(&server);
    ftp.expect("PASS whatever", 503);
    for refused in [
        "PWD", "CWD /", "LIST", "PASV", "RETR x", "MKD d", "STAT", "SIZE x",
    ] {
        let reply = ftp.expect(refused, 530);
        assert!(reply.text().contains("log in"), "{reply:?}");
    }
    // What may come before login does.
    ftp.expect("NOOP", 200);
    ftp.expect("SYST", 215);
    ftp.expect("FEAT", 211);
    ftp.expect("HELP", 214);
    ftp.expect(&format!("USER {USER}"), 331);
    ftp.expect("PASS wrong", 530);
    ftp.log_in(USER);
    ftp.expect(&format!("PASS {PASSWORD}"), 503);
    ftp.expect("ACCT billing", 202);
    ftp.expect("PWD", 257);
    // REIN forgets the user but keeps the connection.
    ftp.expect("REIN", 220);
    ftp.expect("PWD", 530);
    ftp.log_in(READER);
    // A read-only account: listing and downloads only (permission letters "elr").
    std::fs::write(server.home().join("shared.txt"), b"shared").unwrap();
    for refused in [
        "MKD not-allowed",
        "DELE shared.txt",
        "RNFR shared.txt",
        "MFMT 20200101000000 shared.txt",
        "SITE CHMOD 600 shared.txt",
    ] {
        let reply = ftp.expect(refused, 550);
        assert!(
            reply.text().contains("Permission denied"),
            "{refused}: {reply:?}"
        );
    }
    ftp.pasv();
    ftp.expect("STOR new.txt", 550);
    ftp.pasv();
    ftp.expect("APPE shared.txt", 550);
    let (got, done) = ftp.download("RETR shared.txt");
    assert_eq!((got.as_slice(), done.code), (&b"shared"[..], 226));
    assert!(!server.home().join("new.txt").exists());
    ftp.expect("QUIT", 221);
    assert!(ftp.is_closed());
}

#[test]
fn anonymous_logins_are_off_by_default() {
    let server = TestServer::start();
    for user in ["anonymous", "ftp"] {
        let mut ftp = Dialogue::connect(&server);
        ftp.expect(&format!("USER {user}"), 331);
        ftp.expect("PASS guest@example.com", 530);
    }
}

#[test]
fn utf8_names_work_in_commands_and_replies() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("OPTS UTF8 ON", 200);
    let made = ftp.expect("MKD Ελληνικά και 日本語", 257);
    assert_eq!(made.lines[0], "257 \"/Ελληνικά και 日本語\" created.");
    assert!(server.home().join("Ελληνικά και 日本語").is_dir());
    ftp.expect("CWD Ελληνικά και 日本語", 250);
    let (_, done) = ftp.upload("STOR файл.txt", "содержимое".as_bytes());
    assert_eq!(done.code, 226);
    let on_disk = server.home().join("Ελληνικά και 日本語/файл.txt");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "содержимое");
    let (names, _) = ftp.download("NLST");
    assert_eq!(String::from_utf8(names).unwrap(), "файл.txt\r\n");
}

#[test]
fn unknown_commands_are_502_and_bad_arguments_501() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("FOOBAR", 502);
    ftp.expect("XYZZ", 502);
    ftp.expect("SMNT /", 502);
    ftp.expect("LPSV", 502);
    ftp.expect("123", 500);
    for (line, code) in [
        ("CWD", 501),
        ("MKD", 501),
        ("RETR", 501),
        ("USER", 501),
        ("TYPE X", 501),
        ("TYPE E", 504),
        ("MODE B", 504),
        ("MODE Z", 501),
        ("STRU R", 504),
        ("STRU Q", 501),
        ("REST abc", 501),
        ("REST -1", 501),
        ("REST 99999999999999999999999", 501),
        ("ALLO many", 501),
        ("PORT 1,2,3", 501),
        ("PORT 127,0,0,1,300,1", 501),
        ("EPRT |1|not-an-ip|2000|", 501),
        ("EPRT |1|127.0.0.1|70000|", 501),
        ("MFMT 2020 file", 501),
        ("MFMT 20201301000000 file", 501),
        ("OPTS FOO", 501),
        ("OPTS UTF8 MAYBE", 501),
        ("SITE FROB", 504),
        ("SITE CHMOD 999 file", 501),
        ("SITE CHMOD 644", 501),
        ("HELP FROB", 501),
        ("PBSZ x", 501),
    ] {
        ftp.expect(line, code);
    }
    // The session is still fine after all that.
    ftp.expect("NOOP", 200);
}

#[test]
fn rename_needs_rnfr_directly_before_rnto() {
    let server = TestServer::start();
    std::fs::write(server.home().join("a.txt"), b"a").unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("RNTO b.txt", 503);
    ftp.expect("RNFR missing.txt", 550);
    ftp.expect("RNTO b.txt", 503);
    ftp.expect("RNFR a.txt", 350);
    ftp.expect("NOOP", 200);
    ftp.expect("RNTO b.txt", 503);
    ftp.expect("RNFR a.txt", 350);
    ftp.expect("RNTO b.txt", 250);
    assert!(!server.home().join("a.txt").exists());
    assert_eq!(std::fs::read(server.home().join("b.txt")).unwrap(), b"a");
}

// ---------------------------------------------------------------------------------------------
// Directories and paths

#[test]
fn directory_commands_and_their_x_variants() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    assert_eq!(
        ftp.expect("PWD", 257).lines[0],
        "257 \"/\" is the current directory."
    );
    assert!(ftp.expect("MKD a", 257).lines[0].starts_with("257 \"/a\""));
    assert!(ftp.expect("XMKD a/b", 257).lines[0].starts_with("257 \"/a/b\""));
    ftp.expect("MKD a", 550);
    ftp.expect("CWD a", 250);
    assert!(ftp.expect("XPWD", 257).lines[0].starts_with("257 \"/a\""));
    ftp.expect("XCWD b", 250);
    assert!(ftp.expect("PWD", 257).lines[0].starts_with("257 \"/a/b\""));
    ftp.expect("CDUP", 250);
    assert!(ftp.expect("PWD", 257).lines[0].starts_with("257 \"/a\""));
    ftp.expect("XCUP", 250);
    assert!(ftp.expect("PWD", 257).lines[0].starts_with("257 \"/\""));
    ftp.expect("CWD missing", 550);
    std::fs::write(server.home().join("file"), b"x").unwrap();
    ftp.expect("CWD file", 550);
    ftp.expect("RMD a", 550); // not empty
    ftp.expect("DELE a", 550); // a directory
    ftp.expect("RMD file", 550); // a file
    ftp.expect("MKD x/y/z", 550); // no parents are made
    ftp.send_raw(b"MKD nul\0byte\r\n");
    assert_eq!(ftp.reply().code, 501);
    ftp.expect("RNFR a", 350);
    let into_itself = ftp.command("RNTO a/b/a");
    assert!(matches!(into_itself.code, 550 | 553), "{into_itself:?}");
    assert!(server.home().join("a/b").is_dir());
    ftp.expect("XRMD a/b", 250);
    ftp.expect("RMD a", 250);
    ftp.expect("RMD /", 550);
    assert!(!server.home().join("a").exists());
    ftp.expect("DELE file", 250);
    ftp.expect("DELE file", 550);
    assert!(!server.home().join("file").exists());
}

#[test]
fn a_quote_in_a_directory_name_is_doubled_in_257() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    let created = ftp.expect("MKD say \"hi\"", 257);
    assert_eq!(created.lines[0], "257 \"/say \"\"hi\"\"\" created.");
    assert!(server.home().join("say \"hi\"").is_dir());
    ftp.expect("CWD say \"hi\"", 250);
    assert_eq!(
        ftp.expect("PWD", 257).lines[0],
        "257 \"/say \"\"hi\"\"\" is the current directory."
    );
}

#[test]
fn paths_never_climb_out_of_the_home() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("CWD ../../..", 250);
    assert!(ftp.expect("PWD", 257).lines[0].starts_with("257 \"/\""));
    ftp.expect("CDUP", 250);
    assert!(ftp.expect("PWD", 257).lines[0].starts_with("257 \"/\""));
    let made = ftp.expect("MKD ../../escape", 257);
    assert!(made.lines[0].starts_with("257 \"/escape\""), "{made:?}");
    assert!(server.home().join("escape").is_dir());
    assert!(!server.root.join("escape").exists());
    assert!(!server.root.parent().unwrap().join("escape").exists());
    ftp.expect("MKD /escape/../../../x/./y/..", 257);
    assert!(server.home().join("x").is_dir());
    // An upload to an absolute-looking path lands in the home as well.
    let (_, done) = ftp.upload("STOR /../../../up.txt", b"up");
    assert_eq!(done.code, 226, "{done:?}");
    assert_eq!(std::fs::read(server.home().join("up.txt")).unwrap(), b"up");
    assert!(!server.root.join("up.txt").exists());
    let (listing, done) = ftp.download("NLST ../..");
    assert_eq!(done.code, 226);
    let names = String::from_utf8(listing).unwrap();
    assert!(
        names.contains("up.txt") && !names.contains(READER),
        "{names}"
    );
}

#[test]
fn symlinks_pointing_outside_the_home_are_refused() {
    let server = TestServer::start();
    let outside = server.root.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    let home = server.home();
    std::os::unix::fs::symlink(&outside, home.join("out-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), home.join("out-file")).unwrap();
    std::os::unix::fs::symlink("../outside/secret.txt", home.join("relative-out")).unwrap();
    std::fs::write(home.join("inside.txt"), b"inside").unwrap();
    std::os::unix::fs::symlink("inside.txt", home.join("in-link")).unwrap();

    let mut ftp = Dialogue::login(&server);
    ftp.expect("CWD out-dir", 550);
    ftp.expect("CWD out-dir/..", 250);
    ftp.expect("SIZE out-file", 550);
    ftp.expect("SIZE relative-out", 550);
    ftp.expect("MDTM out-file", 550);
    ftp.expect("MLST out-dir/secret.txt", 550);
    ftp.expect("MKD out-dir/new", 550);
    ftp.expect("DELE out-dir/secret.txt", 550);
    ftp.expect("TYPE I", 200);
    for target in ["out-file", "relative-out", "out-dir/secret.txt"] {
        let mut data = ftp.pasv_connect();
        let reply = ftp.command(&format!("RETR {target}"));
        assert_eq!(reply.code, 550, "RETR {target}: {reply:?}");
        let mut got = Vec::new();
        data.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = data.read_to_end(&mut got);
        assert!(got.is_empty(), "{target} leaked {got:?}");
    }
    let mut data = ftp.pasv_connect();
    let reply = ftp.command("STOR out-dir/planted.txt");
    assert_ne!(reply.code, 150, "{reply:?}");
    drop(data.write_all(b"x"));
    assert!(!outside.join("planted.txt").exists());
    let mut data = ftp.pasv_connect();
    let reply = ftp.command("LIST out-dir");
    if reply.code == 150 {
        let mut listing = String::new();
        data.read_to_string(&mut listing).unwrap();
        assert!(!listing.contains("secret"), "{listing}");
        ftp.reply();
    } else {
        assert_eq!(reply.code, 550, "{reply:?}");
    }
    // A link that stays inside the home works.
    assert_eq!(ftp.expect("SIZE in-link", 213).lines[0], "213 6");
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"secret"
    );
}

// ---------------------------------------------------------------------------------------------
// Files, transfers and their parameters

#[test]
fn size_mdtm_and_mfmt() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f.bin"), pattern(1234, 1)).unwrap();
    std::fs::create_dir(server.home().join("dir")).unwrap();
    let mut ftp = Dialogue::login(&server);
    assert_eq!(ftp.expect("SIZE f.bin", 213).lines[0], "213 1234");
    ftp.expect("SIZE dir", 550);
    ftp.expect("SIZE nothing", 550);
    let mdtm = ftp.expect("MDTM f.bin", 213);
    assert_eq!(mdtm.lines[0].len(), "213 YYYYMMDDHHMMSS".len(), "{mdtm:?}");
    let set = ftp.expect("MFMT 20200102030405 f.bin", 213);
    assert!(set.text().contains("Modify=20200102030405"), "{set:?}");
    assert_eq!(ftp.expect("MDTM f.bin", 213).lines[0], "213 20200102030405");
    let mtime = std::fs::metadata(server.home().join("f.bin"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(mtime, 1_577_934_245);
    ftp.expect("MFMT 20200102030405 nothing", 550);
}

#[test]
fn type_mode_and_stru() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE A", 200);
    ftp.expect("TYPE A N", 200);
    ftp.expect("TYPE I", 200);
    ftp.expect("TYPE L 8", 200);
    ftp.expect("type i", 200);
    ftp.expect("MODE S", 200);
    ftp.expect("STRU F", 200);
    ftp.expect("ALLO 1000", 202);
    ftp.expect("ALLO 1000 R 10", 202);
}

#[test]
fn type_a_sends_crlf_on_the_wire_and_stores_local_line_ends() {
    let server = TestServer::start();
    std::fs::write(server.home().join("unix.txt"), b"one\ntwo\n\nthree").unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE A", 200);
    let (bytes, done) = ftp.download("RETR unix.txt");
    assert_eq!(done.code, 226);
    assert_eq!(bytes, b"one\r\ntwo\r\n\r\nthree");
    let (_, done) = ftp.upload("STOR dos.txt", b"a\r\nb\r\n");
    assert_eq!(done.code, 226);
    assert_eq!(
        std::fs::read(server.home().join("dos.txt")).unwrap(),
        b"a\nb\n"
    );
    ftp.expect("TYPE I", 200);
    let (bytes, _) = ftp.download("RETR unix.txt");
    assert_eq!(bytes, b"one\ntwo\n\nthree");
    let (_, done) = ftp.upload("STOR raw.txt", b"a\r\nb\r\n");
    assert_eq!(done.code, 226);
    assert_eq!(
        std::fs::read(server.home().join("raw.txt")).unwrap(),
        b"a\r\nb\r\n"
    );
}

#[test]
fn rest_resumes_downloads_and_uploads_and_appe_appends() {
    let server = TestServer::start();
    let content = pattern(100_000, 7);
    std::fs::write(server.home().join("big.bin"), &content).unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE I", 200);
    ftp.expect("REST 60000", 350);
    let (tail, done) = ftp.download("RETR big.bin");
    assert_eq!(done.code, 226);
    assert_eq!(tail, &content[60_000..]);
    // The offset is used up by one transfer.
    let (whole, _) = ftp.download("RETR big.bin");
    assert_eq!(sha256(&whole), sha256(&content));
    // Resuming a complete download sends nothing; an offset beyond the end is refused.
    ftp.expect("REST 100000", 350);
    let (nothing, done) = ftp.download("RETR big.bin");
    assert!(nothing.is_empty() && done.code == 226, "{done:?}");
    ftp.expect("REST 100001", 350);
    ftp.pasv();
    let beyond = ftp.expect("RETR big.bin", 554);
    assert!(beyond.text().contains("beyond the end"), "{beyond:?}");
    ftp.expect("ABOR", 226);

    // Resume an upload that stopped at 40000 bytes.
    std::fs::write(server.home().join("up.bin"), &content[..40_000]).unwrap();
    ftp.expect("REST 40000", 350);
    let (_, done) = ftp.upload("STOR up.bin", &content[40_000..]);
    assert_eq!(done.code, 226);
    assert_eq!(sha256_file(&server.home().join("up.bin")), sha256(&content));

    ftp.expect("REST 999999", 350);
    ftp.pasv();
    ftp.expect("STOR up.bin", 554);
    ftp.expect("ABOR", 226);
    let (_, done) = ftp.upload("APPE up.bin", b"tail");
    assert_eq!(done.code, 226);
    let appended = std::fs::read(server.home().join("up.bin")).unwrap();
    assert_eq!(appended.len(), content.len() + 4);
    assert!(appended.ends_with(b"tail"));
    let (_, done) = ftp.upload("APPE new.bin", b"fresh");
    assert_eq!(done.code, 226);
    assert_eq!(
        std::fs::read(server.home().join("new.bin")).unwrap(),
        b"fresh"
    );
}

#[test]
fn sizes_and_offsets_beyond_4_gib_are_64_bit() {
    let server = TestServer::start();
    const FIVE_GIB: u64 = 5 << 30;
    let path = server.home().join("sparse.bin");
    {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(FIVE_GIB).unwrap();
        file.write_all_at(b"the tail", FIVE_GIB - 8).unwrap();
    }
    let mut ftp = Dialogue::login(&server);
    ftp.expect("TYPE I", 200);
    assert_eq!(
        ftp.expect("SIZE sparse.bin", 213).lines[0],
        format!("213 {FIVE_GIB}")
    );
    let mlst = ftp.expect("MLST sparse.bin", 250);
    assert!(
        mlst.text().contains(&format!("size={FIVE_GIB};")),
        "{mlst:?}"
    );
    ftp.expect(&format!("REST {}", FIVE_GIB - 8), 350);
    let (tail, done) = ftp.download("RETR sparse.bin");
    assert_eq!(done.code, 226, "{done:?}");
    assert_eq!(tail, b"the tail");

    // A resumed upload beyond 4 GiB lands at its offset (a sparse partial upload).
    let offset = (4 << 30) + 100;
    {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::File::create(server.home().join("far.bin")).unwrap();
        file.write_all_at(b"head", 0).unwrap();
        file.set_len(offset).unwrap();
    }
    ftp.expect(&format!("REST {offset}"), 350);
    let (_, done) = ftp.upload("STOR far.bin", b"far away");
    assert_eq!(done.code, 226, "{done:?}");
    let far = server.home().join("far.bin");
    assert_eq!(std::fs::metadata(&far).unwrap().len(), offset + 8);
    let mut got = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&far).unwrap(),
        &mut got,
        offset,
    )
    .unwrap();
    assert_eq!(&got, b"far away");
}

#[test]
fn stou_stores_under_unique_names() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    let mut names = Vec::new();
    for body in [&b"first"[..], b"second"] {
        let (preliminary, done) = ftp.upload("STOU", body);
        assert_eq!(done.code, 226);
        let name = preliminary.lines[0]
            .strip_prefix("150 FILE: ")
            .unwrap_or_else(|| panic!("{preliminary:?}"))
            .to_owned();
        assert_eq!(std::fs::read(server.home().join(&name)).unwrap(), body);
        names.push(name);
    }
    assert_ne!(names[0], names[1]);
    std::fs::write(server.home().join("report.txt"), b"old").unwrap();
    let (preliminary, done) = ftp.upload("STOU report.txt", b"new");
    assert_eq!(done.code, 226);
    assert_eq!(preliminary.lines[0], "150 FILE: report.txt.1");
    assert_eq!(
        std::fs::read(server.home().join("report.txt")).unwrap(),
        b"old"
    );
    assert_eq!(
        std::fs::read(server.home().join("report.txt.1")).unwrap(),
        b"new"
    );
}

#[test]
fn transfers_need_a_data_connection_first() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f"), b"x").unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("RETR f", 425);
    ftp.expect("STOR g", 425);
    ftp.expect("LIST", 425);
    ftp.expect("ABOR", 226);
    ftp.pasv();
    ftp.expect("ABOR", 226);
    ftp.expect("RETR f", 425);
}

// ---------------------------------------------------------------------------------------------
// Listings and status

#[test]
fn list_nlst_mlsd_mlst_and_stat() {
    let server = TestServer::start();
    let home = server.home();
    std::fs::write(home.join("file one.txt"), b"12345").unwrap();
    std::fs::write(home.join("日本語.txt"), b"ja").unwrap();
    std::fs::create_dir(home.join("sub")).unwrap();
    let mut ftp = Dialogue::login(&server);
    ftp.expect("OPTS UTF8 ON", 200);

    let (list, done) = ftp.download("LIST");
    assert_eq!(done.code, 226);
    let list = String::from_utf8(list).unwrap();
    let line = list
        .lines()
        .find(|l| l.ends_with(" file one.txt"))
        .expect(&list);
    assert!(line.starts_with('-') && line.contains(" 5 "), "{line}");
    assert!(
        list.lines()
            .any(|l| l.starts_with('d') && l.ends_with(" sub")),
        "{list}"
    );
    assert!(list.contains("日本語.txt"));
    let (flagged, _) = ftp.download("LIST -la");
    assert_eq!(
        String::from_utf8(flagged).unwrap().lines().count(),
        list.lines().count()
    );

    let (nlst, _) = ftp.download("NLST");
    let mut names: Vec<String> = String::from_utf8(nlst)
        .unwrap()
        .split("\r\n")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(names, ["file one.txt", "sub", "日本語.txt"]);

    let (mlsd, _) = ftp.download("MLSD");
    let mlsd = String::from_utf8(mlsd).unwrap();
    let entry = mlsd
        .lines()
        .find(|l| l.ends_with("; file one.txt"))
        .expect(&mlsd);
    for fact in ["type=file;", "size=5;", "modify=", "perm=", "unique="] {
        assert!(
            entry.to_ascii_lowercase().contains(fact),
            "{fact} missing: {entry}"
        );
    }
    assert!(mlsd.to_ascii_lowercase().contains("type=dir;"), "{mlsd}");
    let mut data = ftp.pasv_connect();
    let reply = ftp.command("MLSD file one.txt");
    drop(data.write_all(b""));
    assert_eq!(reply.code, 501, "MLSD of a file (RFC 3659 §7.2): {reply:?}");

    let mlst = ftp.expect("MLST file one.txt", 250);
    assert_eq!(mlst.lines.len(), 3, "{mlst:?}");
    assert!(mlst.lines[1].starts_with(' ') && mlst.lines[1].ends_with(" /file one.txt"));
    ftp.expect("MLST nothing", 550);
    let opts = ftp.expect("OPTS MLST type;size;", 200);
    assert!(opts.text().contains("type;size;"), "{opts:?}");
    let mlst = ftp.expect("MLST file one.txt", 250);
    assert_eq!(
        mlst.lines[1].to_ascii_lowercase(),
        " type=file;size=5; /file one.txt"
    );

    let status = ftp.expect("STAT", 211);
    assert!(status.lines.len() > 2, "{status:?}");
    assert!(status.lines.last().unwrap().starts_with("211 "));
    std::fs::write(home.join("sub/inner.txt"), b"abc").unwrap();
    let dir_status = ftp.command("STAT sub");
    assert_eq!(dir_status.code, 213, "{dir_status:?}");
    assert!(dir_status.lines.len() >= 3, "{dir_status:?}");
    assert!(
        dir_status
            .lines
            .iter()
            .any(|l| l.starts_with('-') && l.ends_with(" inner.txt")),
        "{dir_status:?}"
    );
    let file_status = ftp.command("STAT file one.txt");
    assert_eq!(file_status.code, 213, "{file_status:?}");
    assert!(
        file_status
            .lines
            .iter()
            .any(|l| l.starts_with('-') && l.ends_with(" file one.txt")),
        "{file_status:?}"
    );
    assert!(
        ftp.expect("STAT", 211)
            .text()
            .contains("Logged in as alice")
    );
    ftp.expect("STAT nothing", 550);
}

#[test]
fn help_syst_noop_opts_and_site() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f"), b"x").unwrap();
    let mut ftp = Dialogue::login(&server);
    let help = ftp.expect("HELP", 214);
    for verb in ferry::protocol::command::VERBS {
        assert!(
            help.text().split_whitespace().any(|w| w == *verb),
            "{verb} not in HELP"
        );
    }
    ftp.expect("HELP RETR", 214);
    ftp.expect("help mlsd", 214);
    assert_eq!(ftp.expect("SYST", 215).lines[0], "215 UNIX Type: L8");
    ftp.expect("NOOP", 200);
    ftp.expect("noop", 200);
    ftp.expect("OPTS UTF8 ON", 200);
    ftp.expect("OPTS UTF8 OFF", 200);
    let site = ftp.expect("SITE HELP", 214);
    assert!(site.text().contains("CHMOD"), "{site:?}");
    ftp.expect("SITE CHMOD 640 f", 200);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(server.home().join("f"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    ftp.expect("SITE CHMOD 600 missing", 550);
    ftp.expect("SITE CHMOD 000 /", 550);
    ftp.expect("SITE CHMOD 000 ../..", 550);
    ftp.expect("PWD", 257);
    let mut reader = Dialogue::connect(&server);
    reader.log_in(READER);
    reader.expect("SITE CHMOD 777 f", 550);
}

/// The features FEAT names for the local-disk storage without TLS, each then exercised.
#[test]
fn feat_lists_exactly_what_works() {
    let server = TestServer::start();
    std::fs::write(server.home().join("f"), b"0123456789").unwrap();
    let mut ftp = Dialogue::connect(&server);
    let feat = ftp.expect("FEAT", 211);
    assert_eq!(feat.lines.first().unwrap(), "211-Extensions supported:");
    assert!(feat.lines.last().unwrap().starts_with("211 "));
    let mut features: Vec<&str> = feat.lines[1..feat.lines.len() - 1]
        .iter()
        .map(|l| {
            l.strip_prefix(' ')
                .unwrap_or_else(|| panic!("feature line {l:?}"))
        })
        .collect();
    features.sort_unstable();
    let mlst = features
        .iter()
        .find(|f| f.starts_with("MLST "))
        .unwrap()
        .to_string();
    assert_eq!(
        features,
        [
            "EPRT",
            "EPSV",
            "HASH SHA-256*;SHA-1;MD5;CRC32",
            "MDTM",
            "MFMT",
            &mlst,
            "PASV",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
            "XCRC",
            "XMD5",
            "XSHA1",
            "XSHA256"
        ]
    );
    for fact in ["type*", "size*", "modify*", "perm*", "unique*", "unix.mode"] {
        assert!(mlst.to_ascii_lowercase().contains(fact), "{mlst}");
    }
    // Every one of them works.
    ftp.log_in(USER);
    ftp.expect("OPTS UTF8 ON", 200);
    ftp.expect("SIZE f", 213);
    ftp.expect("MDTM f", 213);
    ftp.expect("MFMT 20210101000000 f", 213);
    ftp.expect("MLST f", 250);
    ftp.expect("HASH f", 213);
    for x in ["XCRC", "XMD5", "XSHA1", "XSHA256"] {
        ftp.expect(&format!("{x} f"), 250);
    }
    ftp.expect("CWD /", 250); // TVFS: slash-separated paths from the root
    ftp.pasv();
    ftp.epsv();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    ftp.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
    ftp.expect("REST 5", 350);
    let (tail, _) = ftp.download("RETR f");
    assert_eq!(tail, b"56789");

    // With active mode turned off, FEAT no longer offers EPRT.
    let passive_only = TestServer::start_with(|config| config.active_mode = false);
    let mut ftp = Dialogue::connect(&passive_only);
    let feat = ftp.expect("FEAT", 211).text();
    assert!(!feat.contains("EPRT") && feat.contains("EPSV"), "{feat}");
}

// ---------------------------------------------------------------------------------------------
// Line handling

#[test]
fn a_line_over_8_kib_is_refused_and_the_session_goes_on() {
    let server = TestServer::start();
    let mut ftp = Dialogue::connect(&server);
    let long = format!("USER {}", "a".repeat(9000));
    let reply = ftp.command(&long);
    assert_eq!(reply.code, 500, "{reply:?}");
    ftp.expect("NOOP", 200);
    ftp.log_in(USER);
    let long_path = format!("MKD {}", "d".repeat(64 * 1024));
    ftp.expect(&long_path, 500);
    // Sent in pieces, without a line end for a while, it is still one over-long line.
    for _ in 0..20 {
        ftp.send_raw(&[b'x'; 1000]);
    }
    ftp.send_raw(b"\r\n");
    assert_eq!(ftp.reply().code, 500);
    assert!(ftp.expect("PWD", 257).lines[0].starts_with("257 \"/\""));
    // Just under the limit is an ordinary line (here a name too long for the file system).
    let near = format!("SIZE {}", "n".repeat(8000));
    assert_eq!(ftp.command(&near).code, 553);
    ftp.expect("NOOP", 200);
}

#[test]
fn telnet_sequences_are_stripped() {
    let server = TestServer::start();
    let mut ftp = Dialogue::login(&server);
    // What clients send before ABOR: IAC IP, IAC DM (RFC 959 §4.1.3).
    ftp.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(ftp.reply().code, 226);
    // ftplib sends DM as TCP urgent data, which stays out of the stream: IAC IP IAC, then ABOR.
    ftp.send_raw(b"\xff\xf4\xffABOR\r\n");
    assert_eq!(ftp.reply().code, 226);
    ftp.send_raw(b"NO\xff\xf1OP\r\n"); // IAC NOP inside a verb
    assert_eq!(ftp.reply().code, 200);
    // IAC WILL/DO option negotiation is removed too.
    ftp.send_raw(b"\xff\xfb\x01\xff\xfd\x03PWD\r\n");
    assert_eq!(ftp.reply().code, 257);
    // An escaped 0xFF (IAC IAC) is a data byte: here it makes the name invalid UTF-8.
    ftp.send_raw(b"MKD a\xff\xffb\r\n");
    assert_eq!(ftp.reply().code, 501);
    ftp.send_raw(b"NOOP\n"); // a bare LF ends a line too
    assert_eq!(ftp.reply().code, 200);
}

/// A file put on disk by other means may have a line break in its name; replies that carry
/// names over the control connection must not let it end the reply early.
#[test]
fn names_with_line_breaks_cannot_inject_replies() {
    let server = TestServer::start();
    std::fs::write(server.home().join("evil\n213 End of status."), b"x").unwrap();
    let mut ftp = Dialogue::login(&server);
    let status = ftp.expect("STAT /", 213);
    assert_eq!(status.lines.last().unwrap(), "213 End of status.");
    assert!(
        status.lines[1..status.lines.len() - 1]
            .iter()
            .all(|l| !l.starts_with("213 ")),
        "{status:?}"
    );
    // The dialogue is still in step: the next replies answer the next commands.
    ftp.expect("NOOP", 200);
    assert_eq!(ftp.expect("PWD", 257).lines.len(), 1);
}
