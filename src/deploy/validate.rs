//! Checks that a service can deploy before a push needs it: the repository answers and has the
//! branch, the FTP target accepts the stored login (with the service's TLS verification), the
//! target directory is a directory, and a file can be written there and removed again.

use std::time::Duration;

use crate::client::{FtpClient, RemoteKind, StoreMode};

use super::store::{Service, ServiceSecrets};

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
    let mut checks = vec![check_repository(service).await];
    checks.extend(check_target(service, secrets).await);
    if service.provider != super::webhook::Provider::Git && !service.has_webhook_secret {
        checks.push(Check {
            name: "webhook",
            ok: true,
            detail: "no webhook secret: the hook URL's key alone authenticates pushes".to_owned(),
        });
    }
    checks
}

async fn check_repository(service: &Service) -> Check {
    let name = "repository";
    let listing = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("git")
            .args(["ls-remote", "--heads", "--", &service.repo_url])
            .env("GIT_TERMINAL_PROMPT", "0")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let output = match listing {
        Err(_) => return failed(name, "git ls-remote did not answer within 60 s".to_owned()),
        Ok(Err(error)) => return failed(name, format!("cannot run git: {error}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr).trim().to_owned();
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
    let probe = match kind {
        Ok(Some(RemoteKind::Dir)) => {
            checks.push(passed("target directory", format!("/{dir} exists")));
            if dir.is_empty() {
                PROBE_NAME.to_owned()
            } else {
                format!("{dir}/{PROBE_NAME}")
            }
        }
        Ok(None) => {
            checks.push(passed(
                "target directory",
                format!("/{dir} does not exist yet; the first deploy creates it"),
            ));
            let _ = client.quit().await;
            return checks;
        }
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
    };
    let mut body: &[u8] = b"ferry deploy service validate\n";
    let written = match client.store(&probe, &mut body, StoreMode::Replace).await {
        Ok(_) => client.delete(&probe).await,
        Err(error) => Err(error),
    };
    checks.push(match written {
        Ok(()) => passed("write access", format!("wrote and removed {probe}")),
        Err(error) => failed("write access", format!("cannot write {probe}: {error}")),
    });
    let _ = client.quit().await;
    checks
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
