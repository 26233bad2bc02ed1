//! `keyaudit scan --verify` against the demo provider on loopback, through a recording
//! proxy in front of it: each matched key is asked about once, by its id, at the
//! provider that owns it; the answer (not the cache's stale status) marks the leak live
//! or revoked; a secret that matches no cached key is unknown and no request carries it
//! or any other secret material.

use keyaudit::demo::{self, DemoOptions};
use keyaudit::scan::shape;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const TOKEN_ENV: &str = "KEYAUDIT_VERIFY_TOKEN";

/// Every request the proxy forwarded: method, path and query, headers, body.
type Log = Arc<Mutex<Vec<String>>>;

/// A proxy on 127.0.0.1 that records each request and forwards it to `upstream`.
async fn recording_proxy(upstream: String) -> (String, Log) {
    let log: Log = Arc::default();
    let client = reqwest::Client::new();
    let seen = log.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (seen, client, upstream) = (seen.clone(), client.clone(), upstream.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let headers: String = parts
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            seen.lock().unwrap().push(format!(
                "{} {}\n{headers}\n{}",
                parts.method,
                parts.uri,
                String::from_utf8_lossy(&body)
            ));
            let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
            let mut r = client.request(method, format!("{upstream}{}", parts.uri));
            for name in ["authorization", "idempotency-key", "content-type"] {
                if let Some(v) = parts.headers.get(name) {
                    r = r.header(name, v.as_bytes());
                }
            }
            let answer = r.body(body.to_vec()).send().await.unwrap();
            let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let bytes = answer.bytes().await.unwrap();
            (status, [("content-type", "application/json")], bytes)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

async fn keyaudit(dir: &Path, token: &str, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_keyaudit"));
    c.args(["--db", dir.join("cache.db").to_str().unwrap()])
        .args(["--config", dir.join("config.toml").to_str().unwrap()])
        .args(args)
        .env(TOKEN_ENV, token)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env_remove("KEYAUDIT_DB")
        .env_remove("KEYAUDIT_CONFIG");
    tokio::task::spawn_blocking(move || c.output().expect("keyaudit runs"))
        .await
        .unwrap()
}

async fn create_key(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    name: &str,
) -> (String, String) {
    let v: Value = client
        .post(format!("{url}/v1/keys"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "name": name, "owner": "Ledgerly Payroll", "environment": "staging",
            "scopes": ["employees:read"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["key"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

/// A GitHub token with a valid checksum, made here (never a real one).
fn github_token() -> String {
    let random = "Vq3TgN8rLx2PzW6mKc4HbJ7sYd9FfRa";
    let random = &random[..30];
    format!("ghp_{random}{}", shape::crc32_b62(random))
}

fn write_leaks(dir: &Path, lines: &[String]) -> PathBuf {
    let leak = dir.join("leak");
    std::fs::create_dir_all(&leak).unwrap();
    std::fs::write(leak.join("deploy.env"), lines.join("\n") + "\n").unwrap();
    leak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_asks_the_owning_provider_by_id_and_never_sends_an_unmatched_secret() {
    let demo = demo::start(DemoOptions {
        seed: 31,
        token: "verify-admin-token".into(),
        events: 800,
        live_rate: 0.0,
        anomalies: false,
        ..DemoOptions::default()
    })
    .await
    .expect("demo starts");
    let (proxy, log) = recording_proxy(demo.url.clone()).await;
    let client = reqwest::Client::new();
    let (live_id, live_secret) = create_key(&client, &demo.url, &demo.token, "ci-live").await;
    let (gone_id, gone_secret) = create_key(&client, &demo.url, &demo.token, "ci-gone").await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.toml"),
        format!(
            "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"{proxy}\"\ntoken_env = \"{TOKEN_ENV}\"\n"
        ),
    )
    .unwrap();
    let sync = keyaudit(d, &demo.token, &["sync"]).await;
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    // Revoked at the provider after the sync: the cache still says active.
    let r = client
        .post(format!("{}/v1/keys/{gone_id}/revoke", demo.url))
        .bearer_auth(&demo.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let stranger = keyaudit::secret::generate("tg_live").unwrap();
    let github = github_token();
    let leak = write_leaks(
        d,
        &[
            format!("LIVE_KEY={live_secret}"),
            format!("OLD_KEY={gone_secret}"),
            format!("OTHER_KEY={}", stranger.expose()),
            format!("GITHUB_TOKEN={github}"),
        ],
    );
    log.lock().unwrap().clear();
    let o = keyaudit(
        d,
        &demo.token,
        &[
            "scan",
            leak.to_str().unwrap(),
            "--verify",
            "--format",
            "json",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let by_line = |line: u64| rows.iter().find(|r| r["line"] == line).unwrap();
    assert_eq!(by_line(1)["matched_key"], live_id.as_str());
    assert_eq!(by_line(1)["liveness"], "live");
    assert_eq!(by_line(1)["severity"], "critical");
    assert_eq!(by_line(2)["matched_key"], gone_id.as_str());
    assert_eq!(by_line(2)["status"], "active", "the cache is stale");
    assert_eq!(
        by_line(2)["liveness"],
        "revoked",
        "the provider's answer counts"
    );
    assert_eq!(by_line(3)["matched_key"], Value::Null);
    assert_eq!(by_line(3)["liveness"], "unknown");
    assert_eq!(by_line(4)["kind"], "github-pat");
    assert_eq!(by_line(4)["liveness"], "unknown");

    // Two requests, one per matched key, by id; no secret in any of them.
    let seen = log.lock().unwrap().clone();
    let mut lines: Vec<&str> = seen.iter().map(|r| r.lines().next().unwrap()).collect();
    lines.sort();
    let mut want = vec![
        format!("GET /v1/keys/{live_id}"),
        format!("GET /v1/keys/{gone_id}"),
    ];
    want.sort();
    assert_eq!(lines, want, "{seen:#?}");
    for secret in [&live_secret, &gone_secret, stranger.expose(), &github] {
        assert!(!seen.iter().any(|r| r.contains(secret)), "{seen:#?}");
    }

    // Without --verify nothing is asked; the other formats carry the mark too.
    log.lock().unwrap().clear();
    let plain = keyaudit(
        d,
        &demo.token,
        &["scan", leak.to_str().unwrap(), "--format", "json"],
    )
    .await;
    let plain: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(plain[0].get("liveness").is_none());
    assert!(log.lock().unwrap().is_empty());
    let csv = keyaudit(
        d,
        &demo.token,
        &[
            "scan",
            leak.to_str().unwrap(),
            "--verify",
            "--format",
            "csv",
        ],
    )
    .await;
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(csv.lines().next().unwrap().ends_with(",live"), "{csv}");
    assert!(csv.lines().nth(2).unwrap().ends_with(",revoked"), "{csv}");
    let table = keyaudit(
        d,
        &demo.token,
        &["scan", leak.to_str().unwrap(), "--verify"],
    )
    .await;
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("LIVE") && table.contains("revoked"),
        "{table}"
    );
    let sarif = keyaudit(
        d,
        &demo.token,
        &[
            "scan",
            leak.to_str().unwrap(),
            "--verify",
            "--format",
            "sarif",
        ],
    )
    .await;
    let sarif: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let marks: Vec<&str> = results
        .iter()
        .map(|r| r["properties"]["liveness"].as_str().unwrap())
        .collect();
    assert_eq!(marks, ["live", "revoked", "unknown", "unknown"]);
    let schema: Value =
        serde_json::from_str(include_str!("fixtures/sarif/sarif-schema-2.1.0.json")).unwrap();
    assert!(jsonschema::draft4::new(&schema).unwrap().is_valid(&sarif));
    demo.shutdown().await;
}
