//! Wire tests: a real ferry server on 127.0.0.1 port 0, driven by real FTP clients (curl, lftp,
//! tnftp, rclone, Python's ftplib, the suppaftp crate) and by hand-written dialogues for the
//! corners no client reaches.

mod account_policy;
mod attacks_deploy;
mod attacks_server;
mod attacks_web;
mod bandwidth;
mod cli;
mod client;
mod commands;
mod contrib;
mod curl;
mod dashboard;
mod data_channel;
mod deploy;
mod deploy_modes;
mod deploy_notify;
mod deploy_providers;
mod deploy_restore;
mod deploy_serve;
mod deploy_service_cli;
mod deploy_verify;
mod dialogue;
mod events;
mod ftplib;
// The Garage launcher lives beside the s3 backend, whose unit tests use it too.
#[cfg(feature = "s3")]
#[path = "../src/storage/s3/test_garage.rs"]
mod garage;
mod hashing;
mod import;
mod lftp;
mod limits;
mod maintenance;
mod operators;
mod proxy;
mod rclone;
#[cfg(feature = "s3")]
mod scale_out;
mod smoke;
mod suppaftp_client;
mod support;
mod swap;
mod tls;
mod tnftp;
mod transfer_logs;
mod virtual_hosts;
mod visitor;
