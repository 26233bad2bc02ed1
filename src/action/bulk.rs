//! Bulk key operations for incidents: one operation on many keys, with bounded
//! concurrency and a result per key. Each key goes through [`apply_key_op`], so each gets
//! its journal entries, its provider's one retry loop (`provider::retry`, which sends a
//! change again only where the provider makes it idempotent), its claim (a key another
//! responder holds is skipped and listed, never waited on) and, when the outcome stayed
//! unknown, its settlement by reading the key back.

use super::{apply_key_op, target, ActionError, KeyOp};
use crate::model::{Key, KeyStatus};
use crate::provider::Provider;
use crate::store::Cache;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a bulk run goes.
#[derive(Debug, Clone, Copy)]
pub struct BulkOptions {
    /// Keys in flight at once.
    pub concurrency: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions { concurrency: 16 }
    }
}

/// The result for one key.
#[derive(Debug, Clone)]
pub struct KeyResult {
    /// `provider/key_id`.
    pub target: String,
    /// The status the provider reports afterwards, or what went wrong.
    pub outcome: Result<KeyStatus, String>,
    /// The key already had the target status before (a no-op, counted as success).
    pub already: bool,
    /// Another responder held the key (team store): skipped, nothing was sent.
    pub held: bool,
    /// Operations sent for this key (one; zero when its provider is missing). The
    /// provider's retries of that operation are counted in its log, not here.
    pub attempts: u32,
}

/// Counts shown while a bulk run goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkProgress {
    /// Keys in the run.
    pub total: usize,
    /// Keys finished (either way).
    pub done: usize,
    /// Keys that failed.
    pub failed: usize,
}

/// The outcome of a bulk run, in the order keys were given.
#[derive(Debug, Clone, Default)]
pub struct BulkReport {
    /// One result per key, in input order.
    pub results: Vec<KeyResult>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Operations sent (one per key with a provider; the provider's retries of an
    /// operation are not counted).
    pub provider_calls: u64,
}

impl BulkReport {
    /// The keys that failed (held ones included).
    pub fn failed(&self) -> impl Iterator<Item = &KeyResult> {
        self.results.iter().filter(|r| r.outcome.is_err())
    }

    /// The keys skipped because another responder held them.
    pub fn held(&self) -> impl Iterator<Item = &KeyResult> {
        self.results.iter().filter(|r| r.held)
    }

    /// Number of keys that succeeded.
    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|r| r.outcome.is_ok()).count()
    }
}

/// The status a key has after `op` succeeded.
pub fn target_status(op: KeyOp) -> KeyStatus {
    match op {
        KeyOp::Disable => KeyStatus::Inactive,
        KeyOp::Enable => KeyStatus::Active,
        KeyOp::Revoke => KeyStatus::Revoked,
    }
}

/// Applies `op` to every key, at most `opts.concurrency` at a time. Keys whose provider
/// is missing from `providers` fail without a call. Never stops at a failure: every key
/// gets a result.
pub async fn run_bulk(
    db: &Cache,
    providers: &HashMap<String, Arc<dyn Provider>>,
    keys: Vec<Key>,
    op: KeyOp,
    reason: Option<&str>,
    opts: BulkOptions,
    mut progress: impl FnMut(&BulkProgress),
) -> BulkReport {
    let started = Instant::now();
    let total = keys.len();
    // Each key opens the cache for its journal entries; holding one idle connection for
    // the whole run keeps those from being the last to close, which would checkpoint the
    // WAL into the database (two fsyncs) on every close.
    let keepalive = {
        let db = db.path.clone();
        tokio::task::spawn_blocking(move || crate::store::Store::open(&db).ok())
            .await
            .ok()
            .flatten()
    };
    for p in providers.values() {
        if let Err(e) = super::ensure_provider(db, p.as_ref()).await {
            tracing::warn!(provider = p.name(), "cannot register the provider: {e}");
        }
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let mut results: Vec<Option<KeyResult>> = vec![None; total];
    for (i, key) in keys.into_iter().enumerate() {
        let Some(provider) = providers.get(&key.provider).cloned() else {
            results[i] = Some(KeyResult {
                target: target(&key),
                outcome: Err(format!(
                    "provider `{}` is not configured; add it to the config or sync again",
                    key.provider
                )),
                already: false,
                held: false,
                attempts: 0,
            });
            continue;
        };
        let sem = sem.clone();
        let db = db.clone();
        let reason = reason.map(str::to_string);
        set.spawn(async move {
            let _permit = sem
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            let already = key.status == target_status(op);
            let done = apply_key_op(&db, provider.clone(), &key, op, reason.as_deref()).await;
            let held = matches!(done, Err(ActionError::Held(_)));
            let outcome = done.map(|k| k.status).map_err(|e| e.to_string());
            let attempts = u32::from(!held);
            (
                i,
                KeyResult {
                    target: target(&key),
                    outcome,
                    already,
                    held,
                    attempts,
                },
            )
        });
    }
    let mut p = BulkProgress {
        total,
        done: results.iter().flatten().count(),
        failed: results.iter().flatten().count(),
    };
    progress(&p);
    let mut calls = 0u64;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => {
                calls += u64::from(r.attempts);
                p.done += 1;
                if r.outcome.is_err() {
                    p.failed += 1;
                }
                results[i] = Some(r);
            }
            Err(e) => {
                // A panicked task: its key keeps no result and is reported below.
                tracing::error!("bulk task failed: {e}");
                p.done += 1;
                p.failed += 1;
            }
        }
        progress(&p);
    }
    drop(keepalive);
    BulkReport {
        results: results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| KeyResult {
                    target: "?".into(),
                    outcome: Err("internal error: the task failed".into()),
                    already: false,
                    held: false,
                    attempts: 0,
                })
            })
            .collect(),
        elapsed: started.elapsed(),
        provider_calls: calls,
    }
}
