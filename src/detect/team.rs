//! Detection on the team's copy of one source, for the member that syncs it while
//! keeping its events in the team store (`[team] events = "team"`). The run reads what
//! the cache's own run reads, as the same typed requests ([`Source`]), from PostgreSQL:
//! the source's events past the row the published detection states cover, each key's
//! published state, a key's history when its new events are older than its state, and
//! the event ids its findings cite. So that member goes on from the baselines the
//! source's last publisher left, whoever it was, without the source's events in its
//! own cache. Findings and states are written in the cache (and published from there);
//! the cache's checkpoint, which numbers the cache's own rows, is left alone.

use super::baseline::KeyState;
use super::read::{Grouped, Source};
use super::run::{go_on, replay, Over, Phases};
use super::{DetectConfig, DetectReport, Result};
use crate::store::detect_state::{EventFacts, SavedState};
use crate::store::team::detect::FactsOf;
use crate::store::team::TeamStore;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use tokio::runtime::Handle;

/// One source's copy in the team store, read with the cache's key handles.
struct TeamCopy<'a> {
    team: &'a TeamStore,
    rt: &'a Handle,
    provider: &'a str,
    /// The cache's handle of each key id of the source.
    refs: HashMap<String, i64>,
    /// The key id of each handle.
    ids: HashMap<i64, String>,
}

impl TeamCopy<'_> {
    fn facts(&self, which: FactsOf<'_>, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()> {
        let refs = &self.refs;
        let mut unknown = 0usize;
        self.rt.block_on(
            self.team.detect_facts(
                self.provider,
                which,
                &mut |key, mut e| match refs.get(key) {
                    Some(r) => {
                        e.key_ref = *r;
                        visit(e);
                    }
                    None => unknown += 1,
                },
            ),
        )?;
        if unknown > 0 {
            tracing::warn!(
                provider = self.provider,
                unknown,
                "events of keys this cache does not hold were left out of detection"
            );
        }
        Ok(())
    }
}

impl Source for TeamCopy<'_> {
    fn events_after(&self, after: i64, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()> {
        self.facts(FactsOf::After(after), visit)
    }

    fn key_history(&self, key_ref: i64, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()> {
        match self.ids.get(&key_ref) {
            Some(id) => self.facts(FactsOf::Key(id), visit),
            None => Ok(()),
        }
    }

    fn states(&self, visit: &mut dyn FnMut(SavedState<'_>)) -> Result<()> {
        for (key, state) in self
            .rt
            .block_on(self.team.detect_states_of(self.provider))?
        {
            // A state that does not decode (an older format) counts as none: the key's
            // history is replayed when it has new events.
            let (Some(&key_ref), Some(st)) = (self.refs.get(&key), KeyState::decode(&state)) else {
                continue;
            };
            let scopes = serde_json::to_string(&st.scopes).unwrap_or_else(|_| "[]".into());
            visit(SavedState {
                key_ref,
                last_time: st.last_time,
                scopes: &scopes,
                state: Some(&state),
            });
        }
        Ok(())
    }

    fn ext_ids(&self, rows: Vec<i64>) -> Result<HashMap<i64, String>> {
        Ok(self.rt.block_on(self.team.event_ext_ids(&rows))?)
    }
}

/// Runs detection over `provider`'s copy in `team`: going on from the published states
/// over the events past the row they cover, when `published` (that row and the
/// fingerprint of the settings that made them) says they were made with `cfg`;
/// otherwise over every event of the copy. Blocks on `rt`: call it on a blocking
/// thread.
pub fn detect_copy(
    store: &mut Store,
    team: &TeamStore,
    rt: &Handle,
    provider: &str,
    published: Option<(i64, String)>,
    cfg: &DetectConfig,
    now: DateTime<Utc>,
) -> Result<DetectReport> {
    let (refs, ids): (HashMap<String, i64>, HashMap<i64, String>) = store
        .detect_keys()?
        .into_iter()
        .filter(|k| k.provider == provider)
        .map(|k| ((k.id.clone(), k.key_ref), (k.key_ref, k.id)))
        .unzip();
    let keys: HashSet<i64> = ids.keys().copied().collect();
    let copy = TeamCopy {
        team,
        rt,
        provider,
        refs,
        ids,
    };
    let over = Over::Copy {
        src: &copy,
        keys: &keys,
    };
    let (report, _through) = match published {
        Some((through, config)) if config == cfg.fingerprint() => {
            go_on(store, over, through, cfg, now)?
        }
        _ => {
            let timing = (Instant::now(), Phases::new());
            let mut g = Grouped::new();
            copy.events_after(0, &mut |e| g.push(e))?;
            replay(store, over, g, cfg, now, timing)?
        }
    };
    Ok(report)
}
