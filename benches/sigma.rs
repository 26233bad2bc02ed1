//! Sigma speed: 60 rules over 1 million cached CloudTrail events (a full run), then an
//! incremental run after 10,000 new events.
//!
//! `cargo bench --bench sigma [-- EVENTS KEYS]` (defaults 1000000 and 500). The cache is a
//! real SQLite file (WAL) in a temporary directory; raw records are stored in LZ4 blocks
//! as an import stores them. The rules use the features public cloud rules use: value
//! lists, `contains`, `startswith`, `endswith`, `re`, `cidr`, `null`, keywords, nested
//! fields and `1 of`/`all of`/`not` conditions. Targets: full ≤ 3 s, incremental ≤ 100 ms.

use chrono::{Duration, TimeZone, Utc};
use keyaudit::model::{Event, Key, Outcome};
use keyaudit::sigma::{self, RuleSet, SigmaConfig};
use keyaudit::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Instant;

const NAMES: &[(&str, &str)] = &[
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "PutObject"),
    ("s3.amazonaws.com", "ListObjectsV2"),
    ("iam.amazonaws.com", "ListUsers"),
    ("iam.amazonaws.com", "CreateAccessKey"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("sts.amazonaws.com", "AssumeRole"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("secretsmanager.amazonaws.com", "GetSecretValue"),
    ("kms.amazonaws.com", "Decrypt"),
];

/// 60 rules: six shapes, ten variants each.
fn rules() -> RuleSet {
    let mut set = RuleSet::default();
    for (v, (src, name)) in NAMES.iter().enumerate() {
        let texts = [
            format!(
                "title: call {v}\nid: b-{v}-a\nlevel: low\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel:\n    eventSource: {src}\n    eventName:\n      - {name}\n      - Nope{v}\n  condition: sel\n"
            ),
            format!(
                "title: agent {v}\nid: b-{v}-b\nlevel: medium\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel:\n    userAgent|contains: 'tool-{v}/'\n    userIdentity.arn|endswith: ':user/svc-{v}'\n  condition: sel\n"
            ),
            format!(
                "title: bucket {v}\nid: b-{v}-c\nlevel: high\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel:\n    requestParameters.bucketName|re: '^data-{v}[0-9]+$'\n  office:\n    sourceIPAddress|cidr: 10.{v}.0.0/16\n  condition: sel and not office\n"
            ),
            format!(
                "title: errors {v}\nid: b-{v}-d\nlevel: medium\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  sel_a:\n    errorCode|startswith: AccessDenied\n  sel_b:\n    eventName|startswith: {}\n  filter:\n    errorMessage: null\n  condition: all of sel_* and not filter\n",
                &name[..4]
            ),
            format!(
                "title: keyword {v}\nid: b-{v}-e\nlevel: low\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  keywords:\n    - 'secret-name-{v}x'\n    - 'PROD-{v}-MASTER'\n  condition: keywords\n"
            ),
            format!(
                "title: recon {v}\nid: b-{v}-f\nlevel: low\nlogsource: {{product: aws, service: cloudtrail}}\n\
                 detection:\n  a:\n    eventName: List{v}Things\n  b:\n    eventName|endswith: Policy{v}\n  c:\n    userIdentity.type: Root\n    awsRegion: ap-south-{v}\n  condition: 1 of them\n"
            ),
        ];
        for (i, t) in texts.iter().enumerate() {
            set.add_text(Path::new(&format!("bench-{v}-{i}.yml")), t);
        }
    }
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(set.rules.len(), 60);
    set.fingerprint = "bench".into();
    set
}

fn event(rng: &mut StdRng, i: u64, nkeys: usize, t0: i64) -> Event {
    let key = format!("AKIABENCH{:08}", rng.random_range(0..nkeys));
    let (src, name) = NAMES[rng.random_range(0..NAMES.len())];
    let denied = rng.random_bool(0.03);
    let v = rng.random_range(0..10);
    let ip = format!(
        "10.{}.{}.{}",
        v,
        rng.random_range(0..255),
        rng.random_range(1..255)
    );
    let raw = serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDABENCH",
            "arn": format!("arn:aws:iam::111122223333:user/svc-{v}"),
            "accountId": "111122223333",
            "accessKeyId": key,
            "userName": format!("svc-{v}")
        },
        "eventTime": "2026-10-01T00:00:00Z",
        "eventSource": src,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": format!("tool-{v}/1.{} (linux)", rng.random_range(0..9)),
        "errorCode": if denied { Some("AccessDenied") } else { None },
        "requestParameters": {"bucketName": format!("data-{v}{}", rng.random_range(0..100))},
        "responseElements": null,
        "requestID": format!("{:032x}", i),
        "eventID": format!("ev-{i}"),
        "readOnly": true,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    });
    Event {
        provider: "trail".into(),
        id: format!("ev-{i}"),
        time: keyaudit::model::from_millis(t0 + i as i64 * 2_000),
        key_id: key,
        principal: None,
        action: name.into(),
        scope: None,
        source_ip: Some(ip),
        user_agent: None,
        outcome: if denied {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        status_code: None,
        request_id: None,
        records: None,
        raw: Some(raw.to_string()),
    }
}

fn fill(store: &mut Store, rng: &mut StdRng, from: u64, n: u64, nkeys: usize, t0: i64) {
    let mut at = from;
    while at < from + n {
        let m = 10_000.min(from + n - at);
        let batch: Vec<Event> = (at..at + m).map(|i| event(rng, i, nkeys, t0)).collect();
        store.insert_events("trail", &batch, None).unwrap();
        at += m;
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(1_000_000);
    let nkeys = args.get(1).copied().unwrap_or(500) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("cache.db")).unwrap();
    store.ensure_provider("trail", "import", None).unwrap();
    let keys: Vec<Key> = (0..nkeys)
        .map(|i| Key::seen_in_logs("trail", &format!("AKIABENCH{i:08}")))
        .collect();
    store.upsert_keys("trail", &keys, Utc::now()).unwrap();
    let t0 = Utc
        .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let mut rng = StdRng::seed_from_u64(17);
    let filled = Instant::now();
    fill(&mut store, &mut rng, 0, total, nkeys, t0);
    println!(
        "filled {total} events of {nkeys} keys in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let set = rules();
    let cfg = SigmaConfig::default();
    let now = Utc::now() + Duration::days(1);
    let full = sigma::run(&mut store, &set, &cfg, now).unwrap();
    println!(
        "full: {} rules over {} events in {:.0} ms ({:.0} events/s); {} matches, {} findings",
        full.rules,
        full.events,
        full.elapsed_ms,
        full.events as f64 / (full.elapsed_ms / 1000.0),
        full.matches,
        full.opened
    );
    fill(&mut store, &mut rng, total, 10_000, nkeys, t0);
    let inc = sigma::run(&mut store, &set, &cfg, now).unwrap();
    println!(
        "incremental: {} new events in {:.1} ms; {} matches, {} new and {} updated findings",
        inc.events, inc.elapsed_ms, inc.matches, inc.opened, inc.updated
    );
    assert_eq!(inc.events, 10_000);
    assert!(!inc.full);
}
