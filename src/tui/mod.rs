//! The TUI workstation: one table of every provider's keys, key detail, events,
//! findings, journal and providers, with a fuzzy filter, a command palette and journaled
//! actions behind one confirm dialog.
//!
//! The Elm architecture: terminal events resolve through the [`keymap`] to
//! [`action::Action`]s; [`state::State::update`] applies them without IO and returns
//! [`action::Effect`]s; the [`runner::Runner`] performs those on tokio tasks and answers
//! with more actions; [`view::render`] draws `&State` once per batch of actions.

pub mod action;
pub mod dialog;
pub mod import;
pub mod keymap;
pub mod runner;
pub mod search;
pub mod state;
pub mod strings;
pub mod team;
pub mod theme;
pub mod view;

use crate::app::Ctx;
use crate::config::TuiConfig;
use crate::provider::Provider;
use action::Action;
use chrono::Utc;
use crossterm::event::{Event, EventStream, KeyEventKind, MouseButton, MouseEventKind};
use futures_util::StreamExt;
use state::{Setup, State};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How to open the workstation (used by `keyaudit`, `keyaudit tui` and the embedded demo).
pub struct LaunchOptions {
    /// The cache.
    pub db: PathBuf,
    /// The key that signs the journal's checkpoints (`None`: unsigned, tests).
    pub journal_key: Option<PathBuf>,
    /// The providers to sync and act on.
    pub providers: Vec<Arc<dyn Provider>>,
    /// Show the DEMO badge.
    pub demo: bool,
    /// The case (`keyaudit open`) shown in the title.
    pub case: Option<String>,
    /// Start able to act (badge RW).
    pub write: bool,
    /// Refuse `:write` for the whole session.
    pub read_only: bool,
    /// `[tui]` settings.
    pub tui: TuiConfig,
    /// `[detect]` settings: the detection after a sync and the detail's baseline status.
    pub detect: crate::detect::DetectConfig,
    /// An import to run while the workstation shows the cache (`keyaudit open`).
    pub import: Option<import::ImportPlan>,
    /// The Sigma rules of `[detect] sigma`, run after each sync.
    pub sigma: Option<crate::sync::SyncSigma>,
    /// `[team]`: actions claim their keys in, and journal to, the team store.
    pub team: Option<crate::config::TeamConfig>,
}

/// Opens the workstation on the configured providers and the cache.
pub async fn launch(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    launch_as(ctx, None, None).await
}

/// Opens the workstation on a case (`keyaudit open`), its name in the title, with the
/// case's import (if any) running beside it.
pub async fn launch_case(
    ctx: &Ctx,
    case: &str,
    import: Option<import::ImportPlan>,
) -> anyhow::Result<ExitCode> {
    launch_as(ctx, Some(case.to_string()), import).await
}

async fn launch_as(
    ctx: &Ctx,
    case: Option<String>,
    import: Option<import::ImportPlan>,
) -> anyhow::Result<ExitCode> {
    // No provider is fine here: an offline case file (`keyaudit open`) is browsed as is.
    let configs: Vec<_> = ctx.config.providers().collect();
    let mut providers = Vec::new();
    for c in configs {
        providers.push(
            crate::provider::from_config(c).map_err(|e| crate::app::UsageError(e.to_string()))?,
        );
    }
    run(LaunchOptions {
        db: ctx.paths.db.clone(),
        journal_key: Some(ctx.paths.journal_key()),
        providers,
        demo: false,
        case,
        write: ctx.write,
        read_only: ctx.read_only,
        tui: ctx.config.tui.clone(),
        detect: detect_config(ctx)?,
        import,
        sigma: sigma_rules(ctx)?,
        team: ctx.config.team().cloned(),
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// The Sigma rules of `[detect] sigma` (`None` without any); files that do not parse are
/// logged and left out.
fn sigma_rules(ctx: &Ctx) -> anyhow::Result<Option<crate::sync::SyncSigma>> {
    let cfg = crate::sigma::SigmaConfig::from_table(&ctx.config.detect, &ctx.paths.config)?;
    if cfg.dirs.is_empty() {
        return Ok(None);
    }
    let rules = crate::sigma::RuleSet::load(&cfg.dirs);
    for e in &rules.errors {
        tracing::warn!("sigma: skipped rule file {e}");
    }
    Ok(Some(Arc::new((rules, cfg))))
}

fn detect_config(ctx: &Ctx) -> anyhow::Result<crate::detect::DetectConfig> {
    Ok(crate::detect::DetectConfig::from_table(
        &ctx.config.detect,
        &ctx.paths.config,
    )?)
}

/// Runs the workstation until the operator quits (or SIGTERM); restores the terminal.
pub async fn run(opts: LaunchOptions) -> anyhow::Result<()> {
    let keymap = keymap::Keymap::with_overrides(&opts.tui.keys)
        .map_err(|e| crate::app::UsageError(e.to_string()))?;
    let capabilities = opts
        .providers
        .iter()
        .map(|p| (p.name().to_string(), p.capabilities()))
        .collect();
    let size = crossterm::terminal::size().unwrap_or((80, 24));
    let setup = Setup {
        now: Utc::now(),
        demo: opts.demo,
        write: opts.write,
        read_only: opts.read_only,
        keymap: Arc::new(keymap),
        theme: theme::Theme::named(&opts.tui.theme),
        capabilities,
        size,
    };
    // ratatui::init installs a panic hook that restores the terminal before printing.
    {
        use std::io::IsTerminal;
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "the TUI needs a terminal (standard input and output are not one); \
                 use `keyaudit keys`, `events` or `findings` in scripts"
            );
        }
    }
    let mut terminal = ratatui::init();
    if opts.tui.mouse {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture);
    }
    let result = event_loop(&mut terminal, setup, &opts).await;
    if opts.tui.mouse {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    }
    ratatui::restore();
    result
}

fn action_of(state: &State, ev: Event) -> Option<Action> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => state.action_for_key(&k),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollDown => Some(Action::ScrollDown),
            MouseEventKind::ScrollUp => Some(Action::ScrollUp),
            MouseEventKind::Down(MouseButton::Left) => Some(Action::Click(m.column, m.row)),
            _ => None,
        },
        Event::Resize(w, h) => Some(Action::Resize(w, h)),
        _ => None,
    }
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    setup: Setup,
    opts: &LaunchOptions,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cache = match &opts.journal_key {
        Some(key) => crate::store::Cache::anchored(opts.db.clone(), key)?,
        None => crate::store::Cache::new(opts.db.clone()),
    }
    .with_team(opts.team.as_ref());
    let mut runner = runner::Runner::new(cache, opts.providers.clone(), tx)
        .with_detect(opts.detect.clone())
        .with_sigma(opts.sigma.clone())
        .with_team_fresh(opts.team.as_ref().map(|t| t.fresh()));
    let mut state = State::new(setup);
    state.case = opts.case.clone();
    state.team = opts.team.as_ref().map(|t| team::TeamView {
        follow: !t.fresh().is_zero(),
        ..team::TeamView::default()
    });
    let mut team_signals = runner.team_signals();
    if let Some(plan) = &opts.import {
        state.import = Some(import::ImportGauge::new(
            plan.files.len(),
            plan.total_bytes(),
        ));
        runner = runner.with_import(plan.clone());
    }
    runner.run_all(state.start());
    let mut input = EventStream::new();
    let every = opts.tui.sync_interval_secs;
    let mut sync_timer = tokio::time::interval(Duration::from_secs(every.max(1)));
    sync_timer.reset();
    let mut clock = tokio::time::interval(Duration::from_secs(30));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|f| view::render(&state, f))?;
            dirty = false;
        }
        let first = tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(ev)) => action_of(&state, ev),
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            Some(a) = rx.recv() => Some(a),
            _ = sync_timer.tick(), if every > 0 => state.sync.is_none().then_some(Action::StartSync),
            _ = clock.tick() => Some(Action::Clock(Utc::now())),
            Some(sig) = next_signal(&mut team_signals) => Some(Action::Team(sig)),
            _ = sigterm.recv() => break,
        };
        let Some(first) = first else { continue };
        // Drain what is pending, then draw once.
        let mut next = Some(first);
        while let Some(a) = next {
            let effects = state.update(a);
            runner.run_all(effects);
            dirty = true;
            next = rx.try_recv().ok();
        }
        if state.quit {
            break;
        }
    }
    // An import still running stops at its next batch, with what it read committed.
    runner.stop_import();
    Ok(())
}

/// The team store's next signal; never, without one.
async fn next_signal(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<crate::store::team::live::Signal>>,
) -> Option<crate::store::team::live::Signal> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens the workstation on the embedded demo (badge DEMO) with its own cache.
pub async fn run_demo(
    ctx: &Ctx,
    db: PathBuf,
    provider: Arc<dyn Provider>,
) -> anyhow::Result<ExitCode> {
    run(LaunchOptions {
        db,
        journal_key: Some(ctx.paths.journal_key()),
        providers: vec![provider],
        demo: true,
        case: None,
        write: ctx.write,
        read_only: ctx.read_only,
        tui: ctx.config.tui.clone(),
        detect: detect_config(ctx)?,
        import: None,
        sigma: sigma_rules(ctx)?,
        // The demo's keys are its own session's: nobody else can act on them.
        team: None,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
