//! Guided rotation from the workstation, for providers whose API cannot create keys
//! (capability `rotate_guided`; OpenAI): the same workflow as `keyaudit rotate` and
//! `keyaudit resume` (`action::guided`), journaled and resumable.
//!
//! `r` on such a key first asks the runner where the key stands ([`plan`]): the
//! provider's instructions, and the open guided rotation of the key, if any, advanced
//! from the cache. Then:
//! - no open rotation: the confirm dialog shows where to create the new key; confirming
//!   starts the workflow, which each sync advances (the new key appears, the old one goes
//!   quiet);
//! - an open rotation still waiting: the status line says for what, and nothing opens;
//! - an open rotation whose old key is quiet: the confirm dialog offers the revoke of the
//!   old key, with the same confirmation as any revoke.

use crate::action::guided;
use crate::action::workflow::{self, Step, Workflow};
use crate::model::Key;
use crate::provider::Provider;
use crate::store::{Cache, KeyRow};
use crate::tui::action::{Action, Effect};
use crate::tui::dialog::confirm::{Confirm, ConfirmKind};
use crate::tui::state::State;
use crate::tui::strings as s;
use std::sync::Arc;
use std::time::Duration;

/// How long the old key must go unused before its revoke is offered (the CLI's
/// `rotate --quiet` default).
pub const QUIET: Duration = Duration::from_secs(24 * 3600);

/// Where a key's guided rotation stands, for the dialog.
#[derive(Debug, Clone)]
pub struct Planned {
    pub key: Box<KeyRow>,
    /// The provider's instructions for creating the new key.
    pub guide: String,
    /// The key's open guided rotation, advanced from the cache.
    pub open: Option<Box<Workflow>>,
}

impl State {
    /// `r` on a key whose provider guides rotations: ask where it stands first.
    pub(crate) fn request_guided(&mut self, key: KeyRow) -> Vec<Effect> {
        self.say(s::guided_checking(&crate::action::target(&key.key)));
        vec![Effect::PlanGuided(Box::new(key))]
    }
}

/// The runner's answer to [`Effect::PlanGuided`] and [`Effect::RotateGuided`].
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::GuidedPlanned(Ok(p)) => {
            let Planned { key, guide, open } = p;
            match open {
                Some(wf) if wf.step == Step::ReadyToRevoke => {
                    let mut c = Confirm::new(
                        ConfirmKind::RotateGuided {
                            workflow: Some(wf.id),
                        },
                        vec![*key],
                        wf.reason.clone().unwrap_or_default(),
                    );
                    c.detail = Some(guided::status(&wf));
                    st.confirm = Some(c);
                }
                Some(wf) => st.say(guided::status(&wf)),
                None => {
                    let reason = st.suggested_reason(std::slice::from_ref(&*key));
                    let mut c = Confirm::new(
                        ConfirmKind::RotateGuided { workflow: None },
                        vec![*key],
                        reason,
                    );
                    c.detail = Some(guide);
                    st.confirm = Some(c);
                }
            }
            Vec::new()
        }
        Action::GuidedPlanned(Err(why)) => {
            st.fail(why);
            Vec::new()
        }
        Action::GuidedFinished(target, result) => {
            st.rotating = false;
            match result {
                Ok(line) => st.say(line),
                Err(why) => st.fail(s::rotate_failed(&target, &why)),
            }
            let mut fx = vec![Effect::LoadKeys];
            fx.extend(st.view_reload());
            fx
        }
        _ => Vec::new(),
    }
}

/// Where `key`'s guided rotation stands: the provider's guide and the key's open guided
/// rotation, advanced from the cache `db` (its steps journaled).
pub(crate) async fn plan(
    db: &Cache,
    provider: &dyn Provider,
    key: KeyRow,
) -> Result<Planned, String> {
    let Some(guide) = provider.rotation_guide(&key.key) else {
        return Err(s::unsupported(provider.name(), "rotate"));
    };
    let open = open_rotation(db, &key.key)
        .await
        .map_err(|e| format!("cannot read the guided rotations: {e}"))?;
    Ok(Planned {
        key: Box::new(key),
        guide: crate::output::sanitize(&guide),
        open,
    })
}

/// The open guided rotation of `key` in the cache `db`, advanced as far as the cache
/// allows; `None` when there is none (or it has just finished).
async fn open_rotation(
    db: &Cache,
    key: &Key,
) -> Result<Option<Box<Workflow>>, crate::action::ActionError> {
    let key = key.clone();
    let found = guided::advance_found(db, move |store| {
        Ok(workflow::list(store, false)?
            .into_iter()
            .find(|w| w.kind == guided::KIND && w.provider == key.provider && w.key_id == key.id))
    })
    .await?;
    Ok(found.filter(|wf| wf.state.is_open()).map(Box::new))
}

/// Starts the guided rotation of `key`, or, given the `workflow` whose old key is quiet,
/// revokes that key (the operator confirmed it). Returns the workflow's status line.
pub(crate) async fn run(
    cache: &Cache,
    provider: Arc<dyn Provider>,
    key: &Key,
    reason: String,
    workflow: Option<i64>,
) -> Result<String, String> {
    let wf = match workflow {
        Some(id) => guided::resume(cache, provider, id, |_, _| true)
            .await
            .map_err(|e| e.to_string())?,
        None => {
            let reason = (!reason.is_empty()).then_some(reason);
            guided::start(cache, provider, key, QUIET, reason)
                .await
                .map_err(|e| e.to_string())?
                .0
        }
    };
    match &wf.error {
        Some(e) => Err(format!("{}: {e}", guided::status(&wf))),
        None => Ok(guided::status(&wf)),
    }
}
