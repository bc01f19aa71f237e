//! Listings: LIST and NLST (RFC 959 §4.1.3), MLSD and MLST (RFC 3659 §7), STAT with and without
//! a path.
//!
//! A directory listing is streamed: entries come from storage as a stream and leave in chunks, so
//! a directory of 100,000 files needs no more memory than one of ten.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;

use super::{Handled, storage_reply};
use crate::auth::{Permission, Permissions};
use crate::protocol::listing::{self, ListEntry, MlstFacts};
use crate::protocol::{Reply, ReplyCode};
use crate::server::session::{Completed, Failed, Flow, Login, Session};
use crate::server::tls::Direction;
use crate::server::transfer::{TransferError, with_stall_timeout};
use crate::storage::{DirEntry, DirStream, Metadata, StorageError};

/// Which listing a command asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListFormat {
    /// LIST: `ls -l` lines.
    Long,
    /// NLST: names only.
    Names,
    /// MLSD: RFC 3659 facts.
    Machine,
}

/// Listing bytes are sent whenever this much has gathered.
const CHUNK: usize = 64 * 1024;

/// STAT with a path answers over the control connection; past this many entries it stops.
const STAT_MAX_ENTRIES: usize = 10_000;

enum Source {
    Directory(DirStream),
    Single(DirEntry),
}

/// Renders entries in one listing format.
#[derive(Clone)]
struct Renderer {
    format: ListFormat,
    facts: MlstFacts,
    perm_file: String,
    perm_dir: String,
    now: i64,
}

impl Renderer {
    fn new(format: ListFormat, facts: MlstFacts, permissions: Permissions) -> Self {
        Self {
            format,
            facts,
            perm_file: permissions.mlst_perm_file(),
            perm_dir: permissions.mlst_perm_dir(),
            now: unix_now(),
        }
    }

    fn render(&self, out: &mut Vec<u8>, entry: &DirEntry) {
        let view = list_entry(&entry.name, &entry.metadata);
        match self.format {
            ListFormat::Long => listing::write_list_line(out, &view, self.now),
            ListFormat::Names => listing::write_name_line(out, &entry.name),
            ListFormat::Machine => {
                let perm = if entry.metadata.is_dir() {
                    &self.perm_dir
                } else {
                    &self.perm_file
                };
                listing::write_mlsd_line(out, &view, self.facts, perm);
            }
        }
    }
}

fn list_entry<'a>(name: &'a str, metadata: &Metadata) -> ListEntry<'a> {
    ListEntry {
        name,
        kind: metadata.kind,
        size: metadata.size,
        modified: metadata.modified,
        mode: metadata.mode,
        unique: metadata.unique,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Session {
    pub(super) async fn list(&mut self, arg: Option<&[u8]>, format: ListFormat) -> Handled {
        let storage = self.storage_with(Permission::List)?;
        let path = match arg {
            Some(arg) => self.resolve(arg)?,
            None => self.cwd.clone(),
        };
        self.require_data_setup()?;
        let metadata = storage
            .metadata(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        let source = if metadata.is_dir() {
            Source::Directory(
                storage
                    .list(&path)
                    .await
                    .map_err(|e| storage_reply(&path, &e))?,
            )
        } else if format == ListFormat::Machine {
            return Err(Reply::new(
                ReplyCode::ARGUMENT_SYNTAX_ERROR,
                format!("{path} is not a directory; MLSD lists directories, MLST shows one file."),
            ));
        } else {
            let name = path.file_name().unwrap_or_default().to_owned();
            Source::Single(DirEntry { name, metadata })
        };
        let renderer = Renderer::new(format, self.mlst_facts, self.permissions());
        let stall = self.server.config.timeouts.data_stall;
        let verb = match format {
            ListFormat::Long => "LIST",
            ListFormat::Names => "NLST",
            ListFormat::Machine => "MLSD",
        };
        let preliminary = Reply::new(
            ReplyCode::FILE_STATUS_OK,
            format!("Here comes the listing of {path}."),
        );
        let transfer = self.start_transfer(
            verb,
            Direction::Download,
            path,
            move |mut stream, progress| {
                async move {
                    let mut out = Vec::with_capacity(CHUNK + 512);
                    let mut sent = 0u64;
                    let mut entries = match source {
                        Source::Single(entry) => futures_util::stream::iter([Ok(entry)]).boxed(),
                        Source::Directory(stream) => stream,
                    };
                    while let Some(entry) = entries.next().await {
                        let entry = entry.map_err(|e| Failed::from(TransferError::Storage(e)))?;
                        renderer.render(&mut out, &entry);
                        if out.len() >= CHUNK {
                            write_chunk(&mut stream, &out, stall).await?;
                            sent += out.len() as u64;
                            progress.store(sent, Ordering::Relaxed);
                            out.clear();
                        }
                    }
                    write_chunk(&mut stream, &out, stall).await?;
                    sent += out.len() as u64;
                    let _ = stream.shutdown().await;
                    Ok(Completed::Sent(sent))
                }
                .boxed()
            },
        );
        Ok(Flow::Transfer(preliminary, transfer))
    }

    /// MLST: the facts of one file or directory, over the control connection.
    pub(super) async fn mlst(&mut self, arg: Option<&[u8]>) -> Handled {
        let storage = self.storage_with(Permission::List)?;
        let path = match arg {
            Some(arg) => self.resolve(arg)?,
            None => self.cwd.clone(),
        };
        let metadata = storage
            .metadata(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        let permissions = self.permissions();
        let perm = if metadata.is_dir() {
            permissions.mlst_perm_dir()
        } else {
            permissions.mlst_perm_file()
        };
        let mut line = vec![b' '];
        listing::write_facts(
            &mut line,
            &list_entry(path.as_str(), &metadata),
            self.mlst_facts,
            &perm,
        );
        line.extend_from_slice(path.as_str().as_bytes());
        let line = String::from_utf8_lossy(&line).into_owned();
        Ok(Reply::multiline(
            ReplyCode::FILE_ACTION_OK,
            [format!("Listing {path}"), line, "End.".to_owned()],
        )
        .into())
    }

    /// STAT without an argument (RFC 959 §4.1.3): the session's status.
    pub(super) fn stat_server(&self) -> Handled {
        let user = match &self.login {
            Login::LoggedIn(logged_in) => format!("Logged in as {}", logged_in.details.name),
            Login::AwaitingPassword { .. } => "Waiting for the password".to_owned(),
            Login::AwaitingUser => "Not logged in".to_owned(),
        };
        let data = if self.data.is_none() {
            "No data connection set up"
        } else {
            "Data connection set up, waiting for a transfer command"
        };
        let transfer_type = match self.transfer_type {
            crate::protocol::command::TransferType::Ascii => "ASCII",
            crate::protocol::command::TransferType::Binary => "BINARY",
        };
        Ok(Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            [
                "ferry FTP server status:".to_owned(),
                format!("Connected from {}", self.peer),
                user,
                format!("TYPE: {transfer_type}; MODE: Stream; STRU: File"),
                format!("Working directory: {}", self.cwd),
                data.to_owned(),
                "End of status.".to_owned(),
            ],
        )
        .into())
    }

    /// STAT with a path: a LIST over the control connection (RFC 959 §4.1.3).
    pub(super) async fn stat_path(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::List)?;
        let path = self.resolve(arg)?;
        let metadata = storage
            .metadata(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        let renderer = Renderer::new(ListFormat::Long, self.mlst_facts, self.permissions());
        let mut lines = vec![format!("Status of {path}:")];
        let mut out = Vec::new();
        if metadata.is_dir() {
            let mut entries = storage
                .list(&path)
                .await
                .map_err(|e| storage_reply(&path, &e))?;
            let mut count = 0;
            while let Some(entry) = entries.next().await {
                let entry = entry.map_err(|e: StorageError| storage_reply(&path, &e))?;
                if count == STAT_MAX_ENTRIES {
                    lines.push(format!(
                        "(more than {STAT_MAX_ENTRIES} entries; use LIST for the whole directory)"
                    ));
                    break;
                }
                out.clear();
                renderer.render(&mut out, &entry);
                lines.push(String::from_utf8_lossy(out.trim_ascii_end()).into_owned());
                count += 1;
            }
        } else {
            let name = path.file_name().unwrap_or_default().to_owned();
            renderer.render(&mut out, &DirEntry { name, metadata });
            lines.push(String::from_utf8_lossy(out.trim_ascii_end()).into_owned());
        }
        lines.push("End of status.".to_owned());
        Ok(Reply::multiline(ReplyCode::FILE_STATUS, lines).into())
    }

    fn permissions(&self) -> Permissions {
        self.user()
            .map_or(Permissions::READ_ONLY, |user| user.details.permissions)
    }
}

async fn write_chunk(
    stream: &mut crate::server::data::DataStream,
    bytes: &[u8],
    stall: std::time::Duration,
) -> Result<(), Failed> {
    with_stall_timeout(stall, stream.write_all(bytes))
        .await?
        .map_err(|e| Failed::from(TransferError::Network(e)))
}
