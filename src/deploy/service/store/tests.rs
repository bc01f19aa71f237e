//! The service store against real SQLite files in temporary directories.

use super::migrations::MIGRATIONS;
use super::*;
use crate::deploy::service::model::*;
use crate::deploy::service::webhook::{Provider, PushCommit};

const FTP_PASSWORD_TEXT: &str = "ftp-pa55word-XYZZY-plain";
const TOKEN_TEXT: &str = "glpat-TOKEN-sentinel-4711";
const WEBHOOK_TEXT: &str = "webhook-secret-sentinel-0815";

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    key: SecretKey,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferry.db");
    let key = SecretKey::load_or_create(&SecretKey::default_path(&db)).unwrap();
    Fixture { _dir: dir, db, key }
}

impl Fixture {
    fn open(&self) -> DeployStore {
        DeployStore::open(&self.db, self.key.clone()).unwrap()
    }
}

fn new_service(name: &str) -> NewService {
    NewService {
        name: name.into(),
        repo_url: "https://github.com/Codertocat/Hello-World.git".into(),
        provider: Provider::Github,
        branch: "main".parse().unwrap(),
        target: "ftps://deploy@ftp.example.com:2121/www".parse().unwrap(),
        tls_verify: TlsVerify::SystemRoots,
        notification_set: None,
        secrets: ServiceSecrets {
            ftp_password: Some(Secret::new(FTP_PASSWORD_TEXT)),
            provider_token: Some(Secret::new(TOKEN_TEXT)),
            webhook_secret: Some(Secret::new(WEBHOOK_TEXT)),
        },
        api_url: None,
        deploy: DeploySettings::default(),
    }
}

/// Every byte SQLite wrote for the database: the main file, its WAL and shared memory.
fn database_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        if let Ok(content) = std::fs::read(&path) {
            bytes.extend(content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn added_service_reads_back_with_a_30_character_hook_key() {
    let f = fixture();
    let store = f.open();
    let service = store.services().add(&new_service("site")).unwrap();
    assert_eq!(service.name, "site");
    assert_eq!(service.provider, Provider::Github);
    assert_eq!(service.branch.as_str(), "main");
    assert_eq!(
        service.target.to_string(),
        "ftps://deploy@ftp.example.com:2121/www"
    );
    assert_eq!(service.hook_key.len(), HOOK_KEY_CHARS);
    assert!(service.hook_key.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(service.hook_path(), format!("/hooks/{}", service.hook_key));
    assert!(service.has_ftp_password && service.has_provider_token && service.has_webhook_secret);
    assert_eq!(service.last_validation, None);
    assert!(service.enabled);

    let other = store.services().add(&new_service("other")).unwrap();
    assert_ne!(other.hook_key, service.hook_key);
    assert_eq!(
        store.services().by_hook_key(&service.hook_key).unwrap(),
        Some(service.clone())
    );
    assert_eq!(store.services().by_hook_key("nope").unwrap(), None);
    let names: Vec<_> = store
        .services()
        .list()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["other", "site"]);
}

#[test]
fn secrets_are_encrypted_at_rest_and_decrypt_with_the_key() {
    let f = fixture();
    {
        let store = f.open();
        store.services().add(&new_service("site")).unwrap();
        store
            .services()
            .update(
                "site",
                &ServiceUpdate {
                    ftp_password: Some(Some(Secret::new(FTP_PASSWORD_TEXT))),
                    ..ServiceUpdate::default()
                },
            )
            .unwrap();
        // While open (WAL not yet checkpointed) and after closing.
        let bytes = database_bytes(&f.db);
        assert!(
            contains(&bytes, "Hello-World"),
            "the test reads the right file"
        );
        for secret in [FTP_PASSWORD_TEXT, TOKEN_TEXT, WEBHOOK_TEXT] {
            assert!(!contains(&bytes, secret), "{secret} is in the database");
        }
    }
    let bytes = database_bytes(&f.db);
    for secret in [FTP_PASSWORD_TEXT, TOKEN_TEXT, WEBHOOK_TEXT] {
        assert!(!contains(&bytes, secret), "{secret} is in the database");
    }

    let secrets = f.open().services().secrets("site").unwrap();
    assert_eq!(secrets.ftp_password.unwrap().expose(), FTP_PASSWORD_TEXT);
    assert_eq!(secrets.provider_token.unwrap().expose(), TOKEN_TEXT);
    assert_eq!(secrets.webhook_secret.unwrap().expose(), WEBHOOK_TEXT);
}

#[test]
fn another_key_cannot_read_the_secrets_but_still_reads_the_services() {
    let f = fixture();
    f.open().services().add(&new_service("site")).unwrap();
    let (other_key, _) = SecretKey::generate();
    let store = DeployStore::open(&f.db, other_key).unwrap();
    assert_eq!(store.services().get("site").unwrap().name, "site");
    assert!(matches!(
        store.services().secrets("site"),
        Err(DeployStoreError::Secret(SecretKeyError::Decrypt))
    ));
}

#[test]
fn sealed_secrets_cannot_be_swapped_between_columns() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    store
        .lock()
        .execute(
            "UPDATE deploy_services SET ftp_password = webhook_secret",
            [],
        )
        .unwrap();
    assert!(store.services().secrets("site").is_err());
}

#[test]
fn edit_changes_only_what_it_names_and_can_clear_a_secret() {
    let f = fixture();
    let store = f.open();
    let before = store.services().add(&new_service("site")).unwrap();
    let after = store
        .services()
        .update(
            "site",
            &ServiceUpdate {
                branch: Some("release/*".parse().unwrap()),
                provider: Some(Provider::Gitea),
                tls_verify: Some(TlsVerify::CaFile("/etc/ferry/ca.pem".into())),
                provider_token: Some(None),
                ..ServiceUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(after.branch.as_str(), "release/*");
    assert_eq!(after.provider, Provider::Gitea);
    assert_eq!(
        after.tls_verify,
        TlsVerify::CaFile("/etc/ferry/ca.pem".into())
    );
    assert_eq!(after.repo_url, before.repo_url);
    assert_eq!(after.target, before.target);
    assert_eq!(after.hook_key, before.hook_key);
    assert!(!after.has_provider_token);
    let secrets = store.services().secrets("site").unwrap();
    assert_eq!(secrets.provider_token, None);
    assert_eq!(secrets.ftp_password.unwrap().expose(), FTP_PASSWORD_TEXT);

    let rekeyed = store
        .services()
        .update(
            "site",
            &ServiceUpdate {
                new_hook_key: true,
                ..ServiceUpdate::default()
            },
        )
        .unwrap();
    assert_ne!(rekeyed.hook_key, before.hook_key);
    assert_eq!(
        store.services().by_hook_key(&before.hook_key).unwrap(),
        None
    );
}

#[test]
fn duplicate_unknown_and_invalid_names_are_errors() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    assert!(matches!(
        store.services().add(&new_service("site")),
        Err(DeployStoreError::ServiceExists(name)) if name == "site"
    ));
    assert!(matches!(
        store.services().get("ghost"),
        Err(DeployStoreError::NoSuchService(_))
    ));
    assert!(matches!(
        store.services().update("ghost", &ServiceUpdate::default()),
        Err(DeployStoreError::NoSuchService(_))
    ));
    assert!(matches!(
        store.services().delete("ghost"),
        Err(DeployStoreError::NoSuchService(_))
    ));
    for bad in ["", "a b", "../x", "-x", &"x".repeat(65)] {
        assert!(
            matches!(
                store.services().add(&new_service(bad)),
                Err(DeployStoreError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn validation_results_are_kept_with_their_time() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    store
        .services()
        .record_validation("site", false, "FTP login refused: 530 Login incorrect")
        .unwrap();
    let validation = store
        .services()
        .get("site")
        .unwrap()
        .last_validation
        .unwrap();
    assert!(!validation.ok);
    assert_eq!(validation.message, "FTP login refused: 530 Login incorrect");
    assert!(
        validation.at.ends_with('Z') && validation.at.len() == 20,
        "{}",
        validation.at
    );
}

#[test]
fn validation_checks_are_kept_each_with_its_result_and_message() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    let check = |name: &str, ok: bool, message: &str| ValidationCheck {
        name: name.to_owned(),
        ok,
        message: message.to_owned(),
    };
    let checks = [
        check("repository", true, "1 matching branch(es)"),
        check("ftp login", false, "530 Login incorrect"),
        check("webhook", true, "not checked: no provider token"),
    ];
    let stored = store
        .services()
        .record_validation_checks("site", &checks)
        .unwrap();
    assert!(!stored.ok);
    assert_eq!(stored.message, "ftp login: 530 Login incorrect");
    let reopened = f.open();
    let validation = reopened
        .services()
        .get("site")
        .unwrap()
        .last_validation
        .unwrap();
    assert_eq!(validation.checks, checks);
    assert_eq!(validation, stored);
    // A later run replaces them all.
    let all_ok = [check("repository", true, "fine")];
    let stored = store
        .services()
        .record_validation_checks("site", &all_ok)
        .unwrap();
    assert!(stored.ok);
    assert_eq!(stored.message, "all checks passed");
    assert_eq!(stored.checks, all_ok);
    assert!(matches!(
        store.services().record_validation_checks("nope", &all_ok),
        Err(DeployStoreError::NoSuchService(_))
    ));
}

#[test]
fn api_url_is_stored_and_cleared() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    assert_eq!(store.services().get("site").unwrap().api_url, None);
    let set_api_url = |url: Option<&str>| {
        store.services().update(
            "site",
            &ServiceUpdate {
                api_url: Some(url.map(str::to_owned)),
                provider_token: Some(Some(Secret::new(TOKEN_TEXT))),
                ..ServiceUpdate::default()
            },
        )
    };
    set_api_url(Some("https://ghe.example.com/api/v3")).unwrap();
    assert_eq!(
        f.open().services().get("site").unwrap().api_url.as_deref(),
        Some("https://ghe.example.com/api/v3")
    );
    set_api_url(None).unwrap();
    assert_eq!(store.services().get("site").unwrap().api_url, None);
}

#[test]
fn deploys_are_logged_deduplicated_by_delivery_and_set_the_last_commit() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    let push = NewDeploy {
        branch: Some("main".into()),
        commit_from: Some("a".repeat(40)),
        commit_to: "b".repeat(40),
        delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
        user: Some("Codertocat".into()),
        user_email: None,
        commits: vec![PushCommit {
            id: "b".repeat(40),
            message: "Update README.md".into(),
            author: "Mona".into(),
            author_email: Some("mona@github.com".into()),
            timestamp: "2019-05-15T15:20:41-05:00".into(),
        }],
    };
    let id = store.deploys().queue("site", &push).unwrap().unwrap();
    assert_eq!(
        store.deploys().queue("site", &push).unwrap(),
        None,
        "a retried delivery"
    );
    // One Bitbucket delivery updating two matching branches: each commit once.
    let other_branch = NewDeploy {
        branch: Some("release/2".into()),
        commit_to: "e".repeat(40),
        ..push.clone()
    };
    assert!(
        store
            .deploys()
            .queue("site", &other_branch)
            .unwrap()
            .is_some()
    );
    let manual = store
        .deploys()
        .queue(
            "site",
            &NewDeploy {
                delivery_id: None,
                ..push.clone()
            },
        )
        .unwrap()
        .unwrap();
    // Deliveries without an id are never merged.
    assert!(
        store
            .deploys()
            .queue(
                "site",
                &NewDeploy {
                    delivery_id: None,
                    ..push.clone()
                }
            )
            .unwrap()
            .is_some()
    );

    assert_eq!(
        store.deploys().get(id).unwrap().status,
        DeployStatus::Queued
    );
    store.deploys().start(id).unwrap();
    assert!(
        store.deploys().start(id).is_err(),
        "only a queued deploy starts"
    );
    let stats = DeployStats {
        files_added: 3,
        files_modified: 1,
        files_removed: 2,
        bytes: 12_345,
    };
    store
        .deploys()
        .finish(id, DeployStatus::Ok, stats, None)
        .unwrap();
    store
        .deploys()
        .finish(
            manual,
            DeployStatus::Failed,
            DeployStats::default(),
            Some("550 Permission denied"),
        )
        .unwrap();

    let done = store.deploys().get(id).unwrap();
    assert_eq!(done.status, DeployStatus::Ok);
    assert_eq!(done.stats, stats);
    assert_eq!(done.commits, push.commits);
    assert_eq!(done.user.as_deref(), Some("Codertocat"));
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert_eq!(
        store.services().get("site").unwrap().last_deployed_commit,
        Some("b".repeat(40))
    );

    let log = store.deploys().list("site", 10).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[1].id, manual, "newest first");
    assert_eq!(log[1].error.as_deref(), Some("550 Permission denied"));
    assert_eq!(store.deploys().list("site", 1).unwrap().len(), 1);
}

#[test]
fn deleting_a_service_deletes_its_deploys() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    let id = store
        .deploys()
        .queue(
            "site",
            &NewDeploy {
                commit_to: "c".repeat(40),
                ..NewDeploy::default()
            },
        )
        .unwrap()
        .unwrap();
    store.services().delete("site").unwrap();
    assert!(matches!(
        store.deploys().get(id),
        Err(DeployStoreError::NoSuchDeploy(_))
    ));
}

#[test]
fn notification_sets_attach_to_services_and_detach_on_delete() {
    let f = fixture();
    let store = f.open();
    let set = NotificationSet {
        name: "web-team".into(),
        success_emails: vec!["ops@example.com".into()],
        failure_emails: vec!["ops@example.com".into(), "oncall@example.com".into()],
        notify_pusher: NotifyWhen::Always,
        notify_authors: NotifyWhen::Never,
    };
    store.notification_sets().add(&set).unwrap();
    assert!(matches!(
        store.notification_sets().add(&set),
        Err(DeployStoreError::NotificationSetExists(_))
    ));
    assert_eq!(store.notification_sets().get("web-team").unwrap(), set);
    assert_eq!(store.notification_sets().list().unwrap(), vec![set.clone()]);

    let mut new = new_service("site");
    new.notification_set = Some("nobody".into());
    assert!(matches!(
        store.services().add(&new),
        Err(DeployStoreError::NoSuchNotificationSet(_))
    ));
    new.notification_set = Some("web-team".into());
    assert_eq!(
        store
            .services()
            .add(&new)
            .unwrap()
            .notification_set
            .as_deref(),
        Some("web-team")
    );
    store.notification_sets().delete("web-team").unwrap();
    assert_eq!(store.services().get("site").unwrap().notification_set, None);
}

#[test]
fn notification_sets_are_edited_and_refuse_addresses_that_do_not_parse() {
    let f = fixture();
    let store = f.open();
    let mut set = NotificationSet {
        name: "ops".into(),
        success_emails: vec!["ops@example.com".into(), "not an address".into()],
        ..NotificationSet::default()
    };
    let refused = store.notification_sets().add(&set).unwrap_err();
    assert!(
        matches!(&refused, DeployStoreError::InvalidAddress(a) if a == "not an address"),
        "{refused:?}"
    );
    assert!(store.notification_sets().list().unwrap().is_empty());
    set.success_emails.pop();
    store.notification_sets().add(&set).unwrap();

    let update = NotificationSetUpdate {
        failure_emails: Some(vec!["oncall@example.com".into()]),
        notify_authors: Some(NotifyWhen::Always),
        ..NotificationSetUpdate::default()
    };
    let changed = store.notification_sets().update("ops", &update).unwrap();
    assert_eq!(
        changed,
        NotificationSet {
            failure_emails: vec!["oncall@example.com".into()],
            notify_authors: NotifyWhen::Always,
            ..set.clone()
        }
    );
    let bad = NotificationSetUpdate {
        success_emails: Some(vec!["@example.com".into()]),
        notify_pusher: Some(NotifyWhen::Always),
        ..NotificationSetUpdate::default()
    };
    assert!(matches!(
        store.notification_sets().update("ops", &bad),
        Err(DeployStoreError::InvalidAddress(_))
    ));
    assert_eq!(
        store.notification_sets().get("ops").unwrap(),
        changed,
        "unchanged"
    );
    assert!(matches!(
        store.notification_sets().update("nope", &update),
        Err(DeployStoreError::NoSuchNotificationSet(_))
    ));
}

#[test]
fn notify_when_is_written_as_a_word_and_read_from_a_word_or_a_flag() {
    let set = NotificationSet {
        name: "split".into(),
        notify_pusher: NotifyWhen::Failure,
        notify_authors: NotifyWhen::Success,
        ..NotificationSet::default()
    };
    let json = serde_json::to_value(&set).unwrap();
    assert_eq!(json["notify_pusher"], "failure");
    assert_eq!(json["notify_authors"], "success");
    for (text, when) in [
        ("true", NotifyWhen::Always),
        ("false", NotifyWhen::Never),
        ("\"always\"", NotifyWhen::Always),
        ("\"failure\"", NotifyWhen::Failure),
    ] {
        assert_eq!(serde_json::from_str::<NotifyWhen>(text).unwrap(), when);
    }
    assert!(serde_json::from_str::<NotifyWhen>("\"sometimes\"").is_err());

    let f = fixture();
    let store = f.open();
    store.notification_sets().add(&set).unwrap();
    assert_eq!(store.notification_sets().get("split").unwrap(), set);
}

#[test]
fn sets_saved_with_yes_no_flags_mail_after_every_deploy_once_migrated() {
    let f = fixture();
    {
        // The schema before per-outcome options, with a set that had both flags on.
        let mut connection = Connection::open(&f.db).unwrap();
        let tx = connection.transaction().unwrap();
        tx.execute_batch(
            "CREATE TABLE deploy_schema (id INTEGER PRIMARY KEY CHECK (id = 1),
                 version INTEGER NOT NULL) STRICT;",
        )
        .unwrap();
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("pusher_when"))
            .unwrap();
        for migration in &MIGRATIONS[..before] {
            tx.execute_batch(migration).unwrap();
        }
        tx.execute("INSERT INTO deploy_schema VALUES (1, ?1)", [before as i64])
            .unwrap();
        tx.execute(
            "INSERT INTO deploy_notification_sets (name, notify_pusher, notify_authors,
                 created_at, updated_at) VALUES ('old', 1, 0, 'then', 'then')",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let set = f.open().notification_sets().get("old").unwrap();
    assert_eq!(set.notify_pusher, NotifyWhen::Always);
    assert_eq!(set.notify_authors, NotifyWhen::Never);
}

#[test]
fn the_pushers_address_is_kept_with_the_deploy() {
    let f = fixture();
    let store = f.open();
    store.services().add(&new_service("site")).unwrap();
    let new = NewDeploy {
        user_email: Some("codertocat@example.com".into()),
        ..queued(&"c".repeat(40), "d-1", "first")
    };
    let id = store.deploys().queue("site", &new).unwrap().unwrap();
    let deploy = store.deploys().get(id).unwrap();
    assert_eq!(deploy.user.as_deref(), Some("octocat"));
    assert_eq!(deploy.user_email.as_deref(), Some("codertocat@example.com"));
}

#[test]
fn deploy_tables_share_the_accounts_database_without_touching_its_version() {
    let f = fixture();
    let accounts = crate::auth::store::AccountStore::open(&f.db).unwrap();
    drop(accounts);
    let user_version = |db: &Path| -> u32 {
        Connection::open(db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    };
    let before = user_version(&f.db);
    f.open().services().add(&new_service("site")).unwrap();
    assert_eq!(user_version(&f.db), before);
    // Both open again, in either order, and migrating twice is harmless.
    crate::auth::store::AccountStore::open(&f.db).unwrap();
    assert_eq!(f.open().services().list().unwrap().len(), 1);
}

#[test]
fn a_newer_deploy_schema_is_refused() {
    let f = fixture();
    drop(f.open());
    Connection::open(&f.db)
        .unwrap()
        .execute(
            "UPDATE schema_versions SET version = 99 WHERE component = 'deploy'",
            [],
        )
        .unwrap();
    assert!(matches!(
        DeployStore::open(&f.db, f.key.clone()),
        Err(DeployStoreError::SchemaTooNew { found: 99, .. })
    ));
}

fn queued(commit: &str, delivery: &str, message: &str) -> NewDeploy {
    NewDeploy {
        branch: Some("main".into()),
        commit_to: commit.into(),
        delivery_id: Some(delivery.into()),
        user: Some("octocat".into()),
        commits: vec![PushCommit {
            id: commit.into(),
            message: message.into(),
            author: "Mona".into(),
            author_email: None,
            timestamp: "2019-05-15T15:20:41-05:00".into(),
        }],
        ..NewDeploy::default()
    }
}

#[test]
fn claiming_takes_the_newest_queued_deploy_and_coalesces_the_older_into_it() {
    let fx = fixture();
    let store = fx.open();
    store.services().add(&new_service("site")).unwrap();
    store.services().add(&new_service("other")).unwrap();
    let a = store
        .deploys()
        .queue("site", &queued("aaa", "d1", "one"))
        .unwrap()
        .unwrap();
    let b = store
        .deploys()
        .queue("site", &queued("bbb", "d2", "two"))
        .unwrap()
        .unwrap();
    let c = store
        .deploys()
        .queue("site", &queued("ccc", "d3", "three"))
        .unwrap()
        .unwrap();
    let o = store
        .deploys()
        .queue("other", &queued("ooo", "d1", "x"))
        .unwrap()
        .unwrap();
    assert_eq!(
        store.deploys().services_with_queued().unwrap(),
        vec!["other".to_owned(), "site".to_owned()]
    );

    let claimed = store.deploys().claim_next("site").unwrap().unwrap();
    assert_eq!(claimed.id, c);
    assert_eq!(claimed.status, DeployStatus::Running);
    assert!(claimed.started_at.is_some());
    let ids: Vec<&str> = claimed.commits.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["aaa", "bbb", "ccc"],
        "the coalesced pushes' commits are kept"
    );
    for older in [a, b] {
        let deploy = store.deploys().get(older).unwrap();
        assert_eq!(deploy.status, DeployStatus::Skipped);
        assert!(deploy.error.unwrap().contains(&c.to_string()));
    }
    assert!(store.deploys().claim_next("site").unwrap().is_none());
    assert_eq!(store.deploys().get(o).unwrap().status, DeployStatus::Queued);
    assert_eq!(
        store.deploys().services_with_queued().unwrap(),
        vec!["other".to_owned()]
    );
}

#[test]
fn deploys_left_running_by_a_crash_are_queued_again_on_reopen() {
    let fx = fixture();
    let id = {
        let store = fx.open();
        store.services().add(&new_service("site")).unwrap();
        store
            .deploys()
            .queue("site", &queued("aaa", "d1", "one"))
            .unwrap()
            .unwrap();
        let claimed = store.deploys().claim_next("site").unwrap().unwrap();
        claimed.id
    };
    let store = fx.open();
    assert_eq!(
        store.deploys().get(id).unwrap().status,
        DeployStatus::Running
    );
    assert_eq!(store.deploys().requeue_interrupted().unwrap(), 1);
    assert_eq!(
        store.deploys().get(id).unwrap().status,
        DeployStatus::Queued
    );
    let again = store.deploys().claim_next("site").unwrap().unwrap();
    assert_eq!(again.id, id);
    store
        .deploys()
        .finish(id, DeployStatus::Ok, DeployStats::default(), None)
        .unwrap();
    assert_eq!(store.deploys().requeue_interrupted().unwrap(), 0);
    assert_eq!(
        store
            .services()
            .get("site")
            .unwrap()
            .last_deployed_commit
            .as_deref(),
        Some("aaa")
    );
}

#[test]
fn deploy_settings_are_kept_changed_field_by_field_and_refused_when_they_clash() {
    use crate::deploy::engine::mode::DeployMode;
    let f = fixture();
    let store = f.open();
    let added = store.services().add(&new_service("site")).unwrap();
    assert_eq!(
        added.deploy,
        DeploySettings::default(),
        "ordered by default"
    );
    let page: crate::deploy::engine::maintenance::MaintenancePage =
        "down.html:index.php".parse().unwrap();
    let changed = store
        .services()
        .update(
            "site",
            &ServiceUpdate {
                deploy_mode: Some(DeployMode::Swap),
                fallback_ordered: Some(true),
                entry_points: Some(vec!["*.php".into(), "templates/*.tpl".into()]),
                maintenance: Some(Some(page.clone())),
                ..ServiceUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(
        changed.deploy,
        DeploySettings {
            mode: DeployMode::Swap,
            fallback_ordered: true,
            entry_points: vec!["*.php".into(), "templates/*.tpl".into()],
            maintenance: Some(page),
        }
    );
    // A swap without its fallback shows no page: refused, and nothing changes.
    let refused = store.services().update(
        "site",
        &ServiceUpdate {
            fallback_ordered: Some(false),
            ..ServiceUpdate::default()
        },
    );
    assert!(
        matches!(&refused, Err(DeployStoreError::InvalidDeploySettings(m)) if m.contains("maintenance page")),
        "{refused:?}"
    );
    let bad_glob = store.services().update(
        "site",
        &ServiceUpdate {
            entry_points: Some(vec!["[unclosed".into()]),
            ..ServiceUpdate::default()
        },
    );
    assert!(
        matches!(&bad_glob, Err(DeployStoreError::InvalidDeploySettings(m)) if m.contains("[unclosed")),
        "{bad_glob:?}"
    );
    drop(store);
    assert_eq!(
        f.open().services().get("site").unwrap().deploy,
        changed.deploy
    );
}
