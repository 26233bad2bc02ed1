//! `rotate` and `resume` of a guided rotation (a provider whose API cannot create keys).

use super::*;

/// `resume` of a guided rotation: syncs its provider (the watch reads the cache), then
/// advances it, and offers the revoke of the old key once it is quiet (the same
/// confirmation as `revoke`; `--yes` skips it).
pub(super) async fn guided_resume(
    ctx: &Ctx,
    a: &ResumeArgs,
    cache: &crate::store::Cache,
    prov: Arc<dyn Provider>,
    id: i64,
) -> anyhow::Result<Workflow> {
    let detect = super::super::findings::detect_config(ctx)?;
    if let Err(e) = crate::sync::sync_provider(&ctx.paths.db, prov.clone(), &detect, &|_| {}).await
    {
        crate::tell!(
            "{}: sync failed: {e}; the guided rotation is checked against the cache as it is",
            prov.name()
        );
    }
    let providers: HashMap<String, Arc<dyn Provider>> =
        std::iter::once((prov.name().to_string(), prov.clone())).collect();
    let (yes, interactive) = (
        a.yes,
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
    );
    let ask = |old: &Key, wf: &Workflow| -> bool {
        if yes {
            return true;
        }
        if !interactive {
            crate::tell!(
                "workflow #{}: the old key {} is quiet; not revoked without confirmation (standard input is not a terminal): run `keyaudit resume {} --yes`",
                wf.id,
                wf.target(),
                wf.id
            );
            return false;
        }
        let keys = [old.clone()];
        let _ = print_plan(
            &mut std::io::stderr().lock(),
            &keys,
            KeyOp::Revoke,
            &providers,
        );
        confirm(&keys, KeyOp::Revoke).unwrap_or(false)
    };
    let wf = crate::action::guided::resume(cache, prov, id, ask).await?;
    crate::action::handover::publish_pending_or_warn(cache).await;
    Ok(wf)
}

/// `rotate` of a key whose provider cannot create keys: starts a guided rotation
/// (`action::guided`) and tells the operator where to create the new key.
pub(super) async fn guided_rotate(
    ctx: &Ctx,
    a: &RotateArgs,
    prov: Arc<dyn Provider>,
    key: Key,
    guide: String,
) -> anyhow::Result<ExitCode> {
    let quiet =
        crate::when::parse_duration(&a.quiet).map_err(|e| UsageError(format!("--quiet: {e}")))?;
    let guide = crate::output::sanitize(&guide);
    if a.dry_run {
        crate::say!(
            "dry run: would start a guided rotation of {} ({}): {guide}. keyaudit would then wait, sync by sync, \
             for the new key and for the old key to go unused for {}, and offer its revoke; nothing was changed",
            target(&key),
            crate::output::sanitize(&key.owner),
            a.quiet
        );
        return Ok(ExitCode::SUCCESS);
    }
    let cache = ctx.cache()?;
    let (wf, guide, fresh) =
        crate::action::guided::start(&cache, prov, &key, quiet, a.reason.clone()).await?;
    crate::action::handover::publish_pending_or_warn(&cache).await;
    if !fresh {
        crate::say!("{}\n{guide}.", crate::action::guided::status(&wf));
        return Ok(ExitCode::SUCCESS);
    }
    crate::say!(
        "workflow #{}: guided rotation of {} started.\n{guide}.\n\
         Each `keyaudit sync` then looks for the new key (same owner, same project) and for the old key \
         to go unused for {}; `keyaudit workflows` shows where it stands, and `keyaudit resume {}` offers \
         the revoke of the old key once it is quiet.",
        wf.id,
        wf.target(),
        a.quiet,
        wf.id
    );
    Ok(ExitCode::SUCCESS)
}
