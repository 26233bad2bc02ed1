//! What the command line and the TUI share: the context every command runs in (resolved
//! paths, configuration, session mode) and the errors that map to exit codes.

use crate::config::{Config, Mode, Paths};

/// A usage error found after parsing (bad value, conflicting options): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A refusal because the cache or the session is read-only: exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("refused: keyaudit is in read-only mode ({0}); nothing was changed. Run without --read-only or set mode = \"write\" in the config")]
pub struct ReadOnlyRefusal(pub String);

/// Everything a command needs: resolved paths, the configuration, the session mode.
pub struct Ctx {
    pub paths: Paths,
    pub config: Config,
    /// Mutating commands refuse.
    pub read_only: bool,
    /// The TUI starts able to act.
    pub write: bool,
}

impl Ctx {
    /// Refuses a mutating command in read-only mode, before any network call.
    pub fn check_writable(&self, what: &str) -> Result<(), ReadOnlyRefusal> {
        if self.read_only {
            let why = if self.config.mode == Mode::ReadOnly {
                format!(
                    "config {} sets mode = \"read-only\"",
                    self.paths.config.display()
                )
            } else {
                "--read-only".to_string()
            };
            tracing::warn!(command = what, "refused in read-only mode");
            return Err(ReadOnlyRefusal(why));
        }
        Ok(())
    }

    /// Refuses a command that only reads when its cache does not exist: reading would
    /// create an empty database and show nothing, hiding a mistyped `--db`.
    pub fn require_cache(&self) -> Result<(), UsageError> {
        if self.paths.db.exists() {
            return Ok(());
        }
        Err(UsageError(format!(
            "no cache at {}: check --db / KEYAUDIT_DB; `keyaudit import`, `sync` or `open` create one",
            crate::output::sanitize(&self.paths.db.display().to_string())
        )))
    }

    /// The cache as actions open it: its journal signed with this install's key, and the
    /// team store when `[team]` is configured (claims and the journal are then shared).
    pub fn cache(&self) -> anyhow::Result<crate::store::Cache> {
        Ok(
            crate::store::Cache::anchored(self.paths.db.clone(), &self.paths.journal_key())?
                .with_team(self.config.team()),
        )
    }

    /// The team store's events, when `[team] events = "team"` keeps them there rather
    /// than in the cache. Reads no file: a listing needs no journal key.
    pub fn team_events(&self) -> Option<crate::store::team::events::TeamEvents> {
        use crate::store::reads::{CacheEvents, Reader};
        use crate::store::team::{events::TeamEvents, TeamStore};
        self.config
            .team()
            .filter(|t| t.events == crate::config::EventsHome::Team)
            .map(|t| {
                let cache = CacheEvents::new(&self.paths.db, Reader::default());
                TeamEvents::new(std::sync::Arc::new(TeamStore::new(t.clone())), cache)
            })
    }

    /// Opens the cache for reading and writing (journal entries anchored).
    pub fn open_store(&self) -> anyhow::Result<crate::store::Store> {
        Ok(self.cache()?.open()?)
    }
}
