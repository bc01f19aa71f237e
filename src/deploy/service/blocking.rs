//! Blocking work — SQLite, git, password hashes — called from async code: run on tokio's blocking
//! pool, with a task that panicked turned into an error of the caller's own type. The one way the
//! service and its HTTP side wait for such work.

/// A blocking task ended without an answer (it panicked or the runtime is shutting down).
#[derive(Debug, Clone, thiserror::Error)]
#[error("a background task failed ({0}); the log says why")]
pub struct TaskFailed(String);

/// Runs `job` on the blocking pool and waits for it.
pub async fn run_blocking<T, E>(job: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<TaskFailed> + Send + 'static,
{
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| E::from(TaskFailed::from(e)))?
}

impl From<tokio::task::JoinError> for TaskFailed {
    fn from(error: tokio::task::JoinError) -> Self {
        Self(error.to_string())
    }
}
