//! `ferry serve`: the FTP server's composition root — settings, accounts, storages, TLS,
//! listeners, signals.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tracing::{info, warn};

use crate::auth::SqliteAuthenticator;
use crate::auth::store::AccountStore;
use crate::config::{FileConfig, FsSettings, ServeArgs, ServeSettings, StorageSpec};
use crate::server::admin;
use crate::server::events::EventHooks;
use crate::server::tls::HostCertificate;
use crate::server::virtual_hosts::VirtualHost;
use crate::server::xferlog::XferLog;
use crate::server::{self, Server, Shutdown, TlsContext};
use crate::storage::StorageProvider;
use crate::storage::fs::FsProvider;
use crate::systemd;

use super::accounts::open_store;
use super::db_path;

/// Opens one storage of the server: local disk (the root created if missing, and said so) or
/// object storage.
async fn open_storage(spec: &StorageSpec) -> anyhow::Result<Arc<dyn StorageProvider>> {
    match spec {
        StorageSpec::Fs(FsSettings { root }) => {
            if !root.exists() {
                std::fs::create_dir_all(root).with_context(|| {
                    format!(
                        "cannot create the FTP root directory {}; create it (mkdir -p) as the \
                         user ferry runs as, or point --root at another directory",
                        root.display()
                    )
                })?;
                info!(
                    root = %root.display(),
                    "created the FTP root directory (it did not exist); homes are made under it"
                );
            }
            let root = std::fs::canonicalize(root)
                .with_context(|| format!("cannot open the FTP root {}", root.display()))?;
            Ok(Arc::new(FsProvider::new(root)))
        }
        #[cfg(feature = "s3")]
        StorageSpec::S3(settings) => Ok(Arc::new(
            crate::storage::s3::S3Provider::connect(settings).await?,
        )),
    }
}

/// One line for the start-up log: where files go.
fn describe_storage(spec: &StorageSpec) -> String {
    match spec {
        StorageSpec::Fs(FsSettings { root }) => format!("local disk under {}", root.display()),
        #[cfg(feature = "s3")]
        StorageSpec::S3(settings) => format!(
            "s3://{}/{} at {}",
            settings.bucket,
            settings.prefix.as_deref().unwrap_or(""),
            settings.endpoint.as_deref().unwrap_or("AWS")
        ),
    }
}

pub(super) async fn serve(db_flag: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let settings = ServeSettings::resolve(&args, &file)?;
    let db = db_path(db_flag, Some(&file));
    let store = if settings.accounts_read_only {
        AccountStore::open_read_only(&db).with_context(|| {
            format!(
                "cannot open the accounts database {} read-only; make it with \
                 `ferry --db ADMIN.db accounts snapshot {}`",
                db.display(),
                db.display()
            )
        })?
    } else {
        let new = !db.exists();
        let store = open_store(&db)?;
        if new {
            info!(db = %db.display(), "created a new accounts database (it did not exist)");
        }
        store
    };
    let store = Arc::new(store);
    let storage = open_storage(&settings.storage).await?;
    let mut named_storage = BTreeMap::new();
    for (name, spec) in &settings.named_storage {
        let provider = open_storage(spec)
            .await
            .with_context(|| format!("cannot open the storage [storage.{name}]"))?;
        named_storage.insert(name.clone(), provider);
    }
    let host_certificates: Vec<HostCertificate> = settings
        .virtual_hosts
        .iter()
        .filter_map(|host| {
            let (certfile, keyfile) = host.certificate.clone()?;
            let names = std::iter::once(&host.name).chain(&host.aliases).cloned();
            Some(HostCertificate {
                names: names.collect(),
                certfile,
                keyfile,
            })
        })
        .collect();
    let tls = match &settings.tls {
        Some(tls_settings) => Some(Arc::new(
            TlsContext::new(tls_settings.clone())?.with_host_certificates(host_certificates)?,
        )),
        None if !host_certificates.is_empty() => bail!(
            "[hosts.\"{}\"] has a certificate, but the server has none: give --certfile and \
             --keyfile (or [serve.tls]) for clients that name no host",
            host_certificates[0].names[0]
        ),
        None => None,
    };
    let listener = server::bind_listener(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local = listener.local_addr()?;
    let implicit = match settings.implicit_listen {
        Some(addr) => Some(
            server::bind_listener(addr)
                .with_context(|| format!("cannot listen for implicit FTPS on {addr}"))?,
        ),
        None => None,
    };

    if store.list_users()?.is_empty() {
        warn!(
            "no FTP accounts yet; add one with: printf '%s' \"$PASSWORD\" | ferry --db {} user add NAME --password-stdin",
            db.display()
        );
    }
    let mut config = settings.server.clone();
    config.tls = tls.clone();
    for host in &settings.virtual_hosts {
        let storage = open_storage(&host.storage)
            .await
            .with_context(|| format!("cannot open the storage of [hosts.\"{}\"]", host.name))?;
        config.virtual_hosts.insert(
            VirtualHost {
                name: host.name.clone(),
                storage,
                banner: host.banner.clone(),
            },
            &host.aliases,
        );
    }
    if let Some(path) = &settings.xferlog {
        let log = XferLog::open(path)
            .with_context(|| format!("cannot open the xferlog {}", path.display()))?;
        tokio::spawn(reopen_xferlog_on_sighup(Arc::clone(&log)));
        config.xferlog = Some(log);
    }
    if !settings.events.is_empty() {
        for hook in &settings.events {
            info!(hook = hook.name, "event hook");
        }
        config.events = Some(EventHooks::start(settings.events.clone()));
    }
    let server = Server::with_named_storage(
        config,
        Arc::new(SqliteAuthenticator::with_hash_cost(
            Arc::clone(&store),
            settings.password_cost,
        )),
        storage,
        named_storage,
    );
    info!(
        listen = %local,
        implicit_tls = %implicit
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "off".to_owned(), |addr| addr.to_string()),
        tls_required = settings.tls.as_ref().map_or("none", |t| t.required.as_str()),
        storage = %describe_storage(&settings.storage),
        named_storage = %settings
            .named_storage
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(","),
        db = %db.display(),
        accounts_read_only = settings.accounts_read_only,
        passive_ports = %settings.server.passive_ports,
        masquerade = %settings.server.masquerade,
        proxy_protocol_from = ?settings.server.proxy_protocol_from,
        upload_rate = %rate_text(settings.server.upload_rate),
        download_rate = %rate_text(settings.server.download_rate),
        "ferry FTP server listening"
    );
    let shutdown = Shutdown::default();
    tokio::spawn(watch_signals(shutdown.clone()));
    if let Some(tls) = tls {
        tokio::spawn(reload_certificate_on_sighup(tls));
    }
    if let Some(addr) = settings.metrics_listen {
        let http = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for /metrics on {addr}"))?;
        info!(listen = %http.local_addr()?, "serving /metrics and /healthz");
        tokio::spawn(server::serve_http(
            http,
            Arc::clone(&server),
            shutdown.clone(),
        ));
    }
    // A node on a shipped read-only copy writes nothing beside it (the directory is the
    // admin's to ship into): its admin socket is where --admin-socket says, or nowhere.
    let admin_path = match (&args.admin_socket, settings.accounts_read_only) {
        (Some(path), _) => Some(path.clone()),
        (None, false) => Some(admin::default_socket_path(&db)),
        (None, true) => None,
    };
    match admin_path
        .as_deref()
        .map(|path| (path, admin::AdminSocket::bind(path)))
    {
        None => info!(
            "no admin socket beside a read-only accounts copy; give --admin-socket PATH for \
             `ferry ban`"
        ),
        Some((_, Ok(socket))) => {
            info!(path = %socket.path().display(), "admin socket for `ferry ban` (this user only)");
            tokio::spawn(admin::serve_admin(
                socket,
                Arc::clone(&server),
                shutdown.clone(),
            ));
        }
        // The server runs on without it: bans then end only with their time or a restart.
        Some((path, Err(error))) => warn!(
            path = %path.display(),
            %error,
            "no admin socket: `ferry ban` cannot reach this server"
        ),
    }
    systemd::ready(&format!("accepting FTP connections on {local}"));
    tokio::spawn(systemd::keep_watchdog_fed());
    server::serve(listener, implicit, server, shutdown).await;
    info!("stopped");
    Ok(())
}

/// A bandwidth limit as logged: `RATE:BURST` in bytes a second, or `unlimited`.
fn rate_text(limit: Option<crate::server::pace::RateLimit>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |limit| limit.to_string())
}

/// SIGHUP: open the xferlog's path again, as logrotate expects after moving the file.
async fn reopen_xferlog_on_sighup(log: Arc<XferLog>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler; the xferlog is not reopened after rotation");
        return;
    };
    while hangup.recv().await.is_some() {
        log.reopen().await;
    }
}

/// SIGHUP: load the certificate again; new connections use it, running sessions keep theirs.
async fn reload_certificate_on_sighup(tls: Arc<TlsContext>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler; certificate reloads need a restart");
        return;
    };
    while hangup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => info!("certificate reloaded"),
            Err(error) => {
                warn!(%error, "certificate reload failed; the previous certificate stays in use")
            }
        }
    }
}

/// SIGTERM or SIGINT: stop accepting and let transfers finish; a second one stops at once.
/// Completes on SIGTERM or SIGINT (never, if the handlers cannot be installed).
pub(super) async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the service with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    info!("stop requested");
}

async fn watch_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the server with SIGKILL");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    info!("shutdown requested; send the signal again to stop at once");
    systemd::stopping();
    shutdown.graceful.cancel();
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    shutdown.immediate.cancel();
}
