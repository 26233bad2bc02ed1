//! What a team of responders shares, behind one trait: claims (one operation per key at
//! a time) and the journal (one hash chain). The SQLite cache is the single-user
//! implementation ([`Local`]: a claim is granted at once, the journal is the cache's);
//! the PostgreSQL team store ([`super::team::TeamStore`]) is the shared one. Operators'
//! decisions on findings (acknowledge, suppress) are shared too: each member's cache
//! applies the team's decisions to its own findings (see [`Decision`]). So are
//! workflows: each member's saves are published, and another member can adopt one.
//!
//! Actions never pick an implementation themselves: [`super::Cache::shared`] gives the
//! one the configuration chose.

use super::journal::{NewEntry, OwnedEntry};
use super::workflows::{Publication, TeamWorkflow, Workflow, WorkflowName, WorkflowOwner};
use super::{Cache, StoreError};
use crate::model::{FindingStatus, JournalEntry};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// A request to hold one key for one operation.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The key's provider (the configured name).
    pub provider: String,
    /// The key's id at the provider.
    pub key_id: String,
    /// The operation's verb: `revoke`, `disable`, `enable`, `rotate`.
    pub operation: String,
    /// How long the claim counts without a renewal.
    pub lease: Duration,
}

/// A granted claim; give it back with [`Shared::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claim's row (0 for a local claim, which has none).
    pub id: i64,
    /// `provider/key_id`.
    pub target: String,
}

/// Who holds a key, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The claim's row.
    pub claim: i64,
    /// The holder's OS user.
    pub user: String,
    /// The holder's host.
    pub host: String,
    /// The operation's verb (`rotate`).
    pub operation: String,
    /// When the claim was taken (the database's clock).
    pub since: DateTime<Utc>,
    /// When it stops counting unless renewed (the database's clock).
    pub lease_until: DateTime<Utc>,
    /// The lease had run out when this was read: the holder stopped renewing it.
    pub expired: bool,
}

impl Holder {
    /// `alice@ws-12 is rotating this key since 03:12 (lease until 03:22)`, in local time.
    pub fn describe(&self) -> String {
        let hm = |t: DateTime<Utc>| t.with_timezone(&chrono::Local).format("%H:%M").to_string();
        let lease = if self.expired {
            format!(
                "lease expired at {}: the holder stopped renewing it",
                hm(self.lease_until)
            )
        } else {
            format!("lease until {}", hm(self.lease_until))
        };
        format!(
            "{}@{} is {} this key since {} ({lease})",
            crate::output::sanitize(&self.user),
            crate::output::sanitize(&self.host),
            progressive(&self.operation),
            hm(self.since),
        )
    }
}

/// `rotate` → `rotating`.
fn progressive(verb: &str) -> String {
    match verb {
        "revoke" => "revoking".into(),
        "disable" => "disabling".into(),
        "enable" => "enabling".into(),
        "rotate" => "rotating".into(),
        "sync" => "syncing".into(),
        other => format!("running {} on", crate::output::sanitize(other)),
    }
}

/// A key another responder holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBy {
    /// `provider/key_id`.
    pub target: String,
    /// Who.
    pub holder: Holder,
}

impl fmt::Display for HeldBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.target, self.holder.describe())?;
        if self.holder.expired {
            write!(
                f,
                "; nothing was changed. It may have stopped mid-operation: check the key at the \
                 provider, then run `keyaudit takeover {}`",
                self.target
            )
        } else {
            write!(f, "; nothing was changed")
        }
    }
}

/// An operator's decision on a finding, as recorded for the team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The team store's row (0 when not recorded there); members read past the last one
    /// they applied.
    pub id: i64,
    /// The finding's id: the same on every member's cache, derived from the rule, the key
    /// and the subject (`detect::finding_id`).
    pub finding: String,
    /// `provider/key_id`, for messages.
    pub target: String,
    /// `acknowledged` or `suppressed`.
    pub status: FindingStatus,
    /// Why.
    pub note: Option<String>,
    /// A suppression's end.
    pub until: Option<DateTime<Utc>>,
    /// Who decided (OS user and host), empty until recorded.
    pub user: String,
    pub host: String,
}

impl Decision {
    /// A new decision, recorded as this process's user and host.
    pub fn new(
        finding: &str,
        target: &str,
        status: FindingStatus,
        note: Option<&str>,
        until: Option<DateTime<Utc>>,
    ) -> Decision {
        Decision {
            id: 0,
            finding: finding.to_string(),
            target: target.to_string(),
            status,
            note: note.map(str::to_string),
            until,
            user: super::journal::os_user(),
            host: super::journal::host_name(),
        }
    }
}

/// Another responder connected to the team store, and the keys they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// OS user.
    pub user: String,
    /// Host.
    pub host: String,
    /// Keys held, `(provider/key_id, operation)`, and sources being synced,
    /// `(provider, "sync")` or, with the sync's progress, `("provider: page 3, 1,200 new
    /// events", "sync")`.
    pub holds: Vec<(String, String)>,
}

impl Member {
    /// `bob@ws-2 (rotating tg/key_1)`, sanitized: names come from other machines.
    pub fn describe(&self) -> String {
        let who = format!(
            "{}@{}",
            crate::output::sanitize(&self.user),
            crate::output::sanitize(&self.host)
        );
        if self.holds.is_empty() {
            return who;
        }
        let held: Vec<String> = self
            .holds
            .iter()
            .map(|(target, op)| format!("{} {}", progressive(op), crate::output::sanitize(target)))
            .collect();
        format!("{who} ({})", held.join(", "))
    }
}

/// What can go wrong with shared state.
#[derive(Debug, Error)]
pub enum SharedError {
    /// Another responder holds the key.
    #[error("{0}")]
    Held(Box<HeldBy>),
    /// The team store failed (unreachable, refused, a query failed).
    #[error("team store {store}: {message}")]
    Team { store: String, message: String },
    /// The local cache failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a takeover found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    /// No claim was held on the key.
    Free,
    /// The claim of this holder was released.
    Released(Holder),
}

/// Claims and the journal, shared by a team or kept in the local cache.
#[async_trait]
pub trait Shared: Send + Sync + fmt::Debug {
    /// Where this lives, for messages: `team store postgres://…` or `cache PATH`.
    fn describe(&self) -> String;

    /// True for the team store (claims can be refused).
    fn is_team(&self) -> bool;

    /// Holds `req`'s key for its operation, in one transaction before any provider call;
    /// [`SharedError::Held`] names who holds it already.
    async fn claim(&self, req: &ClaimRequest) -> Result<Claim, SharedError>;

    /// Extends a claim's lease by `lease` from now; false when the claim is no longer
    /// held (taken over).
    async fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, SharedError>;

    /// Gives a claim back, saying how the operation ended (`ok`, `failed`, `unknown`).
    async fn release(&self, claim: &Claim, how: &str) -> Result<(), SharedError>;

    /// Who holds the key now, if anyone.
    async fn holder(&self, provider: &str, key_id: &str) -> Result<Option<Holder>, SharedError>;

    /// Releases the claim on a key for this user: an expired one always, a live one only
    /// with `force` and when it is still claim `expected` (the one the operator saw).
    async fn takeover(
        &self,
        provider: &str,
        key_id: &str,
        force: bool,
        expected: Option<i64>,
    ) -> Result<Takeover, SharedError>;

    /// Appends an entry to the journal (the time, the OS user and the host are added).
    async fn append_journal(&self, entry: &NewEntry<'_>) -> Result<JournalEntry, SharedError>;

    /// The whole journal, oldest first.
    async fn journal(&self) -> Result<Vec<JournalEntry>, SharedError>;

    /// The last `limit` entries of the journal, of `target` (`provider/key_id`) only when
    /// given, oldest first: what a screen shows.
    async fn recent_journal(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, SharedError>;

    /// Records a decision on a finding with its journal entry, both or neither: in the
    /// cache for one person, in the team store for a team (each member's cache then
    /// applies it, see [`super::Store::apply_decisions`]). False when the cache has no
    /// such finding (one person only: the team store does not hold findings).
    async fn decide(&self, d: &Decision, entry: &NewEntry<'_>) -> Result<bool, SharedError>;

    /// The decisions recorded after row `after`, oldest first (none for one person: the
    /// cache's findings already carry them).
    async fn decisions_since(&self, after: i64) -> Result<Vec<Decision>, SharedError>;

    /// The other responders connected now, with the keys each holds (none for one
    /// person).
    async fn members(&self) -> Result<Vec<Member>, SharedError>;

    /// Publishes a saved workflow under its team `name` while `owner` drives it (one
    /// person: the cache's row is all there is).
    async fn publish_workflow(
        &self,
        name: &WorkflowName,
        owner: &WorkflowOwner,
        w: &Workflow,
    ) -> Result<Publication, SharedError>;

    /// The team's workflows, oldest first: the open ones unless `all` (none for one
    /// person).
    async fn team_workflows(&self, all: bool) -> Result<Vec<TeamWorkflow>, SharedError>;

    /// Hands team workflow `team_id` from `from` to `to`, journaling `entry` with it;
    /// false when it was no longer `from`'s or no longer open.
    async fn adopt_workflow(
        &self,
        team_id: i64,
        from: &WorkflowOwner,
        to: &WorkflowOwner,
        entry: &NewEntry<'_>,
    ) -> Result<bool, SharedError>;
}

/// The single-user implementation: the SQLite cache.
#[derive(Debug, Clone)]
pub struct Local {
    cache: Cache,
}

impl Local {
    /// The shared state of one person: `cache`.
    pub fn new(cache: Cache) -> Local {
        Local { cache }
    }

    /// Runs `f` on the cache on a blocking thread.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut super::Store) -> super::Result<T> + Send + 'static,
    ) -> Result<T, SharedError> {
        self.cache
            .run(f)
            .await
            .map_err(|e| task_failed(self.describe(), e))?
            .map_err(SharedError::from)
    }
}

/// A blocking task on the cache at `place` that stopped (it panicked).
pub(crate) fn task_failed(place: String, e: tokio::task::JoinError) -> SharedError {
    SharedError::Team {
        store: place,
        message: format!("background task failed: {e}"),
    }
}

#[async_trait]
impl Shared for Local {
    fn describe(&self) -> String {
        format!("cache {}", self.cache.path.display())
    }

    fn is_team(&self) -> bool {
        false
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Claim, SharedError> {
        // One person: nobody else acts on this cache's keys.
        Ok(Claim {
            id: 0,
            target: format!("{}/{}", req.provider, req.key_id),
        })
    }

    async fn renew(&self, _claim: &Claim, _lease: Duration) -> Result<bool, SharedError> {
        Ok(true)
    }

    async fn release(&self, _claim: &Claim, _how: &str) -> Result<(), SharedError> {
        Ok(())
    }

    async fn holder(&self, _p: &str, _k: &str) -> Result<Option<Holder>, SharedError> {
        Ok(None)
    }

    async fn takeover(
        &self,
        _p: &str,
        _k: &str,
        _force: bool,
        _expected: Option<i64>,
    ) -> Result<Takeover, SharedError> {
        Ok(Takeover::Free)
    }

    async fn append_journal(&self, entry: &NewEntry<'_>) -> Result<JournalEntry, SharedError> {
        let entry = OwnedEntry::of(entry);
        self.with(move |s| s.append_journal(&entry.entry(None)))
            .await
    }

    async fn journal(&self) -> Result<Vec<JournalEntry>, SharedError> {
        self.with(|s| s.journal(None, None)).await
    }

    async fn recent_journal(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, SharedError> {
        let target = target.map(str::to_string);
        self.with(move |s| s.journal(target.as_deref(), Some(limit)))
            .await
    }

    async fn decide(&self, d: &Decision, entry: &NewEntry<'_>) -> Result<bool, SharedError> {
        let (d, entry) = (d.clone(), OwnedEntry::of(entry));
        self.with(move |s| {
            let changed = s.set_finding_status(&d.finding, d.status, d.note.as_deref(), d.until)?;
            s.append_journal(&entry.entry((!changed).then_some("failed: no such finding")))?;
            Ok(changed)
        })
        .await
    }

    async fn decisions_since(&self, _after: i64) -> Result<Vec<Decision>, SharedError> {
        Ok(Vec::new())
    }

    async fn members(&self) -> Result<Vec<Member>, SharedError> {
        Ok(Vec::new())
    }

    async fn publish_workflow(
        &self,
        _name: &WorkflowName,
        _owner: &WorkflowOwner,
        _w: &Workflow,
    ) -> Result<Publication, SharedError> {
        Ok(Publication::Stored)
    }

    async fn team_workflows(&self, _all: bool) -> Result<Vec<TeamWorkflow>, SharedError> {
        Ok(Vec::new())
    }

    async fn adopt_workflow(
        &self,
        _team_id: i64,
        _from: &WorkflowOwner,
        _to: &WorkflowOwner,
        _entry: &NewEntry<'_>,
    ) -> Result<bool, SharedError> {
        // Nothing to adopt from: one person's workflows are all in the cache.
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_named_with_operation_and_times() {
        let since = Utc::now();
        let h = Holder {
            claim: 1,
            user: "alice".into(),
            host: "ws-12".into(),
            operation: "rotate".into(),
            since,
            lease_until: since + chrono::Duration::minutes(10),
            expired: false,
        };
        let hm = |t: DateTime<Utc>| t.with_timezone(&chrono::Local).format("%H:%M").to_string();
        assert_eq!(
            h.describe(),
            format!(
                "alice@ws-12 is rotating this key since {} (lease until {})",
                hm(since),
                hm(since + chrono::Duration::minutes(10))
            )
        );
        let held = HeldBy {
            target: "tg/key_1".into(),
            holder: Holder { expired: true, ..h },
        };
        let text = held.to_string();
        assert!(text.contains("lease expired at"), "{text}");
        assert!(text.contains("keyaudit takeover tg/key_1"), "{text}");
    }

    #[tokio::test]
    async fn a_local_claim_is_granted_and_the_journal_is_the_caches() {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::new(Cache::new(dir.path().join("c.db")));
        let req = ClaimRequest {
            provider: "tg".into(),
            key_id: "k".into(),
            operation: "revoke".into(),
            lease: Duration::from_secs(60),
        };
        // Twice: one person never blocks themself.
        local.claim(&req).await.unwrap();
        local.claim(&req).await.unwrap();
        let e = local
            .append_journal(&NewEntry {
                action: "revoke",
                target: "tg/k",
                reason: None,
                params: serde_json::json!({}),
                result: "started",
            })
            .await
            .unwrap();
        assert_eq!(e.seq, 1);
        assert_eq!(local.journal().await.unwrap(), vec![e]);
    }
}
