//! TUI benchmark on a large cache: time to first frame, filter keystroke to filtered
//! table, frame draw time, detail load, peak RSS; and `fzf --filter` on the same names.
//!
//! `cargo bench --bench tui` (sizes: KEYAUDIT_BENCH_KEYS, default 100000;
//! KEYAUDIT_BENCH_EVENTS, default 10000000). The cache is built on first use and kept in
//! `target/bench-cache/` for later runs; KEYAUDIT_BENCH_REBUILD=1 builds it again.
//! Built with `--features encryption`, the store reads behind the screens are measured
//! again on an encrypted copy of the cache, beside the same reads on the plain one.

#[path = "../tests/support/bench_cache.rs"]
mod bench_cache;
#[path = "../tests/support/tui_fixture.rs"]
mod fixture;

use chrono::Utc;
use keyaudit::store::Store;
use keyaudit::tui::action::{Action, Effect};
use keyaudit::tui::keymap::Keymap;
use keyaudit::tui::search::Searcher;
use keyaudit::tui::state::{Setup, State};
use keyaudit::tui::theme::Theme;
use keyaudit::tui::view::keys::KEYS_HEAD;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const QUERY: &str = "acme prod";

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

/// CPU time of this process so far (every thread, user and system), in milliseconds;
/// the kernel counts it in 10 ms ticks, so only sums over many steps are precise.
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            // Fields 14 and 15 of stat(5), utime and stime, in 1/100 s.
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) * 10.0)
        })
        .unwrap_or(0.0)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Runs the filter effects as the runner does (one searcher for the session) and feeds
/// their results back. Returns the milliseconds spent in filter runs and in `update`.
fn settle(search: &Searcher, state: &mut State, fx: Vec<Effect>) -> (f64, f64) {
    let (mut run, mut apply) = (0.0, 0.0);
    for e in fx {
        if let Effect::Filter(job) = e {
            search.request(job.generation);
            let t = Instant::now();
            let v = search.run(&job).unwrap_or_default();
            run += ms(t);
            let t = Instant::now();
            let more = state.update(Action::FilterApplied(job.generation, Arc::new(v)));
            apply += ms(t);
            let (r, a) = settle(search, state, more);
            (run, apply) = (run + r, apply + a);
        }
    }
    (run, apply)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if bench_cache::build_if_asked() {
        return;
    }
    let (n_keys, n_events) = bench_cache::sizes();
    let dir = tempfile::tempdir().unwrap();
    let (db, build_s) = bench_cache::cache(n_keys, n_events);
    let db_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;

    // Time to first frame, as the runner does it: open, read the first screen of keys
    // (`keys_head`), draw 160x48. Then the whole list: load, filter (empty), draw.
    let now = bench_cache::now();
    let (w, h) = (160, 48);
    let search = Searcher::default();
    let (t, cpu0) = (Instant::now(), cpu_ms());
    let store = Store::open_read_only(&db).unwrap();
    let mut caps = std::collections::HashMap::new();
    caps.insert("talentgrid".to_string(), fixture::full_caps());
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
    let (head, total) = store.keys_head(KEYS_HEAD).unwrap();
    let t_head = ms(t);
    state.update(Action::KeysPreviewed(Arc::new(head), total));
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| keyaudit::tui::view::render(&state, f))
        .unwrap();
    assert!(
        state.keys.visible.len() > h as usize / 2,
        "the first frame shows keys"
    );
    let first_frame = ms(t);
    let first_cpu = cpu_ms() - cpu0;
    let t_all = Instant::now();
    let keys = Arc::new(store.keys().unwrap());
    let t_load = ms(t_all);
    let fx = state.update(Action::KeysLoaded(keys));
    settle(&search, &mut state, fx);
    term.draw(|f| keyaudit::tui::view::render(&state, f))
        .unwrap();
    let all_frame = ms(t);
    let all_cpu = cpu_ms() - cpu0;
    // The runner prepares the fuzzy text after sending the keys (in the background).
    let t = Instant::now();
    search.prepare(&state.keys.rows);
    let prepare = ms(t);

    // Keystroke to filtered table (filter run + draw), typing QUERY, 20 times.
    let mut key_ms = Vec::new();
    let mut key_cpu = 0.0;
    let mut by_keystroke = vec![Vec::new(); QUERY.len()];
    // Filter run, `update` with its result, draw.
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    let mut full_ms = Vec::new();
    state.update(Action::StartFilter);
    for _ in 0..20 {
        for (n, c) in QUERY.chars().enumerate() {
            let (t, cpu0) = (Instant::now(), cpu_ms());
            let fx = state.update(Action::Input(c));
            let (run, apply) = settle(&search, &mut state, fx);
            let td = Instant::now();
            term.draw(|f| keyaudit::tui::view::render(&state, f))
                .unwrap();
            let draw = ms(td);
            key_ms.push(ms(t));
            key_cpu += cpu_ms() - cpu0;
            by_keystroke[n].push(ms(t));
            parts[0].push(run);
            parts[1].push(apply);
            parts[2].push(draw);
        }
        let shown = state.keys.visible.len();
        // The first keystroke of a fresh query scans every key: measure it alone.
        let t = Instant::now();
        let fx = state.update(Action::ClearFilter);
        settle(&search, &mut state, fx);
        full_ms.push(ms(t));
        state.update(Action::StartFilter);
        if full_ms.len() == 1 {
            eprintln!("query `{QUERY}` shows {shown} of {n_keys} keys");
        }
    }
    let shown = {
        for c in QUERY.chars() {
            let fx = state.update(Action::Input(c));
            settle(&search, &mut state, fx);
        }
        state.keys.visible.len()
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
        let d = keyaudit::tui::view::detail::load_detail(
            &store,
            busy.key_ref,
            now,
            None,
            &keyaudit::detect::DetectConfig::default(),
        )
        .unwrap();
        detail_ms.push(ms(t));
        assert!(d.is_some());
    }
    let busy_events = store
        .count_events(&keyaudit::store::EventQuery {
            key_ref: Some(busy.key_ref),
            ..Default::default()
        })
        .unwrap();
    // The events view: its first page and its histogram are separate reads, without a
    // filter and with one (every 50th address, denied: about 1 event in 850).
    let events_reads = |filter: &str| -> (f64, f64, usize) {
        let mut q = keyaudit::store::EventQuery {
            newest_first: true,
            limit: Some(1000),
            ..Default::default()
        };
        keyaudit::filter::EventFilter::parse(filter)
            .unwrap()
            .apply(&mut q);
        let t = Instant::now();
        let page = store.event_page(&q, 50_000, &|| true).unwrap().unwrap();
        let page_ms = ms(t);
        let t = Instant::now();
        let hist = store
            .matching_per_hour(&q, now, 24, &|| true)
            .unwrap()
            .unwrap();
        let hist_ms = ms(t);
        assert!(!page.rows.is_empty() || filter.is_empty());
        (page_ms, hist_ms, hist.iter().sum::<u64>() as usize)
    };
    let events_plain = events_reads("");
    let events_filtered = events_reads("ip:198.51.100.7 outcome:denied");
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
            .rows
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
    let built = match build_s {
        Some(s) => format!("built in {s:.1}s"),
        None => "kept from an earlier run".into(),
    };
    println!("cache: {n_keys} keys, {n_events} events, {db_mb:.0} MB on disk ({built})");
    println!(
        "time to first frame (160x48) showing keys: {first_frame:.1} ms, CPU {first_cpu:.0} ms (of which reading the first {KEYS_HEAD} keys {t_head:.1} ms)"
    );
    println!(
        "time to the whole list shown: {all_frame:.1} ms, CPU {all_cpu:.0} ms (of which loading all {n_keys} keys {t_load:.1} ms)"
    );
    println!("preparing the fuzzy text after that (in the background): {prepare:.1} ms");
    println!(
        "filter keystroke to filtered table (`{QUERY}`, {} keystrokes): p50 {:.1} ms, p99 {:.1} ms",
        key_ms.len(),
        pct(&mut key_ms, 0.5),
        pct(&mut key_ms, 0.99)
    );
    let per: Vec<String> = by_keystroke
        .iter_mut()
        .enumerate()
        .map(|(n, v)| format!("`{}` {:.1}", &QUERY[..=n], pct(v, 0.5)))
        .collect();
    println!(
        "  CPU per keystroke (every thread): mean {:.1} ms",
        key_cpu / key_ms.len() as f64
    );
    println!("  p50 by keystroke (ms): {}", per.join(", "));
    println!(
        "  of which filter run p50 {:.1} ms / p99 {:.1}, update p50 {:.2} / p99 {:.2}, draw p50 {:.2} / p99 {:.2}",
        pct(&mut parts[0], 0.5),
        pct(&mut parts[0], 0.99),
        pct(&mut parts[1], 0.5),
        pct(&mut parts[1], 0.99),
        pct(&mut parts[2], 0.5),
        pct(&mut parts[2], 0.99)
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
    for (what, (page, hist, n)) in [
        ("", events_plain),
        (
            " filtered `ip:198.51.100.7 outcome:denied`",
            events_filtered,
        ),
    ] {
        println!(
            "events view{what}: first page (up to 1000 newest) {page:.1} ms, 24h histogram {hist:.1} ms ({n} events in 24h)"
        );
    }
    println!("peak RSS (VmHWM): {rss:.0} MB");
    match fzf {
        Some((t, n)) => println!(
            "fzf --filter '{QUERY}' over the same {n_keys} lines: p50 {t:.1} ms ({n} matches)"
        ),
        None => println!("fzf: not installed"),
    }
    #[cfg(feature = "encryption")]
    encrypted_pass(&db, dir.path(), now);
}

/// The reads behind the TUI's screens on one cache file: (open and the first screen of
/// keys, all keys, detail of the busiest key p50, events first page, 24h histogram), ms.
#[cfg(feature = "encryption")]
fn store_reads(db: &Path, now: chrono::DateTime<Utc>) -> [f64; 5] {
    let t = Instant::now();
    let store = Store::open_read_only(db).unwrap();
    store.keys_head(KEYS_HEAD).unwrap();
    let head = ms(t);
    let t = Instant::now();
    store.keys().unwrap();
    let all = ms(t);
    let busy = store
        .key("talentgrid", &format!("key_{:016x}", 0))
        .unwrap()
        .unwrap();
    let mut detail = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        keyaudit::tui::view::detail::load_detail(
            &store,
            busy.key_ref,
            now,
            None,
            &keyaudit::detect::DetectConfig::default(),
        )
        .unwrap();
        detail.push(ms(t));
    }
    let q = keyaudit::store::EventQuery {
        newest_first: true,
        limit: Some(1000),
        ..Default::default()
    };
    let t = Instant::now();
    store.event_page(&q, 50_000, &|| true).unwrap().unwrap();
    let page = ms(t);
    let t = Instant::now();
    store.matching_per_hour(&q, now, 24, &|| true).unwrap();
    let hist = ms(t);
    [head, all, pct(&mut detail, 0.5), page, hist]
}

/// With `--features encryption`: the same reads on the plain cache and on an encrypted
/// copy of it (SQLCipher, a raw key from db_key_command), in the same run.
#[cfg(feature = "encryption")]
fn encrypted_pass(db: &Path, dir: &Path, now: chrono::DateTime<Utc>) {
    use keyaudit::store::crypt;
    let copy = dir.join("encrypted.db");
    std::fs::copy(db, &copy).unwrap();
    let key = dir.join("bench.key");
    std::fs::write(&key, "a5".repeat(32)).unwrap();
    let source = crypt::KeySource::Command {
        command: format!("cat '{}'", key.display()),
        timeout: std::time::Duration::from_secs(10),
        origin: "benches/tui.rs".into(),
    };
    let t = Instant::now();
    crypt::encrypt(&copy, &source).unwrap();
    let convert_s = t.elapsed().as_secs_f64();
    let plain = store_reads(db, now);
    crypt::configure(Some(source));
    let enc = store_reads(&copy, now);
    crypt::configure(None);
    println!(
        "encryption (SQLCipher): `keyaudit encrypt` of a copy of the cache took {convert_s:.1}s"
    );
    for (i, what) in [
        "open + first screen of keys",
        "all keys",
        "key detail of the busiest key (p50)",
        "events view first page",
        "events view 24h histogram",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "  {what}: plain {:.1} ms, encrypted {:.1} ms ({:.2}x)",
            plain[i],
            enc[i],
            enc[i] / plain[i].max(0.001)
        );
    }
    let _ = std::fs::remove_file(&copy);
}
