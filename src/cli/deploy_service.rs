//! `ferry deploy service add/list/show/edit/del/validate/hook`: the clap types and their
//! handlers. The command names and flags are a contract (scripts and tests drive them); extend
//! them, never rename them.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::deploy_store::{Access, SecretKeyArgs};
use crate::deploy::engine::maintenance::MaintenancePage;
use crate::deploy::engine::mode::DeployMode;
use crate::deploy::engine::target::DeployTarget;
use crate::deploy::service::model::{
    DeploySettings, DeployStatus, NewService, Secret, Service, ServiceSecrets, ServiceUpdate,
    TlsVerify, Validation,
};
use crate::deploy::service::store::{
    DeployStore, DeployStoreError, SentSecret, generate_webhook_secret,
};
use crate::deploy::service::validate::validate_and_record;
use crate::deploy::service::webhook::{BranchPattern, Provider};

/// `ferry deploy service ...`
#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub key: SecretKeyArgs,
    #[command(subcommand)]
    pub command: ServiceCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Add a service: pushes to BRANCH of the repository deploy to the FTP target.
    Add {
        /// The service's name (as `deploy service list` shows it).
        name: String,
        #[command(flatten)]
        settings: ServiceSettings,
    },
    /// List the services.
    List,
    /// Show one service (never its secrets).
    Show {
        /// The service's name (as `deploy service list` shows it).
        name: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a service; flags not given keep their value.
    Edit {
        /// The service's name (as `deploy service list` shows it).
        name: String,
        #[command(flatten)]
        settings: ServiceSettings,
        /// Remove the provider token.
        #[arg(long, conflicts_with = "token_stdin")]
        clear_token: bool,
        /// Issue a new webhook URL key; the old hook URL stops working.
        #[arg(long)]
        new_key: bool,
        /// Stop deploying pushes (webhooks are still answered and recorded).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Deploy pushes again.
        #[arg(long)]
        enable: bool,
    },
    /// Delete a service and its deploy log (the files on the target stay).
    Del {
        /// The service's name (as `deploy service list` shows it).
        name: String,
    },
    /// Check that the service can deploy: the repository and branch, the FTP login, the target
    /// directory and write access (a probe file is written and removed), and with a provider
    /// token the webhook on the git host. The result is stored and shown by `show`; the exit
    /// code is 1 when a check fails.
    Validate {
        /// The service's name (as `deploy service list` shows it).
        name: String,
    },
    /// Register the service's webhook on its git host through the host's API (needs a
    /// provider token that may manage webhooks), with the service's secret; nothing is changed
    /// when it is already there.
    Hook {
        /// The service's name (as `deploy service list` shows it).
        name: String,
        /// The address git hosts reach `ferry deploy serve` on, as in
        /// https://deploy.example.com: the hook is that plus /hooks/KEY.
        #[arg(long, value_name = "URL", env = "FERRY_PUBLIC_URL")]
        public_url: String,
    },
}

/// The settings `add` requires and `edit` may change.
#[derive(Debug, Args)]
pub struct ServiceSettings {
    /// The repository: any git URL, `file://` or a local path.
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// The branch to deploy: a name (`main`) or a glob (`release/*`).
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// The FTP target: ftp[s]://USER@HOST[:PORT]/PATH (ftps = explicit TLS, ftps-implicit).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Who sends the webhooks: github, bitbucket, gitea (also Forgejo), gitlab or git. Default
    /// for `add`: guessed from the repository host, else git.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// The webhook secret (HMAC key, or GitLab's token). Default for `add`: a generated one.
    #[arg(long, value_name = "S")]
    pub secret: Option<String>,
    /// Use no webhook secret (with `edit`: remove it): the URL key alone then authenticates
    /// webhooks.
    #[arg(long, conflicts_with = "secret")]
    pub no_secret: bool,
    /// Read the FTP password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Read the provider's API token from the next line of standard input.
    #[arg(long)]
    pub token_stdin: bool,
    /// Check the target's certificate against this PEM file (a private CA or self-signed).
    #[arg(long, value_name = "PEM", conflicts_with_all = ["insecure", "verify_system"])]
    pub ca_file: Option<PathBuf>,
    /// Do not check the target's certificate at all.
    #[arg(long, conflicts_with = "verify_system")]
    pub insecure: bool,
    /// Check the target's certificate against the system's roots (the default).
    #[arg(long)]
    pub verify_system: bool,
    /// The notification set to use.
    #[arg(long, value_name = "SET", conflicts_with = "no_notify")]
    pub notify: Option<String>,
    /// Use no notification set.
    #[arg(long)]
    pub no_notify: bool,
    /// The git host's API root, for GitHub Enterprise or a self-hosted Gitea or GitLab (as in
    /// https://git.example.com/api/v1); an empty value goes back to the provider's default.
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// How deploys reach the site: ordered (in place, new files first and entry points last;
    /// the default), unordered (in place, all at once) or swap (a standby copy beside the site
    /// is brought up to the commit, then the two directories' names are swapped).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<DeployMode>,
    /// With --mode swap, on a server that refuses to rename directories: deploy in place, in
    /// ordered phases, instead of failing (and validation does not fail on it).
    #[arg(long, conflicts_with = "no_fallback_ordered")]
    pub fallback_ordered: bool,
    /// Fail a swap the server refuses (the default).
    #[arg(long)]
    pub no_fallback_ordered: bool,
    /// A file pattern that names an entry point, uploaded after everything it may reference
    /// (repeatable; replaces the defaults and the repository's .ferrydeploy `entry`).
    #[arg(long = "entry", value_name = "GLOB", conflicts_with = "no_entry")]
    pub entry_points: Vec<String>,
    /// Back to the repository's .ferrydeploy `entry`, else the default entry points.
    #[arg(long)]
    pub no_entry: bool,
    /// While a deploy runs in place, show visitors FILE (a file of the deployed commit) at
    /// TARGET (relative to the deploy directory; default index.html); see `ferry deploy push
    /// --help`.
    #[arg(long, value_name = "FILE[:TARGET]", value_parser = parse_maintenance, conflicts_with = "no_maintenance")]
    pub maintenance: Option<MaintenancePage>,
    /// Show no maintenance page.
    #[arg(long)]
    pub no_maintenance: bool,
    /// Save without checking that the service can deploy.
    #[arg(long)]
    pub no_validate: bool,
}

fn parse_mode(text: &str) -> Result<DeployMode, String> {
    text.parse()
}

fn parse_maintenance(text: &str) -> Result<MaintenancePage, String> {
    text.parse()
}

impl ServiceSettings {
    fn tls_verify(&self) -> Option<TlsVerify> {
        if let Some(path) = &self.ca_file {
            Some(TlsVerify::CaFile(path.clone()))
        } else if self.insecure {
            Some(TlsVerify::Insecure)
        } else if self.verify_system {
            Some(TlsVerify::SystemRoots)
        } else {
            None
        }
    }

    /// The FTP password and provider token from standard input, as the flags ask.
    fn read_stdin(&self) -> anyhow::Result<(Option<Secret>, Option<Secret>)> {
        if !self.password_stdin && !self.token_stdin {
            return Ok((None, None));
        }
        let stdin = std::io::stdin();
        let mut lines = stdin.lock();
        let mut next = |what: &str| -> anyhow::Result<Secret> {
            let mut line = String::new();
            lines
                .read_line(&mut line)
                .with_context(|| format!("cannot read the {what} from standard input"))?;
            let value = line.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                bail!("the {what} on standard input is empty");
            }
            Ok(Secret::new(value))
        };
        let password = self
            .password_stdin
            .then(|| next("FTP password"))
            .transpose()?;
        let token = self
            .token_stdin
            .then(|| next("provider token"))
            .transpose()?;
        Ok((password, token))
    }
}

fn parse_provider(text: &str) -> anyhow::Result<Provider> {
    text.parse().map_err(anyhow::Error::msg)
}

fn parse_branch(text: &str) -> anyhow::Result<BranchPattern> {
    text.parse().map_err(anyhow::Error::msg)
}

/// An API root: an http(s) URL, kept without a trailing slash.
fn parse_api_url(text: &str) -> anyhow::Result<String> {
    let url =
        url::Url::parse(text.trim()).with_context(|| format!("--api-url {text:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--api-url must be an http or https URL, as in https://git.example.com/api/v1");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn parse_target(text: &str) -> anyhow::Result<DeployTarget> {
    let target: DeployTarget = text.parse().map_err(anyhow::Error::msg)?;
    if target.password.is_some() {
        anyhow::bail!(
            "the target URL holds a password; leave it out and pass it on standard input with \
             --password-stdin"
        );
    }
    Ok(target)
}

/// Runs one `deploy service` command against the database at `db`.
pub async fn run(db: &Path, args: ServiceArgs) -> anyhow::Result<()> {
    let access = match &args.command {
        ServiceCommand::Add { .. } => Access::Create,
        ServiceCommand::List | ServiceCommand::Show { .. } => Access::Read,
        _ => Access::Change,
    };
    let store = Arc::new(args.key.open_store(db, access)?);
    match args.command {
        ServiceCommand::Add { name, settings } => {
            let validate = !settings.no_validate;
            add(&store, name.clone(), settings)?;
            if validate {
                validate_after_saving(&store, &name).await?;
            }
            Ok(())
        }
        ServiceCommand::List => list(&store),
        ServiceCommand::Show { name, json } => show(&store, &name, json),
        ServiceCommand::Edit {
            name,
            settings,
            clear_token,
            new_key,
            disable,
            enable,
        } => {
            let flags = EditFlags {
                clear_token,
                new_key,
                disable,
                enable,
            };
            edit(&store, &name, &settings, flags)?;
            if !settings.no_validate {
                validate_after_saving(&store, &name).await?;
            }
            Ok(())
        }
        ServiceCommand::Del { name } => {
            store.services().delete(&name)?;
            crate::outln!("service {name} deleted (the files on its target are kept)");
            Ok(())
        }
        ServiceCommand::Validate { name } => {
            let validation = validate_service(&store, &name).await?;
            if !validation.ok {
                bail!("service {name} cannot deploy: {}", validation.message);
            }
            Ok(())
        }
        ServiceCommand::Hook { name, public_url } => {
            register_hook(&store, &name, &public_url).await
        }
    }
}

/// Runs every check, prints each and stores them all.
async fn validate_service(store: &Arc<DeployStore>, name: &str) -> anyhow::Result<Validation> {
    let (checks, validation) = validate_and_record(Arc::clone(store), name).await?;
    for check in &checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        crate::outln!("{mark} {:<17} {}", check.name, check.detail);
    }
    Ok(validation)
}

/// After `add` and `edit`: the checks are shown and stored; a failing one does not undo the
/// change.
async fn validate_after_saving(store: &Arc<DeployStore>, name: &str) -> anyhow::Result<()> {
    crate::outln!("validating (--no-validate skips this):");
    let validation = validate_service(store, name).await?;
    if !validation.ok {
        crate::outln!(
            "saved, but service {name} cannot deploy yet: {}",
            validation.message
        );
    }
    Ok(())
}

async fn register_hook(
    store: &Arc<DeployStore>,
    name: &str,
    public_url: &str,
) -> anyhow::Result<()> {
    let service = store.services().get(name)?;
    let secrets = store.services().secrets(name)?;
    let outcome =
        crate::deploy::service::provider_api::ensure_hook(&service, &secrets, public_url).await?;
    let verb = if outcome.created {
        "registered"
    } else {
        "already registered"
    };
    crate::outln!(
        "webhook {verb} on {}: {} (id {})",
        outcome.repo,
        outcome.hook.url,
        outcome.hook.id
    );
    Ok(())
}

fn add(store: &DeployStore, name: String, settings: ServiceSettings) -> anyhow::Result<()> {
    let (Some(repo), Some(branch), Some(to)) = (&settings.repo, &settings.branch, &settings.to)
    else {
        bail!(
            "a service needs --repo URL, --branch B and --to ftp[s]://USER@HOST[:PORT]/PATH, \
             as in: ferry deploy service add site --repo https://github.com/o/site.git \
             --branch main --to ftps://deploy@ftp.example.com/www --password-stdin"
        );
    };
    let provider = match &settings.provider {
        Some(text) => parse_provider(text)?,
        None => Provider::guess_from_repo(repo),
    };
    let branch = parse_branch(branch)?;
    let target = parse_target(to)?;
    let (ftp_password, provider_token) = settings.read_stdin()?;
    if ftp_password.is_none() {
        tracing::warn!("no FTP password given (--password-stdin); deploys will log in without one");
    }
    // Plain git servers send no webhooks of their own, so a secret is only generated for hosts.
    let (webhook_secret, generated) = match (&settings.secret, settings.no_secret, provider) {
        (Some(secret), _, _) => (Some(Secret::new(secret.as_str())), false),
        (None, true, _) | (None, false, Provider::Git) => (None, false),
        (None, false, _) => (Some(generate_webhook_secret()), true),
    };
    let service = store.services().add(&NewService {
        name: name.clone(),
        repo_url: repo.clone(),
        provider,
        branch,
        target,
        tls_verify: settings.tls_verify().unwrap_or(TlsVerify::SystemRoots),
        notification_set: settings.notify.clone(),
        secrets: ServiceSecrets {
            ftp_password,
            provider_token,
            webhook_secret: webhook_secret.clone(),
        },
        api_url: settings
            .api_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(parse_api_url)
            .transpose()?,
        deploy: DeploySettings {
            mode: settings.mode.unwrap_or_default(),
            fallback_ordered: settings.fallback_ordered,
            entry_points: settings.entry_points.clone(),
            maintenance: settings.maintenance.clone(),
        },
    })?;
    crate::outln!("service {name} added ({provider})");
    crate::outln!("hook: {}", service.hook_path());
    if let (true, Some(secret)) = (generated, &webhook_secret) {
        crate::outln!("secret: {}", secret.expose());
    }
    Ok(())
}

/// The flags only `edit` has.
struct EditFlags {
    clear_token: bool,
    new_key: bool,
    disable: bool,
    enable: bool,
}

fn edit(
    store: &DeployStore,
    name: &str,
    settings: &ServiceSettings,
    flags: EditFlags,
) -> anyhow::Result<()> {
    let (password, token) = settings.read_stdin()?;
    let webhook_secret = if let Some(secret) = &settings.secret {
        Some(Some(Secret::new(secret.as_str())))
    } else if settings.no_secret {
        Some(None)
    } else {
        None
    };
    let update = ServiceUpdate {
        repo_url: settings.repo.clone(),
        provider: settings
            .provider
            .as_deref()
            .map(parse_provider)
            .transpose()?,
        branch: settings.branch.as_deref().map(parse_branch).transpose()?,
        target: settings.to.as_deref().map(parse_target).transpose()?,
        tls_verify: settings.tls_verify(),
        notification_set: if settings.no_notify {
            Some(None)
        } else {
            settings.notify.clone().map(Some)
        },
        enabled: if flags.enable {
            Some(true)
        } else if flags.disable {
            Some(false)
        } else {
            None
        },
        ftp_password: password.map(Some),
        provider_token: if flags.clear_token {
            Some(None)
        } else {
            token.map(Some)
        },
        webhook_secret,
        api_url: match settings.api_url.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(url) => Some(Some(parse_api_url(url)?)),
        },
        new_hook_key: flags.new_key,
        deploy_mode: settings.mode,
        fallback_ordered: if settings.fallback_ordered {
            Some(true)
        } else if settings.no_fallback_ordered {
            Some(false)
        } else {
            None
        },
        entry_points: if settings.no_entry {
            Some(Vec::new())
        } else if settings.entry_points.is_empty() {
            None
        } else {
            Some(settings.entry_points.clone())
        },
        maintenance: if settings.no_maintenance {
            Some(None)
        } else {
            settings.maintenance.clone().map(Some)
        },
    };
    let service = store
        .services()
        .update(name, &update)
        .map_err(|error| match error {
            DeployStoreError::SecretMustBeGivenAgain(moved) => {
                let flag = match moved.secret {
                    SentSecret::FtpPassword => "--password-stdin",
                    SentSecret::ProviderToken => "--token-stdin (or --clear-token)",
                };
                anyhow::anyhow!(
                    "{}; nothing was changed (give it with {flag})",
                    DeployStoreError::SecretMustBeGivenAgain(moved)
                )
            }
            other => other.into(),
        })?;
    crate::outln!("service {name} changed");
    crate::outln!("hook: {}", service.hook_path());
    Ok(())
}

fn list(store: &DeployStore) -> anyhow::Result<()> {
    crate::outln!(
        "{:<20} {:<9} {:<16} {:<12} TARGET",
        "NAME",
        "PROVIDER",
        "BRANCH",
        "DEPLOYED"
    );
    for service in store.services().list()? {
        crate::outln!(
            "{:<20} {:<9} {:<16} {:<12} {}",
            service.name,
            service.provider,
            service.branch,
            service
                .last_deployed_commit
                .as_deref()
                .map_or("-", |c| &c[..c.len().min(12)]),
            service.target,
        );
    }
    Ok(())
}

/// What `show` prints; `status` is the newest deploy's, or `new` before the first.
pub fn service_json(service: &Service, status: &str) -> serde_json::Value {
    json!({
        "name": service.name,
        "key": service.hook_key,
        "hook_path": service.hook_path(),
        "repo": service.repo_url,
        "provider": service.provider.as_str(),
        "branch": service.branch.as_str(),
        "target": service.target.to_string(),
        "tls_verify": match &service.tls_verify {
            TlsVerify::SystemRoots => json!("system"),
            TlsVerify::Insecure => json!("insecure"),
            TlsVerify::CaFile(path) => json!({ "ca_file": path }),
        },
        "notification_set": service.notification_set,
        "enabled": service.enabled,
        "has_ftp_password": service.has_ftp_password,
        "has_provider_token": service.has_provider_token,
        "has_webhook_secret": service.has_webhook_secret,
        "last_deployed_commit": service.last_deployed_commit,
        "status": status,
        "last_validation": service.last_validation,
        "api_url": service.api_url,
        "deploy_mode": service.deploy.mode.as_str(),
        "fallback_ordered": service.deploy.fallback_ordered,
        "entry_points": service.deploy.entry_points,
        "maintenance": service.deploy.maintenance.as_ref().map(ToString::to_string),
        "created_at": service.created_at,
        "updated_at": service.updated_at,
    })
}

fn show(store: &DeployStore, name: &str, as_json: bool) -> anyhow::Result<()> {
    let service = store.services().get(name)?;
    let status = store
        .deploys()
        .list(name, 1)?
        .first()
        .map_or("new", |d| DeployStatus::as_str(d.status));
    let stats = store.deploys().stats(name)?;
    if as_json {
        let mut value = service_json(&service, status);
        value["stats"] = serde_json::to_value(&stats)?;
        crate::outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let set = |flag: bool| if flag { "set" } else { "not set" };
    crate::outln!("name:        {}", service.name);
    crate::outln!("hook:        {}", service.hook_path());
    crate::outln!("repo:        {}", service.repo_url);
    crate::outln!("provider:    {}", service.provider);
    crate::outln!("branch:      {}", service.branch);
    crate::outln!("target:      {}", service.target);
    crate::outln!(
        "tls verify:  {}",
        match &service.tls_verify {
            TlsVerify::SystemRoots => "system roots".to_owned(),
            TlsVerify::Insecure => "off (insecure)".to_owned(),
            TlsVerify::CaFile(path) => format!("against {}", path.display()),
        }
    );
    crate::outln!(
        "notify:      {}",
        service.notification_set.as_deref().unwrap_or("-")
    );
    crate::outln!(
        "enabled:     {}",
        if service.enabled { "yes" } else { "no" }
    );
    crate::outln!("password:    {}", set(service.has_ftp_password));
    crate::outln!("token:       {}", set(service.has_provider_token));
    crate::outln!("secret:      {}", set(service.has_webhook_secret));
    crate::outln!(
        "deployed:    {}",
        service.last_deployed_commit.as_deref().unwrap_or("-")
    );
    crate::outln!(
        "mode:        {}{}",
        service.deploy.mode,
        if service.deploy.fallback_ordered {
            " (ordered in place where the server refuses the swap)"
        } else {
            ""
        }
    );
    crate::outln!(
        "entry:       {}",
        if service.deploy.entry_points.is_empty() {
            "the repository's .ferrydeploy, else the defaults".to_owned()
        } else {
            service.deploy.entry_points.join(" ")
        }
    );
    crate::outln!(
        "maintenance: {}",
        service
            .deploy
            .maintenance
            .as_ref()
            .map_or("-".to_owned(), |page| format!(
                "{} shown at {} during deploys in place",
                page.file, page.target
            ))
    );
    crate::outln!("status:      {status}");
    crate::outln!("deploys:     {}", super::deploy_log::stats_line(&stats));
    crate::outln!(
        "api:         {}",
        service
            .api_url
            .as_deref()
            .unwrap_or("the provider's default")
    );
    match &service.last_validation {
        Some(v) => {
            crate::outln!(
                "validation:  {} at {}: {}",
                if v.ok { "ok" } else { "failed" },
                v.at,
                v.message
            );
            for check in &v.checks {
                let mark = if check.ok { "ok  " } else { "FAIL" };
                crate::outln!("  {mark} {:<17} {}", check.name, check.message);
            }
        }
        None => crate::outln!("validation:  never run"),
    }
    Ok(())
}
