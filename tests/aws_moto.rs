//! The AWS provider against a real moto server: seeded with the SDK, synced with the
//! real binary, acted on through the provider and `apply_key_op`, checked through the API.

#![cfg(feature = "aws")]

mod aws_support;

use aws_sdk_iam::types::{StatusType, Tag};
use aws_support::{Moto, ACCOUNT, REGION};
use keyaudit::action::{apply_key_op, KeyOp};
use keyaudit::config::ProviderConfig;
use keyaudit::model::KeyStatus;
use keyaudit::provider::{Provider, ProviderError};
use keyaudit::store::Cache;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const BUCKET: &str = "trail-logs";
const PREFIX: &str = "org";

/// What the seed created.
struct Seeded {
    alice: Vec<String>,
    bob: String,
    gold_key: String,
    old_key: String,
    gold_plan: String,
}

async fn seed_iam(moto: &Moto) -> (Vec<String>, String) {
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    let policy = iam
        .create_policy()
        .policy_name("tg-payroll-read")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let policy_arn = policy.policy().unwrap().arn().unwrap().to_string();
    iam.create_user()
        .user_name("alice")
        .tags(tag("purpose", "payroll export"))
        .tags(tag("environment", "prod"))
        .send()
        .await
        .unwrap();
    iam.attach_user_policy()
        .user_name("alice")
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    let mut alice = Vec::new();
    for _ in 0..2 {
        let k = iam
            .create_access_key()
            .user_name("alice")
            .send()
            .await
            .unwrap();
        alice.push(k.access_key().unwrap().access_key_id().to_string());
    }
    iam.update_access_key()
        .user_name("alice")
        .access_key_id(&alice[1])
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();
    iam.create_user().user_name("bob").send().await.unwrap();
    iam.attach_user_policy()
        .user_name("bob")
        .policy_arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
        .send()
        .await
        .unwrap();
    iam.put_user_policy()
        .user_name("bob")
        .policy_name("bob-sqs")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let bob = iam
        .create_access_key()
        .user_name("bob")
        .send()
        .await
        .unwrap();
    let bob = bob.access_key().unwrap().access_key_id().to_string();
    // A user without keys lists nothing.
    iam.create_user().user_name("carol").send().await.unwrap();
    (alice, bob)
}

async fn seed_apigw(moto: &Moto) -> (String, String, String) {
    let gw = aws_sdk_apigateway::Client::new(&moto.sdk().await);
    let gold = gw
        .create_api_key()
        .name("partner-acme")
        .enabled(true)
        .tags("owner", "acme-ats")
        .send()
        .await
        .unwrap();
    let old = gw
        .create_api_key()
        .name("partner-legacy")
        .enabled(false)
        .send()
        .await
        .unwrap();
    let plan = gw
        .create_usage_plan()
        .name("partner-gold")
        .send()
        .await
        .unwrap();
    gw.create_usage_plan_key()
        .usage_plan_id(plan.id().unwrap())
        .key_id(gold.id().unwrap())
        .key_type("API_KEY")
        .send()
        .await
        .unwrap();
    (
        gold.id().unwrap().to_string(),
        old.id().unwrap().to_string(),
        plan.id().unwrap().to_string(),
    )
}

fn record(n: u32, key: &str, user: &str, ip: &str, time: &str, name: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA0000", "userName": user,
                         "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
                         "accountId": ACCOUNT, "accessKeyId": key},
        "eventTime": time,
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": "payroll-sync/1.4",
        "requestID": format!("REQ{n:04}"),
        "eventID": format!("evt-{n:04}"),
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    })
}

fn log_key(region: &str, day: &str, stamp: &str, unique: &str) -> String {
    format!(
        "{PREFIX}/AWSLogs/{ACCOUNT}/CloudTrail/{region}/2026/11/{day}/{ACCOUNT}_CloudTrail_{region}_{stamp}_{unique}.json.gz"
    )
}

fn gzip(records: &[Value]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json!({ "Records": records }).to_string().as_bytes())
        .unwrap();
    gz.finish().unwrap()
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

/// CloudTrail files: alice's key from the office network for a day, then twice from a
/// network never seen; bob denied once; a role session and a service event (skipped);
/// an empty file; bob again in another region; a digest file (not a log). 10 events.
async fn seed_trail(moto: &Moto, alice: &str, bob: &str) -> BTreeSet<String> {
    let s3 = moto.s3().await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut day1: Vec<Value> = (1..=6)
        .map(|n| {
            record(
                n,
                alice,
                "alice",
                &format!("10.20.0.{n}"),
                &format!("2026-11-27T09:0{n}:00Z"),
                "GetObject",
            )
        })
        .collect();
    let mut denied = record(
        7,
        bob,
        "bob",
        "10.30.0.1",
        "2026-11-27T09:30:00Z",
        "ListQueues",
    );
    denied["eventSource"] = json!("sqs.amazonaws.com");
    denied["errorCode"] = json!("AccessDenied");
    day1.push(denied);
    let mut role = record(
        90,
        "ASIAROLESESSION00001",
        "x",
        "10.0.0.9",
        "2026-11-27T09:40:00Z",
        "GetObject",
    );
    role["userIdentity"]["type"] = json!("AssumedRole");
    day1.push(role);
    day1.push(
        json!({"eventTime": "2026-11-27T09:50:00Z", "eventName": "AssumeRole",
                     "userIdentity": {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
                     "eventID": "evt-svc"}),
    );
    put(
        &s3,
        &log_key(REGION, "27", "20261127T0900Z", "a1"),
        gzip(&day1),
    )
    .await;
    put(
        &s3,
        &log_key(REGION, "27", "20261127T1000Z", "b2"),
        gzip(&[]),
    )
    .await;
    let day2: Vec<Value> = (8..=9)
        .map(|n| {
            record(
                n,
                alice,
                "alice",
                "198.51.100.7",
                &format!("2026-11-28T02:1{n}:00Z"),
                "GetObject",
            )
        })
        .collect();
    put(
        &s3,
        &log_key(REGION, "28", "20261128T0200Z", "c3"),
        gzip(&day2),
    )
    .await;
    let eu = record(
        10,
        bob,
        "bob",
        "10.30.0.1",
        "2026-11-28T03:00:00Z",
        "PutObject",
    );
    put(
        &s3,
        &log_key("eu-west-1", "28", "20261128T0300Z", "d4"),
        gzip(&[eu]),
    )
    .await;
    put(
        &s3,
        &format!("{PREFIX}/AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/2026/11/28/digest.json.gz"),
        gzip(&[]),
    )
    .await;
    (1..=10).map(|n| format!("evt-{n:04}")).collect()
}

async fn seed(moto: &Moto) -> (Seeded, BTreeSet<String>) {
    let (alice, bob) = seed_iam(moto).await;
    let (gold_key, old_key, gold_plan) = seed_apigw(moto).await;
    let events = seed_trail(moto, &alice[0], &bob).await;
    (
        Seeded {
            alice,
            bob,
            gold_key,
            old_key,
            gold_plan,
        },
        events,
    )
}

fn write_config(dir: &Path, endpoint: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[[provider]]\nname = \"talentgrid-aws\"\nkind = \"aws\"\nregion = \"{REGION}\"\n\
             endpoint = \"{endpoint}\"\ncloudtrail_bucket = \"{BUCKET}\"\ncloudtrail_prefix = \"{PREFIX}\"\n"
        ),
    )
    .unwrap();
    path
}

/// Runs the binary; returns (exit code, stdout, stderr).
fn run(moto: &Moto, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = moto
        .keyaudit(dir)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--db")
        .arg(dir.join("cache.db"))
        .args(args)
        .output()
        .expect("run keyaudit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(dir_out: &(i32, String, String)) -> Vec<Value> {
    assert_eq!(dir_out.0, 0, "keyaudit failed: {}", dir_out.2);
    serde_json::from_str(&dir_out.1).unwrap_or_else(|e| panic!("{e}: {}", dir_out.1))
}

fn by_id(keys: &[Value]) -> std::collections::BTreeMap<String, &Value> {
    keys.iter()
        .map(|k| (k["id"].as_str().unwrap().to_string(), k))
        .collect()
}

fn scopes(k: &Value) -> Vec<String> {
    k["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_brings_exactly_the_seeded_keys_and_events() {
    let moto = Moto::start().await;
    let (s, event_ids) = seed(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &moto.endpoint);

    let synced = run(&moto, dir.path(), &["sync"]);
    assert_eq!(synced.0, 0, "sync failed: {}", synced.2);
    assert!(
        synced.2.contains("talentgrid-aws: 5 keys") && synced.2.contains("10 new events"),
        "{}",
        synced.2
    );

    let keys = json_of(&run(&moto, dir.path(), &["keys", "--format", "json"]));
    let keys = by_id(&keys);
    let want: BTreeSet<String> = [
        s.alice[0].clone(),
        s.alice[1].clone(),
        s.bob.clone(),
        format!("apigw:{}", s.gold_key),
        format!("apigw:{}", s.old_key),
    ]
    .into();
    assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), want);

    let a0 = keys[&s.alice[0]];
    assert_eq!(a0["owner"], "alice");
    assert_eq!(a0["name"], format!("alice/{}", s.alice[0]));
    assert_eq!(a0["prefix"], s.alice[0][..8]);
    assert_eq!(a0["status"], "active");
    assert_eq!(a0["purpose"], "payroll export");
    assert_eq!(a0["environment"], "prod");
    assert!(a0["created"].is_string());
    assert_eq!(
        scopes(a0),
        ["policy:tg-payroll-read", "s3:GetObject", "s3:ListBucket"]
    );
    assert_eq!(keys[&s.alice[1]]["status"], "inactive");
    assert_eq!(
        scopes(keys[&s.bob]),
        ["policy:ReadOnlyAccess", "policy:bob-sqs", "sqs:SendMessage"]
    );
    let gold = keys[&format!("apigw:{}", s.gold_key)];
    assert_eq!(gold["name"], "partner-acme");
    assert_eq!(gold["owner"], "acme-ats");
    assert_eq!(gold["status"], "active");
    assert_eq!(scopes(gold), ["usage-plan:partner-gold"]);
    let old = keys[&format!("apigw:{}", s.old_key)];
    assert_eq!(old["status"], "inactive");
    assert!(scopes(old).is_empty());

    let events = json_of(&run(&moto, dir.path(), &["events", "--format", "json"]));
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, event_ids);
    let ev = |id: &str| events.iter().find(|e| e["id"] == id).unwrap();
    assert_eq!(ev("evt-0001")["key_id"], s.alice[0]);
    assert_eq!(ev("evt-0001")["action"], "s3.amazonaws.com:GetObject");
    assert_eq!(ev("evt-0001")["scope"], "s3:GetObject");
    assert_eq!(ev("evt-0001")["user_agent"], "payroll-sync/1.4");
    assert_eq!(ev("evt-0001")["request_id"], "REQ0001");
    assert_eq!(ev("evt-0007")["outcome"], "denied");
    assert_eq!(ev("evt-0008")["source_ip"], "198.51.100.7");
    assert_eq!(ev("evt-0010")["key_id"], s.bob);
    let alice_events = json_of(&run(
        &moto,
        dir.path(),
        &["events", "--key", &s.alice[0], "--format", "json"],
    ));
    assert_eq!(alice_events.len(), 8);

    // Incremental: only the new file is read; nothing is duplicated.
    let s3 = moto.s3().await;
    let later = record(
        11,
        &s.alice[0],
        "alice",
        "198.51.100.7",
        "2026-11-28T05:00:00Z",
        "GetObject",
    );
    put(
        &s3,
        &log_key(REGION, "28", "20261128T0500Z", "e5"),
        gzip(&[later]),
    )
    .await;
    let again = run(&moto, dir.path(), &["sync"]);
    assert_eq!(again.0, 0, "{}", again.2);
    assert!(
        again.2.contains("1 new events (0 already cached)"),
        "{}",
        again.2
    );
    let events = json_of(&run(&moto, dir.path(), &["events", "--format", "json"]));
    assert_eq!(events.len(), 11);
}

/// The raw record of every event of a cache, by event id.
fn raw_records(db: &Path) -> std::collections::BTreeMap<String, String> {
    let store = keyaudit::store::Store::open(db).unwrap();
    store
        .events(&keyaudit::store::EventQuery::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.event.id, r.event.raw.unwrap_or_default()))
        .collect()
}

/// One CloudTrail mapping: a trail file synced from S3 and the same file imported give
/// the same events (the import adds none) and the same redacted raw records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trail_file_synced_then_imported_adds_nothing_and_keeps_the_same_raw_records() {
    let moto = Moto::start().await;
    let (s, _) = seed(&moto).await;
    let leaked = "ghp_R2d2C3poBb8Lk4Mn6Pq8Rs0Tu2Vw4Xy6Za8";
    let mut with_secret = record(
        20,
        &s.bob,
        "bob",
        "10.30.0.2",
        "2026-11-28T06:00:00Z",
        "PutObject",
    );
    with_secret["requestParameters"] =
        json!({"key": format!("notes/{leaked}.txt"), "bucketName": "hr"});
    with_secret["errorCode"] = json!("Client.UnauthorizedOperation");
    let mut no_id = record(
        21,
        &s.alice[0],
        "alice",
        "198.51.100.7",
        "2026-11-28T06:01:00Z",
        "GetObject",
    );
    no_id.as_object_mut().unwrap().remove("eventID");
    let key = log_key(REGION, "28", "20261128T0600Z", "f6");
    let body = gzip(&[
        with_secret,
        no_id,
        record(
            22,
            &s.alice[0],
            "alice",
            "198.51.100.7",
            "2026-11-28T06:02:00Z",
            "GetObject",
        ),
    ]);
    put(&moto.s3().await, &key, body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &moto.endpoint);
    let synced = run(&moto, dir.path(), &["sync"]);
    assert_eq!(synced.0, 0, "sync failed: {}", synced.2);
    assert!(synced.2.contains("13 new events"), "{}", synced.2);

    let file = dir.path().join("trail.json.gz");
    std::fs::write(&file, &body).unwrap();
    let import = [
        "import",
        "--source",
        "talentgrid-aws",
        file.to_str().unwrap(),
    ];
    let imported = run(&moto, dir.path(), &import);
    assert_eq!(imported.0, 0, "{}", imported.2);
    assert!(
        imported.2.contains("3 records, 0 imported, 3 duplicates"),
        "{}",
        imported.2
    );
    let events = json_of(&run(&moto, dir.path(), &["events", "--format", "json"]));
    assert_eq!(events.len(), 13);

    // The same file imported into a cache of its own: the same ids and raw records.
    let alone = dir.path().join("alone.db");
    let out = moto
        .keyaudit(dir.path())
        .args(["--db", alone.to_str().unwrap()])
        .args(import)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_file = raw_records(&alone);
    let from_s3 = raw_records(&dir.path().join("cache.db"));
    assert_eq!(from_file.len(), 3);
    for (id, raw) in &from_file {
        assert_eq!(from_s3.get(id), Some(raw), "raw record of {id}");
        assert!(!raw.contains(leaked), "{raw}");
    }
    assert!(from_file.keys().any(|id| id.starts_with("sha256:")));
    let denied = events.iter().find(|e| e["id"] == "evt-0020").unwrap();
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["action"], "s3.amazonaws.com:PutObject");
}

/// Env for in-process providers (the credential chain reads it). Every test sets the
/// same values.
fn set_test_credentials(dir: &Path) {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_CONFIG_FILE", dir.join("none"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"));
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
}

fn provider(moto: &Moto) -> Arc<dyn Provider> {
    let cfg = ProviderConfig {
        name: "talentgrid-aws".into(),
        kind: "aws".into(),
        region: Some(REGION.into()),
        endpoint: Some(moto.endpoint.clone()),
        cloudtrail_bucket: Some(BUCKET.into()),
        cloudtrail_prefix: Some(PREFIX.into()),
        ..Default::default()
    };
    keyaudit::provider::from_config(&cfg).unwrap()
}

async fn iam_keys(moto: &Moto, user: &str) -> Vec<(String, String)> {
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    let out = iam.list_access_keys().user_name(user).send().await.unwrap();
    let mut v: Vec<(String, String)> = out
        .access_key_metadata()
        .iter()
        .map(|m| {
            (
                m.access_key_id().unwrap().to_string(),
                m.status().unwrap().as_str().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn api_key_state(moto: &Moto, id: &str) -> Option<bool> {
    let gw = aws_sdk_apigateway::Client::new(&moto.sdk().await);
    gw.get_api_key()
        .api_key(id)
        .send()
        .await
        .ok()
        .map(|k| k.enabled())
}

async fn plan_keys(moto: &Moto, plan: &str) -> BTreeSet<String> {
    let gw = aws_sdk_apigateway::Client::new(&moto.sdk().await);
    gw.get_usage_plan_keys()
        .usage_plan_id(plan)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|k| k.id().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_revoke_and_rotate_change_the_account() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    set_test_credentials(dir.path());
    let (s, _) = seed(&moto).await;
    let db = dir.path().join("cache.db");
    let p = provider(&moto);
    keyaudit::sync::sync_provider(
        &db,
        p.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .unwrap();
    let cached = |id: &str| {
        keyaudit::store::Store::open(&db)
            .unwrap()
            .key("talentgrid-aws", id)
            .unwrap()
            .unwrap()
            .key
    };
    let (a0, a1) = (s.alice[0].clone(), s.alice[1].clone());

    // Disable and enable: reversible, journaled, cached.
    let k = apply_key_op(
        &Cache::new(&db),
        p.clone(),
        &cached(&a0),
        KeyOp::Disable,
        Some("test"),
    )
    .await
    .unwrap();
    assert_eq!(k.status, KeyStatus::Inactive);
    assert_eq!(
        iam_keys(&moto, "alice").await,
        sorted(vec![(a0.clone(), "Inactive"), (a1.clone(), "Inactive")])
    );
    assert_eq!(cached(&a0).status, KeyStatus::Inactive);
    apply_key_op(
        &Cache::new(&db),
        p.clone(),
        &cached(&a0),
        KeyOp::Enable,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        iam_keys(&moto, "alice").await,
        sorted(vec![(a0.clone(), "Active"), (a1.clone(), "Inactive")])
    );

    // Rotation is refused while alice has two keys, naming the one to remove.
    let e = p.rotate(&a0, Duration::from_secs(3600)).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ProviderError::Conflict { .. }), "{msg}");
    assert!(
        msg.contains("user alice already has 2 access keys")
            && msg.contains(&format!("keyaudit revoke {a1}")),
        "{msg}"
    );
    assert_eq!(iam_keys(&moto, "alice").await.len(), 2);

    // Revoke: Inactive then deleted.
    let k = apply_key_op(
        &Cache::new(&db),
        p.clone(),
        &cached(&a1),
        KeyOp::Revoke,
        Some("unused"),
    )
    .await
    .unwrap();
    assert_eq!(k.status, KeyStatus::Revoked);
    assert_eq!(
        iam_keys(&moto, "alice").await,
        vec![(a0.clone(), "Active".to_string())]
    );

    // Rotation with overlap: a new key, returned once; the old one stays active.
    let issued = p.rotate(&a0, Duration::from_secs(3600)).await.unwrap();
    let new_id = issued.key.id.clone();
    assert_ne!(new_id, a0);
    assert_eq!(issued.key.owner, "alice");
    assert_eq!(issued.key.scopes, cached(&a0).scopes);
    let pair: Value = serde_json::from_str(issued.secret.expose()).unwrap();
    assert_eq!(pair["AccessKeyId"], new_id.as_str());
    assert!(pair["SecretAccessKey"].as_str().unwrap().len() >= 20);
    assert_eq!(
        issued.old.as_ref().unwrap().rotated_to.as_deref(),
        Some(new_id.as_str())
    );
    assert_eq!(p.verify_secret(&issued.secret).await.unwrap(), new_id);
    assert_eq!(
        iam_keys(&moto, "alice").await,
        sorted(vec![(a0.clone(), "Active"), (new_id.clone(), "Active")])
    );
    // After the grace period the workflow disables, then revokes, the old key.
    p.disable(&a0).await.unwrap();
    p.revoke(&a0).await.unwrap();
    assert_eq!(
        iam_keys(&moto, "alice").await,
        vec![(new_id.clone(), "Active".to_string())]
    );

    // A zero grace verifies the new key and stops the old one at once.
    let issued = p.rotate(&s.bob, Duration::ZERO).await.unwrap();
    assert_eq!(issued.old.as_ref().unwrap().status, KeyStatus::Inactive);
    assert_eq!(
        iam_keys(&moto, "bob").await,
        sorted(vec![
            (s.bob.clone(), "Inactive"),
            (issued.key.id.clone(), "Active")
        ])
    );

    // API Gateway: disable is enabled=false; rotation puts a new key in the same plans.
    let gold = format!("apigw:{}", s.gold_key);
    apply_key_op(
        &Cache::new(&db),
        p.clone(),
        &cached(&gold),
        KeyOp::Disable,
        None,
    )
    .await
    .unwrap();
    assert_eq!(api_key_state(&moto, &s.gold_key).await, Some(false));
    p.enable(&gold).await.unwrap();
    assert_eq!(api_key_state(&moto, &s.gold_key).await, Some(true));
    let issued = p.rotate(&gold, Duration::ZERO).await.unwrap();
    let new_gw = issued.key.id.strip_prefix("apigw:").unwrap().to_string();
    assert!(!issued.secret.expose().is_empty());
    assert_eq!(issued.key.scopes, ["usage-plan:partner-gold"]);
    assert_eq!(
        plan_keys(&moto, &s.gold_plan).await,
        [s.gold_key.clone(), new_gw.clone()].into()
    );
    assert_eq!(api_key_state(&moto, &s.gold_key).await, Some(false));
    assert_eq!(api_key_state(&moto, &new_gw).await, Some(true));
    let old = format!("apigw:{}", s.old_key);
    let k = apply_key_op(
        &Cache::new(&db),
        p.clone(),
        &cached(&old),
        KeyOp::Revoke,
        Some("legacy"),
    )
    .await
    .unwrap();
    assert_eq!(k.status, KeyStatus::Revoked);
    assert_eq!(api_key_state(&moto, &s.old_key).await, None);

    // Clear refusals: unknown keys and root keys.
    let e = p.disable("AKIANOSUCHKEY0000000").await.unwrap_err();
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e}");
    let e = p.revoke(&format!("root:{ACCOUNT}:1")).await.unwrap_err();
    assert!(e.to_string().contains("sign in as the root user"), "{e}");

    // Every action was journaled (before and after).
    let journal = keyaudit::store::Store::open(&db)
        .unwrap()
        .journal(None, None)
        .unwrap();
    assert_eq!(journal.len(), 10);
}

fn sorted(v: Vec<(String, &str)>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = v.into_iter().map(|(a, b)| (a, b.to_string())).collect();
    v.sort();
    v
}

/// The state a mutating call would change: IAM keys and API keys.
async fn account_state(moto: &Moto) -> Value {
    let mut iam = serde_json::Map::new();
    for u in ["alice", "bob", "carol"] {
        iam.insert(u.into(), json!(iam_keys(moto, u).await));
    }
    let gw = aws_sdk_apigateway::Client::new(&moto.sdk().await);
    let mut api: Vec<(String, bool)> = gw
        .get_api_keys()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|k| (k.id().unwrap().to_string(), k.enabled()))
        .collect();
    api.sort();
    json!({"iam": iam, "apigw": api})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_run_changes_nothing_at_aws() {
    let moto = Moto::start().await;
    let (s, _) = seed(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &moto.endpoint);
    let before = account_state(&moto).await;
    let synced = run(&moto, dir.path(), &["--read-only", "sync"]);
    assert_eq!(synced.0, 0, "{}", synced.2);
    // Whatever the CLI offers for acting, read-only refuses it before any call.
    for args in [
        vec![
            "--read-only",
            "revoke",
            &s.alice[0],
            "--reason",
            "test",
            "--yes",
        ],
        vec!["--read-only", "rotate", &s.bob, "--deliver", "stdout"],
    ] {
        let r = run(&moto, dir.path(), &args);
        assert_ne!(r.0, 0, "{args:?} should be refused: {}", r.1);
    }
    assert_eq!(account_state(&moto).await, before);

    // The same commands without --read-only act on the account.
    let r = run(
        &moto,
        dir.path(),
        &["disable", &s.alice[0], "--reason", "incident", "--yes"],
    );
    assert_eq!(r.0, 0, "{}{}", r.1, r.2);
    assert_eq!(
        iam_keys(&moto, "alice").await,
        sorted(vec![
            (s.alice[0].clone(), "Inactive"),
            (s.alice[1].clone(), "Inactive")
        ])
    );
    let old = format!("apigw:{}", s.old_key);
    let r = run(
        &moto,
        dir.path(),
        &["revoke", &old, "--reason", "legacy", "--yes"],
    );
    assert_eq!(r.0, 0, "{}{}", r.1, r.2);
    assert_eq!(api_key_state(&moto, &s.old_key).await, None);
    let refused = format!("file:{}", dir.path().join("alice.json").display());
    let r = run(
        &moto,
        dir.path(),
        &[
            "rotate",
            &s.alice[0],
            "--deliver",
            &refused,
            "--grace",
            "1h",
        ],
    );
    assert_ne!(r.0, 0);
    assert!(r.2.contains("already has 2 access keys"), "{}", r.2);
    assert!(!dir.path().join("alice.json").exists());
    let sink = dir.path().join("bob.json");
    let spec = format!("file:{}", sink.display());
    let r = run(
        &moto,
        dir.path(),
        &["rotate", &s.bob, "--deliver", &spec, "--grace", "1h"],
    );
    assert_eq!(r.0, 0, "{}{}", r.1, r.2);
    let pair: Value = serde_json::from_str(std::fs::read_to_string(&sink).unwrap().trim()).unwrap();
    let new_id = pair["AccessKeyId"].as_str().unwrap().to_string();
    assert_eq!(
        iam_keys(&moto, "bob").await,
        sorted(vec![(s.bob.clone(), "Active"), (new_id, "Active")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_delivery_moves_awscurrent() {
    let moto = Moto::start().await;
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk().await);
    sm.create_secret()
        .name("partners/acme/aws")
        .secret_string("old-value")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    set_test_credentials(dir.path());
    let settings = keyaudit::provider::aws::AwsSettings {
        name: "talentgrid-aws".into(),
        region: Some(REGION.into()),
        endpoint: Some(moto.endpoint.clone()),
        ..Default::default()
    };
    let value = keyaudit::secret::Secret::new("new-value".into());
    keyaudit::provider::aws::put_secret_value_rotating(&settings, "partners/acme/aws", &value)
        .await
        .unwrap();
    let get = |stage: &'static str| {
        let sm = sm.clone();
        async move {
            sm.get_secret_value()
                .secret_id("partners/acme/aws")
                .version_stage(stage)
                .send()
                .await
                .ok()
                .and_then(|o| o.secret_string().map(str::to_string))
        }
    };
    assert_eq!(get("AWSCURRENT").await.as_deref(), Some("new-value"));
    assert_eq!(get("AWSPREVIOUS").await.as_deref(), Some("old-value"));
    assert_eq!(get("AWSPENDING").await, None);

    let e = keyaudit::provider::aws::put_secret_value_rotating(&settings, "no/such", &value)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("secret `no/such` does not exist"),
        "{e}"
    );

    // Taking the delivery back: AWSCURRENT returns to the previous version; a second
    // undo finds nothing of ours and changes nothing.
    use keyaudit::provider::aws::secrets;
    let fp = value.fingerprint();
    assert_eq!(
        secrets::current_if(&settings, "partners/acme/aws", &fp)
            .await
            .unwrap()
            .as_ref(),
        Some(&value)
    );
    let note = secrets::undo_delivery(&settings, "partners/acme/aws", &fp)
        .await
        .unwrap();
    assert!(note.contains("AWSCURRENT moved back to version"), "{note}");
    assert_eq!(get("AWSCURRENT").await.as_deref(), Some("old-value"));
    assert!(secrets::current_if(&settings, "partners/acme/aws", &fp)
        .await
        .unwrap()
        .is_none());
    let note = secrets::undo_delivery(&settings, "partners/acme/aws", &fp)
        .await
        .unwrap();
    assert!(note.ends_with("untouched"), "{note}");

    // A secret created without a value: the first version is AWSCURRENT on its own.
    sm.create_secret()
        .name("partners/empty")
        .send()
        .await
        .unwrap();
    keyaudit::provider::aws::put_secret_value_rotating(&settings, "partners/empty", &value)
        .await
        .unwrap();
    let current = sm
        .get_secret_value()
        .secret_id("partners/empty")
        .send()
        .await
        .unwrap();
    assert_eq!(current.secret_string(), Some("new-value"));

    // A secret scheduled for deletion is refused before anything is put.
    sm.delete_secret()
        .secret_id("partners/empty")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let e = secrets::check_secret(&settings, "partners/empty")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("scheduled for deletion"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_named_with_what_to_grant() {
    let moto = Moto::start().await;
    seed_iam(&moto).await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    iam.create_user().user_name("auditor").send().await.unwrap();
    iam.put_user_policy()
        .user_name("auditor")
        .policy_name("only-list-users")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["iam:ListUsers", "sts:GetCallerIdentity"], "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("auditor")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    // From here on moto checks signatures and policies like AWS.
    let r = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", moto.endpoint))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let dir = tempfile::tempdir().unwrap();
    let cfg = moto.provider_config(dir.path());
    let out = moto
        .keyaudit(dir.path())
        .env("AWS_ACCESS_KEY_ID", key.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", key.secret_access_key())
        .arg("--config")
        .arg(&cfg)
        .arg("--db")
        .arg(dir.path().join("cache.db"))
        .arg("sync")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("talentgrid-aws: AccessDenied on iam:ListAccessKeys for user alice; grant iam:ListAccessKeys (see docs/providers/aws.md)"),
        "{err}"
    );
    assert!(!err.contains(key.secret_access_key()));
}

/// CloudTrail path of an event time (`YYYY/MM/DD` folders as AWS delivers them).
fn log_key_at(t: chrono::DateTime<chrono::Utc>, unique: &str) -> String {
    format!(
        "{PREFIX}/AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{}/{ACCOUNT}_CloudTrail_{REGION}_{}_{unique}.json.gz",
        t.format("%Y/%m/%d"),
        t.format("%Y%m%dT%H%MZ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_flags_a_key_used_from_a_new_network_in_cloudtrail() {
    let moto = Moto::start().await;
    let iam = aws_sdk_iam::Client::new(&moto.sdk().await);
    iam.create_user().user_name("carol").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("carol")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_string();
    let s3 = moto.s3().await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    // Twelve working days of routine use from the office network (8 requests a day,
    // business hours), then, an hour ago, requests from a network the key never used.
    use chrono::{Duration as Days, Timelike, Utc};
    let now = Utc::now();
    let mut n = 0;
    for day in (2..=13).rev() {
        let date = (now - Days::days(day))
            .with_hour(9)
            .unwrap()
            .with_minute(0)
            .unwrap();
        let records: Vec<Value> = (0..8)
            .map(|i| {
                n += 1;
                let t = date + Days::minutes(i * 45);
                record(
                    n,
                    &key_id,
                    "carol",
                    &format!("10.30.0.{}", 10 + i % 3),
                    &t.to_rfc3339(),
                    "GetObject",
                )
            })
            .collect();
        put(&s3, &log_key_at(date, &format!("d{day}")), gzip(&records)).await;
    }
    let when = now - Days::hours(1);
    let intrusion: Vec<Value> = (0..5)
        .map(|i| {
            n += 1;
            let t = when + Days::minutes(i);
            record(
                n,
                &key_id,
                "carol",
                &format!("203.0.113.{}", 40 + i),
                &t.to_rfc3339(),
                "GetObject",
            )
        })
        .collect();
    put(&s3, &log_key_at(when, "new"), gzip(&intrusion)).await;

    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &moto.endpoint);
    let (code, _, err) = run(&moto, dir.path(), &["sync"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&moto, dir.path(), &["detect"]);
    assert_eq!(code, 0, "{err}");
    let findings = json_of(&run(&moto, dir.path(), &["findings", "--format", "json"]));
    let hit = findings
        .iter()
        .find(|f| f["rule"] == "new_network" && f["key_id"] == key_id.as_str())
        .unwrap_or_else(|| panic!("no new_network finding for {key_id}: {findings:#?}"));
    assert!(
        hit["explanation"].as_str().unwrap().contains("203.0.113"),
        "{hit}"
    );
    // The evidence is the intrusion's events (ids evt-0097.. evt-0101), none of the routine.
    let evidence = hit["evidence"].as_array().unwrap();
    assert!(!evidence.is_empty(), "{hit}");
    for e in evidence {
        let seq: u32 = e
            .as_str()
            .unwrap()
            .trim_start_matches("evt-")
            .parse()
            .unwrap();
        assert!(seq > 96, "routine event {e} given as evidence: {hit}");
    }
}
