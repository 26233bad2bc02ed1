//! Sync throughput from the demo provider over loopback.
//!
//! `cargo bench --bench sync` (set `KEYAUDIT_BENCH_EVENTS` to change the size; default
//! 1,000,000). Starts the embedded demo on 127.0.0.1 with that many historic events and no
//! live traffic, syncs it into a fresh cache file, and prints events/s. Also times a second
//! (no-op) sync and reads the peak RSS of the process.

use keyaudit::config::ProviderConfig;
use keyaudit::demo::DemoOptions;
use std::time::Instant;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let events: usize = std::env::var("KEYAUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = Instant::now();
        let demo = keyaudit::demo::start(DemoOptions {
            port: 0,
            seed: 7,
            token: "bench".into(),
            events,
            live_rate: 0.0,
            ..Default::default()
        })
        .await
        .unwrap();
        let generated = t.elapsed();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cache.db");
        let provider = keyaudit::provider::from_config(&ProviderConfig {
            name: "talentgrid".into(),
            kind: "http".into(),
            url: Some(demo.url.clone()),
            token: Some("bench".into()),
            page_size: Some(10_000),
            ..Default::default()
        })
        .unwrap();
        let t = Instant::now();
        let report = keyaudit::sync::sync_provider(
            &db,
            provider.clone(),
            &keyaudit::detect::DetectConfig::default(),
            &|_| {},
        )
        .await
        .unwrap();
        let first = t.elapsed();
        let t = Instant::now();
        let again = keyaudit::sync::sync_provider(
            &db,
            provider,
            &keyaudit::detect::DetectConfig::default(),
            &|_| {},
        )
        .await
        .unwrap();
        let second = t.elapsed();
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        println!(
            "demo generation: {} events in {:.2} s",
            events,
            generated.as_secs_f64()
        );
        println!(
            "sync: {} keys, {} events in {:.2} s = {:.0} events/s ({} pages)",
            report.keys,
            report.new_events,
            first.as_secs_f64(),
            report.new_events as f64 / first.as_secs_f64(),
            report.pages
        );
        println!(
            "second sync (nothing new): {:.3} s, {} new events",
            second.as_secs_f64(),
            again.new_events
        );
        println!(
            "cache file: {:.0} MB; peak RSS (server + client in one process): {:.0} MB",
            size as f64 / 1e6,
            peak_rss_mb()
        );
        demo.shutdown().await;
    });
}
