//! Git-to-FTP deploys: the service side (webhooks, the service store) and, beside it, the push
//! client. This module owns what a deploy service knows; it never talks FTP itself (that is
//! [`crate::client`]) and never serves HTTP (that is the web layer).

pub mod secret_key;
pub mod service_cli;
pub mod store;
pub mod target;
pub mod webhook;
