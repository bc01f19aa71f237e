//! What a person types to make or change an account — the flags of `ferry user add|edit` or the
//! fields of the dashboard's account form — checked in one place, so that both accept and refuse
//! the same input with the same words. [`AccountInput::check`] turns the text into typed
//! [`AccountChanges`]; [`AccountStore::update_account`](super::AccountStore::update_account)
//! applies them in one transaction (and checks what only the database knows: the group exists).

use std::collections::BTreeMap;
use std::fmt;

use super::store::{StoreError, validate_date, validate_home};
use super::{Permissions, TlsRequirement};

/// A field of an account, as both front ends name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccountField {
    Name,
    Password,
    Group,
    Home,
    Permissions,
    TlsRequired,
    Storage,
    Expires,
}

impl AccountField {
    /// The field's name in the dashboard's form.
    pub fn form_name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Password => "password",
            Self::Group => "group",
            Self::Home => "home",
            Self::Permissions => "perms",
            Self::TlsRequired => "tls_required",
            Self::Storage => "storage",
            Self::Expires => "expires",
        }
    }

    /// The command-line flag (or argument) that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Name => "NAME",
            Self::Password => "--password-stdin",
            Self::Group => "--group",
            Self::Home => "--home",
            Self::Permissions => "--perms",
            Self::TlsRequired => "--tls-required",
            Self::Storage => "--storage",
            Self::Expires => "--expires",
        }
    }
}

/// One setting that an account may have of its own or take from its group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Setting<T> {
    /// Leave it as it is.
    #[default]
    Keep,
    /// The account's own value.
    Set(T),
    /// None of its own: the group's (for a group: no group; for an expiry: never).
    Clear,
}

impl<T> Setting<T> {
    /// The value for a new account: its own, or none.
    pub fn new_value(&self) -> Option<&T> {
        match self {
            Self::Set(value) => Some(value),
            Self::Keep | Self::Clear => None,
        }
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }
}

/// The account fields as typed: each kept, set to the text, or cleared (the group's value
/// applies again, or no group, or no expiry).
#[derive(Debug, Clone, Default)]
pub struct AccountInput {
    pub group: Setting<String>,
    pub home: Setting<String>,
    /// Letters out of `elradfmwMT` (none at all is no permission).
    pub permissions: Setting<String>,
    /// `none`, `control`, `data` or `all`.
    pub tls_required: Setting<String>,
    /// A `[storage.NAME]` of the server's configuration.
    pub storage: Setting<String>,
    /// The last day the account may log in, `YYYY-MM-DD` (UTC).
    pub expires: Setting<String>,
    pub enabled: Option<bool>,
    pub admin: Option<bool>,
    /// Whether the account may log in over FTP (`false`: the dashboard only).
    pub ftp: Option<bool>,
    /// Homes must stay under the server's root (relative, no `..`): for input from the network
    /// (the dashboard), so that a dashboard login cannot open the host's other directories over
    /// FTP. The command line, run by whoever owns the database, may name any directory.
    pub homes_under_root_only: bool,
}

/// The typed changes of a checked [`AccountInput`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChanges {
    pub group: Setting<String>,
    pub home: Setting<String>,
    pub permissions: Setting<Permissions>,
    pub tls_required: Setting<TlsRequirement>,
    pub storage: Setting<String>,
    pub expires_on: Setting<String>,
    pub enabled: Option<bool>,
    pub admin: Option<bool>,
    pub ftp: Option<bool>,
}

impl AccountChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What is wrong with an input, by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputErrors(pub BTreeMap<AccountField, String>);

impl InputErrors {
    pub fn insert(&mut self, field: AccountField, message: impl Into<String>) {
        self.0.entry(field).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems keyed by form field name, for the dashboard.
    pub fn by_form_name(&self) -> BTreeMap<&'static str, String> {
        self.0
            .iter()
            .map(|(field, message)| (field.form_name(), message.clone()))
            .collect()
    }

    /// A store refusal that is about one field, as that field's problem; `None` for others.
    pub fn from_store(error: &StoreError) -> Option<Self> {
        let field = match error {
            StoreError::InvalidName(_) => AccountField::Name,
            StoreError::UserExists(_) => AccountField::Name,
            StoreError::InvalidHome { .. } => AccountField::Home,
            StoreError::GroupNotFound(_) => AccountField::Group,
            StoreError::InvalidDate(_) => AccountField::Expires,
            StoreError::EmptyPassword => AccountField::Password,
            _ => return None,
        };
        let mut errors = Self::default();
        errors.insert(field, error.to_string());
        Some(errors)
    }
}

/// `--home: ...; --perms: ...`, as the command line shows it.
impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, message)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {message}", field.flag())?;
        }
        Ok(())
    }
}

impl std::error::Error for InputErrors {}

impl AccountInput {
    /// Checks every field and says what is wrong with each, or gives the typed changes.
    pub fn check(&self) -> Result<AccountChanges, InputErrors> {
        let mut errors = InputErrors::default();
        let mut changes = AccountChanges {
            enabled: self.enabled,
            admin: self.admin,
            ftp: self.ftp,
            ..AccountChanges::default()
        };
        changes.group = self.group.trimmed();
        if let Setting::Set(group) = &changes.group {
            if let Err(error) = crate::sqlite::check_name("group", group) {
                errors.insert(AccountField::Group, error.to_string());
            }
        }
        changes.home = self.home.clone();
        if let Setting::Set(home) = &changes.home {
            if let Err(error) = validate_home(home) {
                errors.insert(AccountField::Home, error.to_string());
            } else if self.homes_under_root_only && !is_under_root(home) {
                errors.insert(
                    AccountField::Home,
                    "a home set here stays under the server's root: give a relative path without \
                     \"..\" (an absolute home can be set with `ferry user edit NAME --home DIR`)",
                );
            }
        }
        changes.permissions = match self.permissions.trimmed() {
            Setting::Set(letters) => match letters.parse::<Permissions>() {
                Ok(permissions) => Setting::Set(permissions),
                Err(error) => {
                    errors.insert(AccountField::Permissions, error.to_string());
                    Setting::Keep
                }
            },
            Setting::Keep => Setting::Keep,
            Setting::Clear => Setting::Clear,
        };
        changes.tls_required = match self.tls_required.trimmed() {
            Setting::Set(text) => match text.parse::<TlsRequirement>() {
                Ok(requirement) => Setting::Set(requirement),
                Err(error) => {
                    errors.insert(AccountField::TlsRequired, error);
                    Setting::Keep
                }
            },
            Setting::Keep => Setting::Keep,
            Setting::Clear => Setting::Clear,
        };
        changes.storage = self.storage.trimmed();
        if let Setting::Set(storage) = &changes.storage {
            if let Err(error) = crate::sqlite::check_name("storage", storage) {
                errors.insert(AccountField::Storage, error.to_string());
            }
        }
        changes.expires_on = self.expires.trimmed();
        if let Setting::Set(date) = &changes.expires_on {
            if let Err(error) = validate_date(date) {
                errors.insert(AccountField::Expires, error.to_string());
            }
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }
}

/// A relative path that never climbs out: no leading `/`, no `..` component.
fn is_under_root(home: &str) -> bool {
    !home.starts_with('/') && !home.split(['/', '\\']).any(|part| part == "..")
}

/// Whether `name` may be an account's name; what is wrong with it if not.
pub fn check_user_name(name: &str) -> Result<(), String> {
    crate::sqlite::check_name("user", name).map_err(|error| error.to_string())
}

impl Setting<String> {
    /// A form field: blank clears, anything else is set (trimmed).
    pub fn from_form(text: &str) -> Self {
        match text.trim() {
            "" => Self::Clear,
            text => Self::Set(text.to_owned()),
        }
    }

    /// A flag's value, or a flag that clears it, or neither.
    pub fn from_flags(value: Option<&str>, clear: bool) -> Self {
        match (value, clear) {
            (Some(value), _) => Self::Set(value.to_owned()),
            (None, true) => Self::Clear,
            (None, false) => Self::Keep,
        }
    }

    fn trimmed(&self) -> Self {
        match self {
            Self::Set(text) => Self::Set(text.trim().to_owned()),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named_with_its_flag_and_form_field() {
        let input = AccountInput {
            home: Setting::Set("a\u{7}b".into()),
            permissions: Setting::Set("elrz".into()),
            tls_required: Setting::Set("sometimes".into()),
            expires: Setting::Set("2026-02-30".into()),
            group: Setting::Set("bad/name".into()),
            ..AccountInput::default()
        };
        let errors = input.check().unwrap_err();
        let fields: Vec<_> = errors.0.keys().copied().collect();
        assert_eq!(
            fields,
            [
                AccountField::Group,
                AccountField::Home,
                AccountField::Permissions,
                AccountField::TlsRequired,
                AccountField::Expires
            ]
        );
        let text = errors.to_string();
        assert!(text.starts_with("--group: "), "{text}");
        assert!(
            text.contains("; --expires: invalid date \"2026-02-30\""),
            "{text}"
        );
        assert!(errors.by_form_name().contains_key("perms"));
        for home in ["/etc", "../other", "a/../../b"] {
            let input = AccountInput {
                home: Setting::Set(home.into()),
                homes_under_root_only: true,
                ..AccountInput::default()
            };
            assert!(input.check().is_err(), "{home}");
            let cli = AccountInput {
                homes_under_root_only: false,
                ..input
            };
            assert!(cli.check().is_ok(), "{home}");
        }
    }

    #[test]
    fn blank_clears_absent_keeps_and_text_is_typed() {
        let changes = AccountInput {
            home: Setting::from_form(" "),
            permissions: Setting::from_flags(Some("elr"), false),
            tls_required: Setting::Set("DATA".into()),
            expires: Setting::Set("2028-02-29".into()),
            admin: Some(false),
            ..AccountInput::default()
        }
        .check()
        .unwrap();
        assert_eq!(changes.home, Setting::Clear);
        assert_eq!(changes.group, Setting::Keep);
        assert_eq!(
            changes.permissions,
            Setting::Set("elr".parse::<Permissions>().unwrap())
        );
        assert_eq!(changes.tls_required, Setting::Set(TlsRequirement::Data));
        assert_eq!(changes.expires_on, Setting::Set("2028-02-29".into()));
        assert_eq!(changes.admin, Some(false));
        assert!(AccountInput::default().check().unwrap().is_empty());
        // No letters at all is no permission, not the group's.
        let none = AccountInput {
            permissions: Setting::from_flags(Some(""), false),
            ..AccountInput::default()
        };
        assert_eq!(
            none.check().unwrap().permissions,
            Setting::Set(Permissions::NONE)
        );
    }
}
