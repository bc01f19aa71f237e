//! The deploy service's tables and how they came to be: one migration per entry, run by the
//! shared [`crate::sqlite`] layer as its `deploy` component.

use rusqlite::Connection;

use crate::sqlite::Schema;

/// The deploy service's part of the database (versions before the shared layer lived in the
/// `deploy_schema` table).
pub(super) const SCHEMA: Schema = Schema {
    component: "deploy",
    migrations: MIGRATIONS,
    legacy_version: legacy_deploy_version,
};

fn legacy_deploy_version(connection: &Connection) -> rusqlite::Result<u32> {
    let has_table: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'deploy_schema'",
        [],
        |row| row.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    connection.query_row("SELECT version FROM deploy_schema", [], |row| row.get(0))
}

/// The schema, one migration per entry: entry `i` takes the deploy schema from `i` to `i + 1`.
/// Append new entries; never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE deploy_notification_sets (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        -- JSON arrays of addresses.
        success_emails  TEXT NOT NULL DEFAULT '[]',
        failure_emails  TEXT NOT NULL DEFAULT '[]',
        notify_pusher   INTEGER NOT NULL DEFAULT 0 CHECK (notify_pusher IN (0, 1)),
        notify_authors  INTEGER NOT NULL DEFAULT 0 CHECK (notify_authors IN (0, 1)),
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    ) STRICT;

    CREATE TABLE deploy_services (
        id                   INTEGER PRIMARY KEY,
        name                 TEXT NOT NULL UNIQUE,
        repo_url             TEXT NOT NULL,
        provider             TEXT NOT NULL
                             CHECK (provider IN ('github', 'bitbucket', 'gitea', 'gitlab', 'git')),
        branch               TEXT NOT NULL,
        -- ftp://user@host:port/path, never with a password.
        target_url           TEXT NOT NULL,
        tls_verify           TEXT NOT NULL DEFAULT 'system'
                             CHECK (tls_verify IN ('system', 'ca-file', 'insecure')),
        tls_ca_file          TEXT,
        -- Sealed with the secret key (see secret_key.rs); NULL when not set.
        ftp_password         BLOB,
        provider_token       BLOB,
        webhook_secret       BLOB,
        hook_key             TEXT NOT NULL UNIQUE,
        notification_set_id  INTEGER REFERENCES deploy_notification_sets (id) ON DELETE SET NULL,
        enabled              INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        last_deployed_commit TEXT,
        validation_ok        INTEGER CHECK (validation_ok IN (0, 1)),
        validation_message   TEXT,
        validated_at         TEXT,
        created_at           TEXT NOT NULL,
        updated_at           TEXT NOT NULL
    ) STRICT;

    CREATE TABLE deploy_deploys (
        id             INTEGER PRIMARY KEY,
        service_id     INTEGER NOT NULL REFERENCES deploy_services (id) ON DELETE CASCADE,
        status         TEXT NOT NULL
                       CHECK (status IN ('queued', 'running', 'ok', 'failed', 'skipped')),
        branch         TEXT,
        commit_from    TEXT,
        commit_to      TEXT NOT NULL,
        delivery_id    TEXT,
        -- Who pushed (or ran the deploy by hand).
        user           TEXT,
        queued_at      TEXT NOT NULL,
        started_at     TEXT,
        finished_at    TEXT,
        files_added    INTEGER NOT NULL DEFAULT 0,
        files_modified INTEGER NOT NULL DEFAULT 0,
        files_removed  INTEGER NOT NULL DEFAULT 0,
        bytes          INTEGER NOT NULL DEFAULT 0,
        error          TEXT,
        -- JSON array of {id, message, author, author_email, timestamp}.
        commits        TEXT NOT NULL DEFAULT '[]'
    ) STRICT;

    CREATE INDEX deploy_deploys_service ON deploy_deploys (service_id, id);
    -- A host retries a delivery with the same id: it must not deploy twice. One Bitbucket
    -- delivery may update several branches a glob matches: each commit deploys once.
    CREATE UNIQUE INDEX deploy_deploys_delivery
        ON deploy_deploys (service_id, delivery_id, commit_to)
        WHERE delivery_id IS NOT NULL;
"#,
    r#"
    -- API tokens and dashboard sessions (see store/access.rs): only SHA-256 hashes of the
    -- token and of the session id are kept.
    CREATE TABLE deploy_api_tokens (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        token_sha256 BLOB NOT NULL,
        created_at   TEXT NOT NULL,
        last_used_at TEXT
    ) STRICT;

    CREATE TABLE deploy_sessions (
        id_sha256  BLOB PRIMARY KEY,
        user       TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    ) STRICT;
"#,
    r#"
    -- Why a deploy was queued, who skipped a failed one and why, and which deploy restored it.
    ALTER TABLE deploy_deploys ADD COLUMN kind TEXT NOT NULL DEFAULT 'push'
        CHECK (kind IN ('push', 'restore', 'rollback'));
    ALTER TABLE deploy_deploys ADD COLUMN skipped_by TEXT;
    ALTER TABLE deploy_deploys ADD COLUMN skip_reason TEXT;
    ALTER TABLE deploy_deploys ADD COLUMN skipped_at TEXT;
    ALTER TABLE deploy_deploys ADD COLUMN restored_by INTEGER;
"#,
    // The pusher's address when the webhook gave one (for notifications).
    "ALTER TABLE deploy_deploys ADD COLUMN user_email TEXT;",
    r#"
    -- The git host's REST API root for webhook checks and registration (GitHub Enterprise,
    -- self-hosted Gitea or GitLab); NULL: the provider's default for the repository's host.
    ALTER TABLE deploy_services ADD COLUMN api_url TEXT;
    -- The last validation's checks: a JSON array of {name, ok, message}.
    ALTER TABLE deploy_services ADD COLUMN validation_checks TEXT NOT NULL DEFAULT '[]';
"#,
    r#"
    -- After which deploys the pusher and the commit authors are mailed (replacing the 0/1
    -- columns, which are kept in step for older readers).
    ALTER TABLE deploy_notification_sets ADD COLUMN pusher_when TEXT NOT NULL DEFAULT 'never'
        CHECK (pusher_when IN ('never', 'success', 'failure', 'always'));
    ALTER TABLE deploy_notification_sets ADD COLUMN authors_when TEXT NOT NULL DEFAULT 'never'
        CHECK (authors_when IN ('never', 'success', 'failure', 'always'));
    UPDATE deploy_notification_sets SET
        pusher_when = CASE notify_pusher WHEN 1 THEN 'always' ELSE 'never' END,
        authors_when = CASE notify_authors WHEN 1 THEN 'always' ELSE 'never' END;
"#,
    r#"
    -- A push deploys its branch's tip, recorded in commit_to once known, so a delivery is
    -- told apart by the branch it updates, not by the commit it named.
    DROP INDEX deploy_deploys_delivery;
    CREATE UNIQUE INDEX deploy_deploys_delivery
        ON deploy_deploys (service_id, delivery_id, coalesce(branch, ''))
        WHERE delivery_id IS NOT NULL;
"#,
    r#"
    -- The account's credential stamp when the session began (accounts.credential_stamp): once
    -- the account's stamp differs, the session is over. Sessions from before have none and end.
    ALTER TABLE deploy_sessions ADD COLUMN credential_stamp TEXT NOT NULL DEFAULT '';
"#,
    r#"
    -- How the service's deploys reach its site (see deploy::engine::mode): ordered, unordered
    -- or swap; the ordered fallback of a refused swap; the entry-point patterns (a JSON array;
    -- empty: the repository's .ferrydeploy, else the defaults); the maintenance page shown
    -- during deploys in place, as FILE:TARGET (NULL: none).
    ALTER TABLE deploy_services ADD COLUMN deploy_mode TEXT NOT NULL DEFAULT 'ordered'
        CHECK (deploy_mode IN ('ordered', 'unordered', 'swap'));
    ALTER TABLE deploy_services ADD COLUMN fallback_ordered INTEGER NOT NULL DEFAULT 0
        CHECK (fallback_ordered IN (0, 1));
    ALTER TABLE deploy_services ADD COLUMN entry_points TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE deploy_services ADD COLUMN maintenance TEXT;
"#,
];
