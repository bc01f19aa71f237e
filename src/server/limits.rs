//! Connection limits: how many control connections the server holds, in all and per client address.
//!
//! A session holds a [`ConnectionSlot`] for its whole life; dropping it frees the slot, so a
//! session that ends in any way (QUIT, error, panic unwinding) cannot leak one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
    per_ip: HashMap<IpAddr, usize>,
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
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total > 0 && counts.total >= self.max_total {
            return Err(LimitExceeded::Total(self.max_total));
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            return Err(LimitExceeded::PerAddress(self.max_per_ip));
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionSlot {
            ip,
            counts: Arc::clone(&self.counts),
        })
    }

    /// Connections held right now.
    pub fn active(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// One held connection slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
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
}
