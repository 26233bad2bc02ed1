//! The events views of a team whose events stay in its store (`[team] events = "team"`),
//! on PostgreSQL against the same events in one person's SQLite cache, in one run.
//!
//! The data is the TUI bench's (`tests/support/bench_cache.rs`: 100,000 keys, 10,000,000
//! events over 30 days; sizes from `KEYAUDIT_BENCH_KEYS` / `KEYAUDIT_BENCH_EVENTS`). The
//! SQLite cache is built once and kept under `target/bench-cache/`; the same events are
//! loaded into a private PostgreSQL 15 cluster (started as the tests start theirs) by
//! binary `COPY`, secondary indexes built after. A member cache holds the keys only.
//!
//! Measured, each side by side on both stores:
//! - the store reads behind the screens (`EventReads`): the events view's first page,
//!   a page deep in the history, the 24-hour histogram, a rare filter's first page and
//!   histogram, the busiest key's detail (30-day activity and newest events);
//! - the peers' floor: the same first page as one SQL statement in `psql` and `sqlite3`;
//! - the workstation itself (release binary in tmux, 200x50): its first frame, and the
//!   events view's first page after `3`, pressed at the first frame or once settled.
//!
//! Run: `cargo bench --all-features --bench team_reads`. Needs tmux and sqlite3.

#[path = "../tests/support/bench_cache.rs"]
mod bench_cache;
#[path = "../tests/team_support/mod.rs"]
mod team_support;
#[path = "../tests/tmux_support/mod.rs"]
mod tmux_support;

use chrono::{DateTime, Duration as Span, Utc};
use futures_util::pin_mut;
use keyaudit::config::Config;
use keyaudit::filter::Network;
use keyaudit::model::{to_millis, Key, Outcome};
use keyaudit::store::reads::{always, CacheEvents, EventReads, Reader};
use keyaudit::store::team::events::TeamEvents;
use keyaudit::store::team::replica::{copy_event, EVENT_COPY_TYPES};
use keyaudit::store::team::TeamStore;
use keyaudit::store::{ActivityRequest, EventQuery, Store};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use team_support::{team_table, Cluster};
use tmux_support::Tmux;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const BIN: &str = env!("CARGO_BIN_EXE_keyaudit");
/// Runs of each store read; the median is reported.
const RUNS: usize = 15;
/// Starts of the workstation on each store.
const STARTS: usize = 5;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Loads `n` events of `keys` into the team store's `events` by binary `COPY`, with its
/// secondary indexes dropped during the load and built after it.
async fn load(url: &str, keys: &[Key], n: usize) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "DROP INDEX events_time; DROP INDEX events_key_time; DROP INDEX events_provider_id;",
        )
        .await
        .unwrap();
    let now = bench_cache::now();
    let sink = client
        .copy_in(
            "COPY events (provider, ext_id, key_id, time, principal, action, scope, source_ip,
                          user_agent, outcome, status_code, request_id, records)
             FROM STDIN (FORMAT binary)",
        )
        .await
        .unwrap();
    let types: Vec<Type> = std::iter::once(Type::TEXT)
        .chain(EVENT_COPY_TYPES)
        .collect();
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for j in 0..n {
        let e = bench_cache::event(j, n, keys, now);
        copy_event(writer.as_mut(), &e.provider, &e).await.unwrap();
    }
    writer.finish().await.unwrap();
    client
        .batch_execute(
            "SET maintenance_work_mem = '512MB';
             CREATE INDEX events_provider_id ON events (provider, id);
             CREATE INDEX events_time ON events (time, id);
             CREATE INDEX events_key_time ON events (key_id, time, id);",
        )
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE events").await.unwrap();
}

/// The reads behind the screens, on one store.
struct Reads {
    first_page: f64,
    deep_page: f64,
    histogram: f64,
    rare_page: f64,
    rare_histogram: f64,
    detail: f64,
    /// Rows of the first page, of the rare page, the detail's event count.
    shown: (usize, usize, u64),
}

fn store_reads(
    rt: &tokio::runtime::Runtime,
    reads: &dyn EventReads,
    busiest: i64,
    now: DateTime<Utc>,
) -> Reads {
    let first = EventQuery {
        newest_first: true,
        limit: Some(1000),
        ..Default::default()
    };
    let rare = EventQuery {
        source_ip: Some(Network::parse("198.51.100.7").unwrap()),
        outcome: Some(Outcome::Denied),
        ..first.clone()
    };
    // Ten days back: the page after `q.before` there.
    let deep = EventQuery {
        before: Some((to_millis(now - Span::days(10)), i64::MAX)),
        ..first.clone()
    };
    let timed = |f: &dyn Fn() -> usize| -> (f64, usize) {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            n = f();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        (median(times), n)
    };
    let page = |q: &EventQuery| {
        rt.block_on(reads.page(q.clone(), 50_000, always()))
            .unwrap()
            .unwrap()
            .rows
            .len()
    };
    let hours = |q: &EventQuery| {
        rt.block_on(reads.per_hour(q.clone(), now, 24, always()))
            .unwrap()
            .unwrap()
            .iter()
            .sum::<u64>() as usize
    };
    let (first_page, n_first) = timed(&|| page(&first));
    let (deep_page, _) = timed(&|| page(&deep));
    let (histogram, _) = timed(&|| hours(&first));
    let (rare_page, n_rare) = timed(&|| page(&rare));
    let (rare_histogram, _) = timed(&|| hours(&rare));
    let (detail, total) = timed(&|| {
        let a = rt
            .block_on(reads.key_activity(ActivityRequest {
                key_ref: busiest,
                until: now,
                days: 30,
                top: 8,
            }))
            .unwrap();
        let q = EventQuery {
            key_ref: Some(busiest),
            newest_first: true,
            limit: Some(50),
            ..Default::default()
        };
        let rows = rt
            .block_on(reads.page(q, usize::MAX, always()))
            .unwrap()
            .unwrap()
            .rows;
        assert_eq!(rows.len(), 50);
        a.total as usize
    });
    Reads {
        first_page,
        deep_page,
        histogram,
        rare_page,
        rare_histogram,
        detail,
        shown: (n_first, n_rare, total as u64),
    }
}

/// The newest 1,000 events as one statement of each peer's own: milliseconds (median).
fn peer_floor(cluster: &Cluster, pg_db: &str, sqlite: &Path) -> (f64, f64) {
    let sql = "SELECT * FROM events ORDER BY time DESC, id DESC LIMIT 1000";
    let mut pg = Vec::new();
    let mut lite = Vec::new();
    for _ in 0..RUNS {
        // psql's own timing of the statement (no connection set-up).
        let out = Command::new(team_support::pg_bin().join("psql"))
            .args(["-X", "-h", "127.0.0.1", "-U", "postgres", "-d", pg_db])
            .args(["-p", &cluster.port.to_string()])
            .args(["-c", "\\timing on", "-c", sql])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let ms: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Time: "))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("psql prints the time");
        pg.push(ms);
        let mut child = Command::new("sqlite3")
            .arg(sqlite)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sqlite3 runs (apt-get install -y sqlite3)");
        let script = format!(".timer on\n.output /dev/null\n{sql};\n");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        let secs: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Run Time: real "))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("sqlite3 prints the time");
        lite.push(secs * 1000.0);
    }
    (median(pg), median(lite))
}

/// What the workstation showed how soon, in milliseconds (medians of [`STARTS`]).
struct Screens {
    /// Launch to the first frame.
    first_frame: f64,
    /// Launch to the events view's first page, `3` pressed at the first frame.
    events_from_launch: f64,
    /// `3` to the events view's first page, pressed once the workstation settled.
    events_settled: f64,
    /// The last events view.
    screen: String,
}

/// The workstation on `db` with `config`, started [`STARTS`] times pressing `3` at once
/// and [`STARTS`] times pressing it 3 s after the first frame.
fn workstation(dir: &Path, config: &Path, db: &Path, name: &str) -> Screens {
    let (mut first, mut launch, mut settled) = (Vec::new(), Vec::new(), Vec::new());
    let mut screen = String::new();
    let every = Duration::from_millis(2);
    let events_shown = |s: &str| s.contains("events of all keys") && s.contains("198.51.100.");
    for i in 0..2 * STARTS {
        let at_once = i % 2 == 0;
        let tmux = Tmux::new("ka-bench-reads", &format!("{name}{i}"));
        let t = Instant::now();
        tmux.start(
            &format!(
                "env KEYAUDIT_CONFIG={} KEYAUDIT_DB={} XDG_CONFIG_HOME={d}/xdg-config \
                 XDG_DATA_HOME={d}/xdg-data XDG_STATE_HOME={d}/state {BIN}",
                config.display(),
                db.display(),
                d = dir.display(),
            ),
            200,
            50,
        );
        let (_, at) = tmux.wait_every("the first frame", Duration::from_secs(60), every, |s| {
            s.contains("keys") && s.contains("providers")
        });
        first.push((at - t).as_secs_f64() * 1000.0);
        let pressed = if at_once {
            t
        } else {
            std::thread::sleep(Duration::from_secs(3));
            Instant::now()
        };
        tmux.send(&["3"]);
        let (s, at) = tmux.wait_every("the events", Duration::from_secs(60), every, events_shown);
        let took = (at - pressed).as_secs_f64() * 1000.0;
        if at_once {
            launch.push(took);
        } else {
            settled.push(took);
        }
        screen = s;
        tmux.send(&["q"]);
        let _ = tmux.wait_every("the exit", Duration::from_secs(10), every, |_| {
            !tmux.exists()
        });
    }
    Screens {
        first_frame: median(first),
        events_from_launch: median(launch),
        events_settled: median(settled),
        screen,
    }
}

fn main() {
    if bench_cache::build_if_asked() {
        return;
    }
    let (n_keys, n_events) = bench_cache::sizes();
    println!("load average before: {}", loadavg());
    let (sqlite, built) = bench_cache::cache(n_keys, n_events);
    let mb = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    match built {
        Some(s) => println!("SQLite cache built in {s:.1} s: {:.0} MB", mb(&sqlite)),
        None => println!("SQLite cache reused: {:.0} MB", mb(&sqlite)),
    }
    let now = bench_cache::now();
    let keys: Vec<Key> = (0..n_keys).map(|i| bench_cache::key(i, now)).collect();

    let cluster = Cluster::start();
    let pg_db = cluster.database("reads");
    let url = cluster.url("postgres", &pg_db);
    let team_toml = team_table(&url, "1m") + "events = \"team\"\n";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = Config::parse(&team_toml, Path::new("team.toml")).unwrap();
    let team = Arc::new(TeamStore::new(cfg.team().unwrap().clone()));
    // The first use creates the tables.
    rt.block_on(team.tops("talentgrid")).unwrap();
    let t = Instant::now();
    rt.block_on(load(&url, &keys, n_events));
    println!(
        "PostgreSQL loaded by COPY, indexes built, VACUUM ANALYZE: {n_events} events in {:.1} s; \
         database {} MB",
        t.elapsed().as_secs_f64(),
        cluster.value(
            &pg_db,
            "SELECT pg_database_size(current_database()) / 1000000"
        )
    );

    // The member's cache: the keys only.
    let dir = tempfile::tempdir().unwrap();
    let member = dir.path().join("member.db");
    {
        let mut s = Store::open(&member).unwrap();
        s.ensure_provider("talentgrid", "http", None).unwrap();
        for chunk in keys.chunks(5000) {
            s.upsert_keys("talentgrid", chunk, now).unwrap();
        }
    }
    let handle = |db: &Path| {
        Store::open_read_only(db)
            .unwrap()
            .key("talentgrid", &keys[0].id)
    };
    let (solo_busiest, member_busiest) = (
        handle(&sqlite).unwrap().unwrap().key_ref,
        handle(&member).unwrap().unwrap().key_ref,
    );
    let solo = CacheEvents::new(&sqlite, Reader::default());
    let pg = TeamEvents::new(team, CacheEvents::new(&member, Reader::default()));
    println!("load average before the reads: {}", loadavg());
    let a = store_reads(&rt, &solo, solo_busiest, now);
    let b = store_reads(&rt, &pg, member_busiest, now);
    assert_eq!(a.shown, b.shown, "both stores show the same");
    println!(
        "first page {} rows, rare filter {} rows, busiest key {} events in 30 days",
        a.shown.0, a.shown.1, a.shown.2
    );
    println!("| store read (median of {RUNS}) | SQLite cache | PostgreSQL team store |");
    println!("|---|---:|---:|");
    for (what, x, y) in [
        ("events view, first page", a.first_page, b.first_page),
        ("a page ten days back", a.deep_page, b.deep_page),
        ("24-hour histogram", a.histogram, b.histogram),
        (
            "`ip:198.51.100.7 outcome:denied`, first page",
            a.rare_page,
            b.rare_page,
        ),
        (
            "the same, 24-hour histogram",
            a.rare_histogram,
            b.rare_histogram,
        ),
        ("busiest key's detail", a.detail, b.detail),
    ] {
        println!("| {what} | {x:.1} ms | {y:.1} ms |");
    }
    let (psql, sqlite3) = peer_floor(&cluster, &pg_db, &sqlite);
    println!(
        "| peer floor: newest 1,000 rows in one SELECT | sqlite3 {sqlite3:.1} ms | psql {psql:.1} ms |"
    );

    if !tmux_support::available() {
        return;
    }
    let solo_cfg = dir.path().join("solo.toml");
    std::fs::write(&solo_cfg, "").unwrap();
    let member_cfg = dir.path().join("member.toml");
    std::fs::write(&member_cfg, &team_toml).unwrap();
    println!("load average before the workstation: {}", loadavg());
    let solo = workstation(dir.path(), &solo_cfg, &sqlite, "solo");
    let team = workstation(dir.path(), &member_cfg, &member, "member");
    println!("| workstation, 200x50 (median of {STARTS}) | SQLite cache | PostgreSQL team store |");
    println!("|---|---:|---:|");
    for (what, x, y) in [
        ("first frame", solo.first_frame, team.first_frame),
        (
            "launch to the events view's first page (`3` at the first frame)",
            solo.events_from_launch,
            team.events_from_launch,
        ),
        (
            "`3` to the events view's first page, 3 s after the first frame",
            solo.events_settled,
            team.events_settled,
        ),
    ] {
        println!("| {what} | {x:.0} ms | {y:.0} ms |");
    }
    println!("the member's events view:\n{}", team.screen);
    println!("load average after: {}", loadavg());
}
