//! A few dedicated threads that check passwords, one per core. An argon2id check takes a core and
//! its 19 MiB of working memory for tens of milliseconds; on these threads that memory is
//! allocated once per thread and reused (see `password`), a burst of logins queues here instead
//! of occupying the runtime's blocking pool (which file I/O shares), and the process stays small
//! after the burst.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct PasswordCheckers {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

impl std::fmt::Debug for PasswordCheckers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCheckers")
            .field("threads", &self.threads)
            .finish()
    }
}

impl PasswordCheckers {
    /// Starts `threads` checker threads; they end when the last handle is dropped.
    pub(crate) fn new(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut started = 0;
        for index in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-password-{index}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { break };
                        // A panicking check fails that login only; the thread goes on.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(error) => tracing::warn!(%error, "cannot start a password-checking thread"),
            }
        }
        Self {
            jobs,
            threads: started,
        }
    }

    /// Runs `check` on a checker thread; `None` if no thread could take it or it panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if self.threads == 0 {
            return tokio::task::spawn_blocking(check).await.ok();
        }
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(check());
            }))
            .ok()?;
        result.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_on_the_named_threads_and_a_panic_does_not_stop_them() {
        let checkers = PasswordCheckers::new(2);
        let name = checkers
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .flatten();
        assert!(name.is_some_and(|n| n.starts_with("ferry-password-")));
        assert_eq!(checkers.run(|| -> u8 { panic!("boom") }).await, None);
        for _ in 0..4 {
            assert_eq!(checkers.run(|| 6 * 7).await, Some(42));
        }
    }
}
