//! Operator actions on keys. Every action goes through here, from the CLI and the TUI
//! alike: the journal gets an entry before the provider is called and one after, with
//! the result; the cache is updated with the provider's answer.
//!
//! - [`bulk`]: one operation on many keys (incidents), bounded concurrency, retries.
//! - [`rotate`]: rotation as a persisted, resumable state machine.
//! - [`sink`]: where a new secret is delivered, once.
//! - [`workflow`]: the `workflows` table and the `rotated_key_used` check.

pub mod bulk;
pub mod confirm;
pub mod rotate;
pub mod sink;
pub mod workflow;

use crate::model::Key;
use crate::provider::{Provider, ProviderError};
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
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = db.open()?;
        f(&mut store)
    })
    .await
    .map_err(|e| ActionError::Task(e.to_string()))?
    .map_err(ActionError::from)
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
/// key succeeds).
pub async fn apply_key_op(
    db: &Cache,
    provider: Arc<dyn Provider>,
    key: &Key,
    op: KeyOp,
    reason: Option<&str>,
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
    {
        let (tgt, reason, params) = (tgt.clone(), reason_owned.clone(), params.clone());
        with_db(db, move |s| {
            s.append_journal(&NewEntry {
                action: op.as_str(),
                target: &tgt,
                reason: reason.as_deref(),
                params,
                result: "started",
            })
            .map(|_| ())
        })
        .await?;
    }
    let outcome = match op {
        KeyOp::Disable => provider.disable(&key.id).await,
        KeyOp::Enable => provider.enable(&key.id).await,
        KeyOp::Revoke => provider.revoke(&key.id).await,
    };
    let result = match &outcome {
        Ok(k) => format!("ok: status {}", k.status),
        Err(e) => format!("failed: {e}"),
    };
    let updated = outcome.as_ref().ok().cloned();
    with_db(db, move |s| {
        if let Some(k) = &updated {
            s.put_key(k)?;
        }
        s.append_journal(&NewEntry {
            action: op.as_str(),
            target: &tgt,
            reason: reason_owned.as_deref(),
            params,
            result: &result,
        })
        .map(|_| ())
    })
    .await?;
    tracing::info!(op = op.as_str(), key = %target(key), ok = outcome.is_ok(), "key action");
    Ok(outcome?)
}
