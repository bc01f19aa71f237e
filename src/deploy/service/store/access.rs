//! Who may use the JSON API and the dashboard: named API tokens and login sessions. Only the
//! SHA-256 of a token or of a session id is stored, so the database alone lets nobody in; the
//! token itself is shown once, when it is made.
//!
//! A session belongs to an account and carries the account's credential stamp from its start;
//! the web layer ends it once the account's stamp differs (a new password, the admin flag taken
//! away). A token belongs to no account: it is a credential of its own for scripts and CI, made
//! and deleted with `ferry deploy token` by whoever holds the database and its key, and checked
//! against the database on every request, so deleting it revokes it at once.

use std::time::Duration;

use rand::Rng as _;
use rand::distributions::Alphanumeric;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::super::model::{ApiToken, DashboardSession, Secret};
use super::{DeployStore, DeployStoreError, NOW};

/// The length of an API token, from 62 symbols: 255 bits.
pub const API_TOKEN_CHARS: usize = 43;

/// The length of a session id and of a session's CSRF token (from 62 symbols: 190 bits).
const SESSION_ID_CHARS: usize = 32;

/// A fresh random string of `chars` letters and digits (the thread RNG is seeded from the OS).
fn random_chars(chars: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(chars)
        .map(char::from)
        .collect()
}

fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

fn validate_token_name(name: &str) -> Result<(), DeployStoreError> {
    crate::sqlite::check_name("token", name).map_err(DeployStoreError::InvalidTokenName)
}

/// Who may use the API and the dashboard, in a [`DeployStore`].
#[derive(Debug, Clone, Copy)]
pub struct Access<'a>(pub(super) &'a DeployStore);

impl std::ops::Deref for Access<'_> {
    type Target = DeployStore;

    fn deref(&self) -> &DeployStore {
        self.0
    }
}

impl Access<'_> {
    // ---- API tokens ----

    /// Makes a token named `name`; the token, which is not stored and cannot be shown again.
    pub fn add_api_token(&self, name: &str) -> Result<Secret, DeployStoreError> {
        validate_token_name(name)?;
        let token = random_chars(API_TOKEN_CHARS);
        let result = self.lock().execute(
            &format!(
                "INSERT INTO deploy_api_tokens (name, token_sha256, created_at)
                 VALUES (?1, ?2, {NOW})"
            ),
            params![name, sha256(&token)],
        );
        match result {
            Ok(_) => Ok(Secret::new(token)),
            Err(e) if crate::sqlite::is_unique_violation(&e) => {
                Err(DeployStoreError::ApiTokenExists(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn list_api_tokens(&self) -> Result<Vec<ApiToken>, DeployStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT name, created_at, last_used_at FROM deploy_api_tokens ORDER BY name",
        )?;
        let tokens = statement
            .query_map([], |row| {
                Ok(ApiToken {
                    name: row.get(0)?,
                    created_at: row.get(1)?,
                    last_used_at: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(tokens)
    }

    pub fn delete_api_token(&self, name: &str) -> Result<(), DeployStoreError> {
        let deleted = self
            .lock()
            .execute("DELETE FROM deploy_api_tokens WHERE name = ?1", [name])?;
        if deleted == 0 {
            return Err(DeployStoreError::NoSuchApiToken(name.to_owned()));
        }
        Ok(())
    }

    /// The name of the token `presented` is, if any. Every stored hash is compared in constant
    /// time, so how long the answer takes says nothing about how close a guess came.
    pub fn check_api_token(&self, presented: &str) -> Result<Option<String>, DeployStoreError> {
        let presented = sha256(presented);
        let connection = self.lock();
        let mut statement =
            connection.prepare("SELECT id, name, token_sha256 FROM deploy_api_tokens")?;
        let mut found = None;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, name, hash) = row?;
            if bool::from(hash.ct_eq(&presented)) {
                found = Some((id, name));
            }
        }
        drop(statement);
        let Some((id, name)) = found else {
            return Ok(None);
        };
        connection.execute(
            &format!("UPDATE deploy_api_tokens SET last_used_at = {NOW} WHERE id = ?1"),
            [id],
        )?;
        Ok(Some(name))
    }

    // ---- sessions ----

    /// Starts a session for `user`, whose credential stamp was `credential_stamp` before its
    /// password was checked, lasting `lifetime`; its id (the cookie's value, not stored) and the
    /// session. Expired sessions are removed on the way.
    pub fn create_session(
        &self,
        user: &str,
        credential_stamp: &str,
        lifetime: Duration,
    ) -> Result<(Secret, DashboardSession), DeployStoreError> {
        let id = random_chars(SESSION_ID_CHARS);
        let csrf_token = random_chars(SESSION_ID_CHARS);
        let connection = self.lock();
        connection.execute(
            &format!("DELETE FROM deploy_sessions WHERE expires_at <= {NOW}"),
            [],
        )?;
        let expires_at: String = connection.query_row(
            &format!(
                "INSERT INTO deploy_sessions
                     (id_sha256, user, csrf_token, created_at, expires_at, credential_stamp)
                 VALUES (?1, ?2, ?3, {NOW},
                         strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?4), ?5)
                 RETURNING expires_at"
            ),
            params![
                sha256(&id),
                user,
                csrf_token,
                format!("+{} seconds", lifetime.as_secs()),
                credential_stamp,
            ],
            |row| row.get(0),
        )?;
        Ok((
            Secret::new(id),
            DashboardSession {
                user: user.to_owned(),
                csrf_token,
                expires_at,
                credential_stamp: credential_stamp.to_owned(),
            },
        ))
    }

    /// The unexpired session whose id is `id`.
    pub fn session(&self, id: &str) -> Result<Option<DashboardSession>, DeployStoreError> {
        let session = self
            .lock()
            .query_row(
                &format!(
                    "SELECT user, csrf_token, expires_at, credential_stamp FROM deploy_sessions
                     WHERE id_sha256 = ?1 AND expires_at > {NOW}"
                ),
                [sha256(id)],
                |row| {
                    Ok(DashboardSession {
                        user: row.get(0)?,
                        csrf_token: row.get(1)?,
                        expires_at: row.get(2)?,
                        credential_stamp: row.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(session)
    }

    /// Ends the session `id` (logout); unknown ids are ignored.
    pub fn delete_session(&self, id: &str) -> Result<(), DeployStoreError> {
        self.lock().execute(
            "DELETE FROM deploy_sessions WHERE id_sha256 = ?1",
            [sha256(id)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::service::secret_key::SecretKey;

    fn store() -> DeployStore {
        DeployStore::open_in_memory(SecretKey::generate().0).unwrap()
    }

    #[test]
    fn a_token_is_recognised_until_deleted_and_only_its_hash_is_stored() {
        let store = store();
        let token = store.access().add_api_token("ci").unwrap();
        assert!(token.expose().len() >= 32);
        assert_eq!(
            store
                .access()
                .check_api_token(token.expose())
                .unwrap()
                .as_deref(),
            Some("ci")
        );
        assert_eq!(
            store.access().check_api_token("not the token").unwrap(),
            None
        );
        let stored: Vec<u8> = store
            .lock()
            .query_row("SELECT token_sha256 FROM deploy_api_tokens", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(stored, sha256(token.expose()));
        let listed = store.access().list_api_tokens().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some(), "use is recorded");
        assert!(matches!(
            store.access().add_api_token("ci"),
            Err(DeployStoreError::ApiTokenExists(_))
        ));
        store.access().delete_api_token("ci").unwrap();
        assert_eq!(
            store.access().check_api_token(token.expose()).unwrap(),
            None
        );
        assert!(matches!(
            store.access().delete_api_token("ci"),
            Err(DeployStoreError::NoSuchApiToken(_))
        ));
        assert!(matches!(
            store.access().add_api_token("bad name"),
            Err(DeployStoreError::InvalidTokenName(_))
        ));
    }

    #[test]
    fn a_session_is_found_by_its_id_until_logout_or_expiry() {
        let store = store();
        let (id, session) = store
            .access()
            .create_session("alice", "stamp", Duration::from_secs(3600))
            .unwrap();
        assert_eq!(
            store.access().session(id.expose()).unwrap(),
            Some(session.clone())
        );
        assert_eq!(session.credential_stamp, "stamp");
        assert_ne!(session.csrf_token, id.expose());
        assert_eq!(store.access().session("forged").unwrap(), None);
        store.access().delete_session(id.expose()).unwrap();
        assert_eq!(store.access().session(id.expose()).unwrap(), None);

        let (expired, _) = store
            .access()
            .create_session("alice", "stamp", Duration::ZERO)
            .unwrap();
        assert_eq!(store.access().session(expired.expose()).unwrap(), None);
    }
}
