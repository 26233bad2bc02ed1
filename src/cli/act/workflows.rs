//! `workflows` (this cache's, and with `--team` the team's) and `resume` (this cache's
//! unfinished workflows, or with `--adopt` one another member of the team started).

use super::*;
use crate::action::handover;

/// Arguments of `workflows`.
#[derive(Debug, Args)]
pub struct WorkflowsArgs {
    /// Include finished workflows.
    #[arg(long)]
    pub all: bool,
    /// The team's workflows instead (every member's, with who drives each), to adopt
    /// one with `keyaudit resume --adopt N`.
    #[arg(long)]
    pub team: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Arguments of `resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Only this workflow (default: every unfinished one).
    #[arg(value_name = "ID")]
    pub id: Option<i64>,
    /// As for `rotate`: allow a non-terminal stdout or overwriting a file sink.
    #[arg(long)]
    pub force: bool,
    /// A guided rotation whose old key is quiet: revoke it without asking.
    #[arg(long)]
    pub yes: bool,
    /// Adopt the team's workflow N (`keyaudit workflows --team`) from the member who
    /// drives it, and drive it from here.
    #[arg(long, value_name = "N", conflicts_with = "id")]
    pub adopt: Option<i64>,
    /// With --adopt: where the new secret goes from here, when the owner's sink is a file
    /// or a terminal on their host (the forms of `rotate --deliver`).
    #[arg(long, value_name = "SPEC", requires = "adopt")]
    pub deliver: Option<String>,
}

/// `workflows`: lists unfinished (or all) workflows; also checks rotated keys for use.
/// With a team store: marks the ones another member adopted, and says how many the
/// others drive.
pub fn workflows(ctx: &Ctx, a: &WorkflowsArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    if a.team {
        return team_workflows(ctx, a, rt);
    }
    if ctx.config.team().is_some() && !ctx.read_only {
        let cache = listing_cache(ctx);
        let seen = rt.block_on(async {
            handover::publish_pending(&cache).await?;
            handover::survey(&cache).await
        });
        match seen {
            Ok(seen) => {
                for w in seen.handed_over {
                    crate::tell!(
                        "workflow #{} {}: {}",
                        w.id,
                        w.target(),
                        w.error.as_deref().unwrap_or("")
                    );
                }
                if seen.others_open > 0 {
                    crate::tell!(
                        "{} open workflow(s) of other members: `keyaudit workflows --team` lists them, `keyaudit resume --adopt N` takes one over",
                        seen.others_open
                    );
                }
            }
            Err(e) => crate::tell!("the team's workflows are not shown: {e}"),
        }
    }
    let list = if ctx.read_only {
        workflow::list(&Store::open_read_only(&ctx.paths.db)?, a.all)?
    } else {
        let store = ctx.open_store()?;
        let n = workflow::check_rotated_key_use(&store, None)?;
        if n > 0 {
            crate::tell!("{n} rotated key(s) still in use: see `keyaudit findings`");
        }
        workflow::list(&store, a.all)?
    };
    let headers = columns(
        &["id"],
        &["old key last use", "switched", "updated", "error"],
    );
    /// A workflow with what the cache knows of its keys' use.
    #[derive(serde::Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        workflow: &'a Workflow,
        old_key_use: UseSummary,
        new_key_use: Option<UseSummary>,
    }
    let store = Store::open_read_only(&ctx.paths.db)?;
    let mut out = Listing::new(std::io::stdout().lock(), a.format, &headers)?;
    for w in &list {
        let old_key_use = store.key_use_summary(&w.provider, &w.key_id)?;
        let new_key_use = match &w.new_key_id {
            Some(n) => Some(store.key_use_summary(&w.provider, n)?),
            None => None,
        };
        let row = Row {
            workflow: w,
            old_key_use,
            new_key_use,
        };
        out.row(&row, || {
            let switched = match (&row.new_key_use, w.state) {
                (None, _) => String::new(),
                (Some(u), _) if u.uses_by_others > 0 => format!(
                    "yes: new key used {} time(s), last {}",
                    u.uses_by_others,
                    u.last_by_others.map(rfc3339).unwrap_or_default()
                ),
                (Some(_), State::Grace) => "not yet (new key unused in the cache)".into(),
                (Some(_), _) => "no use of the new key in the cache".into(),
            };
            let mut cells = vec![w.id.to_string()];
            cells.extend(stage_cells(w));
            cells.extend([
                row.old_key_use.last_use.map(rfc3339).unwrap_or_default(),
                switched,
                rfc3339(w.updated),
                w.error.clone().unwrap_or_default(),
            ]);
            cells
        })?;
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// The headers of [`stage_cells`], between a listing's own first and last ones.
fn columns(first: &[&'static str], last: &[&'static str]) -> Vec<&'static str> {
    let stage = [
        "kind",
        "key",
        "new key",
        "state",
        "step",
        "sink",
        "grace until",
    ];
    [first, &stage, last].concat()
}

/// A workflow's kind, key, new key, state, step, sink and grace end, as both listings
/// show them.
fn stage_cells(w: &Workflow) -> [String; 7] {
    [
        w.kind.clone(),
        w.target(),
        w.new_key_id.clone().unwrap_or_default(),
        w.state.to_string(),
        w.step.to_string(),
        w.sink.clone(),
        w.grace_until.map(rfc3339).unwrap_or_default(),
    ]
}

/// The cache and the team store for the listings, without the journal's signing key:
/// they journal nothing, so they read or create no key file.
fn listing_cache(ctx: &Ctx) -> crate::store::Cache {
    crate::store::Cache::new(ctx.paths.db.clone()).with_team(ctx.config.team())
}

/// `workflows --team`: every member's workflows as the team store holds them.
fn team_workflows(ctx: &Ctx, a: &WorkflowsArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    if ctx.config.team().is_none() {
        return Err(UsageError(format!(
            "--team lists the team store's workflows, and {} has no [team] table; see docs/team.md",
            ctx.paths.config.display()
        ))
        .into());
    }
    let list = rt.block_on(listing_cache(ctx).shared().team_workflows(a.all))?;
    let me = Store::open_read_only(&ctx.paths.db)
        .and_then(|s| s.meta("cache_id"))
        .ok()
        .flatten();
    let headers = columns(&["team id", "owner"], &["published", "error"]);
    let mut out = Listing::new(std::io::stdout().lock(), a.format, &headers)?;
    for t in &list {
        let w = &t.workflow;
        out.row(t, || {
            let mut owner = format!("{} (its #{})", t.owner.who(), t.owner.id);
            if me.as_deref() == Some(t.owner.cache.as_str()) {
                owner = format!("this cache (#{})", t.owner.id);
            }
            let mut cells = vec![t.team_id.to_string(), owner];
            cells.extend(stage_cells(w));
            cells.extend([rfc3339(t.published), w.error.clone().unwrap_or_default()]);
            cells
        })?;
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// `resume --adopt N`: adopts the team's workflow N and drives it from here.
fn adopt(ctx: &Ctx, a: &ResumeArgs, team_id: i64, rt: &Runtime) -> anyhow::Result<ExitCode> {
    if ctx.config.team().is_none() {
        return Err(UsageError(format!(
            "--adopt takes over a workflow of the team store, and {} has no [team] table; see docs/team.md",
            ctx.paths.config.display()
        ))
        .into());
    }
    let deliver = match a.deliver.as_deref() {
        Some(spec) => Some(Sink::parse(spec).map_err(|e| UsageError(e.to_string()))?),
        None => None,
    };
    let cache = ctx.cache()?;
    let seen = rt.block_on(handover::team_workflow(&cache, team_id))?;
    let prov = provider(ctx, &seen.workflow.provider)?;
    let adoption = handover::Adoption {
        provider: prov,
        deliver,
        force: a.force,
        entry: provider_entry(ctx, &seen.workflow.provider).ok(),
    };
    let wf = rt.block_on(handover::adopt(&cache, &seen, adoption))?;
    crate::tell!(
        "adopted team workflow #{team_id} from {} as workflow #{} here",
        seen.owner.who(),
        wf.id
    );
    let store = ctx.open_store()?;
    workflow::check_rotated_key_use(&store, Some(&wf.provider))?;
    report_workflow(&wf)
}

/// `resume`: reconciles every unfinished workflow (or one) with the provider.
pub fn resume(ctx: &Ctx, a: &ResumeArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    ctx.check_writable("resume")?;
    if let Some(team_id) = a.adopt {
        return adopt(ctx, a, team_id, rt);
    }
    if ctx.config.team().is_some() {
        rt.block_on(handover::publish_pending_or_warn(&ctx.cache()?));
    }
    let store = ctx.open_store()?;
    let todo: Vec<Workflow> = match a.id {
        Some(id) => vec![workflow::get(&store, id)?.ok_or(rotate::RotateError::NoWorkflow(id))?],
        None => workflow::list(&store, false)?,
    };
    drop(store);
    if todo.is_empty() {
        crate::tell!("no unfinished workflow");
    }
    let mut problems = Vec::new();
    let cache = ctx.cache()?;
    for wf in todo {
        let prov = match provider(ctx, &wf.provider) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("#{}: {e}", wf.id));
                continue;
            }
        };
        if wf.kind == crate::action::guided::KIND {
            match rt.block_on(guided_resume(ctx, a, &cache, prov, wf.id)) {
                Ok(w) => {
                    let line = crate::action::guided::status(&w);
                    crate::say!("{line}");
                    if w.error.is_some() {
                        problems.push(line);
                    }
                }
                Err(e) => problems.push(format!("#{}: {e}", wf.id)),
            }
            continue;
        }
        let entry = provider_entry(ctx, &wf.provider).ok();
        match rt.block_on(rotate::resume(&cache, prov, wf.id, a.force, entry)) {
            Ok(w) => {
                let line = format!(
                    "workflow #{} {}: {} at step {}{}",
                    w.id,
                    w.target(),
                    w.state,
                    w.step,
                    w.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
                crate::say!("{line}");
                if w.state == State::Failed || (w.state == State::Running && w.error.is_some()) {
                    problems.push(line);
                }
            }
            Err(e) => problems.push(format!("#{}: {e}", wf.id)),
        }
    }
    let store = ctx.open_store()?;
    let n = workflow::check_rotated_key_use(&store, None)?;
    if n > 0 {
        crate::tell!("{n} rotated key(s) still in use: see `keyaudit findings`");
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "{} workflow(s) need attention: {}",
            problems.len(),
            problems.join("; ")
        )
    }
}
