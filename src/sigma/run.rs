//! A Sigma run: the events after the watermark (every event when the rule set changed),
//! each rule against each raw record, matches grouped per rule, key and time window
//! into findings, saved with the new watermark.

use super::{Record, RuleSet, SigmaConfig};
use crate::detect::finding_id;
use crate::model::{from_millis, Category, Finding, FindingStatus, Millis};
use crate::store::sigma::{SigmaCheckpoint, SigmaFinding};
use crate::store::{Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// What one Sigma run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SigmaReport {
    /// Rules loaded and run.
    pub rules: usize,
    /// Rule files that could not be used: `path: reason`.
    pub rule_errors: Vec<String>,
    /// True when every cached event was evaluated (first run or changed rules).
    pub full: bool,
    /// Events evaluated.
    pub events: u64,
    /// (rule, event) matches.
    pub matches: u64,
    /// Findings that did not exist before.
    pub opened: usize,
    /// Existing findings that got new evidence.
    pub updated: usize,
    /// Milliseconds the run took.
    pub elapsed_ms: f64,
}

/// Matches of one rule on one key in one window.
struct Group {
    provider: String,
    key_id: String,
    first: Millis,
    last: Millis,
    /// (time, event id) of the matches kept, at most the cap once sorted.
    evidence: Vec<(Millis, String)>,
}

/// An event copied out of the read, for an evaluating thread.
struct Owned {
    key_ref: i64,
    provider: String,
    key_id: String,
    event_id: String,
    time: Millis,
    raw: String,
}

type Groups = HashMap<(usize, i64, i64), Group>;

/// Events handed to an evaluating thread at a time.
const CHUNK: usize = 2048;

fn time(ms: Millis) -> String {
    from_millis(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Evaluates every rule on a chunk of events, adding the matches to `groups`.
fn evaluate(set: &RuleSet, chunk: &[Owned], window: i64, cap: usize, groups: &mut Groups) -> u64 {
    let mut matches = 0;
    for e in chunk {
        let rec = Record::new(&e.raw);
        for (i, rule) in set.rules.iter().enumerate() {
            if !rule.matches(&rec) {
                continue;
            }
            matches += 1;
            let g = groups
                .entry((i, e.key_ref, e.time.div_euclid(window)))
                .or_insert_with(|| Group {
                    provider: e.provider.clone(),
                    key_id: e.key_id.clone(),
                    first: e.time,
                    last: e.time,
                    evidence: Vec::new(),
                });
            g.first = g.first.min(e.time);
            g.last = g.last.max(e.time);
            // Each thread keeps up to the cap; the earliest are kept when merged.
            if g.evidence.len() < cap {
                g.evidence.push((e.time, e.event_id.clone()));
            }
        }
    }
    matches
}

fn merge(into: &mut Groups, from: Groups) {
    for (k, g) in from {
        match into.get_mut(&k) {
            Some(x) => {
                x.first = x.first.min(g.first);
                x.last = x.last.max(g.last);
                x.evidence.extend(g.evidence);
            }
            None => {
                into.insert(k, g);
            }
        }
    }
}

/// Runs `set` over the events after the watermark and saves the findings and the new
/// watermark. With no rules nothing is read or saved. The store's thread reads the
/// events (and decodes their blocks) while other threads evaluate the rules.
pub fn run(
    store: &mut Store,
    set: &RuleSet,
    cfg: &SigmaConfig,
    now: DateTime<Utc>,
) -> Result<SigmaReport, StoreError> {
    let started = Instant::now();
    let mut report = SigmaReport {
        rules: set.rules.len(),
        rule_errors: set.errors.iter().map(ToString::to_string).collect(),
        ..Default::default()
    };
    if set.rules.is_empty() {
        return Ok(report);
    }
    let after = match store.sigma_checkpoint()? {
        Some(cp) if cp.rules == set.fingerprint => cp.last_event,
        _ => {
            report.full = true;
            0
        }
    };
    let window = i64::from(cfg.window_hours.max(1)) * 3_600_000;
    let cap = cfg.evidence_cap.max(1);
    let mut last_event = after;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = threads.clamp(1, 8);
    let mut groups: Groups = HashMap::new();
    let mut events = 0u64;
    let mut matches = 0u64;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Owned>>(workers * 2);
    let rx = std::sync::Mutex::new(rx);
    let read: Result<(), StoreError> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = &rx;
                s.spawn(move || {
                    let mut mine = Groups::new();
                    let mut n = 0;
                    loop {
                        // A poisoned lock means another evaluator panicked; stop too.
                        let next = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => break,
                        };
                        match next {
                            Ok(chunk) => n += evaluate(set, &chunk, window, cap, &mut mine),
                            Err(_) => break,
                        }
                    }
                    (mine, n)
                })
            })
            .collect();
        let mut chunk = Vec::with_capacity(CHUNK);
        let res = store.sigma_events(after, &mut |e| {
            last_event = last_event.max(e.row);
            events += 1;
            if e.raw.is_empty() {
                return;
            }
            chunk.push(Owned {
                key_ref: e.key_ref,
                provider: e.provider.to_string(),
                key_id: e.key_id.to_string(),
                event_id: e.event_id.to_string(),
                time: e.time,
                raw: e.raw.to_string(),
            });
            if chunk.len() == CHUNK {
                // The evaluators only stop when this sender is dropped.
                let _ = tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
            }
        });
        if !chunk.is_empty() {
            let _ = tx.send(chunk);
        }
        drop(tx);
        for h in handles {
            // A panic in an evaluator is a bug: the watermark must not move past events
            // that were never evaluated.
            let (mine, n) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            matches += n;
            merge(&mut groups, mine);
        }
        res
    });
    read?;
    report.events = events;
    report.matches = matches;
    let mut found: Vec<SigmaFinding> = groups
        .into_iter()
        .map(|((i, key_ref, slot), g)| {
            let rule = &set.rules[i];
            let start = slot * window;
            let mut ev = g.evidence;
            ev.sort();
            ev.truncate(cap);
            let evidence: Vec<String> = ev.into_iter().map(|(_, id)| id).collect();
            let rule_id = format!("sigma:{}", rule.id);
            let mut explanation = format!(
                "Sigma rule \"{}\" (id {}, level {}) matched events of this key in the {} h \
                 window from {} UTC.",
                rule.title,
                rule.id,
                rule.level,
                cfg.window_hours,
                time(start)
            );
            if let Some(d) = &rule.description {
                explanation.push(' ');
                explanation.push_str(d.trim());
            }
            if !rule.tags.is_empty() {
                explanation.push_str(&format!(" Tags: {}.", rule.tags.join(", ")));
            }
            explanation.push_str(&format!(" Rule file: {}.", rule.path.display()));
            SigmaFinding {
                key_ref,
                finding: Finding {
                    id: finding_id(&rule_id, &g.provider, &g.key_id, &start.to_string()),
                    rule: rule_id,
                    category: Category::Sigma,
                    severity: rule.severity,
                    provider: g.provider,
                    key_id: g.key_id,
                    title: rule.title.clone(),
                    explanation,
                    evidence,
                    first_seen: from_millis(g.first),
                    last_seen: from_millis(g.last),
                    status: FindingStatus::Open,
                    note: None,
                    suppressed_until: None,
                },
            }
        })
        .collect();
    found.sort_by(|a, b| a.finding.id.cmp(&b.finding.id));
    let written = store.save_sigma(
        &found,
        &SigmaCheckpoint {
            last_event,
            rules: set.fingerprint.clone(),
        },
        cap,
        crate::model::to_millis(now),
    )?;
    report.opened = written.opened;
    report.updated = written.updated;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(?report, "sigma rules");
    Ok(report)
}
