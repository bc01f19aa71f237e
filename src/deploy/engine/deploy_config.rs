//! `.ferrydeploy`, the deploy settings a repository carries beside its `.ferryignore` (TOML, at
//! the root of the deployed commit): which files are entry points and how uploads are ordered.
//! Command-line flags win over it; it wins over the defaults.
//!
//! ```toml
//! entry = ["*.html", "*.php", "templates/*.tpl"]   # replaces the default entry points
//! order = "phased"                                 # or "unordered"
//! ```

use serde::Deserialize;

use super::order::Order;

/// The file's name at the repository root; never uploaded.
pub const DEPLOY_CONFIG_FILE: &str = ".ferrydeploy";

/// What `.ferrydeploy` says; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Entry-point patterns, replacing the defaults.
    pub entry: Option<Vec<String>>,
    /// `phased` or `unordered`.
    pub order: Option<OrderSetting>,
}

/// How `.ferrydeploy` names an [`Order`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderSetting {
    Phased,
    Unordered,
}

impl From<OrderSetting> for Order {
    fn from(setting: OrderSetting) -> Self {
        match setting {
            OrderSetting::Phased => Order::Phased,
            OrderSetting::Unordered => Order::Unordered,
        }
    }
}

impl DeployConfig {
    /// Parses the file's text; the error says what to fix.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            format!(
                "{DEPLOY_CONFIG_FILE} cannot be read: {}",
                e.message().trim_end()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_entry_points_and_the_order_and_nothing_else() {
        let config = DeployConfig::parse("entry = [\"*.tpl\"]\norder = \"unordered\"\n").unwrap();
        assert_eq!(config.entry, Some(vec!["*.tpl".to_owned()]));
        assert_eq!(config.order.map(Order::from), Some(Order::Unordered));
        assert_eq!(DeployConfig::parse("").unwrap(), DeployConfig::default());
        let error = DeployConfig::parse("ordre = \"phased\"\n").unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }
}
