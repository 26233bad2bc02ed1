//! Builders of keys and events for detection tests.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use keyaudit::model::{Event, Key, KeySource, KeyStatus, Outcome};
use keyaudit::store::Store;

/// Monday 2026-11-02 00:00 UTC: day 0 of the synthetic history.
pub fn day0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}

/// A provider-listed active production key created `age_days` before `now`.
pub fn key(id: &str, now: DateTime<Utc>, age_days: i64) -> Key {
    Key {
        provider: "p".into(),
        id: id.into(),
        name: format!("{id}-name"),
        owner: "Acme Payroll".into(),
        environment: Some("prod".into()),
        purpose: Some(format!("{id}-purpose")),
        prefix: "tg_live_abcd".into(),
        fingerprint: format!("sha256:{id}"),
        scopes: vec!["candidates:read".into()],
        status: KeyStatus::Active,
        created: Some(now - Duration::days(age_days)),
        expires: Some(now + Duration::days(200)),
        last_used: None,
        rotated_to: None,
        source: KeySource::Provider,
    }
}

/// An ordinary successful read of `key` at `t` from `ip`.
pub fn ev(id: &str, key: &str, t: DateTime<Utc>, ip: &str) -> Event {
    Event {
        provider: "p".into(),
        id: id.into(),
        time: t,
        key_id: key.into(),
        principal: None,
        action: "GET /v1/candidates".into(),
        scope: Some("candidates:read".into()),
        source_ip: Some(ip.into()),
        user_agent: Some("acme-sync/1.2 (+https://acme.example)".into()),
        outcome: Outcome::Success,
        status_code: Some(200),
        request_id: None,
        records: Some(50),
        raw: None,
    }
}

/// A cache with provider `p` and these keys.
pub fn store_with(keys: &[Key]) -> Store {
    let mut s = Store::open_in_memory().unwrap();
    s.ensure_provider("p", "http", None).unwrap();
    s.upsert_keys("p", keys, Utc::now()).unwrap();
    s
}

/// `days` weekdays of normal work for `key`: `per_hour` requests in each hour from
/// 09:00 to 16:59 UTC, from 198.51.100.0/24 (and 192.0.2.0/24 on odd days when
/// `two_nets`). Ids are `{key}-n{i}`.
pub fn history(key: &str, days: i64, per_hour: i64, two_nets: bool) -> Vec<Event> {
    let mut out = Vec::new();
    let mut i = 0;
    for d in 0..days {
        let day = day0() + Duration::days(d);
        if matches!(
            chrono::Datelike::weekday(&day),
            chrono::Weekday::Sat | chrono::Weekday::Sun
        ) {
            continue;
        }
        let net = if two_nets && d % 2 == 1 {
            "192.0.2"
        } else {
            "198.51.100"
        };
        for h in 9..17 {
            for m in 0..per_hour {
                // Irregular within its slot, like a real integration (not a cron job).
                let slot = 3600 / per_hour;
                let jitter = (i * 7919) % (slot / 2).max(1);
                let t = day + Duration::hours(h) + Duration::seconds(m * slot + jitter);
                out.push(ev(
                    &format!("{key}-n{i}"),
                    key,
                    t,
                    &format!("{net}.{}", 10 + (i % 3)),
                ));
                i += 1;
            }
        }
    }
    out
}

/// `n` events of `key` spread over `minutes` from `start`, built by `f` from a base event.
pub fn burst(
    key: &str,
    tag: &str,
    start: DateTime<Utc>,
    n: i64,
    minutes: i64,
    f: impl Fn(&mut Event, i64),
) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let t = start + Duration::seconds(i * minutes * 60 / n.max(1));
            let mut e = ev(&format!("{key}-{tag}{i}"), key, t, "198.51.100.10");
            f(&mut e, i);
            e
        })
        .collect()
}
