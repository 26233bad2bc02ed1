//! Settling a change whose outcome is unknown at a provider without idempotency (Vault
//! token creation, AWS CreateAccessKey / CreateApiKey): the call is never sent again;
//! instead the provider's state is read, a key the workflow can prove it holds the
//! secret of is adopted, and every other key created since the call is revoked and
//! journaled as `orphan-revoked`, so no key keyaudit created stays active undelivered.

use super::rotate::RotateError;
use super::sink::Sink;
use super::workflow::Workflow;
use super::{apply_claimed, claim, KeyOp};
use crate::model::{Key, KeyStatus};
use crate::provider::{OpKey, Provider};
use crate::secret::Secret;
use crate::store::journal::NewEntry;
use crate::store::Cache;
use std::sync::Arc;

/// Keys created this long before a workflow started still count as "created since the
/// call" when settling (clocks of keyaudit and the provider differ).
const CLOCK_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// Settles a rotation call of a provider without idempotency whose outcome is unknown:
/// lists the old key's owner's keys, takes the active ones created since the workflow
/// started (less [`CLOCK_MARGIN`]) that are not the old key or an earlier successor,
/// adopts the one whose secret the sink holds (the workflow can prove it has it) and
/// revokes the others as orphans. Returns the adopted key and its secret, and the ids of
/// the orphans revoked.
pub(super) async fn settle_by_listing(
    db: &Cache,
    provider: &Arc<dyn Provider>,
    wf: &Workflow,
    base: &OpKey,
    sink: &Sink,
    old: &Key,
) -> Result<(Option<(Key, Secret)>, Vec<String>), RotateError> {
    let since = wf.created - CLOCK_MARGIN;
    let mut created = Vec::new();
    let mut page = None;
    loop {
        let p = provider.list_keys(page.as_deref()).await?;
        created.extend(p.keys.into_iter().filter(|k| {
            k.owner == old.owner
                && k.id != wf.key_id
                && Some(&k.id) != wf.prior_successor.as_ref()
                && k.status == KeyStatus::Active
                && k.created.is_some_and(|c| c >= since)
        }));
        match p.next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    let mut adopted = None;
    let mut orphans = Vec::new();
    for k in created {
        if adopted.is_none() && !k.fingerprint.is_empty() {
            if let Ok(Some(s)) = sink.holds(&k.fingerprint).await {
                adopted = Some((k, s));
                continue;
            }
        }
        orphans.push(k);
    }
    settle_orphans(db, provider, wf, base, &orphans).await?;
    Ok((adopted, orphans.into_iter().map(|k| k.id).collect()))
}

/// Revokes keys the workflow created but cannot deliver, each journaled as
/// `orphan-revoked` with its id.
pub(super) async fn settle_orphans(
    db: &Cache,
    provider: &Arc<dyn Provider>,
    wf: &Workflow,
    base: &OpKey,
    orphans: &[Key],
) -> Result<(), RotateError> {
    for k in orphans {
        let reason = format!(
            "rotation #{}: key created by a call whose answer was lost; its secret was never delivered",
            wf.id
        );
        let op = base.step(&format!("revoke-orphan-{}", k.id));
        let done =
            apply_claimed(db, provider.clone(), k, KeyOp::Revoke, Some(&reason), &op).await?;
        let target = super::target(k);
        let params = serde_json::json!({"workflow": wf.id, "orphan": k.id, "old_key": wf.key_id});
        let result = format!("ok: orphan {} is {}", k.id, done.status);
        claim::journal(
            db,
            &NewEntry {
                action: "orphan-revoked",
                target: &target,
                reason: Some(&reason),
                params,
                result: &result,
            },
        )
        .await?;
    }
    Ok(())
}
