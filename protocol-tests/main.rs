//! Wire tests: a real ferry server on 127.0.0.1 port 0, driven by real FTP clients (curl, lftp,
//! tnftp, rclone, Python's ftplib, the suppaftp crate) and by hand-written dialogues for the
//! corners no client reaches.

mod account_policy;
mod attacks_deploy;
mod attacks_server;
mod attacks_web;
mod cli;
mod client;
mod contrib;
mod curl;
mod dashboard;
mod data_channel;
mod deploy;
mod deploy_notify;
mod deploy_providers;
mod deploy_restore;
mod deploy_serve;
mod deploy_service_cli;
#[allow(
    dead_code,
    reason = "the dialogue helper serves several suites, each using part of it"
)]
mod dialogue;
mod ftplib;
mod garage;
mod hashing;
mod lftp;
mod limits;
mod operators;
mod proxy;
mod rclone;
#[cfg(feature = "s3")]
mod scale_out;
mod smoke;
mod suppaftp_client;
#[allow(
    dead_code,
    reason = "helpers are shared by the test modules that follow"
)]
mod support;
mod tls;
mod tnftp;
mod transfer_logs;
mod virtual_hosts;
