//! Events in the cache: batch inserts that never duplicate, and paged or streamed reads
//! that always go through the `(key_ref, time)` or `(time)` index.

use super::{keys::upsert_key_tx, set_cursor_tx, Result, Store, StoreError};
use crate::model::{from_millis, to_millis, Event, Key, Millis, Outcome};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, Row};
use std::collections::HashMap;

/// Which events to read. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub provider: Option<String>,
    /// Only events of this key (provider id of the key).
    pub key_id: Option<String>,
    /// Only events of this cached key (cache handle); faster than `key_id`.
    pub key_ref: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    /// Page anchor for newest-first paging: only events strictly older than this
    /// `(time, row id)`.
    pub before: Option<(Millis, i64)>,
    /// Newest first (views) instead of oldest first (exports).
    pub newest_first: bool,
    pub limit: Option<usize>,
}

/// An event with its cache handles.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub row_id: i64,
    pub key_ref: i64,
    pub event: Event,
}

const EVENT_COLUMNS: &str =
    "e.id, e.key_ref, p.name, e.ext_id, e.time, k.ext_id, e.principal, e.action, e.scope,
     e.source_ip, e.user_agent, e.outcome, e.status_code, e.request_id, e.records, e.raw";

fn outcome_code(o: Outcome) -> i64 {
    match o {
        Outcome::Success => 0,
        Outcome::Denied => 1,
        Outcome::Error => 2,
    }
}

fn outcome_from_code(c: i64) -> Outcome {
    match c {
        0 => Outcome::Success,
        1 => Outcome::Denied,
        _ => Outcome::Error,
    }
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        row_id: r.get(0)?,
        key_ref: r.get(1)?,
        event: Event {
            provider: r.get(2)?,
            id: r.get(3)?,
            time: from_millis(r.get(4)?),
            key_id: r.get(5)?,
            principal: r.get(6)?,
            action: r.get(7)?,
            scope: r.get(8)?,
            source_ip: r.get(9)?,
            user_agent: r.get(10)?,
            outcome: outcome_from_code(r.get(11)?),
            status_code: r.get(12)?,
            request_id: r.get(13)?,
            records: r.get(14)?,
            raw: r.get(15)?,
        },
    })
}

/// Result of inserting a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Events that were new.
    pub events: usize,
    /// Events already in the cache (same provider and id), skipped.
    pub duplicates: usize,
    /// Keys created because only the events mention them ("seen in logs").
    pub new_keys: usize,
}

/// Event batches of one provider written inside one longer transaction.
///
/// `Store::insert_events` commits every batch; an importer instead commits every few
/// hundred thousand events together with its cursor, so the index pages that many small
/// batches would each dirty (the dedup index on random event ids) are written once per
/// commit. Dropping a writer with uncommitted batches rolls them back.
pub struct EventWriter<'s> {
    store: &'s mut Store,
    provider: String,
    pid: i64,
    /// Cache handles of the keys seen so far, by provider key id.
    refs: HashMap<String, i64>,
    /// A transaction is open (with this many events handled in it).
    open: Option<usize>,
}

impl EventWriter<'_> {
    /// Inserts a batch inside the writer's transaction, opening one when none is.
    /// Events of keys the cache does not know create "seen in logs" keys.
    pub fn insert(&mut self, events: &[Event]) -> Result<Inserted> {
        if self.open.is_none() {
            self.store.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.open = Some(0);
        }
        match self.insert_batch(events) {
            Ok(done) => {
                self.open = Some(self.open.unwrap_or(0) + events.len());
                Ok(done)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Events handled (inserted or found duplicate) since the last commit.
    pub fn uncommitted(&self) -> usize {
        self.open.unwrap_or(0)
    }

    /// Saves the stream cursor (when given) and commits everything since the last commit.
    pub fn commit(&mut self, cursor: Option<(&str, &str)>) -> Result<()> {
        if self.open.is_none() {
            if cursor.is_none() {
                return Ok(());
            }
            self.store.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.open = Some(0);
        }
        let done = cursor
            .map_or(Ok(()), |(stream, c)| {
                set_cursor_tx(&self.store.conn, self.pid, stream, c)
            })
            .and_then(|()| self.store.conn.execute_batch("COMMIT"));
        match done {
            Ok(()) => {
                self.open = None;
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(e.into())
            }
        }
    }

    fn rollback(&mut self) {
        if self.open.take().is_some() {
            // Keys created in the rolled-back transaction are gone again.
            self.refs.clear();
            if let Err(e) = self.store.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rollback of an event batch failed");
            }
        }
    }

    fn insert_batch(&mut self, events: &[Event]) -> Result<Inserted> {
        let conn = &self.store.conn;
        let mut done = Inserted::default();
        // Latest new event per key, applied once per key after the batch.
        let mut latest: HashMap<i64, Millis> = HashMap::new();
        let mut find_key =
            conn.prepare_cached("SELECT id FROM keys WHERE provider_id = ?1 AND ext_id = ?2")?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (provider_id, ext_id, key_ref, time, principal, action, scope,
                                 source_ip, user_agent, outcome, status_code, request_id,
                                 records, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT(provider_id, ext_id) DO NOTHING",
        )?;
        let mut touch = conn.prepare_cached(
            "UPDATE keys SET last_used = ?2 WHERE id = ?1
               AND (last_used IS NULL OR last_used < ?2)",
        )?;
        for e in events {
            let key_ref = match self.refs.get(e.key_id.as_str()) {
                Some(r) => *r,
                None => {
                    let found: Option<i64> = find_key
                        .query_row(params![self.pid, e.key_id], |r| r.get(0))
                        .optional()?;
                    let r = match found {
                        Some(r) => r,
                        None => {
                            done.new_keys += 1;
                            let key = Key::seen_in_logs(&self.provider, &e.key_id);
                            upsert_key_tx(conn, self.pid, &key, to_millis(Utc::now()))?
                        }
                    };
                    self.refs.insert(e.key_id.clone(), r);
                    r
                }
            };
            let t = to_millis(e.time);
            let n = insert.execute(params![
                self.pid,
                e.id,
                key_ref,
                t,
                e.principal,
                e.action,
                e.scope,
                e.source_ip,
                e.user_agent,
                outcome_code(e.outcome),
                e.status_code,
                e.request_id,
                e.records,
                e.raw,
            ])?;
            if n == 1 {
                done.events += 1;
                latest
                    .entry(key_ref)
                    .and_modify(|m| *m = (*m).max(t))
                    .or_insert(t);
            } else {
                done.duplicates += 1;
            }
        }
        for (key_ref, t) in latest {
            touch.execute(params![key_ref, t])?;
        }
        Ok(done)
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        self.rollback();
    }
}

impl Store {
    /// Inserts a batch of events of one provider and, in the same transaction, saves the
    /// stream cursor that follows the batch. Either all of it is committed or nothing.
    /// Events of keys the cache does not know create "seen in logs" keys.
    pub fn insert_events(
        &mut self,
        provider: &str,
        events: &[Event],
        cursor: Option<(&str, &str)>,
    ) -> Result<Inserted> {
        let mut w = self.event_writer(provider)?;
        let done = w.insert(events)?;
        w.commit(cursor)?;
        Ok(done)
    }

    /// A writer for event batches of `provider` committed together (see [`EventWriter`]).
    pub fn event_writer(&mut self, provider: &str) -> Result<EventWriter<'_>> {
        let pid = self
            .provider_id(provider)?
            .ok_or_else(|| StoreError::UnknownProvider(provider.to_string()))?;
        Ok(EventWriter {
            store: self,
            provider: provider.to_string(),
            pid,
            refs: HashMap::new(),
            open: None,
        })
    }

    fn event_sql(q: &EventQuery, params: &mut Vec<Value>) -> String {
        let mut sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             JOIN providers p ON p.id = e.provider_id
             JOIN keys k ON k.id = e.key_ref WHERE 1 = 1"
        );
        if let Some(p) = &q.provider {
            params.push(Value::Text(p.clone()));
            sql.push_str(&format!(" AND p.name = ?{}", params.len()));
        }
        if let Some(r) = q.key_ref {
            params.push(Value::Integer(r));
            sql.push_str(&format!(" AND e.key_ref = ?{}", params.len()));
        }
        if let Some(k) = &q.key_id {
            params.push(Value::Text(k.clone()));
            sql.push_str(&format!(
                " AND e.key_ref IN (SELECT id FROM keys WHERE ext_id = ?{})",
                params.len()
            ));
        }
        if let Some(t) = q.since {
            params.push(Value::Integer(to_millis(t)));
            sql.push_str(&format!(" AND e.time >= ?{}", params.len()));
        }
        if let Some(t) = q.until {
            params.push(Value::Integer(to_millis(t)));
            sql.push_str(&format!(" AND e.time < ?{}", params.len()));
        }
        if let Some(o) = q.outcome {
            params.push(Value::Integer(outcome_code(o)));
            sql.push_str(&format!(" AND e.outcome = ?{}", params.len()));
        }
        if let Some((t, id)) = q.before {
            params.push(Value::Integer(t));
            let tp = params.len();
            params.push(Value::Integer(id));
            sql.push_str(&format!(
                " AND (e.time < ?{tp} OR (e.time = ?{tp} AND e.id < ?{}))",
                params.len()
            ));
        }
        if q.newest_first {
            sql.push_str(" ORDER BY e.time DESC, e.id DESC");
        } else {
            sql.push_str(" ORDER BY e.time, e.id");
        }
        if let Some(n) = q.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }

    /// One page of events (set `limit`; views never ask for more than they show).
    pub fn events(&self, q: &EventQuery) -> Result<Vec<EventRow>> {
        let mut out = Vec::new();
        self.for_each_event(q, |row| {
            out.push(row);
            true
        })?;
        Ok(out)
    }

    /// Streams the matching events to `f` without holding them all in memory; `f`
    /// returns false to stop.
    pub fn for_each_event(
        &self,
        q: &EventQuery,
        mut f: impl FnMut(EventRow) -> bool,
    ) -> Result<()> {
        let mut params = Vec::new();
        let sql = Self::event_sql(q, &mut params);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            if !f(event_row(r)?) {
                break;
            }
        }
        Ok(())
    }

    /// The keys (cache handles) that events show used from any of `networks`. This reads
    /// every distinct (key, address) pair, so it is for explicit incident queries
    /// (`--match ip:...`), not for per-frame use.
    pub fn keys_seen_from(
        &self,
        networks: &[crate::filter::Network],
    ) -> Result<std::collections::HashSet<i64>> {
        let mut out = std::collections::HashSet::new();
        if networks.is_empty() {
            return Ok(out);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT key_ref, source_ip FROM events WHERE source_ip IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ip: String = r.get(1)?;
            if networks.iter().any(|n| n.contains_str(&ip)) {
                out.insert(r.get(0)?);
            }
        }
        Ok(out)
    }

    /// Number of events in the cache (for status lines; uses the table's b-tree).
    pub fn event_count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
    }

    /// Number of events matching a query, counted in the index.
    pub fn count_events(&self, q: &EventQuery) -> Result<i64> {
        let mut params = Vec::new();
        let q = EventQuery {
            limit: None,
            ..q.clone()
        };
        let inner = Self::event_sql(&q, &mut params);
        let sql = format!("SELECT count(*) FROM ({inner})");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(params), |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeySource;

    fn ev(id: &str, key: &str, t: Millis) -> Event {
        Event {
            provider: "p".into(),
            id: id.into(),
            time: from_millis(t),
            key_id: key.into(),
            principal: None,
            action: "GET /v1/candidates".into(),
            scope: Some("candidates:read".into()),
            source_ip: Some("198.51.100.7".into()),
            user_agent: Some("ua".into()),
            outcome: Outcome::Success,
            status_code: Some(200),
            request_id: None,
            records: Some(5),
            raw: None,
        }
    }

    #[test]
    fn a_writer_commits_many_batches_at_once_or_none_of_them() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "import", None).unwrap();
        {
            let mut w = store.event_writer("p").unwrap();
            w.insert(&[ev("e1", "k1", 1000), ev("e2", "k1", 2000)])
                .unwrap();
            let again = w
                .insert(&[ev("e2", "k1", 2000), ev("e3", "new", 3000)])
                .unwrap();
            assert_eq!((again.events, again.duplicates, again.new_keys), (1, 1, 1));
            assert_eq!(w.uncommitted(), 4);
            w.commit(Some(("f", "c1"))).unwrap();
            assert_eq!(w.uncommitted(), 0);
            // Dropped with an uncommitted batch: rolled back, key and cursor included.
            w.insert(&[ev("e4", "late", 4000)]).unwrap();
        }
        let n: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(store.cursor("p", "f").unwrap().as_deref(), Some("c1"));
        let late: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM keys WHERE ext_id = 'late'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(late, 0);
        // The store is usable again: nothing was left open.
        store
            .insert_events("p", &[ev("e5", "k1", 5000)], None)
            .unwrap();
    }

    #[test]
    fn batches_dedup_and_commit_the_cursor_with_the_events() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let batch = vec![
            ev("e1", "k1", 1000),
            ev("e2", "k1", 2000),
            ev("e3", "k2", 3000),
        ];
        let first = store
            .insert_events("p", &batch, Some(("events", "3")))
            .unwrap();
        assert_eq!(first.events, 3);
        assert_eq!(first.new_keys, 2);
        let again = store
            .insert_events("p", &batch, Some(("events", "3")))
            .unwrap();
        assert_eq!((again.events, again.duplicates), (0, 3));
        assert_eq!(store.event_count().unwrap(), 3);
        assert_eq!(store.cursor("p", "events").unwrap().as_deref(), Some("3"));
        let k1 = store.key("p", "k1").unwrap().unwrap();
        assert_eq!(k1.key.source, KeySource::Logs);
        assert_eq!(k1.key.last_used, Some(from_millis(2000)));
    }

    #[test]
    fn pages_newest_first_by_key_and_time() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let batch: Vec<Event> = (0..10)
            .map(|i| ev(&format!("e{i}"), "k1", i * 100))
            .collect();
        store.insert_events("p", &batch, None).unwrap();
        let q = EventQuery {
            key_id: Some("k1".into()),
            newest_first: true,
            limit: Some(4),
            ..Default::default()
        };
        let page1 = store.events(&q).unwrap();
        assert_eq!(
            page1
                .iter()
                .map(|r| r.event.id.as_str())
                .collect::<Vec<_>>(),
            ["e9", "e8", "e7", "e6"]
        );
        let last = page1.last().unwrap();
        let page2 = store
            .events(&EventQuery {
                before: Some((to_millis(last.event.time), last.row_id)),
                ..q.clone()
            })
            .unwrap();
        assert_eq!(page2[0].event.id, "e5");
        let since = store
            .count_events(&EventQuery {
                since: Some(from_millis(500)),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(since, 5);
    }

    #[test]
    fn reads_use_an_index() {
        let store = Store::open_in_memory().unwrap();
        for q in [
            EventQuery {
                key_ref: Some(1),
                newest_first: true,
                limit: Some(50),
                ..Default::default()
            },
            EventQuery {
                since: Some(from_millis(0)),
                limit: Some(50),
                ..Default::default()
            },
        ] {
            let mut params = Vec::new();
            let sql = Store::event_sql(&q, &mut params);
            let mut stmt = store
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains("USING INDEX events_"),
                "full scan in plan:\n{plan}"
            );
        }
    }
}
