//! Path normalisation can never climb above `/`: whatever a client sends to CWD/RETR/STOR, the
//! result is absolute, has no `.` or `..` segment and no empty segment, and joining it again is
//! stable.
#![no_main]

use ferry::protocol::VirtualPath;
use ferry::protocol::path::{quote_257, unquote_257};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (cwd, arg) = text.split_once('\n').unwrap_or(("/", text));
    let Ok(cwd) = VirtualPath::parse(cwd) else {
        return;
    };
    if let Ok(path) = cwd.join(arg) {
        let s = path.as_str();
        assert!(s.starts_with('/'), "{s:?}");
        assert!(s == "/" || !s.ends_with('/'), "{s:?}");
        for segment in path.components() {
            assert!(
                !segment.is_empty() && segment != "." && segment != "..",
                "{s:?}"
            );
        }
        assert_eq!(VirtualPath::root().join(s).as_ref(), Ok(&path));
        assert_eq!(
            unquote_257(&format!("257 {}", quote_257(s))).as_deref(),
            Some(s)
        );
    }
});
