//! Who may try a password now, for logins that name an account (the dashboard): failed logins
//! are counted three ways, so that guessing is bounded and no one can lock another person out.
//! In memory only; a restart forgives everyone.
//!
//! | counted per | what it stops | limit (defaults) |
//! |---|---|---|
//! | account at a client address | one guesser hammering one account | a growing delay, then that pair refused for 10 min after 5 failures in 5 min |
//! | client address, any account | one guesser trying many accounts | that address refused for 10 min after 10 failures in 10 min |
//! | account, any address | many addresses guessing one account | once it failed 3 times in 15 min, each attempt waits 1 s per further failure (at most 10 s) before its password is checked — a delay, never a refusal |
//!
//! Nothing counted at one address refuses another: failures for `admin` from address A never
//! lock out `admin` at address B, and the account-wide count only slows every attempt down, so
//! a right password from a fresh address still gets in. A distributed guesser is bounded by the
//! per-address limits times the addresses it holds, each attempt slowed by the account-wide
//! delay. Addresses are counted as [`client_network`] groups them (an IPv6 client by its /64).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::keyed_throttle::KeyedThrottle;
use super::throttle::{ThrottleConfig, client_network};

/// Longer names cannot be accounts (see the account store); cutting them keeps a flood of huge
/// names from filling memory.
const MAX_ACCOUNT_KEY_CHARS: usize = 64;

/// Failures of an account (from anywhere) that cost nothing: a few typos.
const ACCOUNT_FREE_FAILURES: u32 = 3;

/// Why a login is refused before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Too many failures from this address, whatever the account.
    Address,
    /// Too many failures for this account from this address.
    AccountAtAddress,
}

impl LoginRefusal {
    /// What the person refused reads.
    pub fn message(self) -> &'static str {
        match self {
            Self::Address => {
                "Too many failed logins from your address; wait ten minutes and try again."
            }
            Self::AccountAtAddress => {
                "Too many failed logins for this account from your address; wait ten minutes \
                 and try again."
            }
        }
    }
}

/// The three counts, shared by every request of a service.
#[derive(Debug)]
pub struct LoginGuard {
    by_account_at_address: KeyedThrottle<(String, IpAddr)>,
    by_address: KeyedThrottle<IpAddr>,
    by_account: KeyedThrottle<String>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        let minutes = |n: u64| Duration::from_secs(n * 60);
        Self {
            by_account_at_address: KeyedThrottle::new(ThrottleConfig::default()),
            by_address: KeyedThrottle::new(ThrottleConfig {
                max_failures: 10,
                window: minutes(10),
                ..ThrottleConfig::default()
            }),
            by_account: KeyedThrottle::new(ThrottleConfig {
                // Counts up to the longest delay; never bans.
                max_failures: ACCOUNT_FREE_FAILURES + 10,
                window: minutes(15),
                ban: Duration::ZERO,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(10),
                ..ThrottleConfig::default()
            }),
        }
    }
}

fn account_key(account: &str) -> String {
    account.chars().take(MAX_ACCOUNT_KEY_CHARS).collect()
}

impl LoginGuard {
    /// Whether `client` may try a password for `account` now; if so, how long to wait before
    /// checking it (the account-wide slow-down, zero for an account nobody is guessing). An
    /// admitted attempt counts as a failure until [`LoginGuard::record_success`] says otherwise.
    pub fn admit(&self, account: &str, client: IpAddr) -> Result<Duration, LoginRefusal> {
        self.admit_at(account, client, Instant::now())
    }

    /// Counts a wrong password for `account` from `client`; how long to wait before answering.
    pub fn record_failure(&self, account: &str, client: IpAddr) -> Duration {
        self.record_failure_at(account, client, Instant::now())
    }

    /// A right password: `client`'s failures for this account are forgotten, its attempt no
    /// longer counts at the address. The account-wide count stays: someone else may still be
    /// guessing.
    pub fn record_success(&self, account: &str, client: IpAddr) {
        self.record_success_at(account, client, Instant::now());
    }

    pub fn admit_at(
        &self,
        account: &str,
        client: IpAddr,
        now: Instant,
    ) -> Result<Duration, LoginRefusal> {
        let client = client_network(client);
        let account = account_key(account);
        let pair = (account.clone(), client);
        if self.by_address.is_blocked_at(&client, now) {
            return Err(LoginRefusal::Address);
        }
        if self.by_account_at_address.is_blocked_at(&pair, now) {
            return Err(LoginRefusal::AccountAtAddress);
        }
        // The attempt counts as a failure from the moment it is admitted, and a right password
        // takes it back: requests sent in parallel cannot all be checked before the first
        // failure is known.
        if !self.by_address.reserve_at(client, now) {
            return Err(LoginRefusal::Address);
        }
        if !self.by_account_at_address.reserve_at(pair, now) {
            self.by_address.forgive_one_at(&client);
            return Err(LoginRefusal::AccountAtAddress);
        }
        let beyond_free = self
            .by_account
            .recent_failures_at(&account, now)
            .saturating_sub(ACCOUNT_FREE_FAILURES);
        let config = self.by_account.config();
        Ok(config
            .base_delay
            .saturating_mul(beyond_free)
            .min(config.max_delay))
    }

    /// The admitted attempt was wrong: it already counts at its address, and may now ban the
    /// address or the account there; the account-wide count grows too. How long to wait before
    /// answering.
    pub fn record_failure_at(&self, account: &str, client: IpAddr, now: Instant) -> Duration {
        let client = client_network(client);
        let account = account_key(account);
        let pair = (account.clone(), client);
        if self.by_account_at_address.confirm_failure_at(&pair, now) {
            tracing::warn!(
                user = account.as_str(),
                client = %client,
                "too many failed logins for this account from this address; refusing them for a while"
            );
        }
        if self.by_address.confirm_failure_at(&client, now) {
            tracing::warn!(
                client = %client,
                "too many failed logins from this address; refusing its logins for a while"
            );
        }
        self.by_account.record_failure_at(account, now);
        self.by_account_at_address
            .failure_delay_at(&pair, now)
            .max(self.by_address.failure_delay_at(&client, now))
    }

    /// The admitted attempt was right: this account's failures at `client` are forgotten; the
    /// address keeps counting the others' (a good login never clears guesses at other accounts).
    pub fn record_success_at(&self, account: &str, client: IpAddr, now: Instant) {
        let client = client_network(client);
        self.by_account_at_address
            .record_success_at(&(account_key(account), client), now);
        self.by_address.forgive_one_at(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    const ADMIN_DESK: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    const HOTEL: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 44));

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_flood_for_one_account_refuses_that_address_only() {
        let guard = LoginGuard::default();
        let now = Instant::now();
        for _ in 0..5 {
            guard.admit_at("admin", ATTACKER, now).unwrap();
            guard.record_failure_at("admin", ATTACKER, now);
        }
        assert_eq!(
            guard.admit_at("admin", ATTACKER, now),
            Err(LoginRefusal::AccountAtAddress)
        );
        assert!(guard.admit_at("admin", ADMIN_DESK, now).is_ok());
        assert!(guard.admit_at("other", ATTACKER, now).is_ok());
        // The pair's refusal ends with its ban.
        assert!(
            guard
                .admit_at("admin", ATTACKER, now + secs(10 * 60))
                .is_ok()
        );
    }

    #[test]
    fn one_address_trying_many_accounts_is_refused_for_all() {
        let guard = LoginGuard::default();
        let now = Instant::now();
        for n in 0..10 {
            let account = format!("user{n}");
            guard.admit_at(&account, ATTACKER, now).unwrap();
            guard.record_failure_at(&account, ATTACKER, now);
        }
        assert_eq!(
            guard.admit_at("admin", ATTACKER, now),
            Err(LoginRefusal::Address)
        );
        assert!(guard.admit_at("admin", ADMIN_DESK, now).is_ok());
    }

    #[test]
    fn many_addresses_guessing_one_account_slow_it_down_but_never_lock_it() {
        let guard = LoginGuard::default();
        let now = Instant::now();
        for _ in 0..ACCOUNT_FREE_FAILURES {
            guard.record_failure_at("admin", ADMIN_DESK, now);
        }
        assert_eq!(guard.admit_at("admin", HOTEL, now), Ok(Duration::ZERO));
        for n in 0..200u8 {
            let address = IpAddr::V4(Ipv4Addr::new(198, 18, n, 1));
            for _ in 0..4 {
                guard.record_failure_at("admin", address, now);
            }
        }
        // A fresh address is slowed down to the longest delay, and never refused.
        assert_eq!(guard.admit_at("admin", HOTEL, now), Ok(secs(10)));
        guard.record_success_at("admin", HOTEL, now);
        assert_eq!(guard.admit_at("admin", HOTEL, now), Ok(secs(10)));
        assert_eq!(guard.admit_at("someone", HOTEL, now), Ok(Duration::ZERO));
        // Once the guessing stops, the delay goes.
        assert_eq!(
            guard.admit_at("admin", HOTEL, now + secs(15 * 60)),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn the_answer_to_a_failure_waits_longer_with_each_one() {
        let guard = LoginGuard::default();
        let now = Instant::now();
        let attempt = || {
            guard.admit_at("admin", ATTACKER, now).unwrap();
            guard.record_failure_at("admin", ATTACKER, now).as_secs()
        };
        let delays: Vec<u64> = (0..4).map(|_| attempt()).collect();
        assert_eq!(delays, [1, 2, 3, 4]);
        guard.admit_at("admin", ATTACKER, now).unwrap();
        guard.record_success_at("admin", ATTACKER, now);
        // The account's own failures are forgiven; the address still counts its four.
        assert_eq!(attempt(), 5);
    }

    #[test]
    fn huge_account_names_are_counted_cut_short() {
        let guard = LoginGuard::default();
        let now = Instant::now();
        let long = "a".repeat(100_000);
        for _ in 0..5 {
            guard.admit_at(&long, ATTACKER, now).unwrap();
            guard.record_failure_at(&long, ATTACKER, now);
        }
        assert_eq!(
            guard.admit_at(&"a".repeat(64), ATTACKER, now),
            Err(LoginRefusal::AccountAtAddress)
        );
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_are_checked() {
        let guard = LoginGuard::default();
        let now = Instant::now();
        // Twenty requests at once, none answered yet: five are let through to the check.
        let admitted = (0..20)
            .filter(|_| guard.admit_at("admin", ATTACKER, now).is_ok())
            .count();
        assert_eq!(admitted, 5);
    }
}
