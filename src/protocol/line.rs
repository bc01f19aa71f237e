//! Control-channel framing: split the byte stream into command lines.
//!
//! RFC 959 runs the control connection over Telnet (RFC 854). Clients send Telnet commands inside the
//! stream — most visibly `IAC IP IAC DM` before `ABOR` (RFC 959 §4.1.3) — so they are removed here
//! before a line reaches the parser. `IAC IAC` stands for a literal 0xFF byte.
//!
//! A line ends at LF (CRLF or a bare LF, as sent by some scripts). A line longer than
//! [`MAX_LINE_LEN`] is discarded up to its end and reported once, so a hostile client can neither grow
//! the buffer without bound nor knock the session over.

use bytes::{Bytes, BytesMut};
use memchr::memchr;

/// The longest command line accepted, without its line ending.
pub const MAX_LINE_LEN: usize = 8 * 1024;

const IAC: u8 = 0xFF;
/// Telnet WILL, WONT, DO and DONT carry one option byte after them (RFC 854).
const NEGOTIATION: std::ops::RangeInclusive<u8> = 251..=254;
/// The other Telnet commands (SE ... SB) are two bytes long.
const TWO_BYTE_COMMANDS: std::ops::RangeInclusive<u8> = 240..=250;

/// Why a line could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line was longer than [`MAX_LINE_LEN`]; it has been discarded.
    #[error("command line longer than {MAX_LINE_LEN} bytes")]
    TooLong,
}

/// Splits a control-connection byte stream into lines with Telnet sequences removed.
#[derive(Debug, Default)]
pub struct LineDecoder {
    /// True while the rest of an over-long line is being thrown away.
    discarding: bool,
    /// How far `buf` has already been searched for a line end, so a slow sender costs O(n), not O(n²).
    scanned: usize,
}

impl LineDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next complete line out of `buf`, without its line ending.
    ///
    /// Returns `None` when more bytes are needed. An over-long line yields one
    /// `Err(LineError::TooLong)` once its end has arrived; the session can go on afterwards.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Result<Bytes, LineError>> {
        match memchr(b'\n', &buf[self.scanned..]) {
            Some(offset) => {
                let end = self.scanned + offset;
                self.scanned = 0;
                let mut line = buf.split_to(end + 1);
                if std::mem::take(&mut self.discarding) {
                    return Some(Err(LineError::TooLong));
                }
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                if line.len() > MAX_LINE_LEN {
                    return Some(Err(LineError::TooLong));
                }
                strip_telnet(&mut line);
                Some(Ok(line.freeze()))
            }
            None if buf.len() > MAX_LINE_LEN + 1 => {
                // Keep nothing of an over-long line; wait for its end to report it once.
                buf.clear();
                self.scanned = 0;
                self.discarding = true;
                None
            }
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }
}

/// Removes Telnet commands in place and turns `IAC IAC` into one 0xFF byte.
///
/// An IAC followed by a byte that is not a Telnet command is dropped on its own: ftplib sends
/// `IAC IP IAC` and then `DM` as TCP urgent data, which the kernel keeps out of the stream, so the
/// IAC is directly followed by the `A` of `ABOR`.
pub fn strip_telnet(line: &mut BytesMut) {
    if memchr(IAC, line).is_none() {
        return;
    }
    let mut read = 0;
    let mut write = 0;
    while read < line.len() {
        let byte = line[read];
        if byte != IAC {
            line[write] = byte;
            write += 1;
            read += 1;
            continue;
        }
        match line.get(read + 1).copied() {
            Some(IAC) => {
                line[write] = IAC;
                write += 1;
                read += 2;
            }
            Some(command) if NEGOTIATION.contains(&command) => read += 3,
            Some(command) if TWO_BYTE_COMMANDS.contains(&command) => read += 2,
            _ => read += 1,
        }
    }
    line.truncate(write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_lines_does_not_allocate() {
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(b"NOOP\r\nUSER alice\r\nPASS x\r\n\xff\xf4\xff\xf2ABOR\r\nPAR");
        let mut decoder = LineDecoder::new();
        // The first split turns the session's buffer into a shared one (one allocation per
        // session, in `bytes`); every line after it is a view into the same memory.
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"NOOP"[..]);
        assert_no_alloc::reset_violation_count();
        let lines = assert_no_alloc::assert_no_alloc(|| {
            let mut count = 0;
            while let Some(line) = decoder.decode(&mut buf) {
                assert!(line.is_ok());
                count += 1;
            }
            count
        });
        assert_eq!(assert_no_alloc::violation_count(), 0);
        assert_eq!(lines, 3);
        assert_eq!(&buf[..], b"PAR");
    }

    fn decode_all(input: &[u8]) -> Vec<Result<Vec<u8>, LineError>> {
        let mut decoder = LineDecoder::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(item) = decoder.decode(&mut buf) {
            out.push(item.map(|b| b.to_vec()));
        }
        out
    }

    #[test]
    fn splits_crlf_and_bare_lf_lines() {
        assert_eq!(
            decode_all(b"USER a\r\nPASS b\nNOOP\r\n"),
            vec![
                Ok(b"USER a".to_vec()),
                Ok(b"PASS b".to_vec()),
                Ok(b"NOOP".to_vec())
            ]
        );
    }

    #[test]
    fn waits_for_the_line_end() {
        let mut decoder = LineDecoder::new();
        let mut buf = BytesMut::from(&b"NO"[..]);
        assert!(decoder.decode(&mut buf).is_none());
        buf.extend_from_slice(b"OP\r");
        assert!(decoder.decode(&mut buf).is_none());
        buf.extend_from_slice(b"\n");
        assert_eq!(
            decoder.decode(&mut buf),
            Some(Ok(Bytes::from_static(b"NOOP")))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn strips_interrupt_process_and_data_mark_before_abor() {
        // IAC IP IAC DM ABOR, as RFC 959 §4.1.3 describes.
        assert_eq!(
            decode_all(b"\xff\xf4\xff\xf2ABOR\r\n"),
            vec![Ok(b"ABOR".to_vec())]
        );
        // ftplib: the DM went out of band, leaving a lone IAC before the verb.
        assert_eq!(
            decode_all(b"\xff\xf4\xffABOR\r\n"),
            vec![Ok(b"ABOR".to_vec())]
        );
    }

    #[test]
    fn negotiation_commands_take_their_option_byte() {
        assert_eq!(
            decode_all(b"NO\xff\xfb\x01OP\r\n"),
            vec![Ok(b"NOOP".to_vec())]
        );
    }

    #[test]
    fn doubled_iac_is_a_literal_0xff() {
        assert_eq!(
            decode_all(b"STOR a\xff\xffb\r\n"),
            vec![Ok(b"STOR a\xffb".to_vec())]
        );
    }

    #[test]
    fn over_long_line_is_reported_once_and_the_next_line_survives() {
        let mut input = vec![b'A'; MAX_LINE_LEN * 3];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let mut decoder = LineDecoder::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Feed in small pieces, as a network would, and check the buffer stays bounded.
        for chunk in input.chunks(1000) {
            buf.extend_from_slice(chunk);
            while let Some(item) = decoder.decode(&mut buf) {
                out.push(item.map(|b| b.to_vec()));
            }
            assert!(buf.len() <= MAX_LINE_LEN + 1000 + 2);
        }
        assert_eq!(out, vec![Err(LineError::TooLong), Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted() {
        let mut input = vec![b'A'; MAX_LINE_LEN];
        input.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&input), vec![Ok(vec![b'A'; MAX_LINE_LEN])]);
        let mut input = vec![b'A'; MAX_LINE_LEN + 1];
        input.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&input), vec![Err(LineError::TooLong)]);
    }
}
