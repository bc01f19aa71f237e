//! The notification sets: who is mailed after which deploys.

use rusqlite::{OptionalExtension as _, Row, TransactionBehavior, params};

use super::super::model::{NotificationSet, NotificationSetUpdate, NotifyWhen};
use super::{
    DeployStore, DeployStoreError, NOW, notification_set_id, validate_addresses, validate_name,
};
use crate::sqlite;

/// The notification sets of a [`DeployStore`].
#[derive(Debug, Clone, Copy)]
pub struct NotificationSets<'a>(pub(super) &'a DeployStore);

impl std::ops::Deref for NotificationSets<'_> {
    type Target = DeployStore;

    fn deref(&self) -> &DeployStore {
        self.0
    }
}

impl NotificationSets<'_> {
    pub fn add(&self, set: &NotificationSet) -> Result<(), DeployStoreError> {
        validate_name(&set.name)?;
        validate_addresses(&set.success_emails)?;
        validate_addresses(&set.failure_emails)?;
        let result = self.lock().execute(
            &format!(
                "INSERT INTO deploy_notification_sets (name, success_emails, failure_emails,
                     notify_pusher, notify_authors, pusher_when, authors_when, created_at,
                     updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW}, {NOW})"
            ),
            params![
                set.name,
                to_json(&set.success_emails),
                to_json(&set.failure_emails),
                set.notify_pusher != NotifyWhen::Never,
                set.notify_authors != NotifyWhen::Never,
                set.notify_pusher.as_str(),
                set.notify_authors.as_str(),
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if sqlite::is_unique_violation(&e) => {
                Err(DeployStoreError::NotificationSetExists(set.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn get(&self, name: &str) -> Result<NotificationSet, DeployStoreError> {
        self.lock()
            .query_row(
                "SELECT name, success_emails, failure_emails, pusher_when, authors_when
                 FROM deploy_notification_sets WHERE name = ?1",
                [name],
                read_notification_set,
            )
            .optional()?
            .transpose()?
            .ok_or_else(|| DeployStoreError::NoSuchNotificationSet(name.to_owned()))
    }

    pub fn list(&self) -> Result<Vec<NotificationSet>, DeployStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT name, success_emails, failure_emails, pusher_when, authors_when
             FROM deploy_notification_sets ORDER BY name",
        )?;
        let rows = statement.query_map([], read_notification_set)?;
        rows.map(|row| row?).collect()
    }

    /// Changes a set; the result is the set as stored.
    pub fn update(
        &self,
        name: &str,
        update: &NotificationSetUpdate,
    ) -> Result<NotificationSet, DeployStoreError> {
        for list in [&update.success_emails, &update.failure_emails]
            .into_iter()
            .flatten()
        {
            validate_addresses(list)?;
        }
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = notification_set_id(&tx, name)?;
        let set = |column: &str, value: &dyn rusqlite::ToSql| {
            tx.execute(
                &format!(
                    "UPDATE deploy_notification_sets SET {column} = ?1, updated_at = {NOW}
                     WHERE id = ?2"
                ),
                params![value, id],
            )
        };
        if let Some(list) = &update.success_emails {
            set("success_emails", &to_json(list))?;
        }
        if let Some(list) = &update.failure_emails {
            set("failure_emails", &to_json(list))?;
        }
        for (when, flag_column, column) in [
            (update.notify_pusher, "notify_pusher", "pusher_when"),
            (update.notify_authors, "notify_authors", "authors_when"),
        ] {
            if let Some(when) = when {
                set(column, &when.as_str())?;
                set(flag_column, &(when != NotifyWhen::Never))?;
            }
        }
        tx.commit()?;
        drop(connection);
        self.get(name)
    }

    /// Deletes a set; services that used it notify nobody until given another.
    pub fn delete(&self, name: &str) -> Result<(), DeployStoreError> {
        let deleted = self.lock().execute(
            "DELETE FROM deploy_notification_sets WHERE name = ?1",
            [name],
        )?;
        if deleted == 0 {
            return Err(DeployStoreError::NoSuchNotificationSet(name.to_owned()));
        }
        Ok(())
    }
}

fn read_notification_set(
    row: &Row<'_>,
) -> rusqlite::Result<Result<NotificationSet, DeployStoreError>> {
    let success: String = row.get(1)?;
    let failure: String = row.get(2)?;
    let parse = |text: &str| {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| DeployStoreError::Corrupt(format!("notification addresses: {e}")))
    };
    let name: String = row.get(0)?;
    let pusher: String = row.get(3)?;
    let authors: String = row.get(4)?;
    Ok((|| {
        Ok(NotificationSet {
            name,
            success_emails: parse(&success)?,
            failure_emails: parse(&failure)?,
            notify_pusher: pusher.parse().map_err(DeployStoreError::Corrupt)?,
            notify_authors: authors.parse().map_err(DeployStoreError::Corrupt)?,
        })
    })())
}

fn to_json(addresses: &[String]) -> String {
    serde_json::to_string(addresses).expect("a list of strings serialises")
}
