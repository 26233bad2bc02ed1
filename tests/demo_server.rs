//! The demo provider over real HTTP on loopback, as a client sees it.

use chrono::{TimeZone, Utc};
use keyaudit::demo::{self, DemoHandle, DemoOptions};
use keyaudit::secret;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A Wednesday, 15:00 UTC: partners in Europe and the Americas are at work, so live
/// traffic flows.
fn wednesday() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
}

async fn start(events: usize, live_rate: f64, faults: Option<&str>) -> DemoHandle {
    demo::start(DemoOptions {
        seed: 11,
        token: "t0ken".into(),
        now: Some(wednesday()),
        events,
        live_rate,
        faults: faults.map(str::to_string),
        ..DemoOptions::default()
    })
    .await
    .expect("demo starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(d: &DemoHandle, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{}", d.url, path))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap()
}

async fn get_json(d: &DemoHandle, path: &str) -> Value {
    let r = get(d, path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn post(d: &DemoHandle, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{}", d.url, path))
        .bearer_auth(&d.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn ping(d: &DemoHandle, secret: &str) -> u16 {
    client()
        .get(format!("{}/v1/partner/ping", d.url))
        .bearer_auth(secret)
        .header("user-agent", "rotation-check/1.0")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Reads every event after `cursor`; returns the events and the final cursor.
async fn drain(d: &DemoHandle, mut cursor: String, limit: usize) -> (Vec<Value>, String) {
    let mut all = Vec::new();
    loop {
        let page = get_json(d, &format!("/v1/events?since={cursor}&limit={limit}")).await;
        all.extend(page["events"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].as_str().unwrap().to_string();
        if !page["has_more"].as_bool().unwrap() {
            return (all, cursor);
        }
    }
}

async fn all_keys(d: &DemoHandle, limit: usize) -> Vec<Value> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let q = match &token {
            Some(t) => format!("/v1/keys?limit={limit}&page_token={t}"),
            None => format!("/v1/keys?limit={limit}"),
        };
        let page = get_json(d, &q).await;
        keys.extend(page["keys"].as_array().unwrap().iter().cloned());
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return keys,
        }
    }
}

#[tokio::test]
async fn admin_endpoints_refuse_a_missing_or_wrong_token() {
    let d = start(2_000, 0.0, None).await;
    for path in ["/v1/keys", "/v1/events", "/v1/demo/labels"] {
        let r = client()
            .get(format!("{}{path}", d.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let r = client()
            .get(format!("{}{path}", d.url))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    assert!(d.url.starts_with("http://127.0.0.1:"));
    d.shutdown().await;
}

#[tokio::test]
async fn paging_gives_every_key_and_event_exactly_once() {
    let d = start(20_000, 0.0, None).await;
    let keys = all_keys(&d, 7).await;
    let ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert!(keys.len() >= 60, "{} keys", keys.len());
    assert_eq!(unique.len(), keys.len(), "a key came twice");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "keys are not in id order"
    );
    assert_eq!(all_keys(&d, 5000).await.len(), keys.len());
    let one = get_json(&d, &format!("/v1/keys/{}", ids[3])).await;
    assert_eq!(one, keys[3]);
    assert_eq!(get(&d, "/v1/keys/key_nope").await.status(), 404);
    for k in &keys {
        assert!(k["fingerprint"].as_str().unwrap().starts_with("sha256:"));
        assert!(k.get("secret").is_none());
    }

    let (events, cursor) = drain(&d, "0".into(), 3_000).await;
    let (again, _) = drain(&d, "0".into(), 10_000).await;
    assert!(events.len() >= 18_000, "{} events", events.len());
    assert_eq!(events, again, "pages of different sizes disagree");
    assert_eq!(cursor, events.len().to_string());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["id"],
            format!("evt_{:012}", i + 1),
            "gap or duplicate at {i}"
        );
    }
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // Nothing new: the cursor stays and the page is empty.
    let tail = get_json(&d, &format!("/v1/events?since={cursor}")).await;
    assert_eq!(tail["events"], json!([]));
    assert_eq!(tail["next_cursor"], cursor.as_str());
    assert_eq!(tail["has_more"], false);
    // Keys' last use matches their latest event.
    let k = &keys.iter().find(|k| !k["last_used"].is_null()).unwrap();
    let latest = events
        .iter()
        .filter(|e| e["key_id"] == k["id"])
        .map(|e| e["time"].as_str().unwrap())
        .max();
    assert_eq!(latest, k["last_used"].as_str());
    assert_eq!(get(&d, "/v1/events?since=abc").await.status(), 400);
    assert_eq!(get(&d, "/v1/events?since=99999999").await.status(), 400);
    d.shutdown().await;
}

#[tokio::test]
async fn labels_name_real_events_of_every_kind() {
    let d = start(20_000, 0.0, None).await;
    let labels = get_json(&d, "/v1/demo/labels").await;
    assert_eq!(labels["seed"], 11);
    let (events, _) = drain(&d, "0".into(), 10_000).await;
    let mut kinds = HashSet::new();
    for l in labels["labels"].as_array().unwrap() {
        kinds.insert(l["kind"].as_str().unwrap().to_string());
        let ids = l["event_ids"].as_array().unwrap();
        assert_eq!(l["events"], ids.len());
        for id in ids {
            let n: usize = id.as_str().unwrap()["evt_".len()..].parse().unwrap();
            assert_eq!(events[n - 1]["key_id"], l["key_id"]);
        }
    }
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    d.shutdown().await;
}

#[tokio::test]
async fn live_events_follow_the_cursor_without_duplicates() {
    let d = start(3_000, 40.0, None).await;
    let (first, cursor) = drain(&d, "0".into(), 10_000).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (second, cursor2) = drain(&d, cursor, 7).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (third, _) = drain(&d, cursor2, 10_000).await;
    assert!(!second.is_empty() && !third.is_empty(), "no live events");
    let all: Vec<&Value> = first.iter().chain(&second).chain(&third).collect();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(
            e["id"],
            format!("evt_{:012}", i + 1),
            "gap or duplicate at {i}"
        );
    }
    // Live events are at the demo's present, after the history.
    assert!(second[0]["time"].as_str().unwrap() >= "2026-11-25T15:00:00.000Z");
    d.shutdown().await;
}

#[tokio::test]
async fn created_keys_ping_until_disabled_and_revoke_is_final() {
    let d = start(2_000, 0.0, None).await;
    let body = json!({"name": "qa-export", "owner": "QA Partner", "environment": "prod",
        "purpose": "testing", "scopes": ["employees:read"], "expires": null});
    let r = post(&d, "/v1/keys", body).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_str().unwrap().to_string();
    assert!(secret::is_well_formed(&secret));
    assert_eq!(created["key"]["fingerprint"], secret::fingerprint(&secret));
    assert_eq!(created["key"]["owner"], "QA Partner");
    let shown = get(&d, &format!("/v1/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!shown.contains(&secret), "the secret is shown again");

    assert_eq!(ping(&d, &secret).await, 200);
    assert_eq!(ping(&d, "tg_live_notakey").await, 401);
    let (events, _) = drain(&d, "0".into(), 10_000).await;
    let last = events
        .iter()
        .rev()
        .find(|e| e["key_id"] == id.as_str())
        .unwrap();
    assert_eq!(last["action"], "GET /v1/partner/ping");
    assert_eq!(last["outcome"], "success");
    assert_eq!(last["source_ip"], "127.0.0.1");
    assert_eq!(last["user_agent"], "rotation-check/1.0");
    assert!(!get_json(&d, &format!("/v1/keys/{id}")).await["last_used"].is_null());

    for _ in 0..2 {
        let r = post(&d, &format!("/v1/keys/{id}/disable"), json!({})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "inactive");
    }
    assert_eq!(ping(&d, &secret).await, 401);
    let (events, _) = drain(&d, "0".into(), 10_000).await;
    assert_eq!(events.last().unwrap()["outcome"], "denied");
    let r = post(&d, &format!("/v1/keys/{id}/enable"), json!({})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "active");
    assert_eq!(ping(&d, &secret).await, 200);
    for _ in 0..2 {
        let r = post(&d, &format!("/v1/keys/{id}/revoke"), json!({})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "revoked");
    }
    assert_eq!(ping(&d, &secret).await, 401);
    let r = post(&d, &format!("/v1/keys/{id}/enable"), json!({})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "conflict"
    );
    let listed = all_keys(&d, 500).await;
    let k = listed.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(k["status"], "revoked");
    assert_eq!(
        post(&d, "/v1/keys/key_nope/revoke", json!({}))
            .await
            .status(),
        404
    );
    let r = post(&d, "/v1/keys", json!({"name": "", "owner": "x"})).await;
    assert_eq!(r.status(), 400);
    d.shutdown().await;
}

#[tokio::test]
async fn rotation_keeps_the_old_key_working_only_during_grace() {
    let d = start(2_000, 0.0, None).await;
    let r = post(&d, "/v1/keys", json!({"name": "payroll-bridge", "owner": "Ledgerly Payroll",
        "environment": "prod", "purpose": "payroll-run", "scopes": ["payroll:read", "employees:read"]}))
    .await;
    let created: Value = r.json().await.unwrap();
    let old_secret = created["secret"].as_str().unwrap().to_string();
    let old_id = created["key"]["id"].as_str().unwrap().to_string();

    let r = post(
        &d,
        &format!("/v1/keys/{old_id}/rotate"),
        json!({"grace_seconds": 1}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let rotated: Value = r.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    let new_id = rotated["key"]["id"].as_str().unwrap();
    assert_ne!(new_id, old_id);
    assert_ne!(new_secret, old_secret);
    assert!(secret::is_well_formed(&new_secret));
    assert_eq!(rotated["old"]["rotated_to"], new_id);
    assert!(!rotated["old"]["grace_until"].is_null());
    for field in ["name", "owner", "environment", "purpose", "scopes"] {
        assert_eq!(rotated["key"][field], created["key"][field], "{field}");
    }
    assert_eq!(ping(&d, &old_secret).await, 200, "old key during grace");
    assert_eq!(ping(&d, &new_secret).await, 200);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(ping(&d, &old_secret).await, 401, "old key after grace");
    assert_eq!(ping(&d, &new_secret).await, 200);
    let old = get_json(&d, &format!("/v1/keys/{old_id}")).await;
    assert_eq!(old["status"], "inactive");

    // Without grace the old key stops at once.
    let r = post(&d, &format!("/v1/keys/{new_id}/rotate"), json!({})).await;
    assert_eq!(r.status(), 201);
    assert_eq!(ping(&d, &new_secret).await, 401);
    d.shutdown().await;
}

#[tokio::test]
async fn each_fault_is_visible_to_a_plain_client() {
    let d = start(2_000, 0.0, None).await;
    let r = get(&d, "/v1/keys?fault=429").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let r = get(&d, "/v1/events?fault=503").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(get(&d, "/v1/events?fault=500").await.status(), 500);
    let r = get(&d, "/v1/events?limit=50&fault=truncate").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with("{\"events\":["));
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "truncated body parses"
    );
    let t = Instant::now();
    let page = get_json(&d, "/v1/keys?limit=2&fault=latency").await;
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(page["keys"].as_array().unwrap().len(), 2);
    let err = client()
        .get(format!("{}/v1/events?fault=drop", d.url))
        .bearer_auth(&d.token)
        .send()
        .await
        .expect_err("a dropped connection answers nothing");
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    assert_eq!(get(&d, "/v1/keys?fault=teapot").await.status(), 400);
    d.shutdown().await;
}

#[tokio::test]
async fn fault_rates_are_repeatable_and_spare_the_labels() {
    async fn statuses(d: &DemoHandle) -> Vec<u16> {
        let mut v = Vec::new();
        for _ in 0..30 {
            v.push(get(d, "/v1/keys?limit=1").await.status().as_u16());
        }
        v
    }
    let a = start(2_000, 0.0, Some("500=0.3,429=0.2")).await;
    let b = start(2_000, 0.0, Some("500=0.3,429=0.2")).await;
    let (sa, sb) = (statuses(&a).await, statuses(&b).await);
    assert_eq!(sa, sb);
    for code in [200, 429, 500] {
        assert!(sa.contains(&code), "{code} never seen in {sa:?}");
    }
    assert_eq!(get(&a, "/v1/demo/labels").await.status(), 200);
    a.shutdown().await;
    b.shutdown().await;
    let e = demo::start(DemoOptions {
        faults: Some("500=0.1,boom=1".into()),
        ..DemoOptions::default()
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("boom=1"), "{e}");
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Throughput at benchmark scale; run with
/// `cargo test --release --test demo_server -- --ignored --nocapture`.
#[tokio::test(flavor = "current_thread")]
#[ignore = "benchmark: generates and serves a million events"]
async fn serves_a_million_events_quickly_in_modest_memory() {
    let before = rss_mb();
    let t = Instant::now();
    let d = start(1_000_000, 0.0, None).await;
    let generated = t.elapsed();
    let after = rss_mb();
    let t = Instant::now();
    let mut cursor = "0".to_string();
    let mut bytes = 0usize;
    let c = client();
    let n: usize = loop {
        let body = c
            .get(format!("{}/v1/events?since={cursor}&limit=10000", d.url))
            .bearer_auth(&d.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        bytes += body.len();
        // Only the envelope is parsed: this measures the server, not serde_json.
        let tail = std::str::from_utf8(&body[body.len().saturating_sub(80)..]).unwrap();
        let next = tail
            .split("\"next_cursor\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        if cursor == next || tail.contains("\"has_more\":false") {
            break next.parse().unwrap();
        }
        cursor = next.to_string();
    };
    let served = t.elapsed();
    println!(
        "generated {n} events in {generated:?} (+{:.0} MB RSS); served {:.0} MB in {served:?}: {:.0} events/s",
        after - before,
        bytes as f64 / 1e6,
        n as f64 / served.as_secs_f64()
    );
    assert!(n >= 900_000, "{n}");
    assert!(after - before < 300.0, "{:.0} MB", after - before);
    d.shutdown().await;
}
