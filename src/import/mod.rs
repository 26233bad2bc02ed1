//! Importing exported audit logs into the cache: CloudTrail, Vault/OpenBao audit
//! devices, GitHub and GitLab audit exports, and any JSON-lines or CSV log with a field
//! mapping.
//!
//! Per file: open (gzip transparently), detect the shape (JSON lines, a JSON array, one
//! JSON document, CSV) and the format from the first records, then stream: a reader
//! thread parses, maps and redacts records into chunks; the calling thread inserts them
//! and commits every `--batch` events with the file's cursor in one transaction
//! ([`crate::store::EventWriter`]). Dedup on
//! (source, record id) makes re-imports add nothing; the cursor makes an interrupted
//! import resume where its last batch was committed.

pub mod cloudtrail;
pub mod coverage;
pub mod fieldmap;
pub mod fields;
pub mod generic;
pub mod github;
pub mod gitlab;
mod reader;
pub mod redact;
pub mod siem;
pub mod vault;

pub use cloudtrail::cloudtrail_record_to_event;
pub use generic::{mapping_from_config, Mapping};

mod job;
mod probe;

pub use job::HANDOFF;

use crate::model::Event;
use crate::store::{RawPack, Store, StoreError};
use job::Job;
use probe::{probe, Probe, Probed};
use reader::{ArrayScanner, Element, Line, LineReader};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The format asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum FormatChoice {
    /// Detect per file from its first records.
    #[default]
    Auto,
    /// AWS CloudTrail log files or JSON lines of CloudTrail events.
    Cloudtrail,
    /// Any JSON-lines log (field mapping from the config, or guessed).
    Jsonl,
    /// Any CSV log with a header row (field mapping from the config, or guessed).
    Csv,
    /// Vault / OpenBao file audit device logs.
    Vault,
    /// GitHub organisation or enterprise audit-log exports (JSON or CSV).
    Github,
    /// GitLab audit events (API JSON or streamed JSON lines).
    Gitlab,
    /// Elastic Common Schema documents (Elastic's AWS CloudTrail integration, any ECS export).
    Ecs,
    /// Datadog logs of CloudTrail records (Forwarder, archives, Logs API answers).
    Datadog,
    /// Splunk search results exported as JSON (`result` / `_raw`).
    Splunk,
}

/// A concrete log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// AWS CloudTrail.
    Cloudtrail,
    /// Vault / OpenBao audit device.
    Vault,
    /// GitHub audit log.
    Github,
    /// GitLab audit events.
    Gitlab,
    /// Generic JSON lines.
    Jsonl,
    /// Generic CSV.
    Csv,
    /// Elastic Common Schema.
    Ecs,
    /// Datadog logs.
    Datadog,
    /// Splunk search results.
    Splunk,
}

impl LogFormat {
    /// The name used on the command line and as the default source name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Cloudtrail => "cloudtrail",
            LogFormat::Vault => "vault",
            LogFormat::Github => "github",
            LogFormat::Gitlab => "gitlab",
            LogFormat::Jsonl => "jsonl",
            LogFormat::Csv => "csv",
            LogFormat::Ecs => "ecs",
            LogFormat::Datadog => "datadog",
            LogFormat::Splunk => "splunk",
        }
    }

    fn from_choice(c: FormatChoice) -> Option<LogFormat> {
        Some(match c {
            FormatChoice::Auto => return None,
            FormatChoice::Cloudtrail => LogFormat::Cloudtrail,
            FormatChoice::Jsonl => LogFormat::Jsonl,
            FormatChoice::Csv => LogFormat::Csv,
            FormatChoice::Vault => LogFormat::Vault,
            FormatChoice::Github => LogFormat::Github,
            FormatChoice::Gitlab => LogFormat::Gitlab,
            FormatChoice::Ecs => LogFormat::Ecs,
            FormatChoice::Datadog => LogFormat::Datadog,
            FormatChoice::Splunk => LogFormat::Splunk,
        })
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the records of a file are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One record per line (JSON lines; a CloudTrail file is one line of `Records`).
    Lines,
    /// A JSON array of records.
    Array,
    /// One or more JSON documents (pretty-printed), read whole.
    Document,
    /// CSV with a header row.
    Csv,
}

/// Where a record is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// 1-based number of the record unit (line, array element, CSV row, document).
    pub seq: u64,
    /// 1-based line where it starts.
    pub line: u64,
    /// Byte offset (decompressed) where it starts.
    pub offset: u64,
}

/// Turns records of one format into events.
pub trait Mapper: Send {
    /// Maps one record (already redacted) of `provider`; pushes 0 or more events to `out`.
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        loc: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String>;
    /// Emits what is still held at the end of the file.
    fn finish(&mut self, _out: &mut Vec<Event>) {}
    /// The oldest record still held (not yet emitted); the cursor never passes it.
    fn oldest_pending(&self) -> Option<Loc> {
        None
    }
}

struct CloudtrailMapper;

impl Mapper for CloudtrailMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        _: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        out.push(cloudtrail_record_to_event(provider, v)?);
        Ok(())
    }
}

/// Options of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The format, or auto-detection.
    pub format: FormatChoice,
    /// Provider name the events go under (default: the format name).
    pub source: Option<String>,
    /// Any bad record fails its whole file, with nothing of it committed.
    pub strict: bool,
    /// Keep the (redacted) raw record of each event.
    pub keep_raw: bool,
    /// Events per transaction (with the file's cursor): larger commits write the dedup
    /// index less often; memory does not grow with it (the parser hands the store
    /// thread chunks of [`HANDOFF`] events).
    pub batch: usize,
    /// The field mapping for generic JSON lines / CSV, with its name.
    pub mapping: Option<(String, Mapping)>,
    /// Largest record (line, array element) accepted, in bytes.
    pub max_record: usize,
    /// Largest JSON document read whole (a CloudTrail `Records` file), in bytes.
    pub max_document: usize,
    /// Call the progress callback (every 200 ms, and after every commit when
    /// `commit_every` is set).
    pub progress: bool,
    /// `--map FIELD=PATH`: where event fields come from, over the format's mapping.
    pub overrides: fieldmap::FieldMap,
    /// Also commit whenever this long has passed since the last commit (and at once
    /// after the first chunk), so a reader of the cache (the TUI of `keyaudit open`)
    /// sees events as they arrive. `None`: commit every `batch` events only.
    pub commit_every: Option<Duration>,
    /// Set to stop: what was read is committed with its cursor (so the next run
    /// resumes after it) and no further file is started.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ImportOptions {
    /// True once the import was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: FormatChoice::Auto,
            source: None,
            strict: false,
            keep_raw: true,
            batch: 250_000,
            mapping: None,
            max_record: 8 << 20,
            max_document: 512 << 20,
            progress: false,
            overrides: fieldmap::FieldMap::default(),
            commit_every: None,
            cancel: None,
        }
    }
}

/// What went wrong with an import as a whole (per-file problems are in the summary).
#[derive(Debug, Error)]
pub enum ImportError {
    /// An input path does not exist or cannot be listed.
    #[error("cannot read {path}: {source}; check the path")]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The cache failed; what was committed before stays.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The import thread failed unexpectedly.
    #[error("the import of {0} stopped unexpectedly")]
    Thread(PathBuf),
}

/// The outcome of importing one file.
#[derive(Debug, Clone, Default)]
pub struct FileSummary {
    pub path: PathBuf,
    /// The format used, when one was chosen.
    pub format: Option<LogFormat>,
    /// How the format was chosen (`auto-detected: ...` or `--format`).
    pub chosen: String,
    /// Source (provider) the events went under.
    pub source: String,
    /// Records read (not counting those skipped because an earlier run committed them).
    pub records: u64,
    /// Events new to the cache.
    pub imported: u64,
    /// Events already in the cache.
    pub duplicates: u64,
    /// Records that could not be parsed or mapped.
    pub skipped: u64,
    /// Keys created because only the logs mention them.
    pub new_keys: u64,
    /// Values redacted.
    pub redacted: u64,
    /// The first errors, `file:line: message`.
    pub errors: Vec<String>,
    /// Why the file failed as a whole (exit code 1), if it did.
    pub failed: Option<String>,
    /// A note that is not a failure (empty file, already imported).
    pub note: Option<String>,
    /// Fields the format should carry that no record of the file gave.
    pub warnings: Vec<String>,
    /// Record units skipped because an earlier, interrupted run committed them.
    pub resumed_after: u64,
    /// Stopped on request ([`ImportOptions::cancel`]) before the end of the file; what
    /// was read is committed and the next import of the file resumes after it.
    pub cancelled: bool,
    pub elapsed: Duration,
}

/// Number of error messages kept per file.
const MAX_ERRORS: usize = 5;

/// Lists the files to import: files as given, directories walked (sorted, hidden
/// entries and CloudTrail digest files left out).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| ImportError::Path {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let walk = crate::walk::Walk {
        follow_root_link: true,
        skip: Some(|name| name.starts_with('.') || name.contains("CloudTrail-Digest")),
    };
    for file in walk.files(dir) {
        out.push(file.map_err(|e| ImportError::Path {
            path: e.path,
            source: e.source,
        })?);
    }
    Ok(())
}

/// Identifies a file's content for its cursor: SHA-256 of its first 64 KiB and its
/// size, so the same file resumes wherever it is, and a changed file starts over
/// (dedup keeps that safe).
fn stream_id(path: &Path) -> io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut head = Vec::with_capacity(64 * 1024);
    (&mut f).take(64 * 1024).read_to_end(&mut head)?;
    let digest = Sha256::digest(&head);
    Ok((
        format!("import:{}:{size}", &hex::encode(digest)[..24]),
        size,
    ))
}

/// A saved position in a file: units done, byte offset after them, whole file done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cursor {
    seq: u64,
    offset: u64,
    done: bool,
}

impl Cursor {
    fn parse(s: &str) -> Option<Cursor> {
        let mut c = Cursor::default();
        for part in s.split_whitespace() {
            let (k, v) = part.split_once('=')?;
            match k {
                "seq" => c.seq = v.parse().ok()?,
                "offset" => c.offset = v.parse().ok()?,
                "done" => c.done = v == "1",
                _ => {}
            }
        }
        Some(c)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq={} offset={} done={}",
            self.seq,
            self.offset,
            u8::from(self.done)
        )
    }
}

enum Msg {
    /// Events with their raw records already packed (`RawPack::new(&events)`).
    Batch {
        events: Vec<Event>,
        raw: RawPack,
        cursor: Cursor,
    },
    Done {
        stats: ReadStats,
        cursor: Cursor,
    },
    Failed {
        stats: ReadStats,
        reason: String,
    },
}

#[derive(Debug, Default, Clone)]
struct ReadStats {
    format: Option<LogFormat>,
    chosen: String,
    records: u64,
    skipped: u64,
    redacted: u64,
    errors: Vec<String>,
    note: Option<String>,
    warnings: Vec<String>,
    /// The parser thread's time from start to its last chunk, and how much of it was
    /// spent waiting for the store thread to take a chunk.
    parser: (Duration, Duration),
}

/// Progress of the file being imported, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub path: &'a Path,
    /// Compressed bytes read so far and the file size.
    pub bytes: u64,
    pub size: u64,
    pub records: u64,
    /// Events new to the cache so far (committed or about to be).
    pub imported: u64,
    /// Transactions committed so far in this file: a reader sees new events when it
    /// grows.
    pub commits: u64,
    pub elapsed: Duration,
}

/// Imports `files` into `store`, calling `progress` now and then and `done` after
/// each file. Per-file failures are reported in the summaries; only a cache failure
/// stops the import.
pub fn import_files(
    store: &mut Store,
    files: &[PathBuf],
    opts: &ImportOptions,
    progress: &mut dyn FnMut(&Progress<'_>),
    done: &mut dyn FnMut(&FileSummary),
) -> Result<Vec<FileSummary>, ImportError> {
    // The event writer creates the provider and every key an event refers to, in the
    // event's own transaction, so the foreign key checks are off during the import.
    store.set_foreign_key_checks(false)?;
    let mut out = Vec::new();
    let mut run = || {
        for f in files {
            if opts.cancelled() {
                break;
            }
            let s = import_file(store, f, opts, progress)?;
            done(&s);
            out.push(s);
        }
        Ok::<_, ImportError>(())
    };
    let result = run();
    store.set_foreign_key_checks(true)?;
    result.map(|()| out)
}

fn display(path: &Path) -> String {
    crate::output::sanitize(&path.display().to_string())
}

/// Imports one file.
pub fn import_file(
    store: &mut Store,
    path: &Path,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<FileSummary, ImportError> {
    let started = Instant::now();
    let mut sum = FileSummary {
        path: path.to_path_buf(),
        ..Default::default()
    };
    let (stream, size) = match stream_id(path) {
        Ok(s) => s,
        Err(e) => {
            sum.failed = Some(format!("cannot read: {e}"));
            return Ok(sum);
        }
    };
    // Detect before registering the source, so the default source is the format name.
    let probe = match probe(path, opts) {
        Ok(p) => p,
        Err(Probe::Failed(reason)) => {
            sum.failed = Some(reason);
            return Ok(sum);
        }
        Err(Probe::Empty) => {
            sum.note = Some("empty file, nothing to import".into());
            return Ok(sum);
        }
    };
    let source = opts
        .source
        .clone()
        .unwrap_or_else(|| probe.source.to_string());
    sum.source = source.clone();
    sum.format = Some(probe.format);
    sum.chosen = probe.chosen.clone();
    store.ensure_provider(&source, "import", None)?;
    store.use_bulk_page_cache()?;
    let resume = store
        .cursor(&source, &stream)?
        .and_then(|c| Cursor::parse(&c))
        .unwrap_or_default();
    if resume.done {
        sum.note = Some(format!(
            "already imported into source `{source}` ({} records); nothing new",
            resume.seq
        ));
        sum.elapsed = started.elapsed();
        return Ok(sum);
    }
    sum.resumed_after = resume.seq;

    if opts.strict {
        // A first pass that only parses: a bad record fails the file before anything
        // of it is committed.
        let (tx, rx) = sync_channel::<Msg>(1);
        let counter = Arc::new(AtomicU64::new(0));
        let job = Job {
            path: path.to_path_buf(),
            probe: probe.clone(),
            source: source.clone(),
            opts: opts.clone(),
            resume,
            counter,
            dry: true,
            recycle: None,
        };
        let handle = std::thread::spawn(move || job.run(tx));
        let mut failed = None;
        for m in rx {
            match m {
                Msg::Failed { reason, .. } => failed = Some(reason),
                Msg::Done { stats, .. } if stats.skipped > 0 => {
                    failed = Some(format!(
                        "--strict: {} bad record{}, first: {}; nothing of this file was imported",
                        stats.skipped,
                        if stats.skipped == 1 { "" } else { "s" },
                        stats.errors.first().cloned().unwrap_or_default()
                    ));
                    sum.errors = stats.errors;
                    sum.skipped = stats.skipped;
                }
                _ => {}
            }
        }
        handle
            .join()
            .map_err(|_| ImportError::Thread(path.to_path_buf()))?;
        if let Some(f) = failed {
            sum.failed = Some(f);
            sum.elapsed = started.elapsed();
            return Ok(sum);
        }
    }

    let (tx, rx): (SyncSender<Msg>, Receiver<Msg>) = sync_channel(0);
    let counter = Arc::new(AtomicU64::new(0));
    let (recycle, recycled) = sync_channel::<Vec<Event>>(2);
    let job = Job {
        path: path.to_path_buf(),
        probe,
        source: source.clone(),
        opts: opts.clone(),
        resume,
        counter: counter.clone(),
        dry: false,
        recycle: Some(recycled),
    };
    let handle = std::thread::spawn(move || job.run(tx));
    // Where the store thread's time goes: waiting for chunks, inserting, committing.
    let mut phases = StorePhases::default();
    let mut parser = (Duration::ZERO, Duration::ZERO);
    let mut last_progress = Instant::now();
    let mut last_commit = Instant::now();
    let mut commits = 0u64;
    let mut result = Ok(());
    let mut inserted_records = 0u64;
    let mut last_cursor: Option<String> = None;
    let mut span: Option<(i64, i64)> = None;
    let mut writer = store.event_writer(&source)?;
    loop {
        let waiting = Instant::now();
        let Ok(m) = rx.recv() else { break };
        phases.waiting += waiting.elapsed();
        match m {
            Msg::Batch {
                events,
                raw,
                cursor,
            } => {
                let n = events.len() as u64;
                for e in &events {
                    let t = crate::model::to_millis(e.time);
                    span = Some(span.map_or((t, t), |(a, b): (i64, i64)| (a.min(t), b.max(t))));
                }
                let cursor = last_cursor.insert(cursor.to_string());
                let cancelled = opts.cancelled();
                let mut committed = false;
                let inserting = Instant::now();
                let step = writer.insert_packed(&events, &raw).and_then(|ins| {
                    phases.inserting += inserting.elapsed();
                    sum.imported += ins.events as u64;
                    sum.duplicates += ins.duplicates as u64;
                    sum.new_keys += ins.new_keys as u64;
                    let due = writer.uncommitted() >= opts.batch
                        || cancelled
                        || opts
                            .commit_every
                            .is_some_and(|d| commits == 0 || last_commit.elapsed() >= d);
                    if due {
                        committed = true;
                        let committing = Instant::now();
                        let done = writer.commit(Some((&stream, cursor)));
                        phases.committing += committing.elapsed();
                        done
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = step {
                    result = Err(e);
                    break;
                }
                inserted_records += n;
                if committed {
                    commits += 1;
                    last_commit = Instant::now();
                }
                let live = committed && opts.commit_every.is_some();
                if opts.progress && (live || last_progress.elapsed() > Duration::from_millis(200)) {
                    last_progress = Instant::now();
                    progress(&Progress {
                        path,
                        bytes: counter.load(Ordering::Relaxed),
                        size,
                        records: inserted_records,
                        imported: sum.imported,
                        commits,
                        elapsed: started.elapsed(),
                    });
                }
                // The parser frees the chunk's events (or drops them here when it
                // has two waiting already).
                let _ = recycle.try_send(events);
                if cancelled {
                    // Everything inserted is committed with its cursor: the next run
                    // resumes after it. Dropping the receiver stops the reader thread.
                    sum.cancelled = true;
                    sum.records = inserted_records;
                    sum.note = Some(format!(
                        "stopped after {inserted_records} records ({} new events committed); import it again to resume",
                        sum.imported
                    ));
                    break;
                }
            }
            Msg::Done { stats, cursor } => {
                parser = stats.parser;
                apply(&mut sum, stats);
                let committing = Instant::now();
                if let Err(e) = writer.commit(Some((&stream, &cursor.to_string()))) {
                    result = Err(e);
                }
                phases.committing += committing.elapsed();
            }
            Msg::Failed { stats, reason } => {
                apply(&mut sum, stats);
                sum.failed = Some(reason);
                // What was read before the failure is kept, with its cursor.
                if let Some(c) = &last_cursor {
                    if let Err(e) = writer.commit(Some((&stream, c))) {
                        result = Err(e);
                    }
                }
            }
        }
    }
    drop(writer);
    // Dropping the receiver (on a cache error) stops the reader thread.
    drop(rx);
    handle
        .join()
        .map_err(|_| ImportError::Thread(path.to_path_buf()))?;
    result?;
    if sum.records > 0 || sum.imported > 0 {
        store.record_import_file(&crate::store::ImportRun {
            source: &source,
            stream: &stream,
            path: &path.display().to_string(),
            format: sum.format.map(LogFormat::as_str).unwrap_or(""),
            records: sum.records,
            events: sum.imported,
            span,
        })?;
    }
    sum.elapsed = started.elapsed();
    let file = display(path);
    tracing::info!(
        file = %file,
        records = sum.records,
        imported = sum.imported,
        elapsed_s = sum.elapsed.as_secs_f64(),
        parser_s = parser.0.as_secs_f64(),
        parser_waiting_s = parser.1.as_secs_f64(),
        store_inserting_s = phases.inserting.as_secs_f64(),
        store_committing_s = phases.committing.as_secs_f64(),
        store_waiting_s = phases.waiting.as_secs_f64(),
        "import phases"
    );
    Ok(sum)
}

/// The store thread's time in one file's import.
#[derive(Debug, Default)]
struct StorePhases {
    /// Waiting for the parser's next chunk.
    waiting: Duration,
    /// Inserting chunks (inside the open transaction).
    inserting: Duration,
    /// Committing (WAL writes and checkpoints).
    committing: Duration,
}

fn apply(sum: &mut FileSummary, stats: ReadStats) {
    sum.records = stats.records;
    sum.skipped = stats.skipped;
    sum.redacted = stats.redacted;
    sum.errors = stats.errors;
    sum.warnings = stats.warnings;
    if stats.note.is_some() {
        sum.note = stats.note;
    }
    if stats.format.is_some() {
        sum.format = stats.format;
        sum.chosen = stats.chosen;
    }
}

/// Reads `--mapping NAME` (or, without it, a mapping named like the source) from the
/// config's `[import]` table.
pub fn mapping_for(
    import: &toml::Table,
    explicit: Option<&str>,
    source: Option<&str>,
) -> Result<Option<(String, Mapping)>, String> {
    if let Some(name) = explicit {
        return match mapping_from_config(import, name)? {
            Some(m) => Ok(Some((name.to_string(), m))),
            None => Err(format!(
                "--mapping {name}: no [import.mapping.{name}] section in the config"
            )),
        };
    }
    if let Some(name) = source {
        if let Some(m) = mapping_from_config(import, name)? {
            return Ok(Some((name.to_string(), m)));
        }
    }
    Ok(None)
}

/// Reads the whole of `r` (used by tests).
#[doc(hidden)]
pub fn read_all(mut r: impl BufRead) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}
