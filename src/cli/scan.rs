//! `keyaudit scan`: find leaked secrets in files, archives, standard input, git history
//! or the staging area, and match them to cached keys.

use crate::app::{Ctx, UsageError};
use crate::model::Severity;
use crate::output::{Format, Listing};
use crate::provider::Liveness;
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
    /// Ask the configured provider that owns each matched key whether the key is live
    /// (by its id: the secret is never sent); each leak is marked live, revoked or
    /// unknown. A secret that matches no cached key is never sent anywhere.
    #[arg(long)]
    pub verify: bool,
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
    /// With `--verify`: what the owning provider says of the key now.
    #[serde(skip_serializing_if = "Option::is_none")]
    liveness: Option<Liveness>,
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

/// GitHub tokens that no fingerprint or id explained, matched by the `hashed_token`
/// that GitHub's audit log records on each event a token made (an imported audit log:
/// `keyaudit import --format github`).
fn by_hashed_token<'k>(
    store: &Store,
    keys: &'k [KeyRow],
    hits: &[Hit],
    owners: &mut [Option<&'k KeyRow>],
) -> anyhow::Result<()> {
    let wanted: std::collections::BTreeSet<&String> = hits
        .iter()
        .zip(owners.iter())
        .filter(|(_, o)| o.is_none())
        .filter_map(|(h, _)| h.hashed_token.as_ref())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let wanted: Vec<String> = wanted.into_iter().cloned().collect();
    let found = crate::detect::exposure::keys_by_hashed_token(store, &wanted)?;
    let by_ref: HashMap<i64, &KeyRow> = keys.iter().map(|k| (k.key_ref, k)).collect();
    for (h, o) in hits.iter().zip(owners.iter_mut()) {
        if o.is_none() {
            *o = h
                .hashed_token
                .as_ref()
                .and_then(|t| found.get(t))
                .and_then(|r| by_ref.get(r).copied());
        }
    }
    Ok(())
}

/// `--verify`: the liveness of each matched key, asked once per key of the configured
/// provider that owns it, by the key's id. Keys of no configured provider, and keys whose
/// provider does not answer, are unknown (the reason goes to standard error).
fn verify(
    ctx: &Ctx,
    rt: &tokio::runtime::Runtime,
    keys: &[&KeyRow],
) -> HashMap<(String, String), Liveness> {
    let mut out = HashMap::new();
    let mut providers: HashMap<&str, Option<std::sync::Arc<dyn crate::provider::Provider>>> =
        HashMap::new();
    for k in keys {
        let (name, id) = (k.key.provider.as_str(), k.key.id.as_str());
        if out.contains_key(&(name.to_string(), id.to_string())) {
            continue;
        }
        let p = providers.entry(name).or_insert_with(|| {
            let Some(cfg) = ctx.config.providers().find(|p| p.name == name) else {
                crate::tell!(
                    "keyaudit: scan --verify: provider `{name}` is not configured in {}; its keys stay unknown",
                    ctx.paths.config.display()
                );
                return None;
            };
            crate::provider::from_config(cfg)
                .map_err(|e| crate::tell!("keyaudit: scan --verify: {e}; its keys stay unknown"))
                .ok()
        });
        let l = match p {
            None => Liveness::Unknown,
            Some(p) => rt.block_on(p.liveness(id)).unwrap_or_else(|e| {
                crate::tell!("keyaudit: scan --verify: key {id}: {e}; liveness unknown");
                Liveness::Unknown
            }),
        };
        out.insert((name.to_string(), id.to_string()), l);
    }
    out
}

pub fn scan(ctx: &Ctx, a: &ScanArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
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

    let mut owners: Vec<Option<&KeyRow>> = report
        .hits
        .iter()
        .map(|h| matched(h, &keys, &by_fp, &by_id))
        .collect();
    by_hashed_token(&store, &keys, &report.hits, &mut owners)?;
    // Only matched keys are asked about, by id; an unmatched secret goes nowhere.
    let verified = a.verify.then(|| {
        let asked: Vec<&KeyRow> = owners.iter().flatten().copied().collect();
        verify(ctx, rt, &asked)
    });
    let mut writer = None;
    let mut unrecorded = 0;
    let mut rows: Vec<Match> = Vec::new();
    for (h, k) in report.hits.iter().zip(owners) {
        let liveness = verified.as_ref().map(|v| {
            k.and_then(|k| v.get(&(k.key.provider.clone(), k.key.id.clone())))
                .copied()
                .unwrap_or(Liveness::Unknown)
        });
        let live = match liveness {
            Some(l) => l == Liveness::Live,
            None => k.is_some_and(|k| k.key.status == crate::model::KeyStatus::Active),
        };
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
                    since,
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
            liveness,
        });
    }
    if unrecorded > 0 {
        crate::tell!("keyaudit: scan: read-only: {unrecorded} exposure findings not recorded");
    }
    let matched_count = rows.iter().filter(|m| m.matched_key.is_some()).count();
    write_rows(a.format, &rows, a.verify)?;
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

fn write_rows(format: ScanFormat, rows: &[Match], verified: bool) -> anyhow::Result<()> {
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
                    liveness: m.liveness.map(Liveness::as_str),
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
    let mut headers = vec![
        "file", "line", "kind", "severity", "material", "provider", "key", "owner", "status",
        "commit",
    ];
    if verified {
        headers.push("live");
    }
    let mut out = Listing::new(std::io::stdout().lock(), listing, &headers)?;
    for m in rows {
        let h = m.hit;
        out.row(m, || {
            let mut cells = vec![
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
            ];
            if verified {
                cells.push(m.liveness.unwrap_or(Liveness::Unknown).as_str().to_string());
            }
            cells
        })?;
    }
    out.finish()?;
    Ok(())
}
