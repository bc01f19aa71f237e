//! Command handlers: one file per family, each an `impl Session` block.
//!
//! [`Session::dispatch`] enforces what holds for every command — login first (530), the logged-in
//! account's TLS policy (530), permission letters (550) — and routes to the handler. A handler returns `Err(reply)` for any refusal, so
//! the happy path reads top to bottom.

mod data_setup;
mod files;
mod hash;
mod host;
mod info;
mod listings;
mod login;
mod navigation;
mod security;
mod transfers;

use std::sync::Arc;

use super::session::{Flow, Session};
use crate::auth::Permission;
use crate::protocol::command::{Command, Opts, Site};
use crate::protocol::{Reply, ReplyCode, VirtualPath};
use crate::storage::{Storage, StorageError};

/// A handler's result: what to do, or the reply that refuses.
pub(crate) type Handled = Result<Flow, Reply>;

impl Session {
    pub(crate) async fn dispatch(&mut self, command: Command<'_>) -> Flow {
        if self.user().is_none() && !allowed_before_login(&command) {
            return Reply::new(
                ReplyCode::NOT_LOGGED_IN,
                "Please log in with USER and PASS first.",
            )
            .into();
        }
        // The TLS policy holds for every command after login, whatever happened to the control
        // connection since (login and CCC refuse to break it; this catches any other way).
        if self.user().is_some()
            && self.tls_requirement().control()
            && !self.control.is_tls()
            && !matches!(command, Command::Quit)
        {
            return Reply::new(
                ReplyCode::NOT_LOGGED_IN,
                "Your account requires TLS on the control connection; reconnect and send AUTH TLS first.",
            )
            .into();
        }
        // RANG is for the command right after it (draft-bryan-ftp-range-09 §4.3), and only HASH
        // honours one here: a transfer after it is refused rather than sent whole.
        let rang = self.hash_range.take();
        match &command {
            Command::Hash(_) => self.hash_range = rang,
            Command::Retr(_) | Command::Stor(_) | Command::Appe(_) | Command::Stou(_)
                if rang.is_some() =>
            {
                return Reply::new(
                    ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                    "RANG applies to HASH only on this server; send RANG 1 0 and use REST to resume transfers.",
                )
                .into();
            }
            _ => {}
        }
        let handled = match command {
            Command::User(name) => self.user_command(name).await,
            Command::Pass(password) => self.pass(password).await,
            Command::Acct(_) => self.acct(),
            Command::Quit => Ok(Flow::Close(self.goodbye())),
            Command::Rein => self.rein(),
            Command::Pwd => self.pwd(),
            Command::Cwd(path) => self.cwd(path).await,
            Command::Cdup => self.cwd(b"..").await,
            Command::Mkd(path) => self.mkd(path).await,
            Command::Rmd(path) => self.rmd(path).await,
            Command::Dele(path) => self.dele(path).await,
            Command::Rnfr(path) => self.rnfr(path).await,
            Command::Rnto(path) => self.rnto(path).await,
            Command::Retr(path) => self.retr(path).await,
            Command::Stor(path) => self.stor(path, transfers::StoreKind::Store).await,
            Command::Appe(path) => self.stor(path, transfers::StoreKind::Append).await,
            Command::Stou(name) => self.stou(name).await,
            Command::Rest(offset) => self.rest(offset),
            Command::Allo => Ok(Reply::new(
                ReplyCode::COMMAND_SUPERFLUOUS,
                "ALLO not needed; space is not reserved in advance.",
            )
            .into()),
            Command::Size(path) => self.size(path).await,
            Command::Mdtm(path) => self.mdtm(path).await,
            Command::Mfmt { time, path } => self.mfmt(time, path).await,
            Command::List(path) => self.list(path, listings::ListFormat::Long).await,
            Command::Nlst(path) => self.list(path, listings::ListFormat::Names).await,
            Command::Mlsd(path) => self.list(path, listings::ListFormat::Machine).await,
            Command::Mlst(path) => self.mlst(path).await,
            Command::Stat(None) => self.stat_server(),
            Command::Stat(Some(path)) => self.stat_path(path).await,
            Command::Help(topic) => self.help(topic),
            Command::Noop => Ok(Reply::new(ReplyCode::COMMAND_OK, "NOOP ok.").into()),
            Command::Syst => Ok(Reply::new(ReplyCode::SYSTEM_TYPE, "UNIX Type: L8").into()),
            Command::Feat => self.feat(),
            Command::Opts(Opts::Utf8(on)) => self.opts_utf8(on),
            Command::Opts(Opts::Mlst(facts)) => self.opts_mlst(facts),
            Command::Opts(Opts::Hash(choice)) => self.opts_hash(choice),
            Command::Type(kind) => self.type_command(kind),
            Command::Mode => Ok(Reply::new(ReplyCode::COMMAND_OK, "Mode set to S.").into()),
            Command::Stru => Ok(Reply::new(ReplyCode::COMMAND_OK, "Structure set to F.").into()),
            Command::Pasv => self.pasv(),
            Command::Epsv(argument) => self.epsv(argument),
            Command::Port(addr) => self.port(addr.into()),
            Command::Eprt(addr) => self.port(addr),
            Command::Abor => self.abor_idle(),
            Command::Site(Site::Help) => self.site_help(),
            Command::Site(Site::Chmod { mode, path }) => self.site_chmod(mode, path).await,
            Command::Site(Site::Other(name)) => Err(Reply::new(
                ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                format!(
                    "SITE {} is not supported; SITE HELP lists what is.",
                    String::from_utf8_lossy(name).to_ascii_uppercase()
                ),
            )),
            Command::Auth => self.auth(),
            Command::Pbsz(size) => self.pbsz(size),
            Command::Prot(level) => self.prot(level),
            Command::Ccc => self.ccc(),
            Command::Hash(path) => self.hash(path).await,
            Command::XHash {
                algorithm,
                path,
                range,
            } => self.x_hash(algorithm, path, range).await,
            Command::Rang(selection) => self.rang(selection),
            Command::Host(name) => self.host(name),
        };
        handled.unwrap_or_else(Flow::Reply)
    }

    /// Decodes a path argument (UTF-8, RFC 2640) and resolves it against the working directory.
    pub(crate) fn resolve(&self, arg: &[u8]) -> Result<VirtualPath, Reply> {
        let text = std::str::from_utf8(arg).map_err(|_| {
            Reply::new(
                ReplyCode::ARGUMENT_SYNTAX_ERROR,
                "File names must be UTF-8 (RFC 2640); set your client's encoding to UTF-8.",
            )
        })?;
        self.cwd.join(text).map_err(|e| {
            Reply::new(
                ReplyCode::ARGUMENT_SYNTAX_ERROR,
                format!("Bad file name: {e}."),
            )
        })
    }

    /// The logged-in user's storage, if their account has `permission`.
    pub(crate) fn storage_with(&self, permission: Permission) -> Result<Arc<dyn Storage>, Reply> {
        let user = self.user().ok_or_else(|| {
            Reply::new(
                ReplyCode::NOT_LOGGED_IN,
                "Please log in with USER and PASS first.",
            )
        })?;
        if !user.details.permissions.contains(permission) {
            return Err(Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                format!(
                    "Permission denied: your account may not {}.",
                    permission_action(permission)
                ),
            ));
        }
        Ok(Arc::clone(&user.storage))
    }
}

/// A storage failure as a reply that names the path.
pub(crate) fn storage_reply(path: &VirtualPath, error: &StorageError) -> Reply {
    Reply::new(error.reply_code(), format!("{path}: {error}."))
}

fn permission_action(permission: Permission) -> &'static str {
    match permission {
        Permission::ChangeDirectory => "change directories",
        Permission::List => "list files",
        Permission::Retrieve => "download files",
        Permission::Append => "append to files",
        Permission::Delete => "delete files or directories",
        Permission::Rename => "rename files or directories",
        Permission::MakeDirectory => "create directories",
        Permission::Store => "upload files",
        Permission::ChangeMode => "change permissions",
        Permission::ChangeModificationTime => "change modification times",
    }
}

/// Commands that make sense before login (RFC 959 §5.4; RFC 2389 asks FEAT to work early).
fn allowed_before_login(command: &Command<'_>) -> bool {
    matches!(
        command,
        Command::User(_)
            | Command::Pass(_)
            | Command::Acct(_)
            | Command::Quit
            | Command::Rein
            | Command::Help(_)
            | Command::Noop
            | Command::Syst
            | Command::Feat
            | Command::Opts(Opts::Utf8(_))
            | Command::Auth
            | Command::Pbsz(_)
            | Command::Prot(_)
            | Command::Ccc
            | Command::Type(_)
            | Command::Host(_)
    )
}
