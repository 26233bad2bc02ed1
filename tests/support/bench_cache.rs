//! The large cache of the TUI benches: 100,000 keys of eight partners and 10,000,000
//! events over the 30 days before [`now`] (sizes from `KEYAUDIT_BENCH_KEYS` and
//! `KEYAUDIT_BENCH_EVENTS`), built once through the store's own writes and kept under
//! `target/bench-cache/` for later runs. `benches/tui.rs` reads it in SQLite;
//! `benches/team_reads.rs` reads it there and loads the same events into PostgreSQL.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use keyaudit::model::{Event, Key, KeySource, KeyStatus, Outcome};
use keyaudit::store::Store;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The end of the generated history.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap()
}

/// A size from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sizes the benches run at: keys, events.
pub fn sizes() -> (usize, usize) {
    (
        env_usize("KEYAUDIT_BENCH_KEYS", 100_000),
        env_usize("KEYAUDIT_BENCH_EVENTS", 10_000_000),
    )
}

/// Builds the cache at the path after `--build-cache` and returns true, when the bench
/// was started for that (by [`cache`], in a child process).
pub fn build_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = args.as_slice() {
        if flag == "--build-cache" {
            let (keys, events) = sizes();
            build(Path::new(path), keys, events);
            return true;
        }
    }
    false
}

pub const PARTNERS: &[&str] = &[
    "Acme Payroll",
    "Brightpath ATS",
    "Ledgerly Payroll",
    "Vericheck Screening",
    "Onboardly",
    "Greenhouse ATS",
    "Benefitly",
    "Timewise Scheduling",
];
pub const PURPOSES: &[&str] = &[
    "candidate-sync",
    "payroll-export",
    "ssn-verify",
    "doc-upload",
    "benefits-feed",
    "time-import",
];
pub const ENVS: &[&str] = &["prod", "sandbox", "staging"];

/// Key `i`: one of eight partners, six purposes, three environments.
pub fn key(i: usize, now: DateTime<Utc>) -> Key {
    let partner = PARTNERS[i % PARTNERS.len()];
    let slug = partner.split(' ').next().unwrap().to_lowercase();
    let purpose = PURPOSES[(i / PARTNERS.len()) % PURPOSES.len()];
    let env = ENVS[(i / 7) % ENVS.len()];
    Key {
        provider: "talentgrid".into(),
        id: format!("key_{i:016x}"),
        name: format!("{slug}-{purpose}-{env}-{i}"),
        owner: partner.into(),
        environment: Some(env.into()),
        purpose: Some(purpose.into()),
        prefix: "tg_live_Ab".into(),
        fingerprint: format!("sha256:{i:032x}"),
        scopes: vec!["employees:read".into(), "ssn:read".into()],
        status: if i % 13 == 0 {
            KeyStatus::Revoked
        } else {
            KeyStatus::Active
        },
        created: Some(now - Duration::days((i % 900) as i64)),
        expires: None,
        last_used: None,
        rotated_to: None,
        source: KeySource::Provider,
    }
}

/// Bumped whenever `build` changes what it writes, so a kept cache is never stale.
const CACHE_GENERATION: u32 = 1;

/// The bench cache for these sizes: kept under `target/bench-cache/` between runs (keyed
/// by sizes, schema version and generator version) and built on first use. Returns the
/// path and the seconds spent building (`None` when reused).
pub fn cache(keys: usize, events: usize) -> (PathBuf, Option<f64>) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-cache");
    let name = format!(
        "tui-g{CACHE_GENERATION}-s{}-{keys}k-{events}e.db",
        keyaudit::store::schema::latest_version()
    );
    let path = dir.join(&name);
    if path.exists() && std::env::var_os("KEYAUDIT_BENCH_REBUILD").is_none() {
        return (path, None);
    }
    // Build under a temporary name and rename when complete, so an interrupted build is
    // never reused.
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!("{name}.building"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    // In a child process, so its memory never counts in this process's peak RSS.
    let t = Instant::now();
    let ok = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--build-cache")
        .arg(&tmp)
        .env("KEYAUDIT_BENCH_KEYS", keys.to_string())
        .env("KEYAUDIT_BENCH_EVENTS", events.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "building the bench cache {} failed", tmp.display());
    std::fs::rename(&tmp, &path).unwrap();
    (path, Some(t.elapsed().as_secs_f64()))
}

/// Writes the cache through the store's own `upsert_keys` and `insert_events`. For speed
/// the two secondary events indexes are dropped (by a connection of the bench's own)
/// during the bulk insert and created after it (the same indexes, in a compact layout).
pub fn build(path: &Path, keys: usize, events: usize) {
    let now = now();
    let mut store = Store::open(path).expect("cache opens");
    store.use_bulk_page_cache().unwrap();
    let sql = rusqlite::Connection::open(path).expect("cache opens");
    sql.execute_batch(
        "DROP INDEX events_key_time;
         DROP INDEX events_time;",
    )
    .unwrap();
    store
        .ensure_provider("talentgrid", "http", Some("http://127.0.0.1:1"))
        .unwrap();
    let all: Vec<Key> = (0..keys).map(|i| key(i, now)).collect();
    for chunk in all.chunks(5000) {
        store.upsert_keys("talentgrid", chunk, now).unwrap();
    }
    let batch = 100_000;
    let mut i = 0;
    while i < events {
        let n = batch.min(events - i);
        let evs: Vec<Event> = (i..i + n).map(|j| event(j, events, &all, now)).collect();
        store.insert_events("talentgrid", &evs, None).unwrap();
        i += n;
    }
    drop(store);
    sql.execute_batch(
        "PRAGMA cache_size = -262144;
         CREATE INDEX events_key_time ON events(key_ref, time);
         CREATE INDEX events_time ON events(time);
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
}

/// Event `j` of `events`: a skewed distribution (a third of the events go to the first
/// 100 keys, the rest spread over all), evenly spaced in time, one in 17 denied.
pub fn event(j: usize, events: usize, all: &[Key], now: DateTime<Utc>) -> Event {
    let span_ms = 30 * 86_400_000i64;
    let keys = all.len();
    // A skewed distribution: a few keys are busy, most are quiet.
    let k = if j % 3 == 0 {
        j % 100
    } else {
        (j * 7919) % keys
    };
    Event {
        provider: "talentgrid".into(),
        id: format!("evt_{j:012}"),
        time: now - Duration::milliseconds(span_ms - (j as i64 * span_ms / events as i64)),
        key_id: all[k].id.clone(),
        principal: None,
        action: "GET /v1/employees".into(),
        scope: Some(
            if j % 5 == 0 {
                "ssn:read"
            } else {
                "employees:read"
            }
            .into(),
        ),
        source_ip: Some(format!("198.51.100.{}", j % 50)),
        user_agent: Some(format!("partner-sync/{}.0", j % 4)),
        outcome: if j % 17 == 0 {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        status_code: Some(200),
        request_id: None,
        records: Some(1),
        raw: None,
    }
}
