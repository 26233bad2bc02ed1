//! The `cloudflare` provider end to end: the keyaudit binary against a stateful fake of
//! Cloudflare's API v4, with Prism validating every request and answer against
//! Cloudflare's API description (tests/fixtures/openapi/cloudflare.yaml); any violation
//! fails the test.

mod cloudflare_support;
mod proxy_support;
mod speed_support;

use cloudflare_support::fake::ACCOUNT;
use cloudflare_support::{text, World};
use serde_json::Value;
use std::collections::BTreeSet;

fn ids(keys: &[Value]) -> BTreeSet<String> {
    keys.iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect()
}

fn key<'a>(keys: &'a [Value], id: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key {id} in {keys:?}"))
}

fn scopes(k: &Value) -> Vec<&str> {
    k["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn cloudflare_sync_lists_exact_keys_and_events_across_pages() {
    let w = World::start();
    let seeded = w.seed();
    let own = w.fake.with(|st| st.tokens[0].id.clone());
    w.ok(&["sync"]);
    let keys = w.keys();
    let want: BTreeSet<String> = std::iter::once(&own)
        .chain(seeded.iter())
        .map(|n| format!("token:{n}"))
        .collect();
    assert_eq!(ids(&keys), want);

    let laptop = key(&keys, &format!("token:{}", seeded[0]));
    assert_eq!(laptop["name"], "laptop-dns");
    assert_eq!(laptop["owner"], "user");
    assert_eq!(laptop["status"], "active");
    assert_eq!(
        scopes(laptop),
        [
            "DNS Write",
            "Zone Read",
            "ip:198.51.100.0/24",
            "not-ip:198.51.100.9/32"
        ]
    );
    assert!(laptop["last_used"].is_string(), "{laptop}");
    assert!(laptop["expires"].is_string(), "{laptop}");
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[1]))["status"],
        "inactive"
    );
    let ci = key(&keys, &format!("token:{}", seeded[2]));
    assert_eq!(ci["owner"], format!("account {ACCOUNT}"));
    assert_eq!(scopes(ci), ["Workers Scripts Write"]);
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[4]))["status"],
        "expired"
    );

    // Pagination across pages: 2 per page, so each listing of 3 tokens took two.
    for base in ["/user/tokens?", &format!("/accounts/{ACCOUNT}/tokens?")] {
        let pages: BTreeSet<String> = w
            .seen(base)
            .iter()
            .filter_map(|s| {
                s.split(['?', '&'])
                    .find(|p| p.starts_with("page="))
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(
            pages,
            BTreeSet::from(["page=1".to_string(), "page=2".to_string()]),
            "{base}: {:?}",
            w.seen(base)
        );
    }

    // Events: the account's audit log holds the three creations, each on its token.
    let out = w.ok(&[
        "events",
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["key_id"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = seeded[2..]
        .iter()
        .map(|id| (format!("token:{id}"), "create API_token".to_string()))
        .collect();
    assert_eq!(got, want, "{events:#?}");

    // A second sync brings nothing twice.
    w.ok(&["sync"]);
    let out = w.ok(&[
        "events",
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    let again: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again.len(), 3);
}

#[test]
fn cloudflare_revoke_deletes_the_token() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let id = format!("cf/token:{}", seeded[3]);
    let out = w.ok(&["revoke", &id, "--reason", "leaked in CI log", "--yes"]);
    assert!(
        text(&out.stdout).contains("revoke: 1 of 1 key(s) ok"),
        "{}",
        text(&out.stdout)
    );
    assert!(w
        .fake
        .with(|st| st.tokens.iter().all(|t| t.id != seeded[3])));
    assert_eq!(
        w.seen(&format!(
            "DELETE /client/v4/accounts/{ACCOUNT}/tokens/{}",
            seeded[3]
        ))
        .len(),
        1,
        "{:?}",
        w.seen("DELETE")
    );
    assert_eq!(
        key(&w.keys(), &format!("token:{}", seeded[3]))["status"],
        "revoked"
    );
    // The deletion is in the account's audit log, on the token.
    w.ok(&["sync"]);
    let out = w.ok(&[
        "events",
        "--key",
        &format!("token:{}", seeded[3]),
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        events.iter().any(|e| e["action"] == "delete API_token"),
        "{events:#?}"
    );
}

#[test]
fn cloudflare_disable_and_enable_set_the_status_and_keep_the_rest() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let id = format!("cf/token:{}", seeded[0]);
    w.ok(&["disable", &id, "--reason", "suspicious use", "--yes"]);
    let (status, name, cond) = w.fake.with(|st| {
        let t = st.token(&seeded[0]);
        (t.status.clone(), t.name.clone(), t.condition.clone())
    });
    assert_eq!(status, "disabled");
    assert_eq!(name, "laptop-dns");
    assert_eq!(
        cond.unwrap()["request_ip"]["in"][0],
        "198.51.100.0/24",
        "the update kept the IP condition"
    );
    assert_eq!(
        key(&w.keys(), &format!("token:{}", seeded[0]))["status"],
        "inactive"
    );
    w.ok(&["enable", &id, "--reason", "cleared", "--yes"]);
    assert_eq!(
        w.fake.with(|st| st.token(&seeded[0]).status.clone()),
        "active"
    );
    let keys = w.keys();
    let k = key(&keys, &format!("token:{}", seeded[0]));
    assert_eq!(k["status"], "active");
    assert_eq!(scopes(k).len(), 4, "{k}");
}

#[test]
fn cloudflare_roll_needs_no_overlap_and_then_gives_the_token_a_new_value() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let tid = seeded[3].clone();
    let id = format!("cf/token:{tid}");
    let before = w.fake.with(|st| st.token(&tid).value.clone());
    let sink = w.path("new-token.txt");
    let sink_arg = format!("file:{}", sink.display());

    // Without --no-overlap: refused as a usage error, nothing sent.
    let out = w.run(&["rotate", &id, "--deliver", &sink_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("rotates without overlap") && err.contains("--no-overlap"),
        "{err}"
    );
    assert!(w.seen("/value").is_empty());

    let out = w.ok(&["rotate", &id, "--deliver", &sink_arg, "--dry-run"]);
    assert!(
        text(&out.stdout).contains("no overlap"),
        "{}",
        text(&out.stdout)
    );
    assert!(w.seen("/value").is_empty());

    let out = w.ok(&[
        "rotate",
        &id,
        "--deliver",
        &sink_arg,
        "--no-overlap",
        "--reason",
        "yearly",
    ]);
    let said = text(&out.stdout) + &text(&out.stderr);
    let after = w.fake.with(|st| st.token(&tid).value.clone());
    assert_ne!(after, before, "rolled: {said}");
    assert_eq!(w.seen("/value").len(), 1, "{said}");
    assert!(
        said.contains("rolled: the same key has a new secret")
            && said.contains("the old secret stopped working at the roll"),
        "{said}"
    );
    let delivered = std::fs::read_to_string(&sink).unwrap();
    assert_eq!(delivered.trim(), after, "the sink holds the new value");
    // The new value was verified with itself, at the account's verify endpoint.
    assert_eq!(
        w.seen(&format!("GET /client/v4/accounts/{ACCOUNT}/tokens/verify"))
            .len(),
        1,
        "{:?}",
        w.seen("verify")
    );
    // Same token, still active, not deleted as "the old key".
    assert!(w.seen("DELETE").is_empty(), "{said}");
    assert_eq!(key(&w.keys(), &format!("token:{tid}"))["status"], "active");
    let out = w.ok(&["workflows", "--all", "--format", "json"]);
    let wfs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(wfs.len(), 1, "{wfs:#?}");
    assert_eq!(wfs[0]["state"], "done", "{wfs:#?}");
    // No secret in the cache.
    let db = std::fs::read(w.path("data/cache.db")).unwrap();
    assert!(!db.windows(after.len()).any(|x| x == after.as_bytes()));
}

#[test]
fn cloudflare_roll_whose_new_value_fails_to_verify_keeps_the_token() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let tid = seeded[3].clone();
    let id = format!("cf/token:{tid}");
    let sink = w.path("new-token.txt");
    let sink_arg = format!("file:{}", sink.display());
    // The new value cannot be verified anywhere (403 at both verify endpoints).
    w.fake.with(|st| {
        st.forbidden
            .push(format!("GET /accounts/{ACCOUNT}/tokens/verify"));
        st.forbidden.push("GET /user/tokens/verify".into());
    });
    let out = w.run(&["rotate", &id, "--deliver", &sink_arg, "--no-overlap"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(w.seen("/value").len(), 1, "{said}");
    // A rollback must not delete the token as "the new key": it is the same token.
    assert!(w.seen("DELETE").is_empty(), "{said}");
    assert_eq!(w.fake.with(|st| st.token(&tid).status.clone()), "active");
    let out = w.ok(&["workflows", "--all", "--format", "json"]);
    let wfs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(wfs.len(), 1, "{wfs:#?}");
    assert_eq!(wfs[0]["state"], "rolled_back", "{wfs:#?}\n{said}");
    let out = w.ok(&["journal", "--format", "jsonl"]);
    let journal = text(&out.stdout);
    assert!(
        journal.contains("was rolled in place") && journal.contains("roll it again"),
        "{journal}"
    );
}

#[test]
fn cloudflare_roll_whose_answer_is_lost_stops_as_unknown_and_is_not_sent_again() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    // The roll reaches Cloudflare (through Prism), which rolls; its answer is lost.
    let backend = w.prism.url.trim_start_matches("http://").to_string();
    let proxy = proxy_support::LossyProxy::start(
        &backend,
        |head, _| head.starts_with("PUT ") && head.contains("/value"),
        1,
    );
    let config = w.path("config/config.toml");
    let c = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, c.replace(&w.prism.url, &proxy.url())).unwrap();
    let tid = seeded[3].clone();
    let id = format!("cf/token:{tid}");
    let before = w.fake.with(|st| st.token(&tid).value.clone());
    let sink = w.path("new-token.txt");
    let sink_arg = format!("file:{}", sink.display());
    let out = w.run(&["rotate", &id, "--deliver", &sink_arg, "--no-overlap"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(proxy.lost(), 1, "{said}");
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("outcome unknown") && said.contains("roll again"),
        "{said}"
    );
    // Rolled once, never again, and never deleted.
    assert_eq!(w.seen("/value").len(), 1, "{said}");
    assert!(w.seen("DELETE").is_empty(), "{said}");
    assert_ne!(w.fake.with(|st| st.token(&tid).value.clone()), before);
    let out = w.ok(&["workflows", "--all", "--format", "json"]);
    let wfs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(wfs[0]["state"], "failed", "{wfs:#?}");
    // `resume` has nothing to send: the workflow waits for an operator.
    let out = w.run(&["resume"]);
    assert_eq!(w.seen("/value").len(), 1, "{}", text(&out.stderr));
    let out = w.ok(&["journal", "--format", "jsonl"]);
    assert!(text(&out.stdout).contains("unknown: outcome unknown"));
}

#[test]
fn cloudflare_read_only_refuses_and_sends_nothing() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let id = format!("cf/token:{}", seeded[0]);
    for args in [
        vec!["--read-only", "revoke", &id, "--reason", "x", "--yes"],
        vec!["--read-only", "disable", &id, "--reason", "x", "--yes"],
        vec![
            "--read-only",
            "rotate",
            &id,
            "--deliver",
            "stdout",
            "--no-overlap",
        ],
    ] {
        let out = w.run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("read-only"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(w.seen("DELETE").is_empty() && w.seen("PUT").is_empty());
}

#[test]
fn cloudflare_missing_permission_is_named() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    w.fake.with(|st| {
        st.forbidden
            .push(format!("DELETE /accounts/{ACCOUNT}/tokens"))
    });
    let out = w.run(&[
        "revoke",
        &format!("cf/token:{}", seeded[2]),
        "--reason",
        "x",
        "--yes",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(
        err.contains("code 9109: Unauthorized to access requested resource"),
        "{err}"
    );
    assert!(err.contains("Account API Tokens › Edit"), "{err}");
    assert!(w
        .fake
        .with(|st| st.tokens.iter().any(|t| t.id == seeded[2])));
}

#[test]
fn cloudflare_refused_account_listing_keeps_its_tokens_and_lists_the_rest() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    // The token loses "Account API Tokens › Read" (Cloudflare answers 403 on the
    // account's listing), and meanwhile a user token is deleted at Cloudflare.
    w.fake.with(|st| {
        st.forbidden.push(format!("GET /accounts/{ACCOUNT}/tokens"));
        st.tokens.retain(|t| t.id != seeded[1]);
    });
    let out = w.ok(&["sync"]);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cf: note: the API tokens of account {ACCOUNT} not listed, the tokens synced before are kept as they were")),
        "{err}"
    );
    assert!(
        err.contains("code 9109: Unauthorized to access requested resource"),
        "{err}"
    );
    assert!(err.contains("Account › Account API Tokens › Read"), "{err}");
    assert!(
        err.contains("(1 no longer listed; 3 kept as cached, their source not listed)"),
        "{err}"
    );
    let keys = w.keys();
    for id in &seeded[2..4] {
        assert_eq!(
            key(&keys, &format!("token:{id}"))["status"],
            "active",
            "the account's token {id} stays as cached"
        );
    }
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[1]))["status"],
        "revoked",
        "the user's listing was whole: what it no longer has is gone"
    );
}

#[test]
fn cloudflare_429_is_waited_out_and_a_failed_delete_is_not_sent_again() {
    let w = World::start();
    let seeded = w.seed();
    w.fake.with(|st| st.throttle_next = 2);
    w.ok(&["sync"]);
    let first = w.seen("GET /client/v4/user/tokens?page=1");
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(w.keys().len(), 6);

    // A delete answered 500 (outcome unknown) is not sent again blindly.
    w.fake.with(|st| st.fail_next_delete = 1);
    let out = w.run(&[
        "revoke",
        &format!("cf/token:{}", seeded[0]),
        "--reason",
        "x",
        "--yes",
    ]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(w.seen("DELETE").len(), 1, "{said}");
}

#[test]
fn cloudflare_info_lists_capabilities() {
    let w = World::start();
    let out = w.ok(&["info"]);
    let s = text(&out.stdout);
    assert!(s.contains("kind=cloudflare"), "{s}");
    assert!(
        s.contains("can: events, disable/enable, revoke, rotate (no overlap: the old key stops at once), verify"),
        "{s}"
    );
}

#[test]
fn cloudflare_python_sdk_works_against_the_fake() {
    let w = World::start();
    let seeded = w.seed();
    let py = cloudflare_support::prism_support::deps().join("pyclients/bin/python");
    let pinned = std::process::Command::new(&py)
        .args(["-c", "import cloudflare"])
        .status()
        .is_ok_and(|s| s.success());
    if !pinned {
        assert!(
            std::env::var("CI").is_err(),
            "the cloudflare SDK is not installed at {}: CI must run scripts/test-deps.sh",
            py.display()
        );
        let st = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/install-pyclients.sh"
            ))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let out = std::process::Command::new(&py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/cloudflare_client.py"
        ))
        .args([
            &format!("{}/client/v4", w.prism.url),
            w.token.as_str(),
            ACCOUNT,
            &seeded[0],
            &seeded[2],
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let own = w.fake.with(|st| st.tokens[0].id.clone());
    assert_eq!(v["verified"], serde_json::json!([own, "active"]));
    assert_eq!(
        v["user"],
        serde_json::json!([
            ["keyaudit", "active"],
            ["laptop-dns", "active"],
            ["old-script", "disabled"]
        ])
    );
    assert_eq!(
        v["account"],
        serde_json::json!([
            ["ci-deploy", "active"],
            ["expired-backup", "expired"],
            ["terraform", "active"]
        ])
    );
    assert_eq!(v["got_ip_in"], serde_json::json!(["198.51.100.0/24"]));
    assert_eq!(v["disabled_status"], "disabled");
    assert_eq!(v["rolled_len"], 40);
    assert_eq!(v["deleted"], seeded[2]);
    assert!(w
        .fake
        .with(|st| st.tokens.iter().all(|t| t.id != seeded[2])));
    assert_eq!(
        w.fake.with(|st| st.token(&seeded[0]).status.clone()),
        "disabled"
    );
}

/// Sync speed over loopback, straight to the fake (Prism would measure itself): 10,000
/// tokens (5,000 user, 5,000 account) and their 5,000 audit-log entries, 50 per page.
/// Prints keys/s and events/s; run with `--ignored --nocapture` (release for the
/// figures in docs/PERFORMANCE.md).
#[test]
#[ignore]
fn cloudflare_sync_speed() {
    let w = World::start();
    w.fake.with(|st| {
        let me = st.tokens[0].clone();
        for i in 0..9_999 {
            let owner = if i % 2 == 0 {
                cloudflare_support::fake::Owner::User
            } else {
                cloudflare_support::fake::Owner::Account(ACCOUNT.into())
            };
            let (id, _) = st.add(&format!("token-{i}"), owner, &["Zone Read"]);
            let t = st.token(&id).clone();
            st.log(&t, "create", &me);
        }
    });
    let direct = w.path("config/direct.toml");
    std::fs::write(
        &direct,
        format!(
            "[[provider]]\nname = \"cf\"\nkind = \"cloudflare\"\nurl = \"{}\"\ntoken_env = \"KA_CF_TOKEN\"\n\
             accounts = [\"{ACCOUNT}\"]\npage_size = 50\n",
            w.fake.url
        ),
    )
    .unwrap();
    let (took, keys, _) = speed_support::timed_sync(|a| w.cmd(a), &direct);
    assert_eq!(keys.len(), 10_000);
    let events = w
        .fake
        .with(|st| st.audit.values().map(Vec::len).sum::<usize>());
    println!(
        "cloudflare sync: {} tokens and {events} audit entries in {took:.2}s: {:.0} keys/s, {:.0} events/s (whole sync)",
        keys.len(),
        keys.len() as f64 / took,
        events as f64 / took
    );
}
