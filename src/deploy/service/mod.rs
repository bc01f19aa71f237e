//! The deploy service (`ferry deploy serve`): services that deploy a branch on every push.
//!
//! [`webhook`] verifies and parses the git hosts' push events, the [`store`] keeps services,
//! deploys, notification sets and dashboard access in SQLite (secrets sealed under
//! [`secret_key`]), the [`queue`] runs each queued deploy through the engine from a local
//! [`mirror`] of the repository, [`notify`] mails the outcome, [`restore`] plans restores and
//! rollbacks, [`validate`] checks that a service can deploy, and [`provider_api`] talks to the git
//! hosts' REST APIs. It serves no HTTP itself (that is [`crate::web`]) and prints nothing.

pub mod blocking;
pub mod git_auth;
pub mod mirror;
pub mod model;
pub mod notify;
pub mod provider_api;
pub mod queue;
pub mod restore;
pub mod secret_key;
pub mod store;
pub mod validate;
pub mod webhook;
