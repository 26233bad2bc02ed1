//! Syncing as a team (`[team]`): each source is synced by one member at a time, and the
//! others read the team's copy instead of calling the provider.
//!
//! For each source a member takes the source's lock in the team store
//! (`TeamStore::try_sync_lock`). Holding it, it reads what the team's copy holds that
//! its cache has not (with the provider's cursor, so the provider is asked only for what
//! is newer), syncs the provider into its own cache as one person would (detection
//! included), then publishes the keys, the events its cache got since its last
//! publication and the findings. Without it (another member
//! is syncing), or when the team's copy is younger than `fresh`, it reads the copy into
//! its cache: keys, events past the last one it read, findings; no provider call and no
//! detection. What was read is marked in the cache only after it is stored.

use super::{sync_provider_with, SyncError, SyncProgress, SyncReport, SyncSigma, EVENTS_STREAM};
use crate::config::EventsHome;
use crate::detect::{DetectConfig, DetectReport};
use crate::model::FindingStatus;
use crate::provider::Provider;
use crate::store::team::replica::{Marks, Pulled, SyncLock};
use crate::store::team::TeamStore;
use crate::store::{Cache, FindingQuery, Store};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per publication and per read.
const CHUNK: usize = 50_000;

/// The event cursor of the team's copy (`sync_state`, beside the provider's own).
const TEAM_STREAM: &str = "team";

/// How one source was brought up to date.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// This member synced it (and published it when a team is configured).
    Synced(SyncReport),
    /// This member read the team's copy.
    Read(Read),
}

/// What reading the team's copy of a source brought.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub provider: String,
    /// Who is syncing it now (`syncing`), or who last did (`user@host`).
    pub by: Option<String>,
    pub syncing: bool,
    pub keys: usize,
    pub new_events: usize,
    pub findings: usize,
    pub elapsed: Duration,
}

impl Read {
    /// `read the team's copy (alice@ws-12 is syncing it): 75 keys, 1204 new events, 3
    /// findings in 0.4s`.
    pub fn describe(&self) -> String {
        format!(
            "read the team's copy{}: {} keys, {} new events, {} findings in {:.1}s",
            self.by
                .as_ref()
                .map(|b| {
                    let b = crate::output::sanitize(b);
                    if self.syncing {
                        format!(" ({b} is syncing it)")
                    } else {
                        format!(" (synced by {b})")
                    }
                })
                .unwrap_or_default(),
            self.keys,
            self.new_events,
            self.findings,
            self.elapsed.as_secs_f64()
        )
    }

    /// Nothing was new.
    pub fn is_empty(&self) -> bool {
        self.keys == 0 && self.new_events == 0 && self.findings == 0
    }
}

/// Brings `provider` up to date in `cache`: synced here (one person, or the member
/// holding the source's lock, which then publishes it), or read from the team's copy.
pub async fn sync_source(
    cache: &Cache,
    provider: Arc<dyn Provider>,
    detect: &DetectConfig,
    sigma: Option<SyncSigma>,
    progress: &(dyn Fn(&SyncProgress) + Send + Sync),
    fresh: Option<Duration>,
) -> Result<Outcome, SyncError> {
    let Some(team) = cache.team.clone() else {
        return Ok(Outcome::Synced(
            sync_provider_with(&cache.path, provider, Some(detect), sigma, progress).await?,
        ));
    };
    let name = provider.name().to_string();
    // A member that keeps the events in the team store runs detection there, on the
    // team's copy, once its events are published; not on its cache.
    let in_team = team.events_home() == EventsHome::Team;
    let here = (!in_team).then_some(detect);
    // Without the team store this member still syncs for itself, and says so.
    let alone = |e: crate::store::shared::SharedError| {
        let (provider, sigma) = (provider.clone(), sigma.clone());
        async move {
            let mut report =
                sync_provider_with(&cache.path, provider, here, sigma, progress).await?;
            let detection = match in_team {
                true => "; detection runs on the team's copy then",
                false => "",
            };
            report.notes.push(format!(
                "synced here only, not shared with the team ({e}); the next sync publishes it{detection}"
            ));
            Ok::<_, SyncError>(Outcome::Synced(report))
        }
    };
    if let Some(fresh) = fresh.filter(|f| !f.is_zero()) {
        let state = match team.source(&name).await {
            Ok(s) => s,
            Err(e) => return alone(e).await,
        };
        if let Some((at, by)) = state.synced {
            if Utc::now()
                .signed_duration_since(at)
                .to_std()
                .unwrap_or_default()
                < fresh
            {
                return Ok(Outcome::Read(
                    read(cache, &team, &*provider, Some(by), false).await?,
                ));
            }
        }
    }
    let locked = match team.try_sync_lock(&name, provider.kind()).await {
        Ok(l) => l,
        Err(e) => return alone(e).await,
    };
    match locked {
        Err(state) => {
            let by = state.syncing.map(|(who, _)| who);
            Ok(Outcome::Read(
                read(cache, &team, &*provider, by, true).await?,
            ))
        }
        Ok(lock) => {
            // What the team holds of the source is read first, with the provider's cursor
            // its last publisher reached: the provider is then asked only for what is
            // newer, not for the history the team already has.
            let caught_up = match read(cache, &team, &*provider, None, false).await {
                Ok(r) => r,
                Err(e) => {
                    lock.release().await;
                    return Err(e);
                }
            };
            let (tx, rx) = tokio::sync::watch::channel(String::new());
            let report = |p: &SyncProgress| {
                progress(p);
                tx.send_replace(format!(
                    "page {}, {} new events",
                    p.pages,
                    crate::import::coverage::thousands(p.new_events as u64)
                ));
            };
            let sync = sync_provider_with(&cache.path, provider, here, sigma, &report);
            let synced = announcing(&lock, rx, sync).await;
            let published = match &synced {
                Ok(_) => publish(cache, &team, &lock, &name, detect).await,
                Err(_) => Ok(None),
            };
            lock.release().await;
            let mut report = synced?;
            if !caught_up.is_empty() {
                report.notes.insert(
                    0,
                    format!(
                        "read the team's copy first ({} keys, {} new events, {} findings); the provider was asked for what is newer",
                        caught_up.keys,
                        crate::import::coverage::thousands(caught_up.new_events as u64),
                        caught_up.findings
                    ),
                );
            }
            match published? {
                Some(Ok(d)) => {
                    let events = crate::import::coverage::thousands(d.events);
                    report.notes.push(match d.full {
                        false => format!(
                            "detection ran on the team's copy, going on from the team's baselines over {events} new events"
                        ),
                        true => format!(
                            "detection ran on the team's copy, replaying its {events} events (no baselines known to cover it)"
                        ),
                    });
                    report.detection = Some(d);
                }
                Some(Err(why)) => report.notes.push(format!(
                    "detection on the team's copy did not run ({why}); the next sync runs it"
                )),
                None => {}
            }
            Ok(Outcome::Synced(report))
        }
    }
}

/// How often the member syncing a source tells the team how far it has come.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// Runs `work` (a sync holding `lock`) and tells the team the progress `rx` receives,
/// the first at once and then the latest at most every [`ANNOUNCE_EVERY`]; the others'
/// workstations show it beside the member's name.
async fn announcing<T>(
    lock: &SyncLock,
    mut rx: tokio::sync::watch::Receiver<String>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let announce = async {
        // The first progress at once, then the latest at most every ANNOUNCE_EVERY.
        while rx.changed().await.is_ok() {
            let text = rx.borrow_and_update().clone();
            lock.progress(&text).await;
            tokio::time::sleep(ANNOUNCE_EVERY).await;
        }
        std::future::pending().await
    };
    tokio::select! {
        out = work => out,
        never = announce => never,
    }
}

/// The cache's setting holding the last event row this member published of `provider`.
fn published_meta(provider: &str) -> String {
    format!("team.published.{provider}")
}

/// Publishes the cache's events of `provider` past the last row published, then its
/// keys, findings and detection states. A member that keeps the events in the team store
/// runs detection on the team's copy in between, and returns what it did (or why it
/// could not).
async fn publish(
    cache: &Cache,
    team: &Arc<TeamStore>,
    lock: &SyncLock,
    provider: &str,
    detect: &DetectConfig,
) -> Result<Option<Result<DetectReport, String>>, SyncError> {
    let mark_name = published_meta(provider);
    let mut mark: i64 = blocking(cache, provider, {
        let m = mark_name.clone();
        move |s| Ok(s.meta(&m)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    })
    .await?;
    let mut published = 0u64;
    let chunk_after = |after: i64| {
        let p = provider.to_string();
        blocking(cache, provider, move |s| s.events_after(&p, after, CHUNK))
    };
    let mut rows = chunk_after(mark).await?;
    while let Some(last) = rows.last().map(|r| r.row_id) {
        let events: Vec<_> = rows.into_iter().map(|r| r.event).collect();
        // The next chunk is read from the cache while this one is published.
        let (sent, next) = tokio::join!(team.publish_events(lock, &events), chunk_after(last));
        sent?;
        published += events.len() as u64;
        let done = crate::import::coverage::thousands(published);
        lock.progress(&format!("publishing, {done} events")).await;
        mark = last;
        let m = mark_name.clone();
        blocking(cache, provider, move |s| s.set_meta(&m, &mark.to_string())).await?;
        rows = next?;
    }
    let fingerprint = detect.fingerprint();
    let (detection, on_copy) = match team.events_home() {
        EventsHome::Team => {
            let d = detect_on_copy(cache, team, provider, detect).await;
            let covered = d.is_ok().then(|| fingerprint.clone());
            (Some(d), covered)
        }
        EventsHome::Cache => (None, None),
    };
    let p = provider.to_string();
    let states_mark = format!("team.states.{provider}");
    let m = states_mark.clone();
    let in_team = team.events_home() == EventsHome::Team;
    let (keys, findings, cursor, (states, states_top), covered) =
        blocking(cache, provider, move |s| {
            let keys = s
                .keys()?
                .into_iter()
                .filter(|k| k.key.provider == p)
                .map(|k| k.key)
                .collect::<Vec<_>>();
            let findings = s
                .findings(&FindingQuery::default())?
                .into_iter()
                .filter(|f| f.provider == p)
                .collect::<Vec<_>>();
            let after = s.meta(&m)?.and_then(|v| v.parse().ok()).unwrap_or(-1);
            let states = s.detect_states_saved_after(&p, after)?;
            // The states cover the whole copy when this cache's detection ran over every
            // event of the source it holds, with these settings.
            let covered = match in_team {
                true => on_copy,
                false => match s.detect_checkpoint()? {
                    Some(cp)
                        if cp.config == fingerprint && cp.last_event >= s.last_event_row(&p)? =>
                    {
                        Some(fingerprint)
                    }
                    _ => None,
                },
            };
            Ok((
                keys,
                findings,
                s.cursor(&p, EVENTS_STREAM)?,
                states,
                covered,
            ))
        })
        .await?;
    team.publish_state(
        lock,
        &keys,
        &findings,
        &states,
        cursor.as_deref(),
        covered.as_deref(),
    )
    .await?;
    blocking(cache, provider, move |s| {
        s.set_meta(&states_mark, &states_top.to_string())
    })
    .await?;
    // What this member published it need not read back.
    let tops = team.tops(provider).await?;
    let names = MarkNames::of(provider);
    blocking(cache, provider, move |s| names.write(s, tops)).await?;
    Ok(detection)
}

/// Runs detection on the team's copy of `provider` (its events just published), going
/// on from the states its last publisher left; why not when it failed (logged: the
/// states are then published as not covering the copy, and the next run replays it).
async fn detect_on_copy(
    cache: &Cache,
    team: &Arc<TeamStore>,
    provider: &str,
    detect: &DetectConfig,
) -> Result<DetectReport, String> {
    let published = match team.source(provider).await {
        Ok(s) => s.detected,
        Err(e) => {
            tracing::warn!(provider, "detection on the team's copy not run: {e}");
            return Err(e.to_string());
        }
    };
    let (t, p, cfg) = (team.clone(), provider.to_string(), detect.clone());
    let rt = tokio::runtime::Handle::current();
    let ran = cache
        .run(move |s| {
            Ok(crate::detect::team::detect_copy(
                s,
                &t,
                &rt,
                &p,
                published,
                &cfg,
                Utc::now(),
            ))
        })
        .await;
    let failed = match ran {
        Ok(Ok(Ok(d))) => return Ok(d),
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(provider, "detection on the team's copy failed: {failed}");
    Err(failed)
}

/// Reads the team's copy of `provider` into the cache.
async fn read(
    cache: &Cache,
    team: &TeamStore,
    provider: &dyn Provider,
    by: Option<String>,
    syncing: bool,
) -> Result<Read, SyncError> {
    let started = Instant::now();
    let name = provider.name().to_string();
    let kind = provider.kind().to_string();
    let location = provider.location();
    let mut out = Read {
        provider: name.clone(),
        by,
        syncing,
        ..Read::default()
    };
    let names = MarkNames::of(&name);
    let (mut marks, published_all) = blocking(cache, &name, {
        let (name, names) = (name.clone(), names.clone());
        move |s| {
            s.ensure_provider(&name, &kind, location.as_deref())?;
            let marks = names.read(s)?;
            // Nothing of this member's own is waiting to be published: what is read
            // now need not be published again.
            let published = s.meta(&published_meta(&name))?.and_then(|v| v.parse().ok());
            let top = s.events_after(&name, published.unwrap_or(0), 1)?.is_empty();
            Ok((marks, top))
        }
    })
    .await?;
    // A team that keeps its events in the store leaves them there.
    let events = match team.events_home() {
        EventsHome::Cache => CHUNK as i64,
        EventsHome::Team => 0,
    };
    // The provider's cursor the copy's publisher reached, read before the events it
    // covers: once they are in this cache (or, for a member that leaves the events in
    // the team store, at once: its detection reads them there), this member goes on from
    // there when it syncs the provider itself.
    let cursor = team.source(&name).await?.cursor;
    let mut pulled = team.pull(&name, marks, events).await?;
    loop {
        let last_chunk = pulled.events.len() < CHUNK;
        let after = pulled.events.last().map_or(marks.events, |(id, _)| *id);
        out.keys += pulled.keys.len();
        out.findings += pulled.findings.len();
        let (n, names2) = (name.clone(), names.clone());
        let stored = blocking(cache, &name, move |s| {
            let mut next = marks;
            if !pulled.keys.is_empty() {
                s.upsert_keys(&n, &pulled.keys, Utc::now())?;
                next.keys = pulled.keys_mark;
                s.set_meta(&names2.keys, &next.keys.to_string())?;
            }
            let mut new_events = 0;
            if let Some((last, _)) = pulled.events.last() {
                let last = *last;
                let events: Vec<_> = pulled.events.into_iter().map(|(_, e)| e).collect();
                let mut w = s.event_writer(&n)?;
                new_events = w.insert(&events)?.events;
                w.commit(Some((TEAM_STREAM, &last.to_string())))?;
                next.events = last;
            }
            for (change, f) in &pulled.findings {
                s.upsert_finding(f)?;
                if f.status == FindingStatus::Resolved {
                    s.set_finding_status(&f.id, FindingStatus::Resolved, None, None)?;
                }
                next.findings = *change;
            }
            if !pulled.findings.is_empty() {
                s.set_meta(&names2.findings, &next.findings.to_string())?;
            }
            Ok((new_events, next))
        });
        // The next chunk comes from the team store while this one is stored.
        let ahead = async {
            match last_chunk {
                true => Ok(Vec::new()),
                false => team.pull_events(&name, after, CHUNK as i64).await,
            }
        };
        let (stored, ahead) = tokio::join!(stored, ahead);
        let (new_events, next) = stored?;
        out.new_events += new_events;
        marks = next;
        if last_chunk {
            break;
        }
        pulled = Pulled {
            events: ahead?,
            keys_mark: marks.keys,
            ..Pulled::default()
        };
    }
    if let Some((c, covers)) = cursor.filter(|(_, covers)| events == 0 || marks.events >= *covers) {
        let n = name.clone();
        blocking(cache, &name, move |s| {
            tracing::debug!(provider = %n, covers, "taking the team's event cursor");
            s.set_cursor(&n, EVENTS_STREAM, &c)
        })
        .await?;
    }
    if published_all {
        let n = name.clone();
        blocking(cache, &name, move |s| {
            let top = s.last_event_row(&n)?;
            s.set_meta(&published_meta(&n), &top.to_string())
        })
        .await?;
    }
    // The team's decisions on the findings just read.
    crate::action::decide::pull_or_warn(cache).await;
    out.elapsed = started.elapsed();
    Ok(out)
}

/// The cache settings that mark what was read of a source's copy.
#[derive(Debug, Clone)]
struct MarkNames {
    provider: String,
    keys: String,
    findings: String,
}

impl MarkNames {
    fn of(provider: &str) -> MarkNames {
        MarkNames {
            provider: provider.to_string(),
            keys: format!("team.keys.{provider}"),
            findings: format!("team.findings.{provider}"),
        }
    }

    fn write(&self, s: &Store, m: Marks) -> Result<(), crate::store::StoreError> {
        s.set_meta(&self.keys, &m.keys.to_string())?;
        s.set_meta(&self.findings, &m.findings.to_string())?;
        s.set_cursor(&self.provider, TEAM_STREAM, &m.events.to_string())
    }

    fn read(&self, s: &Store) -> Result<Marks, crate::store::StoreError> {
        let num = |v: Option<String>| v.and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Marks {
            keys: num(s.meta(&self.keys)?),
            events: num(s.cursor(&self.provider, TEAM_STREAM)?),
            findings: num(s.meta(&self.findings)?),
        })
    }
}

/// Runs `f` on the cache on a blocking thread.
async fn blocking<T: Send + 'static>(
    cache: &Cache,
    provider: &str,
    f: impl FnOnce(&mut Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, SyncError> {
    cache
        .run(f)
        .await
        .map_err(|e| SyncError::task(provider, e))?
        .map_err(SyncError::from)
}
