//! PWD, CWD and CDUP (RFC 959 §4.1.1, §4.1.3), and their X-variants (RFC 775).

use super::{Handled, storage_reply};
use crate::auth::Permission;
use crate::protocol::path::quote_257;
use crate::protocol::{Reply, ReplyCode};
use crate::server::session::Session;

impl Session {
    pub(super) fn pwd(&self) -> Handled {
        Ok(Reply::new(
            ReplyCode::PATH_CREATED,
            format!("{} is the current directory.", quote_257(self.cwd.as_str())),
        )
        .into())
    }

    pub(super) async fn cwd(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::ChangeDirectory)?;
        let path = self.resolve(arg)?;
        let metadata = storage
            .metadata(&path)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        if !metadata.is_dir() {
            return Err(Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                format!("{path}: not a directory."),
            ));
        }
        let reply = Reply::new(
            ReplyCode::FILE_ACTION_OK,
            format!("Directory changed to {}.", quote_257(path.as_str())),
        );
        self.cwd = path;
        Ok(reply.into())
    }
}
