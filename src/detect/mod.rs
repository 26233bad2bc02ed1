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
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
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
    /// Saved state could not be written.
    #[error("cannot encode the detection state of key {key_ref}: {source}")]
    State {
        /// Cache handle of the key.
        key_ref: i64,
        /// What serde said.
        source: serde_json::Error,
    },
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

static SYNC_CONFIG: RwLock<Option<DetectConfig>> = RwLock::new(None);

/// Sets the configuration `sync` uses for its incremental detection (the CLI and the
/// TUI call this once at start with the parsed `[detect]` table; unset means defaults).
pub fn set_sync_config(cfg: DetectConfig) {
    if let Ok(mut g) = SYNC_CONFIG.write() {
        *g = Some(cfg);
    }
}

/// The configuration `sync` uses.
pub fn sync_config() -> DetectConfig {
    SYNC_CONFIG
        .read()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_default()
}

/// Runs incremental detection after a sync, with [`sync_config`].
pub fn after_sync(store: &mut Store) -> Result<DetectReport> {
    detect_incremental(store, &sync_config(), Utc::now())
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

    fn read(&mut self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Ev> {
        use rusqlite::types::ValueRef;
        let text = |i: usize| -> rusqlite::Result<Option<&str>> {
            Ok(match r.get_ref(i)? {
                ValueRef::Text(t) => std::str::from_utf8(t).ok(),
                _ => None,
            })
        };
        let net = match text(3)? {
            Some(ip) => match self.nets.get(ip) {
                Some(n) => *n,
                None => {
                    let n = baseline::net_of(ip).unwrap_or(0);
                    if self.nets.len() < 1_000_000 {
                        self.nets.insert(ip.to_string(), n);
                    }
                    n
                }
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

fn to_finding(store: &Store, key: &KeyInfo, inc: &Incident, now: Millis) -> Result<NewFinding> {
    let category = category_of(&inc.rule);
    let mut evidence = Vec::with_capacity(inc.rows.len());
    if !inc.rows.is_empty() {
        let mut stmt = store
            .conn()
            .prepare_cached("SELECT ext_id FROM events WHERE id = ?1")?;
        for r in &inc.rows {
            if let Some(id) = stmt.query_row([r], |x| x.get::<_, String>(0)).optional()? {
                evidence.push(id);
            }
        }
    }
    let (first, last) = if category == Category::Hygiene {
        (now, now)
    } else {
        (inc.start, inc.last.max(inc.start))
    };
    Ok(NewFinding {
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
    })
}

/// An existing finding, as far as the writer needs it.
struct Existing {
    key_ref: i64,
    rule: String,
    category: String,
    status: String,
    severity: i64,
    title: String,
    explanation: String,
    evidence: String,
    last_seen: Millis,
    suppressed_until: Option<Millis>,
}

/// What the writer resolves when a finding is not produced again.
enum Scope<'a> {
    /// Every engine finding (full run).
    All,
    /// Hygiene findings, and anomaly findings of these keys (incremental run).
    HygieneAnd(&'a HashSet<i64>),
}

fn write_findings(
    store: &mut Store,
    produced: Vec<NewFinding>,
    scope: Scope<'_>,
    now: Millis,
    report: &mut DetectReport,
) -> Result<()> {
    let tx = store.conn_mut().transaction()?;
    {
        let mut existing: HashMap<String, Existing> = HashMap::new();
        {
            let mut stmt = tx.prepare(
                "SELECT id, key_ref, rule, category, status, severity, title, explanation,
                        evidence, last_seen, suppressed_until FROM findings",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                existing.insert(
                    r.get(0)?,
                    Existing {
                        key_ref: r.get(1)?,
                        rule: r.get(2)?,
                        category: r.get(3)?,
                        status: r.get(4)?,
                        severity: r.get(5)?,
                        title: r.get(6)?,
                        explanation: r.get(7)?,
                        evidence: r.get(8)?,
                        last_seen: r.get(9)?,
                        suppressed_until: r.get(10)?,
                    },
                );
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
        let mut seen: HashSet<String> = HashSet::new();
        for nf in produced {
            let f = nf.f;
            if !seen.insert(f.id.clone()) {
                continue;
            }
            let evidence = serde_json::to_string(&f.evidence).unwrap_or_else(|_| "[]".into());
            let sev = f.severity as i64;
            let last = to_millis(f.last_seen);
            match existing.get(&f.id) {
                None => {
                    insert.execute(params![
                        f.id,
                        f.rule,
                        f.category.as_str(),
                        sev,
                        nf.key_ref,
                        f.title,
                        f.explanation,
                        evidence,
                        to_millis(f.first_seen),
                        last
                    ])?;
                    report.opened += 1;
                }
                Some(e) => {
                    let expired =
                        e.status == "suppressed" && e.suppressed_until.is_some_and(|u| u <= now);
                    let status = match e.status.as_str() {
                        "resolved" => "open",
                        "suppressed" if expired => "open",
                        s => s,
                    };
                    let hygiene = f.category == Category::Hygiene;
                    let same = e.severity == sev
                        && e.title == f.title
                        && e.explanation == f.explanation
                        && e.evidence == evidence
                        && status == e.status
                        && if hygiene {
                            e.last_seen > now - HOUR
                        } else {
                            e.last_seen >= last
                        };
                    if !same {
                        update.execute(params![
                            f.id,
                            sev,
                            f.title,
                            f.explanation,
                            evidence,
                            last,
                            status
                        ])?;
                        report.updated += 1;
                    }
                }
            }
        }
        let mut resolve = tx.prepare_cached(
            "UPDATE findings SET status = 'resolved', suppressed_until = NULL WHERE id = ?1",
        )?;
        for (id, e) in &existing {
            if seen.contains(id) || e.category == "exposure" {
                continue;
            }
            let in_scope = match &scope {
                Scope::All => true,
                Scope::HygieneAnd(keys) => e.category == "hygiene" || keys.contains(&e.key_ref),
            };
            let _ = &e.rule;
            let expired = e.status == "suppressed" && e.suppressed_until.is_some_and(|u| u <= now);
            if in_scope && (e.status == "open" || expired) {
                resolve.execute([id])?;
                report.resolved += 1;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn save_states(
    store: &mut Store,
    states: &[(i64, KeyState)],
    replace_all: bool,
    last_event: i64,
    cfg: &DetectConfig,
    now: Millis,
) -> Result<usize> {
    let tx = store.conn_mut().transaction()?;
    let mut bytes = 0;
    {
        if replace_all {
            tx.execute("DELETE FROM detect_state", [])?;
        }
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO detect_state (key_ref, last_time, scopes, state)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (key_ref, st) in states {
            let json = serde_json::to_string(st).map_err(|source| DetectError::State {
                key_ref: *key_ref,
                source,
            })?;
            let scopes = serde_json::to_string(&st.scopes).unwrap_or_else(|_| "[]".into());
            bytes += json.len();
            put.execute(params![key_ref, st.last_time, scopes, json])?;
        }
        tx.execute(
            "INSERT INTO detect_checkpoint (id, last_event, config, ran_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET last_event = excluded.last_event,
                config = excluded.config, ran_at = excluded.ran_at",
            params![last_event, cfg.fingerprint(), now],
        )?;
    }
    tx.commit()?;
    Ok(bytes)
}

fn load_usage(store: &Store) -> Result<HashMap<i64, hygiene::Usage>> {
    let mut stmt = store
        .conn()
        .prepare_cached("SELECT key_ref, last_time, scopes FROM detect_state")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        let scopes: String = r.get(2)?;
        out.insert(
            r.get::<_, i64>(0)?,
            hygiene::Usage {
                last_time: Some(r.get(1)?),
                scopes: serde_json::from_str(&scopes).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

fn usage_of(st: &KeyState) -> hygiene::Usage {
    hygiene::Usage {
        last_time: (st.events > 0).then_some(st.last_time),
        scopes: st.scopes.clone(),
    }
}

/// Runs the anomaly rules over one key's events (time order) from `st`.
fn run_key(
    st: &mut KeyState,
    events: &[Ev],
    key: &KeyInfo,
    strings: &Interner,
    cfg: &DetectConfig,
    now: Millis,
) -> Vec<Incident> {
    let cx = Cx { cfg, key, strings };
    let mut out = Vec::new();
    anomaly::process(st, events, &cx, &mut out);
    out.extend(anomaly::pending(st, &cx, now));
    out
}

/// Runs every rule over the whole cache and replaces the saved baselines.
pub fn detect_full(
    store: &mut Store,
    cfg: &DetectConfig,
    now: DateTime<Utc>,
) -> Result<DetectReport> {
    let started = Instant::now();
    let now_ms = to_millis(now);
    let keys = load_keys(store)?;
    let mut reader = Reader::new();
    let mut events: Vec<Ev> = Vec::new();
    let mut last_event = 0i64;
    {
        let mut stmt = store
            .conn()
            .prepare(&format!("SELECT {EV_COLUMNS} FROM events"))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let e = reader.read(r)?;
            last_event = last_event.max(e.row);
            events.push(e);
        }
    }
    events.sort_unstable_by_key(|e| (e.key_ref, e.time, e.row));
    let mut report = DetectReport {
        full: true,
        events: events.len() as u64,
        ..Default::default()
    };
    let strings = reader.strings;
    let groups: Vec<&[Ev]> = events.chunk_by(|a, b| a.key_ref == b.key_ref).collect();
    let results = analyse(&groups, &keys, &strings, cfg, now_ms, |_| {
        KeyState::default()
    });
    let mut produced = Vec::new();
    let mut states = Vec::with_capacity(results.len());
    let mut usage = HashMap::new();
    for (key_ref, st, incs) in results {
        if let Some(k) = keys.get(&key_ref) {
            for inc in &incs {
                produced.push(to_finding(store, k, inc, now_ms)?);
            }
        }
        usage.insert(key_ref, usage_of(&st));
        states.push((key_ref, st));
    }
    report.keys = states.len();
    produced.extend(hygiene_findings(store, &keys, &usage, cfg, now_ms)?);
    write_findings(store, produced, Scope::All, now_ms, &mut report)?;
    report.state_bytes = save_states(store, &states, true, last_event, cfg, now_ms)?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(?report, "detection (full)");
    Ok(report)
}

/// Runs the anomaly rules over groups of events (one key each), on two threads when
/// there is enough work.
fn analyse(
    groups: &[&[Ev]],
    keys: &HashMap<i64, KeyInfo>,
    strings: &Interner,
    cfg: &DetectConfig,
    now: Millis,
    initial: impl Fn(i64) -> KeyState + Sync,
) -> Vec<(i64, KeyState, Vec<Incident>)> {
    let one = |g: &[Ev]| -> Option<(i64, KeyState, Vec<Incident>)> {
        let key_ref = g.first()?.key_ref;
        let fallback;
        let key = match keys.get(&key_ref) {
            Some(k) => k,
            None => {
                fallback = KeyInfo {
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
                };
                &fallback
            }
        };
        let mut st = initial(key_ref);
        let incs = run_key(&mut st, g, key, strings, cfg, now);
        Some((key_ref, st, incs))
    };
    let total: usize = groups.iter().map(|g| g.len()).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    if threads < 2 || total < 50_000 || groups.len() < 2 {
        return groups.iter().filter_map(|g| one(g)).collect();
    }
    // Split the groups in two halves of about equal event counts.
    let mut acc = 0;
    let mut split = groups.len();
    for (i, g) in groups.iter().enumerate() {
        acc += g.len();
        if acc >= total / 2 {
            split = i + 1;
            break;
        }
    }
    let (a, b) = groups.split_at(split);
    std::thread::scope(|s| {
        let h = s.spawn(|| b.iter().filter_map(|g| one(g)).collect::<Vec<_>>());
        let mut out: Vec<_> = a.iter().filter_map(|g| one(g)).collect();
        out.extend(h.join().unwrap_or_default());
        out
    })
}

fn hygiene_findings(
    store: &Store,
    keys: &HashMap<i64, KeyInfo>,
    usage: &HashMap<i64, hygiene::Usage>,
    cfg: &DetectConfig,
    now: Millis,
) -> Result<Vec<NewFinding>> {
    let list: Vec<KeyInfo> = keys.values().cloned().collect();
    let mut out = Vec::new();
    for (key_ref, inc) in hygiene::run(&list, usage, cfg, now) {
        if let Some(k) = keys.get(&key_ref) {
            out.push(to_finding(store, k, &inc, now)?);
        }
    }
    Ok(out)
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
    let mut reader = Reader::new();
    let mut events: Vec<Ev> = Vec::new();
    let mut last_event = last_seen;
    {
        let mut stmt = store.conn().prepare_cached(&format!(
            "SELECT {EV_COLUMNS} FROM events WHERE id > ?1 ORDER BY key_ref, time, id"
        ))?;
        let mut rows = stmt.query([last_seen])?;
        while let Some(r) = rows.next()? {
            let e = reader.read(r)?;
            last_event = last_event.max(e.row);
            events.push(e);
        }
    }
    let mut report = DetectReport {
        full: false,
        events: events.len() as u64,
        ..Default::default()
    };
    // Per key: continue from its state, or replay its history when the new events are
    // older than what the state has seen (or there is no state).
    let mut work: Vec<(i64, KeyState, Vec<Ev>)> = Vec::new();
    let mut rebuilt: HashSet<i64> = HashSet::new();
    {
        let mut get_state = store
            .conn()
            .prepare_cached("SELECT state FROM detect_state WHERE key_ref = ?1")?;
        let mut history = store.conn().prepare_cached(&format!(
            "SELECT {EV_COLUMNS} FROM events WHERE key_ref = ?1 ORDER BY time, id"
        ))?;
        for g in events.chunk_by(|a, b| a.key_ref == b.key_ref) {
            let key_ref = g[0].key_ref;
            let saved: Option<KeyState> = get_state
                .query_row([key_ref], |r| r.get::<_, String>(0))
                .optional()?
                .and_then(|s| serde_json::from_str(&s).ok());
            let min_time = g.iter().map(|e| e.time).min().unwrap_or(0);
            match saved {
                Some(st) if st.events > 0 && min_time >= st.last_time => {
                    work.push((key_ref, st, g.to_vec()));
                }
                _ => {
                    let mut all = Vec::new();
                    let mut rows = history.query([key_ref])?;
                    while let Some(r) = rows.next()? {
                        all.push(reader.read(r)?);
                    }
                    report.events += all.len().saturating_sub(g.len()) as u64;
                    rebuilt.insert(key_ref);
                    work.push((key_ref, KeyState::default(), all));
                }
            }
        }
    }
    let strings = reader.strings;
    let mut produced = Vec::new();
    let mut states = Vec::with_capacity(work.len());
    for (key_ref, mut st, evs) in work {
        if let Some(k) = keys.get(&key_ref) {
            for inc in run_key(&mut st, &evs, k, &strings, cfg, now_ms) {
                produced.push(to_finding(store, k, &inc, now_ms)?);
            }
        }
        states.push((key_ref, st));
    }
    report.keys = states.len();
    let mut usage = load_usage(store)?;
    for (key_ref, st) in &states {
        usage.insert(*key_ref, usage_of(st));
    }
    produced.extend(hygiene_findings(store, &keys, &usage, cfg, now_ms)?);
    write_findings(
        store,
        produced,
        Scope::HygieneAnd(&rebuilt),
        now_ms,
        &mut report,
    )?;
    report.state_bytes = save_states(store, &states, false, last_event, cfg, now_ms)?;
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
    let saved: Option<String> = store
        .conn()
        .query_row(
            "SELECT state FROM detect_state WHERE key_ref = ?1",
            [key_ref],
            |r| r.get(0),
        )
        .optional()?;
    Ok(saved
        .and_then(|s| serde_json::from_str::<KeyState>(&s).ok())
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
