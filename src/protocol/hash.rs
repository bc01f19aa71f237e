//! File hashes on the control connection, as pure values: the algorithms of `HASH`
//! (draft-bryan-ftpext-hash-02) and of the older `XCRC`/`XMD5`/`XSHA1`/`XSHA256` commands, their
//! arguments, the `RANG` selection HASH honours (draft-bryan-ftp-range-09), and the replies.
//!
//! Ranges meet the wire in two shapes. `RANG start end` and the `213` reply of HASH name the last
//! byte (the end is inclusive: "RANG 0 49" is 50 bytes, draft-bryan-ftp-range-09 §3). The X
//! commands take `start end` as offsets with the end exclusive, as ProFTPD's mod_digest and
//! GlobalSCAPE read them, so `XSHA256 f 5 5` hashes no byte at all. Inside ferry a range is
//! always a start and a length ([`ByteSpan`]).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use std::fmt;

/// The algorithms ferry computes. HASH uses the session's selection (SHA-256 until `OPTS HASH`
/// changes it: §5 asks for nothing weaker than SHA-1 as the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlgorithm {
    #[default]
    Sha256,
    Sha1,
    Md5,
    /// The CRC-32 of zlib and `cksum -a crc32b` (ISO-HDLC), not POSIX `cksum`.
    Crc32,
}

impl HashAlgorithm {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [Self; 4] = [Self::Sha256, Self::Sha1, Self::Md5, Self::Crc32];

    /// The name HASH, OPTS HASH and FEAT use: IANA's "Hash Function Textual Names" (§3.1);
    /// CRC32 has none there and is spelt as ProFTPD and FileZilla Server spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha1 => "SHA-1",
            Self::Md5 => "MD5",
            Self::Crc32 => "CRC32",
        }
    }

    /// Parses a name case-insensitively (§3.1), also without its dash (`SHA256`), as clients
    /// write it.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        let known: [(&[u8], Self); 7] = [
            (b"SHA-256", Self::Sha256),
            (b"SHA256", Self::Sha256),
            (b"SHA-1", Self::Sha1),
            (b"SHA1", Self::Sha1),
            (b"MD5", Self::Md5),
            (b"CRC32", Self::Crc32),
            (b"CRC-32", Self::Crc32),
        ];
        known
            .iter()
            .find(|(spelling, _)| spelling.eq_ignore_ascii_case(name))
            .map(|&(_, algorithm)| algorithm)
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The FEAT line (§3.1): every algorithm, the selected one marked with `*`, as in
/// `HASH SHA-256*;SHA-1;MD5;CRC32`.
pub fn feat_line(selected: HashAlgorithm) -> String {
    let list: Vec<String> = HashAlgorithm::ALL
        .iter()
        .map(|&algorithm| {
            let mark = if algorithm == selected { "*" } else { "" };
            format!("{algorithm}{mark}")
        })
        .collect();
    format!("HASH {}", list.join(";"))
}

/// A stretch of a file: `len` bytes from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSpan {
    pub start: u64,
    pub len: u64,
}

impl ByteSpan {
    /// The `start-end` of a HASH reply (§3): the end names the last byte hashed. A span of no
    /// bytes is written `start-start`, since the draft's grammar has no way to say "none"; the
    /// hash (of nothing) tells the rest.
    pub fn reply_range(self) -> (u64, u64) {
        let end = match self.len {
            0 => self.start,
            len => self.start.saturating_add(len - 1),
        };
        (self.start, end)
    }
}

/// What `RANG start end` selects (draft-bryan-ftp-range-09 §3): the bytes `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangSelection {
    pub start: u64,
    /// Inclusive, and not before `start`.
    pub end: u64,
}

impl RangSelection {
    /// The part of a file of `size` bytes this selects: a start beyond the end selects nothing,
    /// an end beyond it stops there (§4.3, as for RETR).
    pub fn within(self, size: u64) -> ByteSpan {
        let start = self.start.min(size);
        let end = self.end.saturating_add(1).min(size).max(start);
        ByteSpan {
            start,
            len: end - start,
        }
    }
}

/// Why the arguments of an X command cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XHashArgumentError {
    #[error("the end offset comes before the start")]
    EndBeforeStart,
}

/// The offsets of `XSHA256 path start end`: `start..end`, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XHashRange {
    pub start: u64,
    pub end: u64,
}

impl XHashRange {
    /// The span in a file of `size` bytes, or why there is none: the end may not pass the end of
    /// the file (as ProFTPD answers).
    pub fn within(self, size: u64) -> Result<ByteSpan, XRangeBeyondEnd> {
        if self.end > size {
            return Err(XRangeBeyondEnd { size });
        }
        Ok(ByteSpan {
            start: self.start,
            len: self.end - self.start,
        })
    }
}

/// An X command's end offset lies past the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XRangeBeyondEnd {
    pub size: u64,
}

/// Splits `path [start end]`: when the argument ends in two numbers after a path, they are the
/// offsets. A file whose name itself ends in two numbers (`a 1 2`) is reached by quoting it
/// (`"a 1 2"`), which is also how clients send names with spaces to these commands.
pub fn parse_x_hash_argument(
    arg: &[u8],
) -> Result<(&[u8], Option<XHashRange>), XHashArgumentError> {
    let mut words = arg.rsplitn(3, |&b| b == b' ');
    let (last, middle, path) = (words.next(), words.next(), words.next());
    let range = match (path, middle.and_then(decimal), last.and_then(decimal)) {
        (Some(path), Some(start), Some(end)) if !path.is_empty() => {
            if end < start {
                return Err(XHashArgumentError::EndBeforeStart);
            }
            Some((path, XHashRange { start, end }))
        }
        _ => None,
    };
    let (path, range) = match range {
        Some((path, range)) => (path, Some(range)),
        None => (arg, None),
    };
    Ok((unquote(path), range))
}

/// A name in double quotes loses them.
fn unquote(path: &[u8]) -> &[u8] {
    match path {
        [b'"', inner @ .., b'"'] if !inner.is_empty() => inner,
        other => other,
    }
}

/// A decimal number of at most 20 digits that fits in a u64.
fn decimal(word: &[u8]) -> Option<u64> {
    if word.is_empty() || word.len() > 20 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// The text of HASH's `213` reply (§3): `SHA-256 0-49 <hex> <pathname>`.
pub fn hash_reply_text(
    algorithm: HashAlgorithm,
    span: ByteSpan,
    hex: &str,
    pathname: &str,
) -> String {
    let (start, end) = span.reply_range();
    format!("{algorithm} {start}-{end} {hex} {pathname}")
}

/// A HASH reply as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashReply {
    /// The algorithm as the server named it (upper-cased).
    pub algorithm: String,
    pub start: u64,
    /// As the server wrote it: the last byte hashed.
    pub end: u64,
    /// Lower-case hexadecimal.
    pub hex: String,
    pub pathname: String,
}

/// Parses the text of a `213` reply to HASH (the last line of a multi-line one), or `None` if
/// it does not have the draft's shape.
pub fn parse_hash_reply(text: &str) -> Option<HashReply> {
    let line = text.lines().last()?.trim_end_matches('\r');
    let mut parts = line.splitn(4, ' ');
    let algorithm = parts.next()?;
    let (start, end) = parts.next()?.split_once('-')?;
    let hex = parts.next()?;
    let pathname = parts.next().unwrap_or_default();
    let valid_name = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_/.,".contains(&b));
    if !valid_name || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let start: u64 = decimal(start.as_bytes())?;
    let end: u64 = decimal(end.as_bytes())?;
    Some(HashReply {
        algorithm: algorithm.to_ascii_uppercase(),
        start,
        end,
        hex: hex.to_ascii_lowercase(),
        pathname: pathname.to_owned(),
    })
}

/// The CRC-32 that zlib, PNG and `cksum -a crc32b` compute.
static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// One running hash of any of the algorithms.
pub enum Hasher {
    Sha256(Sha256),
    Sha1(Sha1),
    Md5(Md5),
    Crc32(crc::Digest<'static, u32>),
}

impl Hasher {
    pub fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
            HashAlgorithm::Sha1 => Self::Sha1(Sha1::new()),
            HashAlgorithm::Md5 => Self::Md5(Md5::new()),
            HashAlgorithm::Crc32 => Self::Crc32(CRC32.digest()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sha1(hasher) => hasher.update(bytes),
            Self::Md5(hasher) => hasher.update(bytes),
            Self::Crc32(digest) => digest.update(bytes),
        }
    }

    /// The digest in lower-case hexadecimal.
    pub fn finish(self) -> String {
        match self {
            Self::Sha256(hasher) => hex::encode(hasher.finalize()),
            Self::Sha1(hasher) => hex::encode(hasher.finalize()),
            Self::Md5(hasher) => hex::encode(hasher.finalize()),
            Self::Crc32(digest) => format!("{:08x}", digest.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_case_insensitive_and_dashes_optional() {
        assert_eq!(
            HashAlgorithm::from_name(b"sha-256"),
            Some(HashAlgorithm::Sha256)
        );
        assert_eq!(
            HashAlgorithm::from_name(b"SHA256"),
            Some(HashAlgorithm::Sha256)
        );
        assert_eq!(HashAlgorithm::from_name(b"Md5"), Some(HashAlgorithm::Md5));
        assert_eq!(
            HashAlgorithm::from_name(b"crc32"),
            Some(HashAlgorithm::Crc32)
        );
        assert_eq!(HashAlgorithm::from_name(b"CRC-37"), None);
        assert_eq!(HashAlgorithm::from_name(b""), None);
        for algorithm in HashAlgorithm::ALL {
            assert_eq!(
                HashAlgorithm::from_name(algorithm.name().as_bytes()),
                Some(algorithm)
            );
        }
    }

    #[test]
    fn feat_marks_the_selected_algorithm() {
        assert_eq!(
            feat_line(HashAlgorithm::Sha256),
            "HASH SHA-256*;SHA-1;MD5;CRC32"
        );
        assert_eq!(
            feat_line(HashAlgorithm::Md5),
            "HASH SHA-256;SHA-1;MD5*;CRC32"
        );
    }

    #[test]
    fn rang_selections_are_inclusive_and_clamped_to_the_file() {
        let first_fifty = RangSelection { start: 0, end: 49 };
        assert_eq!(first_fifty.within(100), ByteSpan { start: 0, len: 50 });
        assert_eq!(first_fifty.within(10), ByteSpan { start: 0, len: 10 });
        let beyond = RangSelection {
            start: 200,
            end: 300,
        };
        assert_eq!(beyond.within(100), ByteSpan { start: 100, len: 0 });
        let last = RangSelection {
            start: 99,
            end: u64::MAX,
        };
        assert_eq!(last.within(100), ByteSpan { start: 99, len: 1 });
    }

    #[test]
    fn reply_ranges_name_the_last_byte() {
        assert_eq!(ByteSpan { start: 0, len: 50 }.reply_range(), (0, 49));
        assert_eq!(ByteSpan { start: 7, len: 0 }.reply_range(), (7, 7));
        assert_eq!(
            hash_reply_text(
                HashAlgorithm::Sha1,
                ByteSpan { start: 0, len: 256 },
                "80bc",
                "filename.ext"
            ),
            "SHA-1 0-255 80bc filename.ext"
        );
    }

    #[test]
    fn x_arguments_take_two_trailing_offsets() {
        assert_eq!(
            parse_x_hash_argument(b"file.bin"),
            Ok((&b"file.bin"[..], None))
        );
        assert_eq!(
            parse_x_hash_argument(b"dir/my file.bin 10 20"),
            Ok((
                &b"dir/my file.bin"[..],
                Some(XHashRange { start: 10, end: 20 })
            ))
        );
        // One number is part of the name (ProFTPD refuses it as ambiguous; a name is likelier).
        assert_eq!(
            parse_x_hash_argument(b"report 2024"),
            Ok((&b"report 2024"[..], None))
        );
        assert_eq!(
            parse_x_hash_argument(b"\"a 1 2\""),
            Ok((&b"a 1 2"[..], None))
        );
        assert_eq!(
            parse_x_hash_argument(b"\"a 1 2\" 0 3"),
            Ok((&b"a 1 2"[..], Some(XHashRange { start: 0, end: 3 })))
        );
        assert_eq!(
            parse_x_hash_argument(b"f 9 3"),
            Err(XHashArgumentError::EndBeforeStart)
        );
        let empty = XHashRange { start: 5, end: 5 };
        assert_eq!(empty.within(5), Ok(ByteSpan { start: 5, len: 0 }));
        assert_eq!(
            XHashRange { start: 0, end: 6 }.within(5),
            Err(XRangeBeyondEnd { size: 5 })
        );
    }

    #[test]
    fn hash_replies_parse_as_clients_read_them() {
        let reply = parse_hash_reply("SHA-256 0-49 169CD222 dir/file name.ext").unwrap();
        assert_eq!(reply.algorithm, "SHA-256");
        assert_eq!((reply.start, reply.end), (0, 49));
        assert_eq!(reply.hex, "169cd222");
        assert_eq!(reply.pathname, "dir/file name.ext");
        // The last line of a multi-line reply carries the answer.
        let multi = parse_hash_reply("Computing...\nMD5 0-0 d41d8cd98f00b204e9800998ecf8427e f");
        assert_eq!(multi.unwrap().algorithm, "MD5");
        assert_eq!(parse_hash_reply("File not found"), None);
        assert_eq!(parse_hash_reply("SHA-1 x-1 abcd f"), None);
        assert_eq!(parse_hash_reply("SHA-1 0-1 xyz f"), None);
    }

    proptest! {
        #[test]
        fn x_argument_parsing_never_panics(arg in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_x_hash_argument(&arg);
        }

        #[test]
        fn reply_text_round_trips(start in 0u64..1 << 40, len in 0u64..1 << 40, name in "[a-z][a-z ]{0,20}") {
            let span = ByteSpan { start, len };
            let text = hash_reply_text(HashAlgorithm::Crc32, span, "0badcafe", &name);
            let parsed = parse_hash_reply(&text).unwrap();
            prop_assert_eq!((parsed.start, parsed.end), span.reply_range());
            prop_assert_eq!(parsed.pathname, name);
        }

        #[test]
        fn rang_spans_stay_inside_the_file(start: u64, extra in 0u64..1 << 20, size in 0u64..1 << 30) {
            let span = RangSelection { start, end: start.saturating_add(extra) }.within(size);
            prop_assert!(span.start <= size);
            prop_assert!(span.start + span.len <= size);
        }
    }
}
