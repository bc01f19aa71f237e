//! `ferry deploy`: the [`engine`] mirrors a git commit onto an FTP/FTPS target (the one-shot
//! `deploy push`), and the [`service`] deploys on every push, built on the engine. Neither touches
//! the server side of the crate.

pub mod engine;
pub mod service;

pub use self::engine::{DeployError, DeployTarget};
