//! Failed-login counting under any key — an address, an account, an account at an address —
//! for callers that weigh several counts, such as the dashboard's [`super::login_guard`]: a
//! growing delay after each failure and a ban after too many in a window. The FTP server's
//! per-address throttle, which also counts attempts still being checked, is
//! [`super::throttle::LoginThrottle`]. In memory only; a restart forgives everyone.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::throttle::ThrottleConfig;

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

    /// Counts an attempt under `key` before its outcome is known, without banning, so parallel
    /// attempts cannot all pass before the first failure is known: `false` (nothing counted)
    /// when the attempts counted in the window already reach `max_failures`. The attempt then
    /// ends with [`KeyedThrottle::confirm_failure_at`] or [`KeyedThrottle::forgive_one_at`].
    pub fn reserve_at(&self, key: K, now: Instant) -> bool {
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.config.max_tracked {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(key).or_default();
        entry.forget_failures_before(now.checked_sub(self.config.window));
        if entry.failures.len() >= self.config.max_failures as usize {
            return false;
        }
        entry.failures.push_back(now);
        true
    }

    /// A reserved attempt under `key` failed: bans the key when its failures reached
    /// `max_failures`. Whether this started a ban.
    pub fn confirm_failure_at(&self, key: &K, now: Instant) -> bool {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(key) else {
            return false;
        };
        if self.config.ban.is_zero() || entry.failures.len() < self.config.max_failures as usize {
            return false;
        }
        entry.banned_until = Some(now + self.config.ban);
        entry.failures.clear();
        true
    }

    /// A reserved attempt under `key` succeeded: it no longer counts. The other failures do.
    pub fn forgive_one_at(&self, key: &K) {
        if let Some(entry) = self.entries().get_mut(key) {
            entry.failures.pop_back();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn each_key_is_banned_after_its_own_failures_and_a_success_forgets_them() {
        let throttle = KeyedThrottle::new(ThrottleConfig::default());
        let start = Instant::now();
        for i in 0..4 {
            assert!(!throttle.record_failure_at("a", start + secs(i)));
        }
        throttle.record_success_at(&"a", start + secs(4));
        assert_eq!(throttle.recent_failures_at(&"a", start + secs(4)), 0);
        for i in 0..4 {
            assert!(!throttle.record_failure_at("a", start + secs(10 + i)));
        }
        assert!(
            throttle.record_failure_at("a", start + secs(14)),
            "the fifth bans"
        );
        assert!(throttle.is_blocked_at(&"a", start + secs(15)));
        assert!(
            !throttle.is_blocked_at(&"b", start + secs(15)),
            "another key is free"
        );
        assert!(
            !throttle.is_blocked_at(&"a", start + secs(14 + 600)),
            "the ban ends"
        );
        assert_eq!(
            throttle.failure_delay_at(&"b", start),
            secs(1),
            "a first failure waits the base delay"
        );
    }

    #[test]
    fn tracking_is_bounded() {
        let throttle = KeyedThrottle::new(ThrottleConfig {
            max_tracked: 3,
            ..ThrottleConfig::default()
        });
        let start = Instant::now();
        for key in 0..10u32 {
            throttle.record_failure_at(key, start + secs(u64::from(key)));
        }
        assert_eq!(throttle.tracked(), 3);
        assert_eq!(
            throttle.recent_failures_at(&9, start + secs(10)),
            1,
            "the newest is kept"
        );
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
