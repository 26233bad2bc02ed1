//! Each detection rule fires on a crafted case and stays quiet on a near miss.

mod support;

use chrono::{DateTime, Duration, Utc};
use keyaudit::detect::{self, BaselineStatus, DetectConfig};
use keyaudit::model::{Event, Finding, KeyStatus, Outcome};
use keyaudit::store::{FindingQuery, Store};
use support::*;

fn now() -> DateTime<Utc> {
    day0() + Duration::days(23)
}

/// Day 22 (a Tuesday) at `h`:00 UTC.
fn at(h: i64) -> DateTime<Utc> {
    day0() + Duration::days(22) + Duration::hours(h)
}

fn detect(store: &mut Store) -> Vec<Finding> {
    detect::detect_full(store, &DetectConfig::default(), now()).unwrap();
    store.findings(&FindingQuery::default()).unwrap()
}

fn rules_of(fs: &[Finding], key: &str) -> Vec<String> {
    let mut v: Vec<String> = fs
        .iter()
        .filter(|f| f.key_id == key && f.category == keyaudit::model::Category::Anomaly)
        .map(|f| f.rule.clone())
        .collect();
    v.sort();
    v
}

/// Two keys with the same 3-week history; `hit` gets `extra_hit`, `miss` gets `extra_miss`.
fn pair(extra_hit: Vec<Event>, extra_miss: Vec<Event>) -> (Vec<String>, Vec<String>, Vec<Finding>) {
    let mut store = store_with(&[
        key("hit", now(), 60),
        key("miss", now(), 60),
        key("refused", now(), 60),
    ]);
    for k in ["hit", "miss", "refused"] {
        store
            .insert_events("p", &history(k, 22, 6, false), None)
            .unwrap();
    }
    store.insert_events("p", &extra_hit, None).unwrap();
    store.insert_events("p", &extra_miss, None).unwrap();
    let fs = detect(&mut store);
    (rules_of(&fs, "hit"), rules_of(&fs, "miss"), fs)
}

#[test]
fn clean_history_raises_no_anomaly() {
    let (hit, miss, _) = pair(Vec::new(), Vec::new());
    assert!(hit.is_empty() && miss.is_empty(), "{hit:?} {miss:?}");
}

#[test]
fn new_network_fires_and_a_new_host_in_a_known_network_does_not() {
    let hit = burst("hit", "x", at(11), 20, 60, |e, _| {
        e.source_ip = Some("203.0.113.9".into())
    });
    let miss = burst("miss", "x", at(11), 20, 60, |e, _| {
        e.source_ip = Some("198.51.100.200".into())
    });
    let (h, m, fs) = pair(hit, miss);
    assert_eq!(h, ["new_network"]);
    assert!(m.is_empty(), "{m:?}");
    let f = fs.iter().find(|f| f.rule == "new_network").unwrap();
    assert!(
        f.explanation.contains("203.0.113.0/24"),
        "{}",
        f.explanation
    );
    assert!(
        f.explanation.contains("198.51.100.0/24"),
        "{}",
        f.explanation
    );
    assert!(!f.evidence.is_empty() && f.evidence.len() <= 50);
}

#[test]
fn new_user_agent_family_fires_and_a_new_version_does_not() {
    let hit = burst("hit", "x", at(11), 5, 30, |e, _| {
        e.user_agent = Some("python-requests/2.31".into())
    });
    let miss = burst("miss", "x", at(11), 5, 30, |e, _| {
        e.user_agent = Some("acme-sync/1.3 (+https://acme.example)".into())
    });
    let (h, m, _) = pair(hit, miss);
    assert_eq!(h, ["new_user_agent"]);
    assert!(m.is_empty(), "{m:?}");
}

#[test]
fn off_hours_fires_at_night_not_next_to_working_hours() {
    let hit = burst("hit", "x", at(2), 8, 40, |_, _| {});
    // 08:xx is next to the 09:00 start: not "never works".
    let miss = burst("miss", "x", at(8) + Duration::minutes(20), 8, 30, |_, _| {});
    let (h, m, fs) = pair(hit, miss);
    assert_eq!(h, ["off_hours"]);
    assert!(m.is_empty(), "{m:?}");
    let f = fs.iter().find(|f| f.rule == "off_hours").unwrap();
    assert!(
        f.explanation.contains("09:00–16:59 UTC"),
        "{}",
        f.explanation
    );
}

#[test]
fn volume_spike_fires_far_above_baseline_only() {
    let hit = burst("hit", "x", at(13), 300, 55, |_, _| {});
    let miss = burst("miss", "x", at(13), 30, 55, |_, _| {});
    let (h, m, fs) = pair(hit, miss);
    assert_eq!(h, ["volume_spike"]);
    assert!(m.is_empty(), "{m:?}");
    let f = fs.iter().find(|f| f.rule == "volume_spike").unwrap();
    assert!(
        f.explanation.contains("300 requests in 1 hour"),
        "{}",
        f.explanation
    );
    assert!(
        f.explanation.contains("baseline is 6±"),
        "{}",
        f.explanation
    );
}

#[test]
fn denied_burst_fires_on_probing_not_on_a_few_refusals() {
    let deny = |e: &mut Event, _| {
        e.outcome = Outcome::Denied;
        e.status_code = Some(403);
        e.scope = Some("ssn:read".into());
        e.records = None;
    };
    let (h, m, fs) = pair(
        burst("hit", "x", at(13), 30, 20, deny),
        burst("miss", "x", at(13), 4, 20, deny),
    );
    assert_eq!(h, ["denied_burst"]);
    assert!(m.is_empty(), "{m:?}");
    let f = fs.iter().find(|f| f.rule == "denied_burst").unwrap();
    assert!(f.explanation.contains("ssn:read"), "{}", f.explanation);
}

#[test]
fn dormant_wakeup_after_long_silence_only() {
    let mut store = store_with(&[key("hit", now(), 60), key("miss", now(), 60)]);
    // 5 days of work, then silence: 16 days for `hit`, 10 for `miss`.
    store
        .insert_events("p", &history("hit", 5, 6, false), None)
        .unwrap();
    store
        .insert_events("p", &history("miss", 5, 6, false), None)
        .unwrap();
    let last = day0() + Duration::days(4) + Duration::hours(17);
    store
        .insert_events(
            "p",
            &burst("hit", "w", last + Duration::days(16), 10, 60, |_, _| {}),
            None,
        )
        .unwrap();
    store
        .insert_events(
            "p",
            &burst("miss", "w", last + Duration::days(10), 10, 60, |_, _| {}),
            None,
        )
        .unwrap();
    let fs = detect(&mut store);
    assert_eq!(rules_of(&fs, "hit"), ["dormant_wakeup"]);
    assert!(rules_of(&fs, "miss").is_empty());
}

#[test]
fn use_after_revocation_fires_and_scope_refusals_before_it_do_not() {
    let mut hit = key("hit", now(), 60);
    hit.status = KeyStatus::Revoked;
    let mut miss = key("miss", now(), 60);
    miss.status = KeyStatus::Inactive;
    let mut store = store_with(&[hit, miss]);
    for k in ["hit", "miss"] {
        store
            .insert_events("p", &history(k, 10, 6, false), None)
            .unwrap();
    }
    // After the revocation: refused authentication (401).
    let attempts = burst("hit", "r", at(10), 3, 30, |e, _| {
        e.outcome = Outcome::Denied;
        e.status_code = Some(401);
        e.records = None;
    });
    store.insert_events("p", &attempts, None).unwrap();
    // Before the disable: a scope refusal of a still valid key (403).
    let refusal = burst(
        "miss",
        "r",
        day0() + Duration::days(9) + Duration::hours(16),
        1,
        1,
        |e, _| {
            e.outcome = Outcome::Denied;
            e.status_code = Some(403);
        },
    );
    store.insert_events("p", &refusal, None).unwrap();
    let fs = detect(&mut store);
    assert_eq!(rules_of(&fs, "hit"), ["revoked_use"]);
    assert!(rules_of(&fs, "miss").is_empty());
    let f = fs.iter().find(|f| f.rule == "revoked_use").unwrap();
    assert_eq!(f.severity, keyaudit::model::Severity::Critical);
    assert_eq!(f.evidence.len(), 3);
}

#[test]
fn bulk_export_fires_on_oversized_responses_only() {
    let (h, m, fs) = pair(
        burst("hit", "x", at(13), 3, 20, |e, _| e.records = Some(5000)),
        burst("miss", "x", at(13), 3, 20, |e, _| e.records = Some(400)),
    );
    assert_eq!(h, ["bulk_export"]);
    assert!(m.is_empty(), "{m:?}");
    let f = fs.iter().find(|f| f.rule == "bulk_export").unwrap();
    assert!(f.explanation.contains("15000 records"), "{}", f.explanation);
}

#[test]
fn concurrent_networks_fire_on_alternation_not_on_a_daily_switch() {
    let mut store = store_with(&[
        key("hit", now(), 60),
        key("miss", now(), 60),
        key("refused", now(), 60),
    ]);
    for k in ["hit", "miss", "refused"] {
        store
            .insert_events("p", &history(k, 22, 6, true), None)
            .unwrap();
    }
    let alt = burst("hit", "c", at(13), 30, 50, |e, i| {
        if i % 2 == 1 {
            e.source_ip = Some("192.0.2.44".into())
        }
    });
    store.insert_events("p", &alt, None).unwrap();
    // `miss` switches once, an hour apart.
    let once = burst("miss", "c", at(13), 6, 50, |e, i| {
        if i >= 3 {
            e.source_ip = Some("192.0.2.44".into());
            e.time += Duration::minutes(40);
        }
    });
    store.insert_events("p", &once, None).unwrap();
    let fs = detect(&mut store);
    assert_eq!(rules_of(&fs, "hit"), ["concurrent_networks"]);
    assert!(
        rules_of(&fs, "miss").is_empty(),
        "{:?}",
        rules_of(&fs, "miss")
    );
}

#[test]
fn learning_keys_raise_no_novelty_findings() {
    let mut store = store_with(&[key("young", now(), 3)]);
    // Two days of history, then a new network, night work and a volume spike.
    let mut evs: Vec<Event> = history("young", 2, 6, false);
    evs.extend(burst(
        "young",
        "x",
        day0() + Duration::days(2) + Duration::hours(2),
        200,
        50,
        |e, _| e.source_ip = Some("203.0.113.5".into()),
    ));
    store.insert_events("p", &evs, None).unwrap();
    let fs = detect(&mut store);
    assert!(
        rules_of(&fs, "young").is_empty(),
        "{:?}",
        rules_of(&fs, "young")
    );
    let k = store.key("p", "young").unwrap().unwrap();
    match detect::baseline_status(&store, k.key_ref, &DetectConfig::default()).unwrap() {
        BaselineStatus::Learning {
            events, need_days, ..
        } => {
            assert_eq!(events, 296);
            assert_eq!(need_days, 7);
        }
        other => panic!("expected learning, got {other:?}"),
    }
}

fn hygiene_of(fs: &[Finding], key: &str) -> Vec<String> {
    let mut v: Vec<String> = fs
        .iter()
        .filter(|f| f.key_id == key && f.category == keyaudit::model::Category::Hygiene)
        .map(|f| f.rule.clone())
        .collect();
    v.sort();
    v
}

#[test]
fn hygiene_rules_fire_and_near_misses_stay_quiet() {
    let n = now();
    let mut old = key("old", n, 100); // rotation overdue
    old.expires = None; // no expiry
    let mut young = key("young", n, 80); // 80 < 90 days
    young.expires = Some(n + Duration::days(15)); // 15 > 14 days
    let mut soon = key("soon", n, 10);
    soon.expires = Some(n + Duration::days(5));
    let mut idle = key("idle", n, 40); // never used, created 40 days ago
    idle.last_used = None;
    let mut wide = key("wide", n, 40);
    wide.scopes = vec!["candidates:read".into(), "ssn:read".into()];
    let mut dup_a = key("dup-a", n, 50);
    dup_a.purpose = Some("sync".into());
    let mut dup_b = key("dup-b", n, 20);
    dup_b.purpose = Some("sync".into());
    let mut sandbox = key("dup-c", n, 20);
    sandbox.purpose = Some("sync".into());
    sandbox.environment = Some("sandbox".into()); // other environment: not a duplicate
    let mut store = store_with(&[old, young, soon, idle, wide, dup_a, dup_b, sandbox]);
    // Everyone but `idle` works in the last days (so `unused_key` stays quiet for them).
    let mut evs = Vec::new();
    for k in ["old", "young", "soon", "wide", "dup-a", "dup-b", "dup-c"] {
        evs.extend(burst(k, "u", at(10), 3, 30, |_, _| {}));
    }
    store.insert_events("p", &evs, None).unwrap();
    let fs = detect(&mut store);
    assert_eq!(hygiene_of(&fs, "old"), ["no_expiry", "rotation_overdue"]);
    assert!(
        hygiene_of(&fs, "young").is_empty(),
        "{:?}",
        hygiene_of(&fs, "young")
    );
    assert_eq!(hygiene_of(&fs, "soon"), ["expiring_soon"]);
    assert_eq!(hygiene_of(&fs, "idle"), ["unused_key"]);
    assert_eq!(hygiene_of(&fs, "wide"), ["excess_scopes"]);
    let f = fs.iter().find(|f| f.rule == "excess_scopes").unwrap();
    assert!(
        f.explanation.contains("Remove ssn:read"),
        "{}",
        f.explanation
    );
    assert_eq!(hygiene_of(&fs, "dup-a"), ["duplicate_key"]);
    assert!(hygiene_of(&fs, "dup-b").is_empty());
    assert!(hygiene_of(&fs, "dup-c").is_empty());
}

#[test]
fn a_large_group_of_duplicate_keys_names_the_newest_and_counts_the_rest() {
    let n = now();
    let keys: Vec<_> = (0..2_000)
        .map(|i| {
            let mut k = key(&format!("dup-{i:04}"), n, 50);
            k.created = Some(n - Duration::days(50) + Duration::minutes(i));
            k.purpose = Some("sync".into());
            k
        })
        .collect();
    let mut store = store_with(&keys);
    let fs = detect(&mut store);
    let dups: Vec<&Finding> = fs.iter().filter(|f| f.rule == "duplicate_key").collect();
    assert_eq!(dups.len(), 1_999, "every key but the newest");
    for f in &dups {
        // Bounded text: five keys named, the rest counted (not 2,000 ids in each).
        assert!(f.explanation.len() < 1_000, "{}", f.explanation.len());
        assert!(f.explanation.contains("dup-1999"), "{}", f.explanation);
        assert!(
            f.explanation.contains("and 1995 older"),
            "{}",
            f.explanation
        );
    }
    // The newest is the one to keep.
    assert!(!hygiene_of(&fs, "dup-1999").contains(&"duplicate_key".to_string()));
}

#[test]
fn exposure_findings_attach_to_a_key() {
    let store = store_with(&[key("k", now(), 10)]);
    let f = detect::raise_exposure(
        &store,
        "p",
        "k",
        now() - chrono::Duration::days(2),
        "Key found in a public repository",
        "The secret of k is in github.com/acme/app at config.yml line 4; rotate it now.",
        &["config.yml:4".into()],
    )
    .unwrap();
    assert_eq!(f.severity, keyaudit::model::Severity::Critical);
    assert_eq!(f.category, keyaudit::model::Category::Exposure);
    assert_eq!(f.first_seen, now() - chrono::Duration::days(2));
    assert!(detect::raise_exposure(&store, "p", "nope", now(), "t", "e", &[]).is_err());
}

/// Day `d` at `h`:00 UTC.
fn day_at(d: i64, h: i64) -> DateTime<Utc> {
    day0() + Duration::days(d) + Duration::hours(h)
}

#[test]
fn a_young_key_learns_its_second_network_unless_requests_from_it_are_unusual() {
    // Seven working days: ready, but its networks are not settled (10 active days).
    let mut store = store_with(&[
        key("hit", now(), 60),
        key("miss", now(), 60),
        key("refused", now(), 60),
    ]);
    for k in ["hit", "miss", "refused"] {
        store
            .insert_events("p", &history(k, 9, 6, false), None)
            .unwrap();
    }
    // `miss` works from home: its usual requests from another network, one of them
    // refused as ordinary work sometimes is.
    let home = burst("miss", "h", day_at(9, 10), 20, 120, |e, i| {
        e.source_ip = Some("192.0.2.17".into());
        if i == 7 {
            e.outcome = Outcome::Denied;
            e.status_code = None;
        }
    });
    // `hit` is used from elsewhere for something it never did.
    let thief = burst("hit", "t", day_at(9, 10), 20, 60, |e, _| {
        e.source_ip = Some("203.0.113.9".into());
        e.action = "GET /v1/admin/users".into();
    });
    // `refused` makes its usual requests from elsewhere and is refused again and again.
    let refused = burst("refused", "r", day_at(9, 10), 20, 60, |e, i| {
        e.source_ip = Some("203.0.113.40".into());
        if i % 5 == 0 {
            e.outcome = Outcome::Denied;
            e.status_code = None;
        }
    });
    store.insert_events("p", &home, None).unwrap();
    store.insert_events("p", &thief, None).unwrap();
    store.insert_events("p", &refused, None).unwrap();
    let fs = detect(&mut store);
    assert_eq!(rules_of(&fs, "hit"), ["new_network"]);
    assert_eq!(rules_of(&fs, "refused"), ["new_network"]);
    assert!(
        rules_of(&fs, "miss").is_empty(),
        "{:?}",
        rules_of(&fs, "miss")
    );
}

#[test]
fn refusals_before_a_known_deactivation_are_not_use_after_it() {
    let stopped = day_at(9, 17);
    let mut hit = key("hit", now(), 60);
    hit.status = KeyStatus::Inactive;
    let mut miss = key("miss", now(), 60);
    miss.status = KeyStatus::Inactive;
    let mut store = store_with(&[hit, miss]);
    for k in ["hit", "miss"] {
        store
            .insert_events("p", &history(k, 10, 6, false), None)
            .unwrap();
        assert!(store.set_key_stopped_at("p", k, Some(stopped)).unwrap());
    }
    // Refusals without an HTTP status (as in CloudTrail), as the last requests.
    let no_status = |e: &mut Event, _| {
        e.outcome = Outcome::Denied;
        e.status_code = None;
        e.records = None;
    };
    // `miss`: one just before the deactivation, one within the clock skew after it.
    let mut before = burst("miss", "b", stopped - Duration::minutes(3), 1, 1, no_status);
    before.extend(burst(
        "miss",
        "s",
        stopped + Duration::minutes(2),
        1,
        1,
        no_status,
    ));
    // `hit`: attempts two days later.
    let after = burst("hit", "a", day_at(11, 10), 4, 30, no_status);
    store.insert_events("p", &before, None).unwrap();
    store.insert_events("p", &after, None).unwrap();
    let fs = detect(&mut store);
    assert_eq!(rules_of(&fs, "hit"), ["revoked_use"]);
    assert!(
        rules_of(&fs, "miss").is_empty(),
        "{:?}",
        rules_of(&fs, "miss")
    );
    let f = fs.iter().find(|f| f.rule == "revoked_use").unwrap();
    assert_eq!(f.evidence.len(), 4);
}

#[test]
fn a_bursty_key_is_judged_against_its_own_bursts() {
    let mut store = store_with(&[
        key("hit", now(), 60),
        key("miss", now(), 60),
        key("refused", now(), 60),
    ]);
    for k in ["hit", "miss", "refused"] {
        store
            .insert_events("p", &history(k, 22, 6, false), None)
            .unwrap();
        // A build-like burst of 60 requests every working day at 12:00.
        for d in 0..22 {
            if matches!(d % 7, 5 | 6) {
                continue;
            }
            let b = burst(k, &format!("b{d}-"), day_at(d, 12), 60, 20, |_, _| {});
            store.insert_events("p", &b, None).unwrap();
        }
    }
    // Two builds overlap: 110 requests in an hour. Not a spike for this key; 400 is.
    let overlap = burst("miss", "o", at(13), 110, 50, |_, _| {});
    let spike = burst("hit", "s", at(13), 400, 50, |_, _| {});
    store.insert_events("p", &overlap, None).unwrap();
    store.insert_events("p", &spike, None).unwrap();
    let fs = detect(&mut store);
    assert_eq!(rules_of(&fs, "hit"), ["volume_spike"]);
    assert!(
        rules_of(&fs, "miss").is_empty(),
        "{:?}",
        rules_of(&fs, "miss")
    );
}

#[test]
fn bulk_export_fires_on_an_hour_of_object_reads_in_logs_without_record_counts() {
    let s3 = |name: &'static str| {
        move |e: &mut Event, _| {
            e.action = format!("s3.amazonaws.com:{name}");
            e.scope = Some(format!("s3:{name}"));
            e.status_code = None;
            e.records = None;
        }
    };
    // The same volume: object reads are a copy, listings are only a volume spike.
    let (h, m, fs) = pair(
        burst("hit", "x", at(13), 300, 50, s3("GetObject")),
        burst("miss", "x", at(13), 300, 50, s3("ListObjects")),
    );
    assert_eq!(h, ["bulk_export"]);
    assert_eq!(m, ["volume_spike"]);
    let f = fs.iter().find(|f| f.rule == "bulk_export").unwrap();
    assert!(f.title.contains("300 objects"), "{}", f.title);
    assert_eq!(f.evidence.len(), 50);
}
