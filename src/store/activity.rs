//! Aggregates for the key detail and events views. Every query is a range scan of the
//! `(key_ref, time)` or `(time)` index bounded by a time window; none scans the table.

use super::{Result, Store};
use crate::model::{to_millis, Millis};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub(crate) const DAY_MS: Millis = 86_400_000;
pub(crate) const HOUR_MS: Millis = 3_600_000;

/// What one key did in a window: activity per day, where from, with what, which scopes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyActivity {
    /// Events per day, oldest day first; the last entry is the day that ends at `until`.
    pub per_day: Vec<u64>,
    /// Source addresses with their event counts, most frequent first.
    pub networks: Vec<(String, u64)>,
    /// User agents with their event counts, most frequent first.
    pub agents: Vec<(String, u64)>,
    /// Scopes the key's requests needed, with counts, most frequent first.
    pub scopes_used: Vec<(String, u64)>,
    /// Events in the window.
    pub total: u64,
    /// Denied requests in the window.
    pub denied: u64,
}

/// Which key's activity to read, over which days (see [`Store::key_activity`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivityRequest {
    pub key_ref: i64,
    /// The end of the window.
    pub until: DateTime<Utc>,
    /// Days in the window.
    pub days: usize,
    /// How many networks and user agents to list.
    pub top: usize,
}

pub(crate) fn ranked(map: HashMap<String, u64>, top: usize) -> Vec<(String, u64)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

impl Store {
    /// The activity of one key over the `days` days that end at `until`; `top` bounds
    /// the networks and user agents lists.
    pub fn key_activity(
        &self,
        key_ref: i64,
        until: DateTime<Utc>,
        days: usize,
        top: usize,
    ) -> Result<KeyActivity> {
        let end = to_millis(until);
        let start = end - days as Millis * DAY_MS;
        let mut out = KeyActivity {
            per_day: vec![0; days],
            ..Default::default()
        };
        let (mut nets, mut agents, mut scopes) = (HashMap::new(), HashMap::new(), HashMap::new());
        let mut stmt = self.conn.prepare_cached(
            "SELECT time, source_ip, user_agent, scope, outcome FROM events
             WHERE key_ref = ?1 AND time >= ?2 AND time < ?3",
        )?;
        let mut rows = stmt.query(rusqlite::params![key_ref, start, end])?;
        while let Some(r) = rows.next()? {
            let t: Millis = r.get(0)?;
            let day = ((t - start) / DAY_MS) as usize;
            if let Some(slot) = out.per_day.get_mut(day) {
                *slot += 1;
            }
            out.total += 1;
            if r.get::<_, i64>(4)? == 1 {
                out.denied += 1;
            }
            if let Some(ip) = r.get::<_, Option<String>>(1)? {
                *nets.entry(ip).or_insert(0) += 1;
            }
            if let Some(ua) = r.get::<_, Option<String>>(2)? {
                *agents.entry(ua).or_insert(0) += 1;
            }
            if let Some(s) = r.get::<_, Option<String>>(3)? {
                *scopes.entry(s).or_insert(0) += 1;
            }
        }
        out.networks = ranked(nets, top);
        out.agents = ranked(agents, top);
        out.scopes_used = ranked(scopes, usize::MAX);
        Ok(out)
    }

    /// Events per hour over the `hours` hours that end at `until`, oldest first, for one
    /// key or for all keys.
    pub fn events_per_hour(
        &self,
        key_ref: Option<i64>,
        until: DateTime<Utc>,
        hours: usize,
    ) -> Result<Vec<u64>> {
        let end = to_millis(until);
        let start = end - hours as Millis * HOUR_MS;
        let mut out = vec![0u64; hours];
        let mut fill = |bucket: i64, n: i64| {
            if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| out.get_mut(b)) {
                *slot = n as u64;
            }
        };
        match key_ref {
            Some(k) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT (time - ?2) / 3600000, count(*) FROM events
                     WHERE key_ref = ?1 AND time >= ?2 AND time < ?3 GROUP BY 1",
                )?;
                let mut rows = stmt.query(rusqlite::params![k, start, end])?;
                while let Some(r) = rows.next()? {
                    fill(r.get(0)?, r.get(1)?);
                }
            }
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT (time - ?1) / 3600000, count(*) FROM events
                     WHERE time >= ?1 AND time < ?2 GROUP BY 1",
                )?;
                let mut rows = stmt.query(rusqlite::params![start, end])?;
                while let Some(r) = rows.next()? {
                    fill(r.get(0)?, r.get(1)?);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{from_millis, Event, Outcome};

    fn ev(id: usize, t: Millis, ip: &str, scope: &str, outcome: Outcome) -> Event {
        Event {
            provider: "p".into(),
            id: format!("e{id}"),
            time: from_millis(t),
            key_id: "k1".into(),
            principal: None,
            action: "GET /v1/x".into(),
            scope: Some(scope.into()),
            source_ip: Some(ip.into()),
            user_agent: Some("agent/1".into()),
            outcome,
            status_code: None,
            request_id: None,
            records: None,
            raw: None,
        }
    }

    #[test]
    fn activity_counts_days_networks_and_scopes_in_the_window() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let now: Millis = 100 * DAY_MS;
        let batch = vec![
            ev(1, now - 1000, "10.0.0.1", "ssn:read", Outcome::Success),
            ev(2, now - 2000, "10.0.0.1", "ssn:read", Outcome::Denied),
            ev(
                3,
                now - DAY_MS - 5,
                "10.0.0.2",
                "payroll:read",
                Outcome::Success,
            ),
            ev(
                4,
                now - 40 * DAY_MS,
                "10.0.0.3",
                "old:read",
                Outcome::Success,
            ),
        ];
        store.insert_events("p", &batch, None).unwrap();
        let k = store.key("p", "k1").unwrap().unwrap().key_ref;
        let a = store.key_activity(k, from_millis(now), 30, 5).unwrap();
        assert_eq!(a.total, 3);
        assert_eq!(a.denied, 1);
        assert_eq!(a.per_day[29], 2);
        assert_eq!(a.per_day[28], 1);
        assert_eq!(a.networks[0], ("10.0.0.1".to_string(), 2));
        assert!(!a.scopes_used.iter().any(|(s, _)| s == "old:read"));
        let h = store.events_per_hour(None, from_millis(now), 48).unwrap();
        assert_eq!(h.iter().sum::<u64>(), 3);
        assert_eq!(h[47], 2);
        let hk = store
            .events_per_hour(Some(k), from_millis(now), 24)
            .unwrap();
        assert_eq!(hk.iter().sum::<u64>(), 2);
    }

    #[test]
    fn activity_queries_use_the_indexes() {
        let store = Store::open_in_memory().unwrap();
        for sql in [
            "SELECT time FROM events WHERE key_ref = 1 AND time >= 0 AND time < 5",
            "SELECT (time - 0) / 3600000, count(*) FROM events WHERE time >= 0 AND time < 5 GROUP BY 1",
        ] {
            let plan: String = store
                .conn()
                .query_row(&format!("EXPLAIN QUERY PLAN {sql}"), [], |r| r.get(3))
                .unwrap();
            assert!(plan.contains("USING"), "{plan}");
        }
    }
}
