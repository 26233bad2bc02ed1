//! Rotation as a persisted state machine.
//!
//! ```text
//! planned -> rotating -> rotated -> delivering -> delivered -> verifying -> verified
//!    (state grace: the old key works until grace_until) -> finishing -> finished (done)
//! any step before verified, on failure or after a crash -> rolling_back -> finished
//!    (rolled_back: the new key revoked, the old key restored)
//! ```
//!
//! Each step is saved before its action and the result after it; the new secret lives
//! only in memory between `rotated` and `delivered`. [`drive`] runs from whatever step is
//! saved, so a first run and `keyaudit resume` share one path: resume reconciles with the
//! provider's real state (`get_key` of the old and new key) and with the sink (does it
//! hold a secret with the new key's fingerprint?), then finishes or rolls back. A new key
//! whose secret was never delivered is always revoked, and the journal says so; a sink
//! that can take a delivery back (Secrets Manager) is restored on a rollback.
//!
//! Test hooks at each step ([`super::crash`]): `KEYAUDIT_CRASH_AT=<step>` aborts the
//! process there, `KEYAUDIT_TEST_PAUSE_AT=<step>` stops it there to be killed.

use super::rollback::roll_back;
use super::settle::{settle_by_listing, settle_orphans};
use super::sink::{Sink, SinkError};
use super::workflow::{self, State, Step, Workflow};
use super::{apply_claimed, claim, handover, with_db, ActionError, KeyOp};
use crate::config::ProviderConfig;
use crate::model::{Key, KeyStatus};
use crate::provider::{Issue, OpKey, Provider, ProviderError};
use crate::secret::Secret;
use crate::store::journal::NewEntry;
use crate::store::workflows::Publication;
use crate::store::Cache;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

pub use super::crash::{crash_point, CRASH_POINTS};

/// Why a rotation could not start or continue.
#[derive(Debug, Error)]
pub enum RotateError {
    /// The provider has neither overlap nor atomic rotation.
    #[error("{provider} cannot rotate keys ({why}); nothing was changed")]
    Unsupported {
        /// The provider's name.
        provider: String,
        /// Why, in the provider's words ([`crate::provider::Provider::refusal`]).
        why: String,
    },
    /// The key is revoked or expired.
    #[error("key {target} is {status}; only an active or disabled key can be rotated")]
    NotRotatable {
        /// `provider/key_id`.
        target: String,
        /// Its status at the provider.
        status: KeyStatus,
    },
    /// The sink refused before anything was created.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The provider or the cache failed.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// `resume ID` names no workflow.
    #[error("workflow #{0} does not exist; `keyaudit workflows --all` lists them")]
    NoWorkflow(i64),
    /// A team workflow cannot be adopted ([`super::handover::adopt`]).
    #[error("cannot adopt team workflow #{team_id}: {why}")]
    Adopt {
        /// The team's number of the workflow.
        team_id: i64,
        /// Why, and what to do.
        why: String,
    },
    /// Another member adopted the workflow while this process was driving it.
    #[error("workflow #{id}: {why}; stopped here, nothing more was asked of the provider")]
    HandedOver {
        /// The workflow.
        id: i64,
        /// Who has it (the cache's `error`).
        why: String,
    },
    /// A saved sink spec does not parse (the cache was edited, or is from another build).
    #[error("workflow #{id} has a sink spec that no longer parses: {why}")]
    BadSink {
        /// The workflow.
        id: i64,
        /// The parse error.
        why: String,
    },
}

impl From<ProviderError> for RotateError {
    fn from(e: ProviderError) -> Self {
        RotateError::Action(ActionError::Provider(e))
    }
}

impl From<crate::store::StoreError> for RotateError {
    fn from(e: crate::store::StoreError) -> Self {
        RotateError::Action(ActionError::Store(e))
    }
}

/// What to rotate and where the new secret goes.
pub struct RotateRequest {
    /// The provider that issued the key.
    pub provider: Arc<dyn Provider>,
    /// The key to replace, as cached (or fetched).
    pub key: Key,
    /// Where the new secret goes, once.
    pub sink: Sink,
    /// How long the old key keeps working (providers with overlap).
    pub grace: Duration,
    /// Allow stdout that is not a terminal, and overwriting a file sink.
    pub force: bool,
    /// Why (journaled).
    pub reason: Option<String>,
}

/// Saves the workflow in the cache, then publishes it to the team; stops the rotation
/// when another member adopted it meanwhile.
async fn save(db: &Cache, wf: &Workflow) -> Result<(), RotateError> {
    match handover::save(db, wf).await? {
        Publication::HandedOver(tw) => Err(RotateError::HandedOver {
            id: wf.id,
            why: handover::handed_over_why(&tw),
        }),
        Publication::Stored => Ok(()),
    }
}

/// Ends a rotation in which nothing is left to undo: finished, rolled back, saved, and
/// journaled with its `error` as the reason.
async fn finish_rolled_back(db: &Cache, wf: &mut Workflow) -> Result<(), RotateError> {
    wf.step = Step::Finished;
    wf.state = State::RolledBack;
    save(db, wf).await?;
    let result = format!("rolled back: {}", wf.error.as_deref().unwrap_or(""));
    journal(db, wf, result).await
}

/// Ends an in-place rotation (a roll) whose answer was lost: whether the key's value
/// changed is unknown, so the workflow stops for an operator, saved and journaled.
async fn stop_unknown(db: &Cache, wf: &mut Workflow) -> Result<(), RotateError> {
    let why = wf
        .error
        .take()
        .unwrap_or_else(|| "interrupted around the roll".to_string());
    wf.error = Some(format!(
        "outcome unknown: {why}; the provider may have given {} a new value that was never \
         seen (a roll keeps the key's id, so its listing cannot tell). Check whether the \
         integration still authenticates with its current secret; if it does not, roll again \
         with `keyaudit rotate {} --no-overlap`",
        wf.target(),
        wf.target()
    ));
    wf.step = Step::Finished;
    wf.state = State::Failed;
    save(db, wf).await?;
    let result = format!("unknown: {}", wf.error.as_deref().unwrap_or(""));
    journal(db, wf, result).await
}

async fn journal(db: &Cache, wf: &Workflow, result: String) -> Result<(), RotateError> {
    let target = wf.target();
    let reason = wf.reason.clone();
    let params = serde_json::json!({
        "workflow": wf.id,
        "new_key": wf.new_key_id,
        "sink": wf.sink,
        "grace_seconds": wf.grace_seconds,
        "grace_until": wf.grace_until.map(crate::model::rfc3339),
        "step": wf.step.as_str(),
    });
    claim::journal(
        db,
        &NewEntry {
            action: "rotate",
            target: &target,
            reason: reason.as_deref(),
            params,
            result: &result,
        },
    )
    .await?;
    Ok(())
}

/// The workflow's idempotency key (a row from before schema version 7 gets one now; the
/// next save keeps it).
pub(super) fn op_key(wf: &mut Workflow) -> OpKey {
    let key = wf
        .op_key
        .get_or_insert_with(|| OpKey::random().as_str().to_string());
    OpKey::saved(key)
}

/// How long after the first call a provider still remembers an idempotency key (24 h in
/// the provider API), less a margin: past it, sending the rotation again could rotate
/// twice.
const REPLAY_WINDOW: chrono::Duration = chrono::Duration::hours(23);

async fn put_key(db: &Cache, key: Key) -> Result<(), RotateError> {
    with_db(db, move |s| s.put_key(&key).map(|_| ())).await?;
    Ok(())
}

/// Starts a rotation: checks the provider and the sink, saves the workflow, and drives it
/// as far as it goes now (to `grace`, or `done` when there is no grace period). Returns
/// the workflow as it stands; a rolled-back or failed one carries its `error`.
///
/// The key is claimed before the provider is asked anything ([`claim::hold`]: refused
/// when another responder holds it) and released when this call returns, a workflow left
/// in its grace period included (`resume` claims it again).
pub async fn rotate(db: &Cache, req: RotateRequest) -> Result<Workflow, RotateError> {
    let hold = claim::hold(db, &req.key, "rotate").await?;
    let r = rotate_claimed(db, req).await;
    hold.release(ended(&r)).await;
    r
}

/// How a rotation run ended, for its claim's record.
pub(super) fn ended(r: &Result<Workflow, RotateError>) -> &'static str {
    match r {
        Ok(w) if w.state == State::RolledBack => "rolled back",
        Ok(w) if w.error.is_some() => "unfinished",
        Ok(_) => "ok",
        Err(_) => "failed",
    }
}

async fn rotate_claimed(db: &Cache, req: RotateRequest) -> Result<Workflow, RotateError> {
    let caps = req.provider.capabilities();
    if !(caps.rotate_overlap || caps.rotate_atomic) {
        return Err(RotateError::Unsupported {
            provider: req.provider.name().to_string(),
            why: req
                .provider
                .refusal("rotate")
                .unwrap_or_else(|| "no overlap or atomic rotation".into()),
        });
    }
    // The provider's word, not the cache's: the status to check, and the successor an
    // earlier rotation left (so a reconcile never mistakes it for ours).
    let current = req.provider.get_key(&req.key.id).await?;
    if matches!(current.status, KeyStatus::Revoked | KeyStatus::Expired) {
        return Err(RotateError::NotRotatable {
            target: super::target(&req.key),
            status: current.status,
        });
    }
    req.sink.preflight(req.force).await?;
    super::ensure_provider(db, req.provider.as_ref()).await?;
    let grace = if caps.rotate_overlap {
        req.grace.as_secs() as i64
    } else {
        0
    };
    let mut wf = Workflow::new_rotation(
        &req.key.provider,
        &req.key.id,
        &req.sink.spec(),
        grace,
        req.reason.as_deref(),
    );
    wf.old_status = Some(current.status.to_string());
    wf.prior_successor = current.rotated_to.clone();
    {
        let w = wf.clone();
        wf.id = with_db(db, move |s| workflow::insert(s, &w)).await?;
    }
    handover::publish(db, &mut wf).await?;
    journal(db, &wf, "started".into()).await?;
    tracing::info!(workflow = wf.id, key = %wf.target(), sink = %wf.sink, "rotation started");
    crash_point("planned");
    drive(db, req.provider, wf, &req.sink, req.force, None).await
}

/// Continues an unfinished workflow after a crash or an interruption (or finishes one
/// whose grace period is over): reconciles with the provider and the sink, then finishes
/// or rolls back. A workflow in its grace period is left as it is until the grace ends.
/// `entry` is the provider's configuration entry, which a sink may use to reach its
/// service ([`Sink::use_provider`]), as the first run did.
pub async fn resume(
    db: &Cache,
    provider: Arc<dyn Provider>,
    id: i64,
    force: bool,
    entry: Option<&ProviderConfig>,
) -> Result<Workflow, RotateError> {
    let wf = with_db(db, move |s| workflow::get(s, id))
        .await?
        .ok_or(RotateError::NoWorkflow(id))?;
    if !wf.state.is_open() || wf.kind == super::guided::KIND {
        return Ok(wf);
    }
    let mut sink = Sink::saved(&wf.sink).map_err(|e| RotateError::BadSink {
        id,
        why: e.to_string(),
    })?;
    if let Some(entry) = entry {
        sink.use_provider(entry);
    }
    let hold = claim::hold_id(db, &wf.provider, &wf.key_id, "rotate").await?;
    let mut wf = wf;
    // Under the claim: is it still this cache's to drive?
    let r = match handover::publish(db, &mut wf).await {
        Ok(Publication::HandedOver(_)) => Ok(wf),
        Ok(Publication::Stored) => resume_claimed(db, provider, wf, &sink, force).await,
        Err(e) => Err(e.into()),
    };
    hold.release(ended(&r)).await;
    r
}

/// Drives a saved workflow whose key this process holds, from its saved step.
pub(super) async fn resume_claimed(
    db: &Cache,
    provider: Arc<dyn Provider>,
    mut wf: Workflow,
    sink: &Sink,
    force: bool,
) -> Result<Workflow, RotateError> {
    if wf.step == Step::Planned {
        // Never start a rotation the operator is no longer watching: reconcile as if
        // the provider call had been cut off (nothing happened, so it is rolled back).
        wf.step = Step::Rotating;
    }
    tracing::info!(workflow = wf.id, step = %wf.step, "resuming");
    drive(db, provider, wf, sink, force, None).await
}

/// Runs the state machine from the saved step until it finishes or must wait.
async fn drive(
    db: &Cache,
    provider: Arc<dyn Provider>,
    mut wf: Workflow,
    sink: &Sink,
    force: bool,
    mut secret: Option<Secret>,
) -> Result<Workflow, RotateError> {
    let caps = provider.capabilities();
    let label = wf.target();
    loop {
        match wf.step {
            Step::Planned => {
                wf.step = Step::Rotating;
                save(db, &wf).await?;
                crash_point("rotating");
                let grace = Duration::from_secs(wf.grace_seconds.max(0) as u64);
                let op = op_key(&mut wf).step("rotate");
                let id = wf.key_id.clone();
                match provider.issue(Issue::Rotate { id: &id, grace }, &op).await {
                    Ok(issued) => {
                        crash_point("after:rotating");
                        wf.new_key_id = Some(issued.key.id.clone());
                        wf.new_fingerprint = Some(issued.secret.fingerprint());
                        if wf.grace_seconds > 0 {
                            wf.grace_until =
                                Some(Utc::now() + chrono::Duration::seconds(wf.grace_seconds));
                        }
                        wf.step = Step::Rotated;
                        save(db, &wf).await?;
                        put_key(db, issued.key.clone()).await?;
                        if let Some(old) = issued.old.clone() {
                            put_key(db, old).await?;
                        }
                        secret = Some(issued.secret);
                        crash_point("rotated");
                    }
                    Err(e) if !super::unknown_outcome(&e) => {
                        // A definite refusal (not found, conflict, unauthorized): the
                        // provider did not rotate.
                        wf.error = Some(format!("rotate call refused: {e}; nothing was changed"));
                        finish_rolled_back(db, &mut wf).await?;
                        return Ok(wf);
                    }
                    Err(e) => {
                        // The answer may have been lost after the provider acted:
                        // reconcile as a resume would.
                        tracing::warn!(workflow = wf.id, "rotate call failed: {e}");
                        wf.error = Some(format!("rotate call failed: {e}"));
                    }
                }
            }
            Step::Rotating => {
                // Interrupted around the provider call: did the provider rotate?
                let old = provider.get_key(&wf.key_id).await?;
                let rotated = old.rotated_to.is_some() && old.rotated_to != wf.prior_successor;
                if rotated && caps.retry_changes && Utc::now() - wf.created < REPLAY_WINDOW {
                    // The provider answers the same idempotency key with the first answer:
                    // the new key and its secret, without rotating again.
                    let grace = Duration::from_secs(wf.grace_seconds.max(0) as u64);
                    let op = op_key(&mut wf).step("rotate");
                    let id = wf.key_id.clone();
                    match provider.issue(Issue::Rotate { id: &id, grace }, &op).await {
                        Ok(issued) if old.rotated_to.as_deref() == Some(issued.key.id.as_str()) => {
                            wf.new_key_id = Some(issued.key.id.clone());
                            wf.new_fingerprint = Some(issued.secret.fingerprint());
                            if wf.grace_seconds > 0 && wf.grace_until.is_none() {
                                wf.grace_until =
                                    Some(Utc::now() + chrono::Duration::seconds(wf.grace_seconds));
                            }
                            wf.error = None;
                            wf.step = Step::Rotated;
                            save(db, &wf).await?;
                            put_key(db, issued.key.clone()).await?;
                            journal(
                                db,
                                &wf,
                                format!(
                                    "answer recovered: the provider had rotated to {}; its answer was taken again with the same idempotency key",
                                    issued.key.id
                                ),
                            )
                            .await?;
                            secret = Some(issued.secret);
                            continue;
                        }
                        Ok(issued) => {
                            // Another key than the provider's successor: revoke it with
                            // the successor below (neither was delivered).
                            tracing::warn!(workflow = wf.id, got = %issued.key.id, "rotation replay answered another key");
                            let base = op_key(&mut wf);
                            settle_orphans(
                                db,
                                &provider,
                                &wf,
                                &base,
                                std::slice::from_ref(&issued.key),
                            )
                            .await?;
                        }
                        Err(e) => {
                            tracing::warn!(
                                workflow = wf.id,
                                "taking the rotation's answer again failed: {e}"
                            );
                        }
                    }
                }
                if caps.rotate_in_place && !caps.retry_changes {
                    // The same key with a new value: no listing tells whether the roll
                    // took place, and its new value, if any, was never seen. Sending it
                    // again would roll once more; an operator has to decide.
                    stop_unknown(db, &mut wf).await?;
                    return Ok(wf);
                }
                if !caps.retry_changes {
                    // No idempotency: find the keys created since the call and adopt
                    // the one the sink holds; the others are orphans.
                    let base = op_key(&mut wf);
                    let (adopted, orphans) =
                        settle_by_listing(db, &provider, &wf, &base, sink, &old).await?;
                    match adopted {
                        Some((new, s)) => {
                            wf.new_key_id = Some(new.id.clone());
                            wf.new_fingerprint = Some(new.fingerprint.clone());
                            if wf.grace_seconds > 0 && wf.grace_until.is_none() {
                                wf.grace_until =
                                    Some(Utc::now() + chrono::Duration::seconds(wf.grace_seconds));
                            }
                            wf.error = None;
                            wf.step = Step::Delivered;
                            save(db, &wf).await?;
                            journal(
                                db,
                                &wf,
                                format!(
                                    "adopted: the provider created {} and {} holds its secret",
                                    new.id, wf.sink
                                ),
                            )
                            .await?;
                            secret = Some(s);
                            continue;
                        }
                        None if rotated => {}
                        None => {
                            let why = wf.error.take().unwrap_or_else(|| {
                                "interrupted before the provider rotated".to_string()
                            });
                            wf.error = Some(match orphans.as_slice() {
                                [] => format!("{why}; the provider holds no key created since the call"),
                                ids => format!("{why}; the provider had created {}, now revoked (journaled as orphan-revoked)", ids.join(", ")),
                            });
                            finish_rolled_back(db, &mut wf).await?;
                            return Ok(wf);
                        }
                    }
                }
                let ours = match &old.rotated_to {
                    Some(n) if rotated => match provider.get_key(n).await {
                        Ok(new) => Some(new),
                        Err(ProviderError::NotFound { .. }) => None,
                        Err(e) => return Err(e.into()),
                    },
                    _ => None,
                };
                match ours {
                    Some(new) => {
                        wf.new_key_id = Some(new.id.clone());
                        wf.new_fingerprint = Some(new.fingerprint.clone());
                        wf.error = Some(
                            "the provider rotated but its answer was lost: the new secret was never seen"
                                .into(),
                        );
                        put_key(db, new).await?;
                        wf.step = Step::RollingBack;
                    }
                    None => {
                        let why = wf.error.take().unwrap_or_else(|| {
                            "interrupted before the provider rotated".to_string()
                        });
                        wf.error = Some(format!("{why}; nothing was changed"));
                        finish_rolled_back(db, &mut wf).await?;
                        return Ok(wf);
                    }
                }
            }
            Step::Rotated | Step::Delivering => {
                let Some(s) = secret.take() else {
                    // Resumed: the secret was only in memory. Does the sink hold it?
                    let fp = wf.new_fingerprint.clone().unwrap_or_default();
                    match sink.holds(&fp).await {
                        Ok(Some(s)) => {
                            secret = Some(s);
                            wf.step = Step::Delivered;
                            save(db, &wf).await?;
                        }
                        Err(e) => {
                            // Unknown is not "not there": revoking now could revoke the
                            // key the sink serves. Stay, and let a later resume ask again.
                            wf.error = Some(format!(
                                "cannot tell whether {} holds the new secret: {e}; run `keyaudit resume`",
                                wf.sink
                            ));
                            save(db, &wf).await?;
                            return Ok(wf);
                        }
                        Ok(None) => match recover_secret(&provider, &mut wf).await {
                            Some(s) => {
                                // Delivered from the provider's repeated answer.
                                journal(
                                    db,
                                    &wf,
                                    format!(
                                        "answer recovered: the new secret of {} was taken again with the same idempotency key",
                                        wf.new_key_id.as_deref().unwrap_or("?")
                                    ),
                                )
                                .await?;
                                secret = Some(s);
                                wf.step = Step::Rotated;
                            }
                            None => {
                                wf.error = Some(format!(
                                    "interrupted before the new secret reached {}; it is lost (never stored)",
                                    wf.sink
                                ));
                                wf.step = Step::RollingBack;
                            }
                        },
                    }
                    continue;
                };
                wf.step = Step::Delivering;
                save(db, &wf).await?;
                crash_point("delivering");
                match sink.deliver(&s, force, &label).await {
                    Ok(()) => {
                        crash_point("after:delivering");
                        wf.step = Step::Delivered;
                        save(db, &wf).await?;
                        secret = Some(s);
                        crash_point("delivered");
                    }
                    Err(e) => {
                        wf.error = Some(format!("delivery to {} failed: {e}", wf.sink));
                        wf.step = Step::RollingBack;
                    }
                }
            }
            Step::Delivered | Step::Verifying => {
                wf.step = Step::Verifying;
                save(db, &wf).await?;
                crash_point("verifying");
                let fp = wf.new_fingerprint.clone().unwrap_or_default();
                if secret.is_none() {
                    match sink.holds(&fp).await {
                        Ok(s) => secret = s,
                        Err(e) => {
                            wf.error = Some(format!(
                                "verification failed for now: cannot read the new secret back from {}: {e}; run `keyaudit resume`",
                                wf.sink
                            ));
                            wf.step = Step::Delivered;
                            save(db, &wf).await?;
                            return Ok(wf);
                        }
                    }
                }
                let new_id = wf.new_key_id.clone().unwrap_or_default();
                let checked = match (&secret, caps.verify_secret) {
                    (Some(s), true) => provider.verify_secret(s).await.and_then(|id| {
                        if id == new_id {
                            Ok(())
                        } else {
                            Err(ProviderError::Protocol {
                                provider: provider.name().to_string(),
                                message: format!(
                                    "the new secret authenticates as {id}, expected {new_id}"
                                ),
                            })
                        }
                    }),
                    // The secret cannot be read back (stdout, screen) or checked: the provider's
                    // word on the new key's status has to do.
                    _ => provider.get_key(&new_id).await.and_then(|k| {
                        if k.status == KeyStatus::Active {
                            Ok(())
                        } else {
                            Err(ProviderError::Conflict {
                                provider: provider.name().to_string(),
                                message: format!("the new key {new_id} is {}", k.status),
                            })
                        }
                    }),
                };
                secret = None;
                match checked {
                    Ok(()) => {
                        wf.step = Step::Verified;
                        wf.state = State::Grace;
                        wf.switched_at = Some(Utc::now());
                        wf.error = None;
                        save(db, &wf).await?;
                        let until = wf
                            .grace_until
                            .map(|g| {
                                format!("the old key works until {}", crate::model::rfc3339(g))
                            })
                            .unwrap_or_else(|| "the old key stopped working".into());
                        journal(
                            db,
                            &wf,
                            format!(
                                "ok: new key {new_id} delivered to {} and verified; {until}",
                                wf.sink
                            ),
                        )
                        .await?;
                        crash_point("verified");
                    }
                    Err(e) if e.is_transient() => {
                        // Try again later: the key is delivered, nothing is lost.
                        wf.error = Some(format!(
                            "verification failed for now: {e}; run `keyaudit resume`"
                        ));
                        wf.step = Step::Delivered;
                        save(db, &wf).await?;
                        return Ok(wf);
                    }
                    Err(e) => {
                        wf.error = Some(format!(
                            "the new key does not work: {e}; the secret delivered to {} is revoked",
                            wf.sink
                        ));
                        wf.step = Step::RollingBack;
                    }
                }
            }
            Step::Verified => {
                let over = wf.grace_until.is_none_or(|g| g <= Utc::now());
                if !over {
                    return Ok(wf);
                }
                wf.step = Step::Finishing;
                save(db, &wf).await?;
            }
            Step::Finishing => {
                crash_point("finishing");
                let old = provider.get_key(&wf.key_id).await?;
                let reason = format!("rotation #{}: grace period over", wf.id);
                // A provider that rolls a key's value in place (Cloudflare) keeps its id:
                // the "old key" is the new one, and its old value already stopped.
                let rolled_in_place = wf.new_key_id.as_deref() == Some(wf.key_id.as_str());
                if old.status != KeyStatus::Revoked && !rolled_in_place {
                    let op = op_key(&mut wf).step("revoke-old");
                    if let Err(e) = apply_claimed(
                        db,
                        provider.clone(),
                        &old,
                        KeyOp::Revoke,
                        Some(&reason),
                        &op,
                    )
                    .await
                    {
                        wf.error = Some(format!(
                            "revoking the old key failed: {e}; run `keyaudit resume`"
                        ));
                        save(db, &wf).await?;
                        return Ok(wf);
                    }
                }
                wf.step = Step::Finished;
                wf.state = State::Done;
                wf.error = None;
                save(db, &wf).await?;
                let done = if rolled_in_place {
                    "done: the key's old secret stopped working when it was rolled"
                } else {
                    "done: old key revoked"
                };
                journal(db, &wf, done.into()).await?;
                return Ok(wf);
            }
            Step::RollingBack => {
                save(db, &wf).await?;
                crash_point("rolling_back");
                match roll_back(db, &provider, &wf, sink).await {
                    Ok(note) => {
                        wf.step = Step::Finished;
                        wf.state = State::RolledBack;
                        save(db, &wf).await?;
                        journal(
                            db,
                            &wf,
                            format!(
                                "rolled back: {}; {note}",
                                wf.error.as_deref().unwrap_or("interrupted")
                            ),
                        )
                        .await?;
                    }
                    Err(e) => {
                        let why = wf.error.take().unwrap_or_default();
                        wf.error = Some(format!(
                            "{why}; rolling back failed: {e}; run `keyaudit resume`"
                        ));
                        save(db, &wf).await?;
                    }
                }
                return Ok(wf);
            }
            Step::Finished => return Ok(wf),
            // Guided rotations are driven by `super::guided`, never here.
            Step::AwaitingNew | Step::AwaitingQuiet | Step::ReadyToRevoke => return Ok(wf),
        }
    }
}

/// The new secret again, from an idempotent provider's repeated answer to the saved
/// rotation (same idempotency key, within the provider's memory), when it names the
/// key the workflow recorded. `None` when the provider has no idempotency or answers
/// otherwise.
async fn recover_secret(provider: &Arc<dyn Provider>, wf: &mut Workflow) -> Option<Secret> {
    if !provider.capabilities().retry_changes || Utc::now() - wf.created >= REPLAY_WINDOW {
        return None;
    }
    let grace = Duration::from_secs(wf.grace_seconds.max(0) as u64);
    let op = op_key(wf).step("rotate");
    let id = wf.key_id.clone();
    match provider.issue(Issue::Rotate { id: &id, grace }, &op).await {
        Ok(issued)
            if Some(&issued.key.id) == wf.new_key_id.as_ref()
                && Some(issued.secret.fingerprint()) == wf.new_fingerprint =>
        {
            Some(issued.secret)
        }
        Ok(issued) => {
            tracing::warn!(workflow = wf.id, got = %issued.key.id, "the repeated rotation answered another key");
            None
        }
        Err(e) => {
            tracing::warn!(
                workflow = wf.id,
                "taking the rotation's answer again failed: {e}"
            );
            None
        }
    }
}
