//! Failed-login throttling per client address: a growing delay after each failure, and a ban
//! after too many failures in a window. In memory only; a restart forgives everyone.
//!
//! The server asks [`LoginThrottle::admit`] before it looks at a password. Admission counts the
//! attempt at once, as if it had failed, so sessions that send their passwords in parallel cannot
//! all be checked before the first failure is known: at most `max_failures` attempts from one
//! address are checked or failed within the window, and further attempts wait for a check to end
//! (or meet the ban). The [`LoginAttempt`] it returns then says how the check went.
//!
//! Failures count against the address (an IPv6 /64, see [`client_network`]), whoever logs in
//! meanwhile: a good login, even of the same account, never takes a failure off the count toward
//! the ban — else one account an attacker knows, or a colleague behind the same NAT, would reset
//! the count for guesses at every other account. A good login only forgives its own account's
//! failures their share of the delay. Every method has an `_at` twin that takes the time, so tests
//! run on synthetic instants instead of sleeping.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How hard to throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that ban an address.
    pub max_failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban: Duration,
    /// The delay after a first failure; each further recent failure adds as much again.
    pub base_delay: Duration,
    /// The longest delay, whatever the count.
    pub max_delay: Duration,
    /// How many addresses are tracked at most, so a flood of addresses cannot exhaust memory.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(5 * 60),
            ban: Duration::from_secs(10 * 60),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            max_tracked: 10_000,
        }
    }
}

/// Where one counted attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Admitted; its password is being checked. Counts toward the ban like a failure.
    Checking,
    /// A wrong password: counts toward the ban and the delay.
    Failed,
    /// A failure of an account that has logged in since: still counts toward the ban, no longer
    /// toward the delay.
    Forgiven,
}

#[derive(Debug)]
struct Attempt {
    id: u64,
    at: Instant,
    /// A keyed hash of the account name (names are not kept); `None` from callers that do not
    /// name the account.
    account: Option<u64>,
    outcome: Outcome,
}

#[derive(Debug, Default)]
struct Entry {
    /// Attempts still inside the window, oldest first: failures and checks under way. At most
    /// `max_failures`.
    attempts: VecDeque<Attempt>,
    banned_until: Option<Instant>,
}

impl Entry {
    /// Drops failures that have left the window. Checks under way stay whatever their age: they
    /// are taken out when they end.
    fn forget_failures_before(&mut self, cutoff: Option<Instant>) {
        let Some(cutoff) = cutoff else { return };
        self.attempts
            .retain(|attempt| attempt.outcome == Outcome::Checking || attempt.at > cutoff);
    }

    fn is_banned_at(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    fn failures(&self) -> usize {
        self.attempts
            .iter()
            .filter(|attempt| attempt.outcome != Outcome::Checking)
            .count()
    }

    /// Whether the entry still tells anything: a live ban, a check under way or a failure inside
    /// the window.
    fn is_stale_at(&self, now: Instant, window: Duration) -> bool {
        !self.is_banned_at(now)
            && self.attempts.iter().all(|attempt| {
                attempt.outcome != Outcome::Checking
                    && now.saturating_duration_since(attempt.at) >= window
            })
    }

    /// When the entry stops mattering, for choosing what to evict when full.
    fn expires_at(&self, window: Duration) -> Option<Instant> {
        let failures_expire = self.attempts.back().map(|last| last.at + window);
        failures_expire.max(self.banned_until)
    }
}

/// Why a login is refused without looking at the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins from this address")]
pub struct Banned;

/// What a failed login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureVerdict {
    /// This failure banned the address.
    pub banned: bool,
    /// How long to wait before answering it.
    pub delay: Duration,
}

/// Per-address failed-login bookkeeping, shared by all sessions of a server.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    entries: Mutex<HashMap<IpAddr, Entry>>,
    /// Wakes logins that wait for a check from their address to end.
    settled: Notify,
    next_attempt: AtomicU64,
    /// Keys the account-name hashes, so they cannot be matched against a list of names.
    account_hasher: RandomState,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(ThrottleConfig::default())
    }
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
            settled: Notify::new(),
            next_attempt: AtomicU64::new(0),
            account_hasher: RandomState::new(),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Counts a login attempt from `ip` for `account` before its password is checked, waiting
    /// while `max_failures` attempts from the address are already failed or being checked.
    /// Refused once the address is banned.
    pub async fn admit(&self, ip: IpAddr, account: &str) -> Result<LoginAttempt<'_>, Banned> {
        loop {
            // Registered before looking, so an attempt that ends in between still wakes us.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if let Some(attempt) = self.try_admit_at(ip, account, Instant::now())? {
                return Ok(attempt);
            }
            settled.await;
        }
    }

    /// [`LoginThrottle::admit`] without the wait: `Ok(None)` when the address has no room now.
    pub fn try_admit_at(
        &self,
        ip: IpAddr,
        account: &str,
        now: Instant,
    ) -> Result<Option<LoginAttempt<'_>>, Banned> {
        let key = client_network(ip);
        let account = self.account_hasher.hash_one(account);
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.config.max_tracked {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(key).or_default();
        if entry.is_banned_at(now) {
            return Err(Banned);
        }
        entry.forget_failures_before(now.checked_sub(self.config.window));
        if entry.attempts.len() >= self.config.max_failures as usize {
            return Ok(None);
        }
        let id = self.next_attempt.fetch_add(1, Ordering::Relaxed);
        entry.attempts.push_back(Attempt {
            id,
            at: now,
            account: Some(account),
            outcome: Outcome::Checking,
        });
        Ok(Some(LoginAttempt {
            throttle: self,
            key,
            id,
            account,
            settled: false,
        }))
    }

    /// Whether logins from `ip` are refused without looking at the password.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.is_blocked_at(ip, Instant::now())
    }

    /// How long to wait before answering a failed login from `ip`: `base_delay` times the
    /// unforgiven failures still in the window (at least one, the failure being answered),
    /// capped at `max_delay`.
    pub fn failure_delay(&self, ip: IpAddr) -> Duration {
        self.failure_delay_at(ip, Instant::now())
    }

    /// Counts a failed login from `ip` that was not admitted first (for callers that do not name
    /// the account); the `max_failures`-th within the window bans it.
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// A good login from `ip` by a caller that does not name the account: forgives the delay of
    /// the failures recorded the same way. The failures still count toward the ban.
    pub fn record_success(&self, ip: IpAddr) {
        self.record_success_at(ip, Instant::now());
    }

    pub fn is_blocked_at(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries()
            .get(&client_network(ip))
            .is_some_and(|entry| entry.is_banned_at(now))
    }

    pub fn failure_delay_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let entries = self.entries();
        self.delay_for(entries.get(&client_network(ip)), now)
    }

    pub fn record_failure_at(&self, ip: IpAddr, now: Instant) {
        let key = client_network(ip);
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.config.max_tracked {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(key).or_default();
        entry.forget_failures_before(now.checked_sub(self.config.window));
        let id = self.next_attempt.fetch_add(1, Ordering::Relaxed);
        entry.attempts.push_back(Attempt {
            id,
            at: now,
            account: None,
            outcome: Outcome::Failed,
        });
        self.ban_if_over(key, entry, now);
    }

    pub fn record_success_at(&self, ip: IpAddr, _now: Instant) {
        if let Some(entry) = self.entries().get_mut(&client_network(ip)) {
            forgive(entry, None);
        }
    }

    /// How many addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.entries().len()
    }

    /// Settles attempt `id` of `key`: takes it off the count unless it failed, then wakes the
    /// logins waiting for room.
    fn settle(
        &self,
        key: IpAddr,
        id: u64,
        account: u64,
        failed: bool,
        now: Instant,
    ) -> FailureVerdict {
        let mut verdict = FailureVerdict {
            banned: false,
            delay: self.config.base_delay.min(self.config.max_delay),
        };
        {
            let mut entries = self.entries();
            if let Some(entry) = entries.get_mut(&key) {
                let position = entry.attempts.iter().position(|attempt| attempt.id == id);
                match (position, failed) {
                    (Some(at), true) => {
                        entry.attempts[at].outcome = Outcome::Failed;
                        verdict.banned = self.ban_if_over(key, entry, now);
                    }
                    (Some(at), false) => {
                        entry.attempts.remove(at);
                    }
                    // Evicted or cleared by a ban meanwhile: nothing left to settle.
                    (None, _) => {}
                }
                if !failed {
                    forgive(entry, Some(account));
                }
                if !verdict.banned {
                    verdict.delay = self.delay_for(Some(entry), now);
                }
                if entry.attempts.is_empty() && !entry.is_banned_at(now) {
                    entries.remove(&key);
                }
            }
        }
        self.settled.notify_waiters();
        verdict
    }

    /// Bans the address once its failures reach `max_failures`; true if this call banned it.
    fn ban_if_over(&self, key: IpAddr, entry: &mut Entry, now: Instant) -> bool {
        if entry.failures() < self.config.max_failures as usize {
            return false;
        }
        entry.banned_until = Some(now + self.config.ban);
        // Checks still under way end in the ban too: their outcomes no longer matter.
        entry.attempts.clear();
        tracing::warn!(
            peer = %key,
            ban_secs = self.config.ban.as_secs(),
            "too many failed logins; refusing logins from this address for a while"
        );
        true
    }

    fn delay_for(&self, entry: Option<&Entry>, now: Instant) -> Duration {
        let recent = entry
            .map_or(0, |entry| {
                entry
                    .attempts
                    .iter()
                    .filter(|attempt| {
                        attempt.outcome == Outcome::Failed
                            && now.saturating_duration_since(attempt.at) < self.config.window
                    })
                    .count()
            })
            .max(1);
        let recent = u32::try_from(recent).unwrap_or(u32::MAX);
        self.config
            .base_delay
            .saturating_mul(recent)
            .min(self.config.max_delay)
    }

    /// Drops stale entries; if none were stale, the one that would expire first, so a newcomer
    /// is always tracked (its failures matter more than an old address's nearly spent ones).
    fn make_room(&self, entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
        let window = self.config.window;
        entries.retain(|_, entry| !entry.is_stale_at(now, window));
        if entries.len() < self.config.max_tracked {
            return;
        }
        let soonest = entries
            .iter()
            .min_by_key(|(_, entry)| entry.expires_at(window))
            .map(|(ip, _)| *ip);
        if let Some(ip) = soonest {
            entries.remove(&ip);
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // The map holds only counters; whatever a panicking thread left is still usable.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An account's good login forgives its earlier failures their delay, not their place in the
/// count toward the ban.
fn forgive(entry: &mut Entry, account: Option<u64>) {
    for attempt in &mut entry.attempts {
        if attempt.outcome == Outcome::Failed && attempt.account == account {
            attempt.outcome = Outcome::Forgiven;
        }
    }
}

/// One admitted login attempt, counted as a failure until its check says otherwise. Dropped
/// without an outcome (a session that ended mid-check), it stays counted as a failure.
#[derive(Debug)]
#[must_use = "an attempt counts as a failure until it is settled"]
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    key: IpAddr,
    id: u64,
    account: u64,
    settled: bool,
}

impl LoginAttempt<'_> {
    /// A wrong password (or an unknown or disabled account): stays counted; says whether it
    /// banned the address and how long to wait before answering.
    pub fn failed(self) -> FailureVerdict {
        self.failed_at(Instant::now())
    }

    /// The password was right: the attempt is taken off the count, and the account's earlier
    /// failures from the address no longer add to the delay.
    pub fn succeeded(self) {
        self.succeeded_at(Instant::now());
    }

    /// The password could not be checked (the account database is unavailable): not counted.
    pub fn unchecked(mut self) {
        self.settled = true;
        let mut entries = self.throttle.entries();
        if let Some(entry) = entries.get_mut(&self.key) {
            entry.attempts.retain(|attempt| attempt.id != self.id);
            if entry.attempts.is_empty() && !entry.is_banned_at(Instant::now()) {
                entries.remove(&self.key);
            }
        }
        drop(entries);
        self.throttle.settled.notify_waiters();
    }

    pub fn failed_at(mut self, now: Instant) -> FailureVerdict {
        self.settled = true;
        self.throttle
            .settle(self.key, self.id, self.account, true, now)
    }

    pub fn succeeded_at(mut self, now: Instant) {
        self.settled = true;
        self.throttle
            .settle(self.key, self.id, self.account, false, now);
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle
                .settle(self.key, self.id, self.account, true, Instant::now());
        }
    }
}

/// The network a client address is counted under, by the login throttle and the connection
/// limits. An IPv6 client usually holds a whole /64, so counting single addresses would let it
/// rotate through them; IPv4-mapped IPv6 counts as the IPv4 address it is.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !(u128::from(u64::MAX));
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const BOB: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn admit<'a>(throttle: &'a LoginThrottle, account: &str, now: Instant) -> LoginAttempt<'a> {
        throttle
            .try_admit_at(ALICE, account, now)
            .expect("not banned")
            .expect("room for an attempt")
    }

    #[test]
    fn bans_after_max_failures_within_the_window() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..4 {
            throttle.record_failure_at(ALICE, start + secs(i));
            assert!(!throttle.is_blocked_at(ALICE, start + secs(i)));
        }
        throttle.record_failure_at(ALICE, start + secs(4));
        assert!(throttle.is_blocked_at(ALICE, start + secs(4)));
        assert!(!throttle.is_blocked_at(BOB, start + secs(4)));
    }

    #[test]
    fn ban_expires_after_the_ban_time() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..5 {
            throttle.record_failure_at(ALICE, start);
        }
        assert!(throttle.is_blocked_at(ALICE, start + secs(10 * 60 - 1)));
        assert!(!throttle.is_blocked_at(ALICE, start + secs(10 * 60)));
        // A fresh start after the ban: one more failure does not ban again.
        throttle.record_failure_at(ALICE, start + secs(10 * 60));
        assert!(!throttle.is_blocked_at(ALICE, start + secs(10 * 60)));
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..4 {
            throttle.record_failure_at(ALICE, start + secs(i));
        }
        let later = start + secs(5 * 60 + 10);
        throttle.record_failure_at(ALICE, later);
        assert!(!throttle.is_blocked_at(ALICE, later));
    }

    #[test]
    fn a_good_login_of_another_account_does_not_clear_the_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for round in 0..4 {
            let now = start + secs(round);
            let verdict = admit(&throttle, "victim", now).failed_at(now);
            assert!(!verdict.banned);
            admit(&throttle, "colleague", now).succeeded_at(now);
        }
        let verdict = admit(&throttle, "victim", start + secs(4)).failed_at(start + secs(4));
        assert!(verdict.banned);
        assert!(throttle.is_blocked_at(ALICE, start + secs(4)));
        assert_eq!(
            throttle
                .try_admit_at(ALICE, "colleague", start + secs(5))
                .err(),
            Some(Banned)
        );
    }

    #[test]
    fn a_success_forgives_its_own_accounts_delay_but_not_the_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..2 {
            let _ = admit(&throttle, "alice", start).failed_at(start);
        }
        let verdict = admit(&throttle, "bob", start).failed_at(start);
        assert_eq!(verdict.delay, secs(3));
        admit(&throttle, "alice", start).succeeded_at(start);
        // Only bob's failure still adds to the delay; all three still count toward the ban.
        assert_eq!(throttle.failure_delay_at(ALICE, start), secs(1));
        let verdict = admit(&throttle, "alice", start).failed_at(start);
        assert_eq!(verdict.delay, secs(2));
        assert!(!verdict.banned);
        assert!(admit(&throttle, "alice", start).failed_at(start).banned);
    }

    #[test]
    fn attempts_count_while_their_password_is_checked() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let checking: Vec<_> = (0..5).map(|_| admit(&throttle, "victim", now)).collect();
        // Five checks under way: a sixth waits, whatever their outcome will be.
        assert!(
            throttle
                .try_admit_at(ALICE, "victim", now)
                .unwrap()
                .is_none()
        );
        assert!(throttle.try_admit_at(BOB, "victim", now).unwrap().is_some());
        let mut checking = checking.into_iter();
        checking.next().unwrap().succeeded_at(now);
        let sixth = admit(&throttle, "victim", now);
        // All five left fail: the fifth failure bans.
        let banned: Vec<bool> = checking
            .chain([sixth])
            .map(|attempt| attempt.failed_at(now).banned)
            .collect();
        assert_eq!(banned, [false, false, false, false, true]);
        assert_eq!(throttle.try_admit_at(ALICE, "x", now).err(), Some(Banned));
    }

    #[test]
    fn an_attempt_dropped_mid_check_counts_as_a_failure() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..4 {
            drop(admit(&throttle, "victim", now));
        }
        assert!(!throttle.is_blocked_at(ALICE, now));
        drop(admit(&throttle, "victim", now));
        assert!(throttle.is_blocked_at(ALICE, now));
    }

    #[test]
    fn an_unchecked_attempt_is_not_counted() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..10 {
            admit(&throttle, "victim", now).unchecked();
        }
        assert_eq!(throttle.tracked(), 0);
    }

    #[tokio::test]
    async fn a_waiting_login_is_admitted_when_a_check_ends() {
        let throttle = std::sync::Arc::new(LoginThrottle::new(ThrottleConfig {
            max_failures: 1,
            ..ThrottleConfig::default()
        }));
        let first = throttle.admit(ALICE, "alice").await.unwrap();
        let waiting = {
            let throttle = std::sync::Arc::clone(&throttle);
            tokio::spawn(async move { throttle.admit(ALICE, "alice").await.map(|a| a.succeeded()) })
        };
        tokio::task::yield_now().await;
        first.succeeded();
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_waiting_login_meets_the_ban() {
        let throttle = std::sync::Arc::new(LoginThrottle::new(ThrottleConfig {
            max_failures: 1,
            ..ThrottleConfig::default()
        }));
        let first = throttle.admit(ALICE, "alice").await.unwrap();
        let waiting = {
            let throttle = std::sync::Arc::clone(&throttle);
            tokio::spawn(async move { throttle.admit(ALICE, "alice").await.map(|a| a.succeeded()) })
        };
        tokio::task::yield_now().await;
        assert!(first.failed().banned);
        assert_eq!(waiting.await.unwrap(), Err(Banned));
    }

    #[test]
    fn a_legacy_success_forgives_the_delay_not_the_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..4 {
            throttle.record_failure_at(ALICE, start + secs(i));
        }
        throttle.record_success_at(ALICE, start + secs(5));
        assert_eq!(throttle.failure_delay_at(ALICE, start + secs(5)), secs(1));
        throttle.record_failure_at(ALICE, start + secs(6));
        assert!(throttle.is_blocked_at(ALICE, start + secs(6)));
    }

    #[test]
    fn success_does_not_lift_a_running_ban() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..5 {
            throttle.record_failure_at(ALICE, start);
        }
        throttle.record_success_at(ALICE, start + secs(1));
        assert!(throttle.is_blocked_at(ALICE, start + secs(1)));
    }

    #[test]
    fn delay_grows_with_recent_failures_and_is_capped() {
        let throttle = LoginThrottle::new(ThrottleConfig {
            max_failures: 100,
            ..ThrottleConfig::default()
        });
        let start = Instant::now();
        assert_eq!(throttle.failure_delay_at(ALICE, start), secs(1));
        let mut delays = Vec::new();
        for _ in 0..7 {
            throttle.record_failure_at(ALICE, start);
            delays.push(throttle.failure_delay_at(ALICE, start).as_secs());
        }
        assert_eq!(delays, [1, 2, 3, 4, 5, 5, 5]);
        // Once the failures leave the window the delay falls back to the base.
        assert_eq!(
            throttle.failure_delay_at(ALICE, start + secs(5 * 60)),
            secs(1)
        );
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_count_together() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..5u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
            throttle.record_failure_at(ip, start);
        }
        let neighbour = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 1, 2, 3));
        assert!(throttle.is_blocked_at(neighbour, start));
        let other_net = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(!throttle.is_blocked_at(other_net, start));
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        for _ in 0..5 {
            throttle.record_failure_at(mapped, start);
        }
        assert!(throttle.is_blocked_at(ALICE, start));
    }

    #[test]
    fn tracking_is_bounded_and_evicts_stale_entries_first() {
        let throttle = LoginThrottle::new(ThrottleConfig {
            max_tracked: 3,
            ..ThrottleConfig::default()
        });
        let start = Instant::now();
        let ip = |n: u8| IpAddr::V4(Ipv4Addr::new(198, 51, 100, n));
        for _ in 0..5 {
            throttle.record_failure_at(ip(1), start);
        }
        throttle.record_failure_at(ip(2), start);
        throttle.record_failure_at(ip(3), start + secs(60));
        assert_eq!(throttle.tracked(), 3);

        // ip(2)'s only failure has left the window: it goes, the ban on ip(1) stays.
        let later = start + secs(5 * 60 + 1);
        throttle.record_failure_at(ip(4), later);
        assert_eq!(throttle.tracked(), 3);
        assert!(throttle.is_blocked_at(ip(1), later));
        assert!(!throttle.entries().contains_key(&ip(2)));

        // Nothing stale now: the entry that expires first (ip(3)) makes room.
        throttle.record_failure_at(ip(5), later);
        assert_eq!(throttle.tracked(), 3);
        assert!(throttle.is_blocked_at(ip(1), later));
        let entries = throttle.entries();
        assert!(!entries.contains_key(&ip(3)));
        assert!(entries.contains_key(&ip(4)) && entries.contains_key(&ip(5)));
    }
}
