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
pub mod exposure;
mod hygiene;
mod read;
mod run;
pub mod team;

pub use baseline::BaselineStatus;
pub use config::DetectConfig;
pub use run::{detect_full, detect_incremental};

use crate::model::{Category, Finding, FindingStatus, Severity};
use crate::store::{Store, StoreError};
use baseline::KeyState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;

/// Why detection failed.
#[derive(Debug, Error)]
pub enum DetectError {
    /// The cache refused a read or a write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The team store refused a read (detection over a team's copy of a source).
    #[error(transparent)]
    Team(#[from] crate::store::shared::SharedError),
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
        id: "schedule_break",
        category: Category::Anomaly,
        summary: "activity off the schedule of a cron-like key",
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

/// The category of a rule id (`sigma:` ids are Sigma rules; anomaly for unknown ids).
pub fn category_of(rule: &str) -> Category {
    if rule.starts_with("sigma:") {
        return Category::Sigma;
    }
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

/// Attaches an exposure finding (key material found in a file, a paste, a repository)
/// to a cached key. Critical, open; the same title on the same key is one finding. Its
/// `first_seen` is the exposure time `since` (a commit's time, a file's modification
/// time): the TUI shows the key's events from then on.
pub fn raise_exposure(
    store: &Store,
    provider: &str,
    key_id: &str,
    since: DateTime<Utc>,
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
        first_seen: since.min(now),
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
    Ok(baseline_of(store.detect_state(key_ref)?.as_deref(), cfg))
}

/// The baseline status a saved detection state (`KeyState::encode`, wherever it was
/// read) gives.
pub fn baseline_of(saved: Option<&[u8]>, cfg: &DetectConfig) -> BaselineStatus {
    saved
        .and_then(KeyState::decode)
        .map_or(BaselineStatus::NoHistory, |st| st.status(cfg))
}

/// The status an operator sees now: a suppression whose end date has passed is open.
pub fn effective_status(f: &Finding, now: DateTime<Utc>) -> FindingStatus {
    match (f.status, f.suppressed_until) {
        (FindingStatus::Suppressed, Some(u)) if u <= now => FindingStatus::Open,
        (s, _) => s,
    }
}
