//! The admin channel of a running server: a Unix socket beside the accounts database through
//! which `ferry ban list` and `ferry ban lift` read and lift the login bans of the server that is
//! running, without a restart.
//!
//! Only the user the server runs as (and root) may use it: the socket file is made `0600`, and
//! every connection's peer credentials (`SO_PEERCRED`) are checked against the socket's owner
//! before a byte is read, so a connection made in the moment between `bind` and `chmod` gets
//! nothing either. One JSON request per connection, one JSON answer, then the connection closes.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

use super::{Server, Shutdown};
use crate::auth::throttle::BanRecord;

/// The longest request line read; requests are a few dozen bytes.
const MAX_REQUEST_BYTES: u64 = 4096;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the admin socket of a server on the database `db` is, unless `--admin-socket` says:
/// beside the database, so `--db` alone names both.
pub fn default_socket_path(db: &Path) -> PathBuf {
    let mut name = db
        .file_name()
        .map_or_else(|| "ferry.db".into(), ToOwned::to_owned);
    name.push(".admin.sock");
    db.with_file_name(name)
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum AdminRequest {
    /// The login bans in force.
    Bans,
    /// Lift every ban on an address (its IPv6 /64) and forget its failures.
    Lift { address: IpAddr },
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum AdminAnswer {
    Bans { bans: Vec<BanView> },
    Lifted { bans: Vec<BanView> },
    Refused { reason: String },
}

/// One ban, as the channel tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanView {
    /// The address refused: an IPv4 address, or an IPv6 network as `PREFIX/64`.
    pub address: String,
    /// The account refused there; `None` when every login from the address is.
    pub account: Option<String>,
    /// When the ban ends, in seconds since the Unix epoch.
    pub until_unix: u64,
}

impl BanView {
    fn of(ban: &BanRecord, now: SystemTime) -> Self {
        let until = (now + ban.remaining)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            address: match ban.network {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("{v6}/64"),
            },
            account: ban.account.clone(),
            // Rounded up: the ban is over by then.
            until_unix: until.as_secs() + u64::from(until.subsec_nanos() > 0),
        }
    }
}

/// A bound admin socket and the user who owns it.
#[derive(Debug)]
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    owner: u32,
}

impl AdminSocket {
    /// Binds the socket at `path`, readable and writable by its owner only. A socket file left
    /// by a server that is gone is replaced; one a running server answers on is not, and
    /// neither is anything that is not a socket.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Ok(metadata) = std::fs::symlink_metadata(path) {
            if !metadata.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way; move it, or choose another \
                     path with --admin-socket",
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another ferry serve answers on it; give each server its own --db or \
                     --admin-socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let owner = std::fs::metadata(path)?.uid();
        Ok(Self {
            listener,
            path: path.to_owned(),
            owner,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Answers admin requests until a shutdown is requested, then removes the socket file.
pub async fn serve_admin(socket: AdminSocket, server: Arc<Server>, shutdown: Shutdown) {
    loop {
        let stream = tokio::select! {
            accepted = socket.listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    warn!(%error, "cannot accept on the admin socket");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.graceful.cancelled() => break,
        };
        let server = Arc::clone(&server);
        let owner = socket.owner;
        tokio::spawn(async move {
            if let Err(error) = answer(stream, owner, &server).await {
                warn!(%error, "an admin request failed");
            }
        });
    }
    let _ = std::fs::remove_file(&socket.path);
}

/// Reads one request from an allowed peer and writes its answer.
async fn answer(stream: UnixStream, owner: u32, server: &Server) -> io::Result<()> {
    let peer = stream.peer_cred()?.uid();
    if peer != owner && peer != 0 {
        warn!(
            uid = peer,
            "admin request refused: only the user the server runs as may use the admin socket"
        );
        return Ok(());
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request in time"))??;
    let answer = match serde_json::from_str::<AdminRequest>(line.trim_end()) {
        Ok(request) => carry_out(request, server),
        Err(error) => AdminAnswer::Refused {
            reason: format!("not a request this server knows: {error}"),
        },
    };
    let mut text = serde_json::to_string(&answer).map_err(io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

fn carry_out(request: AdminRequest, server: &Server) -> AdminAnswer {
    let now = SystemTime::now();
    let views = |bans: Vec<BanRecord>| bans.iter().map(|ban| BanView::of(ban, now)).collect();
    match request {
        AdminRequest::Bans => AdminAnswer::Bans {
            bans: views(server.throttle.bans()),
        },
        AdminRequest::Lift { address } => {
            let lifted = server.throttle.lift(address);
            info!(client = %address, lifted = lifted.len(), "login bans lifted by the operator");
            AdminAnswer::Lifted {
                bans: views(lifted),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_sits_beside_the_database() {
        assert_eq!(
            default_socket_path(Path::new("/var/lib/ferry/ferry.db")),
            Path::new("/var/lib/ferry/ferry.db.admin.sock")
        );
        assert_eq!(
            default_socket_path(Path::new("ferry.db")),
            Path::new("ferry.db.admin.sock")
        );
    }

    #[test]
    fn requests_and_answers_are_one_json_line_each() {
        let request: AdminRequest =
            serde_json::from_str(r#"{"request":"lift","address":"192.0.2.7"}"#).unwrap();
        assert_eq!(
            request,
            AdminRequest::Lift {
                address: "192.0.2.7".parse().unwrap()
            }
        );
        let view = BanView::of(
            &BanRecord {
                network: "2001:db8::".parse().unwrap(),
                account: None,
                remaining: Duration::from_millis(1500),
            },
            UNIX_EPOCH + Duration::from_secs(100),
        );
        assert_eq!(view.address, "2001:db8::/64");
        assert_eq!(view.until_unix, 102);
    }
}
