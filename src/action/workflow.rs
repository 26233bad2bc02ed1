//! Persisted workflows: each rotation is a state machine in the cache's `workflows`
//! table. The step is recorded before the provider is called and the result after, so a
//! process killed at any point leaves a row that `keyaudit resume` can reconcile with the
//! provider's real state. The secret is never stored here; only where it was sent (the
//! sink spec) and the new key's fingerprint, which lets a resume check the sink.

use crate::model::{Category, Finding, FindingStatus, Severity};
use crate::store::{Store, StoreError};
use chrono::Utc;
use sha2::{Digest, Sha256};

pub use crate::store::workflows::{State, Step, UseSummary, Workflow};

/// The rule id of the finding raised when a rotated key is still used.
pub const ROTATED_KEY_USED: &str = "rotated_key_used";

/// Saves a new workflow and returns its id.
pub fn insert(store: &Store, w: &Workflow) -> Result<i64, StoreError> {
    store.insert_workflow(w)
}

/// Writes every mutable field of `w` (one statement, so one atomic commit) and stamps
/// `updated`.
pub fn save(store: &Store, w: &Workflow) -> Result<(), StoreError> {
    store.save_workflow(w)
}

/// One workflow by id.
pub fn get(store: &Store, id: i64) -> Result<Option<Workflow>, StoreError> {
    store.workflow(id)
}

/// Workflows, oldest first; only the open ones (running or in grace) unless `all`.
pub fn list(store: &Store, all: bool) -> Result<Vec<Workflow>, StoreError> {
    store.workflows(all)
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
            Some(n) => store.key_first_use(&w.provider, n)?,
            None => None,
        }
        .or(w.switched_at)
        .expect("filtered above");
        let mut evidence = Vec::new();
        let (mut first, mut last, mut count, mut denied) = (None, None, 0u64, 0u64);
        let mut last_ip: Option<String> = None;
        store.key_uses_after(&w.provider, &w.key_id, since, &mut |u| {
            first.get_or_insert(u.time);
            last = Some(u.time);
            count += 1;
            if u.refused {
                denied += 1;
            }
            last_ip = u.source_ip.map(str::to_string);
            if evidence.len() < 50 {
                evidence.push(u.event_id.to_string());
            }
        })?;
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
