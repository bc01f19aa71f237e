//! Directory listings as clients parse them.
//!
//! - LIST: the `ls -l` form that lftp, curl, FileZilla and WinSCP all recognise. Its dates follow
//!   `ls`: `Mon DD HH:MM` for the last six months, `Mon DD  YYYY` otherwise (hence `now`).
//! - NLST: bare names, one per line.
//! - MLSD/MLST: machine-readable facts (RFC 3659 §7), `modify` in UTC.

use std::io::Write as _;

use super::time::{MONTH_ABBREVIATIONS, UtcDateTime};

/// What kind of directory entry this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// Everything a listing line may show about one entry.
#[derive(Debug, Clone, Copy)]
pub struct ListEntry<'a> {
    pub name: &'a str,
    pub kind: EntryKind,
    pub size: u64,
    /// Unix seconds, UTC.
    pub modified: Option<i64>,
    /// Unix permission bits, where the storage has them.
    pub mode: Option<u32>,
    /// A value unique to the file within the storage (device and inode on disk).
    pub unique: Option<(u64, u64)>,
}

/// About half a year: older entries show the year instead of the time, as `ls -l` does.
const RECENT_SECS: i64 = 182 * 86_400;

/// Appends one `ls -l` line (with CRLF).
pub fn write_list_line(out: &mut Vec<u8>, entry: &ListEntry<'_>, now: i64) {
    let (type_char, default_mode) = match entry.kind {
        EntryKind::Dir => (b'd', 0o755),
        EntryKind::File => (b'-', 0o644),
        EntryKind::Symlink => (b'l', 0o777),
    };
    let mode = entry.mode.unwrap_or(default_mode);
    out.push(type_char);
    for shift in [6u32, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 4 != 0 { b'r' } else { b'-' });
        out.push(if bits & 2 != 0 { b'w' } else { b'-' });
        out.push(if bits & 1 != 0 { b'x' } else { b'-' });
    }
    let _ = write!(out, "    1 ftp      ftp      {:>13} ", entry.size);
    let modified = entry.modified.unwrap_or(0);
    let t = UtcDateTime::from_unix(modified);
    let month = MONTH_ABBREVIATIONS[usize::from(t.month - 1)];
    if modified > now - RECENT_SECS && modified <= now + 86_400 {
        let _ = write!(out, "{month} {:>2} {:02}:{:02} ", t.day, t.hour, t.minute);
    } else {
        let _ = write!(out, "{month} {:>2} {:>5} ", t.day, t.year);
    }
    out.extend_from_slice(entry.name.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one NLST line (with CRLF).
pub fn write_name_line(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The MLST facts a client asked for with `OPTS MLST` (RFC 3659 §7.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlstFacts(u8);

impl MlstFacts {
    pub const TYPE: Self = Self(1);
    pub const SIZE: Self = Self(2);
    pub const MODIFY: Self = Self(4);
    pub const PERM: Self = Self(8);
    pub const UNIQUE: Self = Self(16);
    pub const UNIX_MODE: Self = Self(32);

    /// Every fact the server can send, in the order FEAT lists them.
    const ALL: [(Self, &'static str); 6] = [
        (Self::TYPE, "type"),
        (Self::SIZE, "size"),
        (Self::MODIFY, "modify"),
        (Self::PERM, "perm"),
        (Self::UNIQUE, "unique"),
        (Self::UNIX_MODE, "UNIX.mode"),
    ];

    pub const fn none() -> Self {
        Self(0)
    }

    /// The facts sent until a client chooses: all but `UNIX.mode`.
    pub const fn default_set() -> Self {
        Self(1 | 2 | 4 | 8 | 16)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The facts named in `OPTS MLST a;b;c;`. Unknown names are dropped, as RFC 3659 asks.
    pub fn from_opts(list: &[u8]) -> Self {
        let mut set = Self::none();
        for name in list.split(|&b| b == b';') {
            for (fact, fact_name) in Self::ALL {
                if name.eq_ignore_ascii_case(fact_name.as_bytes()) {
                    set.0 |= fact.0;
                }
            }
        }
        set
    }

    /// `type;size;` for the reply to OPTS MLST.
    pub fn names(self) -> String {
        let mut out = String::new();
        for (fact, name) in Self::ALL {
            if self.contains(fact) {
                out.push_str(name);
                out.push(';');
            }
        }
        out
    }

    /// The FEAT line: every fact, with `*` on those in force (`MLST type*;size*;...`).
    pub fn feat_line(self) -> String {
        let mut out = String::from("MLST ");
        for (fact, name) in Self::ALL {
            out.push_str(name);
            if self.contains(fact) {
                out.push('*');
            }
            out.push(';');
        }
        out
    }
}

/// Appends the facts of one entry followed by a space (`type=file;size=3;... `), without the name.
///
/// `perm` is the RFC 3659 §7.5.5 permission string for this user and entry (`adfrw`, `flcdmpe`).
pub fn write_facts(out: &mut Vec<u8>, entry: &ListEntry<'_>, facts: MlstFacts, perm: &str) {
    if facts.contains(MlstFacts::TYPE) {
        out.extend_from_slice(match entry.kind {
            EntryKind::Dir => b"type=dir;",
            EntryKind::File => b"type=file;",
            EntryKind::Symlink => b"type=OS.unix=symlink;",
        });
    }
    if facts.contains(MlstFacts::SIZE) {
        let _ = write!(out, "size={};", entry.size);
    }
    if facts.contains(MlstFacts::MODIFY)
        && let Some(modified) = entry.modified
    {
        let mut stamp = String::with_capacity(14);
        UtcDateTime::from_unix(modified).write_mdtm(&mut stamp);
        let _ = write!(out, "modify={stamp};");
    }
    if facts.contains(MlstFacts::PERM) {
        let _ = write!(out, "perm={perm};");
    }
    if facts.contains(MlstFacts::UNIQUE)
        && let Some((device, inode)) = entry.unique
    {
        let _ = write!(out, "unique={device:x}g{inode:x};");
    }
    if facts.contains(MlstFacts::UNIX_MODE)
        && let Some(mode) = entry.mode
    {
        let _ = write!(out, "UNIX.mode=0{:o};", mode & 0o7777);
    }
    out.push(b' ');
}

/// Appends one MLSD line: facts, a space, the name, CRLF.
pub fn write_mlsd_line(out: &mut Vec<u8>, entry: &ListEntry<'_>, facts: MlstFacts, perm: &str) {
    write_facts(out, entry, facts, perm);
    out.extend_from_slice(entry.name.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One parsed MLSD/MLST line (for the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlsxEntry {
    pub name: String,
    pub kind: Option<String>,
    pub size: Option<u64>,
    pub modified: Option<UtcDateTime>,
}

/// Parses one MLSD line (`facts name`), or the inner line of an MLST reply (with its leading
/// space). Fact names are case-insensitive (RFC 3659 §7.1).
pub fn parse_mlsx_line(line: &str) -> Option<MlsxEntry> {
    let line = line.strip_prefix(' ').unwrap_or(line);
    let line = line
        .strip_suffix("\r\n")
        .or(line.strip_suffix('\n'))
        .unwrap_or(line);
    let (facts, name) = line.split_once(' ')?;
    // A name from a server we do not control: an empty one, or one that could split a line, is
    // not an entry. (MLST names a whole path, so `/` is allowed here; MLSD callers refuse it.)
    if name.is_empty() || name.contains(['\0', '\r', '\n']) {
        return None;
    }
    let mut entry = MlsxEntry {
        name: name.to_owned(),
        kind: None,
        size: None,
        modified: None,
    };
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        match key.to_ascii_lowercase().as_str() {
            "type" => entry.kind = Some(value.to_ascii_lowercase()),
            "size" => entry.size = value.parse().ok(),
            "modify" => entry.modified = UtcDateTime::parse_mdtm(value.as_bytes()),
            _ => {}
        }
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_392_000; // 2026-11-23T00:00:00Z

    #[test]
    fn mlsx_lines_without_a_usable_name_are_rejected() {
        assert!(parse_mlsx_line("; ").is_none());
        assert!(parse_mlsx_line("type=file; a\0b").is_none());
        assert_eq!(
            parse_mlsx_line(" type=dir; /site/a").unwrap().name,
            "/site/a"
        );
        assert_eq!(parse_mlsx_line("type=file; a b").unwrap().name, "a b");
    }

    fn entry(name: &str, kind: EntryKind, size: u64, modified: i64) -> ListEntry<'_> {
        ListEntry {
            name,
            kind,
            size,
            modified: Some(modified),
            mode: None,
            unique: Some((0x801, 0x2a)),
        }
    }

    fn list_line(e: &ListEntry<'_>) -> String {
        let mut out = Vec::new();
        write_list_line(&mut out, e, NOW);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn recent_files_show_the_time_and_old_ones_the_year() {
        let recent = list_line(&entry("a b.txt", EntryKind::File, 1234, NOW - 3600));
        assert_eq!(
            recent,
            "-rw-r--r--    1 ftp      ftp               1234 Nov 22 23:00 a b.txt\r\n"
        );
        let old = list_line(&entry("old", EntryKind::Dir, 4096, 951_782_400));
        assert_eq!(
            old,
            "drwxr-xr-x    1 ftp      ftp               4096 Feb 29  2000 old\r\n"
        );
    }

    #[test]
    fn big_sizes_and_explicit_modes() {
        let mut e = entry("big", EntryKind::File, 5 * 1024 * 1024 * 1024, NOW);
        e.mode = Some(0o600);
        assert!(list_line(&e).starts_with("-rw-------    1 ftp      ftp         5368709120 "));
    }

    #[test]
    fn mlsd_line_has_rfc3659_facts() {
        let mut out = Vec::new();
        let e = entry("файл.txt", EntryKind::File, 3, NOW);
        write_mlsd_line(&mut out, &e, MlstFacts::default_set(), "adfrw");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "type=file;size=3;modify=20261123000000;perm=adfrw;unique=801g2a; файл.txt\r\n"
        );
    }

    #[test]
    fn opts_mlst_selects_facts() {
        let facts = MlstFacts::from_opts(b"Type;size;bogus;");
        assert_eq!(facts.names(), "type;size;");
        assert_eq!(
            facts.feat_line(),
            "MLST type*;size*;modify;perm;unique;UNIX.mode;"
        );
        let mut out = Vec::new();
        write_mlsd_line(&mut out, &entry("d", EntryKind::Dir, 0, NOW), facts, "el");
        assert_eq!(out, b"type=dir;size=0; d\r\n");
    }

    #[test]
    fn mlsd_lines_parse_back() {
        let mut out = Vec::new();
        let e = entry("with space", EntryKind::File, 42, NOW);
        write_mlsd_line(&mut out, &e, MlstFacts::default_set(), "r");
        let parsed = parse_mlsx_line(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(parsed.name, "with space");
        assert_eq!(parsed.kind.as_deref(), Some("file"));
        assert_eq!(parsed.size, Some(42));
        assert_eq!(parsed.modified.map(UtcDateTime::to_unix), Some(NOW));
    }
}
