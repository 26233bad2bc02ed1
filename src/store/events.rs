//! Events in the cache: batch inserts that never duplicate (`write`), and paged or
//! streamed reads that always go through the `(key_ref, time)` or `(time)` index (here,
//! and the filtered walks of `walk`).
//!
//! Filters SQLite cannot evaluate from the row (a source network, case-insensitive text)
//! are applied while the rows stream in time order; [`Store::event_page`] bounds how many
//! events one page may examine, so a rare match never turns into one long scan.

use super::raw::RawReader;
use super::{Result, Store};
use crate::filter::Network;
use crate::model::{from_millis, to_millis, Event, Millis, Outcome};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, Row};

mod walk;
mod write;

pub use walk::EventPage;
pub use write::{EventWriter, Inserted};

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
    pub(crate) fn filters_rows(&self) -> bool {
        self.source_ip.is_some() || self.action.is_some() || !self.text.is_empty()
    }

    /// True when an event passes the row filters (`source_ip`, `action`, `text`); the key
    /// id is asked for only when a word is not found elsewhere.
    pub(crate) fn row_passes<'k>(
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

pub(crate) fn outcome_code(o: Outcome) -> i64 {
    match o {
        Outcome::Success => 0,
        Outcome::Denied => 1,
        Outcome::Error => 2,
    }
}

pub(crate) fn outcome_from_code(c: i64) -> Outcome {
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

impl Store {
    /// The events of `provider` stored after row `after`, oldest row first, at most
    /// `limit`, without their raw records: what a member publishes to the team's copy.
    pub fn events_after(&self, provider: &str, after: i64, limit: usize) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             JOIN providers p ON p.id = e.provider_id JOIN keys k ON k.id = e.key_ref
             WHERE p.name = ?1 AND e.id > ?2 ORDER BY e.id LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![provider, after, limit as i64], |r| {
            let (mut row, _) = event_row(r)?;
            row.event.raw = None;
            Ok(row)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The last event row of `provider` (0 without any).
    pub fn last_event_row(&self, provider: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT coalesce(max(e.id), 0) FROM events e
             JOIN providers p ON p.id = e.provider_id WHERE p.name = ?1",
            [provider],
            |r| r.get(0),
        )?)
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

    pub(super) fn ev(id: &str, key: &str, t: Millis) -> Event {
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

    pub(super) fn plan(store: &Store, sql: &str, params: Vec<Value>) -> String {
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
}
