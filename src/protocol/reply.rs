//! Replies: codes, the encoder the server writes with, and the parser the client reads with.
//!
//! RFC 959 §4.2: a reply is `CODE SP text CRLF`, or a multi-line reply that opens with `CODE-text`
//! and ends with a line `CODE SP text`. Lines in between may be anything except a line that starts
//! with the code and a space; the encoder indents every inner line that starts with a digit, so
//! no text — a file name with a newline in it, say — can end a reply early or forge another.

use std::borrow::Cow;
use std::fmt;

use bytes::BytesMut;

/// A three-digit FTP reply code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

impl ReplyCode {
    pub const RESTART_MARKER: Self = Self(110);
    pub const DATA_ALREADY_OPEN: Self = Self(125);
    pub const FILE_STATUS_OK: Self = Self(150);
    pub const COMMAND_OK: Self = Self(200);
    pub const COMMAND_SUPERFLUOUS: Self = Self(202);
    pub const SYSTEM_STATUS: Self = Self(211);
    pub const DIRECTORY_STATUS: Self = Self(212);
    pub const FILE_STATUS: Self = Self(213);
    pub const HELP: Self = Self(214);
    pub const SYSTEM_TYPE: Self = Self(215);
    pub const SERVICE_READY: Self = Self(220);
    pub const CLOSING_CONTROL: Self = Self(221);
    pub const DATA_OPEN_NO_TRANSFER: Self = Self(225);
    pub const CLOSING_DATA: Self = Self(226);
    pub const PASSIVE_MODE: Self = Self(227);
    pub const EXTENDED_PASSIVE_MODE: Self = Self(229);
    pub const LOGGED_IN: Self = Self(230);
    pub const AUTH_OK: Self = Self(234);
    pub const FILE_ACTION_OK: Self = Self(250);
    pub const PATH_CREATED: Self = Self(257);
    pub const NEED_PASSWORD: Self = Self(331);
    pub const NEED_ACCOUNT: Self = Self(332);
    pub const FILE_ACTION_PENDING: Self = Self(350);
    pub const SERVICE_NOT_AVAILABLE: Self = Self(421);
    pub const CANT_OPEN_DATA: Self = Self(425);
    pub const TRANSFER_ABORTED: Self = Self(426);
    pub const FILE_BUSY: Self = Self(450);
    pub const LOCAL_ERROR: Self = Self(451);
    pub const INSUFFICIENT_STORAGE: Self = Self(452);
    pub const SYNTAX_ERROR: Self = Self(500);
    pub const ARGUMENT_SYNTAX_ERROR: Self = Self(501);
    pub const NOT_IMPLEMENTED: Self = Self(502);
    pub const BAD_SEQUENCE: Self = Self(503);
    pub const PARAMETER_NOT_IMPLEMENTED: Self = Self(504);
    /// RFC 2428: the network protocol is not supported; RFC 4217 reuses it for a failed data-channel
    /// TLS negotiation.
    pub const NETWORK_PROTOCOL_NOT_SUPPORTED: Self = Self(522);
    /// RFC 2228: the data connection cannot be opened with this PROT setting.
    pub const DATA_PROTECTION_REQUIRED: Self = Self(521);
    pub const NOT_LOGGED_IN: Self = Self(530);
    /// RFC 4217: request denied for policy reasons (TLS required).
    pub const DENIED_FOR_POLICY: Self = Self(534);
    /// RFC 2228: command protection level denied for policy reasons (CCC refused).
    pub const COMMAND_PROTECTION_DENIED: Self = Self(533);
    /// RFC 4217: the requested PROT level is not supported by policy.
    pub const PROTECTION_LEVEL_DENIED: Self = Self(536);
    pub const FILE_UNAVAILABLE: Self = Self(550);
    pub const PAGE_TYPE_UNKNOWN: Self = Self(551);
    pub const EXCEEDED_STORAGE: Self = Self(552);
    pub const FILE_NAME_NOT_ALLOWED: Self = Self(553);
    /// RFC 3659 §5.4: the REST offset cannot be used with this file.
    pub const INVALID_REST_PARAMETER: Self = Self(554);

    /// A code from its number; `None` outside 100..=599.
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 100 && code <= 599 {
            Some(Self(code))
        } else {
            None
        }
    }

    pub const fn get(self) -> u16 {
        self.0
    }

    /// 1yz: a preliminary reply; another reply follows.
    pub const fn is_preliminary(self) -> bool {
        self.0 < 200
    }

    /// 2yz and 3yz: the command was accepted.
    pub const fn is_positive(self) -> bool {
        self.0 >= 200 && self.0 < 400
    }

    /// 4yz and 5yz.
    pub const fn is_negative(self) -> bool {
        self.0 >= 400
    }

    fn digits(self) -> [u8; 3] {
        [
            b'0' + (self.0 / 100) as u8,
            b'0' + (self.0 / 10 % 10) as u8,
            b'0' + (self.0 % 10) as u8,
        ]
    }
}

impl fmt::Debug for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One reply: a code and its text. A text with `\n` in it is sent as a multi-line reply.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: ReplyCode,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub fn new(code: ReplyCode, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// A multi-line reply from its lines (first line, inner lines, last line).
    pub fn multiline<I, S>(code: ReplyCode, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut text = String::new();
        for (i, line) in lines.into_iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(line.as_ref());
        }
        Self::new(code, text)
    }

    /// The lines of the text, as the encoder will send them (without code prefixes).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }

    /// Appends the wire form of the reply to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let digits = self.code.digits();
        let mut lines = self.text.split('\n').peekable();
        let first = lines.next().unwrap_or("");
        if lines.peek().is_none() {
            out.extend_from_slice(&digits);
            out.extend_from_slice(b" ");
            push_clean(out, first);
            out.extend_from_slice(b"\r\n");
            return;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"-");
        push_clean(out, first);
        out.extend_from_slice(b"\r\n");
        while let Some(line) = lines.next() {
            if lines.peek().is_none() {
                out.extend_from_slice(&digits);
                out.extend_from_slice(b" ");
                push_clean(out, line);
            } else {
                // An inner line must never look like a reply line (RFC 959 §4.2).
                // Judged after cleaning: a stray CR must not hide a leading digit.
                let first_kept = line.bytes().find(|&b| b != b'\r');
                if first_kept.is_some_and(|b| b.is_ascii_digit()) {
                    out.extend_from_slice(b" ");
                }
                push_clean(out, line);
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.text.len() + 8);
        self.encode(&mut out);
        out
    }
}

/// Writes text without carriage returns: a stray CR must not end a line early for a lenient client.
fn push_clean(out: &mut BytesMut, text: &str) {
    if !text.contains('\r') {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for piece in text.split('\r') {
        out.extend_from_slice(piece.as_bytes());
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.code, self.text)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text.replace('\n', " / "))
    }
}

/// Why a reply from a server could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyParseError {
    #[error("the server sent a line that is not an FTP reply: {0:?}")]
    NotAReply(String),
    #[error("the server sent a reply longer than {0} bytes")]
    TooLong(usize),
}

/// The longest reply the parser accepts, all lines together (FEAT and HELP replies are a few KiB).
pub const MAX_REPLY_LEN: usize = 64 * 1024;

/// Reads one complete reply from the start of `buf`.
///
/// Returns the reply and how many bytes it took, or `Ok(None)` if more bytes are needed. Lines may
/// end in CRLF or a bare LF. The text of a multi-line reply keeps its inner lines as sent and loses
/// the code prefixes of its first and last lines.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyParseError> {
    let Some(first_end) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_REPLY_LEN {
            Err(ReplyParseError::TooLong(MAX_REPLY_LEN))
        } else {
            Ok(None)
        };
    };
    let first = trim_line_end(&buf[..first_end]);
    let (code, separator, first_text) = match reply_line_start(first) {
        Some(parts) => parts,
        None => {
            return Err(ReplyParseError::NotAReply(
                String::from_utf8_lossy(first).into_owned(),
            ));
        }
    };
    if separator == b' ' {
        let reply = Reply::new(code, String::from_utf8_lossy(first_text).into_owned());
        return Ok(Some((reply, first_end + 1)));
    }
    let mut text = String::from_utf8_lossy(first_text).into_owned();
    let mut pos = first_end + 1;
    loop {
        let Some(len) = memchr::memchr(b'\n', &buf[pos..]) else {
            return if buf.len() > MAX_REPLY_LEN {
                Err(ReplyParseError::TooLong(MAX_REPLY_LEN))
            } else {
                Ok(None)
            };
        };
        let line = trim_line_end(&buf[pos..pos + len]);
        pos += len + 1;
        text.push('\n');
        match reply_line_start(line) {
            Some((line_code, b' ', last_text)) if line_code == code => {
                text.push_str(&String::from_utf8_lossy(last_text));
                return Ok(Some((Reply::new(code, text), pos)));
            }
            _ => text.push_str(&String::from_utf8_lossy(line)),
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits `CODE SEP text`; a bare `CODE` counts as `CODE SP` with no text.
fn reply_line_start(line: &[u8]) -> Option<(ReplyCode, u8, &[u8])> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let code = ReplyCode::new(number)?;
    match line.get(3) {
        None => Some((code, b' ', &[])),
        Some(&sep @ (b' ' | b'-')) => Some((code, sep, &line[4..])),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        String::from_utf8(reply.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn an_inner_line_led_by_a_digit_after_a_stray_cr_is_indented() {
        // Found by the reply_parser fuzz target: the CR is dropped, the digit must not lead.
        let reply = Reply::new(ReplyCode::SYSTEM_STATUS, "Features:\n\r211 x\nEnd");
        assert_eq!(wire(&reply), "211-Features:\r\n 211 x\r\n211 End\r\n");
        let (parsed, _) = parse_reply(wire(&reply).as_bytes()).unwrap().unwrap();
        assert_eq!(parsed.to_bytes(), reply.to_bytes());
    }

    #[test]
    fn encoding_a_reply_into_a_buffer_with_room_does_not_allocate() {
        let mut out = BytesMut::with_capacity(1024);
        assert_no_alloc::reset_violation_count();
        assert_no_alloc::assert_no_alloc(|| {
            Reply::new(ReplyCode::CLOSING_DATA, "Transfer complete.").encode(&mut out);
            Reply::new(ReplyCode::FILE_STATUS_OK, "Opening data connection.").encode(&mut out);
        });
        assert_eq!(assert_no_alloc::violation_count(), 0);
        assert_eq!(
            &out[..],
            b"226 Transfer complete.\r\n150 Opening data connection.\r\n"
        );
    }

    #[test]
    fn single_line_reply() {
        assert_eq!(wire(&Reply::new(ReplyCode::COMMAND_OK, "OK")), "200 OK\r\n");
    }

    #[test]
    fn multi_line_reply_indents_inner_lines_that_start_with_a_digit() {
        let reply = Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            ["Features:", " MDTM", "226 forged", "End"],
        );
        assert_eq!(
            wire(&reply),
            "211-Features:\r\n MDTM\r\n 226 forged\r\n211 End\r\n"
        );
    }

    #[test]
    fn carriage_returns_in_text_are_dropped() {
        assert_eq!(
            wire(&Reply::new(ReplyCode::FILE_UNAVAILABLE, "a\rb")),
            "550 ab\r\n"
        );
    }

    #[test]
    fn parses_single_and_multi_line_replies() {
        let buf = b"220 ready\r\n211-Features:\r\n MDTM\r\n211 End\r\n";
        let (first, used) = parse_reply(buf).unwrap().unwrap();
        assert_eq!(first, Reply::new(ReplyCode::SERVICE_READY, "ready"));
        let (second, used2) = parse_reply(&buf[used..]).unwrap().unwrap();
        assert_eq!(second.code, ReplyCode::SYSTEM_STATUS);
        assert_eq!(
            second.lines().collect::<Vec<_>>(),
            ["Features:", " MDTM", "End"]
        );
        assert_eq!(used + used2, buf.len());
    }

    #[test]
    fn multi_line_reply_ends_only_at_its_own_code() {
        let buf = b"150-a\r\n226 not yet\r\n150 done\r\n";
        let (reply, used) = parse_reply(buf).unwrap().unwrap();
        assert_eq!(reply.code, ReplyCode::FILE_STATUS_OK);
        assert_eq!(
            reply.lines().collect::<Vec<_>>(),
            ["a", "226 not yet", "done"]
        );
        assert_eq!(used, buf.len());
    }

    #[test]
    fn incomplete_reply_asks_for_more() {
        assert_eq!(parse_reply(b"211-Features:\r\n MDTM\r\n"), Ok(None));
        assert_eq!(parse_reply(b"220 rea"), Ok(None));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            parse_reply(b"hello\r\n"),
            Err(ReplyParseError::NotAReply(_))
        ));
        assert!(matches!(
            parse_reply(b"099 x\r\n"),
            Err(ReplyParseError::NotAReply(_))
        ));
    }

    #[test]
    fn encoder_and_parser_round_trip() {
        for reply in [
            Reply::new(ReplyCode::PATH_CREATED, "\"/a\"\"b\" created"),
            Reply::multiline(
                ReplyCode::HELP,
                ["Commands:", " USER PASS", "2 things", "OK"],
            ),
        ] {
            let bytes = reply.to_bytes();
            let (parsed, used) = parse_reply(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(parsed.code, reply.code);
            // Inner lines that began with a digit come back indented by one space.
            let expected: Vec<String> = reply
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    let inner = i > 0 && i + 1 < reply.lines().count();
                    if inner && l.starts_with(|c: char| c.is_ascii_digit()) {
                        format!(" {l}")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            assert_eq!(parsed.lines().collect::<Vec<_>>(), expected);
        }
    }
}
