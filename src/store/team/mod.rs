//! The team store: the state a team of responders shares, in PostgreSQL
//! (`tokio-postgres` with a small `deadpool-postgres` pool). It implements
//! [`super::shared::Shared`]: claims (`claims`: one live claim per key, enforced by a
//! unique index) and the journal (`journal`: one hash chain, appends serialised with an
//! advisory lock, hashed by the cache's own `entry_hash`), and workflows (`workflows`:
//! published by their owner, adopted by another member). Migrations are numbered as
//! the cache's (`schema`); TLS is rustls (`tls`).
//!
//! Nothing connects until the first use, so building one from the configuration never
//! touches the network and a command that needs no shared state never waits for it.

mod claims;
mod decisions;
pub mod detect;
pub mod events;
mod journal;
pub mod live;
pub mod replica;
pub mod schema;
pub mod tls;
mod workflows;

use super::shared::{Claim, ClaimRequest, Decision, Holder, Member, Shared, SharedError, Takeover};
use crate::config::TeamConfig;
use crate::model::JournalEntry;
use crate::store::workflows::{Publication, TeamWorkflow, Workflow, WorkflowName, WorkflowOwner};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::fmt;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Connections one process keeps at most (a bulk action's keys in flight share them).
const POOL_SIZE: usize = 8;

/// How long a connection attempt may take before the action is refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The team's PostgreSQL store.
pub struct TeamStore {
    config: TeamConfig,
    /// `postgres://role@host:port/db`, for messages (never a password).
    label: String,
    pool: OnceCell<Pool>,
}

impl fmt::Debug for TeamStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamStore")
            .field("url", &self.label)
            .finish()
    }
}

impl TeamStore {
    /// The store `config` names; connects on first use.
    pub fn new(config: TeamConfig) -> TeamStore {
        TeamStore {
            label: crate::output::sanitize(&config.url),
            config,
            pool: OnceCell::new(),
        }
    }

    /// Where members read the team's events (`[team] events`).
    pub fn events_home(&self) -> crate::config::EventsHome {
        self.config.events
    }

    /// The lease of this team's claims.
    pub fn lease(&self) -> Duration {
        self.config.lease()
    }

    pub(crate) fn fail(&self, message: impl fmt::Display) -> SharedError {
        SharedError::Team {
            store: self.label.clone(),
            message: message.to_string(),
        }
    }

    /// A database error with what was being done, and PostgreSQL's own words.
    pub(crate) fn db_fail(&self, doing: &str, e: &tokio_postgres::Error) -> SharedError {
        self.fail(format!("{doing} failed: {}", detail(e)))
    }

    /// The pool, created and the schema brought up to date on first use.
    async fn pool(&self) -> Result<&Pool, SharedError> {
        self.pool
            .get_or_try_init(|| async {
                let pool = self.build_pool()?;
                self.migrate(&pool).await?;
                Ok(pool)
            })
            .await
    }

    /// The connection settings of `[team]`, and the TLS connector when `ca_file` asks
    /// for TLS.
    fn pg_config(&self) -> Result<(tokio_postgres::Config, Option<tls::MakeRustls>), SharedError> {
        let mut pg: tokio_postgres::Config = self
            .config
            .url
            .parse()
            .map_err(|e| self.fail(format!("`url`: {e}")))?;
        pg.application_name("keyaudit");
        pg.connect_timeout(CONNECT_TIMEOUT);
        let password = self
            .config
            .password()
            .map_err(|e| self.fail(e.to_string()))?;
        if let Some(p) = &password {
            pg.password(p.expose().as_bytes());
        }
        let tls = match &self.config.ca_file {
            Some(ca) => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(
                    tls::MakeRustls::from_ca_file(ca)
                        .map_err(|why| self.fail(format!("`ca_file` {}: {why}", ca.display())))?,
                )
            }
            None => None,
        };
        Ok((pg, tls))
    }

    fn build_pool(&self) -> Result<Pool, SharedError> {
        let (pg, tls) = self.pg_config()?;
        let mgr_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mgr = match tls {
            Some(tls) => Manager::from_config(pg, tls, mgr_config),
            None => Manager::from_config(pg, tokio_postgres::NoTls, mgr_config),
        };
        Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| self.fail(format!("cannot build the connection pool: {e}")))
    }

    /// A connection from the pool.
    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, SharedError> {
        let pool = self.pool().await?;
        self.checkout(pool).await
    }

    async fn checkout(&self, pool: &Pool) -> Result<deadpool_postgres::Object, SharedError> {
        pool.get().await.map_err(|e| {
            let why = match &e {
                deadpool_postgres::PoolError::Backend(b) => detail(b),
                other => other.to_string(),
            };
            self.fail(format!(
                "cannot connect: {why}; check [team] url, the password source and that the \
                 server is running"
            ))
        })
    }

    /// Brings the schema up to date (see [`schema`]).
    async fn migrate(&self, pool: &Pool) -> Result<(), SharedError> {
        let mut c = self.checkout(pool).await?;
        let current = self.version(&c).await?;
        if current == Some(schema::latest()) {
            return Ok(());
        }
        if let Some(v) = current.filter(|v| *v > schema::latest()) {
            return Err(self.fail(format!(
                "the team database has schema version {v}, newer than this keyaudit ({}); upgrade keyaudit",
                schema::latest()
            )));
        }
        let tx = c
            .transaction()
            .await
            .map_err(|e| self.db_fail("starting the migration", &e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::MIGRATE_LOCK])
            .await
            .map_err(|e| self.db_fail("locking the schema", &e))?;
        let hint = "; the database's owner (or a role with CREATE on its schema) must connect once to create or upgrade the tables (docs/team.md)";
        tx.batch_execute("CREATE TABLE IF NOT EXISTS keyaudit_schema (version BIGINT NOT NULL)")
            .await
            .map_err(|e| self.fail(format!("{}{hint}", detail(&e))))?;
        let row = tx
            .query_opt("SELECT version FROM keyaudit_schema", &[])
            .await
            .map_err(|e| self.db_fail("reading the schema version", &e))?;
        let mut version: i64 = match row {
            Some(r) => r.get(0),
            None => {
                tx.execute("INSERT INTO keyaudit_schema (version) VALUES (0)", &[])
                    .await
                    .map_err(|e| self.db_fail("recording the schema version", &e))?;
                0
            }
        };
        while version < schema::latest() {
            let sql = schema::MIGRATIONS[version as usize];
            tx.batch_execute(sql).await.map_err(|e| {
                self.fail(format!(
                    "migration {} failed: {}{hint}",
                    version + 1,
                    detail(&e)
                ))
            })?;
            version += 1;
        }
        tx.execute("UPDATE keyaudit_schema SET version = $1", &[&version])
            .await
            .map_err(|e| self.db_fail("recording the schema version", &e))?;
        tx.commit()
            .await
            .map_err(|e| self.db_fail("committing the migration", &e))?;
        tracing::info!(store = %self.label, version, "team store schema up to date");
        Ok(())
    }

    async fn version(&self, c: &deadpool_postgres::Object) -> Result<Option<i64>, SharedError> {
        let exists: Option<String> = c
            .query_one("SELECT to_regclass('keyaudit_schema')::text", &[])
            .await
            .map_err(|e| self.db_fail("reading the schema", &e))?
            .get(0);
        if exists.is_none() {
            return Ok(None);
        }
        let row = c
            .query_opt("SELECT version FROM keyaudit_schema", &[])
            .await
            .map_err(|e| self.db_fail("reading the schema version", &e))?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// PostgreSQL's words for an error, or the error with its causes (a TLS handshake's
/// `invalid peer certificate: UnknownIssuer`), sanitized: the server's text is not ours.
fn detail(e: &tokio_postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    };
    crate::output::sanitize(&text)
}

#[async_trait]
impl Shared for TeamStore {
    fn describe(&self) -> String {
        format!("team store {}", self.label)
    }

    fn is_team(&self) -> bool {
        true
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Claim, SharedError> {
        claims::claim(self, req).await
    }

    async fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, SharedError> {
        claims::renew(self, claim, lease).await
    }

    async fn release(&self, claim: &Claim, how: &str) -> Result<(), SharedError> {
        claims::release(self, claim, how).await
    }

    async fn holder(&self, provider: &str, key_id: &str) -> Result<Option<Holder>, SharedError> {
        claims::holder(self, provider, key_id).await
    }

    async fn takeover(
        &self,
        provider: &str,
        key_id: &str,
        force: bool,
        expected: Option<i64>,
    ) -> Result<Takeover, SharedError> {
        claims::takeover(self, provider, key_id, force, expected).await
    }

    async fn append_journal(
        &self,
        entry: &super::journal::NewEntry<'_>,
    ) -> Result<JournalEntry, SharedError> {
        journal::append(self, entry).await
    }

    async fn journal(&self) -> Result<Vec<JournalEntry>, SharedError> {
        journal::entries(self).await
    }

    async fn recent_journal(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, SharedError> {
        journal::recent(self, target, limit).await
    }

    async fn decide(
        &self,
        d: &Decision,
        entry: &super::journal::NewEntry<'_>,
    ) -> Result<bool, SharedError> {
        decisions::decide(self, d, entry).await?;
        Ok(true)
    }

    async fn decisions_since(&self, after: i64) -> Result<Vec<Decision>, SharedError> {
        decisions::since(self, after).await
    }

    async fn members(&self) -> Result<Vec<Member>, SharedError> {
        decisions::members(self).await
    }

    async fn publish_workflow(
        &self,
        name: &WorkflowName,
        owner: &WorkflowOwner,
        w: &Workflow,
    ) -> Result<Publication, SharedError> {
        workflows::publish(self, name, owner, w).await
    }

    async fn team_workflows(&self, all: bool) -> Result<Vec<TeamWorkflow>, SharedError> {
        workflows::list(self, all).await
    }

    async fn adopt_workflow(
        &self,
        team_id: i64,
        from: &WorkflowOwner,
        to: &WorkflowOwner,
        entry: &super::journal::NewEntry<'_>,
    ) -> Result<bool, SharedError> {
        workflows::adopt(self, team_id, from, to, entry).await
    }
}
