//! The per-hour rules, judged when an hour closes: volume spikes, denied bursts,
//! off-hours work and concurrent networks, each extending its incident hour by hour.

use super::*;

/// Denials on services the key never used successfully that make a burst on their own.
pub(crate) const DENIED_NOVEL_MIN: u32 = 5;
/// A burst's share of denied requests is at least this multiple of the key's usual share.
pub(crate) const DENIED_SHARE_RATIO: f64 = 3.0;

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
pub(super) fn close_bucket(st: &mut KeyState, cx: &Cx<'_>, closed: &mut Vec<Incident>) {
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

    // Bulk reads in logs without record counts: an hour of content reads (objects,
    // secrets) that are most of its requests and far above the key's usual reads.
    let mut bulk = false;
    if ready && b.reads >= cfg.bulk_min_reads && 2 * b.reads >= b.requests {
        let usual = st.reads.quantile(0.99);
        if b.reads as f64 > cfg.bulk_ratio * usual.max(1.0) {
            bulk = true;
            let i = hourly(
                st,
                "bulk_export",
                h,
                b.reads,
                &b.rows_reads,
                cap,
                cx.key.sev(2),
            );
            let inc = &mut st.open[i];
            inc.title = format!("Bulk read of {} objects", inc.events);
            inc.explanation = format!(
                "{} reads of stored objects or secrets {} ({} of the hour's {} requests);                  this key's {days}-day baseline is at most {usual:.0} such reads in an hour.                  Check what was copied with {} and rotate the key if it was not them.",
                inc.events,
                hours_text(inc),
                b.reads,
                b.requests,
                owner_or(cx.key)
            );
        }
    }

    // Volume. A bursty key's limit also stays above its own busiest hours (p99).
    if ready && !concurrent && !bulk && b.requests >= cfg.volume_min_requests {
        let (m, s) = st.volume.median_sigma();
        let sigma = s.max(m.sqrt()).max(1.0);
        let limit = (m + cfg.volume_sigmas * sigma)
            .max(cfg.volume_ratio * m)
            .max(cfg.volume_burst_ratio * st.volume.quantile(0.99));
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

    // Denied bursts: against the key's own denials per active hour; denials on a
    // service the key never used successfully need fewer (a probe of what it reaches).
    let (m, s) = st.denied.median_sigma();
    let limit = (m + cfg.denied_sigmas * s.max(1.0)).max(cfg.denied_min_per_hour as f64 - 1.0);
    let novel_limit = (m + 3.0 * s.max(1.0)).max(DENIED_NOVEL_MIN as f64 - 1.0);
    // ... and the hour's share of denials well above the key's usual share, so that a
    // busy hour with the key's ordinary refusals is not a burst.
    let (dm, vm) = (st.denied.mean(), st.volume.mean());
    let usual_share = if dm + vm > 0.0 { dm / (dm + vm) } else { 0.0 };
    let expected = usual_share * (b.requests + b.denied) as f64;
    let burst = b.denied >= cfg.denied_min_per_hour
        && b.denied as f64 > limit
        && b.denied as f64 > DENIED_SHARE_RATIO * expected;
    let probe = b.denied_novel >= DENIED_NOVEL_MIN && b.denied_novel as f64 > novel_limit;
    if burst || probe {
        let i = hourly(st, "denied_burst", h, b.denied, &b.rows_denied, cap, 2);
        let inc = &mut st.open[i];
        inc.title = "Burst of denied requests".into();
        inc.sum += b.denied_novel as u64;
        let what = if b.denied_scopes.is_empty() {
            String::new()
        } else {
            format!(" for {}", b.denied_scopes.join(", "))
        };
        let novel = if inc.sum > 0 {
            format!(
                ", {} of them on services it had never used successfully",
                inc.sum
            )
        } else {
            String::new()
        };
        inc.explanation = format!(
            "{} denied requests {}{what}{novel}; this key's baseline is {m:.0}±{s:.0} \
             denials per active hour. Someone is probing what the key can reach: confirm \
             with {} or rotate it.",
            inc.events,
            hours_text(inc),
            owner_or(cx.key)
        );
    }

    // Runs off the key's schedule.
    let continuing = st
        .open
        .iter()
        .any(|i| i.rule == "schedule_break" && i.last == (h - 1) * HOUR);
    if b.sched >= cfg.off_hours_min_events || (b.sched >= 1 && continuing) {
        let i = hourly(
            st,
            "schedule_break",
            h,
            b.sched,
            &b.rows_sched,
            cap,
            cx.key.sev(1),
        );
        let rhythm = st.rhythm.describe(&st.hours);
        let inc = &mut st.open[i];
        inc.title = "Activity off the key's schedule".into();
        inc.explanation = format!(
            "{} requests {} outside the schedule this key keeps ({rhythm}, learned over \
             {days} days). Confirm with {} that the job changed, else disable the key.",
            inc.events,
            hours_text(inc),
            owner_or(cx.key)
        );
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
        if !bulk {
            st.reads.add(b.reads as u64);
        }
    }
    st.hours[hod] += b.all as f32;
}
