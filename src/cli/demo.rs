//! `keyaudit demo`: the embedded Talentgrid provider, alone (`--serve-only`) or with the
//! TUI on a separate demo cache.

use crate::app::{Ctx, UsageError};
use crate::config::ProviderConfig;
use crate::demo::{DemoError, DemoHandle, DemoOptions};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The provider name the embedded demo gets in the cache.
pub const DEMO_PROVIDER: &str = "talentgrid-demo";

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed of the generated keys, traffic and anomalies.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Admin bearer token clients must present (default: a fresh random one).
    #[arg(long)]
    pub token: Option<String>,
    /// Serve the provider API only, until killed; print its URL.
    #[arg(long)]
    pub serve_only: bool,
    /// Approximate number of historic events to generate.
    #[arg(long, default_value_t = 60_000)]
    pub events: usize,
    /// Days of history.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Generate clean traffic only (no injected anomalies).
    #[arg(long)]
    pub no_anomalies: bool,
    /// New live events per second while running (0: none).
    #[arg(long, default_value_t = 2.0)]
    pub live_rate: f64,
    /// Fault injection: `KIND=RATE,...`; on reads latency, 429, 500, 503, truncate, drop;
    /// on changes (after applying them) lost-answer, 500-after (docs/provider-api.md).
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<String>,
    /// End of the generated history (RFC 3339); default now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Serve hostile text (terminal escape sequences, bidirectional overrides, control
    /// bytes, spreadsheet formulas) in key names, owners, user agents and error messages,
    /// to see that keyaudit shows it inert.
    #[arg(long)]
    pub hostile: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            port: 0,
            seed: 7,
            token: None,
            serve_only: false,
            events: 60_000,
            days: 30,
            no_anomalies: false,
            live_rate: 2.0,
            faults: None,
            now: None,
            hostile: false,
        }
    }
}

fn options(a: &DemoArgs) -> anyhow::Result<DemoOptions> {
    let now = a
        .now
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| UsageError(format!("--now `{s}`: {e}; expected RFC 3339")))
        })
        .transpose()?;
    let token = match &a.token {
        Some(t) if t.trim().is_empty() => return Err(UsageError("--token is empty".into()).into()),
        Some(t) => t.clone(),
        None => crate::secret::generate("demo_admin")
            .expect("constant prefix is valid")
            .expose()
            .to_string(),
    };
    Ok(DemoOptions {
        port: a.port,
        seed: a.seed,
        token,
        now,
        days: a.days,
        events: a.events,
        anomalies: !a.no_anomalies,
        live_rate: a.live_rate,
        faults: a.faults.clone(),
        hostile: a.hostile,
    })
}

async fn start(a: &DemoArgs) -> anyhow::Result<DemoHandle> {
    let opts = options(a)?;
    crate::demo::start(opts).await.map_err(|e| match e {
        DemoError::Faults(_) | DemoError::Options(_) => UsageError(e.to_string()).into(),
        other => anyhow::Error::from(other),
    })
}

/// Waits for Ctrl-C or SIGTERM.
async fn until_stopped() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `keyaudit demo ...`.
pub async fn demo(ctx: &Ctx, a: &DemoArgs) -> anyhow::Result<ExitCode> {
    let handle = start(a).await?;
    if a.serve_only {
        crate::say!(
            "talentgrid demo provider listening on {} (seed {}, token {})",
            handle.url,
            a.seed,
            if a.token.is_some() {
                "as given"
            } else {
                handle.token.as_str()
            }
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        until_stopped().await;
        handle.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    // `--db PATH`, `--db=PATH` and KEYAUDIT_DB, as clap read them (not the config's `db`).
    let session;
    let db = if ctx.paths.db_explicit {
        ctx.paths.db.clone()
    } else {
        session = SessionCache::create(&ctx.paths.demo_dir)?;
        session.path().to_path_buf()
    };
    let result = open_tui_on_demo(ctx, &handle, db).await;
    handle.shutdown().await;
    result
}

/// The embedded demo as a provider configuration.
pub fn demo_provider_config(handle: &DemoHandle) -> ProviderConfig {
    ProviderConfig {
        name: DEMO_PROVIDER.into(),
        kind: "demo".into(),
        url: Some(handle.url.clone()),
        token: Some(handle.token.clone().into()),
        ..Default::default()
    }
}

/// `keyaudit` with no provider configured: the embedded demo with default options.
pub async fn demo_fallback(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    crate::tell!("keyaudit: no provider configured; opening the embedded Talentgrid demo (see `keyaudit info`)");
    let handle = start(&DemoArgs::default()).await?;
    let result = match SessionCache::create(&ctx.paths.demo_dir) {
        Ok(session) => open_tui_on_demo(ctx, &handle, session.path().to_path_buf()).await,
        Err(e) => Err(e),
    };
    handle.shutdown().await;
    result
}

/// A demo session's own cache, `session-PID.db` in the demo directory, removed when the
/// session ends. The embedded demo generates its keys and history anew at every start,
/// so each session starts on an empty cache of its own; a second session never touches
/// the first one's. Caches left by sessions that no longer run (killed, crashed) are
/// removed at the next start.
pub struct SessionCache {
    path: PathBuf,
}

impl SessionCache {
    /// Creates the session's place in `dir` (0700) and sweeps caches of dead sessions.
    pub fn create(dir: &Path) -> anyhow::Result<SessionCache> {
        crate::fsutil::create_private_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("session-"))
                    .and_then(|n| n.strip_suffix(".db"))
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid != std::process::id() && !process_runs(pid) {
                    remove_cache_files(&entry.path());
                }
            }
        }
        let path = dir.join(format!("session-{}.db", std::process::id()));
        // A file of an earlier process that had this process's id.
        remove_cache_files(&path);
        Ok(SessionCache { path })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SessionCache {
    fn drop(&mut self) {
        remove_cache_files(&self.path);
    }
}

/// Removes a cache with its WAL, shared-memory and checkpoint files.
fn remove_cache_files(db: &Path) {
    for suffix in ["", "-wal", "-shm", ".anchors"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Whether a process with this id runs (a session's cache is kept while it does).
fn process_runs(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    #[cfg(unix)]
    {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(true)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

async fn open_tui_on_demo(ctx: &Ctx, handle: &DemoHandle, db: PathBuf) -> anyhow::Result<ExitCode> {
    let provider = crate::provider::from_config(&demo_provider_config(handle))?;
    crate::tui::run_demo(ctx, db, provider).await
}
