//! The team's journal: one hash chain for every member. An append takes a transaction
//! advisory lock, reads the last entry and inserts the next, so concurrent members queue
//! instead of forking the chain; hashes are `store::journal::entry_hash`, the cache's, so
//! `journal verify` checks both (and exports of both) with one routine.

use super::TeamStore;
use crate::model::{from_millis, to_millis, JournalEntry};
use crate::store::journal::{entry_hash, host_name, os_user, NewEntry, GENESIS};
use crate::store::shared::SharedError;
use chrono::Utc;

/// The advisory lock that serialises appends (an arbitrary constant: "ka-journ").
pub const JOURNAL_LOCK: i64 = 0x6b61_2d6a_6f75_726e;

const COLUMNS: &str =
    "seq, time, os_user, host, action, target, reason, params, result, prev_hash, hash";

/// Appends `new` now, as this process's OS user and host.
pub(super) async fn append(
    store: &TeamStore,
    new: &NewEntry<'_>,
) -> Result<JournalEntry, SharedError> {
    let mut c = store.conn().await?;
    let tx = c
        .transaction()
        .await
        .map_err(|e| store.db_fail("starting a journal append", &e))?;
    let entry = append_in(store, &tx, new).await?;
    tx.commit()
        .await
        .map_err(|e| store.db_fail("committing the journal entry", &e))?;
    Ok(entry)
}

/// Appends `new` inside `tx` (which commits it with whatever else it holds); the
/// journal's lock is held until `tx` ends.
pub(super) async fn append_in(
    store: &TeamStore,
    tx: &deadpool_postgres::Transaction<'_>,
    new: &NewEntry<'_>,
) -> Result<JournalEntry, SharedError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOURNAL_LOCK])
        .await
        .map_err(|e| store.db_fail("locking the journal", &e))?;
    let last = tx
        .query_opt(
            "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| store.db_fail("reading the journal's last entry", &e))?;
    let (seq, prev_hash) = match last {
        Some(r) => (r.get::<_, i64>(0) + 1, r.get::<_, String>(1)),
        None => (1, GENESIS.to_string()),
    };
    let mut entry = JournalEntry {
        seq,
        // Hashed at millisecond precision, as stored.
        time: from_millis(to_millis(Utc::now())),
        os_user: os_user(),
        host: host_name(),
        action: new.action.to_string(),
        target: new.target.to_string(),
        reason: new.reason.map(str::to_string),
        params: new.params.clone(),
        result: new.result.to_string(),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    tx.execute(
        &format!(
            "INSERT INTO journal ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &entry.seq,
            &to_millis(entry.time),
            &entry.os_user,
            &entry.host,
            &entry.action,
            &entry.target,
            &entry.reason,
            &entry.params.to_string(),
            &entry.result,
            &entry.prev_hash,
            &entry.hash,
        ],
    )
    .await
    .map_err(|e| store.db_fail("appending to the journal", &e))?;
    Ok(entry)
}

/// Every entry, oldest first.
pub(super) async fn entries(store: &TeamStore) -> Result<Vec<JournalEntry>, SharedError> {
    let c = store.conn().await?;
    let rows = c
        .query(&format!("SELECT {COLUMNS} FROM journal ORDER BY seq"), &[])
        .await
        .map_err(|e| store.db_fail("reading the journal", &e))?;
    Ok(rows.iter().map(entry).collect())
}

/// The last `limit` entries, of `target` only when given, oldest first (the index
/// `journal_target` serves a key's).
pub(super) async fn recent(
    store: &TeamStore,
    target: Option<&str>,
    limit: usize,
) -> Result<Vec<JournalEntry>, SharedError> {
    let c = store.conn().await?;
    let limit = limit as i64;
    let rows = match target {
        Some(t) => {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM journal WHERE target = $1 ORDER BY seq DESC LIMIT $2"
                ),
                &[&t, &limit],
            )
            .await
        }
        None => {
            c.query(
                &format!("SELECT {COLUMNS} FROM journal ORDER BY seq DESC LIMIT $1"),
                &[&limit],
            )
            .await
        }
    }
    .map_err(|e| store.db_fail("reading the journal", &e))?;
    Ok(rows.iter().rev().map(entry).collect())
}

fn entry(r: &tokio_postgres::Row) -> JournalEntry {
    let params: String = r.get(7);
    JournalEntry {
        seq: r.get(0),
        time: from_millis(r.get(1)),
        os_user: r.get(2),
        host: r.get(3),
        action: r.get(4),
        target: r.get(5),
        reason: r.get(6),
        params: serde_json::from_str(&params).unwrap_or(serde_json::Value::String(params)),
        result: r.get(8),
        prev_hash: r.get(9),
        hash: r.get(10),
    }
}
