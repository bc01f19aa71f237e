//! What the client reads from servers it does not control: MLSD/MLST lines and 257 replies. No
//! panic, and an MLSx entry's name is never empty and never holds a line break.
#![no_main]

use ferry::protocol::listing::parse_mlsx_line;
use ferry::protocol::path::unquote_257;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.split("\r\n") {
        if let Some(entry) = parse_mlsx_line(line) {
            assert!(!entry.name.is_empty());
            assert!(!entry.name.contains(['\r', '\n']));
        }
    }
    let _ = unquote_257(text);
});
