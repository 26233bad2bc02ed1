//! A Sigma run: the events after the watermark (every event when the rule set changed),
//! each rule against each raw record, matches grouped per rule, key and time window
//! into findings, saved with the new watermark.

use super::{Engine, RuleSet, Scratch, SigmaConfig};
use crate::detect::finding_id;
use crate::model::{from_millis, Category, Finding, FindingStatus, Millis};
use crate::store::sigma::{RawRef, SigmaCheckpoint, SigmaFinding};
use crate::store::{RawBlock, Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::borrow::Cow;
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
    /// Events that matched at least one rule.
    pub matched_events: u64,
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
    first: Millis,
    last: Millis,
    /// (time, event id) of the matches kept, at most the cap once sorted.
    evidence: Vec<(Millis, String)>,
}

/// Groups by (rule, key handle, window).
type Groups = HashMap<(usize, i64, i64), Group>;

/// Where the record of an event of a [`Unit`] is.
enum Raw {
    /// Its place in the unit's block.
    At(u32),
    /// A range of the unit's text.
    Text(u32, u32),
}

/// An event of a [`Unit`].
struct Item {
    row: i64,
    key_ref: i64,
    time: Millis,
    /// The event's provider id: a range of the unit's text.
    id: (u32, u32),
    raw: Raw,
}

/// Events handed to an evaluating thread together: those of one raw record block (the
/// thread decompresses it), or events with records of their own. Their ids and own
/// records are copied into one text, so reading an event allocates nothing.
#[derive(Default)]
struct Unit {
    /// The block's id and stored data.
    block: Option<(i64, Vec<u8>)>,
    text: String,
    items: Vec<Item>,
}

impl Unit {
    fn add(&mut self, text: &str) -> (u32, u32) {
        let from = self.text.len() as u32;
        self.text.push_str(text);
        (from, self.text.len() as u32)
    }
}

/// Events handed to an evaluating thread at a time (about).
const CHUNK: usize = 2048;

fn time(ms: Millis) -> String {
    from_millis(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What one evaluating thread keeps between batches.
struct Evaluator<'e> {
    engine: &'e Engine<'e>,
    window: i64,
    cap: usize,
    groups: Groups,
    matched_events: u64,
    matches: u64,
    scratch: Scratch,
    hits: Vec<usize>,
    /// Events whose block record is empty: their own fields are read by the store's
    /// thread afterwards, as for events without a record.
    empty: Vec<(i64, i64, Millis, String)>,
}

impl<'e> Evaluator<'e> {
    fn new(engine: &'e Engine<'e>, window: i64, cap: usize) -> Evaluator<'e> {
        Evaluator {
            engine,
            window,
            cap,
            groups: Groups::new(),
            matched_events: 0,
            matches: 0,
            scratch: Scratch::default(),
            hits: Vec::new(),
            empty: Vec::new(),
        }
    }

    /// Adds the matches of one record to the groups.
    fn record(&mut self, raw: &str, key_ref: i64, time: Millis, event_id: &str) {
        self.engine.matching(raw, &mut self.scratch, &mut self.hits);
        self.matched_events += u64::from(!self.hits.is_empty());
        for &i in &self.hits {
            self.matches += 1;
            let g = self
                .groups
                .entry((i, key_ref, time.div_euclid(self.window)))
                .or_insert_with(|| Group {
                    first: time,
                    last: time,
                    evidence: Vec::new(),
                });
            g.first = g.first.min(time);
            g.last = g.last.max(time);
            // Each thread keeps up to the cap; the earliest are kept when merged.
            if g.evidence.len() < self.cap {
                g.evidence.push((time, event_id.to_string()));
            }
        }
    }

    /// Evaluates every event of a batch of units.
    fn batch(&mut self, batch: &[Unit]) -> Result<(), StoreError> {
        for unit in batch {
            let block = match &unit.block {
                Some((id, data)) => {
                    Some(RawBlock::decode(data).map_err(|why| StoreError::Corrupt {
                        what: "a raw record block",
                        why: format!("block {id}: {why}"),
                    })?)
                }
                None => None,
            };
            for it in &unit.items {
                let raw = match it.raw {
                    Raw::At(at) => block.as_ref().and_then(|b| b.text(at)).ok_or_else(|| {
                        StoreError::Corrupt {
                            what: "a raw record block",
                            why: format!(
                                "block {} has no record {at}",
                                unit.block.as_ref().map_or(0, |b| b.0)
                            ),
                        }
                    })?,
                    Raw::Text(a, b) => Cow::Borrowed(&unit.text[a as usize..b as usize]),
                };
                let id = &unit.text[it.id.0 as usize..it.id.1 as usize];
                if raw.is_empty() {
                    self.empty
                        .push((it.row, it.key_ref, it.time, id.to_string()));
                    continue;
                }
                self.record(&raw, it.key_ref, it.time, id);
            }
        }
        Ok(())
    }
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
    let engine = Engine::new(set);
    let mut last_event = after;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = threads.clamp(1, 8);
    let mut groups: Groups = HashMap::new();
    let mut events = 0u64;
    let mut matches = 0u64;
    let mut matched_events = 0u64;
    let mut empty = Vec::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Unit>>(workers * 2);
    let rx = std::sync::Mutex::new(rx);
    let reader: &Store = store;
    let read: Result<(), StoreError> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (rx, engine) = (&rx, &engine);
                s.spawn(move || {
                    let mut ev = Evaluator::new(engine, window, cap);
                    let mut failed = None;
                    loop {
                        // A poisoned lock means another evaluator panicked; stop too.
                        let next = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => break,
                        };
                        let Ok(batch) = next else { break };
                        // After an error the batches are still taken, so the reader
                        // never waits on a full channel.
                        if failed.is_none() {
                            failed = ev.batch(&batch).err();
                        }
                    }
                    (ev, failed)
                })
            })
            .collect();
        let mut unit = Unit::default();
        let mut own = Unit::default();
        let mut batch: Vec<Unit> = Vec::new();
        let mut batched = 0;
        let mut flush = |unit: &mut Unit, force: bool| {
            if !unit.items.is_empty() {
                batched += unit.items.len();
                batch.push(std::mem::take(unit));
            }
            if (force || batched >= CHUNK) && !batch.is_empty() {
                // The evaluators only stop when this sender is dropped.
                let _ = tx.send(std::mem::take(&mut batch));
                batched = 0;
            }
        };
        let res = reader.sigma_events(after, &mut |e| {
            last_event = last_event.max(e.row);
            events += 1;
            // An import writes the events of one block in consecutive rows, so a block
            // is read and decompressed once.
            let (into, raw) = match e.raw {
                RawRef::Block { block, at } => {
                    if unit.block.as_ref().map(|b| b.0) != Some(block) {
                        flush(&mut unit, false);
                        unit.block = Some((block, reader.raw_block(block)?));
                    }
                    (&mut unit, Raw::At(at))
                }
                RawRef::Text(t) => {
                    if own.items.len() >= CHUNK {
                        flush(&mut own, false);
                    }
                    let (a, b) = own.add(t);
                    (&mut own, Raw::Text(a, b))
                }
            };
            let id = into.add(e.event_id);
            into.items.push(Item {
                row: e.row,
                key_ref: e.key_ref,
                time: e.time,
                id,
                raw,
            });
            Ok(())
        });
        flush(&mut unit, false);
        flush(&mut own, true);
        drop(tx);
        let mut failed = None;
        for h in handles {
            // A panic in an evaluator is a bug: the watermark must not move past events
            // that were never evaluated.
            let (ev, err) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            matches += ev.matches;
            matched_events += ev.matched_events;
            merge(&mut groups, ev.groups);
            empty.extend(ev.empty);
            failed = failed.or(err);
        }
        match failed {
            Some(e) => Err(e),
            None => res,
        }
    });
    read?;
    if !empty.is_empty() {
        let mut ev = Evaluator::new(&engine, window, cap);
        for (row, key_ref, time, id) in empty {
            let raw = store.sigma_own_record(row)?;
            ev.record(&raw, key_ref, time, &id);
        }
        matches += ev.matches;
        matched_events += ev.matched_events;
        merge(&mut groups, ev.groups);
    }
    report.events = events;
    report.matches = matches;
    report.matched_events = matched_events;
    let mut refs: Vec<i64> = groups.keys().map(|k| k.1).collect();
    refs.sort_unstable();
    refs.dedup();
    let names = store.key_names(&refs)?;
    let mut found: Vec<SigmaFinding> = groups
        .into_iter()
        .filter_map(|((i, key_ref, slot), g)| {
            let (provider, key_id) = names.get(&key_ref)?.clone();
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
            Some(SigmaFinding {
                key_ref,
                finding: Finding {
                    id: finding_id(&rule_id, &provider, &key_id, &start.to_string()),
                    rule: rule_id,
                    category: Category::Sigma,
                    severity: rule.severity,
                    provider,
                    key_id,
                    title: rule.title.clone(),
                    explanation,
                    evidence,
                    first_seen: from_millis(g.first),
                    last_seen: from_millis(g.last),
                    status: FindingStatus::Open,
                    note: None,
                    suppressed_until: None,
                },
            })
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
