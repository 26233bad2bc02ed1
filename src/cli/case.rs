//! Cases: caches made from imported files, kept by name under the data directory
//! (`cases/NAME.db`). `keyaudit open FILE... [--case NAME]` imports into one (files it
//! already holds add nothing) and opens it; `keyaudit cases` lists them; `keyaudit
//! cases rm NAME` removes one after confirmation.

use crate::app::{Ctx, UsageError};
use crate::output::{Format, Listing};
use crate::store::Store;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The cache setting that records when a case was last opened (milliseconds).
pub const LAST_OPENED: &str = "last_opened";

#[derive(Debug, Args)]
pub struct CasesArgs {
    #[command(subcommand)]
    pub command: Option<CasesCommand>,
    /// Output format of the listing.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Remove a case (its cache and journal checkpoints); asks for its name first.
    Rm {
        /// The case's name, as `keyaudit cases` lists it.
        name: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// The directory of the cases.
pub fn cases_dir(ctx: &Ctx) -> PathBuf {
    ctx.paths.data_dir.join("cases")
}

/// Checks a case name: letters, digits, `-`, `_` and `.`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), UsageError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(UsageError(format!(
            "--case `{}`: use letters, digits, `-`, `_` and `.` (not first), at most 100",
            crate::output::sanitize(name)
        )))
    }
}

/// The default name of a case: the first input's name without its log extensions,
/// other characters replaced by `_`.
pub fn default_name(first: &Path) -> String {
    let base = std::fs::canonicalize(first).unwrap_or_else(|_| first.to_path_buf());
    let stem = base
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "logs".into());
    let mut stem = stem.as_str();
    loop {
        let before = stem;
        for ext in [".gz", ".json", ".jsonl", ".log", ".csv", ".txt"] {
            stem = stem.strip_suffix(ext).unwrap_or(stem);
        }
        if stem == before {
            break;
        }
    }
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_start_matches('.').to_string();
    if name.is_empty() {
        "logs".into()
    } else {
        name.chars().take(100).collect()
    }
}

/// The cache of the case `name`.
pub fn case_path(ctx: &Ctx, name: &str) -> PathBuf {
    cases_dir(ctx).join(format!("{name}.db"))
}

/// One case as `keyaudit cases` lists it.
#[derive(Debug, Serialize)]
pub struct CaseInfo {
    pub name: String,
    pub path: PathBuf,
    /// Bytes on disk (the cache with its write-ahead log).
    pub size: u64,
    /// Imported files.
    pub sources: usize,
    pub events: i64,
    pub first_event: Option<DateTime<Utc>>,
    pub last_event: Option<DateTime<Utc>>,
    pub last_opened: Option<DateTime<Utc>>,
}

fn info_of(name: String, path: PathBuf) -> anyhow::Result<CaseInfo> {
    let size = ["", "-wal"]
        .iter()
        .filter_map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(PathBuf::from(p)).ok()
        })
        .map(|m| m.len())
        .sum();
    let store = Store::open_read_only(&path)?;
    let span = store.event_time_range()?;
    let last_opened = store
        .meta(LAST_OPENED)
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .map(crate::model::from_millis);
    Ok(CaseInfo {
        name,
        size,
        sources: store.imported_files()?.len(),
        events: store.event_count()?,
        first_event: span.map(|s| s.0),
        last_event: span.map(|s| s.1),
        last_opened,
        path,
    })
}

/// Every case, by name.
pub fn list(ctx: &Ctx) -> anyhow::Result<Vec<CaseInfo>> {
    let dir = cases_dir(ctx);
    let mut names: Vec<(String, PathBuf)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                let name = p.file_name()?.to_str()?.strip_suffix(".db")?.to_string();
                check_name(&name).is_ok().then_some((name, p))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(anyhow::anyhow!("cannot list {}: {e}", dir.display())),
    };
    names.sort();
    names.into_iter().map(|(n, p)| info_of(n, p)).collect()
}

fn size_text(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MB {
        format!("{:.1} MiB", bytes as f64 / MB)
    } else {
        format!("{:.0} KiB", (bytes as f64 / 1024.0).ceil())
    }
}

fn time_text(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `keyaudit cases [rm NAME]`.
pub fn cases(ctx: &Ctx, a: &CasesArgs) -> anyhow::Result<ExitCode> {
    if let Some(CasesCommand::Rm { name, yes }) = &a.command {
        return remove(ctx, name, *yes);
    }
    let cases = list(ctx)?;
    let headers: &[&'static str] = &[
        "name",
        "path",
        "size",
        "sources",
        "events",
        "from",
        "to",
        "last_opened",
    ];
    let mut out = Listing::new(std::io::stdout().lock(), a.format, headers)?;
    for c in &cases {
        out.row(c, || {
            vec![
                c.name.clone(),
                c.path.display().to_string(),
                size_text(c.size),
                c.sources.to_string(),
                c.events.to_string(),
                time_text(c.first_event),
                time_text(c.last_event),
                time_text(c.last_opened),
            ]
        })?;
    }
    let n = out.finish()?;
    if a.format == Format::Table {
        crate::tell!(
            "{n} cases in {}",
            crate::output::sanitize(&cases_dir(ctx).display().to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(ctx: &Ctx, name: &str, yes: bool) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let path = case_path(ctx, name);
    if !path.exists() {
        return Err(UsageError(format!(
            "no case `{name}` (no {}); `keyaudit cases` lists them",
            crate::output::sanitize(&path.display().to_string())
        ))
        .into());
    }
    let info = info_of(name.to_string(), path.clone())?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(UsageError(format!(
                "cases rm {name}: confirm with --yes when not at a terminal"
            ))
            .into());
        }
        crate::tell!(
            "remove case `{name}` ({}, {} events from {} files)? Type its name to confirm:",
            size_text(info.size),
            info.events,
            info.sources
        );
        let _ = std::io::stderr().flush();
        let mut typed = String::new();
        std::io::stdin().lock().read_line(&mut typed)?;
        if typed.trim() != name {
            crate::tell!("not removed");
            return Ok(ExitCode::from(1));
        }
    }
    for suffix in ["", "-wal", "-shm", ".anchors"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(&p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot remove {}: {e}",
                    Path::new(&p).display()
                ))
            }
        }
    }
    crate::tell!("removed case `{name}`");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_come_from_the_first_input() {
        assert_eq!(default_name(Path::new("x/trail.json.gz")), "trail");
        assert_eq!(default_name(Path::new("export 2024.jsonl")), "export_2024");
        assert_eq!(default_name(Path::new(".hidden.log")), "hidden");
        assert!(check_name("trail-2024_a.b").is_ok());
        for bad in ["", ".x", "a/b", "a b", "../up"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
