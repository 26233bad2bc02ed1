//! The reads the events view and the key detail ask of the events, as typed requests: a
//! page of a filtered walk in time order, the hourly counts of the histogram, one key's
//! activity. Each place the events are kept answers them in its own SQL: the cache in
//! SQLite ([`CacheEvents`]), a team that keeps its events in its store in PostgreSQL
//! ([`super::team::events::TeamEvents`]). The requests carry the cache's key handles;
//! an implementation that keeps keys by provider and id translates them.

use super::{ActivityRequest, EventPage, EventQuery, EventRow, KeyActivity, Store, StoreError};
use crate::store::shared::{task_failed, SharedError};
use crate::store::team::events::TeamEvents;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Asked every 1,024 events a walk examines; false when a newer request replaced this one.
pub type KeepGoing = Arc<dyn Fn() -> bool + Send + Sync>;

/// A walk that is never replaced.
pub fn always() -> KeepGoing {
    Arc::new(|| true)
}

/// Where the views read the events.
#[async_trait]
pub trait EventReads: Send + Sync {
    /// Where this is, for messages: `the cache` or `the team store postgres://…`.
    fn describe(&self) -> String;

    /// One page of a filtered walk through the events in time order (see
    /// [`Store::event_page`]): at most `q.limit` matches, at most `budget` events
    /// examined, and where the walk stopped. `None` when `keep_going` gave up.
    async fn page(
        &self,
        q: EventQuery,
        budget: usize,
        keep_going: KeepGoing,
    ) -> Result<Option<EventPage>, SharedError>;

    /// Events that pass every filter of `q`, per hour of the `hours` hours that end at
    /// `until`, oldest first (see [`Store::matching_per_hour`]). `None` when
    /// `keep_going` gave up.
    async fn per_hour(
        &self,
        q: EventQuery,
        until: DateTime<Utc>,
        hours: usize,
        keep_going: KeepGoing,
    ) -> Result<Option<Vec<u64>>, SharedError>;

    /// What one key did over the days before `until` (see [`Store::key_activity`]).
    async fn key_activity(&self, r: ActivityRequest) -> Result<KeyActivity, SharedError>;

    /// One key's detection state (its baseline, `detect::baseline::KeyState::encode`)
    /// as the last detection run over its events saved it, if any.
    async fn key_state(&self, key_ref: i64) -> Result<Option<Vec<u8>>, SharedError>;
}

/// Events one page of [`each_event`] asks for.
const STREAM_PAGE: usize = 5000;

/// Hands every event of `q` to `f` in `q`'s order, page by page, until `f` returns false
/// or `q.limit` events were handed over: the whole of a listing from any place the events
/// are kept, without holding it in memory.
pub async fn each_event(
    reads: &dyn EventReads,
    mut q: EventQuery,
    mut f: impl FnMut(EventRow) -> bool,
) -> Result<(), SharedError> {
    let mut left = q.limit.unwrap_or(usize::MAX);
    while left > 0 {
        q.limit = Some(left.min(STREAM_PAGE));
        let Some(mut page) = reads.page(q.clone(), usize::MAX, always()).await? else {
            return Ok(());
        };
        // A page lists its rows newest first, whichever way it walked.
        if !q.newest_first {
            page.rows.reverse();
        }
        for row in page.rows {
            left -= 1;
            if !f(row) {
                return Ok(());
            }
        }
        match page.resume {
            Some(at) if q.newest_first => q.before = Some(at),
            Some(at) => q.after = Some(at),
            None => return Ok(()),
        }
    }
    Ok(())
}

/// Every event of a listing or an export, from where the events are kept.
pub enum AllEvents<'a> {
    /// The cache, streamed.
    Cache(&'a Store),
    /// The team store, page by page on `runtime`.
    Team(&'a TeamEvents, &'a tokio::runtime::Runtime),
}

impl AllEvents<'_> {
    /// Hands the events of `q` to `f`, in `q`'s order, until it returns false.
    pub fn each(&self, q: &EventQuery, f: impl FnMut(EventRow) -> bool) -> Result<(), SharedError> {
        match self {
            AllEvents::Cache(s) => Ok(s.for_each_event(q, f)?),
            AllEvents::Team(t, runtime) => runtime.block_on(each_event(*t, q.clone(), f)),
        }
    }
}

/// A read-only connection to the cache, opened on first use and kept for the next reads.
pub type Reader = Arc<Mutex<Option<Store>>>;

/// Runs `f` on `reader`'s connection to the cache at `db`, opening it first if needed.
/// Blocks: call it on a blocking thread.
pub fn with_reader<T>(
    db: &Path,
    reader: &Mutex<Option<Store>>,
    f: impl FnOnce(&Store) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut guard = reader.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = Some(Store::open_read_only(db)?);
    }
    f(guard.as_ref().expect("opened above"))
}

/// The events of the cache, read with one read-only connection on blocking threads.
#[derive(Clone)]
pub struct CacheEvents {
    db: PathBuf,
    reader: Reader,
}

impl CacheEvents {
    /// The events of the cache at `db`, read through `reader`.
    pub fn new(db: impl Into<PathBuf>, reader: Reader) -> CacheEvents {
        CacheEvents {
            db: db.into(),
            reader,
        }
    }

    /// Runs `f` on the cache on a blocking thread.
    pub async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, SharedError> {
        let (db, reader) = (self.db.clone(), self.reader.clone());
        tokio::task::spawn_blocking(move || with_reader(&db, &reader, f))
            .await
            .map_err(|e| task_failed(self.describe(), e))?
            .map_err(SharedError::from)
    }
}

#[async_trait]
impl EventReads for CacheEvents {
    fn describe(&self) -> String {
        format!("the cache {}", self.db.display())
    }

    async fn page(
        &self,
        q: EventQuery,
        budget: usize,
        keep_going: KeepGoing,
    ) -> Result<Option<EventPage>, SharedError> {
        self.with(move |s| s.event_page(&q, budget, &*keep_going))
            .await
    }

    async fn per_hour(
        &self,
        q: EventQuery,
        until: DateTime<Utc>,
        hours: usize,
        keep_going: KeepGoing,
    ) -> Result<Option<Vec<u64>>, SharedError> {
        self.with(move |s| s.matching_per_hour(&q, until, hours, &*keep_going))
            .await
    }

    async fn key_activity(&self, r: ActivityRequest) -> Result<KeyActivity, SharedError> {
        self.with(move |s| s.key_activity(r.key_ref, r.until, r.days, r.top))
            .await
    }

    async fn key_state(&self, key_ref: i64) -> Result<Option<Vec<u8>>, SharedError> {
        self.with(move |s| s.detect_state(key_ref)).await
    }
}
