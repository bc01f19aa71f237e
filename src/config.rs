//! Server configuration: a TOML file, `FERRY_*` environment variables and command-line flags,
//! merged into one validated [`ServeSettings`] (flags win over the environment, which wins over
//! the file, which wins over the built-in defaults).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::auth::TlsRequirement;
use crate::auth::password::HashCost;
use crate::server::events::{EventKind, HookAction, HookFilter, HookSpec};
use crate::server::pace::RateLimit;
use crate::server::proxy;
use crate::server::{Masquerade, PortRanges, ServerConfig, Timeouts, TlsSettings};

/// `ferry serve` flags; each can also come from the environment or the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address of the control listener: 0.0.0.0:21, [::]:21, localhost:2121 (a name listens on
    /// the first address it resolves to) [default: 127.0.0.1:2121].
    #[arg(value_name = "HOST:PORT", env = "FERRY_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Directory under which user homes live [default: ./ftp-root].
    #[arg(long, value_name = "DIR", env = "FERRY_ROOT")]
    pub root: Option<PathBuf>,
    /// Passive ports, as in 30000-30100 or 12345,30000-50000 [default: any free port].
    #[arg(long, value_name = "RANGES", env = "FERRY_PASSIVE_PORTS")]
    pub passive_ports: Option<String>,
    /// Address (or host name) announced in PASV replies, for a server behind NAT [default: the
    /// control connection's local address].
    #[arg(long, value_name = "ADDR", env = "FERRY_MASQUERADE_ADDRESS")]
    pub masquerade_address: Option<String>,
    /// Per-client-network PASV addresses, as in 10.0.0.0/8=10.0.0.5,0.0.0.0/0=203.0.113.10
    /// [default: none].
    #[arg(long, value_name = "CIDR=ADDR,...", env = "FERRY_MASQUERADE_MAP")]
    pub masquerade_map: Option<String>,
    /// Load-balancer networks (CIDRs or addresses, comma-separated) whose connections must open
    /// with a PROXY protocol v1/v2 header naming the real client [default: none, PROXY off].
    #[arg(long, value_name = "CIDR,...", env = "FERRY_PROXY_PROTOCOL_FROM")]
    pub proxy_protocol_from: Option<String>,
    /// Refuse PORT and EPRT (active mode) [default: active mode on, to the client's own address
    /// only].
    #[arg(long, env = "FERRY_NO_ACTIVE_MODE")]
    pub no_active_mode: bool,
    /// Seconds without a command before an idle session is closed [default: 300].
    #[arg(long, value_name = "SECS", env = "FERRY_TIMEOUT")]
    pub timeout: Option<u64>,
    /// Maximum number of simultaneous control connections (0: unlimited) [default: 1000].
    #[arg(long, value_name = "N", env = "FERRY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Maximum simultaneous control connections from one address (0: unlimited) [default: 50].
    #[arg(long, value_name = "N", env = "FERRY_MAX_PER_IP")]
    pub max_per_ip: Option<usize>,
    /// PEM certificate chain for FTPS (AUTH TLS); needs --keyfile [default: none, plain FTP].
    #[arg(long, value_name = "PEM", env = "FERRY_CERTFILE", requires = "keyfile")]
    pub certfile: Option<PathBuf>,
    /// PEM private key (RSA, ECDSA or Ed25519) of --certfile.
    #[arg(long, value_name = "PEM", env = "FERRY_KEYFILE", requires = "certfile")]
    pub keyfile: Option<PathBuf>,
    /// Also listen for implicit FTPS (TLS from the first byte) on this address [default: off].
    #[arg(long, value_name = "HOST:PORT", env = "FERRY_IMPLICIT_TLS", value_parser = parse_listen)]
    pub implicit_tls: Option<SocketAddr>,
    /// What must be encrypted: none, control, data or all [default: all when a certificate is
    /// given, else none].
    #[arg(long, value_name = "WHAT", env = "FERRY_TLS_REQUIRED")]
    pub tls_required: Option<TlsRequirement>,
    /// Refuse TLS data connections that do not resume a TLS session of their control connection
    /// (or of another one logged in as the same user from the same address).
    #[arg(long, env = "FERRY_REQUIRE_TLS_RESUMPTION")]
    pub require_tls_resumption: bool,
    /// Allow CCC (clear command channel after login).
    #[arg(long, env = "FERRY_ALLOW_CCC")]
    pub allow_ccc: bool,
    /// Serve GET /metrics (Prometheus) and GET /healthz over HTTP on this address [default: off].
    #[arg(long, value_name = "HOST:PORT", env = "FERRY_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// Working memory of each argon2id password hash, in KiB [default: 19456].
    #[arg(long, value_name = "KIB", env = "FERRY_PASSWORD_HASH_MEMORY_KIB")]
    pub password_hash_memory_kib: Option<u32>,
    /// Passes of each argon2id password hash [default: 2].
    #[arg(long, value_name = "N", env = "FERRY_PASSWORD_HASH_PASSES")]
    pub password_hash_passes: Option<u32>,
    /// Where files live for accounts that name no storage: a `[storage.NAME]` of the config
    /// file, or s3://BUCKET[/PREFIX] (endpoint, region and keys from the AWS_* environment)
    /// [default: local disk under --root].
    #[arg(long, value_name = "NAME|URL", env = "FERRY_STORAGE")]
    pub storage: Option<String>,
    /// Open the accounts database read-only, as a copy made by `ferry accounts snapshot` and
    /// shipped to each of several nodes; a newer copy is read at the next login.
    #[arg(long, env = "FERRY_ACCOUNTS_READ_ONLY")]
    pub accounts_read_only: bool,
    /// A TOML configuration file (see contrib/ferry.toml) [default: none].
    #[arg(long, value_name = "FILE", env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also log every file transfer to FILE in wu-ftpd's xferlog format (reopened on SIGHUP)
    /// [default: off].
    #[arg(long, value_name = "FILE", env = "FERRY_XFERLOG")]
    pub xferlog: Option<PathBuf>,
    /// Pace of each upload, in bytes a second (512K, 10M; K = 1024), with an optional burst
    /// (10M:1M; a tenth of a second's worth when left out) [default: unlimited].
    #[arg(long, value_name = "RATE[:BURST]", env = "FERRY_UPLOAD_RATE")]
    pub upload_rate: Option<RateLimit>,
    /// Pace of each download, as --upload-rate [default: unlimited].
    #[arg(long, value_name = "RATE[:BURST]", env = "FERRY_DOWNLOAD_RATE")]
    pub download_rate: Option<RateLimit>,
    /// The Unix socket through which `ferry ban` reaches this running server (only its own
    /// user may use it) [default: the database's path + .admin.sock; none with
    /// --accounts-read-only].
    #[arg(long, value_name = "PATH", env = "FERRY_ADMIN_SOCKET")]
    pub admin_socket: Option<PathBuf>,
}

/// A listening address as the command line takes it: an IP address and port, or a host name and
/// port (the first address the name resolves to).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let wanted = "give HOST:PORT, such as 127.0.0.1:2121, 0.0.0.0:21, [::1]:2121 or localhost:2121";
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("no port in {text:?}: {wanted}"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{text:?} is not HOST:PORT: {wanted}"));
    }
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{host:?} resolves to no address: {wanted}")),
        Err(error) => Err(format!("cannot resolve {host:?} ({error}): {wanted}")),
    }
}

/// The `[serve]` table of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServe {
    pub listen: Option<SocketAddr>,
    pub root: Option<PathBuf>,
    pub passive_ports: Option<String>,
    pub masquerade_address: Option<String>,
    pub masquerade_map: Option<String>,
    /// A list of CIDRs, or one comma-separated string as on the command line.
    pub proxy_protocol_from: Option<NetworkList>,
    pub active_mode: Option<bool>,
    pub banner: Option<String>,
    pub max_connections: Option<usize>,
    pub max_per_ip: Option<usize>,
    /// Home of the anonymous user; absent means no anonymous logins.
    pub anonymous_home: Option<String>,
    /// HTTP address for /metrics and /healthz.
    pub metrics_listen: Option<SocketAddr>,
    pub password_hash_memory_kib: Option<u32>,
    pub password_hash_passes: Option<u32>,
    /// The storage of accounts that name none: a `[storage.NAME]` or an `s3://` URL.
    pub storage: Option<String>,
    pub accounts_read_only: Option<bool>,
    /// The transfer log in xferlog format.
    pub xferlog: Option<PathBuf>,
    /// The pace of each upload and download (`"10M"`, `"10M:1M"`).
    pub upload_rate: Option<String>,
    pub download_rate: Option<String>,
    pub timeouts: Option<FileTimeouts>,
    pub tls: Option<FileTls>,
}

/// A rate from the flags (already parsed), else from the file's `[serve] NAME`.
fn rate(
    flag: Option<RateLimit>,
    file: Option<&str>,
    name: &str,
) -> Result<Option<RateLimit>, ConfigError> {
    match (flag, file) {
        (Some(limit), _) => Ok(Some(limit)),
        (None, Some(text)) => text
            .parse()
            .map(Some)
            .map_err(|error| ConfigError::Invalid(format!("[serve] {name}: {error}"))),
        (None, None) => Ok(None),
    }
}

/// Networks in the configuration file: `["10.0.0.0/8", "192.0.2.10"]` or `"10.0.0.0/8,192.0.2.10"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NetworkList {
    Many(Vec<String>),
    One(String),
}

impl NetworkList {
    fn joined(&self) -> String {
        match self {
            Self::Many(entries) => entries.join(","),
            Self::One(text) => text.clone(),
        }
    }
}

/// `[serve.tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub implicit_listen: Option<SocketAddr>,
    pub required: Option<TlsRequirement>,
    pub require_resumption: Option<bool>,
    pub allow_ccc: Option<bool>,
}

/// `[serve.timeouts]`, in seconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTimeouts {
    pub idle: Option<u64>,
    pub login: Option<u64>,
    pub data_accept: Option<u64>,
    pub data_stall: Option<u64>,
    pub shutdown_grace: Option<u64>,
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The accounts database.
    pub db: Option<PathBuf>,
    #[serde(default)]
    pub serve: FileServe,
    /// Named storages (`[storage.NAME]`), picked by `[serve] storage`, `--storage` or an
    /// account's or group's `--storage NAME`.
    #[serde(default)]
    pub storage: BTreeMap<String, StorageSpec>,
    /// Virtual hosts (`[hosts."NAME"]`), chosen by clients with HOST (RFC 7151).
    #[serde(default)]
    pub hosts: BTreeMap<String, FileHost>,
    /// Event hooks (`[[events]]`).
    #[serde(default)]
    pub events: Vec<FileEventHook>,
}

/// An `[[events]]` table: which events go to which command or URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEventHook {
    /// Event kinds (`upload`, `delete`, ...); absent: every kind.
    #[serde(default)]
    pub on: Vec<String>,
    /// Account names; absent: every account.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Globs over paths as clients see them (`/www/**/*.php`); absent: every event.
    #[serde(default)]
    pub paths: Vec<String>,
    /// A program and its arguments, run without a shell.
    pub command: Option<Vec<String>>,
    /// Or an http(s) URL that receives the event as signed JSON.
    pub url: Option<String>,
    /// A file holding the URL hook's HMAC secret.
    pub secret_file: Option<PathBuf>,
    /// Seconds one delivery may take.
    pub timeout: Option<u64>,
    /// Deliveries after a failed one, before the event is logged as a dead letter.
    pub retries: Option<u32>,
    /// Events held for a slow hook before new ones are dropped.
    pub queue: Option<usize>,
}

impl FileEventHook {
    /// Checks the table and reads its secret; `number` counts from 1 in the file.
    fn resolve(&self, number: usize) -> Result<HookSpec, ConfigError> {
        let invalid = |what: String| ConfigError::Invalid(format!("[[events]] #{number}: {what}"));
        let kinds = self
            .on
            .iter()
            .map(|kind| kind.parse::<EventKind>())
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
        let paths = if self.paths.is_empty() {
            None
        } else {
            let mut globs = globset::GlobSetBuilder::new();
            for pattern in &self.paths {
                let glob = globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|error| invalid(format!("paths: {error}")))?;
                globs.add(glob);
            }
            Some(
                globs
                    .build()
                    .map_err(|error| invalid(format!("paths: {error}")))?,
            )
        };
        let (name, action) = match (&self.command, &self.url) {
            (Some(argv), None) => {
                let Some(program) = argv.first().filter(|program| !program.is_empty()) else {
                    return Err(invalid(
                        "command is empty: give the program and its arguments, as in \
                         command = [\"/usr/local/bin/on-upload\"]"
                            .to_owned(),
                    ));
                };
                if self.secret_file.is_some() {
                    return Err(invalid(
                        "secret_file is for url hooks; a command gets the event in its environment"
                            .to_owned(),
                    ));
                }
                (program.clone(), HookAction::Command(argv.clone()))
            }
            (None, Some(url)) => {
                let url = reqwest::Url::parse(url)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
                    .ok_or_else(|| invalid(format!("url {url:?} is not an http(s) URL")))?;
                let Some(path) = &self.secret_file else {
                    return Err(invalid(
                        "a url hook needs secret_file: the events it receives are signed with \
                         that secret (X-Ferry-Signature-256)"
                            .to_owned(),
                    ));
                };
                let secret = std::fs::read_to_string(path).map_err(|error| {
                    invalid(format!(
                        "cannot read secret_file {}: {error}",
                        path.display()
                    ))
                })?;
                let secret = secret.trim();
                if secret.is_empty() {
                    return Err(invalid(format!("secret_file {} is empty", path.display())));
                }
                let name = url.host_str().unwrap_or_default().to_owned();
                let secret = Some(std::sync::Arc::from(secret.as_bytes()));
                (name, HookAction::Post { url, secret })
            }
            _ => {
                return Err(invalid(
                    "give either command = [...] or url = \"...\" (one of them)".to_owned(),
                ));
            }
        };
        let timeout = self
            .timeout
            .map_or(HookSpec::DEFAULT_TIMEOUT, Duration::from_secs);
        if timeout.is_zero() {
            return Err(invalid("timeout must be at least 1 second".to_owned()));
        }
        Ok(HookSpec {
            name,
            filter: HookFilter {
                kinds,
                accounts: self.accounts.iter().cloned().collect(),
                paths,
            },
            action,
            timeout,
            retries: self.retries.unwrap_or(HookSpec::DEFAULT_RETRIES),
            queue: self.queue.unwrap_or(HookSpec::DEFAULT_QUEUE).max(1),
        })
    }
}

/// A `[hosts."www.example.com"]` table: one site on the shared address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHost {
    /// The directory under which the homes of this host's accounts live (local disk).
    pub root: Option<PathBuf>,
    /// Or a `[storage.NAME]` table for them (instead of `root`).
    pub storage: Option<String>,
    /// Other names clients may send with HOST for the same site.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The text of the `220` reply to HOST.
    pub banner: Option<String>,
    /// A certificate for this name, sent to TLS clients that ask for it (SNI); needs `keyfile`.
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
}

/// A virtual host, checked and ready to open.
#[derive(Debug, Clone)]
pub struct VirtualHostSettings {
    /// Lower case.
    pub name: String,
    pub aliases: Vec<String>,
    pub storage: StorageSpec,
    pub banner: Option<String>,
    /// Certificate and key for SNI.
    pub certificate: Option<(PathBuf, PathBuf)>,
}

/// A `[storage.NAME]` table: where the files of the accounts that use it live.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StorageSpec {
    /// Local disk: `backend = "fs"`, `root = "/srv/ftp"`.
    Fs(FsSettings),
    /// A bucket of S3 or of an S3-compatible store: `backend = "s3"`, `bucket = "ftp"`, ...
    #[cfg(feature = "s3")]
    S3(crate::storage::s3::S3Settings),
}

/// `backend = "fs"`: homes are directories under `root`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsSettings {
    pub root: PathBuf,
}

impl StorageSpec {
    /// `--storage` / `[serve] storage`: a URL, else the name of a `[storage.NAME]` table.
    fn resolve(text: &str, named: &BTreeMap<String, StorageSpec>) -> Result<Self, ConfigError> {
        if text.contains("://") {
            return Self::from_url(text);
        }
        named.get(text).cloned().ok_or_else(|| {
            ConfigError::Invalid(format!(
                "no storage named {text:?}: add a [storage.{text}] table to the config file, \
                 or give an s3://BUCKET/PREFIX URL"
            ))
        })
    }

    /// `s3://BUCKET[/PREFIX]`, with the endpoint and region from `AWS_ENDPOINT_URL` and
    /// `AWS_REGION` (as the AWS tools read them) and the keys from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`. A custom endpoint is addressed path-style, as self-hosted stores
    /// expect, and may be plain `http://`.
    fn from_url(text: &str) -> Result<Self, ConfigError> {
        Self::from_url_with_env(text, |name| std::env::var(name).ok())
    }

    fn from_url_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(ConfigError::Invalid(format!(
                "unsupported storage URL {text:?}: give s3://BUCKET/PREFIX, or the name of a \
                 [storage.NAME] table"
            )));
        };
        #[cfg(feature = "s3")]
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "the storage URL {text:?} names no bucket: give s3://BUCKET/PREFIX"
                )));
            }
            let prefix = prefix.trim_matches('/');
            let endpoint = env("AWS_ENDPOINT_URL_S3")
                .or_else(|| env("AWS_ENDPOINT_URL"))
                .filter(|e| !e.is_empty());
            Ok(Self::S3(crate::storage::s3::S3Settings {
                bucket: bucket.to_owned(),
                prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
                region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
                path_style: endpoint.is_some(),
                allow_http: endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
                endpoint,
                ..Default::default()
            }))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (rest, env);
            Err(ConfigError::Invalid(format!(
                "{text:?} needs object storage, and this ferry was built without the s3 feature"
            )))
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// Everything `ferry serve` needs, merged and validated.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub root: PathBuf,
    pub server: ServerConfig,
    /// FTPS settings; the certificate is loaded when the server starts.
    pub tls: Option<TlsSettings>,
    /// The implicit FTPS listener, if any.
    pub implicit_listen: Option<SocketAddr>,
    /// The HTTP listener for /metrics and /healthz, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// The cost of password hashes (validated).
    pub password_cost: HashCost,
    /// Where the files of accounts that name no storage live.
    pub storage: StorageSpec,
    /// The `[storage.NAME]` tables, for accounts and groups that name one.
    pub named_storage: BTreeMap<String, StorageSpec>,
    /// The accounts database is a shipped copy, opened read-only.
    pub accounts_read_only: bool,
    /// Where the xferlog goes, if one is kept; opened when the server starts.
    pub xferlog: Option<PathBuf>,
    /// The `[hosts."NAME"]` tables.
    pub virtual_hosts: Vec<VirtualHostSettings>,
    /// The `[[events]]` tables; their workers start with the server.
    pub events: Vec<HookSpec>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:2121";
pub const DEFAULT_ROOT: &str = "ftp-root";
pub const DEFAULT_DB: &str = "ferry.db";

impl ServeSettings {
    /// Merges flags (and their environment variables) over the file over the defaults.
    pub fn resolve(args: &ServeArgs, file: &FileConfig) -> Result<Self, ConfigError> {
        let named_storage = file.storage.clone();
        let virtual_hosts = file
            .hosts
            .iter()
            .map(|(name, host)| VirtualHostSettings::resolve(name, host, &named_storage))
            .collect::<Result<Vec<_>, _>>()?;
        let events = file
            .events
            .iter()
            .enumerate()
            .map(|(index, hook)| hook.resolve(index + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let file = &file.serve;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"));
        let root = args
            .root
            .clone()
            .or_else(|| file.root.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        let passive_ports = match args.passive_ports.as_ref().or(file.passive_ports.as_ref()) {
            Some(text) => text.parse::<PortRanges>().map_err(ConfigError::Invalid)?,
            None => PortRanges::any(),
        };
        let default_address = args
            .masquerade_address
            .as_ref()
            .or(file.masquerade_address.as_ref())
            .map(|host| resolve_ipv4(host))
            .transpose()?;
        let map = match args
            .masquerade_map
            .as_ref()
            .or(file.masquerade_map.as_ref())
        {
            Some(text) => Masquerade::parse_map(text).map_err(ConfigError::Invalid)?,
            None => Vec::new(),
        };
        let proxy_protocol_from = match &args.proxy_protocol_from {
            Some(text) => proxy::parse_networks(text),
            None => file
                .proxy_protocol_from
                .as_ref()
                .map_or(Ok(Vec::new()), |list| proxy::parse_networks(&list.joined())),
        }
        .map_err(ConfigError::Invalid)?;
        let defaults = ServerConfig::default();
        let file_timeouts = file.timeouts.clone().unwrap_or_default();
        let secs =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
        let timeouts = Timeouts {
            idle: secs(args.timeout.or(file_timeouts.idle), defaults.timeouts.idle),
            login: secs(file_timeouts.login, defaults.timeouts.login),
            data_accept: secs(file_timeouts.data_accept, defaults.timeouts.data_accept),
            data_stall: secs(file_timeouts.data_stall, defaults.timeouts.data_stall),
        };
        if timeouts.idle.is_zero()
            || timeouts.data_accept.is_zero()
            || timeouts.data_stall.is_zero()
        {
            return Err(ConfigError::Invalid(
                "timeouts must be at least 1 second".to_owned(),
            ));
        }
        let server = ServerConfig {
            banner: file.banner.clone().unwrap_or(defaults.banner),
            passive_ports,
            masquerade: Masquerade::new(default_address, map),
            active_mode: !args.no_active_mode && file.active_mode.unwrap_or(true),
            timeouts,
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections),
            max_connections_per_ip: args
                .max_per_ip
                .or(file.max_per_ip)
                .unwrap_or(defaults.max_connections_per_ip),
            login_throttle: defaults.login_throttle,
            anonymous_home: file.anonymous_home.clone(),
            shutdown_grace: secs(file_timeouts.shutdown_grace, defaults.shutdown_grace),
            tls: None,
            proxy_protocol_from,
            xferlog: None,
            virtual_hosts: Default::default(),
            events: None,
            upload_rate: rate(args.upload_rate, file.upload_rate.as_deref(), "upload_rate")?,
            download_rate: rate(
                args.download_rate,
                file.download_rate.as_deref(),
                "download_rate",
            )?,
        };
        let file_tls = file.tls.clone().unwrap_or_default();
        let certfile = args.certfile.clone().or(file_tls.certfile);
        let keyfile = args.keyfile.clone().or(file_tls.keyfile);
        let implicit_listen = args.implicit_tls.or(file_tls.implicit_listen);
        let tls = match (certfile, keyfile) {
            (Some(certfile), Some(keyfile)) => Some(TlsSettings {
                certfile,
                keyfile,
                // Like django-ftpserver: a server with a certificate requires TLS by default.
                required: args
                    .tls_required
                    .or(file_tls.required)
                    .unwrap_or(TlsRequirement::All),
                require_resumption: args.require_tls_resumption
                    || file_tls.require_resumption.unwrap_or(false),
                allow_ccc: args.allow_ccc || file_tls.allow_ccc.unwrap_or(false),
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "FTPS needs both a certificate (certfile) and its private key (keyfile)"
                        .to_owned(),
                ));
            }
        };
        if tls.is_none() && implicit_listen.is_some() {
            return Err(ConfigError::Invalid(
                "implicit FTPS needs a certificate: give --certfile and --keyfile".to_owned(),
            ));
        }
        if tls.is_none() && args.tls_required.is_some_and(|r| r != TlsRequirement::None) {
            return Err(ConfigError::Invalid(
                "--tls-required needs a certificate: give --certfile and --keyfile".to_owned(),
            ));
        }
        let default_cost = HashCost::default();
        let password_cost = HashCost {
            memory_kib: args
                .password_hash_memory_kib
                .or(file.password_hash_memory_kib)
                .unwrap_or(default_cost.memory_kib),
            passes: args
                .password_hash_passes
                .or(file.password_hash_passes)
                .unwrap_or(default_cost.passes),
        };
        password_cost.params().map_err(ConfigError::Invalid)?;
        let storage = match args.storage.as_ref().or(file.storage.as_ref()) {
            Some(text) => StorageSpec::resolve(text, &named_storage)?,
            None => StorageSpec::Fs(FsSettings { root: root.clone() }),
        };
        Ok(Self {
            storage,
            named_storage,
            accounts_read_only: args.accounts_read_only || file.accounts_read_only.unwrap_or(false),
            listen,
            root,
            server,
            tls,
            implicit_listen,
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            password_cost,
            xferlog: args.xferlog.clone().or_else(|| file.xferlog.clone()),
            virtual_hosts,
            events,
        })
    }
}

impl VirtualHostSettings {
    fn resolve(
        name: &str,
        host: &FileHost,
        named: &BTreeMap<String, StorageSpec>,
    ) -> Result<Self, ConfigError> {
        let table = format!("[hosts.\"{name}\"]");
        let checked = |name: &str| {
            crate::protocol::command::host_name(name.as_bytes())
                .map(str::to_ascii_lowercase)
                .map_err(|_| {
                    ConfigError::Invalid(format!(
                        "{table}: {name:?} is not a host name such as ftp.example.com"
                    ))
                })
        };
        let storage = match (&host.root, &host.storage) {
            (Some(root), None) => StorageSpec::Fs(FsSettings { root: root.clone() }),
            (None, Some(storage)) => StorageSpec::resolve(storage, named)?,
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "{table} needs exactly one of root = \"/srv/sites/NAME\" or storage = \"NAME\""
                )));
            }
        };
        let certificate = match (&host.certfile, &host.keyfile) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "{table}: a certificate needs both certfile and keyfile"
                )));
            }
        };
        Ok(Self {
            name: checked(name)?,
            aliases: host
                .aliases
                .iter()
                .map(|alias| checked(alias))
                .collect::<Result<_, _>>()?,
            storage,
            banner: host.banner.clone(),
            certificate,
        })
    }
}

/// An IPv4 address, or a host name resolved once at start-up (PASV replies carry IPv4 only).
fn resolve_ipv4(host: &str) -> Result<Ipv4Addr, ConfigError> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let addresses = (host, 0).to_socket_addrs().map_err(|e| {
        ConfigError::Invalid(format!(
            "cannot resolve the masquerade address {host:?}: {e}"
        ))
    })?;
    addresses
        .filter_map(|addr| match addr.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "the masquerade address {host:?} has no IPv4 address; PASV replies need one"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = FileConfig::parse(
            r#"
            db = "accounts.db"
            [serve]
            listen = "0.0.0.0:21"
            root = "/srv/ftp"
            passive_ports = "30000-30009"
            masquerade_map = "10.0.0.0/8=10.0.0.5"
            max_per_ip = 3
            [serve.timeouts]
            idle = 60
            "#,
        )
        .unwrap();
        let args = ServeArgs {
            root: Some("/data".into()),
            masquerade_address: Some("203.0.113.10".into()),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args, &file).unwrap();
        assert_eq!(settings.listen, "0.0.0.0:21".parse().unwrap());
        assert_eq!(settings.root, PathBuf::from("/data"));
        assert_eq!(settings.server.passive_ports.len(), 10);
        assert_eq!(settings.server.max_connections_per_ip, 3);
        assert_eq!(settings.server.timeouts.idle, Duration::from_secs(60));
        let masquerade = &settings.server.masquerade;
        assert_eq!(
            masquerade.address_for("10.1.1.1".parse().unwrap()),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            masquerade.address_for("192.0.2.1".parse().unwrap()),
            Some("203.0.113.10".parse().unwrap())
        );
    }

    #[test]
    fn storage_is_local_disk_under_root_unless_a_named_one_is_picked() {
        let file = FileConfig::parse(
            r#"
            [serve]
            root = "/srv/ftp"
            [storage.archive]
            backend = "fs"
            root = "/mnt/archive"
            "#,
        )
        .unwrap();
        let settings = ServeSettings::resolve(&ServeArgs::default(), &file).unwrap();
        let on_disk_at = |spec: &StorageSpec, root: &str| matches!(spec, StorageSpec::Fs(fs) if fs.root == Path::new(root));
        assert!(on_disk_at(&settings.storage, "/srv/ftp"), "{settings:?}");
        assert!(!settings.accounts_read_only);
        assert!(on_disk_at(
            &settings.named_storage["archive"],
            "/mnt/archive"
        ));

        let args = ServeArgs {
            storage: Some("archive".into()),
            accounts_read_only: true,
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args, &file).unwrap();
        assert!(on_disk_at(&settings.storage, "/mnt/archive"));
        assert!(settings.accounts_read_only);

        let missing = ServeArgs {
            storage: Some("tape".into()),
            ..ServeArgs::default()
        };
        let err = ServeSettings::resolve(&missing, &file).unwrap_err();
        assert!(err.to_string().contains("[storage.tape]"), "{err}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_storage_comes_from_a_table_or_a_url_with_the_aws_environment() {
        let file = FileConfig::parse(
            r#"
            [storage.shared]
            backend = "s3"
            bucket = "ftp"
            prefix = "homes"
            endpoint = "http://127.0.0.1:3900"
            region = "garage"
            path_style = true
            allow_http = true
            rename_dir_limit = 10
            "#,
        )
        .unwrap();
        let StorageSpec::S3(shared) = &file.storage["shared"] else {
            panic!("{:?}", file.storage)
        };
        assert_eq!(shared.bucket, "ftp");
        assert_eq!(shared.rename_dir_limit, Some(10));

        let env = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:3900".to_owned()),
            "AWS_REGION" => Some("garage".to_owned()),
            _ => None,
        };
        let StorageSpec::S3(url) = StorageSpec::from_url_with_env("s3://ftp/homes/", env).unwrap()
        else {
            panic!("not s3")
        };
        assert_eq!(
            (
                url.bucket.as_str(),
                url.prefix.as_deref(),
                url.region.as_deref()
            ),
            ("ftp", Some("homes"), Some("garage"))
        );
        assert_eq!(url.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert!(url.path_style && url.allow_http);
        let StorageSpec::S3(aws) = StorageSpec::from_url_with_env("s3://bucket", |_| None).unwrap()
        else {
            panic!("not s3")
        };
        assert_eq!((aws.prefix, aws.endpoint), (None, None));
        assert!(!aws.path_style && !aws.allow_http);

        for bad in ["s3://", "s3:///prefix", "ftp://host/x"] {
            let err = StorageSpec::from_url_with_env(bad, |_| None).unwrap_err();
            assert!(
                err.to_string().contains("s3://BUCKET/PREFIX"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn virtual_hosts_come_from_hosts_tables_with_a_root_or_a_storage() {
        let file = FileConfig::parse(
            r#"
            [storage.shop]
            backend = "fs"
            root = "/srv/shop"
            [hosts."WWW.example.com"]
            root = "/srv/sites/www"
            aliases = ["example.com."]
            banner = "Welcome."
            certfile = "www.pem"
            keyfile = "www.key"
            [hosts."shop.example.org"]
            storage = "shop"
            "#,
        )
        .unwrap();
        let settings = ServeSettings::resolve(&ServeArgs::default(), &file).unwrap();
        let hosts = &settings.virtual_hosts;
        assert_eq!(hosts.len(), 2);
        let www = hosts.iter().find(|h| h.name == "www.example.com").unwrap();
        assert_eq!(www.aliases, ["example.com"]);
        assert_eq!(www.banner.as_deref(), Some("Welcome."));
        assert_eq!(
            www.certificate,
            Some((PathBuf::from("www.pem"), PathBuf::from("www.key")))
        );
        assert!(
            matches!(&www.storage, StorageSpec::Fs(fs) if fs.root == Path::new("/srv/sites/www"))
        );
        let shop = hosts.iter().find(|h| h.name == "shop.example.org").unwrap();
        assert!(matches!(&shop.storage, StorageSpec::Fs(fs) if fs.root == Path::new("/srv/shop")));

        for (text, complaint) in [
            ("[hosts.\"a.example\"]\n", "exactly one of root"),
            ("[hosts.\"bad name\"]\nroot = \"/x\"\n", "not a host name"),
            (
                "[hosts.\"a.example\"]\nroot = \"/x\"\naliases = [\"-x\"]\n",
                "not a host name",
            ),
            (
                "[hosts.\"a.example\"]\nroot = \"/x\"\ncertfile = \"c\"\n",
                "keyfile",
            ),
            (
                "[hosts.\"a.example\"]\nstorage = \"tape\"\n",
                "[storage.tape]",
            ),
        ] {
            let file = FileConfig::parse(text).unwrap();
            let error = ServeSettings::resolve(&ServeArgs::default(), &file).unwrap_err();
            assert!(error.to_string().contains(complaint), "{text}: {error}");
        }
        assert!(FileConfig::parse("[hosts.\"a\"]\nrooot = \"/x\"").is_err());
    }

    #[test]
    fn storage_tables_are_checked_when_the_file_is_read() {
        let unknown_backend = FileConfig::parse("[storage.x]\nbackend = \"tape\"").unwrap_err();
        assert!(unknown_backend.contains("tape"), "{unknown_backend}");
        let typo = FileConfig::parse("[storage.x]\nbackend = \"fs\"\nrot = \"/srv\"").unwrap_err();
        assert!(typo.contains("rot"), "{typo}");
        let no_backend = FileConfig::parse("[storage.x]\nroot = \"/srv\"").unwrap_err();
        assert!(no_backend.contains("backend"), "{no_backend}");
    }

    #[test]
    fn balancer_networks_come_from_a_list_a_string_or_the_flag() {
        let list =
            FileConfig::parse("[serve]\nproxy_protocol_from = [\"10.0.0.0/8\", \"192.0.2.10\"]")
                .unwrap();
        let settings = ServeSettings::resolve(&ServeArgs::default(), &list).unwrap();
        let expected: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.10/32".parse().unwrap(),
        ];
        assert_eq!(settings.server.proxy_protocol_from, expected);
        let text =
            FileConfig::parse("[serve]\nproxy_protocol_from = \"10.0.0.0/8, 192.0.2.10\"").unwrap();
        let settings = ServeSettings::resolve(&ServeArgs::default(), &text).unwrap();
        assert_eq!(settings.server.proxy_protocol_from, expected);
        let args = ServeArgs {
            proxy_protocol_from: Some("127.0.0.0/8".into()),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args, &list).unwrap();
        assert_eq!(
            settings.server.proxy_protocol_from,
            vec!["127.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
        );
        let bad = FileConfig::parse("[serve]\nproxy_protocol_from = [\"10.0.0.0/40\"]").unwrap();
        let error = ServeSettings::resolve(&ServeArgs::default(), &bad).unwrap_err();
        assert!(error.to_string().contains("10.0.0.0/40"), "{error}");
        let defaults = ServeSettings::resolve(&ServeArgs::default(), &FileConfig::default());
        assert!(defaults.unwrap().server.proxy_protocol_from.is_empty());
    }

    #[test]
    fn defaults_need_no_configuration() {
        let settings =
            ServeSettings::resolve(&ServeArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(settings.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(settings.root, PathBuf::from(DEFAULT_ROOT));
        assert!(settings.server.passive_ports.is_any());
        assert!(settings.server.active_mode);
    }

    #[test]
    fn a_certificate_requires_tls_by_default() {
        let file = FileConfig::parse(
            "[serve.tls]\ncertfile = \"c.pem\"\nkeyfile = \"k.pem\"\nimplicit_listen = \"127.0.0.1:990\"",
        )
        .unwrap();
        let settings = ServeSettings::resolve(&ServeArgs::default(), &file).unwrap();
        let tls = settings.tls.unwrap();
        assert_eq!(tls.required, TlsRequirement::All);
        assert!(!tls.require_resumption);
        assert_eq!(
            settings.implicit_listen,
            Some("127.0.0.1:990".parse().unwrap())
        );
        let args = ServeArgs {
            tls_required: Some(TlsRequirement::Data),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args, &file).unwrap();
        assert_eq!(settings.tls.unwrap().required, TlsRequirement::Data);
    }

    #[test]
    fn implicit_tls_without_a_certificate_is_refused() {
        let args = ServeArgs {
            implicit_tls: Some("127.0.0.1:990".parse().unwrap()),
            ..ServeArgs::default()
        };
        let error = ServeSettings::resolve(&args, &FileConfig::default()).unwrap_err();
        assert!(error.to_string().contains("certificate"), "{error}");
    }

    #[test]
    fn mistakes_are_reported_with_what_to_fix() {
        assert!(
            FileConfig::parse("[serve]\nlisten_on = 1")
                .unwrap_err()
                .contains("listen_on")
        );
        let args = ServeArgs {
            passive_ports: Some("9-1".into()),
            ..ServeArgs::default()
        };
        let error = ServeSettings::resolve(&args, &FileConfig::default()).unwrap_err();
        assert!(error.to_string().contains("backwards"));
    }

    #[test]
    fn password_hash_cost_comes_from_flags_over_the_file_and_is_checked() {
        let defaults =
            ServeSettings::resolve(&ServeArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(defaults.password_cost, HashCost::default());
        let file =
            FileConfig::parse("[serve]\npassword_hash_memory_kib = 64\npassword_hash_passes = 3")
                .unwrap();
        let from_file = ServeSettings::resolve(&ServeArgs::default(), &file).unwrap();
        assert_eq!(
            from_file.password_cost,
            HashCost {
                memory_kib: 64,
                passes: 3
            }
        );
        let args = ServeArgs {
            password_hash_passes: Some(1),
            ..ServeArgs::default()
        };
        let merged = ServeSettings::resolve(&args, &file).unwrap();
        assert_eq!(
            merged.password_cost,
            HashCost {
                memory_kib: 64,
                passes: 1
            }
        );
        let bad = FileConfig::parse("[serve]\npassword_hash_memory_kib = 2").unwrap();
        let error = ServeSettings::resolve(&ServeArgs::default(), &bad).unwrap_err();
        assert!(error.to_string().contains("at least 8 KiB"), "{error}");
    }
}
