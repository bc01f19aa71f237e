//! Virtual hosts (RFC 7151): several sites on one address, told apart by the name a client
//! sends with HOST before USER, each with its own root for the homes of the accounts that log
//! in there, its own greeting and, optionally, its own certificate (chosen by TLS SNI).
//!
//! What a session may do with HOST, and when, is in `commands::host`; this file only holds the
//! hosts the server was configured with.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::storage::StorageProvider;

/// One configured site.
#[derive(Debug)]
pub struct VirtualHost {
    /// The name it was configured under (lower case), as logs and replies show it.
    pub name: String,
    /// Where the homes of the accounts that log in on this host live, unless an account names
    /// a storage of its own.
    pub storage: Arc<dyn StorageProvider>,
    /// The text of the `220` reply to HOST.
    pub banner: Option<String>,
}

/// Every virtual host, found by any of its names.
#[derive(Debug, Clone, Default)]
pub struct VirtualHosts {
    by_name: BTreeMap<String, Arc<VirtualHost>>,
}

impl VirtualHosts {
    /// Adds `host` under its name and `aliases` (compared case-insensitively, as DNS names
    /// are). A name given twice keeps the later host.
    pub fn insert(&mut self, host: VirtualHost, aliases: &[String]) {
        let host = Arc::new(host);
        for name in std::iter::once(&host.name).chain(aliases) {
            self.by_name
                .insert(name.to_ascii_lowercase(), Arc::clone(&host));
        }
    }

    /// The host called `name` (any case, with or without a final dot).
    pub fn find(&self, name: &str) -> Option<&Arc<VirtualHost>> {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.by_name.get(&name.to_ascii_lowercase())
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryProvider;

    #[test]
    fn hosts_are_found_by_any_name_in_any_case() {
        let mut hosts = VirtualHosts::default();
        assert!(hosts.is_empty());
        hosts.insert(
            VirtualHost {
                name: "www.example.com".into(),
                storage: Arc::new(MemoryProvider::new()),
                banner: None,
            },
            &["example.com".into()],
        );
        assert_eq!(
            hosts.find("WWW.Example.com").unwrap().name,
            "www.example.com"
        );
        assert_eq!(hosts.find("example.com.").unwrap().name, "www.example.com");
        assert!(hosts.find("other.example.com").is_none());
        assert!(!hosts.is_empty());
    }
}
