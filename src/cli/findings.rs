//! `detect` and `findings` (list, show, ack, suppress).

use crate::app::{Ctx, UsageError};
use crate::detect::{self, DetectConfig};
use crate::model::{rfc3339, Category, Finding, FindingStatus, Severity};
use crate::output::{sanitize, Format, Listing};
use crate::sigma::{self, RuleSet, SigmaConfig};
use crate::store::{FindingQuery, Store};
use crate::when::parse_instant;
use chrono::Utc;
use clap::{Args, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// Exit code when findings at or above `--fail-on` are open.
pub const EXIT_FINDINGS: u8 = 3;

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Only analyse events that arrived since the last run (what `sync` does).
    #[arg(long)]
    pub incremental: bool,
    /// Also run the Sigma rules (`.yml`/`.yaml`) under this directory (repeatable;
    /// added to `[detect] sigma` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub sigma: Vec<std::path::PathBuf>,
    /// Output format of the run summary (table prints one line).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FindingsArgs {
    #[command(subcommand)]
    pub command: Option<FindingsCommand>,
    /// Only findings at or above this severity (low, medium, high, critical).
    #[arg(long, value_name = "LEVEL")]
    pub severity: Option<String>,
    /// Only findings with this status (open, acknowledged, suppressed, resolved, all).
    /// Default: open and acknowledged.
    #[arg(long, value_name = "S")]
    pub status: Option<String>,
    /// Only findings of this key (provider id).
    #[arg(long, value_name = "ID")]
    pub key: Option<String>,
    /// Only findings of this rule (e.g. new_network).
    #[arg(long, value_name = "RULE")]
    pub rule: Option<String>,
    /// Only findings of this category (anomaly, hygiene, exposure, sigma).
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Exit with code 3 when an open finding at or above this severity exists.
    #[arg(long, value_name = "LEVEL")]
    pub fail_on: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// Show one finding with its explanation, evidence events and the key's baseline.
    Show {
        /// Finding id (or a unique prefix of at least 4 characters).
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Acknowledge a finding: seen, still true; detection keeps this status.
    Ack {
        /// Finding id (or a unique prefix).
        id: String,
        /// Why (journaled).
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Suppress a finding (hide it), optionally until a date when it reopens.
    Suppress {
        /// Finding id (or a unique prefix).
        id: String,
        /// Why (journaled).
        #[arg(long, value_name = "TEXT")]
        note: String,
        /// Reopen after this time (RFC 3339, a date, or a duration from now like 30d).
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
    },
}

/// The `[detect]` settings of the configuration.
pub fn detect_config(ctx: &Ctx) -> anyhow::Result<DetectConfig> {
    Ok(DetectConfig::from_table(
        &ctx.config.detect,
        &ctx.paths.config,
    )?)
}

fn severity_arg(flag: &str, s: &str) -> Result<Severity, UsageError> {
    s.parse::<Severity>()
        .map_err(|e| UsageError(format!("{flag}: {e}")))
}

/// The Sigma rules of `[detect] sigma` plus `extra` directories, for a sync to run after
/// its built-in detection (`None` when no directory is configured). Rule files that do
/// not parse are reported on stderr; the others run.
pub fn sigma_rules(
    ctx: &Ctx,
    extra: &[std::path::PathBuf],
) -> anyhow::Result<Option<crate::sync::SyncSigma>> {
    let mut cfg = SigmaConfig::from_table(&ctx.config.detect, &ctx.paths.config)?;
    cfg.dirs.extend(extra.iter().cloned());
    if cfg.dirs.is_empty() {
        return Ok(None);
    }
    let rules = RuleSet::load(&cfg.dirs);
    for e in &rules.errors {
        crate::tell!("sigma: skipped rule file {e}");
    }
    Ok(Some(std::sync::Arc::new((rules, cfg))))
}

/// Local work: allowed in read-only mode, which only keeps providers unchanged.
pub fn detect(
    ctx: &Ctx,
    a: &DetectArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    if ctx.team_events().is_some() {
        return Err(UsageError(
            "this member keeps the team's events in the team store ([team] events = \"team\"), \
             not in its cache: detection runs on the team's copy when a member syncs a \
             source (`keyaudit sync`, this member included), and its findings reach this \
             cache with the sync"
                .into(),
        )
        .into());
    }
    let cfg = detect_config(ctx)?;
    let mut sigma_cfg = SigmaConfig::from_table(&ctx.config.detect, &ctx.paths.config)?;
    sigma_cfg.dirs.extend(a.sigma.iter().cloned());
    let rules = RuleSet::load(&sigma_cfg.dirs);
    let mut store = ctx.open_store()?;
    let now = Utc::now();
    let r = if a.incremental {
        detect::detect_incremental(&mut store, &cfg, now)?
    } else {
        detect::detect_full(&mut store, &cfg, now)?
    };
    let s = sigma::run(&mut store, &rules, &sigma_cfg, now)?;
    // New findings the team already decided take the team's decision.
    pull_team_decisions(ctx, runtime)?;
    match a.format {
        Format::Json | Format::Jsonl => {
            #[derive(serde::Serialize)]
            struct Both<'a> {
                #[serde(flatten)]
                detect: &'a detect::DetectReport,
                sigma: &'a sigma::SigmaReport,
            }
            println!(
                "{}",
                crate::output::json_string(&Both {
                    detect: &r,
                    sigma: &s
                })
            );
        }
        _ => {
            for e in &s.rule_errors {
                crate::tell!("sigma: skipped rule file {e}");
            }
            if s.rules > 0 {
                crate::say!(
                    "sigma: {} rules over {} {}events in {:.0} ms; {} matches; {} new, {} updated findings",
                    s.rules,
                    s.events,
                    if s.full { "" } else { "new " },
                    s.elapsed_ms,
                    s.matches,
                    s.opened,
                    s.updated
                );
            }
            let open = store.findings(&FindingQuery {
                status: Some(FindingStatus::Open),
                ..Default::default()
            })?;
            crate::say!(
                "{} detection: {} events of {} keys in {:.0} ms; {} new, {} updated, {} resolved; {} open findings",
                if r.full { "full" } else { "incremental" },
                r.events,
                r.keys,
                r.elapsed_ms,
                r.opened,
                r.updated,
                r.resolved,
                open.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn find(store: &Store, id: &str) -> anyhow::Result<Finding> {
    let full = store.resolve_finding_id(id)?.ok_or_else(|| {
        UsageError(format!(
            "no finding `{id}` (or the prefix is ambiguous); list them with `keyaudit findings --status all`"
        ))
    })?;
    store
        .finding(&full)?
        .ok_or_else(|| UsageError(format!("no finding `{id}`")).into())
}

pub fn findings(
    ctx: &Ctx,
    a: &FindingsArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    match &a.command {
        Some(FindingsCommand::Show { id, format }) => return show(ctx, id, *format, runtime),
        Some(FindingsCommand::Ack { id, note }) => {
            return set_status(ctx, runtime, id, FindingStatus::Acknowledged, note, None)
        }
        Some(FindingsCommand::Suppress { id, note, until }) => {
            let until = until
                .as_deref()
                .map(|u| {
                    let now = Utc::now();
                    // A bare duration means "from now" here, not "ago".
                    match crate::when::parse_duration(u) {
                        Ok(d) => Ok(now + chrono::Duration::from_std(d).unwrap_or_default()),
                        Err(_) => parse_instant(u, now),
                    }
                    .map_err(|e| UsageError(format!("--until: {e}")))
                })
                .transpose()?;
            return set_status(ctx, runtime, id, FindingStatus::Suppressed, note, until);
        }
        None => {}
    }
    pull_team_decisions(ctx, runtime)?;
    let min = a
        .severity
        .as_deref()
        .map(|s| severity_arg("--severity", s))
        .transpose()?;
    let fail_on = a
        .fail_on
        .as_deref()
        .map(|s| severity_arg("--fail-on", s))
        .transpose()?;
    let status: Option<Option<FindingStatus>> = match a.status.as_deref() {
        None => None,
        Some("all") => Some(None),
        Some(s) => {
            Some(Some(s.parse::<FindingStatus>().map_err(|e| {
                UsageError(format!("--status: {e} (or `all`)"))
            })?))
        }
    };
    let category = a
        .category
        .as_deref()
        .map(|c| {
            c.parse::<Category>()
                .map_err(|e| UsageError(format!("--category: {e}")))
        })
        .transpose()?;
    if let Some(r) = &a.rule {
        if !r.starts_with("sigma:") && !detect::RULES.iter().any(|x| x.id == r) {
            let known: Vec<&str> = detect::RULES.iter().map(|x| x.id).collect();
            return Err(UsageError(format!(
                "--rule: unknown rule `{r}`; expected one of: {}, or sigma:RULE_ID",
                known.join(", ")
            ))
            .into());
        }
    }
    let store = Store::open_read_only(&ctx.paths.db)?;
    let now = Utc::now();
    let all = store.findings(&FindingQuery::default())?;
    let matches_scope = |f: &Finding| {
        a.key.as_deref().is_none_or(|k| f.key_id == k)
            && a.rule.as_deref().is_none_or(|r| f.rule == r)
            && category.is_none_or(|c| f.category == c)
    };
    let shown: Vec<(&Finding, FindingStatus)> = all
        .iter()
        .filter(|f| matches_scope(f))
        .map(|f| (f, detect::effective_status(f, now)))
        .filter(|(f, s)| {
            min.is_none_or(|m| f.severity >= m)
                && match status {
                    None => matches!(s, FindingStatus::Open | FindingStatus::Acknowledged),
                    Some(None) => true,
                    Some(Some(want)) => *s == want,
                }
        })
        .collect();
    #[derive(serde::Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        f: &'a Finding,
        effective_status: FindingStatus,
    }
    match a.format {
        Format::Table => {
            let mut out = std::io::stdout().lock();
            for (f, s) in &shown {
                writeln!(
                    out,
                    "{:<8} {:<16} {:<12} {:<20} {}/{}  {}",
                    f.severity.as_str().to_uppercase(),
                    f.id,
                    s.as_str(),
                    f.rule,
                    sanitize(&f.provider),
                    sanitize(&f.key_id),
                    sanitize(&f.title)
                )?;
                writeln!(
                    out,
                    "         {}  (last seen {}, {} evidence events{})",
                    sanitize(&f.explanation),
                    rfc3339(f.last_seen),
                    f.evidence.len(),
                    f.note
                        .as_deref()
                        .map(|n| format!("; note: {}", sanitize(n)))
                        .unwrap_or_default()
                )?;
            }
            out.flush()?;
            crate::tell!(
                "{} findings (keyaudit findings show ID for the evidence)",
                shown.len()
            );
        }
        format => {
            let headers = crate::export::FINDING_COLUMNS;
            let mut out = Listing::new(std::io::stdout().lock(), format, &headers)?;
            for (f, s) in &shown {
                out.row(
                    &Row {
                        f,
                        effective_status: *s,
                    },
                    || crate::export::finding_cells(f, *s),
                )?;
            }
            out.finish()?;
        }
    }
    if let Some(level) = fail_on {
        let over = all
            .iter()
            .filter(|f| matches_scope(f))
            .filter(|f| detect::effective_status(f, now) == FindingStatus::Open)
            .filter(|f| f.severity >= level)
            .count();
        if over > 0 {
            crate::tell!("{over} open findings at or above {level}");
            return Ok(ExitCode::from(EXIT_FINDINGS));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(
    ctx: &Ctx,
    id: &str,
    format: Format,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&ctx.paths.db)?;
    let f = find(&store, id)?;
    let events = store.evidence_events(&f)?;
    let cfg = detect_config(ctx)?;
    let key = store.key(&f.provider, &f.key_id)?;
    let baseline = match (&key, ctx.team_events()) {
        // Kept with the team's events, where the member that syncs the source saved it.
        (Some(k), Some(team)) => {
            use crate::store::reads::EventReads;
            let state = runtime.block_on(team.key_state(k.key_ref))?;
            detect::baseline_of(state.as_deref(), &cfg)
        }
        (Some(k), None) => detect::baseline_status(&store, k.key_ref, &cfg)?,
        (None, _) => detect::BaselineStatus::NoHistory,
    };
    let now = Utc::now();
    if matches!(format, Format::Json | Format::Jsonl) {
        let v = serde_json::json!({
            "finding": f,
            "effective_status": detect::effective_status(&f, now),
            "baseline": baseline,
            "evidence_events": events,
        });
        println!("{}", crate::output::json_string(&v));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}  {}", f.id, sanitize(&f.title))?;
    writeln!(
        out,
        "rule:        {} ({}), severity {}",
        f.rule, f.category, f.severity
    )?;
    writeln!(
        out,
        "key:         {}/{}{}",
        sanitize(&f.provider),
        sanitize(&f.key_id),
        key.as_ref()
            .map(|k| format!(
                " — {} ({}, {})",
                sanitize(&k.key.name),
                sanitize(&k.key.owner),
                k.key.status
            ))
            .unwrap_or_default()
    )?;
    writeln!(out, "baseline:    {baseline}")?;
    writeln!(
        out,
        "status:      {}{}{}",
        detect::effective_status(&f, now),
        f.note
            .as_deref()
            .map(|n| format!(" — note: {}", sanitize(n)))
            .unwrap_or_default(),
        f.suppressed_until
            .map(|u| format!(" (until {})", rfc3339(u)))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "seen:        {} .. {}",
        rfc3339(f.first_seen),
        rfc3339(f.last_seen)
    )?;
    writeln!(out, "explanation: {}", sanitize(&f.explanation))?;
    writeln!(
        out,
        "evidence:    {} events{}",
        f.evidence.len(),
        if events.len() < f.evidence.len() {
            format!(" ({} no longer cached)", f.evidence.len() - events.len())
        } else {
            String::new()
        }
    )?;
    drop(out);
    if !events.is_empty() {
        let headers = [
            "time",
            "id",
            "action",
            "outcome",
            "status",
            "source_ip",
            "user_agent",
            "records",
        ];
        let mut l = Listing::new(std::io::stdout().lock(), Format::Table, &headers)?;
        for e in &events {
            l.row(e, || {
                vec![
                    rfc3339(e.time),
                    e.id.clone(),
                    e.action.clone(),
                    e.outcome.to_string(),
                    e.status_code.map(|c| c.to_string()).unwrap_or_default(),
                    e.source_ip.clone().unwrap_or_default(),
                    e.user_agent.clone().unwrap_or_default(),
                    e.records.map(|n| n.to_string()).unwrap_or_default(),
                ]
            })?;
        }
        l.finish()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// With `[team]`, applies the team's decisions to this cache's findings before they are
/// listed; an unreachable team store is said, and the cache's own statuses are listed.
pub(crate) fn pull_team_decisions(
    ctx: &Ctx,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    if ctx.config.team().is_some() {
        runtime.block_on(crate::action::decide::pull_or_warn(&ctx.cache()?));
    }
    Ok(())
}

fn set_status(
    ctx: &Ctx,
    runtime: &tokio::runtime::Runtime,
    id: &str,
    status: FindingStatus,
    note: &str,
    until: Option<chrono::DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    let verb = if status == FindingStatus::Suppressed {
        "suppress"
    } else {
        "ack"
    };
    ctx.check_writable(&format!("findings {verb}"))?;
    if note.trim().is_empty() {
        return Err(UsageError("--note must say why".into()).into());
    }
    let store = ctx.open_store()?;
    let f = find(&store, id)?;
    drop(store);
    let decision = crate::action::decide::FindingDecision {
        id: f.id.clone(),
        target: format!("{}/{}", f.provider, f.key_id),
        status,
        note: note.to_string(),
        until,
        params: serde_json::json!({
            "rule": f.rule,
            "severity": f.severity,
            "status_before": f.status,
        }),
    };
    runtime.block_on(crate::action::decide::decide(&ctx.cache()?, &decision))?;
    crate::say!(
        "{} {}{}",
        if status == FindingStatus::Suppressed {
            "suppressed"
        } else {
            "acknowledged"
        },
        f.id,
        until
            .map(|u| format!(" until {}", rfc3339(u)))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
