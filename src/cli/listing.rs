//! Read-only listings: `keys`, `events`, `journal`.

use crate::app::{Ctx, UsageError};
use crate::model::{rfc3339, KeyStatus, Outcome};
use crate::output::{Format, Listing};
use crate::store::reads::AllEvents;
use crate::store::{EventQuery, EventRow, Store};
use crate::when::{parse_instant, short_age};
use chrono::Utc;
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Filter: fuzzy text plus field terms (`status:active owner:acme env:prod age>90d ...`).
    #[arg(long, value_name = "Q")]
    pub filter: Option<String>,
    /// Only keys of this provider.
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// Only keys with this status (active, inactive, revoked, expired).
    #[arg(long, value_name = "S")]
    pub status: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this key (provider id).
    #[arg(long, value_name = "ID")]
    pub key: Option<String>,
    /// Only events of this provider.
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// From this time on: a duration ago (7d, 12h) or RFC 3339.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Before this time: a duration ago or RFC 3339.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only events with this outcome (success, denied, error).
    #[arg(long, value_name = "O")]
    pub outcome: Option<String>,
    /// At most this many events (newest first when set).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn keys(ctx: &Ctx, a: &KeysArgs) -> anyhow::Result<ExitCode> {
    let status = a
        .status
        .as_deref()
        .map(|s| {
            s.parse::<KeyStatus>()
                .map_err(|e| UsageError(format!("--status: {e}")))
        })
        .transpose()?;
    let store = Store::open_read_only(&ctx.paths.db)?;
    let now = Utc::now();
    let mut rows = store.keys()?;
    rows.retain(|r| {
        a.provider.as_deref().is_none_or(|p| r.key.provider == p)
            && status.is_none_or(|s| r.key.status == s)
    });
    if let Some(q) = &a.filter {
        rows = crate::filter::Filter::parse(q)
            .map_err(|e| UsageError(format!("--filter: {e}")))?
            .apply_keys(rows, now);
    }
    let table = a.format == Format::Table;
    let headers: &[&str] = if table {
        &[
            "provider",
            "id",
            "name",
            "owner",
            "env",
            "status",
            "age",
            "last_used",
            "scopes",
            "findings",
        ]
    } else {
        &crate::export::KEY_COLUMNS
    };
    let mut out = Listing::new(std::io::stdout().lock(), a.format, headers)?;
    for r in &rows {
        if !table {
            out.row(r, || crate::export::key_cells(r))?;
            continue;
        }
        let k = &r.key;
        out.row(r, || {
            vec![
                k.provider.clone(),
                k.id.clone(),
                k.name.clone(),
                k.owner.clone(),
                k.environment.clone().unwrap_or_default(),
                k.status.to_string(),
                k.created.map(|c| short_age(now - c)).unwrap_or_default(),
                k.last_used
                    .map(|c| format!("{} ago", short_age(now - c)))
                    .unwrap_or_else(|| "never".into()),
                k.scopes.len().to_string(),
                match (r.open_findings, r.worst_severity) {
                    (0, _) => String::new(),
                    (n, Some(s)) => format!("{n} ({s})"),
                    (n, None) => n.to_string(),
                },
            ]
        })?;
    }
    let n = out.finish()?;
    if a.format == Format::Table {
        crate::tell!("{n} keys");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn events(
    ctx: &Ctx,
    a: &EventsArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let since = a
        .since
        .as_deref()
        .map(|s| parse_instant(s, now).map_err(|e| UsageError(format!("--since: {e}"))))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|s| parse_instant(s, now).map_err(|e| UsageError(format!("--until: {e}"))))
        .transpose()?;
    let outcome = a
        .outcome
        .as_deref()
        .map(|s| {
            s.parse::<Outcome>()
                .map_err(|e| UsageError(format!("--outcome: {e}")))
        })
        .transpose()?;
    let q = EventQuery {
        provider: a.provider.clone(),
        key_id: a.key.clone(),
        since,
        until,
        outcome,
        newest_first: a.limit.is_some(),
        limit: a.limit,
        ..Default::default()
    };
    let csv = a.format == Format::Csv;
    let headers: &[&str] = if csv {
        &crate::export::EVENT_COLUMNS
    } else {
        &[
            "time",
            "provider",
            "key_id",
            "action",
            "outcome",
            "source_ip",
            "user_agent",
            "records",
            "id",
        ]
    };
    let mut out = Listing::new(std::io::stdout().lock(), a.format, headers)?;
    let mut io_err = None;
    let emit = |row: EventRow| {
        let e = &row.event;
        let r = out.row(e, || {
            if csv {
                return crate::export::event_cells(e);
            }
            vec![
                rfc3339(e.time),
                e.provider.clone(),
                e.key_id.clone(),
                e.action.clone(),
                e.outcome.to_string(),
                e.source_ip.clone().unwrap_or_default(),
                e.user_agent.clone().unwrap_or_default(),
                e.records.map(|n| n.to_string()).unwrap_or_default(),
                e.id.clone(),
            ]
        });
        match r {
            Ok(()) => true,
            Err(err) => {
                io_err = Some(err);
                false
            }
        }
    };
    let store = Store::open_read_only(&ctx.paths.db)?;
    match ctx.team_events() {
        Some(team) => AllEvents::Team(&team, runtime).each(&q, emit)?,
        None => AllEvents::Cache(&store).each(&q, emit)?,
    }
    if let Some(e) = io_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let n = out.finish()?;
    if a.format == Format::Table {
        crate::tell!("{n} events");
    }
    Ok(ExitCode::SUCCESS)
}

/// `journal verify`: what to check and against which key.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Verify an exported journal (`export journal --format jsonl -o FILE`) and the
    /// checkpoints exported beside it (`FILE.anchors`) instead of the cache.
    #[arg(long, value_name = "FILE")]
    pub export: Option<std::path::PathBuf>,
    /// Trust checkpoints signed by this public key (64 hex digits, or a file holding
    /// them); repeatable. Default: this install's signing key.
    #[arg(long = "public-key", value_name = "HEX|FILE")]
    pub public_keys: Vec<String>,
}

/// `journal`: the team journal with `[team]` (unless `local`), else the cache's.
pub fn journal(
    ctx: &Ctx,
    command: Option<super::JournalCommand>,
    format: Format,
    local: bool,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let team = ctx.config.team().is_some() && !local;
    match command {
        Some(super::JournalCommand::Verify(a)) if team && a.export.is_none() => {
            return verify_team_journal(ctx, rt)
        }
        Some(super::JournalCommand::Verify(a)) => return verify_journal(ctx, &a),
        None => {}
    }
    if team {
        let entries = rt.block_on(async {
            ctx.cache()?
                .shared()
                .journal()
                .await
                .map_err(anyhow::Error::from)
        })?;
        let mut out = Listing::new(std::io::stdout().lock(), format, journal_headers(format))?;
        for e in &entries {
            out.row(e, || journal_cells(e, format))?;
        }
        out.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::open_read_only(&ctx.paths.db)?;
    let csv = format == Format::Csv;
    let headers: &[&str] = if csv {
        &crate::export::JOURNAL_COLUMNS
    } else {
        &[
            "seq", "time", "user", "host", "action", "target", "reason", "result",
        ]
    };
    let mut out = Listing::new(std::io::stdout().lock(), format, headers)?;
    let mut io_err = None;
    store.for_each_journal(None, |e| {
        let r = out.row(&e, || {
            if csv {
                return crate::export::journal_cells(&e);
            }
            vec![
                e.seq.to_string(),
                rfc3339(e.time),
                e.os_user.clone(),
                e.host.clone(),
                e.action.clone(),
                e.target.clone(),
                e.reason.clone().unwrap_or_default(),
                e.result.clone(),
            ]
        });
        io_err = r.err();
        io_err.is_none()
    })?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

fn journal_headers(format: Format) -> &'static [&'static str] {
    if format == Format::Csv {
        &crate::export::JOURNAL_COLUMNS
    } else {
        &[
            "seq", "time", "user", "host", "action", "target", "reason", "result",
        ]
    }
}

fn journal_cells(e: &crate::model::JournalEntry, format: Format) -> Vec<String> {
    if format == Format::Csv {
        return crate::export::journal_cells(e);
    }
    vec![
        e.seq.to_string(),
        rfc3339(e.time),
        e.os_user.clone(),
        e.host.clone(),
        e.action.clone(),
        e.target.clone(),
        e.reason.clone().unwrap_or_default(),
        e.result.clone(),
    ]
}

/// `journal verify` of the team journal: the same chain check as the cache's. Signed
/// checkpoints are each machine's and cover its cache's journal; the team journal is
/// protected by the database's grants (members may only add and read entries).
fn verify_team_journal(ctx: &Ctx, rt: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
    use crate::store::journal::ChainCheck;
    let shared = ctx.cache()?.shared();
    let entries = rt.block_on(async { shared.journal().await.map_err(anyhow::Error::from) })?;
    let mut chain = ChainCheck::default();
    for e in &entries {
        if let Err(b) = chain.push(e) {
            crate::say!("team journal BROKEN at entry {}: {}", b.seq, b.reason);
            return Ok(ExitCode::from(1));
        }
    }
    crate::say!(
        "team journal ok: {} entries, hash chain intact ({})",
        chain.len(),
        shared.describe()
    );
    Ok(ExitCode::SUCCESS)
}

/// The public keys `journal verify` trusts.
fn trusted_keys(ctx: &Ctx, given: &[String]) -> anyhow::Result<Vec<String>> {
    use crate::store::anchor;
    let mut out = Vec::new();
    for g in given {
        let text = if anchor::parse_public_key(g).is_some() {
            g.clone()
        } else {
            std::fs::read_to_string(g).map_err(|e| {
                UsageError(format!(
                    "--public-key {g}: neither 64 hex digits nor a readable file ({e})"
                ))
            })?
        };
        if anchor::parse_public_key(&text).is_none() {
            return Err(UsageError(format!(
                "--public-key {g}: not an Ed25519 public key (64 hex digits)"
            ))
            .into());
        }
        out.push(text.trim().to_ascii_lowercase());
    }
    if out.is_empty() {
        if let Some(k) = anchor::install_public_key(&ctx.paths.journal_key())? {
            out.push(k);
        }
    }
    Ok(out)
}

fn verify_journal(ctx: &Ctx, a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    use crate::store::anchor::{self, AnchorVerdict};
    use crate::store::journal::ChainCheck;
    let trusted = trusted_keys(ctx, &a.public_keys)?;
    let (chain, anchor_file) = match &a.export {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let mut chain = ChainCheck::default();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let e: crate::model::JournalEntry = serde_json::from_str(line).map_err(|e| {
                    UsageError(format!(
                        "{}, line {}: not a journal entry of `export journal --format jsonl` ({e})",
                        path.display(),
                        i + 1
                    ))
                })?;
                if let Err(b) = chain.push(&e) {
                    crate::say!("journal BROKEN at entry {}: {}", b.seq, b.reason);
                    return Ok(ExitCode::from(1));
                }
            }
            (chain, anchor::anchors_path(path))
        }
        None => {
            let store = Store::open_read_only(&ctx.paths.db)?;
            let mut chain = ChainCheck::default();
            let mut broken = None;
            store.for_each_journal(None, |e| {
                broken = chain.push(&e).err();
                broken.is_none()
            })?;
            if let Some(b) = broken {
                crate::say!("journal BROKEN at entry {}: {}", b.seq, b.reason);
                return Ok(ExitCode::from(1));
            }
            (chain, anchor::anchors_path(&ctx.paths.db))
        }
    };
    let checkpoints = anchor::read_checkpoints(&anchor_file)?;
    if trusted.is_empty() && !chain.is_empty() {
        crate::say!(
            "journal BROKEN: no signing key to trust: {} does not exist; pass the key that \
             signed this journal with --public-key",
            ctx.paths.journal_key().display()
        );
        return Ok(ExitCode::from(1));
    }
    match anchor::judge(
        chain.hashes(),
        checkpoints.as_deref(),
        &anchor_file,
        &trusted,
    ) {
        AnchorVerdict::Empty => {
            crate::say!("journal ok: 0 entries");
            Ok(ExitCode::SUCCESS)
        }
        AnchorVerdict::Anchored { seq, time } => {
            crate::say!(
                "journal ok: {} entries, hash chain intact, signed checkpoint of entry {seq} \
                 at {time} (key {}…)",
                chain.len(),
                anchor::short(&trusted[0])
            );
            Ok(ExitCode::SUCCESS)
        }
        AnchorVerdict::Broken { seq, reason } => {
            crate::say!("journal BROKEN at entry {seq}: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}
