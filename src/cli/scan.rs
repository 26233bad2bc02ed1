//! `keyaudit scan PATH...`: find leaked key material and match it to cached keys.

use crate::app::{Ctx, UsageError};
use crate::output::{Format, Listing};
use crate::scan::source::{scan_paths, Report, WalkOptions};
use crate::scan::{Hit, Options, Scanner};
use crate::store::{KeyRow, Store};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (walked, honouring .gitignore; `.gz` and `.zip` read);
    /// `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Also run the generic high-entropy detector (more false positives, scored low).
    #[arg(long)]
    pub generic: bool,
    /// Also scan files that .gitignore or .ignore leave out.
    #[arg(long)]
    pub no_ignore: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// A hit with the cached key it belongs to, if any.
#[derive(serde::Serialize)]
struct Match<'a> {
    #[serde(flatten)]
    hit: &'a Hit,
    provider: Option<&'a str>,
    matched_key: Option<&'a str>,
    owner: Option<&'a str>,
    status: Option<String>,
}

pub fn scan(ctx: &Ctx, a: &ScanArgs) -> anyhow::Result<ExitCode> {
    for p in &a.paths {
        if p.as_os_str() != "-" && !p.exists() {
            return Err(UsageError(format!("{}: no such file or directory", p.display())).into());
        }
    }
    let store = Store::open_read_only(&ctx.paths.db)?;
    let keys = store.keys()?;
    let mut by_fp: HashMap<&str, &KeyRow> = HashMap::new();
    let mut by_id: HashMap<&str, &KeyRow> = HashMap::new();
    for k in &keys {
        if !k.key.fingerprint.is_empty() {
            by_fp.insert(k.key.fingerprint.as_str(), k);
        }
        by_id.insert(k.key.id.as_str(), k);
    }
    let scanner = Scanner::new(&Options { generic: a.generic });
    let (stdin, files): (Vec<_>, Vec<_>) =
        a.paths.iter().cloned().partition(|p| p.as_os_str() == "-");
    let mut report: Report = scan_paths(
        &scanner,
        &files,
        WalkOptions {
            no_ignore: a.no_ignore,
        },
    );
    if !stdin.is_empty() {
        match crate::scan::scan_reader(&scanner, "-", std::io::stdin().lock(), &mut report.hits) {
            Ok(n) => report.stats.bytes += n.unwrap_or(0),
            Err(e) => report.errors.push(e),
        }
    }
    for e in &report.errors {
        crate::tell!("keyaudit: scan: {e}; skipped");
    }
    let headers = [
        "file", "line", "kind", "material", "provider", "key", "owner", "status",
    ];
    let mut out = Listing::new(std::io::stdout().lock(), a.format, &headers)?;
    let mut matched = 0;
    for h in &report.hits {
        let k = by_fp
            .get(h.fingerprint.as_str())
            .or_else(|| h.key_id.as_deref().and_then(|id| by_id.get(id)))
            .copied();
        matched += k.is_some() as usize;
        let m = Match {
            hit: h,
            provider: k.map(|k| k.key.provider.as_str()),
            matched_key: k.map(|k| k.key.id.as_str()),
            owner: k.map(|k| k.key.owner.as_str()),
            status: k.map(|k| k.key.status.to_string()),
        };
        out.row(&m, || {
            vec![
                h.file.clone(),
                h.line.to_string(),
                h.kind.to_string(),
                format!("{}…", h.shown),
                m.provider.unwrap_or("").to_string(),
                m.matched_key.unwrap_or("(not in cache)").to_string(),
                m.owner.unwrap_or("").to_string(),
                m.status.clone().unwrap_or_default(),
            ]
        })?;
    }
    out.finish()?;
    crate::tell!(
        "{} secrets found, {} of them keys in the cache{}",
        report.hits.len(),
        matched,
        if report.errors.is_empty() {
            String::new()
        } else {
            format!("; {} inputs unreadable", report.errors.len())
        }
    );
    Ok(ExitCode::SUCCESS)
}
