//! Lost answers against real servers. A loopback proxy (tests/proxy_support) forwards
//! keyaudit's requests to OpenBao or moto but drops the answer to the creating call
//! (Vault token create, IAM CreateAccessKey) after the server applied it. `keyaudit
//! rotate` (the real binary) must not send the call again (neither has idempotency):
//! it reads the provider's state, finds the key its lost call created, revokes it
//! (journaled as `orphan-revoked` with its id), rolls the rotation back and says so.
//! Checked at the server: no key keyaudit created is left active, the old key works.

mod proxy_support;
mod vault_support;

use proxy_support::LossyProxy;
use serde_json::{json, Value};
use std::path::Path;
use vault_support::{keyaudit_policy, Bao, Keyaudit};

/// The journal of the cache, as JSON.
fn journal(run: impl Fn(&[&str]) -> (bool, String, String)) -> Vec<Value> {
    let (ok, out, err) = run(&["journal", "--format", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .unwrap()
        .clone()
}

/// The ids `orphan-revoked` entries name.
fn orphans_in(journal: &[Value]) -> Vec<String> {
    journal
        .iter()
        .filter(|e| e["action"] == "orphan-revoked")
        .map(|e| e["params"]["orphan"].as_str().unwrap().to_string())
        .collect()
}

fn rotate_args<'a>(target: &'a str, sink: &'a str) -> [&'a str; 7] {
    [
        "rotate",
        target,
        "--deliver",
        sink,
        "--grace",
        "1h",
        "--reason",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_token_create_whose_answer_is_lost_leaves_no_live_orphan() {
    let bao = Bao::start().await;
    bao.put_policy(
        "payroll-read",
        r#"path "secret/data/payroll/*" { capabilities = ["read"] }"#,
    )
    .await;
    bao.put_policy("keyaudit", &keyaudit_policy()).await;
    let (ka_token, ka_acc) = bao
        .create_token(
            json!({"policies": ["keyaudit"], "display_name": "keyaudit", "no_parent": true}),
        )
        .await;
    let (old_token, old_acc) = bao
        .create_token(json!({
            "policies": ["payroll-read"],
            "display_name": "payroll-sync",
            "meta": {"owner": "paycorp"},
            "ttl": "2h",
            "no_parent": true,
        }))
        .await;
    let root_acc = bao.root_accessor().await;
    let backend = bao.addr.trim_start_matches("http://").to_string();
    let proxy = LossyProxy::start(
        &backend,
        |head, _| head.starts_with("POST /v1/auth/token/create"),
        1,
    );
    let ka = Keyaudit::new(&bao, &ka_token);
    let text = std::fs::read_to_string(&ka.config)
        .unwrap()
        .replace(&bao.addr, &proxy.url());
    std::fs::write(&ka.config, text).unwrap();
    let run = |args: &[&str]| ka.run(args);
    let (ok, _, err) = run(&["sync"]);
    assert!(ok, "sync: {err}");

    let sink = ka.home.path().join("payroll.token");
    let spec = format!("file:{}", sink.display());
    let target = format!("bao/{old_acc}");
    let mut args = rotate_args(&target, &spec).to_vec();
    args.push("answer lost on purpose");
    let (ok, _, err) = run(&args);
    assert_eq!(proxy.lost(), 1, "the proxy lost the token create's answer");
    assert!(!ok, "a rolled-back rotation exits non-zero: {err}");

    // keyaudit found the token its call created, by reading the accessors, and revoked it.
    let orphans = orphans_in(&journal(run));
    assert_eq!(orphans.len(), 1, "one orphan journaled: {orphans:?}");
    let orphan = &orphans[0];
    assert!(
        err.contains("rolled back")
            && err.contains(&format!("the provider had created {orphan}, now revoked"))
            && err.contains("orphan-revoked"),
        "the user is told what happened: {err}"
    );
    let listed = bao
        .root("LIST", "auth/token/accessors", None)
        .await
        .pointer("/data/keys")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>();
    let expected: std::collections::BTreeSet<String> =
        [root_acc, ka_acc, old_acc.clone()].into_iter().collect();
    assert_eq!(
        listed, expected,
        "no token keyaudit created is left at OpenBao"
    );
    let (status, _) = bao
        .api(
            "POST",
            "auth/token/lookup-accessor",
            vault_support::ROOT,
            Some(json!({ "accessor": orphan })),
        )
        .await;
    assert_eq!(status, 400, "the orphan's accessor is gone (revoked)");
    let (status, _) = bao
        .api("GET", "auth/token/lookup-self", &old_token, None)
        .await;
    assert_eq!(status, 200, "the old token still works");
    assert!(!sink.exists(), "nothing was delivered");
    let (ok, out, err) = run(&["workflows", "--all"]);
    assert!(ok && out.contains("rolled_back"), "{out}{err}");
    let (ok, _, err) = run(&["journal", "verify"]);
    assert!(ok, "{err}");
}

#[cfg(feature = "aws")]
mod aws_support;

/// Runs the binary against the moto behind `proxy`; returns (success, stdout, stderr).
#[cfg(feature = "aws")]
fn aws_run(moto: &aws_support::Moto, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = moto
        .keyaudit(dir)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--db")
        .arg(dir.join("cache.db"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_create_access_key_whose_answer_is_lost_leaves_no_live_orphan() {
    use aws_sdk_iam::types::StatusType;
    let moto = aws_support::Moto::start().await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let old = moto.user_with_key("payroll-sync").await;
    let proxy = LossyProxy::start(
        &format!("127.0.0.1:{}", moto.port),
        |_, body| String::from_utf8_lossy(body).contains("Action=CreateAccessKey"),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[[provider]]\nname = \"aws\"\nkind = \"aws\"\nregion = \"{}\"\nendpoint = \"{}\"\n",
            aws_support::REGION,
            proxy.url()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| aws_run(&moto, dir.path(), args);
    let (ok, _, err) = run(&["sync"]);
    assert!(ok, "sync: {err}");

    let sink = dir.path().join("payroll.json");
    let spec = format!("file:{}", sink.display());
    let target = format!("aws/{old}");
    let mut args = rotate_args(&target, &spec).to_vec();
    args.push("answer lost on purpose");
    let (ok, _, err) = run(&args);
    assert_eq!(proxy.lost(), 1, "the proxy lost CreateAccessKey's answer");
    assert!(!ok, "a rolled-back rotation exits non-zero: {err}");

    let orphans = orphans_in(&journal(run));
    assert_eq!(orphans.len(), 1, "one orphan journaled: {orphans:?}");
    let orphan = &orphans[0];
    assert_ne!(orphan, &old);
    assert!(
        err.contains("rolled back")
            && err.contains(&format!("the provider had created {orphan}, now revoked")),
        "the user is told what happened: {err}"
    );
    // At moto: the user holds only the old key, active; the orphan is gone.
    let keys: Vec<(String, StatusType)> = iam
        .list_access_keys()
        .user_name("payroll-sync")
        .send()
        .await
        .unwrap()
        .access_key_metadata()
        .iter()
        .map(|m| {
            (
                m.access_key_id().unwrap().to_string(),
                m.status().unwrap().clone(),
            )
        })
        .collect();
    assert_eq!(keys, vec![(old.clone(), StatusType::Active)], "at moto");
    assert!(!sink.exists(), "nothing was delivered");
    let (ok, _, err) = run(&["journal", "verify"]);
    assert!(ok, "{err}");
}
