//! Findings over time: stable ids, incremental equals full, auto-resolve, operator
//! status kept, suppression reopening, and the CLI's `--fail-on` exit code.

mod support;

use chrono::{DateTime, Duration, Utc};
use keyaudit::detect::{self, DetectConfig};
use keyaudit::model::{Event, Finding, FindingStatus, Key, KeyStatus, Outcome};
use keyaudit::store::{FindingQuery, Store};
use std::process::Command;
use support::*;

fn now() -> DateTime<Utc> {
    day0() + Duration::days(23)
}

fn all(store: &Store) -> Vec<Finding> {
    store.findings(&FindingQuery::default()).unwrap()
}

fn get(store: &Store, id: &str) -> Finding {
    store.finding(id).unwrap().unwrap()
}

fn ids(fs: &[Finding]) -> Vec<(String, String, FindingStatus)> {
    let mut v: Vec<_> = fs
        .iter()
        .map(|f| (f.id.clone(), f.rule.clone(), f.status))
        .collect();
    v.sort();
    v
}

/// A key with three weeks of history, then a new network on day 22.
/// The key `k`, 120 days old, without an expiry.
fn key_k() -> Key {
    let mut k = key("k", now(), 120);
    k.expires = None;
    k
}

/// Twenty requests of `k` from a network its history never used, on day 22.
fn new_network_burst() -> Vec<Event> {
    burst(
        "k",
        "x",
        day0() + Duration::days(22) + Duration::hours(11),
        20,
        60,
        |e, _| e.source_ip = Some("203.0.113.9".into()),
    )
}

fn scenario() -> Store {
    let mut store = store_with(&[key_k()]);
    store
        .insert_events("p", &history("k", 22, 6, false), None)
        .unwrap();
    let x = new_network_burst();
    store.insert_events("p", &x, None).unwrap();
    store
}

#[test]
fn detection_is_idempotent_and_incremental_matches_full() {
    let cfg = DetectConfig::default();
    let mut store = scenario();
    let r1 = detect::detect_full(&mut store, &cfg, now()).unwrap();
    let first = all(&store);
    assert!(first.iter().any(|f| f.rule == "new_network"));
    assert_eq!(r1.opened, first.len());
    let r2 = detect::detect_full(&mut store, &cfg, now()).unwrap();
    assert_eq!(ids(&all(&store)), ids(&first), "same findings, same ids");
    assert_eq!((r2.opened, r2.resolved), (0, 0));

    // The same history in two halves: full on the first, incremental on the rest.
    let mut split = store_with(&[key_k()]);
    let hist = history("k", 22, 6, false);
    let (a, b) = hist.split_at(hist.len() / 2);
    split.insert_events("p", a, None).unwrap();
    detect::detect_full(&mut split, &cfg, now()).unwrap();
    split.insert_events("p", b, None).unwrap();
    let x = new_network_burst();
    split.insert_events("p", &x, None).unwrap();
    let r = detect::detect_incremental(&mut split, &cfg, now()).unwrap();
    assert!(!r.full);
    assert_eq!(
        r.events,
        (b.len() + x.len()) as u64,
        "only new events are read"
    );
    let full: Vec<_> = ids(&first);
    let inc: Vec<_> = ids(&all(&split));
    assert_eq!(inc, full);
    let f1 = first.iter().find(|f| f.rule == "new_network").unwrap();
    let f2 = split.finding(&f1.id).unwrap().unwrap();
    assert_eq!(f1.evidence, f2.evidence);
    assert_eq!(f1.explanation, f2.explanation);

    // A late import of old events replays that key: same findings again.
    let late = burst(
        "k",
        "late",
        day0() + Duration::days(3) + Duration::hours(10),
        2,
        10,
        |_, _| {},
    );
    split.insert_events("p", &late, None).unwrap();
    detect::detect_incremental(&mut split, &cfg, now()).unwrap();
    assert_eq!(ids(&all(&split)), full);
}

#[test]
fn a_saved_state_that_does_not_decode_is_rebuilt_from_the_key_history() {
    let cfg = DetectConfig::default();
    let mut whole = scenario();
    detect::detect_full(&mut whole, &cfg, now()).unwrap();
    let want = ids(&all(&whole));

    // On a cache file, so the test can change it with a connection of its own.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let mut split = Store::open(&path).unwrap();
    split.ensure_provider("p", "http", None).unwrap();
    split.upsert_keys("p", &[key_k()], Utc::now()).unwrap();
    let hist = history("k", 22, 6, false);
    let (a, b) = hist.split_at(hist.len() / 2);
    split.insert_events("p", a, None).unwrap();
    detect::detect_full(&mut split, &cfg, now()).unwrap();
    // A state this build cannot read: JSON, as caches before schema version 5 held.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE detect_state SET state = '{\"events\":1}'", [])
        .unwrap();
    split.insert_events("p", b, None).unwrap();
    let x = new_network_burst();
    split.insert_events("p", &x, None).unwrap();
    let r = detect::detect_incremental(&mut split, &cfg, now()).unwrap();
    assert!(!r.full);
    assert_eq!(
        r.events,
        (hist.len() + x.len()) as u64,
        "the key is replayed"
    );
    assert_eq!(ids(&all(&split)), want);
    let key_ref = split.key("p", "k").unwrap().unwrap().key_ref;
    assert!(matches!(
        detect::baseline_status(&split, key_ref, &cfg).unwrap(),
        detect::BaselineStatus::Ready { .. }
    ));
}

#[test]
fn a_cache_with_json_states_is_migrated_and_rebuilt_by_a_full_run() {
    let cfg = DetectConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let want = {
        let mut store = Store::open(&path).unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        store.upsert_keys("p", &[key_k()], Utc::now()).unwrap();
        store
            .insert_events("p", &history("k", 22, 6, false), None)
            .unwrap();
        detect::detect_full(&mut store, &cfg, now()).unwrap();
        drop(store);
        // Back to schema version 3: the JSON state table of that version, and none of
        // the raw record blocks of version 6 or the tables and columns after it.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DROP TABLE raw_blocks;
                 ALTER TABLE keys DROP COLUMN stopped_at;
                 ALTER TABLE workflows DROP COLUMN op_key;
                 DROP TABLE sigma_checkpoint;
                 DROP TABLE import_files;
                 DROP TABLE cache_meta;
                 DROP TABLE workflow_origins;
                 ALTER TABLE events DROP COLUMN raw_block;
                 ALTER TABLE events DROP COLUMN raw_at;
                 DROP TABLE detect_state;
                 CREATE TABLE detect_state (
                     key_ref INTEGER PRIMARY KEY REFERENCES keys(id),
                     last_time INTEGER NOT NULL,
                     scopes TEXT NOT NULL DEFAULT '[]',
                     state TEXT NOT NULL);
                 INSERT INTO detect_state SELECT id, 0, '[]', '{\"events\":1}' FROM keys;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        ids(&all(&Store::open_read_only(&path).unwrap()))
    };
    let mut store = Store::open(&path).unwrap();
    let sql = rusqlite::Connection::open(&path).unwrap();
    let (states, checkpoints): (i64, i64) = sql
        .query_row(
            "SELECT (SELECT count(*) FROM detect_state), (SELECT count(*) FROM detect_checkpoint)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (states, checkpoints),
        (0, 0),
        "old states and checkpoint dropped"
    );
    let r = detect::detect_incremental(&mut store, &cfg, now()).unwrap();
    assert!(r.full, "no checkpoint: a full run");
    assert_eq!((r.opened, r.resolved), (0, 0));
    assert_eq!(ids(&all(&store)), want);
    let blob: Vec<u8> = sql
        .query_row("SELECT state FROM detect_state", [], |r| r.get(0))
        .unwrap();
    assert!(blob.len() < 1024, "{} bytes", blob.len());
}

#[test]
fn findings_resolve_when_the_condition_goes_but_operator_status_stays() {
    let cfg = DetectConfig::default();
    let mut store = scenario();
    detect::detect_full(&mut store, &cfg, now()).unwrap();
    let fs = all(&store);
    let no_expiry = fs
        .iter()
        .find(|f| f.rule == "no_expiry")
        .unwrap()
        .id
        .clone();
    let rotation = fs
        .iter()
        .find(|f| f.rule == "rotation_overdue")
        .unwrap()
        .id
        .clone();
    let network = fs
        .iter()
        .find(|f| f.rule == "new_network")
        .unwrap()
        .id
        .clone();
    store
        .set_finding_status(
            &rotation,
            FindingStatus::Acknowledged,
            Some("rotation planned"),
            None,
        )
        .unwrap();
    store
        .set_finding_status(
            &network,
            FindingStatus::Suppressed,
            Some("partner moved"),
            None,
        )
        .unwrap();
    // The key gets an expiry and is re-created young: both hygiene conditions go.
    let mut k = key("k", now(), 10);
    k.expires = Some(now() + Duration::days(60));
    store.upsert_keys("p", &[k], Utc::now()).unwrap();
    detect::detect_incremental(&mut store, &cfg, now()).unwrap();
    assert_eq!(get(&store, &no_expiry).status, FindingStatus::Resolved);
    let r = get(&store, &rotation);
    assert_eq!(
        r.status,
        FindingStatus::Acknowledged,
        "operator status kept"
    );
    assert_eq!(r.note.as_deref(), Some("rotation planned"));
    assert_eq!(get(&store, &network).status, FindingStatus::Suppressed);
    detect::detect_full(&mut store, &cfg, now()).unwrap();
    assert_eq!(get(&store, &network).status, FindingStatus::Suppressed);
    assert_eq!(get(&store, &network).note.as_deref(), Some("partner moved"));

    // The condition comes back: the resolved finding reopens with the same id.
    let mut k = key("k", now(), 10);
    k.expires = None;
    store.upsert_keys("p", &[k], Utc::now()).unwrap();
    detect::detect_incremental(&mut store, &cfg, now()).unwrap();
    assert_eq!(get(&store, &no_expiry).status, FindingStatus::Open);
}

#[test]
fn a_suppression_with_an_end_date_reopens_after_it() {
    let cfg = DetectConfig::default();
    let mut store = scenario();
    detect::detect_full(&mut store, &cfg, now()).unwrap();
    let id = all(&store)
        .into_iter()
        .find(|f| f.rule == "new_network")
        .unwrap()
        .id;
    store
        .set_finding_status(
            &id,
            FindingStatus::Suppressed,
            Some("ok for a week"),
            Some(now() + Duration::days(7)),
        )
        .unwrap();
    detect::detect_full(&mut store, &cfg, now() + Duration::days(1)).unwrap();
    assert_eq!(
        store.finding(&id).unwrap().unwrap().status,
        FindingStatus::Suppressed
    );
    detect::detect_full(&mut store, &cfg, now() + Duration::days(8)).unwrap();
    let f = store.finding(&id).unwrap().unwrap();
    assert_eq!(f.status, FindingStatus::Open);
    assert_eq!(f.note.as_deref(), Some("ok for a week"));
}

fn keyaudit(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyaudit"))
        .args(args)
        .arg("--db")
        .arg(dir.join("cache.db"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("HOME", dir)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("KEYAUDIT_DB")
        .env_remove("KEYAUDIT_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_fail_on_exits_3_while_a_high_finding_is_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[detect]\nunused_days = 60\n",
    )
    .unwrap();
    {
        let mut revoked = key("gone", now(), 30);
        revoked.status = KeyStatus::Revoked;
        let mut store = Store::open(&dir.path().join("cache.db")).unwrap();
        store.ensure_provider("p", "http", None).unwrap();
        store.upsert_keys("p", &[revoked], Utc::now()).unwrap();
        let mut evs = history("gone", 3, 2, false);
        evs.extend(burst(
            "gone",
            "r",
            day0() + Duration::days(5),
            2,
            10,
            |e, _| {
                e.outcome = Outcome::Denied;
                e.status_code = Some(401);
            },
        ));
        store.insert_events("p", &evs, None).unwrap();
    }
    let (code, out, err) = keyaudit(dir.path(), &["detect"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = keyaudit(dir.path(), &["findings", "--fail-on", "high"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("revoked_use") && out.contains("someone still holds it"),
        "{out}"
    );
    let (code, json, _) = keyaudit(dir.path(), &["findings", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let f = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "revoked_use")
        .unwrap();
    assert_eq!(f["evidence"].as_array().unwrap().len(), 2);
    let id = f["id"].as_str().unwrap().to_string();
    let (code, show, _) = keyaudit(dir.path(), &["findings", "show", &id[..6]]);
    assert_eq!(code, 0, "{show}");
    assert!(
        show.contains("gone-r0") && show.contains("gone-r1"),
        "{show}"
    );
    let (code, _, err) = keyaudit(
        dir.path(),
        &["findings", "ack", &id, "--note", "partner notified"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = keyaudit(dir.path(), &["findings", "--fail-on", "high"]);
    assert_eq!(code, 0, "{out}");
    let (_, journal, _) = keyaudit(dir.path(), &["journal", "--format", "json"]);
    assert!(
        journal.contains("finding.ack") && journal.contains("partner notified"),
        "{journal}"
    );
    let (code, _, err) = keyaudit(dir.path(), &["findings", "--fail-on", "severe"]);
    assert_eq!(code, 2, "{err}");
    std::fs::write(
        dir.path().join("config.toml"),
        "[detect]\nunused_days = 0\n",
    )
    .unwrap();
    let (code, _, err) = keyaudit(dir.path(), &["detect"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("[detect] unused_days: expected a positive integer"),
        "{err}"
    );
}
