//! Accounts: who may log in, where their home is and what they may do there.
//!
//! Two stages, as the server sees them: [`Authenticator::authenticate`] checks a user name and
//! password and returns [`UserDetails`]; the server then opens the user's storage at the home
//! those details name. Accounts and groups live in SQLite ([`store`]); passwords are argon2id for
//! new accounts, and Django's hash strings are verified so imported users keep their passwords
//! ([`password`]). [`Permissions`] are pyftpdlib's letters `elradfmwMT`. [`throttle`] slows down
//! and then bans client addresses that keep failing to log in; [`login_guard`] does the same per
//! account and address for logins that name an account up front (the deploy dashboard).

pub mod account_input;
mod checkers;
pub mod django;
pub mod keyed_throttle;
pub mod login_guard;
pub mod networks;
pub mod password;
pub mod permissions;
pub mod store;
pub mod throttle;

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;

pub use account_input::{AccountChanges, AccountField, AccountInput, InputErrors, Setting};
pub use keyed_throttle::KeyedThrottle;
pub use login_guard::{LoginGuard, LoginRefusal};
pub use networks::{AllowedNetworks, HostList};
pub use permissions::{Permission, Permissions};
pub use store::{
    AccountRecord, AccountStore, GroupRecord, NewAccount, SqliteAuthenticator, StoreError,
};
pub use throttle::{LoginThrottle, ThrottleConfig};

/// Which connections an account must protect with TLS (RFC 4217), where it tightens the server's
/// policy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TlsRequirement {
    None,
    Control,
    Data,
    All,
}

impl TlsRequirement {
    pub fn control(self) -> bool {
        matches!(self, Self::Control | Self::All)
    }

    pub fn data(self) -> bool {
        matches!(self, Self::Data | Self::All)
    }

    /// Both requirements at once: what either of them asks for.
    pub fn combine(self, other: Self) -> Self {
        match (
            self.control() || other.control(),
            self.data() || other.data(),
        ) {
            (true, true) => Self::All,
            (true, false) => Self::Control,
            (false, true) => Self::Data,
            (false, false) => Self::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Control => "control",
            Self::Data => "data",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for TlsRequirement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "control" => Ok(Self::Control),
            "data" => Ok(Self::Data),
            "all" => Ok(Self::All),
            other => Err(format!(
                "unknown TLS requirement {other:?}; expected none, control, data or all"
            )),
        }
    }
}

/// What the server needs to know about a logged-in user.
#[derive(Clone, PartialEq, Eq)]
pub struct UserDetails {
    pub name: String,
    /// The home: the account's own, else its group's, else the user name. Relative homes are
    /// relative to the server's root.
    pub home: String,
    pub permissions: Permissions,
    /// The account's or its group's TLS requirement, if any.
    pub tls_required: Option<TlsRequirement>,
    pub admin: bool,
    /// The named storage holding the account's files (its own, else its group's); `None` is
    /// the server's storage.
    pub storage: Option<String>,
    /// Where the account may log in from, and its login and logout messages.
    pub policy: AccountPolicy,
}

/// The settings of an account (or its group) that decide where it may log in from and what
/// it is told when it does and when it leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountPolicy {
    /// The account's networks, else its group's; `None` allows any.
    pub allowed_networks: Option<AllowedNetworks>,
    /// The virtual hosts (RFC 7151) the account may log in on, its own else its group's;
    /// `None` allows every host.
    pub hosts: Option<HostList>,
    /// Lines shown before "User NAME logged in." in the `230` reply.
    pub login_message: Option<String>,
    /// Lines shown before "Goodbye." in the `221` reply to QUIT.
    pub logout_message: Option<String>,
    /// The account may use the deploy dashboard only: every FTP login is refused like a wrong
    /// password.
    pub dashboard_only: bool,
}

impl fmt::Debug for UserDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDetails")
            .field("name", &self.name)
            .field("home", &self.home)
            .field("permissions", &self.permissions.to_string())
            .field("tls_required", &self.tls_required)
            .field("admin", &self.admin)
            .field("storage", &self.storage)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Why a login failed. The client sees the same reply for every variant but `Unavailable`, so it
/// cannot learn which user names exist.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("the account is disabled")]
    Disabled,
    #[error("the account has expired")]
    Expired,
    /// Decided before the password was read (it was not checked): an address outside the
    /// account's allowed networks.
    #[error("refused before the password: {0}")]
    Refused(&'static str),
    #[error("the account database is unavailable: {0}")]
    Unavailable(String),
}

/// Checks credentials.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// Verifies `password` for `user`. Must not block the runtime (hashing runs on the blocking
    /// pool) and must take about as long for unknown users as for known ones.
    async fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<UserDetails, AuthError>;

    /// The TLS requirement of an account, looked up without a password so the server can refuse a
    /// plain-text login before the password is sent. `None` for unknown users and accounts
    /// without their own requirement.
    async fn tls_requirement(&self, user: &str) -> Option<TlsRequirement> {
        let _ = user;
        None
    }

    /// The login policy of an account, looked up at USER before any password: a client from a
    /// network the account does not allow is refused without its password being checked.
    /// `None` for unknown users.
    async fn account_policy(&self, user: &str) -> Option<AccountPolicy> {
        let _ = user;
        None
    }

    /// Takes as long as checking a password and checks none, for a login refused before its
    /// password: its refusal must not come sooner than a wrong password's.
    async fn check_nothing(&self, password: &str) {
        let _ = password;
    }
}
