//! What a detection run reads from the cache, in the compact form the rules work on:
//! keys, events grouped by key (user agents and scopes interned), and the saved states.

use super::anomaly::{Ev, Interner, KeyInfo};
use super::baseline::{self, KeyState};
use super::run::Over;
use super::{hygiene, Result};
use crate::model::Millis;
use crate::store::detect_state::{DetectKey, EventFacts, SavedState};
use crate::store::Store;
use std::collections::HashMap;

/// Where a detection run reads the events and the saved states, as typed requests: the
/// cache answers them in SQLite ([`Store`]), the team's copy of one source in
/// PostgreSQL (`detect::team`). Row ids are the source's own: the run hands them back
/// only to ask which events its findings cite.
pub(super) trait Source {
    /// Hands `visit` every event past row `after`, in row order.
    fn events_after(&self, after: i64, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()>;
    /// Hands `visit` every event of one key, in time order.
    fn key_history(&self, key_ref: i64, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()>;
    /// Hands `visit` every saved state.
    fn states(&self, visit: &mut dyn FnMut(SavedState<'_>)) -> Result<()>;
    /// The provider ids of the events with these row ids.
    fn ext_ids(&self, rows: Vec<i64>) -> Result<HashMap<i64, String>>;
}

impl Source for Store {
    fn events_after(&self, after: i64, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()> {
        // Only rows after the checkpoint: a range of the table's own b-tree.
        Ok(self.detect_events(after.saturating_add(1), i64::MAX, visit)?)
    }

    fn key_history(&self, key_ref: i64, visit: &mut dyn FnMut(EventFacts<'_>)) -> Result<()> {
        Ok(Store::key_history(self, key_ref, visit)?)
    }

    fn states(&self, visit: &mut dyn FnMut(SavedState<'_>)) -> Result<()> {
        Ok(self.detect_states(visit)?)
    }

    fn ext_ids(&self, rows: Vec<i64>) -> Result<HashMap<i64, String>> {
        Ok(self.event_ext_ids(rows)?)
    }
}

/// Reads compact events; user agents and scopes are interned.
pub(super) struct Reader {
    pub(super) strings: Interner,
    agents: HashMap<String, u32>,
    services: HashMap<String, u32>,
    nets: HashMap<String, u64>,
}

impl Reader {
    pub(super) fn new() -> Reader {
        Reader {
            strings: Interner::default(),
            agents: HashMap::new(),
            services: HashMap::new(),
            nets: HashMap::new(),
        }
    }

    /// The network of an address that is not a plain dotted quad (remembered: the
    /// general parser is slow).
    fn net(&mut self, ip: &str) -> u64 {
        if let Some(n) = self.nets.get(ip) {
            return *n;
        }
        let n = baseline::net_of(ip).unwrap_or(0);
        if self.nets.len() < 1_000_000 {
            self.nets.insert(ip.to_string(), n);
        }
        n
    }

    pub(super) fn read(&mut self, e: EventFacts<'_>) -> Ev {
        let net = match e.source_ip {
            Some(ip) => match baseline::net_of_dotted(ip) {
                Some(n) => n,
                None => self.net(ip),
            },
            None => 0,
        };
        let agent = match e.user_agent {
            Some(ua) => match self.agents.get(ua) {
                Some(a) => *a,
                None => {
                    let a = self.strings.id(&baseline::agent_family(ua));
                    self.agents.insert(ua.to_string(), a);
                    a
                }
            },
            None => u32::MAX,
        };
        let scope = match e.scope {
            Some(s) => self.strings.id(s),
            None => u32::MAX,
        };
        let service = match self.services.get(e.action) {
            Some(s) => *s,
            None if e.action.is_empty() => u32::MAX,
            None => {
                let s = self.strings.id(baseline::service_of(e.action));
                if self.services.len() < 1_000_000 {
                    self.services.insert(e.action.to_string(), s);
                }
                s
            }
        };
        Ev {
            row: e.row,
            service,
            key_ref: e.key_ref,
            time: e.time,
            net,
            agent,
            scope,
            outcome: e.outcome,
            status: e.status_code.map_or(-1, |s| s as i32),
            records: e.records.unwrap_or(-1),
            reads: baseline::reads_content(e.action),
        }
    }
}

impl From<DetectKey> for KeyInfo {
    fn from(k: DetectKey) -> KeyInfo {
        KeyInfo {
            key_ref: k.key_ref,
            provider: k.provider,
            id: k.id,
            owner: k.owner,
            environment: k.environment,
            purpose: k.purpose,
            scopes: k.scopes,
            status: k.status,
            created: k.created,
            expires: k.expires,
            last_used: k.last_used,
            rotated_to: k.rotated_to,
            replaced_at: None,
            listed: k.listed,
            stopped_at: k.stopped_at,
        }
    }
}

/// The keys a run over `over` covers: every key of the cache, or one source's.
pub(super) fn load_keys(store: &Store, over: Over<'_>) -> Result<HashMap<i64, KeyInfo>> {
    let mut keys: HashMap<i64, KeyInfo> = store
        .detect_keys()?
        .into_iter()
        .filter(|k| match over {
            Over::Cache => true,
            Over::Copy { keys, .. } => keys.contains(&k.key_ref),
        })
        .map(|k| (k.key_ref, KeyInfo::from(k)))
        .collect();
    let by_id: HashMap<(String, String), Option<Millis>> = keys
        .values()
        .map(|k| ((k.provider.clone(), k.id.clone()), k.created))
        .collect();
    for k in keys.values_mut() {
        if let Some(to) = &k.rotated_to {
            k.replaced_at = by_id
                .get(&(k.provider.clone(), to.clone()))
                .copied()
                .flatten();
        }
    }
    Ok(keys)
}

/// What one pass over the saved states gives an incremental run: the saved state of each
/// key with new events (the time of its last analysed event, and the state unless it
/// does not decode), and the usage of every other key for the hygiene rules.
pub(super) type Saved = (
    HashMap<i64, (Millis, Option<KeyState>)>,
    HashMap<i64, hygiene::Usage>,
);

pub(super) fn load_states(src: &dyn Source, touched: &HashMap<i64, Vec<Ev>>) -> Result<Saved> {
    let mut states = HashMap::with_capacity(touched.len());
    let mut usage = HashMap::new();
    src.states(&mut |s| {
        if touched.contains_key(&s.key_ref) {
            let st = s.state.and_then(KeyState::decode);
            states.insert(s.key_ref, (s.last_time, st));
        } else {
            usage.insert(
                s.key_ref,
                hygiene::Usage {
                    last_time: Some(s.last_time),
                    scopes: serde_json::from_str(s.scopes).unwrap_or_default(),
                },
            );
        }
    })?;
    Ok((states, usage))
}

/// Events grouped by key, in rowid order within each key.
pub(super) struct Grouped {
    pub(super) by_key: HashMap<i64, Vec<Ev>>,
    pub(super) reader: Reader,
    pub(super) last_event: i64,
    pub(super) count: u64,
}

impl Grouped {
    pub(super) fn new() -> Grouped {
        Grouped {
            by_key: HashMap::new(),
            reader: Reader::new(),
            last_event: 0,
            count: 0,
        }
    }

    pub(super) fn push(&mut self, e: EventFacts<'_>) {
        let e = self.reader.read(e);
        self.last_event = e.row;
        self.count += 1;
        self.by_key.entry(e.key_ref).or_default().push(e);
    }
}

/// Reads the events with row ids in `lo..=hi`; over a cache file, the store splits the
/// range between two connections on two threads and the halves are joined here.
pub(super) fn read_events(store: &Store, lo: i64, hi: i64) -> Result<Grouped> {
    let mut parts = store
        .detect_events_split(lo, hi, Grouped::new, Grouped::push)?
        .into_iter();
    let mut a = parts.next().unwrap_or_else(Grouped::new);
    for b in parts {
        // Re-intern the second half's strings into the first's table.
        let map: Vec<u32> = b
            .reader
            .strings
            .strings
            .iter()
            .map(|s| a.reader.strings.id(s))
            .collect();
        let remap = |i: u32| map.get(i as usize).copied().unwrap_or(u32::MAX);
        for (k, mut evs) in b.by_key {
            for e in &mut evs {
                if e.agent != u32::MAX {
                    e.agent = remap(e.agent);
                }
                if e.scope != u32::MAX {
                    e.scope = remap(e.scope);
                }
                if e.service != u32::MAX {
                    e.service = remap(e.service);
                }
            }
            a.by_key.entry(k).or_default().extend(evs);
        }
        a.last_event = a.last_event.max(b.last_event);
        a.count += b.count;
    }
    Ok(a)
}
