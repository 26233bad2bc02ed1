//! The runner: performs the effects `update` asks for on tokio tasks and answers with
//! actions. Cache reads run on blocking threads with the runner's own read-only
//! connection; writes go through `crate::action` and the sync engine, which open theirs.

use super::action::{Action, Detail, Effect, EventsPage, EventsRequest, ExportFormat, Rotated};
use super::state::EVENTS_PAGE;
use crate::action::apply_key_op;
use crate::action::rotate::{rotate, RotateRequest};
use crate::action::sink::{ScreenSlot, Sink};
use crate::detect::DetectConfig;
use crate::model::{FindingStatus, Key, Outcome};
use crate::provider::Provider;
use crate::secret::Secret;
use crate::store::{journal::NewEntry, EventQuery, FindingQuery, Store, StoreError};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// Events one read of the events view may examine: a filter that matches rarely walks
/// the cache in steps of this many events, each a separate, cancellable read.
pub const EVENTS_SCAN: usize = 50_000;

/// Keys read ahead of the whole list, to fill the first screen.
pub const KEYS_HEAD: usize = 300;

/// Executes effects; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    db: PathBuf,
    providers: Arc<Vec<Arc<dyn Provider>>>,
    tx: UnboundedSender<Action>,
    search: Arc<super::search::Searcher>,
    /// The newest generation of the events view's walk; older reads give up.
    latest_events: Arc<AtomicU64>,
    reader: Arc<Mutex<Option<Store>>>,
    /// The first load of the keys sends their first screen ahead; reloads do not.
    head_first: Arc<AtomicBool>,
    /// `[detect]` settings: the detection after a sync and the detail's baseline status.
    detect: Arc<DetectConfig>,
}

impl Runner {
    /// A runner over the cache at `db` that sends its results to `tx`.
    pub fn new(
        db: PathBuf,
        providers: Vec<Arc<dyn Provider>>,
        tx: UnboundedSender<Action>,
    ) -> Runner {
        Runner {
            db,
            providers: Arc::new(providers),
            tx,
            search: Arc::default(),
            head_first: Arc::new(AtomicBool::new(true)),
            latest_events: Arc::new(AtomicU64::new(0)),
            reader: Arc::new(Mutex::new(None)),
            detect: Arc::default(),
        }
    }

    /// The same runner with these detection settings (the defaults otherwise).
    pub fn with_detect(mut self, detect: DetectConfig) -> Runner {
        self.detect = Arc::new(detect);
        self
    }

    fn send(&self, a: Action) {
        let _ = self.tx.send(a);
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
        tokio::task::spawn_blocking(move || {
            let read = {
                let mut guard = reader.lock().unwrap_or_else(|e| e.into_inner());
                if guard.is_none() {
                    match Store::open_read_only(&db) {
                        Ok(s) => *guard = Some(s),
                        Err(e) => {
                            let _ = tx.send(Action::LoadFailed(e.to_string()));
                            return;
                        }
                    }
                }
                f(guard.as_ref().expect("opened above"), &tx)
            };
            match read {
                Ok(v) => then(v, &tx),
                Err(e) => {
                    let _ = tx.send(Action::LoadFailed(format!("cannot read the cache: {e}")));
                }
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
            Effect::LoadDetail(key_ref, now) => {
                let detect = self.detect.clone();
                self.read(
                    move |s| load_detail(s, key_ref, now, &detect),
                    |d| match d {
                        Some(d) => Action::DetailLoaded(Box::new(d)),
                        None => Action::LoadFailed("the key is no longer in the cache".into()),
                    },
                );
            }
            Effect::LoadEvents(mut req) => {
                let (generation, walk) = (req.generation, req.walk);
                self.latest_events.store(generation, Ordering::SeqCst);
                let latest = self.latest_events.clone();
                // The page is sent as soon as it is read; the histogram (a walk of a whole
                // day of events when a filter is set) follows on the same connection.
                let histogram = req.histogram.take().map(|now| (req.query.clone(), now));
                self.read_then(
                    move |s, tx| {
                        let keep_going = || latest.load(Ordering::Relaxed) == generation;
                        let Some(p) = load_events_page(s, &req, &keep_going)? else {
                            return Ok(Some(Action::EventsSuperseded(generation)));
                        };
                        let _ = tx.send(Action::EventsLoaded(generation, walk, Box::new(p)));
                        let Some((query, now)) = histogram else {
                            return Ok(None);
                        };
                        Ok(Some(
                            match s.matching_per_hour(&query, now, 24, &keep_going)? {
                                Some(h) => Action::HistogramLoaded(generation, h),
                                None => Action::EventsSuperseded(generation),
                            },
                        ))
                    },
                    |last, tx| {
                        if let Some(a) = last {
                            let _ = tx.send(a);
                        }
                    },
                )
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
            Effect::LoadJournal => self.read(
                |s| {
                    let mut j = s.journal(None, Some(2000))?;
                    j.reverse();
                    Ok(j)
                },
                Action::JournalLoaded,
            ),
            Effect::LoadProviders => self.read(|s| s.providers(), Action::ProvidersLoaded),
            Effect::Sync => self.sync(),
            Effect::ApplyKeyOp(op, keys) => {
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
                        let r = apply_key_op(&me.db, p.clone(), &key, op, Some("keyaudit tui"))
                            .await
                            .map(|k| k.status)
                            .map_err(|e| e.to_string());
                        me.send(Action::KeyOpFinished(op, target, r));
                    }
                });
            }
            Effect::Rotate { key, grace } => {
                let me = self.clone();
                tokio::spawn(async move {
                    let Some(p) = me.providers.iter().find(|p| p.name() == key.provider) else {
                        me.send(Action::RotateFailed(
                            crate::action::target(&key),
                            format!("provider `{}` is not configured", key.provider),
                        ));
                        return;
                    };
                    let a = rotate_to_screen(&me.db, p.clone(), *key, grace).await;
                    me.send(a);
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
                let (db, tx) = (self.db.clone(), self.tx.clone());
                tokio::task::spawn_blocking(move || {
                    let r = set_finding_status(&db, &id, &target, status, &note);
                    let _ = tx.send(match r {
                        Ok(true) => Action::FindingUpdated(id, status),
                        Ok(false) => Action::LoadFailed(format!("no finding {id}")),
                        Err(e) => Action::LoadFailed(format!("cannot update finding {id}: {e}")),
                    });
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
                let r = crate::sync::sync_provider(&me.db, p.clone(), &me.detect, &progress).await;
                me.send(Action::SyncFinished(
                    p.name().to_string(),
                    r.map(|r| {
                        format!(
                            "{} keys, {} new events in {:.1}s",
                            r.keys,
                            r.new_events,
                            r.elapsed.as_secs_f64()
                        )
                    })
                    .map_err(|e| e.to_string()),
                ));
            }
            me.send(Action::SyncAllFinished);
        });
    }
}

/// Rotates `key` through the rotation workflow ([`crate::action::rotate::rotate`]) with
/// its new secret delivered to a screen slot, and answers with the action that opens the
/// secret dialog (or reports the failure). The secret never leaves memory.
pub async fn rotate_to_screen(
    db: &std::path::Path,
    provider: Arc<dyn Provider>,
    key: Key,
    grace: std::time::Duration,
) -> Action {
    use crate::action::workflow::State as Wf;
    let target = crate::action::target(&key);
    let slot = ScreenSlot::new();
    let req = RotateRequest {
        provider,
        key: key.clone(),
        sink: Sink::Screen(slot.clone()),
        grace,
        force: false,
        reason: Some("keyaudit tui".into()),
    };
    let wf = match rotate(db, req).await {
        Ok(wf) => wf,
        Err(e) => return Action::RotateFailed(target, e.to_string()),
    };
    let secret = slot.take();
    match (secret, wf.state, wf.new_key_id.clone()) {
        (Some(secret), Wf::Grace | Wf::Done | Wf::Running, Some(new_key_id)) => {
            Action::RotateFinished(Box::new(Rotated {
                key,
                new_key_id,
                grace_until: wf.grace_until,
                workflow: wf.id,
                note: wf.error.clone(),
                secret,
            }))
        }
        // Rolled back or failed: a secret that reached the slot belongs to a revoked key
        // and is dropped (zeroized) here.
        _ => Action::RotateFailed(
            target,
            wf.error
                .unwrap_or_else(|| format!("the rotation ended {}", wf.state)),
        ),
    }
}

/// The OSC 52 sequence that puts `secret` on the terminal's clipboard.
pub fn osc52(secret: &Secret) -> zeroize::Zeroizing<String> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = secret.expose().as_bytes();
    let mut out = zeroize::Zeroizing::new(String::with_capacity(bytes.len() * 4 / 3 + 12));
    out.push_str("\x1b]52;c;");
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push('\x07');
    out
}

/// Reads everything the detail view shows about one key. The baseline status is judged
/// with the detection settings `detect`.
pub fn load_detail(
    s: &Store,
    key_ref: i64,
    now: DateTime<Utc>,
    detect: &DetectConfig,
) -> Result<Option<Detail>, StoreError> {
    let Some(key) = s.key_by_ref(key_ref)? else {
        return Ok(None);
    };
    let activity = s.key_activity(key_ref, now, 30, 8)?;
    let events = s.events(&EventQuery {
        key_ref: Some(key_ref),
        newest_first: true,
        limit: Some(50),
        ..Default::default()
    })?;
    let findings = s.findings(&FindingQuery {
        key_ref: Some(key_ref),
        ..Default::default()
    })?;
    let mut journal = s.journal(Some(&crate::action::target(&key.key)), Some(50))?;
    journal.reverse();
    let baseline = crate::detect::baseline_status(s, key_ref, detect).map_err(|e| e.to_string());
    Ok(Some(Detail {
        key,
        activity,
        events,
        findings,
        journal,
        baseline,
    }))
}

/// Reads one page of the events view's walk (and, when asked, the histogram of the
/// events that pass the same filter);
/// `None` when `keep_going` said a newer request replaced this one.
pub fn load_events_page(
    s: &Store,
    req: &EventsRequest,
    keep_going: &dyn Fn() -> bool,
) -> Result<Option<EventsPage>, StoreError> {
    let Some(page) = s.event_page(&req.query, EVENTS_SCAN, keep_going)? else {
        return Ok(None);
    };
    let per_hour = match req.histogram {
        Some(now) => match s.matching_per_hour(&req.query, now, 24, keep_going)? {
            Some(counts) => Some(counts),
            None => return Ok(None),
        },
        None => None,
    };
    Ok(Some(EventsPage { page, per_hour }))
}

/// Reads the first page of the events view (newest first, of one key, of one outcome)
/// and the per-hour histogram.
pub fn load_events(
    s: &Store,
    key_ref: Option<i64>,
    outcome: Option<Outcome>,
    now: DateTime<Utc>,
) -> Result<EventsPage, StoreError> {
    let req = EventsRequest {
        generation: 0,
        walk: super::action::Walk::First,
        query: EventQuery {
            key_ref,
            outcome,
            newest_first: true,
            limit: Some(EVENTS_PAGE),
            ..Default::default()
        },
        histogram: Some(now),
    };
    Ok(load_events_page(s, &req, &|| true)?.unwrap_or_default())
}

fn set_finding_status(
    db: &std::path::Path,
    id: &str,
    target: &str,
    status: FindingStatus,
    note: &str,
) -> Result<bool, StoreError> {
    let mut store = Store::open(db)?;
    let note = (!note.trim().is_empty()).then_some(note.trim());
    let changed = store.set_finding_status(id, status, note, None)?;
    let verb = if status == FindingStatus::Acknowledged {
        "acknowledge"
    } else {
        "suppress"
    };
    store.append_journal(&NewEntry {
        action: verb,
        target,
        reason: note,
        params: serde_json::json!({ "finding": id }),
        result: if changed {
            "ok"
        } else {
            "failed: no such finding"
        },
    })?;
    Ok(changed)
}

/// Writes keys to `keyaudit-keys-<time>.<ext>` in `dir` (the TUI passes the current
/// directory), mode 0600; never overwrites.
pub fn export(
    dir: &std::path::Path,
    fmt: ExportFormat,
    rows: &[crate::store::KeyRow],
    now: DateTime<Utc>,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let ext = match fmt {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    let path = dir.join(format!(
        "keyaudit-keys-{}.{ext}",
        now.format("%Y%m%dT%H%M%S")
    ));
    let file = crate::fsutil::create_private_file(&path, false)?;
    let mut out = std::io::BufWriter::new(file);
    match fmt {
        ExportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, rows)?;
            writeln!(out)?;
        }
        ExportFormat::Csv => {
            use crate::output::csv_field as c;
            writeln!(out, "provider,id,name,owner,environment,status,created,expires,last_used,scopes,open_findings,worst_severity")?;
            let t = |x: Option<DateTime<Utc>>| x.map(crate::model::rfc3339).unwrap_or_default();
            for r in rows {
                let k = &r.key;
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    c(&k.provider),
                    c(&k.id),
                    c(&k.name),
                    c(&k.owner),
                    c(k.environment.as_deref().unwrap_or("")),
                    k.status,
                    t(k.created),
                    t(k.expires),
                    t(k.last_used),
                    c(&k.scopes.join(" ")),
                    r.open_findings,
                    r.worst_severity.map(|s| s.as_str()).unwrap_or("")
                )?;
            }
        }
    }
    out.flush()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_is_base64_between_the_markers() {
        let seq = osc52(&Secret::new("tg_live_x".into()));
        assert_eq!(seq.as_str(), "\x1b]52;c;dGdfbGl2ZV94\x07");
        assert_eq!(
            osc52(&Secret::new("ab".into())).as_str(),
            "\x1b]52;c;YWI=\x07"
        );
        assert_eq!(
            osc52(&Secret::new("a".into())).as_str(),
            "\x1b]52;c;YQ==\x07"
        );
    }
}
