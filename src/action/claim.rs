//! One operation per key: every action on a key holds a claim on it for as long as it
//! runs ([`hold`]), taken before any provider call and given back at the end however it
//! ends. With `[team]` configured the claim is a row in the team store that a second
//! responder is refused ("alice@ws-12 is rotating this key since 03:12 (lease until
//! 03:22)"); alone, it is granted at once. A held claim is renewed every third of its
//! lease, so it counts while its holder runs and stops counting a lease after a crash.
//!
//! Also the one way actions journal ([`journal`]): to the team journal when configured,
//! else to the cache's.

use super::ActionError;
use crate::model::Key;
use crate::store::journal::NewEntry;
use crate::store::shared::{Claim, ClaimRequest, Shared};
use crate::store::Cache;
use std::sync::Arc;
use std::time::Duration;

/// A claim being held; [`Hold::release`] gives it back. Dropped without a release (a
/// panic), it stops being renewed and its lease runs out.
pub struct Hold {
    shared: Arc<dyn Shared>,
    claim: Claim,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

/// Holds `key` for `operation` (`revoke`, `rotate`, ...); refused with
/// [`ActionError::Held`] when another responder holds it.
pub async fn hold(db: &Cache, key: &Key, operation: &str) -> Result<Hold, ActionError> {
    hold_id(db, &key.provider, &key.id, operation).await
}

/// [`hold`] by provider and key id.
pub async fn hold_id(
    db: &Cache,
    provider: &str,
    key_id: &str,
    operation: &str,
) -> Result<Hold, ActionError> {
    let shared = db.shared();
    let lease = db.lease();
    let claim = shared
        .claim(&ClaimRequest {
            provider: provider.to_string(),
            key_id: key_id.to_string(),
            operation: operation.to_string(),
            lease,
        })
        .await?;
    let renewer = shared.is_team().then(|| {
        let (shared, claim) = (shared.clone(), claim.clone());
        tokio::spawn(renew_every(shared, claim, lease))
    });
    Ok(Hold {
        shared,
        claim,
        renewer,
    })
}

async fn renew_every(shared: Arc<dyn Shared>, claim: Claim, lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        match shared.renew(&claim, lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(key = %claim.target, "the claim was taken over by another responder");
                return;
            }
            // The lease still runs; the next renewal may get through.
            Err(e) => tracing::warn!(key = %claim.target, "cannot renew the claim: {e}"),
        }
    }
}

impl Hold {
    /// Gives the claim back, saying how the operation ended; a failure to release is
    /// logged (the lease then runs out by itself).
    pub async fn release(mut self, how: &str) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if let Err(e) = self.shared.release(&self.claim, how).await {
            tracing::warn!(key = %self.claim.target, "cannot release the claim: {e}");
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

/// How an operation ended, for the claim's record.
pub fn ended<T, E>(r: &Result<T, E>) -> &'static str {
    if r.is_ok() {
        "ok"
    } else {
        "failed"
    }
}

/// Appends a journal entry where this configuration journals: the team journal with
/// `[team]`, else the cache's (signed by its anchor).
pub async fn journal(db: &Cache, entry: &NewEntry<'_>) -> Result<(), ActionError> {
    db.shared().append_journal(entry).await?;
    Ok(())
}
