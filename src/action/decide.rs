//! Operators' decisions on findings (acknowledge, suppress), from the CLI and the TUI
//! alike: recorded with their journal entry where this configuration shares them (the
//! cache for one person, the team store for a team), and the team's decisions applied
//! to this cache's findings.

use crate::model::FindingStatus;
use crate::store::journal::NewEntry;
use crate::store::shared::{Decision, Local, SharedError};
use crate::store::Cache;
use chrono::{DateTime, Utc};

/// A decision on one finding of this cache.
#[derive(Debug, Clone)]
pub struct FindingDecision {
    /// The finding's full id.
    pub id: String,
    /// `provider/key_id`.
    pub target: String,
    /// `acknowledged` or `suppressed`.
    pub status: FindingStatus,
    /// Why (required by both the CLI and the TUI).
    pub note: String,
    /// A suppression's end.
    pub until: Option<DateTime<Utc>>,
    /// What the journal entry adds (the rule, the severity, the status before).
    pub params: serde_json::Value,
}

/// Records `d` with its journal entry (`finding.ack` or `finding.suppress`) and sets the
/// finding's status in this cache. False when the cache has no such finding. With a team
/// store, a decision it cannot record is not made here either.
pub async fn decide(cache: &Cache, d: &FindingDecision) -> Result<bool, SharedError> {
    let note = d.note.trim();
    let decision = Decision::new(&d.id, &d.target, d.status, Some(note), d.until);
    let mut params = serde_json::json!({
        "finding": d.id,
        "until": d.until.map(crate::model::rfc3339),
    });
    if let (Some(p), Some(extra)) = (params.as_object_mut(), d.params.as_object()) {
        p.extend(extra.clone());
    }
    let entry = NewEntry {
        action: if d.status == FindingStatus::Suppressed {
            "finding.suppress"
        } else {
            "finding.ack"
        },
        target: &d.target,
        reason: Some(note),
        params,
        result: "ok",
    };
    let shared = cache.shared();
    let recorded = shared.decide(&decision, &entry).await?;
    if shared.is_team() {
        apply(cache, vec![decision]).await?;
    }
    Ok(recorded)
}

/// Reads the team's decisions past row `after` and applies them to this cache's
/// findings. Returns the last row read (`after` when there was none) and the decisions
/// that changed a finding here. Nothing to do for one person.
pub async fn pull(cache: &Cache, after: i64) -> Result<(i64, Vec<Decision>), SharedError> {
    let shared = cache.shared();
    if !shared.is_team() {
        return Ok((after, Vec::new()));
    }
    let decisions = shared.decisions_since(after).await?;
    let last = decisions.last().map_or(after, |d| d.id);
    Ok((last, apply(cache, decisions).await?))
}

/// With a team store, applies all the team's decisions to this cache (after a sync or a
/// detection opened findings the team may have decided already); when that fails it is
/// said on standard error and the cache's own statuses stand.
pub async fn pull_or_warn(cache: &Cache) {
    if cache.team.is_none() {
        return;
    }
    if let Err(e) = pull(cache, 0).await {
        crate::tell!(
            "keyaudit: warning: the team's decisions on findings are not applied ({e}); \
             the statuses shown are this cache's"
        );
    }
}

async fn apply(cache: &Cache, decisions: Vec<Decision>) -> Result<Vec<Decision>, SharedError> {
    if decisions.is_empty() {
        return Ok(Vec::new());
    }
    Local::new(cache.clone())
        .with(move |s| s.apply_decisions(&decisions))
        .await
}
