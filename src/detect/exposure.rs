//! The exposure window of a leaked key: its use since the moment its material was
//! exposed (committed, written to a file), set against its use before. This is the
//! evidence of an `exposed_key` finding raised by `keyaudit scan`.

use super::baseline::net_of;
use super::Result;
use crate::store::{EventQuery, Store};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// The most event ids an exposure finding keeps as evidence (the newest ones).
pub const MAX_EVIDENCE: usize = 200;

/// A key's use since its exposure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Window {
    /// Events at or after the exposure.
    pub uses: usize,
    /// Distinct networks (/24, /48) those events came from.
    pub networks: usize,
    /// Of those, networks the key was never used from before the exposure.
    pub new_networks: usize,
    /// Ids of the events since the exposure, newest last, at most [`MAX_EVIDENCE`].
    pub evidence: Vec<String>,
}

/// Reads the key's events (by cache handle) once, oldest first, and splits them at
/// `since`.
pub fn window(store: &Store, key_ref: i64, since: DateTime<Utc>) -> Result<Window> {
    let q = EventQuery {
        key_ref: Some(key_ref),
        ..Default::default()
    };
    let (mut before, mut after) = (HashSet::new(), HashSet::new());
    let mut w = Window::default();
    store.for_each_event(&q, |row| {
        let e = row.event;
        let net = e.source_ip.as_deref().and_then(net_of);
        if e.time < since {
            before.extend(net);
        } else {
            w.uses += 1;
            after.extend(net);
            if w.evidence.len() == MAX_EVIDENCE {
                w.evidence.remove(0);
            }
            w.evidence.push(e.id);
        }
        true
    })?;
    w.networks = after.len();
    w.new_networks = after.difference(&before).count();
    Ok(w)
}

/// The cached keys that GitHub audit-log events name by `hashed_token` (the base64
/// SHA-256 of the token that made the call, [`crate::scan::hashed_token`]): for each of
/// `hashed` that some event's raw record carries, the key (cache handle) with the most
/// such events. Imported GitHub events file a token's calls under `token:<token_id>`
/// when the log names the token's id, so the hash is looked for in the raw records:
/// one pass over every cached event, made only when a scan found GitHub tokens that no
/// fingerprint or id explained.
pub fn keys_by_hashed_token(store: &Store, hashed: &[String]) -> Result<HashMap<String, i64>> {
    let finders: Vec<memchr::memmem::Finder> = hashed
        .iter()
        .map(|h| memchr::memmem::Finder::new(h.as_bytes()))
        .collect();
    let mut counts: HashMap<(usize, i64), usize> = HashMap::new();
    if finders.is_empty() {
        return Ok(HashMap::new());
    }
    store.for_each_event(&EventQuery::default(), |row| {
        let by_id = hashed.iter().position(|h| *h == row.event.key_id);
        let raw = row.event.raw.as_deref().unwrap_or("").as_bytes();
        for (i, f) in finders.iter().enumerate() {
            if by_id == Some(i) || f.find(raw).is_some() {
                *counts.entry((i, row.key_ref)).or_default() += 1;
            }
        }
        true
    })?;
    let mut best: HashMap<usize, (usize, i64)> = HashMap::new();
    for ((i, key_ref), n) in counts {
        let b = best.entry(i).or_insert((n, key_ref));
        if (n, std::cmp::Reverse(key_ref)) > (b.0, std::cmp::Reverse(b.1)) {
            *b = (n, key_ref);
        }
    }
    Ok(best
        .into_iter()
        .map(|(i, (_, key_ref))| (hashed[i].clone(), key_ref))
        .collect())
}

/// The finding's explanation: "used 214 times from 3 networks since it was committed
/// on 2026-11-02; 2 networks never seen before".
pub fn explain(w: &Window, how: &str, since: DateTime<Utc>) -> String {
    let when = since.format("%Y-%m-%d");
    if w.uses == 0 {
        return format!("not used since it was {how} on {when}");
    }
    let times = if w.uses == 1 {
        "once".to_string()
    } else {
        format!("{} times", w.uses)
    };
    let nets = if w.networks == 1 {
        "1 network".to_string()
    } else {
        format!("{} networks", w.networks)
    };
    let mut s = format!("used {times} from {nets} since it was {how} on {when}");
    if w.new_networks > 0 {
        let n = if w.new_networks == 1 {
            "1 network".to_string()
        } else {
            format!("{} networks", w.new_networks)
        };
        s.push_str(&format!("; {n} never seen before"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Key, Outcome};

    fn event(id: &str, t: DateTime<Utc>, ip: &str) -> Event {
        Event {
            provider: "demo".into(),
            id: id.into(),
            time: t,
            key_id: "k1".into(),
            principal: None,
            action: "GET /v1/employees".into(),
            scope: None,
            source_ip: Some(ip.into()),
            user_agent: None,
            outcome: Outcome::Success,
            status_code: Some(200),
            request_id: None,
            records: None,
            raw: None,
        }
    }

    #[test]
    fn uses_and_new_networks_are_counted_from_the_exposure() {
        let mut store = Store::open_in_memory().unwrap();
        let t0: DateTime<Utc> = "2026-11-02T10:00:00Z".parse().unwrap();
        store.ensure_provider("demo", "demo", None).unwrap();
        store
            .upsert_keys("demo", &[Key::seen_in_logs("demo", "k1")], t0)
            .unwrap();
        let h = chrono::Duration::hours(1);
        let events = vec![
            event("e1", t0 - h, "10.0.0.5"),
            event("e2", t0 + h, "10.0.0.9"),
            event("e3", t0 + h * 2, "203.0.113.7"),
            event("e4", t0 + h * 3, "198.51.100.1"),
        ];
        store.insert_events("demo", &events, None).unwrap();
        let key_ref = store.key("demo", "k1").unwrap().unwrap().key_ref;
        let w = window(&store, key_ref, t0).unwrap();
        assert_eq!((w.uses, w.networks, w.new_networks), (3, 3, 2));
        assert_eq!(w.evidence, ["e2", "e3", "e4"]);
        assert_eq!(
            explain(&w, "committed", t0),
            "used 3 times from 3 networks since it was committed on 2026-11-02; 2 networks never seen before"
        );
    }
}
