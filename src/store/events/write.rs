//! Writing events: batches that never duplicate, committed with the stream cursor that
//! follows them, and the connection settings of a bulk import.

use super::outcome_code;
use crate::model::{to_millis, Event, Key, Millis};
use crate::store::keys::upsert_key_tx;
use crate::store::raw::RawPack;
use crate::store::{set_cursor_tx, Result, Store, StoreError};
use chrono::Utc;
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

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
        self.insert_packed(events, &RawPack::new(events))
    }

    /// [`EventWriter::insert`] of a batch whose raw records are already packed
    /// (`RawPack::new(events)`); the events' own `raw` is not read.
    pub fn insert_packed(&mut self, events: &[Event], raw: &RawPack) -> Result<Inserted> {
        if raw.refs.len() != events.len() {
            return Err(StoreError::Corrupt {
                what: "a batch of events",
                why: format!("{} raw places for {} events", raw.refs.len(), events.len()),
            });
        }
        if self.open.is_none() {
            self.store.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.open = Some(0);
        }
        match self.insert_batch(events, raw) {
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

    fn insert_batch(&mut self, events: &[Event], raw: &RawPack) -> Result<Inserted> {
        let conn = &self.store.conn;
        let mut done = Inserted::default();
        // Latest new event per key, applied once per key after the batch.
        let mut latest: HashMap<i64, Millis> = HashMap::new();
        let mut find_key =
            conn.prepare_cached("SELECT id FROM keys WHERE provider_id = ?1 AND ext_id = ?2")?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (provider_id, ext_id, key_ref, time, principal, action, scope,
                                 source_ip, user_agent, outcome, status_code, request_id,
                                 records, raw_block, raw_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT(provider_id, ext_id) DO NOTHING",
        )?;
        let mut insert_block = conn.prepare_cached("INSERT INTO raw_blocks (data) VALUES (?1)")?;
        let mut drop_block = conn.prepare_cached("DELETE FROM raw_blocks WHERE id = ?1")?;
        // Row ids of the batch's blocks as they are written, and how many new events use
        // each: a block that only duplicates point into is removed again.
        let mut blocks: Vec<Option<(i64, usize)>> = vec![None; raw.blocks.len()];
        let mut touch = conn.prepare_cached(
            "UPDATE keys SET last_used = ?2 WHERE id = ?1
               AND (last_used IS NULL OR last_used < ?2)",
        )?;
        for (e, place) in events.iter().zip(&raw.refs) {
            let raw_place = match place {
                Some((b, at)) => {
                    let slot = &mut blocks[*b as usize];
                    if slot.is_none() {
                        insert_block.execute([&raw.blocks[*b as usize]])?;
                        *slot = Some((conn.last_insert_rowid(), 0));
                    }
                    slot.map(|(id, _)| (id, *b, *at))
                }
                None => None,
            };
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
                raw_place.map(|(id, _, _)| id),
                raw_place.map(|(_, _, at)| at),
            ])?;
            if n == 1 {
                done.events += 1;
                if let Some((_, b, _)) = raw_place {
                    if let Some((_, used)) = &mut blocks[b as usize] {
                        *used += 1;
                    }
                }
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
        for (id, used) in blocks.into_iter().flatten() {
            if used == 0 {
                drop_block.execute([id])?;
            }
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
        crate::store::retry_busy(|| {
            let mut w = self.event_writer(provider)?;
            let done = w.insert(events)?;
            w.commit(cursor)?;
            Ok(done)
        })
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

    /// Turns SQLite's per-row foreign key checks off (`false`) for a bulk import, or
    /// back on. The event writer creates the provider and every key an event refers to
    /// in the event's own transaction, so during an import the checks (about a tenth of
    /// its time) are not needed.
    pub fn set_foreign_key_checks(&self, on: bool) -> Result<()> {
        self.conn.execute_batch(if on {
            "PRAGMA foreign_keys = ON"
        } else {
            "PRAGMA foreign_keys = OFF"
        })?;
        Ok(())
    }

    /// A larger page cache for this connection: a bulk import touches every page of the
    /// dedup index once that index outgrows the default cache. Crash safety is
    /// unchanged (WAL, synchronous = NORMAL).
    pub fn use_bulk_page_cache(&self) -> Result<()> {
        self.conn.execute_batch("PRAGMA cache_size = -65536;")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;
    use crate::model::{from_millis, KeySource};
    use crate::store::EventQuery;

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
    fn raw_records_are_read_back_from_blocks_and_duplicates_leave_no_block() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "import", None).unwrap();
        let with_raw = |id: &str, t: Millis| Event {
            raw: Some(format!(r#"{{"id":"{id}","payload":"{}"}}"#, "z".repeat(40))),
            ..ev(id, "k1", t)
        };
        let batch: Vec<Event> = (0..200)
            .map(|i| {
                if i % 5 == 0 {
                    ev(&format!("e{i}"), "k1", i)
                } else {
                    with_raw(&format!("e{i}"), i)
                }
            })
            .collect();
        store.insert_events("p", &batch, None).unwrap();
        let blocks = |s: &Store| -> i64 {
            s.conn
                .query_row("SELECT count(*) FROM raw_blocks", [], |r| r.get(0))
                .unwrap()
        };
        let stored = blocks(&store);
        assert_eq!(
            stored as usize,
            160_usize.div_ceil(crate::store::raw::BLOCK_RECORDS)
        );
        let raw_text: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM events WHERE raw IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(raw_text, 0, "raw records are only in blocks");
        let read = store.events(&EventQuery::default()).unwrap();
        assert_eq!(read.len(), 200);
        for (r, e) in read.iter().zip(&batch) {
            assert_eq!(r.event.raw, e.raw, "{}", e.id);
        }
        let page = store
            .event_page(
                &EventQuery {
                    newest_first: true,
                    limit: Some(7),
                    ..Default::default()
                },
                1000,
                &|| true,
            )
            .unwrap()
            .unwrap();
        assert_eq!(page.rows[1].event.raw, batch[198].raw);
        // Rows written before blocks existed keep their text in `raw`.
        store
            .conn
            .execute(
                "UPDATE events SET raw = 'legacy text', raw_block = NULL, raw_at = NULL
                 WHERE ext_id = 'e7'",
                [],
            )
            .unwrap();
        let legacy = store.events(&EventQuery::default()).unwrap();
        assert_eq!(legacy[7].event.raw.as_deref(), Some("legacy text"));
        assert_eq!(legacy[8].event.raw, batch[8].raw);
        // The same records again: nothing new, so no block is kept for them.
        let again = store.insert_events("p", &batch[1..5], None).unwrap();
        assert_eq!(again.duplicates, 4);
        assert_eq!(blocks(&store), stored);
    }
}
