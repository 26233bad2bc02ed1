//! Detection speed: a full run over 1 million cached events, and an incremental run after
//! a sync of 10,000 new events.
//!
//! `cargo bench --bench detect [-- EVENTS KEYS]` (defaults 1000000 and 1000). The cache is
//! a real SQLite file (WAL) in a temporary directory, filled with synthetic working-hours
//! traffic: each key works 8–10 hours a day from 1–3 networks with one client.

use chrono::{Duration, TimeZone, Utc};
use keyaudit::detect::{self, DetectConfig};
use keyaudit::model::{Event, Key, KeySource, KeyStatus, Outcome};
use keyaudit::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// CPU time (user + system, all threads) of this process so far, in ms.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the file (utime, stime) are 12 and 13 after the `)`.
    (ticks(11) + ticks(12)) * 10.0
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(1_000_000);
    let nkeys = args.get(1).copied().unwrap_or(1_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let mut store = Store::open(&path).unwrap();
    store.ensure_provider("bench", "http", None).unwrap();
    let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let days = 30;
    let now = start + Duration::days(days);
    let mut rng = StdRng::seed_from_u64(42);
    let keys: Vec<Key> = (0..nkeys)
        .map(|i| Key {
            provider: "bench".into(),
            id: format!("key_{i:05}"),
            name: format!("integration-{i}"),
            owner: format!("Partner {}", i % 97),
            environment: Some(if i % 4 == 0 { "sandbox" } else { "prod" }.into()),
            purpose: Some(format!("purpose-{}", i % 13)),
            prefix: "tg_live_0000".into(),
            fingerprint: format!("sha256:{i:032x}"),
            scopes: vec!["candidates:read".into(), "jobs:read".into()],
            status: KeyStatus::Active,
            created: Some(start - Duration::days(rng.random_range(10..400))),
            expires: None,
            last_used: None,
            rotated_to: None,
            source: KeySource::Provider,
        })
        .collect();
    store.upsert_keys("bench", &keys, Utc::now()).unwrap();
    // Per key: networks, working window, user agent.
    struct Profile {
        nets: Vec<String>,
        from_h: i64,
        ua: String,
    }
    let profiles: Vec<Profile> = (0..nkeys)
        .map(|i| Profile {
            nets: (0..rng.random_range(1..=3))
                .map(|_| {
                    format!(
                        "{}.{}.{}",
                        rng.random_range(11..220),
                        rng.random_range(0..255),
                        rng.random_range(0..255)
                    )
                })
                .collect(),
            from_h: rng.random_range(6..14),
            ua: format!(
                "partner{i}-sync/{}.{}",
                rng.random_range(1..5),
                rng.random_range(0..9)
            ),
        })
        .collect();
    let mk = |rng: &mut StdRng, n: usize, k: usize, t: chrono::DateTime<Utc>| -> Event {
        let p = &profiles[k];
        let day = (t - start).num_days() as usize;
        Event {
            provider: "bench".into(),
            id: format!("e{n:09}"),
            time: t,
            key_id: keys[k].id.clone(),
            principal: None,
            action: "GET /v1/candidates".into(),
            scope: Some("candidates:read".into()),
            source_ip: Some(format!(
                "{}.{}",
                p.nets[day % p.nets.len()],
                rng.random_range(10..14)
            )),
            user_agent: Some(p.ua.clone()),
            outcome: if rng.random_bool(0.002) {
                Outcome::Denied
            } else {
                Outcome::Success
            },
            status_code: Some(200),
            request_id: None,
            records: Some(50),
            raw: None,
        }
    };
    // History: events in time order (as a sync brings them), in pages of 10,000.
    let t0 = Instant::now();
    let per_day = total / days as usize;
    let mut n = 0usize;
    for d in 0..days {
        let mut page: Vec<Event> = Vec::with_capacity(10_000);
        let mut evs: Vec<(chrono::DateTime<Utc>, usize)> = (0..per_day)
            .map(|_| {
                let k = rng.random_range(0..nkeys);
                let secs = profiles[k].from_h * 3600 + rng.random_range(0..9 * 3600);
                (start + Duration::days(d) + Duration::seconds(secs), k)
            })
            .collect();
        evs.sort();
        for (t, k) in evs {
            page.push(mk(&mut rng, n, k, t));
            n += 1;
            if page.len() == 10_000 {
                store.insert_events("bench", &page, None).unwrap();
                page.clear();
            }
        }
        store.insert_events("bench", &page, None).unwrap();
    }
    eprintln!(
        "filled {} events of {nkeys} keys in {:.1}s",
        store.event_count().unwrap(),
        t0.elapsed().as_secs_f64()
    );
    let cfg = DetectConfig::default();
    let mut full = Vec::new();
    let mut full_cpu = Vec::new();
    let mut report = None;
    for _ in 0..3 {
        let (t, c) = (Instant::now(), cpu_ms());
        let r = detect::detect_full(&mut store, &cfg, now).unwrap();
        full.push(t.elapsed().as_secs_f64() * 1000.0);
        full_cpu.push(cpu_ms() - c);
        report = Some(r);
    }
    full_cpu.sort_by(f64::total_cmp);
    let r = report.unwrap();
    full.sort_by(f64::total_cmp);
    // Incremental: a sync of 10,000 new events over the next 10 minutes, all keys.
    let mut inc = Vec::new();
    let mut inc_cpu = Vec::new();
    let mut inc_report = None;
    for round in 0..5 {
        let base = now + Duration::hours(10 + round);
        let mut evs: Vec<(chrono::DateTime<Utc>, usize)> = (0..10_000)
            .map(|_| {
                (
                    base + Duration::seconds(rng.random_range(0..600)),
                    rng.random_range(0..nkeys),
                )
            })
            .collect();
        evs.sort();
        let page: Vec<Event> = evs
            .into_iter()
            .map(|(t, k)| {
                n += 1;
                mk(&mut rng, n, k, t)
            })
            .collect();
        store.insert_events("bench", &page, None).unwrap();
        let (t, c) = (Instant::now(), cpu_ms());
        let ri =
            detect::detect_incremental(&mut store, &cfg, base + Duration::minutes(11)).unwrap();
        inc.push(t.elapsed().as_secs_f64() * 1000.0);
        inc_cpu.push(cpu_ms() - c);
        inc_report = Some(ri);
    }
    inc.sort_by(f64::total_cmp);
    inc_cpu.sort_by(f64::total_cmp);
    let ri = inc_report.unwrap();
    let n_findings = store
        .findings(&keyaudit::store::FindingQuery::default())
        .unwrap()
        .len();
    drop(store);
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| events / keys | {} / {nkeys} |", r.events);
    println!(
        "| cache file | {:.0} MB (+ {:.0} MB WAL) |",
        size(&path) as f64 / 1e6,
        size(std::path::Path::new(&wal)) as f64 / 1e6
    );
    println!(
        "| saved per-key state | {:.2} MB ({:.0} bytes per key) |",
        r.state_bytes as f64 / 1e6,
        r.state_bytes as f64 / nkeys as f64
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "| full detection, wall (min / median of 3) | {:.0} ms / {:.0} ms |",
        full[0], full[1]
    );
    println!(
        "| full detection, CPU of all threads (median) | {:.0} ms |",
        full_cpu[1]
    );
    println!(
        "| incremental after 10,000 new events, wall (min / median of 5) | {:.1} ms / {:.1} ms ({} keys touched) |",
        inc[0], inc[2], ri.keys
    );
    println!(
        "| incremental, CPU of all threads (median) | {:.0} ms |",
        inc_cpu[2]
    );
    println!("| findings in the cache | {n_findings} |");
    println!(
        "| machine load average while measuring | {} |",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
