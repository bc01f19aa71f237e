//! The passive port pool: which ports PASV and EPSV may open, leased one at a time.
//!
//! A firewall or NAT in front of the server forwards a fixed range, so the server must never open
//! a port outside it: an exhausted pool answers `425`, never a random port. A port is leased per
//! PASV/EPSV and comes back when its [`PortLease`] is dropped — when the data connection arrives,
//! the wait times out, or the session ends. Ports go back at the end of the queue, so a port is
//! reused as late as possible (its last connection may still be in TIME_WAIT).

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket};

/// Port ranges in seed syntax: `12345,30000-50000`. Empty means "any port the system picks".
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    /// No range configured: the system picks an ephemeral port for every PASV.
    pub fn any() -> Self {
        Self(Vec::new())
    }

    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().flat_map(|&(low, high)| low..=high)
    }

    pub fn len(&self) -> usize {
        self.0
            .iter()
            .map(|&(low, high)| usize::from(high - low) + 1)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("any");
        }
        for (i, (low, high)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for PortRanges {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("any") {
            return Ok(Self::any());
        }
        let port = |text: &str| -> Result<u16, String> {
            match text.trim().parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(format!(
                    "{text:?} is not a port number 1-65535 (passive ports look like 30000-30100 or 12345,30000-50000)"
                )),
            }
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let range = match part.split_once('-') {
                Some((low, high)) => (port(low)?, port(high)?),
                None => {
                    let p = port(part)?;
                    (p, p)
                }
            };
            if range.0 > range.1 {
                return Err(format!(
                    "passive port range {part:?} runs backwards; write the low port first"
                ));
            }
            ranges.push(range);
        }
        Ok(Self(ranges))
    }
}

/// Why no passive port could be opened.
#[derive(Debug, thiserror::Error)]
pub enum PassiveError {
    #[error("all {0} passive ports are in use; try again shortly")]
    Exhausted(usize),
    #[error("could not open a passive port: {0}")]
    Io(#[from] std::io::Error),
}

/// The pool of passive ports of one server.
#[derive(Debug)]
pub struct PassivePortPool {
    /// `None` when any port will do.
    free: Option<Arc<Mutex<VecDeque<u16>>>>,
    size: usize,
}

impl PassivePortPool {
    pub fn new(ranges: &PortRanges) -> Self {
        if ranges.is_any() {
            return Self {
                free: None,
                size: 0,
            };
        }
        let mut ports: Vec<u16> = ranges.ports().collect();
        ports.sort_unstable();
        ports.dedup();
        Self {
            size: ports.len(),
            free: Some(Arc::new(Mutex::new(ports.into()))),
        }
    }

    /// Ports in the configured range (0 when the system picks ports).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Ports not leased right now (`None` when the system picks ports).
    pub fn available(&self) -> Option<usize> {
        self.free
            .as_ref()
            .map(|free| free.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Leases a port and listens on it at `ip`. A port another program holds is skipped.
    pub fn listen(&self, ip: IpAddr) -> Result<(TcpListener, PortLease), PassiveError> {
        let Some(free) = &self.free else {
            let listener = bind(SocketAddr::new(ip, 0))?;
            return Ok((listener, PortLease { port: None }));
        };
        let attempts = free.lock().unwrap_or_else(|e| e.into_inner()).len();
        let mut last_error = None;
        for _ in 0..attempts {
            let Some(port) = free.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                break;
            };
            let lease = PortLease {
                port: Some((port, Arc::clone(free))),
            };
            match bind(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok((listener, lease)),
                // Dropping the lease puts the port back at the end of the queue.
                Err(error) => last_error = Some(error),
            }
        }
        match last_error {
            Some(error) if attempts > 0 && error.kind() != std::io::ErrorKind::AddrInUse => {
                Err(PassiveError::Io(error))
            }
            _ => Err(PassiveError::Exhausted(self.size)),
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A port whose last data connection sits in TIME_WAIT must be usable again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8)
}

/// A leased passive port; dropping it returns the port to the pool.
#[derive(Debug)]
pub struct PortLease {
    port: Option<(u16, Arc<Mutex<VecDeque<u16>>>)>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some((port, free)) = self.port.take() {
            free.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seed_syntax() {
        let ranges: PortRanges = "12345,30000-30002".parse().unwrap();
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges.to_string(), "12345,30000-30002");
        assert!("".parse::<PortRanges>().unwrap().is_any());
        assert!(
            "30002-30000"
                .parse::<PortRanges>()
                .unwrap_err()
                .contains("backwards")
        );
        assert!("0-10".parse::<PortRanges>().is_err());
        assert!("70000".parse::<PortRanges>().is_err());
        assert!("a-b".parse::<PortRanges>().is_err());
    }

    fn free_port_range(len: u16) -> PortRanges {
        // Find `len` consecutive free ports by asking the system for one and counting up.
        loop {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let start = probe.local_addr().unwrap().port();
            drop(probe);
            if start > 65535 - len {
                continue;
            }
            let all_free =
                (start..start + len).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
            if all_free {
                return format!("{}-{}", start, start + len - 1).parse().unwrap();
            }
        }
    }

    #[tokio::test]
    async fn exhausted_pool_refuses_instead_of_picking_a_random_port() {
        let ranges = free_port_range(2);
        let pool = PassivePortPool::new(&ranges);
        let ip = "127.0.0.1".parse().unwrap();
        let (a, lease_a) = pool.listen(ip).unwrap();
        let (b, _lease_b) = pool.listen(ip).unwrap();
        assert_ne!(
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port()
        );
        assert!(matches!(pool.listen(ip), Err(PassiveError::Exhausted(2))));
        assert_eq!(pool.available(), Some(0));
        drop(a);
        drop(lease_a);
        assert_eq!(pool.available(), Some(1));
        let (c, _lease_c) = pool.listen(ip).unwrap();
        assert!(ranges.to_string().contains('-'));
        let port = c.local_addr().unwrap().port();
        assert!(ranges.ports().any(|p| p == port));
    }

    #[tokio::test]
    async fn ports_held_by_other_programs_are_skipped() {
        let ranges = free_port_range(2);
        let first = ranges.ports().next().unwrap();
        let _other_program = std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
        let pool = PassivePortPool::new(&ranges);
        let (listener, _lease) = pool.listen("127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(listener.local_addr().unwrap().port(), first + 1);
        // The busy port stays in the pool for later.
        assert_eq!(pool.available(), Some(1));
    }
}
