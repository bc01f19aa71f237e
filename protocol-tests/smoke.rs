//! First contact: a login, a PASV upload and download by hand.

use std::io::{Read, Write};

use crate::dialogue::Dialogue;
use crate::support::*;

#[test]
fn raw_session_uploads_and_downloads() {
    let server = TestServer::start();
    let mut session = Dialogue::login(&server);
    session.expect("TYPE I", 200);
    let mut data = session.pasv_connect();
    session.expect("STOR hello.txt", 150);
    data.write_all(b"hello world").unwrap();
    drop(data);
    let done = session.reply();
    assert_eq!(done.code, 226, "{done:?}");
    assert_eq!(
        std::fs::read(server.home().join("hello.txt")).unwrap(),
        b"hello world"
    );

    let mut data = session.pasv_connect();
    session.expect("RETR hello.txt", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(session.reply().code, 226);
    assert_eq!(got, b"hello world");
    session.expect("QUIT", 221);
}
