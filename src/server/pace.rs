//! Bandwidth limits: the pace of one transfer, at most so many bytes a second on average, with a
//! burst allowed above it.
//!
//! Each transfer has a pacer of its own, so one session's limit never slows another's. The pacer
//! is a generic cell rate algorithm: every chunk moved pushes the transfer's "due" time forward
//! by its size over the rate, and the transfer sleeps while the due time runs more than the
//! burst's worth ahead of the clock. A limited upload is paced by reading no faster (TCP's flow
//! control slows the client); a limited download by writing no faster, in chunks no larger than
//! the burst (sendfile included).

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

/// A transfer's limit: `rate` bytes a second, and up to `burst` bytes at once above that pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: NonZeroU64,
    pub burst: NonZeroU64,
}

impl RateLimit {
    /// The burst when none is given: a tenth of a second's worth, at least 16 KiB.
    pub fn new(rate: NonZeroU64) -> Self {
        let burst = (rate.get() / 10).max(16 << 10);
        Self {
            rate,
            burst: NonZeroU64::new(burst).expect("at least 16 KiB"),
        }
    }
}

/// `1048576`, `512K`, `10M`, `1G` (K = 1024 bytes), optionally `:BURST` in the same form.
impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (rate, burst) = match text.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let rate = parse_bytes(rate).ok_or_else(|| {
            format!("{text:?} is not a rate: give bytes a second, as in 512K or 10M, optionally with a burst (10M:1M)")
        })?;
        let mut limit = Self::new(rate);
        if let Some(burst) = burst {
            limit.burst = parse_bytes(burst)
                .ok_or_else(|| format!("{burst:?} is not a burst: give bytes, as in 256K"))?;
        }
        Ok(limit)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            show_bytes(self.rate.get()),
            show_bytes(self.burst.get())
        )
    }
}

fn parse_bytes(text: &str) -> Option<NonZeroU64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (&text[..at], 1 << 10),
        (at, 'm' | 'M') => (&text[..at], 1 << 20),
        (at, 'g' | 'G') => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    let value: u64 = digits.parse().ok()?;
    NonZeroU64::new(value.checked_mul(unit)?)
}

fn show_bytes(bytes: u64) -> String {
    for (unit, size) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// The pace of one transfer.
#[derive(Debug)]
pub(crate) struct Pacer {
    limit: RateLimit,
    /// When the bytes moved so far would have been moved at exactly the rate.
    due: Instant,
}

impl Pacer {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            due: Instant::now(),
        }
    }

    /// The most to move before the next call to [`Pacer::moved`].
    pub(crate) fn chunk(&self) -> usize {
        usize::try_from(self.limit.burst.get()).unwrap_or(usize::MAX)
    }

    /// Notes `bytes` moved, and waits while the transfer is more than a burst ahead of its pace.
    pub(crate) async fn moved(&mut self, bytes: u64) {
        let rate = self.limit.rate.get();
        let cost = Duration::from_secs(bytes / rate)
            + Duration::from_nanos(((bytes % rate) * 1_000_000_000) / rate);
        let now = Instant::now();
        self.due = self.due.max(now) + cost;
        let tolerance = Duration::from_secs_f64(self.limit.burst.get() as f64 / rate as f64);
        let resume = self.due.checked_sub(tolerance).unwrap_or(now);
        if resume > now {
            tokio::time::sleep_until(resume).await;
        }
    }
}

/// How much of `len` bytes to move at once: all of it unpaced, at most a burst when paced.
pub(crate) fn chunk_limit(pacer: Option<&Pacer>, len: usize) -> usize {
    pacer.map_or(len, |pacer| len.min(pacer.chunk()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_bursts_are_read_in_bytes_k_m_and_g() {
        let limit: RateLimit = "10M".parse().unwrap();
        assert_eq!(limit.rate.get(), 10 << 20);
        assert_eq!(limit.burst.get(), (10 << 20) / 10);
        let limit: RateLimit = "512k:64K".parse().unwrap();
        assert_eq!((limit.rate.get(), limit.burst.get()), (512 << 10, 64 << 10));
        assert_eq!("1000".parse::<RateLimit>().unwrap().burst.get(), 16 << 10);
        assert_eq!(limit.to_string(), "512K:64K");
        for bad in [
            "",
            "0",
            "fast",
            "10X",
            "10M:",
            "10M:0",
            "-1K",
            "99999999999G",
        ] {
            let error = bad.parse::<RateLimit>().unwrap_err();
            assert!(error.contains("as in"), "{bad}: {error}");
        }
    }

    /// On the runtime's virtual clock: what the pacer lets through in a given time, exactly.
    #[tokio::test(start_paused = true)]
    async fn a_paced_transfer_keeps_its_rate_after_one_burst() {
        let limit: RateLimit = "1M:128K".parse().unwrap();
        let mut pacer = Pacer::new(limit);
        let start = Instant::now();
        let mut moved = 0u64;
        while moved < 10 << 20 {
            let chunk = chunk_limit(Some(&pacer), 64 << 10) as u64;
            moved += chunk;
            pacer.moved(chunk).await;
        }
        let took = start.elapsed().as_secs_f64();
        // 10 MiB at 1 MiB/s, less the burst that went at once.
        let expected = 10.0 - 0.125;
        assert!((took - expected).abs() < 0.01, "took {took} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_does_not_save_up_more_than_one_burst() {
        let mut pacer = Pacer::new("1M:128K".parse().unwrap());
        pacer.moved(1 << 20).await;
        // Ten idle seconds later, only one burst goes without waiting.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        pacer.moved(128 << 10).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.moved(128 << 10).await;
        let waited = start.elapsed().as_secs_f64();
        assert!((waited - 0.125).abs() < 0.001, "waited {waited} s");
    }
}
