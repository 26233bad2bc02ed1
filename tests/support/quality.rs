//! Detection quality against the demo provider's ground truth: sync the demo for a
//! seed, run detection, compare anomaly findings with `GET /v1/demo/labels` at the level
//! of (key, anomaly kind) and of keys. Shared by `tests/detect_quality.rs` and
//! `benches/detect_quality.rs`.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use keyaudit::config::ProviderConfig;
use keyaudit::demo::{self, DemoOptions};
use keyaudit::detect::{self, DetectConfig};
use keyaudit::model::{Category, Finding};
use keyaudit::store::{FindingQuery, Store};
use std::collections::{BTreeMap, BTreeSet};

#[path = "cloudtrail_gen.rs"]
pub mod cloudtrail_gen;

/// The fixed clock of every quality run: a Wednesday, 15:00 UTC.
pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
}

/// What one seed gave.
#[derive(Debug, Clone, Default)]
pub struct SeedRun {
    pub seed: u64,
    /// (key id, kind) of every label.
    pub truth: BTreeSet<(String, String)>,
    /// (key id, rule) of every anomaly finding.
    pub predicted: BTreeSet<(String, String)>,
    /// The anomaly findings themselves.
    pub findings: Vec<Finding>,
    pub keys: usize,
    pub events: i64,
    pub days: u32,
    /// Key-days of traffic (for the demo, keys × days; for CloudTrail, the sum of each
    /// key's span of activity).
    pub key_days: f64,
    /// Event ids of each label, by (key id, kind).
    pub label_events: BTreeMap<(String, String), BTreeSet<String>>,
}

/// Counts for precision and recall.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Score {
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
    pub fn add(&mut self, o: Score) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
}

/// Syncs the demo for `seed` into a fresh cache, runs full detection at the fixed
/// clock and returns labels and anomaly findings.
pub async fn run_seed(seed: u64, anomalies: bool, cfg: &DetectConfig) -> SeedRun {
    run_seed_with(seed, anomalies, cfg, DemoOptions::default().events).await
}

/// [`run_seed`] with a demo of about `events` historic events.
pub async fn run_seed_with(
    seed: u64,
    anomalies: bool,
    cfg: &DetectConfig,
    events: usize,
) -> SeedRun {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let opts = DemoOptions {
        seed,
        token: "quality-token".into(),
        now: Some(fixed_now()),
        anomalies,
        events,
        live_rate: 0.0,
        ..DemoOptions::default()
    };
    let days = opts.days;
    let t0 = std::time::Instant::now();
    let handle = demo::start(opts).await.expect("demo starts");
    let t_start = t0.elapsed();
    let provider = keyaudit::provider::from_config(&ProviderConfig {
        name: "talentgrid".into(),
        kind: "http".into(),
        url: Some(handle.url.clone()),
        token: Some(handle.token.clone().into()),
        ..Default::default()
    })
    .expect("provider");
    keyaudit::sync::sync_provider(
        &db,
        provider,
        &keyaudit::detect::DetectConfig::default(),
        &|_| {},
    )
    .await
    .expect("sync");
    let labels: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/demo/labels", handle.url))
        .bearer_auth(&handle.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    handle.shutdown().await;
    let t_sync = t0.elapsed();
    let mut store = Store::open(&db).unwrap();
    detect::detect_full(&mut store, cfg, fixed_now()).unwrap();
    if std::env::var_os("KEYAUDIT_QUALITY_DEBUG").is_some() {
        for k in store.keys().unwrap() {
            let st = detect::baseline_status(&store, k.key_ref, cfg).unwrap();
            eprintln!("{} {st}", k.key.id);
        }
    }
    if std::env::var_os("KEYAUDIT_QUALITY_TIMING").is_some() {
        eprintln!(
            "seed {seed}: demo start {:?}, sync {:?}, detect {:?}",
            t_start,
            t_sync - t_start,
            t0.elapsed() - t_sync
        );
    }
    let findings: Vec<Finding> = store
        .findings(&FindingQuery::default())
        .unwrap()
        .into_iter()
        .filter(|f| f.category == Category::Anomaly)
        .collect();
    let truth = labels["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key_id"].as_str().unwrap().to_string(),
                l["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let label_events = labels["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                (
                    l["key_id"].as_str().unwrap().to_string(),
                    l["kind"].as_str().unwrap().to_string(),
                ),
                l["event_ids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    let predicted = findings
        .iter()
        .map(|f| (f.key_id.clone(), f.rule.clone()))
        .collect();
    SeedRun {
        seed,
        truth,
        predicted,
        findings,
        keys: store.key_count().unwrap() as usize,
        events: store.event_count().unwrap(),
        days,
        key_days: store.key_count().unwrap() as f64 * days as f64,
        label_events,
    }
}

/// The CloudTrail scenario of `seed` with `principals` principals over 30 days: files
/// written by [`cloudtrail_gen`], imported by keyaudit's importer, the keys the IAM
/// listing reports as inactive marked so, full detection at the fixed clock.
pub fn run_cloudtrail(
    seed: u64,
    anomalies: bool,
    cfg: &DetectConfig,
    principals: usize,
) -> SeedRun {
    use keyaudit::import::{import_files, ImportOptions};
    use keyaudit::model::{Key, KeySource, KeyStatus};
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let sc = cloudtrail_gen::generate(&logs, seed, principals, 30, fixed_now(), anomalies);
    let mut store = Store::open(&dir.path().join("cache.db")).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let opts = ImportOptions {
        source: Some("aws-prod".into()),
        strict: true,
        ..ImportOptions::default()
    };
    let sums = import_files(&mut store, &files, &opts, &mut |_| {}, &mut |_| {}).unwrap();
    for s in &sums {
        assert!(
            s.failed.is_none() && s.errors.is_empty() && s.skipped == 0,
            "{s:?}"
        );
    }
    let listed: Vec<Key> = sc
        .inactive
        .iter()
        .map(|(id, _)| Key {
            status: KeyStatus::Inactive,
            source: KeySource::Provider,
            ..Key::seen_in_logs("aws-prod", id)
        })
        .collect();
    store.upsert_keys("aws-prod", &listed, fixed_now()).unwrap();
    // When each was deactivated (the time of its `UpdateAccessKey` call).
    for (id, at) in &sc.inactive {
        assert!(store.set_key_stopped_at("aws-prod", id, Some(*at)).unwrap());
    }
    detect::detect_full(&mut store, cfg, fixed_now()).unwrap();
    let findings: Vec<Finding> = store
        .findings(&FindingQuery::default())
        .unwrap()
        .into_iter()
        .filter(|f| f.category == Category::Anomaly)
        .collect();
    let predicted = findings
        .iter()
        .map(|f| (f.key_id.clone(), f.rule.clone()))
        .collect();
    SeedRun {
        seed,
        truth: sc.labels,
        predicted,
        findings,
        keys: sc.keys,
        events: store.event_count().unwrap(),
        days: sc.days,
        key_days: sc.key_days,
        label_events: BTreeMap::new(),
    }
}

/// Key-level recall per injected kind: of the keys carrying a label of the kind, how
/// many have any anomaly finding (found, labelled).
pub fn recall_by_kind(runs: &[SeedRun]) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in runs {
        let flagged: BTreeSet<&String> = r.predicted.iter().map(|p| &p.0).collect();
        for (key, kind) in &r.truth {
            let e = out.entry(kind.clone()).or_default();
            e.1 += 1;
            if flagged.contains(key) {
                e.0 += 1;
            }
        }
    }
    out
}

/// Key-level precision per rule: of the keys a rule flagged, how many carry a label
/// (true, flagged).
pub fn precision_by_rule(runs: &[SeedRun]) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in runs {
        let labelled: BTreeSet<&String> = r.truth.iter().map(|t| &t.0).collect();
        for (key, rule) in &r.predicted {
            let e = out.entry(rule.clone()).or_default();
            e.1 += 1;
            if labelled.contains(key) {
                e.0 += 1;
            }
        }
    }
    out
}

/// Of the evidence events of true findings, the share that belongs to the label (the
/// finding points at the injected events, not at nearby normal traffic).
pub fn evidence_precision(runs: &[SeedRun]) -> f64 {
    let (mut hit, mut all) = (0usize, 0usize);
    for r in runs {
        for f in &r.findings {
            if let Some(ids) = r.label_events.get(&(f.key_id.clone(), f.rule.clone())) {
                all += f.evidence.len();
                hit += f.evidence.iter().filter(|e| ids.contains(*e)).count();
            }
        }
    }
    if all == 0 {
        1.0
    } else {
        hit as f64 / all as f64
    }
}

/// Scores per rule (kind) and overall, at the (key, kind) level.
pub fn score_pairs(runs: &[SeedRun]) -> (BTreeMap<String, Score>, Score) {
    let mut per: BTreeMap<String, Score> = BTreeMap::new();
    let mut all = Score::default();
    for r in runs {
        for p in &r.predicted {
            let s = per.entry(p.1.clone()).or_default();
            if r.truth.contains(p) {
                s.tp += 1;
                all.tp += 1;
            } else {
                s.fp += 1;
                all.fp += 1;
            }
        }
        for t in &r.truth {
            if !r.predicted.contains(t) {
                per.entry(t.1.clone()).or_default().fn_ += 1;
                all.fn_ += 1;
            }
        }
    }
    (per, all)
}

/// Scores at the level of keys: a key with any label versus a key with any finding.
pub fn score_keys(runs: &[SeedRun]) -> Score {
    let mut s = Score::default();
    for r in runs {
        let t: BTreeSet<&String> = r.truth.iter().map(|x| &x.0).collect();
        let p: BTreeSet<&String> = r.predicted.iter().map(|x| &x.0).collect();
        s.tp += t.intersection(&p).count();
        s.fp += p.difference(&t).count();
        s.fn_ += t.difference(&p).count();
    }
    s
}

/// Lines describing the misses and false alarms of a run (for tuning).
pub fn mistakes(r: &SeedRun) -> Vec<String> {
    let mut out = Vec::new();
    for p in r.predicted.difference(&r.truth) {
        let f = r
            .findings
            .iter()
            .find(|f| f.key_id == p.0 && f.rule == p.1)
            .unwrap();
        let labelled: Vec<&String> = r
            .truth
            .iter()
            .filter(|t| t.0 == p.0)
            .map(|t| &t.1)
            .collect();
        out.push(format!(
            "seed {} FALSE {} {} (key labelled {:?}): {} — {}",
            r.seed, p.1, p.0, labelled, f.title, f.explanation
        ));
    }
    for t in r.truth.difference(&r.predicted) {
        let got: Vec<&String> = r
            .predicted
            .iter()
            .filter(|p| p.0 == t.0)
            .map(|p| &p.1)
            .collect();
        out.push(format!(
            "seed {} MISSED {} {} (found {:?})",
            r.seed, t.1, t.0, got
        ));
    }
    out
}
