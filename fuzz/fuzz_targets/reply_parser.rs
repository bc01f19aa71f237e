//! The client's reply parser: never panics, never claims more bytes than it was given, and a parsed
//! reply encodes to a wire form that parses back to the same code and encodes to the same bytes
//! (the encoder cleans control characters and indents digit-led inner lines, RFC 959 §4.2, once).
#![no_main]

use ferry::protocol::reply::parse_reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((reply, used))) = parse_reply(rest) {
        assert!(used > 0 && used <= rest.len());
        let wire = reply.to_bytes();
        let (again, again_used) = parse_reply(&wire)
            .expect("an encoded reply parses")
            .expect("an encoded reply is complete");
        assert_eq!(again_used, wire.len());
        assert_eq!(again.code, reply.code);
        assert_eq!(again.to_bytes(), wire);
        rest = &rest[used..];
    }
});
