//! TUI benchmark on a large cache: time to first frame, filter keystroke to filtered
//! table, frame draw time, detail load, peak RSS; and `fzf --filter` on the same names.
//!
//! `cargo bench --bench tui` (sizes: KEYAUDIT_BENCH_KEYS, default 100000;
//! KEYAUDIT_BENCH_EVENTS, default 1000000).

use chrono::{Duration, TimeZone, Utc};
use keyaudit::model::{Event, Key, KeySource, KeyStatus, Outcome};
use keyaudit::store::Store;
use keyaudit::tui::action::{Action, Effect};
use keyaudit::tui::keymap::Keymap;
use keyaudit::tui::state::{Setup, State};
use keyaudit::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::sync::Arc;
use std::time::Instant;

const PARTNERS: &[&str] = &[
    "Acme Payroll",
    "Brightpath ATS",
    "Ledgerly Payroll",
    "Vericheck Screening",
    "Onboardly",
    "Greenhouse ATS",
    "Benefitly",
    "Timewise Scheduling",
];
const PURPOSES: &[&str] = &[
    "candidate-sync",
    "payroll-export",
    "ssn-verify",
    "doc-upload",
    "benefits-feed",
    "time-import",
];
const ENVS: &[&str] = &["prod", "sandbox", "staging"];
const QUERY: &str = "acme prod";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn key(i: usize, now: chrono::DateTime<Utc>) -> Key {
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

fn build(path: &std::path::Path, keys: usize, events: usize) -> std::io::Result<()> {
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    let mut store = Store::open(path).expect("cache opens");
    store
        .ensure_provider("talentgrid", "http", Some("http://127.0.0.1:1"))
        .unwrap();
    let all: Vec<Key> = (0..keys).map(|i| key(i, now)).collect();
    for chunk in all.chunks(5000) {
        store.upsert_keys("talentgrid", chunk, now).unwrap();
    }
    let span_ms = 30 * 86_400_000i64;
    let batch = 20_000;
    let mut i = 0;
    while i < events {
        let n = batch.min(events - i);
        let evs: Vec<Event> = (i..i + n)
            .map(|j| {
                // A skewed distribution: a few keys are busy, most are quiet.
                let k = if j % 3 == 0 {
                    j % 100
                } else {
                    (j * 7919) % keys
                };
                Event {
                    provider: "talentgrid".into(),
                    id: format!("evt_{j:012}"),
                    time: now
                        - Duration::milliseconds(span_ms - (j as i64 * span_ms / events as i64)),
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
            })
            .collect();
        store.insert_events("talentgrid", &evs, None).unwrap();
        i += n;
    }
    Ok(())
}

fn settle(state: &mut State, fx: Vec<Effect>) {
    for e in fx {
        if let Effect::Filter(job) = e {
            let v = keyaudit::tui::search::run_now(&job);
            let more = state.update(Action::FilterApplied(job.generation, Arc::new(v)));
            settle(state, more);
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n_keys = env_usize("KEYAUDIT_BENCH_KEYS", 100_000);
    let n_events = env_usize("KEYAUDIT_BENCH_EVENTS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let t = Instant::now();
    build(&db, n_keys, n_events).unwrap();
    let build_s = t.elapsed().as_secs_f64();
    let db_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    let rss_after_build = vm_hwm_mb();

    // Time to first frame: open, load every key, filter (empty), draw 160x48.
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    let (w, h) = (160, 48);
    let t = Instant::now();
    let store = Store::open_read_only(&db).unwrap();
    let keys = Arc::new(store.keys().unwrap());
    let t_load = ms(t);
    let mut caps = std::collections::HashMap::new();
    caps.insert(
        "talentgrid".to_string(),
        keyaudit::tui::fixture::full_caps(),
    );
    let mut state = State::new(Setup {
        now,
        demo: false,
        write: false,
        read_only: false,
        keymap: Arc::new(Keymap::default()),
        theme: Theme::dark(),
        capabilities: caps,
        size: (w, h),
    });
    let fx = state.update(Action::KeysLoaded(keys));
    settle(&mut state, fx);
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| keyaudit::tui::view::render(&state, f))
        .unwrap();
    let first_frame = ms(t);

    // Keystroke to filtered table (filter run + draw), typing QUERY, 20 times.
    let mut key_ms = Vec::new();
    let mut full_ms = Vec::new();
    state.update(Action::StartFilter);
    for _ in 0..20 {
        for c in QUERY.chars() {
            let t = Instant::now();
            let fx = state.update(Action::Input(c));
            settle(&mut state, fx);
            term.draw(|f| keyaudit::tui::view::render(&state, f))
                .unwrap();
            key_ms.push(ms(t));
        }
        let shown = state.visible.len();
        // The first keystroke of a fresh query scans every key: measure it alone.
        let t = Instant::now();
        let fx = state.update(Action::ClearFilter);
        settle(&mut state, fx);
        full_ms.push(ms(t));
        state.update(Action::StartFilter);
        if full_ms.len() == 1 {
            eprintln!("query `{QUERY}` shows {shown} of {n_keys} keys");
        }
    }
    let shown = {
        for c in QUERY.chars() {
            let fx = state.update(Action::Input(c));
            settle(&mut state, fx);
        }
        state.visible.len()
    };

    // Frame draw time while scrolling.
    let mut draw_ms = Vec::new();
    for i in 0..300 {
        state.update(if i % 50 < 25 {
            Action::PageDown
        } else {
            Action::PageUp
        });
        let t = Instant::now();
        term.draw(|f| keyaudit::tui::view::render(&state, f))
            .unwrap();
        draw_ms.push(ms(t));
    }

    // Detail of the busiest key (its 30-day activity from the (key_ref, time) index).
    let busy = store
        .key("talentgrid", &format!("key_{:016x}", 0))
        .unwrap()
        .unwrap();
    let mut detail_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let d = keyaudit::tui::runner::load_detail(&store, busy.key_ref, now).unwrap();
        detail_ms.push(ms(t));
        assert!(d.is_some());
    }
    let busy_events = store
        .count_events(&keyaudit::store::EventQuery {
            key_ref: Some(busy.key_ref),
            ..Default::default()
        })
        .unwrap();
    let t = Instant::now();
    keyaudit::tui::runner::load_events(&store, None, None, now).unwrap();
    let events_page = ms(t);
    let rss = vm_hwm_mb();

    // fzf on the same names (the same text the fuzzy filter scores).
    let fzf = (|| {
        let have = std::process::Command::new("fzf")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            return None;
        }
        let names = dir.path().join("names.txt");
        let text: String = state
            .keys
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}\n",
                    r.key.name, r.key.owner, r.key.id, r.key.provider
                )
            })
            .collect();
        std::fs::write(&names, text).ok()?;
        let mut runs = Vec::new();
        let mut matched = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let out = std::process::Command::new("fzf")
                .args(["--filter", QUERY])
                .stdin(std::fs::File::open(&names).ok()?)
                .output()
                .ok()?;
            runs.push(ms(t));
            matched = out.stdout.iter().filter(|b| **b == b'\n').count();
        }
        Some((pct(&mut runs, 0.5), matched))
    })();

    println!("TUI benchmark");
    println!(
        "cache: {n_keys} keys, {n_events} events, {db_mb:.0} MB on disk (built in {build_s:.1}s)"
    );
    println!("time to first frame: {first_frame:.1} ms (of which loading the keys {t_load:.1} ms), 160x48");
    println!(
        "filter keystroke to filtered table (`{QUERY}`, {} keystrokes): p50 {:.1} ms, p99 {:.1} ms",
        key_ms.len(),
        pct(&mut key_ms, 0.5),
        pct(&mut key_ms, 0.99)
    );
    println!(
        "clearing the filter (a full run over {n_keys} keys, no draw): p50 {:.1} ms",
        pct(&mut full_ms, 0.5)
    );
    println!("query shows {shown} keys");
    println!(
        "frame draw 160x48: p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut draw_ms, 0.5),
        pct(&mut draw_ms, 0.99)
    );
    println!(
        "key detail of the busiest key ({busy_events} events): p50 {:.1} ms",
        pct(&mut detail_ms, 0.5)
    );
    println!("events view page (1000 newest + 24h histogram): {events_page:.1} ms");
    println!("peak RSS (VmHWM): {rss:.0} MB (after building the cache: {rss_after_build:.0} MB)");
    match fzf {
        Some((t, n)) => println!(
            "fzf --filter '{QUERY}' over the same {n_keys} lines: p50 {t:.1} ms ({n} matches)"
        ),
        None => println!("fzf: not installed"),
    }
}
