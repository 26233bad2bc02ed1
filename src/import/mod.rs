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
pub mod fields;
pub mod generic;
pub mod github;
pub mod gitlab;
mod reader;
pub mod redact;
pub mod vault;

pub use cloudtrail::cloudtrail_record_to_event;
pub use generic::{mapping_from_config, Mapping};

use crate::model::Event;
use crate::store::{RawPack, Store, StoreError};
use reader::{ArrayScanner, Element, Line, LineReader};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Draw a progress line on stderr.
    pub progress: bool,
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
    /// Record units skipped because an earlier, interrupted run committed them.
    pub resumed_after: u64,
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
}

/// Progress of the file being imported, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub path: &'a Path,
    /// Compressed bytes read so far and the file size.
    pub bytes: u64,
    pub size: u64,
    pub records: u64,
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
    // event's own transaction, so the foreign key checks SQLite would make for every row
    // (about a tenth of an import's time) are off during the import.
    store
        .conn()
        .execute_batch("PRAGMA foreign_keys = OFF")
        .map_err(StoreError::from)?;
    let mut out = Vec::new();
    let mut run = || {
        for f in files {
            let s = import_file(store, f, opts, progress)?;
            done(&s);
            out.push(s);
        }
        Ok::<_, ImportError>(())
    };
    let result = run();
    store
        .conn()
        .execute_batch("PRAGMA foreign_keys = ON")
        .map_err(StoreError::from)?;
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
        .unwrap_or_else(|| probe.format.as_str().to_string());
    sum.source = source.clone();
    sum.format = Some(probe.format);
    sum.chosen = probe.chosen.clone();
    store.ensure_provider(&source, "import", None)?;
    // A larger page cache for this connection: a bulk import touches every page of the
    // dedup index once that index outgrows the default cache. Crash safety is
    // unchanged (WAL, synchronous = NORMAL).
    store
        .conn()
        .execute_batch("PRAGMA cache_size = -65536;")
        .map_err(StoreError::from)?;
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
    let job = Job {
        path: path.to_path_buf(),
        probe,
        source: source.clone(),
        opts: opts.clone(),
        resume,
        counter: counter.clone(),
        dry: false,
    };
    let records = Arc::new(AtomicU64::new(0));
    let handle = std::thread::spawn(move || job.run(tx));
    let mut last_progress = Instant::now();
    let mut result = Ok(());
    let mut inserted_records = 0u64;
    let mut last_cursor: Option<String> = None;
    let mut writer = store.event_writer(&source)?;
    for m in rx.iter() {
        match m {
            Msg::Batch {
                events,
                raw,
                cursor,
            } => {
                let n = events.len() as u64;
                let cursor = last_cursor.insert(cursor.to_string());
                let step = writer.insert_packed(&events, &raw).and_then(|ins| {
                    sum.imported += ins.events as u64;
                    sum.duplicates += ins.duplicates as u64;
                    sum.new_keys += ins.new_keys as u64;
                    if writer.uncommitted() >= opts.batch {
                        writer.commit(Some((&stream, cursor)))
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = step {
                    result = Err(e);
                    break;
                }
                inserted_records += n;
                records.store(inserted_records, Ordering::Relaxed);
                if opts.progress && last_progress.elapsed() > Duration::from_millis(200) {
                    last_progress = Instant::now();
                    progress(&Progress {
                        path,
                        bytes: counter.load(Ordering::Relaxed),
                        size,
                        records: inserted_records,
                        elapsed: started.elapsed(),
                    });
                }
            }
            Msg::Done { stats, cursor } => {
                apply(&mut sum, stats);
                if let Err(e) = writer.commit(Some((&stream, &cursor.to_string()))) {
                    result = Err(e);
                }
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
    sum.elapsed = started.elapsed();
    Ok(sum)
}

fn apply(sum: &mut FileSummary, stats: ReadStats) {
    sum.records = stats.records;
    sum.skipped = stats.skipped;
    sum.redacted = stats.redacted;
    sum.errors = stats.errors;
    if stats.note.is_some() {
        sum.note = stats.note;
    }
    if stats.format.is_some() {
        sum.format = stats.format;
        sum.chosen = stats.chosen;
    }
}

/// What the start of a file says about it.
#[derive(Debug, Clone)]
struct Probed {
    shape: Shape,
    format: LogFormat,
    chosen: String,
}

enum Probe {
    Failed(String),
    Empty,
}

fn io_reason(e: &io::Error, gzip: bool) -> String {
    let text = e.to_string();
    if gzip
        && (e.kind() == io::ErrorKind::UnexpectedEof
            || text.contains("corrupt")
            || text.contains("invalid"))
    {
        format!("truncated or corrupt gzip data ({text}); the records before the damage were imported. Fetch the file again")
    } else if gzip {
        format!("cannot decompress: {text}; the file is not valid gzip")
    } else {
        format!("cannot read: {text}")
    }
}

fn probe(path: &Path, opts: &ImportOptions) -> Result<Probed, Probe> {
    let input = reader::open(path, Arc::new(AtomicU64::new(0)), None).map_err(|e| {
        let gz = std::fs::File::open(path)
            .and_then(|mut f| {
                let mut m = [0u8; 2];
                f.read_exact(&mut m).map(|_| m == [0x1f, 0x8b])
            })
            .unwrap_or(false);
        Probe::Failed(io_reason(&e, gz))
    })?;
    let head = &input.head;
    let text_start = head.iter().position(|b| !b" \t\r\n".contains(b)).map(|i| {
        if head[i..].starts_with(&[0xEF, 0xBB, 0xBF]) {
            i + 3
        } else {
            i
        }
    });
    let Some(start) = text_start else {
        return Err(Probe::Empty);
    };
    if reader::looks_binary(head) {
        return Err(Probe::Failed(
            "binary file, not a text log (more than 5% control bytes at its start); nothing imported. Check the file, or decompress it first if it is not gzip".into(),
        ));
    }
    let forced = LogFormat::from_choice(opts.format);
    let first = head[start];
    let first_line_end = memchr::memchr(b'\n', &head[start..]).map(|i| start + i);
    let shape = if forced == Some(LogFormat::Csv) {
        Shape::Csv
    } else if first == b'[' {
        Shape::Array
    } else if first == b'{' {
        let line = &head[start..first_line_end.unwrap_or(head.len())];
        let complete = serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
        if complete || (first_line_end.is_none() && head.len() == reader::HEAD_LEN) {
            // A complete first line, or one line longer than the probe: JSON lines
            // (a CloudTrail file is a single line).
            Shape::Lines
        } else if first_line_end.is_none() {
            Shape::Lines
        } else {
            Shape::Document
        }
    } else if forced.is_none() || forced == Some(LogFormat::Github) {
        let line = &head[start..first_line_end.unwrap_or(head.len())];
        if line.contains(&b',') {
            Shape::Csv
        } else {
            Shape::Lines
        }
    } else {
        Shape::Lines
    };
    if let Some(f) = forced {
        return Ok(Probed {
            shape,
            format: f,
            chosen: format!("--format {f}"),
        });
    }
    // Auto: look at the first record.
    let (format, why) = match shape {
        Shape::Csv => {
            let line = String::from_utf8_lossy(&head[start..first_line_end.unwrap_or(head.len())]);
            let cols: Vec<String> = line
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_string())
                .collect();
            let has = |n: &str| cols.iter().any(|c| c == n);
            if has("action")
                && (has("@timestamp")
                    || has("actor_ip")
                    || has("hashed_token")
                    || has("_document_id"))
            {
                (LogFormat::Github, "CSV with GitHub audit-log columns")
            } else {
                (LogFormat::Csv, "CSV with a header row")
            }
        }
        _ => {
            let first_value = first_record(&head[start..], shape);
            match first_value {
                Some(v) if cloudtrail::looks_like(&v) => (
                    LogFormat::Cloudtrail,
                    "CloudTrail records (eventSource, eventName, userIdentity)",
                ),
                Some(v) if vault::looks_like(&v) => {
                    (LogFormat::Vault, "Vault audit entries (type, request)")
                }
                Some(v) if github::looks_like(&v) => (
                    LogFormat::Github,
                    "GitHub audit-log entries (action, actor, @timestamp)",
                ),
                Some(v) if gitlab::looks_like(&v) => (
                    LogFormat::Gitlab,
                    "GitLab audit events (author_id, entity_type)",
                ),
                Some(_) => (
                    LogFormat::Jsonl,
                    "JSON records of no known format; generic mapping",
                ),
                None => (
                    LogFormat::Jsonl,
                    "first record unreadable; generic JSON lines",
                ),
            }
        }
    };
    Ok(Probed {
        shape,
        format,
        chosen: format!("auto-detected: {why}"),
    })
}

fn first_record(text: &[u8], shape: Shape) -> Option<Value> {
    match shape {
        Shape::Array => {
            let mut s = ArrayScanner::new(text, text.len());
            let mut buf = Vec::new();
            match s.next_element(&mut buf).ok()?? {
                Element::Json(_) => serde_json::from_slice(&buf).ok(),
                _ => None,
            }
        }
        Shape::Lines => {
            let end = memchr::memchr(b'\n', text).unwrap_or(text.len());
            let line = &text[..end];
            if line.starts_with(b"{\"Records\"") || line.starts_with(b"{ \"Records\"") {
                // Possibly cut at the probe length: detection by its start is enough.
                return Some(serde_json::json!({"Records": []}));
            }
            serde_json::from_slice(line).ok()
        }
        Shape::Document => serde_json::Deserializer::from_slice(text)
            .into_iter::<Value>()
            .next()?
            .ok(),
        Shape::Csv => None,
    }
}

/// The reading side of one file's import, run on its own thread.
struct Job {
    path: PathBuf,
    probe: Probed,
    source: String,
    opts: ImportOptions,
    resume: Cursor,
    counter: Arc<AtomicU64>,
    /// Parse only (the strict pre-pass): no events are sent.
    dry: bool,
}

/// Accumulates events into batches and counts what happens.
struct Batcher<'a> {
    job: &'a Job,
    name: String,
    mapper: Box<dyn Mapper>,
    tx: SyncSender<Msg>,
    events: Vec<Event>,
    stats: ReadStats,
    /// Cursor after the last unit fully handled.
    cursor: Cursor,
    stop: bool,
}

impl Batcher<'_> {
    /// A record that could not even be parsed.
    fn bad(&mut self, loc: Loc, msg: String) {
        self.stats.records += 1;
        self.error(loc, msg);
    }

    fn error(&mut self, loc: Loc, msg: String) {
        self.stats.skipped += 1;
        if self.stats.errors.len() < MAX_ERRORS {
            self.stats
                .errors
                .push(format!("{}:{}: {}", self.name, loc.line, msg));
        }
        if self.job.dry {
            // The strict pre-pass stops at the first bad record.
            self.stop = true;
        }
    }

    /// Handles one parsed record: expands CloudTrail `Records`, redacts, maps.
    fn value(&mut self, loc: Loc, mut v: Value) {
        if let Some(Value::Array(records)) = v.get_mut("Records") {
            let records = std::mem::take(records);
            for (i, r) in records.into_iter().enumerate() {
                self.one(loc, r, Some(i));
            }
            return;
        }
        self.one(loc, v, None);
    }

    fn one(&mut self, loc: Loc, mut v: Value, index: Option<usize>) {
        self.stats.records += 1;
        self.stats.redacted += redact::redact_value(&mut v) as u64;
        let before = self.events.len();
        let mapped = self.mapper.map(&self.job.source, &v, loc, &mut self.events);
        if let Err(e) = mapped {
            self.events.truncate(before);
            let e = crate::output::sanitize(&e);
            let msg = match index {
                Some(i) => format!("Records[{i}]: {e}"),
                None => e,
            };
            self.error(loc, msg);
            return;
        }
        let mut raw: Option<String> = None;
        let produced = self.events.len() - before;
        for (i, e) in self.events[before..].iter_mut().enumerate() {
            if e.id.is_empty() {
                e.id = fields::content_id(&v);
            }
            if let Some(fp) = e
                .key_id
                .strip_prefix("[REDACTED ")
                .and_then(|s| s.strip_suffix(']'))
            {
                e.key_id = fp.to_string();
            }
            if self.job.opts.keep_raw && e.raw.is_none() {
                if i + 1 == produced {
                    e.raw = Some(raw.take().unwrap_or_else(|| v.to_string()));
                } else {
                    e.raw = Some(raw.get_or_insert_with(|| v.to_string()).clone());
                }
            }
        }
    }

    /// The CloudTrail fast path for one JSON line: a typed read of the fields that make
    /// the event and the line kept verbatim as raw, when the line certainly holds no
    /// secret. False when the line needs the general path.
    fn fast_cloudtrail(&mut self, line: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(line) else {
            return false;
        };
        if text.starts_with("{\"Records\"") || redact::may_hold_secrets(text) {
            return false;
        }
        let Some(mut e) = cloudtrail::fast_line_to_event(&self.job.source, text) else {
            return false;
        };
        if self.job.opts.keep_raw {
            e.raw = Some(text.to_string());
        }
        self.stats.records += 1;
        self.events.push(e);
        true
    }

    /// A unit (line, element, row) is done: the cursor may move past it.
    fn unit_done(&mut self, next: Cursor) {
        self.cursor = next;
        if self.events.len() >= self.job.handoff() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.job.dry {
            self.events.clear();
            return;
        }
        let mut cursor = self.cursor;
        if let Some(p) = self.mapper.oldest_pending() {
            cursor = Cursor {
                seq: p.seq.saturating_sub(1),
                offset: p.offset,
                done: false,
            };
        }
        let mut events = std::mem::take(&mut self.events);
        // Raw records are compressed here, on the parser thread, and leave the events.
        let raw = RawPack::new(&events);
        for e in &mut events {
            e.raw = None;
        }
        if self
            .tx
            .send(Msg::Batch {
                events,
                raw,
                cursor,
            })
            .is_err()
        {
            self.stop = true;
        }
        self.events.reserve(self.job.handoff());
    }
}

/// Events the parser thread hands to the store thread at a time; at most two such
/// chunks are in memory, whatever the transaction size.
pub const HANDOFF: usize = 10_000;

impl Job {
    fn handoff(&self) -> usize {
        self.opts.batch.clamp(1, HANDOFF)
    }

    fn run(self, tx: SyncSender<Msg>) {
        let mapper: Box<dyn Mapper> = match self.probe.format {
            LogFormat::Cloudtrail => Box::new(CloudtrailMapper),
            LogFormat::Vault => Box::new(vault::VaultMapper::new(self.opts.keep_raw)),
            LogFormat::Github => Box::new(github::GithubMapper),
            LogFormat::Gitlab => Box::new(gitlab::GitlabMapper),
            LogFormat::Jsonl | LogFormat::Csv => Box::new(generic::GenericMapper {
                mapping: self.opts.mapping.clone().map(|m| m.1).unwrap_or_default(),
                mapping_name: self.opts.mapping.clone().map(|m| m.0),
            }),
        };
        let name = display(self.path.file_name().map(Path::new).unwrap_or(&self.path));
        let mut b = Batcher {
            job: &self,
            name,
            mapper,
            tx: tx.clone(),
            events: Vec::with_capacity(self.handoff()),
            stats: ReadStats {
                format: Some(self.probe.format),
                chosen: self.probe.chosen.clone(),
                ..Default::default()
            },
            cursor: self.resume,
            stop: false,
        };
        let result = self.read(&mut b);
        let mut stats = std::mem::take(&mut b.stats);
        match result {
            Ok(()) => {
                if !b.stop {
                    let mut rest = Vec::new();
                    b.mapper.finish(&mut rest);
                    b.events.extend(rest);
                    // The last batch, then the cursor that marks the file done.
                    let final_cursor = Cursor {
                        done: true,
                        ..b.cursor
                    };
                    if !b.events.is_empty() {
                        b.flush();
                    }
                    if stats.records == 0 && stats.skipped == 0 && self.resume.seq == 0 {
                        stats.note = Some("no records found".into());
                    }
                    let _ = tx.send(Msg::Done {
                        stats,
                        cursor: final_cursor,
                    });
                } else {
                    let _ = tx.send(Msg::Done {
                        stats,
                        cursor: b.cursor,
                    });
                }
            }
            Err(reason) => {
                // Commit what was read before the failure (with its cursor).
                if !b.events.is_empty() && !self.dry {
                    b.flush();
                }
                let _ = tx.send(Msg::Failed { stats, reason });
            }
        }
    }

    fn read(&self, b: &mut Batcher<'_>) -> Result<(), String> {
        let skip = self.resume.seq;
        let seek = (self.probe.shape == Shape::Lines && skip > 0).then_some(self.resume.offset);
        let input = reader::open(&self.path, self.counter.clone(), seek)
            .map_err(|e| io_reason(&e, false))?;
        let gzip = input.gzip;
        let io_err = |e: io::Error| io_reason(&e, gzip);
        match self.probe.shape {
            Shape::Lines => {
                let seeked = !gzip && skip > 0;
                let start_offset = if seeked { self.resume.offset } else { 0 };
                let mut lines = LineReader::new(input.reader, self.opts.max_record, start_offset);
                let mut buf = Vec::with_capacity(4096);
                let mut seq = if seeked { skip } else { 0 };
                let fast = self.probe.format == LogFormat::Cloudtrail;
                loop {
                    if b.stop {
                        return Ok(());
                    }
                    let offset = lines.offset;
                    let Some(line) = lines.next_line(&mut buf).map_err(io_err)? else {
                        break;
                    };
                    seq += 1;
                    let loc = Loc {
                        seq,
                        line: seq,
                        offset,
                    };
                    let next = Cursor {
                        seq,
                        offset: lines.offset,
                        done: false,
                    };
                    if seq <= skip {
                        continue;
                    }
                    match line {
                        Line::TooLong(n) => b.bad(
                            loc,
                            format!(
                                "record too large ({:.1} MB, limit {} MiB); skipped. Split the file or raise --max-record",
                                n as f64 / 1e6,
                                self.opts.max_record >> 20
                            ),
                        ),
                        Line::Text => {
                            if buf.iter().all(|c| c.is_ascii_whitespace()) {
                                b.unit_done(next);
                                continue;
                            }
                            if fast && b.fast_cloudtrail(&buf) {
                                b.unit_done(next);
                                continue;
                            }
                            match parse_json(&buf) {
                                Ok(v) => b.value(loc, v),
                                Err(e) => b.bad(loc, e),
                            }
                        }
                    }
                    b.unit_done(next);
                }
            }
            Shape::Array => {
                let mut s = ArrayScanner::new(input.reader, self.opts.max_record);
                let mut buf = Vec::new();
                let mut seq = 0;
                loop {
                    if b.stop {
                        return Ok(());
                    }
                    let el = match s.next_element(&mut buf) {
                        Ok(Some(el)) => el,
                        Ok(None) => break,
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            return Err(format!("invalid JSON: {e}"));
                        }
                        Err(e) => return Err(io_err(e)),
                    };
                    seq += 1;
                    let line = match el {
                        Element::Json(l) | Element::TooLarge(l, _) | Element::Truncated(l) => l,
                    };
                    let loc = Loc {
                        seq,
                        line,
                        offset: 0,
                    };
                    let next = Cursor {
                        seq,
                        offset: 0,
                        done: false,
                    };
                    if seq <= skip {
                        continue;
                    }
                    match el {
                        Element::Json(_) => match parse_json(&buf) {
                            Ok(v) => b.value(loc, v),
                            Err(e) => b.bad(loc, e),
                        },
                        Element::TooLarge(_, n) => b.bad(
                            loc,
                            format!(
                                "record too large ({:.1} MB, limit {} MiB); skipped",
                                n as f64 / 1e6,
                                self.opts.max_record >> 20
                            ),
                        ),
                        Element::Truncated(_) => {
                            b.bad(loc, "the JSON array ends early (truncated file?); the records before it were imported".into());
                        }
                    }
                    b.unit_done(next);
                }
            }
            Shape::Document => {
                let mut text = Vec::new();
                input
                    .reader
                    .take(self.opts.max_document as u64 + 1)
                    .read_to_end(&mut text)
                    .map_err(io_err)?;
                if text.len() > self.opts.max_document {
                    return Err(format!(
                        "JSON document larger than {} MiB; convert it to JSON lines (one record per line) first",
                        self.opts.max_document >> 20
                    ));
                }
                let mut seq = 0;
                let mut it = serde_json::Deserializer::from_slice(&text).into_iter::<Value>();
                loop {
                    if b.stop {
                        return Ok(());
                    }
                    let at = it.byte_offset();
                    let line = 1 + memchr::memchr_iter(b'\n', &text[..at]).count() as u64;
                    let Some(next) = it.next() else { break };
                    seq += 1;
                    let loc = Loc {
                        seq,
                        line,
                        offset: 0,
                    };
                    if seq <= skip {
                        continue;
                    }
                    match next {
                        Ok(Value::Array(items)) => {
                            for v in items {
                                b.value(loc, v);
                            }
                        }
                        Ok(v) => b.value(loc, v),
                        Err(e) => {
                            b.bad(
                                Loc {
                                    line: e.line() as u64,
                                    ..loc
                                },
                                format!("invalid JSON: {}", json_msg(&e)),
                            );
                            b.unit_done(Cursor {
                                seq,
                                offset: 0,
                                done: false,
                            });
                            break;
                        }
                    }
                    b.unit_done(Cursor {
                        seq,
                        offset: 0,
                        done: false,
                    });
                }
            }
            Shape::Csv => {
                let mut rdr = csv::ReaderBuilder::new()
                    .flexible(true)
                    .has_headers(true)
                    .from_reader(input.reader);
                let headers: Vec<String> = match rdr.headers() {
                    Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
                    Err(e) => return Err(format!("cannot read the CSV header row: {e}")),
                };
                let mut rec = csv::StringRecord::new();
                let mut seq = 0;
                loop {
                    if b.stop {
                        return Ok(());
                    }
                    let ok = rdr.read_record(&mut rec);
                    let line = rdr.position().line();
                    match ok {
                        Ok(false) => break,
                        Ok(true) => {
                            seq += 1;
                            let line = rec.position().map(|p| p.line()).unwrap_or(line);
                            let loc = Loc {
                                seq,
                                line,
                                offset: 0,
                            };
                            let next = Cursor {
                                seq,
                                offset: 0,
                                done: false,
                            };
                            if seq <= skip {
                                continue;
                            }
                            if rec.len() != headers.len() {
                                b.bad(
                                    loc,
                                    format!(
                                        "expected {} fields (as in the header row), found {}",
                                        headers.len(),
                                        rec.len()
                                    ),
                                );
                            } else if rec.iter().any(|f| f.contains('\0')) {
                                b.bad(
                                    loc,
                                    "NUL byte in a field (binary data in a text log)".into(),
                                );
                            } else {
                                let v = Value::Object(
                                    headers
                                        .iter()
                                        .zip(rec.iter())
                                        .filter(|(_, c)| !c.is_empty())
                                        .map(|(h, c)| (h.clone(), Value::String(c.to_string())))
                                        .collect(),
                                );
                                b.value(loc, v);
                            }
                            b.unit_done(next);
                        }
                        Err(e) => {
                            match e.kind() {
                                csv::ErrorKind::Io(io) => {
                                    return Err(io_reason(io, gzip));
                                }
                                csv::ErrorKind::Utf8 { pos, err } => {
                                    seq += 1;
                                    let l = pos.as_ref().map(|p| p.line()).unwrap_or(line);
                                    let loc = Loc {
                                        seq,
                                        line: l,
                                        offset: 0,
                                    };
                                    if seq > skip {
                                        b.bad(loc, format!("invalid UTF-8 in field {}; re-export the log as UTF-8", err.field() + 1));
                                    }
                                    b.unit_done(Cursor {
                                        seq,
                                        offset: 0,
                                        done: false,
                                    });
                                }
                                _ => {
                                    seq += 1;
                                    let loc = Loc {
                                        seq,
                                        line,
                                        offset: 0,
                                    };
                                    if seq > skip {
                                        b.bad(loc, format!("invalid CSV: {e}"));
                                    }
                                    b.unit_done(Cursor {
                                        seq,
                                        offset: 0,
                                        done: false,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// serde_json's message without its "at line 1 column N" (the line is the record's).
fn json_msg(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => format!("{} at column {}", &s[..i], e.column()),
        None => s,
    }
}

/// Parses one record's text, with messages that name the problem.
fn parse_json(buf: &[u8]) -> Result<Value, String> {
    if let Some(i) = memchr::memchr(0, buf) {
        return Err(format!(
            "NUL byte at column {} (binary data in a text log)",
            i + 1
        ));
    }
    if let Err(e) = std::str::from_utf8(buf) {
        return Err(format!(
            "invalid UTF-8 at column {}; re-export the log as UTF-8",
            e.valid_up_to() + 1
        ));
    }
    serde_json::from_slice::<Value>(buf).map_err(|e| format!("invalid JSON: {}", json_msg(&e)))
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
