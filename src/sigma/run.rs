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
    evidence: Vec<String>,
}

fn time(ms: Millis) -> String {
    from_millis(ms).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Runs `set` over the events after the watermark and saves the findings and the new
/// watermark. With no rules nothing is read or saved.
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
    let mut groups: HashMap<(usize, i64, i64), Group> = HashMap::new();
    store.sigma_events(after, &mut |e| {
        last_event = last_event.max(e.row);
        report.events += 1;
        if e.raw.is_empty() {
            return;
        }
        let rec = Record::new(e.raw);
        for (i, rule) in set.rules.iter().enumerate() {
            if !rule.matches(&rec) {
                continue;
            }
            report.matches += 1;
            let g = groups
                .entry((i, e.key_ref, e.time.div_euclid(window)))
                .or_insert_with(|| Group {
                    provider: e.provider.to_string(),
                    key_id: e.key_id.to_string(),
                    first: e.time,
                    last: e.time,
                    evidence: Vec::new(),
                });
            g.first = g.first.min(e.time);
            g.last = g.last.max(e.time);
            if g.evidence.len() < cap {
                g.evidence.push(e.event_id.to_string());
            }
        }
    })?;
    let mut found: Vec<SigmaFinding> = groups
        .into_iter()
        .map(|((i, key_ref, slot), g)| {
            let rule = &set.rules[i];
            let start = slot * window;
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
                    evidence: g.evidence,
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
