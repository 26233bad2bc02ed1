//! Recall and precision of every detector on a labelled corpus (tests/support/
//! leak_corpus.rs): ordinary source-like text (code, configuration, UUIDs, hashes,
//! base64 blobs, lock-file integrity strings, documentation placeholders) with valid
//! samples of every detector and near-misses (wrong checksums, wrong structure,
//! placeholders) planted at known lines.
//!
//! Floors: recall at least 0.99 per detector on planted secrets; at most one false
//! positive per 10 MB of ordinary text. `KEYAUDIT_SCAN_QUALITY_SEED` and
//! `KEYAUDIT_SCAN_QUALITY_MB` choose another corpus; the per-detector table is printed
//! (`cargo test --test scan_quality -- --nocapture`) and is the one in docs/scan.md.

#[path = "support/leak_corpus.rs"]
mod leak_corpus;

use keyaudit::scan::{rules, Options, Scanner};
use leak_corpus::{corpus, Label};
use std::collections::BTreeMap;

#[derive(Default)]
struct Row {
    planted: usize,
    found: usize,
    near_misses: usize,
    fp_near: usize,
    fp_ordinary: usize,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_detector_keeps_its_recall_and_precision_on_a_labelled_corpus() {
    let seed = env_or("KEYAUDIT_SCAN_QUALITY_SEED", 1919);
    let mb = env_or("KEYAUDIT_SCAN_QUALITY_MB", 12) as usize;
    let per_detector = 100;
    let c = corpus(seed, mb << 20, 256 << 10, per_detector);
    let scanner = Scanner::new(&Options::default());
    let mut rows: BTreeMap<&'static str, Row> = BTreeMap::new();
    for d in rules::all().filter(|d| d.id != "generic-high-entropy") {
        rows.insert(d.id, Row::default());
    }
    let mut places_of: Vec<Vec<&leak_corpus::Place>> = vec![Vec::new(); c.files.len()];
    for p in &c.places {
        places_of[p.file].push(p);
        match p.label {
            Label::Planted(id) => rows.get_mut(id).expect("a detector").planted += 1,
            Label::NearMiss(id) => rows.get_mut(id).expect("a detector").near_misses += 1,
        }
    }
    let mut total_bytes = 0;
    let mut ordinary_fps = Vec::new();
    for (f, text) in c.files.iter().enumerate() {
        total_bytes += text.len();
        let hits = scanner.scan_text(&format!("f{f}"), text.as_bytes(), 1);
        for p in &places_of[f] {
            if let Label::Planted(id) = p.label {
                if hits
                    .iter()
                    .any(|h| h.kind == id && p.lines.contains(&h.line))
                {
                    rows.get_mut(id).unwrap().found += 1;
                }
            }
        }
        for h in &hits {
            let at = places_of[f].iter().find(|p| p.lines.contains(&h.line));
            match at.map(|p| &p.label) {
                Some(Label::Planted(_)) => {}
                Some(Label::NearMiss(_)) => rows.get_mut(h.kind).unwrap().fp_near += 1,
                None => {
                    rows.get_mut(h.kind).unwrap().fp_ordinary += 1;
                    let line = text.lines().nth(h.line - 1).unwrap_or("");
                    ordinary_fps.push(format!("{} at f{f}:{}: {line:.120}", h.kind, h.line));
                }
            }
        }
    }

    println!(
        "corpus: seed {seed}, {} files, {:.1} MiB ({:.1} MiB ordinary text), {} planted secrets, {} near-misses",
        c.files.len(),
        total_bytes as f64 / 1048576.0,
        c.ordinary_bytes as f64 / 1048576.0,
        rows.values().map(|r| r.planted).sum::<usize>(),
        rows.values().map(|r| r.near_misses).sum::<usize>(),
    );
    println!("| detector | planted | found | recall | near-misses | false hits on them | false hits in ordinary text | precision |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for (id, r) in &rows {
        let recall = r.found as f64 / r.planted.max(1) as f64;
        let precision = r.found as f64 / (r.found + r.fp_near + r.fp_ordinary).max(1) as f64;
        println!(
            "| {id} | {} | {} | {recall:.3} | {} | {} | {} | {precision:.3} |",
            r.planted, r.found, r.near_misses, r.fp_near, r.fp_ordinary
        );
        if r.planted == 0 || recall < 0.99 {
            failures.push(format!(
                "{id}: recall {recall:.3} ({} of {})",
                r.found, r.planted
            ));
        }
    }
    let fp_ordinary: usize = rows.values().map(|r| r.fp_ordinary).sum();
    let per_10mb = fp_ordinary as f64 * (10.0 * 1048576.0) / c.ordinary_bytes as f64;
    println!(
        "false positives in ordinary text: {fp_ordinary} ({per_10mb:.2} per 10 MiB); on near-misses: {}",
        rows.values().map(|r| r.fp_near).sum::<usize>()
    );
    for l in &ordinary_fps {
        println!("  {l}");
    }
    assert!(failures.is_empty(), "recall below 0.99: {failures:#?}");
    assert!(
        per_10mb <= 1.0,
        "{fp_ordinary} false positives in {} bytes of ordinary text: {ordinary_fps:#?}",
        c.ordinary_bytes
    );
}
