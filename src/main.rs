//! The `ferry` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ferry::cli::Cli::parse();
    // FERRY_LOG (or RUST_LOG) takes tracing filter directives, as in FERRY_LOG=ferry=debug.
    let filter = std::env::var("FERRY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info,rustls=error"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // One JSON object per line, for log shippers: fields stay fields.
        ferry::cli::LogFormat::Json => logs.json().init(),
        ferry::cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    // One TLS crypto provider for the whole binary.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Deploy failures tell usage, connection, transfer and git errors apart.
            if let Some(usage) = error.downcast_ref::<ferry::cli::UsageError>() {
                eprintln!("error: {usage}");
                return ExitCode::from(2);
            }
            match error.downcast_ref::<ferry::deploy::DeployError>() {
                Some(deploy) => {
                    eprintln!("error: {deploy}");
                    ExitCode::from(deploy.exit_code())
                }
                None => {
                    eprintln!("error: {}", describe(&error));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The error and its causes, each said once: a cause whose text the message already holds (an
/// error that names its source, then the source itself) is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
