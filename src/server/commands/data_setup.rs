//! Data-connection setup: PASV (RFC 959 §4.1.1), EPSV and EPRT (RFC 2428), PORT, and TYPE.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use tracing::warn;

use super::Handled;
use crate::protocol::address::{self, EpsvArgument, NetworkProtocol};
use crate::protocol::command::TransferType;
use crate::protocol::{Reply, ReplyCode};
use crate::server::data::{DataSetup, PassiveEndpoint, check_active_target};
use crate::server::passive::PassiveError;
use crate::server::session::Session;

impl Session {
    pub(super) fn pasv(&mut self) -> Handled {
        self.refuse_after_epsv_all("PASV")?;
        let local = self.local.ip().to_canonical();
        let reply_ip = match (
            self.server.config.masquerade.address_for(self.peer.ip()),
            local,
        ) {
            (Some(masquerade), _) => masquerade,
            (None, IpAddr::V4(v4)) => v4,
            (None, IpAddr::V6(_)) => {
                return Err(Reply::new(
                    ReplyCode::CANT_OPEN_DATA,
                    "PASV carries IPv4 addresses only; use EPSV on an IPv6 connection.",
                ));
            }
        };
        let port = self.open_passive_port()?;
        Ok(Reply::new(
            ReplyCode::PASSIVE_MODE,
            address::format_pasv_reply(SocketAddrV4::new(reply_ip, port)),
        )
        .into())
    }

    pub(super) fn epsv(&mut self, argument: EpsvArgument) -> Handled {
        match argument {
            EpsvArgument::All => {
                self.epsv_all = true;
                return Ok(Reply::new(
                    ReplyCode::COMMAND_OK,
                    "EPSV ALL accepted; only EPSV will set up data connections now.",
                )
                .into());
            }
            EpsvArgument::Protocol(protocol)
                if protocol != NetworkProtocol::of(self.local.ip()) =>
            {
                // RFC 2428 §3: name the protocols that work on this connection.
                let supported = match NetworkProtocol::of(self.local.ip()) {
                    NetworkProtocol::Ipv4 => "(1)",
                    NetworkProtocol::Ipv6 => "(2)",
                };
                return Err(Reply::new(
                    ReplyCode::NETWORK_PROTOCOL_NOT_SUPPORTED,
                    format!("Network protocol not supported, use {supported}"),
                ));
            }
            EpsvArgument::Protocol(_) | EpsvArgument::Any => {}
        }
        let port = self.open_passive_port()?;
        Ok(Reply::new(
            ReplyCode::EXTENDED_PASSIVE_MODE,
            address::format_epsv_reply(port),
        )
        .into())
    }

    /// PORT and EPRT.
    pub(super) fn port(&mut self, target: SocketAddr) -> Handled {
        if !self.server.config.active_mode {
            return Err(Reply::new(
                ReplyCode::NOT_IMPLEMENTED,
                "Active mode is turned off on this server; use PASV or EPSV.",
            ));
        }
        self.refuse_after_epsv_all("PORT and EPRT")?;
        if let Err(refusal) = check_active_target(target, self.peer.ip()) {
            warn!(%target, %refusal, "active-mode target refused");
            return Err(Reply::new(
                ReplyCode::ARGUMENT_SYNTAX_ERROR,
                format!("{refusal}."),
            ));
        }
        self.data = DataSetup::Active(target);
        Ok(Reply::new(ReplyCode::COMMAND_OK, "Active data connection set up.").into())
    }

    pub(super) fn type_command(&mut self, kind: TransferType) -> Handled {
        self.transfer_type = kind;
        let text = match kind {
            TransferType::Ascii => "Type set to A (ASCII; lines end in CRLF on the wire).",
            TransferType::Binary => "Type set to I (binary).",
        };
        Ok(Reply::new(ReplyCode::COMMAND_OK, text).into())
    }

    /// Leases a passive port on the control connection's local address; the previous one, if
    /// any, goes back to the pool.
    fn open_passive_port(&mut self) -> Result<u16, Reply> {
        self.data = DataSetup::None;
        let (listener, lease) = self
            .server
            .passive_pool
            .listen(self.local.ip().to_canonical())
            .map_err(|error| {
                warn!(%error, "no passive port");
                let text = match error {
                    PassiveError::Exhausted(_) => format!("Can't open data connection: {error}."),
                    PassiveError::Io(_) => {
                        "Can't open data connection: no passive port could be opened.".to_owned()
                    }
                };
                Reply::new(ReplyCode::CANT_OPEN_DATA, text)
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| {
                Reply::new(
                    ReplyCode::CANT_OPEN_DATA,
                    format!("Can't open data connection: {e}."),
                )
            })?
            .port();
        let expires = tokio::time::Instant::now() + self.server.config.timeouts.data_accept;
        self.data = DataSetup::Passive(PassiveEndpoint {
            listener,
            lease,
            expires,
        });
        Ok(port)
    }

    fn refuse_after_epsv_all(&self, what: &str) -> Result<(), Reply> {
        if self.epsv_all {
            return Err(Reply::new(
                ReplyCode::BAD_SEQUENCE,
                format!("{what} refused: the client sent EPSV ALL, so only EPSV may be used."),
            ));
        }
        Ok(())
    }
}
