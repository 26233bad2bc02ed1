//! Rotation from the workstation against the real demo provider: the runner's rotate
//! effect goes through the rotation workflow with the screen sink, the new secret comes
//! back in the result action only, and it lands in neither the cache nor the journal.

use keyaudit::config::ProviderConfig;
use keyaudit::demo::DemoOptions;
use keyaudit::model::KeyStatus;
use keyaudit::store::Cache;
use keyaudit::store::Store;
use keyaudit::tui::action::{Action, Effect};
use keyaudit::tui::runner::Runner;
use std::collections::HashSet;
use std::time::Duration;

/// Every key id the provider lists (ground truth, with a plain client).
async fn listed(url: &str, token: &str) -> HashSet<String> {
    let client = reqwest::Client::new();
    let mut ids = HashSet::new();
    let mut page: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{url}/v1/keys"))
            .bearer_auth(token)
            .query(&[("limit", "500")]);
        if let Some(t) = &page {
            req = req.query(&[("page_token", t)]);
        }
        let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        for k in v["keys"].as_array().unwrap() {
            ids.insert(k["id"].as_str().unwrap().to_string());
        }
        match v["next_page_token"].as_str() {
            Some(t) => page = Some(t.to_string()),
            None => return ids,
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_from_the_tui_shows_the_secret_once_and_stores_it_nowhere() {
    let demo = keyaudit::demo::start(DemoOptions {
        port: 0,
        seed: 3,
        token: "t".into(),
        live_rate: 0.0,
        ..Default::default()
    })
    .await
    .expect("start demo");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let provider = keyaudit::provider::from_config(&ProviderConfig {
        name: "talentgrid".into(),
        kind: "http".into(),
        url: Some(demo.url.clone()),
        token: Some("t".into()),
        ..Default::default()
    })
    .unwrap();
    keyaudit::sync::sync_provider(
        &db,
        provider.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .expect("sync");
    let old = Store::open(&db)
        .unwrap()
        .keys()
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .find(|k| k.status == KeyStatus::Active)
        .expect("an active key");
    let target = format!("talentgrid/{}", old.id);

    // The effect the confirm dialog emits, performed by the workstation's runner.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = Runner::new(db.clone(), vec![provider.clone()], tx);
    runner.run(Effect::Rotate {
        key: Box::new(old.clone()),
        grace: Duration::from_secs(3600),
        reason: "finding 3f2a9c01…: Bulk read of 105,634 records".into(),
    });
    let action = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the rotation answers")
        .expect("an action");
    let done = match action {
        Action::RotateFinished(r) => r,
        other => panic!("rotation failed: {other:?}"),
    };
    assert_eq!(done.key.id, old.id);
    assert!(done.grace_until.is_some(), "overlap: the old key has grace");
    let secret = done.secret.clone();
    assert!(!format!("{done:?}").contains(secret.expose()));

    // The provider lists the new key; the old one names it as its successor.
    assert!(listed(&demo.url, "t").await.contains(&done.new_key_id));
    let remote_old = provider.get_key(&old.id).await.unwrap();
    assert_eq!(
        remote_old.rotated_to.as_deref(),
        Some(done.new_key_id.as_str())
    );

    // The new secret works at the partner endpoint.
    let ping = reqwest::Client::new()
        .get(format!("{}/v1/partner/ping", demo.url))
        .bearer_auth(secret.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status().as_u16(), 200);

    // The journal holds the rotation, without the secret.
    let store = Store::open(&db).unwrap();

    // The old key's detail says it is in the middle of a rotation, until when.
    let key_ref = store.key(&old.provider, &old.id).unwrap().unwrap().key_ref;
    let detail = keyaudit::tui::view::detail::load_detail(
        &store,
        key_ref,
        chrono::Utc::now(),
        None,
        &keyaudit::detect::DetectConfig::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(detail.rotations.len(), 1, "{:?}", detail.rotations);
    let until = done.grace_until.unwrap().format("%m-%d %H:%M UTC");
    assert_eq!(
        detail.rotations[0],
        format!(
            "grace until {until} · workflow #1 · new key {}",
            done.new_key_id
        )
    );
    let journal = store.journal(Some(&target), None).unwrap();
    let rotate: Vec<_> = journal.iter().filter(|e| e.action == "rotate").collect();
    assert!(rotate.iter().any(|e| e.result == "started"), "{journal:#?}");
    assert!(
        rotate
            .iter()
            .any(|e| e.result.starts_with("ok:") && e.result.contains(&done.new_key_id)),
        "{journal:#?}"
    );
    assert!(rotate.iter().all(|e| e.params["sink"] == "screen"));
    assert!(
        rotate.iter().all(|e| e.reason.as_deref()
            == Some("finding 3f2a9c01…: Bulk read of 105,634 records")),
        "the operator's reason is journaled: {journal:#?}"
    );

    // Neither the cache nor its WAL holds the secret (read while a connection is open,
    // so the WAL is still there).
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !contains(&bytes, secret.expose().as_bytes()),
            "the secret is in {}",
            p.display()
        );
        checked.push(p.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(checked.iter().any(|n| n == "cache.db"), "{checked:?}");
    assert!(checked.iter().any(|n| n == "cache.db-wal"), "{checked:?}");
    drop(store);
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_rotation_interrupted_before_its_dialog_is_rolled_back_like_stdout() {
    use keyaudit::action::workflow::{self, State, Step, Workflow};
    let demo = keyaudit::demo::start(DemoOptions {
        port: 0,
        seed: 3,
        token: "t".into(),
        live_rate: 0.0,
        ..Default::default()
    })
    .await
    .expect("start demo");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let provider = keyaudit::provider::from_config(&ProviderConfig {
        name: "talentgrid".into(),
        kind: "http".into(),
        url: Some(demo.url.clone()),
        token: Some("t".into()),
        ..Default::default()
    })
    .unwrap();
    keyaudit::sync::sync_provider(
        &db,
        provider.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .expect("sync");
    let old = Store::open(&db)
        .unwrap()
        .keys()
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .find(|k| k.status == KeyStatus::Active && k.rotated_to.is_none())
        .expect("an active key");

    // The TUI went away between the provider's rotation and the dialog: the workflow is
    // saved at `delivering` with the sink `screen`, and the secret is gone with the process.
    let issued = provider
        .rotate(&old.id, Duration::from_secs(3600))
        .await
        .unwrap();
    let mut wf = Workflow::new_rotation("talentgrid", &old.id, "screen", 3600, None);
    wf.old_status = Some("active".into());
    wf.new_key_id = Some(issued.key.id.clone());
    wf.new_fingerprint = Some(issued.secret.fingerprint());
    wf.step = Step::Delivering;
    drop(issued.secret);
    let id = workflow::insert(&Store::open(&db).unwrap(), &wf).unwrap();

    let done =
        keyaudit::action::rotate::resume(&Cache::new(&db), provider.clone(), id, false, None)
            .await
            .expect("resume");
    assert_eq!(done.state, State::RolledBack, "{done:?}");
    assert!(done.error.unwrap_or_default().contains("screen"));
    let new = provider.get_key(&issued.key.id).await.unwrap();
    assert_eq!(
        new.status,
        KeyStatus::Revoked,
        "the undelivered key is revoked"
    );
    let old_now = provider.get_key(&old.id).await.unwrap();
    assert_eq!(
        old_now.status,
        KeyStatus::Active,
        "the old key keeps working"
    );
    demo.shutdown().await;
}
