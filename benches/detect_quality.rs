//! Detection quality against labelled scenarios, per rule and overall.
//!
//! `cargo bench --bench detect_quality -- [--generator demo|cloudtrail] [--seed N]...
//! [--principals N]`: without `--seed`, the demo's tuning seeds 1–2 and held-out seeds
//! 3–10, or CloudTrail seeds 1–2. `demo` syncs the embedded demo over HTTP; `cloudtrail`
//! writes CloudTrail log files with the independent generator
//! (`tests/support/cloudtrail_gen.rs`) and imports them. Prints Markdown tables for
//! docs/detections.md: pairs (key, kind) per rule, key-level recall per injected kind
//! and precision per rule, and anomaly findings per 1,000 clean key-days.

#[path = "../tests/support/quality.rs"]
mod quality;

use keyaudit::detect::DetectConfig;
use quality::*;

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

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
    println!("\nKey level, per injected kind (recall) and per rule (precision):\n");
    println!(
        "| kind / rule | labelled keys | found | recall | flagged keys | labelled | precision |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let rec = recall_by_kind(runs);
    let prec = precision_by_rule(runs);
    let names: std::collections::BTreeSet<&String> = rec.keys().chain(prec.keys()).collect();
    for n in names {
        let (found, lab) = rec.get(n).copied().unwrap_or_default();
        let (tru, flag) = prec.get(n).copied().unwrap_or_default();
        println!(
            "| {n} | {lab} | {found} | {:.3} | {flag} | {tru} | {:.3} |",
            ratio(found, lab),
            ratio(tru, flag)
        );
    }
    if runs.iter().any(|r| !r.label_events.is_empty()) {
        println!(
            "\nEvidence of true findings that is labelled anomalous traffic: {:.1} %",
            evidence_precision(runs) * 100.0
        );
    }
}

fn main() {
    let mut generator = "demo".to_string();
    let mut seeds: Vec<u64> = Vec::new();
    let mut principals = 40usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--generator" => generator = args.next().expect("--generator demo|cloudtrail"),
            "--seed" => seeds.push(
                args.next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seed takes a number"),
            ),
            "--principals" => {
                principals = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--principals takes a number")
            }
            // cargo bench passes --bench; plain numbers are seeds, as before.
            other => {
                if let Ok(n) = other.parse() {
                    seeds.push(n)
                }
            }
        }
    }
    let cloudtrail = match generator.as_str() {
        "demo" => false,
        "cloudtrail" => true,
        other => panic!("--generator {other}: expected demo or cloudtrail"),
    };
    if seeds.is_empty() {
        seeds = if cloudtrail {
            vec![1, 2]
        } else {
            (1..=10).collect()
        };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = DetectConfig::default();
    let run = |seed: u64, anomalies: bool| -> SeedRun {
        if cloudtrail {
            run_cloudtrail(seed, anomalies, &cfg, principals)
        } else {
            rt.block_on(run_seed(seed, anomalies, &cfg))
        }
    };
    let mut runs = Vec::new();
    for &seed in &seeds {
        let t = std::time::Instant::now();
        let r = run(seed, true);
        eprintln!(
            "{generator} seed {seed}: {} keys, {} events, {} labels, {} anomaly findings ({:.1}s)",
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
    let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    if cloudtrail {
        table(&format!("CloudTrail, seeds {}", list.join(", ")), &runs);
    } else {
        let tune: Vec<SeedRun> = runs.iter().filter(|r| r.seed <= 2).cloned().collect();
        let held: Vec<SeedRun> = runs.iter().filter(|r| r.seed > 2).cloned().collect();
        if !tune.is_empty() {
            table("Tuning seeds (1–2)", &tune);
        }
        if !held.is_empty() {
            let list: Vec<String> = held.iter().map(|r| r.seed.to_string()).collect();
            table(&format!("Held-out seeds ({})", list.join(", ")), &held);
        }
    }
    // Clean traffic: anomaly findings per 1,000 key-days.
    let mut clean = 0usize;
    let mut key_days = 0.0;
    for &seed in seeds.iter().take(5) {
        let r = run(seed, false);
        for f in &r.findings {
            eprintln!(
                "  clean seed {seed}: {} {} — {}",
                f.rule, f.key_id, f.explanation
            );
        }
        clean += r.findings.len();
        key_days += r.key_days;
    }
    println!(
        "\nClean traffic ({generator}, anomalies off, {} seeds): {clean} anomaly findings over {key_days:.0} key-days = {:.2} per 1,000 key-days",
        seeds.len().min(5),
        clean as f64 * 1000.0 / key_days.max(1.0)
    );
}
