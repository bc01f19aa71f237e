//! Commands on single files and directories: MKD, RMD, DELE, RNFR/RNTO (RFC 959 §4.1.3), SIZE
//! and MDTM (RFC 3659 §3, §4), MFMT (draft-somers-ftp-mfxx) and SITE CHMOD.

use tracing::info;

use super::{Handled, storage_reply};
use crate::auth::Permission;
use crate::protocol::path::quote_257;
use crate::protocol::time::UtcDateTime;
use crate::protocol::{Reply, ReplyCode, VirtualPath};
use crate::server::events::EventKind;
use crate::server::session::Session;

impl Session {
    pub(super) async fn mkd(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::MakeDirectory)?;
        let path = self.resolve(arg)?;
        storage
            .mkdir(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        info!(path = %path, "directory created");
        self.emit(EventKind::Mkdir, |event| event.path(&path));
        Ok(Reply::new(
            ReplyCode::PATH_CREATED,
            format!("{} created.", quote_257(path.as_str())),
        )
        .into())
    }

    pub(super) async fn rmd(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::Delete)?;
        let path = self.resolve(arg)?;
        if path.is_root() {
            return Err(Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                "The home directory itself cannot be removed.",
            ));
        }
        storage
            .rmdir(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        info!(path = %path, "directory removed");
        self.emit(EventKind::Rmdir, |event| event.path(&path));
        Ok(Reply::new(
            ReplyCode::FILE_ACTION_OK,
            format!("Directory {path} removed."),
        )
        .into())
    }

    pub(super) async fn dele(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::Delete)?;
        let path = self.resolve(arg)?;
        storage
            .remove(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        info!(path = %path, "file deleted");
        self.emit(EventKind::Delete, |event| event.path(&path));
        Ok(Reply::new(ReplyCode::FILE_ACTION_OK, format!("File {path} deleted.")).into())
    }

    pub(super) async fn rnfr(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::Rename)?;
        let path = self.resolve(arg)?;
        if path.is_root() {
            return Err(Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                "The home directory itself cannot be renamed.",
            ));
        }
        storage
            .metadata(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        self.rename_from = Some(path);
        Ok(Reply::new(
            ReplyCode::FILE_ACTION_PENDING,
            "Ready for the destination name (RNTO).",
        )
        .into())
    }

    pub(super) async fn rnto(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::Rename)?;
        let Some(from) = self.rename_from.take() else {
            return Err(Reply::new(
                ReplyCode::BAD_SEQUENCE,
                "Send RNFR with the current name before RNTO.",
            ));
        };
        let to = self.resolve(arg)?;
        if to.is_root() || to.starts_with(&from) && to != from {
            return Err(Reply::new(
                ReplyCode::FILE_NAME_NOT_ALLOWED,
                format!("{from} cannot be moved to {to}."),
            ));
        }
        storage
            .rename(&from, &to)
            .await
            .map_err(|e| storage_reply(&from, &e))?;
        info!(from = %from, to = %to, "renamed");
        self.emit(EventKind::Rename, |event| event.path(&from).target(&to));
        Ok(Reply::new(
            ReplyCode::FILE_ACTION_OK,
            format!("Renamed {from} to {to}."),
        )
        .into())
    }

    pub(super) async fn size(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::List)?;
        let path = self.resolve(arg)?;
        let metadata = storage
            .metadata(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        if !metadata.is_file() {
            return Err(Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                format!("{path}: not a regular file."),
            ));
        }
        Ok(Reply::new(ReplyCode::FILE_STATUS, metadata.size.to_string()).into())
    }

    pub(super) async fn mdtm(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::List)?;
        let path = self.resolve(arg)?;
        let metadata = storage
            .metadata(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        let modified = metadata.modified.ok_or_else(|| {
            Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                format!("{path}: the storage keeps no modification time."),
            )
        })?;
        Ok(Reply::new(
            ReplyCode::FILE_STATUS,
            UtcDateTime::from_unix(modified).to_mdtm(),
        )
        .into())
    }

    pub(super) async fn mfmt(&mut self, time: UtcDateTime, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::ChangeModificationTime)?;
        if !storage.capabilities().set_modified {
            return Err(Reply::new(
                ReplyCode::NOT_IMPLEMENTED,
                "This storage cannot set modification times.",
            ));
        }
        let path = self.resolve(arg)?;
        storage
            .set_modified(&path, time.to_unix())
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        Ok(Reply::new(
            ReplyCode::FILE_STATUS,
            format!("Modify={}; {path}", time.to_mdtm()),
        )
        .into())
    }

    pub(super) async fn site_chmod(&mut self, mode: u32, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::ChangeMode)?;
        if !storage.capabilities().chmod {
            return Err(Reply::new(
                ReplyCode::NOT_IMPLEMENTED,
                "This storage has no Unix permissions; SITE CHMOD is not available.",
            ));
        }
        let path: VirtualPath = self.resolve(arg)?;
        if path.is_root() {
            // Like RMD and RNFR of `/`: a mode such as 000 would lock the user out of the home.
            return Err(Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                "The home directory's own mode cannot be changed.",
            ));
        }
        storage
            .chmod(&path, mode)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        Ok(Reply::new(
            ReplyCode::COMMAND_OK,
            format!("Mode of {path} set to {mode:o}."),
        )
        .into())
    }
}
