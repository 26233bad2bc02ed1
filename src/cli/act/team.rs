//! `takeover`: releasing another responder's claim on a key in the team store (an
//! expired one, or with `--force` and confirmation a live one), journaled.

use super::*;
use crate::store::shared::Takeover;

/// Arguments of `takeover`.
#[derive(Debug, Args)]
pub struct TakeoverArgs {
    /// The key whose claim to take over: `provider/id` or a bare id.
    #[arg(value_name = "KEY_ID")]
    pub key: String,
    /// Take over a claim whose lease still runs (its holder may still be acting).
    #[arg(long)]
    pub force: bool,
    /// With --force: do not ask for confirmation (required when standard input is not a
    /// terminal).
    #[arg(long)]
    pub yes: bool,
    /// Why (recorded in the journal).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `takeover`.
pub fn takeover(ctx: &Ctx, a: &TakeoverArgs, rt: &Runtime) -> anyhow::Result<ExitCode> {
    ctx.check_writable("takeover")?;
    if ctx.config.team().is_none() {
        return Err(UsageError(format!(
            "takeover releases a claim in the team store, and {} has no [team] table; \
             alone, keyaudit holds no claims (docs/team.md)",
            ctx.paths.config.display()
        ))
        .into());
    }
    rt.block_on(async {
        let (provider, key_id) = match a.key.split_once('/') {
            Some((p, k)) if !p.is_empty() && !k.is_empty() => (p.to_string(), k.to_string()),
            _ => {
                let store = Store::open_read_only(&ctx.paths.db)?;
                let key = resolve(ctx, &store, &a.key).await?;
                (key.provider, key.id)
            }
        };
        let tgt = format!("{provider}/{key_id}");
        let cache = ctx.cache()?;
        let shared = cache.shared();
        let Some(h) = shared.holder(&provider, &key_id).await.map_err(anyhow::Error::from)? else {
            crate::say!("{}: no responder holds this key; nothing to take over", sanitize(&tgt));
            return Ok(ExitCode::SUCCESS);
        };
        if !h.expired && !a.force {
            anyhow::bail!(
                "{}: {}; its holder is still renewing it. Wait, ask them, or take it over with --force",
                sanitize(&tgt),
                h.describe()
            );
        }
        if !h.expired && !a.yes {
            if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
                return Err(UsageError(format!(
                    "refusing to take over a live claim without confirmation: standard input is \
                     not a terminal ({}). Pass --yes",
                    h.describe()
                ))
                .into());
            }
            eprint!(
                "{}",
                sanitize(&format!(
                    "{}: {}. Taking it over lets anyone act on it while they may still be acting. \
                     Type the key ({tgt}) to confirm, anything else cancels: ",
                    tgt,
                    h.describe()
                ))
            );
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if answer.trim() != tgt {
                crate::tell!("cancelled; nothing was changed");
                return Ok(ExitCode::from(1));
            }
        }
        let taken = shared
            .takeover(&provider, &key_id, a.force, Some(h.claim))
            .await
            .map_err(anyhow::Error::from)?;
        let Takeover::Released(h) = taken else {
            crate::say!("{}: the claim was released meanwhile; nothing to take over", sanitize(&tgt));
            return Ok(ExitCode::SUCCESS);
        };
        let holder = format!("{}@{}", h.user, h.host);
        claim::journal(
            &cache,
            &NewEntry {
                action: "takeover",
                target: &tgt,
                reason: a.reason.as_deref(),
                params: serde_json::json!({
                    "claim": h.claim,
                    "holder": holder,
                    "operation": h.operation,
                    "since": rfc3339(h.since),
                    "lease_until": rfc3339(h.lease_until),
                    "expired": h.expired,
                    "forced": !h.expired,
                }),
                result: &format!("ok: the claim of {holder} ({}) was released", h.operation),
            },
        )
        .await?;
        crate::say!(
            "{}: took over the claim of {} ({} since {}, {}); the key is free. Check it at the \
             provider before acting (`keyaudit workflows` on the holder's machine shows a rotation \
             that was under way)",
            sanitize(&tgt),
            sanitize(&holder),
            sanitize(&h.operation),
            rfc3339(h.since),
            if h.expired { "lease expired" } else { "forced" }
        );
        Ok(ExitCode::SUCCESS)
    })
}
