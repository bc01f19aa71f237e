//! USER, PASS, ACCT, REIN (RFC 959 §4.1.1).
//!
//! Every user name gets the same `331`, and every failure the same `530` after the same delay, so
//! a client cannot tell which accounts exist. An account that keeps failing from an address, or an
//! address that keeps failing, is refused for a while (`421`, saying which and until when); each
//! attempt is counted before its password is checked (`crate::auth::throttle`). Password checks
//! run on the blocking pool inside the authenticator. What an account requires to
//! be encrypted is checked at USER, before a password can follow in clear text, and again at PASS
//! with the account's details (RFC 4217 §11). So is the account's list of allowed networks: a
//! client outside them gets the same `331` and, at PASS, the same `530` after the same delay as
//! a wrong password, and its password is never checked (only as much time is spent). The account's
//! login and logout messages go out with `230` and with the `221` to QUIT.

use tracing::{info, warn};

use super::Handled;
use crate::auth::throttle::{BanScope, Banned};
use crate::auth::{AccountPolicy, AuthError, Permissions, TlsRequirement, UserDetails};
use crate::protocol::command::TransferType;
use crate::protocol::listing::MlstFacts;
use crate::protocol::time::UtcDateTime;
use crate::protocol::{Reply, ReplyCode, VirtualPath};
use crate::server::data::DataSetup;
use crate::server::events::EventKind;
use crate::server::resumption::LoginState;
use crate::server::session::{Flow, LoggedIn, Login, Session};

/// User names that mean "anonymous" (RFC 1635).
const ANONYMOUS_NAMES: [&str; 2] = ["anonymous", "ftp"];

impl Session {
    pub(super) async fn user_command(&mut self, name: &[u8]) -> Handled {
        let name = String::from_utf8_lossy(name).trim().to_owned();
        if name.is_empty() {
            return Err(Reply::new(
                ReplyCode::ARGUMENT_SYNTAX_ERROR,
                "USER needs a user name.",
            ));
        }
        // Refused before the password is sent in clear (RFC 4217 §11). Under TLS every policy
        // is met, so the account need not be looked up.
        let requirement = if self.control.is_tls() {
            None
        } else {
            self.server.authenticator.tls_requirement(&name).await
        };
        if let Err(reply) = self.tls_policy_allows_login(requirement) {
            warn!(
                user = name,
                "login refused before the password: TLS is required"
            );
            return Err(reply);
        }
        // A new USER starts a new login, as after REIN.
        self.reset_session_state();
        let refused = self.refused_before_password(&name).await;
        self.login = Login::AwaitingPassword {
            user: name,
            refused,
        };
        self.publish_login();
        Ok(Reply::new(ReplyCode::NEED_PASSWORD, "Password required.").into())
    }

    pub(super) async fn pass(&mut self, password: &[u8]) -> Handled {
        let handled = self.check_password(password).await;
        self.publish_login();
        handled
    }

    /// Tells the TLS resumption rule where this session is in logging in: other control
    /// connections of the same user may hand its TLS sessions to their data connections.
    fn publish_login(&self) {
        let Some(tls) = &self.tls else { return };
        tls.set_login(match &self.login {
            Login::AwaitingUser => LoginState::Out,
            Login::AwaitingPassword { .. } => LoginState::Pending,
            Login::LoggedIn(logged_in) => LoginState::In(logged_in.details.name.as_str().into()),
        });
    }

    /// Why the account may not log in from here, looked up at USER before any password is
    /// sent; `None` when it may (or the user is unknown). Logged with the reason; the client is
    /// told nothing yet.
    async fn refused_before_password(&self, user: &str) -> Option<&'static str> {
        let policy = self.server.authenticator.account_policy(user).await?;
        let reason = self.policy_refusal(&policy)?;
        warn!(user, client = %self.peer.ip(), reason, "login refused before the password");
        Some(reason)
    }

    /// What in an account's policy keeps this session out, if anything.
    fn policy_refusal(&self, policy: &AccountPolicy) -> Option<&'static str> {
        if policy.dashboard_only {
            return Some("the account may use the deploy dashboard only, not FTP");
        }
        if let Some(networks) = &policy.allowed_networks {
            if !networks.allows(self.peer.ip()) {
                return Some("the client's address is outside the account's allowed networks");
            }
        }
        let hosts = policy.hosts.as_ref()?;
        let configured = &self.server.config.virtual_hosts;
        match &self.virtual_host {
            // Any of the account's names, aliases included, may have been used with HOST.
            Some(chosen) => {
                let served = hosts
                    .names()
                    .filter_map(|name| configured.find(name))
                    .any(|host| std::sync::Arc::ptr_eq(host, chosen));
                (!served).then_some("the account is not served on the host the client chose")
            }
            // Without HOST the account logs in on its first host, which must exist.
            None => configured
                .find(hosts.first())
                .is_none()
                .then_some("the account's host is not configured on this server"),
        }
    }

    async fn check_password(&mut self, password: &[u8]) -> Handled {
        let (user, refused) = match std::mem::replace(&mut self.login, Login::AwaitingUser) {
            Login::AwaitingPassword { user, refused } => (user, refused),
            Login::LoggedIn(logged_in) => {
                self.login = Login::LoggedIn(logged_in);
                return Err(Reply::new(ReplyCode::BAD_SEQUENCE, "Already logged in."));
            }
            Login::AwaitingUser => {
                return Err(Reply::new(
                    ReplyCode::BAD_SEQUENCE,
                    "Send USER before PASS.",
                ));
            }
        };
        let ip = self.peer.ip();
        // Counted before the password is checked, so parallel sessions cannot race past the
        // limit (see `crate::auth::throttle`).
        let attempt = match self.server.throttle.admit(ip, &user).await {
            Ok(attempt) => attempt,
            Err(banned) => {
                warn!(
                    user,
                    "login refused: too many failed logins from this address"
                );
                self.emit_login_failed(&user, "too many failed logins from this address");
                return Ok(Flow::Close(too_many_failures(banned)));
            }
        };
        let password = String::from_utf8_lossy(password);
        let result = match (refused, self.anonymous_details(&user)) {
            (Some(reason), _) => {
                // Refused at USER: the password is not checked, but the refusal takes as long.
                self.server.authenticator.check_nothing(&password).await;
                Err(AuthError::Refused(reason))
            }
            (None, Some(details)) => Ok(details),
            (None, None) => {
                self.server
                    .authenticator
                    .authenticate(&user, &password, ip)
                    .await
            }
        };
        // Checked again with the details that came with the password: the account may have
        // changed since USER.
        let result = result.and_then(|details| match self.policy_refusal(&details.policy) {
            Some(reason) => Err(AuthError::Refused(reason)),
            None => Ok(details),
        });
        let details = match result {
            Ok(details) => {
                attempt.succeeded();
                details
            }
            Err(AuthError::Unavailable(reason)) => {
                attempt.unchecked();
                warn!(user, %reason, "login failed: account database unavailable");
                return Err(Reply::new(
                    ReplyCode::SERVICE_NOT_AVAILABLE,
                    "Logins are unavailable right now; try again later.",
                ));
            }
            Err(error) => {
                warn!(user, %error, "login failed");
                self.emit_login_failed(&user, &error.to_string());
                self.server.metrics.login(false);
                let verdict = attempt.failed();
                tokio::time::sleep(verdict.delay).await;
                if let Some(banned) = verdict.banned {
                    return Ok(Flow::Close(too_many_failures(banned)));
                }
                return Err(Reply::new(ReplyCode::NOT_LOGGED_IN, "Login incorrect."));
            }
        };
        // Checked again with the account's details: the session may have changed since USER
        // (CCC), and so may the account.
        if let Err(reply) = self.tls_policy_allows_login(details.tls_required) {
            warn!(user, "login refused: the account requires TLS");
            return Err(reply);
        }
        // A client that sent no HOST logs in on the account's own site, if it has one.
        if self.virtual_host.is_none() {
            if let Some(hosts) = &details.policy.hosts {
                self.virtual_host = self
                    .server
                    .config
                    .virtual_hosts
                    .find(hosts.first())
                    .cloned();
            }
        }
        let provider = match &details.storage {
            None => match &self.virtual_host {
                Some(host) => &host.storage,
                None => &self.server.storage,
            },
            Some(name) => match self.server.named_storage.get(name) {
                Some(provider) => provider,
                None => {
                    warn!(
                        user,
                        storage = name,
                        "login failed: the account's storage is not configured on this server"
                    );
                    return Err(Reply::new(
                        ReplyCode::NOT_LOGGED_IN,
                        format!(
                            "Your account's storage \"{name}\" is not configured on this server; ask the server's operator to add it."
                        ),
                    ));
                }
            },
        };
        let storage = match provider.open(&details.home).await {
            Ok(storage) => storage,
            Err(error) => {
                warn!(user, home = details.home, %error, "login failed: home directory unavailable");
                return Err(Reply::new(
                    ReplyCode::NOT_LOGGED_IN,
                    "Your home directory cannot be opened; ask the server's operator to check it.",
                ));
            }
        };
        self.server.metrics.login(true);
        tracing::Span::current().record("user", details.name.as_str());
        info!(home = details.home, "logged in");
        let welcome = format!("User {} logged in.", details.name);
        // pyftpdlib's msg_login: the account's own lines before the standard one.
        let reply = match details.policy.login_message.as_deref() {
            Some(message) => Reply::multiline(
                ReplyCode::LOGGED_IN,
                message.lines().chain([welcome.as_str()]),
            ),
            None => Reply::new(ReplyCode::LOGGED_IN, welcome),
        };
        self.login = Login::LoggedIn(Box::new(LoggedIn { details, storage }));
        self.emit(EventKind::Login, |event| event);
        Ok(reply.into())
    }

    /// A failed login's event names the account it tried, which is not logged in.
    fn emit_login_failed(&self, user: &str, reason: &str) {
        self.emit(EventKind::LoginFailed, |mut event| {
            event.user = Some(user.to_owned());
            event.reason(reason)
        });
    }

    /// Whether this connection meets what the server and an account with `requirement` ask to
    /// be encrypted, as far as a login can tell: the control connection itself, and for any
    /// requirement at all, a server that can speak TLS.
    fn tls_policy_allows_login(&self, requirement: Option<TlsRequirement>) -> Result<(), Reply> {
        let account = requirement.unwrap_or(TlsRequirement::None);
        let Some(context) = &self.server.config.tls else {
            if account == TlsRequirement::None {
                return Ok(());
            }
            return Err(Reply::new(
                ReplyCode::NOT_LOGGED_IN,
                format!(
                    "Your account requires TLS ({}), but this server has no TLS certificate; ask the server's operator to set up FTPS.",
                    account.as_str()
                ),
            ));
        };
        if context.settings.required.combine(account).control() && !self.control.is_tls() {
            return Err(Reply::new(
                ReplyCode::NOT_LOGGED_IN,
                "TLS is required to log in here: send AUTH TLS first (use FTPS in your client).",
            ));
        }
        Ok(())
    }

    /// Anonymous logins, when the server allows them: any password, read-only.
    fn anonymous_details(&self, user: &str) -> Option<UserDetails> {
        let home = self.server.config.anonymous_home.as_ref()?;
        if !ANONYMOUS_NAMES.iter().any(|n| n.eq_ignore_ascii_case(user)) {
            return None;
        }
        Some(UserDetails {
            name: "anonymous".to_owned(),
            home: home.clone(),
            permissions: Permissions::READ_ONLY,
            tls_required: None,
            admin: false,
            storage: None,
            policy: Default::default(),
        })
    }

    /// The `221` to QUIT, after the logged-in account's logout message if it has one
    /// (pyftpdlib's msg_quit).
    pub(crate) fn goodbye(&self) -> Reply {
        let message = self
            .user()
            .and_then(|user| user.details.policy.logout_message.as_deref());
        match message {
            Some(message) => Reply::multiline(
                ReplyCode::CLOSING_CONTROL,
                message.lines().chain(["Goodbye."]),
            ),
            None => Reply::new(ReplyCode::CLOSING_CONTROL, "Goodbye."),
        }
    }

    pub(super) fn acct(&mut self) -> Handled {
        Ok(Reply::new(
            ReplyCode::COMMAND_SUPERFLUOUS,
            "ACCT not needed on this server.",
        )
        .into())
    }

    /// REIN (RFC 959 §4.1.1): back to the state just after the greeting.
    pub(super) fn rein(&mut self) -> Handled {
        self.reset_session_state();
        // REIN starts over without the HOST (a new USER, which also starts over, keeps it).
        self.virtual_host = None;
        self.login = Login::AwaitingUser;
        self.publish_login();
        Ok(Reply::new(ReplyCode::SERVICE_READY, "Ready for a new user.").into())
    }

    fn reset_session_state(&mut self) {
        if self.user().is_some() {
            self.emit(EventKind::Logout, |event| event);
            // Leaving a login starts the clock for the next one.
            self.login_started = std::time::Instant::now();
        }
        self.cwd = VirtualPath::root();
        self.transfer_type = TransferType::Binary;
        self.data = DataSetup::None;
        self.epsv_all = false;
        self.restart_offset = 0;
        self.rename_from = None;
        self.mlst_facts = MlstFacts::default_set();
        // draft-bryan-ftpext-hash-02 §3.2: the selection holds until REIN.
        self.hash_algorithm = Default::default();
        self.hash_range = None;
    }
}

/// The reply to a login refused for too many failures: what is refused and until when (UTC, to
/// the second); the connection closes after it.
fn too_many_failures(banned: Banned) -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Rounded up, so the time said is never before the ban's end.
    let until = now + banned.remaining + std::time::Duration::from_millis(999);
    let until = UtcDateTime::from_unix(i64::try_from(until.as_secs()).unwrap_or(i64::MAX));
    let until = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        until.year, until.month, until.day, until.hour, until.minute, until.second
    );
    let text = match banned.scope {
        BanScope::AccountAtAddress => format!(
            "Too many failed logins for this account from your address: it is refused from here \
             until {until}; other accounts may still log in. Ask the server's operator if you \
             need it sooner."
        ),
        BanScope::Address => format!(
            "Too many failed logins from your address: every login from it is refused until \
             {until}. Ask the server's operator if you need it sooner."
        ),
    };
    Reply::new(ReplyCode::SERVICE_NOT_AVAILABLE, text)
}
