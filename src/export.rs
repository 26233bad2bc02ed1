//! Exports for auditors and other tools: keys, events, findings and the journal as
//! JSON lines or CSV, and the findings report in Markdown.
//!
//! Exports stream from the cache; files are written private (0600) and atomically (a
//! temporary file renamed over the target), so a half-written report never exists.

use crate::fsutil::Existing;
use crate::model::{rfc3339, Event, Finding, FindingStatus, JournalEntry, Severity};
use crate::output::{Format, Listing};
use crate::store::reads::AllEvents;
use crate::store::{EventQuery, FindingQuery, KeyRow, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use thiserror::Error;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Subject {
    /// Cached keys with their open findings.
    Keys,
    /// Audit events (oldest first).
    Events,
    /// Findings ranked by severity; `--format md` writes the auditor's report.
    Findings,
    /// The journal of operator actions.
    Journal,
}

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
    /// One JSON array.
    Json,
    /// A Markdown report (findings only).
    Md,
}

/// What can go wrong with an export.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The cache could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The team store's events could not be read.
    #[error(transparent)]
    Team(#[from] crate::store::shared::SharedError),
    /// The output could not be written.
    #[error("cannot write {path}: {source}; check the directory exists and is writable")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The combination is not offered.
    #[error("--format md is the findings report: use `export findings --format md`; for {0} use jsonl, csv or json")]
    MdOnlyForFindings(&'static str),
}

fn werr(path: &str) -> impl Fn(io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_string(),
        source,
    }
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(rfc3339).unwrap_or_default()
}

/// The CSV columns of a key, the same for `keys --format csv`, `export keys` and the
/// TUI's export (documented in the README).
pub const KEY_COLUMNS: [&str; 16] = [
    "provider",
    "id",
    "name",
    "owner",
    "environment",
    "purpose",
    "status",
    "source",
    "prefix",
    "fingerprint",
    "scopes",
    "created",
    "expires",
    "last_used",
    "open_findings",
    "worst_severity",
];

/// A key's cells in [`KEY_COLUMNS`] order.
pub fn key_cells(r: &KeyRow) -> Vec<String> {
    let k = &r.key;
    vec![
        k.provider.clone(),
        k.id.clone(),
        k.name.clone(),
        k.owner.clone(),
        k.environment.clone().unwrap_or_default(),
        k.purpose.clone().unwrap_or_default(),
        k.status.to_string(),
        k.source.to_string(),
        k.prefix.clone(),
        k.fingerprint.clone(),
        k.scopes.join(" "),
        opt_time(k.created),
        opt_time(k.expires),
        opt_time(k.last_used),
        r.open_findings.to_string(),
        r.worst_severity.map(|s| s.to_string()).unwrap_or_default(),
    ]
}

/// The CSV columns of an event (`events --format csv`, `export events`).
pub const EVENT_COLUMNS: [&str; 13] = [
    "time",
    "provider",
    "id",
    "key_id",
    "principal",
    "action",
    "scope",
    "source_ip",
    "user_agent",
    "outcome",
    "status_code",
    "request_id",
    "records",
];

/// An event's cells in [`EVENT_COLUMNS`] order.
pub fn event_cells(e: &Event) -> Vec<String> {
    vec![
        rfc3339(e.time),
        e.provider.clone(),
        e.id.clone(),
        e.key_id.clone(),
        e.principal.clone().unwrap_or_default(),
        e.action.clone(),
        e.scope.clone().unwrap_or_default(),
        e.source_ip.clone().unwrap_or_default(),
        e.user_agent.clone().unwrap_or_default(),
        e.outcome.to_string(),
        e.status_code.map(|c| c.to_string()).unwrap_or_default(),
        e.request_id.clone().unwrap_or_default(),
        e.records.map(|c| c.to_string()).unwrap_or_default(),
    ]
}

/// The CSV columns of a finding (`findings --format csv`, `export findings`).
pub const FINDING_COLUMNS: [&str; 13] = [
    "severity",
    "status",
    "rule",
    "category",
    "provider",
    "key_id",
    "title",
    "explanation",
    "evidence",
    "first_seen",
    "last_seen",
    "note",
    "id",
];

/// A finding's cells in [`FINDING_COLUMNS`] order, with `status` in the status column
/// (`findings` shows the effective status: a suppression that ran out is open again).
pub fn finding_cells(f: &Finding, status: FindingStatus) -> Vec<String> {
    vec![
        f.severity.to_string(),
        status.to_string(),
        f.rule.clone(),
        f.category.to_string(),
        f.provider.clone(),
        f.key_id.clone(),
        f.title.clone(),
        f.explanation.clone(),
        f.evidence.join(" "),
        rfc3339(f.first_seen),
        rfc3339(f.last_seen),
        f.note.clone().unwrap_or_default(),
        f.id.clone(),
    ]
}

/// The CSV columns of a journal entry (`journal --format csv`, `export journal`).
pub const JOURNAL_COLUMNS: [&str; 11] = [
    "seq",
    "time",
    "os_user",
    "host",
    "action",
    "target",
    "reason",
    "params",
    "result",
    "prev_hash",
    "hash",
];

/// A journal entry's cells in [`JOURNAL_COLUMNS`] order.
pub fn journal_cells(e: &JournalEntry) -> Vec<String> {
    vec![
        e.seq.to_string(),
        rfc3339(e.time),
        e.os_user.clone(),
        e.host.clone(),
        e.action.clone(),
        e.target.clone(),
        e.reason.clone().unwrap_or_default(),
        e.params.to_string(),
        e.result.clone(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ]
}

/// Writes `rows` as CSV with [`KEY_COLUMNS`] (the TUI's export); returns the row count.
pub fn write_keys_csv(out: impl Write, rows: &[KeyRow]) -> io::Result<usize> {
    let mut l = Listing::new(out, Format::Csv, &KEY_COLUMNS)?;
    for r in rows {
        l.row(r, || key_cells(r))?;
    }
    l.finish()
}

/// Writes an export of `subject` to `out` (`name` is used in messages); the events
/// are read from `events`, everything else from `store`.
pub fn export(
    store: &Store,
    events: &AllEvents<'_>,
    subject: Subject,
    format: ExportFormat,
    out: &mut dyn Write,
    name: &str,
) -> Result<usize, ExportError> {
    let listing_format = match format {
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Json => Format::Json,
        ExportFormat::Md => {
            return match subject {
                Subject::Findings => report(store, out, Utc::now()).map_err(|e| match e {
                    ReportError::Store(s) => ExportError::Store(s),
                    ReportError::Io(i) => werr(name)(i),
                }),
                Subject::Keys => Err(ExportError::MdOnlyForFindings("keys")),
                Subject::Events => Err(ExportError::MdOnlyForFindings("events")),
                Subject::Journal => Err(ExportError::MdOnlyForFindings("journal")),
            }
        }
    };
    let w = werr(name);
    match subject {
        Subject::Keys => {
            let mut l = Listing::new(&mut *out, listing_format, &KEY_COLUMNS).map_err(&w)?;
            for r in store.keys()? {
                l.row(&r, || key_cells(&r)).map_err(&w)?;
            }
            l.finish().map_err(&w)
        }
        Subject::Events => {
            let mut l = Listing::new(&mut *out, listing_format, &EVENT_COLUMNS).map_err(&w)?;
            let mut failed = None;
            events.each(&EventQuery::default(), |row| {
                let e = &row.event;
                let r = l.row(e, || event_cells(e));
                failed = r.err();
                failed.is_none()
            })?;
            if let Some(e) = failed {
                return Err(w(e));
            }
            l.finish().map_err(&w)
        }
        Subject::Findings => {
            let mut l = Listing::new(&mut *out, listing_format, &FINDING_COLUMNS).map_err(&w)?;
            for f in store.findings(&FindingQuery::default())? {
                l.row(&f, || finding_cells(&f, f.status)).map_err(&w)?;
            }
            l.finish().map_err(&w)
        }
        Subject::Journal => {
            let mut l = Listing::new(&mut *out, listing_format, &JOURNAL_COLUMNS).map_err(&w)?;
            let mut failed = None;
            store.for_each_journal(None, |e| {
                let r = l.row(&e, || journal_cells(&e));
                failed = r.err();
                failed.is_none()
            })?;
            if let Some(e) = failed {
                return Err(w(e));
            }
            l.finish().map_err(&w)
        }
    }
}

/// Writes to `path` privately (0600) and atomically ([`crate::fsutil::write_atomic_with`]):
/// a temporary file in the same directory, synced, then moved over `path`.
pub fn write_private_atomic(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<usize, ExportError>,
) -> Result<usize, ExportError> {
    let shown = path.display().to_string();
    crate::fsutil::write_atomic_with(
        path,
        Existing::Replace,
        |file| -> Result<usize, ExportError> {
            let mut buf = io::BufWriter::new(file);
            let n = f(&mut buf)?;
            buf.flush().map_err(werr(&shown))?;
            Ok(n)
        },
    )
    .map_err(werr(&shown))?
}

#[derive(Debug)]
enum ReportError {
    Store(StoreError),
    Io(io::Error),
}

impl From<StoreError> for ReportError {
    fn from(e: StoreError) -> Self {
        ReportError::Store(e)
    }
}
impl From<io::Error> for ReportError {
    fn from(e: io::Error) -> Self {
        ReportError::Io(e)
    }
}

/// Text safe inside a Markdown table cell or line: no control characters, no pipes or
/// markup that would break the layout.
fn md(s: &str) -> String {
    crate::output::sanitize(s)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "'")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('*', "\\*")
        .replace('_', "\\_")
}

fn code(s: &str) -> String {
    format!("`{}`", crate::output::sanitize(s).replace('`', "'"))
}

fn time_or(t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| none.to_string())
}

/// Evidence events shown per finding.
const EVIDENCE_SHOWN: usize = 10;

/// Writes the auditor's report: scope (sources, time range), summary, keys by owner,
/// findings ranked with explanations and evidence.
fn report(store: &Store, out: &mut dyn Write, now: DateTime<Utc>) -> Result<usize, ReportError> {
    let providers = store.providers()?;
    let (first, last) = store.event_time_range()?.unzip();
    let keys = store.keys()?;
    let findings = store.findings(&FindingQuery::default())?;

    writeln!(out, "# API key audit report\n")?;
    writeln!(
        out,
        "Generated {} by keyaudit {}.\n",
        now.format("%Y-%m-%d %H:%M UTC"),
        env!("CARGO_PKG_VERSION")
    )?;

    writeln!(out, "## Scope\n")?;
    let events_total: i64 = providers.iter().map(|p| p.events).sum();
    writeln!(
        out,
        "- Events reviewed: {} from {} to {}",
        events_total,
        time_or(first, "-"),
        time_or(last, "-")
    )?;
    writeln!(
        out,
        "- Keys: {} ({} known only from logs)",
        keys.len(),
        keys.iter()
            .filter(|k| k.key.source == crate::model::KeySource::Logs)
            .count()
    )?;
    writeln!(out, "- Findings: {}\n", findings.len())?;
    writeln!(
        out,
        "| Source | Kind | Keys | Events | Last sync or import |"
    )?;
    writeln!(out, "|---|---|---:|---:|---|")?;
    for p in &providers {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            md(&p.name),
            md(&p.kind),
            p.keys,
            p.events,
            if p.kind == "import" {
                "imported file(s)".to_string()
            } else {
                time_or(p.last_sync, "never")
            }
        )?;
    }
    writeln!(out)?;

    writeln!(out, "## Summary\n")?;
    let open: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.status == FindingStatus::Open)
        .collect();
    writeln!(out, "| Severity | Open | All |")?;
    writeln!(out, "|---|---:|---:|")?;
    for s in Severity::ALL.iter().rev() {
        writeln!(
            out,
            "| {} | {} | {} |",
            s,
            open.iter().filter(|f| f.severity == *s).count(),
            findings.iter().filter(|f| f.severity == *s).count()
        )?;
    }
    writeln!(out)?;

    writeln!(out, "## Keys by owner\n")?;
    let mut by_owner: BTreeMap<String, Vec<&KeyRow>> = BTreeMap::new();
    for k in &keys {
        let owner = if k.key.owner.is_empty() {
            "(owner unknown)".to_string()
        } else {
            k.key.owner.clone()
        };
        by_owner.entry(owner).or_default().push(k);
    }
    for (owner, ks) in &by_owner {
        writeln!(
            out,
            "### {} ({} key{})\n",
            md(owner),
            ks.len(),
            if ks.len() == 1 { "" } else { "s" }
        )?;
        writeln!(
            out,
            "| Key | Source | Name | Status | Environment | Created | Last used | Open findings |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|---|---|")?;
        for k in ks {
            let key = &k.key;
            writeln!(
                out,
                "| {} | {} | {} | {}{} | {} | {} | {} | {} |",
                code(&key.id),
                md(&key.provider),
                md(&key.name),
                key.status,
                if key.source == crate::model::KeySource::Logs {
                    " (seen in logs)"
                } else {
                    ""
                },
                md(key.environment.as_deref().unwrap_or("")),
                time_or(key.created, "-"),
                time_or(key.last_used, "never"),
                match (k.open_findings, k.worst_severity) {
                    (0, _) => "-".to_string(),
                    (n, Some(s)) => format!("{n} (worst: {s})"),
                    (n, None) => n.to_string(),
                }
            )?;
        }
        writeln!(out)?;
    }

    writeln!(out, "## Findings\n")?;
    if findings.is_empty() {
        writeln!(out, "No findings. Run `keyaudit detect` to evaluate the rules on the cached keys and events.\n")?;
    }
    for (i, f) in findings.iter().enumerate() {
        writeln!(
            out,
            "### {}. [{}] {}\n",
            i + 1,
            f.severity.as_str().to_uppercase(),
            md(&f.title)
        )?;
        writeln!(out, "- Key: {} of {}", code(&f.key_id), md(&f.provider))?;
        writeln!(
            out,
            "- Rule: {} ({}), status: {}",
            code(&f.rule),
            f.category,
            f.status
        )?;
        writeln!(
            out,
            "- Seen: {} to {}",
            time_or(Some(f.first_seen), "-"),
            time_or(Some(f.last_seen), "-")
        )?;
        if let Some(n) = &f.note {
            writeln!(out, "- Operator note: {}", md(n))?;
        }
        writeln!(out, "\n{}\n", md(&f.explanation))?;
        if !f.evidence.is_empty() {
            writeln!(
                out,
                "Evidence ({} event{}):\n",
                f.evidence.len(),
                if f.evidence.len() == 1 { "" } else { "s" }
            )?;
            writeln!(
                out,
                "| Time | Action | Source IP | Outcome | Principal | Event id |"
            )?;
            writeln!(out, "|---|---|---|---|---|---|")?;
            for id in f.evidence.iter().take(EVIDENCE_SHOWN) {
                match store.evidence_event(f, id).ok().flatten() {
                    Some(e) => writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} |",
                        rfc3339(e.time),
                        md(&e.action),
                        md(e.source_ip.as_deref().unwrap_or("")),
                        e.outcome,
                        md(e.principal.as_deref().unwrap_or("")),
                        code(id)
                    )?,
                    None => writeln!(out, "| - | (event no longer cached) | | | | {} |", code(id))?,
                }
            }
            if f.evidence.len() > EVIDENCE_SHOWN {
                writeln!(
                    out,
                    "\n…and {} more (see `keyaudit export findings --format jsonl`).",
                    f.evidence.len() - EVIDENCE_SHOWN
                )?;
            }
            writeln!(out)?;
        }
    }
    writeln!(out, "---\nEvent times are UTC. No secret key material is included in this report: keys appear by id, and secrets found in imported logs were redacted before they were stored.")?;
    out.flush()?;
    Ok(findings.len())
}
