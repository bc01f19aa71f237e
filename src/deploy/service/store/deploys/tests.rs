//! The deploy log read back: statistics, pages, skips and restore ranges.

use super::super::super::model::{DeployStats, NewService, ServiceSecrets, TlsVerify};
use super::super::DeployStore;
use super::*;
use crate::deploy::service::secret_key::SecretKey;

use crate::deploy::service::webhook::{Provider, PushCommit};

fn store_with(names: &[&str]) -> DeployStore {
    let store = DeployStore::open_in_memory(SecretKey::generate().0).unwrap();
    for name in names {
        store
            .services()
            .add(&NewService {
                name: (*name).into(),
                repo_url: "/srv/git/site.git".into(),
                provider: Provider::Git,
                branch: "main".parse().unwrap(),
                target: "ftp://deploy@127.0.0.1:2121/www".parse().unwrap(),
                tls_verify: TlsVerify::SystemRoots,
                notification_set: None,
                secrets: ServiceSecrets::default(),
                api_url: None,
                deploy: Default::default(),
            })
            .unwrap();
    }
    store
}

fn commit(id: &str) -> PushCommit {
    PushCommit {
        id: id.into(),
        message: format!("commit {id}"),
        author: "Mona".into(),
        author_email: None,
        timestamp: "2026-01-01T00:00:00Z".into(),
    }
}

/// Queues, claims and ends a deploy of `commit` by `user`; its id.
fn deploy(store: &DeployStore, service: &str, commit_id: &str, user: &str, ok: bool) -> i64 {
    let id = store
        .deploys()
        .queue(
            service,
            &NewDeploy {
                commit_to: commit_id.into(),
                user: Some(user.into()),
                commits: vec![commit(commit_id)],
                ..NewDeploy::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(store.deploys().claim_next(service).unwrap().unwrap().id, id);
    let (status, error) = if ok {
        (DeployStatus::Ok, None)
    } else {
        (DeployStatus::Failed, Some("550 permission denied"))
    };
    let stats = DeployStats {
        files_added: 2,
        files_modified: 1,
        files_removed: 0,
        bytes: 1000,
    };
    store.deploys().finish(id, status, stats, error).unwrap();
    id
}

fn ids(deploys: &[Deploy]) -> Vec<i64> {
    deploys.iter().map(|d| d.id).collect()
}

#[test]
fn statistics_count_each_outcome_and_the_failure_rate_of_ended_deploys() {
    let store = store_with(&["site", "other"]);
    let empty = store.deploys().stats("site").unwrap();
    assert_eq!(empty, ServiceStats::default(), "no deploys, no rate");

    deploy(&store, "site", "c1", "ann", true);
    let failed = deploy(&store, "site", "c2", "bob", false);
    deploy(&store, "site", "c3", "cy", false);
    deploy(&store, "site", "c4", "dee", true);
    deploy(&store, "other", "x1", "eve", false);
    store.deploys().skip(failed, "ops", "broken build").unwrap();
    store
        .deploys()
        .queue(
            "site",
            &NewDeploy {
                commit_to: "c5".into(),
                ..NewDeploy::default()
            },
        )
        .unwrap();

    let stats = store.deploys().stats("site").unwrap();
    assert_eq!(
        (
            stats.total,
            stats.ok,
            stats.failed,
            stats.skipped,
            stats.queued
        ),
        (5, 2, 1, 1, 1),
        "{stats:?}"
    );
    assert!((stats.failure_rate - 1.0 / 3.0).abs() < 1e-9, "{stats:?}");
    assert_eq!(stats.last_deploy_user.as_deref(), Some("dee"));
    assert!(stats.last_deploy_at.is_some());
    let other = store.deploys().stats("other").unwrap();
    assert_eq!((other.total, other.failed), (1, 1));
    assert!((other.failure_rate - 1.0).abs() < 1e-9);
    assert!(matches!(
        store.deploys().stats("nope"),
        Err(DeployStoreError::NoSuchService(_))
    ));
}

#[test]
fn the_log_filters_by_service_and_failure_and_pages_newest_first() {
    let store = store_with(&["site", "other"]);
    let a = deploy(&store, "site", "c1", "ann", true);
    let b = deploy(&store, "site", "c2", "ann", false);
    let c = deploy(&store, "other", "x1", "ann", false);
    let d = deploy(&store, "site", "c3", "ann", false);
    let page = |service: Option<&str>, failed_only, limit, offset| {
        let filter = DeployFilter {
            service: service.map(str::to_owned),
            failed_only,
            limit,
            offset,
        };
        let (deploys, total) = store.deploys().log(&filter).unwrap();
        (ids(&deploys), total)
    };
    assert_eq!(page(None, false, 10, 0), (vec![d, c, b, a], 4));
    assert_eq!(page(Some("site"), false, 10, 0), (vec![d, b, a], 3));
    assert_eq!(page(Some("site"), true, 10, 0), (vec![d, b], 2));
    assert_eq!(page(None, true, 1, 1), (vec![c], 3));
    let (deploys, _) = store
        .deploys()
        .log(&DeployFilter {
            limit: 1,
            ..DeployFilter::default()
        })
        .unwrap();
    assert!(deploys[0].duration_secs.is_some_and(|s| s >= 0));
    assert_eq!(deploys[0].error.as_deref(), Some("550 permission denied"));
}

#[test]
fn only_a_failed_deploy_can_be_skipped_and_the_record_keeps_who_and_why() {
    let store = store_with(&["site"]);
    let ok = deploy(&store, "site", "c1", "ann", true);
    let failed = deploy(&store, "site", "c2", "ann", false);
    assert!(matches!(
        store.deploys().skip(ok, "ops", "no"),
        Err(DeployStoreError::NotSkippable { .. })
    ));
    assert!(matches!(
        store.deploys().skip(failed, "ops", "  "),
        Err(DeployStoreError::SkipNeedsReason)
    ));
    assert!(matches!(
        store.deploys().skip(999, "ops", "why"),
        Err(DeployStoreError::NoSuchDeploy(999))
    ));
    let skipped = store.deploys().skip(failed, "ops", "bad commit").unwrap();
    assert_eq!(skipped.status, DeployStatus::Skipped);
    let record = skipped.skipped.unwrap();
    assert_eq!(
        (record.by.as_str(), record.reason.as_str()),
        ("ops", "bad commit")
    );
    assert!(!record.at.is_empty());
    assert_eq!(
        skipped.error.as_deref(),
        Some("550 permission denied"),
        "history is kept"
    );
    assert!(matches!(
        store.deploys().skip(failed, "ops", "again"),
        Err(DeployStoreError::NotSkippable { .. })
    ));
}

#[test]
fn the_restore_range_runs_from_the_first_failed_after_the_last_ok_leaving_out_skipped() {
    let store = store_with(&["site"]);
    assert!(store.deploys().restore_range("site").unwrap().is_empty());
    let early_failure = deploy(&store, "site", "c1", "ann", false);
    deploy(&store, "site", "c2", "ann", true);
    assert!(
        store.deploys().restore_range("site").unwrap().is_empty(),
        "a failure before a success is not restored"
    );
    let f3 = deploy(&store, "site", "c3", "ann", false);
    let f4 = deploy(&store, "site", "c4", "ann", false);
    let f5 = deploy(&store, "site", "c5", "ann", false);
    assert_eq!(
        ids(&store.deploys().restore_range("site").unwrap()),
        [f3, f4, f5]
    );
    store.deploys().skip(f3, "ops", "superseded").unwrap();
    assert_eq!(
        ids(&store.deploys().restore_range("site").unwrap()),
        [f4, f5]
    );

    // A restore that ends ok restores the range; an earlier failure stays as it was.
    let restore = store
        .deploys()
        .queue_exclusive(
            "site",
            &NewDeploy {
                commit_to: "c5".into(),
                ..NewDeploy::default()
            },
            DeployKind::Restore,
        )
        .unwrap();
    let busy = store.deploys().queue_exclusive(
        "site",
        &NewDeploy {
            commit_to: "c5".into(),
            ..NewDeploy::default()
        },
        DeployKind::Restore,
    );
    assert!(
        matches!(busy, Err(DeployStoreError::DeployActive { id, status: DeployStatus::Queued, .. }) if id == restore),
        "{busy:?}"
    );
    assert_eq!(store.deploys().active("site").unwrap().unwrap().id, restore);
    assert_eq!(
        store.deploys().claim_next("site").unwrap().unwrap().kind,
        DeployKind::Restore
    );
    store
        .deploys()
        .finish(restore, DeployStatus::Ok, DeployStats::default(), None)
        .unwrap();
    assert!(store.deploys().restore_range("site").unwrap().is_empty());
    for id in [f4, f5] {
        assert_eq!(store.deploys().get(id).unwrap().restored_by, Some(restore));
    }
    assert_eq!(
        store.deploys().get(f3).unwrap().restored_by,
        None,
        "skipped stays skipped"
    );
    assert_eq!(
        store.deploys().get(early_failure).unwrap().restored_by,
        None
    );
    assert!(matches!(
        store.deploys().skip(f4, "ops", "late"),
        Err(DeployStoreError::NotSkippable { .. })
    ));
}

#[test]
fn a_plain_push_ending_ok_restores_nothing_and_a_coalesced_restore_carries_over() {
    let store = store_with(&["site"]);
    let f1 = deploy(&store, "site", "c1", "ann", false);
    deploy(&store, "site", "c2", "ann", true);
    assert_eq!(store.deploys().get(f1).unwrap().restored_by, None);

    let f3 = deploy(&store, "site", "c3", "ann", false);
    store
        .deploys()
        .queue_exclusive(
            "site",
            &NewDeploy {
                commit_to: "c3".into(),
                ..NewDeploy::default()
            },
            DeployKind::Restore,
        )
        .unwrap();
    let push = store
        .deploys()
        .queue(
            "site",
            &NewDeploy {
                commit_to: "c4".into(),
                ..NewDeploy::default()
            },
        )
        .unwrap()
        .unwrap();
    let claimed = store.deploys().claim_next("site").unwrap().unwrap();
    assert_eq!((claimed.id, claimed.kind), (push, DeployKind::Restore));
    store
        .deploys()
        .finish(push, DeployStatus::Ok, DeployStats::default(), None)
        .unwrap();
    assert_eq!(store.deploys().get(f3).unwrap().restored_by, Some(push));
}
