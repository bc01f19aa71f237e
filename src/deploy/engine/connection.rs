//! One connection to the deploy target, as the engine uses it: the deploy root, the marker read
//! (bounded) and written (by a rename), the target's tree listed (bounded), and files renamed
//! into place even on servers that will not rename over a file.

use std::collections::VecDeque;

use tracing::warn;

use super::DeployError;
use super::ignore_rules::{IgnoreRules, TEMP_PREFIX};
use super::marker::{MARKER_NAME, MAX_MARKER_BYTES, MarkerFile};
use super::plan::RemoteTree;
use super::retry::{RetryPolicy, with_retry};
use crate::client::{ClientConfig, ClientError, FtpClient, RemoteKind, StoreMode};
use crate::protocol::ReplyCode;

/// The most files and directories a listing of the target may hold, so a server (or another
/// user of it) cannot make the deploy hold an unbounded tree in memory.
pub const MAX_TREE_ENTRIES: usize = 1_000_000;

/// One logged-in connection to the target, with the absolute path of the deploy root.
pub struct TargetConnection {
    pub client: FtpClient,
    root: String,
}

impl TargetConnection {
    /// Connects and logs in; the deploy root is `path` under the login directory.
    pub async fn open(config: ClientConfig, path: &str) -> Result<Self, DeployError> {
        let mut client = FtpClient::connect(config)
            .await
            .map_err(DeployError::Connection)?;
        let home = client
            .pwd()
            .await
            .map_err(|e| DeployError::from_client("PWD", e))?;
        let root = join(&home, path);
        Ok(Self { client, root })
    }

    /// The absolute remote path of `relative` (relative to the deploy root).
    pub fn path(&self, relative: &str) -> String {
        join(&self.root, relative)
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Creates the deploy root and its parents where missing.
    pub async fn create_root(&mut self) -> Result<(), DeployError> {
        if self.root == "/" {
            return Ok(());
        }
        let root = self.root.clone();
        self.client
            .mkdir_all(&root)
            .await
            .map_err(|e| DeployError::from_client(&format!("creating {root}"), e))
    }

    /// The marker on the target, or `None` when there is none (or no deploy root yet).
    pub async fn read_marker(
        &mut self,
        retry: &RetryPolicy,
    ) -> Result<Option<MarkerFile>, DeployError> {
        let path = self.path(MARKER_NAME);
        let body = with_retry!(
            &mut self.client,
            retry,
            "reading the deploy marker",
            |client| {
                match client.retrieve_small(&path, MAX_MARKER_BYTES).await {
                    Ok(body) => Ok(Some(body)),
                    Err(ClientError::Refused { reply, command }) if reply.code.get() >= 500 => {
                        match client.kind_of(&path).await? {
                            None => Ok(None),
                            Some(_) => Err(ClientError::Refused { command, reply }.into()),
                        }
                    }
                    Err(error) => Err(error.into()),
                }
            }
        )?;
        body.map(|body| MarkerFile::from_json(&body))
            .transpose()
            .map_err(|e| DeployError::Transfer(e.to_string()))
    }

    /// Writes the marker (to a temporary name, then renamed into place).
    pub async fn write_marker(
        &mut self,
        marker: &MarkerFile,
        retry: &RetryPolicy,
    ) -> Result<(), DeployError> {
        let json = marker.to_json();
        let path = self.path(MARKER_NAME);
        let temp = temp_name(&path);
        with_retry!(
            &mut self.client,
            retry,
            "writing the deploy marker",
            |client| {
                let sent = client
                    .store(&temp, &mut json.as_slice(), StoreMode::Replace)
                    .await?;
                if sent != json.len() as u64 {
                    return Err(
                        ClientError::Protocol("the marker upload was cut short".into()).into(),
                    );
                }
                rename_over(client, &temp, &path).await?;
                Ok(())
            }
        )
    }

    /// Lists every file and directory under the deploy root, not descending into ignored
    /// directories; at most [`MAX_TREE_ENTRIES`] of them.
    pub async fn list_tree(
        &mut self,
        rules: &IgnoreRules,
        retry: &RetryPolicy,
    ) -> Result<RemoteTree, DeployError> {
        let mut tree = RemoteTree::default();
        let mut pending = VecDeque::from([String::new()]);
        while let Some(dir) = pending.pop_front() {
            let path = self.path(&dir);
            let what = format!("listing {path}");
            let listed = with_retry!(&mut self.client, retry, what, |client| {
                match client.list(&path).await {
                    Ok(entries) => Ok(Some(entries)),
                    // The root itself may not exist yet.
                    Err(ClientError::Refused { reply, .. })
                        if dir.is_empty() && reply.code.get() >= 500 =>
                    {
                        Ok(None)
                    }
                    Err(error) => Err(error.into()),
                }
            })?;
            let Some(entries) = listed else { break };
            if tree.files.len() + tree.dirs.len() + entries.len() > MAX_TREE_ENTRIES {
                return Err(DeployError::Transfer(format!(
                    "the target holds more than {MAX_TREE_ENTRIES} files and directories under \
                     {}; that is not a site ferry can compare (deploy to an empty directory, or \
                     ignore the bulk in .ferryignore)",
                    self.root
                )));
            }
            for entry in entries {
                // A name that is not one path segment cannot be trusted to stay under the root.
                if entry.name.is_empty()
                    || entry.name == "."
                    || entry.name == ".."
                    || entry.name.contains('/')
                {
                    warn!(name = entry.name, dir = %path, "ignored a strange name in the listing");
                    continue;
                }
                let relative = if dir.is_empty() {
                    entry.name.clone()
                } else {
                    format!("{dir}/{}", entry.name)
                };
                match entry.kind {
                    RemoteKind::Dir => {
                        if !rules.is_ignored_dir(&relative) {
                            pending.push_back(relative.clone());
                        }
                        tree.dirs.insert(relative);
                    }
                    RemoteKind::File => {
                        tree.files.insert(relative, entry.size.unwrap_or(u64::MAX));
                    }
                    RemoteKind::Symlink | RemoteKind::Other => {}
                }
            }
        }
        Ok(tree)
    }

    pub async fn quit(self) {
        let _ = self.client.quit().await;
    }
}

/// RNFR/RNTO `from` over `to`. Servers that refuse to rename over an existing file (IIS,
/// FileZilla Server) refuse the RNTO: the old file is then renamed aside, the new one into place,
/// and the old one deleted — the only moment a visitor could miss it. The old file is never
/// deleted before the new one is in place, so a server that refuses every rename (an account
/// without the rename permission) loses nothing.
pub(crate) async fn rename_over(
    client: &mut FtpClient,
    from: &str,
    to: &str,
) -> Result<(), ClientError> {
    match client.rename(from, to).await {
        Err(ClientError::Refused { reply, command })
            if command.starts_with("RNTO")
                && (reply.code == ReplyCode::FILE_UNAVAILABLE || reply.code.get() == 553) =>
        {
            if client.kind_of(to).await? != Some(RemoteKind::File) {
                return Err(ClientError::Refused { command, reply });
            }
            warn!(
                file = to,
                "the server will not rename over a file; moving the old one aside first"
            );
            let aside = format!("{}.old", temp_name(to));
            client.rename(to, &aside).await?;
            match client.rename(from, to).await {
                Ok(()) => {
                    if let Err(error) = client.delete(&aside).await {
                        warn!(file = aside, %error, "cannot delete the replaced file");
                    }
                    Ok(())
                }
                Err(error) => {
                    // Put the old file back: the site keeps what it had.
                    let _ = client.rename(&aside, to).await;
                    Err(error)
                }
            }
        }
        other => other,
    }
}

/// `dir/.ferry-tmp.name` for `dir/name`.
pub(crate) fn temp_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{TEMP_PREFIX}{name}"),
        None => format!("{TEMP_PREFIX}{path}"),
    }
}

/// `base` + `relative`, with exactly one slash between.
fn join(base: &str, relative: &str) -> String {
    let base = base.trim_end_matches('/');
    let relative = relative.trim_matches('/');
    match (base.is_empty(), relative.is_empty()) {
        (true, true) => "/".to_owned(),
        (_, true) => base.to_owned(),
        (true, false) => format!("/{relative}"),
        (false, false) => format!("{base}/{relative}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_join_with_one_slash() {
        assert_eq!(join("/", ""), "/");
        assert_eq!(join("/", "a b/c"), "/a b/c");
        assert_eq!(join("/home/x/", "site/"), "/home/x/site");
        assert_eq!(join("/site", ""), "/site");
        assert_eq!(temp_name("/site/css/a.css"), "/site/css/.ferry-tmp.a.css");
    }
}
