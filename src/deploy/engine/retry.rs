//! How a deploy step is tried again after a transient failure (a `421`, a dropped connection, a
//! timeout): on a fresh connection, after a jittered, doubling wait, a few times.

use std::time::Duration;

use super::DeployError;
use crate::client::{Backoff, ClientError};

/// How often and how patiently failed operations are tried again: the client's [`Backoff`],
/// with shorter waits than its defaults (a deploy has many small steps, and a server that is
/// gone should fail the run in seconds, not minutes; the journal makes the rerun cheap).
pub type RetryPolicy = Backoff;

/// The deploy's retry policy: 5 tries, 250 ms doubling up to 8 s.
pub fn default_retry_policy() -> RetryPolicy {
    Backoff {
        attempts: 5,
        first_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(8),
    }
}

/// The wait before retry number `retry` (1 for the first), with ±25 % jitter so that parallel
/// sessions do not all come back at the same instant.
pub(crate) fn retry_delay(policy: &RetryPolicy, retry: u32) -> Duration {
    use rand::Rng as _;
    policy
        .delay(retry.saturating_sub(1))
        .mul_f64(rand::thread_rng().gen_range(0.75..=1.25))
        .min(policy.max_delay)
}

/// A failure inside one step: a client error may be retried, anything else ends the deploy.
pub(crate) enum StepError {
    Client(ClientError),
    /// Opening a fresh session failed: the server is unreachable or refuses us.
    Reconnect(ClientError),
    Fatal(DeployError),
    /// The server holds other bytes than were sent (a HASH that does not match): sent again.
    Corrupted(String),
}

impl From<ClientError> for StepError {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

/// Runs `$body` (which may use `$client`, and `?` on client errors); on a transient error waits,
/// reconnects and runs it again, up to the policy's attempts. A macro rather than a function taking
/// an async closure, whose futures the compiler cannot yet prove `Send` inside spawned tasks.
macro_rules! with_retry {
    ($session_client:expr, $policy:expr, $what:expr, |$client:ident| $body:block) => {{
        use $crate::deploy::engine::retry::{StepError, retry_delay};
        let session_client: &mut $crate::client::FtpClient = $session_client;
        let policy: &$crate::deploy::engine::retry::RetryPolicy = $policy;
        let mut attempt = 1;
        let mut reconnect = false;
        loop {
            let result: Result<_, StepError> = async {
                if reconnect {
                    session_client
                        .reconnect()
                        .await
                        .map_err(StepError::Reconnect)?;
                }
                let $client = &mut *session_client;
                $body
            }
            .await;
            match result {
                Ok(value) => break Ok(value),
                Err(StepError::Client(error) | StepError::Reconnect(error))
                    if error.is_transient() && attempt < policy.attempts =>
                {
                    let delay = retry_delay(policy, attempt);
                    ::tracing::warn!(%error, attempt, "{} failed; retrying in {delay:?} on a new connection", $what);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    reconnect = true;
                }
                Err(StepError::Corrupted(detail)) if attempt < policy.attempts => {
                    ::tracing::warn!(attempt, "{detail}; sending it again");
                    attempt += 1;
                }
                Err(StepError::Corrupted(detail)) => {
                    break Err($crate::deploy::engine::DeployError::Transfer(format!(
                        "{detail}, {} times; the server does not keep what it is sent",
                        policy.attempts
                    )))
                }
                Err(StepError::Client(error)) => break Err($crate::deploy::engine::DeployError::from_client(&$what, error)),
                Err(StepError::Reconnect(error)) => break Err($crate::deploy::engine::DeployError::Connection(error)),
                Err(StepError::Fatal(error)) => break Err(error),
            }
        }
    }};
}

pub(crate) use with_retry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_limit_with_jitter() {
        let policy = RetryPolicy {
            attempts: 6,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        for (retry, base) in [(1, 100.0), (2, 200.0), (3, 400.0)] {
            let ms = retry_delay(&policy, retry).as_secs_f64() * 1000.0;
            assert!((base * 0.75..=base * 1.25).contains(&ms), "{retry}: {ms}");
        }
        for retry in [4, 5, 30] {
            assert!(retry_delay(&policy, retry) <= Duration::from_millis(500));
        }
    }
}
