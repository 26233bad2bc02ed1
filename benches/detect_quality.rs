//! Detection quality against the demo's labels, per rule and overall.
//!
//! `cargo bench --bench detect_quality [-- SEEDS]` (default: tuning seeds 1–2, then
//! held-out seeds 3–10). Prints a Markdown table for docs/detections.md.

#[path = "../tests/support/quality.rs"]
mod quality;

use keyaudit::detect::DetectConfig;
use quality::*;

fn table(title: &str, runs: &[SeedRun]) {
    let (per, all) = score_pairs(runs);
    println!("\n### {title}\n");
    println!("| rule | labels | findings | true | precision | recall |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (rule, s) in &per {
        println!(
            "| {rule} | {} | {} | {} | {:.3} | {:.3} |",
            s.tp + s.fn_,
            s.tp + s.fp,
            s.tp,
            s.precision(),
            s.recall()
        );
    }
    println!(
        "| **all (key, kind)** | {} | {} | {} | **{:.3}** | **{:.3}** |",
        all.tp + all.fn_,
        all.tp + all.fp,
        all.tp,
        all.precision(),
        all.recall()
    );
    let k = score_keys(runs);
    println!(
        "| **keys** | {} | {} | {} | **{:.3}** | **{:.3}** |",
        k.tp + k.fn_,
        k.tp + k.fp,
        k.tp,
        k.precision(),
        k.recall()
    );
    println!(
        "\nEvidence of true findings that is labelled anomalous traffic: {:.1} %",
        evidence_precision(runs) * 100.0
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = DetectConfig::default();
    let seeds: Vec<u64> = if args.is_empty() {
        (1..=10).collect()
    } else {
        args
    };
    let mut runs = Vec::new();
    for &seed in &seeds {
        let t = std::time::Instant::now();
        let r = rt.block_on(run_seed(seed, true, &cfg));
        eprintln!(
            "seed {seed}: {} keys, {} events, {} labels, {} anomaly findings ({:.1}s)",
            r.keys,
            r.events,
            r.truth.len(),
            r.predicted.len(),
            t.elapsed().as_secs_f64()
        );
        for m in mistakes(&r) {
            eprintln!("  {m}");
        }
        runs.push(r);
    }
    let tune: Vec<SeedRun> = runs.iter().filter(|r| r.seed <= 2).cloned().collect();
    let held: Vec<SeedRun> = runs.iter().filter(|r| r.seed > 2).cloned().collect();
    if !tune.is_empty() {
        table("Tuning seeds (1–2)", &tune);
    }
    if !held.is_empty() {
        let list: Vec<String> = held.iter().map(|r| r.seed.to_string()).collect();
        table(&format!("Held-out seeds ({})", list.join(", ")), &held);
    }
    // Clean traffic: anomaly findings per 1,000 key-days.
    let mut clean = 0usize;
    let mut key_days = 0usize;
    for &seed in seeds.iter().take(5) {
        let r = rt.block_on(run_seed(seed, false, &cfg));
        for f in &r.findings {
            eprintln!(
                "  clean seed {seed}: {} {} — {}",
                f.rule, f.key_id, f.explanation
            );
        }
        clean += r.findings.len();
        key_days += r.keys * r.days as usize;
    }
    println!(
        "\nClean traffic (anomalies off, {} seeds): {clean} anomaly findings over {key_days} key-days = {:.2} per 1,000 key-days",
        seeds.len().min(5),
        clean as f64 * 1000.0 / key_days.max(1) as f64
    );
}
