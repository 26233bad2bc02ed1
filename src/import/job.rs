//! The reading side of one file's import, on its own thread: records are parsed,
//! mapped and redacted into chunks that go to the writing thread.

use super::probe::io_reason;
use super::*;

/// The reading side of one file's import, run on its own thread.
pub(super) struct Job {
    pub(super) path: PathBuf,
    pub(super) probe: Probed,
    pub(super) source: String,
    pub(super) opts: ImportOptions,
    pub(super) resume: Cursor,
    pub(super) counter: Arc<AtomicU64>,
    /// Parse only (the strict pre-pass): no events are sent.
    pub(super) dry: bool,
    /// Chunks the store thread is done with, handed back so their events are freed
    /// here, on the thread that allocated them (cheaper for the allocator, and off the
    /// store thread, which bounds an import), and their room reused.
    pub(super) recycle: Option<std::sync::mpsc::Receiver<Vec<Event>>>,
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
    /// Which expected fields the events carry (the missing-field warning).
    coverage: coverage::Coverage,
    /// Time spent waiting for the store thread to take a chunk.
    waited: Duration,
    /// Chunks handed to the store thread so far.
    sent: u64,
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

    /// Handles one parsed record: expands CloudTrail `Records` (and the containers of
    /// SIEM answers: Splunk `results`, Datadog `data`, Elasticsearch `hits.hits`),
    /// redacts, maps.
    fn value(&mut self, loc: Loc, mut v: Value) {
        if let Some((name, records)) = siem::take_records(self.job.probe.format, &mut v) {
            for (i, r) in records.into_iter().enumerate() {
                self.one(loc, r, Some((name, i)));
            }
            return;
        }
        if let Some(Value::Array(records)) = v.get_mut("Records") {
            let records = std::mem::take(records);
            for (i, r) in records.into_iter().enumerate() {
                self.one(loc, r, Some(("Records", i)));
            }
            return;
        }
        self.one(loc, v, None);
    }

    fn one(&mut self, loc: Loc, mut v: Value, index: Option<(&str, usize)>) {
        self.stats.records += 1;
        self.stats.redacted += redact::redact_value(&mut v) as u64;
        self.coverage.sample(&v);
        let before = self.events.len();
        let job = self.job;
        let overrides = &job.opts.overrides;
        let mapped = self
            .mapper
            .map(&self.job.source, &v, loc, &mut self.events)
            .and_then(|()| {
                self.events[before..]
                    .iter_mut()
                    .try_for_each(|e| overrides.apply(&v, e))
            });
        if let Err(e) = mapped {
            self.events.truncate(before);
            let e = crate::output::sanitize(&e);
            let msg = match index {
                Some((name, i)) => format!("{name}[{i}]: {e}"),
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
        self.coverage.sample_text(text);
        self.stats.records += 1;
        self.events.push(e);
        true
    }

    /// A unit (line, element, row) is done: the cursor may move past it.
    fn unit_done(&mut self, next: Cursor) {
        self.cursor = next;
        if self.events.len() >= self.chunk_size() {
            self.flush();
        }
    }

    /// A live import (one the TUI shows while it runs) hands its first chunk over
    /// small, so the first commit, and the first screen with events, come at once.
    fn chunk_size(&self) -> usize {
        let full = self.job.handoff();
        if self.sent == 0 && self.job.opts.commit_every.is_some() {
            FIRST_LIVE_HANDOFF.min(full)
        } else {
            full
        }
    }

    fn flush(&mut self) {
        self.sent += 1;
        self.coverage.observe(&self.events);
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
        let sent = Instant::now();
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
        self.waited += sent.elapsed();
        self.events = self
            .recycled()
            .unwrap_or_else(|| Vec::with_capacity(self.job.handoff()));
    }

    /// A chunk the store thread handed back, emptied, with any others freed.
    fn recycled(&self) -> Option<Vec<Event>> {
        let back = self.job.recycle.as_ref()?;
        let mut room: Option<Vec<Event>> = None;
        while let Ok(mut chunk) = back.try_recv() {
            chunk.clear();
            room.get_or_insert(chunk);
        }
        room
    }
}

/// Events the parser thread hands to the store thread at a time; at most two such
/// chunks are in memory, whatever the transaction size.
pub const HANDOFF: usize = 10_000;

/// The first chunk of a live import: small enough to be parsed, stored and committed
/// within a few milliseconds.
const FIRST_LIVE_HANDOFF: usize = 1_000;

impl Job {
    fn handoff(&self) -> usize {
        self.opts.batch.clamp(1, HANDOFF)
    }

    /// The generic mapper: the config's mapping, and `--map` for the fields a
    /// record cannot go without.
    fn generic(&self) -> generic::GenericMapper {
        generic::GenericMapper {
            mapping: self.opts.mapping.clone().map(|m| m.1).unwrap_or_default(),
            mapping_name: self.opts.mapping.clone().map(|m| m.0),
            overrides: self.opts.overrides.clone(),
        }
    }

    pub(super) fn run(self, tx: SyncSender<Msg>) {
        let mapper: Box<dyn Mapper> = match self.probe.format {
            LogFormat::Cloudtrail => Box::new(CloudtrailMapper),
            LogFormat::Vault => Box::new(vault::VaultMapper::new(self.opts.keep_raw)),
            LogFormat::Github => Box::new(github::GithubMapper),
            LogFormat::Gitlab => Box::new(gitlab::GitlabMapper),
            LogFormat::Jsonl | LogFormat::Csv => Box::new(self.generic()),
            LogFormat::Ecs => Box::new(siem::EcsMapper {
                keep_raw: self.opts.keep_raw,
            }),
            LogFormat::Datadog => Box::new(siem::DatadogMapper),
            LogFormat::Splunk => Box::new(siem::SplunkMapper {
                keep_raw: self.opts.keep_raw,
                generic: self.generic(),
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
            coverage: coverage::Coverage::new(self.probe.format),
            waited: Duration::ZERO,
            sent: 0,
        };
        let started = Instant::now();
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
                    stats.warnings = b.coverage.warnings(stats.records, &b.name);
                    stats.parser = (started.elapsed(), b.waited);
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
                let fast =
                    self.probe.format == LogFormat::Cloudtrail && self.opts.overrides.is_empty();
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
