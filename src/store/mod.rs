//! The SQLite cache: the single source of truth for what keyaudit shows.
//!
//! One `Store` owns one `rusqlite::Connection`; its functions are plain and blocking and
//! are called from one thread at a time (the runner moves the store to a blocking task).
//! Every batch (a page of keys, a page of events with its cursor) is one transaction.
//! Every SQL statement of keyaudit lives in this module: callers get typed functions.

mod activity;
pub mod anchor;
pub mod crypt;
pub mod detect_state;
mod events;
mod findings;
pub mod journal;
mod keys;
mod raw;
pub mod reads;
pub mod schema;
pub mod shared;
pub mod sigma;
mod sources;
pub mod team;
pub mod workflows;

pub use activity::{ActivityRequest, KeyActivity};
pub use events::{EventPage, EventQuery, EventRow, EventWriter, Inserted};
pub use findings::FindingQuery;
pub use keys::KeyRow;
pub use raw::{Block as RawBlock, RawPack};
pub use sources::{ImportRun, ImportedFile};

use crate::model::{from_millis, to_millis, Millis, ProviderInfo};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What can go wrong with the cache.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open the cache {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the cache {path} has schema version {found}, newer than this keyaudit ({supported}); \
         upgrade keyaudit or use another --db"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("the cache is opened read-only; run without --read-only to change it")]
    ReadOnly,
    #[error(
        "no key `{key}` of provider `{provider}` in the cache; run `keyaudit sync` or check the id"
    )]
    UnknownKey { provider: String, key: String },
    #[error("no provider `{0}` in the cache")]
    UnknownProvider(String),
    #[error(transparent)]
    Crypt(#[from] crypt::CryptError),
    #[error("cache query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cache holds damaged data in {what}: {why}")]
    Corrupt { what: &'static str, why: String },
    #[error("cache holds malformed JSON in {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The cache.
/// A cache as actions open it: its path, and the anchor that signs its journal (see
/// [`anchor`]). Commands and the TUI build it from the resolved paths
/// (`Ctx::cache`); a cache without an anchor journals unsigned entries, which
/// `journal verify` reports.
///
/// With `[team]` configured it carries the team store too, and what a team shares
/// (claims, the journal of actions) goes there: see [`Cache::shared`].
#[derive(Debug, Clone)]
pub struct Cache {
    pub path: PathBuf,
    pub anchor: Option<std::sync::Arc<anchor::Anchor>>,
    /// The team's shared store (`[team]`), when configured.
    pub team: Option<std::sync::Arc<team::TeamStore>>,
}

impl Cache {
    /// A cache whose journal is not anchored (tests, tools).
    pub fn new(path: impl Into<PathBuf>) -> Cache {
        Cache {
            path: path.into(),
            anchor: None,
            team: None,
        }
    }

    /// The cache at `path`, its journal signed with the key at `key_path` (created when
    /// missing) into `<path>.anchors`.
    pub fn anchored(
        path: impl Into<PathBuf>,
        key_path: &Path,
    ) -> std::result::Result<Cache, anchor::AnchorError> {
        let path = path.into();
        let a = anchor::Anchor::open(key_path, anchor::anchors_path(&path))?;
        Ok(Cache {
            path,
            anchor: Some(std::sync::Arc::new(a)),
            team: None,
        })
    }

    /// The same cache, sharing claims and the journal through the team store of
    /// `config` (connected on first use).
    pub fn with_team(mut self, config: Option<&crate::config::TeamConfig>) -> Cache {
        self.team = config.map(|c| std::sync::Arc::new(team::TeamStore::new(c.clone())));
        self
    }

    /// Runs `f` on this cache, opened on a blocking thread. The outer error is the
    /// thread's own (it panicked); each caller names it in its own terms.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T> + Send + 'static,
    ) -> std::result::Result<Result<T>, tokio::task::JoinError> {
        let cache = self.clone();
        tokio::task::spawn_blocking(move || f(&mut cache.open()?)).await
    }

    /// What is shared: the team store when configured, else this cache (one person).
    pub fn shared(&self) -> std::sync::Arc<dyn shared::Shared> {
        match &self.team {
            Some(t) => t.clone(),
            None => std::sync::Arc::new(shared::Local::new(self.clone())),
        }
    }

    /// The lease of a claim: the team's, or none needed for one person.
    pub fn lease(&self) -> std::time::Duration {
        self.team
            .as_ref()
            .map_or(crate::config::DEFAULT_LEASE, |t| t.lease())
    }

    /// The cache's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens it for reading and writing, with its anchor attached.
    pub fn open(&self) -> Result<Store> {
        let mut s = Store::open(&self.path)?;
        if let Some(a) = &self.anchor {
            s.set_journal_anchor(a.clone());
        }
        Ok(s)
    }
}

impl From<PathBuf> for Cache {
    fn from(path: PathBuf) -> Cache {
        Cache::new(path)
    }
}

pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    /// Signs a checkpoint after every journal entry (see [`anchor`]).
    anchor: Option<std::sync::Arc<anchor::Anchor>>,
}

impl Store {
    /// Opens (creating if needed) the cache at `path`: directory 0700, file 0600, WAL,
    /// migrations applied.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::create_private_dir(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        crate::fsutil::touch_private_file(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // NOFOLLOW: SQLite refuses a cache path that is a symbolic link (as the touch
        // above did), so a link planted in a shared directory cannot redirect it.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        crypt::unlock(&conn, path)?;
        let mut store = Store {
            conn,
            path: Some(path.to_path_buf()),
            anchor: None,
        };
        // Switching a new file to WAL, or reading it while another connection does, can
        // be answered busy at once, without SQLite's busy wait: another process opening
        // the same new cache at this moment. Tried again for as long as a busy wait lasts.
        let started = std::time::Instant::now();
        loop {
            let ready = store
                .configure()
                .and_then(|()| store.check_version())
                .and_then(|()| Ok(schema::migrate(&mut store.conn)?));
            match ready {
                Err(StoreError::Sql(e)) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                r => return r.map(|()| store),
            }
        }
    }

    /// Opens an existing cache without the right to change it. A cache that does not
    /// exist yet is created first (empty), so read-only commands work on a fresh machine.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !path.exists() {
            drop(Store::open(path)?);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        crypt::unlock(&conn, path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let store = Store {
            conn,
            path: Some(path.to_path_buf()),
            anchor: None,
        };
        store.check_version()?;
        Ok(store)
    }

    /// An in-memory cache (tests, benchmarks).
    pub fn open_in_memory() -> Result<Store> {
        let mut store = Store {
            conn: Connection::open_in_memory()?,
            path: None,
            anchor: None,
        };
        store.configure()?;
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    fn configure(&self) -> Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        self.conn
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        self.conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -32000;",
        )?;
        if let Some(path) = &self.path {
            // SQLite creates the WAL and shm files with the database's mode; make sure.
            for suffix in ["-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = crate::fsutil::restrict_file(Path::new(&p));
            }
        }
        Ok(())
    }

    fn check_version(&self) -> Result<()> {
        let found: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > schema::latest_version() {
            return Err(StoreError::TooNew {
                path: self.path.clone().unwrap_or_default(),
                found,
                supported: schema::latest_version(),
            });
        }
        Ok(())
    }

    /// The file behind the cache, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The connection, for the store's own tests.
    #[cfg(test)]
    fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Registers a provider (or updates its kind and url) and returns its cache id.
    pub fn ensure_provider(&self, name: &str, kind: &str, url: Option<&str>) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO providers (name, kind, url) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, url = excluded.url",
            params![name, kind, url],
        )?;
        self.provider_id(name)?
            .ok_or_else(|| StoreError::UnknownProvider(name.to_string()))
    }

    /// The cache id of a provider, if known.
    pub fn provider_id(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM providers WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }

    /// Records the outcome of a sync attempt.
    pub fn record_sync(
        &self,
        provider: &str,
        at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<()> {
        if error.is_some() {
            self.conn.execute(
                "UPDATE providers SET last_error = ?2 WHERE name = ?1",
                params![provider, error],
            )?;
        } else {
            self.conn.execute(
                "UPDATE providers SET last_sync = ?2, last_error = NULL WHERE name = ?1",
                params![provider, to_millis(at)],
            )?;
        }
        Ok(())
    }

    /// Every provider with its health and counts (counts use the indexes).
    pub fn providers(&self) -> Result<Vec<ProviderInfo>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.name, p.kind, p.url, p.last_sync, p.last_error,
                    (SELECT count(*) FROM keys k WHERE k.provider_id = p.id),
                    (SELECT count(*) FROM events e WHERE e.provider_id = p.id)
             FROM providers p ORDER BY p.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ProviderInfo {
                name: r.get(0)?,
                kind: r.get(1)?,
                url: r.get(2)?,
                last_sync: r.get::<_, Option<Millis>>(3)?.map(from_millis),
                last_error: r.get(4)?,
                keys: r.get(5)?,
                events: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The saved cursor of a provider's stream (`events`, an import file, ...).
    pub fn cursor(&self, provider: &str, stream: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT s.cursor FROM sync_state s JOIN providers p ON p.id = s.provider_id
                 WHERE p.name = ?1 AND s.stream = ?2",
            )?
            .query_row(params![provider, stream], |r| r.get(0))
            .optional()?)
    }

    /// Saves a cursor outside of an event batch.
    pub fn set_cursor(&self, provider: &str, stream: &str, cursor: &str) -> Result<()> {
        let pid = self
            .provider_id(provider)?
            .ok_or_else(|| StoreError::UnknownProvider(provider.to_string()))?;
        set_cursor_tx(&self.conn, pid, stream, cursor)?;
        Ok(())
    }

    /// Runs SQLite's own consistency check; `Ok(true)` when it says "ok".
    pub fn integrity_ok(&self) -> Result<bool> {
        let s: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }
}

/// How long a connection waits for another connection's write lock before SQLite
/// answers busy.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// True for SQLite's "database is busy" and "database is locked" answers.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Runs one batch (a whole transaction) again while SQLite answers busy: another
/// process (a second session, a CLI `sync`, `detect` or `import`) held the write lock
/// past the busy timeout. A batch that failed busy was rolled back, so it is whole
/// again on the next attempt.
pub(crate) fn retry_busy<T>(mut batch: impl FnMut() -> Result<T>) -> Result<T> {
    const ATTEMPTS: u32 = 6;
    let mut attempt = 1;
    loop {
        match batch() {
            Err(StoreError::Sql(e)) if is_busy(&e) && attempt < ATTEMPTS => {
                tracing::warn!(attempt, "the cache is busy; retrying the batch");
                std::thread::sleep(std::time::Duration::from_millis(100 << attempt));
                attempt += 1;
            }
            r => return r,
        }
    }
}

pub(crate) fn set_cursor_tx(
    conn: &Connection,
    provider_id: i64,
    stream: &str,
    cursor: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_state (provider_id, stream, cursor, updated) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(provider_id, stream) DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated",
    )?
    .execute(params![provider_id, stream, cursor, to_millis(Utc::now())])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.db");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::latest_version());
        assert!(store.integrity_ok().unwrap());
    }

    #[test]
    fn concurrent_opens_of_a_new_cache_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || Store::open(&p).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().expect("every concurrent open succeeds");
        }
        assert!(Store::open(&path).unwrap().integrity_ok().unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn cache_file_and_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/cache.db");
        drop(Store::open(&path).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_newer_cache_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .conn()
                .pragma_update(None, "user_version", 999)
                .unwrap();
        }
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("schema version 999"), "{err}");
    }

    #[test]
    fn cursors_round_trip() {
        let store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        assert_eq!(store.cursor("p", "events").unwrap(), None);
        store.set_cursor("p", "events", "42").unwrap();
        store.set_cursor("p", "events", "43").unwrap();
        assert_eq!(store.cursor("p", "events").unwrap().as_deref(), Some("43"));
    }
}
