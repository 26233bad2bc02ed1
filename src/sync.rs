//! The sync engine: pulls keys and new events from a provider into the cache.
//!
//! Keys are listed in full each time (page by page, each page one transaction); events are
//! pulled incrementally from the provider's cursor, each page committed together with the
//! cursor that follows it. A sync that fails half-way keeps what it committed and resumes
//! from its cursor next time; a page is never committed twice, so nothing is duplicated.
//! While one page is written, the next is already being fetched.

use crate::detect::DetectConfig;
use crate::model::{Event, Key};
use crate::provider::{Provider, ProviderError};
use crate::store::{Store, StoreError};
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

pub mod team;

/// The cursor stream name of provider events.
pub const EVENTS_STREAM: &str = "events";

/// Which part of a sync is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPhase {
    Keys,
    Events,
    Done,
}

/// Progress of one provider's sync, reported after every page.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncProgress {
    pub provider: String,
    pub phase: SyncPhase,
    pub keys: usize,
    pub new_events: usize,
    pub pages: usize,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SyncReport {
    pub provider: String,
    pub keys: usize,
    /// Keys the provider no longer lists, marked revoked.
    pub unlisted: usize,
    /// Keys not listed because their source could not be read (a permission the
    /// credential lacks), kept as cached; the notes say which source and why.
    pub held: usize,
    pub new_events: usize,
    pub duplicates: usize,
    pub pages: usize,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// The incremental detection run over what this sync brought in (`None` if it failed;
    /// the failure is logged and the sync still counts as done).
    pub detection: Option<crate::detect::DetectReport>,
    /// The Sigma rules' run over what came in (`None` without rules, or if it failed).
    pub sigma: Option<crate::sigma::SigmaReport>,
    /// Why no events were read although the provider lists events (the provider said
    /// it cannot serve them, e.g. an OpenAI organization without audit logging); the
    /// keys were synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_skipped: Option<String>,
    /// What the provider could not read and why ([`Provider::notes`]); the sync still
    /// counts as done.
    pub notes: Vec<String>,
}

/// The Sigma rules a sync runs after the built-in rules, with their settings.
pub type SyncSigma = Arc<(crate::sigma::RuleSet, crate::sigma::SigmaConfig)>;

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Why a sync stopped.
#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The team store failed (a team sync publishes to it or reads from it).
    #[error(transparent)]
    Team(#[from] crate::store::shared::SharedError),
    #[error("sync of {provider}: a background task failed: {message}")]
    Task { provider: String, message: String },
}

impl SyncError {
    /// A blocking task of the sync of `provider` that stopped (it panicked).
    pub(crate) fn task(provider: &str, e: tokio::task::JoinError) -> SyncError {
        SyncError::Task {
            provider: provider.to_string(),
            message: e.to_string(),
        }
    }
}

/// Runs a blocking store operation off the async runtime, handing the store back.
async fn with_store<T: Send + 'static>(
    store: Store,
    provider: &str,
    f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<(Store, T), SyncError> {
    tokio::task::spawn_blocking(move || {
        let mut store = store;
        let r = f(&mut store);
        r.map(|v| (store, v))
    })
    .await
    .map_err(|e| SyncError::task(provider, e))?
    .map_err(SyncError::from)
}

/// Syncs one provider into the cache at `db` (opened here, so the caller's own
/// connection stays free), then runs incremental detection with `detect` over what came
/// in. Progress goes to `progress` after every page.
pub async fn sync_provider(
    db: &Path,
    provider: Arc<dyn Provider>,
    detect: &DetectConfig,
    progress: &(dyn Fn(&SyncProgress) + Send + Sync),
) -> Result<SyncReport, SyncError> {
    sync_provider_with(db, provider, Some(detect), None, progress).await
}

/// [`sync_provider`], then the Sigma rules of `sigma` over the events after their
/// watermark (the same watermark `keyaudit detect` keeps, so an event is evaluated once
/// whichever runs first). Without `detect` the detection rules do not run here (a team
/// member whose events stay in the team store runs them on the team's copy).
pub async fn sync_provider_with(
    db: &Path,
    provider: Arc<dyn Provider>,
    detect: Option<&DetectConfig>,
    sigma: Option<SyncSigma>,
    progress: &(dyn Fn(&SyncProgress) + Send + Sync),
) -> Result<SyncReport, SyncError> {
    let db: PathBuf = db.to_path_buf();
    let name = provider.name().to_string();
    let store = tokio::task::spawn_blocking(move || Store::open(&db))
        .await
        .map_err(|e| SyncError::task(&name, e))??;
    let started = Instant::now();
    let result = run(store, provider.as_ref(), progress).await;
    match result {
        Ok((store, mut report)) => {
            report.elapsed = started.elapsed();
            report.notes = provider.notes();
            store.record_sync(&report.provider, Utc::now(), None)?;
            if let Err(e) =
                crate::action::workflow::check_rotated_key_use(&store, Some(&report.provider))
            {
                tracing::warn!(provider = %report.provider, "rotated-key check failed: {e}");
            }
            // Detection over what came in.
            let mut store = store;
            let detect = detect.cloned();
            let sigma_name = name.clone();
            let ran = tokio::task::spawn_blocking(move || {
                let now = Utc::now();
                let d = detect
                    .map(|detect| crate::detect::detect_incremental(&mut store, &detect, now));
                let s = sigma
                    .filter(|s| !s.0.rules.is_empty())
                    .map(|s| crate::sigma::run(&mut store, &s.0, &s.1, now));
                (d, s)
            })
            .await;
            let (d, s) = match ran {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("detection after the sync of {name} failed: {e}");
                    return Ok(report);
                }
            };
            report.detection = match d {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    tracing::warn!("detection after the sync of {name} failed: {e}");
                    None
                }
                None => None,
            };
            report.sigma = match s {
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => {
                    tracing::warn!("Sigma rules after the sync of {sigma_name} failed: {e}");
                    None
                }
                None => None,
            };
            Ok(report)
        }
        Err((store, e)) => {
            if let Some(store) = store {
                let _ = store.record_sync(provider.name(), Utc::now(), Some(&e.to_string()));
            }
            Err(e)
        }
    }
}

type RunResult = Result<(Store, SyncReport), (Option<Store>, SyncError)>;

async fn run(
    store: Store,
    provider: &dyn Provider,
    progress: &(dyn Fn(&SyncProgress) + Send + Sync),
) -> RunResult {
    let name = provider.name().to_string();
    let mut report = SyncReport {
        provider: name.clone(),
        ..Default::default()
    };
    let progress_now = |phase: SyncPhase, r: &SyncReport| {
        progress(&SyncProgress {
            provider: r.provider.clone(),
            phase,
            keys: r.keys,
            new_events: r.new_events,
            pages: r.pages,
        })
    };
    if let Err(e) = store.ensure_provider(&name, provider.kind(), provider.location().as_deref()) {
        return Err((Some(store), e.into()));
    }

    // Keys: the full listing, page by page.
    let listing_started = Utc::now();
    let mut store = store;
    let mut page_token: Option<String> = None;
    let mut held: Vec<crate::provider::Held> = Vec::new();
    loop {
        let page = match provider.list_keys(page_token.as_deref()).await {
            Ok(p) => p,
            Err(e) => return Err((Some(store), e.into())),
        };
        report.keys += page.keys.len();
        report.pages += 1;
        held.extend(page.held);
        let keys: Vec<Key> = page.keys;
        let n = name.clone();
        store = match with_store(store, &name, move |s| {
            s.upsert_keys(&n, &keys, listing_started)
        })
        .await
        {
            Ok((s, ())) => s,
            Err(e) => return Err((None, e)),
        };
        progress_now(SyncPhase::Keys, &report);
        match page.next {
            Some(t) => page_token = Some(t),
            None => break,
        }
    }
    // A key missing from a source the provider refused to list is not a revoked key.
    let held_by = |k: &Key| held.iter().any(|h| h.covers(k));
    match store.mark_unlisted_revoked(&name, listing_started, &held_by) {
        Ok((revoked, kept)) => {
            report.unlisted = revoked;
            report.held = kept;
        }
        Err(e) => return Err((Some(store), e.into())),
    }
    // Findings the provider states itself (e.g. an active AWS root key).
    match provider.findings().await {
        Ok(found) => {
            for f in &found {
                if let Err(e) = store.upsert_finding(f) {
                    return Err((Some(store), e.into()));
                }
            }
        }
        Err(e) => tracing::warn!(provider = %name, "provider findings skipped: {e}"),
    }

    if !provider.capabilities().list_events {
        progress_now(SyncPhase::Done, &report);
        return Ok((store, report));
    }

    // Events: from the saved cursor; write page N while fetching page N+1.
    let mut cursor = match store.cursor(&name, EVENTS_STREAM) {
        Ok(c) => c,
        Err(e) => return Err((Some(store), e.into())),
    };
    let mut pending: Option<
        tokio::task::JoinHandle<Result<(Store, crate::store::Inserted), StoreError>>,
    > = None;
    let mut idle: Option<Store> = Some(store);
    let mut first_page = true;
    loop {
        let fetched = provider.list_events(cursor.as_deref()).await;
        // Finish the previous write before starting the next (cursor order is kept).
        if let Some(h) = pending.take() {
            match h.await {
                Ok(Ok((s, ins))) => {
                    report.new_events += ins.events;
                    report.duplicates += ins.duplicates;
                    idle = Some(s);
                    progress_now(SyncPhase::Events, &report);
                }
                Ok(Err(e)) => return Err((None, e.into())),
                Err(e) => return Err((None, SyncError::task(&name, e))),
            }
        }
        let page = match fetched {
            Ok(p) => p,
            // The provider cannot serve events at all (a capability it lacks at this
            // account): the keys stand, the sync says why there are no events.
            Err(e @ ProviderError::Unsupported { .. }) if first_page => {
                tracing::warn!(provider = %name, "events skipped: {e}");
                report.events_skipped = Some(e.to_string());
                break;
            }
            Err(e) => return Err((idle, e.into())),
        };
        first_page = false;
        report.pages += 1;
        let has_more = page.has_more && !page.events.is_empty();
        let next = page.next_cursor.clone();
        if page.events.is_empty() {
            if cursor.as_deref() != Some(next.as_str()) {
                let s = idle.take().expect("store is idle between pages");
                if let Err(e) = s.set_cursor(&name, EVENTS_STREAM, &next) {
                    return Err((Some(s), e.into()));
                }
                idle = Some(s);
            }
            break;
        }
        let mut s = idle.take().expect("store is idle between pages");
        let mut events: Vec<Event> = page.events;
        let n = name.clone();
        let c = next.clone();
        pending = Some(tokio::task::spawn_blocking(move || {
            // Whatever a provider hands over, no secret reaches the cache in a raw record.
            for raw in events.iter_mut().filter_map(|e| e.raw.as_mut()) {
                crate::import::redact::redact_raw(raw);
            }
            let r = s.insert_events(&n, &events, Some((EVENTS_STREAM, &c)));
            r.map(|ins| (s, ins))
        }));
        cursor = Some(next);
        if !has_more {
            break;
        }
    }
    if let Some(h) = pending.take() {
        match h.await {
            Ok(Ok((s, ins))) => {
                report.new_events += ins.events;
                report.duplicates += ins.duplicates;
                idle = Some(s);
            }
            Ok(Err(e)) => return Err((None, e.into())),
            Err(e) => return Err((None, SyncError::task(&name, e))),
        }
    }
    progress_now(SyncPhase::Done, &report);
    Ok((idle.expect("store is idle at the end"), report))
}
