//! The `vault` provider against a real OpenBao dev server on 127.0.0.1 (see
//! tests/vault_support). keyaudit's token carries exactly the policy of
//! docs/providers/vault.md.

mod vault_support;

use futures_util::StreamExt;
use keyaudit::action::{apply_key_op, KeyOp};
use keyaudit::config::ProviderConfig;
use keyaudit::provider::{self, ProviderError};
use keyaudit::store::Cache;
use keyaudit::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use vault_support::{keyaudit_policy, Bao, Keyaudit, DEVICE};

const PAYROLL_READ: &str = r#"path "secret/data/payroll/*" { capabilities = ["read"] }"#;
const ATS_READ: &str = r#"path "secret/data/ats/*" { capabilities = ["read"] }"#;

/// The server with two partner tokens, keyaudit's token, and some traffic.
struct World {
    bao: Bao,
    keyaudit_token: String,
    keyaudit_acc: String,
    root_acc: String,
    payroll: (String, String),
    ats: (String, String),
}

async fn world() -> World {
    let bao = Bao::start().await;
    bao.put_policy("payroll-read", PAYROLL_READ).await;
    bao.put_policy("ats-read", ATS_READ).await;
    bao.put_policy("keyaudit", &keyaudit_policy()).await;
    for (path, v) in [("payroll/salaries", "1"), ("ats/candidates", "2")] {
        bao.root(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({"data": {"v": v}})),
        )
        .await;
    }
    let (keyaudit_token, keyaudit_acc) = bao
        .create_token(
            json!({"policies": ["keyaudit"], "display_name": "keyaudit", "no_parent": true}),
        )
        .await;
    let payroll = bao
        .create_token(json!({
            "policies": ["payroll-read"],
            "display_name": "payroll-sync",
            "meta": {"owner": "paycorp", "env": "prod", "purpose": "payroll export"},
            "ttl": "2h",
            "no_parent": true,
        }))
        .await;
    let ats = bao
        .create_token(json!({
            "policies": ["ats-read"],
            "display_name": "ats-import",
            "meta": {"partner": "talentgrid", "environment": "sandbox"},
            "ttl": "1h",
        }))
        .await;
    // Allowed and denied reads.
    assert_eq!(read(&bao, &payroll.0, "payroll/salaries").await, 200);
    assert_eq!(read(&bao, &payroll.0, "ats/candidates").await, 403);
    assert_eq!(read(&bao, &ats.0, "ats/candidates").await, 200);
    assert_eq!(read(&bao, &ats.0, "payroll/salaries").await, 403);
    assert_eq!(read(&bao, &ats.0, "payroll/salaries").await, 403);
    let root_acc = bao.root_accessor().await;
    World {
        bao,
        keyaudit_token,
        keyaudit_acc,
        root_acc,
        payroll,
        ats,
    }
}

async fn read(bao: &Bao, token: &str, path: &str) -> u16 {
    bao.api("GET", &format!("secret/data/{path}"), token, None)
        .await
        .0
}

fn by_id(keys: &Value) -> std::collections::BTreeMap<String, Value> {
    keys.as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_str().unwrap().to_string(), k.clone()))
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_else(|| {
            v.as_str()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_lists_the_tokens_and_ties_their_events() {
    let w = world().await;
    let ka = Keyaudit::new(&w.bao, &w.keyaudit_token);
    let (ok, _, err) = ka.run(&["sync"]);
    assert!(ok, "sync failed: {err}");

    // Exactly the tokens of the server: root, keyaudit's own, the two partners.
    let keys = by_id(&ka.json(&["keys", "--provider", "bao", "--format", "json"]));
    let listed: BTreeSet<&str> = keys
        .iter()
        .filter(|(_, k)| k["source"] == "provider")
        .map(|(id, _)| id.as_str())
        .collect();
    let expected: BTreeSet<&str> = [&w.root_acc, &w.keyaudit_acc, &w.payroll.1, &w.ats.1]
        .into_iter()
        .map(String::as_str)
        .collect();
    assert_eq!(listed, expected, "{err}");
    let p = &keys[&w.payroll.1];
    assert_eq!(p["name"], "token-payroll-sync");
    assert_eq!(p["owner"], "paycorp");
    assert_eq!(p["environment"], "prod");
    assert_eq!(p["purpose"], "payroll export");
    assert_eq!(p["status"], "active");
    assert!(p["expires"].is_string() && p["created"].is_string(), "{p}");
    assert_eq!(strs(&p["scopes"]), ["default", "payroll-read"]);
    let a = &keys[&w.ats.1];
    assert_eq!(a["owner"], "talentgrid");
    assert_eq!(a["environment"], "sandbox");
    assert_eq!(strs(&keys[&w.root_acc]["scopes"]), ["root"]);
    assert!(keys[&w.root_acc]["expires"].is_null());

    // Events, tied to the right tokens, denials included.
    let events = |key: &str| -> Vec<(String, String)> {
        ka.json(&["events", "--key", key, "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pe = events(&w.payroll.1);
    assert_eq!(
        pe,
        [
            ("read secret/data/payroll/salaries".into(), "success".into()),
            ("read secret/data/ats/candidates".into(), "denied".into()),
        ],
        "{pe:?}"
    );
    let ae = events(&w.ats.1);
    assert_eq!(
        ae.iter().filter(|(_, o)| o == "denied").count(),
        2,
        "{ae:?}"
    );
    assert_eq!(
        ae.iter().filter(|(_, o)| o == "success").count(),
        1,
        "{ae:?}"
    );
    let one = &ka.json(&["events", "--key", &w.payroll.1, "--format", "json"])[0];
    assert_eq!(one["principal"], "token-payroll-sync");
    assert_eq!(one["source_ip"], "127.0.0.1");
    assert_eq!(one["scope"], "payroll-read");
    // The root token made the setup requests (policies, secrets, token creation).
    let re = events(&w.root_acc);
    assert!(
        re.iter()
            .any(|(a, o)| a == "update auth/token/create" && o == "success"),
        "{re:?}"
    );
    // keyaudit's own sync calls are not imported.
    let ke = events(&w.keyaudit_acc);
    assert!(
        ke.iter()
            .all(|(a, _)| !a.contains("lookup-accessor") && !a.contains("audit-hash")),
        "{ke:?}"
    );

    // A second sync adds nothing (no duplicates, own calls skipped).
    let before = ka
        .json(&["events", "--format", "json"])
        .as_array()
        .unwrap()
        .len();
    let (ok, _, err2) = ka.run(&["sync"]);
    assert!(ok, "{err2}");
    assert!(err2.contains("0 new events (0 already cached)"), "{err2}");
    let after = ka
        .json(&["events", "--format", "json"])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);

    // The same with no url and no token in the config: BAO_ADDR and VAULT_TOKEN.
    let mut env_only = Keyaudit::new(&w.bao, &w.keyaudit_token);
    std::fs::write(
        &env_only.config,
        format!(
            "[[provider]]\nname = \"bao\"\nkind = \"vault\"\naudit_log = \"{}\"\naudit_device = \"{DEVICE}\"\n",
            w.bao.audit_log.display()
        ),
    )
    .unwrap();
    env_only.env = vec![
        ("BAO_ADDR".into(), w.bao.addr.clone()),
        ("VAULT_TOKEN".into(), w.keyaudit_token.clone()),
    ];
    let (ok, _, err3) = env_only.run(&["sync"]);
    assert!(ok && err3.contains("bao: 4 keys"), "{err3}");

    // No token value reached the cache.
    let db = std::fs::read(&ka.db).unwrap();
    let wal = std::fs::read(ka.db.with_extension("db-wal")).unwrap_or_default();
    for secret in [&w.payroll.0, &w.ats.0, &w.keyaudit_token] {
        for bytes in [&db, &wal] {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|win| win == secret.as_bytes()),
                "a token value is in the cache"
            );
        }
    }
}

fn config(w: &World) -> ProviderConfig {
    ProviderConfig {
        name: "bao".into(),
        kind: "vault".into(),
        url: Some(w.bao.addr.clone()),
        token: Some(w.keyaudit_token.clone().into()),
        audit_log: Some(w.bao.audit_log.clone()),
        audit_device: Some(DEVICE.into()),
        ..ProviderConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_rotate_and_clear_errors() {
    let w = world().await;
    let p = provider::from_config(&config(&w)).unwrap();
    let caps = p.capabilities();
    assert!(caps.revoke && caps.rotate_overlap && caps.verify_secret && caps.list_events);
    assert!(!caps.disable, "Vault tokens cannot be disabled");

    // Revoke through the journaled action path, by accessor.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    keyaudit::sync::sync_provider(
        &db,
        p.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .unwrap();
    let ats_key = Store::open(&db)
        .unwrap()
        .key("bao", &w.ats.1)
        .unwrap()
        .unwrap()
        .key;
    let after = apply_key_op(
        &Cache::new(&db),
        p.clone(),
        &ats_key,
        KeyOp::Revoke,
        Some("leaked"),
    )
    .await
    .unwrap();
    assert_eq!(after.status.as_str(), "revoked");
    assert_eq!(
        after.name, "token-ats-import",
        "the cache keeps what was revoked"
    );
    assert_eq!(
        read(&w.bao, &w.ats.0, "ats/candidates").await,
        403,
        "a revoked token fails"
    );
    // Revoking again: the token is gone at the provider.
    assert!(matches!(
        p.revoke(&w.ats.1).await,
        Err(ProviderError::NotFound { .. })
    ));
    // The attempt with the revoked token is kept: the server no longer knows its
    // accessor, but its client-token HMAC was seen with the accessor before.
    keyaudit::sync::sync_provider(
        &db,
        p.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .unwrap();
    let store = Store::open(&db).unwrap();
    let row = store.key("bao", &w.ats.1).unwrap().unwrap();
    assert_eq!(row.key.status.as_str(), "revoked");
    let q = keyaudit::store::EventQuery {
        key_id: Some(w.ats.1.clone()),
        ..Default::default()
    };
    let denied: Vec<_> = store
        .events(&q)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.outcome.as_str() == "denied")
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        denied,
        [
            "read secret/data/payroll/salaries",
            "read secret/data/payroll/salaries",
            "read secret/data/ats/candidates"
        ]
    );

    // Without a listing first (no lookups to learn from), the HMACs come from
    // sys/audit-hash.
    let fresh = provider::from_config(&config(&w)).unwrap();
    let page = fresh.list_events(None).await.unwrap();
    assert!(page
        .events
        .iter()
        .any(|e| e.key_id == w.payroll.1 && e.outcome.as_str() == "denied"));
    let log = std::fs::read_to_string(&w.bao.audit_log).unwrap();
    assert!(log.contains("sys/audit-hash/to-file"));

    // Rotate with no grace: a working new token with the same policies and metadata,
    // the old one revoked.
    let issued = p.rotate(&w.payroll.1, Duration::ZERO).await.unwrap();
    assert_ne!(issued.key.id, w.payroll.1);
    assert_eq!(issued.key.scopes, ["default", "payroll-read"]);
    assert_eq!(issued.key.name, "token-payroll-sync");
    assert_eq!(issued.key.owner, "paycorp");
    assert_eq!(issued.key.environment.as_deref(), Some("prod"));
    let ttl = issued.key.expires.unwrap() - issued.key.created.unwrap();
    assert!(
        (7190..=7210).contains(&ttl.num_seconds()),
        "same TTL: {ttl}"
    );
    let old = issued.old.as_ref().unwrap();
    assert_eq!(old.status.as_str(), "revoked");
    assert_eq!(old.rotated_to.as_deref(), Some(issued.key.id.as_str()));
    let (s, _) = w
        .bao
        .api(
            "GET",
            "secret/data/payroll/salaries",
            issued.secret.expose(),
            None,
        )
        .await;
    assert_eq!(s, 200, "the new token works");
    let (s, _) = w
        .bao
        .api("GET", "secret/data/payroll/salaries", &w.payroll.0, None)
        .await;
    assert_eq!(s, 403, "the old token does not");
    assert_eq!(
        p.verify_secret(&issued.secret).await.unwrap(),
        issued.key.id
    );
    assert!(matches!(
        p.verify_secret(&keyaudit::secret::Secret::new(w.payroll.0.clone()))
            .await,
        Err(ProviderError::Unauthorized { .. })
    ));

    // Rotate with a grace period: both work until keyaudit revokes the old one.
    let second = p
        .rotate(&issued.key.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(second.old.as_ref().unwrap().status.as_str(), "active");
    for t in [issued.secret.expose(), second.secret.expose()] {
        let (s, _) = w
            .bao
            .api("GET", "secret/data/payroll/salaries", t, None)
            .await;
        assert_eq!(s, 200);
    }

    // A token made by a token role is rotated through the same role.
    w.bao
        .root(
            "POST",
            "auth/token/roles/partner",
            Some(json!({"allowed_policies": ["ats-read"], "orphan": true, "token_period": "1h"})),
        )
        .await;
    let (role_token, role_acc) = {
        let v = w
            .bao
            .root(
                "POST",
                "auth/token/create/partner",
                Some(json!({"policies": ["ats-read"], "display_name": "ats-role", "meta": {"owner": "talentgrid"}})),
            )
            .await;
        (
            v["auth"]["client_token"].as_str().unwrap().to_string(),
            v["auth"]["accessor"].as_str().unwrap().to_string(),
        )
    };
    let via_role = p.rotate(&role_acc, Duration::ZERO).await.unwrap();
    assert_eq!(via_role.key.owner, "talentgrid");
    assert!(via_role.key.scopes.contains(&"ats-read".to_string()));
    let (_, looked) = w
        .bao
        .api(
            "POST",
            "auth/token/lookup-accessor",
            vault_support::ROOT,
            Some(json!({"accessor": via_role.key.id})),
        )
        .await;
    assert_eq!(looked["data"]["role"], "partner", "{looked}");
    assert_eq!(looked["data"]["orphan"], true);
    assert_eq!(
        read(&w.bao, via_role.secret.expose(), "ats/candidates").await,
        200
    );
    assert_eq!(read(&w.bao, &role_token, "ats/candidates").await, 403);

    // Create: policies are the scopes; a token without any is refused (it would
    // inherit keyaudit's own policies).
    let mut spec = keyaudit::provider::NewKey {
        name: "onboarding-sync".into(),
        owner: "onboardco".into(),
        environment: Some("prod".into()),
        purpose: None,
        scopes: vec!["payroll-read".into()],
    };
    let made = p.create(&spec).await.unwrap();
    assert_eq!(made.key.name, "token-onboarding-sync");
    assert_eq!(made.key.owner, "onboardco");
    assert_eq!(made.key.scopes, ["default", "payroll-read"]);
    assert_eq!(
        read(&w.bao, made.secret.expose(), "payroll/salaries").await,
        200
    );
    spec.scopes.clear();
    assert!(matches!(
        p.create(&spec).await,
        Err(ProviderError::Conflict { .. })
    ));

    // A token without the capability gets a message naming it.
    let (weak, _) = w.bao.create_token(json!({"policies": ["default"]})).await;
    let mut cfg = config(&w);
    cfg.token = Some(weak.into());
    let weak = provider::from_config(&cfg).unwrap();
    let e = weak.list_keys(None).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "bao: listing tokens: permission denied: keyaudit's token needs `list` and `sudo` on auth/token/accessors (see docs/providers/vault.md)"
    );
    let e = weak.revoke(&w.keyaudit_acc).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("token accessor {}", w.keyaudit_acc)),
        "{e}"
    );
    assert!(
        e.contains("needs `update` on auth/token/lookup-accessor"),
        "{e}"
    );
    // A bad token is told apart from a missing capability.
    cfg.token = Some("s.notatoken".into());
    let bad = provider::from_config(&cfg).unwrap();
    let e = bad.list_keys(None).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Unauthorized { status: 403, .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_revoke_by_policy_and_by_display_name() {
    let w = world().await;
    // Two more tokens with the payroll policy, one of another partner's name.
    let extra = w
        .bao
        .create_token(json!({"policies": ["payroll-read"], "display_name": "payroll-backup", "no_parent": true}))
        .await;
    let p = provider::from_config(&config(&w)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    keyaudit::sync::sync_provider(
        &db,
        p.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .unwrap();
    let select = |q: &str| -> Vec<keyaudit::model::Key> {
        let rows = Store::open(&db).unwrap().keys().unwrap();
        keyaudit::filter::Filter::parse(q)
            .unwrap()
            .apply_keys(rows, chrono::Utc::now())
            .into_iter()
            .map(|r| r.key)
            .collect()
    };
    // The selection `revoke --match` uses: policies are scopes, display names are names.
    let by_policy: BTreeSet<String> = select("scope:payroll-read status:active")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(
        by_policy,
        BTreeSet::from([w.payroll.1.clone(), extra.1.clone()])
    );
    let by_name: Vec<String> = select("name:ats-import")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(by_name, std::slice::from_ref(&w.ats.1));
    for key in select("scope:payroll-read status:active") {
        apply_key_op(
            &Cache::new(&db),
            p.clone(),
            &key,
            KeyOp::Revoke,
            Some("payroll leak"),
        )
        .await
        .unwrap();
    }
    for t in [&w.payroll.0, &extra.0] {
        assert_eq!(read(&w.bao, t, "payroll/salaries").await, 403);
    }
    assert_eq!(
        read(&w.bao, &w.ats.0, "ats/candidates").await,
        200,
        "others untouched"
    );
    assert!(select("scope:payroll-read status:active").is_empty());
    let journal = Store::open(&db).unwrap().journal(None, None).unwrap();
    assert_eq!(
        journal.iter().filter(|j| j.action == "revoke").count(),
        4,
        "started and done, per token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_tokens_sync_in_seconds() {
    // 500 by default to keep the suite quick on a shared machine; set
    // KEYAUDIT_VAULT_TOKENS=2000 to measure (docs/providers/vault.md has the figures).
    let n: usize = std::env::var("KEYAUDIT_VAULT_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let bao = Bao::start().await;
    bao.put_policy("keyaudit", &keyaudit_policy()).await;
    bao.put_policy("payroll-read", PAYROLL_READ).await;
    let (token, _) = bao
        .create_token(json!({"policies": ["keyaudit"], "no_parent": true}))
        .await;
    let made = Instant::now();
    let tokens: Vec<(String, String)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let bao = &bao;
            async move {
                bao.create_token(json!({
                    "policies": ["payroll-read"],
                    "display_name": format!("partner-{i}"),
                    "meta": {"owner": format!("partner-{}", i % 50)},
                    "ttl": "1h",
                    "no_parent": true,
                }))
                .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let made = made.elapsed();
    // One request per token, so the sync also has events to tie.
    let used = Instant::now();
    futures_util::stream::iter(tokens.iter())
        .map(|(t, _)| bao.api("GET", "secret/data/payroll/x", t, None))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let used = used.elapsed();
    let ka = Keyaudit::new(&bao, &token);
    let started = Instant::now();
    let (ok, _, err) = ka.run(&["sync"]);
    let took = started.elapsed();
    assert!(ok, "{err}");
    eprintln!(
        "created {n} tokens in {:.1}s, used them in {:.1}s; keyaudit sync: {:.2}s ({:.0} tokens/s) — {}",
        made.as_secs_f64(),
        used.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        err.trim()
    );
    assert!(err.contains(&format!("bao: {} keys", n + 2)), "{err}");
    let store = Store::open(&ka.db).unwrap();
    // One request per token: the HMACs came from keyaudit's own lookup lines, not from
    // sys/audit-hash.
    let log = std::fs::read_to_string(&bao.audit_log).unwrap();
    let hashes = log.matches("\"path\":\"sys/audit-hash/").count();
    assert!(hashes <= 4, "{hashes} audit-hash lines");
    // Every partner request is tied to its token. (The dev server's bootstrap token,
    // revoked before keyaudit ever saw it, is the one kept under `unknown:...`.)
    let accessors: BTreeSet<&str> = tokens.iter().map(|(_, a)| a.as_str()).collect();
    let reads: Vec<_> = store
        .events(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "read secret/data/payroll/x")
        .collect();
    assert_eq!(reads.len(), n);
    assert!(reads
        .iter()
        .all(|e| accessors.contains(e.event.key_id.as_str())));
    for k in store.keys().unwrap() {
        if k.key.source.as_str() == "logs" {
            assert!(k.key.id.starts_with("unknown:"), "{}", k.key.id);
        }
    }
    assert!(took < Duration::from_secs(20), "sync took {took:?}");
}
