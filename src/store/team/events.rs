//! The team's events read where they are kept. With `[team] events = "team"` a member
//! does not copy the team's events into its cache; the events view's pages, its
//! histogram and a key's activity are read from the team store instead.
//!
//! A page walks the `(time, id)` or `(key_id, time, id)` index through a portal, in
//! growing chunks, and filters the rows as they stream with the cache's own filter
//! ([`EventQuery::row_passes`]): a page examines at most its budget of events, as in the
//! cache, so a rare match never becomes a scan of the whole table. Counts without a
//! filter and a key's activity are aggregated by PostgreSQL.
//!
//! Requests name keys by the cache's handles; the team's rows name them by provider and
//! id. The cache is asked for the handles of the keys a page names the first time they
//! appear; a key the cache does not hold (yet) has handle 0 and shows by its id.

use super::TeamStore;
use crate::model::{from_millis, to_millis, Event, Millis};
use crate::store::activity::{ranked, DAY_MS, HOUR_MS};
use crate::store::events::{outcome_code, outcome_from_code};
use crate::store::reads::{CacheEvents, EventReads, KeepGoing};
use crate::store::shared::SharedError;
use crate::store::{ActivityRequest, EventPage, EventQuery, EventRow, KeyActivity};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::types::ToSql;

/// Rows fetched from the portal at first; later fetches grow to [`LARGEST_FETCH`], so
/// the first page comes back quickly and a long walk makes few round trips.
const FIRST_FETCH: i32 = 256;
const LARGEST_FETCH: i32 = 8192;

/// The columns of an event, in the order [`event`] reads them.
const EVENT_COLUMNS: &str = "id, provider, ext_id, time, key_id, principal, action, scope, \
     source_ip, user_agent, outcome, status_code, request_id, records";

/// The team's events, with the cache's key handles.
pub struct TeamEvents {
    team: Arc<TeamStore>,
    cache: CacheEvents,
    handles: tokio::sync::Mutex<Handles>,
}

/// The cache's handles of the keys seen so far, both ways (a key's handle never changes
/// in a cache).
#[derive(Default)]
struct Handles {
    by_ref: HashMap<i64, (String, String)>,
    by_key: HashMap<(String, String), i64>,
}

impl Handles {
    fn learn(&mut self, key_ref: i64, key: (String, String)) {
        self.by_key.insert(key.clone(), key_ref);
        self.by_ref.insert(key_ref, key);
    }
}

/// Parameters of one query, in order.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// How a walk ended (see `Store::walk_matching`, whose contract this shares).
#[derive(Debug, Default)]
struct Walked {
    scanned: usize,
    last: Option<(Millis, i64)>,
    ended: bool,
}

impl TeamEvents {
    /// The events in `team`'s store, with the key handles of `cache`.
    pub fn new(team: Arc<TeamStore>, cache: CacheEvents) -> TeamEvents {
        TeamEvents {
            team,
            cache,
            handles: tokio::sync::Mutex::default(),
        }
    }

    /// The provider and id of the key whose cache handle is `key_ref`.
    async fn key_of(&self, key_ref: i64) -> Result<Option<(String, String)>, SharedError> {
        let mut h = self.handles.lock().await;
        if let Some(k) = h.by_ref.get(&key_ref) {
            return Ok(Some(k.clone()));
        }
        let found = self.cache.with(move |s| s.key_target(key_ref)).await?;
        if let Some(k) = &found {
            h.learn(key_ref, k.clone());
        }
        Ok(found)
    }

    /// The cache handles of the keys of `rows` (0 for a key the cache does not hold); the
    /// cache is asked only for keys not seen before.
    async fn with_handles(&self, rows: Vec<(i64, Event)>) -> Result<Vec<EventRow>, SharedError> {
        let mut h = self.handles.lock().await;
        let mut unknown: Vec<(String, String)> = rows
            .iter()
            .map(|(_, e)| (e.provider.clone(), e.key_id.clone()))
            .filter(|k| !h.by_key.contains_key(k))
            .collect();
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            let found = self
                .cache
                .with(move |s| {
                    let mut found = Vec::new();
                    for (provider, id) in unknown {
                        if let Some(r) = s.key_handle(&provider, &id)? {
                            found.push((r, (provider, id)));
                        }
                    }
                    Ok(found)
                })
                .await?;
            for (r, k) in found {
                h.learn(r, k);
            }
        }
        Ok(rows
            .into_iter()
            .map(|(row_id, event)| EventRow {
                row_id,
                key_ref: h
                    .by_key
                    .get(&(event.provider.clone(), event.key_id.clone()))
                    .copied()
                    .unwrap_or(0),
                event,
            })
            .collect())
    }

    /// The key scope of `q` in SQL terms: the key id to seek to, and the provider the
    /// rows must be of. `None` when `q` names a key the cache does not hold.
    async fn scope(
        &self,
        q: &EventQuery,
    ) -> Result<Option<(Option<String>, Option<String>)>, SharedError> {
        let mut provider = q.provider.clone();
        let mut key = q.key_id.clone();
        if let Some(r) = q.key_ref {
            let Some((p, k)) = self.key_of(r).await? else {
                return Ok(None);
            };
            if provider.as_ref().is_some_and(|want| *want != p)
                || key.as_ref().is_some_and(|want| *want != k)
            {
                return Ok(None);
            }
            provider = Some(p);
            key = Some(k);
        }
        Ok(Some((provider, key)))
    }

    /// Walks the events of `q` in time order and calls `found(id, time)` for each that
    /// passes every filter, until it returns false or `budget` events were examined.
    /// `None` when `keep_going` gave up.
    async fn walk(
        &self,
        q: &EventQuery,
        budget: usize,
        keep_going: &KeepGoing,
        mut found: impl FnMut(i64, Millis) -> bool + Send,
    ) -> Result<Option<Walked>, SharedError> {
        let Some((provider, key)) = self.scope(q).await? else {
            return Ok(Some(Walked::default()));
        };
        let budget = budget.max(1);
        let mut params: Params = Vec::new();
        // Only the columns the filters read cross the connection; the others are
        // constants that pass.
        let words = !q.text.is_empty();
        let column = |name: &'static str, read: bool, otherwise: &'static str| {
            if read {
                name
            } else {
                otherwise
            }
        };
        let mut sql = format!(
            "SELECT id, time, {}, {}, {}, {}, {}, {} FROM events WHERE true",
            column("provider", provider.is_some(), "''"),
            column("key_id", words, "''"),
            column("outcome", q.outcome.is_some(), "0::smallint"),
            column("action", q.action.is_some() || words, "''"),
            column("source_ip", q.source_ip.is_some() || words, "NULL::text"),
            column("user_agent", words, "NULL::text"),
        );
        if let Some(k) = key {
            params.push(Box::new(k));
            sql.push_str(&format!(" AND key_id = ${}", params.len()));
        }
        let outcome = q.outcome.map(|o| outcome_code(o) as i16);
        // A walk without a budget (a histogram, a listing) counts no examined events, so
        // the exact filters go to SQL and PostgreSQL sends only the rows that pass them.
        let unbounded = budget == usize::MAX;
        if unbounded {
            if let Some(o) = outcome {
                params.push(Box::new(o));
                sql.push_str(&format!(" AND outcome = ${}", params.len()));
            }
            if let Some(p) = &provider {
                params.push(Box::new(p.clone()));
                sql.push_str(&format!(" AND provider = ${}", params.len()));
            }
        }
        time_order_sql(q, &mut params, &mut sql);
        if !unbounded {
            params.push(Box::new(i64::try_from(budget).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let fail = |doing: &str, e: &tokio_postgres::Error| self.team.db_fail(doing, e);
        let mut c = self.team.conn().await?;
        let tx = c
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| fail("starting a read of the team's events", &e))?;
        // The walk reads the index in time order and stops early; a plan that reads every
        // matching row and sorts them first is refused, as the cache's walk names its
        // index.
        tx.batch_execute(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;
             SET LOCAL enable_sort = off",
        )
        .await
        .map_err(|e| fail("starting a read of the team's events", &e))?;
        let stmt = tx
            .prepare(&sql)
            .await
            .map_err(|e| fail("reading the team's events", &e))?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        let portal = tx
            .bind(&stmt, &refs)
            .await
            .map_err(|e| fail("reading the team's events", &e))?;
        let mut w = Walked::default();
        let mut fetch = FIRST_FETCH;
        loop {
            let rows = tx
                .query_portal(&portal, fetch)
                .await
                .map_err(|e| fail("reading the team's events", &e))?;
            let exhausted = rows.len() < fetch as usize;
            for r in &rows {
                if w.scanned % 1024 == 0 && !keep_going() {
                    return Ok(None);
                }
                w.scanned += 1;
                let (id, time): (i64, i64) = (r.get(0), r.get(1));
                w.last = Some((time, id));
                let key_id: &str = r.get(3);
                let passes = provider.as_deref().is_none_or(|p| p == r.get::<_, &str>(2))
                    && outcome.is_none_or(|o| o == r.get::<_, i16>(4))
                    && q.row_passes(r.get(5), r.get(6), r.get(7), || Some(key_id));
                let more = !passes || found(id, time);
                if !more || w.scanned >= budget {
                    return Ok(Some(w));
                }
            }
            if exhausted {
                w.ended = true;
                return Ok(Some(w));
            }
            fetch = (fetch * 4).min(LARGEST_FETCH);
        }
    }

    /// The events whose team row ids are `ids`, in that order.
    async fn events_by_id(&self, ids: &[i64]) -> Result<Vec<(i64, Event)>, SharedError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.team.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ANY($1)"),
                &[&ids],
            )
            .await
            .map_err(|e| self.team.db_fail("reading the team's events", &e))?;
        let mut by_id: HashMap<i64, Event> = rows.iter().map(|r| (r.get(0), event(r))).collect();
        Ok(ids
            .iter()
            .filter_map(|id| by_id.remove(id).map(|e| (*id, e)))
            .collect())
    }

    /// Events per hour from the index alone: every key's, or one key's.
    async fn counts_per_hour(
        &self,
        q: &EventQuery,
        until: DateTime<Utc>,
        hours: usize,
    ) -> Result<Vec<u64>, SharedError> {
        let end = to_millis(until);
        let start = end - hours as Millis * HOUR_MS;
        let mut out = vec![0u64; hours];
        let Some((provider, key)) = self.scope(q).await? else {
            return Ok(out);
        };
        let mut params: Params = vec![Box::new(start), Box::new(end)];
        let mut sql = String::from(
            "SELECT (time - $1) / 3600000, count(*) FROM events WHERE time >= $1 AND time < $2",
        );
        for (column, value) in [("key_id", key), ("provider", provider)] {
            if let Some(v) = value {
                params.push(Box::new(v));
                sql.push_str(&format!(" AND {column} = ${}", params.len()));
            }
        }
        sql.push_str(" GROUP BY 1");
        let c = self.team.conn().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        for r in c
            .query(&sql, &refs)
            .await
            .map_err(|e| self.team.db_fail("counting the team's events", &e))?
        {
            let (bucket, n): (i64, i64) = (r.get(0), r.get(1));
            if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| out.get_mut(b)) {
                *slot = n as u64;
            }
        }
        Ok(out)
    }
}

/// Appends the time range, the page anchors and the time order of `q` (see the cache's
/// own, which this mirrors in PostgreSQL's terms: a row comparison the index seeks to).
fn time_order_sql(q: &EventQuery, params: &mut Params, sql: &mut String) {
    if let Some(t) = q.since {
        params.push(Box::new(to_millis(t)));
        sql.push_str(&format!(" AND time >= ${}", params.len()));
    }
    if let Some(t) = q.until {
        params.push(Box::new(to_millis(t)));
        sql.push_str(&format!(" AND time < ${}", params.len()));
    }
    for (anchor, cmp) in [(q.before, "<"), (q.after, ">")] {
        if let Some((t, id)) = anchor {
            params.push(Box::new(t));
            params.push(Box::new(id));
            sql.push_str(&format!(
                " AND (time, id) {cmp} (${}, ${})",
                params.len() - 1,
                params.len()
            ));
        }
    }
    sql.push_str(if q.newest_first {
        " ORDER BY time DESC, id DESC"
    } else {
        " ORDER BY time, id"
    });
}

/// Counts `n` events of `value` (none for an event without one).
fn tally(map: &mut HashMap<String, u64>, value: Option<String>, n: u64) {
    if let Some(v) = value {
        *map.entry(v).or_insert(0) += n;
    }
}

/// An event read with [`EVENT_COLUMNS`].
fn event(r: &tokio_postgres::Row) -> Event {
    Event {
        provider: r.get(1),
        id: r.get(2),
        time: from_millis(r.get(3)),
        key_id: r.get(4),
        principal: r.get(5),
        action: r.get(6),
        scope: r.get(7),
        source_ip: r.get(8),
        user_agent: r.get(9),
        outcome: outcome_from_code(i64::from(r.get::<_, i16>(10))),
        status_code: r.get(11),
        request_id: r.get(12),
        records: r.get(13),
        raw: None,
    }
}

#[async_trait]
impl EventReads for TeamEvents {
    fn describe(&self) -> String {
        crate::store::shared::Shared::describe(&*self.team)
    }

    async fn page(
        &self,
        q: EventQuery,
        budget: usize,
        keep_going: KeepGoing,
    ) -> Result<Option<EventPage>, SharedError> {
        let limit = q.limit.unwrap_or(1000).max(1);
        let mut ids = Vec::new();
        let Some(walk) = self
            .walk(&q, budget, &keep_going, |id, _| {
                ids.push(id);
                ids.len() < limit
            })
            .await?
        else {
            return Ok(None);
        };
        let mut rows = self.with_handles(self.events_by_id(&ids).await?).await?;
        if !q.newest_first {
            rows.reverse();
        }
        Ok(Some(EventPage {
            rows,
            scanned: walk.scanned,
            resume: if walk.ended { None } else { walk.last },
        }))
    }

    async fn per_hour(
        &self,
        q: EventQuery,
        until: DateTime<Utc>,
        hours: usize,
        keep_going: KeepGoing,
    ) -> Result<Option<Vec<u64>>, SharedError> {
        if !q.counts_by_walk() {
            return self.counts_per_hour(&q, until, hours).await.map(Some);
        }
        let (window, start) = q.hour_window(until, hours);
        let mut out = vec![0u64; hours];
        let walked = self
            .walk(&window, usize::MAX, &keep_going, |_, t| {
                if let Some(slot) = usize::try_from((t - start) / HOUR_MS)
                    .ok()
                    .and_then(|b| out.get_mut(b))
                {
                    *slot += 1;
                }
                true
            })
            .await?;
        Ok(walked.map(|_| out))
    }

    async fn key_activity(&self, r: ActivityRequest) -> Result<KeyActivity, SharedError> {
        let mut out = KeyActivity {
            per_day: vec![0; r.days],
            ..Default::default()
        };
        let Some((provider, key)) = self.key_of(r.key_ref).await? else {
            return Ok(out);
        };
        let end = to_millis(r.until);
        let start = end - r.days as Millis * DAY_MS;
        // One pass over the key's events in the window, four groupings: per day (with the
        // denials), per source address, per user agent, per scope.
        let rows = self
            .team
            .conn()
            .await?
            .query(
                "SELECT GROUPING((time - $3) / 86400000, source_ip, user_agent, scope),
                        (time - $3) / 86400000, coalesce(source_ip, user_agent, scope),
                        count(*), count(*) FILTER (WHERE outcome = 1)
                 FROM events
                 WHERE provider = $1 AND key_id = $2 AND time >= $3 AND time < $4
                 GROUP BY GROUPING SETS (((time - $3) / 86400000), (source_ip), (user_agent),
                                         (scope))",
                &[&provider, &key, &start, &end],
            )
            .await
            .map_err(|e| self.team.db_fail("reading a key's activity", &e))?;
        let (mut nets, mut agents, mut scopes) = (HashMap::new(), HashMap::new(), HashMap::new());
        for row in rows {
            // GROUPING's bits, highest first: day, source, agent, scope; the set's own
            // column is the one whose bit is 0.
            let grouping: i32 = row.get(0);
            let n = row.get::<_, i64>(3) as u64;
            let value: Option<String> = row.get(2);
            match grouping {
                0b0111 => {
                    let day: i64 = row.get(1);
                    if let Some(slot) = usize::try_from(day)
                        .ok()
                        .and_then(|d| out.per_day.get_mut(d))
                    {
                        *slot = n;
                    }
                    out.total += n;
                    out.denied += row.get::<_, i64>(4) as u64;
                }
                0b1011 => tally(&mut nets, value, n),
                0b1101 => tally(&mut agents, value, n),
                0b1110 => tally(&mut scopes, value, n),
                _ => {}
            }
        }
        out.networks = ranked(nets, r.top);
        out.agents = ranked(agents, r.top);
        out.scopes_used = ranked(scopes, usize::MAX);
        Ok(out)
    }

    async fn key_state(&self, key_ref: i64) -> Result<Option<Vec<u8>>, SharedError> {
        let Some((provider, key)) = self.key_of(key_ref).await? else {
            return Ok(None);
        };
        let row = self
            .team
            .conn()
            .await?
            .query_opt(
                "SELECT state FROM detect_states WHERE provider = $1 AND key_id = $2",
                &[&provider, &key],
            )
            .await
            .map_err(|e| self.team.db_fail("reading the key's detection state", &e))?;
        Ok(row.map(|r| r.get(0)))
    }
}
