//! Walking the events in time order through an index, filtering the rows as they
//! stream: the pages of the events view and the hourly counts of its histogram.

use super::{
    event_row, outcome_code, time_order_sql, with_raw, EventQuery, EventRow, EVENT_COLUMNS,
};
use crate::model::{from_millis, to_millis, Millis};
use crate::store::raw::RawReader;
use crate::store::{Result, Store};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::OptionalExtension;
use std::collections::HashMap;

/// One page of a filtered walk through the events (see [`Store::event_page`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// The matching events, newest first.
    pub rows: Vec<EventRow>,
    /// Events the walk examined to find them.
    pub scanned: usize,
    /// The `(time, row id)` where the walk stopped: the next page's anchor in the same
    /// direction. `None` when the walk reached the end of the events.
    pub resume: Option<(Millis, i64)>,
}

/// How a [`Store::walk_matching`] ended.
#[derive(Debug, Default)]
struct Walked {
    /// Events examined.
    scanned: usize,
    /// The `(time, row id)` of the last event examined.
    last: Option<(Millis, i64)>,
    /// The walk reached the end of the events (not a limit or its budget).
    ended: bool,
}

impl EventQuery {
    /// True when hourly counts of the matching events need the events walked: a filter
    /// beyond one key's handle.
    pub(crate) fn counts_by_walk(&self) -> bool {
        self.filters_rows()
            || self.outcome.is_some()
            || self.provider.is_some()
            || self.key_id.is_some()
            || self.since.is_some()
    }

    /// The same filters over the `hours` hours that end at `until` (its anchors and limit
    /// dropped), and the window's first millisecond.
    pub(crate) fn hour_window(&self, until: DateTime<Utc>, hours: usize) -> (EventQuery, Millis) {
        let start = to_millis(until) - hours as Millis * crate::store::activity::HOUR_MS;
        let window = EventQuery {
            since: Some(
                self.since
                    .map_or(from_millis(start), |s| s.max(from_millis(start))),
            ),
            until: Some(self.until.map_or(until, |u| u.min(until))),
            before: None,
            after: None,
            limit: None,
            ..self.clone()
        };
        (window, start)
    }
}

impl Store {
    /// The cheap side of a page walk: the columns the filters read, in time order, through
    /// the index named explicitly (the query fails rather than scan the table). Only the
    /// scope and time conditions are in SQL, as seeks; every other filter is applied to
    /// the streamed rows, so a page's budget bounds the rows SQLite reads.
    fn event_walk_sql(q: &EventQuery, params: &mut Vec<Value>) -> String {
        let index = if q.key_ref.is_some() {
            "events_key_time"
        } else {
            "events_time"
        };
        let mut sql = format!(
            "SELECT e.id, e.time, e.key_ref, e.provider_id, e.outcome, e.action, e.source_ip,
                    e.user_agent
             FROM events e INDEXED BY {index} WHERE 1 = 1"
        );
        if let Some(r) = q.key_ref {
            params.push(Value::Integer(r));
            sql.push_str(&format!(" AND e.key_ref = ?{}", params.len()));
        }
        time_order_sql(q, params, &mut sql);
        sql
    }

    /// One page of a filtered walk through the events in time order: from `q.before`
    /// towards older events when `q.newest_first`, else from `q.after` towards newer ones.
    /// The walk keeps the events that pass every filter of `q` until `q.limit` matched
    /// (default 1,000) or it examined `budget` events, and says where it stopped
    /// ([`EventPage::resume`]), so the caller pages through any number of events in
    /// bounded steps. `keep_going` is asked every 1,024 events; when it returns false the
    /// walk gives up and returns `None` (a newer query superseded this one).
    pub fn event_page(
        &self,
        q: &EventQuery,
        budget: usize,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Option<EventPage>> {
        let limit = q.limit.unwrap_or(1000).max(1);
        let mut ids = Vec::new();
        let Some(walk) = self.walk_matching(q, budget, keep_going, |id, _| {
            ids.push(id);
            ids.len() < limit
        })?
        else {
            return Ok(None);
        };
        let mut page = EventPage {
            rows: Vec::with_capacity(ids.len()),
            scanned: walk.scanned,
            resume: if walk.ended { None } else { walk.last },
        };
        let mut full = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             JOIN providers p ON p.id = e.provider_id
             JOIN keys k ON k.id = e.key_ref WHERE e.id = ?1"
        ))?;
        let mut reader = RawReader::default();
        for id in ids {
            if let Some(row) = full.query_row([id], event_row).optional()? {
                page.rows.push(with_raw(&self.conn, &mut reader, row)?);
            }
        }
        if !q.newest_first {
            page.rows.reverse();
        }
        Ok(Some(page))
    }

    /// Events per hour of the `hours` hours that end at `until` (oldest first), counting
    /// only the events that pass every filter of `q` (its anchors and limit are ignored).
    /// Without filters the counts come from the index alone; with filters the window's
    /// events are walked like [`Store::event_page`] does, and `None` is returned when
    /// `keep_going` gives up.
    pub fn matching_per_hour(
        &self,
        q: &EventQuery,
        until: DateTime<Utc>,
        hours: usize,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<u64>>> {
        if !q.counts_by_walk() {
            return self.events_per_hour(q.key_ref, until, hours).map(Some);
        }
        let (window, start) = q.hour_window(until, hours);
        let mut out = vec![0u64; hours];
        let walked = self.walk_matching(&window, usize::MAX, keep_going, |_, t| {
            if let Some(slot) = usize::try_from((t - start) / crate::store::activity::HOUR_MS)
                .ok()
                .and_then(|b| out.get_mut(b))
            {
                *slot += 1;
            }
            true
        })?;
        Ok(walked.map(|_| out))
    }

    /// Walks the events of `q` in time order through the `(time)` or `(key_ref, time)`
    /// index, calls `found(row id, time)` for each that passes every filter until it
    /// returns false or `budget` events were examined. `None` when `keep_going` (asked
    /// every 1,024 events) gave up.
    fn walk_matching(
        &self,
        q: &EventQuery,
        budget: usize,
        keep_going: &dyn Fn() -> bool,
        mut found: impl FnMut(i64, Millis) -> bool,
    ) -> Result<Option<Walked>> {
        let budget = budget.max(1);
        // Provider and key id become cache handles once, then plain comparisons.
        let provider = match &q.provider {
            Some(p) => match self.provider_id(p)? {
                Some(id) => Some(id),
                None => return Ok(Some(Walked::default())),
            },
            None => None,
        };
        let key_refs: Option<Vec<i64>> = match &q.key_id {
            Some(k) => Some(
                self.conn
                    .prepare_cached("SELECT id FROM keys WHERE ext_id = ?1")?
                    .query_map([k], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?,
            ),
            None => None,
        };
        let outcome = q.outcome.map(outcome_code);
        let mut params = Vec::new();
        let sql = Self::event_walk_sql(q, &mut params);
        let mut walk = self.conn.prepare_cached(&sql)?;
        let mut rows = walk.query(rusqlite::params_from_iter(params))?;
        let mut key_ids: HashMap<i64, Option<String>> = HashMap::new();
        let mut find_key = self
            .conn
            .prepare_cached("SELECT ext_id FROM keys WHERE id = ?1")?;
        let mut w = Walked {
            ended: true,
            ..Default::default()
        };
        while let Some(r) = rows.next()? {
            if w.scanned % 1024 == 0 && !keep_going() {
                return Ok(None);
            }
            w.scanned += 1;
            let id: i64 = r.get(0)?;
            let time: Millis = r.get(1)?;
            w.last = Some((time, id));
            let key_ref: i64 = r.get(2)?;
            let in_scope = provider.is_none_or(|p| r.get::<_, i64>(3).ok() == Some(p))
                && key_refs.as_ref().is_none_or(|k| k.contains(&key_ref))
                && outcome.is_none_or(|o| r.get::<_, i64>(4).ok() == Some(o));
            let text = |i: usize| -> rusqlite::Result<Option<&str>> {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t).ok(),
                    _ => None,
                })
            };
            let passes = in_scope
                && q.row_passes(text(5)?.unwrap_or(""), text(6)?, text(7)?, || {
                    key_ids
                        .entry(key_ref)
                        .or_insert_with(|| {
                            find_key
                                .query_row([key_ref], |k| k.get::<_, String>(0))
                                .ok()
                        })
                        .as_deref()
                });
            let more = !passes || found(id, time);
            if !more || w.scanned >= budget {
                w.ended = false;
                break;
            }
        }
        Ok(Some(w))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ev, plan};
    use super::*;
    use crate::filter::Network;
    use crate::model::{Event, Outcome};

    #[test]
    fn page_walks_seek_the_time_index_in_order() {
        let store = Store::open_in_memory().unwrap();
        let filtered = EventQuery {
            source_ip: Some(Network::parse("203.0.113.0/24").unwrap()),
            action: Some("ssn".into()),
            outcome: Some(Outcome::Denied),
            text: vec!["acme".into()],
            limit: Some(200),
            ..Default::default()
        };
        for (q, index, seeks) in [
            (
                EventQuery {
                    newest_first: true,
                    ..filtered.clone()
                },
                "events_time",
                false,
            ),
            (
                EventQuery {
                    newest_first: true,
                    before: Some((5000, 7)),
                    ..filtered.clone()
                },
                "events_time (time<?)",
                true,
            ),
            (
                EventQuery {
                    after: Some((5000, 7)),
                    ..filtered.clone()
                },
                "events_time (time>?)",
                true,
            ),
            (
                EventQuery {
                    key_ref: Some(3),
                    newest_first: true,
                    before: Some((5000, 7)),
                    ..filtered.clone()
                },
                "events_key_time (key_ref=? AND time<?)",
                true,
            ),
        ] {
            for sql_of in [Store::event_walk_sql, Store::event_sql] {
                let mut params = Vec::new();
                let sql = sql_of(&q, &mut params);
                let plan = plan(&store, &sql, params);
                let want = format!("USING INDEX {index}");
                assert!(plan.contains(&want), "want {want} in:\n{plan}");
                if seeks {
                    assert!(plan.contains("SEARCH e USING INDEX"), "{plan}");
                }
                // The index gives the order: no sort of the matching rows.
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            }
        }
    }

    /// 60 events of two keys, one a minute: every third from 203.0.113.x, every fourth
    /// denied, every fifth an SSN read.
    fn walk_fixture() -> (Store, Vec<Event>) {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        let batch: Vec<Event> = (0..60)
            .map(|i| {
                let mut e = ev(
                    &format!("e{i:02}"),
                    if i % 2 == 0 { "k1" } else { "acme-k2" },
                    i * 60_000,
                );
                if i % 3 == 0 {
                    e.source_ip = Some(format!("203.0.113.{i}"));
                }
                if i % 4 == 0 {
                    e.outcome = Outcome::Denied;
                }
                if i % 5 == 0 {
                    e.action = "GET /v1/Employees/SSN".into();
                }
                e
            })
            .collect();
        store.insert_events("p", &batch, None).unwrap();
        (store, batch)
    }

    #[test]
    fn the_hourly_counts_follow_the_filter() {
        let mut store = Store::open_in_memory().unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        // One event every 20 minutes for 10 hours; every third from 203.0.113.x.
        let batch: Vec<Event> = (0..30)
            .map(|i| {
                let mut e = ev(&format!("h{i:02}"), "k1", i * 20 * 60_000);
                if i % 3 == 0 {
                    e.source_ip = Some(format!("203.0.113.{i}"));
                }
                e
            })
            .collect();
        store.insert_events("p", &batch, None).unwrap();
        let until = from_millis(10 * 3_600_000);
        let all = store
            .matching_per_hour(&EventQuery::default(), until, 6, &|| true)
            .unwrap()
            .unwrap();
        assert_eq!(all, vec![3; 6]);
        let q = EventQuery {
            source_ip: Some(Network::parse("203.0.113.0/24").unwrap()),
            // Anchors and limits of the page do not narrow the histogram.
            before: Some((5 * 3_600_000, 0)),
            limit: Some(1),
            newest_first: true,
            ..Default::default()
        };
        let matching = store
            .matching_per_hour(&q, until, 6, &|| true)
            .unwrap()
            .unwrap();
        assert_eq!(
            matching,
            vec![1; 6],
            "one event of each hour is from the network"
        );
        let words = EventQuery {
            text: vec!["no-such-word".into()],
            ..Default::default()
        };
        let none = store
            .matching_per_hour(&words, until, 6, &|| true)
            .unwrap()
            .unwrap();
        assert_eq!(none, vec![0; 6]);
        assert_eq!(
            store.matching_per_hour(&q, until, 6, &|| false).unwrap(),
            None
        );
    }

    fn ids(rows: &[EventRow]) -> Vec<String> {
        rows.iter().map(|r| r.event.id.clone()).collect()
    }

    #[test]
    fn a_filtered_walk_pages_through_every_event_in_bounded_steps() {
        let (store, batch) = walk_fixture();
        let q = EventQuery {
            source_ip: Some(Network::parse("203.0.113.0/24").unwrap()),
            outcome: Some(Outcome::Denied),
            newest_first: true,
            limit: Some(2),
            ..Default::default()
        };
        // Every 12th event matches both: e48, e36, e24, e12, e00.
        let want: Vec<String> = batch
            .iter()
            .rev()
            .filter(|e| {
                e.outcome == Outcome::Denied
                    && e.source_ip.as_deref().unwrap().starts_with("203.0.113.")
            })
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(want, ["e48", "e36", "e24", "e12", "e00"]);
        let mut got = Vec::new();
        let mut anchor = None;
        let mut pages = 0;
        loop {
            let page = store
                .event_page(
                    &EventQuery {
                        before: anchor,
                        ..q.clone()
                    },
                    10,
                    &|| true,
                )
                .unwrap()
                .unwrap();
            pages += 1;
            assert!(page.rows.len() <= 2 && page.scanned <= 10, "{page:?}");
            got.extend(ids(&page.rows));
            match page.resume {
                Some(a) => anchor = Some(a),
                None => break,
            }
        }
        assert_eq!(got, want);
        assert!(pages >= 6, "the budget bounds every page: {pages} pages");

        // Walking newer from an anchor returns the next matches, still newest first.
        let e12 = store
            .events(&EventQuery {
                key_id: Some("k1".into()),
                newest_first: true,
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .find(|r| r.event.id == "e12")
            .unwrap();
        let newer = store
            .event_page(
                &EventQuery {
                    newest_first: false,
                    after: Some((to_millis(e12.event.time), e12.row_id)),
                    ..q.clone()
                },
                1000,
                &|| true,
            )
            .unwrap()
            .unwrap();
        assert_eq!(ids(&newer.rows), ["e36", "e24"]);
        assert!(newer.resume.is_some(), "stopped at the limit, not the end");
    }

    #[test]
    fn words_match_action_key_address_and_agent_ignoring_case() {
        let (store, _) = walk_fixture();
        let walk = |q: EventQuery| {
            let q = EventQuery {
                newest_first: true,
                limit: Some(100),
                ..q
            };
            let page = store.event_page(&q, 1000, &|| true).unwrap().unwrap();
            // The streaming reads agree with the page walk.
            assert_eq!(ids(&store.events(&q).unwrap()), ids(&page.rows));
            assert_eq!(store.count_events(&q).unwrap() as usize, page.rows.len());
            page.rows
        };
        let ssn = walk(EventQuery {
            action: Some("employees/ssn".into()),
            ..Default::default()
        });
        assert_eq!(ssn.len(), 12);
        let acme = walk(EventQuery {
            text: vec!["acme".into(), "ssn".into()],
            ..Default::default()
        });
        assert_eq!(ids(&acme), ["e55", "e45", "e35", "e25", "e15", "e05"]);
        let exact = walk(EventQuery {
            source_ip: Some(Network::parse("203.0.113.9").unwrap()),
            ..Default::default()
        });
        assert_eq!(ids(&exact), ["e09"]);
        let scoped = walk(EventQuery {
            provider: Some("p".into()),
            key_id: Some("k1".into()),
            outcome: Some(Outcome::Denied),
            ..Default::default()
        });
        assert_eq!(scoped.len(), 15);
        let none = walk(EventQuery {
            text: vec!["nowhere".into()],
            ..Default::default()
        });
        assert!(none.is_empty());
        // A limit counts matching rows, not streamed ones.
        let two = store
            .events(&EventQuery {
                action: Some("ssn".into()),
                newest_first: true,
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids(&two), ["e55", "e50"]);
    }

    #[test]
    fn a_superseded_walk_gives_up() {
        let (store, _) = walk_fixture();
        let q = EventQuery {
            newest_first: true,
            ..Default::default()
        };
        assert!(store.event_page(&q, 1000, &|| false).unwrap().is_none());
    }
}
