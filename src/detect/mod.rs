//! The detection engine: rules turn cached keys and events into findings.
//!
//! - [`detect_full`] replays every event, ordered by key and time, through the anomaly
//!   rules (one pass, compact per-key state), runs the hygiene rules over every key,
//!   writes the findings and saves each key's baseline plus a checkpoint (the last event
//!   row it has seen).
//! - [`detect_incremental`] (run by `sync` after it brought events in) reads only the
//!   events after the checkpoint, loads the saved state of the keys they belong to and
//!   continues from there: its cost follows the new events, not the cache. A key whose
//!   new events are older than what its state has seen (a late import) is replayed from
//!   its own history through the `(key_ref, time)` index.
//!
//! Findings have stable ids (a hash of rule, provider, key and subject), so detection
//! never duplicates them; it updates their evidence and last-seen time. A finding whose
//! condition no longer holds is resolved, unless an operator acknowledged or suppressed
//! it (a suppression with an end date reopens after it). See docs/detections.md.

pub(crate) mod anomaly;
pub mod baseline;
pub mod config;
mod hygiene;

pub use baseline::BaselineStatus;
pub use config::DetectConfig;

use crate::model::{
    from_millis, to_millis, Category, Finding, FindingStatus, KeyStatus, Millis, Severity,
};
use crate::store::{Store, StoreError};
use anomaly::{Cx, Ev, Interner, KeyInfo};
use baseline::{Incident, KeyState, HOUR};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use thiserror::Error;

/// Why detection failed.
#[derive(Debug, Error)]
pub enum DetectError {
    /// The cache refused a read or a write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A detection query failed.
    #[error("detection query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A finding names a key the cache does not have.
    #[error("no key `{key}` of provider `{provider}` in the cache; run `keyaudit sync` first")]
    UnknownKey {
        /// Provider name.
        provider: String,
        /// Provider id of the key.
        key: String,
    },
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, DetectError>;

/// What one detection run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DetectReport {
    /// True for a full replay, false for an incremental run.
    pub full: bool,
    /// Events read.
    pub events: u64,
    /// Keys whose events were analysed.
    pub keys: usize,
    /// Findings that did not exist before.
    pub opened: usize,
    /// Existing findings whose evidence, wording or last-seen time changed.
    pub updated: usize,
    /// Findings resolved because their condition no longer holds.
    pub resolved: usize,
    /// Milliseconds the run took.
    pub elapsed_ms: f64,
    /// Bytes of saved per-key state written.
    pub state_bytes: usize,
}

/// One rule: id, category and what it looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Rule id, as stored in findings.
    pub id: &'static str,
    /// Its category.
    pub category: Category,
    /// One line for people.
    pub summary: &'static str,
}

/// Every rule the engine runs (plus `exposed_key`, raised by other parts).
pub const RULES: &[Rule] = &[
    Rule {
        id: "rotation_overdue",
        category: Category::Hygiene,
        summary: "key older than the rotation policy",
    },
    Rule {
        id: "unused_key",
        category: Category::Hygiene,
        summary: "active key unused for a long time",
    },
    Rule {
        id: "no_expiry",
        category: Category::Hygiene,
        summary: "active key without an expiry date",
    },
    Rule {
        id: "expiring_soon",
        category: Category::Hygiene,
        summary: "key expiring soon (or past expiry and still active)",
    },
    Rule {
        id: "excess_scopes",
        category: Category::Hygiene,
        summary: "scopes granted but not used in the window",
    },
    Rule {
        id: "duplicate_key",
        category: Category::Hygiene,
        summary: "several active keys for one owner and purpose",
    },
    Rule {
        id: "new_network",
        category: Category::Anomaly,
        summary: "first use from a new /24 or /48",
    },
    Rule {
        id: "new_user_agent",
        category: Category::Anomaly,
        summary: "first use with a new client family",
    },
    Rule {
        id: "off_hours",
        category: Category::Anomaly,
        summary: "activity at hours the key never works",
    },
    Rule {
        id: "volume_spike",
        category: Category::Anomaly,
        summary: "requests per hour far above the key's baseline",
    },
    Rule {
        id: "denied_burst",
        category: Category::Anomaly,
        summary: "burst of denied requests (probing scopes)",
    },
    Rule {
        id: "dormant_wakeup",
        category: Category::Anomaly,
        summary: "dormant key active again",
    },
    Rule {
        id: "revoked_use",
        category: Category::Anomaly,
        summary: "use after disable, revoke, expiry or rotation",
    },
    Rule {
        id: "bulk_export",
        category: Category::Anomaly,
        summary: "responses with far more records than usual",
    },
    Rule {
        id: "concurrent_networks",
        category: Category::Anomaly,
        summary: "same key used from two networks at once",
    },
    Rule {
        id: "exposed_key",
        category: Category::Exposure,
        summary: "key material found where it should not be",
    },
];

/// The category of a rule id (anomaly for unknown ids).
pub fn category_of(rule: &str) -> Category {
    RULES
        .iter()
        .find(|r| r.id == rule)
        .map_or(Category::Anomaly, |r| r.category)
}

/// The stable id of a finding: the same rule, key and subject always give the same id.
pub fn finding_id(rule: &str, provider: &str, key_id: &str, subject: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [rule, provider, key_id, subject] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Prints phase timings to stderr when `KEYAUDIT_DETECT_TIMING` is set (benchmarks).
struct Phases {
    on: bool,
    at: Instant,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            on: std::env::var_os("KEYAUDIT_DETECT_TIMING").is_some(),
            at: Instant::now(),
        }
    }

    fn mark(&mut self, what: &str) {
        if self.on {
            eprintln!(
                "  {what}: {:.1} ms",
                self.at.elapsed().as_secs_f64() * 1000.0
            );
            self.at = Instant::now();
        }
    }
}

const EV_COLUMNS: &str =
    "id, key_ref, time, source_ip, user_agent, scope, outcome, status_code, records";

/// Reads compact events; user agents and scopes are interned.
struct Reader {
    strings: Interner,
    agents: HashMap<String, u32>,
    nets: HashMap<String, u64>,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            strings: Interner::default(),
            agents: HashMap::new(),
            nets: HashMap::new(),
        }
    }

    /// The network of an address that is not a plain dotted quad (remembered: the
    /// general parser is slow).
    fn net(&mut self, ip: &str) -> u64 {
        if let Some(n) = self.nets.get(ip) {
            return *n;
        }
        let n = baseline::net_of(ip).unwrap_or(0);
        if self.nets.len() < 1_000_000 {
            self.nets.insert(ip.to_string(), n);
        }
        n
    }

    fn read(&mut self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Ev> {
        use rusqlite::types::ValueRef;
        let text = |i: usize| -> rusqlite::Result<Option<&str>> {
            Ok(match r.get_ref(i)? {
                ValueRef::Text(t) => std::str::from_utf8(t).ok(),
                _ => None,
            })
        };
        let net = match text(3)? {
            Some(ip) => match baseline::net_of_dotted(ip) {
                Some(n) => n,
                None => self.net(ip),
            },
            None => 0,
        };
        let agent = match text(4)? {
            Some(ua) => match self.agents.get(ua) {
                Some(a) => *a,
                None => {
                    let a = self.strings.id(&baseline::agent_family(ua));
                    self.agents.insert(ua.to_string(), a);
                    a
                }
            },
            None => u32::MAX,
        };
        let scope = match text(5)? {
            Some(s) => self.strings.id(s),
            None => u32::MAX,
        };
        Ok(Ev {
            row: r.get(0)?,
            key_ref: r.get(1)?,
            time: r.get(2)?,
            net,
            agent,
            scope,
            outcome: r.get::<_, i64>(6)? as u8,
            status: r.get::<_, Option<i64>>(7)?.map_or(-1, |s| s as i32),
            records: r.get::<_, Option<i64>>(8)?.unwrap_or(-1),
        })
    }
}

fn load_keys(store: &Store) -> Result<HashMap<i64, KeyInfo>> {
    let mut stmt = store.conn().prepare_cached(
        "SELECT k.id, p.name, k.ext_id, k.name, k.owner, k.environment, k.purpose, k.scopes,
                k.status, k.created, k.expires, k.last_used, k.rotated_to, k.source
         FROM keys k JOIN providers p ON p.id = k.provider_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let scopes: String = r.get(7)?;
        let status: String = r.get(8)?;
        let source: String = r.get(13)?;
        Ok(KeyInfo {
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
            replaced_at: None,
            listed: source == "provider",
        })
    })?;
    let mut keys: HashMap<i64, KeyInfo> = HashMap::new();
    for k in rows {
        let k = k?;
        keys.insert(k.key_ref, k);
    }
    let by_id: HashMap<(String, String), Option<Millis>> = keys
        .values()
        .map(|k| ((k.provider.clone(), k.id.clone()), k.created))
        .collect();
    for k in keys.values_mut() {
        if let Some(to) = &k.rotated_to {
            k.replaced_at = by_id
                .get(&(k.provider.clone(), to.clone()))
                .copied()
                .flatten();
        }
    }
    Ok(keys)
}

/// A finding about to be written, with its key handle.
struct NewFinding {
    key_ref: i64,
    f: Finding,
}

/// The provider ids of the events behind evidence row ids, looked up in row order: a
/// cluster of nearby rows (the events of one sync are) is read as one range of the
/// table, a lone row by itself.
fn evidence_ids(conn: &rusqlite::Connection, mut rows: Vec<i64>) -> Result<HashMap<i64, String>> {
    rows.sort_unstable();
    rows.dedup();
    let mut out = HashMap::with_capacity(rows.len());
    let mut point = conn.prepare_cached("SELECT ext_id FROM events WHERE id = ?1")?;
    let mut range =
        conn.prepare_cached("SELECT id, ext_id FROM events WHERE id >= ?1 AND id <= ?2")?;
    let mut i = 0;
    while i < rows.len() {
        // Grow the cluster while it spans at most 8 table rows per wanted row: stepping
        // over a row costs a fraction of a lookup by id.
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

fn to_finding(
    key: &KeyInfo,
    inc: &Incident,
    now: Millis,
    ext_ids: &HashMap<i64, String>,
) -> NewFinding {
    let category = category_of(&inc.rule);
    let evidence = inc
        .rows
        .iter()
        .filter_map(|r| ext_ids.get(r).cloned())
        .collect();
    let (first, last) = if category == Category::Hygiene {
        (now, now)
    } else {
        (inc.start, inc.last.max(inc.start))
    };
    NewFinding {
        key_ref: key.key_ref,
        f: Finding {
            id: finding_id(&inc.rule, &key.provider, &key.id, &inc.subject),
            rule: inc.rule.clone(),
            category,
            severity: Severity::ALL[inc.severity.min(3) as usize],
            provider: key.provider.clone(),
            key_id: key.id.clone(),
            title: inc.title.clone(),
            explanation: inc.explanation.clone(),
            evidence,
            first_seen: from_millis(first),
            last_seen: from_millis(last),
            status: FindingStatus::Open,
            note: None,
            suppressed_until: None,
        },
    }
}

/// What the writer resolves when a finding is not produced again.
enum Scope<'a> {
    /// Every engine finding (full run).
    All,
    /// Hygiene findings, and anomaly findings of these keys (incremental run).
    HygieneAnd(&'a HashSet<i64>),
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

fn write_findings(
    tx: &rusqlite::Connection,
    produced: Vec<NewFinding>,
    scope: Scope<'_>,
    now: Millis,
    report: &mut DetectReport,
) -> Result<()> {
    // The first of several findings with one id wins.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(produced.len());
    for (i, nf) in produced.iter().enumerate() {
        index.entry(nf.f.id.as_str()).or_insert(i);
    }
    let evidence: Vec<Cow<'static, str>> = produced
        .iter()
        .map(|nf| match nf.f.evidence.as_slice() {
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
                    let f = &produced[i].f;
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
                            last_seen > now - 24 * HOUR
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
                    if category == "exposure" {
                        continue;
                    }
                    let in_scope = match &scope {
                        Scope::All => true,
                        Scope::HygieneAnd(keys) => {
                            category == "hygiene" || keys.contains(&r.get::<_, i64>(1)?)
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
        if index.get(nf.f.id.as_str()) != Some(&i) {
            continue;
        }
        let f = &nf.f;
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

/// One key's work: its saved state (if continuing) and the events to run.
struct Work {
    key_ref: i64,
    saved: Option<KeyState>,
    events: Vec<Ev>,
}

/// One key's result, its state already encoded.
struct Done {
    key_ref: i64,
    incidents: Vec<Incident>,
    usage: hygiene::Usage,
    last_time: Millis,
    scopes_json: String,
    state: Vec<u8>,
}

fn unknown_key(key_ref: i64) -> KeyInfo {
    KeyInfo {
        key_ref,
        provider: String::new(),
        id: String::new(),
        owner: String::new(),
        environment: None,
        purpose: None,
        scopes: Vec::new(),
        status: KeyStatus::Active,
        created: None,
        expires: None,
        last_used: None,
        rotated_to: None,
        replaced_at: None,
        listed: false,
    }
}

fn run_work(
    mut w: Work,
    keys: &HashMap<i64, KeyInfo>,
    strings: &Interner,
    cfg: &DetectConfig,
    now: Millis,
) -> Done {
    let mut st = w.saved.take().unwrap_or_default();
    // Nearly sorted already (rowid order follows arrival): a stable sort is linear here.
    w.events.sort_by_key(|e| (e.time, e.row));
    let fallback;
    let key = match keys.get(&w.key_ref) {
        Some(k) => k,
        None => {
            fallback = unknown_key(w.key_ref);
            &fallback
        }
    };
    let cx = Cx { cfg, key, strings };
    let mut incidents = Vec::new();
    anomaly::process(&mut st, &w.events, &cx, &mut incidents);
    incidents.extend(anomaly::pending(&st, &cx, now));
    Done {
        key_ref: w.key_ref,
        incidents,
        usage: hygiene::Usage {
            last_time: (st.events > 0).then_some(st.last_time),
            scopes: st.scopes.clone(),
        },
        last_time: st.last_time,
        scopes_json: serde_json::to_string(&st.scopes).unwrap_or_else(|_| "[]".into()),
        state: st.encode(),
    }
}

/// Runs the anomaly rules for every key, on two threads when there is enough work.
fn analyse(
    work: Vec<Work>,
    keys: &HashMap<i64, KeyInfo>,
    strings: &Interner,
    cfg: &DetectConfig,
    now: Millis,
) -> Vec<Done> {
    let total: usize = work.iter().map(|w| w.events.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = |ws: Vec<Work>| -> Vec<Done> {
        ws.into_iter()
            .map(|w| run_work(w, keys, strings, cfg, now))
            .collect()
    };
    if threads < 2 || work.len() < 2 || total + work.len() * 50 < 20_000 {
        return run(work);
    }
    // Two halves of about equal cost (events, plus a fixed cost per key).
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut ca, mut cb) = (0usize, 0usize);
    for w in work {
        let c = w.events.len() + 50;
        if ca <= cb {
            ca += c;
            a.push(w);
        } else {
            cb += c;
            b.push(w);
        }
    }
    std::thread::scope(|s| {
        let h = s.spawn(|| run(b));
        let mut out = run(a);
        // A panic there is a bug: losing half the keys' results silently would advance
        // the checkpoint past events that were never analysed.
        out.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        out
    })
}

fn save_states(
    tx: &rusqlite::Connection,
    done: &[Done],
    replace_all: bool,
    last_event: i64,
    cfg: &DetectConfig,
    now: Millis,
) -> Result<usize> {
    let mut bytes = 0;
    {
        if replace_all {
            tx.execute("DELETE FROM detect_state", [])?;
        }
        let mut put = tx.prepare_cached(
            "INSERT INTO detect_state (key_ref, last_time, scopes, state) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key_ref) DO UPDATE SET last_time = excluded.last_time,
                scopes = excluded.scopes, state = excluded.state",
        )?;
        for d in done {
            bytes += d.state.len();
            put.execute(params![d.key_ref, d.last_time, d.scopes_json, d.state])?;
        }
        tx.execute(
            "INSERT INTO detect_checkpoint (id, last_event, config, ran_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET last_event = excluded.last_event,
                config = excluded.config, ran_at = excluded.ran_at",
            params![last_event, cfg.fingerprint(), now],
        )?;
    }
    Ok(bytes)
}

/// What one pass over `detect_state` gives an incremental run: the saved state of each
/// key with new events (the time of its last analysed event, and the state unless it
/// does not decode), and the usage of every other key for the hygiene rules.
type Saved = (
    HashMap<i64, (Millis, Option<KeyState>)>,
    HashMap<i64, hygiene::Usage>,
);

fn load_states(store: &Store, touched: &HashMap<i64, Vec<Ev>>) -> Result<Saved> {
    let mut stmt = store
        .conn()
        .prepare_cached("SELECT key_ref, last_time, scopes, state FROM detect_state")?;
    let mut rows = stmt.query([])?;
    let mut states = HashMap::with_capacity(touched.len());
    let mut usage = HashMap::new();
    while let Some(r) = rows.next()? {
        let key_ref: i64 = r.get(0)?;
        let last_time: Millis = r.get(1)?;
        if touched.contains_key(&key_ref) {
            let st = r.get_ref(3)?.as_blob().ok().and_then(KeyState::decode);
            states.insert(key_ref, (last_time, st));
        } else {
            let scopes = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
            usage.insert(
                key_ref,
                hygiene::Usage {
                    last_time: Some(last_time),
                    scopes: serde_json::from_str(scopes).unwrap_or_default(),
                },
            );
        }
    }
    Ok((states, usage))
}

/// Events grouped by key, in rowid order within each key.
struct Grouped {
    by_key: HashMap<i64, Vec<Ev>>,
    strings: Interner,
    last_event: i64,
    count: u64,
}

fn read_range(
    conn: &rusqlite::Connection,
    sql: &str,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Grouped> {
    let mut reader = Reader::new();
    let mut by_key: HashMap<i64, Vec<Ev>> = HashMap::new();
    let mut last_event = 0;
    let mut count = 0;
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([lo, hi])?;
    while let Some(r) = rows.next()? {
        let e = reader.read(r)?;
        last_event = e.row;
        count += 1;
        by_key.entry(e.key_ref).or_default().push(e);
    }
    Ok(Grouped {
        by_key,
        strings: reader.strings,
        last_event,
        count,
    })
}

/// Reads the events with row ids in `lo..=hi`; over a cache file, the range is split
/// between two read-only connections on two threads.
fn read_events(store: &Store, lo: i64, hi: i64) -> Result<Grouped> {
    let sql = format!("SELECT {EV_COLUMNS} FROM events WHERE id >= ?1 AND id <= ?2");
    let path = store.path().map(std::path::Path::to_path_buf);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (Some(path), true) = (path, threads >= 2 && hi - lo > 100_000) else {
        return Ok(read_range(store.conn(), &sql, lo, hi)?);
    };
    let mid = lo + (hi - lo) / 2;
    let (a, b) = std::thread::scope(|s| {
        let h = s.spawn(|| -> rusqlite::Result<Grouped> {
            let conn = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            read_range(&conn, &sql, mid + 1, hi)
        });
        let a = read_range(store.conn(), &sql, lo, mid);
        let b = h
            .join()
            .unwrap_or_else(|_| Err(rusqlite::Error::InvalidQuery));
        (a, b)
    });
    let (mut a, b) = (a?, b?);
    // Re-intern the second half's strings into the first's table.
    let map: Vec<u32> = b.strings.strings.iter().map(|s| a.strings.id(s)).collect();
    let remap = |i: u32| map.get(i as usize).copied().unwrap_or(u32::MAX);
    for (k, mut evs) in b.by_key {
        for e in &mut evs {
            if e.agent != u32::MAX {
                e.agent = remap(e.agent);
            }
            if e.scope != u32::MAX {
                e.scope = remap(e.scope);
            }
        }
        a.by_key.entry(k).or_default().extend(evs);
    }
    a.last_event = a.last_event.max(b.last_event);
    a.count += b.count;
    Ok(a)
}

/// Turns results into findings and writes them with the states.
#[allow(clippy::too_many_arguments)]
fn finish_run(
    store: &mut Store,
    keys: &HashMap<i64, KeyInfo>,
    mut done: Vec<Done>,
    mut usage: HashMap<i64, hygiene::Usage>,
    scope: Scope<'_>,
    full: bool,
    last_event: i64,
    cfg: &DetectConfig,
    now: Millis,
    report: &mut DetectReport,
    ph: &mut Phases,
) -> Result<()> {
    for d in &mut done {
        usage.insert(d.key_ref, std::mem::take(&mut d.usage));
    }
    report.keys = done.len();
    let anomalies = || -> Result<Vec<NewFinding>> {
        let rows: Vec<i64> = done
            .iter()
            .filter(|d| keys.contains_key(&d.key_ref))
            .flat_map(|d| d.incidents.iter().flat_map(|inc| inc.rows.iter().copied()))
            .collect();
        let ext_ids = evidence_ids(store.conn(), rows)?;
        let mut out = Vec::new();
        for d in &done {
            if let Some(k) = keys.get(&d.key_ref) {
                out.extend(
                    d.incidents
                        .iter()
                        .map(|inc| to_finding(k, inc, now, &ext_ids)),
                );
            }
        }
        Ok(out)
    };
    // The hygiene rules (computation only, O(keys)) run on a second thread while this
    // one looks up the evidence of the anomaly findings.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let produced = if threads >= 2 && keys.len() >= 256 {
        std::thread::scope(|s| -> Result<Vec<NewFinding>> {
            let h = s.spawn(|| hygiene_findings(keys, &usage, cfg, now));
            let mut out = anomalies()?;
            out.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            Ok(out)
        })?
    } else {
        let mut out = anomalies()?;
        out.extend(hygiene_findings(keys, &usage, cfg, now));
        out
    };
    ph.mark("findings");
    // Findings, states and checkpoint in one transaction: a run is saved whole or not
    // at all.
    let tx = store.conn_mut().transaction()?;
    write_findings(&tx, produced, scope, now, report)?;
    ph.mark("write findings");
    report.state_bytes = save_states(&tx, &done, full, last_event, cfg, now)?;
    ph.mark("save states");
    tx.commit()?;
    ph.mark("commit");
    Ok(())
}

/// Runs every rule over the whole cache and replaces the saved baselines.
pub fn detect_full(
    store: &mut Store,
    cfg: &DetectConfig,
    now: DateTime<Utc>,
) -> Result<DetectReport> {
    let started = Instant::now();
    let mut ph = Phases::new();
    let now_ms = to_millis(now);
    let keys = load_keys(store)?;
    let (lo, hi): (Option<i64>, Option<i64>) =
        store
            .conn()
            .query_row("SELECT min(id), max(id) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
    let g = match (lo, hi) {
        (Some(lo), Some(hi)) => read_events(store, lo, hi)?,
        _ => Grouped {
            by_key: HashMap::new(),
            strings: Interner::default(),
            last_event: 0,
            count: 0,
        },
    };
    ph.mark("read");
    let mut report = DetectReport {
        full: true,
        events: g.count,
        ..Default::default()
    };
    let work: Vec<Work> = g
        .by_key
        .into_iter()
        .map(|(key_ref, events)| Work {
            key_ref,
            saved: None,
            events,
        })
        .collect();
    let done = analyse(work, &keys, &g.strings, cfg, now_ms);
    ph.mark("analyse");
    finish_run(
        store,
        &keys,
        done,
        HashMap::new(),
        Scope::All,
        true,
        g.last_event,
        cfg,
        now_ms,
        &mut report,
        &mut ph,
    )?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(?report, "detection (full)");
    Ok(report)
}

fn hygiene_findings(
    keys: &HashMap<i64, KeyInfo>,
    usage: &HashMap<i64, hygiene::Usage>,
    cfg: &DetectConfig,
    now: Millis,
) -> Vec<NewFinding> {
    let list: Vec<&KeyInfo> = keys.values().collect();
    let none = HashMap::new();
    hygiene::run(&list, usage, cfg, now)
        .into_iter()
        .filter_map(|(key_ref, inc)| keys.get(&key_ref).map(|k| to_finding(k, &inc, now, &none)))
        .collect()
}

/// Runs the rules over the events that arrived since the last run (keys without new
/// events keep their state) and re-evaluates hygiene. Falls back to [`detect_full`]
/// when there is no checkpoint yet or the configuration changed.
pub fn detect_incremental(
    store: &mut Store,
    cfg: &DetectConfig,
    now: DateTime<Utc>,
) -> Result<DetectReport> {
    let started = Instant::now();
    let mut ph = Phases::new();
    let now_ms = to_millis(now);
    let cp: Option<(i64, String)> = store
        .conn()
        .query_row(
            "SELECT last_event, config FROM detect_checkpoint WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let last_seen = match cp {
        Some((last, fp)) if fp == cfg.fingerprint() => last,
        _ => return detect_full(store, cfg, now),
    };
    let keys = load_keys(store)?;
    // Only rows after the checkpoint: a range of the table's own b-tree.
    let mut g = read_range(
        store.conn(),
        &format!("SELECT {EV_COLUMNS} FROM events WHERE id > ?1 AND id <= ?2"),
        last_seen,
        i64::MAX,
    )?;
    ph.mark("read new");
    let mut report = DetectReport {
        full: false,
        events: g.count,
        ..Default::default()
    };
    // Per key: continue from its state, or replay its history when the new events are
    // older than what the state has seen (or there is no state).
    let mut work: Vec<Work> = Vec::with_capacity(g.by_key.len());
    let mut rebuilt: HashSet<i64> = HashSet::new();
    let (mut saved, usage) = load_states(store, &g.by_key)?;
    {
        let mut reader = Reader {
            strings: std::mem::take(&mut g.strings),
            agents: HashMap::new(),
            nets: HashMap::new(),
        };
        let mut history = store.conn().prepare_cached(&format!(
            "SELECT {EV_COLUMNS} FROM events WHERE key_ref = ?1 ORDER BY time, id"
        ))?;
        for (key_ref, evs) in g.by_key.drain() {
            let min_time = evs.iter().map(|e| e.time).min().unwrap_or(0);
            // A state that does not decode (an older format) is rebuilt like a missing one.
            match saved.remove(&key_ref) {
                Some((last, Some(st))) if min_time >= last => work.push(Work {
                    key_ref,
                    saved: Some(st),
                    events: evs,
                }),
                _ => {
                    let mut all = Vec::new();
                    let mut rows = history.query([key_ref])?;
                    while let Some(r) = rows.next()? {
                        all.push(reader.read(r)?);
                    }
                    report.events += all.len().saturating_sub(evs.len()) as u64;
                    rebuilt.insert(key_ref);
                    work.push(Work {
                        key_ref,
                        saved: None,
                        events: all,
                    });
                }
            }
        }
        g.strings = reader.strings;
    }
    ph.mark("load states");
    let done = analyse(work, &keys, &g.strings, cfg, now_ms);
    ph.mark("analyse");
    finish_run(
        store,
        &keys,
        done,
        usage,
        Scope::HygieneAnd(&rebuilt),
        false,
        g.last_event.max(last_seen),
        cfg,
        now_ms,
        &mut report,
        &mut ph,
    )?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(?report, "detection (incremental)");
    Ok(report)
}

/// Attaches an exposure finding (key material found in a file, a paste, a repository)
/// to a cached key. Critical, open; the same title on the same key is one finding.
pub fn raise_exposure(
    store: &Store,
    provider: &str,
    key_id: &str,
    title: &str,
    explanation: &str,
    evidence: &[String],
) -> Result<Finding> {
    if store.key(provider, key_id)?.is_none() {
        return Err(DetectError::UnknownKey {
            provider: provider.into(),
            key: key_id.into(),
        });
    }
    let now = Utc::now();
    let f = Finding {
        id: finding_id("exposed_key", provider, key_id, title),
        rule: "exposed_key".into(),
        category: Category::Exposure,
        severity: Severity::Critical,
        provider: provider.into(),
        key_id: key_id.into(),
        title: title.into(),
        explanation: explanation.into(),
        evidence: evidence.to_vec(),
        first_seen: now,
        last_seen: now,
        status: FindingStatus::Open,
        note: None,
        suppressed_until: None,
    };
    store.upsert_finding(&f)?;
    Ok(store.finding(&f.id)?.unwrap_or(f))
}

/// The baseline status of a key (by cache handle) as of the last detection run:
/// `Learning` keys raise no novelty findings yet.
pub fn baseline_status(store: &Store, key_ref: i64, cfg: &DetectConfig) -> Result<BaselineStatus> {
    let saved: Option<Option<KeyState>> = store
        .conn()
        .query_row(
            "SELECT state FROM detect_state WHERE key_ref = ?1",
            [key_ref],
            |r| Ok(r.get_ref(0)?.as_blob().ok().and_then(KeyState::decode)),
        )
        .optional()?;
    Ok(saved
        .flatten()
        .map_or(BaselineStatus::NoHistory, |st| st.status(cfg)))
}

/// Resolves a finding id or a unique prefix of one (at least 4 characters).
pub fn resolve_finding_id(store: &Store, id: &str) -> Result<Option<String>> {
    if let Some(f) = store.finding(id)? {
        return Ok(Some(f.id));
    }
    if id.len() < 4 {
        return Ok(None);
    }
    let mut stmt = store
        .conn()
        .prepare_cached("SELECT id FROM findings WHERE id LIKE ?1 || '%' LIMIT 2")?;
    let ids: Vec<String> = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(if ids.len() == 1 {
        ids.into_iter().next()
    } else {
        None
    })
}

/// The evidence events of a finding that are still in the cache, in evidence order.
pub fn evidence_events(store: &Store, f: &Finding) -> Result<Vec<crate::model::Event>> {
    use crate::model::{Event, Outcome};
    let mut stmt = store.conn().prepare_cached(
        "SELECT e.time, e.principal, e.action, e.scope, e.source_ip, e.user_agent, e.outcome,
                e.status_code, e.request_id, e.records
         FROM events e JOIN providers p ON p.id = e.provider_id
         WHERE p.name = ?1 AND e.ext_id = ?2",
    )?;
    let mut out = Vec::new();
    for id in &f.evidence {
        let ev = stmt
            .query_row(params![f.provider, id], |r| {
                Ok(Event {
                    provider: f.provider.clone(),
                    id: id.clone(),
                    time: from_millis(r.get(0)?),
                    key_id: f.key_id.clone(),
                    principal: r.get(1)?,
                    action: r.get(2)?,
                    scope: r.get(3)?,
                    source_ip: r.get(4)?,
                    user_agent: r.get(5)?,
                    outcome: match r.get::<_, i64>(6)? {
                        0 => Outcome::Success,
                        1 => Outcome::Denied,
                        _ => Outcome::Error,
                    },
                    status_code: r.get(7)?,
                    request_id: r.get(8)?,
                    records: r.get(9)?,
                    raw: None,
                })
            })
            .optional()?;
        out.extend(ev);
    }
    Ok(out)
}

/// The status an operator sees now: a suppression whose end date has passed is open.
pub fn effective_status(f: &Finding, now: DateTime<Utc>) -> FindingStatus {
    match (f.status, f.suppressed_until) {
        (FindingStatus::Suppressed, Some(u)) if u <= now => FindingStatus::Open,
        (s, _) => s,
    }
}
