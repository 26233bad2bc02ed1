//! Sync of the demo into a team store (PostgreSQL) against one person's sync (SQLite),
//! in the same run, on a private PostgreSQL cluster started the way the tests start
//! theirs (tests/team_support).
//!
//! The embedded demo serves `KEYAUDIT_BENCH_EVENTS` historic events (default
//! 1,000,000) on 127.0.0.1. Four contenders, each into a fresh cache file:
//! - `one person`: `sync::sync_provider` into SQLite, incremental detection included;
//! - `member syncing for the team`: the same sync, then publishing the keys, every
//!   event (binary `COPY` in chunks of 50,000) and the findings to PostgreSQL
//!   (`sync::team::sync_source` holding the source's lock);
//! - `member reading the team's copy`: `sync_source` while the copy is fresh, so no
//!   provider call and no detection: keys, events and findings from PostgreSQL into
//!   its SQLite cache;
//! - `member joining, syncing itself` (`fresh = "0s"`, a new cache): it reads the copy
//!   first, with the provider's cursor, then syncs what is newer, detection included.
//!
//! Then the detection of a member that keeps the events in the team store
//! (`events = "team"`): it reads the copy (keys and findings), the demo appends
//! `KEYAUDIT_BENCH_NEW` events (default 10,000) of ordinary traffic, and one person's
//! cache and that member each sync them (the member from the team's cursor, publishing
//! them and running detection on the team's copy from the published baselines). Last, a
//! full replay of every event: one person's `detect_full` on SQLite against the member's
//! `detect::team::detect_copy` without baselines, reading the events in PostgreSQL.
//!
//! Run: `cargo bench --all-features --bench team_sync`.

#[path = "../tests/team_support/mod.rs"]
mod team_support;

use keyaudit::config::{Config, ProviderConfig};
use keyaudit::demo::DemoOptions;
use keyaudit::detect::DetectConfig;
use keyaudit::detect::DetectReport;
use keyaudit::store::Cache;
use keyaudit::sync::team::{sync_source, Outcome};
use std::path::Path;
use std::time::{Duration, Instant};
use team_support::{team_table, Cluster};

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let events: usize = std::env::var("KEYAUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("load average before: {}", loadavg());
    let cluster = Cluster::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let demo = keyaudit::demo::start(DemoOptions {
            seed: 7,
            token: "bench".into(),
            events,
            live_rate: 0.0,
            ..Default::default()
        })
        .await
        .unwrap();
        let provider = keyaudit::provider::from_config(&ProviderConfig {
            name: "talentgrid".into(),
            kind: "http".into(),
            url: Some(demo.url.clone()),
            token: Some("bench".into()),
            page_size: Some(10_000),
            ..Default::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let detect = DetectConfig::default();
        let url = cluster.url("postgres", &cluster.database("bench"));
        let cfg = Config::parse(
            &(team_table(&url, "10m") + "fresh = \"1h\"\n"),
            Path::new("bench.toml"),
        )
        .unwrap();

        let solo = dir.path().join("solo.db");
        let t = Instant::now();
        let r = keyaudit::sync::sync_provider(&solo, provider.clone(), &detect, &|_| {})
            .await
            .unwrap();
        let solo_time = t.elapsed();
        println!(
            "one person, into SQLite: {} keys, {} events in {:.2} s ({:.0} events/s)",
            r.keys,
            r.new_events,
            solo_time.as_secs_f64(),
            r.new_events as f64 / solo_time.as_secs_f64()
        );

        let run = |name: &str| {
            let cache = Cache::new(dir.path().join(name)).with_team(cfg.team());
            let provider = provider.clone();
            let detect = detect.clone();
            async move {
                let t = Instant::now();
                let out = sync_source(&cache, provider, &detect, None, &|_| {}, cfg_fresh())
                    .await
                    .unwrap();
                (out, t.elapsed())
            }
        };
        let (out, member_time) = run("member-a.db").await;
        let Outcome::Synced(r) = out else {
            panic!("the first member should sync")
        };
        println!(
            "member syncing for the team, into SQLite and PostgreSQL: {} events in {:.2} s \
             ({:.0} events/s; {:.2}x one person's time)",
            r.new_events,
            member_time.as_secs_f64(),
            r.new_events as f64 / member_time.as_secs_f64(),
            member_time.as_secs_f64() / solo_time.as_secs_f64()
        );
        let (out, read_time) = run("member-b.db").await;
        let Outcome::Read(r) = out else {
            panic!("the second member should read the team's copy")
        };
        println!(
            "member reading the team's copy, PostgreSQL into SQLite: {} keys, {} events, \
             {} findings in {:.2} s ({:.0} events/s; {:.2}x one person's sync)",
            r.keys,
            r.new_events,
            r.findings,
            read_time.as_secs_f64(),
            r.new_events as f64 / read_time.as_secs_f64(),
            read_time.as_secs_f64() / solo_time.as_secs_f64()
        );
        // A member joining later that syncs the source itself (`fresh = "0s"`), into a new
        // cache: it reads the team's copy first, with the provider's cursor, and asks the
        // provider only for what is newer; its detection runs over its cache.
        // A member's cache file, with `lines` in its `[team]` table.
        let member_cache = |file: &str, lines: &str| {
            let text = format!("{}{lines}", team_table(&url, "10m"));
            let cfg = Config::parse(&text, Path::new("bench.toml")).unwrap();
            Cache::new(dir.path().join(file)).with_team(cfg.team())
        };
        let joined = member_cache("member-d.db", "fresh = \"0s\"\n");
        let t = Instant::now();
        let out = sync_source(&joined, provider.clone(), &detect, None, &|_| {}, None)
            .await
            .unwrap();
        let join_time = t.elapsed();
        let Outcome::Synced(r) = out else {
            panic!("the joining member should sync")
        };
        println!(
            "member joining, syncing itself: {}; {} events from the provider ({} already \
             cached), detection over {} events, in {:.2} s ({:.2}x one person's sync, {:.2}x \
             the first member's)",
            r.notes.first().map_or("-", String::as_str),
            r.new_events,
            r.duplicates,
            r.detection.as_ref().map_or(0, |d| d.events),
            join_time.as_secs_f64(),
            join_time.as_secs_f64() / solo_time.as_secs_f64(),
            join_time.as_secs_f64() / member_time.as_secs_f64()
        );
        // A member that keeps the events in the team store reads the copy, then syncs new
        // traffic itself; one person's cache syncs the same.
        let in_team = |fresh: &str| {
            member_cache(
                "member-c.db",
                &format!("fresh = \"{fresh}\"\nevents = \"team\"\n"),
            )
        };
        let out = sync_source(
            &in_team("1h"),
            provider.clone(),
            &detect,
            None,
            &|_| {},
            cfg_fresh(),
        )
        .await
        .unwrap();
        assert!(matches!(out, Outcome::Read(_)));
        let new: usize = std::env::var("KEYAUDIT_BENCH_NEW")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let added = demo.append_traffic(new);
        let t = Instant::now();
        let r = keyaudit::sync::sync_provider(&solo, provider.clone(), &detect, &|_| {})
            .await
            .unwrap();
        let solo_new = t.elapsed();
        println!(
            "{added} new events, one person (SQLite): {} fetched, detection over {} events, \
             in {:.2} s",
            r.new_events,
            r.detection.map_or(0, |d| d.events),
            solo_new.as_secs_f64()
        );
        let member = in_team("0s");
        let t = Instant::now();
        let out = sync_source(&member, provider.clone(), &detect, None, &|_| {}, None)
            .await
            .unwrap();
        let member_new = t.elapsed();
        let Outcome::Synced(r) = out else {
            panic!("the member should sync")
        };
        let d = r.detection.clone().unwrap_or_default();
        println!(
            "{added} new events, member with events in the team store: {} fetched, published, \
             detection on the team's copy ({}) over {} events, in {:.2} s ({:.2}x one person's)",
            r.new_events,
            if d.full {
                "replayed"
            } else {
                "going on from the baselines"
            },
            d.events,
            member_new.as_secs_f64(),
            member_new.as_secs_f64() / solo_new.as_secs_f64()
        );
        // A full replay of every event: from SQLite, and from PostgreSQL.
        let replay = |team: bool| {
            let (path, store) = (
                if team {
                    member.path.clone()
                } else {
                    solo.clone()
                },
                member.team.clone(),
            );
            let (rt, detect) = (tokio::runtime::Handle::current(), detect.clone());
            tokio::task::spawn_blocking(move || -> (DetectReport, Duration) {
                let mut cache = keyaudit::store::Store::open(&path).unwrap();
                let now = chrono::Utc::now();
                let t = Instant::now();
                let r = match (team, store) {
                    (true, Some(s)) => keyaudit::detect::team::detect_copy(
                        &mut cache,
                        &s,
                        &rt,
                        "talentgrid",
                        None,
                        &detect,
                        now,
                    ),
                    _ => keyaudit::detect::detect_full(&mut cache, &detect, now),
                }
                .unwrap();
                (r, t.elapsed())
            })
        };
        let (solo_r, solo_t) = replay(false).await.unwrap();
        let (team_r, team_t) = replay(true).await.unwrap();
        println!(
            "full replay: one person's cache (SQLite) {} events in {:.2} s; the team's copy \
             (PostgreSQL) {} events in {:.2} s ({:.2}x)",
            solo_r.events,
            solo_t.as_secs_f64(),
            team_r.events,
            team_t.as_secs_f64(),
            team_t.as_secs_f64() / solo_t.as_secs_f64()
        );
        println!(
            "team database after the sync: {}",
            cluster.value(
                url.rsplit('/').next().unwrap(),
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            )
        );
    });
    println!("load average after: {}", loadavg());
}

/// The members read a copy published within the last hour.
fn cfg_fresh() -> Option<Duration> {
    Some(Duration::from_secs(3600))
}
