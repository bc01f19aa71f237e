//! PROXY protocol v1/v2 headers: no panic on any input; a reader that feeds the parser only the
//! bytes it asks for reaches the same verdict as one that hands it everything, never reading past
//! the header; and every header that parses encodes back to one that parses to the same value.
#![no_main]

use ferry::protocol::proxy::{Parsed, ProxyHeader, encode_v1, encode_v2, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    // Read the way the server does: only up to what the parser asks for.
    let mut have = 0;
    let stepwise = loop {
        match parse(&data[..have]) {
            Ok(Parsed::Incomplete { at_least }) => {
                assert!(at_least > have, "the parser asked for nothing new");
                if at_least > data.len() {
                    break None;
                }
                have = at_least;
            }
            other => break Some(other),
        }
    };
    if let Some(stepwise) = stepwise {
        assert_eq!(stepwise, whole);
    }
    if let Ok(Parsed::Complete { header, len }) = whole {
        assert!(len <= data.len());
        assert_eq!(
            parse(&encode_v2(&header)),
            Ok(Parsed::Complete {
                header,
                len: encode_v2(&header).len()
            })
        );
        let line = encode_v1(&header);
        let v1_header = match header {
            ProxyHeader::Local => ProxyHeader::Unknown,
            other => other,
        };
        assert_eq!(
            parse(line.as_bytes()),
            Ok(Parsed::Complete {
                header: v1_header,
                len: line.len()
            })
        );
    }
});
