//! End to end: the real binary in tmux against the demo provider on loopback. Filter,
//! open a key, get refused in read-only, unlock write mode, revoke with the typed
//! confirmation, filter the key's events and then every event, and check the provider
//! and the journal.

mod tmux_support;

use keyaudit::demo::{self, DemoOptions};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tmux_support::Tmux;

const BIN: &str = env!("CARGO_BIN_EXE_keyaudit");
const TOKEN_ENV: &str = "KEYAUDIT_E2E_TOKEN";

async fn key_status(client: &reqwest::Client, url: &str, token: &str, id: &str) -> String {
    let v: Value = client
        .get(format!("{url}/v1/keys/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["status"].as_str().unwrap_or_default().to_string()
}

fn keyaudit(dir: &Path, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["--db", dir.join("cache.db").to_str().unwrap()])
        .args(["--config", dir.join("config.toml").to_str().unwrap()])
        .args(args)
        .env(TOKEN_ENV, token)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .output()
        .expect("keyaudit runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_open_refuse_unlock_and_revoke_in_tmux() {
    if !tmux_support::available() {
        return;
    }
    let demo = demo::start(DemoOptions {
        seed: 23,
        token: "e2e-admin-token".into(),
        events: 4000,
        live_rate: 0.0,
        ..DemoOptions::default()
    })
    .await
    .expect("demo starts");
    let client = reqwest::Client::new();

    // Pick an active production key of one partner.
    let keys: Value = client
        .get(format!("{}/v1/keys?limit=500", demo.url))
        .bearer_auth(&demo.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| {
            k["status"] == "active"
                && k["environment"] == "prod"
                && k["owner"].as_str().unwrap_or("").starts_with("Ledgerly")
        })
        .expect("an active prod key of Ledgerly")
        .clone();
    let id = key["id"].as_str().unwrap().to_string();
    let name = key["name"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\n\n[tui]\nmouse = false\nsync_interval_secs = 0\n",
            demo.url
        ),
    )
    .unwrap();
    let sync = keyaudit(dir.path(), &demo.token, &["sync"]);
    assert!(
        sync.status.success(),
        "sync failed: {}",
        String::from_utf8_lossy(&sync.stderr)
    );

    let tmux = Tmux::new(&format!("keyaudit-e2e-{}", std::process::id()), "ka");
    let d = dir.path();
    let command = format!(
        "env {TOKEN_ENV}={} XDG_STATE_HOME={} XDG_DATA_HOME={} {BIN} --db {} --config {}",
        demo.token,
        d.join("state").display(),
        d.join("data").display(),
        d.join("cache.db").display(),
        d.join("config.toml").display()
    );
    tmux.start(&command, 120, 40);
    tmux.wait_for("the keys view", |s| {
        s.contains("[keys]") && s.contains(" keys ")
    });

    // Filter by partner and id, open the detail.
    tmux.send(&["/"]);
    tmux.type_text(&format!("ledgerly id:{id}"));
    tmux.wait_for("one matching key", |s| s.contains("keys 1 of"));
    tmux.send(&["Enter"]);
    tmux.send(&["Enter"]);
    tmux.wait_for("the detail view with the baseline status", |s| {
        s.contains("[detail]")
            && s.contains("scopes:")
            && s.contains(&name)
            && s.contains("baseline")
    });

    // Read-only: refused, nothing reaches the provider.
    tmux.send(&["D"]);
    tmux.wait_for("the refusal", |s| s.contains("Refused: read-only"));
    assert_eq!(
        key_status(&client, &demo.url, &demo.token, &id).await,
        "active"
    );

    // Unlock write mode (confirmed).
    tmux.send(&[":"]);
    tmux.type_text("write");
    tmux.send(&["Enter"]);
    tmux.wait_for("the write dialog", |s| s.contains("Enable write mode?"));
    tmux.send(&["Tab"]);
    tmux.send(&["Enter"]);
    tmux.wait_for("write mode", |s| {
        s.contains("Write mode: actions are enabled")
            && s.lines()
                .next()
                .is_some_and(|l| l.trim_end().ends_with("RW"))
    });

    // Revoke: the dialog names the key and wants its name typed.
    tmux.send(&["D"]);
    tmux.wait_for("the revoke dialog", |s| {
        s.contains("Revoke 1 key?") && s.contains("type its name")
    });
    // Typing the name moves the focus to Confirm; Tab moves on to the reason, which a
    // finding may have filled in: append to it, Enter back to Confirm, Enter.
    tmux.type_text(&name);
    tmux.send(&["Tab"]);
    tmux.type_text(" (e2e check)");
    tmux.send(&["Enter"]);
    tmux.send(&["Enter"]);
    tmux.wait_for("the revoke result", |s| s.contains("now revoked"));
    assert_eq!(
        key_status(&client, &demo.url, &demo.token, &id).await,
        "revoked"
    );

    // The key's events, filtered in the cache; then the same filter over every key.
    tmux.send(&["E"]);
    tmux.wait_for("the key's events", |s| {
        s.contains("[events]") && s.contains(&format!("events of {name}"))
    });
    tmux.send(&["/"]);
    tmux.type_text("outcome:success");
    tmux.send(&["Enter"]);
    let screen = tmux.wait_for("the filtered events of the key", |s| {
        s.contains("matched") && s.contains("/outcome:success")
    });
    assert!(!screen.contains("denied "), "{screen}");
    tmux.send(&["a"]);
    tmux.wait_for("the filtered events of every key", |s| {
        s.contains("events of all keys") && s.contains("matched")
    });

    tmux.send(&["q"]);
    let journal = keyaudit(d, &demo.token, &["journal", "--format", "json"]);
    assert!(journal.status.success());
    let entries: Value = serde_json::from_slice(&journal.stdout).expect("journal JSON");
    let target = format!("talentgrid/{id}");
    let results: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "revoke" && e["target"] == target.as_str())
        .filter_map(|e| e["result"].as_str())
        .collect();
    assert!(results.contains(&"started"), "{entries:#}");
    let revoke = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "revoke" && e["target"] == target.as_str())
        .unwrap();
    assert!(
        revoke["reason"]
            .as_str()
            .is_some_and(|r| r.ends_with("(e2e check)")),
        "{revoke:#}"
    );
    assert_eq!(
        revoke["os_user"].as_str(),
        Some(keyaudit::store::journal::os_user().as_str()),
        "{revoke:#}"
    );
    assert!(results.iter().any(|r| r.starts_with("ok")), "{entries:#}");
    drop(tmux);
    demo.shutdown().await;
}

/// `keyaudit` with no provider configured opens the embedded demo; a second session on
/// the same data directory opens it again, synced, without an error about the first
/// session's cursor.
#[test]
fn the_demo_opens_again_in_a_second_session() {
    if !tmux_support::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("config.toml"), "[tui]\nmouse = false\n").unwrap();
    let tmux = Tmux::new(&format!("keyaudit-demo-{}", std::process::id()), "demo");
    let command = format!(
        "env XDG_STATE_HOME={} XDG_DATA_HOME={} {BIN} --config {}",
        d.join("state").display(),
        d.join("data").display(),
        d.join("config.toml").display()
    );
    for session in 1..=2 {
        tmux.start(&command, 120, 40);
        // The sync's summary can be drawn a frame before the reloaded keys.
        let s = tmux.wait_for("the end of the session's first sync, keys shown", |s| {
            (s.contains("new events in") && s.contains("keys 75 of 75"))
                || s.to_lowercase().contains("failed")
        });
        assert!(s.contains("DEMO") && s.contains("keys 75 of 75"), "{s}");
        assert!(
            !s.to_lowercase().contains("failed"),
            "session {session} reports a failure:\n{s}"
        );
        tmux.send(&["q"]);
        let start = Instant::now();
        while tmux.exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "q did not quit");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// From a leaked line to the key's use since the leak, to revoke: a demo key's secret in
/// a file, `keyaudit scan` matches it to the cached key and records an exposure finding;
/// in the findings view Enter opens the key with only its events since the exposure (the
/// file's modification time), and `D` revokes it there with the finding as the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposure_finding_opens_the_key_since_the_leak_and_revokes_it() {
    if !tmux_support::available() {
        return;
    }
    let demo = demo::start(DemoOptions {
        seed: 29,
        token: "e2e-admin-token".into(),
        events: 1500,
        live_rate: 0.0,
        anomalies: false,
        ..DemoOptions::default()
    })
    .await
    .expect("demo starts");
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/v1/keys", demo.url))
        .bearer_auth(&demo.token)
        .json(&serde_json::json!({
            "name": "payroll-export-ci",
            "owner": "Ledgerly Payroll",
            "environment": "staging",
            "scopes": ["employees:read"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["key"]["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    async fn ping(client: &reqwest::Client, url: &str, secret: &str) {
        let r = client
            .get(format!("{url}/v1/partner/ping"))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // One use before the leak, the leak (a file written), two uses after it.
    ping(&client, &demo.url, &secret).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("leak")).unwrap();
    std::fs::write(
        d.join("leak/app.env"),
        format!("PAYROLL_URL=https://payroll.example\nTALENTGRID_API_KEY={secret}\n"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    ping(&client, &demo.url, &secret).await;
    ping(&client, &demo.url, &secret).await;

    std::fs::write(
        d.join("config.toml"),
        format!(
            "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\n\n[tui]\nmouse = false\nsync_interval_secs = 0\n",
            demo.url
        ),
    )
    .unwrap();
    let sync = keyaudit(d, &demo.token, &["sync"]);
    assert!(
        sync.status.success(),
        "sync failed: {}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let scan = keyaudit(
        d,
        &demo.token,
        &["scan", d.join("leak").to_str().unwrap(), "--format", "json"],
    );
    assert!(
        scan.status.success(),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let hits: Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert_eq!(hits[0]["matched_key"], id.as_str(), "{hits:#}");
    assert!(
        hits[0]["exposure"]
            .as_str()
            .is_some_and(|e| e.starts_with("used 2 times from 1 network since it was written to")),
        "{hits:#}"
    );
    assert!(!String::from_utf8_lossy(&scan.stdout).contains(&secret));

    let tmux = Tmux::new(&format!("keyaudit-exposure-{}", std::process::id()), "ka");
    let command = format!(
        "env {TOKEN_ENV}={} XDG_STATE_HOME={} XDG_DATA_HOME={} {BIN} --write --db {} --config {}",
        demo.token,
        d.join("state").display(),
        d.join("data").display(),
        d.join("cache.db").display(),
        d.join("config.toml").display()
    );
    tmux.start(&command, 120, 40);
    tmux.wait_for("the keys view", |s| {
        s.contains("[keys]") && s.contains(" keys ")
    });
    tmux.send(&["4"]);
    tmux.wait_for("the findings view", |s| s.contains("[findings]"));
    // Move down to the exposure finding (the panel below the table names its rule).
    // One `j` at a time, each waited for until it has redrawn the screen, so a slow
    // redraw cannot let queued presses run past the finding.
    let mut screen = tmux.screen();
    let mut found = false;
    for _ in 0..100 {
        if screen.contains("exposed_key · exposure") {
            found = true;
            break;
        }
        tmux.send(&["j"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let moved = loop {
            let now = tmux.screen();
            if now != screen {
                screen = now;
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !moved {
            break;
        }
    }
    assert!(found, "no exposure finding:\n{}", tmux.screen());
    tmux.send(&["Enter"]);
    let screen = tmux.wait_for("the key with its events since the exposure", |s| {
        s.contains("[detail]")
            && s.contains("payroll-export-ci")
            && s.contains("events since the exposure on")
    });
    assert!(
        screen.contains("events since the exposure on") && screen.contains("UTC (2)"),
        "{screen}"
    );

    tmux.send(&["D"]);
    let screen = tmux.wait_for("the revoke dialog", |s| s.contains("Revoke 1 key?"));
    assert!(
        screen.contains("leaked in"),
        "reason not prefilled:\n{screen}"
    );
    tmux.send(&["Tab"]);
    tmux.send(&["Enter"]);
    tmux.wait_for("the revoke result", |s| s.contains("now revoked"));
    assert_eq!(
        key_status(&client, &demo.url, &demo.token, &id).await,
        "revoked"
    );
    let screen = tmux.wait_for("the detail reloaded", |s| {
        s.contains("revoked") && s.contains("events since the exposure on")
    });
    assert!(screen.contains("payroll-export-ci"), "{screen}");
    // E: the key's events in the events view, with the exposure as the filter.
    tmux.send(&["E"]);
    tmux.wait_for("the key's events since the exposure", |s| {
        s.contains("[events]") && s.contains("events of payroll-export-ci") && s.contains("since:")
    });
    tmux.send(&["q"]);

    let journal = keyaudit(d, &demo.token, &["journal", "--format", "json"]);
    let entries: Value = serde_json::from_slice(&journal.stdout).expect("journal JSON");
    let target = format!("talentgrid/{id}");
    let revoke = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "revoke" && e["target"] == target.as_str())
        .expect("the revoke is journaled");
    assert!(
        revoke["reason"]
            .as_str()
            .is_some_and(|r| r.contains("leaked in") && r.contains("app.env")),
        "{revoke:#}"
    );
    drop(tmux);
    demo.shutdown().await;
}
