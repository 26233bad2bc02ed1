//! Persisted workflows: each rotation is a state machine in the cache's `workflows`
//! table (the steps and their order are in `crate::action::workflow` and
//! `crate::action::rotate`). The secret is never stored here; only where it was sent
//! (the sink spec) and the new key's fingerprint, which lets a resume check the sink.

use super::Store;
use crate::model::{from_millis, to_millis, Millis};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::model::word_enum as words;

words! {
    /// Where a rotation is. Each step is recorded before its action runs.
    Step {
        /// The workflow exists; nothing was asked of the provider.
        Planned = "planned",
        /// The provider is being asked to rotate (or the call was cut off).
        Rotating = "rotating",
        /// The provider issued the new key; its secret is only in memory.
        Rotated = "rotated",
        /// The secret is being written to the sink.
        Delivering = "delivering",
        /// The sink holds the secret.
        Delivered = "delivered",
        /// The new key is being checked against the provider.
        Verifying = "verifying",
        /// The new key works; the old one is in its grace period.
        Verified = "verified",
        /// The grace period ended; the old key is being revoked.
        Finishing = "finishing",
        /// The rotation is being undone (new key revoked, old key restored).
        RollingBack = "rolling_back",
        /// A guided rotation waits for the operator's new key to appear.
        AwaitingNew = "awaiting_new",
        /// A guided rotation's new key is there; the old key must go quiet.
        AwaitingQuiet = "awaiting_quiet",
        /// A guided rotation's old key is quiet: `keyaudit resume` offers its revoke.
        ReadyToRevoke = "ready_to_revoke",
        /// Nothing left to do.
        Finished = "finished",
    }
}

words! {
    /// The outcome so far.
    State {
        /// In progress, or interrupted: `keyaudit resume` finishes or rolls back.
        Running = "running",
        /// The new key is delivered and works; the old one works until `grace_until`.
        Grace = "grace",
        /// Completed: the old key is revoked.
        Done = "done",
        /// Undone: the new key is revoked, the old key kept.
        RolledBack = "rolled_back",
        /// Stopped with an error that needs an operator (see `error`).
        Failed = "failed",
        /// Adopted by another member of the team, who drives it now (see `error`).
        HandedOver = "handed_over",
    }
}

impl State {
    /// True while `keyaudit resume` still has work to do.
    pub fn is_open(self) -> bool {
        matches!(self, State::Running | State::Grace)
    }
}

/// One workflow row (also the document the team store keeps of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// The cache's id of the workflow (`resume ID`).
    pub id: i64,
    /// `rotate`.
    pub kind: String,
    /// The provider's name.
    pub provider: String,
    /// The key the workflow acts on (the old key of a rotation).
    pub key_id: String,
    /// The old key's status when the workflow started (a rollback restores it).
    pub old_status: Option<String>,
    /// The old key's `rotated_to` before this rotation (an earlier rotation's key, which
    /// a rollback must not touch).
    pub prior_successor: Option<String>,
    /// The key a rotation issued, once known.
    pub new_key_id: Option<String>,
    /// Fingerprint of the new secret (never the secret).
    pub new_fingerprint: Option<String>,
    /// Where it is.
    pub step: Step,
    /// The outcome so far.
    pub state: State,
    /// Where the secret goes (`file:PATH`, ...); never the secret.
    pub sink: String,
    /// The grace period asked for.
    pub grace_seconds: i64,
    /// When the old key stops working.
    pub grace_until: Option<DateTime<Utc>>,
    /// When the new key was delivered and verified: use of the old key after this is
    /// reported.
    pub switched_at: Option<DateTime<Utc>>,
    /// Why (journaled).
    pub reason: Option<String>,
    /// When the workflow was planned.
    pub created: DateTime<Utc>,
    /// When it was last saved.
    pub updated: DateTime<Utc>,
    /// What went wrong, or why it was rolled back.
    pub error: Option<String>,
    /// The idempotency key of the workflow's changes (each step derives its own from
    /// it); rows from before schema version 7 have none and get a fresh one on resume.
    pub op_key: Option<String>,
}

impl Workflow {
    /// A new rotation of `provider/key_id`, not yet saved.
    pub fn new_rotation(
        provider: &str,
        key_id: &str,
        sink: &str,
        grace_seconds: i64,
        reason: Option<&str>,
    ) -> Workflow {
        let now = Utc::now();
        Workflow {
            id: 0,
            kind: "rotate".into(),
            provider: provider.into(),
            key_id: key_id.into(),
            old_status: None,
            prior_successor: None,
            new_key_id: None,
            new_fingerprint: None,
            step: Step::Planned,
            state: State::Running,
            sink: sink.into(),
            grace_seconds,
            grace_until: None,
            switched_at: None,
            reason: reason.map(str::to_string),
            created: now,
            updated: now,
            error: None,
            op_key: Some(crate::provider::OpKey::random().as_str().to_string()),
        }
    }

    /// The journal target of the old key.
    pub fn target(&self) -> String {
        format!("{}/{}", self.provider, self.key_id)
    }
}

/// A workflow's name in a team: the cache it was started in (its `cache_id`) and its id
/// there. It stays the same when another member adopts the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowName {
    pub cache: String,
    pub id: i64,
}

/// Who drives a workflow: a member's cache, the workflow's id there, and the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowOwner {
    pub cache: String,
    pub id: i64,
    pub user: String,
    pub host: String,
}

impl WorkflowOwner {
    /// `bob@ws-2`, sanitized: the names come from other machines.
    pub fn who(&self) -> String {
        format!(
            "{}@{}",
            crate::output::sanitize(&self.user),
            crate::output::sanitize(&self.host)
        )
    }
}

/// A workflow as the team store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamWorkflow {
    /// The team's number for it (`keyaudit resume --adopt N`).
    pub team_id: i64,
    pub name: WorkflowName,
    pub owner: WorkflowOwner,
    /// When its owner last published it (the database's clock).
    pub published: DateTime<Utc>,
    /// The workflow as its owner last saved it.
    pub workflow: Workflow,
}

/// What publishing a workflow to the team found.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    /// Stored (or kept in the cache only, for one person).
    Stored,
    /// Another member adopted it: this cache no longer drives it.
    HandedOver(Box<TeamWorkflow>),
}

/// One use of a key, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct KeyUse<'a> {
    /// The provider's id of the event.
    pub event_id: &'a str,
    pub time: DateTime<Utc>,
    pub source_ip: Option<&'a str>,
    /// Denied or failed.
    pub refused: bool,
}

/// What the cache knows of one key's use during a rotation's grace period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UseSummary {
    /// The key's last use: the latest cached event, or the provider's `last_used`.
    pub last_use: Option<DateTime<Utc>>,
    /// Successful uses by anyone but keyaudit itself (its verification requests carry the
    /// user agent `keyaudit/…`).
    pub uses_by_others: u64,
    /// The last of those.
    pub last_by_others: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, provider, key_id, old_status, prior_successor, new_key_id, new_fingerprint, step, state, sink,
     grace_seconds, grace_until, switched_at, reason, created, updated, error, op_key";

fn row(r: &Row<'_>) -> rusqlite::Result<Workflow> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let step: String = r.get(8)?;
    let state: String = r.get(9)?;
    Ok(Workflow {
        id: r.get(0)?,
        kind: r.get(1)?,
        provider: r.get(2)?,
        key_id: r.get(3)?,
        old_status: r.get(4)?,
        prior_successor: r.get(5)?,
        new_key_id: r.get(6)?,
        new_fingerprint: r.get(7)?,
        step: step.parse().map_err(|e| bad(8, e))?,
        state: state.parse().map_err(|e| bad(9, e))?,
        sink: r.get(10)?,
        grace_seconds: r.get(11)?,
        grace_until: r.get::<_, Option<Millis>>(12)?.map(from_millis),
        switched_at: r.get::<_, Option<Millis>>(13)?.map(from_millis),
        reason: r.get(14)?,
        created: from_millis(r.get(15)?),
        updated: from_millis(r.get(16)?),
        error: r.get(17)?,
        op_key: r.get(18)?,
    })
}

impl Store {
    /// Saves a new workflow and returns its id.
    pub fn insert_workflow(&self, w: &Workflow) -> super::Result<i64> {
        self.conn.execute(
            "INSERT INTO workflows (kind, provider, key_id, new_key_id, new_fingerprint, step, state,
                                    sink, grace_seconds, grace_until, switched_at, reason, created,
                                    updated, error, old_status, prior_successor, op_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18)",
            params![
                w.kind,
                w.provider,
                w.key_id,
                w.new_key_id,
                w.new_fingerprint,
                w.step.as_str(),
                w.state.as_str(),
                w.sink,
                w.grace_seconds,
                w.grace_until.map(to_millis),
                w.switched_at.map(to_millis),
                w.reason,
                to_millis(w.created),
                to_millis(w.updated),
                w.error,
                w.old_status,
                w.prior_successor,
                w.op_key,
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Writes every mutable field of `w` (one statement, so one atomic commit) and stamps
    /// `updated`.
    pub fn save_workflow(&self, w: &Workflow) -> super::Result<()> {
        self.conn.execute(
            "UPDATE workflows SET new_key_id = ?2, new_fingerprint = ?3, step = ?4, state = ?5,
                    grace_until = ?6, switched_at = ?7, updated = ?8, error = ?9, op_key = ?10
             WHERE id = ?1",
            params![
                w.id,
                w.new_key_id,
                w.new_fingerprint,
                w.step.as_str(),
                w.state.as_str(),
                w.grace_until.map(to_millis),
                w.switched_at.map(to_millis),
                to_millis(Utc::now()),
                w.error,
                w.op_key,
            ],
        )?;
        Ok(())
    }

    /// One workflow by id.
    pub fn workflow(&self, id: i64) -> super::Result<Option<Workflow>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM workflows WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?)
    }

    /// Workflows, oldest first; only the open ones (running or in grace) unless `all`.
    pub fn workflows(&self, all: bool) -> super::Result<Vec<Workflow>> {
        let sql = if all {
            format!("SELECT {COLUMNS} FROM workflows ORDER BY id")
        } else {
            format!(
                "SELECT {COLUMNS} FROM workflows WHERE state IN ('running', 'grace') ORDER BY id"
            )
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// This cache's name in a team: random, made on first use.
    pub fn cache_id(&self) -> super::Result<String> {
        if let Some(id) = self.meta("cache_id")? {
            return Ok(id);
        }
        let id = crate::provider::OpKey::random().as_str().to_string();
        self.conn.execute(
            "INSERT INTO cache_meta (name, value) VALUES ('cache_id', ?1)
             ON CONFLICT(name) DO NOTHING",
            [&id],
        )?;
        Ok(self.meta("cache_id")?.unwrap_or(id))
    }

    /// The team's name of workflow `id` of this cache: where it was started, or this
    /// cache when here.
    pub fn workflow_name(&self, id: i64) -> super::Result<WorkflowName> {
        let adopted = self
            .conn
            .prepare_cached("SELECT origin, origin_id FROM workflow_origins WHERE workflow = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match adopted {
            Some((cache, id)) => WorkflowName { cache, id },
            None => WorkflowName {
                cache: self.cache_id()?,
                id,
            },
        })
    }

    /// Saves a workflow adopted from another member, under its team name, and returns
    /// its id here.
    pub fn insert_adopted_workflow(&self, w: &Workflow, name: &WorkflowName) -> super::Result<i64> {
        let tx = self.conn.unchecked_transaction()?;
        let id = self.insert_workflow(w)?;
        tx.execute(
            "INSERT INTO workflow_origins (workflow, origin, origin_id) VALUES (?1, ?2, ?3)",
            params![id, name.cache, name.id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Removes a workflow this cache never drove (an adoption the team refused).
    pub fn forget_workflow(&self, id: i64) -> super::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM workflow_origins WHERE workflow = ?1", [id])?;
        tx.execute("DELETE FROM workflows WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// The provider's time of the first cached event of a key, if any.
    pub fn key_first_use(
        &self,
        provider: &str,
        key_id: &str,
    ) -> super::Result<Option<DateTime<Utc>>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(e.time) FROM events e
                 JOIN keys k ON k.id = e.key_ref JOIN providers p ON p.id = k.provider_id
                 WHERE p.name = ?1 AND k.ext_id = ?2",
            )?
            .query_row(params![provider, key_id], |r| r.get::<_, Option<Millis>>(0))?
            .map(from_millis))
    }

    /// The use of one key as the cache knows it ([`UseSummary`]).
    pub fn key_use_summary(&self, provider: &str, key_id: &str) -> super::Result<UseSummary> {
        let (events_last, others, others_last, key_last) = self
            .conn
            .prepare_cached(
                "SELECT max(e.time),
                        sum(CASE WHEN e.outcome = 0 AND coalesce(e.user_agent, '') NOT LIKE 'keyaudit/%'
                                 THEN 1 ELSE 0 END),
                        max(CASE WHEN e.outcome = 0 AND coalesce(e.user_agent, '') NOT LIKE 'keyaudit/%'
                                 THEN e.time END),
                        (SELECT k2.last_used FROM keys k2 JOIN providers p2 ON p2.id = k2.provider_id
                          WHERE p2.name = ?1 AND k2.ext_id = ?2)
                 FROM events e
                 JOIN keys k ON k.id = e.key_ref JOIN providers p ON p.id = k.provider_id
                 WHERE p.name = ?1 AND k.ext_id = ?2",
            )?
            .query_row(params![provider, key_id], |r| {
                Ok((
                    r.get::<_, Option<Millis>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<Millis>>(2)?,
                    r.get::<_, Option<Millis>>(3)?,
                ))
            })?;
        Ok(UseSummary {
            last_use: events_last.max(key_last).map(from_millis),
            uses_by_others: others.unwrap_or(0).max(0) as u64,
            last_by_others: others_last.map(from_millis),
        })
    }

    /// Visits the events of a key after `since`, oldest first.
    pub fn key_uses_after(
        &self,
        provider: &str,
        key_id: &str,
        since: DateTime<Utc>,
        visit: &mut dyn FnMut(KeyUse<'_>),
    ) -> super::Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.ext_id, e.time, e.source_ip, e.outcome FROM events e
             JOIN keys k ON k.id = e.key_ref JOIN providers p ON p.id = k.provider_id
             WHERE p.name = ?1 AND k.ext_id = ?2 AND e.time > ?3 ORDER BY e.time",
        )?;
        let mut rows = stmt.query(params![provider, key_id, to_millis(since)])?;
        while let Some(r) = rows.next()? {
            visit(KeyUse {
                event_id: r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?,
                time: from_millis(r.get(1)?),
                source_ip: r
                    .get_ref(2)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?,
                refused: r.get::<_, i64>(3)? != 0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Workflow, WorkflowName};
    use crate::model::{Event, Key, KeySource, Outcome};
    use crate::store::Store;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_workflow_keeps_its_team_name_here_and_when_adopted() {
        let store = Store::open_in_memory().unwrap();
        let me = store.cache_id().unwrap();
        assert_eq!(me.len(), 32);
        assert_eq!(store.cache_id().unwrap(), me, "made once");
        let w = Workflow::new_rotation("tg", "key_1", "file:/tmp/x", 60, None);
        let own = store.insert_workflow(&w).unwrap();
        assert_eq!(
            store.workflow_name(own).unwrap(),
            WorkflowName { cache: me, id: own }
        );
        let theirs = WorkflowName {
            cache: "0f".repeat(16),
            id: 41,
        };
        let adopted = store.insert_adopted_workflow(&w, &theirs).unwrap();
        assert_ne!(adopted, own);
        assert_eq!(store.workflow_name(adopted).unwrap(), theirs);
        assert_eq!(store.workflow(adopted).unwrap().unwrap().op_key, w.op_key);
        store.forget_workflow(adopted).unwrap();
        assert!(store.workflow(adopted).unwrap().is_none());
        assert_eq!(store.workflows(true).unwrap().len(), 1);
    }

    #[test]
    fn use_summary_tells_keyaudit_s_own_checks_from_the_consumer_s_use() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("tg", "http", None).unwrap();
        for id in ["old", "new"] {
            let mut k = Key::seen_in_logs("tg", id);
            k.source = KeySource::Provider;
            store.put_key(&k).unwrap();
        }
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let ev = |id: &str, key: &str, mins: i64, ua: &str, outcome: Outcome| Event {
            provider: "tg".into(),
            id: id.into(),
            time: t0 + chrono::Duration::minutes(mins),
            key_id: key.into(),
            principal: None,
            action: "GET /v1/partner/ping".into(),
            scope: None,
            source_ip: None,
            user_agent: Some(ua.into()),
            outcome,
            status_code: None,
            request_id: None,
            records: None,
            raw: None,
        };
        store
            .insert_events(
                "tg",
                &[
                    ev("e1", "old", 0, "payroll/2.0", Outcome::Success),
                    ev("e2", "new", 1, "keyaudit/0.1.0", Outcome::Success),
                    ev("e3", "old", 5, "payroll/2.0", Outcome::Success),
                ],
                None,
            )
            .unwrap();
        let new = store.key_use_summary("tg", "new").unwrap();
        assert_eq!(new.uses_by_others, 0, "the verification is not a switch");
        assert_eq!(new.last_use, Some(t0 + chrono::Duration::minutes(1)));
        let old = store.key_use_summary("tg", "old").unwrap();
        assert_eq!(old.last_use, Some(t0 + chrono::Duration::minutes(5)));
        store
            .insert_events(
                "tg",
                &[
                    ev("e4", "new", 7, "payroll/2.0", Outcome::Denied),
                    ev("e5", "new", 9, "payroll/2.0", Outcome::Success),
                ],
                None,
            )
            .unwrap();
        let new = store.key_use_summary("tg", "new").unwrap();
        assert_eq!(new.uses_by_others, 1, "a refused call is not a switch");
        assert_eq!(new.last_by_others, Some(t0 + chrono::Duration::minutes(9)));
        assert_eq!(
            store.key_use_summary("tg", "unknown").unwrap(),
            Default::default()
        );
    }
}
