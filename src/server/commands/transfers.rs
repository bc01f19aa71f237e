//! File transfers: RETR, STOR, APPE, STOU, REST and ABOR (RFC 959 §4.1.3, RFC 3659 §5).
//!
//! A handler checks everything that can be checked before the data connection opens — permission,
//! path, file type, REST support — so most refusals come before the `150`. The transfer itself
//! runs as a future next to the control loop, owning what it needs.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use futures_util::FutureExt as _;

use super::{Handled, storage_reply};
use crate::auth::Permission;
use crate::protocol::command::TransferType;
use crate::protocol::{Reply, ReplyCode, VirtualPath};
use crate::server::data::{DataError, DataSetup, DataStream};
use crate::server::session::{Completed, Failed, Flow, Session, Transfer, TransferInfo};
use crate::server::tls::Direction;
use crate::server::transfer;
use crate::storage::{Download, DownloadSource, StorageError, WriteMode};

/// STOR or APPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Store,
    Append,
}

/// How many numbered alternatives STOU tries before giving up.
const STOU_ATTEMPTS: u32 = 100;

impl Session {
    pub(super) async fn retr(&mut self, arg: &[u8]) -> Handled {
        let storage = self.storage_with(Permission::Retrieve)?;
        let path = self.resolve(arg)?;
        self.require_data_setup()?;
        let offset = std::mem::take(&mut self.restart_offset);
        if offset > 0 && !storage.capabilities().read_at_offset {
            return Err(Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                "This storage cannot resume downloads; send RETR without REST.",
            ));
        }
        let not_a_file = || {
            Reply::new(
                ReplyCode::FILE_UNAVAILABLE,
                format!("{path}: not a regular file."),
            )
        };
        let Download { metadata, source } = match storage.download(&path, offset).await {
            Ok(download) => download,
            Err(StorageError::IsADirectory) => return Err(not_a_file()),
            Err(error) => return Err(storage_reply(&path, &error)),
        };
        if !metadata.is_file() {
            return Err(not_a_file());
        }
        if offset > metadata.size {
            return Err(Reply::new(
                ReplyCode::INVALID_REST_PARAMETER,
                format!(
                    "Restart offset {offset} is beyond the end of {path} ({} bytes); send REST 0 or a smaller offset.",
                    metadata.size
                ),
            ));
        }
        let ascii = self.transfer_type == TransferType::Ascii;
        let remaining = metadata.size - offset;
        let preliminary = Reply::new(
            ReplyCode::FILE_STATUS_OK,
            format!(
                "Opening {} mode data connection for {path} ({remaining} bytes).",
                self.mode_name()
            ),
        );
        let stall = self.server.config.timeouts.data_stall;
        let pacer = self.pacer(Direction::Download);
        let transfer = self.start_transfer(
            "RETR",
            Direction::Download,
            path,
            move |mut stream, progress| {
                async move {
                    let sent = match (source, &mut stream) {
                        // Binary downloads of local files go out with sendfile (plain connections
                        // only: TLS must encrypt in user space).
                        #[cfg(target_os = "linux")]
                        (DownloadSource::Local(file), DataStream::Plain(tcp)) if !ascii => {
                            transfer::send_file(
                                file, offset, remaining, tcp, stall, &progress, pacer,
                            )
                            .await?
                        }
                        (DownloadSource::Local(file), _) => {
                            let reader = tokio::fs::File::from_std(file);
                            transfer::send(
                                reader,
                                remaining,
                                &mut stream,
                                ascii,
                                stall,
                                &progress,
                                pacer,
                            )
                            .await?
                        }
                        (DownloadSource::Stream(reader), _) => {
                            transfer::send(
                                reader,
                                remaining,
                                &mut stream,
                                ascii,
                                stall,
                                &progress,
                                pacer,
                            )
                            .await?
                        }
                    };
                    stream.close().await;
                    Ok(Completed::Sent(sent))
                }
                .boxed()
            },
        );
        Ok(Flow::Transfer(preliminary, transfer))
    }

    pub(super) async fn stor(&mut self, arg: &[u8], kind: StoreKind) -> Handled {
        let permission = match kind {
            StoreKind::Store => Permission::Store,
            StoreKind::Append => Permission::Append,
        };
        let storage = self.storage_with(permission)?;
        let path = self.resolve(arg)?;
        self.require_data_setup()?;
        let offset = std::mem::take(&mut self.restart_offset);
        let capabilities = storage.capabilities();
        let mode = match (kind, offset) {
            (StoreKind::Store, 0) => WriteMode::Replace,
            (StoreKind::Store, offset) if capabilities.write_at_offset => WriteMode::At(offset),
            (StoreKind::Store, _) => {
                return Err(Reply::new(
                    ReplyCode::FILE_UNAVAILABLE,
                    "This storage cannot resume uploads; send STOR without REST.",
                ));
            }
            (StoreKind::Append, _) if capabilities.append => WriteMode::Append,
            (StoreKind::Append, _) => {
                return Err(Reply::new(
                    ReplyCode::NOT_IMPLEMENTED,
                    "This storage cannot append to files; upload the whole file with STOR.",
                ));
            }
        };
        let verb = match kind {
            StoreKind::Store => "STOR",
            StoreKind::Append => "APPE",
        };
        let upload = storage
            .write(&path, mode)
            .await
            .map_err(|e| storage_reply(&path, &e))?;
        let preliminary = Reply::new(
            ReplyCode::FILE_STATUS_OK,
            format!(
                "Opening {} mode data connection for {path}.",
                self.mode_name()
            ),
        );
        Ok(Flow::Transfer(
            preliminary,
            self.receive_into(verb, path, upload),
        ))
    }

    /// STOU (RFC 959 §4.1.3, RFC 1123 §4.1.2.9): store under a name no file has yet, and say it
    /// in the `150` reply as `FILE: name`.
    pub(super) async fn stou(&mut self, suggested: Option<&[u8]>) -> Handled {
        let storage = self.storage_with(Permission::Store)?;
        self.require_data_setup()?;
        self.restart_offset = 0;
        let base = match suggested {
            Some(name) => self.resolve(name)?,
            None => self
                .cwd
                .join(&format!("ferry-{:08x}", rand::random::<u32>()))
                .map_err(|e| {
                    Reply::new(
                        ReplyCode::LOCAL_ERROR,
                        format!("Could not make a file name: {e}."),
                    )
                })?,
        };
        let mut attempt = 0;
        let (path, upload) = loop {
            let candidate = if attempt == 0 {
                base.clone()
            } else {
                VirtualPath::parse(&format!("{base}.{attempt}"))
                    .expect("a normalised path stays valid")
            };
            match storage.write(&candidate, WriteMode::CreateNew).await {
                Ok(upload) => break (candidate, upload),
                Err(StorageError::AlreadyExists) if attempt < STOU_ATTEMPTS => attempt += 1,
                Err(error) => return Err(storage_reply(&candidate, &error)),
            }
        };
        let name = path.file_name().unwrap_or_default().to_owned();
        let preliminary = Reply::new(ReplyCode::FILE_STATUS_OK, format!("FILE: {name}"));
        Ok(Flow::Transfer(
            preliminary,
            self.receive_into("STOU", path, upload),
        ))
    }

    pub(super) fn rest(&mut self, offset: u64) -> Handled {
        let capabilities = self
            .user()
            .map(|user| user.storage.capabilities())
            .ok_or_else(|| Reply::new(ReplyCode::NOT_LOGGED_IN, "Please log in first."))?;
        if !capabilities.read_at_offset && !capabilities.write_at_offset {
            return Err(Reply::new(
                ReplyCode::NOT_IMPLEMENTED,
                "This storage cannot resume transfers.",
            ));
        }
        self.restart_offset = offset;
        Ok(Reply::new(
            ReplyCode::FILE_ACTION_PENDING,
            format!("Restarting at {offset}. Send RETR or STOR to resume."),
        )
        .into())
    }

    /// ABOR with no transfer running: close a prepared data connection, if any, and answer `226`
    /// (RFC 959 §4.1.3: the service already completed). Clients that send ABOR right after a
    /// transfer ended read the transfer's `226` and then expect this one; a transfer that fails
    /// because the client dropped its data connection while sending ABOR ends with `426` just
    /// before, so the client sees the `426` + `226` pair it waits for (suppaftp rejects `225`).
    pub(super) fn abor_idle(&mut self) -> Handled {
        let had_data = !self.data.is_none();
        self.data = DataSetup::None;
        self.restart_offset = 0;
        let text = if had_data {
            "No transfer to abort; the prepared data connection is closed."
        } else {
            "No transfer to abort."
        };
        Ok(Reply::new(ReplyCode::CLOSING_DATA, text).into())
    }

    fn receive_into(
        &mut self,
        verb: &'static str,
        path: VirtualPath,
        mut upload: Box<dyn crate::storage::Upload>,
    ) -> Transfer {
        let ascii = self.transfer_type == TransferType::Ascii;
        let stall = self.server.config.timeouts.data_stall;
        let pacer = self.pacer(Direction::Upload);
        self.start_transfer(
            verb,
            Direction::Upload,
            path,
            move |mut stream, progress| {
                async move {
                    let bytes =
                        transfer::receive(&mut stream, &mut upload, ascii, stall, &progress, pacer)
                            .await?;
                    let closed_cleanly = stream.received_close_notify();
                    stream.close().await;
                    Ok(Completed::Received {
                        upload,
                        bytes,
                        closed_cleanly,
                    })
                }
                .boxed()
            },
        )
    }

    /// A transfer needs a prepared data connection and, where policy asks for it, PROT P.
    pub(crate) fn require_data_setup(&self) -> Result<(), Reply> {
        if self.data.is_none() {
            return Err(Reply::new(
                ReplyCode::CANT_OPEN_DATA,
                "Use PASV, EPSV, PORT or EPRT first to set up the data connection.",
            ));
        }
        if !self.data_is_protected() && self.tls_requirement().data() {
            return Err(Reply::new(
                ReplyCode::DATA_PROTECTION_REQUIRED,
                "Data connections must be encrypted here: send PBSZ 0 and PROT P first.",
            ));
        }
        Ok(())
    }

    fn mode_name(&self) -> &'static str {
        match self.transfer_type {
            TransferType::Ascii => "ASCII",
            TransferType::Binary => "BINARY",
        }
    }

    /// Wraps a transfer body: opens the data connection first (the setup is used up), then runs
    /// `body` on it.
    pub(crate) fn start_transfer(
        &mut self,
        verb: &'static str,
        direction: Direction,
        path: VirtualPath,
        body: impl FnOnce(
            DataStream,
            Arc<AtomicU64>,
        )
            -> futures_util::future::BoxFuture<'static, Result<Completed, Failed>>
        + Send
        + 'static,
    ) -> Transfer {
        let setup = std::mem::take(&mut self.data);
        let params = self.data_params(direction);
        let progress = Arc::new(AtomicU64::new(0));
        let body_progress = Arc::clone(&progress);
        let future = async move {
            let stream = setup.open(params).await.map_err(data_failure)?;
            body(stream, body_progress).await
        }
        .boxed();
        Transfer {
            future,
            info: TransferInfo {
                progress,
                verb,
                path,
                started: Instant::now(),
            },
        }
    }
}

fn data_failure(error: DataError) -> Failed {
    let code = match error {
        // RFC 4217 §10: a failed TLS negotiation on the data connection.
        DataError::Tls(_) | DataError::NotResumed | DataError::ForeignSession(_) => {
            ReplyCode::NETWORK_PROTOCOL_NOT_SUPPORTED
        }
        _ => ReplyCode::CANT_OPEN_DATA,
    };
    Failed {
        reply: Reply::new(code, format!("Can't open data connection: {error}.")),
        reason: error.to_string(),
    }
}
