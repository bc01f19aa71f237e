//! Remote directory entries, from MLSD (preferred, RFC 3659) or from LIST output in the Unix
//! `ls -l` or MS-DOS forms that servers without MLSD send.

use crate::protocol::listing::parse_mlsx_line;
use crate::protocol::time::UtcDateTime;

/// What a remote entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One entry of a remote directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub name: String,
    pub kind: RemoteKind,
    pub size: Option<u64>,
    /// Only from MLSD; LIST dates are too coarse to trust.
    pub modified: Option<UtcDateTime>,
}

/// Parses an MLSD body; `.`/`..` entries (`type=cdir`/`pdir`) are dropped, and so is any name
/// that is not a plain entry name (a hostile server's `../x` or `a/b` must not become a path).
pub(crate) fn parse_mlsd(body: &str) -> Vec<RemoteEntry> {
    body.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(parse_mlsx_line)
        .filter(|entry| is_entry_name(&entry.name))
        .filter_map(|entry| {
            let kind = match entry.kind.as_deref() {
                Some("file") => RemoteKind::File,
                Some("dir") => RemoteKind::Dir,
                Some("cdir" | "pdir") => return None,
                Some(kind) if kind.contains("symlink") || kind.contains("slink") => {
                    RemoteKind::Symlink
                }
                _ => RemoteKind::Other,
            };
            Some(RemoteEntry {
                name: entry.name,
                kind,
                size: entry.size,
                modified: entry.modified,
            })
        })
        .collect()
}

/// Parses a LIST body, line by line; lines it cannot read (`total 12`) are skipped.
pub(crate) fn parse_list(body: &str) -> Vec<RemoteEntry> {
    body.lines()
        .filter_map(|line| parse_unix_line(line).or_else(|| parse_dos_line(line)))
        .filter(|entry| is_entry_name(&entry.name))
        .collect()
}

/// A name that stays inside the listed directory.
fn is_entry_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// `drwxr-xr-x 2 owner group 4096 Nov 23 09:24 name` (owner/group may be missing).
fn parse_unix_line(line: &str) -> Option<RemoteEntry> {
    let kind = match line.chars().next()? {
        '-' => RemoteKind::File,
        'd' => RemoteKind::Dir,
        'l' => RemoteKind::Symlink,
        _ => return None,
    };
    let mode = line.split_whitespace().next()?;
    if mode.len() < 10 {
        return None;
    }
    // Find the date: a month name followed by a day and a time or year; the size precedes it.
    let fields: Vec<(usize, &str)> = field_offsets(line);
    let month_index = fields.iter().position(|(_, f)| {
        crate::protocol::time::MONTH_ABBREVIATIONS
            .iter()
            .any(|m| m.eq_ignore_ascii_case(f))
    })?;
    if month_index < 2 || fields.len() < month_index + 4 {
        return None;
    }
    let size = fields[month_index - 1].1.parse::<u64>().ok()?;
    let (name_start, _) = fields[month_index + 3];
    let mut name = &line[name_start..];
    if kind == RemoteKind::Symlink
        && let Some(arrow) = name.find(" -> ")
    {
        name = &name[..arrow];
    }
    Some(RemoteEntry {
        name: name.to_owned(),
        kind,
        size: Some(size),
        modified: None,
    })
}

/// `11-23-26  09:24AM       <DIR>          name` or `... 1234 name`.
fn parse_dos_line(line: &str) -> Option<RemoteEntry> {
    let fields = field_offsets(line);
    if fields.len() < 4 || !fields[0].1.contains('-') || !fields[1].1.contains(':') {
        return None;
    }
    let (kind, size) = if fields[2].1.eq_ignore_ascii_case("<DIR>") {
        (RemoteKind::Dir, None)
    } else {
        (
            RemoteKind::File,
            Some(fields[2].1.replace(',', "").parse::<u64>().ok()?),
        )
    };
    Some(RemoteEntry {
        name: line[fields[3].0..].to_owned(),
        kind,
        size,
        modified: None,
    })
}

/// Whitespace-separated fields with their byte offsets, so a name with spaces can be cut whole.
fn field_offsets(line: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                fields.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push((s, &line[s..]));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_directory_are_dropped() {
        let mlsd = "type=file;size=1; ok\r\ntype=file;size=1; ../escape\r\ntype=dir; a/b\r\n";
        let names: Vec<_> = parse_mlsd(mlsd).into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["ok"]);
        let list = "-rw-r--r-- 1 ftp ftp 1 Nov 23 09:24 ok\r\n\
                    -rw-r--r-- 1 ftp ftp 1 Nov 23 09:24 ../escape\r\n";
        let names: Vec<_> = parse_list(list).into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["ok"]);
    }

    #[test]
    fn unix_listing_with_spaces_and_links() {
        let body = "total 8\r\n\
            drwxr-xr-x    1 ftp      ftp               4096 Nov 23 09:24 my dir\r\n\
            -rw-r--r--    1 ftp      ftp            3000000 Feb 29  2000 a  b.txt\r\n\
            lrwxrwxrwx 1 0 0 7 Jan  1 2020 link -> target\r\n\
            -rw-r--r-- 1 user 5 Mar 3 10:00 nogroup\r\n";
        let entries = parse_list(body);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].name, "my dir");
        assert_eq!(entries[0].kind, RemoteKind::Dir);
        assert_eq!(entries[1].name, "a  b.txt");
        assert_eq!(entries[1].size, Some(3_000_000));
        assert_eq!(entries[2].name, "link");
        assert_eq!(entries[2].kind, RemoteKind::Symlink);
        assert_eq!(entries[3].name, "nogroup");
        assert_eq!(entries[3].size, Some(5));
    }

    #[test]
    fn dos_listing() {
        let body = "11-23-26  09:24AM       <DIR>          web site\r\n\
                    11-23-26  09:25AM              1,234 index.html\r\n";
        let entries = parse_list(body);
        assert_eq!(entries[0].name, "web site");
        assert_eq!(entries[0].kind, RemoteKind::Dir);
        assert_eq!(entries[1].size, Some(1234));
    }

    #[test]
    fn mlsd_drops_current_and_parent_dirs() {
        let body = "type=cdir;modify=20261123000000; .\r\n\
                    type=pdir; ..\r\n\
                    type=file;size=3;modify=20261123000000; a b\r\n\
                    Type=DIR; sub\r\n";
        let entries = parse_mlsd(body);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "a b");
        assert_eq!(entries[0].size, Some(3));
        assert!(entries[0].modified.is_some());
        assert_eq!(entries[1].kind, RemoteKind::Dir);
    }
}
