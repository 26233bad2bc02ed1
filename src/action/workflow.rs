//! Persisted workflows: each rotation is a state machine in the cache's `workflows`
//! table. The step is recorded before the provider is called and the result after, so a
//! process killed at any point leaves a row that `keyaudit resume` can reconcile with the
//! provider's real state. The secret is never stored here; only where it was sent (the
//! sink spec) and the new key's fingerprint, which lets a resume check the sink.

use crate::model::{from_millis, to_millis, Category, Finding, FindingStatus, Millis, Severity};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The rule id of the finding raised when a rotated key is still used.
pub const ROTATED_KEY_USED: &str = "rotated_key_used";

use crate::model::word_enum as words;

words! {
    /// Where a rotation is. Each step is recorded before its action runs.
    Step {
        /// The workflow exists; nothing was asked of the provider.
        Planned = "planned",
        /// The provider is being asked to rotate (or the call was cut off).
        Rotating = "rotating",
        /// The provider issued the new key; its secret is only in memory.
        Rotated = "rotated",
        /// The secret is being written to the sink.
        Delivering = "delivering",
        /// The sink holds the secret.
        Delivered = "delivered",
        /// The new key is being checked against the provider.
        Verifying = "verifying",
        /// The new key works; the old one is in its grace period.
        Verified = "verified",
        /// The grace period ended; the old key is being revoked.
        Finishing = "finishing",
        /// The rotation is being undone (new key revoked, old key restored).
        RollingBack = "rolling_back",
        /// Nothing left to do.
        Finished = "finished",
    }
}

words! {
    /// The outcome so far.
    State {
        /// In progress, or interrupted: `keyaudit resume` finishes or rolls back.
        Running = "running",
        /// The new key is delivered and works; the old one works until `grace_until`.
        Grace = "grace",
        /// Completed: the old key is revoked.
        Done = "done",
        /// Undone: the new key is revoked, the old key kept.
        RolledBack = "rolled_back",
        /// Stopped with an error that needs an operator (see `error`).
        Failed = "failed",
    }
}

impl State {
    /// True while `keyaudit resume` still has work to do.
    pub fn is_open(self) -> bool {
        matches!(self, State::Running | State::Grace)
    }
}

/// One workflow row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    /// The cache's id of the workflow (`resume ID`).
    pub id: i64,
    /// `rotate`.
    pub kind: String,
    /// The provider's name.
    pub provider: String,
    /// The key the workflow acts on (the old key of a rotation).
    pub key_id: String,
    /// The old key's status when the workflow started (a rollback restores it).
    pub old_status: Option<String>,
    /// The old key's `rotated_to` before this rotation (an earlier rotation's key, which
    /// a rollback must not touch).
    pub prior_successor: Option<String>,
    /// The key a rotation issued, once known.
    pub new_key_id: Option<String>,
    /// Fingerprint of the new secret (never the secret).
    pub new_fingerprint: Option<String>,
    /// Where it is.
    pub step: Step,
    /// The outcome so far.
    pub state: State,
    /// Where the secret goes (`file:PATH`, ...); never the secret.
    pub sink: String,
    /// The grace period asked for.
    pub grace_seconds: i64,
    /// When the old key stops working.
    pub grace_until: Option<DateTime<Utc>>,
    /// When the new key was delivered and verified: use of the old key after this is
    /// reported.
    pub switched_at: Option<DateTime<Utc>>,
    /// Why (journaled).
    pub reason: Option<String>,
    /// When the workflow was planned.
    pub created: DateTime<Utc>,
    /// When it was last saved.
    pub updated: DateTime<Utc>,
    /// What went wrong, or why it was rolled back.
    pub error: Option<String>,
}

impl Workflow {
    /// A new rotation of `provider/key_id`, not yet saved.
    pub fn new_rotation(
        provider: &str,
        key_id: &str,
        sink: &str,
        grace_seconds: i64,
        reason: Option<&str>,
    ) -> Workflow {
        let now = Utc::now();
        Workflow {
            id: 0,
            kind: "rotate".into(),
            provider: provider.into(),
            key_id: key_id.into(),
            old_status: None,
            prior_successor: None,
            new_key_id: None,
            new_fingerprint: None,
            step: Step::Planned,
            state: State::Running,
            sink: sink.into(),
            grace_seconds,
            grace_until: None,
            switched_at: None,
            reason: reason.map(str::to_string),
            created: now,
            updated: now,
            error: None,
        }
    }

    /// The journal target of the old key.
    pub fn target(&self) -> String {
        format!("{}/{}", self.provider, self.key_id)
    }
}

const COLUMNS: &str = "id, kind, provider, key_id, old_status, prior_successor, new_key_id, new_fingerprint, step, state, sink,
     grace_seconds, grace_until, switched_at, reason, created, updated, error";

fn row(r: &Row<'_>) -> rusqlite::Result<Workflow> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let step: String = r.get(8)?;
    let state: String = r.get(9)?;
    Ok(Workflow {
        id: r.get(0)?,
        kind: r.get(1)?,
        provider: r.get(2)?,
        key_id: r.get(3)?,
        old_status: r.get(4)?,
        prior_successor: r.get(5)?,
        new_key_id: r.get(6)?,
        new_fingerprint: r.get(7)?,
        step: step.parse().map_err(|e| bad(8, e))?,
        state: state.parse().map_err(|e| bad(9, e))?,
        sink: r.get(10)?,
        grace_seconds: r.get(11)?,
        grace_until: r.get::<_, Option<Millis>>(12)?.map(from_millis),
        switched_at: r.get::<_, Option<Millis>>(13)?.map(from_millis),
        reason: r.get(14)?,
        created: from_millis(r.get(15)?),
        updated: from_millis(r.get(16)?),
        error: r.get(17)?,
    })
}

/// Saves a new workflow and returns its id.
pub fn insert(store: &Store, w: &Workflow) -> Result<i64, StoreError> {
    store.conn().execute(
        "INSERT INTO workflows (kind, provider, key_id, new_key_id, new_fingerprint, step, state,
                                sink, grace_seconds, grace_until, switched_at, reason, created,
                                updated, error, old_status, prior_successor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            w.kind,
            w.provider,
            w.key_id,
            w.new_key_id,
            w.new_fingerprint,
            w.step.as_str(),
            w.state.as_str(),
            w.sink,
            w.grace_seconds,
            w.grace_until.map(to_millis),
            w.switched_at.map(to_millis),
            w.reason,
            to_millis(w.created),
            to_millis(w.updated),
            w.error,
            w.old_status,
            w.prior_successor,
        ],
    )?;
    Ok(store.conn().last_insert_rowid())
}

/// Writes every mutable field of `w` (one statement, so one atomic commit) and stamps
/// `updated`.
pub fn save(store: &Store, w: &Workflow) -> Result<(), StoreError> {
    store.conn().execute(
        "UPDATE workflows SET new_key_id = ?2, new_fingerprint = ?3, step = ?4, state = ?5,
                grace_until = ?6, switched_at = ?7, updated = ?8, error = ?9
         WHERE id = ?1",
        params![
            w.id,
            w.new_key_id,
            w.new_fingerprint,
            w.step.as_str(),
            w.state.as_str(),
            w.grace_until.map(to_millis),
            w.switched_at.map(to_millis),
            to_millis(Utc::now()),
            w.error,
        ],
    )?;
    Ok(())
}

/// One workflow by id.
pub fn get(store: &Store, id: i64) -> Result<Option<Workflow>, StoreError> {
    Ok(store
        .conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM workflows WHERE id = ?1"))?
        .query_row([id], row)
        .optional()?)
}

/// Workflows, oldest first; only the open ones (running or in grace) unless `all`.
pub fn list(store: &Store, all: bool) -> Result<Vec<Workflow>, StoreError> {
    let sql = if all {
        format!("SELECT {COLUMNS} FROM workflows ORDER BY id")
    } else {
        format!("SELECT {COLUMNS} FROM workflows WHERE state IN ('running', 'grace') ORDER BY id")
    };
    let mut stmt = store.conn().prepare_cached(&sql)?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The stable id of the `rotated_key_used` finding of one rotation.
pub fn finding_id(w: &Workflow) -> String {
    let mut h = Sha256::new();
    h.update(format!("{ROTATED_KEY_USED}\n{}\n{}\n{}", w.provider, w.key_id, w.id).as_bytes());
    format!("{ROTATED_KEY_USED}:{}", &hex::encode(h.finalize())[..16])
}

/// Raises (or refreshes) a `rotated_key_used` finding for every rotation whose old key
/// was used after the new key was delivered and verified: the partner has not switched
/// yet, and the old key will stop working when its grace period ends. The switch time is
/// the provider's time of the new key's first use (the verification request) when the
/// cache holds it, else keyaudit's time of the verification, so clock skew between the
/// two machines does not hide or invent uses. Only rotations of
/// `provider` when given. Returns the number of findings written. Called after each sync
/// and by `keyaudit workflows` / `resume`.
pub fn check_rotated_key_use(store: &Store, provider: Option<&str>) -> Result<usize, StoreError> {
    let mut written = 0;
    let rotations: Vec<Workflow> = list(store, true)?
        .into_iter()
        .filter(|w| {
            w.kind == "rotate"
                && w.switched_at.is_some()
                && matches!(w.state, State::Grace | State::Done | State::Running)
                && provider.is_none_or(|p| p == w.provider)
        })
        .collect();
    for w in rotations {
        // The provider's clock, not ours: the switch is when the new key was first used
        // at the provider (its verification), when that event is cached.
        let since = match &w.new_key_id {
            Some(n) => store
                .conn()
                .prepare_cached(
                    "SELECT min(e.time) FROM events e
                     JOIN keys k ON k.id = e.key_ref JOIN providers p ON p.id = k.provider_id
                     WHERE p.name = ?1 AND k.ext_id = ?2",
                )?
                .query_row(params![w.provider, n], |r| r.get::<_, Option<Millis>>(0))?
                .map(from_millis),
            None => None,
        }
        .or(w.switched_at)
        .expect("filtered above");
        let mut stmt = store.conn().prepare_cached(
            "SELECT e.ext_id, e.time, e.source_ip, e.outcome FROM events e
             JOIN keys k ON k.id = e.key_ref JOIN providers p ON p.id = k.provider_id
             WHERE p.name = ?1 AND k.ext_id = ?2 AND e.time > ?3 ORDER BY e.time",
        )?;
        let mut rows = stmt.query(params![w.provider, w.key_id, to_millis(since)])?;
        let mut evidence = Vec::new();
        let (mut first, mut last, mut count, mut denied) = (None, None, 0u64, 0u64);
        let mut last_ip: Option<String> = None;
        while let Some(r) = rows.next()? {
            let t = from_millis(r.get(1)?);
            first.get_or_insert(t);
            last = Some(t);
            count += 1;
            if r.get::<_, i64>(3)? != 0 {
                denied += 1;
            }
            last_ip = r.get(2)?;
            if evidence.len() < 50 {
                evidence.push(r.get::<_, String>(0)?);
            }
        }
        drop(rows);
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        let new = w.new_key_id.as_deref().unwrap_or("?");
        let until = match w.grace_until {
            Some(g) if g > Utc::now() => {
                format!("it stops working at {}", crate::model::rfc3339(g))
            }
            Some(g) => format!(
                "its grace period ended at {}, so these calls now fail",
                crate::model::rfc3339(g)
            ),
            None => "it no longer works".to_string(),
        };
        let explanation = format!(
            "Key {} was rotated to {new} (workflow #{}); the new key was delivered to {} and \
             verified at {} (provider time). The old key was used {count} time(s) since ({denied} refused), \
             last at {} from {}: the partner has not switched, and {until}. Make sure the \
             partner deploys the new key.",
            w.target(),
            w.id,
            w.sink,
            crate::model::rfc3339(since),
            crate::model::rfc3339(last),
            last_ip.as_deref().unwrap_or("an unknown address"),
        );
        store.upsert_finding(&Finding {
            id: finding_id(&w),
            rule: ROTATED_KEY_USED.into(),
            category: Category::Anomaly,
            severity: Severity::High,
            provider: w.provider.clone(),
            key_id: w.key_id.clone(),
            title: format!("rotated key {} still in use", w.key_id),
            explanation,
            evidence,
            first_seen: first,
            last_seen: last,
            status: FindingStatus::Open,
            note: None,
            suppressed_until: None,
        })?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Key, KeySource, Outcome};

    #[test]
    fn workflows_round_trip_and_open_ones_are_listed() {
        let store = Store::open_in_memory().unwrap();
        let mut w = Workflow::new_rotation("tg", "key_1", "file:/tmp/x", 60, Some("yearly"));
        w.id = insert(&store, &w).unwrap();
        w.step = Step::Rotated;
        w.new_key_id = Some("key_2".into());
        save(&store, &w).unwrap();
        let got = get(&store, w.id).unwrap().unwrap();
        assert_eq!(got.step, Step::Rotated);
        assert_eq!(got.new_key_id.as_deref(), Some("key_2"));
        assert_eq!(list(&store, false).unwrap().len(), 1);
        w.state = State::Done;
        save(&store, &w).unwrap();
        assert!(list(&store, false).unwrap().is_empty());
        assert_eq!(list(&store, true).unwrap().len(), 1);
    }

    #[test]
    fn use_of_the_old_key_after_the_switch_is_a_finding() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("tg", "http", None).unwrap();
        let mut k = Key::seen_in_logs("tg", "key_old");
        k.source = KeySource::Provider;
        store.put_key(&k).unwrap();
        let switched = Utc::now() - chrono::Duration::seconds(60);
        let ev = |id: &str, secs: i64| Event {
            provider: "tg".into(),
            id: id.into(),
            time: switched + chrono::Duration::seconds(secs),
            key_id: "key_old".into(),
            principal: None,
            action: "GET /v1/partner/ping".into(),
            scope: None,
            source_ip: Some("198.51.100.7".into()),
            user_agent: None,
            outcome: Outcome::Success,
            status_code: Some(200),
            request_id: None,
            records: None,
            raw: None,
        };
        store
            .insert_events("tg", &[ev("e1", -10), ev("e2", 5)], None)
            .unwrap();
        let mut w = Workflow::new_rotation("tg", "key_old", "stdout", 3600, None);
        w.id = insert(&store, &w).unwrap();
        assert_eq!(check_rotated_key_use(&store, None).unwrap(), 0);
        w.switched_at = Some(switched);
        w.state = State::Grace;
        w.new_key_id = Some("key_new".into());
        save(&store, &w).unwrap();
        assert_eq!(check_rotated_key_use(&store, Some("tg")).unwrap(), 1);
        let f = store.finding(&finding_id(&w)).unwrap().unwrap();
        assert_eq!(f.rule, ROTATED_KEY_USED);
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.evidence, vec!["e2".to_string()]);
        assert!(f.explanation.contains("198.51.100.7"), "{}", f.explanation);
    }
}
