//! What a logged-in user may do: pyftpdlib's permission letters `elradfmwMT` as a small bitset.
//!
//! The letters and their commands are pyftpdlib's (`DummyAuthorizer`), so accounts imported from
//! django-ftpserver keep their meaning:
//!
//! | letter | permission | commands |
//! |---|---|---|
//! | `e` | change directory | CWD, CDUP |
//! | `l` | list | LIST, NLST, STAT (with a path), MLSD, MLST, SIZE, MDTM |
//! | `r` | retrieve | RETR |
//! | `a` | append | APPE |
//! | `d` | delete | DELE, RMD |
//! | `f` | rename | RNFR, RNTO |
//! | `m` | make directory | MKD |
//! | `w` | store | STOR, STOU |
//! | `M` | change mode | SITE CHMOD |
//! | `T` | change modification time | MFMT |

use std::fmt;
use std::str::FromStr;

/// One permission letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `e`: CWD, CDUP.
    ChangeDirectory,
    /// `l`: LIST, NLST, STAT, MLSD, MLST, SIZE, MDTM.
    List,
    /// `r`: RETR.
    Retrieve,
    /// `a`: APPE.
    Append,
    /// `d`: DELE, RMD.
    Delete,
    /// `f`: RNFR, RNTO.
    Rename,
    /// `m`: MKD.
    MakeDirectory,
    /// `w`: STOR, STOU.
    Store,
    /// `M`: SITE CHMOD.
    ChangeMode,
    /// `T`: MFMT.
    ChangeModificationTime,
}

impl Permission {
    /// Every permission, in the canonical letter order `elradfmwMT`.
    pub const ALL: [Permission; 10] = [
        Self::ChangeDirectory,
        Self::List,
        Self::Retrieve,
        Self::Append,
        Self::Delete,
        Self::Rename,
        Self::MakeDirectory,
        Self::Store,
        Self::ChangeMode,
        Self::ChangeModificationTime,
    ];

    /// pyftpdlib's letter for this permission.
    pub fn letter(self) -> char {
        match self {
            Self::ChangeDirectory => 'e',
            Self::List => 'l',
            Self::Retrieve => 'r',
            Self::Append => 'a',
            Self::Delete => 'd',
            Self::Rename => 'f',
            Self::MakeDirectory => 'm',
            Self::Store => 'w',
            Self::ChangeMode => 'M',
            Self::ChangeModificationTime => 'T',
        }
    }

    /// The permission a letter stands for; letters are case-sensitive (`m` is not `M`).
    pub fn from_letter(letter: char) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.letter() == letter)
    }

    /// A short description, for help texts and error messages.
    pub fn description(self) -> &'static str {
        match self {
            Self::ChangeDirectory => "change directory",
            Self::List => "list",
            Self::Retrieve => "retrieve",
            Self::Append => "append",
            Self::Delete => "delete",
            Self::Rename => "rename",
            Self::MakeDirectory => "make directory",
            Self::Store => "store",
            Self::ChangeMode => "change mode",
            Self::ChangeModificationTime => "change modification time",
        }
    }

    /// The permission an FTP command needs, by verb (case-insensitive; `SITE CHMOD` as two
    /// words). `None` for commands that need no permission (USER, PWD, TYPE, ...). STAT needs
    /// `l` only when it has a path argument; without one it is the server status.
    pub fn required_by(verb: &str) -> Option<Self> {
        let verb = verb.to_ascii_uppercase();
        let permission = match verb.split_ascii_whitespace().collect::<Vec<_>>().as_slice() {
            ["CWD" | "XCWD" | "CDUP" | "XCUP"] => Self::ChangeDirectory,
            ["LIST" | "NLST" | "STAT" | "MLSD" | "MLST" | "SIZE" | "MDTM"] => Self::List,
            ["RETR"] => Self::Retrieve,
            ["APPE"] => Self::Append,
            ["DELE" | "RMD" | "XRMD"] => Self::Delete,
            ["RNFR" | "RNTO"] => Self::Rename,
            ["MKD" | "XMKD"] => Self::MakeDirectory,
            ["STOR" | "STOU"] => Self::Store,
            ["SITE", "CHMOD"] => Self::ChangeMode,
            ["MFMT"] => Self::ChangeModificationTime,
            _ => return None,
        };
        Some(permission)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// A set of [`Permission`]s. Parses from and displays as pyftpdlib's letters, always in the
/// canonical order `elradfmwMT` whatever order they were given in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions(u16);

impl Permissions {
    /// No permission at all: the user can log in and see `/`, nothing more.
    pub const NONE: Self = Self(0);
    /// Everything: `elradfmwMT`.
    pub const ALL: Self = Self((1 << Permission::ALL.len()) - 1);
    /// Browse and download: `elr`.
    pub const READ_ONLY: Self = Self::NONE
        .with(Permission::ChangeDirectory)
        .with(Permission::List)
        .with(Permission::Retrieve);
    /// What a new account or group gets unless told otherwise: `elradfmwMT`, as in
    /// django-ftpserver.
    pub const DEFAULT: Self = Self::ALL;

    /// This set plus `permission`.
    pub const fn with(self, permission: Permission) -> Self {
        Self(self.0 | 1 << (permission as u16))
    }

    /// This set without `permission`.
    pub const fn without(self, permission: Permission) -> Self {
        Self(self.0 & !(1 << (permission as u16)))
    }

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in the set, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// The RFC 3659 §7.5.5 `perm` fact of a file: `a` append, `d` delete, `f` rename, `r`
    /// retrieve, `w` store.
    pub fn mlst_perm_file(&self) -> String {
        self.perm_fact(&[
            ('a', Permission::Append),
            ('d', Permission::Delete),
            ('f', Permission::Rename),
            ('r', Permission::Retrieve),
            ('w', Permission::Store),
        ])
    }

    /// The RFC 3659 §7.5.5 `perm` fact of a directory: `c` create files (`w`), `d` delete, `e`
    /// enter, `f` rename, `l` list, `m` make directory, `p` purge its contents (`d`).
    pub fn mlst_perm_dir(&self) -> String {
        self.perm_fact(&[
            ('c', Permission::Store),
            ('d', Permission::Delete),
            ('e', Permission::ChangeDirectory),
            ('f', Permission::Rename),
            ('l', Permission::List),
            ('m', Permission::MakeDirectory),
            ('p', Permission::Delete),
        ])
    }

    fn perm_fact(&self, facts: &[(char, Permission)]) -> String {
        facts
            .iter()
            .filter(|(_, permission)| self.contains(*permission))
            .map(|(fact, _)| *fact)
            .collect()
    }
}

impl Default for Permissions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter().try_for_each(|p| write!(f, "{}", p.letter()))
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions(\"{self}\")")
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

/// A permission string with a letter pyftpdlib does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission letter {letter:?}; valid letters are elradfmwMT (e change directory, \
     l list, r retrieve, a append, d delete, f rename, m make directory, w store, M change mode, \
     T change modification time)"
)]
pub struct UnknownPermission {
    pub letter: char,
}

impl FromStr for Permissions {
    type Err = UnknownPermission;

    /// Parses letters in any order; repeats are harmless and the empty string is no permission.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.chars()
            .map(|letter| Permission::from_letter(letter).ok_or(UnknownPermission { letter }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_displays_in_canonical_order() {
        assert_eq!(Permissions::ALL.to_string(), "elradfmwMT");
        assert_eq!(Permissions::default(), Permissions::ALL);
        assert_eq!(Permissions::READ_ONLY.to_string(), "elr");
        assert_eq!(Permissions::NONE.to_string(), "");
    }

    #[test]
    fn parse_then_display_is_canonical_whatever_the_input_order() {
        let parsed: Permissions = "TMwmfdarle".parse().unwrap();
        assert_eq!(parsed, Permissions::ALL);
        assert_eq!("rle".parse::<Permissions>().unwrap().to_string(), "elr");
        assert_eq!("llrr".parse::<Permissions>().unwrap().to_string(), "lr");
        assert_eq!("".parse::<Permissions>().unwrap(), Permissions::NONE);
    }

    #[test]
    fn every_subset_round_trips() {
        for bits in 0..=Permissions::ALL.0 {
            let permissions = Permissions(bits);
            assert_eq!(
                permissions.to_string().parse::<Permissions>().unwrap(),
                permissions
            );
        }
    }

    #[test]
    fn unknown_letter_is_named_and_valid_letters_listed() {
        let err = "elrx".parse::<Permissions>().unwrap_err();
        assert_eq!(err.letter, 'x');
        let message = err.to_string();
        assert!(message.contains("'x'"), "{message}");
        assert!(message.contains("elradfmwMT"), "{message}");
    }

    #[test]
    fn letters_are_case_sensitive() {
        assert_eq!("E".parse::<Permissions>().unwrap_err().letter, 'E');
        assert!(
            "M".parse::<Permissions>()
                .unwrap()
                .contains(Permission::ChangeMode)
        );
        assert!(
            !"m".parse::<Permissions>()
                .unwrap()
                .contains(Permission::ChangeMode)
        );
    }

    #[test]
    fn contains_with_and_without() {
        let permissions = Permissions::READ_ONLY;
        assert!(permissions.contains(Permission::Retrieve));
        assert!(!permissions.contains(Permission::Store));
        let writable = permissions.with(Permission::Store);
        assert!(writable.contains(Permission::Store));
        assert!(
            !writable
                .without(Permission::Store)
                .contains(Permission::Store)
        );
    }

    #[test]
    fn mlst_perm_facts_follow_rfc_3659() {
        assert_eq!(Permissions::ALL.mlst_perm_file(), "adfrw");
        assert_eq!(Permissions::ALL.mlst_perm_dir(), "cdeflmp");
        assert_eq!(Permissions::READ_ONLY.mlst_perm_file(), "r");
        assert_eq!(Permissions::READ_ONLY.mlst_perm_dir(), "el");
        let delete_only: Permissions = "d".parse().unwrap();
        assert_eq!(delete_only.mlst_perm_dir(), "dp");
        assert_eq!(Permissions::NONE.mlst_perm_file(), "");
    }

    #[test]
    fn commands_map_to_pyftpdlib_letters() {
        let cases = [
            ("CWD", 'e'),
            ("cdup", 'e'),
            ("LIST", 'l'),
            ("MLSD", 'l'),
            ("SIZE", 'l'),
            ("MDTM", 'l'),
            ("RETR", 'r'),
            ("APPE", 'a'),
            ("DELE", 'd'),
            ("RMD", 'd'),
            ("RNFR", 'f'),
            ("RNTO", 'f'),
            ("MKD", 'm'),
            ("STOR", 'w'),
            ("STOU", 'w'),
            ("SITE CHMOD", 'M'),
            ("site  chmod", 'M'),
            ("MFMT", 'T'),
        ];
        for (verb, letter) in cases {
            assert_eq!(
                Permission::required_by(verb).map(Permission::letter),
                Some(letter),
                "{verb}"
            );
        }
        for verb in ["USER", "PASS", "PWD", "TYPE", "FEAT", "SITE", "SITE HELP"] {
            assert_eq!(Permission::required_by(verb), None, "{verb}");
        }
    }
}
