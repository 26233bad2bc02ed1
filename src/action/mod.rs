//! Operator actions on keys. Every action goes through here, from the CLI and the TUI
//! alike: the journal gets an entry before the provider is called and one after, with
//! the result; the cache is updated with the provider's answer.
//!
//! - [`claim`]: one operation per key at a time (the team store's claims), and the one
//!   way actions journal.
//! - [`decide`]: operators' decisions on findings, and the team's applied here.
//! - [`bulk`]: one operation on many keys (incidents), bounded concurrency, retries.
//! - [`rotate`]: rotation as a persisted, resumable state machine (undone by `rollback`).
//! - [`guided`]: guided rotation, where the operator creates the new key by hand.
//! - [`handover`]: rotations published to the team, and adopted from another member.
//! - [`settle`]: settling a change whose outcome is unknown, by reading the provider.
//! - [`sink`]: where a new secret is delivered, once.
//! - [`workflow`]: the `workflows` table and the `rotated_key_used` check.

pub mod bulk;
pub mod claim;
pub mod confirm;
pub mod crash;
pub mod decide;
pub mod guided;
pub mod handover;
mod rollback;
pub mod rotate;
pub mod settle;
pub mod sink;
pub mod workflow;

use crate::model::{Key, KeyStatus};
use crate::provider::{KeyChange, OpKey, Provider, ProviderError};
use crate::store::shared::{HeldBy, SharedError};
use crate::store::{journal::NewEntry, Cache, Store, StoreError};
use std::sync::Arc;
use thiserror::Error;

/// A single-key operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    /// Reversible: the key stops working until enabled.
    Disable,
    /// Undo a disable.
    Enable,
    /// Permanent.
    Revoke,
}

impl KeyOp {
    /// The verb, as journaled and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOp::Disable => "disable",
            KeyOp::Enable => "enable",
            KeyOp::Revoke => "revoke",
        }
    }

    /// The provider's change.
    pub fn change(self) -> KeyChange {
        match self {
            KeyOp::Disable => KeyChange::Disable,
            KeyOp::Enable => KeyChange::Enable,
            KeyOp::Revoke => KeyChange::Revoke,
        }
    }

    /// True when a key in `status` is where this operation leaves it (a revoked key
    /// counts as disabled: it cannot be used either).
    pub fn reached(self, status: KeyStatus) -> bool {
        match self {
            KeyOp::Disable => matches!(status, KeyStatus::Inactive | KeyStatus::Revoked),
            KeyOp::Enable => status == KeyStatus::Active,
            KeyOp::Revoke => status == KeyStatus::Revoked,
        }
    }

    /// Whether a provider with these capabilities can do it.
    pub fn supported_by(self, caps: &crate::provider::Capabilities) -> bool {
        match self {
            KeyOp::Disable | KeyOp::Enable => caps.disable,
            KeyOp::Revoke => caps.revoke,
        }
    }
}

/// Why an action failed.
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("{provider} cannot {op} keys; nothing was changed")]
    Unsupported { provider: String, op: &'static str },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("background task failed: {0}")]
    Task(String),
    /// Another responder holds the key (team store).
    #[error("{0}")]
    Held(Box<HeldBy>),
    /// The team store failed; nothing was sent to the provider.
    #[error("{0}; nothing was changed")]
    Team(String),
}

impl From<SharedError> for ActionError {
    fn from(e: SharedError) -> Self {
        match e {
            SharedError::Held(h) => ActionError::Held(h),
            SharedError::Store(s) => ActionError::Store(s),
            other @ SharedError::Team { .. } => ActionError::Team(other.to_string()),
        }
    }
}

/// The journal target of a key: `provider/key_id`.
pub fn target(key: &Key) -> String {
    format!("{}/{}", key.provider, key.id)
}

/// Runs a blocking store operation on the cache at `db` off the async runtime.
pub async fn with_db<T: Send + 'static>(
    db: &Cache,
    f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ActionError> {
    db.run(f)
        .await
        .map_err(|e| ActionError::Task(e.to_string()))?
        .map_err(ActionError::from)
}

/// True when a change may have been applied although no answer said so.
pub fn unknown_outcome(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Ambiguous { .. } | ProviderError::Unavailable { .. }
    )
}

/// Registers `provider` in the cache (a key fetched live, before any sync, needs it).
pub async fn ensure_provider(db: &Cache, provider: &dyn Provider) -> Result<(), ActionError> {
    let (name, kind, url) = (
        provider.name().to_string(),
        provider.kind().to_string(),
        provider.location(),
    );
    with_db(db, move |s| {
        if s.provider_id(&name)?.is_none() {
            s.ensure_provider(&name, &kind, url.as_deref())?;
        }
        Ok(())
    })
    .await
}

/// Journals, performs and records one operation on one key; returns the key as the
/// provider reports it afterwards. Idempotent where the provider is (revoking a revoked
/// key succeeds). The change is one logical change with a fresh idempotency key; see
/// [`apply_key_op_as`].
pub async fn apply_key_op(
    db: &Cache,
    provider: Arc<dyn Provider>,
    key: &Key,
    op: KeyOp,
    reason: Option<&str>,
) -> Result<Key, ActionError> {
    apply_key_op_as(db, provider, key, op, reason, &OpKey::random()).await
}

/// [`apply_key_op`] as the logical change `op_key` (a workflow passes the key it saved,
/// so a resume repeats the same change). The key is claimed first ([`claim::hold`]:
/// refused when another responder holds it) and released at the end, whatever the
/// outcome. A call whose outcome stayed unknown (every answer lost, or
/// [`ProviderError::Ambiguous`]) is settled by reading the key back: if the provider
/// shows the key where the operation leaves it, the operation succeeded and the journal
/// says it was settled by reading; otherwise the error stands.
pub async fn apply_key_op_as(
    db: &Cache,
    provider: Arc<dyn Provider>,
    key: &Key,
    op: KeyOp,
    reason: Option<&str>,
    op_key: &OpKey,
) -> Result<Key, ActionError> {
    if !op.supported_by(&provider.capabilities()) {
        return Err(ActionError::Unsupported {
            provider: provider.name().to_string(),
            op: op.as_str(),
        });
    }
    let hold = claim::hold(db, key, op.as_str()).await?;
    let r = apply_claimed(db, provider, key, op, reason, op_key).await;
    hold.release(claim::ended(&r)).await;
    r
}

/// [`apply_key_op_as`] on a key the caller already holds (a rotation revoking the key it
/// replaces, or the new key it made).
pub(crate) async fn apply_claimed(
    db: &Cache,
    provider: Arc<dyn Provider>,
    key: &Key,
    op: KeyOp,
    reason: Option<&str>,
    op_key: &OpKey,
) -> Result<Key, ActionError> {
    if !op.supported_by(&provider.capabilities()) {
        return Err(ActionError::Unsupported {
            provider: provider.name().to_string(),
            op: op.as_str(),
        });
    }
    let tgt = target(key);
    let reason_owned = reason.map(str::to_string);
    let params = serde_json::json!({
        "owner": key.owner,
        "environment": key.environment,
        "status_before": key.status,
    });
    claim::journal(
        db,
        &NewEntry {
            action: op.as_str(),
            target: &tgt,
            reason,
            params: params.clone(),
            result: "started",
        },
    )
    .await?;
    let mut settled = None;
    let outcome = match provider.change_key(&key.id, op.change(), op_key).await {
        Err(e) if unknown_outcome(&e) => match provider.get_key(&key.id).await {
            Ok(k) if op.reached(k.status) => {
                settled = Some(e.to_string());
                Ok(k)
            }
            _ => Err(e),
        },
        other => other,
    };
    let result = match (&outcome, &settled) {
        (Ok(k), None) => format!("ok: status {}", k.status),
        (Ok(k), Some(why)) => format!(
            "ok: status {} (the answer was lost: {why}; settled by reading the key back)",
            k.status
        ),
        (Err(e), _) => format!("failed: {e}"),
    };
    let updated = outcome.as_ref().ok().cloned();
    let was_active = key.status == KeyStatus::Active;
    with_db(db, move |s| {
        if let Some(k) = &updated {
            s.put_key(k)?;
            // When it stopped working: detection tells refusals before it (a working
            // key's) from attempts after it.
            if k.status == KeyStatus::Active {
                s.set_key_stopped_at(&k.provider, &k.id, None)?;
            } else if was_active {
                s.set_key_stopped_at(&k.provider, &k.id, Some(chrono::Utc::now()))?;
            }
        }
        Ok(())
    })
    .await?;
    claim::journal(
        db,
        &NewEntry {
            action: op.as_str(),
            target: &tgt,
            reason: reason_owned.as_deref(),
            params,
            result: &result,
        },
    )
    .await?;
    tracing::info!(op = op.as_str(), key = %target(key), ok = outcome.is_ok(), "key action");
    Ok(outcome?)
}
