//! Detection quality against the demo's labelled anomalies and against the independent
//! CloudTrail generator (regression floors on development seeds), and the false-alarm
//! rate on clean traffic of both. Figures for more seeds: `cargo bench --bench
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
    let rate = r.findings.len() as f64 * 1000.0 / r.key_days;
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

/// Principals of the CloudTrail floor scenario (about 40,000 events over 30 days).
const PRINCIPALS: usize = 24;

#[test]
fn cloudtrail_keys_with_injected_anomalies_are_found() {
    let r = run_cloudtrail(1, true, &DetectConfig::default(), PRINCIPALS);
    let keys = score_keys(std::slice::from_ref(&r));
    let why = mistakes(&r).join("\n");
    let kinds: std::collections::BTreeSet<&str> = r.truth.iter().map(|t| t.1.as_str()).collect();
    assert!(kinds.len() >= 8, "the scenario injects {kinds:?}");
    assert!(
        keys.recall() >= 0.97,
        "key recall {:.3}\n{why}",
        keys.recall()
    );
    assert!(
        keys.precision() >= 0.95,
        "key precision {:.3}\n{why}",
        keys.precision()
    );
    // A probe of services the key never used is reported as such.
    let probes: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule == "denied_burst")
        .collect();
    assert!(!probes.is_empty(), "{why}");
    for f in probes {
        assert!(f.explanation.contains("never used successfully"), "{f:?}");
    }
}

#[test]
fn cloudtrail_clean_traffic_raises_at_most_one_anomaly_per_1000_key_days() {
    let r = run_cloudtrail(1, false, &DetectConfig::default(), PRINCIPALS);
    let rate = r.findings.len() as f64 * 1000.0 / r.key_days;
    let listed: Vec<String> = r
        .findings
        .iter()
        .map(|f| format!("{} {}: {}", f.rule, f.key_id, f.explanation))
        .collect();
    assert!(r.key_days > 500.0, "{} key-days", r.key_days);
    assert!(
        rate <= 1.0,
        "{rate:.2} per 1,000 key-days:\n{}",
        listed.join("\n")
    );
}
