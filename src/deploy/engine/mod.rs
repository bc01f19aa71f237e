//! The deploy engine: a git commit mirrored onto an FTP/FTPS target, resumably — what `ferry
//! deploy push` runs, and what the deploy service runs for each queued deploy.
//!
//! [`git`] reads the repository (the `git` command behind [`git::RepoSource`]), [`plan`] turns
//! trees and changes into a [`plan::DeployPlan`] without any I/O, [`executor`] carries a plan out
//! over [`crate::client::FtpClient`] connections, keeping the [`journal`] and writing the
//! [`marker`] last; [`push`] ties them together, and [`mode`] is the entry point of every deploy:
//! in place in [`order`]ed phases or unordered, with a [`maintenance`] page, or by [`swap`]ping
//! two copies. The engine owns the target URL and the error type whose kind decides the exit
//! code. It knows no database, no HTTP and no terminal: progress goes to the
//! [`progress::Reporter`] the caller passes.

pub mod connection;
pub mod deploy_config;
pub mod executor;
pub mod git;
pub mod ignore_rules;
pub mod journal;
pub mod maintenance;
pub mod marker;
pub mod mode;
pub mod order;
pub mod plan;
pub mod progress;
pub mod push;
pub mod retry;
pub mod swap;
pub mod target;

pub use self::target::DeployTarget;

use crate::client::ClientError;

/// Why a deploy failed; [`DeployError::exit_code`] tells usage, connection, transfer and git
/// failures apart for scripts.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Bad arguments or target URL (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Cannot reach or log in to the server (exit 3).
    #[error("cannot connect to the target: {0}")]
    Connection(ClientError),
    /// A transfer or file operation failed on the server (exit 4).
    #[error("{0}")]
    Transfer(String),
    /// The repository could not be read (exit 5).
    #[error("git: {0}")]
    Git(#[from] git::GitError),
    /// The commit to deploy is older than the target's, and the request forbids going back
    /// (exit 2).
    #[error(
        "{target} is an ancestor of the deployed commit {deployed} (the branch was moved back)"
    )]
    Backwards { deployed: String, target: String },
}

impl DeployError {
    pub const EXIT_USAGE: u8 = 2;
    pub const EXIT_CONNECTION: u8 = 3;
    pub const EXIT_TRANSFER: u8 = 4;
    pub const EXIT_GIT: u8 = 5;

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Backwards { .. } => Self::EXIT_USAGE,
            Self::Connection(_) => Self::EXIT_CONNECTION,
            Self::Transfer(_) => Self::EXIT_TRANSFER,
            Self::Git(_) => Self::EXIT_GIT,
        }
    }

    /// A client error while working: a failure to (re)connect or log in is a connection error,
    /// anything else a transfer error naming what was being done.
    pub fn from_client(doing: &str, error: ClientError) -> Self {
        match error {
            ClientError::Connect { .. }
            | ClientError::LoginRefused(_)
            | ClientError::Tls(_)
            | ClientError::NoGreeting { .. } => Self::Connection(error),
            ClientError::Timeout("the control connection") => Self::Connection(error),
            error => Self::Transfer(format!("{doing}: {error}")),
        }
    }
}
