//! [`Dialogue`]: the raw control connection the tests drive for what real clients never send —
//! plain `std` sockets, one reply at a time, multi-line replies read to their end — and the small
//! socket helpers around it. It knows nothing of the test servers (`support` adds the ways in).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long any single read may take before the test fails instead of hanging.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// One complete reply: its code and every line, CRLFs removed.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// All lines joined with `\n`, for `contains` checks.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A raw control connection.
pub struct Dialogue {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Dialogue {
    /// Connects and returns the dialogue together with the greeting (which may be a refusal).
    pub fn open(addr: SocketAddr) -> (Self, Reply) {
        Self::open_stream(TcpStream::connect(addr).expect("connecting to the server"))
    }

    /// Connects from a chosen local address (any 127.x.y.z is local on Linux).
    pub fn open_from(addr: SocketAddr, local: IpAddr) -> (Self, Reply) {
        Self::open_stream(connect_from(addr, local))
    }

    /// Takes over a connected stream and reads the greeting.
    pub fn open_stream(stream: TcpStream) -> (Self, Reply) {
        stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
        let mut dialogue = Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = dialogue.reply();
        (dialogue, greeting)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("writing a command");
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one complete reply (RFC 959 §4.2: `xyz-` opens, `xyz ` closes a multi-line reply).
    #[track_caller]
    pub fn reply(&mut self) -> Reply {
        let first = self.line();
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not a reply line: {first:?}"));
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let line = self.line();
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Reply { code, lines }
    }

    #[track_caller]
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("reading a reply line");
        assert!(!line.is_empty(), "the server closed the control connection");
        assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    /// Sends `line` and returns the first line of the reply, or `None` if the connection is
    /// gone (closed or reset) — for tests that race against the server closing it.
    pub fn try_command(&mut self, line: &str) -> Option<String> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .ok()?;
        let mut first = String::new();
        match self.reader.read_line(&mut first) {
            Ok(n) if n > 0 => Some(first.trim_end().to_owned()),
            _ => None,
        }
    }

    /// Sends `line` and returns the reply.
    #[track_caller]
    pub fn command(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends `line` and checks the reply code.
    #[track_caller]
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.command(line);
        assert_eq!(reply.code, code, "{line:?} got {reply:?}");
        reply
    }

    /// True once the server has closed the connection (reads and discards anything before).
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    /// PASV: the address the reply names.
    #[track_caller]
    pub fn pasv(&mut self) -> SocketAddr {
        let reply = self.expect("PASV", 227);
        ferry::protocol::address::parse_pasv_reply(&reply.lines[0][4..])
            .unwrap_or_else(|e| panic!("bad PASV reply {reply:?}: {e}"))
            .into()
    }

    /// PASV and connect to the port it names.
    #[track_caller]
    pub fn pasv_connect(&mut self) -> TcpStream {
        data_stream(TcpStream::connect(self.pasv()).expect("connecting to the PASV port"))
    }

    /// EPSV: the port the reply names.
    #[track_caller]
    pub fn epsv(&mut self) -> u16 {
        let reply = self.expect("EPSV", 229);
        epsv_port(&reply)
    }

    /// Runs a download (`RETR`, `LIST`, ...) over PASV and returns the bytes and the final reply.
    #[track_caller]
    pub fn download(&mut self, command: &str) -> (Vec<u8>, Reply) {
        let mut data = self.pasv_connect();
        self.expect(command, 150);
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)
            .expect("reading the data connection");
        (bytes, self.reply())
    }

    /// Runs an upload (`STOR`, `APPE`, ...) over PASV; returns the `150` and the final reply.
    #[track_caller]
    pub fn upload(&mut self, command: &str, bytes: &[u8]) -> (Reply, Reply) {
        let mut data = self.pasv_connect();
        let preliminary = self.expect(command, 150);
        data.write_all(bytes).expect("writing the data connection");
        drop(data);
        (preliminary, self.reply())
    }
}

/// The port of a `229 Entering Extended Passive Mode (|||port|)` reply.
pub fn epsv_port(reply: &Reply) -> u16 {
    let line = &reply.lines[0];
    let start = line.find("(|||").expect("EPSV reply has (|||port|)") + 4;
    let end = line[start..].find('|').unwrap() + start;
    line[start..end].parse().unwrap()
}

/// A TCP connection from `local` (port chosen by the system) to `addr`.
pub fn connect_from(addr: SocketAddr, local: IpAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let stream = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(socket.connect(addr))
        .expect("connecting from a chosen address");
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// `len` consecutive ports that are free right now.
pub fn free_port_range(len: u16) -> ferry::server::PortRanges {
    loop {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let start = probe.local_addr().unwrap().port();
        drop(probe);
        if start > 65535 - len {
            continue;
        }
        if (start..start + len).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return format!("{}-{}", start, start + len - 1).parse().unwrap();
        }
    }
}

/// Polls `attempt` until it returns `Some`, failing after `limit`.
#[track_caller]
pub fn eventually<T>(limit: Duration, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn data_stream(stream: TcpStream) -> TcpStream {
    stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
    stream
}

// ---------------------------------------------------------------------------------------------
// Login and sequence
