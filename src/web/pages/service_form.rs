//! The add/edit service form: what it posts, how each field is checked (problems by field, so
//! the page shows them beside the fields), and how a validation check's failure maps back to
//! the field it is about.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::deploy::DeployTarget;
use crate::deploy::service::model::{
    DeployMode, DeploySettings, MaintenancePage, NewService, Secret, Service, ServiceSecrets,
    ServiceUpdate, TlsVerify,
};
use crate::deploy::service::store::generate_webhook_secret;
use crate::deploy::service::validate::Check;
use crate::deploy::service::webhook::{BranchPattern, Provider};

/// The form as posted (every field a string, unchecked boxes absent).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct ServiceForm {
    pub csrf: String,
    pub name: String,
    pub repo: String,
    /// `auto` guesses from the repository host.
    pub provider: String,
    pub branch: String,
    pub target: String,
    #[serde(skip_serializing)]
    pub ftp_password: String,
    /// `system`, `ca-file` or `insecure`.
    pub tls_verify: String,
    pub ca_file: String,
    #[serde(skip_serializing)]
    pub webhook_secret: String,
    pub no_secret: Option<String>,
    #[serde(skip_serializing)]
    pub provider_token: String,
    pub clear_token: Option<String>,
    pub notification_set: String,
    /// The git host's API root (self-hosted hosts); empty for the provider's default.
    pub api_url: String,
    pub enabled: Option<String>,
    pub new_key: Option<String>,
    /// `ordered`, `unordered` or `swap`.
    pub deploy_mode: String,
    pub fallback_ordered: Option<String>,
    /// Entry-point patterns, one per line (or separated by spaces); empty for the repository's
    /// or the defaults.
    pub entry_points: String,
    /// `FILE[:TARGET]`, or empty for none.
    pub maintenance: String,
}

/// Problems by field name (`""` for the form as a whole).
pub(crate) type FieldErrors = BTreeMap<&'static str, String>;

/// The checked values of a form.
#[derive(Debug)]
pub(crate) struct CheckedForm {
    /// The API root to store: `None` for the provider's default.
    pub api_url: Option<String>,
    repo: String,
    provider: Provider,
    branch: BranchPattern,
    target: DeployTarget,
    tls_verify: TlsVerify,
    notification_set: Option<String>,
    deploy: DeploySettings,
}

impl super::csrf::CsrfField for ServiceForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl ServiceForm {
    /// The form filled from a stored service (secrets are never shown, only kept).
    pub fn from_service(service: &Service) -> Self {
        let (tls_verify, ca_file) = match &service.tls_verify {
            TlsVerify::SystemRoots => ("system", String::new()),
            TlsVerify::Insecure => ("insecure", String::new()),
            TlsVerify::CaFile(path) => ("ca-file", path.display().to_string()),
        };
        Self {
            name: service.name.clone(),
            repo: service.repo_url.clone(),
            provider: service.provider.as_str().to_owned(),
            branch: service.branch.as_str().to_owned(),
            target: service.target.to_string(),
            tls_verify: tls_verify.to_owned(),
            ca_file,
            notification_set: service.notification_set.clone().unwrap_or_default(),
            api_url: service.api_url.clone().unwrap_or_default(),
            enabled: service.enabled.then(|| "on".to_owned()),
            deploy_mode: service.deploy.mode.as_str().to_owned(),
            fallback_ordered: service.deploy.fallback_ordered.then(|| "on".to_owned()),
            entry_points: service.deploy.entry_points.join("\n"),
            maintenance: service
                .deploy
                .maintenance
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            ..Self::default()
        }
    }

    /// An empty form for a new service.
    pub fn blank() -> Self {
        Self {
            provider: "auto".to_owned(),
            branch: "main".to_owned(),
            tls_verify: "system".to_owned(),
            enabled: Some("on".to_owned()),
            deploy_mode: DeployMode::Ordered.as_str().to_owned(),
            ..Self::default()
        }
    }

    /// Checks every field; all problems at once.
    pub fn check(&self) -> Result<CheckedForm, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = self.name.trim();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with(['.', '-'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            errors.insert(
                "name",
                "Use 1 to 64 letters, digits, “-”, “_” or “.”, not starting with “.” or “-”."
                    .to_owned(),
            );
        }
        let repo = self.repo.trim().to_owned();
        if repo.is_empty() {
            errors.insert(
                "repo",
                "Give the repository's URL (https://, ssh://, git@host:path, file:// or a path)."
                    .to_owned(),
            );
        }
        let provider = match self.provider.trim() {
            "" | "auto" => Some(Provider::guess_from_repo(&repo)),
            text => match text.parse::<Provider>() {
                Ok(provider) => Some(provider),
                Err(e) => {
                    errors.insert("provider", e.to_string());
                    None
                }
            },
        };
        let branch = match self.branch.trim().parse::<BranchPattern>() {
            Ok(branch) => Some(branch),
            Err(e) => {
                errors.insert("branch", e.to_string());
                None
            }
        };
        let target = match self.target.trim().parse::<DeployTarget>() {
            Ok(target) if target.password.is_some() => {
                errors.insert(
                    "target",
                    "Leave the password out of the URL; put it in the password field.".to_owned(),
                );
                None
            }
            Ok(target) => Some(target),
            Err(e) => {
                errors.insert("target", e.to_string());
                None
            }
        };
        let tls_verify = match self.tls_verify.as_str() {
            "" | "system" => Some(TlsVerify::SystemRoots),
            "insecure" => Some(TlsVerify::Insecure),
            "ca-file" if !self.ca_file.trim().is_empty() => {
                Some(TlsVerify::CaFile(PathBuf::from(self.ca_file.trim())))
            }
            "ca-file" => {
                errors.insert(
                    "ca_file",
                    "Give the path of the PEM file holding the CA certificate.".to_owned(),
                );
                None
            }
            other => {
                errors.insert(
                    "tls_verify",
                    format!("Unknown choice {other:?}: system, ca-file or insecure."),
                );
                None
            }
        };
        let api_url = Some(self.api_url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty());
        if let Some(url) = &api_url {
            let parsed = url::Url::parse(url);
            if !parsed.is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                errors.insert(
                    "api_url",
                    "Give an http(s) URL, as in https://git.example.com/api/v1, or leave it empty."
                        .to_owned(),
                );
            }
        }
        let deploy = self.deploy_settings(&mut errors);
        match (provider, branch, target, tls_verify, deploy) {
            (Some(provider), Some(branch), Some(target), Some(tls_verify), Some(deploy))
                if errors.is_empty() =>
            {
                Ok(CheckedForm {
                    api_url,
                    repo,
                    provider,
                    branch,
                    target,
                    tls_verify,
                    notification_set: Some(self.notification_set.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                    deploy,
                })
            }
            _ => Err(errors),
        }
    }

    /// The deploy mode, its fallback, the entry points and the maintenance page, each problem
    /// on its field.
    fn deploy_settings(&self, errors: &mut FieldErrors) -> Option<DeploySettings> {
        let mode = match self.deploy_mode.trim() {
            "" => Some(DeployMode::Ordered),
            text => match text.parse::<DeployMode>() {
                Ok(mode) => Some(mode),
                Err(e) => {
                    errors.insert("deploy_mode", e);
                    None
                }
            },
        };
        let entry_points: Vec<String> = self
            .entry_points
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if let Err(e) = DeploySettings::check_entry_points(&entry_points) {
            errors.insert(
                "entry_points",
                format!("{e}; write glob patterns such as *.html or templates/*.tpl"),
            );
        }
        let maintenance = match self.maintenance.trim() {
            "" => Some(None),
            text => match text.parse::<MaintenancePage>() {
                Ok(page) => Some(Some(page)),
                Err(e) => {
                    errors.insert("maintenance", e);
                    None
                }
            },
        };
        let settings = DeploySettings {
            mode: mode?,
            fallback_ordered: self.fallback_ordered.is_some(),
            entry_points,
            maintenance: maintenance?,
        };
        if let Err(e) = settings.strategy().check() {
            let field = if settings.fallback_ordered && settings.mode != DeployMode::Swap {
                "fallback_ordered"
            } else {
                "maintenance"
            };
            errors.insert(field, e);
            return None;
        }
        Some(settings)
    }

    fn secret(text: &str) -> Option<Secret> {
        Some(text.trim()).filter(|t| !t.is_empty()).map(Secret::new)
    }

    /// The service to add; the webhook secret is generated when the field is empty (and the
    /// provider sends webhooks). The second value says whether it was generated.
    pub fn new_service(&self, checked: CheckedForm) -> NewService {
        let webhook_secret = match (Self::secret(&self.webhook_secret), &self.no_secret) {
            (Some(secret), _) => Some(secret),
            (None, Some(_)) => None,
            (None, None) if checked.provider == Provider::Git => None,
            (None, None) => Some(generate_webhook_secret()),
        };
        NewService {
            name: self.name.trim().to_owned(),
            repo_url: checked.repo,
            provider: checked.provider,
            branch: checked.branch,
            target: checked.target,
            tls_verify: checked.tls_verify,
            notification_set: checked.notification_set,
            api_url: checked.api_url,
            deploy: checked.deploy,
            secrets: ServiceSecrets {
                ftp_password: Self::secret(&self.ftp_password),
                provider_token: Self::secret(&self.provider_token),
                webhook_secret,
            },
        }
    }

    /// The change to a service: empty secret fields keep the stored secret.
    pub fn update(&self, checked: CheckedForm) -> ServiceUpdate {
        ServiceUpdate {
            repo_url: Some(checked.repo),
            provider: Some(checked.provider),
            branch: Some(checked.branch),
            target: Some(checked.target),
            tls_verify: Some(checked.tls_verify),
            notification_set: Some(checked.notification_set),
            enabled: Some(self.enabled.is_some()),
            ftp_password: Self::secret(&self.ftp_password).map(Some),
            provider_token: if self.clear_token.is_some() {
                Some(None)
            } else {
                Self::secret(&self.provider_token).map(Some)
            },
            webhook_secret: if self.no_secret.is_some() {
                Some(None)
            } else {
                Self::secret(&self.webhook_secret).map(Some)
            },
            api_url: Some(checked.api_url),
            new_hook_key: self.new_key.is_some(),
            deploy_mode: Some(checked.deploy.mode),
            fallback_ordered: Some(checked.deploy.fallback_ordered),
            entry_points: Some(checked.deploy.entry_points),
            maintenance: Some(checked.deploy.maintenance),
        }
    }
}

/// The field a failed validation check is about.
pub(crate) fn check_field(check: &Check) -> &'static str {
    match check.name {
        "repository" if check.detail.contains("branch") => "branch",
        "repository" => "repo",
        "ftp login" if check.detail.contains("password") => "ftp_password",
        "ftp login" | "target directory" | "write access" => "target",
        "webhook" => "provider_token",
        "swap" => "deploy_mode",
        "webhook secret" => "webhook_secret",
        _ => "",
    }
}

/// Failed checks as problems by field.
pub(crate) fn check_errors(checks: &[Check]) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for check in checks.iter().filter(|c| !c.ok) {
        let field = check_field(check);
        let text = format!("{}: {}", check.name, check.detail);
        errors
            .entry(field)
            .and_modify(|existing| {
                existing.push_str("; ");
                existing.push_str(&text);
            })
            .or_insert(text);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> ServiceForm {
        ServiceForm {
            name: "site".into(),
            repo: "https://github.com/o/site.git".into(),
            branch: "main".into(),
            target: "ftps://deploy@ftp.example.com/www".into(),
            ..ServiceForm::blank()
        }
    }

    #[test]
    fn a_complete_form_checks_and_guesses_the_provider_and_makes_a_secret() {
        let form = filled();
        let new = form.new_service(form.check().unwrap());
        assert_eq!(new.provider, Provider::Github);
        assert!(new.secrets.webhook_secret.is_some());
        assert_eq!(new.secrets.ftp_password, None);
    }

    #[test]
    fn every_bad_field_gets_its_own_problem() {
        let form = ServiceForm {
            repo: " ".into(),
            branch: "".into(),
            target: "http://example.com/".into(),
            tls_verify: "ca-file".into(),
            provider: "svn".into(),
            name: "-site".into(),
            api_url: "git.example.com".into(),
            ..filled()
        };
        let errors = form.check().unwrap_err();
        let fields: Vec<&str> = errors.keys().copied().collect();
        assert_eq!(
            fields,
            [
                "api_url", "branch", "ca_file", "name", "provider", "repo", "target"
            ]
        );
    }

    #[test]
    fn the_deploy_fields_check_each_on_its_own_and_together() {
        let form = ServiceForm {
            deploy_mode: "swap".into(),
            fallback_ordered: Some("on".into()),
            entry_points: "*.php\n templates/*.tpl ".into(),
            maintenance: "down.html".into(),
            ..filled()
        };
        let new = form.new_service(form.check().unwrap());
        assert_eq!(new.deploy.mode, DeployMode::Swap);
        assert_eq!(new.deploy.entry_points, ["*.php", "templates/*.tpl"]);
        assert_eq!(
            new.deploy.maintenance.map(|p| p.to_string()).as_deref(),
            Some("down.html:index.html")
        );
        let bad = ServiceForm {
            deploy_mode: "blue-green".into(),
            entry_points: "[unclosed".into(),
            maintenance: "../down.html".into(),
            ..filled()
        };
        let errors = bad.check().unwrap_err();
        let fields: Vec<&str> = errors.keys().copied().collect();
        assert_eq!(fields, ["deploy_mode", "entry_points", "maintenance"]);
        let clash = ServiceForm {
            deploy_mode: "swap".into(),
            maintenance: "down.html".into(),
            ..filled()
        };
        assert!(clash.check().unwrap_err()["maintenance"].contains("fallback"));
    }

    #[test]
    fn a_password_in_the_target_url_is_refused() {
        let form = ServiceForm {
            target: "ftp://deploy:hunter2@ftp.example.com/www".into(),
            ..filled()
        };
        assert!(form.check().unwrap_err().contains_key("target"));
    }

    #[test]
    fn empty_secret_fields_keep_the_stored_secrets_on_edit() {
        let form = filled();
        let update = form.update(form.check().unwrap());
        assert!(update.ftp_password.is_none() && update.webhook_secret.is_none());
        assert!(update.provider_token.is_none());
        let form = ServiceForm {
            clear_token: Some("on".into()),
            ftp_password: "pw".into(),
            ..filled()
        };
        let update = form.update(form.check().unwrap());
        assert_eq!(update.provider_token, Some(None));
        assert_eq!(update.ftp_password, Some(Some(Secret::new("pw"))));
    }

    #[test]
    fn failed_checks_land_on_their_fields() {
        let checks = [
            Check {
                name: "repository",
                ok: false,
                detail: "x has no branch matching \"dev\"".into(),
            },
            Check {
                name: "write access",
                ok: false,
                detail: "cannot write".into(),
            },
            Check {
                name: "ftp login",
                ok: true,
                detail: "logged in".into(),
            },
        ];
        let errors = check_errors(&checks);
        assert!(errors["branch"].contains("no branch matching"));
        assert!(errors["target"].contains("cannot write"));
        assert_eq!(errors.len(), 2);
    }
}
