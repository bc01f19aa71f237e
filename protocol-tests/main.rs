//! Wire tests: a real ferry server on 127.0.0.1 port 0, driven by real FTP clients (curl, lftp,
//! tnftp, Python's ftplib, the suppaftp crate) and by hand-written dialogues for the corners no
//! client reaches.

mod contrib;
mod deploy;
mod smoke;
#[allow(
    dead_code,
    reason = "helpers are shared by the test modules that follow"
)]
mod support;
