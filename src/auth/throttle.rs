//! Failed-login throttling: a growing delay after each failure, and a ban after too many
//! failures in a window. [`KeyedThrottle`] counts per any key; [`LoginThrottle`] is the FTP
//! server's, per client address. In memory only; a restart forgives everyone.
//!
//! The server asks [`LoginThrottle::is_blocked`] before it looks at a password, sleeps
//! [`LoginThrottle::failure_delay`] before it answers a failed `PASS`, and reports the outcome
//! with [`LoginThrottle::record_failure`] or [`LoginThrottle::record_success`]. Every method has
//! an `_at` twin that takes the time, so tests run on synthetic instants instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How hard to throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that ban an address.
    pub max_failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long a ban lasts. Zero never bans: the last `max_failures` failures are only counted,
    /// for a delay.
    pub ban: Duration,
    /// The delay after a first failure; each further recent failure adds as much again.
    pub base_delay: Duration,
    /// The longest delay, whatever the count.
    pub max_delay: Duration,
    /// How many addresses (keys) are tracked at most, so a flood of them cannot exhaust memory.
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

#[derive(Debug, Default)]
struct Entry {
    /// Times of the failures still inside the window, oldest first; at most `max_failures`.
    failures: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

impl Entry {
    fn forget_failures_before(&mut self, cutoff: Option<Instant>) {
        while let (Some(oldest), Some(cutoff)) = (self.failures.front(), cutoff) {
            if *oldest > cutoff {
                break;
            }
            self.failures.pop_front();
        }
    }

    fn is_banned_at(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// Whether the entry still tells anything: a live ban or a failure inside the window.
    fn is_stale_at(&self, now: Instant, window: Duration) -> bool {
        !self.is_banned_at(now)
            && self
                .failures
                .back()
                .is_none_or(|last| now.saturating_duration_since(*last) >= window)
    }

    /// When the entry stops mattering, for choosing what to evict when full.
    fn expires_at(&self, window: Duration) -> Option<Instant> {
        let failures_expire = self.failures.back().map(|last| *last + window);
        failures_expire.max(self.banned_until)
    }
}

/// Failed-login bookkeeping per key (an address, an account, an account at an address),
/// shared by all sessions of a server.
#[derive(Debug)]
pub struct KeyedThrottle<K> {
    config: ThrottleConfig,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Eq + Hash + Clone> KeyedThrottle<K> {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Whether logins under `key` are refused without looking at the password.
    pub fn is_blocked_at(&self, key: &K, now: Instant) -> bool {
        self.entries()
            .get(key)
            .is_some_and(|entry| entry.is_banned_at(now))
    }

    /// The failures under `key` still inside the window.
    pub fn recent_failures_at(&self, key: &K, now: Instant) -> u32 {
        let recent = self.entries().get(key).map_or(0, |entry| {
            entry
                .failures
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < self.config.window)
                .count()
        });
        u32::try_from(recent).unwrap_or(u32::MAX)
    }

    /// How long to wait before answering a failed login under `key`: `base_delay` times the
    /// failures still in the window (at least one, the failure being answered), capped at
    /// `max_delay`.
    pub fn failure_delay_at(&self, key: &K, now: Instant) -> Duration {
        let recent = self.recent_failures_at(key, now).max(1);
        self.config
            .base_delay
            .saturating_mul(recent)
            .min(self.config.max_delay)
    }

    /// Counts a failed login under `key`; the `max_failures`-th within the window bans it.
    /// Whether this failure started a ban.
    pub fn record_failure_at(&self, key: K, now: Instant) -> bool {
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.config.max_tracked {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(key).or_default();
        entry.forget_failures_before(now.checked_sub(self.config.window));
        entry.failures.push_back(now);
        let max_failures = self.config.max_failures as usize;
        if self.config.ban.is_zero() {
            // Never a ban: the last `max_failures` are kept, for the delay.
            while entry.failures.len() > max_failures {
                entry.failures.pop_front();
            }
            return false;
        }
        if entry.failures.len() < max_failures {
            return false;
        }
        entry.banned_until = Some(now + self.config.ban);
        entry.failures.clear();
        true
    }

    /// Forgets the failures under `key` after a good login. A ban still running stays.
    pub fn record_success_at(&self, key: &K, now: Instant) {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(key) {
            entry.failures.clear();
            if !entry.is_banned_at(now) {
                entries.remove(key);
            }
        }
    }

    /// How many keys are tracked now.
    pub fn tracked(&self) -> usize {
        self.entries().len()
    }

    /// Drops stale entries; if none were stale, the one that would expire first, so a newcomer
    /// is always tracked (its failures matter more than an old key's nearly spent ones).
    fn make_room(&self, entries: &mut HashMap<K, Entry>, now: Instant) {
        let window = self.config.window;
        entries.retain(|_, entry| !entry.is_stale_at(now, window));
        if entries.len() < self.config.max_tracked {
            return;
        }
        let soonest = entries
            .iter()
            .min_by_key(|(_, entry)| entry.expires_at(window))
            .map(|(key, _)| key.clone());
        if let Some(key) = soonest {
            entries.remove(&key);
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<K, Entry>> {
        // The map holds only counters; whatever a panicking thread left is still usable.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Per-address failed-login bookkeeping, shared by all sessions of a server.
#[derive(Debug)]
pub struct LoginThrottle {
    by_address: KeyedThrottle<IpAddr>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(ThrottleConfig::default())
    }
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            by_address: KeyedThrottle::new(config),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        self.by_address.config()
    }

    /// Whether logins from `ip` are refused without looking at the password.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.is_blocked_at(ip, Instant::now())
    }

    /// How long to wait before answering a failed login from `ip`: `base_delay` times the
    /// failures still in the window (at least one, the failure being answered), capped at
    /// `max_delay`.
    pub fn failure_delay(&self, ip: IpAddr) -> Duration {
        self.failure_delay_at(ip, Instant::now())
    }

    /// Counts a failed login from `ip`; the `max_failures`-th within the window bans it.
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// Forgets the failures of `ip` after a good login. A ban still running stays: a success
    /// from a banned address should not happen, since its logins are refused unheard.
    pub fn record_success(&self, ip: IpAddr) {
        self.record_success_at(ip, Instant::now());
    }

    pub fn is_blocked_at(&self, ip: IpAddr, now: Instant) -> bool {
        self.by_address.is_blocked_at(&throttle_key(ip), now)
    }

    pub fn failure_delay_at(&self, ip: IpAddr, now: Instant) -> Duration {
        self.by_address.failure_delay_at(&throttle_key(ip), now)
    }

    pub fn record_failure_at(&self, ip: IpAddr, now: Instant) {
        let key = throttle_key(ip);
        if self.by_address.record_failure_at(key, now) {
            tracing::warn!(
                peer = %key,
                ban_secs = self.config().ban.as_secs(),
                "too many failed logins; refusing logins from this address for a while"
            );
        }
    }

    pub fn record_success_at(&self, ip: IpAddr, now: Instant) {
        self.by_address.record_success_at(&throttle_key(ip), now);
    }

    /// How many addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.by_address.tracked()
    }
}

/// The address a client is counted under. An IPv6 client usually holds a whole /64, so counting
/// single addresses would let it rotate through them; IPv4-mapped IPv6 counts as the IPv4
/// address it is.
pub fn throttle_key(ip: IpAddr) -> IpAddr {
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
    fn success_resets_the_failure_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..4 {
            throttle.record_failure_at(ALICE, start + secs(i));
        }
        throttle.record_success_at(ALICE, start + secs(5));
        assert_eq!(throttle.tracked(), 0);
        throttle.record_failure_at(ALICE, start + secs(6));
        assert!(!throttle.is_blocked_at(ALICE, start + secs(6)));
        assert_eq!(throttle.failure_delay_at(ALICE, start + secs(6)), secs(1));
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
        assert!(!throttle.by_address.entries().contains_key(&ip(2)));

        // Nothing stale now: the entry that expires first (ip(3)) makes room.
        throttle.record_failure_at(ip(5), later);
        assert_eq!(throttle.tracked(), 3);
        assert!(throttle.is_blocked_at(ip(1), later));
        let entries = throttle.by_address.entries();
        assert!(!entries.contains_key(&ip(3)));
        assert!(entries.contains_key(&ip(4)) && entries.contains_key(&ip(5)));
    }

    #[test]
    fn a_throttle_without_a_ban_keeps_counting_its_last_failures() {
        let throttle = KeyedThrottle::new(ThrottleConfig {
            max_failures: 3,
            ban: Duration::ZERO,
            ..ThrottleConfig::default()
        });
        let start = Instant::now();
        for i in 0..10 {
            assert!(!throttle.record_failure_at("admin", start + secs(i)));
            assert!(!throttle.is_blocked_at(&"admin", start + secs(i)));
        }
        assert_eq!(throttle.recent_failures_at(&"admin", start + secs(10)), 3);
        assert_eq!(throttle.recent_failures_at(&"other", start + secs(10)), 0);
    }
}
