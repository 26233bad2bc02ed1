//! Recall and precision of every detector on a labelled corpus (tests/support/
//! leak_corpus.rs): ordinary source-like text (code, configuration, UUIDs, hashes,
//! base64 blobs, lock-file integrity strings, documentation placeholders) with valid
//! samples of every detector and near-misses (wrong checksums, wrong structure,
//! truncated PEM blocks, placeholders) planted at known lines.
//!
//! How a hit is scored: a hit of detector D on a line of a planted sample of D finds it
//! (a sample that gives D twice, such as a GitLab sample's two tokens, is found once);
//! a hit of another detector on a planted sample is a true hit only where the sample
//! holds that kind too (an AWS secret's sample holds its access key id), otherwise a
//! false one; every hit on a near-miss or on ordinary text is a false positive.
//!
//! Floors, on the development seed: recall at least 0.99 for every detector; no hit at
//! all on the near-misses; at most one false positive per 10 MiB of ordinary text.
//! `KEYAUDIT_SCAN_QUALITY_SEED`, `KEYAUDIT_SCAN_QUALITY_MB` (of ordinary text, 12) and
//! `KEYAUDIT_SCAN_QUALITY_SAMPLES` (valid samples and near-misses per detector, 100)
//! choose another corpus;
//! the per-detector table is printed in Markdown
//! (`cargo test --all-features --test scan_quality -- --nocapture`) and is the one in
//! docs/scan.md.

#[path = "support/leak_corpus.rs"]
mod leak_corpus;

use keyaudit::scan::{rules, Hit, Options, Scanner};
use leak_corpus::{corpus, Label, Place};
use std::collections::BTreeMap;

/// The seed the floors were set on.
const DEVELOPMENT_SEED: u64 = 1919;

#[derive(Default)]
struct Row {
    planted: usize,
    found: usize,
    near_misses: usize,
    fp_near: usize,
    fp_planted: usize,
    fp_ordinary: usize,
    tp_companion: usize,
}

/// Other kinds a planted sample of `id` holds, whose hits are true.
fn companions(id: &str) -> &'static [&'static str] {
    match id {
        "aws-secret-access-key" => &["aws-access-key-id"],
        _ => &[],
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Scored {
    rows: BTreeMap<&'static str, Row>,
    ordinary_fps: Vec<String>,
    near_fps: Vec<String>,
    missed: Vec<String>,
    bytes: usize,
    ordinary_bytes: usize,
    files: usize,
}

fn place_of<'a>(places: &[&'a Place], h: &Hit) -> Option<&'a Place> {
    places.iter().find(|p| p.lines.contains(&h.line)).copied()
}

fn score(seed: u64, mib: usize, per_detector: usize) -> Scored {
    let c = corpus(seed, mib << 20, 256 << 10, per_detector);
    let scanner = Scanner::new(&Options::default());
    let mut rows: BTreeMap<&'static str, Row> = BTreeMap::new();
    for d in rules::all().filter(|d| d.id != "generic-high-entropy") {
        rows.insert(d.id, Row::default());
    }
    let mut places_of: Vec<Vec<&Place>> = vec![Vec::new(); c.files.len()];
    for p in &c.places {
        places_of[p.file].push(p);
        match p.label {
            Label::Planted(id) => rows.get_mut(id).expect("a detector").planted += 1,
            Label::NearMiss(id) => rows.get_mut(id).expect("a detector").near_misses += 1,
        }
    }
    let (mut ordinary_fps, mut near_fps, mut missed) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for (f, text) in c.files.iter().enumerate() {
        bytes += text.len();
        let hits = scanner.scan_text(&format!("f{f}"), text.as_bytes(), 1);
        let line = |n: usize| text.lines().nth(n - 1).unwrap_or("").to_string();
        for p in &places_of[f] {
            if let Label::Planted(id) = p.label {
                if hits
                    .iter()
                    .any(|h| h.kind == id && p.lines.contains(&h.line))
                {
                    rows.get_mut(id).unwrap().found += 1;
                } else {
                    missed.push(format!(
                        "{id} at f{f}:{}: {:.120}",
                        p.lines.start(),
                        line(*p.lines.start())
                    ));
                }
            }
        }
        for h in &hits {
            let row = rows.get_mut(h.kind).unwrap();
            match place_of(&places_of[f], h).map(|p| &p.label) {
                Some(Label::Planted(id)) if *id == h.kind => {}
                Some(Label::Planted(id)) if companions(id).contains(&h.kind) => {
                    row.tp_companion += 1
                }
                Some(Label::Planted(id)) => {
                    row.fp_planted += 1;
                    near_fps.push(format!("{} on a planted {id} at f{f}:{}", h.kind, h.line));
                }
                Some(Label::NearMiss(id)) => {
                    row.fp_near += 1;
                    near_fps.push(format!(
                        "{} on a near-miss of {id} at f{f}:{}: {:.120}",
                        h.kind,
                        h.line,
                        line(h.line)
                    ));
                }
                None => {
                    row.fp_ordinary += 1;
                    ordinary_fps.push(format!(
                        "{} at f{f}:{}: {:.120}",
                        h.kind,
                        h.line,
                        line(h.line)
                    ));
                }
            }
        }
    }
    Scored {
        rows,
        ordinary_fps,
        near_fps,
        missed,
        bytes,
        ordinary_bytes: c.ordinary_bytes,
        files: c.files.len(),
    }
}

fn print_table(seed: u64, s: &Scored) {
    let planted: usize = s.rows.values().map(|r| r.planted).sum();
    let found: usize = s.rows.values().map(|r| r.found).sum();
    let near: usize = s.rows.values().map(|r| r.near_misses).sum();
    println!(
        "corpus: seed {seed}, {} files, {:.1} MiB ({:.1} MiB of ordinary text), {planted} planted secrets, {near} near-misses",
        s.files,
        s.bytes as f64 / 1048576.0,
        s.ordinary_bytes as f64 / 1048576.0,
    );
    println!();
    println!("| detector | planted | found | recall | near-misses | hits on near-misses | other false hits | precision |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let (mut tp, mut fp) = (0, 0);
    for (id, r) in &s.rows {
        let t = r.found + r.tp_companion;
        let f = r.fp_near + r.fp_planted + r.fp_ordinary;
        tp += t;
        fp += f;
        println!(
            "| {id} | {} | {} | {:.3} | {} | {} | {} | {:.3} |",
            r.planted,
            r.found,
            r.found as f64 / r.planted.max(1) as f64,
            r.near_misses,
            r.fp_near,
            r.fp_planted + r.fp_ordinary,
            t as f64 / (t + f).max(1) as f64,
        );
    }
    println!(
        "| **all** | {planted} | {found} | {:.4} | {near} | {} | {} | {:.4} |",
        found as f64 / planted.max(1) as f64,
        s.rows.values().map(|r| r.fp_near).sum::<usize>(),
        s.rows
            .values()
            .map(|r| r.fp_planted + r.fp_ordinary)
            .sum::<usize>(),
        tp as f64 / (tp + fp).max(1) as f64,
    );
    println!();
    println!(
        "false positives in ordinary text: {} ({:.2} per 10 MiB)",
        s.ordinary_fps.len(),
        per_10mib(s)
    );
    for l in s.ordinary_fps.iter().chain(&s.near_fps).chain(&s.missed) {
        println!("  {l}");
    }
}

fn per_10mib(s: &Scored) -> f64 {
    s.ordinary_fps.len() as f64 * (10.0 * 1048576.0) / s.ordinary_bytes as f64
}

#[test]
fn every_detector_keeps_its_recall_and_precision_on_a_labelled_corpus() {
    let seed = env_or("KEYAUDIT_SCAN_QUALITY_SEED", DEVELOPMENT_SEED);
    let mib = env_or("KEYAUDIT_SCAN_QUALITY_MB", 12) as usize;
    let per_detector = env_or("KEYAUDIT_SCAN_QUALITY_SAMPLES", 100) as usize;
    let s = score(seed, mib, per_detector);
    print_table(seed, &s);
    let low: Vec<String> = s
        .rows
        .iter()
        .filter(|(_, r)| r.planted == 0 || (r.found as f64) < 0.99 * r.planted as f64)
        .map(|(id, r)| format!("{id}: {} of {}", r.found, r.planted))
        .collect();
    assert!(
        low.is_empty(),
        "recall below 0.99: {low:#?}\nmissed: {:#?}",
        s.missed
    );
    assert!(
        s.near_fps.is_empty(),
        "hits on near-misses or on the wrong sample: {:#?}",
        s.near_fps
    );
    assert!(
        per_10mib(&s) <= 1.0,
        "{} false positives in {} bytes of ordinary text: {:#?}",
        s.ordinary_fps.len(),
        s.ordinary_bytes,
        s.ordinary_fps
    );
}

/// The scoring itself, on a small corpus dense with samples: each planted sample counts
/// once, and the access key id inside an AWS secret's sample is a true hit.
#[test]
fn the_scoring_counts_a_sample_with_two_hits_once_and_a_companion_kind_as_true() {
    let s = score(5, 1, 100);
    // Every planted sample is counted once, however many hits it gives.
    for (id, r) in &s.rows {
        assert!(
            r.found <= r.planted,
            "{id}: {} found of {}",
            r.found,
            r.planted
        );
        assert_eq!(r.planted, 100, "{id}");
    }
    // The AWS secret samples' access key ids are true hits, not false ones.
    assert_eq!(s.rows["aws-access-key-id"].tp_companion, 100);
    assert_eq!(s.rows["aws-access-key-id"].fp_planted, 0);
}
