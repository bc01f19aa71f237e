//! The server's counters in Prometheus' text format: sessions, logins, commands, replies by class,
//! bytes, transfers, TLS handshakes and passive-port use. Recording is a few atomic additions on
//! the paths that already do work (a command, a reply, a transfer's end), never a lock held across
//! I/O. The HTTP endpoint that serves them is [`crate::server::http`].

use std::fmt::Write as _;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One label, as a static pair: every label value here is a fixed word, so no per-event allocation.
type Label = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    sessions: Counter,
    sessions_open: Gauge,
    logins: Family<Label, Counter>,
    commands: Family<Label, Counter>,
    replies: Family<Label, Counter>,
    bytes: Family<Label, Counter>,
    transfers: Family<Labels2, Counter>,
    tls_handshakes: Family<Labels2, Counter>,
    upload_ends: Family<Label, Counter>,
    passive_ports_total: Gauge,
    passive_ports_leased: Gauge,
}

/// Which way bytes of a transfer went, seen from the server.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Uploads (STOR, APPE, STOU).
    In,
    /// Downloads and listings.
    Out,
}

/// How a transfer ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOutcome {
    Ok,
    Failed,
    /// ABOR, a closed control connection, or a shutdown.
    Aborted,
    /// An upload thrown away because its client was gone.
    Discarded,
}

impl TransferOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::Discarded => "discarded",
        }
    }
}

/// How an upload whose data connection ended was kept or dropped (see `session::finish_upload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadEnd {
    /// Committed before the final reply: nothing to protect, or the client had spoken already.
    AtOnce,
    /// Answered at once, made visible when the client sent its next command.
    NextCommand,
    /// Answered at once, made visible after a short silence of the client.
    Quiet,
    /// The final reply waited for a sign of the client (storage that cannot stage).
    Waited,
    /// Dropped: the client was gone.
    Discarded,
}

impl UploadEnd {
    fn as_str(self) -> &'static str {
        match self {
            Self::AtOnce => "at_once",
            Self::NextCommand => "next_command",
            Self::Quiet => "quiet",
            Self::Waited => "waited",
            Self::Discarded => "discarded",
        }
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("ferry"),
            sessions: Counter::default(),
            sessions_open: Gauge::default(),
            logins: Family::default(),
            commands: Family::default(),
            replies: Family::default(),
            bytes: Family::default(),
            transfers: Family::default(),
            tls_handshakes: Family::default(),
            upload_ends: Family::default(),
            passive_ports_total: Gauge::default(),
            passive_ports_leased: Gauge::default(),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "sessions",
            "Control connections accepted",
            metrics.sessions.clone(),
        );
        registry.register(
            "sessions_open",
            "Control connections open now",
            metrics.sessions_open.clone(),
        );
        registry.register(
            "logins",
            "Login attempts by result (ok, failed)",
            metrics.logins.clone(),
        );
        registry.register(
            "commands",
            "Commands received, by verb",
            metrics.commands.clone(),
        );
        registry.register(
            "replies",
            "Replies sent, by class (1xx..5xx)",
            metrics.replies.clone(),
        );
        registry.register(
            "transfer_bytes",
            "Bytes moved on data connections, by direction (in: uploads, out: downloads and listings)",
            metrics.bytes.clone(),
        );
        registry.register(
            "transfers",
            "Finished transfers, by direction and result (ok, failed, aborted, discarded)",
            metrics.transfers.clone(),
        );
        registry.register(
            "tls_handshakes",
            "TLS handshakes, by channel (control, data) and result (ok, failed)",
            metrics.tls_handshakes.clone(),
        );
        registry.register(
            "upload_ends",
            "Uploads whose data connection ended, by how the server decided to keep them: at_once \
             (committed before the reply: no file to replace, or the client confirmed the end), \
             next_command or quiet (replaced a file: answered at once, made visible at the \
             client's next command or after a short silence), waited (the reply waited for a \
             sign of the client: storage that cannot stage), discarded (the client was gone)",
            metrics.upload_ends.clone(),
        );
        registry.register(
            "passive_ports",
            "Ports in the passive range (0: the system picks ports)",
            metrics.passive_ports_total.clone(),
        );
        registry.register(
            "passive_ports_leased",
            "Passive ports leased to sessions now",
            metrics.passive_ports_leased.clone(),
        );
        metrics
    }
}

impl ServerMetrics {
    pub(crate) fn session_opened(&self) {
        self.sessions.inc();
        self.sessions_open.inc();
    }

    pub(crate) fn session_closed(&self) {
        self.sessions_open.dec();
    }

    pub(crate) fn login(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.logins.get_or_create(&[("result", result)]).inc();
    }

    pub(crate) fn command(&self, verb: &'static str) {
        self.commands.get_or_create(&[("verb", verb)]).inc();
    }

    pub(crate) fn reply(&self, code: u16) {
        let class = match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.replies.get_or_create(&[("class", class)]).inc();
    }

    pub(crate) fn transfer(&self, direction: Direction, outcome: TransferOutcome, bytes: u64) {
        let result = outcome.as_str();
        let direction = match direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        self.bytes
            .get_or_create(&[("direction", direction)])
            .inc_by(bytes);
        self.transfers
            .get_or_create(&[("direction", direction), ("result", result)])
            .inc();
    }

    pub(crate) fn upload_end(&self, how: UploadEnd) {
        self.upload_ends
            .get_or_create(&[("decided", how.as_str())])
            .inc();
    }

    pub(crate) fn tls_handshake(&self, channel: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls_handshakes
            .get_or_create(&[("channel", channel), ("result", result)])
            .inc();
    }

    /// The exposition text, with the passive pool's state read now.
    pub fn render(&self, passive_total: usize, passive_available: Option<usize>) -> String {
        let total = i64::try_from(passive_total).unwrap_or(i64::MAX);
        self.passive_ports_total.set(total);
        let leased = passive_available.map_or(0, |free| total - free as i64);
        self.passive_ports_leased.set(leased);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            let _ = writeln!(out, "# encoding the metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition_text() {
        let metrics = ServerMetrics::default();
        metrics.session_opened();
        metrics.login(false);
        metrics.login(true);
        metrics.command("RETR");
        metrics.reply(226);
        metrics.reply(550);
        metrics.transfer(Direction::Out, TransferOutcome::Ok, 1234);
        metrics.tls_handshake("data", true);
        let text = metrics.render(10, Some(7));
        for line in [
            "ferry_sessions_total 1",
            "ferry_sessions_open 1",
            "ferry_logins_total{result=\"failed\"} 1",
            "ferry_logins_total{result=\"ok\"} 1",
            "ferry_commands_total{verb=\"RETR\"} 1",
            "ferry_replies_total{class=\"2xx\"} 1",
            "ferry_replies_total{class=\"5xx\"} 1",
            "ferry_transfer_bytes_total{direction=\"out\"} 1234",
            "ferry_transfers_total{direction=\"out\",result=\"ok\"} 1",
            "ferry_tls_handshakes_total{channel=\"data\",result=\"ok\"} 1",
            "ferry_passive_ports 10",
            "ferry_passive_ports_leased 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
