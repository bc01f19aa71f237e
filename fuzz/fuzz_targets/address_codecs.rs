//! PORT/EPRT/EPSV arguments and PASV/EPSV replies: no panic on any input, and every address that
//! parses formats back to an argument that parses to the same address.
#![no_main]

use ferry::protocol::address::{
    format_eprt_argument, format_epsv_reply, format_pasv_reply, format_port_argument,
    parse_eprt_argument, parse_epsv_argument, parse_epsv_reply, parse_pasv_reply,
    parse_port_argument,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(addr) = parse_port_argument(data) {
        assert_eq!(
            parse_port_argument(format_port_argument(addr).as_bytes()),
            Ok(addr)
        );
    }
    if let Ok(addr) = parse_eprt_argument(data) {
        assert_eq!(
            parse_eprt_argument(format_eprt_argument(addr).as_bytes()),
            Ok(addr)
        );
    }
    let _ = parse_epsv_argument(Some(data));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(addr) = parse_pasv_reply(text) {
            assert_eq!(parse_pasv_reply(&format_pasv_reply(addr)), Ok(addr));
        }
        if let Ok(port) = parse_epsv_reply(text) {
            assert_eq!(parse_epsv_reply(&format_epsv_reply(port)), Ok(port));
        }
    }
});
