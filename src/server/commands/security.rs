//! FTPS commands: AUTH TLS, PBSZ, PROT and CCC (RFC 4217, RFC 2228).

use super::Handled;
use crate::protocol::command::ProtectionLevel;
use crate::protocol::{Reply, ReplyCode};
use crate::server::session::{Flow, Session};

impl Session {
    /// AUTH TLS (RFC 4217 §4): `234`, then the TLS handshake on the control connection.
    pub(super) fn auth(&mut self) -> Handled {
        let Some(context) = self.server.config.tls.clone() else {
            return Err(Reply::new(
                ReplyCode::NOT_IMPLEMENTED,
                "TLS is not configured on this server; ask its operator for FTPS.",
            ));
        };
        if self.control.is_tls() {
            return Err(Reply::new(
                ReplyCode::BAD_SEQUENCE,
                "TLS is already active on this connection.",
            ));
        }
        if self.user().is_some() {
            return Err(Reply::new(
                ReplyCode::BAD_SEQUENCE,
                "AUTH TLS must come before login; reconnect and send it first.",
            ));
        }
        if self.tls.is_none() {
            self.tls = Some(context.session(self.peer.ip()));
        }
        Ok(Flow::StartTls(Reply::new(
            ReplyCode::AUTH_OK,
            "AUTH TLS successful; starting the TLS handshake.",
        )))
    }

    /// PBSZ (RFC 4217 §8): meaningful only as `PBSZ 0` under TLS.
    pub(super) fn pbsz(&mut self, _size: u64) -> Handled {
        self.require_tls_control("PBSZ")?;
        self.pbsz_set = true;
        Ok(Reply::new(ReplyCode::COMMAND_OK, "PBSZ=0").into())
    }

    /// PROT (RFC 4217 §9): C for clear data connections, P for TLS-protected ones.
    pub(super) fn prot(&mut self, level: ProtectionLevel) -> Handled {
        self.require_tls_control("PROT")?;
        if !self.pbsz_set {
            return Err(Reply::new(
                ReplyCode::BAD_SEQUENCE,
                "Send PBSZ 0 before PROT (RFC 4217).",
            ));
        }
        match level {
            ProtectionLevel::Private => {
                self.protection = ProtectionLevel::Private;
                Ok(Reply::new(
                    ReplyCode::COMMAND_OK,
                    "PROT P: data connections are encrypted.",
                )
                .into())
            }
            ProtectionLevel::Clear if self.tls_requirement().data() => Err(Reply::new(
                ReplyCode::PROTECTION_LEVEL_DENIED,
                "PROT C refused: this server requires encrypted data connections (PROT P).",
            )),
            ProtectionLevel::Clear => {
                self.protection = ProtectionLevel::Clear;
                Ok(Reply::new(
                    ReplyCode::COMMAND_OK,
                    "PROT C: data connections are in clear text.",
                )
                .into())
            }
            ProtectionLevel::Safe | ProtectionLevel::Confidential => Err(Reply::new(
                ReplyCode::PROTECTION_LEVEL_DENIED,
                "Only PROT C and PROT P are supported.",
            )),
        }
    }

    /// CCC (RFC 4217 §6): back to a clear control connection, where the operator allows it.
    /// Only after login: before it the account, and so what it requires, is not known yet, and a
    /// password must never follow in clear text where the account forbids that.
    pub(super) fn ccc(&mut self) -> Handled {
        self.require_tls_control("CCC")?;
        if self.user().is_none() {
            return Err(Reply::new(
                ReplyCode::BAD_SEQUENCE,
                "CCC is accepted only after login (USER and PASS under TLS); log in first.",
            ));
        }
        let allowed = self
            .server
            .config
            .tls
            .as_ref()
            .is_some_and(|context| context.settings.allow_ccc);
        if !allowed || self.tls_requirement().control() {
            return Err(Reply::new(
                ReplyCode::COMMAND_PROTECTION_DENIED,
                "CCC refused: this server keeps the control connection encrypted.",
            ));
        }
        Ok(Flow::ClearTls(Reply::new(
            ReplyCode::COMMAND_OK,
            "CCC accepted; the control connection returns to clear text after the TLS close.",
        )))
    }

    fn require_tls_control(&self, verb: &str) -> Result<(), Reply> {
        if self.control.is_tls() {
            return Ok(());
        }
        let code = if self.server.config.tls.is_some() {
            ReplyCode::BAD_SEQUENCE
        } else {
            ReplyCode::NOT_IMPLEMENTED
        };
        Err(Reply::new(
            code,
            format!("{verb} needs TLS: send AUTH TLS first."),
        ))
    }
}
