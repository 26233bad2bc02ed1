//! Claim latency of the team store with 5 concurrent responders, on a private PostgreSQL
//! cluster started the way the tests start theirs (tests/team_support).
//!
//! Each responder is its own `TeamStore` (its own connection pool, as five keyaudit
//! processes would be) on one tokio runtime, and claims and releases keys in a loop:
//! - `distinct`: each responder acts on keys of its own (the usual case in an incident);
//! - `contended`: all five go for the same 10 keys, so most claims are refused with the
//!   holder's name (a refusal is timed like a grant: the operator waits for either).
//!
//! A claim is one transaction (advisory lock, read of the live claim, insert); the
//! figures are the time of `Shared::claim` as an action sees it, and of its release.
//!
//! Then how fast a decision reaches the others (`live`): one responder acknowledges
//! findings one after another (`action::decide::decide`, as the CLI and the TUI do);
//! the four others each have a workstation's listening connection
//! (`TeamStore::watch`) and, on each announcement, read the new decisions and apply them
//! to their own SQLite cache (`action::decide::pull`, as the workstation does before it
//! redraws). Each figure is the time from the start of the decision to the moment one
//! member's cache holds it.
//!
//! Then what sharing rotations costs (`workflows`): five responders at once each run
//! the saves of `TEAM_ROTATIONS` rotations (a first publication, then one per step, as
//! `action::rotate` does), each save timed as written to a SQLite cache (the one-person
//! path) and as published to the team store; then the listing of the team's open
//! workflows (`workflows --team`) and the hand-over of one workflow per responder
//! (`resume --adopt`'s transaction: the owner changed and the journal entry appended).
//!
//! Run: `cargo bench --bench team` (`TEAM_CLAIMS` per responder, default 400;
//! `TEAM_DECISIONS`, default 200; `TEAM_ROTATIONS` per responder, default 100).

#[path = "../tests/team_support/mod.rs"]
mod team_support;

use keyaudit::action::decide::{decide, pull, FindingDecision};
use keyaudit::config::Config;
use keyaudit::model::{from_millis, Category, Finding, FindingStatus, Key, Severity};
use keyaudit::store::journal::NewEntry;
use keyaudit::store::shared::{ClaimRequest, Shared, SharedError};
use keyaudit::store::team::live::Signal;
use keyaudit::store::team::TeamStore;
use keyaudit::store::workflows::{State, Step, Workflow, WorkflowName, WorkflowOwner};
use keyaudit::store::{Cache, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use team_support::{team_table, Cluster};

const RESPONDERS: usize = 5;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Round {
    claim: Vec<Duration>,
    release: Vec<Duration>,
    granted: usize,
    refused: usize,
    wall: Duration,
}

async fn round(url: &str, per: usize, contended: bool) -> Round {
    let cfg = Config::parse(&team_table(url, "10m"), Path::new("bench.toml")).unwrap();
    let stores: Vec<Arc<TeamStore>> = (0..RESPONDERS)
        .map(|_| Arc::new(TeamStore::new(cfg.team().unwrap().clone())))
        .collect();
    // Connect (and migrate) before timing.
    for s in &stores {
        s.holder("warm", "up").await.unwrap();
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (r, s) in stores.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut out = (Vec::new(), Vec::new(), 0usize, 0usize);
            for i in 0..per {
                let key_id = if contended {
                    format!("key_{}", i % 10)
                } else {
                    format!("key_{r}_{i}")
                };
                let req = ClaimRequest {
                    provider: "bench".into(),
                    key_id,
                    operation: "revoke".into(),
                    lease: Duration::from_secs(600),
                };
                let t = Instant::now();
                let got = s.claim(&req).await;
                out.0.push(t.elapsed());
                match got {
                    Ok(c) => {
                        out.2 += 1;
                        let t = Instant::now();
                        s.release(&c, "ok").await.unwrap();
                        out.1.push(t.elapsed());
                    }
                    Err(SharedError::Held(_)) => out.3 += 1,
                    Err(e) => panic!("claim failed: {e}"),
                }
            }
            out
        }));
    }
    let mut all = Round {
        claim: Vec::new(),
        release: Vec::new(),
        granted: 0,
        refused: 0,
        wall: Duration::ZERO,
    };
    for t in tasks {
        let (c, r, g, f) = t.await.unwrap();
        all.claim.extend(c);
        all.release.extend(r);
        all.granted += g;
        all.refused += f;
    }
    all.wall = started.elapsed();
    all.claim.sort();
    all.release.sort();
    all
}

/// A member's cache holding `n` open findings `f-0` … of one key.
fn seed(path: &Path, n: usize) {
    let mut store = Store::open(path).unwrap();
    store.ensure_provider("bench", "http", None).unwrap();
    store
        .upsert_keys(
            "bench",
            &[Key::seen_in_logs("bench", "key_1")],
            chrono::Utc::now(),
        )
        .unwrap();
    for i in 0..n {
        store
            .upsert_finding(&Finding {
                id: format!("f-{i}"),
                rule: "stale_key".into(),
                category: Category::Hygiene,
                severity: Severity::Medium,
                provider: "bench".into(),
                key_id: "key_1".into(),
                title: "t".into(),
                explanation: "e".into(),
                evidence: Vec::new(),
                first_seen: from_millis(1000),
                last_seen: from_millis(2000),
                status: FindingStatus::Open,
                note: None,
                suppressed_until: None,
            })
            .unwrap();
    }
}

/// The time from the start of each decision to each other member's cache holding it.
async fn live(url: &str, decisions: usize) -> (Vec<Duration>, Duration) {
    let cfg = Config::parse(&team_table(url, "10m"), Path::new("bench.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let caches: Vec<Cache> = (0..RESPONDERS)
        .map(|i| {
            let path = dir.path().join(format!("member-{i}.db"));
            seed(&path, decisions);
            Cache::new(path).with_team(cfg.team())
        })
        .collect();
    let (applied_tx, mut applied) = tokio::sync::mpsc::unbounded_channel();
    for cache in caches.iter().skip(1).cloned() {
        let mut signals = cache.team.as_ref().unwrap().watch();
        assert_eq!(signals.recv().await, Some(Signal::Online));
        let applied_tx = applied_tx.clone();
        tokio::spawn(async move {
            let mut mark = 0;
            while let Some(s) = signals.recv().await {
                if s != Signal::Changed("decisions".into()) {
                    continue;
                }
                let (last, changed) = pull(&cache, mark).await.unwrap();
                mark = last;
                let at = Instant::now();
                for d in changed {
                    let _ = applied_tx.send((d.finding, at));
                }
            }
        });
    }
    let mut out = Vec::new();
    let started = Instant::now();
    for n in 0..decisions {
        let id = format!("f-{n}");
        let t = Instant::now();
        decide(
            &caches[0],
            &FindingDecision {
                id: id.clone(),
                target: "bench/key_1".into(),
                status: FindingStatus::Acknowledged,
                note: "seen".into(),
                until: None,
                params: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
        for _ in 1..RESPONDERS {
            let (finding, at) = applied.recv().await.unwrap();
            assert_eq!(finding, id);
            out.push(at.duration_since(t));
        }
    }
    let wall = started.elapsed();
    out.sort();
    (out, wall)
}

/// The saves of one rotation, as `action::rotate` makes them: (step, state).
const SAVES: &[(Step, State)] = &[
    (Step::Planned, State::Running),
    (Step::Rotating, State::Running),
    (Step::Rotated, State::Running),
    (Step::Delivering, State::Running),
    (Step::Delivered, State::Running),
    (Step::Verifying, State::Running),
    (Step::Verified, State::Grace),
    (Step::Finishing, State::Grace),
    (Step::Finished, State::Done),
];

struct Shares {
    local: Vec<Duration>,
    publish: Vec<Duration>,
    list: Duration,
    listed: usize,
    adopt: Vec<Duration>,
}

/// Five responders each saving `per` rotations, in their caches and in the team store;
/// the last rotation of each stays open (in its grace period) for the listing and the
/// hand-overs.
async fn shares(url: &str, per: usize) -> Shares {
    let cfg = Config::parse(&team_table(url, "10m"), Path::new("bench.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<TeamStore>> = (0..RESPONDERS)
        .map(|_| Arc::new(TeamStore::new(cfg.team().unwrap().clone())))
        .collect();
    for s in &stores {
        s.holder("warm", "up").await.unwrap();
    }
    let mut tasks = Vec::new();
    for (r, s) in stores.iter().cloned().enumerate() {
        let path = dir.path().join(format!("member-{r}.db"));
        tasks.push(tokio::spawn(async move {
            let cache = Store::open(&path).unwrap();
            let (mut local, mut publish) = (Vec::new(), Vec::new());
            for i in 0..per {
                let mut w = Workflow::new_rotation(
                    "bench",
                    &format!("key_{r}_{i}"),
                    "file:/srv/new.key",
                    3600,
                    None,
                );
                let t = Instant::now();
                w.id = cache.insert_workflow(&w).unwrap();
                local.push(t.elapsed());
                let name = WorkflowName {
                    cache: format!("cache-{r}"),
                    id: w.id,
                };
                let owner = WorkflowOwner {
                    cache: name.cache.clone(),
                    id: w.id,
                    user: format!("responder{r}"),
                    host: "bench".into(),
                };
                let last = if i + 1 == per { 7 } else { SAVES.len() };
                for (n, (step, state)) in SAVES[..last].iter().enumerate() {
                    w.step = *step;
                    w.state = *state;
                    if n > 0 {
                        let t = Instant::now();
                        cache.save_workflow(&w).unwrap();
                        local.push(t.elapsed());
                    }
                    let t = Instant::now();
                    s.publish_workflow(&name, &owner, &w).await.unwrap();
                    publish.push(t.elapsed());
                }
            }
            (local, publish)
        }));
    }
    let (mut local, mut publish) = (Vec::new(), Vec::new());
    for t in tasks {
        let (l, p) = t.await.unwrap();
        local.extend(l);
        publish.extend(p);
    }
    local.sort();
    publish.sort();
    let t = Instant::now();
    let open = stores[0].team_workflows(false).await.unwrap();
    let list = t.elapsed();
    assert_eq!(open.len(), RESPONDERS);
    // Each responder adopts the open rotation of the next one, all at once.
    let mut tasks = Vec::new();
    for (r, s) in stores.iter().cloned().enumerate() {
        let from = open[(r + 1) % RESPONDERS].clone();
        tasks.push(tokio::spawn(async move {
            let to = WorkflowOwner {
                cache: format!("cache-{r}"),
                id: 1_000_000,
                user: format!("responder{r}"),
                host: "bench".into(),
            };
            let target = from.workflow.target();
            let entry = NewEntry {
                action: "adopt",
                target: &target,
                reason: None,
                params: serde_json::json!({ "team_workflow": from.team_id }),
                result: "adopted",
            };
            let t = Instant::now();
            assert!(s
                .adopt_workflow(from.team_id, &from.owner, &to, &entry)
                .await
                .unwrap());
            t.elapsed()
        }));
    }
    let mut adopt = Vec::new();
    for t in tasks {
        adopt.push(t.await.unwrap());
    }
    adopt.sort();
    Shares {
        local,
        publish,
        list,
        listed: open.len(),
        adopt,
    }
}

/// The publication of `n` keys (every sync sends each key's document; the store keeps
/// those that changed), then of `n` detection states (a first sync of a large source
/// sends every one; later ones, those saved since): each first inserted, then sent
/// again.
async fn states(url: &str, n: usize) -> Vec<Duration> {
    let cfg = Config::parse(&team_table(url, "10m"), Path::new("bench.toml")).unwrap();
    let store = TeamStore::new(cfg.team().unwrap().clone());
    let lock = store.try_sync_lock("bench", "http").await.unwrap().unwrap();
    // About the size of a real key's state (`KeyState::encode` of a demo key: 400–700
    // bytes).
    let states: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("key_{i:08}"), vec![(i % 251) as u8; 600]))
        .collect();
    let keys: Vec<Key> = (0..n)
        .map(|i| Key::seen_in_logs("bench", &format!("key_{i:08}")))
        .collect();
    let mut took = Vec::new();
    for (keys, states) in [(&keys[..], &[][..]), (&[][..], &states[..])] {
        for _ in 0..2 {
            let t = Instant::now();
            store
                .publish_state(&lock, keys, &[], states, None, None)
                .await
                .unwrap();
            took.push(t.elapsed());
        }
    }
    lock.release().await;
    took
}

fn main() {
    let per: usize = std::env::var("TEAM_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    println!("load average before: {}", loadavg());
    let t = Instant::now();
    let cluster = Cluster::start();
    println!(
        "private cluster (initdb + pg_ctl start): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for contended in [false, true] {
        let db = cluster.database(if contended { "contended" } else { "distinct" });
        let url = cluster.url("postgres", &db);
        let r = rt.block_on(round(&url, per, contended));
        println!(
            "{}: {RESPONDERS} responders x {per} claims, {} granted, {} refused, {:.2} s wall: \
             claim p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; release p50 {:.2} ms, p99 {:.2} ms",
            if contended {
                "contended (10 keys)"
            } else {
                "distinct keys"
            },
            r.granted,
            r.refused,
            r.wall.as_secs_f64(),
            pct(&r.claim, 0.50),
            pct(&r.claim, 0.99),
            pct(&r.claim, 1.0),
            pct(&r.release, 0.50),
            pct(&r.release, 0.99),
        );
    }
    let decisions: usize = std::env::var("TEAM_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let db = cluster.database("live");
    let (lat, wall) = rt.block_on(live(&cluster.url("postgres", &db), decisions));
    println!(
        "live: {decisions} decisions by one responder, each applied by {} others ({} \
         applications, {:.2} s wall): decision to another member's cache p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        RESPONDERS - 1,
        lat.len(),
        wall.as_secs_f64(),
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
    );
    let rotations: usize = std::env::var("TEAM_ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let db = cluster.database("workflows");
    let sh = rt.block_on(shares(&cluster.url("postgres", &db), rotations));
    println!(
        "workflows: {RESPONDERS} responders x {rotations} rotations at once: a save in the \
         cache p50 {:.2} ms, p99 {:.2} ms ({} saves); published to the team p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms ({} publications); open workflows listed ({} of {}) in \
         {:.2} ms; {} adoptions at once p50 {:.2} ms, max {:.2} ms",
        pct(&sh.local, 0.50),
        pct(&sh.local, 0.99),
        sh.local.len(),
        pct(&sh.publish, 0.50),
        pct(&sh.publish, 0.99),
        pct(&sh.publish, 1.0),
        sh.publish.len(),
        sh.listed,
        RESPONDERS * rotations,
        sh.list.as_secs_f64() * 1000.0,
        sh.adopt.len(),
        pct(&sh.adopt, 0.50),
        pct(&sh.adopt, 1.0),
    );
    let n: usize = std::env::var("TEAM_STATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let db = cluster.database("states");
    let took = rt.block_on(states(&cluster.url("postgres", &db), n));
    println!(
        "publication: {n} key documents in {:.2} s, unchanged again in {:.2} s; {n} detection \
         states of 600 bytes in {:.2} s, replaced in {:.2} s",
        took[0].as_secs_f64(),
        took[1].as_secs_f64(),
        took[2].as_secs_f64(),
        took[3].as_secs_f64()
    );
    println!("load average after: {}", loadavg());
}
