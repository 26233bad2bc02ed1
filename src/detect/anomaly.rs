//! Anomaly rules: one pass over a key's events in time order, against the key's own
//! baseline ([`KeyState`]), which learns from every event after judging it.
//!
//! Per event: a new network or user-agent family, a dormant key waking up, requests at
//! hours the key never works, oversized responses (bulk export), alternation between
//! networks, denied authentications after the key stopped working. Per hour (when the
//! hour closes): volume, denied bursts, off-hours and concurrency totals.
//!
//! One incident gives one finding, by the most specific rule: events that a novelty rule
//! explains (a new network, a wake-up, off hours, oversized responses) do not count again
//! towards the generic volume spike.

use super::baseline::{net_text, when, Bucket, Incident, KeyState, Seen, DAY, HOUR, MINUTE};
use super::DetectConfig;
use crate::model::{KeyStatus, Millis};

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
    pub outcome: u8,
    /// HTTP status, -1 when absent.
    pub status: i32,
    /// Records returned, -1 when absent.
    pub records: i64,
}

impl Ev {
    /// The key authenticated: served, or refused/failed for a reason other than its
    /// credential (403 is a scope refusal of a valid key).
    fn authenticated(&self) -> bool {
        self.outcome == SUCCESS || (self.status >= 0 && self.status != 401)
    }

    /// A refusal of an authenticated key (it lacks the scope).
    fn scope_refusal(&self) -> bool {
        self.outcome == DENIED && self.status != 401
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
    if e.authenticated() {
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
        && e.authenticated()
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
                        peak: 0,
                        sum: 0,
                    });
                }
            }
        }
        if novel_net && !claimed {
            if let Some(inc) = open_mut(st, "new_network", &net_text(e.net)) {
                inc.events += 1;
                inc.last = t;
                push_cap(&mut inc.rows, e.row, cap);
            }
            claimed = true;
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

    // Hours the key never works.
    if ready && !claimed && off_hour(st, t, cfg) {
        st.bucket.off += 1;
        push_cap(&mut st.bucket.rows_off, e.row, cap);
        claimed = true;
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
    if e.scope_refusal() && !claimed {
        st.bucket.denied += 1;
        push_cap(&mut st.bucket.rows_denied, e.row, cap);
        let s = cx.strings.get(e.scope);
        if !s.is_empty()
            && st.bucket.denied_scopes.len() < 8
            && !st.bucket.denied_scopes.iter().any(|x| x == s)
        {
            st.bucket.denied_scopes.push(s.to_string());
        }
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

/// Extends the rule's incident if it covered the previous hour, else opens one.
fn hourly(
    st: &mut KeyState,
    rule: &str,
    hour: i64,
    n: u32,
    rows: &[i64],
    cap: usize,
    sev: u8,
) -> usize {
    let prev = (hour - 1) * HOUR;
    if let Some(i) = st
        .open
        .iter()
        .position(|i| i.rule == rule && i.last == prev)
    {
        let inc = &mut st.open[i];
        inc.last = hour * HOUR;
        inc.events += n as u64;
        inc.peak = inc.peak.max(n as u64);
        for r in rows {
            push_cap(&mut inc.rows, *r, cap);
        }
        return i;
    }
    st.open.push(Incident {
        rule: rule.into(),
        subject: when(hour * HOUR)[..13].to_string(),
        start: hour * HOUR,
        last: hour * HOUR,
        events: n as u64,
        rows: rows.iter().take(cap).copied().collect(),
        title: String::new(),
        explanation: String::new(),
        severity: sev,
        peak: n as u64,
        sum: 0,
    });
    st.open.len() - 1
}

fn hours_text(inc: &Incident) -> String {
    let hours = (inc.last - inc.start) / HOUR + 1;
    if hours == 1 {
        format!("in 1 hour ({})", when(inc.start))
    } else {
        format!(
            "in {hours} hours from {} (peak {} in one hour)",
            when(inc.start),
            inc.peak
        )
    }
}

/// Judges the hour in `st.bucket` against the baseline, then folds it in.
pub(crate) fn close_bucket(st: &mut KeyState, cx: &Cx<'_>, closed: &mut Vec<Incident>) {
    let _ = closed;
    let cfg = cx.cfg;
    let cap = cfg.evidence_cap as usize;
    let b = std::mem::take(&mut st.bucket);
    let h = b.hour;
    let hod = h.rem_euclid(24) as usize;
    let ready = st.ready(h * HOUR, cfg);
    let days = ((h * HOUR - st.first_time) / DAY).max(1);

    // Concurrent use of known networks.
    let mut concurrent = false;
    if ready && b.switches >= cfg.concurrent_min_switches && b.switch_nets.len() >= 2 {
        concurrent = true;
        let day = h.div_euclid(24);
        let normal = st.concurrent_days >= 2;
        if st.concurrent_last_day != day {
            st.concurrent_days += 1;
            st.concurrent_last_day = day;
        }
        if !normal {
            let i = hourly(
                st,
                "concurrent_networks",
                h,
                b.switches,
                &b.rows_switch,
                cap,
                cx.key.sev(2),
            );
            let nets: Vec<String> = b.switch_nets.iter().take(4).map(|n| net_text(*n)).collect();
            let inc = &mut st.open[i];
            inc.sum += (b.requests + b.off) as u64;
            inc.title = format!("Used from {} networks at the same time", nets.len());
            inc.explanation = format!(
                "Requests alternated {} times within {} minutes between {} {}; this key \
                 normally uses one network at a time. Two clients hold the key: find out which \
                 one is not {}'s, and rotate the key.",
                inc.events,
                cfg.concurrent_window_minutes,
                nets.join(" and "),
                hours_text(inc),
                owner_or(cx.key)
            );
        }
    }

    // Volume.
    if ready && !concurrent && b.requests >= cfg.volume_min_requests {
        let (m, s) = st.volume.median_sigma();
        let sigma = s.max(m.sqrt()).max(1.0);
        let limit = (m + cfg.volume_sigmas * sigma).max(cfg.volume_ratio * m);
        if b.requests as f64 > limit {
            let n = b.requests;
            let i = hourly(
                st,
                "volume_spike",
                h,
                n,
                &b.rows_requests,
                cap,
                cx.key.sev(1),
            );
            let nets = st.nets.len() as u64;
            let inc = &mut st.open[i];
            if inc.start == h * HOUR {
                inc.sum = ((m * 10.0).round() as u64) << 32 | (sigma * 10.0).round() as u64;
            }
            let (bm, bs) = (
                (inc.sum >> 32) as f64 / 10.0,
                (inc.sum & 0xffff_ffff) as f64 / 10.0,
            );
            inc.title = format!(
                "Request volume {:.0}× its baseline",
                inc.peak as f64 / bm.max(1.0)
            );
            inc.explanation = format!(
                "{} requests {}; this key's {days}-day baseline is {bm:.0}±{bs:.0} per active \
                 hour from {}. Check with {} whether a job changed, else disable the key.",
                inc.events,
                hours_text(inc),
                plural(nets, "network"),
                owner_or(cx.key)
            );
        }
    }

    // Denied bursts.
    if b.denied >= cfg.denied_min_per_hour {
        let (m, s) = st.denied.median_sigma();
        let limit = (m + cfg.denied_sigmas * s.max(1.0)).max(cfg.denied_min_per_hour as f64 - 1.0);
        if b.denied as f64 > limit {
            let i = hourly(st, "denied_burst", h, b.denied, &b.rows_denied, cap, 2);
            let inc = &mut st.open[i];
            inc.title = "Burst of denied requests".into();
            let scopes = if b.denied_scopes.is_empty() {
                String::new()
            } else {
                format!(" on scopes it lacks ({})", b.denied_scopes.join(", "))
            };
            inc.explanation = format!(
                "{} denied requests {}{scopes}; this key's baseline is {m:.0}±{:.0} denials \
                 per active hour. Someone is probing what the key can reach: confirm with {} \
                 or rotate it.",
                inc.events,
                hours_text(inc),
                s,
                owner_or(cx.key)
            );
        }
    }

    // Off hours.
    let continuing = st
        .open
        .iter()
        .any(|i| i.rule == "off_hours" && i.last == (h - 1) * HOUR);
    if b.off >= cfg.off_hours_min_events || (b.off >= 1 && continuing) {
        let work = working_hours(st, cfg);
        let i = hourly(st, "off_hours", h, b.off, &b.rows_off, cap, cx.key.sev(1));
        let inc = &mut st.open[i];
        inc.title = format!(
            "Activity at {:02}:00 UTC, outside its working hours",
            inc.start.div_euclid(HOUR).rem_euclid(24)
        );
        inc.explanation = format!(
            "{} requests {}, at hours this key never works (its {days}-day baseline is \
             active {work}). Confirm with {} that a job was moved, else disable the key.",
            inc.events,
            hours_text(inc),
            owner_or(cx.key)
        );
        st.pending_hours.push((hod as u8, b.off));
    } else if b.off > 0 {
        st.hours[hod] += b.off as f32;
    }

    // Fold the hour into the baseline.
    if b.requests + b.denied > 0 {
        st.volume.add(b.requests as u64);
        st.denied.add(b.denied as u64);
    }
    st.hours[hod] += b.all as f32;
}

/// Moves incidents that can no longer grow at time `t` to `closed`.
fn close_stale(st: &mut KeyState, t: Millis, cx: &Cx<'_>, closed: &mut Vec<Incident>) {
    let window = cx.cfg.novelty_window_hours as i64 * HOUR;
    let h = t.div_euclid(HOUR);
    let mut i = 0;
    while i < st.open.len() {
        let inc = &st.open[i];
        let done = match inc.rule.as_str() {
            "new_network" | "new_user_agent" | "dormant_wakeup" => t > inc.start + window,
            "bulk_export" => t - inc.last > HOUR,
            _ => inc.last < (h - 1) * HOUR,
        };
        if done {
            let inc = st.open.remove(i);
            if inc.rule == "off_hours" {
                for (hod, n) in std::mem::take(&mut st.pending_hours) {
                    st.hours[hod as usize] += n as f32;
                }
            }
            closed.push(finish(inc, st, cx));
        } else {
            i += 1;
        }
    }
}

/// Fills in the final wording of an incident.
pub(crate) fn finish(mut inc: Incident, st: &KeyState, cx: &Cx<'_>) -> Incident {
    match inc.rule.as_str() {
        "new_network" if !inc.explanation.starts_with(|c: char| c.is_ascii_digit()) => {
            inc.explanation = format!(
                "{} from {}, {}. Confirm with {} that they moved, else rotate the key.",
                plural(inc.events, "request"),
                inc.subject,
                inc.explanation,
                owner_or(cx.key)
            );
        }
        "new_user_agent" if !inc.explanation.starts_with(|c: char| c.is_ascii_digit()) => {
            inc.explanation = format!(
                "{} with `{}`, {}. Confirm with {} that they changed clients.",
                plural(inc.events, "request"),
                inc.subject,
                inc.explanation,
                owner_or(cx.key)
            );
        }
        "bulk_export" if inc.title.is_empty() => {
            let usual = inc.explanation.clone();
            inc.title = format!("Bulk read of {} personal-data records", inc.sum);
            inc.explanation = format!(
                "{} returned {} records in {} minutes from {} (largest {}); this key's \
                 requests usually return at most {usual} records. Check what was exported \
                 with {} and rotate the key if it was not them.",
                plural(inc.events, "request"),
                inc.sum,
                ((inc.last - inc.start) / MINUTE).max(1),
                when(inc.start),
                inc.peak,
                owner_or(cx.key)
            );
        }
        "dormant_wakeup" => {
            inc.explanation = inc.explanation.replacen(
                "then used again from",
                &format!("then made {} from", plural(inc.events, "request")),
                1,
            );
        }
        _ => {}
    }
    let _ = st;
    inc
}

/// The incidents of a key at the end of a run: those still open (finished wording), the
/// hour still being counted (judged provisionally), and use after revocation or expiry.
pub(crate) fn pending(st: &KeyState, cx: &Cx<'_>, now: Millis) -> Vec<Incident> {
    let mut probe = st.clone();
    let mut out = Vec::new();
    if probe.bucket.hour >= 0 {
        close_bucket(&mut probe, cx, &mut out);
    }
    for inc in probe.open.drain(..) {
        out.push(finish(inc, st, cx));
    }
    let k = cx.key;
    let stopped = match k.status {
        KeyStatus::Active => None,
        s => Some(s.as_str()),
    };
    if let Some(status) = stopped {
        if st.tail_count > 0 {
            out.push(Incident {
                rule: "revoked_use".into(),
                subject: String::new(),
                start: st.tail_first,
                last: st.tail_last,
                events: st.tail_count,
                rows: st.tail_rows.clone(),
                title: format!("Attempts to use the {status} key"),
                explanation: format!(
                    "{} with this key were refused after it stopped working (it is {status}), \
                     the first {} and the last {}; someone still holds it. Find the client \
                     behind {} and make sure the key is revoked, not only disabled.",
                    plural(st.tail_count, "request"),
                    when(st.tail_first),
                    when(st.tail_last),
                    owner_or(k)
                ),
                severity: 3,
                peak: 0,
                sum: 0,
            });
        }
    }
    if st.late_count > 0 && (k.expires.is_some_and(|x| x <= now) || k.replaced_at.is_some()) {
        let why = if k.replaced_at.is_some() {
            format!(
                "after it was rotated out (replaced by {})",
                k.rotated_to.as_deref().unwrap_or("a new key")
            )
        } else {
            format!(
                "after it expired on {}",
                when(k.expires.unwrap_or_default())
            )
        };
        out.push(Incident {
            rule: "revoked_use".into(),
            subject: "late".into(),
            start: st.late_first,
            last: st.late_last,
            events: st.late_count,
            rows: st.late_rows.clone(),
            title: "Key used after it should have stopped".into(),
            explanation: format!(
                "{} {why}, the first {} and the last {}. Move {} to the new key and revoke \
                 this one.",
                plural(st.late_count, "request"),
                when(st.late_first),
                when(st.late_last),
                owner_or(k)
            ),
            severity: 3,
            peak: 0,
            sum: 0,
        });
    }
    out
}
