//! Claims in the team store: one live claim per key, taken in a transaction under a
//! per-key advisory lock and guarded by the unique index `claims_one_live`, so two
//! responders can never both hold a key. Lease times are the database's clock
//! (`clock_timestamp()`), so members' clocks do not matter.

use super::TeamStore;
use crate::store::journal::{host_name, os_user};
use crate::store::shared::{Claim, ClaimRequest, HeldBy, Holder, SharedError, Takeover};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// The columns [`holder_of`] reads.
const HOLDER_COLUMNS: &str = "id, holder_user, holder_host, operation,
     (extract(epoch FROM since) * 1000)::bigint,
     (extract(epoch FROM lease_until) * 1000)::bigint,
     lease_until < clock_timestamp()";

fn holder_of(r: &Row) -> Holder {
    Holder {
        claim: r.get(0),
        user: r.get(1),
        host: r.get(2),
        operation: r.get(3),
        since: crate::model::from_millis(r.get(4)),
        lease_until: crate::model::from_millis(r.get(5)),
        expired: r.get(6),
    }
}

fn live_sql() -> String {
    format!(
        "SELECT {HOLDER_COLUMNS} FROM claims
         WHERE provider = $1 AND key_id = $2 AND released_at IS NULL"
    )
}

fn held(provider: &str, key_id: &str, holder: Holder) -> SharedError {
    SharedError::Held(Box::new(HeldBy {
        target: format!("{provider}/{key_id}"),
        holder,
    }))
}

/// Takes the claim of `req`, or names who holds the key.
pub(super) async fn claim(store: &TeamStore, req: &ClaimRequest) -> Result<Claim, SharedError> {
    let target = format!("{}/{}", req.provider, req.key_id);
    let mut c = store.conn().await?;
    let tx = c
        .transaction()
        .await
        .map_err(|e| store.db_fail("starting a claim", &e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&target],
    )
    .await
    .map_err(|e| store.db_fail("locking the key", &e))?;
    if let Some(r) = tx
        .query_opt(&live_sql(), &[&req.provider, &req.key_id])
        .await
        .map_err(|e| store.db_fail("reading the key's claim", &e))?
    {
        return Err(held(&req.provider, &req.key_id, holder_of(&r)));
    }
    let lease_ms = req.lease.as_millis() as f64;
    let pid = std::process::id() as i32;
    let inserted = tx
        .query_one(
            "INSERT INTO claims (provider, key_id, operation, holder_user, holder_host,
                                 holder_pid, since, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(),
                     clock_timestamp() + $7::float8 * interval '1 millisecond')
             RETURNING id",
            &[
                &req.provider,
                &req.key_id,
                &req.operation,
                &os_user(),
                &host_name(),
                &pid,
                &lease_ms,
            ],
        )
        .await;
    let id: i64 = match inserted {
        Ok(r) => r.get(0),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            // A client that skipped the lock: the index still refuses the second claim.
            drop(tx);
            return match holder(store, &req.provider, &req.key_id).await? {
                Some(h) => Err(held(&req.provider, &req.key_id, h)),
                None => Err(store.fail(format!("claiming {target} collided; try again"))),
            };
        }
        Err(e) => return Err(store.db_fail("claiming the key", &e)),
    };
    tx.commit()
        .await
        .map_err(|e| store.db_fail("committing the claim", &e))?;
    tracing::info!(claim = id, key = %target, op = %req.operation, "claimed");
    Ok(Claim { id, target })
}

/// Extends the lease; false when the claim was released meanwhile (taken over).
pub(super) async fn renew(
    store: &TeamStore,
    claim: &Claim,
    lease: Duration,
) -> Result<bool, SharedError> {
    let c = store.conn().await?;
    let n = c
        .execute(
            "UPDATE claims SET lease_until = clock_timestamp() + $2::float8 * interval '1 millisecond'
             WHERE id = $1 AND released_at IS NULL",
            &[&claim.id, &(lease.as_millis() as f64)],
        )
        .await
        .map_err(|e| store.db_fail("renewing the claim", &e))?;
    Ok(n == 1)
}

/// Releases the claim, recording how the operation ended.
pub(super) async fn release(
    store: &TeamStore,
    claim: &Claim,
    how: &str,
) -> Result<(), SharedError> {
    let c = store.conn().await?;
    let n = c
        .execute(
            "UPDATE claims SET released_at = clock_timestamp(), released_how = $2
             WHERE id = $1 AND released_at IS NULL",
            &[&claim.id, &how],
        )
        .await
        .map_err(|e| store.db_fail("releasing the claim", &e))?;
    if n == 0 {
        tracing::warn!(claim = claim.id, key = %claim.target, "the claim had been taken over before it was released");
    }
    Ok(())
}

/// The live claim on a key.
pub(super) async fn holder(
    store: &TeamStore,
    provider: &str,
    key_id: &str,
) -> Result<Option<Holder>, SharedError> {
    let c = store.conn().await?;
    let r = c
        .query_opt(&live_sql(), &[&provider, &key_id])
        .await
        .map_err(|e| store.db_fail("reading the key's claim", &e))?;
    Ok(r.as_ref().map(holder_of))
}

/// Releases another responder's claim (see [`crate::store::shared::Shared::takeover`]).
pub(super) async fn takeover(
    store: &TeamStore,
    provider: &str,
    key_id: &str,
    force: bool,
    expected: Option<i64>,
) -> Result<Takeover, SharedError> {
    let target = format!("{provider}/{key_id}");
    let mut c = store.conn().await?;
    let tx = c
        .transaction()
        .await
        .map_err(|e| store.db_fail("starting a takeover", &e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&target],
    )
    .await
    .map_err(|e| store.db_fail("locking the key", &e))?;
    let Some(r) = tx
        .query_opt(&live_sql(), &[&provider, &key_id])
        .await
        .map_err(|e| store.db_fail("reading the key's claim", &e))?
    else {
        return Ok(Takeover::Free);
    };
    let h = holder_of(&r);
    let other_claim = expected.is_some_and(|id| id != h.claim);
    if other_claim || (!h.expired && !force) {
        return Err(held(provider, key_id, h));
    }
    let how = format!(
        "taken over by {}@{}{}",
        os_user(),
        host_name(),
        if h.expired { "" } else { " (forced)" }
    );
    tx.execute(
        "UPDATE claims SET released_at = clock_timestamp(), released_how = $2 WHERE id = $1",
        &[&h.claim, &how],
    )
    .await
    .map_err(|e| store.db_fail("taking the claim over", &e))?;
    tx.commit()
        .await
        .map_err(|e| store.db_fail("committing the takeover", &e))?;
    tracing::warn!(claim = h.claim, key = %target, "{how}");
    Ok(Takeover::Released(h))
}
