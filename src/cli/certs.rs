//! `ferry certs`: certificates for FTPS.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a self-signed certificate for localhost (development and tests only).
    Dev {
        /// Where to write cert.pem and key.pem (the key readable by its owner only).
        #[arg(long, value_name = "DIR", default_value = "certs-dev")]
        dir: PathBuf,
        /// Replace a certificate and key already there.
        #[arg(long)]
        force: bool,
    },
}
