//! `ferry ban`: the failed-login bans of the running FTP server, read and lifted through its
//! admin socket (see `server::admin`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::protocol::time::UtcDateTime;
use crate::server::admin::{AdminAnswer, AdminRequest, BanView, default_socket_path};

#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// List the logins the running server refuses for too many failures, and until when.
    List {
        #[command(flatten)]
        socket: AdminSocketArg,
    },
    /// Let an address log in again at once: lifts every ban on it (on its /64 for IPv6), for
    /// every account, and forgets its failures.
    Lift {
        /// The client address, as `ferry ban list` shows it (192.0.2.7, 2001:db8::1).
        address: IpAddr,
        #[command(flatten)]
        socket: AdminSocketArg,
    },
}

/// Where the running server listens for `ferry ban`.
#[derive(Debug, Args)]
pub struct AdminSocketArg {
    /// The server's admin socket (`serve --admin-socket`) [default: the database's path +
    /// .admin.sock].
    #[arg(long, value_name = "PATH", env = "FERRY_ADMIN_SOCKET")]
    admin_socket: Option<PathBuf>,
}

impl AdminSocketArg {
    fn path(&self, db: &Path) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| default_socket_path(db))
    }
}

pub(super) fn ban_command(db: &Path, command: BanCommand) -> anyhow::Result<()> {
    match command {
        BanCommand::List { socket } => {
            let AdminAnswer::Bans { bans } = ask(&socket.path(db), &AdminRequest::Bans)? else {
                bail!("the server answered something else than its bans");
            };
            if bans.is_empty() {
                crate::outln!("no bans: every address may log in");
                return Ok(());
            }
            crate::outln!("{:<26} {:<24} UNTIL", "ADDRESS", "ACCOUNT");
            for ban in &bans {
                crate::outln!(
                    "{:<26} {:<24} {}",
                    ban.address,
                    ban.account.as_deref().unwrap_or("(every account)"),
                    until(ban)
                );
            }
        }
        BanCommand::Lift { address, socket } => {
            let AdminAnswer::Lifted { bans } =
                ask(&socket.path(db), &AdminRequest::Lift { address })?
            else {
                bail!("the server answered something else than the bans it lifted");
            };
            if bans.is_empty() {
                crate::outln!("no ban on {address}; nothing lifted (its failures are forgotten)");
            }
            for ban in &bans {
                crate::outln!(
                    "lifted: {} {}",
                    ban.address,
                    ban.account
                        .as_deref()
                        .map_or_else(|| "(every account)".to_owned(), |a| format!("account {a}"))
                );
            }
        }
    }
    Ok(())
}

/// `2026-01-02 03:04:05 UTC (in 9 min)`.
fn until(ban: &BanView) -> String {
    let t = UtcDateTime::from_unix(i64::try_from(ban.until_unix).unwrap_or(i64::MAX));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let minutes = ban.until_unix.saturating_sub(now).div_ceil(60);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC (in {minutes} min)",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Sends one request to the server's admin socket and reads its answer.
fn ask(path: &Path, request: &AdminRequest) -> anyhow::Result<AdminAnswer> {
    let mut stream = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach the running server's admin socket {}; start `ferry serve` with the \
             same --db (or pass its --admin-socket PATH), as the user it runs as",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .context("cannot send the request to the server")?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("cannot read the server's answer")?;
    if answer.is_empty() {
        bail!(
            "the server closed the admin socket without an answer: only the user it runs as \
             (or root) may use it"
        );
    }
    match serde_json::from_str(answer.trim_end()).context("the server's answer is not JSON")? {
        AdminAnswer::Refused { reason } => bail!("the server refused: {reason}"),
        answer => Ok(answer),
    }
}
