//! ferry: an FTP/FTPS server, an FTP/FTPS client, and a git-to-FTP deploy service.
//!
//! The module map, the layering rules and the reasons behind them are in the repository's
//! `ARCHITECTURE.md`; in short, [`protocol`] is pure and imports nothing from the rest of the
//! crate, [`server`] is the only code that awaits the network for the server, [`storage`] and
//! [`auth`] sit behind traits, the [`deploy`] engine knows no database, HTTP or terminal, and
//! [`cli`] sits on top of everything.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod deploy;
pub mod private_files;
pub mod protocol;
pub mod server;
pub mod sqlite;
pub mod storage;
pub mod systemd;
pub mod web;

// Unit tests count heap allocations inside `assert_no_alloc` blocks (the allocator only counts;
// outside those blocks it is the system allocator), to keep the per-command path allocation-free.
#[cfg(test)]
#[global_allocator]
static ALLOCATIONS: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;
