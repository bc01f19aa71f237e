//! HOST (RFC 7151): the site a client means when several share one address.
//!
//! HOST comes before USER: after USER, or once logged in, it is a bad sequence (`503`), and
//! REIN starts over without a host. A name the server does not serve is `504`. After AUTH TLS
//! the certificate is chosen: a client that named a host in its handshake (SNI) is on that host
//! already, and HOST may only name it again (`504` for another, RFC 7151's rule for SNI); without
//! SNI it is too late (`503`), as ProFTPD answers. The host decides where the homes of the accounts that log in next live
//! (`commands::login`), and which accounts may log in at all.
//!
//! Clients send the name they connected to, an address too: lftp sends `HOST 127.0.0.1` (no
//! brackets) when FEAT offers HOST. The address the client reached is the server's own site
//! (no virtual host); another address is as unknown as any other name.

use tracing::info;

use super::Handled;
use crate::protocol::{Reply, ReplyCode};
use crate::server::session::{Login, Session};

impl Session {
    pub(super) fn host(&mut self, name: &str) -> Handled {
        if !matches!(self.login, Login::AwaitingUser) {
            return Err(Reply::new(
                ReplyCode::BAD_SEQUENCE,
                "HOST must come before USER (RFC 7151); send REIN, then HOST, then log in again.",
            ));
        }
        if self.control.is_tls() {
            // The certificate is chosen: HOST may only confirm the host the handshake named.
            let Some(sni) = self.control.tls_server_name() else {
                return Err(Reply::new(
                    ReplyCode::BAD_SEQUENCE,
                    "HOST must come before AUTH TLS (RFC 7151): reconnect and send HOST first.",
                ));
            };
            if !self.names_the_same_host(sni, name) {
                return Err(Reply::new(
                    ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                    format!(
                        "{name}: the TLS handshake asked for {sni}; HOST must name the same host."
                    ),
                ));
            }
        }
        let literal = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
        if let Ok(address) = literal.unwrap_or(name).parse::<std::net::IpAddr>() {
            if address.to_canonical() == self.local.ip().to_canonical() {
                self.virtual_host = None;
                return Ok(
                    Reply::new(ReplyCode::SERVICE_READY, self.server.config.banner.clone()).into(),
                );
            }
        }
        let Some(host) = self.server.config.virtual_hosts.find(name).cloned() else {
            return Err(Reply::new(
                ReplyCode::PARAMETER_NOT_IMPLEMENTED,
                format!(
                    "{name}: unknown host on this server; check the name, or log in without HOST."
                ),
            ));
        };
        info!(host = host.name, "virtual host chosen");
        tracing::Span::current().record("host", host.name.as_str());
        let greeting = host
            .banner
            .clone()
            .unwrap_or_else(|| format!("{} ready.", host.name));
        self.virtual_host = Some(host);
        Ok(Reply::new(ReplyCode::SERVICE_READY, greeting).into())
    }

    /// After a TLS handshake (implicit FTPS, or AUTH TLS): the host the client named in it
    /// (SNI) becomes the session's, unless HOST chose one already. Implicit FTPS clients cannot
    /// send HOST before TLS starts; this is how they reach a virtual host.
    pub(crate) fn adopt_tls_server_name(&mut self) {
        if self.virtual_host.is_some() || !matches!(self.login, Login::AwaitingUser) {
            return;
        }
        let Some(host) = self
            .control
            .tls_server_name()
            .and_then(|name| self.server.config.virtual_hosts.find(name))
            .cloned()
        else {
            return;
        };
        info!(
            host = host.name,
            "virtual host chosen by the TLS server name"
        );
        tracing::Span::current().record("host", host.name.as_str());
        self.virtual_host = Some(host);
    }

    /// Whether two names are one host: the same name, or names of the same virtual host.
    fn names_the_same_host(&self, one: &str, other: &str) -> bool {
        let trim = |name: &str| name.trim_end_matches('.').to_ascii_lowercase();
        if trim(one) == trim(other) {
            return true;
        }
        let hosts = &self.server.config.virtual_hosts;
        match (hosts.find(one), hosts.find(other)) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
