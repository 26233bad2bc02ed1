//! Read-only listings: `keys`, `events`, `journal`.

use crate::app::{Ctx, UsageError};
use crate::model::{rfc3339, KeyStatus, Outcome};
use crate::output::{Format, Listing};
use crate::store::{EventQuery, Store};
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

fn opt_time(t: Option<chrono::DateTime<Utc>>) -> String {
    t.map(rfc3339).unwrap_or_default()
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
    let headers = [
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
    ];
    let mut out = Listing::new(std::io::stdout().lock(), a.format, &headers)?;
    for r in &rows {
        let k = &r.key;
        let table = a.format == Format::Table;
        out.row(r, || {
            vec![
                k.provider.clone(),
                k.id.clone(),
                k.name.clone(),
                k.owner.clone(),
                k.environment.clone().unwrap_or_default(),
                k.status.to_string(),
                if table {
                    k.created.map(|c| short_age(now - c)).unwrap_or_default()
                } else {
                    opt_time(k.created)
                },
                if table {
                    k.last_used
                        .map(|c| format!("{} ago", short_age(now - c)))
                        .unwrap_or_else(|| "never".into())
                } else {
                    opt_time(k.last_used)
                },
                if table {
                    k.scopes.len().to_string()
                } else {
                    k.scopes.join(" ")
                },
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
        eprintln!("{n} keys");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn events(ctx: &Ctx, a: &EventsArgs) -> anyhow::Result<ExitCode> {
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
    let store = Store::open_read_only(&ctx.paths.db)?;
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
    let headers = [
        "time",
        "provider",
        "key_id",
        "action",
        "outcome",
        "source_ip",
        "user_agent",
        "records",
        "id",
    ];
    let mut out = Listing::new(std::io::stdout().lock(), a.format, &headers)?;
    let mut io_err = None;
    store.for_each_event(&q, |row| {
        let e = &row.event;
        let r = out.row(e, || {
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
    })?;
    if let Some(e) = io_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let n = out.finish()?;
    if a.format == Format::Table {
        eprintln!("{n} events");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn journal(ctx: &Ctx, verify: bool, format: Format) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&ctx.paths.db)?;
    if verify {
        return match store.verify_journal()? {
            Ok(n) => {
                println!("journal ok: {n} entries, hash chain intact");
                Ok(ExitCode::SUCCESS)
            }
            Err(b) => {
                println!("journal BROKEN at entry {}: {}", b.seq, b.reason);
                Ok(ExitCode::from(1))
            }
        };
    }
    let headers = [
        "seq", "time", "user", "host", "action", "target", "reason", "result",
    ];
    let mut out = Listing::new(std::io::stdout().lock(), format, &headers)?;
    let mut io_err = None;
    store.for_each_journal(None, |e| {
        let r = out.row(&e, || {
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
