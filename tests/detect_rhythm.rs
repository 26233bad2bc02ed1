//! The rhythm model (working hours, around the clock, schedules) and denials read from
//! sources without HTTP status or scopes.

mod support;

use chrono::{DateTime, Duration, Utc};
use keyaudit::detect::{self, BaselineStatus, DetectConfig};
use keyaudit::model::{Category, Event, Finding, Outcome};
use keyaudit::store::{FindingQuery, Store};
use support::*;

fn now() -> DateTime<Utc> {
    day0() + Duration::days(23)
}

fn detect_all(store: &mut Store) -> Vec<Finding> {
    detect::detect_full(store, &DetectConfig::default(), now()).unwrap();
    store
        .findings(&FindingQuery::default())
        .unwrap()
        .into_iter()
        .filter(|f| f.category == Category::Anomaly)
        .collect()
}

fn rhythm_of(store: &Store, key: &str) -> String {
    let k = store.key("p", key).unwrap().unwrap();
    match detect::baseline_status(store, k.key_ref, &DetectConfig::default()).unwrap() {
        BaselineStatus::Ready { rhythm, .. } => rhythm,
        other => panic!("{other:?}"),
    }
}

/// A request every `spacing` seconds with an irregular part, every hour of every day.
fn around_the_clock(key: &str, days: i64, spacing: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut t = 0;
    let mut i = 0;
    while t < days * 86_400 {
        t += spacing / 2 + (i * 7919) % spacing;
        out.push(ev(
            &format!("{key}-{i}"),
            key,
            day0() + Duration::seconds(t),
            "198.51.100.7",
        ));
        i += 1;
    }
    out
}

#[test]
fn a_key_busy_around_the_clock_never_gets_off_hours() {
    let mut store = store_with(&[key("svc", now(), 60), key("office", now(), 60)]);
    store
        .insert_events("p", &around_the_clock("svc", 22, 900), None)
        .unwrap();
    store
        .insert_events("p", &history("office", 22, 6, false), None)
        .unwrap();
    // The same 03:00 hour on both keys: only the one with working hours is odd.
    let night = day0() + Duration::days(22) + Duration::hours(3);
    for k in ["svc", "office"] {
        let extra = burst(k, "night", night, 8, 40, |_, _| {});
        store.insert_events("p", &extra, None).unwrap();
    }
    let fs = detect_all(&mut store);
    let rules = |k: &str| -> Vec<&str> {
        fs.iter()
            .filter(|f| f.key_id == k)
            .map(|f| f.rule.as_str())
            .collect()
    };
    assert_eq!(rules("office"), ["off_hours"]);
    assert!(rules("svc").is_empty(), "{fs:?}");
    assert_eq!(rhythm_of(&store, "svc"), "around the clock");
    assert_eq!(rhythm_of(&store, "office"), "weekdays 09–17 UTC");
}

#[test]
fn a_cron_key_learns_its_schedule_and_a_run_off_it_is_a_schedule_break() {
    let mut store = store_with(&[key("cron", now(), 60), key("steady", now(), 60)]);
    for k in ["cron", "steady"] {
        let mut evs = Vec::new();
        for i in 0..(22 * 96) {
            let t = day0() + Duration::seconds(i * 900 + (i % 7) * 3);
            for j in 0..3 {
                evs.push(ev(
                    &format!("{k}-{i}-{j}"),
                    k,
                    t + Duration::seconds(j * 4),
                    "198.51.100.7",
                ));
            }
        }
        store.insert_events("p", &evs, None).unwrap();
    }
    // `cron` runs at 10:07, between its 10:00 and 10:15 slots; `steady` stays on them.
    let at = day0() + Duration::days(22) + Duration::hours(10);
    let off = burst("cron", "off", at + Duration::minutes(7), 4, 1, |_, _| {});
    let on = burst("steady", "on", at + Duration::minutes(15), 4, 1, |_, _| {});
    store.insert_events("p", &off, None).unwrap();
    store.insert_events("p", &on, None).unwrap();
    let fs = detect_all(&mut store);
    let f = fs
        .iter()
        .find(|f| f.key_id == "cron")
        .unwrap_or_else(|| panic!("{fs:?}"));
    assert_eq!(f.rule, "schedule_break");
    assert!(f.explanation.contains("every 15 min"), "{}", f.explanation);
    assert!(fs.iter().all(|f| f.key_id != "steady"), "{fs:?}");
    assert!(rhythm_of(&store, "steady").starts_with("every 15 min"));
}

/// A CloudTrail-like denial: an outcome from the source's error code, no status, no scope.
fn refused(key: &str, i: i64, t: DateTime<Utc>, action: &str) -> Event {
    let mut e = ev(&format!("{key}-d{i}"), key, t, "198.51.100.7");
    e.action = action.into();
    e.outcome = Outcome::Denied;
    e.status_code = None;
    e.scope = None;
    e.records = None;
    e
}

#[test]
fn denials_without_status_are_refusals_and_new_services_weigh_more() {
    let mut store = store_with(&[key("probe", now(), 60), key("usual", now(), 60)]);
    for k in ["probe", "usual"] {
        let mut h = history(k, 22, 6, false);
        for e in &mut h {
            e.action = "s3.amazonaws.com:ListBuckets".into();
            e.status_code = None;
            e.scope = None;
            e.records = None;
        }
        store.insert_events("p", &h, None).unwrap();
    }
    let at = day0() + Duration::days(22) + Duration::hours(11);
    // Six refusals on services `probe` never used, six on the one `usual` uses daily.
    let probe: Vec<Event> = (0..6)
        .map(|i| {
            refused(
                "probe",
                i,
                at + Duration::minutes(i * 3),
                "iam.amazonaws.com:ListUsers",
            )
        })
        .collect();
    let usual: Vec<Event> = (0..6)
        .map(|i| {
            refused(
                "usual",
                i,
                at + Duration::minutes(i * 3),
                "s3.amazonaws.com:GetObject",
            )
        })
        .collect();
    store.insert_events("p", &probe, None).unwrap();
    store.insert_events("p", &usual, None).unwrap();
    let fs = detect_all(&mut store);
    let f = fs
        .iter()
        .find(|f| f.key_id == "probe")
        .unwrap_or_else(|| panic!("{fs:?}"));
    assert_eq!(f.rule, "denied_burst");
    assert!(
        f.explanation
            .contains("6 of them on services it had never used successfully")
            && f.explanation.contains("iam.amazonaws.com"),
        "{}",
        f.explanation
    );
    assert_eq!(f.evidence.len(), 6);
    assert!(fs.iter().all(|f| f.key_id != "usual"), "{fs:?}");
}
