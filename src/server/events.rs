//! Events for operators' hooks: what happened in a session (a login, an upload, a delete…), handed
//! to a command or POSTed as signed JSON, as django-ftpserver's signals and pure-ftpd's upload
//! script did.
//!
//! A session only *offers* an event: [`EventHooks::emit`] checks each hook's filter and puts the
//! event in that hook's bounded queue without waiting, so a slow or dead hook never slows a
//! transfer. Each hook has one worker task that delivers its events one at a time, in the order
//! they happened, retrying a failed delivery with growing pauses; an event that still fails, or
//! that finds the queue full, is logged as a dead letter (a `warn` line with the event's JSON).
//!
//! A command hook runs its argv directly (no shell), with a clean environment that holds only
//! `PATH` and the event's facts (`FERRY_EVENT`, `FERRY_USER`, `FERRY_PATH`…): a client-chosen
//! file name reaches it as a variable's value, never as code, and the server's own secrets (S3
//! keys in its environment) never reach it. A URL hook gets the event as JSON, signed with
//! HMAC-SHA256 of the body under the hook's secret in `X-Ferry-Signature-256: sha256=HEX`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use globset::GlobSet;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Login,
    LoginFailed,
    Logout,
    /// An upload made visible (STOR, APPE, STOU).
    Upload,
    /// An upload that ended without its file: aborted, failed, or thrown away because its client
    /// was gone.
    UploadAborted,
    /// A download that was sent whole.
    Download,
    Delete,
    Rename,
    Mkdir,
    Rmdir,
}

impl EventKind {
    pub const ALL: [Self; 10] = [
        Self::Login,
        Self::LoginFailed,
        Self::Logout,
        Self::Upload,
        Self::UploadAborted,
        Self::Download,
        Self::Delete,
        Self::Rename,
        Self::Mkdir,
        Self::Rmdir,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::Upload => "upload",
            Self::UploadAborted => "upload_aborted",
            Self::Download => "download",
            Self::Delete => "delete",
            Self::Rename => "rename",
            Self::Mkdir => "mkdir",
            Self::Rmdir => "rmdir",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|kind| kind.as_str()).collect();
                format!("unknown event \"{text}\" (known: {})", known.join(", "))
            })
    }
}

/// One event and its facts. Paths are as the client sees them, from its home (`/www/a.html`).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event: EventKind,
    /// Seconds since the Unix epoch, with milliseconds.
    pub time: f64,
    /// The control connection's id, as in the server's log lines.
    pub session: u64,
    /// The account, or the name a failed login gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub client_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A rename's new name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why a login failed or an upload ended without its file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    /// An event of `kind` now, with no facts beyond who and where.
    pub fn new(kind: EventKind, session: u64, user: Option<&str>, client_ip: IpAddr) -> Self {
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| (since.as_millis() as f64) / 1000.0);
        Self {
            event: kind,
            time,
            session,
            user: user.map(str::to_owned),
            client_ip,
            path: None,
            target: None,
            bytes: None,
            duration_ms: None,
            reason: None,
        }
    }

    pub fn path(mut self, path: impl fmt::Display) -> Self {
        self.path = Some(path.to_string());
        self
    }

    pub fn target(mut self, target: impl fmt::Display) -> Self {
        self.target = Some(target.to_string());
        self
    }

    pub fn transfer(mut self, bytes: u64, duration: Duration) -> Self {
        self.bytes = Some(bytes);
        self.duration_ms = Some(duration.as_millis() as u64);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The environment of a command hook: `FERRY_` and the upper-case field name, for every
    /// fact the event has.
    fn environment(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("FERRY_EVENT", self.event.as_str().to_owned()),
            ("FERRY_TIME", format!("{:.3}", self.time)),
            ("FERRY_SESSION", self.session.to_string()),
            ("FERRY_CLIENT_IP", self.client_ip.to_string()),
        ];
        let optional = [
            ("FERRY_USER", self.user.clone()),
            ("FERRY_PATH", self.path.clone()),
            ("FERRY_TARGET", self.target.clone()),
            ("FERRY_BYTES", self.bytes.map(|bytes| bytes.to_string())),
            (
                "FERRY_DURATION_MS",
                self.duration_ms.map(|ms| ms.to_string()),
            ),
            ("FERRY_REASON", self.reason.clone()),
        ];
        vars.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?))),
        );
        vars
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Which events a hook takes: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct HookFilter {
    /// Event kinds; empty: all.
    pub kinds: BTreeSet<EventKind>,
    /// Account names; empty: all.
    pub accounts: BTreeSet<String>,
    /// Globs over the event's path (or a rename's new name); `None`: any event, with a path or
    /// without one.
    pub paths: Option<GlobSet>,
}

impl HookFilter {
    fn accepts(&self, event: &Event) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&event.event) {
            return false;
        }
        if !self.accounts.is_empty()
            && !event
                .user
                .as_ref()
                .is_some_and(|user| self.accounts.contains(user))
        {
            return false;
        }
        match &self.paths {
            None => true,
            Some(globs) => [&event.path, &event.target]
                .into_iter()
                .flatten()
                .any(|path| globs.is_match(path)),
        }
    }
}

/// What a hook does with an event.
#[derive(Clone)]
pub enum HookAction {
    /// Runs this program with these arguments; the facts are in its environment.
    Command(Vec<String>),
    /// POSTs the event's JSON here, signed with the secret when there is one.
    Post {
        url: reqwest::Url,
        secret: Option<Arc<[u8]>>,
    },
}

impl fmt::Debug for HookAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command(argv) => f.debug_tuple("Command").field(argv).finish(),
            // The secret is never printed.
            Self::Post { url, secret } => f
                .debug_struct("Post")
                .field("url", &url.as_str())
                .field("signed", &secret.is_some())
                .finish(),
        }
    }
}

/// One `[[events]]` entry of the configuration file.
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// How the hook is named in log lines: its URL's host or its program.
    pub name: String,
    pub filter: HookFilter,
    pub action: HookAction,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// Deliveries after the first that fails.
    pub retries: u32,
    /// Events waiting for delivery before new ones are dropped.
    pub queue: usize,
}

impl HookSpec {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_RETRIES: u32 = 3;
    pub const DEFAULT_QUEUE: usize = 1000;
}

/// The server's hooks, each with its queue and worker.
#[derive(Debug)]
pub struct EventHooks {
    hooks: Vec<RunningHook>,
}

#[derive(Debug)]
struct RunningHook {
    name: String,
    filter: HookFilter,
    queue: mpsc::Sender<Arc<Event>>,
    dropped: AtomicU64,
}

/// The pause before retry number `attempt` (1-based): 0.5 s, doubling, at most 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(Duration::from_secs(30))
}

impl EventHooks {
    /// Starts one worker task per hook; call from within the runtime.
    pub fn start(specs: Vec<HookSpec>) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let hooks = specs
            .into_iter()
            .map(|spec| {
                let (sender, receiver) = mpsc::channel(spec.queue.max(1));
                let running = RunningHook {
                    name: spec.name.clone(),
                    filter: spec.filter.clone(),
                    queue: sender,
                    dropped: AtomicU64::new(0),
                };
                tokio::spawn(deliver_in_order(spec, receiver, client.clone()));
                running
            })
            .collect();
        Arc::new(Self { hooks })
    }

    /// Offers `event` to every hook whose filter takes it. Never waits.
    pub fn emit(&self, event: Event) {
        let event = Arc::new(event);
        for hook in &self.hooks {
            if !hook.filter.accepts(&event) {
                continue;
            }
            if hook.queue.try_send(Arc::clone(&event)).is_err() {
                let dropped = hook.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(
                    hook = hook.name,
                    dropped,
                    event = event.json(),
                    "event dropped: the hook's queue is full (is the hook down or slow?)"
                );
            }
        }
    }
}

/// A hook's worker: its events one at a time, in order.
async fn deliver_in_order(
    spec: HookSpec,
    mut queue: mpsc::Receiver<Arc<Event>>,
    client: reqwest::Client,
) {
    while let Some(event) = queue.recv().await {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let delivered = tokio::time::timeout(spec.timeout, deliver(&spec, &event, &client))
                .await
                .unwrap_or_else(|_| {
                    Err(format!("no answer within {} s", spec.timeout.as_secs_f32()))
                });
            match delivered {
                Ok(()) => {
                    debug!(hook = spec.name, event = %event.event, "event delivered");
                    break;
                }
                Err(error) if attempt <= spec.retries => {
                    debug!(hook = spec.name, attempt, %error, "event delivery failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(error) => {
                    warn!(
                        hook = spec.name,
                        attempts = attempt,
                        %error,
                        event = event.json(),
                        "event not delivered (dead letter)"
                    );
                    break;
                }
            }
        }
    }
}

async fn deliver(spec: &HookSpec, event: &Event, client: &reqwest::Client) -> Result<(), String> {
    match &spec.action {
        HookAction::Command(argv) => run_command(argv, event).await,
        HookAction::Post { url, secret } => post(client, url, secret.as_deref(), event).await,
    }
}

/// Runs the hook's program with the event in its environment; it must exit with status 0.
async fn run_command(argv: &[String], event: &Event) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("the command is empty")?;
    let mut command = tokio::process::Command::new(PathBuf::from(program));
    command
        .args(args)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .envs(event.environment())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = command
        .output()
        .await
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr.trim().lines().last().unwrap_or("").chars().take(300);
    Err(format!(
        "{program} exited with {}: {}",
        output.status,
        said.collect::<String>()
    ))
}

/// The value of `X-Ferry-Signature-256` for `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    secret: Option<&[u8]>,
    event: &Event,
) -> Result<(), String> {
    let body = event.json();
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Ferry-Event", event.event.as_str());
    if let Some(secret) = secret {
        request = request.header("X-Ferry-Signature-256", signature(secret, body.as_bytes()));
    }
    let response = request
        .body(body)
        .send()
        .await
        // Without the URL: it may hold a token in its query.
        .map_err(|error| format!("cannot reach the hook: {}", error.without_url()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the hook answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn event(kind: EventKind, user: &str, path: Option<&str>) -> Event {
        let event = Event::new(kind, 7, Some(user), IpAddr::V4(Ipv4Addr::LOCALHOST));
        match path {
            Some(path) => event.path(path),
            None => event,
        }
    }

    #[test]
    fn filters_take_kinds_accounts_and_paths_together() {
        let mut globs = globset::GlobSetBuilder::new();
        globs.add(globset::Glob::new("/www/**/*.php").unwrap());
        let filter = HookFilter {
            kinds: [EventKind::Upload, EventKind::Rename].into(),
            accounts: ["alice".to_owned()].into(),
            paths: Some(globs.build().unwrap()),
        };
        assert!(filter.accepts(&event(EventKind::Upload, "alice", Some("/www/a/b.php"))));
        assert!(!filter.accepts(&event(EventKind::Upload, "bob", Some("/www/a/b.php"))));
        assert!(!filter.accepts(&event(EventKind::Delete, "alice", Some("/www/a/b.php"))));
        assert!(!filter.accepts(&event(EventKind::Upload, "alice", Some("/www/a/b.txt"))));
        // A rename matches by its new name too.
        let renamed = event(EventKind::Rename, "alice", Some("/tmp/x")).target("/www/x.php");
        assert!(filter.accepts(&renamed));
        // Path filters take no event without a path.
        let login = HookFilter {
            paths: filter.paths.clone(),
            ..HookFilter::default()
        };
        assert!(!login.accepts(&event(EventKind::Login, "alice", None)));
        assert!(HookFilter::default().accepts(&event(EventKind::Login, "alice", None)));
    }

    #[test]
    fn the_environment_holds_every_fact_and_the_json_omits_missing_ones() {
        let upload = event(EventKind::Upload, "alice", Some("/a $(b).txt"))
            .transfer(42, Duration::from_millis(5));
        let vars = upload.environment();
        let get = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("FERRY_EVENT"), Some("upload"));
        assert_eq!(get("FERRY_PATH"), Some("/a $(b).txt"));
        assert_eq!(get("FERRY_BYTES"), Some("42"));
        assert_eq!(get("FERRY_TARGET"), None);
        let json: serde_json::Value = serde_json::from_str(&upload.json()).unwrap();
        assert_eq!(json["event"], "upload");
        assert_eq!(json["bytes"], 42);
        assert!(json.get("target").is_none());
    }

    #[test]
    fn event_names_round_trip_and_unknown_ones_are_listed() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        let error = "uploads".parse::<EventKind>().unwrap_err();
        assert!(error.contains("login_failed"), "{error}");
    }

    #[test]
    fn retries_pause_longer_each_time_up_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
