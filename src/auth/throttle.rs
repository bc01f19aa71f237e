//! Failed-login throttling for the FTP server: a growing delay after each failure, then a refusal
//! of one account at one address, and past a higher ceiling of the whole address. In memory only:
//! a restart forgives everyone, and so does `ferry ban lift` on the running server.
//!
//! | counted per | refused after (defaults) | what it stops |
//! |---|---|---|
//! | account at a client address | 5 failures in 5 min: that account, from that address, for 10 min | one guesser hammering one account |
//! | client address, any account | 20 failures in 5 min: every account from that address, for 10 min | one guesser spraying many accounts |
//!
//! As django-axes locks out by user name and address together, and fail2ban jails an address
//! only past its own limit: five wrong passwords for one account lock out that account there and
//! no one else, so a colleague behind the same NAT (or the same person with the right password of
//! another account) still gets in; an address that tries many accounts is stopped by the ceiling.
//!
//! The server asks [`LoginThrottle::admit`] before it looks at a password. Admission counts the
//! attempt at once, as if it had failed, so sessions that send their passwords in parallel cannot
//! all be checked before the first failure is known: at most `max_failures` attempts for one
//! account at one address (and `max_failures_per_address` for all of them) are checked or failed
//! within the window, and further attempts wait for a check to end (or meet the refusal). The
//! [`LoginAttempt`] it returns then says how the check went.
//!
//! No good login takes a failure off a count — else one account an attacker knows would reset
//! the count for guesses at every other account. A good login only forgives its own account's
//! failures their share of the delay. Addresses are counted as [`client_network`] groups them (an
//! IPv6 client by its /64). Every method has an `_at` twin that takes the time, so tests run on
//! synthetic instants instead of sleeping.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Longer names cannot be accounts (see the account store); a banned name is kept for `ferry ban
/// list` cut to this length, so a flood of huge names cannot fill memory.
const MAX_ACCOUNT_NAME_CHARS: usize = 64;

/// How hard to throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that refuse an account at an address (the dashboard's
    /// [`KeyedThrottle`](super::KeyedThrottle): that bans its key).
    pub max_failures: u32,
    /// Failures within `window` from one address, whatever the accounts, that refuse the whole
    /// address (FTP logins only; the dashboard's guard has its own per-address count).
    pub max_failures_per_address: u32,
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
            max_failures_per_address: 20,
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
    /// Admitted; its password is being checked. Counts toward the bans like a failure.
    Checking,
    /// A wrong password: counts toward the bans and the delay.
    Failed,
    /// A failure of an account that has logged in since: still counts toward the bans, no
    /// longer toward the delay.
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
    /// Already led to a ban of its account at the address: it counts toward the address's
    /// ceiling, no longer toward another ban of the account (which would otherwise follow the
    /// first at once, with no room to try again).
    spent: bool,
}

/// One account refused at an address.
#[derive(Debug)]
struct AccountBan {
    account: Option<u64>,
    /// The name as typed (cut to [`MAX_ACCOUNT_NAME_CHARS`]), for `ferry ban list`.
    name: String,
    until: Instant,
}

#[derive(Debug, Default)]
struct Entry {
    /// Attempts still inside the window, oldest first: failures and checks under way, of every
    /// account. At most `max_failures_per_address`.
    attempts: VecDeque<Attempt>,
    /// The whole address is refused until then.
    banned_until: Option<Instant>,
    /// Accounts refused at this address.
    account_bans: Vec<AccountBan>,
}

impl Entry {
    /// Drops failures that have left the window, and bans that are over. Checks under way stay
    /// whatever their age: they are taken out when they end.
    fn forget_before(&mut self, now: Instant, window: Duration) {
        if let Some(cutoff) = now.checked_sub(window) {
            self.attempts
                .retain(|attempt| attempt.outcome == Outcome::Checking || attempt.at > cutoff);
        }
        self.account_bans.retain(|ban| now < ban.until);
        if self.banned_until.is_some_and(|until| until <= now) {
            self.banned_until = None;
        }
    }

    /// Why a login for `account` is refused now, if it is.
    fn refusal_at(&self, account: Option<u64>, now: Instant) -> Option<Banned> {
        if let Some(until) = self.banned_until.filter(|until| now < *until) {
            return Some(Banned {
                scope: BanScope::Address,
                remaining: until - now,
            });
        }
        self.account_bans
            .iter()
            .find(|ban| ban.account == account && now < ban.until)
            .map(|ban| Banned {
                scope: BanScope::AccountAtAddress,
                remaining: ban.until - now,
            })
    }

    fn is_banned_at(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
            || self.account_bans.iter().any(|ban| now < ban.until)
    }

    /// Attempts that count toward a ban: of one account not yet spent on a ban of it (`Some`),
    /// or all (`None`).
    fn counted(&self, account: Option<Option<u64>>, failures_only: bool) -> usize {
        self.attempts
            .iter()
            .filter(|attempt| !failures_only || attempt.outcome != Outcome::Checking)
            .filter(|attempt| {
                account.is_none_or(|account| attempt.account == account && !attempt.spent)
            })
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
        let bans_expire = self.account_bans.iter().map(|ban| ban.until).max();
        failures_expire.max(self.banned_until).max(bans_expire)
    }
}

/// What a ban refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanScope {
    /// Every login from the address.
    Address,
    /// Logins of one account from the address.
    AccountAtAddress,
}

/// Why a login is refused without looking at the password, and for how much longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins from this address")]
pub struct Banned {
    pub scope: BanScope,
    /// How long the refusal still lasts.
    pub remaining: Duration,
}

/// What a failed login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureVerdict {
    /// The ban this failure started, if it started one.
    pub banned: Option<Banned>,
    /// How long to wait before answering it.
    pub delay: Duration,
}

/// A ban in force, as `ferry ban list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    /// The client network refused (an IPv4 address, or an IPv6 /64 as its first address).
    pub network: IpAddr,
    /// The account refused there; `None` when the whole address is.
    pub account: Option<String>,
    pub remaining: Duration,
}

/// Failed-login bookkeeping, shared by all sessions of a server.
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
    /// while the account at the address, or the address, has as many attempts failed or being
    /// checked as its limit. Refused once either is banned.
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

    /// [`LoginThrottle::admit`] without the wait: `Ok(None)` when there is no room now.
    pub fn try_admit_at(
        &self,
        ip: IpAddr,
        account: &str,
        now: Instant,
    ) -> Result<Option<LoginAttempt<'_>>, Banned> {
        let key = client_network(ip);
        let name: String = account.chars().take(MAX_ACCOUNT_NAME_CHARS).collect();
        let account = self.account_hasher.hash_one(account);
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.config.max_tracked {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(key).or_default();
        entry.forget_before(now, self.config.window);
        if let Some(banned) = entry.refusal_at(Some(account), now) {
            return Err(banned);
        }
        if entry.counted(None, false) >= self.config.max_failures_per_address as usize
            || entry.counted(Some(Some(account)), false) >= self.config.max_failures as usize
        {
            return Ok(None);
        }
        let id = self.next_attempt.fetch_add(1, Ordering::Relaxed);
        entry.attempts.push_back(Attempt {
            id,
            at: now,
            account: Some(account),
            outcome: Outcome::Checking,
            spent: false,
        });
        Ok(Some(LoginAttempt {
            throttle: self,
            key,
            id,
            account,
            name,
            settled: false,
        }))
    }

    /// Whether logins from `ip` are refused without looking at the password: the whole address,
    /// or any account at it.
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
    /// the account: they count as one account of their own).
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// A good login from `ip` by a caller that does not name the account: forgives the delay of
    /// the failures recorded the same way. The failures still count toward the bans.
    pub fn record_success(&self, ip: IpAddr) {
        self.record_success_at(ip, Instant::now());
    }

    pub fn is_blocked_at(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries()
            .get(&client_network(ip))
            .is_some_and(|entry| entry.is_banned_at(now))
    }

    /// Why a login for `account` from `ip` would be refused now, if it would.
    pub fn refusal_at(&self, ip: IpAddr, account: &str, now: Instant) -> Option<Banned> {
        let account = self.account_hasher.hash_one(account);
        self.entries()
            .get(&client_network(ip))
            .and_then(|entry| entry.refusal_at(Some(account), now))
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
        entry.forget_before(now, self.config.window);
        let id = self.next_attempt.fetch_add(1, Ordering::Relaxed);
        entry.attempts.push_back(Attempt {
            id,
            at: now,
            account: None,
            outcome: Outcome::Failed,
            spent: false,
        });
        self.ban_if_over(key, entry, None, "", now);
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

    /// The bans in force, by address and then account.
    pub fn bans(&self) -> Vec<BanRecord> {
        self.bans_at(Instant::now())
    }

    pub fn bans_at(&self, now: Instant) -> Vec<BanRecord> {
        let mut bans = Vec::new();
        for (network, entry) in self.entries().iter() {
            if let Some(until) = entry.banned_until.filter(|until| now < *until) {
                bans.push(BanRecord {
                    network: *network,
                    account: None,
                    remaining: until - now,
                });
            }
            for ban in entry.account_bans.iter().filter(|ban| now < ban.until) {
                bans.push(BanRecord {
                    network: *network,
                    account: Some(ban.name.clone()),
                    remaining: ban.until - now,
                });
            }
        }
        bans.sort_by(|a, b| (a.network, &a.account).cmp(&(b.network, &b.account)));
        bans
    }

    /// Lifts every ban on the client network of `ip` and forgets its failures, as a restart
    /// would for everyone; returns the bans lifted. Checks under way are left to end.
    pub fn lift(&self, ip: IpAddr) -> Vec<BanRecord> {
        let now = Instant::now();
        let key = client_network(ip);
        let lifted: Vec<BanRecord> = self
            .bans_at(now)
            .into_iter()
            .filter(|ban| ban.network == key)
            .collect();
        if let Some(entry) = self.entries().get_mut(&key) {
            entry.banned_until = None;
            entry.account_bans.clear();
            entry
                .attempts
                .retain(|attempt| attempt.outcome == Outcome::Checking);
        }
        self.settled.notify_waiters();
        lifted
    }

    /// Settles attempt `id` of `key`: takes it off the count unless it failed, then wakes the
    /// logins waiting for room.
    fn settle(&self, attempt: &LoginAttempt<'_>, failed: bool, now: Instant) -> FailureVerdict {
        let key = attempt.key;
        let account = Some(attempt.account);
        let mut verdict = FailureVerdict {
            banned: None,
            delay: self.config.base_delay.min(self.config.max_delay),
        };
        {
            let mut entries = self.entries();
            if let Some(entry) = entries.get_mut(&key) {
                let position = entry.attempts.iter().position(|a| a.id == attempt.id);
                match (position, failed) {
                    (Some(at), true) => {
                        entry.attempts[at].outcome = Outcome::Failed;
                        verdict.banned = self.ban_if_over(key, entry, account, &attempt.name, now);
                    }
                    (Some(at), false) => {
                        entry.attempts.remove(at);
                    }
                    // Evicted or lifted meanwhile: nothing left to settle.
                    (None, _) => {}
                }
                if !failed {
                    forgive(entry, account);
                }
                if verdict.banned.is_none() {
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

    /// Bans the account at the address once its failures reach `max_failures`, and the whole
    /// address once all its failures reach `max_failures_per_address`; the ban this call made.
    fn ban_if_over(
        &self,
        key: IpAddr,
        entry: &mut Entry,
        account: Option<u64>,
        name: &str,
        now: Instant,
    ) -> Option<Banned> {
        let until = now + self.config.ban;
        if entry.counted(None, true) >= self.config.max_failures_per_address as usize {
            entry.banned_until = Some(until);
            // Every account's failures led here; checks still under way end in the ban too.
            entry.attempts.clear();
            tracing::warn!(
                peer = %key,
                ban_secs = self.config.ban.as_secs(),
                "too many failed logins; refusing every login from this address for a while"
            );
            return Some(Banned {
                scope: BanScope::Address,
                remaining: self.config.ban,
            });
        }
        if entry.counted(Some(account), true) < self.config.max_failures as usize {
            return None;
        }
        // The failures stay: they still count toward the address's ceiling.
        for attempt in &mut entry.attempts {
            if attempt.account == account {
                attempt.spent = true;
            }
        }
        entry.account_bans.retain(|ban| ban.account != account);
        entry.account_bans.push(AccountBan {
            account,
            name: name.to_owned(),
            until,
        });
        tracing::warn!(
            peer = %key,
            user = name,
            ban_secs = self.config.ban.as_secs(),
            "too many failed logins; refusing this account from this address for a while"
        );
        Some(Banned {
            scope: BanScope::AccountAtAddress,
            remaining: self.config.ban,
        })
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
/// counts toward the bans.
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
    /// The account name as typed, cut short, in case this attempt bans it.
    name: String,
    settled: bool,
}

impl LoginAttempt<'_> {
    /// A wrong password (or an unknown or disabled account): stays counted; says whether it
    /// started a ban and how long to wait before answering.
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
        self.throttle.settle(&self, true, now)
    }

    pub fn succeeded_at(mut self, now: Instant) {
        self.settled = true;
        self.throttle.settle(&self, false, now);
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.settle(self, true, Instant::now());
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
    fn a_ban_refuses_one_account_at_one_address_and_no_good_login_clears_its_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for round in 0..4 {
            let now = start + secs(round);
            let verdict = admit(&throttle, "victim", now).failed_at(now);
            assert_eq!(verdict.banned, None);
            admit(&throttle, "colleague", now).succeeded_at(now);
        }
        let verdict = admit(&throttle, "victim", start + secs(4)).failed_at(start + secs(4));
        assert_eq!(
            verdict.banned,
            Some(Banned {
                scope: BanScope::AccountAtAddress,
                remaining: secs(10 * 60)
            })
        );
        assert!(throttle.is_blocked_at(ALICE, start + secs(4)));
        let refused = throttle
            .try_admit_at(ALICE, "victim", start + secs(5))
            .expect_err("the victim's account is refused at this address");
        assert_eq!(refused.scope, BanScope::AccountAtAddress);
        assert_eq!(refused.remaining, secs(10 * 60 - 1));
        // The colleague at the same address, and the victim elsewhere, still get in.
        admit(&throttle, "colleague", start + secs(5)).succeeded_at(start + secs(5));
        assert!(
            throttle
                .try_admit_at(BOB, "victim", start + secs(5))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            throttle.bans_at(start + secs(5)),
            [BanRecord {
                network: ALICE,
                account: Some("victim".to_owned()),
                remaining: secs(10 * 60 - 1)
            }]
        );
    }

    #[test]
    fn after_an_accounts_ban_it_may_try_again_at_once_while_its_failures_still_count_for_the_address()
     {
        let throttle = LoginThrottle::new(ThrottleConfig {
            ban: secs(60),
            ..ThrottleConfig::default()
        });
        let start = Instant::now();
        for _ in 0..5 {
            let _ = admit(&throttle, "victim", start).failed_at(start);
        }
        let later = start + secs(61);
        // Still inside the window: the five failures count at the address, not for a new ban.
        admit(&throttle, "victim", later).succeeded_at(later);
        assert_eq!(throttle.failure_delay_at(ALICE, later), secs(1));
        for _ in 0..4 {
            assert_eq!(
                admit(&throttle, "victim", later).failed_at(later).banned,
                None
            );
        }
        for guess in 0..11 {
            let verdict = admit(&throttle, &format!("other{guess}"), later).failed_at(later);
            assert_eq!(
                verdict.banned.map(|b| b.scope),
                (guess == 10).then_some(BanScope::Address)
            );
        }
    }

    #[test]
    fn many_accounts_failing_at_one_address_ban_the_whole_address() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let mut bans = Vec::new();
        for guess in 0..20 {
            // Four guesses per account: never five for one, twenty in all.
            let account = format!("user{}", guess / 4);
            bans.push(admit(&throttle, &account, now).failed_at(now).banned);
        }
        assert!(bans[..19].iter().all(Option::is_none), "{bans:?}");
        assert_eq!(bans[19].map(|b| b.scope), Some(BanScope::Address));
        let refused = throttle.try_admit_at(ALICE, "anyone", now).err();
        assert_eq!(refused.map(|b| b.scope), Some(BanScope::Address));
        assert!(throttle.try_admit_at(BOB, "anyone", now).unwrap().is_some());
    }

    #[test]
    fn lifting_ends_the_bans_of_an_address_and_forgets_its_failures() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..5 {
            let _ = admit(&throttle, "victim", now).failed_at(now);
        }
        for _ in 0..5 {
            throttle.record_failure_at(BOB, now);
        }
        let lifted = throttle.lift(ALICE);
        assert_eq!(lifted.len(), 1);
        assert_eq!(lifted[0].account.as_deref(), Some("victim"));
        // One more failure does not ban again: the count starts afresh.
        assert_eq!(admit(&throttle, "victim", now).failed_at(now).banned, None);
        assert!(
            throttle.is_blocked_at(BOB, now),
            "other addresses keep theirs"
        );
        assert!(throttle.lift(ALICE).is_empty());
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
        // Only bob's failure still adds to the delay; alice's two still count toward her ban.
        assert_eq!(throttle.failure_delay_at(ALICE, start), secs(1));
        let verdict = admit(&throttle, "alice", start).failed_at(start);
        assert_eq!(verdict.delay, secs(2));
        assert_eq!(verdict.banned, None);
        assert_eq!(
            admit(&throttle, "alice", start).failed_at(start).banned,
            None
        );
        assert!(
            admit(&throttle, "alice", start)
                .failed_at(start)
                .banned
                .is_some()
        );
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
            .map(|attempt| attempt.failed_at(now).banned.is_some())
            .collect();
        assert_eq!(banned, [false, false, false, false, true]);
        assert!(throttle.try_admit_at(ALICE, "victim", now).is_err());
        assert!(throttle.try_admit_at(ALICE, "x", now).unwrap().is_some());
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
        assert!(first.failed().banned.is_some());
        assert!(waiting.await.unwrap().is_err());
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
