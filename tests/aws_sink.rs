//! The `aws-secretsmanager:SECRET_ID` sink of `keyaudit rotate` against a real moto server:
//! keys of the embedded demo provider rotated by the release binary, their new secret
//! delivered to Secrets Manager (reached through the standard AWS chain: `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, the credentials in the environment), and an IAM key of an `aws`
//! provider whose entry the sink shares. Everything talks to 127.0.0.1 only.

#![cfg(feature = "aws")]

mod action_support;
mod aws_support;

use action_support::{text, World};
use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_support::{Moto, REGION};
use keyaudit::action::workflow::{self, State, Workflow};
use keyaudit::model::KeyStatus;
use keyaudit::secret::Secret;
use keyaudit::store::Store;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "partners/x";
const OLD_VALUE: &str = "tg_live_previousvalueofpartnerx0001";

/// The demo world and a moto server holding the secret `partners/x` = [`OLD_VALUE`].
fn start() -> (World, Moto, SecretsManager) {
    let w = World::start();
    let moto = w.rt.block_on(Moto::start());
    let sm =
        w.rt.block_on(async { SecretsManager::new(&moto.sdk().await) });
    w.rt.block_on(
        sm.create_secret()
            .name(SECRET)
            .secret_string(OLD_VALUE)
            .send(),
    )
    .unwrap();
    (w, moto, sm)
}

/// The standard AWS chain, pointed at moto through the environment only: dummy
/// credentials, `AWS_REGION`, `AWS_ENDPOINT_URL`, no shared files, no instance metadata.
/// The log is as verbose as it gets (the SDK's own request bodies included), so the
/// checks that the secret is not in it mean something.
fn aws_env<'c>(c: &'c mut Command, moto: &Moto, dir: &Path) -> &'c mut Command {
    aws_support::dummy_aws_chain(c, dir)
        .env("KEYAUDIT_LOG", "trace")
        .env("LOG_SIGNABLE_BODY", "true")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
}

/// Runs keyaudit in the demo world with the AWS environment.
fn run(w: &World, moto: &Moto, args: &[&str]) -> Output {
    let mut c = w.cmd(args);
    aws_env(&mut c, moto, w.dir.path()).output().unwrap()
}

fn ok(w: &World, moto: &Moto, args: &[&str]) -> Output {
    let out = run(w, moto, args);
    assert!(
        out.status.success(),
        "keyaudit {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The value labelled `stage`, if any.
fn stage(w: &World, sm: &SecretsManager, id: &str, stage: &str) -> Option<String> {
    w.rt.block_on(
        sm.get_secret_value()
            .secret_id(id)
            .version_stage(stage)
            .send(),
    )
    .ok()
    .and_then(|o| o.secret_string().map(str::to_string))
}

fn versions(w: &World, sm: &SecretsManager, id: &str) -> usize {
    let d =
        w.rt.block_on(sm.describe_secret().secret_id(id).send())
            .unwrap();
    d.version_ids_to_stages().map_or(0, |m| m.len())
}

fn last_workflow(w: &World, key: &str) -> Workflow {
    let store = Store::open(&w.db()).unwrap();
    workflow::list(&store, true)
        .unwrap()
        .into_iter()
        .rfind(|x| x.key_id == key)
        .expect("a workflow for the key")
}

fn aborted_at(w: &World, moto: &Moto, args: &[&str], point: &str) {
    let mut c = w.cmd(args);
    let out = aws_env(&mut c, moto, w.dir.path())
        .env("KEYAUDIT_CRASH_AT", point)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_none(),
        "{point}: expected an abort, got {:?}; stderr: {}",
        out.status,
        text(&out.stderr)
    );
}

#[test]
fn rotation_delivers_to_awscurrent_and_the_secret_is_nowhere_else() {
    let (w, moto, sm) = start();
    let (old, old_secret) = w.create("partner-x-sync", "Partner X");
    w.ok(&["sync"]);
    let target = format!("talentgrid/{}", old.id);
    let spec = format!("aws-secretsmanager:{SECRET}");

    // A dry run checks the secret and changes nothing.
    let out = ok(
        &w,
        &moto,
        &["rotate", &target, "--deliver", &spec, "--dry-run"],
    );
    assert!(
        text(&out.stdout).contains(&spec) && !text(&out.stdout).contains("would refuse"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(versions(&w, &sm, SECRET), 1);

    let out = ok(
        &w,
        &moto,
        &[
            "rotate",
            &target,
            "--deliver",
            &spec,
            "--grace",
            "1h",
            "--reason",
            "yearly",
        ],
    );
    assert!(
        text(&out.stderr).contains(&format!("secret delivered to {spec} and verified")),
        "{}",
        text(&out.stderr)
    );
    let current = Secret::new(stage(&w, &sm, SECRET, "AWSCURRENT").expect("AWSCURRENT"));
    let new_id = w.remote(&old.id).rotated_to.expect("a successor");
    assert_eq!(w.remote(&new_id).fingerprint, current.fingerprint());
    assert!(w.works(&current), "AWSCURRENT authenticates at the demo");
    assert!(w.works(&old_secret), "the old key works during the grace");
    assert_eq!(
        stage(&w, &sm, SECRET, "AWSPREVIOUS").as_deref(),
        Some(OLD_VALUE)
    );
    assert_eq!(stage(&w, &sm, SECRET, "AWSPENDING"), None);
    assert_eq!(versions(&w, &sm, SECRET), 2);

    let wf = last_workflow(&w, &old.id);
    assert_eq!(wf.state, State::Grace);
    assert_eq!(wf.sink, spec);
    let journal = w.journal();
    assert!(journal.iter().any(|e| e["action"] == "rotate"
        && e["params"]["sink"] == spec.as_str()
        && e["result"].as_str().unwrap().starts_with("ok:")));
    w.ok(&["journal", "verify"]);
    // Not in the cache, its WAL, the log, the config or the journal (which is in the cache);
    // nor in the log as the list of byte values a debug print of a body would give.
    w.assert_secret_nowhere(current.expose(), &[]);
    let as_bytes = format!("{:?}", current.expose().as_bytes());
    let log = std::fs::read_to_string(w.log()).unwrap();
    assert!(
        log.contains("aws_smithy_runtime"),
        "the log is at trace level"
    );
    assert!(!log.contains(as_bytes.trim_matches(['[', ']'])));
}

#[test]
fn a_missing_or_malformed_secret_id_is_refused_before_any_key_is_created() {
    let (w, moto, sm) = start();
    let (old, old_secret) = w.create("partner-y-sync", "Partner Y");
    w.ok(&["sync"]);
    let target = format!("talentgrid/{}", old.id);

    let out = run(
        &w,
        &moto,
        &[
            "rotate",
            &target,
            "--deliver",
            "aws-secretsmanager:partners/missing",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("secret `partners/missing` does not exist; create it first"),
        "{err}"
    );
    assert!(w.remote(&old.id).rotated_to.is_none(), "no new key");
    assert_eq!(w.remote(&old.id).status, KeyStatus::Active);
    assert!(w.works(&old_secret));
    let store = Store::open(&w.db()).unwrap();
    assert!(workflow::list(&store, true).unwrap().is_empty());
    drop(store);

    for (spec, says) in [
        ("aws-secretsmanager:", "missing SECRET_ID"),
        ("aws-secretsmanager:partners x", "not a secret name"),
    ] {
        let out = run(&w, &moto, &["rotate", &target, "--deliver", spec]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    assert!(w.remote(&old.id).rotated_to.is_none());
    assert_eq!(
        stage(&w, &sm, SECRET, "AWSCURRENT").as_deref(),
        Some(OLD_VALUE)
    );
}

#[test]
fn a_refused_delivery_rolls_the_rotation_back() {
    let (w, moto, sm) = start();
    let (old, old_secret) = w.create("partner-z-sync", "Partner Z");
    w.ok(&["sync"]);
    // A principal that may look at the secret but not put a value: the check before the
    // rotation passes, the delivery is refused.
    let iam =
        w.rt.block_on(async { aws_sdk_iam::Client::new(&moto.sdk().await) });
    let key = w.rt.block_on(async {
        iam.create_user().user_name("rotator").send().await.unwrap();
        iam.put_user_policy()
            .user_name("rotator")
            .policy_name("no-put")
            .policy_document(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
                    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:UpdateSecretVersionStage"], "Resource": "*"}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        iam.create_access_key()
            .user_name("rotator")
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap()
    });
    let auth = |body: &'static str| {
        w.rt.block_on(
            reqwest::Client::new()
                .post(format!("{}/moto-api/reset-auth", moto.endpoint))
                .body(body)
                .send(),
        )
        .unwrap()
    };
    assert!(auth("0").status().is_success());
    let target = format!("talentgrid/{}", old.id);
    let spec = format!("aws-secretsmanager:{SECRET}");
    let mut c = w.cmd(&["rotate", &target, "--deliver", &spec, "--grace", "1h"]);
    let out = aws_env(&mut c, &moto, w.dir.path())
        .env("AWS_ACCESS_KEY_ID", key.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", key.secret_access_key())
        .output()
        .unwrap();
    assert!(auth("inf").status().is_success());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert!(
        err.contains("grant secretsmanager:PutSecretValue"),
        "the refused call is named: {err}"
    );

    // The old key still works; the new one, never delivered, is revoked.
    let new_id = w.remote(&old.id).rotated_to.expect("the provider rotated");
    assert_eq!(w.remote(&new_id).status, KeyStatus::Revoked);
    assert_eq!(w.remote(&old.id).status, KeyStatus::Active);
    assert!(w.works(&old_secret));
    let wf = last_workflow(&w, &old.id);
    assert_eq!(wf.state, State::RolledBack);
    assert!(
        wf.error.as_deref().unwrap_or("").contains("delivery to"),
        "{wf:?}"
    );
    assert_eq!(
        stage(&w, &sm, SECRET, "AWSCURRENT").as_deref(),
        Some(OLD_VALUE)
    );
    assert_eq!(versions(&w, &sm, SECRET), 1);
    let journal = w.journal();
    assert!(journal.iter().any(|e| e["action"] == "rotate"
        && e["result"]
            .as_str()
            .unwrap()
            .starts_with("rolled back: delivery to")));
    w.ok(&["journal", "verify"]);
}

#[test]
fn resume_reads_the_delivery_back_and_a_rollback_restores_awscurrent() {
    let (w, moto, sm) = start();
    let spec = format!("aws-secretsmanager:{SECRET}");

    // Killed before the value was put: resume finds AWSCURRENT unchanged, takes the new
    // secret again from the provider (the workflow's saved idempotency key), delivers
    // it and goes on to the grace period.
    let (k1, _) = w.create("partner-a", "Partner A");
    w.ok(&["sync"]);
    let t1 = format!("talentgrid/{}", k1.id);
    aborted_at(
        &w,
        &moto,
        &["rotate", &t1, "--deliver", &spec, "--grace", "1h"],
        "delivering",
    );
    assert_eq!(
        stage(&w, &sm, SECRET, "AWSCURRENT").as_deref(),
        Some(OLD_VALUE)
    );
    let out = ok(&w, &moto, &["workflows"]);
    assert!(text(&out.stdout).contains(&spec), "{}", text(&out.stdout));
    ok(&w, &moto, &["resume"]);
    let wf = last_workflow(&w, &k1.id);
    assert_eq!(wf.state, State::Grace, "{wf:?}");
    let n1 = wf.new_key_id.clone().unwrap();
    assert_eq!(w.remote(&k1.id).rotated_to.as_deref(), Some(n1.as_str()));
    let recovered = Secret::new(stage(&w, &sm, SECRET, "AWSCURRENT").unwrap());
    assert_eq!(w.remote(&n1).fingerprint, recovered.fingerprint());
    assert!(w.works(&recovered));
    assert!(w.journal().iter().any(|e| e["action"] == "rotate"
        && e["result"]
            .as_str()
            .unwrap()
            .starts_with("answer recovered")));

    // Killed right after the value reached AWSCURRENT: resume reads it back, verifies it
    // with the demo and goes on to the grace period.
    let (k2, _) = w.create("partner-b", "Partner B");
    w.ok(&["sync"]);
    let t2 = format!("talentgrid/{}", k2.id);
    aborted_at(
        &w,
        &moto,
        &["rotate", &t2, "--deliver", &spec, "--grace", "1h"],
        "after:delivering",
    );
    assert_eq!(last_workflow(&w, &k2.id).step.as_str(), "delivering");
    let delivered = Secret::new(stage(&w, &sm, SECRET, "AWSCURRENT").unwrap());
    ok(&w, &moto, &["resume"]);
    let wf = last_workflow(&w, &k2.id);
    assert_eq!(wf.state, State::Grace, "{wf:?}");
    assert_eq!(
        w.remote(wf.new_key_id.as_deref().unwrap()).fingerprint,
        delivered.fingerprint()
    );
    assert!(w.works(&delivered));

    // Killed after delivery again, and the new key is revoked before resume: the
    // verification fails, the rotation is rolled back, and AWSCURRENT goes back to the
    // value readers had before (the old key, which works again).
    let (k3, k3_secret) = w.create("partner-c", "Partner C");
    w.ok(&["sync"]);
    let t3 = format!("talentgrid/{}", k3.id);
    let before = stage(&w, &sm, SECRET, "AWSCURRENT").unwrap();
    aborted_at(
        &w,
        &moto,
        &["rotate", &t3, "--deliver", &spec, "--grace", "1h"],
        "after:delivering",
    );
    let broken = Secret::new(stage(&w, &sm, SECRET, "AWSCURRENT").unwrap());
    assert_ne!(broken.expose(), before);
    let n3 = w.remote(&k3.id).rotated_to.unwrap();
    w.rt.block_on(w.provider.revoke(&n3)).unwrap();
    let out = run(&w, &moto, &["resume"]);
    let wf = last_workflow(&w, &k3.id);
    assert_eq!(wf.state, State::RolledBack, "{wf:?} {}", text(&out.stderr));
    assert_eq!(
        stage(&w, &sm, SECRET, "AWSCURRENT").as_deref(),
        Some(before.as_str())
    );
    assert_eq!(w.remote(&k3.id).status, KeyStatus::Active);
    assert!(w.works(&k3_secret));
    let journal = w.journal();
    assert!(
        journal.iter().any(|e| e["action"] == "rotate"
            && e["result"]
                .as_str()
                .unwrap()
                .contains("AWSCURRENT moved back to version")),
        "{journal:#?}"
    );
    w.ok(&["journal", "verify"]);
    for s in [&recovered, &delivered, &broken] {
        w.assert_secret_nowhere(s.expose(), &[]);
    }
}

/// Every file under `dir` (cache, WAL, log, config) is free of `needle`.
fn assert_nowhere(dir: &Path, needle: &str) {
    action_support::assert_absent_under(dir, needle, &[], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_key_rotated_into_the_secret_its_provider_entry_reaches() {
    let moto = Moto::start().await;
    let sdk = moto.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    iam.create_user().user_name("svc").send().await.unwrap();
    let first = iam
        .create_access_key()
        .user_name("svc")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let old_pair =
        json!({"AccessKeyId": first.access_key_id(), "SecretAccessKey": first.secret_access_key()})
            .to_string();
    let sm = SecretsManager::new(&sdk);
    sm.create_secret()
        .name("svc/aws")
        .secret_string(&old_pair)
        .send()
        .await
        .unwrap();

    // No AWS_REGION or AWS_ENDPOINT_URL: the sink reaches moto through the provider entry.
    let dir = tempfile::tempdir().unwrap();
    let cfg = moto.provider_config(dir.path());
    let out = moto
        .keyaudit(dir.path())
        .env_remove("AWS_ENDPOINT_URL")
        .arg("--config")
        .arg(&cfg)
        .arg("--db")
        .arg(dir.path().join("cache.db"))
        .args([
            "rotate",
            &format!("talentgrid-aws/{}", first.access_key_id()),
            "--deliver",
            "aws-secretsmanager:svc/aws",
            "--grace",
            "1h",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let get = |stage: &'static str| {
        let sm = sm.clone();
        async move {
            sm.get_secret_value()
                .secret_id("svc/aws")
                .version_stage(stage)
                .send()
                .await
                .unwrap()
                .secret_string()
                .unwrap()
                .to_string()
        }
    };
    let pair: Value = serde_json::from_str(&get("AWSCURRENT").await).unwrap();
    let new_id = pair["AccessKeyId"].as_str().unwrap();
    assert_ne!(new_id, first.access_key_id());
    let keys = iam
        .list_access_keys()
        .user_name("svc")
        .send()
        .await
        .unwrap();
    assert!(keys
        .access_key_metadata()
        .iter()
        .any(|k| k.access_key_id() == Some(new_id)));
    assert_eq!(get("AWSPREVIOUS").await, old_pair);
    let new_secret = pair["SecretAccessKey"].as_str().unwrap();
    assert_nowhere(dir.path(), new_secret);
    assert_nowhere(dir.path(), &pair.to_string());
}
