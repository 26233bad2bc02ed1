//! `import`, `export` and `open`: the offline reviewer's commands.

use crate::app::{Ctx, UsageError};
use crate::export::{ExportFormat, Subject};
use crate::import::{FileSummary, FormatChoice, ImportOptions, Progress};
use crate::store::reads::AllEvents;
use crate::store::Store;
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files or directories (walked recursively); `.gz` files are read transparently.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Log format; `auto` detects it per file from the first records.
    #[arg(long, value_enum, default_value_t = FormatChoice::Auto)]
    pub format: FormatChoice,
    /// Source (provider) name the events go under. Default: the format name.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Fail a file on its first bad record, committing nothing of it.
    #[arg(long)]
    pub strict: bool,
    /// Field mapping `[import.mapping.NAME]` of the config, for jsonl/csv logs.
    /// Default: the mapping named like `--source`, if any, else guessed field names.
    #[arg(long, value_name = "NAME")]
    pub mapping: Option<String>,
    /// Where an event field comes from, over the format's own mapping (repeatable).
    /// FIELD is one of time, key_id, principal, action, scope, outcome, source_ip,
    /// user_agent, id, request_id, status_code, records. PATH is a dotted JSON path
    /// into the record as it is in the file (`network.client.ip`); write a dot inside
    /// a key as `\.`; a string holding JSON (`_raw`) is entered like an object.
    #[arg(long = "map", value_name = "FIELD=PATH")]
    pub map: Vec<String>,
    /// Do not keep the (redacted) raw record of each event: a smaller, faster cache.
    #[arg(long)]
    pub no_raw: bool,
    /// Largest record (one line or array element) accepted, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    pub max_record: usize,
    /// Events per transaction (committed with the file's cursor, so an interrupted
    /// import resumes after the last commit). Larger transactions rewrite the dedup
    /// index less often; memory does not depend on it. See docs/PERFORMANCE.md.
    #[arg(long, value_name = "N", default_value_t = 250_000)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    #[command(flatten)]
    pub import: ImportArgs,
    /// The case's name (its cache is `cases/NAME.db` in the data directory). Default:
    /// the first input's name. Opening a case again imports only files it lacks.
    #[arg(long, value_name = "NAME")]
    pub case: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    pub subject: Subject,
    /// Output format (`md`: the findings report for auditors).
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Output file (written 0600, atomically). Default: standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn options(ctx: &Ctx, a: &ImportArgs) -> anyhow::Result<ImportOptions> {
    if let Some(s) = &a.source {
        if s.trim().is_empty() || s.chars().any(char::is_control) {
            return Err(UsageError(
                "--source: give a non-empty name without control characters".into(),
            )
            .into());
        }
    }
    if a.max_record == 0 || a.max_record > 1024 {
        return Err(UsageError("--max-record: give a size from 1 to 1024 MiB".into()).into());
    }
    let mapping = crate::import::mapping_for(
        &ctx.config.import,
        a.mapping.as_deref(),
        a.source.as_deref(),
    )
    .map_err(UsageError)?;
    let overrides = crate::import::fieldmap::FieldMap::parse(&a.map).map_err(UsageError)?;
    Ok(ImportOptions {
        format: a.format,
        source: a.source.clone(),
        strict: a.strict,
        keep_raw: !a.no_raw,
        mapping,
        max_record: a.max_record << 20,
        batch: a.batch.max(1),
        progress: std::io::stderr().is_terminal(),
        overrides,
        ..Default::default()
    })
}

fn name_of(p: &Path) -> String {
    crate::output::sanitize(&p.display().to_string())
}

fn print_progress(p: &Progress<'_>) {
    let secs = p.elapsed.as_secs_f64().max(0.001);
    let rate = p.records as f64 / secs;
    let frac = if p.size > 0 {
        (p.bytes as f64 / p.size as f64).min(1.0)
    } else {
        0.0
    };
    let eta = if frac > 0.0 {
        secs * (1.0 - frac) / frac
    } else {
        0.0
    };
    let width = 24;
    let filled = (frac * width as f64) as usize;
    eprint!(
        "\r\x1b[2K{} [{}{}] {:>3.0}%  {} records  {:.0}/s  ETA {:.0}s",
        name_of(p.path.file_name().map(Path::new).unwrap_or(p.path)),
        "#".repeat(filled),
        " ".repeat(width - filled),
        frac * 100.0,
        p.records,
        rate,
        eta
    );
}

fn print_summary(s: &FileSummary, tty: bool) {
    if tty {
        eprint!("\r\x1b[2K");
    }
    let name = name_of(&s.path);
    if let Some(f) = &s.failed {
        crate::tell!("{name}: FAILED: {f}");
    }
    if let Some(n) = &s.note {
        crate::tell!("{name}: {n}");
    }
    if let Some(format) = s.format {
        if s.records > 0 || (s.failed.is_none() && s.note.is_none()) {
            let resumed = if s.resumed_after > 0 {
                format!(
                    ", resumed after record {} (committed by an earlier run)",
                    s.resumed_after
                )
            } else {
                String::new()
            };
            crate::tell!(
                "{name}: {format} ({}) -> source `{}`: {} records, {} imported, {} duplicates, {} skipped, {} new keys, {} values redacted in {:.1}s{resumed}",
                s.chosen,
                crate::output::sanitize(&s.source),
                s.records,
                s.imported,
                s.duplicates,
                s.skipped,
                s.new_keys,
                s.redacted,
                s.elapsed.as_secs_f64(),
            );
        }
    }
    for w in &s.warnings {
        crate::tell!("{w}");
    }
    for e in &s.errors {
        crate::tell!("  {e}");
    }
    if s.skipped as usize > s.errors.len() {
        crate::tell!(
            "  ... and {} more bad records",
            s.skipped as usize - s.errors.len()
        );
    }
}

/// Imports into the cache `ctx` points at; returns the summaries.
fn run_import(ctx: &Ctx, a: &ImportArgs) -> anyhow::Result<Vec<FileSummary>> {
    let opts = options(ctx, a)?;
    let files = crate::import::collect_files(&a.paths)?;
    if files.is_empty() {
        return Err(UsageError("no files to import in the given directories".into()).into());
    }
    let mut store = Store::open(&ctx.paths.db)?;
    let tty = opts.progress;
    let summaries = crate::import::import_files(
        &mut store,
        &files,
        &opts,
        &mut |p| print_progress(p),
        &mut |s| print_summary(s, tty),
    )?;
    if summaries.len() > 1 {
        let sum = |f: fn(&FileSummary) -> u64| summaries.iter().map(f).sum::<u64>();
        crate::tell!(
            "total: {} files ({} failed), {} records, {} imported, {} duplicates, {} skipped",
            summaries.len(),
            summaries.iter().filter(|s| s.failed.is_some()).count(),
            sum(|s| s.records),
            sum(|s| s.imported),
            sum(|s| s.duplicates),
            sum(|s| s.skipped)
        );
    }
    Ok(summaries)
}

fn exit_of(summaries: &[FileSummary]) -> ExitCode {
    if summaries.iter().any(|s| s.failed.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `keyaudit import PATH...`: local work, allowed in read-only mode (which only keeps
/// providers unchanged).
pub fn import(ctx: &Ctx, a: &ImportArgs) -> anyhow::Result<ExitCode> {
    let summaries = run_import(ctx, a)?;
    Ok(exit_of(&summaries))
}

/// `keyaudit open FILE... [--case NAME]`: opens the TUI on the named case at once and
/// imports the files it lacks beside it (files it already holds add nothing); events
/// show as they are committed, detection runs when the import ends, and `X` stops it
/// (the next `open` resumes). Without a terminal, imports first, as `import` does.
pub fn open(
    ctx: &Ctx,
    a: &OpenArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    use super::case;
    let name = match &a.case {
        Some(n) => {
            case::check_name(n)?;
            n.clone()
        }
        None => case::default_name(&a.import.paths[0]),
    };
    let db = case::case_path(ctx, &name);
    crate::tell!("case `{name}`: {}", name_of(&db));
    let case = Ctx {
        paths: crate::config::Paths {
            db: db.clone(),
            ..ctx.paths.clone()
        },
        config: ctx.config.without_providers(),
        read_only: ctx.read_only,
        write: ctx.write,
    };
    let at_terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if !at_terminal {
        let summaries = run_import(&case, &a.import)?;
        crate::say!("{}", db.display());
        if summaries.iter().all(|s| s.failed.is_some()) {
            return Err(anyhow::anyhow!(
                "nothing could be imported; the case database {} was left for inspection",
                name_of(&db)
            ));
        }
        mark_opened(&db)?;
        return runtime.block_on(crate::tui::launch_case(&case, &name, None));
    }
    let opts = options(&case, &a.import)?;
    let files = crate::import::collect_files(&a.import.paths)?;
    if files.is_empty() {
        return Err(UsageError("no files to import in the given directories".into()).into());
    }
    mark_opened(&db)?;
    let plan = crate::tui::import::ImportPlan::new(files, opts);
    let summaries = plan.summaries.clone();
    let result = runtime.block_on(crate::tui::launch_case(&case, &name, Some(plan)));
    // What the import did, now that the terminal is restored.
    let summaries = std::mem::take(&mut *summaries.lock().unwrap_or_else(|e| e.into_inner()));
    for s in &summaries {
        print_summary(s, false);
    }
    if summaries.iter().any(|s| s.cancelled) {
        crate::tell!(
            "the import was stopped; `keyaudit open {} --case {name}` resumes it",
            a.import
                .paths
                .iter()
                .map(|p| name_of(p))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    crate::say!("{}", db.display());
    result
}

/// Records when the case at `db` was opened (creating it).
fn mark_opened(db: &Path) -> anyhow::Result<()> {
    Store::open(db)?.set_meta(
        super::case::LAST_OPENED,
        &crate::model::to_millis(chrono::Utc::now()).to_string(),
    )?;
    Ok(())
}

/// Copies the journal's signed checkpoints beside an exported journal (`FILE.anchors`),
/// so an auditor verifies the export with the public key alone.
fn export_anchors(ctx: &Ctx, exported: &std::path::Path) -> anyhow::Result<()> {
    use crate::store::anchor;
    let from = anchor::anchors_path(&ctx.paths.db);
    let to = anchor::anchors_path(exported);
    match std::fs::read(&from) {
        Ok(bytes) => {
            crate::fsutil::write_atomic(&to, &bytes)?;
            let n = bytes.iter().filter(|b| **b == b'\n').count();
            crate::tell!("wrote {} ({n} signed checkpoints)", name_of(&to));
            if let Some(key) = anchor::install_public_key(&ctx.paths.journal_key())? {
                crate::tell!(
                    "verify it elsewhere with: keyaudit journal verify --export {} --public-key {key}",
                    name_of(exported)
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::tell!(
                "no signed checkpoints at {}: the export can be checked for edits and gaps, \
                 not for a cut-off end or a rewrite",
                name_of(&from)
            );
        }
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", from.display())),
    }
    Ok(())
}

/// `keyaudit export SUBJECT [--format F] [-o FILE]`
pub fn export(
    ctx: &Ctx,
    a: &ExportArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&ctx.paths.db)?;
    let team = ctx.team_events();
    let events = match &team {
        Some(team) => AllEvents::Team(team, runtime),
        None => AllEvents::Cache(&store),
    };
    if a.format == ExportFormat::Md && a.subject != Subject::Findings {
        return Err(UsageError(
            crate::export::ExportError::MdOnlyForFindings(match a.subject {
                Subject::Keys => "keys",
                Subject::Events => "events",
                _ => "journal",
            })
            .to_string(),
        )
        .into());
    }
    match &a.output {
        Some(path) => {
            let n = crate::export::write_private_atomic(path, |w| {
                crate::export::export(
                    &store,
                    &events,
                    a.subject,
                    a.format,
                    w,
                    &path.display().to_string(),
                )
            })?;
            crate::tell!(
                "wrote {} ({n} {})",
                name_of(path),
                match a.subject {
                    Subject::Keys => "keys",
                    Subject::Events => "events",
                    Subject::Findings => "findings",
                    Subject::Journal => "journal entries",
                }
            );
            if a.subject == Subject::Journal {
                export_anchors(ctx, path)?;
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match crate::export::export(
                &store,
                &events,
                a.subject,
                a.format,
                &mut lock,
                "standard output",
            ) {
                Ok(_) => {}
                Err(crate::export::ExportError::Write { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
