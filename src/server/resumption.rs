//! Which TLS sessions a data connection may resume (`--require-tls-resumption`): those issued to
//! its own control connection, or to another control connection logged in as the same account
//! from the same client address.
//!
//! The threat: someone racing the client to a passive port. The port only takes connections from
//! the control connection's address, but behind a NAT or a balancer other people share it. With
//! resumption required, the data connection must resume a TLS session the server issued, and
//! sessions are only ever handed out inside TLS to the client whose handshake made them: a thief
//! holds only sessions of its own control connections, which are logged in as another account or
//! not at all, and is refused (`522`). A thief logged in as the same account from the same address
//! already holds the account's password, and the rule has nothing left to protect.
//!
//! Why not only the control connection's own session: clients with one TLS session cache per host
//! and several connections (rclone, and any Go program: `tls.Config.ClientSessionCache` keeps one
//! session per server name) offer whichever of their connections got a ticket last — often one
//! that has just finished its handshake and is still logging in.
//!
//! How: one ticket key for the whole server (rustls' rotating [`Ticketer`]), wrapped by a
//! [`BoundTicketer`] that seals the id of the control connection a ticket is issued to inside the
//! ticket. The ticket is encrypted and authenticated with a key that never leaves the process, so
//! the id cannot be forged. A data connection's ticketer accepts a ticket of its own control
//! connection or of another live one from the same client address, and notes the issuer; after
//! the handshake, [`ResumedFrom::verify`] lets the data connection through only if that issuer is
//! logged in as the same account — waiting, for a bounded time, while the issuer has not logged in
//! yet (its TLS handshake done, USER not yet sent or PASS not yet answered), since that is when Go
//! clients hand its ticket to their other connections. A thief's connection that never logs in
//! only makes the wait run out, and the thief gets nothing but a closed connection. Control connections resume
//! nothing but their own sessions. TLS 1.2 session ids (clients without tickets) stay in the
//! control connection's own cache and resume only there.
//!
//! [`Ticketer`]: rustls::crypto::aws_lc_rs::Ticketer

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rustls::server::ProducesTickets;
use tokio::sync::watch;
use tracing::{debug, warn};

/// Where a control connection is in logging in, as far as the resumption rule cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginState {
    /// The connection has not begun to log in yet (its TLS handshake may be all it has done).
    New,
    /// Nobody is logged in, and no login is under way: a login failed or was reset (REIN).
    Out,
    /// USER was sent; the login ends with PASS (or a new USER, REIN, or the connection's end).
    Pending,
    /// Logged in as this account.
    In(Arc<str>),
}

/// The live control connections that may have been issued TLS sessions, by id.
#[derive(Debug)]
pub(crate) struct ResumptionRegistry {
    /// The server's ticket key; `None` if none could be made (then no tickets at all).
    tickets: Option<Arc<dyn ProducesTickets>>,
    live: Mutex<HashMap<u64, Weak<ControlBinding>>>,
    next_id: AtomicU64,
}

impl ResumptionRegistry {
    pub(crate) fn new() -> Arc<Self> {
        let tickets = match rustls::crypto::aws_lc_rs::Ticketer::new() {
            Ok(ticketer) => Some(ticketer),
            Err(error) => {
                warn!(%error, "no TLS session tickets on this server");
                None
            }
        };
        Arc::new(Self {
            tickets,
            live: Mutex::default(),
            next_id: AtomicU64::new(1),
        })
    }

    /// Registers a control connection from `client_ip` (the client a PROXY header names, behind
    /// a balancer); it stays registered while the returned binding lives.
    pub(crate) fn bind(self: &Arc<Self>, client_ip: IpAddr) -> Arc<ControlBinding> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let binding = Arc::new(ControlBinding {
            id,
            client_ip: client_ip.to_canonical(),
            login: watch::Sender::new(LoginState::New),
            registry: Arc::clone(self),
        });
        self.live().insert(id, Arc::downgrade(&binding));
        binding
    }

    /// The ticketer of `binding`'s control connection: it resumes only its own sessions.
    pub(crate) fn control_ticketer(
        &self,
        binding: &Arc<ControlBinding>,
    ) -> Option<Arc<BoundTicketer>> {
        Some(Arc::new(BoundTicketer {
            shared: Arc::clone(self.tickets.as_ref()?),
            binding: Arc::clone(binding),
            resumed_from: None,
        }))
    }

    /// The ticketer of one data connection of `binding`'s session, and what it will have
    /// resumed, for [`ResumedFrom::verify`] after the handshake.
    pub(crate) fn data_ticketer(
        &self,
        binding: &Arc<ControlBinding>,
    ) -> Option<(Arc<BoundTicketer>, ResumedFrom)> {
        let issuer = Arc::new(Mutex::new(None));
        let ticketer = Arc::new(BoundTicketer {
            shared: Arc::clone(self.tickets.as_ref()?),
            binding: Arc::clone(binding),
            resumed_from: Some(Arc::clone(&issuer)),
        });
        let resumed = ResumedFrom {
            binding: Arc::clone(binding),
            issuer,
        };
        Some((ticketer, resumed))
    }

    /// The live control connection `id`, if it is from `client_ip`.
    fn live_from(&self, id: u64, client_ip: IpAddr) -> Option<Arc<ControlBinding>> {
        // The upgraded reference outlives the lock: dropping the last one takes the lock again.
        let binding = self.live().get(&id).and_then(Weak::upgrade)?;
        (binding.client_ip == client_ip).then_some(binding)
    }

    fn live(&self) -> MutexGuard<'_, HashMap<u64, Weak<ControlBinding>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One control connection as the resumption rule sees it: where it comes from and who is logged
/// in on it.
#[derive(Debug)]
pub(crate) struct ControlBinding {
    id: u64,
    client_ip: IpAddr,
    login: watch::Sender<LoginState>,
    registry: Arc<ResumptionRegistry>,
}

impl ControlBinding {
    /// Records where the connection is in logging in.
    pub(crate) fn set_login(&self, state: LoginState) {
        self.login.send_replace(state);
    }
}

impl Drop for ControlBinding {
    fn drop(&mut self) {
        self.registry.live().remove(&self.id);
    }
}

/// Why a resumed data connection is refused after its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ForeignSession {
    #[error("the TLS session it resumed belongs to a control connection not logged in as you")]
    OtherLogin,
    #[error("the TLS session it resumed belongs to a control connection that ended")]
    Ended,
}

/// Which control connection a data connection's TLS session was issued to, once its handshake
/// has resumed one.
#[derive(Debug)]
pub(crate) struct ResumedFrom {
    binding: Arc<ControlBinding>,
    issuer: Arc<Mutex<Option<u64>>>,
}

impl ResumedFrom {
    /// After a resumed handshake: passes a session of the data connection's own control
    /// connection at once, and one of another control connection from the same address once
    /// that connection is logged in as the same account. A connection that has not logged in
    /// yet (new, or USER sent) is waited for, at most `limit`; one whose login failed or was
    /// reset is refused at once.
    pub(crate) async fn verify(self, limit: Duration) -> Result<(), ForeignSession> {
        let issuer = *self.issuer.lock().unwrap_or_else(PoisonError::into_inner);
        // No issuer noted: a TLS 1.2 session id, which only the own cache holds.
        let Some(issuer) = issuer.filter(|id| *id != self.binding.id) else {
            return Ok(());
        };
        let LoginState::In(mine) = self.binding.login.borrow().clone() else {
            return Err(ForeignSession::OtherLogin);
        };
        let issuer_id = issuer;
        let Some(issuer) = self
            .binding
            .registry
            .live_from(issuer, self.binding.client_ip)
        else {
            return Err(ForeignSession::Ended);
        };
        let mut login = issuer.login.subscribe();
        drop(issuer);
        let settled = tokio::time::timeout(
            limit,
            login.wait_for(|state| !matches!(state, LoginState::New | LoginState::Pending)),
        )
        .await;
        match settled {
            Ok(Ok(state)) if *state == LoginState::In(mine) => {
                debug!(
                    issuer = issuer_id,
                    "resumed a TLS session of the user's other control connection"
                );
                Ok(())
            }
            Ok(Ok(_)) | Err(_) => Err(ForeignSession::OtherLogin),
            Ok(Err(_)) => Err(ForeignSession::Ended),
        }
    }
}

/// The ticketer of a control session's TLS configurations: the server's ticket key, with the
/// issuing control connection's id sealed in each ticket.
#[derive(Debug)]
pub(crate) struct BoundTicketer {
    shared: Arc<dyn ProducesTickets>,
    binding: Arc<ControlBinding>,
    /// For a data connection: where to note the issuer of the session it resumes. `None` for the
    /// control connection, which resumes only its own sessions.
    resumed_from: Option<Arc<Mutex<Option<u64>>>>,
}

/// Bytes of the issuer id at the front of a ticket's plaintext.
const ISSUER_LEN: usize = 8;

impl BoundTicketer {
    /// Whether a session issued to control connection `issuer` may be resumed here at all (the
    /// account is checked after the handshake, see [`ResumedFrom::verify`]).
    fn may_resume(&self, issuer: u64) -> bool {
        if issuer == self.binding.id {
            return true;
        }
        self.resumed_from.is_some()
            && self
                .binding
                .registry
                .live_from(issuer, self.binding.client_ip)
                .is_some()
    }
}

impl ProducesTickets for BoundTicketer {
    fn enabled(&self) -> bool {
        self.shared.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.shared.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut sealed = Vec::with_capacity(ISSUER_LEN + plain.len());
        sealed.extend_from_slice(&self.binding.id.to_be_bytes());
        sealed.extend_from_slice(plain);
        self.shared.encrypt(&sealed)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let sealed = self.shared.decrypt(cipher)?;
        let (issuer, plain) = sealed.split_first_chunk::<ISSUER_LEN>()?;
        let issuer = u64::from_be_bytes(*issuer);
        if !self.may_resume(issuer) {
            // Every client that reconnects offers its last session on the new control
            // connection, so this is routine; a refused data connection is logged with its 522.
            debug!(
                issuer,
                "a TLS session of another control connection was offered; starting a new one"
            );
            return None;
        }
        if let Some(noted) = &self.resumed_from {
            *noted.lock().unwrap_or_else(PoisonError::into_inner) = Some(issuer);
        }
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const NEIGHBOUR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
    const LIMIT: Duration = Duration::from_secs(30);

    fn ticket_of(registry: &ResumptionRegistry, binding: &Arc<ControlBinding>) -> Vec<u8> {
        registry
            .control_ticketer(binding)
            .unwrap()
            .encrypt(b"session state")
            .unwrap()
    }

    /// Offers `ticket` on a data connection of `binding`'s session: `None` if the handshake
    /// would not resume, else what the check after it says.
    async fn data_connection(
        registry: &ResumptionRegistry,
        binding: &Arc<ControlBinding>,
        ticket: &[u8],
    ) -> Option<Result<(), ForeignSession>> {
        let (ticketer, resumed) = registry.data_ticketer(binding).unwrap();
        let plain = ticketer.decrypt(ticket)?;
        assert_eq!(plain, b"session state");
        Some(resumed.verify(LIMIT).await)
    }

    fn logged_in(
        registry: &Arc<ResumptionRegistry>,
        ip: IpAddr,
        account: &str,
    ) -> Arc<ControlBinding> {
        let binding = registry.bind(ip);
        binding.set_login(LoginState::In(account.into()));
        binding
    }

    #[tokio::test]
    async fn a_data_connection_resumes_its_own_control_connections_sessions() {
        let registry = ResumptionRegistry::new();
        let own = logged_in(&registry, HOME, "alice");
        let ticket = ticket_of(&registry, &own);
        assert_eq!(
            data_connection(&registry, &own, &ticket).await,
            Some(Ok(()))
        );
    }

    #[tokio::test]
    async fn sessions_of_the_same_account_and_address_are_shared() {
        let registry = ResumptionRegistry::new();
        let first = logged_in(&registry, HOME, "alice");
        let second = logged_in(&registry, HOME, "alice");
        let ticket = ticket_of(&registry, &first);
        assert_eq!(
            data_connection(&registry, &second, &ticket).await,
            Some(Ok(()))
        );
        // After REIN the issuer is nobody's any more.
        first.set_login(LoginState::Out);
        assert_eq!(
            data_connection(&registry, &second, &ticket).await,
            Some(Err(ForeignSession::OtherLogin))
        );
    }

    #[tokio::test]
    async fn a_login_under_way_is_waited_for() {
        let registry = ResumptionRegistry::new();
        let alice = logged_in(&registry, HOME, "alice");
        let issuer = registry.bind(HOME);
        issuer.set_login(LoginState::Pending);
        let ticket = ticket_of(&registry, &issuer);
        let (ticketer, resumed) = registry.data_ticketer(&alice).unwrap();
        assert!(ticketer.decrypt(&ticket).is_some());
        let verdict = tokio::spawn(resumed.verify(LIMIT));
        tokio::task::yield_now().await;
        issuer.set_login(LoginState::In("alice".into()));
        assert_eq!(verdict.await.unwrap(), Ok(()));

        // A connection whose TLS handshake is all it has done yet is waited for too: Go clients
        // hand its ticket to their data connections before it has sent USER.
        let fresh = registry.bind(HOME);
        let ticket = ticket_of(&registry, &fresh);
        let (ticketer, resumed) = registry.data_ticketer(&alice).unwrap();
        assert!(ticketer.decrypt(&ticket).is_some());
        let verdict = tokio::spawn(resumed.verify(LIMIT));
        tokio::task::yield_now().await;
        fresh.set_login(LoginState::Pending);
        tokio::task::yield_now().await;
        fresh.set_login(LoginState::In("alice".into()));
        assert_eq!(verdict.await.unwrap(), Ok(()));

        // A login that fails, or never ends in time, passes nothing.
        let thief = registry.bind(HOME);
        thief.set_login(LoginState::Pending);
        let ticket = ticket_of(&registry, &thief);
        let (ticketer, resumed) = registry.data_ticketer(&alice).unwrap();
        assert!(ticketer.decrypt(&ticket).is_some());
        let verdict = tokio::spawn(resumed.verify(LIMIT));
        tokio::task::yield_now().await;
        thief.set_login(LoginState::Out);
        assert_eq!(verdict.await.unwrap(), Err(ForeignSession::OtherLogin));
        let (ticketer, resumed) = registry.data_ticketer(&alice).unwrap();
        thief.set_login(LoginState::Pending);
        assert!(ticketer.decrypt(&ticket).is_some());
        assert_eq!(
            resumed.verify(Duration::from_millis(10)).await,
            Err(ForeignSession::OtherLogin)
        );
    }

    #[tokio::test]
    async fn another_account_another_address_or_an_ended_connection_is_refused() {
        let registry = ResumptionRegistry::new();
        let alice = logged_in(&registry, HOME, "alice");
        let thief = logged_in(&registry, HOME, "mallory");
        assert_eq!(
            data_connection(&registry, &alice, &ticket_of(&registry, &thief)).await,
            Some(Err(ForeignSession::OtherLogin))
        );
        let elsewhere = logged_in(&registry, NEIGHBOUR, "alice");
        assert_eq!(
            data_connection(&registry, &alice, &ticket_of(&registry, &elsewhere)).await,
            None
        );
        let ended = logged_in(&registry, HOME, "alice");
        let ticket = ticket_of(&registry, &ended);
        drop(ended);
        assert_eq!(data_connection(&registry, &alice, &ticket).await, None);
    }

    #[test]
    fn control_connections_resume_only_their_own_sessions() {
        let registry = ResumptionRegistry::new();
        let first = logged_in(&registry, HOME, "alice");
        let second = logged_in(&registry, HOME, "alice");
        let ticket = ticket_of(&registry, &first);
        let control = registry.control_ticketer(&second).unwrap();
        assert!(control.decrypt(&ticket).is_none());
        assert!(
            registry
                .control_ticketer(&first)
                .unwrap()
                .decrypt(&ticket)
                .is_some()
        );
    }

    #[test]
    fn forged_and_foreign_tickets_do_not_open() {
        let registry = ResumptionRegistry::new();
        let own = registry.bind(HOME);
        let mut ticket = ticket_of(&registry, &own);
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        let ticketer = registry.control_ticketer(&own).unwrap();
        assert!(ticketer.decrypt(&ticket).is_none());
        let other_server = ResumptionRegistry::new();
        let stranger = other_server.bind(HOME);
        assert!(
            ticketer
                .decrypt(&ticket_of(&other_server, &stranger))
                .is_none()
        );
    }
}
