//! Acting on keys: `revoke`, `disable`, `enable` (one key or a hundred), `rotate`,
//! `workflows`, `resume` and `takeover`. Every mutating path checks read-only mode before any
//! network call, and goes through `crate::action`, which journals each step.

mod guided;
mod team;
mod workflows;
use crate::action::bulk::{run_bulk, target_status, BulkOptions, BulkProgress};
use crate::action::rotate::{self, RotateRequest};
use crate::action::sink::Sink;
use crate::action::workflow::{self, State, UseSummary, Workflow};
use crate::action::{claim, target, KeyOp};
use crate::app::{Ctx, UsageError};
use crate::config::ProviderConfig;
use crate::filter::Filter;
use crate::model::{rfc3339, Key, KeyStatus};
use crate::output::{sanitize, Format, Listing};
use crate::provider::Provider;
use crate::store::journal::NewEntry;
use crate::store::Store;
use crate::when::short_age;
use chrono::Utc;
use clap::Args;
use guided::{guided_resume, guided_rotate};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
pub use team::{takeover, TakeoverArgs};
use tokio::runtime::Runtime;
pub use workflows::{resume, workflows, ResumeArgs, WorkflowsArgs};

/// Arguments of `revoke`, `disable` and `enable`.
#[derive(Debug, Args)]
pub struct KeyOpArgs {
    /// Keys: `provider/id` or a bare id (must be unique across providers).
    #[arg(value_name = "KEY_ID", required_unless_present = "query")]
    pub keys: Vec<String>,
    /// Select the keys with the filter grammar instead (`owner:acme env:prod`,
    /// `ip:203.0.113.0/24` = every key seen from that network, ...).
    #[arg(long = "match", value_name = "QUERY", conflicts_with = "keys")]
    pub query: Option<String>,
    /// Why (recorded in the journal).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// List exactly what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Keys in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// Arguments of `rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The key to rotate: `provider/id` or a bare id.
    #[arg(value_name = "KEY_ID")]
    pub key: String,
    /// Where the new secret goes, once (the sinks this build has).
    #[arg(long, value_name = "SINK", help = format!("Where the new secret goes, once: {} (required, except for a guided rotation, where the operator creates the key)", crate::action::sink::SINK_FORMS))]
    pub deliver: Option<String>,
    /// How long the old key keeps working (providers with overlap): 2s, 30m, 24h, 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub grace: String,
    /// Why (recorded in the journal).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the secret to a stdout that is not a terminal; overwrite a file sink.
    #[arg(long)]
    pub force: bool,
    /// Accept a rotation without overlap: where the provider revokes the old key in the
    /// same call (GitLab), the old key stops working at once.
    #[arg(long)]
    pub no_overlap: bool,
    /// Guided rotation (a provider whose API cannot create keys, e.g. OpenAI): how long
    /// the old key must go unused before its revoke is offered: 30m, 24h, 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub quiet: String,
}

/// Builds the configured provider `name`.
fn provider(ctx: &Ctx, name: &str) -> anyhow::Result<Arc<dyn Provider>> {
    crate::provider::from_config(provider_entry(ctx, name)?)
        .map_err(|e| UsageError(e.to_string()).into())
}

/// The configuration entry of the provider `name`.
fn provider_entry<'c>(ctx: &'c Ctx, name: &str) -> anyhow::Result<&'c ProviderConfig> {
    Ok(ctx.config.providers().find(|p| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = ctx.config.providers().map(|p| p.name.as_str()).collect();
        UsageError(format!(
            "provider `{name}` is not configured in {} (configured: {}); keys of it cannot be acted on",
            ctx.paths.config.display(),
            if known.is_empty() { "none".into() } else { known.join(", ") }
        ))
    })?)
}

/// Resolves one KEY_ID argument: from the cache, or from the provider when the cache
/// does not know it (a key created since the last sync).
async fn resolve(ctx: &Ctx, store: &Store, arg: &str) -> anyhow::Result<Key> {
    let configured = |n: &str| ctx.config.providers().any(|p| p.name == n);
    if let Some((p, id)) = arg.split_once('/') {
        if configured(p) || store.provider_id(p)?.is_some() {
            if let Some(r) = store.key(p, id)? {
                return Ok(r.key);
            }
            let prov = provider(ctx, p)?;
            return prov.get_key(id).await.map_err(|e| {
                UsageError(format!(
                    "{arg}: not in the cache, and the provider says: {e}"
                ))
                .into()
            });
        }
    }
    let rows = store.keys_by_id(arg)?;
    match rows.len() {
        1 => Ok(rows.into_iter().next().expect("one row").key),
        0 => {
            let all: Vec<_> = ctx.config.providers().collect();
            if all.len() == 1 {
                let prov = provider(ctx, &all[0].name)?;
                prov.get_key(arg).await.map_err(|e| {
                    UsageError(format!(
                        "{arg}: not in the cache, and the provider says: {e}"
                    ))
                    .into()
                })
            } else {
                Err(UsageError(format!(
                    "no key `{arg}` in the cache; run `keyaudit sync`, or name it as provider/id"
                ))
                .into())
            }
        }
        _ => {
            let names: Vec<String> = rows.iter().map(|r| target(&r.key)).collect();
            Err(UsageError(format!(
                "key id `{arg}` is ambiguous: {}; name one as provider/id",
                names.join(", ")
            ))
            .into())
        }
    }
}

/// The keys a `revoke`/`disable`/`enable` command names, in order, without duplicates.
async fn select(ctx: &Ctx, a: &KeyOpArgs) -> anyhow::Result<Vec<Key>> {
    let store = Store::open_read_only(&ctx.paths.db)?;
    let mut keys = Vec::new();
    if let Some(q) = &a.query {
        let f = Filter::parse(q).map_err(|e| UsageError(format!("--match: {e}")))?;
        if f.is_empty() {
            return Err(UsageError(
                "--match needs a query; an empty one would select every key".into(),
            )
            .into());
        }
        let nets = f.networks();
        let seen = if nets.is_empty() {
            None
        } else {
            Some(store.keys_seen_from(&nets)?)
        };
        keys = f
            .apply_keys_with(store.keys()?, Utc::now(), seen.as_ref())
            .into_iter()
            .map(|r| r.key)
            .collect();
    } else {
        for arg in &a.keys {
            keys.push(resolve(ctx, &store, arg).await?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(target(k)));
    Ok(keys)
}

fn plan_line(k: &Key, op: KeyOp, providers: &HashMap<String, Arc<dyn Provider>>) -> String {
    match providers.get(&k.provider) {
        None => format!("skip: provider `{}` is not configured", k.provider),
        Some(p) if !op.supported_by(&p.capabilities()) => {
            format!("skip: {} cannot {} keys", p.name(), op.as_str())
        }
        Some(_) if k.status == target_status(op) => {
            format!("no-op: already {} (the provider is asked again)", k.status)
        }
        Some(_) if op == KeyOp::Enable && k.status == KeyStatus::Revoked => {
            "will fail: a revoked key cannot be enabled".into()
        }
        Some(_) => op.as_str().to_string(),
    }
}

fn print_plan(
    out: &mut dyn Write,
    keys: &[Key],
    op: KeyOp,
    providers: &HashMap<String, Arc<dyn Provider>>,
) -> std::io::Result<()> {
    let now = Utc::now();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                target(k),
                k.owner.clone(),
                k.environment.clone().unwrap_or_default(),
                k.status.to_string(),
                k.last_used
                    .map(|t| format!("{} ago", short_age(now - t)))
                    .unwrap_or_else(|| "never".into()),
                plan_line(k, op, providers),
            ]
        })
        .collect();
    let headers = ["KEY", "OWNER", "ENV", "STATUS", "LAST USED", "ACTION"];
    crate::output::write_table(out, &headers, &rows, None)
}

/// Asks on the terminal for what the one confirmation rule wants typed
/// (`action::confirm::must_type`: the count for several keys, the name of one production
/// key); for one other key, `yes`.
fn confirm(keys: &[Key], op: KeyOp) -> anyhow::Result<bool> {
    let must = crate::action::confirm::must_type(keys);
    let prompt = match &must {
        Some(m) => m.prompt(str::to_string),
        None => "Type yes to confirm".to_string(),
    };
    // A prompt stays on its line: `tell!` would end it.
    eprint!(
        "{}",
        crate::output::sanitize(&format!(
            "{} {} key(s). {prompt}, anything else cancels: ",
            op.as_str(),
            keys.len()
        ))
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(match &must {
        Some(m) => m.matches(&answer),
        None => answer.trim().eq_ignore_ascii_case("yes"),
    })
}

/// `revoke`, `disable`, `enable`.
pub fn key_op(ctx: &Ctx, op: KeyOp, a: &KeyOpArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    if !a.dry_run {
        ctx.check_writable(op.as_str())?;
    }
    if a.reason.trim().is_empty() {
        return Err(UsageError("--reason must say why (it goes into the journal)".into()).into());
    }
    rt.block_on(key_op_async(ctx, op, a))
}

async fn key_op_async(ctx: &Ctx, op: KeyOp, a: &KeyOpArgs) -> anyhow::Result<ExitCode> {
    let keys = select(ctx, a).await?;
    if keys.is_empty() {
        anyhow::bail!(
            "no key matches `{}`; nothing was changed (check the query with `keyaudit keys --filter`)",
            a.query.as_deref().unwrap_or("")
        );
    }
    let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
    for k in &keys {
        if !providers.contains_key(&k.provider)
            && ctx.config.providers().any(|p| p.name == k.provider)
        {
            providers.insert(k.provider.clone(), provider(ctx, &k.provider)?);
        }
    }
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        print_plan(&mut out, &keys, op, &providers)?;
        writeln!(
            out,
            "dry run: {} key(s) selected for {}; nothing was changed",
            keys.len(),
            op.as_str()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if !a.yes {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(UsageError(format!(
                "refusing to {} {} key(s) without confirmation: standard input is not a terminal. \
                 Check the selection with --dry-run, then pass --yes",
                op.as_str(),
                keys.len()
            ))
            .into());
        }
        print_plan(&mut std::io::stderr().lock(), &keys, op, &providers)?;
        if !confirm(&keys, op)? {
            crate::tell!("cancelled; nothing was changed");
            return Ok(ExitCode::from(1));
        }
    }

    let db = ctx.cache()?;
    let bulk = keys.len() > 1;
    let selection = a
        .query
        .as_ref()
        .map(|q| format!("match:{q}"))
        .unwrap_or_else(|| "keys".into());
    if bulk {
        let (sel, reason) = (selection.clone(), a.reason.clone());
        let targets: Vec<String> = keys.iter().map(target).collect();
        claim::journal(
            &db,
            &NewEntry {
                action: &format!("{}-bulk", op.as_str()),
                target: &sel,
                reason: Some(&reason),
                params: serde_json::json!({"count": targets.len(), "keys": targets}),
                result: "started",
            },
        )
        .await?;
    }
    let tty = std::io::stderr().is_terminal();
    let opts = BulkOptions {
        concurrency: a.concurrency as usize,
    };
    let verb = op.as_str();
    let report = run_bulk(
        &db,
        &providers,
        keys,
        op,
        Some(&a.reason),
        opts,
        |p: &BulkProgress| {
            if tty {
                eprint!(
                    "\r\x1b[2K{verb}: {}/{} done, {} failed",
                    p.done, p.total, p.failed
                );
            }
        },
    )
    .await;
    if tty {
        eprint!("\r\x1b[2K");
    }
    let mut out = std::io::stdout().lock();
    for r in &report.results {
        match &r.outcome {
            Ok(status) if r.already => {
                writeln!(out, "ok      {}  (already {status})", sanitize(&r.target))?
            }
            Ok(status) => writeln!(out, "ok      {}  (now {status})", sanitize(&r.target))?,
            Err(e) if r.held => writeln!(out, "HELD    {}  {}", sanitize(&r.target), sanitize(e))?,
            Err(e) => writeln!(out, "FAILED  {}  {}", sanitize(&r.target), sanitize(e))?,
        }
    }
    let failed: Vec<String> = report.failed().map(|r| r.target.clone()).collect();
    let held: Vec<String> = report.held().map(|r| r.target.clone()).collect();
    let already = report
        .results
        .iter()
        .filter(|r| r.already && r.outcome.is_ok())
        .count();
    let summary = format!(
        "{verb}: {} of {} key(s) ok ({already} already so), {} failed{}, in {:.1}s",
        report.succeeded(),
        report.results.len(),
        failed.len(),
        if held.is_empty() {
            String::new()
        } else {
            format!(" ({} held by other responders, skipped)", held.len())
        },
        report.elapsed.as_secs_f64()
    );
    writeln!(out, "{summary}")?;
    drop(out);
    if bulk {
        claim::journal(
            &db,
            &NewEntry {
                action: &format!("{}-bulk", op.as_str()),
                target: &selection,
                reason: Some(&a.reason),
                params: serde_json::json!({"failed": failed, "held_by_others": held}),
                result: &summary,
            },
        )
        .await?;
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else if failed.len() == held.len() && !bulk {
        // One key, held by another responder: the refusal names the holder.
        let why = report
            .held()
            .next()
            .and_then(|r| r.outcome.as_ref().err())
            .cloned()
            .unwrap_or_default();
        anyhow::bail!("{}", sanitize(&why))
    } else if !held.is_empty() {
        anyhow::bail!(
            "{} key(s) failed: {}; {} of them held by other responders and skipped ({}). \
             The others are done. Run the same command again once they are released",
            failed.len(),
            failed.join(", "),
            held.len(),
            held.join(", ")
        )
    } else {
        anyhow::bail!(
            "{} key(s) failed: {}; the others are done. Run the same command again to retry (it is idempotent)",
            failed.len(),
            failed.join(", ")
        )
    }
}

/// `rotate`.
pub fn rotate(ctx: &Ctx, a: &RotateArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    let grace =
        crate::when::parse_duration(&a.grace).map_err(|e| UsageError(format!("--grace: {e}")))?;
    if !a.dry_run {
        ctx.check_writable("rotate")?;
    }
    rt.block_on(async {
        let store = Store::open_read_only(&ctx.paths.db)?;
        let key = resolve(ctx, &store, &a.key).await?;
        drop(store);
        let prov = provider(ctx, &key.provider)?;
        let caps = prov.capabilities();
        if !(caps.rotate_overlap || caps.rotate_atomic) {
            if let Some(guide) = prov.rotation_guide(&key) {
                return guided_rotate(ctx, a, prov, key, guide).await;
            }
        }
        let Some(deliver) = a.deliver.as_deref() else {
            return Err(UsageError(
                "rotate needs --deliver SINK: where the new secret goes, once".into(),
            )
            .into());
        };
        let mut sink = Sink::parse(deliver).map_err(|e| UsageError(e.to_string()))?;
        sink.use_provider(provider_entry(ctx, &key.provider)?);
        if caps.rotation_without_overlap() && !a.no_overlap && !a.dry_run {
            return Err(UsageError(format!(
                "{} rotates without overlap: the old key {} stops working the moment the new one is issued, \
                 so everything still using it fails until it has the new secret. Run again with --no-overlap to accept that \
                 (or --dry-run to see the plan)",
                prov.name(),
                target(&key)
            ))
            .into());
        }
        if a.dry_run {
            let how = if caps.rotate_overlap {
                format!(
                    "with overlap: the provider issues a new key, the secret goes to {}, the new key is verified, \
                     the old key keeps working for {} and is revoked by `keyaudit resume` after that",
                    sink.spec(),
                    a.grace
                )
            } else if caps.rotate_atomic {
                format!(
                    "atomically, with no overlap: the old key stops at once; the secret goes to {}{}",
                    sink.spec(),
                    if a.no_overlap { "" } else { " (needs --no-overlap)" }
                )
            } else {
                format!(
                    "not possible: {} cannot rotate keys{}",
                    prov.name(),
                    prov.refusal("rotate")
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default()
                )
            };
            crate::say!(
                "dry run: would rotate {} ({}, {}, status {}) {how}",
                target(&key),
                crate::output::sanitize(&key.owner),
                key.environment.as_deref().unwrap_or("-"),
                key.status
            );
            if let Err(e) = sink.preflight(a.force).await {
                crate::say!("the sink would refuse: {e}");
            }
            crate::say!("nothing was changed");
            return Ok(ExitCode::SUCCESS);
        }
        let wf = rotate::rotate(
            &ctx.cache()?,
            RotateRequest {
                provider: prov,
                key,
                sink,
                grace,
                force: a.force,
                reason: a.reason.clone(),
            },
        )
        .await?;
        report_workflow(&wf)
    })
}

pub(super) fn report_workflow(wf: &Workflow) -> anyhow::Result<ExitCode> {
    let new = wf.new_key_id.as_deref().unwrap_or("-");
    match wf.state {
        State::Grace => {
            let until = wf.grace_until.map(rfc3339).unwrap_or_default();
            crate::tell!(
                "workflow #{}: {} rotated to {new}; secret delivered to {} and verified; the old key works until {until}. \
                 Run `keyaudit resume` after that to revoke it",
                wf.id,
                wf.target(),
                wf.sink
            );
            Ok(ExitCode::SUCCESS)
        }
        State::Done if new == wf.key_id => {
            // Rolled in place (Cloudflare): the same key with a new secret.
            crate::tell!(
                "workflow #{}: {} rolled: the same key has a new secret, delivered to {} and verified; the old secret stopped working at the roll",
                wf.id,
                wf.target(),
                wf.sink
            );
            Ok(ExitCode::SUCCESS)
        }
        State::Done => {
            crate::tell!(
                "workflow #{}: {} rotated to {new}; secret delivered to {} and verified; old key revoked",
                wf.id,
                wf.target(),
                wf.sink
            );
            Ok(ExitCode::SUCCESS)
        }
        State::RolledBack => anyhow::bail!(
            "workflow #{}: rotation of {} rolled back: {}",
            wf.id,
            wf.target(),
            wf.error.as_deref().unwrap_or("")
        ),
        State::HandedOver => anyhow::bail!(
            "workflow #{}: rotation of {} is driven by another member now: {}",
            wf.id,
            wf.target(),
            wf.error.as_deref().unwrap_or("")
        ),
        State::Failed => anyhow::bail!(
            "workflow #{}: rotation of {} stopped: {}",
            wf.id,
            wf.target(),
            wf.error.as_deref().unwrap_or("")
        ),
        State::Running => anyhow::bail!(
            "workflow #{}: rotation of {} is unfinished at step {}: {}",
            wf.id,
            wf.target(),
            wf.step,
            wf.error
                .as_deref()
                .unwrap_or("interrupted; run `keyaudit resume`")
        ),
    }
}
