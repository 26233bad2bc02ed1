//! Detection quality against the demo's labelled anomalies (a regression floor), and the
//! false-alarm rate on clean demo traffic. Figures for more seeds: `cargo bench --bench
//! detect_quality` (docs/detections.md).

#[path = "support/quality.rs"]
mod quality;

use keyaudit::detect::DetectConfig;
use quality::*;

/// Half the demo's default history keeps this test fast in debug builds; the bench
/// measures the full-size data set.
const EVENTS: usize = 30_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_findings_match_the_demo_labels() {
    let r = run_seed_with(3, true, &DetectConfig::default(), EVENTS).await;
    let (_, all) = score_pairs(std::slice::from_ref(&r));
    let keys = score_keys(std::slice::from_ref(&r));
    let why = mistakes(&r).join("\n");
    assert!(
        r.truth.len() >= 16,
        "the demo labels {} anomalies",
        r.truth.len()
    );
    assert!(all.recall() >= 0.95, "recall {:.3}\n{why}", all.recall());
    assert!(
        all.precision() >= 0.90,
        "precision {:.3}\n{why}",
        all.precision()
    );
    assert!(
        keys.recall() >= 0.95 && keys.precision() >= 0.90,
        "keys {keys:?}\n{why}"
    );
    // Every anomaly finding explains itself and points at its events.
    for f in &r.findings {
        assert!(!f.evidence.is_empty() && f.evidence.len() <= 50, "{f:?}");
        assert!(f.explanation.chars().any(|c| c.is_ascii_digit()), "{f:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_traffic_raises_at_most_one_anomaly_per_1000_key_days() {
    let r = run_seed_with(4, false, &DetectConfig::default(), EVENTS).await;
    let key_days = r.keys * r.days as usize;
    let rate = r.findings.len() as f64 * 1000.0 / key_days as f64;
    let listed: Vec<String> = r
        .findings
        .iter()
        .map(|f| format!("{} {}: {}", f.rule, f.key_id, f.explanation))
        .collect();
    assert!(
        rate <= 1.0,
        "{rate:.2} per 1,000 key-days:\n{}",
        listed.join("\n")
    );
}
