//! Injected anomalies: which keys get which kind, when, and the labelled events that
//! make them.

use super::catalogue::{Reads, ACTIONS, FOREIGN_NETS, SENSITIVE};
use super::traffic::{lacking_action, normal_event};
use super::{
    is_weekend, local, net, AnomalyKind, Ev, GenParams, KeyRec, Profile, DAY, HOUR, MINUTE,
    NO_RECORDS,
};
use crate::model::KeyStatus;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

/// An anomaly to inject: what, on which key, when.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub kind: AnomalyKind,
    pub key: usize,
    /// Start time (ms).
    at: i64,
}

/// A weekday working-hours moment of key `p` on local day `lday` (or the next weekday).
fn working_moment(rng: &mut StdRng, p: &Profile, mut lday: i64) -> i64 {
    while is_weekend(lday) {
        lday += 1;
    }
    let tz = p.tz_min as i64 * MINUTE;
    let lo = lday * DAY - tz + p.start_min * MINUTE + HOUR;
    let hi = lday * DAY - tz + p.end_min * MINUTE - 3 * HOUR;
    rng.random_range(lo..hi.max(lo + 1))
}

pub(super) fn plan_anomalies(
    rng: &mut StdRng,
    g: GenParams,
    window_start: i64,
    keys: &mut [KeyRec],
) -> Vec<Plan> {
    let recent_lo = g.now - 10 * DAY;
    let recent_hi = g.now - DAY;
    // Active keys with a full baseline before the anomaly window.
    let mut healthy: Vec<usize> = (0..keys.len())
        .filter(|&i| {
            let k = &keys[i];
            k.status == KeyStatus::Active
                && k.expires.is_none_or(|e| e > g.now)
                && k.profile.as_ref().is_some_and(|p| {
                    p.from <= window_start.max(recent_lo - 14 * DAY) && p.until >= g.now
                })
        })
        .collect();
    // The busiest first: anomalies need a clear baseline. Ties keep id order.
    healthy.sort_by(|&a, &b| {
        let wa = keys[a].profile.as_ref().map_or(0.0, |p| p.weight);
        let wb = keys[b].profile.as_ref().map_or(0.0, |p| p.weight);
        wb.total_cmp(&wa)
    });
    let mut taken = vec![false; keys.len()];
    let mut plans = Vec::new();
    let lday_of = |p: &Profile, t: i64| local(t, p.tz_min).0;
    for &kind in AnomalyKind::ALL {
        let want = rng.random_range(2..=3);
        let mut got = 0;
        if kind == AnomalyKind::RevokedUse {
            // Keys revoked or disabled well before the anomaly window, with history.
            for i in 0..keys.len() {
                if got == want || taken[i] {
                    continue;
                }
                let k = &keys[i];
                let ok = matches!(k.status, KeyStatus::Revoked | KeyStatus::Inactive)
                    && k.profile.as_ref().is_some_and(|p| {
                        p.until <= recent_lo - 2 * DAY && p.until - p.from >= 5 * DAY
                    });
                if ok {
                    let p = k.profile.as_ref().expect("checked");
                    let day_t = rng.random_range(recent_lo..recent_hi);
                    let t = working_moment(rng, p, lday_of(p, day_t));
                    taken[i] = true;
                    plans.push(Plan {
                        kind,
                        key: i,
                        at: t,
                    });
                    got += 1;
                }
            }
            continue;
        }
        if kind == AnomalyKind::DormantWakeup && g.days < 24 {
            continue;
        }
        for &i in &healthy {
            if got == want {
                break;
            }
            if taken[i] {
                continue;
            }
            let p = keys[i]
                .profile
                .as_ref()
                .expect("healthy keys have profiles");
            let fits = match kind {
                AnomalyKind::ConcurrentNetworks => p.nets.len() >= 2,
                AnomalyKind::BulkExport => p
                    .actions
                    .iter()
                    .any(|&a| ACTIONS[a as usize].reads == Reads::List),
                AnomalyKind::DeniedBurst => SENSITIVE
                    .iter()
                    .any(|s| !keys[i].scopes.iter().any(|g| g == s)),
                AnomalyKind::OffHours => p.start_min >= 6 * 60,
                AnomalyKind::DormantWakeup => p.from <= g.now - 22 * DAY,
                _ => true,
            };
            if !fits {
                continue;
            }
            let day_t = if kind == AnomalyKind::DormantWakeup {
                rng.random_range(g.now - 3 * DAY..recent_hi)
            } else {
                rng.random_range(recent_lo..recent_hi)
            };
            let lday = lday_of(p, day_t);
            let at = match kind {
                AnomalyKind::OffHours => {
                    let mut d = lday;
                    while is_weekend(d) {
                        d += 1;
                    }
                    d * DAY - p.tz_min as i64 * MINUTE + rng.random_range(60..180) * MINUTE
                }
                _ => working_moment(rng, p, lday),
            };
            if at >= g.now - 4 * HOUR {
                continue;
            }
            if kind == AnomalyKind::DormantWakeup {
                let silence = rng.random_range(15..18) * DAY;
                let k = &mut keys[i];
                if let Some(p) = k.profile.as_mut() {
                    p.until = at - silence;
                }
            }
            taken[i] = true;
            plans.push(Plan { kind, key: i, at });
            got += 1;
        }
    }
    plans
}

pub(super) fn inject(
    rng: &mut StdRng,
    plan: &Plan,
    label: u8,
    keys: &[KeyRec],
    events: &mut Vec<Ev>,
) {
    let k = &keys[plan.key];
    let Some(p) = k.profile.as_ref() else { return };
    let ki = plan.key as u16;
    // The network the key uses on that day in normal traffic (any of its own).
    let own = p.day_net(local(plan.at, p.tz_min).0);
    let at = plan.at;
    match plan.kind {
        AnomalyKind::NewNetwork => {
            let foreign = net(*FOREIGN_NETS.choose(rng).expect("nonempty"));
            let n = rng.random_range(25..50);
            let span = rng.random_range(60..150) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, foreign, label);
                e.ip = foreign | rng.random_range(2..250);
                events.push(e);
            }
        }
        AnomalyKind::OffHours => {
            let n = rng.random_range(30..60);
            let span = rng.random_range(40..100) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                events.push(normal_event(rng, ki, k, p, t, own, label));
            }
        }
        AnomalyKind::VolumeSpike => {
            let hours = rng.random_range(2..4);
            let per_hour = events.iter().filter(|e| e.key == ki).count() as f64
                / ((p.until - p.from).max(DAY) as f64 / DAY as f64)
                / ((p.end_min - p.start_min) as f64 / 60.0);
            let n = ((per_hour * 12.0 * hours as f64) as usize).max(80 * hours as usize);
            for _ in 0..n {
                let t = at + rng.random_range(0..hours * HOUR);
                events.push(normal_event(rng, ki, k, p, t, own, label));
            }
        }
        AnomalyKind::DeniedBurst => {
            let n = rng.random_range(40..90);
            let span = rng.random_range(15..40) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, own, label);
                e.action = lacking_action(rng, k).expect("checked when planned");
                e.status = 403;
                e.records = NO_RECORDS;
                events.push(e);
            }
        }
        AnomalyKind::DormantWakeup => {
            let n = rng.random_range(30..60);
            let span = rng.random_range(60..180) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                events.push(normal_event(rng, ki, k, p, t, own, label));
            }
        }
        AnomalyKind::RevokedUse => {
            let n = rng.random_range(15..40);
            let span = rng.random_range(30..120) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, own, label);
                e.status = 401;
                e.records = NO_RECORDS;
                events.push(e);
            }
        }
        AnomalyKind::BulkExport => {
            let lists: Vec<u16> = p
                .actions
                .iter()
                .copied()
                .filter(|&a| ACTIONS[a as usize].reads == Reads::List)
                .collect();
            let n = rng.random_range(12..30);
            let span = rng.random_range(30..90) * MINUTE;
            for _ in 0..n {
                let t = at + rng.random_range(0..span);
                let mut e = normal_event(rng, ki, k, p, t, own, label);
                e.action = *lists.choose(rng).expect("checked when planned");
                e.status = 200;
                e.records = rng.random_range(2_000..10_000);
                events.push(e);
            }
        }
        AnomalyKind::ConcurrentNetworks => {
            let n = rng.random_range(30..60);
            let span = rng.random_range(45..90) * MINUTE;
            for j in 0..n {
                let t = at + rng.random_range(0..span);
                events.push(normal_event(rng, ki, k, p, t, p.nets[j % 2], label));
            }
        }
    }
}
