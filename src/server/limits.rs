//! Connection limits: how many control connections the server holds, in all and per client address.
//!
//! A connection is counted the moment it is accepted, on every listener, before anything is read
//! from it: a TLS handshake (implicit FTPS) or a PROXY header can take seconds, and a connection
//! that waits for one holds a descriptor like any other. Addresses are counted by
//! [`client_network`]: an IPv6 client by its /64, as the login throttle does.
//!
//! A session holds a [`ConnectionSlot`] for its whole life; dropping it frees the slot, so a
//! session that ends in any way (QUIT, error, panic unwinding) cannot leak one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::auth::throttle::client_network;

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("the server is at its limit of {0} connections; try again later")]
    Total(usize),
    #[error("too many connections from your address (limit {0}); close some and try again")]
    PerAddress(usize),
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_network: HashMap<IpAddr, usize>,
}

/// The connection counters of one server.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionLimits {
    /// `0` means unlimited.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Arc::default(),
        }
    }

    /// Takes a slot for a connection from `ip`, or says which limit is reached.
    pub fn acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, LimitExceeded> {
        let mut slot = self.acquire_unaddressed()?;
        slot.assign(ip)?;
        Ok(slot)
    }

    /// Takes a slot counted in the total only, for a connection whose client is not known yet
    /// (a balancer's, before its PROXY header): [`ConnectionSlot::assign`] counts the client once
    /// it is.
    pub fn acquire_unaddressed(&self) -> Result<ConnectionSlot, LimitExceeded> {
        let mut counts = lock(&self.counts);
        if self.max_total > 0 && counts.total >= self.max_total {
            return Err(LimitExceeded::Total(self.max_total));
        }
        counts.total += 1;
        Ok(ConnectionSlot {
            network: None,
            max_per_ip: self.max_per_ip,
            counts: Arc::clone(&self.counts),
        })
    }

    /// Connections held right now.
    pub fn active(&self) -> usize {
        lock(&self.counts).total
    }
}

/// One held connection slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    /// The client network it is counted under, once known.
    network: Option<IpAddr>,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionSlot {
    /// Counts the slot against the client at `ip` too, or says that its address is at the
    /// limit (the slot then still holds its place in the total until dropped).
    pub fn assign(&mut self, ip: IpAddr) -> Result<(), LimitExceeded> {
        let network = client_network(ip);
        if self.network == Some(network) {
            return Ok(());
        }
        let mut counts = lock(&self.counts);
        let from_network = counts.per_network.get(&network).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_network >= self.max_per_ip {
            return Err(LimitExceeded::PerAddress(self.max_per_ip));
        }
        counts.per_network.insert(network, from_network + 1);
        if let Some(previous) = self.network.replace(network) {
            release(&mut counts, previous);
        }
        Ok(())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total -= 1;
        if let Some(network) = self.network {
            release(&mut counts, network);
        }
    }
}

fn release(counts: &mut Counts, network: IpAddr) {
    if let Some(n) = counts.per_network.get_mut(&network) {
        *n -= 1;
        if *n == 0 {
            counts.per_network.remove(&network);
        }
    }
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Plain counters: whatever a panicking thread left is still usable.
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_and_total_limits() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.acquire(a).unwrap();
        let _a2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), LimitExceeded::PerAddress(2));
        let _b1 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), LimitExceeded::Total(3));
        drop(a1);
        assert_eq!(limits.active(), 2);
        assert!(limits.acquire(a).is_ok());
    }

    #[test]
    fn mapped_ipv4_counts_as_the_same_address() {
        let limits = ConnectionLimits::new(0, 1);
        let _one = limits.acquire("10.0.0.1".parse().unwrap()).unwrap();
        assert!(limits.acquire("::ffff:10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn ipv6_clients_count_by_their_slash_64() {
        let limits = ConnectionLimits::new(0, 2);
        let _one = limits.acquire("2001:db8:0:1::1".parse().unwrap()).unwrap();
        let _two = limits
            .acquire("2001:db8:0:1:ffff::2".parse().unwrap())
            .unwrap();
        assert_eq!(
            limits
                .acquire("2001:db8:0:1::3".parse().unwrap())
                .unwrap_err(),
            LimitExceeded::PerAddress(2)
        );
        assert!(limits.acquire("2001:db8:0:2::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn an_unaddressed_slot_counts_in_the_total_until_its_client_is_known() {
        let limits = ConnectionLimits::new(3, 1);
        let mut first = limits.acquire_unaddressed().unwrap();
        let mut second = limits.acquire_unaddressed().unwrap();
        assert_eq!(limits.active(), 2);
        first.assign("192.0.2.7".parse().unwrap()).unwrap();
        assert_eq!(
            second.assign("192.0.2.7".parse().unwrap()).unwrap_err(),
            LimitExceeded::PerAddress(1)
        );
        // Refused for its address, the slot still holds its place in the total until dropped.
        assert_eq!(limits.active(), 2);
        drop(second);
        drop(first);
        assert_eq!(limits.active(), 0);
        assert!(limits.acquire("192.0.2.7".parse().unwrap()).is_ok());
    }
}
