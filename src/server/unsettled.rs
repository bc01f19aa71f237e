//! Uploads a client was told are done (`226`) that are not visible yet, by account.
//!
//! An upload that replaces a file without a TLS close_notify is answered at once and made
//! visible at its client's next sign of life (see `session::UPLOAD_END_GRACE`). Clients that
//! keep several connections (FileZilla lists on its main connection what it uploaded on
//! another; rclone and `lftp mirror --parallel` check sizes on whichever pooled connection is
//! free) must still find what they were told is there: a session waits for its account's
//! unsettled uploads before it runs a command. The wait is bounded by the grace itself, and
//! costs one atomic load when nothing is unsettled, as on almost every command.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// The server's unsettled uploads.
#[derive(Debug, Default)]
pub(crate) struct UnsettledUploads {
    /// All accounts together: the fast path when it is zero.
    total: AtomicUsize,
    by_account: Mutex<HashMap<Arc<str>, watch::Sender<usize>>>,
}

impl UnsettledUploads {
    /// Notes an unsettled upload of `account`, until the returned guard is dropped.
    pub(crate) fn hold(self: &Arc<Self>, account: &str) -> Unsettled {
        let account: Arc<str> = account.into();
        self.total.fetch_add(1, Ordering::AcqRel);
        self.accounts()
            .entry(Arc::clone(&account))
            .or_insert_with(|| watch::Sender::new(0))
            .send_modify(|count| *count += 1);
        Unsettled {
            uploads: Arc::clone(self),
            account,
        }
    }

    /// Returns once `account` has no unsettled upload.
    pub(crate) async fn settled(&self, account: &str) {
        if self.total.load(Ordering::Acquire) == 0 {
            return;
        }
        let Some(mut count) = self.accounts().get(account).map(watch::Sender::subscribe) else {
            return;
        };
        // An error means the entry went away: nothing is unsettled any more.
        let _ = count.wait_for(|count| *count == 0).await;
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<Arc<str>, watch::Sender<usize>>> {
        self.by_account
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One unsettled upload; settled when dropped (made visible or thrown away).
#[derive(Debug)]
pub(crate) struct Unsettled {
    uploads: Arc<UnsettledUploads>,
    account: Arc<str>,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        let mut accounts = self.uploads.accounts();
        if let Some(count) = accounts.get(&self.account) {
            count.send_modify(|count| *count -= 1);
            if *count.borrow() == 0 {
                // Dropping the sender wakes every waiter too.
                accounts.remove(&self.account);
            }
        }
        drop(accounts);
        self.uploads.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_session_waits_for_its_accounts_uploads_only() {
        let uploads = Arc::new(UnsettledUploads::default());
        // Nothing unsettled: no wait.
        uploads.settled("alice").await;

        let first = uploads.hold("alice");
        let second = uploads.hold("alice");
        let other = uploads.hold("bob");
        let waiter = tokio::spawn({
            let uploads = Arc::clone(&uploads);
            async move { uploads.settled("alice").await }
        });
        // Bob's unsettled upload keeps nobody else waiting.
        tokio::time::timeout(Duration::from_secs(5), uploads.settled("carol"))
            .await
            .unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one of alice's uploads is unsettled");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        drop(other);
        assert_eq!(uploads.total.load(Ordering::Acquire), 0);
        assert!(uploads.accounts().is_empty());
    }
}
