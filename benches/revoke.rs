//! Bulk revoke of 1,000 keys against the embedded demo provider on loopback, through the
//! same path as `keyaudit revoke --match ... --yes`: selection from the cache with the
//! filter grammar, then `run_bulk` (bounded concurrency, a journal entry before and after
//! each provider call, the cache updated per key).
//!
//! Run: `cargo bench --bench revoke` (set `REVOKE_KEYS` / `REVOKE_CONCURRENCY` to vary).
//! The demo server runs in the same process and on the same 2 worker threads, so the
//! figures include the server's own work.
//!
//! After the fault-free rounds, the same run revokes the same number of keys at the first
//! concurrency against a second demo that loses the answer to 30 % of the changes after
//! applying them (`REVOKE_FAULTS`, default `lost-answer=0.3`; empty: skip): each lost
//! answer costs a retry with backoff, answered by the provider's memory of the
//! `Idempotency-Key`.

use keyaudit::action::bulk::{run_bulk, BulkOptions};
use keyaudit::action::KeyOp;
use keyaudit::config::ProviderConfig;
use keyaudit::demo::{self, DemoOptions};
use keyaudit::filter::Filter;
use keyaudit::model::KeyStatus;
use keyaudit::provider::{NewKey, Provider};
use keyaudit::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One demo server, its provider and a cache of its own.
struct Bench {
    demo: demo::DemoHandle,
    provider: Arc<dyn Provider>,
    providers: HashMap<String, Arc<dyn Provider>>,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn bench(faults: Option<String>) -> Bench {
    let d = demo::start(DemoOptions {
        events: 2000,
        days: 7,
        live_rate: 0.0,
        faults,
        ..DemoOptions::default()
    })
    .await
    .expect("demo starts");
    let provider = keyaudit::provider::from_config(&ProviderConfig {
        name: "talentgrid".into(),
        kind: "http".into(),
        url: Some(d.url.clone()),
        token: Some(d.token.clone().into()),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
    providers.insert("talentgrid".into(), provider.clone());
    Bench {
        demo: d,
        provider,
        providers,
        db,
        _dir: dir,
    }
}

/// Creates `n` keys, syncs, selects them with the filter grammar and revokes them at
/// concurrency `c`; prints one line labelled `label`.
async fn round(b: &Bench, label: &str, round: usize, n: usize, c: usize) {
    let owner = format!("Bench Partner {round}");
    let t = Instant::now();
    // Created 16 at a time (the setup, not the measurement).
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let p = b.provider.clone();
        let owner = owner.clone();
        set.spawn(async move {
            p.create(&NewKey {
                name: format!("bench-{round}-{i:04}"),
                owner,
                environment: Some("prod".into()),
                purpose: Some("bench".into()),
                scopes: vec!["candidates:read".into()],
            })
            .await
            .unwrap();
        });
        if set.len() >= 16 {
            set.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let created = t.elapsed();
    keyaudit::sync::sync_provider(
        &b.db,
        b.provider.clone(),
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .unwrap();
    let store = Store::open(&b.db).unwrap();
    let f = Filter::parse(&format!("owner:bench name:bench-{round}- status:active")).unwrap();
    let keys: Vec<_> = f
        .apply_keys(store.keys().unwrap(), chrono::Utc::now())
        .into_iter()
        .map(|r| r.key)
        .collect();
    drop(store);
    assert_eq!(keys.len(), n, "selection");
    let opts = BulkOptions { concurrency: c };
    let report = run_bulk(
        &keyaudit::store::Cache::new(&b.db),
        &b.providers,
        keys,
        KeyOp::Revoke,
        Some("benchmark"),
        opts,
        |_| {},
    )
    .await;
    let secs = report.elapsed.as_secs_f64();
    let failed = report.failed().count();
    let store = Store::open(&b.db).unwrap();
    let revoked = store
        .keys()
        .unwrap()
        .iter()
        .filter(|r| r.key.name.starts_with(&format!("bench-{round}-")))
        .filter(|r| r.key.status == KeyStatus::Revoked)
        .count();
    let journal_ok = store.verify_journal().unwrap().is_ok();
    println!(
        "{label:<16} concurrency {c:>3}: {n} keys revoked in {secs:.2} s = {:.0} revoke calls/s \
         ({} calls, {failed} failed, {revoked} revoked in cache, journal verifies: {journal_ok}); \
         setup: {n} creates in {:.2} s",
        report.provider_calls as f64 / secs,
        report.provider_calls,
        created.as_secs_f64()
    );
}

fn main() {
    let n = env_num("REVOKE_KEYS", 1000);
    let concurrencies: Vec<usize> = std::env::var("REVOKE_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![16, 1]);
    let faults = std::env::var("REVOKE_FAULTS").unwrap_or_else(|_| "lost-answer=0.3".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "bulk revoke of {n} demo keys (debug assertions: {})",
            cfg!(debug_assertions)
        );
        let clean = bench(None).await;
        for (i, &c) in concurrencies.iter().enumerate() {
            round(&clean, "fault-free", i, n, c).await;
        }
        clean.demo.shutdown().await;
        if !faults.trim().is_empty() {
            let c = concurrencies.first().copied().unwrap_or(16);
            let faulty = bench(Some(faults.clone())).await;
            round(&faulty, &faults, 0, n, c).await;
            faulty.demo.shutdown().await;
        }
    });
}
