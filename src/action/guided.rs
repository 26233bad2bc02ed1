//! Guided rotation, for providers whose API cannot create keys (OpenAI): a persisted,
//! resumable workflow in the `workflows` table (kind [`KIND`]) in which the operator
//! creates the new key by hand and keyaudit does the watching and the revoke.
//!
//! ```text
//! awaiting_new -> awaiting_quiet -> ready_to_revoke -> finishing -> finished (done)
//! ```
//!
//! - `awaiting_new`: the operator was told where to create the new key
//!   ([`Provider::rotation_guide`]). Each sync of the provider, and `keyaudit resume`,
//!   looks in the cache for an active key of the same provider, owner and scopes (for
//!   OpenAI: the same project) created after the workflow started.
//! - `awaiting_quiet`: the new key is there; the old key must go quiet: no use of it (its
//!   cached events, the provider's `last_used`) for the workflow's quiet window
//!   (`grace_seconds`; `rotate --quiet`), so everything has moved to the new key.
//! - `ready_to_revoke`: `keyaudit resume` offers the revoke of the old key, with the same
//!   confirmation as `keyaudit revoke`, and revokes it through [`super::apply_key_op`]
//!   (journaled before and after the provider call).
//!
//! A key revoked by other means (`keyaudit revoke`, the vendor's dashboard) ends the
//! workflow as done. Every step change is saved, then journaled where this configuration
//! journals ([`record`]: the team journal with `[team]`); the state advances only from
//! what the cache holds (no IO there but the store), so a crash at any point leaves a row
//! the next sync or resume continues from.

use super::rotate::RotateError;
use super::workflow::{self, State, Step, Workflow};
use super::{with_db, ActionError, KeyOp};
use crate::model::{rfc3339, Key, KeyStatus};
use crate::provider::Provider;
use crate::store::journal::{NewEntry, OwnedEntry};
use crate::store::{Cache, Store, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The workflow kind of a guided rotation.
pub const KIND: &str = "rotate-guided";

/// What the `sink` column holds for a guided rotation: keyaudit never sees the new
/// secret; the operator deploys it.
pub const BY_OPERATOR: &str = "operator (created by hand)";

/// How much earlier than the workflow's start a new key may carry as its creation time
/// (the provider's clock against ours).
const CLOCK_SLACK: chrono::Duration = chrono::Duration::minutes(10);

/// The journal entry of a step of `wf` just saved, for [`record`].
fn entry(wf: &Workflow, result: &str) -> OwnedEntry {
    OwnedEntry::of(&NewEntry {
        action: "rotate",
        target: &wf.target(),
        reason: wf.reason.as_deref(),
        params: serde_json::json!({
            "workflow": wf.id,
            "kind": KIND,
            "new_key": wf.new_key_id,
            "quiet_seconds": wf.grace_seconds,
            "step": wf.step.as_str(),
        }),
        result,
    })
}

/// Appends the entries of saved steps where this configuration journals: the team
/// journal with `[team]` (naming this member's user and host), else the cache's. When the
/// team store cannot take them, the rest go to the cache's journal (and a warning to the
/// log), so no step goes unjournaled.
pub async fn record(db: &Cache, entries: Vec<OwnedEntry>) -> Result<(), ActionError> {
    let shared = db.shared();
    for (i, e) in entries.iter().enumerate() {
        let Err(why) = shared.append_journal(&e.entry(None)).await else {
            continue;
        };
        if !shared.is_team() {
            return Err(why.into());
        }
        tracing::warn!(
            "guided rotation steps journaled in this cache only (`keyaudit journal --local`): {why}"
        );
        let rest = entries[i..].to_vec();
        return with_db(db, move |s| {
            for e in &rest {
                s.append_journal(&e.entry(None))?;
            }
            Ok(())
        })
        .await;
    }
    Ok(())
}

/// Starts a guided rotation of `key`: checks that the provider guides rotations and that
/// the key is live, saves the workflow and journals its start. Returns the workflow, the
/// instructions for the operator, and whether it is new (false: an open guided rotation
/// of the key already existed, and is returned as it is).
pub async fn start(
    db: &Cache,
    provider: Arc<dyn Provider>,
    key: &Key,
    quiet: Duration,
    reason: Option<String>,
) -> Result<(Workflow, String, bool), RotateError> {
    let Some(guide) = provider.rotation_guide(key) else {
        return Err(RotateError::Unsupported {
            provider: provider.name().to_string(),
            why: provider
                .refusal("rotate")
                .unwrap_or_else(|| "no overlap or atomic rotation".into()),
        });
    };
    let current = provider.get_key(&key.id).await?;
    if matches!(current.status, KeyStatus::Revoked | KeyStatus::Expired) {
        return Err(RotateError::NotRotatable {
            target: super::target(key),
            status: current.status,
        });
    }
    super::ensure_provider(db, provider.as_ref()).await?;
    let mut wf = Workflow::new_rotation(
        &key.provider,
        &key.id,
        BY_OPERATOR,
        quiet.as_secs() as i64,
        reason.as_deref(),
    );
    wf.kind = KIND.into();
    wf.step = Step::AwaitingNew;
    wf.old_status = Some(current.status.to_string());
    let guide = crate::output::sanitize(&guide);
    let (wf, fresh) = with_db(db, move |s| {
        if let Some(open) = workflow::list(s, false)?
            .into_iter()
            .find(|w| w.kind == KIND && w.provider == wf.provider && w.key_id == wf.key_id)
        {
            return Ok((open, false));
        }
        s.put_key(&current)?;
        let mut wf = wf;
        wf.id = workflow::insert(s, &wf)?;
        Ok((wf, true))
    })
    .await?;
    if fresh {
        let started = entry(&wf, "started: guided rotation; waiting for the new key");
        record(db, vec![started]).await?;
    }
    Ok((wf, guide, fresh))
}

/// The open guided rotation's new key, if one has appeared in the cache: active, of the
/// same provider, owner and scopes as the old key, created after the workflow started;
/// the newest of them.
fn new_key(store: &Store, wf: &Workflow, old: &Key) -> Result<Option<Key>, StoreError> {
    let since = wf.created - CLOCK_SLACK;
    Ok(store
        .keys()?
        .into_iter()
        .map(|r| r.key)
        .filter(|k| {
            k.provider == wf.provider
                && k.id != wf.key_id
                && k.status == KeyStatus::Active
                && k.owner == old.owner
                && k.scopes == old.scopes
                && k.created.is_some_and(|c| c >= since)
        })
        .max_by_key(|k| k.created))
}

/// Advances the guided rotation `wf` as far as the cache allows at `now`; saves each
/// step and adds its journal entry to `journal` (for [`record`]). Returns true when it
/// moved.
fn advance(
    store: &mut Store,
    wf: &mut Workflow,
    now: DateTime<Utc>,
    journal: &mut Vec<OwnedEntry>,
) -> Result<bool, StoreError> {
    let mut moved = false;
    loop {
        if !wf.state.is_open() {
            return Ok(moved);
        }
        let Some(old) = store.key(&wf.provider, &wf.key_id)?.map(|r| r.key) else {
            return Ok(moved);
        };
        if matches!(old.status, KeyStatus::Revoked | KeyStatus::Expired) {
            wf.step = Step::Finished;
            wf.state = State::Done;
            workflow::save(store, wf)?;
            journal.push(entry(
                wf,
                &format!("done: the old key is {} at the provider", old.status),
            ));
            return Ok(true);
        }
        match wf.step {
            Step::AwaitingNew => {
                let Some(new) = new_key(store, wf, &old)? else {
                    return Ok(moved);
                };
                wf.new_key_id = Some(new.id.clone());
                wf.switched_at = Some(now);
                wf.step = Step::AwaitingQuiet;
                workflow::save(store, wf)?;
                journal.push(entry(
                    wf,
                    &format!(
                        "new key {} ({}) appeared; waiting for the old key to be unused for {}s",
                        new.id,
                        crate::output::sanitize(&new.name),
                        wf.grace_seconds
                    ),
                ));
                moved = true;
            }
            Step::AwaitingQuiet => {
                let last = store.key_use_summary(&wf.provider, &wf.key_id)?.last_use;
                let window = chrono::Duration::seconds(wf.grace_seconds.max(0));
                let quiet_from = last.map(|t| t + window);
                if wf.grace_until != quiet_from {
                    wf.grace_until = quiet_from;
                    workflow::save(store, wf)?;
                }
                if quiet_from.is_some_and(|q| q > now) {
                    return Ok(moved);
                }
                wf.step = Step::ReadyToRevoke;
                workflow::save(store, wf)?;
                journal.push(entry(
                    wf,
                    &format!(
                        "the old key is quiet (last use {}); its revoke is offered by `keyaudit resume {}`",
                        last.map(rfc3339).unwrap_or_else(|| "never".into()),
                        wf.id
                    ),
                ));
                moved = true;
            }
            _ => return Ok(moved),
        }
    }
}

/// The guided rotation `find` picks in the cache, advanced as far as the cache allows
/// now, its steps journaled ([`record`]); `None` when `find` picks none.
pub async fn advance_found(
    db: &Cache,
    find: impl FnOnce(&Store) -> Result<Option<Workflow>, StoreError> + Send + 'static,
) -> Result<Option<Workflow>, ActionError> {
    let (found, journal) = with_db(db, move |s| {
        let mut journal = Vec::new();
        let Some(mut wf) = find(s)? else {
            return Ok((None, journal));
        };
        advance(s, &mut wf, Utc::now(), &mut journal)?;
        Ok((Some(wf), journal))
    })
    .await?;
    record(db, journal).await?;
    Ok(found)
}

/// Advances every open guided rotation of `provider` (after its sync) and journals the
/// steps. Returns one line per workflow that moved, for the operator.
pub async fn watch(db: &Cache, provider: &str) -> Result<Vec<String>, ActionError> {
    let provider = provider.to_string();
    let (lines, journal) = with_db(db, move |store| {
        let (mut lines, mut journal) = (Vec::new(), Vec::new());
        for mut wf in workflow::list(store, false)?
            .into_iter()
            .filter(|w| w.kind == KIND && w.provider == provider)
        {
            if advance(&mut *store, &mut wf, Utc::now(), &mut journal)? {
                lines.push(status(&wf));
            }
        }
        Ok((lines, journal))
    })
    .await?;
    record(db, journal).await?;
    Ok(lines)
}

/// Where a guided rotation stands, in one line for the operator.
pub fn status(wf: &Workflow) -> String {
    let new = wf.new_key_id.as_deref().unwrap_or("-");
    match (wf.state, wf.step) {
        (State::Done, _) => format!(
            "workflow #{}: guided rotation of {} done: the old key is revoked; the new key is {new}",
            wf.id,
            wf.target()
        ),
        (_, Step::AwaitingNew) => format!(
            "workflow #{}: guided rotation of {}: waiting for the new key to appear (create it, then sync)",
            wf.id,
            wf.target()
        ),
        (_, Step::AwaitingQuiet) => format!(
            "workflow #{}: guided rotation of {}: new key {new} found; waiting for the old key to go quiet{}",
            wf.id,
            wf.target(),
            wf.grace_until
                .map(|t| format!(" (no use until {})", rfc3339(t)))
                .unwrap_or_default()
        ),
        (_, Step::ReadyToRevoke) => format!(
            "workflow #{}: guided rotation of {}: new key {new} in place and the old key quiet; run `keyaudit resume {}` to revoke the old key",
            wf.id,
            wf.target(),
            wf.id
        ),
        (state, step) => format!(
            "workflow #{}: guided rotation of {}: {state} at step {step}{}",
            wf.id,
            wf.target(),
            wf.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
    }
}

/// Continues guided rotation `id` from the cache (the caller syncs its provider first):
/// advances it, and once the old key is quiet asks `confirm` (shown the old key) and
/// revokes it. A revoke whose outcome stays unknown leaves the workflow at `finishing`
/// with the error, for the next resume.
pub async fn resume(
    db: &Cache,
    provider: Arc<dyn Provider>,
    id: i64,
    confirm: impl FnOnce(&Key, &Workflow) -> bool,
) -> Result<Workflow, RotateError> {
    let mut wf = advance_found(db, move |s| workflow::get(s, id))
        .await?
        .ok_or(RotateError::NoWorkflow(id))?;
    if !(wf.state.is_open() && matches!(wf.step, Step::ReadyToRevoke | Step::Finishing)) {
        return Ok(wf);
    }
    let (p, k) = (wf.provider.clone(), wf.key_id.clone());
    let Some(old) = with_db(db, move |s| s.key(&p, &k)).await?.map(|r| r.key) else {
        return Ok(wf);
    };
    if wf.step == Step::ReadyToRevoke && !confirm(&old, &wf) {
        return Ok(wf);
    }
    wf.step = Step::Finishing;
    let w = wf.clone();
    with_db(db, move |s| workflow::save(s, &w)).await?;
    let reason = format!(
        "guided rotation #{}: replaced by {}{}",
        wf.id,
        wf.new_key_id.as_deref().unwrap_or("-"),
        wf.reason
            .as_deref()
            .map(|r| format!("; {r}"))
            .unwrap_or_default()
    );
    match super::apply_key_op(db, provider, &old, KeyOp::Revoke, Some(&reason)).await {
        Ok(_) => {
            wf.step = Step::Finished;
            wf.state = State::Done;
            wf.error = None;
        }
        Err(e) => wf.error = Some(format!("revoke of the old key failed: {e}")),
    }
    let w = wf.clone();
    with_db(db, move |s| workflow::save(s, &w)).await?;
    let result = match &wf.error {
        None => "done: the old key is revoked".to_string(),
        Some(e) => e.clone(),
    };
    record(db, vec![entry(&wf, &result)]).await?;
    Ok(wf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Key, KeySource};

    fn key(id: &str, owner: &str, created: DateTime<Utc>, last_used: Option<DateTime<Utc>>) -> Key {
        let mut k = Key::seen_in_logs("oa", id);
        k.source = KeySource::Provider;
        k.owner = owner.into();
        k.scopes = vec!["project:proj_a".into()];
        k.created = Some(created);
        k.last_used = last_used;
        k
    }

    fn guided(store: &mut Store, quiet_secs: i64) -> Workflow {
        let mut wf = Workflow::new_rotation("oa", "key_old", BY_OPERATOR, quiet_secs, None);
        wf.kind = KIND.into();
        wf.step = Step::AwaitingNew;
        wf.id = workflow::insert(store, &wf).unwrap();
        wf
    }

    #[test]
    fn the_revoke_is_offered_only_for_the_same_owner_and_a_quiet_old_key() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("oa", "openai", None).unwrap();
        // Whole seconds: the cache keeps milliseconds.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let hour = chrono::Duration::hours(1);
        store
            .put_key(&key(
                "key_old",
                "user ana",
                now - hour * 100,
                Some(now - hour / 2),
            ))
            .unwrap();
        let mut wf = guided(&mut store, 3600);
        let mut journal = Vec::new();
        // Nothing yet; then a key of another owner, which is not the replacement.
        assert!(!advance(&mut store, &mut wf, now, &mut journal).unwrap());
        store.put_key(&key("key_bo", "user bo", now, None)).unwrap();
        assert!(!advance(&mut store, &mut wf, now, &mut journal).unwrap());
        assert_eq!(wf.step, Step::AwaitingNew);
        // The operator's key appears: the old key was used half an hour ago, so it waits.
        store
            .put_key(&key("key_new", "user ana", now, None))
            .unwrap();
        assert!(advance(&mut store, &mut wf, now, &mut journal).unwrap());
        assert_eq!(wf.step, Step::AwaitingQuiet);
        assert_eq!(wf.new_key_id.as_deref(), Some("key_new"));
        assert_eq!(wf.grace_until, Some(now - hour / 2 + hour));
        // An hour after its last use, the old key is quiet.
        assert!(advance(&mut store, &mut wf, now + hour, &mut journal).unwrap());
        assert_eq!(wf.step, Step::ReadyToRevoke);
        assert_eq!(
            workflow::get(&store, wf.id).unwrap().unwrap().step,
            Step::ReadyToRevoke
        );
        // Revoked by other means: done.
        let mut old = store.key("oa", "key_old").unwrap().unwrap().key;
        old.status = KeyStatus::Revoked;
        store.put_key(&old).unwrap();
        assert!(advance(&mut store, &mut wf, now + hour, &mut journal).unwrap());
        assert_eq!(wf.state, State::Done);
        // Each step saved has its journal entry, in order, for `record`.
        let said: Vec<String> = journal
            .iter()
            .map(|e| e.entry(None).result.to_string())
            .collect();
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(said[0].starts_with("new key key_new (") && said[0].contains("appeared"));
        assert!(said[1].starts_with("the old key is quiet"));
        assert_eq!(said[2], "done: the old key is revoked at the provider");
    }
}
