//! What the server says about itself: FEAT (RFC 2389), HELP, OPTS (RFC 2389, RFC 2640, RFC 3659
//! §7.9) and SITE HELP.

use super::Handled;
use crate::protocol::command::VERBS;
use crate::protocol::listing::MlstFacts;
use crate::protocol::{Reply, ReplyCode};
use crate::server::session::Session;
use crate::storage::Capabilities;

impl Session {
    /// FEAT lists exactly what works for this session's storage (RFC 2389 §3.2).
    pub(super) fn feat(&self) -> Handled {
        let capabilities = self.capabilities();
        let mut lines = vec!["Extensions supported:".to_owned()];
        let mut features: Vec<String> = vec![
            "EPSV".into(),
            "MDTM".into(),
            self.mlst_facts.feat_line(),
            "PASV".into(),
            "SIZE".into(),
            "TVFS".into(),
            "UTF8".into(),
        ];
        // PORT needs no FEAT line (RFC 959); EPRT does, so it goes when active mode is off.
        if self.server.config.active_mode {
            features.push("EPRT".into());
        }
        if capabilities.set_modified {
            features.push("MFMT".into());
        }
        if !self.server.config.virtual_hosts.is_empty() {
            features.push("HOST".into());
        }
        if let Some(context) = &self.server.config.tls {
            features.extend(["AUTH TLS".into(), "PBSZ".into(), "PROT".into()]);
            if context.settings.allow_ccc {
                features.push("CCC".into());
            }
        }
        if capabilities.read_at_offset || capabilities.write_at_offset {
            features.push("REST STREAM".into());
        }
        if capabilities.hash {
            // draft-bryan-ftpext-hash-02 §3.1, and the older commands clients look for.
            features.push(crate::protocol::hash::feat_line(self.hash_algorithm));
            features.extend(["XCRC", "XMD5", "XSHA1", "XSHA256"].map(String::from));
        }
        features.sort();
        lines.extend(features.into_iter().map(|f| format!(" {f}")));
        lines.push("End".to_owned());
        Ok(Reply::multiline(ReplyCode::SYSTEM_STATUS, lines).into())
    }

    /// The logged-in user's storage capabilities, or the provider's before login.
    fn capabilities(&self) -> Capabilities {
        match self.user() {
            Some(user) => user.storage.capabilities(),
            None => self.server.storage.capabilities(),
        }
    }

    pub(super) fn help(&self, topic: Option<&[u8]>) -> Handled {
        if let Some(topic) = topic {
            let topic = String::from_utf8_lossy(topic).trim().to_ascii_uppercase();
            return if let Some(what) = self.not_offered(&topic) {
                Ok(Reply::new(
                    ReplyCode::HELP,
                    format!("{topic} is recognized, but this storage cannot {what}."),
                )
                .into())
            } else if VERBS.contains(&topic.as_str()) {
                Ok(Reply::new(ReplyCode::HELP, format!("{topic} is supported.")).into())
            } else {
                Err(Reply::new(
                    ReplyCode::ARGUMENT_SYNTAX_ERROR,
                    format!("Unknown command {topic}; HELP without an argument lists them all."),
                ))
            };
        }
        let mut lines = vec!["The following commands are recognized:".to_owned()];
        for row in VERBS.chunks(10) {
            lines.push(format!(" {}", row.join(" ")));
        }
        lines.push("Help OK.".to_owned());
        Ok(Reply::multiline(ReplyCode::HELP, lines).into())
    }

    /// What a verb needs that this session's storage cannot do, if anything.
    fn not_offered(&self, verb: &str) -> Option<&'static str> {
        let capabilities = self.capabilities();
        match verb {
            "APPE" if !capabilities.append => Some("append to files"),
            "MFMT" if !capabilities.set_modified => Some("set modification times"),
            "HASH" | "XCRC" | "XMD5" | "XSHA" | "XSHA1" | "XSHA256" | "RANG"
                if !capabilities.hash =>
            {
                Some("compute file hashes")
            }
            "REST" if !capabilities.read_at_offset && !capabilities.write_at_offset => {
                Some("resume transfers")
            }
            _ => None,
        }
    }

    pub(super) fn opts_utf8(&mut self, on: bool) -> Handled {
        let text = if on {
            "UTF8 mode is always on."
        } else {
            "UTF8 stays on: file names are always UTF-8 on this server."
        };
        Ok(Reply::new(ReplyCode::COMMAND_OK, text).into())
    }

    pub(super) fn opts_mlst(&mut self, facts: &[u8]) -> Handled {
        self.mlst_facts = MlstFacts::from_opts(facts);
        Ok(Reply::new(
            ReplyCode::COMMAND_OK,
            format!("MLST OPTS {}", self.mlst_facts.names()),
        )
        .into())
    }

    pub(super) fn site_help(&self) -> Handled {
        let mut lines = vec!["SITE commands:".to_owned()];
        if self.capabilities().chmod {
            lines.push(" CHMOD <octal mode> <path>".to_owned());
        }
        lines.push(" HELP".to_owned());
        lines.push("End.".to_owned());
        Ok(Reply::multiline(ReplyCode::HELP, lines).into())
    }
}
