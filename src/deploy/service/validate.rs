//! Checks that a service can deploy before a push needs it: the repository answers and has the
//! branch, the FTP target accepts the stored login (with the service's TLS verification), the
//! target directory is a directory (or can be made), a file can be uploaded there, replaced by a
//! rename from a temporary name and deleted — the steps of every deploy — in the swap mode a
//! directory beside the site can be renamed (the swap's step), and — with a provider token —
//! the git host has the service's webhook registered. The CLI (`service
//! add/edit/validate`), the API and `deploy serve`'s schedule all run [`validate_and_record`].

use crate::deploy::service::blocking::run_blocking;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ClientError, FtpClient, RemoteKind, StoreMode};

use tracing::{info, warn};

use super::git_auth;
use super::model::{Service, ServiceSecrets, Validation, ValidationCheck};
use super::provider_api::ProviderApi;
use super::store::{DeployStore, DeployStoreError};
use super::webhook::Provider;
use crate::deploy::engine::connection::rename_over;
use crate::deploy::engine::ignore_rules::TEMP_PREFIX;
use crate::deploy::engine::mode::DeployMode;
use crate::deploy::engine::swap::{SwapNames, probe_renames};

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The name of the probe file written into the target and removed at once.
pub const PROBE_NAME: &str = ".ferry-validate.tmp";

/// Runs every check; a check that cannot run (no password, no connection) fails with the reason.
pub async fn validate(service: &Service, secrets: &ServiceSecrets) -> Vec<Check> {
    let mut checks = vec![check_repository(service, secrets).await];
    checks.extend(check_target(service, secrets).await);
    checks.push(check_webhook(service, secrets).await);
    if service.provider != Provider::Git && !service.has_webhook_secret {
        checks.push(Check {
            name: "webhook secret",
            ok: true,
            detail: "no webhook secret: the hook URL's key alone authenticates pushes".to_owned(),
        });
    }
    checks
}

/// Parses `--validate-every`: `0` (off), seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration; use 0, 90s, 15m, 1h or 1d"
            ));
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; use 0, 90s, 15m, 1h or 1d"))?;
    Ok(Duration::from_secs(number.saturating_mul(seconds_per)))
}

/// `deploy serve`'s schedule: every `every`, each service is validated in turn (one at a time,
/// so the FTP servers and git hosts see one probe at once) and the results are stored.
pub async fn run_schedule(store: Arc<DeployStore>, every: Duration) {
    if every.is_zero() {
        return;
    }
    info!(every_seconds = every.as_secs(), "scheduled validation on");
    loop {
        tokio::time::sleep(every).await;
        let list = Arc::clone(&store);
        let services = match run_blocking(move || list.services().list()).await {
            Ok(services) => services,
            Err(error) => {
                warn!(%error, "scheduled validation: cannot list the services");
                continue;
            }
        };
        for service in services {
            match validate_and_record(Arc::clone(&store), &service.name).await {
                Ok((_, validation)) if validation.ok => {
                    info!(service = service.name, "scheduled validation passed");
                }
                Ok((_, validation)) => warn!(
                    service = service.name,
                    problems = validation.message,
                    "scheduled validation failed"
                ),
                // Deleted meanwhile, or the store failed: the next round tries again.
                Err(error) => warn!(service = service.name, %error, "cannot validate"),
            }
        }
    }
}

/// Validates the named service with its stored secrets and stores each check's result.
pub async fn validate_and_record(
    store: Arc<DeployStore>,
    name: &str,
) -> Result<(Vec<Check>, Validation), DeployStoreError> {
    let lookup = Arc::clone(&store);
    let owned = name.to_owned();
    let (service, secrets) = run_blocking(move || {
        Ok::<_, DeployStoreError>((
            lookup.services().get(&owned)?,
            lookup.services().secrets(&owned)?,
        ))
    })
    .await?;
    let checks = validate(&service, &secrets).await;
    let stored: Vec<ValidationCheck> = checks.iter().map(Check::to_stored).collect();
    let owned = name.to_owned();
    let validation =
        run_blocking(move || store.services().record_validation_checks(&owned, &stored)).await?;
    Ok((checks, validation))
}

impl Check {
    pub fn to_stored(&self) -> ValidationCheck {
        ValidationCheck {
            name: self.name.to_owned(),
            ok: self.ok,
            message: self.detail.clone(),
        }
    }
}

/// The webhook is registered on the git host, active and sent on pushes; checked through the
/// host's API with the provider token, and only then.
async fn check_webhook(service: &Service, secrets: &ServiceSecrets) -> Check {
    let name = "webhook";
    if service.provider == Provider::Git {
        return passed(
            name,
            "not checked: a plain git server has no webhook API".to_owned(),
        );
    }
    let Some(token) = &secrets.provider_token else {
        return passed(name, "not checked: no provider token".to_owned());
    };
    let api = match ProviderApi::new(
        service.provider,
        &service.repo_url,
        service.api_url.as_deref(),
        token.clone(),
    ) {
        Ok(api) => api,
        Err(error) => return failed(name, error.to_string()),
    };
    let repo = api.repo().display();
    match api.find_hook(&service.hook_path()).await {
        Ok(Some(hook)) if !hook.active => failed(
            name,
            format!(
                "the webhook {} on {repo} is disabled; enable it on the host",
                hook.url
            ),
        ),
        Ok(Some(hook)) if !hook.push => failed(
            name,
            format!("the webhook {} on {repo} is not sent on pushes", hook.url),
        ),
        Ok(Some(hook)) => passed(name, format!("registered on {repo}: {}", hook.url)),
        Ok(None) => failed(
            name,
            format!(
                "{repo} has no webhook to .../hooks/KEY of this service; add it with: ferry \
                 deploy service hook {} --public-url URL",
                service.name
            ),
        ),
        Err(error) => failed(name, error.to_string()),
    }
}

async fn check_repository(service: &Service, secrets: &ServiceSecrets) -> Check {
    let name = "repository";
    let mut command = crate::deploy::engine::git::async_command();
    command.args(["ls-remote", "--heads", "--", &service.repo_url]);
    if let Some(token) = &secrets.provider_token {
        command.envs(git_auth::git_env(
            service.provider,
            &service.repo_url,
            token,
        ));
    }
    let listing = tokio::time::timeout(Duration::from_secs(60), command.output()).await;
    let output = match listing {
        Err(_) => return failed(name, "git ls-remote did not answer within 60 s".to_owned()),
        Ok(Err(error)) => return failed(name, format!("cannot run git: {error}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let why = git_auth::explain_git_error(
            &String::from_utf8_lossy(&output.stderr),
            secrets.provider_token.is_some(),
        );
        return failed(name, format!("{} cannot be read: {why}", service.repo_url));
    }
    let branches: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split('\t').nth(1))
        .filter_map(|r| r.strip_prefix("refs/heads/"))
        .map(str::to_owned)
        .collect();
    let matching = branches
        .iter()
        .filter(|b| service.branch.matches(b))
        .count();
    if matching == 0 {
        return failed(
            name,
            format!(
                "{} has no branch matching {:?} (it has {})",
                service.repo_url,
                service.branch.as_str(),
                if branches.is_empty() {
                    "none".to_owned()
                } else {
                    branches.join(", ")
                }
            ),
        );
    }
    passed(
        name,
        format!("{matching} matching branch(es) in {}", service.repo_url),
    )
}

async fn check_target(service: &Service, secrets: &ServiceSecrets) -> Vec<Check> {
    let Some(password) = &secrets.ftp_password else {
        return vec![failed(
            "ftp login",
            "no FTP password is stored; set one with: ferry deploy service edit NAME --password-stdin"
                .to_owned(),
        )];
    };
    let target = &service.target;
    let config = target.client_config(password.expose().to_owned(), service.tls_verify.to_client());
    let mut client = match FtpClient::connect(config).await {
        Ok(client) => client,
        Err(error) => {
            return vec![failed(
                "ftp login",
                format!("{}: {error}", target.display_url()),
            )];
        }
    };
    let mut checks = vec![passed(
        "ftp login",
        format!("logged in to {}", target.display_url()),
    )];
    let dir = target.path.as_str();
    let kind = if dir.is_empty() {
        Ok(Some(RemoteKind::Dir))
    } else {
        client.kind_of(dir).await
    };
    // A missing target directory is made for the probe and removed after it, as the first
    // deploy would make it; what validation creates, it removes.
    let mut created = Vec::new();
    match kind {
        Ok(Some(RemoteKind::Dir)) => {
            checks.push(passed("target directory", format!("/{dir} exists")));
        }
        Ok(None) => match make_missing_dirs(&mut client, dir).await {
            Ok(made) => {
                checks.push(passed(
                    "target directory",
                    format!("/{dir} does not exist yet; the first deploy creates it (tried)"),
                ));
                created = made;
            }
            Err(error) => {
                checks.push(failed(
                    "target directory",
                    format!(
                        "/{dir} does not exist and cannot be created ({error}); create it or \
                         give the account the right to"
                    ),
                ));
                let _ = client.quit().await;
                return checks;
            }
        },
        Ok(Some(_)) => {
            checks.push(failed(
                "target directory",
                format!("/{dir} is not a directory"),
            ));
            let _ = client.quit().await;
            return checks;
        }
        Err(error) => {
            checks.push(failed("target directory", format!("/{dir}: {error}")));
            return checks;
        }
    }
    checks.push(match probe_deploy_steps(&mut client, dir).await {
        Ok(detail) => passed("write access", detail),
        Err(detail) => failed("write access", detail),
    });
    if service.deploy.mode == DeployMode::Swap {
        checks.push(check_swap(&mut client, service).await);
    }
    for made in created.iter().rev() {
        if let Err(error) = client.rmdir(made).await {
            warn!(dir = made, %error, "validation cannot remove the directory it made");
        }
    }
    let _ = client.quit().await;
    checks
}

/// The swap mode renames the site's directory: the account must be allowed to rename a
/// directory beside it, which the engine's own probe tries. A refusal fails the check unless the
/// service falls back to ordered deploys in place.
async fn check_swap(client: &mut FtpClient, service: &Service) -> Check {
    let name = "swap";
    let names = match SwapNames::for_root(&service.target.path) {
        Ok(names) => names,
        Err(_) => {
            return failed(
                name,
                "the swap mode needs a deploy directory below the login directory (as in \
                 ftp://USER@HOST/www): the login directory itself cannot be renamed; change the \
                 target or choose the ordered mode"
                    .to_owned(),
            );
        }
    };
    match probe_renames(client, &names).await {
        Ok(()) => passed(
            name,
            format!(
                "renamed a directory beside /{} (the swap's step), as every swapped deploy does",
                names.live
            ),
        ),
        Err(error) if service.deploy.fallback_ordered => passed(
            name,
            format!(
                "renaming a directory beside /{} is refused ({error}): deploys fall back to \
                 ordered phases in place",
                names.live
            ),
        ),
        Err(error) => failed(
            name,
            format!(
                "renaming a directory beside /{} is refused ({error}), and the swap mode renames \
                 the site's directory: ask the host for the rename permission in its parent, \
                 allow the ordered fallback, or choose the ordered mode",
                names.live
            ),
        ),
    }
}

/// Makes `dir` and its missing parents; the ones it made, parents first.
async fn make_missing_dirs(client: &mut FtpClient, dir: &str) -> Result<Vec<String>, ClientError> {
    let mut made = Vec::new();
    let mut prefix = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if client.kind_of(&prefix).await?.is_none() {
            client.mkdir(&prefix).await?;
            made.push(prefix.clone());
        }
    }
    Ok(made)
}

/// What a deploy does to every file, on probe names in `dir`: upload a file, upload its next
/// version to the temporary name, rename that over the file, delete the file. The first step that
/// fails is named; whatever was written is removed again, failure or not.
async fn probe_deploy_steps(client: &mut FtpClient, dir: &str) -> Result<String, String> {
    let in_dir = |name: &str| {
        if dir.is_empty() {
            name.to_owned()
        } else {
            format!("{dir}/{name}")
        }
    };
    let probe = in_dir(PROBE_NAME);
    let temp = in_dir(&format!("{TEMP_PREFIX}{PROBE_NAME}"));
    let mut body: &[u8] = b"ferry deploy service validate\n";
    let result = async {
        client
            .store(&probe, &mut body, StoreMode::Replace)
            .await
            .map_err(|e| format!("uploading {probe} failed: {e}"))?;
        let mut body: &[u8] = b"ferry deploy service validate, again\n";
        client
            .store(&temp, &mut body, StoreMode::Replace)
            .await
            .map_err(|e| format!("uploading {temp} failed: {e}"))?;
        rename_over(client, &temp, &probe).await.map_err(|e| {
            format!(
                "renaming {temp} over {probe} failed: {e}; every deploy uploads to a temporary \
                 name and renames it into place, so the account needs the rename permission"
            )
        })?;
        client.delete(&probe).await.map_err(|e| {
            format!(
                "deleting {probe} failed: {e}; deploys delete the files a commit removes, so \
                 the account needs the delete permission"
            )
        })?;
        Ok(format!(
            "uploaded, renamed over and deleted {probe}, as every deploy does"
        ))
    }
    .await;
    if result.is_err() {
        for name in [&temp, &probe] {
            let _ = client.delete(name).await;
        }
    }
    result
}

fn passed(name: &'static str, detail: String) -> Check {
    Check {
        name,
        ok: true,
        detail,
    }
}

fn failed(name: &'static str, detail: String) -> Check {
    Check {
        name,
        ok: false,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units_and_zero_is_off() {
        assert_eq!(parse_interval("0"), Ok(Duration::ZERO));
        assert_eq!(parse_interval("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "h", "1x", "-1h", "1.5h"] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }
}
