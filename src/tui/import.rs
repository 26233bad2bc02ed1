//! The import of `keyaudit open`, run while the workstation already shows the case: the
//! plan (files and options), the gauge's state, the `update` for the import's actions,
//! the gauge's render, and the import and the detection after it (IO: only
//! `tui::runner` calls [`run_import`] and [`run_detection`]).
//!
//! The import commits at least every second, and the views reload (at most once a
//! second) as commits land, so events show while the rest is read. Detection runs when
//! the import ends. `X` (`stop-import`) stops it: what was committed stays, and the next
//! `keyaudit open` of the case resumes after it.

use super::action::{Action, Effect};
use super::state::State;
use super::strings as s;
use crate::import::{FileSummary, ImportOptions};
use crate::store::Store;
use ratatui::layout::Rect;
use ratatui::widgets::LineGauge;
use ratatui::Frame;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How often the views reload while an import commits.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// An import to run beside the workstation.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    pub files: Vec<PathBuf>,
    /// The import's options; `cancel` is set to [`ImportPlan::cancel`] by [`ImportPlan::new`].
    pub opts: ImportOptions,
    /// Set by `stop-import`.
    pub cancel: Arc<AtomicBool>,
    /// Every file's summary, for the caller to print once the terminal is restored.
    pub summaries: Arc<Mutex<Vec<FileSummary>>>,
}

impl ImportPlan {
    /// A plan that commits at least every second and reports progress, stoppable.
    pub fn new(files: Vec<PathBuf>, mut opts: ImportOptions) -> ImportPlan {
        let cancel = Arc::new(AtomicBool::new(false));
        opts.cancel = Some(cancel.clone());
        opts.progress = true;
        opts.commit_every = Some(Duration::from_secs(1));
        ImportPlan {
            files,
            opts,
            cancel,
            summaries: Arc::default(),
        }
    }

    /// Bytes of all the files (what the gauge measures against).
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Where an import is, as the gauge shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportProgress {
    pub files_done: usize,
    pub files_total: usize,
    /// The file being read (sanitized).
    pub file: String,
    /// Bytes read over all the files (compressed bytes for `.gz`) and their total.
    pub bytes: u64,
    pub bytes_total: u64,
    /// Records read and events new to the cache so far.
    pub records: u64,
    pub imported: u64,
    /// Transactions committed so far (the views reload when it grows).
    pub commits: u64,
    pub elapsed: Duration,
}

/// How an import ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportReport {
    pub files: usize,
    pub records: u64,
    pub imported: u64,
    pub duplicates: u64,
    pub skipped: u64,
    /// `file: reason` of the files that failed.
    pub failed: Vec<String>,
    /// Stopped by the operator.
    pub stopped: bool,
    pub elapsed: Duration,
    /// The cache failed: nothing after this was imported.
    pub error: Option<String>,
}

/// What the import is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Importing,
    Stopping,
    Detecting,
}

/// The gauge's state, present from the start of the import to the end of detection.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportGauge {
    pub phase: Phase,
    pub progress: ImportProgress,
    /// Commits and elapsed time at the last reload of the views.
    reloaded: (u64, Duration),
}

impl ImportGauge {
    /// An import of `files_total` files of `bytes_total` bytes about to start.
    pub fn new(files_total: usize, bytes_total: u64) -> ImportGauge {
        ImportGauge {
            phase: Phase::Importing,
            progress: ImportProgress {
                files_total,
                bytes_total,
                ..Default::default()
            },
            reloaded: (0, Duration::ZERO),
        }
    }

    /// True while records are read (the stop key applies).
    pub fn running(&self) -> bool {
        matches!(self.phase, Phase::Importing | Phase::Stopping)
    }
}

/// Applies the import's actions.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::StopImport => match &mut st.import {
            Some(g) if g.phase == Phase::Importing => {
                g.phase = Phase::Stopping;
                st.say(s::IMPORT_STOPPING);
                vec![Effect::StopImport]
            }
            Some(g) if g.phase == Phase::Stopping => Vec::new(),
            _ => {
                st.fail(s::NO_IMPORT);
                Vec::new()
            }
        },
        Action::ImportProgressed(p) => {
            let Some(g) = &mut st.import else {
                return Vec::new();
            };
            // The first commit shows at once; later ones at most once a second.
            let due = p.commits > g.reloaded.0
                && (g.reloaded.0 == 0 || p.elapsed.saturating_sub(g.reloaded.1) >= RELOAD_EVERY);
            if due {
                g.reloaded = (p.commits, p.elapsed);
            }
            g.progress = p;
            if !due {
                return Vec::new();
            }
            if st.frozen {
                st.reload_pending = true;
                return Vec::new();
            }
            // The keys and the open view; the providers' counts wait for the end.
            let mut fx = vec![Effect::LoadKeys];
            fx.extend(st.view_reload());
            fx
        }
        Action::ImportFinished(r) => {
            let mut fx = st.after_sync();
            if let Some(e) = &r.error {
                st.import = None;
                st.fail(s::import_failed(e));
                return fx;
            }
            if r.stopped {
                st.import = None;
                st.say(s::import_stopped(&r, st.case.as_deref()));
                return fx;
            }
            if let Some(g) = &mut st.import {
                g.phase = Phase::Detecting;
            }
            if r.failed.is_empty() {
                st.say(s::import_done(&r));
            } else {
                st.fail(s::import_done(&r));
            }
            fx.push(Effect::Detect);
            fx
        }
        Action::DetectionFinished(r) => {
            st.import = None;
            match r {
                Ok(text) => st.say(text),
                Err(e) => st.fail(s::detection_failed(&e)),
            }
            // The keys' finding counts and the open view (the findings, if shown) reload.
            st.after_sync()
        }
        _ => Vec::new(),
    }
}

/// The gauge line: what is read, how fast, how long it still takes.
pub fn render(state: &State, g: &ImportGauge, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let p = &g.progress;
    let (ratio, label) = match g.phase {
        Phase::Detecting => (1.0, s::gauge_detecting(p)),
        _ => {
            let ratio = if p.bytes_total > 0 {
                p.bytes as f64 / p.bytes_total as f64
            } else if p.files_total > 0 {
                p.files_done as f64 / p.files_total as f64
            } else {
                0.0
            };
            let ratio = ratio.clamp(0.0, 1.0);
            let label = s::gauge_importing(p, ratio, area.width >= 120, g.phase == Phase::Stopping);
            (ratio, label)
        }
    };
    f.render_widget(
        LineGauge::default()
            .ratio(ratio)
            .label(label)
            .filled_style(t.header)
            .unfilled_style(t.dim),
        area,
    );
}

/// Runs the plan's import into the cache at `db`, sending progress to `tx`; returns how
/// it ended. Every file's summary goes to the plan's `summaries`.
pub(crate) fn run_import(
    db: &Path,
    plan: &ImportPlan,
    tx: &UnboundedSender<Action>,
) -> ImportReport {
    let mut report = ImportReport::default();
    let started = std::time::Instant::now();
    let mut store = match Store::open(db) {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    let files_total = plan.files.len();
    let bytes_total = plan.total_bytes();
    // Of the files already finished: how many, their bytes, their commits.
    let done = Cell::new((0usize, 0u64, 0u64));
    let last_commits = Cell::new(0u64);
    let r = crate::import::import_files(
        &mut store,
        &plan.files,
        &plan.opts,
        &mut |p| {
            let (files_done, bytes_done, commits_done) = done.get();
            last_commits.set(p.commits);
            let file = p
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = tx.send(Action::ImportProgressed(ImportProgress {
                files_done,
                files_total,
                file: crate::output::sanitize(&file),
                bytes: bytes_done + p.bytes.min(p.size),
                bytes_total,
                records: p.records,
                imported: p.imported,
                commits: commits_done + p.commits,
                elapsed: started.elapsed(),
            }));
        },
        &mut |sum| {
            let (n, bytes, commits) = done.get();
            let size = std::fs::metadata(&sum.path).map(|m| m.len()).unwrap_or(0);
            done.set((n + 1, bytes + size, commits + last_commits.replace(0)));
            report.files += 1;
            report.records += sum.records;
            report.imported += sum.imported;
            report.duplicates += sum.duplicates;
            report.skipped += sum.skipped;
            report.stopped |= sum.cancelled;
            if let Some(f) = &sum.failed {
                report.failed.push(format!(
                    "{}: {}",
                    crate::output::sanitize(&sum.path.display().to_string()),
                    crate::output::sanitize(f)
                ));
            }
            plan.summaries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sum.clone());
        },
    );
    if let Err(e) = r {
        report.error = Some(e.to_string());
    }
    report.stopped |= plan.cancel.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    report
}

/// Runs incremental detection over the cache at `db` (after an import): the status line.
pub(crate) fn run_detection(
    db: &Path,
    cfg: &crate::detect::DetectConfig,
) -> Result<String, String> {
    let mut store = Store::open(db).map_err(|e| e.to_string())?;
    let r = crate::detect::detect_incremental(&mut store, cfg, chrono::Utc::now())
        .map_err(|e| e.to_string())?;
    let open = store
        .findings(&crate::store::FindingQuery {
            status: Some(crate::model::FindingStatus::Open),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?
        .len();
    Ok(s::detection_done(r.opened, r.resolved, open, r.events))
}
