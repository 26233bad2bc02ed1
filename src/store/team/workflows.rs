//! Workflows (rotations) shared by a team: every save of a member's workflow is
//! published to `workflows` as a JSON document (it never holds a secret: only the new
//! key's fingerprint and where the secret went). A row is updated only by its owner, so a
//! member that was away learns, on its next save, that another adopted its workflow; an
//! adoption changes the owner and appends its journal entry in one transaction.

use super::{journal, TeamStore};
use crate::store::journal::NewEntry;
use crate::store::shared::SharedError;
use crate::store::workflows::{Publication, TeamWorkflow, Workflow, WorkflowName, WorkflowOwner};
use tokio_postgres::Row;

const COLUMNS: &str = "id, origin, origin_id, owner_cache, owner_id, owner_user, owner_host,
     (extract(epoch FROM published) * 1000)::bigint, doc";

fn team_workflow(store: &TeamStore, r: &Row) -> Result<TeamWorkflow, SharedError> {
    let team_id: i64 = r.get(0);
    let doc: String = r.get(8);
    let workflow: Workflow = serde_json::from_str(&doc).map_err(|e| {
        store.fail(format!(
            "team workflow #{team_id} does not parse ({e}); it was written by another build of keyaudit"
        ))
    })?;
    Ok(TeamWorkflow {
        team_id,
        name: WorkflowName {
            cache: r.get(1),
            id: r.get(2),
        },
        owner: WorkflowOwner {
            cache: r.get(3),
            id: r.get(4),
            user: r.get(5),
            host: r.get(6),
        },
        published: crate::model::from_millis(r.get(7)),
        workflow,
    })
}

/// Stores `w` under `name` while `owner` owns it; [`Publication::HandedOver`] when
/// another member adopted it.
pub(super) async fn publish(
    store: &TeamStore,
    name: &WorkflowName,
    owner: &WorkflowOwner,
    w: &Workflow,
) -> Result<Publication, SharedError> {
    let doc = serde_json::to_string(w).map_err(|e| store.fail(e))?;
    let c = store.conn().await?;
    // An update first, so the numbers members type (`--adopt N`) are not used up by
    // saves: the sequence moves only when a workflow is first published.
    let updated = c
        .execute(
            "UPDATE workflows SET state = $5, doc = $6, owner_user = $7, owner_host = $8,
                                  published = clock_timestamp()
             WHERE origin = $1 AND origin_id = $2 AND owner_cache = $3 AND owner_id = $4",
            &[
                &name.cache,
                &name.id,
                &owner.cache,
                &owner.id,
                &w.state.as_str(),
                &doc,
                &owner.user,
                &owner.host,
            ],
        )
        .await
        .map_err(|e| store.db_fail("publishing the workflow", &e))?;
    if updated == 1 {
        return Ok(Publication::Stored);
    }
    let stored = c
        .query_opt(
            "INSERT INTO workflows (origin, origin_id, provider, key_id, kind, state, doc,
                                    owner_cache, owner_id, owner_user, owner_host, published)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp())
             ON CONFLICT (origin, origin_id) DO NOTHING
             RETURNING id",
            &[
                &name.cache,
                &name.id,
                &w.provider,
                &w.key_id,
                &w.kind,
                &w.state.as_str(),
                &doc,
                &owner.cache,
                &owner.id,
                &owner.user,
                &owner.host,
            ],
        )
        .await
        .map_err(|e| store.db_fail("publishing the workflow", &e))?;
    if stored.is_some() {
        return Ok(Publication::Stored);
    }
    let r = c
        .query_one(
            &format!("SELECT {COLUMNS} FROM workflows WHERE origin = $1 AND origin_id = $2"),
            &[&name.cache, &name.id],
        )
        .await
        .map_err(|e| store.db_fail("reading the workflow's owner", &e))?;
    Ok(Publication::HandedOver(Box::new(team_workflow(store, &r)?)))
}

/// The team's workflows, oldest first: the open ones (running, in grace) unless `all`.
pub(super) async fn list(store: &TeamStore, all: bool) -> Result<Vec<TeamWorkflow>, SharedError> {
    let c = store.conn().await?;
    let filter = if all {
        ""
    } else {
        "WHERE state IN ('running', 'grace')"
    };
    c.query(
        &format!("SELECT {COLUMNS} FROM workflows {filter} ORDER BY id"),
        &[],
    )
    .await
    .map_err(|e| store.db_fail("reading the team's workflows", &e))?
    .iter()
    .map(|r| team_workflow(store, r))
    .collect()
}

/// Makes `to` the owner of team workflow `team_id`, if it is still open and `from` still
/// owns it, and journals `entry` with it: both or neither. False when it changed
/// meanwhile.
pub(super) async fn adopt(
    store: &TeamStore,
    team_id: i64,
    from: &WorkflowOwner,
    to: &WorkflowOwner,
    entry: &NewEntry<'_>,
) -> Result<bool, SharedError> {
    let mut c = store.conn().await?;
    let tx = c
        .transaction()
        .await
        .map_err(|e| store.db_fail("starting the adoption", &e))?;
    let n = tx
        .execute(
            "UPDATE workflows SET owner_cache = $4, owner_id = $5, owner_user = $6,
                                  owner_host = $7, published = clock_timestamp()
             WHERE id = $1 AND owner_cache = $2 AND owner_id = $3
               AND state IN ('running', 'grace')",
            &[
                &team_id,
                &from.cache,
                &from.id,
                &to.cache,
                &to.id,
                &to.user,
                &to.host,
            ],
        )
        .await
        .map_err(|e| store.db_fail("adopting the workflow", &e))?;
    if n != 1 {
        return Ok(false);
    }
    journal::append_in(store, &tx, entry).await?;
    tx.commit()
        .await
        .map_err(|e| store.db_fail("committing the adoption", &e))?;
    Ok(true)
}
