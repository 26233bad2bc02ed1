//! Sync against the real demo provider on loopback: every key and event arrives exactly
//! once, with faults injected, and after a SIGKILL half-way.

use chrono::{DateTime, Utc};
use keyaudit::config::ProviderConfig;
use keyaudit::demo::{DemoHandle, DemoOptions};
use keyaudit::store::{EventQuery, Store};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-admin-token";

fn fixed_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn demo(seed: u64, faults: Option<&str>) -> DemoHandle {
    keyaudit::demo::start(DemoOptions {
        port: 0,
        seed,
        token: TOKEN.into(),
        now: Some(fixed_now()),
        live_rate: 0.0,
        faults: faults.map(str::to_string),
        ..Default::default()
    })
    .await
    .expect("start demo")
}

/// Everything the provider has, read with a plain client (ground truth).
async fn provider_truth(url: &str) -> (HashSet<String>, Vec<(String, DateTime<Utc>)>) {
    let client = reqwest::Client::new();
    let mut keys = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{url}/v1/keys"))
            .bearer_auth(TOKEN)
            .query(&[("limit", "500")]);
        if let Some(t) = &token {
            req = req.query(&[("page_token", t)]);
        }
        let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        for k in v["keys"].as_array().unwrap() {
            keys.insert(k["id"].as_str().unwrap().to_string());
        }
        match v["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{url}/v1/events"))
            .bearer_auth(TOKEN)
            .query(&[("limit", "10000")]);
        if let Some(c) = &cursor {
            req = req.query(&[("since", c)]);
        }
        let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        for e in v["events"].as_array().unwrap() {
            let t = DateTime::parse_from_rfc3339(e["time"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc);
            events.push((e["id"].as_str().unwrap().to_string(), t));
        }
        cursor = Some(v["next_cursor"].as_str().unwrap().to_string());
        if !v["has_more"].as_bool().unwrap_or(false) {
            break;
        }
    }
    (keys, events)
}

fn write_config(dir: &Path, url: &str, extra: &str) -> String {
    let p = dir.join("config.toml");
    std::fs::write(
        &p,
        format!(
            "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"{url}\"\ntoken_env = \"TG_TOKEN\"\n{extra}"
        ),
    )
    .unwrap();
    p.to_string_lossy().into_owned()
}

fn keyaudit(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyaudit"));
    c.env("TG_TOKEN", TOKEN)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env_remove("KEYAUDIT_DB")
        .env_remove("KEYAUDIT_CONFIG");
    c
}

fn run_ok(mut c: Command) -> Output {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json_ids(o: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON array");
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_brings_every_key_and_event_exactly_once() {
    let demo = demo(7, None).await;
    let (keys, events) = provider_truth(&demo.url).await;
    assert!(keys.len() >= 60 && events.len() >= 50_000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &demo.url, "");
    let db = dir.path().join("cache.db");
    let db = db.to_str().unwrap();

    for _ in 0..2 {
        let mut c = keyaudit(dir.path());
        c.args(["--db", db, "--config", &cfg, "sync"]);
        run_ok(c);
    }

    let mut c = keyaudit(dir.path());
    c.args(["--db", db, "keys", "--format", "json"]);
    let o = run_ok(c);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), keys.len());
    let got: HashSet<String> = listed
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, keys);
    for k in listed {
        for field in [
            "owner",
            "scopes",
            "status",
            "created",
            "last_used",
            "provider",
            "fingerprint",
        ] {
            assert!(k.get(field).is_some(), "key JSON lacks `{field}`: {k}");
        }
        assert!(!k["owner"].as_str().unwrap().is_empty());
    }

    // The events of the last 30 days relative to the demo's clock, each once.
    let since = fixed_now() - chrono::Duration::days(30);
    let mut c = keyaudit(dir.path());
    c.args([
        "--db",
        db,
        "events",
        "--since",
        &keyaudit::model::rfc3339(since),
        "--format",
        "json",
    ]);
    let o = run_ok(c);
    let ids = json_ids(&o);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event was listed twice");
    let expected: HashSet<String> = events
        .iter()
        .filter(|(_, t)| *t >= since)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(unique.len(), expected.len());
    assert!(ids.iter().all(|id| expected.contains(id)));
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_faults_without_loss_or_duplicates() {
    let clean = demo(11, None).await;
    let (keys, events) = provider_truth(&clean.url).await;
    clean.shutdown().await;
    let faulty = demo(
        11,
        Some("429=0.1,500=0.08,503=0.05,truncate=0.08,drop=0.05"),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let cfg = ProviderConfig {
        name: "talentgrid".into(),
        kind: "http".into(),
        url: Some(faulty.url.clone()),
        token: Some(TOKEN.into()),
        page_size: Some(1000),
        max_attempts: Some(12),
        ..Default::default()
    };
    let provider = keyaudit::provider::from_config(&cfg).unwrap();
    let report = keyaudit::sync::sync_provider(
        &db,
        provider.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .expect("sync completes despite faults");
    assert_eq!(report.new_events, events.len());

    let store = Store::open(&db).unwrap();
    let cached: HashSet<String> = store
        .keys()
        .unwrap()
        .into_iter()
        .map(|k| k.key.id)
        .collect();
    assert_eq!(cached, keys);
    let mut ids = HashSet::new();
    store
        .for_each_event(&EventQuery::default(), |r| {
            assert!(ids.insert(r.event.id), "duplicate event");
            true
        })
        .unwrap();
    let truth: HashSet<String> = events.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, truth);

    // A second sync over the faulty server adds nothing.
    let again = keyaudit::sync::sync_provider(
        &db,
        provider,
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(again.new_events, 0);
    faulty.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_half_way_leaves_a_sound_cache_and_the_next_completes_it() {
    let demo = demo(5, Some("latency=0.5")).await;
    let (_, events) = provider_truth(&demo.url).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &demo.url, "page_size = 200\n");
    let db = dir.path().join("cache.db");
    let dbs = db.to_str().unwrap().to_string();

    let mut c = keyaudit(dir.path());
    c.args(["--db", &dbs, "--config", &cfg, "sync"]);
    let mut child = c.spawn().unwrap();
    // Wait until some pages are committed, then SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        assert!(Instant::now() < deadline, "sync never committed a page");
        if let Ok(store) = Store::open_read_only(&db) {
            if store.event_count().unwrap_or(0) > 2_000 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = Store::open(&db).unwrap();
    assert!(
        store.integrity_ok().unwrap(),
        "integrity_check failed after SIGKILL"
    );
    let partial = store.event_count().unwrap() as usize;
    assert!(
        partial < events.len(),
        "the sync finished before it was killed"
    );
    drop(store);

    let mut c = keyaudit(dir.path());
    c.args(["--db", &dbs, "--config", &cfg, "sync"]);
    run_ok(c);
    let store = Store::open(&db).unwrap();
    assert!(store.integrity_ok().unwrap());
    assert_eq!(store.event_count().unwrap() as usize, events.len());
    demo.shutdown().await;
}

#[test]
fn serve_only_prints_one_line_with_its_url_and_serves_until_killed() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut c = keyaudit(dir.path());
    c.args([
        "demo",
        "--serve-only",
        "--port",
        "0",
        "--seed",
        "7",
        "--token",
        TOKEN,
    ])
    .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status_ok, status_bad) = rt.block_on(async {
        let c = reqwest::Client::new();
        let ok = c
            .get(format!("{url}/v1/keys"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        let bad = c
            .get(format!("{url}/v1/keys"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status();
        (ok, bad)
    });
    assert_eq!(status_ok, 200);
    assert_eq!(status_bad, 401);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_matches_a_leaked_key_to_the_cache_without_printing_it() {
    let demo = demo(3, None).await;
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/v1/keys", demo.url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"name": "leaky", "owner": "Acme Payroll", "environment": "prod", "scopes": ["payroll:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &demo.url, "");
    let db = dir.path().join("cache.db");
    let db = db.to_str().unwrap();
    let mut c = keyaudit(dir.path());
    c.args(["--db", db, "--config", &cfg, "sync"]);
    run_ok(c);
    let leak = dir.path().join("pastebin");
    std::fs::create_dir_all(&leak).unwrap();
    std::fs::write(
        leak.join("ticket-4411.txt"),
        format!("hi, our key is {secret}\nthanks\n"),
    )
    .unwrap();
    let mut c = keyaudit(dir.path());
    c.args([
        "--db",
        db,
        "scan",
        leak.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let o = run_ok(c);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains(&secret), "the secret was printed");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["matched_key"], serde_json::json!(id));
    assert_eq!(v[0]["line"], serde_json::json!(1));
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_runs_the_sigma_rules_over_the_events_it_brought_in() {
    use keyaudit::model::Category;
    use keyaudit::sigma::{RuleSet, SigmaConfig};
    use keyaudit::store::FindingQuery;
    let demo = keyaudit::demo::start(DemoOptions {
        port: 0,
        seed: 7,
        token: TOKEN.into(),
        events: 5_000,
        live_rate: 40.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("reads.yml"),
        "title: Candidate records read through the API\n\
         id: 5d1c0e52-reads\n\
         level: low\n\
         logsource:\n  product: keyaudit\n  service: api\n\
         detection:\n  sel:\n    action|startswith: 'GET /v1/candidates'\n    outcome: success\n  \
         condition: sel\n",
    )
    .unwrap();
    let set = RuleSet::load(std::slice::from_ref(&rules));
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    let sigma: keyaudit::sync::SyncSigma = std::sync::Arc::new((set, SigmaConfig::default()));
    let db = dir.path().join("cache.db");
    let provider = keyaudit::provider::from_config(&ProviderConfig {
        name: "talentgrid".into(),
        kind: "http".into(),
        url: Some(demo.url.clone()),
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .unwrap();
    let cfg = keyaudit::detect::DetectConfig::default();
    let sync = |sigma| {
        keyaudit::sync::sync_provider_with(&db, provider.clone(), Some(&cfg), sigma, &|_| {})
    };

    // The first sync evaluates every event it brought in.
    let first = sync(Some(sigma.clone())).await.unwrap();
    let s = first.sigma.expect("the Sigma rules ran");
    assert!(s.full && s.rules == 1, "{s:?}");
    assert_eq!(s.events as usize, first.new_events);
    assert!(s.matches > 0 && s.opened > 0, "{s:?}");
    let store = Store::open(&db).unwrap();
    let found: Vec<_> = store
        .findings(&FindingQuery::default())
        .unwrap()
        .into_iter()
        .filter(|f| f.category == Category::Sigma)
        .collect();
    assert_eq!(found.len(), s.opened);
    for f in &found {
        assert_eq!(f.rule, "sigma:5d1c0e52-reads");
        assert_eq!(f.title, "Candidate records read through the API");
        assert!(!f.evidence.is_empty(), "{f:?}");
    }

    // Live traffic arrives; the next sync evaluates only the new events.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = sync(Some(sigma.clone())).await.unwrap();
    let s2 = second.sigma.expect("the Sigma rules ran");
    assert!(second.new_events > 0);
    assert!(!s2.full, "{s2:?}");
    assert_eq!(s2.events as usize, second.new_events);

    // `keyaudit detect` after the sync shares the watermark: nothing left to evaluate.
    let mut store = Store::open(&db).unwrap();
    let s3 = keyaudit::sigma::run(&mut store, &sigma.0, &sigma.1, Utc::now()).unwrap();
    assert_eq!(s3.events, 0, "{s3:?}");
    // Without rules, a sync runs none.
    assert!(sync(None).await.unwrap().sigma.is_none());
    demo.shutdown().await;
}
