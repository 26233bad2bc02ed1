//! Anomaly rules: one pass over a key's events in time order, against the key's own
//! baseline ([`KeyState`]), which learns from every event after judging it.
//!
//! Per event: a new network or user-agent family, a dormant key waking up, requests at
//! hours a key with working hours never works, runs off a cron-like key's schedule
//! (see [`super::baseline::rhythm`]), oversized responses (bulk export), alternation
//! between networks, denied authentications after the key stopped working. Per hour
//! (when the hour closes): volume, denied bursts (against the key's own denial rate, and
//! on services it never used), off-hours, schedule and concurrency totals.
//!
//! One incident gives one finding, by the most specific rule: events that a novelty rule
//! explains (a new network, a wake-up, off hours, oversized responses) do not count again
//! towards the generic volume spike.

use super::baseline::{net_text, when, Bucket, Incident, KeyState, Seen, DAY, HOUR, MINUTE};
use super::DetectConfig;
use crate::model::{KeyStatus, Millis};

mod close;
mod hour;

use close::close_stale;
use hour::close_bucket;

pub(crate) use close::pending;

/// Whether `refusals` among a new network's first `events` requests are more than a
/// person's ordinary work sees: at least 3, and at least one request in 20.
fn refused_often(refusals: u64, events: u64) -> bool {
    refusals >= 3 && refusals * 20 >= events
}

/// Active days after which a key's set of networks is settled: a new network alone is
/// then a finding (before, only with unusual requests from it).
pub(crate) const NET_SETTLED_DAYS: u32 = 10;

/// Outcome codes as stored in the cache.
pub(crate) const SUCCESS: u8 = 0;
pub(crate) const DENIED: u8 = 1;

/// A cached event, reduced to what the rules read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ev {
    pub row: i64,
    pub key_ref: i64,
    pub time: Millis,
    /// Network (see `net_of`), 0 when unknown.
    pub net: u64,
    /// Interned user-agent family, `u32::MAX` when absent.
    pub agent: u32,
    /// Interned scope, `u32::MAX` when absent.
    pub scope: u32,
    /// Interned service of the action (see `service_of`), `u32::MAX` when absent.
    pub service: u32,
    pub outcome: u8,
    /// HTTP status, -1 when absent.
    pub status: i32,
    /// Records returned, -1 when absent.
    pub records: i64,
    /// The action reads stored content (see `reads_content`).
    pub reads: bool,
}

impl Ev {
    /// The key authenticated: served, or refused/failed for a reason other than its
    /// credential (403 is a scope refusal of a valid key). A denial without an HTTP
    /// status (CloudTrail's `errorCode`, a Vault, GitHub or GitLab audit result) is an
    /// authorisation refusal of a working key while the key is active, and a refused
    /// credential once the key was disabled, revoked or expired.
    fn authenticated(&self, active: bool) -> bool {
        match (self.outcome, self.status) {
            (DENIED, s) if s >= 0 => s != 401,
            (DENIED, _) => active,
            (_, s) => s != 401,
        }
    }

    /// A refusal of an authenticated key (it lacks the scope or permission).
    fn scope_refusal(&self, active: bool) -> bool {
        self.outcome == DENIED && self.authenticated(active)
    }
}

/// Strings interned during a run (user-agent families, scopes).
#[derive(Debug, Default)]
pub(crate) struct Interner {
    pub strings: Vec<String>,
    pub index: std::collections::HashMap<String, u32>,
}

impl Interner {
    /// The id of `s`, adding it if new.
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }

    /// The string of an id ("" when absent).
    pub fn get(&self, i: u32) -> &str {
        self.strings.get(i as usize).map_or("", String::as_str)
    }
}

/// What the rules know about a key besides its events.
#[derive(Debug, Clone)]
pub(crate) struct KeyInfo {
    pub key_ref: i64,
    pub provider: String,
    pub id: String,
    pub owner: String,
    pub environment: Option<String>,
    pub purpose: Option<String>,
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    pub created: Option<Millis>,
    pub expires: Option<Millis>,
    pub last_used: Option<Millis>,
    pub rotated_to: Option<String>,
    /// When the key that replaced it was created (rotation), if known.
    pub replaced_at: Option<Millis>,
    /// Listed by its provider (not only seen in logs).
    pub listed: bool,
    /// When it stopped working (deactivated, revoked), if known.
    pub stopped_at: Option<Millis>,
}

impl KeyInfo {
    fn production(&self) -> bool {
        matches!(
            self.environment
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("prod" | "production" | "live")
        )
    }

    /// Base severity, one level up for production keys.
    fn sev(&self, base: u8) -> u8 {
        (base + u8::from(self.production())).min(3)
    }
}

/// Everything one key's pass needs.
pub(crate) struct Cx<'a> {
    pub cfg: &'a DetectConfig,
    pub key: &'a KeyInfo,
    pub strings: &'a Interner,
}

fn push_cap(v: &mut Vec<i64>, row: i64, cap: usize) {
    if v.len() < cap {
        v.push(row);
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Runs the rules over `events` (one key, time order) and folds them into `st`.
/// Incidents that closed are appended to `closed`.
pub(crate) fn process(st: &mut KeyState, events: &[Ev], cx: &Cx<'_>, closed: &mut Vec<Incident>) {
    for e in events {
        on_event(st, e, cx, closed);
    }
}

fn open_mut<'s>(st: &'s mut KeyState, rule: &str, subject: &str) -> Option<&'s mut Incident> {
    st.open
        .iter_mut()
        .find(|i| i.rule == rule && i.subject == subject)
}

fn on_event(st: &mut KeyState, e: &Ev, cx: &Cx<'_>, closed: &mut Vec<Incident>) {
    let cfg = cx.cfg;
    let cap = cfg.evidence_cap as usize;
    let t = e.time;
    let h = t.div_euclid(HOUR);
    if st.bucket.hour != h {
        if st.bucket.hour >= 0 {
            close_bucket(st, cx, closed);
        }
        st.bucket = Bucket {
            hour: h,
            ..Default::default()
        };
        close_stale(st, t, cx, closed);
    }
    st.decay(t, cfg.baseline_half_life_days);
    let ready = st.ready(t, cfg);
    // A key that stopped working at a known time still worked before it, give or take
    // the provider's clock skew: its refusals then are a working key's.
    let active = cx.key.status == KeyStatus::Active
        || cx
            .key
            .stopped_at
            .is_some_and(|s| t <= s + cfg.revocation_skew_seconds as i64 * 1000);
    let authenticated = e.authenticated(active);
    st.rhythm.observe(t, &st.hours);
    let off_schedule = st.rhythm.run_off;
    let window = cfg.novelty_window_hours as i64 * HOUR;
    let memory = cfg.network_memory_days as i64 * DAY;
    let mut claimed = false;

    // Use after expiry, or after the rotation grace.
    let expired = cx.key.expires.is_some_and(|x| t > x);
    let rotated_out = cx
        .key
        .replaced_at
        .is_some_and(|r| t > r + cfg.rotation_grace_hours as i64 * HOUR)
        && e.outcome == SUCCESS;
    if expired || rotated_out {
        if st.late_count == 0 {
            st.late_first = t;
        }
        st.late_count += 1;
        st.late_last = t;
        push_cap(&mut st.late_rows, e.row, cap);
        claimed = true;
    }

    // Denied authentications since the key last worked (use after disable/revoke).
    if authenticated {
        st.tail_count = 0;
        st.tail_rows.clear();
    } else if e.outcome == DENIED {
        if st.tail_count == 0 {
            st.tail_first = t;
        }
        st.tail_count += 1;
        st.tail_last = t;
        push_cap(&mut st.tail_rows, e.row, cap);
        claimed = true;
    }

    // A dormant key waking up.
    if let Some(inc) = st
        .open
        .iter_mut()
        .find(|i| i.rule == "dormant_wakeup" && t <= i.start + window)
    {
        inc.events += 1;
        inc.last = t;
        push_cap(&mut inc.rows, e.row, cap);
        claimed = true;
    } else if st.events >= cfg.dormant_min_history as u64
        && t - st.last_time >= cfg.dormant_days as i64 * DAY
        && authenticated
        && !claimed
    {
        st.long_gaps += 1;
        if st.long_gaps <= 2 {
            let gap_days = (t - st.last_time) / DAY;
            let span_days = ((st.last_time - st.first_time) / DAY).max(1);
            let inc = Incident {
                rule: "dormant_wakeup".into(),
                subject: when(t)[..10].to_string(),
                start: t,
                last: t,
                events: 1,
                rows: vec![e.row],
                title: format!("Dormant key active again after {gap_days} days"),
                explanation: format!(
                    "Silent for {gap_days} days (last request {}), then used again from {}; \
                     before its silence it made {} requests over {span_days} days. Confirm \
                     with {} that this use is expected, or disable the key.",
                    when(st.last_time),
                    when(t),
                    st.events,
                    owner_or(cx.key)
                ),
                severity: cx.key.sev(1),
                peak: gap_days as u64,
                sum: 0,
            };
            st.open.push(inc);
            claimed = true;
        }
    }

    // Networks.
    let mut novel_net = false;
    if e.net != 0 {
        // What a request from a new network does that the key never did: a service it
        // never used successfully or a client family it never sent. Refusals count
        // separately: a person's ordinary work sees the odd one wherever they are.
        let refused = e.outcome == DENIED;
        let unusual = (e.service != u32::MAX
            && !st
                .services
                .iter()
                .any(|(n, _)| n == cx.strings.get(e.service)))
            || (e.agent != u32::MAX
                && !st.agents.iter().any(|s| s.value == cx.strings.get(e.agent)));
        // Until the key has NET_SETTLED_DAYS active days, its set of networks may be
        // incomplete (a person's office and home): a new network is reported only when
        // its requests also do something unusual.
        let settled = st.rhythm.active_days >= NET_SETTLED_DAYS;
        let known_before = st.nets.len();
        match st.nets.iter_mut().find(|s| s.value == e.net) {
            Some(s) if t - s.last <= memory => {
                s.last = t;
                if t <= s.alert_until {
                    novel_net = true;
                }
            }
            found => {
                let alert = ready && !claimed;
                let seen = Seen {
                    value: e.net,
                    first: t,
                    last: t,
                    alert_until: if alert { t + window } else { 0 },
                };
                match found {
                    Some(s) => *s = seen,
                    None => st.nets.push(seen),
                }
                if alert {
                    novel_net = true;
                    let net = net_text(e.net);
                    let others: Vec<String> = st
                        .nets
                        .iter()
                        .filter(|s| s.value != e.net)
                        .take(3)
                        .map(|s| net_text(s.value))
                        .collect();
                    st.open.push(Incident {
                        rule: "new_network".into(),
                        subject: net.clone(),
                        start: t,
                        last: t,
                        events: 0,
                        rows: Vec::new(),
                        title: format!("First use from {net}"),
                        explanation: format!(
                            "a network this key had never used; its baseline ({} days, {} \
                             events) knows {}: {}",
                            (t - st.first_time) / DAY,
                            st.events,
                            plural(known_before as u64, "network"),
                            others.join(", ")
                        ),
                        severity: cx.key.sev(1),
                        // 1 once confirmed (see `settled`); unconfirmed ones are dropped.
                        peak: u64::from(settled),
                        sum: 0,
                    });
                }
            }
        }
        if novel_net && !claimed {
            let mut confirmed = true;
            if let Some(inc) = open_mut(st, "new_network", &net_text(e.net)) {
                inc.events += 1;
                inc.last = t;
                push_cap(&mut inc.rows, e.row, cap);
                if refused {
                    inc.sum += 1;
                }
                if unusual || refused_often(inc.sum, inc.events) {
                    inc.peak = 1;
                }
                confirmed = inc.peak == 1;
            }
            // Until confirmed, its requests are the key's own for the other rules.
            if confirmed {
                claimed = true;
            } else {
                novel_net = false;
            }
        }
    }

    // User-agent families.
    if e.agent != u32::MAX {
        let fam = cx.strings.get(e.agent);
        match st.agents.iter_mut().find(|s| s.value == fam) {
            Some(s) if t - s.last <= memory => {
                s.last = t;
                if t <= s.alert_until {
                    if let Some(inc) = open_mut(st, "new_user_agent", fam) {
                        inc.events += 1;
                        inc.last = t;
                        push_cap(&mut inc.rows, e.row, cap);
                    }
                }
            }
            found => {
                let alert = ready;
                let seen = Seen {
                    value: fam.to_string(),
                    first: t,
                    last: t,
                    alert_until: if alert { t + window } else { 0 },
                };
                match found {
                    Some(s) => *s = seen,
                    None => st.agents.push(seen),
                }
                if alert {
                    let others: Vec<String> = st
                        .agents
                        .iter()
                        .filter(|s| s.value != fam)
                        .take(3)
                        .map(|s| s.value.clone())
                        .collect();
                    st.open.push(Incident {
                        rule: "new_user_agent".into(),
                        subject: fam.to_string(),
                        start: t,
                        last: t,
                        events: 1,
                        rows: vec![e.row],
                        title: format!("First use with client `{fam}`"),
                        explanation: format!(
                            "a user-agent family this key had never sent; its baseline knows {}",
                            if others.is_empty() {
                                "none".to_string()
                            } else {
                                others.join(", ")
                            }
                        ),
                        severity: cx.key.sev(0),
                        peak: 0,
                        sum: 0,
                    });
                }
            }
        }
    }

    // Oversized responses: bulk export.
    if e.records >= 0 {
        // The baseline quantile is only needed above the absolute floor.
        let big = e.records > cfg.bulk_min_records as i64;
        let usual = if big { st.records.quantile(0.99) } else { 0.0 };
        let limit = (cfg.bulk_min_records as f64).max(cfg.bulk_ratio * usual);
        if big && ready && !claimed && e.outcome == SUCCESS && e.records as f64 > limit {
            claimed = true;
            let recs = e.records as u64;
            match st
                .open
                .iter_mut()
                .find(|i| i.rule == "bulk_export" && t - i.last <= HOUR)
            {
                Some(inc) => {
                    inc.events += 1;
                    inc.last = t;
                    inc.sum += recs;
                    inc.peak = inc.peak.max(recs);
                    push_cap(&mut inc.rows, e.row, cap);
                }
                None => st.open.push(Incident {
                    rule: "bulk_export".into(),
                    subject: when(t)[..13].to_string(),
                    start: t,
                    last: t,
                    events: 1,
                    rows: vec![e.row],
                    title: String::new(),
                    explanation: format!("{usual:.0}"),
                    severity: cx.key.sev(2),
                    peak: recs,
                    sum: recs,
                }),
            }
        } else if e.outcome == SUCCESS {
            st.records.add(e.records as u64);
        }
    }

    // Hours the key never works (only keys that keep working hours, and only hours
    // at least two hours from their working window).
    if ready
        && !claimed
        && off_hour(st, t, cfg)
        && st.rhythm.keeps_hours(&st.hours)
        && st.rhythm.far_from_window(&st.hours, t)
    {
        st.bucket.off += 1;
        push_cap(&mut st.bucket.rows_off, e.row, cap);
        claimed = true;
    }

    // Runs off the key's schedule (cron-like keys).
    // They still count towards the volume: a large run off schedule is both.
    if ready && !claimed && off_schedule && e.outcome != DENIED {
        st.bucket.sched += 1;
        push_cap(&mut st.bucket.rows_sched, e.row, cap);
    }

    // Alternation between known networks.
    if e.net != 0 && !novel_net {
        if let Some((ln, lt)) = st.last_net {
            if ln != e.net && t - lt <= cfg.concurrent_window_minutes as i64 * MINUTE {
                st.bucket.switches += 1;
                push_cap(&mut st.bucket.rows_switch, e.row, cap);
                for n in [ln, e.net] {
                    if !st.bucket.switch_nets.contains(&n) {
                        st.bucket.switch_nets.push(n);
                    }
                }
            }
        }
        st.last_net = Some((e.net, t));
    }

    // Scope refusals.
    if e.scope_refusal(active) && !claimed {
        st.bucket.denied += 1;
        push_cap(&mut st.bucket.rows_denied, e.row, cap);
        let service = cx.strings.get(e.service);
        if e.service != u32::MAX && !st.services.iter().any(|(n, _)| n == service) {
            st.bucket.denied_novel += 1;
        }
        let s = if e.scope != u32::MAX {
            cx.strings.get(e.scope)
        } else {
            service
        };
        if !s.is_empty()
            && st.bucket.denied_scopes.len() < 8
            && !st.bucket.denied_scopes.iter().any(|x| x == s)
        {
            st.bucket.denied_scopes.push(s.to_string());
        }
    }

    if !claimed && e.reads && e.outcome == SUCCESS {
        st.bucket.reads += 1;
        push_cap(&mut st.bucket.rows_reads, e.row, cap);
    }
    if !claimed && e.outcome != DENIED {
        st.bucket.requests += 1;
        push_cap(&mut st.bucket.rows_requests, e.row, cap);
    }
    if e.outcome == SUCCESS && e.scope != u32::MAX {
        let s = cx.strings.get(e.scope);
        match st.scopes.iter_mut().find(|(n, _)| n == s) {
            Some(x) => x.1 = x.1.max(t),
            None => st.scopes.push((s.to_string(), t)),
        }
    }
    if e.outcome == SUCCESS && e.service != u32::MAX {
        let s = cx.strings.get(e.service);
        let known = st.services.len();
        match st.services.iter_mut().find(|(n, _)| n == s) {
            Some(x) => x.1 = x.1.max(t),
            None if known < 256 => st.services.push((s.to_string(), t)),
            None => {}
        }
    }
    if st.bucket.rows_off.last() != Some(&e.row) {
        st.bucket.all += 1;
    }
    if st.events == 0 {
        st.first_time = t;
    }
    st.events += 1;
    st.last_time = t;
    st.last_row = e.row;
}

/// True when the hour of `t` (with its neighbours) holds almost none of the key's
/// past activity.
fn off_hour(st: &KeyState, t: Millis, cfg: &DetectConfig) -> bool {
    let total: f32 = st.hours.iter().sum();
    if total <= 0.0 {
        return false;
    }
    let hod = t.div_euclid(HOUR).rem_euclid(24) as usize;
    let near = st.hours[(hod + 23) % 24] + st.hours[hod] + st.hours[(hod + 1) % 24];
    (near as f64) <= cfg.off_hours_max_share * total as f64
}

/// The key's working hours as text, e.g. `13:00–23:59 UTC`.
fn working_hours(st: &KeyState, cfg: &DetectConfig) -> String {
    let total: f32 = st.hours.iter().sum();
    let busy: Vec<usize> = (0..24)
        .filter(|h| st.hours[*h] as f64 > cfg.off_hours_max_share * total as f64)
        .collect();
    if busy.is_empty() {
        return "unknown".into();
    }
    // The longest circular run of busy hours' complement tells where the day starts.
    let mut best = (0usize, 0usize);
    for start in 0..24 {
        if busy.contains(&start) {
            continue;
        }
        let len = (0..24)
            .take_while(|i| !busy.contains(&((start + i) % 24)))
            .count();
        if len > best.1 {
            best = (start, len);
        }
    }
    let first = (best.0 + best.1) % 24;
    let last = (best.0 + 23) % 24;
    format!("{first:02}:00–{last:02}:59 UTC")
}

fn owner_or(k: &KeyInfo) -> String {
    if k.owner.is_empty() {
        "its owner".into()
    } else {
        k.owner.clone()
    }
}
