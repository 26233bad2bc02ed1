//! `keyaudit scan`: find leaked secrets in files, archives, standard input, git history
//! or the staging area, and match them to cached keys.

use crate::app::{Ctx, UsageError};
use crate::model::Severity;
use crate::output::{Format, Listing};
use crate::scan::report::{self, Baseline, SarifResult};
use crate::scan::source::{scan_paths, Report, WalkOptions};
use crate::scan::{git, Hit, Options, Scanner};
use crate::store::{KeyRow, Store};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Output formats of `scan`: the listing formats and SARIF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ScanFormat {
    #[default]
    Table,
    Json,
    Jsonl,
    Csv,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (walked, honouring .gitignore; `.gz` and `.zip` read);
    /// `-` reads standard input.
    #[arg(value_name = "PATH", required_unless_present_any = ["git", "staged"])]
    pub paths: Vec<PathBuf>,
    /// Scan the history of this git repository: every version of every file, each
    /// secret reported at the commit that introduced it.
    #[arg(long, value_name = "REPO")]
    pub git: Option<PathBuf>,
    /// With --git: only commits not reachable from this revision.
    #[arg(long, value_name = "REV", requires = "git")]
    pub since_commit: Option<String>,
    /// Scan what is staged for the next commit (in --git REPO, or the current
    /// directory): for a pre-commit hook.
    #[arg(long, conflicts_with = "since_commit")]
    pub staged: bool,
    /// Also run the generic high-entropy detector (more false positives, scored low).
    #[arg(long)]
    pub generic: bool,
    /// Also scan files that .gitignore or .ignore leave out.
    #[arg(long)]
    pub no_ignore: bool,
    /// Leave out the leaks whose fingerprints this baseline holds.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write the fingerprints of every leak found to FILE (0600), for --baseline.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// Exit with code 3 when a leak at or above this severity is reported
    /// (low, medium, high, critical).
    #[arg(long, value_name = "LEVEL")]
    pub fail_on: Option<String>,
    #[arg(long, value_enum, default_value_t = ScanFormat::Table)]
    pub format: ScanFormat,
}

/// A hit with the cached key it belongs to, if any.
#[derive(serde::Serialize)]
struct Match<'a> {
    #[serde(flatten)]
    hit: &'a Hit,
    severity: Severity,
    provider: Option<&'a str>,
    matched_key: Option<&'a str>,
    owner: Option<&'a str>,
    status: Option<String>,
    /// The matched key's use since the exposure ("used 214 times from 3 networks …").
    #[serde(skip_serializing_if = "Option::is_none")]
    exposure: Option<String>,
}

/// When a hit's material was exposed, and how to say it: the commit time in history,
/// the file's modification time for a file, the scan for standard input.
fn exposed_at(h: &Hit) -> (chrono::DateTime<chrono::Utc>, String) {
    if let Some(i) = &h.introduced {
        return (i.time, format!("committed in {}", &i.commit[..12]));
    }
    let path = h.file.split_once('!').map_or(h.file.as_str(), |(a, _)| a);
    match std::fs::metadata(path).and_then(|m| m.modified()) {
        Ok(t) if h.file != "-" => (t.into(), format!("written to {path}")),
        _ => (chrono::Utc::now(), "seen".to_string()),
    }
}

/// The cached key a hit belongs to: by fingerprint, by the public id found with it
/// (an AWS access key id), or by a key's listed prefix and last four characters when
/// exactly one key fits.
fn matched<'k>(
    h: &Hit,
    keys: &'k [KeyRow],
    by_fp: &HashMap<&str, usize>,
    by_id: &HashMap<&str, usize>,
) -> Option<&'k KeyRow> {
    if let Some(&i) = by_fp.get(h.fingerprint.as_str()) {
        return Some(&keys[i]);
    }
    if let Some(&i) = h.key_id.as_deref().and_then(|id| by_id.get(id)) {
        return Some(&keys[i]);
    }
    let shown = h.shown.as_str();
    let mut fits = keys.iter().filter(|k| {
        let p = k.key.prefix.as_str();
        // A listed redacted form: `sk-proj-…abcd` (or `****`): head and tail.
        let Some((head, tail)) = p.split_once('…').or_else(|| p.split_once("****")) else {
            return false;
        };
        let tail = tail.trim_start_matches('*');
        head.len() >= 3
            && tail.len() >= 4
            && shown.starts_with(head)
            && h.last4.ends_with(&tail[tail.len() - 4..])
    });
    let first = fits.next()?;
    fits.next().is_none().then_some(first)
}

pub fn scan(ctx: &Ctx, a: &ScanArgs) -> anyhow::Result<ExitCode> {
    for p in &a.paths {
        if p.as_os_str() != "-" && !p.exists() {
            return Err(UsageError(format!("{}: no such file or directory", p.display())).into());
        }
    }
    let fail_on = a
        .fail_on
        .as_deref()
        .map(|s| {
            s.parse::<Severity>()
                .map_err(|e| UsageError(format!("--fail-on: {e}")))
        })
        .transpose()?;
    let baseline = a
        .baseline
        .as_deref()
        .map(Baseline::read)
        .transpose()
        .map_err(|e| UsageError(format!("--baseline {e}")))?;
    let store = Store::open_read_only(&ctx.paths.db)?;
    let keys = store.keys()?;
    let mut by_fp: HashMap<&str, usize> = HashMap::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if !k.key.fingerprint.is_empty() {
            by_fp.insert(k.key.fingerprint.as_str(), i);
        }
        by_id.insert(k.key.id.as_str(), i);
    }

    let scanner = Scanner::new(&Options { generic: a.generic });
    let mut report = Report::default();
    if a.staged {
        let repo = a.git.clone().unwrap_or_else(|| PathBuf::from("."));
        report = git::scan_staged(&scanner, &repo).map_err(|e| UsageError(e.to_string()))?;
    } else if let Some(repo) = &a.git {
        report = git::scan_history(&scanner, repo, a.since_commit.as_deref())
            .map_err(|e| UsageError(e.to_string()))?;
    }
    let (stdin, files): (Vec<_>, Vec<_>) =
        a.paths.iter().cloned().partition(|p| p.as_os_str() == "-");
    if !files.is_empty() {
        let r = scan_paths(
            &scanner,
            &files,
            WalkOptions {
                no_ignore: a.no_ignore,
            },
        );
        report.hits.extend(r.hits);
        report.errors.extend(r.errors);
        report.stats.files += r.stats.files;
        report.stats.bytes += r.stats.bytes;
    }
    if !stdin.is_empty() {
        match crate::scan::scan_reader(&scanner, "-", std::io::stdin().lock(), &mut report.hits) {
            Ok(n) => report.stats.bytes += n.unwrap_or(0),
            Err(e) => report.errors.push(e),
        }
    }
    for e in &report.errors {
        crate::tell!("keyaudit: scan: {e}; skipped");
    }
    if let Some(path) = &a.write_baseline {
        Baseline::from_hits(&report.hits)
            .write(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot write the baseline: {e}", path.display()))?;
    }
    let known = report.hits.len();
    if let Some(b) = &baseline {
        report.hits.retain(|h| !b.contains(h));
    }
    let suppressed = known - report.hits.len();

    let mut writer = None;
    let mut unrecorded = 0;
    let mut rows: Vec<Match> = Vec::new();
    for h in &report.hits {
        let k = matched(h, &keys, &by_fp, &by_id);
        let live = k.is_some_and(|k| k.key.status == crate::model::KeyStatus::Active);
        let mut exposure = None;
        if let Some(k) = k {
            let (since, how) = exposed_at(h);
            let w = crate::detect::exposure::window(&store, k.key_ref, since)?;
            let text = crate::detect::exposure::explain(&w, &how, since);
            if ctx.read_only {
                unrecorded += 1;
            } else {
                if writer.is_none() {
                    writer = Some(ctx.open_store()?);
                }
                let title = format!("{} leaked in {}:{}", h.title, h.file, h.line);
                crate::detect::raise_exposure(
                    writer.as_ref().expect("opened above"),
                    &k.key.provider,
                    &k.key.id,
                    &title,
                    &text,
                    &w.evidence,
                )?;
            }
            exposure = Some(text);
        }
        rows.push(Match {
            hit: h,
            severity: report::severity(h, live),
            provider: k.map(|k| k.key.provider.as_str()),
            matched_key: k.map(|k| k.key.id.as_str()),
            owner: k.map(|k| k.key.owner.as_str()),
            status: k.map(|k| k.key.status.to_string()),
            exposure,
        });
    }
    if unrecorded > 0 {
        crate::tell!("keyaudit: scan: read-only: {unrecorded} exposure findings not recorded");
    }
    let matched_count = rows.iter().filter(|m| m.matched_key.is_some()).count();
    write_rows(a.format, &rows)?;
    crate::tell!(
        "{} secrets found in {} files ({} MiB), {} of them keys in the cache{}{}",
        rows.len(),
        report.stats.files,
        report.stats.bytes >> 20,
        matched_count,
        if suppressed > 0 {
            format!("; {suppressed} in the baseline left out")
        } else {
            String::new()
        },
        if report.errors.is_empty() {
            String::new()
        } else {
            format!("; {} inputs unreadable", report.errors.len())
        }
    );
    if let Some(level) = fail_on {
        let over = rows.iter().filter(|m| m.severity >= level).count();
        if over > 0 {
            crate::tell!("{over} leaks at or above {level}");
            return Ok(ExitCode::from(super::findings::EXIT_FINDINGS));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_rows(format: ScanFormat, rows: &[Match]) -> anyhow::Result<()> {
    let listing = match format {
        ScanFormat::Sarif => {
            let results: Vec<SarifResult> = rows
                .iter()
                .map(|m| SarifResult {
                    hit: m.hit,
                    severity: m.severity,
                    key: m
                        .matched_key
                        .map(|k| format!("{}/{k}", m.provider.unwrap_or(""))),
                    liveness: None,
                })
                .collect();
            let mut out = std::io::stdout().lock();
            crate::output::write_json(&mut out, &report::sarif(&results))?;
            use std::io::Write;
            writeln!(out)?;
            return Ok(());
        }
        ScanFormat::Table => Format::Table,
        ScanFormat::Json => Format::Json,
        ScanFormat::Jsonl => Format::Jsonl,
        ScanFormat::Csv => Format::Csv,
    };
    let headers = [
        "file", "line", "kind", "severity", "material", "provider", "key", "owner", "status",
        "commit",
    ];
    let mut out = Listing::new(std::io::stdout().lock(), listing, &headers)?;
    for m in rows {
        let h = m.hit;
        out.row(m, || {
            vec![
                h.file.clone(),
                h.line.to_string(),
                h.kind.to_string(),
                m.severity.to_string(),
                format!("{}…", h.shown),
                m.provider.unwrap_or("").to_string(),
                m.matched_key.unwrap_or("(not in cache)").to_string(),
                m.owner.unwrap_or("").to_string(),
                m.status.clone().unwrap_or_default(),
                h.introduced
                    .as_ref()
                    .map(|i| i.commit[..12].to_string())
                    .unwrap_or_default(),
            ]
        })?;
    }
    out.finish()?;
    Ok(())
}
