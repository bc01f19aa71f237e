//! The add/edit service form: what it posts, how each field is checked (problems by field, so
//! the page shows them beside the fields), and how a validation check's failure maps back to
//! the field it is about.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::deploy::DeployTarget;
use crate::deploy::service::model::{
    NewService, Secret, Service, ServiceSecrets, ServiceUpdate, TlsVerify,
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
        match (provider, branch, target, tls_verify) {
            (Some(provider), Some(branch), Some(target), Some(tls_verify)) if errors.is_empty() => {
                Ok(CheckedForm {
                    api_url,
                    repo,
                    provider,
                    branch,
                    target,
                    tls_verify,
                    notification_set: Some(self.notification_set.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                })
            }
            _ => Err(errors),
        }
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
