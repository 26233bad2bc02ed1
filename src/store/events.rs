//! Events in the cache: batch inserts that never duplicate, and paged or streamed reads
//! that always go through the `(key_ref, time)` or `(time)` index.
//!
//! Filters SQLite cannot evaluate from the row (a source network, case-insensitive text)
//! are applied while the rows stream in time order; [`Store::event_page`] bounds how many
//! events one page may examine, so a rare match never turns into one long scan.

use super::raw::{RawPack, RawReader};
use super::{keys::upsert_key_tx, set_cursor_tx, Result, Store, StoreError};
use crate::filter::Network;
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
    /// Only events from this address or network (`ip:203.0.113.0/24`).
    pub source_ip: Option<Network>,
    /// Only events whose action contains this text (lower-case; case-insensitive).
    pub action: Option<String>,
    /// Words (lower-case) that must each occur, case-insensitively, in the action, the key
    /// id, the source address or the user agent.
    pub text: Vec<String>,
    /// Page anchor for newest-first paging: only events strictly older than this
    /// `(time, row id)`.
    pub before: Option<(Millis, i64)>,
    /// Page anchor for oldest-first paging: only events strictly newer than this
    /// `(time, row id)`.
    pub after: Option<(Millis, i64)>,
    /// Newest first (views) instead of oldest first (exports).
    pub newest_first: bool,
    pub limit: Option<usize>,
}

impl EventQuery {
    /// True when some filter is applied to the rows as they stream (not in SQL).
    fn filters_rows(&self) -> bool {
        self.source_ip.is_some() || self.action.is_some() || !self.text.is_empty()
    }

    /// True when an event passes the row filters (`source_ip`, `action`, `text`); the key
    /// id is asked for only when a word is not found elsewhere.
    fn row_passes<'k>(
        &self,
        action: &str,
        source_ip: Option<&str>,
        user_agent: Option<&str>,
        key_id: impl FnOnce() -> Option<&'k str>,
    ) -> bool {
        if let Some(n) = &self.source_ip {
            if !source_ip.is_some_and(|ip| n.contains_str(ip)) {
                return false;
            }
        }
        if let Some(a) = &self.action {
            if !contains_ci(action, a) {
                return false;
            }
        }
        let mut key_id = Some(key_id);
        let mut key: Option<&str> = None;
        self.text.iter().all(|w| {
            if contains_ci(action, w)
                || source_ip.is_some_and(|ip| contains_ci(ip, w))
                || user_agent.is_some_and(|ua| contains_ci(ua, w))
            {
                return true;
            }
            if let Some(f) = key_id.take() {
                key = f();
            }
            key.is_some_and(|k| contains_ci(k, w))
        })
    }
}

/// True when `hay` contains `needle` (lower-case), ignoring case; no allocation for
/// ASCII text.
fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(needle)
}

/// One page of a filtered walk through the events (see [`Store::event_page`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// The matching events, newest first.
    pub rows: Vec<EventRow>,
    /// Events the walk examined to find them.
    pub scanned: usize,
    /// The `(time, row id)` where the walk stopped: the next page's anchor in the same
    /// direction. `None` when the walk reached the end of the events.
    pub resume: Option<(Millis, i64)>,
}

/// How a [`Store::walk_matching`] ended.
#[derive(Debug, Default)]
struct Walked {
    /// Events examined.
    scanned: usize,
    /// The `(time, row id)` of the last event examined.
    last: Option<(Millis, i64)>,
    /// The walk reached the end of the events (not a limit or its budget).
    ended: bool,
}

/// An event with its cache handles.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub row_id: i64,
    pub key_ref: i64,
    pub event: Event,
}

/// Appends the page anchors of `q` as conditions a time index can seek to (a range on
/// `time` first, the row id only to break ties).
fn anchors_sql(q: &EventQuery, prefix: &str, params: &mut Vec<Value>, sql: &mut String) {
    for (anchor, cmp) in [(q.before, "<"), (q.after, ">")] {
        if let Some((t, id)) = anchor {
            params.push(Value::Integer(t));
            let tp = params.len();
            params.push(Value::Integer(id));
            sql.push_str(&format!(
                " AND {prefix}time {cmp}= ?{tp} AND ({prefix}time {cmp} ?{tp} OR {prefix}id {cmp} ?{})",
                params.len()
            ));
        }
    }
}

/// Appends the time range (`since`, `until`), the page anchors and the time order of
/// `q` to a query over `events e`.
fn time_order_sql(q: &EventQuery, params: &mut Vec<Value>, sql: &mut String) {
    if let Some(t) = q.since {
        params.push(Value::Integer(to_millis(t)));
        sql.push_str(&format!(" AND e.time >= ?{}", params.len()));
    }
    if let Some(t) = q.until {
        params.push(Value::Integer(to_millis(t)));
        sql.push_str(&format!(" AND e.time < ?{}", params.len()));
    }
    anchors_sql(q, "e.", params, sql);
    if q.newest_first {
        sql.push_str(" ORDER BY e.time DESC, e.id DESC");
    } else {
        sql.push_str(" ORDER BY e.time, e.id");
    }
}

const EVENT_COLUMNS: &str =
    "e.id, e.key_ref, p.name, e.ext_id, e.time, k.ext_id, e.principal, e.action, e.scope,
     e.source_ip, e.user_agent, e.outcome, e.status_code, e.request_id, e.records, e.raw,
     e.raw_block, e.raw_at";

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

/// Where an event's raw record is kept when it is in a block: (block id, place).
type RawRef = Option<(i64, u32)>;

/// An event row as selected with [`EVENT_COLUMNS`]; a raw record kept in a block is
/// returned as its place, for [`with_raw`] to read.
fn event_row(r: &Row<'_>) -> rusqlite::Result<(EventRow, RawRef)> {
    let block: Option<i64> = r.get(16)?;
    let at: Option<u32> = r.get(17)?;
    let row = EventRow {
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
    };
    Ok((row, block.zip(at)))
}

/// Fills in the raw record of a row read with [`event_row`].
fn with_raw(
    conn: &rusqlite::Connection,
    reader: &mut RawReader,
    (mut row, raw): (EventRow, RawRef),
) -> Result<EventRow> {
    if let Some((block, at)) = raw {
        row.event.raw = Some(reader.record(conn, block, at)?);
    }
    Ok(row)
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
        if let Some(o) = q.outcome {
            params.push(Value::Integer(outcome_code(o)));
            sql.push_str(&format!(" AND e.outcome = ?{}", params.len()));
        }
        time_order_sql(q, params, &mut sql);
        // Row filters are applied while streaming, so the limit is counted there.
        if let Some(n) = q.limit.filter(|_| !q.filters_rows()) {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }

    /// The cheap side of a page walk: the columns the filters read, in time order, through
    /// the index named explicitly (the query fails rather than scan the table). Only the
    /// scope and time conditions are in SQL, as seeks; every other filter is applied to
    /// the streamed rows, so a page's budget bounds the rows SQLite reads.
    fn event_walk_sql(q: &EventQuery, params: &mut Vec<Value>) -> String {
        let index = if q.key_ref.is_some() {
            "events_key_time"
        } else {
            "events_time"
        };
        let mut sql = format!(
            "SELECT e.id, e.time, e.key_ref, e.provider_id, e.outcome, e.action, e.source_ip,
                    e.user_agent
             FROM events e INDEXED BY {index} WHERE 1 = 1"
        );
        if let Some(r) = q.key_ref {
            params.push(Value::Integer(r));
            sql.push_str(&format!(" AND e.key_ref = ?{}", params.len()));
        }
        time_order_sql(q, params, &mut sql);
        sql
    }

    /// One page of a filtered walk through the events in time order: from `q.before`
    /// towards older events when `q.newest_first`, else from `q.after` towards newer ones.
    /// The walk keeps the events that pass every filter of `q` until `q.limit` matched
    /// (default 1,000) or it examined `budget` events, and says where it stopped
    /// ([`EventPage::resume`]), so the caller pages through any number of events in
    /// bounded steps. `keep_going` is asked every 1,024 events; when it returns false the
    /// walk gives up and returns `None` (a newer query superseded this one).
    pub fn event_page(
        &self,
        q: &EventQuery,
        budget: usize,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Option<EventPage>> {
        let limit = q.limit.unwrap_or(1000).max(1);
        let mut ids = Vec::new();
        let Some(walk) = self.walk_matching(q, budget, keep_going, |id, _| {
            ids.push(id);
            ids.len() < limit
        })?
        else {
            return Ok(None);
        };
        let mut page = EventPage {
            rows: Vec::with_capacity(ids.len()),
            scanned: walk.scanned,
            resume: if walk.ended { None } else { walk.last },
        };
        let mut full = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             JOIN providers p ON p.id = e.provider_id
             JOIN keys k ON k.id = e.key_ref WHERE e.id = ?1"
        ))?;
        let mut reader = RawReader::default();
        for id in ids {
            if let Some(row) = full.query_row([id], event_row).optional()? {
                page.rows.push(with_raw(&self.conn, &mut reader, row)?);
            }
        }
        if !q.newest_first {
            page.rows.reverse();
        }
        Ok(Some(page))
    }

    /// Events per hour of the `hours` hours that end at `until` (oldest first), counting
    /// only the events that pass every filter of `q` (its anchors and limit are ignored).
    /// Without filters the counts come from the index alone; with filters the window's
    /// events are walked like [`Store::event_page`] does, and `None` is returned when
    /// `keep_going` gives up.
    pub fn matching_per_hour(
        &self,
        q: &EventQuery,
        until: DateTime<Utc>,
        hours: usize,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<u64>>> {
        if !q.filters_rows() && q.outcome.is_none() && q.provider.is_none() && q.key_id.is_none() {
            return self.events_per_hour(q.key_ref, until, hours).map(Some);
        }
        let end = to_millis(until);
        let start = end - hours as Millis * super::activity::HOUR_MS;
        let window = EventQuery {
            since: Some(
                q.since
                    .map_or(from_millis(start), |s| s.max(from_millis(start))),
            ),
            until: Some(q.until.map_or(until, |u| u.min(until))),
            before: None,
            after: None,
            limit: None,
            ..q.clone()
        };
        let mut out = vec![0u64; hours];
        let walked = self.walk_matching(&window, usize::MAX, keep_going, |_, t| {
            if let Some(slot) = usize::try_from((t - start) / super::activity::HOUR_MS)
                .ok()
                .and_then(|b| out.get_mut(b))
            {
                *slot += 1;
            }
            true
        })?;
        Ok(walked.map(|_| out))
    }

    /// Walks the events of `q` in time order through the `(time)` or `(key_ref, time)`
    /// index, calls `found(row id, time)` for each that passes every filter until it
    /// returns false or `budget` events were examined. `None` when `keep_going` (asked
    /// every 1,024 events) gave up.
    fn walk_matching(
        &self,
        q: &EventQuery,
        budget: usize,
        keep_going: &dyn Fn() -> bool,
        mut found: impl FnMut(i64, Millis) -> bool,
    ) -> Result<Option<Walked>> {
        let budget = budget.max(1);
        // Provider and key id become cache handles once, then plain comparisons.
        let provider = match &q.provider {
            Some(p) => match self.provider_id(p)? {
                Some(id) => Some(id),
                None => return Ok(Some(Walked::default())),
            },
            None => None,
        };
        let key_refs: Option<Vec<i64>> = match &q.key_id {
            Some(k) => Some(
                self.conn
                    .prepare_cached("SELECT id FROM keys WHERE ext_id = ?1")?
                    .query_map([k], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?,
            ),
            None => None,
        };
        let outcome = q.outcome.map(outcome_code);
        let mut params = Vec::new();
        let sql = Self::event_walk_sql(q, &mut params);
        let mut walk = self.conn.prepare_cached(&sql)?;
        let mut rows = walk.query(rusqlite::params_from_iter(params))?;
        let mut key_ids: HashMap<i64, Option<String>> = HashMap::new();
        let mut find_key = self
            .conn
            .prepare_cached("SELECT ext_id FROM keys WHERE id = ?1")?;
        let mut w = Walked {
            ended: true,
            ..Default::default()
        };
        while let Some(r) = rows.next()? {
            if w.scanned % 1024 == 0 && !keep_going() {
                return Ok(None);
            }
            w.scanned += 1;
            let id: i64 = r.get(0)?;
            let time: Millis = r.get(1)?;
            w.last = Some((time, id));
            let key_ref: i64 = r.get(2)?;
            let in_scope = provider.is_none_or(|p| r.get::<_, i64>(3).ok() == Some(p))
                && key_refs.as_ref().is_none_or(|k| k.contains(&key_ref))
                && outcome.is_none_or(|o| r.get::<_, i64>(4).ok() == Some(o));
            let text = |i: usize| -> rusqlite::Result<Option<&str>> {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t).ok(),
                    _ => None,
                })
            };
            let passes = in_scope
                && q.row_passes(text(5)?.unwrap_or(""), text(6)?, text(7)?, || {
                    key_ids
                        .entry(key_ref)
                        .or_insert_with(|| {
                            find_key
                                .query_row([key_ref], |k| k.get::<_, String>(0))
                                .ok()
                        })
                        .as_deref()
                });
            let more = !passes || found(id, time);
            if !more || w.scanned >= budget {
                w.ended = false;
                break;
            }
        }
        Ok(Some(w))
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
        let row_filter = q.filters_rows();
        let mut left = q.limit.unwrap_or(usize::MAX);
        let mut reader = RawReader::default();
        while let Some(r) = rows.next()? {
            if left == 0 {
                break;
            }
            let (row, raw) = event_row(r)?;
            if row_filter {
                let e = &row.event;
                let key_id = e.key_id.as_str();
                if !q.row_passes(
                    &e.action,
                    e.source_ip.as_deref(),
                    e.user_agent.as_deref(),
                    || Some(key_id),
                ) {
                    continue;
                }
            }
            left -= 1;
            if !f(with_raw(&self.conn, &mut reader, (row, raw))?) {
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

    /// The times of the oldest and the newest event, `None` without events.
    pub fn event_time_range(&self) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let (first, last): (Option<Millis>, Option<Millis>) =
            self.conn
                .query_row("SELECT min(time), max(time) FROM events", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        Ok(first
            .zip(last)
            .map(|(a, b)| (from_millis(a), from_millis(b))))
    }

    /// Number of events matching a query, counted in the index (row filters count the
    /// rows as they stream).
    pub fn count_events(&self, q: &EventQuery) -> Result<i64> {
        if q.filters_rows() {
            let mut n = 0;
            self.for_each_event(
                &EventQuery {
                    limit: None,
                    ..q.clone()
                },
                |_| {
                    n += 1;
                    true
                },
            )?;
            return Ok(n);
        }
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
            160_usize.div_ceil(super::super::raw::BLOCK_RECORDS)
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

    fn plan(store: &Store, sql: &str, params: Vec<Value>) -> String {
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
        plan.join("\n")
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
            let plan = plan(&store, &sql, params);
            assert!(
                plan.contains("USING INDEX events_"),
                "full scan in plan:\n{plan}"
            );
        }
    }

    #[test]
    fn page_walks_seek_the_time_index_in_order() {
        let store = Store::open_in_memory().unwrap();
        let filtered = EventQuery {
            source_ip: Some(Network::parse("203.0.113.0/24").unwrap()),
            action: Some("ssn".into()),
            outcome: Some(Outcome::Denied),
            text: vec!["acme".into()],
            limit: Some(200),
            ..Default::default()
        };
        for (q, index, seeks) in [
            (
                EventQuery {
                    newest_first: true,
                    ..filtered.clone()
                },
                "events_time",
                false,
            ),
            (
                EventQuery {
                    newest_first: true,
                    before: Some((5000, 7)),
                    ..filtered.clone()
                },
                "events_time (time<?)",
                true,
            ),
            (
                EventQuery {
                    after: Some((5000, 7)),
                    ..filtered.clone()
                },
                "events_time (time>?)",
                true,
            ),
            (
                EventQuery {
                    key_ref: Some(3),
                    newest_first: true,
                    before: Some((5000, 7)),
                    ..filtered.clone()
                },
                "events_key_time (key_ref=? AND time<?)",
                true,
            ),
        ] {
            for sql_of in [Store::event_walk_sql, Store::event_sql] {
                let mut params = Vec::new();
                let sql = sql_of(&q, &mut params);
                let plan = plan(&store, &sql, params);
                let want = format!("USING INDEX {index}");
                assert!(plan.contains(&want), "want {want} in:\n{plan}");
                if seeks {
                    assert!(plan.contains("SEARCH e USING INDEX"), "{plan}");
                }
                // The index gives the order: no sort of the matching rows.
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            }
        }
    }

    /// 60 events of two keys, one a minute: every third from 203.0.113.x, every fourth
    /// denied, every fifth an SSN read.
    fn walk_fixture() -> (Store, Vec<Event>) {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let batch: Vec<Event> = (0..60)
            .map(|i| {
                let mut e = ev(
                    &format!("e{i:02}"),
                    if i % 2 == 0 { "k1" } else { "acme-k2" },
                    i * 60_000,
                );
                if i % 3 == 0 {
                    e.source_ip = Some(format!("203.0.113.{i}"));
                }
                if i % 4 == 0 {
                    e.outcome = Outcome::Denied;
                }
                if i % 5 == 0 {
                    e.action = "GET /v1/Employees/SSN".into();
                }
                e
            })
            .collect();
        store.insert_events("p", &batch, None).unwrap();
        (store, batch)
    }

    #[test]
    fn the_hourly_counts_follow_the_filter() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        // One event every 20 minutes for 10 hours; every third from 203.0.113.x.
        let batch: Vec<Event> = (0..30)
            .map(|i| {
                let mut e = ev(&format!("h{i:02}"), "k1", i * 20 * 60_000);
                if i % 3 == 0 {
                    e.source_ip = Some(format!("203.0.113.{i}"));
                }
                e
            })
            .collect();
        store.insert_events("p", &batch, None).unwrap();
        let until = from_millis(10 * 3_600_000);
        let all = store
            .matching_per_hour(&EventQuery::default(), until, 6, &|| true)
            .unwrap()
            .unwrap();
        assert_eq!(all, vec![3; 6]);
        let q = EventQuery {
            source_ip: Some(Network::parse("203.0.113.0/24").unwrap()),
            // Anchors and limits of the page do not narrow the histogram.
            before: Some((5 * 3_600_000, 0)),
            limit: Some(1),
            newest_first: true,
            ..Default::default()
        };
        let matching = store
            .matching_per_hour(&q, until, 6, &|| true)
            .unwrap()
            .unwrap();
        assert_eq!(
            matching,
            vec![1; 6],
            "one event of each hour is from the network"
        );
        let words = EventQuery {
            text: vec!["no-such-word".into()],
            ..Default::default()
        };
        let none = store
            .matching_per_hour(&words, until, 6, &|| true)
            .unwrap()
            .unwrap();
        assert_eq!(none, vec![0; 6]);
        assert_eq!(
            store.matching_per_hour(&q, until, 6, &|| false).unwrap(),
            None
        );
    }

    fn ids(rows: &[EventRow]) -> Vec<String> {
        rows.iter().map(|r| r.event.id.clone()).collect()
    }

    #[test]
    fn a_filtered_walk_pages_through_every_event_in_bounded_steps() {
        let (store, batch) = walk_fixture();
        let q = EventQuery {
            source_ip: Some(Network::parse("203.0.113.0/24").unwrap()),
            outcome: Some(Outcome::Denied),
            newest_first: true,
            limit: Some(2),
            ..Default::default()
        };
        // Every 12th event matches both: e48, e36, e24, e12, e00.
        let want: Vec<String> = batch
            .iter()
            .rev()
            .filter(|e| {
                e.outcome == Outcome::Denied
                    && e.source_ip.as_deref().unwrap().starts_with("203.0.113.")
            })
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(want, ["e48", "e36", "e24", "e12", "e00"]);
        let mut got = Vec::new();
        let mut anchor = None;
        let mut pages = 0;
        loop {
            let page = store
                .event_page(
                    &EventQuery {
                        before: anchor,
                        ..q.clone()
                    },
                    10,
                    &|| true,
                )
                .unwrap()
                .unwrap();
            pages += 1;
            assert!(page.rows.len() <= 2 && page.scanned <= 10, "{page:?}");
            got.extend(ids(&page.rows));
            match page.resume {
                Some(a) => anchor = Some(a),
                None => break,
            }
        }
        assert_eq!(got, want);
        assert!(pages >= 6, "the budget bounds every page: {pages} pages");

        // Walking newer from an anchor returns the next matches, still newest first.
        let e12 = store
            .events(&EventQuery {
                key_id: Some("k1".into()),
                newest_first: true,
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .find(|r| r.event.id == "e12")
            .unwrap();
        let newer = store
            .event_page(
                &EventQuery {
                    newest_first: false,
                    after: Some((to_millis(e12.event.time), e12.row_id)),
                    ..q.clone()
                },
                1000,
                &|| true,
            )
            .unwrap()
            .unwrap();
        assert_eq!(ids(&newer.rows), ["e36", "e24"]);
        assert!(newer.resume.is_some(), "stopped at the limit, not the end");
    }

    #[test]
    fn words_match_action_key_address_and_agent_ignoring_case() {
        let (store, _) = walk_fixture();
        let walk = |q: EventQuery| {
            let q = EventQuery {
                newest_first: true,
                limit: Some(100),
                ..q
            };
            let page = store.event_page(&q, 1000, &|| true).unwrap().unwrap();
            // The streaming reads agree with the page walk.
            assert_eq!(ids(&store.events(&q).unwrap()), ids(&page.rows));
            assert_eq!(store.count_events(&q).unwrap() as usize, page.rows.len());
            page.rows
        };
        let ssn = walk(EventQuery {
            action: Some("employees/ssn".into()),
            ..Default::default()
        });
        assert_eq!(ssn.len(), 12);
        let acme = walk(EventQuery {
            text: vec!["acme".into(), "ssn".into()],
            ..Default::default()
        });
        assert_eq!(ids(&acme), ["e55", "e45", "e35", "e25", "e15", "e05"]);
        let exact = walk(EventQuery {
            source_ip: Some(Network::parse("203.0.113.9").unwrap()),
            ..Default::default()
        });
        assert_eq!(ids(&exact), ["e09"]);
        let scoped = walk(EventQuery {
            provider: Some("p".into()),
            key_id: Some("k1".into()),
            outcome: Some(Outcome::Denied),
            ..Default::default()
        });
        assert_eq!(scoped.len(), 15);
        let none = walk(EventQuery {
            text: vec!["nowhere".into()],
            ..Default::default()
        });
        assert!(none.is_empty());
        // A limit counts matching rows, not streamed ones.
        let two = store
            .events(&EventQuery {
                action: Some("ssn".into()),
                newest_first: true,
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&two), ["e55", "e50"]);
    }

    #[test]
    fn a_superseded_walk_gives_up() {
        let (store, _) = walk_fixture();
        let q = EventQuery {
            newest_first: true,
            ..Default::default()
        };
        assert!(store.event_page(&q, 1000, &|| false).unwrap().is_none());
    }
}
