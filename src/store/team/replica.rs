//! The team's copy of each source (schema migration 3): the member that syncs a source
//! publishes its keys, new events and findings; the others read them into their own
//! caches instead of calling the provider. Who syncs is decided by a session advisory
//! lock per source ([`TeamStore::try_sync_lock`]): one member at a time, and a crashed
//! member's lock goes with its connection.
//!
//! Events travel by binary `COPY` into a temporary table and one `INSERT … ON CONFLICT
//! DO NOTHING` (a copy cannot skip duplicates itself). Raw records stay with the member
//! that synced. Every published row gets a number that grows, per source, in commit
//! order (publishing holds the source's lock), so a reader asks for a source's rows past
//! the last number it read.

use super::{decisions, TeamStore};
use crate::model::{Event, Finding, FindingStatus, Key};
use crate::store::events::{outcome_code, outcome_from_code};
use crate::store::shared::SharedError;
use chrono::{DateTime, Utc};
use futures_util::pin_mut;
use futures_util::StreamExt;
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::types::Type;

/// The types of an event's columns in the team's copy, from `ext_id` to `records`
/// (`ext_id, key_id, time, principal, action, scope, source_ip, user_agent, outcome,
/// status_code, request_id, records`), for binary `COPY` in and out.
pub const EVENT_COPY_TYPES: [Type; 12] = [
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
];

/// Writes `e` of `provider` as one row of a binary `COPY` of the columns `provider`, then
/// those of [`EVENT_COPY_TYPES`].
pub async fn copy_event(
    writer: std::pin::Pin<&mut BinaryCopyInWriter>,
    provider: &str,
    e: &Event,
) -> Result<(), tokio_postgres::Error> {
    let time = crate::model::to_millis(e.time);
    let outcome = outcome_code(e.outcome) as i16;
    writer
        .write(&[
            &provider,
            &e.id,
            &e.key_id,
            &time,
            &e.principal,
            &e.action,
            &e.scope,
            &e.source_ip,
            &e.user_agent,
            &outcome,
            &e.status_code,
            &e.request_id,
            &e.records,
        ])
        .await
}

/// The advisory lock of a source's sync: a fixed half ("ka-s") and the source's hash.
pub fn lock_key(provider: &str) -> i64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in provider.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (0x6b61_2d73_i64 << 32) | i64::from(h)
}

/// The right to sync one source for the team, until [`SyncLock::release`] (or the
/// connection's end: a lock dropped unreleased closes its connection, which frees it).
pub struct SyncLock {
    conn: Option<deadpool_postgres::Object>,
    provider: String,
}

impl SyncLock {
    /// Tells the team how far the sync has come (`page 12, 4,800 new events`); a failure
    /// only costs the announcement.
    pub async fn progress(&self, text: &str) {
        let Some(c) = &self.conn else {
            return;
        };
        if let Err(e) = c
            .execute(
                "UPDATE sources SET syncing_progress = $2 WHERE provider = $1",
                &[&self.provider, &text],
            )
            .await
        {
            tracing::warn!(provider = %self.provider, "sync progress not announced: {e}");
        }
    }

    /// Frees the source for the next member.
    pub async fn release(mut self) {
        if let Some(c) = self.conn.take() {
            let freed = c
                .execute(
                    "UPDATE sources SET syncing_by = NULL, syncing_pid = NULL, syncing_since = NULL,
                            syncing_progress = NULL
                     WHERE provider = $1",
                    &[&self.provider],
                )
                .await
                .and(
                    c.execute(
                        "SELECT pg_advisory_unlock($1)",
                        &[&lock_key(&self.provider)],
                    )
                    .await,
                );
            if let Err(e) = freed {
                tracing::warn!(provider = %self.provider, "sync lock not released: {e}");
                // The connection leaves the pool and, closing, frees the lock.
                drop(deadpool_postgres::Object::take(c));
            }
        }
    }
}

impl Drop for SyncLock {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// What the team knows of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// When its copy was last published, and by whom (`user@host`).
    pub synced: Option<(DateTime<Utc>, String)>,
    /// Who is syncing it now, since when.
    pub syncing: Option<(String, DateTime<Utc>)>,
    /// The provider's event cursor its last publisher had synced to, and the last event
    /// row of the copy that cursor covers.
    pub cursor: Option<(String, i64)>,
    /// The last event row of the copy its published detection states cover, and the
    /// fingerprint of the `[detect]` settings that made them.
    pub detected: Option<(i64, String)>,
}

/// What a member read from the team's copy of one source.
#[derive(Debug, Clone, Default)]
pub struct Pulled {
    pub keys: Vec<Key>,
    pub events: Vec<(i64, Event)>,
    pub findings: Vec<(i64, Finding)>,
    /// The last key change read (the next read starts after it).
    pub keys_mark: i64,
}

/// Documents (keys, findings, detection states) sent in one statement.
const ROWS_PER_STATEMENT: usize = 5000;

/// Marks of what a member has read of one source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    pub keys: i64,
    pub events: i64,
    pub findings: i64,
}

impl TeamStore {
    /// Takes the right to sync `provider` for the team, or says who holds it.
    pub async fn try_sync_lock(
        &self,
        provider: &str,
        kind: &str,
    ) -> Result<Result<SyncLock, SourceState>, SharedError> {
        let c = self.conn().await?;
        let got: bool = c
            .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key(provider)])
            .await
            .map_err(|e| self.db_fail("locking the source", &e))?
            .get(0);
        if !got {
            return Ok(Err(self.source(provider).await?));
        }
        let lock = SyncLock {
            conn: Some(c),
            provider: provider.to_string(),
        };
        let me = decisions::me();
        lock.conn
            .as_ref()
            .expect("just set")
            .execute(
                "INSERT INTO sources (provider, kind, syncing_by, syncing_pid, syncing_since)
                 VALUES ($1, $2, $3, $4, clock_timestamp())
                 ON CONFLICT (provider) DO UPDATE
                 SET syncing_by = $3, syncing_pid = $4, syncing_since = clock_timestamp(),
                     syncing_progress = NULL",
                &[&provider, &kind, &me, &(std::process::id() as i32)],
            )
            .await
            .map_err(|e| self.db_fail("recording who syncs the source", &e))?;
        Ok(Ok(lock))
    }

    /// What the team knows of `provider`'s copy.
    pub async fn source(&self, provider: &str) -> Result<SourceState, SharedError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT (extract(epoch FROM synced_at) * 1000)::bigint, synced_by, syncing_by,
                        (extract(epoch FROM syncing_since) * 1000)::bigint, cursor, cursor_events,
                        detect_through, detect_config
                 FROM sources WHERE provider = $1",
                &[&provider],
            )
            .await
            .map_err(|e| self.db_fail("reading the source", &e))?;
        let at = |v: Option<i64>| v.map(crate::model::from_millis);
        Ok(match row {
            None => SourceState {
                synced: None,
                syncing: None,
                cursor: None,
                detected: None,
            },
            Some(r) => SourceState {
                synced: at(r.get(0)).zip(r.get::<_, Option<String>>(1)),
                syncing: r.get::<_, Option<String>>(2).zip(at(r.get(3))),
                cursor: r.get::<_, Option<String>>(4).zip(r.get(5)),
                detected: r.get::<_, Option<i64>>(6).zip(r.get(7)),
            },
        })
    }

    /// Publishes events a sync of the locked source brought (duplicates skipped), in
    /// one transaction; returns how many were new to the team.
    pub async fn publish_events(
        &self,
        lock: &SyncLock,
        events: &[Event],
    ) -> Result<u64, SharedError> {
        let provider = lock.provider.as_str();
        let mut c = self.conn().await?;
        let tx = c
            .transaction()
            .await
            .map_err(|e| self.db_fail("starting to publish", &e))?;
        tx.batch_execute(
            "CREATE TEMPORARY TABLE incoming (LIKE events INCLUDING DEFAULTS) ON COMMIT DROP;
             ALTER TABLE incoming DROP COLUMN id",
        )
        .await
        .map_err(|e| self.db_fail("staging the events", &e))?;
        let sink = tx
            .copy_in(
                "COPY incoming (provider, ext_id, key_id, time, principal, action, scope,
                                source_ip, user_agent, outcome, status_code, request_id, records)
                 FROM STDIN BINARY",
            )
            .await
            .map_err(|e| self.db_fail("copying the events", &e))?;
        let types: Vec<Type> = std::iter::once(Type::TEXT)
            .chain(EVENT_COPY_TYPES)
            .collect();
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        for e in events {
            copy_event(writer.as_mut(), provider, e)
                .await
                .map_err(|e| self.db_fail("copying an event", &e))?;
        }
        writer
            .finish()
            .await
            .map_err(|e| self.db_fail("finishing the copy", &e))?;
        let new = tx
            .execute(
                "INSERT INTO events (provider, ext_id, key_id, time, principal, action, scope,
                                     source_ip, user_agent, outcome, status_code, request_id, records)
                 SELECT provider, ext_id, key_id, time, principal, action, scope,
                        source_ip, user_agent, outcome, status_code, request_id, records
                 FROM incoming
                 ON CONFLICT (provider, ext_id) DO NOTHING",
                &[],
            )
            .await
            .map_err(|e| self.db_fail("publishing the events", &e))?;
        tx.commit()
            .await
            .map_err(|e| self.db_fail("committing the events", &e))?;
        Ok(new)
    }

    /// Publishes the locked source's keys (a row changes only when its document does)
    /// and findings with their detection status (operators' decisions travel as
    /// decisions) and the detection `states` (by key id) saved since its last
    /// publication, and records the sync with the provider's event `cursor` it reached,
    /// in one transaction. `detected` is the fingerprint of the `[detect]` settings when
    /// the states cover every event of the copy published so far; `None` says they may
    /// not, and the next member to run detection on the copy replays it whole.
    pub async fn publish_state(
        &self,
        lock: &SyncLock,
        keys: &[Key],
        findings: &[Finding],
        states: &[(String, Vec<u8>)],
        cursor: Option<&str>,
        detected: Option<&str>,
    ) -> Result<(), SharedError> {
        let provider = lock.provider.as_str();
        let mut c = self.conn().await?;
        let tx = c
            .transaction()
            .await
            .map_err(|e| self.db_fail("starting to publish", &e))?;
        let key_docs = keys
            .iter()
            .map(|k| Ok((k.id.as_str(), serde_json::to_string(k)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| self.fail(e))?;
        self.upsert_docs(
            &tx,
            "INSERT INTO keys (provider, key_id, doc, change)
             SELECT $1, k, d, nextval('changes') FROM unnest($2::text[], $3::text[]) AS t (k, d)
             ON CONFLICT (provider, key_id) DO UPDATE SET doc = excluded.doc, change = excluded.change
             WHERE keys.doc IS DISTINCT FROM excluded.doc",
            provider,
            &key_docs,
            "keys",
        )
        .await?;
        let finding_docs = findings
            .iter()
            .map(|f| Ok((f.id.as_str(), serde_json::to_string(&as_detected(f))?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| self.fail(e))?;
        self.upsert_docs(
            &tx,
            "INSERT INTO findings (id, provider, doc, change)
             SELECT k, $1, d, nextval('changes') FROM unnest($2::text[], $3::text[]) AS t (k, d)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, change = excluded.change
             WHERE findings.doc IS DISTINCT FROM excluded.doc",
            provider,
            &finding_docs,
            "findings",
        )
        .await?;
        // A statement per chunk of states, as two arrays: a first sync of a large source
        // sends every key's state.
        for chunk in states.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
            let blobs: Vec<&[u8]> = chunk.iter().map(|(_, s)| s.as_slice()).collect();
            tx.execute(
                "INSERT INTO detect_states (provider, key_id, state)
                 SELECT $1, k, s FROM unnest($2::text[], $3::bytea[]) AS t (k, s)
                 ON CONFLICT (provider, key_id) DO UPDATE SET state = excluded.state",
                &[&provider, &ids, &blobs],
            )
            .await
            .map_err(|e| self.db_fail("publishing detection states", &e))?;
        }
        // Every event the cursor covers was published before this transaction.
        tx.execute(
            "UPDATE sources SET synced_at = clock_timestamp(), synced_by = $2,
                    cursor = coalesce($3, cursor),
                    cursor_events = CASE WHEN $3::text IS NULL THEN cursor_events
                        ELSE (SELECT coalesce(max(id), 0) FROM events WHERE provider = $1) END,
                    detect_through = CASE WHEN $4::text IS NULL THEN NULL
                        ELSE (SELECT coalesce(max(id), 0) FROM events WHERE provider = $1) END,
                    detect_config = $4
             WHERE provider = $1",
            &[&provider, &decisions::me(), &cursor, &detected],
        )
        .await
        .map_err(|e| self.db_fail("recording the sync", &e))?;
        tx.commit()
            .await
            .map_err(|e| self.db_fail("committing what was published", &e))
    }

    /// Writes each `(id, document)` of `provider` with `sql` (`$1` the provider, `$2` the
    /// ids and `$3` the documents, as arrays), which numbers the rows whose document
    /// changed; a statement per chunk of rows.
    async fn upsert_docs(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        sql: &str,
        provider: &str,
        docs: &[(&str, String)],
        what: &str,
    ) -> Result<(), SharedError> {
        for chunk in docs.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| *id).collect();
            let texts: Vec<&str> = chunk.iter().map(|(_, d)| d.as_str()).collect();
            tx.execute(sql, &[&provider, &ids, &texts])
                .await
                .map_err(|e| self.db_fail(&format!("publishing {what}"), &e))?;
        }
        Ok(())
    }

    /// The last numbers of `provider`'s copy: what a member that just published it has
    /// read.
    pub async fn tops(&self, provider: &str) -> Result<Marks, SharedError> {
        let c = self.conn().await?;
        let r = c
            .query_one(
                "SELECT (SELECT coalesce(max(change), 0) FROM keys WHERE provider = $1),
                        (SELECT coalesce(max(id), 0) FROM events WHERE provider = $1),
                        (SELECT coalesce(max(change), 0) FROM findings WHERE provider = $1)",
                &[&provider],
            )
            .await
            .map_err(|e| self.db_fail("reading the copy's last rows", &e))?;
        Ok(Marks {
            keys: r.get(0),
            events: r.get(1),
            findings: r.get(2),
        })
    }

    /// Reads `provider`'s copy past `marks`: keys and findings (all that changed) and at
    /// most `limit` events.
    pub async fn pull(
        &self,
        provider: &str,
        marks: Marks,
        limit: i64,
    ) -> Result<Pulled, SharedError> {
        let c = self.conn().await?;
        let mut out = Pulled {
            keys_mark: marks.keys,
            ..Pulled::default()
        };
        for r in c
            .query(
                "SELECT doc, change FROM keys WHERE provider = $1 AND change > $2 ORDER BY change",
                &[&provider, &marks.keys],
            )
            .await
            .map_err(|e| self.db_fail("reading the team's keys", &e))?
        {
            let doc: String = r.get(0);
            out.keys
                .push(serde_json::from_str(&doc).map_err(|e| self.fail(format!("a key: {e}")))?);
            out.keys_mark = r.get(1);
        }
        out.events = self.pull_events(provider, marks.events, limit).await?;
        for r in c
            .query(
                "SELECT doc, change FROM findings WHERE provider = $1 AND change > $2
                 ORDER BY change",
                &[&provider, &marks.findings],
            )
            .await
            .map_err(|e| self.db_fail("reading the team's findings", &e))?
        {
            let doc: String = r.get(0);
            let f: Finding =
                serde_json::from_str(&doc).map_err(|e| self.fail(format!("a finding: {e}")))?;
            out.findings.push((r.get(1), f));
        }
        Ok(out)
    }
}

impl TeamStore {
    /// `provider`'s events published after row `after`, at most `limit`, in row order,
    /// without raw records (the team's copy holds none). Read by binary `COPY`, which
    /// sends them in PostgreSQL's binary form rather than a row message each; its query
    /// takes no parameters, so they travel as settings of the read's own transaction.
    pub async fn pull_events(
        &self,
        provider: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Event)>, SharedError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let fail = |e: tokio_postgres::Error| self.db_fail("reading the team's events", &e);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(fail)?;
        tx.query(
            "SELECT set_config('keyaudit.pull_provider', $1, true),
                    set_config('keyaudit.pull_after', $2, true),
                    set_config('keyaudit.pull_limit', $3, true)",
            &[&provider, &after.to_string(), &limit.to_string()],
        )
        .await
        .map_err(fail)?;
        let stream = tx
            .copy_out(
                "COPY (SELECT id, ext_id, key_id, time, principal, action, scope, source_ip,
                              user_agent, outcome, status_code, request_id, records
                       FROM events
                       WHERE provider = current_setting('keyaudit.pull_provider')
                         AND id > current_setting('keyaudit.pull_after')::bigint
                       ORDER BY id
                       LIMIT current_setting('keyaudit.pull_limit')::bigint)
                 TO STDOUT (FORMAT binary)",
            )
            .await
            .map_err(fail)?;
        let types: Vec<Type> = std::iter::once(Type::INT8)
            .chain(EVENT_COPY_TYPES)
            .collect();
        let rows = BinaryCopyOutStream::new(stream, &types);
        pin_mut!(rows);
        let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(100_000));
        while let Some(r) = rows.next().await {
            let r = r.map_err(fail)?;
            out.push((
                r.get::<i64>(0),
                Event {
                    provider: provider.to_string(),
                    id: r.get(1),
                    key_id: r.get(2),
                    time: crate::model::from_millis(r.get(3)),
                    principal: r.get(4),
                    action: r.get(5),
                    scope: r.get(6),
                    source_ip: r.get(7),
                    user_agent: r.get(8),
                    outcome: outcome_from_code(i64::from(r.get::<i16>(9))),
                    status_code: r.get(10),
                    request_id: r.get(11),
                    records: r.get(12),
                    raw: None,
                },
            ));
        }
        tx.commit().await.map_err(fail)?;
        Ok(out)
    }
}

/// A finding as detection left it: an operator's status and note are decisions, which
/// the team shares as such.
fn as_detected(f: &Finding) -> Finding {
    let mut f = f.clone();
    if matches!(
        f.status,
        FindingStatus::Acknowledged | FindingStatus::Suppressed
    ) {
        f.status = FindingStatus::Open;
    }
    f.note = None;
    f.suppressed_until = None;
    f
}
