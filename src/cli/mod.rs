//! The command line: one clap tree, one context, exit codes per DESIGN.md
//! (0 ok, 1 runtime error, 2 usage or configuration error, 3 findings at or above
//! `--fail-on`).

mod act;
pub mod case;
mod crypt;
pub mod demo;
mod findings;
mod import;
mod listing;
mod scan;
mod shell;

use crate::app::{Ctx, UsageError};
use crate::config::{Config, ConfigError, Mode, Paths};
use crate::output::Format;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "keyaudit",
    version,
    about = "A terminal workstation for auditing API keys",
    long_about = "A terminal workstation for auditing API keys: sync keys and audit logs from \
                  providers into a local cache, browse and filter them, flag anomalies, rotate \
                  and revoke. Without a command it opens the TUI (on the embedded demo when no \
                  provider is configured)."
)]
pub struct Cli {
    /// Cache file (SQLite). Default: the XDG data dir's keyaudit/cache.db.
    #[arg(long, global = true, env = "KEYAUDIT_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Configuration file. Default: the XDG config dir's keyaudit/config.toml.
    #[arg(long, global = true, env = "KEYAUDIT_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Change nothing at any provider: refuse revoke, disable, enable, rotate, resume and
    /// finding decisions (sync, detect and import still update the local cache).
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Start the TUI able to act (badge RW) instead of read-only.
    #[arg(long, global = true, conflicts_with = "read_only")]
    pub write: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the TUI (the default).
    Tui,
    /// Run the embedded demo provider (Talentgrid), with the TUI or alone.
    Demo(demo::DemoArgs),
    /// Pull keys and new events from the configured providers.
    Sync {
        /// Only these providers (by name); repeatable.
        #[arg(long = "provider", value_name = "NAME")]
        providers: Vec<String>,
    },
    /// List cached keys.
    Keys(listing::KeysArgs),
    /// List cached events.
    Events(listing::EventsArgs),
    /// Find leaked key material in files and match it to cached keys.
    Scan(scan::ScanArgs),
    /// Print new keys in keyaudit's format (128 random bits and a checksum).
    Keygen {
        /// Prefix of the keys (letters, digits, `_`).
        #[arg(long, default_value = "ka")]
        prefix: String,
        /// How many keys.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Print every path in use and the configured providers.
    Info,
    /// Revoke keys (permanent): by id, or every key a filter selects.
    Revoke(act::KeyOpArgs),
    /// Disable keys (reversible with `enable`).
    Disable(act::KeyOpArgs),
    /// Enable disabled keys again.
    Enable(act::KeyOpArgs),
    /// Rotate a key: issue a new one, deliver its secret to one sink, verify it, retire the old.
    Rotate(act::RotateArgs),
    /// List unfinished workflows (rotations); `--all` includes finished ones.
    Workflows(act::WorkflowsArgs),
    /// Finish or roll back unfinished workflows after a crash, or once a grace period is over.
    Resume(act::ResumeArgs),
    /// Release another responder's claim on a key in the team store (an expired one; a
    /// live one with --force), journaled.
    Takeover(act::TakeoverArgs),
    /// Run every detection rule over the cache and write findings.
    Detect(findings::DetectArgs),
    /// List findings (ranked by severity), or show, acknowledge or suppress one.
    Findings(findings::FindingsArgs),
    /// List the journal of operator actions, or verify its hash chain.
    Journal {
        #[command(subcommand)]
        command: Option<JournalCommand>,
        /// Output format of the listing.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// With [team] configured: the cache's own journal instead of the team's.
        #[arg(long, global = true)]
        local: bool,
    },
    /// Import exported audit logs (CloudTrail, Vault, GitHub, GitLab, JSON lines, CSV).
    Import(import::ImportArgs),
    /// Export keys, events, findings or the journal (jsonl, csv, json; md report).
    Export(import::ExportArgs),
    /// Import log files into a named case (files it holds already add nothing) and open
    /// the TUI on it.
    Open(import::OpenArgs),
    /// Encrypt the cache in place with the configured key (feature `encryption`).
    Encrypt,
    /// Decrypt the cache in place back to plain SQLite (feature `encryption`).
    Decrypt,
    /// List the cases (`open`'s caches), or remove one.
    Cases(case::CasesArgs),
    /// Print the completion script for a shell (bash, zsh, fish, ...).
    Completions(shell::CompletionsArgs),
    /// Print the man page keyaudit(1) in roff, or write every command's page to a directory.
    Man(shell::ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Recompute the hash chain and check it against the signed checkpoints; exit 1
    /// naming what is wrong (an entry altered, removed or reordered, the end cut off, the
    /// chain rewritten).
    Verify(listing::VerifyArgs),
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code_of(&e);
            crate::tell!("keyaudit: error: {e:#}");
            tracing::error!("{e:#}");
            ExitCode::from(code)
        }
    }
}

/// 2 for usage and configuration errors, 1 for everything else.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.chain()
        .any(|c| c.is::<ConfigError>() || c.is::<UsageError>())
    {
        2
    } else {
        1
    }
}

fn init_logging(paths: &Paths) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::EnvFilter;
    crate::fsutil::create_private_dir(&paths.log_dir).ok()?;
    let file = paths.log_file();
    crate::fsutil::touch_private_file(&file).ok()?;
    let appender = tracing_appender::rolling::never(&paths.log_dir, "keyaudit.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("KEYAUDIT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // The AWS SDK's signer prints request bodies at trace level when
        // LOG_SIGNABLE_BODY=true; a body may be a new secret (PutSecretValue).
        .add_directive("aws_sigv4=debug".parse().expect("a valid directive"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

/// keyaudit's own directories (data, cases, demo sessions, log, and the config
/// directory unless `--config` names a file elsewhere): each that exists is tightened to
/// 0700 when it is wider (saying so), and refused when another account owns it. A
/// directory the user named (the one of `--db`) is theirs and left as it is.
fn secure_dirs(paths: &Paths) -> anyhow::Result<()> {
    let mut dirs = vec![
        paths.data_dir.clone(),
        paths.data_dir.join("cases"),
        paths.demo_dir.clone(),
        paths.log_dir.clone(),
    ];
    if !paths.config_explicit {
        dirs.extend(paths.config.parent().map(Path::to_path_buf));
    }
    dirs.dedup();
    for d in dirs {
        if let Some(old) = crate::fsutil::secure_dir(&d)? {
            crate::tell!(
                "keyaudit: note: {} was open to other accounts (mode {old:04o}); tightened to 0700",
                d.display()
            );
            tracing::warn!(dir = %d.display(), "tightened from {old:04o} to 0700");
        }
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Generated from the clap tree alone: no config, cache or log, so a broken config
    // cannot stop them.
    match &cli.command {
        Some(Command::Completions(a)) => return shell::completions(a),
        Some(Command::Man(a)) => return shell::man(a),
        _ => {}
    }
    let paths = Paths::resolve(cli.config.clone(), cli.db.clone());
    secure_dirs(&paths)?;
    let _log = init_logging(&paths);
    let mut config = Config::load(&paths.config, paths.config_explicit)?;
    let db_from_config = cli.db.is_none() && config.db.is_some();
    let paths = if db_from_config {
        Paths {
            db: config.db.take().expect("checked above"),
            ..paths
        }
    } else {
        paths
    };
    crate::store::crypt::configure(config.cache.as_ref().and_then(|c| c.get_ref().key_source()));
    let ctx = Ctx {
        read_only: cli.read_only || config.mode == Mode::ReadOnly,
        write: cli.write || config.mode == Mode::Write,
        paths,
        config,
    };
    tracing::info!(command = ?cli.command.as_ref().map(command_name), "start");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command.unwrap_or(Command::Tui) {
        Command::Tui => {
            let named = ctx.paths.db_explicit || db_from_config;
            let providers = ctx.config.providers().next().is_some();
            if providers {
                runtime.block_on(crate::tui::launch(&ctx))
            } else if named {
                // `--db PATH` means that cache, never the demo; with no provider to
                // sync from, only a cache that exists can be browsed.
                ctx.require_cache()?;
                runtime.block_on(crate::tui::launch(&ctx))
            } else if default_cache_has_data(&ctx)? {
                runtime.block_on(crate::tui::launch(&ctx))
            } else {
                runtime.block_on(demo::demo_fallback(&ctx))
            }
        }
        Command::Demo(a) => runtime.block_on(demo::demo(&ctx, &a)),
        Command::Sync { providers } => runtime.block_on(sync(&ctx, &providers)),
        Command::Keys(a) => {
            ctx.require_cache()?;
            listing::keys(&ctx, &a)
        }
        Command::Events(a) => {
            ctx.require_cache()?;
            listing::events(&ctx, &a, &runtime)
        }
        Command::Keygen { prefix, count } => keygen(&prefix, count),
        Command::Scan(a) => scan::scan(&ctx, &a, &runtime),
        Command::Info => info(&ctx),
        Command::Journal {
            command,
            format,
            local,
        } => {
            // An exported journal is verified without any cache, the team's without the
            // local one.
            let team = ctx.config.team().is_some() && !local;
            if !team && !matches!(&command, Some(JournalCommand::Verify(v)) if v.export.is_some()) {
                ctx.require_cache()?;
            }
            listing::journal(&ctx, command, format, local, &runtime)
        }
        Command::Revoke(a) => act::key_op(&ctx, crate::action::KeyOp::Revoke, &a, &runtime),
        Command::Disable(a) => act::key_op(&ctx, crate::action::KeyOp::Disable, &a, &runtime),
        Command::Enable(a) => act::key_op(&ctx, crate::action::KeyOp::Enable, &a, &runtime),
        Command::Rotate(a) => act::rotate(&ctx, &a, &runtime),
        Command::Workflows(a) => act::workflows(&ctx, &a, &runtime),
        Command::Resume(a) => act::resume(&ctx, &a, &runtime),
        Command::Takeover(a) => act::takeover(&ctx, &a, &runtime),
        Command::Detect(a) => findings::detect(&ctx, &a, &runtime),
        Command::Findings(a) => {
            ctx.require_cache()?;
            findings::findings(&ctx, &a, &runtime)
        }
        Command::Import(a) => import::import(&ctx, &a),
        Command::Export(a) => {
            ctx.require_cache()?;
            import::export(&ctx, &a, &runtime)
        }
        Command::Open(a) => import::open(&ctx, &a, &runtime),
        Command::Encrypt => crypt::encrypt(&ctx),
        Command::Decrypt => crypt::decrypt(&ctx),
        Command::Cases(a) => case::cases(&ctx, &a),
        Command::Completions(_) | Command::Man(_) => {
            unreachable!("answered before the config is read")
        }
    }
}

/// Whether the default cache (no `--db`, no `db` in the config) holds keys or events:
/// then `keyaudit` with no provider opens it rather than the demo.
fn default_cache_has_data(ctx: &Ctx) -> anyhow::Result<bool> {
    if !ctx.paths.db.exists() {
        return Ok(false);
    }
    Ok(!crate::store::Store::open_read_only(&ctx.paths.db)?.is_empty()?)
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Tui => "tui",
        Command::Demo(_) => "demo",
        Command::Sync { .. } => "sync",
        Command::Keys(_) => "keys",
        Command::Events(_) => "events",
        Command::Keygen { .. } => "keygen",
        Command::Scan(_) => "scan",
        Command::Info => "info",
        Command::Journal { .. } => "journal",
        Command::Revoke(_) => "revoke",
        Command::Disable(_) => "disable",
        Command::Enable(_) => "enable",
        Command::Rotate(_) => "rotate",
        Command::Workflows(_) => "workflows",
        Command::Resume(_) => "resume",
        Command::Takeover(_) => "takeover",
        Command::Detect(_) => "detect",
        Command::Findings(_) => "findings",
        Command::Import(_) => "import",
        Command::Export(_) => "export",
        Command::Open(_) => "open",
        Command::Encrypt => "encrypt",
        Command::Decrypt => "decrypt",
        Command::Cases(_) => "cases",
        Command::Completions(_) => "completions",
        Command::Man(_) => "man",
    }
}

/// The configured providers selected by name (all when `names` is empty).
pub fn selected_providers<'a>(
    ctx: &'a Ctx,
    names: &[String],
) -> anyhow::Result<Vec<&'a crate::config::ProviderConfig>> {
    let all: Vec<_> = ctx.config.providers().collect();
    if all.is_empty() {
        return Err(UsageError(format!(
            "no provider is configured in {}; add a [[provider]] entry (see README) or run `keyaudit demo`",
            ctx.paths.config.display()
        ))
        .into());
    }
    for n in names {
        if !all.iter().any(|p| &p.name == n) {
            let known: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
            return Err(UsageError(format!(
                "--provider {n}: no such provider; configured: {}",
                known.join(", ")
            ))
            .into());
        }
    }
    Ok(all
        .into_iter()
        .filter(|p| names.is_empty() || names.contains(&p.name))
        .collect())
}

async fn sync(ctx: &Ctx, names: &[String]) -> anyhow::Result<ExitCode> {
    let selected = selected_providers(ctx, names)?;
    let detect = findings::detect_config(ctx)?;
    let sigma = findings::sigma_rules(ctx, &[])?;
    let mut providers = Vec::new();
    for p in selected {
        providers.push(crate::provider::from_config(p).map_err(|e| UsageError(e.to_string()))?);
    }
    let tty = std::io::stderr().is_terminal();
    let mut failed = Vec::new();
    for p in providers {
        let name = p.name().to_string();
        let progress = move |pr: &crate::sync::SyncProgress| {
            if tty {
                eprint!(
                    "\r\x1b[2K{}",
                    crate::output::sanitize(&format!(
                        "{}: {:?} — {} keys, {} new events, {} pages",
                        pr.provider, pr.phase, pr.keys, pr.new_events, pr.pages
                    ))
                );
            }
        };
        let cache = ctx.cache()?;
        let fresh = ctx.config.team().map(|t| t.fresh());
        match crate::sync::team::sync_source(&cache, p, &detect, sigma.clone(), &progress, fresh)
            .await
        {
            Ok(crate::sync::team::Outcome::Read(r)) => {
                if tty {
                    eprint!("\r\x1b[2K");
                }
                crate::tell!("{}: {}", r.provider, r.describe());
                watch_guided(&cache, &r.provider).await;
            }
            Ok(crate::sync::team::Outcome::Synced(r)) => {
                if tty {
                    eprint!("\r\x1b[2K");
                }
                crate::tell!(
                    "{}: {} keys ({} no longer listed{}), {} new events ({} already cached) in {:.1}s{}{}",
                    r.provider,
                    r.keys,
                    r.unlisted,
                    if r.held > 0 {
                        format!("; {} kept as cached, their source not listed", r.held)
                    } else {
                        String::new()
                    },
                    r.new_events,
                    r.duplicates,
                    r.elapsed.as_secs_f64(),
                    r.detection
                        .as_ref()
                        .map(|d| format!("; detection: {} new findings, {} resolved", d.opened, d.resolved))
                        .unwrap_or_default(),
                    r.sigma
                        .as_ref()
                        .map(|s| format!("; sigma: {} matches, {} new findings", s.matches, s.opened))
                        .unwrap_or_default()
                );
                for note in &r.notes {
                    crate::tell!("{}: note: {}", r.provider, crate::output::sanitize(note));
                }
                if let Some(why) = &r.events_skipped {
                    crate::tell!("{}: events skipped: {why}", r.provider);
                }
                watch_guided(&cache, &r.provider).await;
            }
            Err(e) => {
                if tty {
                    eprint!("\r\x1b[2K");
                }
                crate::tell!("{name}: sync failed: {e}; what was fetched is kept and the next sync resumes from there");
                failed.push(name);
            }
        }
    }
    // The findings detection just opened that the team already decided take the team's
    // decision.
    let cache = ctx.cache()?;
    crate::action::decide::pull_or_warn(&cache).await;
    // Guided rotations advanced with the sync: the team sees where they are.
    crate::action::handover::publish_pending_or_warn(&cache).await;
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow::anyhow!("sync failed for: {}", failed.join(", ")))
    }
}

/// Advances the guided rotations of `provider` after its sync, or read of the team's
/// copy, and says which moved.
async fn watch_guided(cache: &crate::store::Cache, provider: &str) {
    match crate::action::guided::watch(cache, provider).await {
        Ok(lines) => {
            for line in lines {
                crate::tell!("{line}");
            }
        }
        Err(e) => crate::tell!("{provider}: guided rotations not checked: {e}"),
    }
}

fn keygen(prefix: &str, count: u32) -> anyhow::Result<ExitCode> {
    crate::secret::check_prefix(prefix).map_err(|e| UsageError(e.to_string()))?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for _ in 0..count {
        let k = crate::secret::generate(prefix).map_err(|e| UsageError(e.to_string()))?;
        writeln!(out, "{}", k.expose())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn info(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let p = &ctx.paths;
    let exists = |path: &std::path::Path| {
        if path.exists() {
            ""
        } else {
            " (not created yet)"
        }
    };
    crate::say!("keyaudit {}", env!("CARGO_PKG_VERSION"));
    crate::say!("config:    {}{}", p.config.display(), exists(&p.config));
    crate::say!("cache:     {}{}", p.db.display(), exists(&p.db));
    crate::say!("encryption: {}", crate::store::crypt::describe());
    match ctx.config.team() {
        Some(t) => crate::say!(
            "team store: {} (claims, the journal, decisions, rotations and each source's copy are shared; lease {}s; docs/team.md)",
            crate::output::sanitize(&t.url),
            t.lease().as_secs()
        ),
        None => crate::say!("team store: none (claims and the journal are this cache's)"),
    }
    crate::say!(
        "demo caches: {} (one per running demo session)",
        p.demo_dir.display()
    );
    crate::say!("log:       {}", p.log_file().display());
    crate::say!(
        "journal signing key: {}{}",
        p.journal_key().display(),
        exists(&p.journal_key())
    );
    crate::say!(
        "mode:      {}{}",
        ctx.config.mode,
        if ctx.read_only {
            " (read-only now)"
        } else {
            ""
        }
    );
    let providers: Vec<_> = ctx.config.providers().collect();
    if providers.is_empty() {
        crate::say!("providers: none configured (keyaudit opens the embedded demo)");
    } else {
        crate::say!("providers:");
        for pr in providers {
            crate::say!(
                "  {:<20} kind={:<6} {}",
                pr.name,
                pr.kind,
                pr.url.as_deref().or(pr.region.as_deref()).unwrap_or("")
            );
            // Built without network: only the credential is resolved.
            match crate::provider::from_config(pr) {
                Ok(p) => {
                    crate::say!("  {:<20} can: {}", "", p.capabilities().describe());
                    for op in ["rotate", "revoke"] {
                        if let Some(why) = p.refusal(op) {
                            crate::say!(
                                "  {:<20} cannot {op}: {}",
                                "",
                                crate::output::sanitize(&why)
                            );
                        }
                    }
                }
                Err(e) => crate::say!(
                    "  {:<20} can: unknown ({})",
                    "",
                    crate::output::sanitize(&e.to_string())
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
