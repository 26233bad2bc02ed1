//! Keys in the cache.

use super::{Result, Store, StoreError};
use crate::model::{from_millis, to_millis, Key, KeySource, KeyStatus, Millis, Severity};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// A cached key with what the views add to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRow {
    /// The cache's handle of the key (stable for the life of the cache).
    #[serde(skip)]
    pub key_ref: i64,
    #[serde(flatten)]
    pub key: Key,
    /// Number of open findings.
    pub open_findings: i64,
    /// Highest severity among the open findings.
    pub worst_severity: Option<Severity>,
}

const KEY_COLUMNS: &str =
    "k.id, p.name, k.ext_id, k.name, k.owner, k.environment, k.purpose, k.prefix,
     k.fingerprint, k.scopes, k.status, k.created, k.expires, k.last_used, k.rotated_to, k.source,
     coalesce(f.n, 0), f.worst";

/// The joins that add to `keys k` its provider and the summary of its open findings (one
/// grouped pass over the open findings instead of two lookups per key).
macro_rules! key_joins {
    () => {
        "JOIN providers p ON p.id = k.provider_id
         LEFT JOIN (SELECT key_ref, count(*) AS n, max(severity) AS worst FROM findings
                    WHERE status = 'open' GROUP BY key_ref) f ON f.key_ref = k.id"
    };
}

/// Keys with their provider and findings summary.
const KEY_FROM: &str = concat!("keys k ", key_joins!());

/// The same for reading every key: one pass over the table in storage order and one sort
/// are cheaper than following the `keys_list` index row by row.
const KEY_SCAN_FROM: &str = concat!("keys k NOT INDEXED ", key_joins!());

/// The first keys of the list; the `keys_list` index yields them in order.
fn head_sql() -> String {
    format!(
        "SELECT {KEY_COLUMNS} FROM {KEY_FROM}
         ORDER BY p.name, k.name, k.ext_id LIMIT ?1"
    )
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let scopes: String = text(9)?;
    let status: String = text(10)?;
    let source: String = text(15)?;
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(KeyRow {
        key_ref: r.get(0)?,
        key: Key {
            provider: text(1)?,
            id: text(2)?,
            name: text(3)?,
            owner: text(4)?,
            environment: r.get(5)?,
            purpose: r.get(6)?,
            prefix: text(7)?,
            fingerprint: text(8)?,
            scopes: serde_json::from_str(&scopes).map_err(|e| bad(9, e.to_string()))?,
            status: status.parse::<KeyStatus>().map_err(|e| bad(10, e))?,
            created: r.get::<_, Option<Millis>>(11)?.map(from_millis),
            expires: r.get::<_, Option<Millis>>(12)?.map(from_millis),
            last_used: r.get::<_, Option<Millis>>(13)?.map(from_millis),
            rotated_to: r.get(14)?,
            source: source.parse::<KeySource>().map_err(|e| bad(15, e))?,
        },
        open_findings: r.get(16)?,
        worst_severity: r
            .get::<_, Option<i64>>(17)?
            .and_then(|s| Severity::ALL.get(s as usize).copied()),
    })
}

/// Inserts or updates one key inside a transaction; returns its cache handle.
pub(crate) fn upsert_key_tx(
    tx: &Connection,
    provider_id: i64,
    key: &Key,
    synced_at: Millis,
) -> Result<i64> {
    let scopes = serde_json::to_string(&key.scopes).map_err(|source| StoreError::Json {
        what: "scopes",
        source,
    })?;
    // A key first seen in logs is upgraded when its provider lists it; a listed key is
    // never downgraded to "seen in logs" by an import.
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO keys (provider_id, ext_id, name, owner, environment, purpose, prefix,
                               fingerprint, scopes, status, created, expires, last_used,
                               rotated_to, source, synced_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             ON CONFLICT(provider_id, ext_id) DO UPDATE SET
                name = excluded.name, owner = excluded.owner, environment = excluded.environment,
                purpose = excluded.purpose, prefix = excluded.prefix,
                fingerprint = excluded.fingerprint, scopes = excluded.scopes,
                status = excluded.status, created = excluded.created, expires = excluded.expires,
                last_used = max(coalesce(excluded.last_used, 0), coalesce(keys.last_used, 0)),
                rotated_to = excluded.rotated_to, source = excluded.source,
                synced_at = excluded.synced_at
             WHERE excluded.source = 'provider' OR keys.source = 'logs'
             RETURNING id",
        )?
        .query_row(
            params![
                provider_id,
                key.id,
                key.name,
                key.owner,
                key.environment,
                key.purpose,
                key.prefix,
                key.fingerprint,
                scopes,
                key.status.as_str(),
                key.created.map(to_millis),
                key.expires.map(to_millis),
                key.last_used.map(to_millis),
                key.rotated_to,
                key.source.as_str(),
                synced_at,
            ],
            |r| r.get(0),
        )
        .optional()?
        .map(Ok)
        .unwrap_or_else(|| key_ref_tx(tx, provider_id, &key.id))?;
    // `max(0, NULL)` above turns "never used" into 0; put the NULL back.
    tx.prepare_cached("UPDATE keys SET last_used = NULL WHERE id = ?1 AND last_used = 0")?
        .execute([id])?;
    Ok(id)
}

pub(crate) fn key_ref_tx(tx: &Connection, provider_id: i64, ext_id: &str) -> Result<i64> {
    Ok(tx
        .prepare_cached("SELECT id FROM keys WHERE provider_id = ?1 AND ext_id = ?2")?
        .query_row(params![provider_id, ext_id], |r| r.get(0))?)
}

impl Store {
    /// Upserts one page of keys of a provider in one transaction.
    pub fn upsert_keys(
        &mut self,
        provider: &str,
        keys: &[Key],
        synced_at: DateTime<Utc>,
    ) -> Result<()> {
        let pid = self
            .provider_id(provider)?
            .ok_or_else(|| StoreError::UnknownProvider(provider.to_string()))?;
        crate::store::retry_busy(|| {
            // Immediate: the write lock is taken (waiting out the busy timeout) before
            // anything is read, so the transaction never has to upgrade.
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for key in keys {
                upsert_key_tx(&tx, pid, key, to_millis(synced_at))?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Records when a key stopped working (was deactivated, disabled or revoked), as its
    /// provider or keyaudit's own action says; `None` forgets it. Detection reads a
    /// refusal up to the provider's clock skew after this time as a refusal of a working
    /// key, not as use after revocation. Returns false when the key is not cached.
    pub fn set_key_stopped_at(
        &self,
        provider: &str,
        id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE keys SET stopped_at = ?3
             WHERE provider_id = (SELECT id FROM providers WHERE name = ?1) AND ext_id = ?2",
            params![provider, id, at.map(to_millis)],
        )? > 0)
    }

    /// After a key listing that started at `sync_started`: keys the provider listed
    /// before but no longer lists are gone at the provider, so they are marked revoked,
    /// except those `held` says belong to a source the listing could not read (they stay
    /// as cached). Returns how many were marked revoked and how many were held, in one
    /// transaction.
    pub fn mark_unlisted_revoked(
        &mut self,
        provider: &str,
        sync_started: DateTime<Utc>,
        held: &dyn Fn(&Key) -> bool,
    ) -> Result<(usize, usize)> {
        crate::store::retry_busy(|| {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let unlisted: Vec<KeyRow> = {
                let sql = format!(
                    "SELECT {KEY_COLUMNS} FROM {KEY_FROM}
                     WHERE p.name = ?1 AND k.source = 'provider' AND k.status != 'revoked'
                       AND (k.synced_at IS NULL OR k.synced_at < ?2)"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![provider, to_millis(sync_started)], key_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let (mut revoked, mut kept) = (0, 0);
            {
                let mut mark =
                    tx.prepare_cached("UPDATE keys SET status = 'revoked' WHERE id = ?1")?;
                for row in &unlisted {
                    if held(&row.key) {
                        kept += 1;
                    } else {
                        revoked += mark.execute([row.key_ref])?;
                    }
                }
            }
            tx.commit()?;
            Ok((revoked, kept))
        })
    }

    /// Every key, ordered by provider and name. (100,000 keys are about 30 MB in memory;
    /// views filter and sort this list, they never scan events.)
    pub fn keys(&self) -> Result<Vec<KeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM {KEY_SCAN_FROM}
             ORDER BY p.name, k.name, k.ext_id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], key_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The cache handle of the key `id` of `provider`.
    pub fn key_handle(&self, provider: &str, id: &str) -> Result<Option<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT k.id FROM keys k JOIN providers p ON p.id = k.provider_id
             WHERE p.name = ?1 AND k.ext_id = ?2",
        )?;
        Ok(stmt.query_row([provider, id], |r| r.get(0)).optional()?)
    }

    /// The provider's name and the key's id of the cache handle `key_ref`.
    pub fn key_target(&self, key_ref: i64) -> Result<Option<(String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.name, k.ext_id FROM keys k JOIN providers p ON p.id = k.provider_id
             WHERE k.id = ?1",
        )?;
        Ok(stmt
            .query_row([key_ref], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// The first `limit` keys in the order of [`Store::keys`], and how many keys there are
    /// in all: a first screen to show while the whole list loads.
    pub fn keys_head(&self, limit: usize) -> Result<(Vec<KeyRow>, usize)> {
        let mut stmt = self.conn.prepare_cached(&head_sql())?;
        let rows = stmt.query_map([limit as i64], key_row)?;
        let head = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        let total = if head.len() < limit {
            head.len()
        } else {
            usize::try_from(self.key_count()?).unwrap_or(0)
        };
        Ok((head, total))
    }

    /// One key by provider and id.
    pub fn key(&self, provider: &str, id: &str) -> Result<Option<KeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM {KEY_FROM}
             WHERE p.name = ?1 AND k.ext_id = ?2"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![provider, id], key_row)
            .optional()?)
    }

    /// Keys with this provider id across all providers (ids are usually unique; the
    /// caller decides what to do when they are not).
    pub fn keys_by_id(&self, id: &str) -> Result<Vec<KeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM {KEY_FROM}
             WHERE k.ext_id = ?1 ORDER BY p.name"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([id], key_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The key with this cache handle.
    pub fn key_by_ref(&self, key_ref: i64) -> Result<Option<KeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM {KEY_FROM}
             WHERE k.id = ?1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([key_ref], key_row)
            .optional()?)
    }

    /// Replaces one key's cached state after an action on it (revoke, rotate, ...).
    pub fn put_key(&mut self, key: &Key) -> Result<i64> {
        let pid = self
            .provider_id(&key.provider)?
            .ok_or_else(|| StoreError::UnknownProvider(key.provider.clone()))?;
        crate::store::retry_busy(|| {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id = upsert_key_tx(&tx, pid, key, to_millis(Utc::now()))?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Number of keys in the cache.
    pub fn key_count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeySource;

    pub(crate) fn sample_key(provider: &str, id: &str) -> Key {
        Key {
            provider: provider.into(),
            id: id.into(),
            name: format!("{id}-name"),
            owner: "Acme Payroll".into(),
            environment: Some("prod".into()),
            purpose: Some("payroll-export".into()),
            prefix: "tg_live_abcd".into(),
            fingerprint: "sha256:00".into(),
            scopes: vec!["payroll:read".into()],
            status: KeyStatus::Active,
            created: Some(from_millis(1_700_000_000_000)),
            expires: None,
            last_used: None,
            rotated_to: None,
            source: KeySource::Provider,
        }
    }

    #[test]
    fn upsert_never_duplicates_and_updates_fields() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let mut k = sample_key("p", "k1");
        store
            .upsert_keys("p", std::slice::from_ref(&k), Utc::now())
            .unwrap();
        k.status = KeyStatus::Inactive;
        k.scopes.push("ssn:read".into());
        store
            .upsert_keys("p", std::slice::from_ref(&k), Utc::now())
            .unwrap();
        let keys = store.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key, k);
    }

    #[test]
    fn the_head_of_the_list_is_its_first_keys() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        store.ensure_provider("a", "http", None).unwrap();
        let mut keys: Vec<Key> = ["k3", "k1", "k2", "k5", "k4"]
            .iter()
            .map(|id| sample_key("p", id))
            .collect();
        keys[1].name = "zz".into();
        store.upsert_keys("p", &keys, Utc::now()).unwrap();
        store
            .upsert_keys("a", &[sample_key("a", "k9")], Utc::now())
            .unwrap();
        let all = store.keys().unwrap();
        let (head, total) = store.keys_head(3).unwrap();
        assert_eq!((head.as_slice(), total), (&all[..3], 6));
        assert_eq!(store.keys_head(10).unwrap(), (all, 6));
        // Read in index order: no sort of the whole table for a screenful.
        let plan: Vec<String> = store
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {}", head_sql()))
            .unwrap()
            .query_map([3], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("keys_list")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("ORDER BY")), "{plan:?}");
    }

    #[test]
    fn the_whole_list_is_one_pass_over_the_table() {
        let store = Store::open_in_memory().unwrap();
        let plan: Vec<String> = store
            .conn()
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {KEY_COLUMNS} FROM {KEY_SCAN_FROM}
                 ORDER BY p.name, k.name, k.ext_id"
            ))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|p| p == "SCAN k"), "{plan:?}");
    }

    #[test]
    fn logs_never_downgrade_a_listed_key() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let k = sample_key("p", "k1");
        store
            .upsert_keys("p", std::slice::from_ref(&k), Utc::now())
            .unwrap();
        store
            .upsert_keys("p", &[Key::seen_in_logs("p", "k1")], Utc::now())
            .unwrap();
        assert_eq!(store.key("p", "k1").unwrap().unwrap().key, k);
    }

    #[test]
    fn keys_no_longer_listed_become_revoked() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let first = Utc::now() - chrono::Duration::seconds(10);
        store
            .upsert_keys("p", &[sample_key("p", "a"), sample_key("p", "b")], first)
            .unwrap();
        let second = Utc::now();
        store
            .upsert_keys("p", &[sample_key("p", "a")], second)
            .unwrap();
        assert_eq!(
            store
                .mark_unlisted_revoked("p", second, &|_| false)
                .unwrap(),
            (1, 0)
        );
        assert_eq!(
            store.key("p", "b").unwrap().unwrap().key.status,
            KeyStatus::Revoked
        );
        assert_eq!(
            store.key("p", "a").unwrap().unwrap().key.status,
            KeyStatus::Active
        );
    }

    #[test]
    fn unlisted_keys_of_a_held_source_stay_as_cached() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let first = Utc::now() - chrono::Duration::seconds(10);
        let keys = [
            sample_key("p", "token:1"),
            sample_key("p", "alert:a#1"),
            sample_key("p", "token:2"),
        ];
        store.upsert_keys("p", &keys, first).unwrap();
        let second = Utc::now();
        store
            .upsert_keys("p", &[sample_key("p", "token:1")], second)
            .unwrap();
        let n = store
            .mark_unlisted_revoked("p", second, &|k| k.id.starts_with("alert:"))
            .unwrap();
        assert_eq!(n, (1, 1));
        let status = |id: &str| store.key("p", id).unwrap().unwrap().key.status;
        assert_eq!(status("alert:a#1"), KeyStatus::Active);
        assert_eq!(status("token:2"), KeyStatus::Revoked);
        assert_eq!(status("token:1"), KeyStatus::Active);
    }
}
