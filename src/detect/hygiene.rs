//! Hygiene rules: key-management practice, judged from the key list and what the
//! key's events say about its use. They depend on the clock (ages, expiry), so every
//! detection run evaluates them for every key; that costs O(keys), not O(events).

use super::anomaly::KeyInfo;
use super::baseline::{Incident, DAY};
use super::DetectConfig;
use crate::model::{from_millis, KeyStatus, Millis};
use std::collections::HashMap;

/// How many keys a `duplicate_key` finding names (the newest first).
const DUPLICATES_NAMED: usize = 5;

/// What the events say about a key's use (from its saved state).
#[derive(Debug, Clone, Default)]
pub(crate) struct Usage {
    /// Last event of any kind.
    pub last_time: Option<Millis>,
    /// Scope → last successful use.
    pub scopes: Vec<(String, Millis)>,
}

fn date(t: Millis) -> String {
    from_millis(t).format("%Y-%m-%d").to_string()
}

fn inc(
    rule: &str,
    subject: String,
    sev: u8,
    title: String,
    explanation: String,
    now: Millis,
) -> Incident {
    Incident {
        rule: rule.into(),
        subject,
        start: now,
        last: now,
        events: 0,
        rows: Vec::new(),
        title,
        explanation,
        severity: sev,
        peak: 0,
        sum: 0,
    }
}

/// Runs every hygiene rule over `keys`; returns (key_ref, incident) pairs.
pub(crate) fn run(
    keys: &[&KeyInfo],
    usage: &HashMap<i64, Usage>,
    cfg: &DetectConfig,
    now: Millis,
) -> Vec<(i64, Incident)> {
    let mut out = Vec::new();
    let prod = |k: &KeyInfo| {
        matches!(
            k.environment
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("prod" | "production" | "live")
        )
    };
    for &k in keys
        .iter()
        .filter(|k| k.listed && k.status == KeyStatus::Active)
    {
        let none = Usage::default();
        let u = usage.get(&k.key_ref).unwrap_or(&none);
        // Rotation policy.
        if let Some(c) = k.created {
            let age = (now - c) / DAY;
            if age > cfg.rotation_days as i64 {
                // Age alone is never urgent beside live misuse: low, medium when the
                // key is more than twice past the policy (docs/detections.md).
                let sev = if age > 2 * cfg.rotation_days as i64 {
                    1
                } else {
                    0
                };
                out.push((
                    k.key_ref,
                    inc(
                        "rotation_overdue",
                        String::new(),
                        sev,
                        format!("Key is {age} days old"),
                        format!(
                            "Created {} ({age} days ago); the rotation policy is {} days. Rotate it: keyaudit rotate {}.",
                            date(c),
                            cfg.rotation_days,
                            k.id
                        ),
                        now,
                    ),
                ));
            }
        }
        // Active but unused.
        let last = match (k.last_used, u.last_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let unused_for = match (last, k.created) {
            (Some(l), _) => Some(((now - l) / DAY, Some(l))),
            (None, Some(c)) => Some(((now - c) / DAY, None)),
            (None, None) => None,
        };
        if let Some((days, when)) = unused_for {
            if days >= cfg.unused_days as i64 {
                let what = match when {
                    Some(l) => format!("Last used {} ({days} days ago)", date(l)),
                    None => format!("Never used since it was created {days} days ago"),
                };
                out.push((
                    k.key_ref,
                    inc(
                        "unused_key",
                        String::new(),
                        if prod(k) { 1 } else { 0 },
                        format!("Active key unused for {days} days"),
                        format!(
                            "{what}; an unused active key is risk without benefit (threshold {} days). Disable it, and revoke it if nobody objects.",
                            cfg.unused_days
                        ),
                        now,
                    ),
                ));
            }
        }
        // Expiry.
        match k.expires {
            None if cfg.require_expiry => out.push((
                k.key_ref,
                inc(
                    "no_expiry",
                    String::new(),
                    0,
                    "Key never expires".into(),
                    format!(
                        "Key {} has no expiry date, so a leaked copy works forever. Give it one no later than the rotation policy ({} days).",
                        k.id, cfg.rotation_days
                    ),
                    now,
                ),
            )),
            Some(x) if x <= now => out.push((
                k.key_ref,
                inc(
                    "expiring_soon",
                    String::new(),
                    1,
                    "Key past its expiry is still active".into(),
                    format!(
                        "It expired {} ({} days ago) but the provider still lists it active. Revoke it.",
                        date(x),
                        (now - x) / DAY
                    ),
                    now,
                ),
            )),
            Some(x) if x - now <= cfg.expiring_days as i64 * DAY => {
                let days = (x - now) / DAY;
                out.push((
                    k.key_ref,
                    inc(
                        "expiring_soon",
                        String::new(),
                        if days <= 3 { 1 } else { 0 },
                        format!("Key expires in {days} days"),
                        format!(
                            "It expires {} (in {days} days, threshold {}); rotate it before then so {} is not cut off.",
                            date(x),
                            cfg.expiring_days,
                            if k.owner.is_empty() { "its client" } else { &k.owner }
                        ),
                        now,
                    ),
                ));
            }
            _ => {}
        }
        // Least privilege.
        let window = cfg.scope_window_days as i64 * DAY;
        let since = now - window;
        let used: Vec<&str> = u
            .scopes
            .iter()
            .filter(|(_, t)| *t >= since)
            .map(|(s, _)| s.as_str())
            .collect();
        if k.created.is_some_and(|c| c <= since) && !used.is_empty() {
            let unused: Vec<&str> = k
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| !used.contains(s))
                .collect();
            if !unused.is_empty() {
                out.push((
                    k.key_ref,
                    inc(
                        "excess_scopes",
                        String::new(),
                        1,
                        format!("{} granted scope{} never used", unused.len(), if unused.len() == 1 { "" } else { "s" }),
                        format!(
                            "Granted {} but in the last {} days used only {}. Remove {} (least privilege).",
                            k.scopes.join(", "),
                            cfg.scope_window_days,
                            used.join(", "),
                            unused.join(", ")
                        ),
                        now,
                    ),
                ));
            }
        }
    }
    // Several active keys for the same owner, purpose and environment.
    let mut groups: HashMap<(&str, &str, &str, &str), Vec<&KeyInfo>> = HashMap::new();
    for &k in keys
        .iter()
        .filter(|k| k.listed && k.status == KeyStatus::Active)
    {
        let (Some(p), false) = (k.purpose.as_deref(), k.owner.is_empty()) else {
            continue;
        };
        if p.is_empty() {
            continue;
        }
        groups
            .entry((
                k.provider.as_str(),
                k.owner.as_str(),
                p,
                k.environment.as_deref().unwrap_or(""),
            ))
            .or_default()
            .push(k);
    }
    for ((_, owner, purpose, env), mut ks) in groups {
        if ks.len() < 2 {
            continue;
        }
        ks.sort_by_key(|k| (k.created.unwrap_or(0), k.id.clone()));
        let newest = ks[ks.len() - 1];
        // The newest keys by name, and how many more: each of the group's findings holds
        // this text, so a list of every key would grow with the square of the group.
        let mut list: Vec<String> = ks
            .iter()
            .rev()
            .take(DUPLICATES_NAMED)
            .map(|k| {
                format!(
                    "{} (created {})",
                    k.id,
                    k.created.map(date).unwrap_or_else(|| "?".into())
                )
            })
            .collect();
        if ks.len() > DUPLICATES_NAMED {
            list.push(format!("and {} older", ks.len() - DUPLICATES_NAMED));
        }
        for k in &ks[..ks.len() - 1] {
            out.push((
                k.key_ref,
                inc(
                    "duplicate_key",
                    newest.id.clone(),
                    1,
                    format!("{} active keys for {owner} {purpose}", ks.len()),
                    format!(
                        "{owner} holds {} active {}keys for {purpose}: {}. Move its traffic to {} and revoke the older ones.",
                        ks.len(),
                        if env.is_empty() { String::new() } else { format!("{env} ") },
                        list.join(", "),
                        newest.id
                    ),
                    now,
                ),
            ));
        }
    }
    out
}
