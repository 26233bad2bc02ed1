//! Running the rules: a full replay or an incremental run over the events after the
//! checkpoint, the per-key analysis (on two threads when there is enough work), and the
//! findings the results become.

use super::anomaly::{self, Cx, Ev, Interner, KeyInfo};
use super::baseline::{Incident, KeyState};
use super::read::{load_keys, load_states, read_events, Grouped, Source};
use super::{category_of, finding_id, hygiene, DetectConfig, DetectReport, Result};
use crate::model::{
    from_millis, to_millis, Category, Finding, FindingStatus, KeyStatus, Millis, Severity,
};
use crate::store::detect_state::{NewFinding, ResolveScope, RunSave, StateRow};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Prints phase timings to stderr when `KEYAUDIT_DETECT_TIMING` is set (benchmarks).
pub(super) struct Phases {
    on: bool,
    at: Instant,
}

impl Phases {
    pub(super) fn new() -> Phases {
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
        finding: Finding {
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
        stopped_at: None,
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

/// What a run reads: the cache's own events, or the team's copy of one source.
#[derive(Clone, Copy)]
pub(super) enum Over<'a> {
    /// The cache: its events, states and checkpoint.
    Cache,
    /// One source's copy in the team store: its events and states are read there, and
    /// only the findings and states of its keys (`keys`) are written; the cache's
    /// checkpoint is left alone.
    Copy {
        src: &'a dyn Source,
        keys: &'a HashSet<i64>,
    },
}

/// How a run's results are saved.
struct Saving<'a> {
    /// Which findings not produced again are resolved.
    scope: ResolveScope<'a>,
    /// A full run: the saved states are replaced.
    full: bool,
    /// The highest event row analysed.
    last_event: i64,
}

/// Turns results into findings (the evidence looked up where `over` reads) and writes
/// them with the states.
#[allow(clippy::too_many_arguments)]
fn finish_run(
    store: &mut Store,
    over: Over<'_>,
    keys: &HashMap<i64, KeyInfo>,
    mut done: Vec<Done>,
    mut usage: HashMap<i64, hygiene::Usage>,
    saving: Saving<'_>,
    cfg: &DetectConfig,
    now: Millis,
    report: &mut DetectReport,
    ph: &mut Phases,
) -> Result<()> {
    for d in &mut done {
        usage.insert(d.key_ref, std::mem::take(&mut d.usage));
    }
    report.keys = done.len();
    let produced = {
        let src: &dyn Source = match over {
            Over::Cache => &*store,
            Over::Copy { src, .. } => src,
        };
        let anomalies = || -> Result<Vec<NewFinding>> {
            let rows: Vec<i64> = done
                .iter()
                .filter(|d| keys.contains_key(&d.key_ref))
                .flat_map(|d| d.incidents.iter().flat_map(|inc| inc.rows.iter().copied()))
                .collect();
            let ext_ids = src.ext_ids(rows)?;
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
        if threads >= 2 && keys.len() >= 256 {
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
        }
    };
    ph.mark("findings");
    // Findings, states and checkpoint in one transaction: a run is saved whole or not
    // at all.
    let states: Vec<StateRow<'_>> = done
        .iter()
        .map(|d| StateRow {
            key_ref: d.key_ref,
            last_time: d.last_time,
            scopes: &d.scopes_json,
            state: &d.state,
        })
        .collect();
    let fingerprint = cfg.fingerprint();
    let (checkpoint, within) = match over {
        Over::Cache => (Some(saving.last_event), None),
        Over::Copy { keys, .. } => (None, Some(keys)),
    };
    let written = store.save_detection(
        produced,
        &states,
        RunSave {
            scope: saving.scope,
            replace_all: saving.full,
            last_event: checkpoint,
            within,
            config: &fingerprint,
            now,
        },
        &mut |phase| ph.mark(phase),
    )?;
    report.opened = written.opened;
    report.updated = written.updated;
    report.resolved = written.resolved;
    report.state_bytes = written.state_bytes;
    ph.mark("commit");
    Ok(())
}

/// Runs every rule over the whole cache and replaces the saved baselines.
pub fn detect_full(
    store: &mut Store,
    cfg: &DetectConfig,
    now: DateTime<Utc>,
) -> Result<DetectReport> {
    let timing = (Instant::now(), Phases::new());
    let g = match store.event_row_bounds()? {
        Some((lo, hi)) => read_events(store, lo, hi)?,
        None => Grouped::new(),
    };
    Ok(replay(store, Over::Cache, g, cfg, now, timing)?.0)
}

/// Runs every rule over the events `g` (all of those `over` reads, just read since
/// `timing` started) and replaces the saved baselines; returns the report and the last
/// event row analysed.
pub(super) fn replay(
    store: &mut Store,
    over: Over<'_>,
    g: Grouped,
    cfg: &DetectConfig,
    now: DateTime<Utc>,
    timing: (Instant, Phases),
) -> Result<(DetectReport, i64)> {
    let (started, mut ph) = timing;
    ph.mark("read");
    let now_ms = to_millis(now);
    let keys = load_keys(store, over)?;
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
    let done = analyse(work, &keys, &g.reader.strings, cfg, now_ms);
    ph.mark("analyse");
    let saving = Saving {
        scope: ResolveScope::All,
        full: true,
        last_event: g.last_event,
    };
    finish_run(
        store,
        over,
        &keys,
        done,
        HashMap::new(),
        saving,
        cfg,
        now_ms,
        &mut report,
        &mut ph,
    )?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(?report, "detection (full)");
    Ok((report, g.last_event))
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
    let last_seen = match store.detect_checkpoint()? {
        Some(cp) if cp.config == cfg.fingerprint() => cp.last_event,
        _ => return detect_full(store, cfg, now),
    };
    Ok(go_on(store, Over::Cache, last_seen, cfg, now)?.0)
}

/// Runs the rules over the events `over` reads past row `last_seen`, each key going on
/// from its saved state (or replaying its history when the new events are older than
/// what the state has seen), and re-evaluates hygiene; returns the report and the last
/// event row analysed.
pub(super) fn go_on(
    store: &mut Store,
    over: Over<'_>,
    last_seen: i64,
    cfg: &DetectConfig,
    now: DateTime<Utc>,
) -> Result<(DetectReport, i64)> {
    let started = Instant::now();
    let mut ph = Phases::new();
    let now_ms = to_millis(now);
    let keys = load_keys(store, over)?;
    let cache: &Store = store;
    let src: &dyn Source = match over {
        Over::Cache => cache,
        Over::Copy { src, .. } => src,
    };
    let mut g = Grouped::new();
    src.events_after(last_seen, &mut |e| g.push(e))?;
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
    let (mut saved, usage) = load_states(src, &g.by_key)?;
    {
        let reader = &mut g.reader;
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
                    src.key_history(key_ref, &mut |e| all.push(reader.read(e)))?;
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
    }
    ph.mark("load states");
    let done = analyse(work, &keys, &g.reader.strings, cfg, now_ms);
    ph.mark("analyse");
    let last_event = g.last_event.max(last_seen);
    let saving = Saving {
        scope: ResolveScope::HygieneAnd(&rebuilt),
        full: false,
        last_event,
    };
    finish_run(
        store,
        over,
        &keys,
        done,
        usage,
        saving,
        cfg,
        now_ms,
        &mut report,
        &mut ph,
    )?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(?report, "detection (incremental)");
    Ok((report, last_event))
}
