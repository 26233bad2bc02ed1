//! What detection reads and keeps in the cache: the keys and compact events the rules
//! see, each key's saved state (`detect_state`), the checkpoint of the last run
//! (`detect_checkpoint`), and the findings, states and checkpoint a run writes in one
//! transaction.

use super::{Result, Store};
use crate::model::{to_millis, Category, Finding, KeyStatus, Millis};
use rusqlite::{params, OptionalExtension};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

const DAY: Millis = 24 * 3600 * 1000;

const EV_COLUMNS: &str =
    "id, key_ref, time, source_ip, user_agent, scope, outcome, status_code, records, action";

/// Detection states by key id, and the latest time one of them was saved.
pub type StatesSaved = (Vec<(String, Vec<u8>)>, Millis);

/// One key as the detection rules see it.
#[derive(Debug, Clone)]
pub struct DetectKey {
    pub key_ref: i64,
    pub provider: String,
    pub id: String,
    pub owner: String,
    pub environment: Option<String>,
    pub purpose: Option<String>,
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    pub created: Option<Millis>,
    pub expires: Option<Millis>,
    pub last_used: Option<Millis>,
    pub rotated_to: Option<String>,
    /// Listed by its provider (not only seen in logs).
    pub listed: bool,
    /// When it stopped working (deactivated, revoked), if known.
    pub stopped_at: Option<Millis>,
}

/// One event as the detection rules read it, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    /// The event's row id.
    pub row: i64,
    pub key_ref: i64,
    pub time: Millis,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub scope: Option<&'a str>,
    /// 0 success, 1 denied, 2 error.
    pub outcome: u8,
    pub status_code: Option<i64>,
    pub records: Option<i64>,
    /// The action (`eventSource:eventName`, `GET /v1/path`, ...).
    pub action: &'a str,
}

fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    })
}

fn visit_rows(
    rows: &mut rusqlite::Rows<'_>,
    visit: &mut dyn FnMut(EventFacts<'_>),
) -> rusqlite::Result<()> {
    while let Some(r) = rows.next()? {
        visit(EventFacts {
            row: r.get(0)?,
            key_ref: r.get(1)?,
            time: r.get(2)?,
            source_ip: text(r, 3)?,
            user_agent: text(r, 4)?,
            scope: text(r, 5)?,
            outcome: r.get::<_, i64>(6)? as u8,
            status_code: r.get(7)?,
            records: r.get(8)?,
            action: text(r, 9)?.unwrap_or(""),
        });
    }
    Ok(())
}

fn read_range(
    conn: &rusqlite::Connection,
    lo: i64,
    hi: i64,
    visit: &mut dyn FnMut(EventFacts<'_>),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EV_COLUMNS} FROM events WHERE id >= ?1 AND id <= ?2"
    ))?;
    let mut rows = stmt.query([lo, hi])?;
    visit_rows(&mut rows, visit)
}

/// The saved checkpoint of the last detection run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The highest event row analysed.
    pub last_event: i64,
    /// The fingerprint of the `[detect]` settings of that run.
    pub config: String,
}

/// One key's saved state, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct SavedState<'a> {
    pub key_ref: i64,
    /// The time of the key's last analysed event.
    pub last_time: Millis,
    /// JSON `[[scope, last successful use]]`.
    pub scopes: &'a str,
    /// The encoded state, if the column holds one.
    pub state: Option<&'a [u8]>,
}

/// A finding produced by a detection run, with its key handle.
#[derive(Debug, Clone)]
pub struct NewFinding {
    pub key_ref: i64,
    pub finding: Finding,
}

/// Which findings a run resolves when it did not produce them again.
#[derive(Debug, Clone, Copy)]
pub enum ResolveScope<'a> {
    /// Every engine finding (full run).
    All,
    /// Hygiene findings, and anomaly findings of these keys (incremental run).
    HygieneAnd(&'a HashSet<i64>),
}

/// What a run writes besides its findings.
#[derive(Debug, Clone, Copy)]
pub struct RunSave<'a> {
    /// Which findings not produced again are resolved.
    pub scope: ResolveScope<'a>,
    /// Replace every saved state (full run) instead of updating those given.
    pub replace_all: bool,
    /// The checkpoint: the highest event row analysed; `None` leaves it as it is (a run
    /// over a team's copy of one source, whose rows are not the cache's).
    pub last_event: Option<i64>,
    /// Only the findings and states of these keys are resolved or replaced (a run over
    /// one source); `None`: every key's.
    pub within: Option<&'a HashSet<i64>>,
    /// The fingerprint of the `[detect]` settings.
    pub config: &'a str,
    /// The time of the run.
    pub now: Millis,
}

/// The state of one key to save.
#[derive(Debug, Clone, Copy)]
pub struct StateRow<'a> {
    pub key_ref: i64,
    pub last_time: Millis,
    pub scopes: &'a str,
    pub state: &'a [u8],
}

/// What writing a run changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunWritten {
    /// Findings that did not exist before.
    pub opened: usize,
    /// Existing findings whose evidence, wording or last-seen time changed.
    pub updated: usize,
    /// Findings resolved because their condition no longer holds.
    pub resolved: usize,
    /// Bytes of saved per-key state written.
    pub state_bytes: usize,
}

/// What the writer does with a produced finding.
#[derive(Clone)]
enum Fate {
    /// New: insert it.
    Insert,
    /// Exists with the same content: leave it.
    Keep,
    /// Exists but changed: update it, with this status.
    Update(String),
}

impl Store {
    /// Every key with what the detection rules need of it.
    pub fn detect_keys(&self) -> Result<Vec<DetectKey>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT k.id, p.name, k.ext_id, k.name, k.owner, k.environment, k.purpose, k.scopes,
                    k.status, k.created, k.expires, k.last_used, k.rotated_to, k.source,
                    k.stopped_at
             FROM keys k JOIN providers p ON p.id = k.provider_id",
        )?;
        let rows = stmt.query_map([], |r| {
            let scopes: String = r.get(7)?;
            let status: String = r.get(8)?;
            let source: String = r.get(13)?;
            Ok(DetectKey {
                key_ref: r.get(0)?,
                provider: r.get(1)?,
                id: r.get(2)?,
                owner: r.get(4)?,
                environment: r.get(5)?,
                purpose: r.get(6)?,
                scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                status: status.parse().unwrap_or(KeyStatus::Active),
                created: r.get(9)?,
                expires: r.get(10)?,
                last_used: r.get(11)?,
                rotated_to: r.get(12)?,
                listed: source == "provider",
                stopped_at: r.get(14)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The lowest and highest event row ids, `None` without events.
    pub fn event_row_bounds(&self) -> Result<Option<(i64, i64)>> {
        let (lo, hi): (Option<i64>, Option<i64>) =
            self.conn
                .query_row("SELECT min(id), max(id) FROM events", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        Ok(lo.zip(hi))
    }

    /// Visits the events with row ids in `lo..=hi`, in row order.
    pub fn detect_events(
        &self,
        lo: i64,
        hi: i64,
        visit: &mut dyn FnMut(EventFacts<'_>),
    ) -> Result<()> {
        Ok(read_range(&self.conn, lo, hi, visit)?)
    }

    /// Visits the events with row ids in `lo..=hi` into one or two partial results made
    /// by `init`: over a cache file with a large range, the range is split between two
    /// read-only connections on two threads (the lower half first in the answer), each
    /// half in row order.
    pub fn detect_events_split<S: Send>(
        &self,
        lo: i64,
        hi: i64,
        init: impl Fn() -> S + Sync,
        visit: impl Fn(&mut S, EventFacts<'_>) + Sync,
    ) -> Result<Vec<S>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (Some(path), true) = (self.path(), threads >= 2 && hi - lo > 100_000) else {
            let mut s = init();
            read_range(&self.conn, lo, hi, &mut |e| visit(&mut s, e))?;
            return Ok(vec![s]);
        };
        let mid = lo + (hi - lo) / 2;
        let half = |conn: &rusqlite::Connection, lo: i64, hi: i64| -> rusqlite::Result<S> {
            let mut s = init();
            read_range(conn, lo, hi, &mut |e| visit(&mut s, e))?;
            Ok(s)
        };
        let (a, b) = std::thread::scope(|sc| {
            let h = sc.spawn(|| -> rusqlite::Result<S> {
                let conn = open_reader(path)?;
                half(&conn, mid + 1, hi)
            });
            let a = half(&self.conn, lo, mid);
            let b = h
                .join()
                .unwrap_or_else(|_| Err(rusqlite::Error::InvalidQuery));
            (a, b)
        });
        Ok(vec![a?, b?])
    }

    /// Visits every event of one key, ordered by time (through the `(key_ref, time)`
    /// index).
    pub fn key_history(&self, key_ref: i64, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()> {
        let mut history = self.conn.prepare_cached(&format!(
            "SELECT {EV_COLUMNS} FROM events WHERE key_ref = ?1 ORDER BY time, id"
        ))?;
        let mut rows = history.query([key_ref])?;
        Ok(visit_rows(&mut rows, visit)?)
    }

    /// The provider ids of the events behind evidence row ids, looked up in row order: a
    /// cluster of nearby rows (the events of one sync are) is read as one range of the
    /// table, a lone row by itself.
    pub fn event_ext_ids(&self, mut rows: Vec<i64>) -> Result<HashMap<i64, String>> {
        let conn = &self.conn;
        rows.sort_unstable();
        rows.dedup();
        let mut out = HashMap::with_capacity(rows.len());
        let mut point = conn.prepare_cached("SELECT ext_id FROM events WHERE id = ?1")?;
        let mut range =
            conn.prepare_cached("SELECT id, ext_id FROM events WHERE id >= ?1 AND id <= ?2")?;
        let mut i = 0;
        while i < rows.len() {
            // Grow the cluster while it spans at most 8 table rows per wanted row:
            // stepping over a row costs a fraction of a lookup by id.
            let mut j = i;
            while j + 1 < rows.len() && rows[j + 1] - rows[i] < 8 * (j + 2 - i) as i64 {
                j += 1;
            }
            if j == i {
                if let Some(id) = point
                    .query_row([rows[i]], |r| r.get::<_, String>(0))
                    .optional()?
                {
                    out.insert(rows[i], id);
                }
            } else {
                let want = &rows[i..=j];
                let mut k = 0;
                let mut found = range.query([rows[i], rows[j]])?;
                while let Some(r) = found.next()? {
                    let row: i64 = r.get(0)?;
                    while k < want.len() && want[k] < row {
                        k += 1;
                    }
                    if want.get(k) == Some(&row) {
                        out.insert(row, r.get(1)?);
                    }
                }
            }
            i = j + 1;
        }
        Ok(out)
    }

    /// The checkpoint of the last detection run, if any.
    pub fn detect_checkpoint(&self) -> Result<Option<Checkpoint>> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_event, config FROM detect_checkpoint WHERE id = 1",
                [],
                |r| {
                    Ok(Checkpoint {
                        last_event: r.get(0)?,
                        config: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Visits every key's saved state (one pass over `detect_state`).
    pub fn detect_states(&self, visit: &mut dyn FnMut(SavedState<'_>)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key_ref, last_time, scopes, state FROM detect_state")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            visit(SavedState {
                key_ref: r.get(0)?,
                last_time: r.get(1)?,
                scopes: r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?,
                state: r.get_ref(3)?.as_blob().ok(),
            });
        }
        Ok(())
    }

    /// The detection states of `provider`'s keys saved after `after` (milliseconds), by
    /// key id, with the latest save time among them.
    pub fn detect_states_saved_after(&self, provider: &str, after: Millis) -> Result<StatesSaved> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT k.ext_id, d.state, d.saved_at FROM detect_state d
             JOIN keys k ON k.id = d.key_ref JOIN providers p ON p.id = k.provider_id
             WHERE p.name = ?1 AND d.saved_at > ?2",
        )?;
        let mut rows = stmt.query(params![provider, after])?;
        let (mut out, mut last) = (Vec::new(), after);
        while let Some(r) = rows.next()? {
            let saved: Millis = r.get(2)?;
            last = last.max(saved);
            if let Ok(state) = r.get_ref(1)?.as_blob() {
                out.push((r.get(0)?, state.to_vec()));
            }
        }
        Ok((out, last))
    }

    /// The saved state of one key, if it has one.
    pub fn detect_state(&self, key_ref: i64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT state FROM detect_state WHERE key_ref = ?1",
                [key_ref],
                |r| Ok(r.get_ref(0)?.as_blob().ok().map(<[u8]>::to_vec)),
            )
            .optional()?
            .flatten())
    }

    /// Writes a detection run in one transaction (a run is saved whole or not at all):
    /// the findings it produced (inserted, updated, or left alone when unchanged; open
    /// findings it did not produce again are resolved within `save.scope`), the states
    /// and the checkpoint. `phase` is told when the findings are written.
    pub fn save_detection(
        &mut self,
        produced: Vec<NewFinding>,
        states: &[StateRow<'_>],
        save: RunSave<'_>,
        phase: &mut dyn FnMut(&str),
    ) -> Result<RunWritten> {
        let mut written = RunWritten::default();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        write_findings(&tx, produced, &save, &mut written)?;
        phase("write findings");
        written.state_bytes = save_states(&tx, states, &save)?;
        phase("save states");
        tx.commit()?;
        Ok(written)
    }
}

/// A read-only connection of its own on the cache file (a second reader).
fn open_reader(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    super::crypt::unlock(&conn, path)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    conn.busy_timeout(crate::store::BUSY_TIMEOUT)?;
    Ok(conn)
}

fn write_findings(
    tx: &rusqlite::Connection,
    produced: Vec<NewFinding>,
    save: &RunSave<'_>,
    report: &mut RunWritten,
) -> Result<()> {
    let now = save.now;
    // The first of several findings with one id wins.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(produced.len());
    for (i, nf) in produced.iter().enumerate() {
        index.entry(nf.finding.id.as_str()).or_insert(i);
    }
    let evidence: Vec<Cow<'static, str>> = produced
        .iter()
        .map(|nf| match nf.finding.evidence.as_slice() {
            [] => Cow::Borrowed("[]"),
            ev => Cow::Owned(serde_json::to_string(ev).unwrap_or_else(|_| "[]".into())),
        })
        .collect();
    // One pass over the stored findings, compared in place (no copies of their text).
    let mut fate = vec![Fate::Insert; produced.len()];
    let mut resolve: Vec<String> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT id, key_ref, category, status, severity, title, explanation, evidence,
                    last_seen, suppressed_until FROM findings",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let text = |i: usize| -> rusqlite::Result<&str> { Ok(r.get_ref(i)?.as_str()?) };
            let id = text(0)?;
            let status = text(3)?;
            let expired =
                status == "suppressed" && r.get::<_, Option<Millis>>(9)?.is_some_and(|u| u <= now);
            match index.get(id) {
                Some(&i) => {
                    let f = &produced[i].finding;
                    let new_status = match status {
                        "resolved" => "open",
                        "suppressed" if expired => "open",
                        s => s,
                    };
                    let last_seen: Millis = r.get(8)?;
                    let same = r.get::<_, i64>(4)? == f.severity as i64
                        && text(5)? == f.title
                        && text(6)? == f.explanation
                        && text(7)? == evidence[i]
                        && new_status == status
                        && if f.category == Category::Hygiene {
                            last_seen > now - DAY
                        } else {
                            last_seen >= to_millis(f.last_seen)
                        };
                    fate[i] = if same {
                        Fate::Keep
                    } else {
                        Fate::Update(new_status.to_string())
                    };
                }
                None => {
                    let category = text(2)?;
                    // Exposure and Sigma findings are not the engine's to resolve.
                    if category == "exposure" || category == "sigma" {
                        continue;
                    }
                    let key_ref: i64 = r.get(1)?;
                    let in_scope = save.within.is_none_or(|w| w.contains(&key_ref))
                        && match &save.scope {
                            ResolveScope::All => true,
                            ResolveScope::HygieneAnd(keys) => {
                                category == "hygiene" || keys.contains(&key_ref)
                            }
                        };
                    if in_scope && (status == "open" || expired) {
                        resolve.push(id.to_string());
                    }
                }
            }
        }
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO findings (id, rule, category, severity, key_ref, title, explanation,
                               evidence, first_seen, last_seen, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open')",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE findings SET severity = ?2, title = ?3, explanation = ?4, evidence = ?5,
            last_seen = max(last_seen, ?6), status = ?7,
            suppressed_until = CASE WHEN ?7 = 'open' THEN NULL ELSE suppressed_until END
         WHERE id = ?1",
    )?;
    for (i, nf) in produced.iter().enumerate() {
        if index.get(nf.finding.id.as_str()) != Some(&i) {
            continue;
        }
        let f = &nf.finding;
        match &fate[i] {
            Fate::Keep => {}
            Fate::Insert => {
                insert.execute(params![
                    f.id,
                    f.rule,
                    f.category.as_str(),
                    f.severity as i64,
                    nf.key_ref,
                    f.title,
                    f.explanation,
                    evidence[i],
                    to_millis(f.first_seen),
                    to_millis(f.last_seen)
                ])?;
                report.opened += 1;
            }
            Fate::Update(status) => {
                update.execute(params![
                    f.id,
                    f.severity as i64,
                    f.title,
                    f.explanation,
                    evidence[i],
                    to_millis(f.last_seen),
                    status
                ])?;
                report.updated += 1;
            }
        }
    }
    let mut resolve_one = tx.prepare_cached(
        "UPDATE findings SET status = 'resolved', suppressed_until = NULL WHERE id = ?1",
    )?;
    for id in &resolve {
        resolve_one.execute([id])?;
        report.resolved += 1;
    }
    Ok(())
}

fn save_states(
    tx: &rusqlite::Connection,
    states: &[StateRow<'_>],
    save: &RunSave<'_>,
) -> Result<usize> {
    let mut bytes = 0;
    match (save.replace_all, save.within) {
        (false, _) => {}
        (true, None) => {
            tx.execute("DELETE FROM detect_state", [])?;
        }
        (true, Some(keys)) => {
            let mut drop = tx.prepare_cached("DELETE FROM detect_state WHERE key_ref = ?1")?;
            for k in keys {
                drop.execute([k])?;
            }
        }
    }
    let mut put = tx.prepare_cached(
        "INSERT INTO detect_state (key_ref, last_time, scopes, state, saved_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(key_ref) DO UPDATE SET last_time = excluded.last_time,
            scopes = excluded.scopes, state = excluded.state, saved_at = excluded.saved_at",
    )?;
    for d in states {
        bytes += d.state.len();
        put.execute(params![d.key_ref, d.last_time, d.scopes, d.state, save.now])?;
    }
    if let Some(last_event) = save.last_event {
        tx.execute(
            "INSERT INTO detect_checkpoint (id, last_event, config, ran_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET last_event = excluded.last_event,
                config = excluded.config, ran_at = excluded.ran_at",
            params![last_event, save.config, save.now],
        )?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{from_millis, Event, Key, Outcome};

    fn ev(i: usize) -> Event {
        Event {
            provider: "p".into(),
            id: format!("e{i}"),
            time: from_millis(1_000 * i as i64),
            key_id: format!("k{}", i % 3),
            principal: None,
            action: "GET /v1/candidates".into(),
            scope: Some("candidates:read".into()),
            source_ip: Some("198.51.100.7".into()),
            user_agent: Some(format!("ua/{i}")),
            outcome: Outcome::Success,
            status_code: Some(200),
            request_id: None,
            records: None,
            raw: None,
        }
    }

    type Seen = (i64, i64, Option<String>);

    fn seen(e: EventFacts<'_>) -> Seen {
        (e.row, e.key_ref, e.user_agent.map(str::to_string))
    }

    #[test]
    fn a_split_read_gives_every_event_once_in_ordered_halves() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("cache.db")).unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        store
            .upsert_keys("p", &[Key::seen_in_logs("p", "k0")], chrono::Utc::now())
            .unwrap();
        let evs: Vec<Event> = (0..10).map(ev).collect();
        store.insert_events("p", &evs, None).unwrap();
        // Row ids far apart, as in a large cache: the range is worth splitting.
        store
            .conn()
            .execute("UPDATE events SET id = id + 300000 WHERE id > 5", [])
            .unwrap();
        let (lo, hi) = store.event_row_bounds().unwrap().unwrap();
        let mut whole = Vec::new();
        store
            .detect_events(lo, hi, &mut |e| whole.push(seen(e)))
            .unwrap();
        assert_eq!(whole.len(), 10);
        let parts = store
            .detect_events_split(lo, hi, Vec::new, |v: &mut Vec<Seen>, e| v.push(seen(e)))
            .unwrap();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(parts.len(), if threads >= 2 { 2 } else { 1 });
        assert_eq!(parts.concat(), whole);
    }

    #[test]
    fn a_run_is_saved_with_its_states_and_checkpoint() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        store
            .upsert_keys("p", &[Key::seen_in_logs("p", "k0")], chrono::Utc::now())
            .unwrap();
        let key_ref = store.detect_keys().unwrap()[0].key_ref;
        assert_eq!(store.detect_checkpoint().unwrap(), None);
        let state = [1u8, 2, 3];
        let mut phases = Vec::new();
        let written = store
            .save_detection(
                Vec::new(),
                &[StateRow {
                    key_ref,
                    last_time: 5,
                    scopes: "[]",
                    state: &state,
                }],
                RunSave {
                    scope: ResolveScope::All,
                    replace_all: true,
                    last_event: Some(42),
                    within: None,
                    config: "fp",
                    now: 7,
                },
                &mut |p| phases.push(p.to_string()),
            )
            .unwrap();
        assert_eq!(written.state_bytes, 3);
        assert_eq!(phases, ["write findings", "save states"]);
        assert_eq!(
            store.detect_checkpoint().unwrap(),
            Some(Checkpoint {
                last_event: 42,
                config: "fp".into()
            })
        );
        assert_eq!(store.detect_state(key_ref).unwrap(), Some(state.to_vec()));
        let mut saved = Vec::new();
        store
            .detect_states(&mut |s| saved.push((s.key_ref, s.last_time, s.scopes.to_string())))
            .unwrap();
        assert_eq!(saved, [(key_ref, 5, "[]".to_string())]);
    }
}
