//! Undoing a rotation that failed or was interrupted before its new key was verified.

use super::rotate::{op_key, RotateError};
use super::sink::{Sink, SinkError};
use super::workflow::Workflow;
use super::{apply_claimed, KeyOp};
use crate::model::KeyStatus;
use crate::provider::{Provider, ProviderError};
use crate::store::Cache;
use std::sync::Arc;

/// Undoes a rotation: takes the delivery back where the sink can (Secrets Manager's
/// `AWSCURRENT` returns to the previous version), revokes the new key (its secret was
/// never delivered, or does not work) and, where the provider rotated with overlap,
/// enables the old key again, which cancels its grace period. Idempotent. A sink that
/// cannot be restored does not stop the new key's revocation, but fails the rollback so
/// that `resume` tries the sink again.
pub(super) async fn roll_back(
    db: &Cache,
    provider: &Arc<dyn Provider>,
    wf: &Workflow,
    sink: &Sink,
) -> Result<String, RotateError> {
    let caps = provider.capabilities();
    let reason = format!("rollback of rotation #{}", wf.id);
    let mut notes = Vec::new();
    let mut sink_failed = None;
    if let Some(fp) = &wf.new_fingerprint {
        match sink.undo(fp).await {
            Ok(Some(note)) => notes.push(note),
            Ok(None) => {}
            Err(e) => sink_failed = Some(e),
        }
    }
    // A key rolled in place (Cloudflare) kept its id: revoking "the new key" would
    // delete the key itself, and its old value stopped when it was rolled.
    let rolled_in_place = wf.new_key_id.as_deref() == Some(wf.key_id.as_str());
    if rolled_in_place {
        notes.push(format!(
            "key {} was rolled in place: its old value cannot be restored and the key is left \
             as it is; roll it again",
            wf.key_id
        ));
    } else if let Some(n) = &wf.new_key_id {
        match provider.get_key(n).await {
            Ok(new) if new.status == KeyStatus::Revoked => {
                notes.push(format!("new key {n} revoked"))
            }
            Ok(new) => {
                let op = op_key(&mut wf.clone()).step("revoke-new");
                apply_claimed(
                    db,
                    provider.clone(),
                    &new,
                    KeyOp::Revoke,
                    Some(&reason),
                    &op,
                )
                .await?;
                notes.push(format!("new key {n} revoked"));
            }
            Err(ProviderError::NotFound { .. }) => notes.push(format!("new key {n} not found")),
            Err(e) => return Err(e.into()),
        }
    }
    if rolled_in_place {
        return finish_roll_back(wf, notes, sink_failed);
    }
    let old = provider.get_key(&wf.key_id).await?;
    let replaced = wf.new_key_id.is_some() && old.rotated_to == wf.new_key_id;
    let was_active = wf.old_status.as_deref().is_none_or(|s| s == "active");
    if replaced && !was_active {
        notes.push(format!(
            "old key {} left as it was before the rotation ({})",
            wf.key_id,
            wf.old_status.as_deref().unwrap_or("?")
        ));
    } else if replaced && caps.rotate_overlap && caps.disable && old.status != KeyStatus::Revoked {
        let op = op_key(&mut wf.clone()).step("enable-old");
        apply_claimed(
            db,
            provider.clone(),
            &old,
            KeyOp::Enable,
            Some(&reason),
            &op,
        )
        .await?;
        notes.push(format!(
            "old key {} kept active (grace cancelled)",
            wf.key_id
        ));
    } else if replaced && !caps.rotate_overlap {
        notes.push(format!(
            "old key {} was replaced atomically and cannot be restored: rotate again",
            wf.key_id
        ));
    } else {
        notes.push(format!("old key {} untouched", wf.key_id));
    }
    finish_roll_back(wf, notes, sink_failed)
}

/// The rollback's summary, or the sink's failure (with the summary) so that `resume`
/// takes the delivery back again.
fn finish_roll_back(
    wf: &Workflow,
    notes: Vec<String>,
    sink_failed: Option<SinkError>,
) -> Result<String, RotateError> {
    if let Some(e) = sink_failed {
        return Err(RotateError::Sink(SinkError::Remote {
            message: format!(
                "taking the delivery to {} back failed: {e} ({})",
                wf.sink,
                notes.join(", ")
            ),
            transient: matches!(
                e,
                SinkError::Remote {
                    transient: true,
                    ..
                }
            ),
        }));
    }
    Ok(notes.join(", "))
}
