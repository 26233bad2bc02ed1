//! The runner: performs the effects `update` asks for on tokio tasks and answers with
//! actions. Cache reads run on blocking threads with the runner's own read-only
//! connection; writes go through `crate::action` and the sync engine, which open theirs.
//! The IO each effect needs lives next to the view or dialog it serves (the detail's
//! read in `view::detail`, the export in `view::keys`, OSC 52 in `dialog::secret`, ...);
//! only the runner calls it.

use super::action::{Action, Effect, EventsPage};
use super::dialog::guided;
use super::dialog::secret::{osc52, rotate_to_screen};
use super::import::{run_detection, run_import, ImportPlan};
use super::view::detail::{
    detail_activity, detail_events, detail_with, DetailParts, DETAIL_JOURNAL,
};
use super::view::events::EVENTS_SCAN;
use super::view::keys::{export, KEYS_HEAD};
use crate::action::apply_key_op;
use crate::action::decide::{decide, pull, FindingDecision};
use crate::config::EventsHome;
use crate::detect::DetectConfig;
use crate::model::JournalEntry;
use crate::provider::Provider;
use crate::store::reads::{always, with_reader, CacheEvents, EventReads, KeepGoing, Reader};
use crate::store::shared::SharedError;
use crate::store::team::events::TeamEvents;
use crate::store::{Cache, FindingQuery, Store, StoreError};
use crate::tui::dialog::rotations::RotationRow;
use chrono::Utc;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// The newest journal entries the journal view shows.
const JOURNAL_SHOWN: usize = 2000;

/// Executes effects; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    db: PathBuf,
    /// The cache as actions open it (its journal anchored).
    cache: Cache,
    providers: Arc<Vec<Arc<dyn Provider>>>,
    tx: UnboundedSender<Action>,
    search: Arc<super::search::Searcher>,
    /// The newest generation of the events view's walk; older reads give up.
    latest_events: Arc<AtomicU64>,
    /// The newest key detail load. Loads overlap (a member's rotation announces its
    /// save and then its journal entries) and can finish out of order: only the newest
    /// is shown, checked and sent under this lock so an older one cannot land after it.
    latest_detail: Arc<std::sync::Mutex<u64>>,
    reader: Reader,
    /// Where the events view and the key detail read the events: the cache, or the team
    /// store with `[team] events = "team"`.
    events: Arc<dyn EventReads>,
    /// The first load of the keys sends their first screen ahead; reloads do not.
    head_first: Arc<AtomicBool>,
    /// `[detect]` settings: the detection after a sync and the detail's baseline status.
    detect: Arc<DetectConfig>,
    /// The import of `keyaudit open`, run by `Effect::Import`.
    import: Option<Arc<ImportPlan>>,
    /// The Sigma rules run after a sync.
    sigma: Option<crate::sync::SyncSigma>,
    /// The last team decision applied to the cache; held while decisions are applied,
    /// so two announcements never apply the same rows at once.
    team_mark: Arc<tokio::sync::Mutex<i64>>,
    /// A team's copy of a source younger than this is read rather than synced again
    /// (`[team] fresh`).
    team_fresh: Option<std::time::Duration>,
}

impl Runner {
    /// A runner over the cache at `db` that sends its results to `tx`.
    pub fn new(
        cache: impl Into<Cache>,
        providers: Vec<Arc<dyn Provider>>,
        tx: UnboundedSender<Action>,
    ) -> Runner {
        let cache = cache.into();
        // The events are read with a connection of their own, so the events view's first
        // page never waits behind the load of a long key list.
        let in_cache = CacheEvents::new(cache.path.clone(), Reader::default());
        let events: Arc<dyn EventReads> = match &cache.team {
            Some(team) if team.events_home() == EventsHome::Team => {
                Arc::new(TeamEvents::new(team.clone(), in_cache))
            }
            _ => Arc::new(in_cache),
        };
        Runner {
            events,
            db: cache.path.clone(),
            cache,
            providers: Arc::new(providers),
            tx,
            search: Arc::default(),
            head_first: Arc::new(AtomicBool::new(true)),
            latest_events: Arc::new(AtomicU64::new(0)),
            latest_detail: Arc::default(),
            reader: Reader::default(),
            detect: Arc::default(),
            import: None,
            sigma: None,
            team_mark: Arc::default(),
            team_fresh: None,
        }
    }

    /// A key's entries in the team journal (newest first) and the team's open rotations
    /// of it, when a team is configured and reachable; `None` for what could not be read
    /// (the detail then shows the cache's).
    async fn team_parts(&self, key_ref: i64) -> (Option<Vec<JournalEntry>>, Option<Vec<String>>) {
        if self.cache.team.is_none() {
            return (None, None);
        }
        let Some(((provider, key_id), me)) = self
            .cache
            .run(move |s| Ok(s.key_target(key_ref)?.zip(Some(s.cache_id()?))))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
        else {
            return (None, None);
        };
        let target = format!("{provider}/{key_id}");
        let shared = self.cache.shared();
        let (journal, rotations) = tokio::join!(
            shared.recent_journal(Some(&target), DETAIL_JOURNAL),
            shared.team_workflows(false),
        );
        let journal = journal
            .map(|mut j| {
                j.reverse();
                j
            })
            .map_err(|e| tracing::warn!("the key's team journal is not shown: {e}"))
            .ok();
        let rotations = rotations
            .map(|all| {
                all.iter()
                    .filter(|t| t.workflow.provider == provider && t.workflow.key_id == key_id)
                    .flat_map(|t| {
                        let r = RotationRow::team(t, &me);
                        std::iter::once(r.line).chain(r.hint.map(|h| format!("  {h}")))
                    })
                    .collect()
            })
            .map_err(|e| tracing::warn!("the key's team rotations are not shown: {e}"))
            .ok();
        (journal, rotations)
    }

    /// The rotations in progress: the team's with a team store, else the cache's; the
    /// cache's when the team store cannot be read (logged).
    async fn rotations(&self) -> Result<Vec<RotationRow>, String> {
        use crate::action::{with_db, ActionError};
        let fail = |e: ActionError| format!("cannot read the rotations: {e}");
        if self.cache.team.is_some() {
            let me = with_db(&self.cache, |s| s.cache_id()).await.map_err(fail)?;
            match self.cache.shared().team_workflows(false).await {
                Ok(team) => return Ok(team.iter().map(|t| RotationRow::team(t, &me)).collect()),
                Err(e) => tracing::warn!("the team's rotations are not shown: {e}"),
            }
        }
        let open = with_db(&self.cache, |s| crate::action::workflow::list(s, false))
            .await
            .map_err(fail)?;
        Ok(open.iter().map(RotationRow::own).collect())
    }

    /// The same runner reading a team's copy younger than `fresh` instead of syncing.
    pub fn with_team_fresh(mut self, fresh: Option<std::time::Duration>) -> Runner {
        self.team_fresh = fresh;
        self
    }

    /// The team store's announcements, with `[team]` configured.
    pub fn team_signals(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<crate::store::team::live::Signal>> {
        self.cache.team.as_ref().map(|t| t.watch())
    }

    /// The same runner with the import `Effect::Import` runs.
    pub fn with_import(mut self, plan: ImportPlan) -> Runner {
        self.import = Some(Arc::new(plan));
        self
    }

    /// Asks the import (if one runs) to stop: what it read is committed.
    pub fn stop_import(&self) {
        if let Some(plan) = &self.import {
            plan.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// The same runner with these detection settings (the defaults otherwise).
    pub fn with_detect(mut self, detect: DetectConfig) -> Runner {
        self.detect = Arc::new(detect);
        self
    }

    /// The same runner running these Sigma rules after each sync.
    pub fn with_sigma(mut self, sigma: Option<crate::sync::SyncSigma>) -> Runner {
        self.sigma = sigma;
        self
    }

    fn send(&self, a: Action) {
        let _ = self.tx.send(a);
    }

    /// A failed read of the events, naming where they are kept.
    fn events_failed(&self, e: SharedError) -> Action {
        Action::LoadFailed(format!(
            "cannot read the events from {}: {e}",
            self.events.describe()
        ))
    }

    /// Reads the cache on a blocking thread with the runner's connection.
    fn read<T, F, M>(&self, f: F, map: M)
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        M: FnOnce(T) -> Action + Send + 'static,
    {
        self.read_then(
            |s, _| f(s),
            |v, tx| {
                let _ = tx.send(map(v));
            },
        );
    }

    /// Reads the cache on a blocking thread with the runner's connection (the reading
    /// may send actions of its own), then hands the result to `then` on the same thread,
    /// with the connection released.
    fn read_then<T, F, D>(&self, f: F, then: D)
    where
        T: Send + 'static,
        F: FnOnce(&Store, &UnboundedSender<Action>) -> Result<T, StoreError> + Send + 'static,
        D: FnOnce(T, &UnboundedSender<Action>) + Send + 'static,
    {
        let (db, reader, tx) = (self.db.clone(), self.reader.clone(), self.tx.clone());
        tokio::task::spawn_blocking(move || match with_reader(&db, &reader, |s| f(s, &tx)) {
            Ok(v) => then(v, &tx),
            Err(e) => {
                let _ = tx.send(Action::LoadFailed(format!("cannot read the cache: {e}")));
            }
        });
    }

    /// Performs every effect.
    pub fn run_all(&self, effects: Vec<Effect>) {
        for e in effects {
            self.run(e);
        }
    }

    /// Performs one effect.
    pub fn run(&self, effect: Effect) {
        match effect {
            Effect::LoadKeys => {
                let search = self.search.clone();
                let head_first = self.head_first.swap(false, Ordering::Relaxed);
                self.read_then(
                    move |s, tx| {
                        // A large list takes a while: at start its first screen goes ahead.
                        if head_first {
                            let (head, total) = s.keys_head(KEYS_HEAD)?;
                            if total > head.len() {
                                let _ = tx.send(Action::KeysPreviewed(Arc::new(head), total));
                            }
                        }
                        s.keys()
                    },
                    move |keys, tx| {
                        let keys = Arc::new(keys);
                        let _ = tx.send(Action::KeysLoaded(keys.clone()));
                        // After the keys are on screen, so the first frame does not wait.
                        search.prepare(&keys);
                    },
                );
            }
            Effect::Filter(job) => {
                self.search.request(job.generation);
                let (search, tx) = (self.search.clone(), self.tx.clone());
                tokio::task::spawn_blocking(move || {
                    if let Some(v) = search.run(&job) {
                        let _ = tx.send(Action::FilterApplied(job.generation, Arc::new(v)));
                    }
                });
            }
            Effect::LoadDetail(key_ref, now, since) => {
                let generation = match self.latest_detail.lock() {
                    Ok(mut latest) => {
                        *latest += 1;
                        *latest
                    }
                    Err(poisoned) => *poisoned.into_inner(),
                };
                let me = self.clone();
                tokio::spawn(async move {
                    let events = &me.events;
                    let read = async {
                        let (activity, page, state) = tokio::join!(
                            events.key_activity(detail_activity(key_ref, now)),
                            events.page(detail_events(key_ref, since), usize::MAX, always()),
                            events.key_state(key_ref),
                        );
                        Ok::<_, SharedError>((activity?, page?.unwrap_or_default().rows, state?))
                    };
                    let (read, (journal, rotations)) = tokio::join!(read, me.team_parts(key_ref));
                    let (activity, rows, state) = match read {
                        Ok(read) => read,
                        Err(e) => return me.send(me.events_failed(e)),
                    };
                    let detect = me.detect.clone();
                    let parts = DetailParts {
                        activity,
                        events: rows,
                        state,
                        journal,
                        rotations,
                    };
                    let latest = me.latest_detail.clone();
                    me.read_then(
                        move |s, _| detail_with(s, key_ref, since, &detect, parts),
                        move |d, tx| {
                            let Ok(newest) = latest.lock() else { return };
                            if *newest != generation {
                                return;
                            }
                            let _ = tx.send(match d {
                                Some(d) => Action::DetailLoaded(Box::new(d)),
                                None => {
                                    Action::LoadFailed("the key is no longer in the cache".into())
                                }
                            });
                        },
                    );
                });
            }
            Effect::LoadEvents(mut req) => {
                let (generation, walk) = (req.generation, req.walk);
                self.latest_events.store(generation, Ordering::SeqCst);
                let latest = self.latest_events.clone();
                let keep_going: KeepGoing =
                    Arc::new(move || latest.load(Ordering::Relaxed) == generation);
                // The page is sent as soon as it is read; the histogram (a walk of a whole
                // day of events when a filter is set) follows.
                let histogram = req.histogram.take();
                let me = self.clone();
                tokio::spawn(async move {
                    let events = &me.events;
                    let query = req.query;
                    let page = events
                        .page(query.clone(), EVENTS_SCAN, keep_going.clone())
                        .await;
                    let page = match page {
                        Ok(Some(page)) => page,
                        Ok(None) => return me.send(Action::EventsSuperseded(generation)),
                        Err(e) => return me.send(me.events_failed(e)),
                    };
                    let per_hour = match histogram {
                        Some(now) => events.per_hour(query, now, 24, keep_going).await,
                        None => Ok(None),
                    };
                    let loaded = EventsPage {
                        page,
                        per_hour: None,
                    };
                    me.send(Action::EventsLoaded(generation, walk, Box::new(loaded)));
                    if histogram.is_some() {
                        me.send(match per_hour {
                            Ok(Some(h)) => Action::HistogramLoaded(generation, h),
                            Ok(None) => Action::EventsSuperseded(generation),
                            Err(e) => me.events_failed(e),
                        });
                    }
                });
            }
            Effect::LoadFindings => self.read(
                |s| {
                    s.findings(&FindingQuery {
                        limit: Some(5000),
                        ..Default::default()
                    })
                },
                Action::FindingsLoaded,
            ),
            // A team's journal is the team store's; one person's, the cache's.
            Effect::LoadJournal if self.cache.team.is_some() => {
                let me = self.clone();
                tokio::spawn(async move {
                    me.send(
                        match me.cache.shared().recent_journal(None, JOURNAL_SHOWN).await {
                            Ok(mut j) => {
                                j.reverse();
                                Action::JournalLoaded(j)
                            }
                            Err(e) => {
                                Action::LoadFailed(format!("cannot read the team journal: {e}"))
                            }
                        },
                    );
                });
            }
            Effect::LoadJournal => self.read(
                |s| {
                    let mut j = s.journal(None, Some(JOURNAL_SHOWN))?;
                    j.reverse();
                    Ok(j)
                },
                Action::JournalLoaded,
            ),
            // A team's rotations are the team store's (every member's); one person's, or
            // while the store is out of reach, the cache's.
            Effect::LoadRotations => {
                let me = self.clone();
                tokio::spawn(async move {
                    let rows = me.rotations().await;
                    me.send(Action::RotationsLoaded(rows));
                });
            }
            Effect::LoadProviders => {
                self.read(|s| s.providers(), Action::ProvidersLoaded);
                self.read(|s| s.imported_files(), Action::SourcesLoaded);
            }
            Effect::Sync => self.sync(),
            Effect::ApplyKeyOp(op, keys, reason) => {
                let me = self.clone();
                tokio::spawn(async move {
                    for key in keys {
                        let target = crate::action::target(&key);
                        let Some(p) = me.providers.iter().find(|p| p.name() == key.provider) else {
                            me.send(Action::KeyOpFinished(
                                op,
                                target,
                                Err(format!("provider `{}` is not configured", key.provider)),
                            ));
                            continue;
                        };
                        let r = apply_key_op(&me.cache, p.clone(), &key, op, Some(&reason))
                            .await
                            .map(|k| k.status)
                            .map_err(|e| e.to_string());
                        me.send(Action::KeyOpFinished(op, target, r));
                    }
                });
            }
            Effect::Rotate { key, grace, reason } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let Some(p) = me.providers.iter().find(|p| p.name() == key.provider) else {
                        me.send(Action::RotateFailed(
                            crate::action::target(&key),
                            format!("provider `{}` is not configured", key.provider),
                        ));
                        return;
                    };
                    let a = rotate_to_screen(&me.cache, p.clone(), *key, grace, reason).await;
                    me.send(a);
                });
            }
            Effect::PlanGuided(key) => {
                let me = self.clone();
                tokio::spawn(async move {
                    let r = match me.providers.iter().find(|p| p.name() == key.key.provider) {
                        Some(p) => guided::plan(&me.cache, p.as_ref(), *key).await,
                        None => Err(format!("provider `{}` is not configured", key.key.provider)),
                    };
                    me.send(Action::GuidedPlanned(r));
                });
            }
            Effect::RotateGuided {
                key,
                reason,
                workflow,
            } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let target = crate::action::target(&key);
                    let r = match me.providers.iter().find(|p| p.name() == key.provider) {
                        Some(p) => guided::run(&me.cache, p.clone(), &key, reason, workflow).await,
                        None => Err(format!("provider `{}` is not configured", key.provider)),
                    };
                    me.send(Action::GuidedFinished(target, r));
                });
            }
            Effect::CopyToClipboard(secret) => {
                use std::io::Write;
                let seq = osc52(&secret);
                drop(secret);
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(seq.as_bytes()).and_then(|_| out.flush());
            }
            Effect::SetFindingStatus {
                id,
                target,
                status,
                note,
            } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let d = FindingDecision {
                        id: id.clone(),
                        target,
                        status,
                        note,
                        until: None,
                        params: serde_json::json!({}),
                    };
                    me.send(match decide(&me.cache, &d).await {
                        Ok(true) => Action::FindingUpdated(id, status),
                        Ok(false) => Action::LoadFailed(format!("no finding {id}")),
                        Err(e) => Action::LoadFailed(format!(
                            "cannot update finding {id}: {e}; nothing was changed"
                        )),
                    });
                });
            }
            Effect::PullDecisions { all } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let mut mark = me.team_mark.lock().await;
                    let after = if all { 0 } else { *mark };
                    match pull(&me.cache, after).await {
                        Ok((last, changed)) => {
                            *mark = (*mark).max(last);
                            me.send(Action::TeamDecided(changed));
                        }
                        // The listener says when the store is lost; a reconnection
                        // pulls everything again.
                        Err(e) => tracing::warn!("team decisions not applied: {e}"),
                    }
                });
            }
            Effect::LoadMembers => {
                let me = self.clone();
                tokio::spawn(async move {
                    match me.cache.shared().members().await {
                        Ok(m) => me.send(Action::TeamMembers(m)),
                        Err(e) => tracing::warn!("team members not read: {e}"),
                    }
                });
            }
            Effect::Import => {
                let Some(plan) = self.import.clone() else {
                    return;
                };
                let (db, tx) = (self.db.clone(), self.tx.clone());
                tokio::task::spawn_blocking(move || {
                    let report = run_import(&db, &plan, &tx);
                    let _ = tx.send(Action::ImportFinished(Box::new(report)));
                });
            }
            Effect::StopImport => self.stop_import(),
            Effect::Detect => {
                let (db, tx, detect) = (self.db.clone(), self.tx.clone(), self.detect.clone());
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(Action::DetectionFinished(run_detection(&db, &detect)));
                });
            }
            Effect::Export(fmt, rows) => {
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let r = export(std::path::Path::new("."), fmt, &rows, Utc::now())
                        .map_err(|e| e.to_string());
                    let _ = tx.send(Action::ExportFinished(r));
                });
            }
        }
    }

    fn sync(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            for p in me.providers.iter() {
                let tx = me.tx.clone();
                let progress = move |pr: &crate::sync::SyncProgress| {
                    let _ = tx.send(Action::SyncProgressed(pr.clone()));
                };
                let r = crate::sync::team::sync_source(
                    &me.cache,
                    p.clone(),
                    &me.detect,
                    me.sigma.clone(),
                    &progress,
                    me.team_fresh,
                )
                .await;
                let mut r = match r {
                    Ok(crate::sync::team::Outcome::Read(r)) if r.is_empty() => Ok(String::new()),
                    Ok(crate::sync::team::Outcome::Read(r)) => Ok(r.describe()),
                    Ok(crate::sync::team::Outcome::Synced(r)) => {
                        let mut said = format!(
                            "{} keys, {} new events in {:.1}s",
                            r.keys,
                            r.new_events,
                            r.elapsed.as_secs_f64()
                        );
                        if r.held > 0 {
                            said.push_str(&format!(
                                "; {} kept as cached, their source not listed",
                                r.held
                            ));
                        }
                        for note in &r.notes {
                            said.push_str("; note: ");
                            said.push_str(&crate::output::sanitize(note));
                        }
                        if let Some(why) = &r.events_skipped {
                            said.push_str(&format!("; events skipped: {why}"));
                        }
                        Ok(said)
                    }
                    Err(e) => Err(e.to_string()),
                };
                // Guided rotations of this provider watch each sync, or read of the
                // team's copy.
                if let Ok(said) = &mut r {
                    match crate::action::guided::watch(&me.cache, p.name()).await {
                        Ok(lines) => {
                            for l in lines {
                                if !said.is_empty() {
                                    said.push_str("; ");
                                }
                                said.push_str(&l);
                            }
                        }
                        Err(e) => tracing::warn!("guided rotations not checked: {e}"),
                    }
                }
                me.send(Action::SyncFinished(p.name().to_string(), r));
            }
            crate::action::handover::publish_pending_or_warn(&me.cache).await;
            me.send(Action::SyncAllFinished);
        });
    }
}
