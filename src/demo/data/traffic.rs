//! Normal traffic: each key's requests in its partner's working hours, scaled to the
//! requested number of events.

use super::catalogue::{Reads, ACTIONS, SENSITIVE};
use super::{
    day_floor, is_weekend, local, Ev, GenParams, KeyRec, Profile, DAY, HOUR, MINUTE, NO_RECORDS,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

/// Expected number of normal events per unit of weight, to scale volumes to the target.
fn day_units(p: &Profile, g: GenParams, window_start: i64) -> f64 {
    let mut units = 0.0;
    let mut day = day_floor(window_start);
    while day < g.now {
        let (lday, _) = local(day + 12 * HOUR, p.tz_min);
        let f = if is_weekend(lday) { p.weekend } else { 1.0 };
        let (lo, hi) = (day.max(p.from), (day + DAY).min(p.until));
        if hi > lo {
            units += f * (hi - lo) as f64 / DAY as f64;
        }
        day += DAY;
    }
    units
}

pub(super) fn gen_normal(
    rng: &mut StdRng,
    g: GenParams,
    window_start: i64,
    keys: &[KeyRec],
    events: &mut Vec<Ev>,
) {
    let total: f64 = keys
        .iter()
        .filter_map(|k| k.profile.as_ref())
        .map(|p| p.weight * day_units(p, g, window_start))
        .sum();
    if total <= 0.0 {
        return;
    }
    let scale = g.events as f64 * 0.97 / total;
    for (ki, k) in keys.iter().enumerate() {
        let Some(p) = k.profile.as_ref() else {
            continue;
        };
        // Walk local days of the key's zone.
        let tz = p.tz_min as i64 * MINUTE;
        let first = (window_start + tz).div_euclid(DAY) - 1;
        let last = (g.now + tz).div_euclid(DAY);
        for lday in first..=last {
            let f = if is_weekend(lday) { p.weekend } else { 1.0 };
            if f == 0.0 {
                continue;
            }
            let day_start = lday * DAY - tz;
            let lo = day_start + p.start_min * MINUTE;
            let hi = day_start + p.end_min * MINUTE;
            if hi <= p.from || lo >= p.until {
                continue;
            }
            let mean = p.weight * scale * f * rng.random_range(0.88..1.12);
            let n = mean.floor() as usize + usize::from(rng.random::<f64>() < mean.fract());
            let netw = p.day_net(lday);
            for _ in 0..n {
                let t = rng.random_range(lo..hi);
                if t < p.from || t >= p.until {
                    continue;
                }
                events.push(normal_event(rng, ki as u16, k, p, t, netw, 0));
            }
        }
    }
}

/// One ordinary request of key `k` at `t` from network `netw`.
pub(crate) fn normal_event(
    rng: &mut impl Rng,
    ki: u16,
    k: &KeyRec,
    p: &Profile,
    t: i64,
    netw: u32,
    label: u8,
) -> Ev {
    let action = *p.actions.choose(rng).expect("profiles have actions");
    let a = ACTIONS[action as usize];
    let roll: f64 = rng.random();
    if roll < 0.0015 {
        // Now and then a call the key has no scope for.
        if let Some(lacking) = lacking_action(rng, k) {
            return Ev {
                t,
                ip: netw | (p.host as u32 + rng.random_range(0..3)),
                records: NO_RECORDS,
                key: ki,
                ua: k.ua,
                action: lacking,
                status: 403,
                label,
            };
        }
    }
    let (status, records) = if (0.0015..0.0045).contains(&roll) {
        (
            *[500u16, 502, 503].choose(rng).expect("nonempty"),
            NO_RECORDS,
        )
    } else if roll < 0.0075 && a.reads != Reads::No {
        // A lookup of something that is not there.
        (404, NO_RECORDS)
    } else {
        let r = match a.reads {
            Reads::List => {
                if rng.random_bool(0.8) {
                    p.page
                } else {
                    rng.random_range(0..p.page)
                }
            }
            Reads::One => 1,
            Reads::No => NO_RECORDS,
        };
        let st = if a.text.starts_with("POST") { 201 } else { 200 };
        (st, r)
    };
    Ev {
        t,
        ip: netw | (p.host as u32 + rng.random_range(0..3)),
        records,
        key: ki,
        ua: k.ua,
        action,
        status,
        label,
    }
}

/// An operation on a sensitive scope that key `k` was not granted, if any.
pub(super) fn lacking_action(rng: &mut impl Rng, k: &KeyRec) -> Option<u16> {
    let lacking: Vec<u16> = ACTIONS
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.scope
                .is_some_and(|s| SENSITIVE.contains(&s) && !k.scopes.iter().any(|g| g == s))
        })
        .map(|(i, _)| i as u16)
        .collect();
    lacking.choose(rng).copied()
}
