//! Rotations shared by a team. Every save of a rotation is published to the team store
//! ([`publish`]), so every member sees where each one stands (`keyaudit workflows
//! --team`). When its owner is away (off shift, crashed), another member adopts it
//! ([`adopt`]): under the key's claim, the team store hands the workflow over and
//! journals it in one transaction, the adopter's cache takes a copy under the workflow's
//! team name, and the adopter drives it from the saved step as a resume would, with the
//! same idempotency key, so a provider that remembers it answers the first call again
//! instead of rotating twice. The former owner learns of it on its next save or resume
//! ([`State::HandedOver`]) and stops.
//!
//! One person (no `[team]`) publishes nothing and has nothing to adopt.

use super::rotate::{self, RotateError};
use super::sink::Sink;
use super::workflow::{State, Step, Workflow};
use super::{claim, with_db, ActionError};
use crate::config::ProviderConfig;
use crate::provider::Provider;
use crate::store::journal::{host_name, os_user, NewEntry};
use crate::store::shared::SharedError;
use crate::store::workflows::{Publication, TeamWorkflow, WorkflowName, WorkflowOwner};
use crate::store::Cache;
use std::sync::Arc;

/// Workflow `id` of the cache `s`: its team name and this cache as its owner.
fn identity_in(
    s: &crate::store::Store,
    id: i64,
) -> Result<(WorkflowName, WorkflowOwner), crate::store::StoreError> {
    let owner = WorkflowOwner {
        cache: s.cache_id()?,
        id,
        user: os_user(),
        host: host_name(),
    };
    Ok((s.workflow_name(id)?, owner))
}

async fn identity(db: &Cache, id: i64) -> Result<(WorkflowName, WorkflowOwner), ActionError> {
    with_db(db, move |s| identity_in(s, id)).await
}

/// Saves `wf` in the cache, then publishes it ([`publish`]); with a team store, the
/// cache is opened once for both the save and the workflow's team name.
pub(super) async fn save(db: &Cache, wf: &Workflow) -> Result<Publication, ActionError> {
    let team = db.shared().is_team();
    let w = wf.clone();
    let named = with_db(db, move |s| {
        super::workflow::save(s, &w)?;
        team.then(|| identity_in(s, w.id)).transpose()
    })
    .await?;
    match named {
        Some((name, owner)) => publish_as(db, &mut wf.clone(), &name, &owner).await,
        None => Ok(Publication::Stored),
    }
}

/// Publishes `wf` as saved in the cache. [`Publication::HandedOver`] when another
/// member adopted it: the cache's row is then marked so, and `wf` with it. A team store
/// that cannot be reached is logged and skipped: the cache's row is the owner's record,
/// and its next save publishes it.
pub(super) async fn publish(db: &Cache, wf: &mut Workflow) -> Result<Publication, ActionError> {
    if !db.shared().is_team() {
        return Ok(Publication::Stored);
    }
    let (name, owner) = identity(db, wf.id).await?;
    publish_as(db, wf, &name, &owner).await
}

async fn publish_as(
    db: &Cache,
    wf: &mut Workflow,
    name: &WorkflowName,
    owner: &WorkflowOwner,
) -> Result<Publication, ActionError> {
    match db.shared().publish_workflow(name, owner, wf).await {
        Ok(Publication::HandedOver(tw)) => {
            mark_handed_over(db, wf, &tw).await?;
            Ok(Publication::HandedOver(tw))
        }
        Ok(p) => Ok(p),
        Err(SharedError::Team { store, message }) => {
            tracing::warn!(
                workflow = wf.id,
                "cannot publish the workflow to team store {store}: {message}"
            );
            Ok(Publication::Stored)
        }
        Err(e) => Err(e.into()),
    }
}

/// The cache's setting holding the last `updated` time of the workflows published.
const PUBLISHED_MARK: &str = "team.workflows.published";

/// Publishes every workflow of the cache saved since the last one published: those
/// saved while the team store could not be reached, and guided rotations (which advance
/// with each sync, in the cache). Called after a sync and by `workflows` and `resume`.
/// Returns how many were published.
pub async fn publish_pending(db: &Cache) -> Result<usize, ActionError> {
    if !db.shared().is_team() {
        return Ok(0);
    }
    let pending = with_db(db, |s| {
        let after = s
            .meta(PUBLISHED_MARK)?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(-1);
        Ok(super::workflow::list(s, true)?
            .into_iter()
            // A row another member adopted is theirs to publish.
            .filter(|w| crate::model::to_millis(w.updated) > after && w.state != State::HandedOver)
            .collect::<Vec<_>>())
    })
    .await?;
    for mut wf in pending.iter().cloned() {
        let (name, owner) = identity(db, wf.id).await?;
        if let Publication::HandedOver(tw) =
            db.shared().publish_workflow(&name, &owner, &wf).await?
        {
            mark_handed_over(db, &mut wf, &tw).await?;
        }
    }
    // Marked only once all are published: a failure leaves them for the next call.
    if let Some(m) = pending
        .iter()
        .map(|w| crate::model::to_millis(w.updated))
        .max()
    {
        with_db(db, move |s| s.set_meta(PUBLISHED_MARK, &m.to_string())).await?;
    }
    Ok(pending.len())
}

/// [`publish_pending`], a failure logged: what calls it has done its own work.
pub async fn publish_pending_or_warn(db: &Cache) {
    if let Err(e) = publish_pending(db).await {
        tracing::warn!("workflows not published to the team store: {e}");
    }
}

/// Why a workflow is no longer this cache's to drive.
pub(super) fn handed_over_why(tw: &TeamWorkflow) -> String {
    format!(
        "adopted by {} at {} as team workflow #{}; it is theirs now",
        tw.owner.who(),
        crate::model::rfc3339(tw.published),
        tw.team_id
    )
}

/// Records in the cache that `tw`'s owner drives this workflow now.
async fn mark_handed_over(
    db: &Cache,
    wf: &mut Workflow,
    tw: &TeamWorkflow,
) -> Result<(), ActionError> {
    wf.state = State::HandedOver;
    wf.error = Some(handed_over_why(tw));
    let w = wf.clone();
    with_db(db, move |s| super::workflow::save(s, &w)).await
}

/// What `keyaudit workflows` tells a member about the team's workflows.
#[derive(Debug, Default)]
pub struct Survey {
    /// This cache's open workflows that another member adopted, now marked so.
    pub handed_over: Vec<Workflow>,
    /// How many open workflows other members drive.
    pub others_open: usize,
}

/// Marks every open workflow of this cache that another member adopted, and counts the
/// open workflows the others drive: one read of the team's workflows.
pub async fn survey(db: &Cache) -> Result<Survey, ActionError> {
    let shared = db.shared();
    if !shared.is_team() {
        return Ok(Survey::default());
    }
    let team = shared.team_workflows(true).await?;
    let (me, open) = with_db(db, |s| {
        let open = super::workflow::list(s, false)?
            .into_iter()
            .map(|w| s.workflow_name(w.id).map(|n| (w, n)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((s.cache_id()?, open))
    })
    .await?;
    let mut handed = Vec::new();
    for (mut wf, name) in open {
        let Some(tw) = team.iter().find(|t| t.name == name) else {
            continue;
        };
        if tw.owner.cache != me || tw.owner.id != wf.id {
            mark_handed_over(db, &mut wf, tw).await?;
            handed.push(wf);
        }
    }
    let others_open = team
        .iter()
        .filter(|t| t.owner.cache != me && t.workflow.state.is_open())
        .count();
    Ok(Survey {
        handed_over: handed,
        others_open,
    })
}

/// What an adoption needs besides the team's number of the workflow.
pub struct Adoption<'a> {
    /// The provider of the workflow's key (the adopter's configuration of it).
    pub provider: Arc<dyn Provider>,
    /// Where the new secret goes from here, instead of the owner's sink.
    pub deliver: Option<Sink>,
    /// As for `rotate`: allow a non-terminal stdout or overwriting a file sink.
    pub force: bool,
    /// The provider's configuration entry, which a sink may use ([`Sink::use_provider`]).
    pub entry: Option<&'a ProviderConfig>,
}

fn refused(team_id: i64, why: impl Into<String>) -> RotateError {
    RotateError::Adopt {
        team_id,
        why: why.into(),
    }
}

/// Whether the steps still to run read or write the sink: after the new key is verified,
/// only the old key's revoke is left.
fn needs_sink(step: Step) -> bool {
    !matches!(step, Step::Verified | Step::Finishing | Step::Finished)
}

/// Team workflow `team_id`, as its owner last published it.
pub async fn team_workflow(db: &Cache, team_id: i64) -> Result<TeamWorkflow, RotateError> {
    db.shared()
        .team_workflows(true)
        .await
        .map_err(ActionError::from)?
        .into_iter()
        .find(|t| t.team_id == team_id)
        .ok_or_else(|| {
            refused(
                team_id,
                "the team store has no such workflow; `keyaudit workflows --team --all` lists them",
            )
        })
}

/// Adopts team workflow `team_id` from its owner and drives it as far as it goes now
/// (as `keyaudit resume` would). Refused while its key is claimed (its owner is running
/// it: the refusal names them), when it is finished, when it is already this cache's,
/// and when its sink is a file or a terminal on another host while the secret still has
/// to be delivered or read back (`deliver` names a sink here).
/// `seen` is the workflow as [`team_workflow`] read it, which names the key to claim.
pub async fn adopt(
    db: &Cache,
    seen: &TeamWorkflow,
    a: Adoption<'_>,
) -> Result<Workflow, RotateError> {
    let team_id = seen.team_id;
    super::ensure_provider(db, a.provider.as_ref()).await?;
    let hold = claim::hold_id(db, &seen.workflow.provider, &seen.workflow.key_id, "rotate").await?;
    let r = adopt_held(db, team_id, a).await;
    hold.release(rotate::ended(&r)).await;
    r
}

/// [`adopt`] once the key is held: nobody drives the workflow now, so what the team
/// store holds of it is its last word.
async fn adopt_held(db: &Cache, team_id: i64, a: Adoption<'_>) -> Result<Workflow, RotateError> {
    let tw = team_workflow(db, team_id).await?;
    let me = with_db(db, |s| s.cache_id()).await?;
    let wf = &tw.workflow;
    if tw.owner.cache == me {
        return Err(refused(
            team_id,
            format!(
                "it is this cache's workflow #{}: run `keyaudit resume {}`",
                tw.owner.id, tw.owner.id
            ),
        ));
    }
    if !wf.state.is_open() {
        return Err(refused(
            team_id,
            format!("it is {}; nothing is left to do", wf.state),
        ));
    }
    if wf.kind == super::guided::KIND {
        // A guided rotation waits on what each sync sees; what is left to do from here is
        // the old key's revoke, which ends the owner's workflow at its next sync.
        return Err(refused(
            team_id,
            format!(
                "a guided rotation is followed by the member that started it; once its old key \
                 is quiet, `keyaudit revoke {}` finishes it from here (their workflow then ends \
                 as done)",
                crate::output::sanitize(&wf.target())
            ),
        ));
    }
    if wf.kind != "rotate" {
        return Err(refused(
            team_id,
            format!(
                "a {} workflow is followed by the member that started it",
                crate::output::sanitize(&wf.kind)
            ),
        ));
    }
    let mut sink = match a.deliver {
        Some(s) => {
            s.preflight(a.force).await?;
            s
        }
        None => {
            let s = Sink::saved(&wf.sink)
                .map_err(|e| refused(team_id, format!("its sink spec does not parse: {e}")))?;
            if s.is_host_local() && tw.owner.host != host_name() && needs_sink(wf.step) {
                return Err(refused(
                    team_id,
                    format!(
                        "it is at step {} and its secret goes to {} on {}, which this host cannot \
                         read or write; pass --deliver SPEC to name where the new secret goes from \
                         here (a secret that cannot be found again is revoked and the rotation \
                         rolled back)",
                        wf.step,
                        crate::output::sanitize(&wf.sink),
                        crate::output::sanitize(&tw.owner.host)
                    ),
                ));
            }
            s
        }
    };
    if let Some(entry) = a.entry {
        sink.use_provider(entry);
    }
    adopt_claimed(db, &tw, a.provider, &sink, a.force).await
}

async fn adopt_claimed(
    db: &Cache,
    tw: &TeamWorkflow,
    provider: Arc<dyn Provider>,
    sink: &Sink,
    force: bool,
) -> Result<Workflow, RotateError> {
    let mut wf = tw.workflow.clone();
    wf.sink = sink.spec();
    let (copy, name) = (wf.clone(), tw.name.clone());
    wf.id = with_db(db, move |s| s.insert_adopted_workflow(&copy, &name)).await?;
    let (_, me) = identity(db, wf.id).await?;
    let target = wf.target();
    let params = serde_json::json!({
        "team_workflow": tw.team_id,
        "from": tw.owner.who(),
        "from_workflow": tw.owner.id,
        "workflow": wf.id,
        "step": wf.step.as_str(),
        "state": wf.state.as_str(),
        "sink": wf.sink,
    });
    let entry = NewEntry {
        action: "adopt",
        target: &target,
        reason: wf.reason.as_deref(),
        params,
        result: "adopted",
    };
    let shared = db.shared();
    match shared
        .adopt_workflow(tw.team_id, &tw.owner, &me, &entry)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            let id = wf.id;
            with_db(db, move |s| s.forget_workflow(id)).await?;
            return Err(refused(
                tw.team_id,
                "it changed while being adopted (another member adopted or finished it); \
                 `keyaudit workflows --team` shows it now",
            ));
        }
        // The answer was lost: the team store may have handed it over. The copy stays;
        // `keyaudit resume` publishes it and learns whose it is.
        Err(e) => return Err(ActionError::from(e).into()),
    }
    tracing::info!(workflow = wf.id, team = tw.team_id, from = %tw.owner.who(), step = %wf.step, "adopted");
    rotate::resume_claimed(db, provider, wf, sink, force).await
}
