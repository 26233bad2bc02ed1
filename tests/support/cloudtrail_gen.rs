//! An independent scenario generator: AWS CloudTrail log files for an account's IAM
//! access keys, written from AWS's description of the CloudTrail record (the
//! `userIdentity` element with `type`, `principalId`, `arn`, `accountId`, `accessKeyId`,
//! `userName` or `sessionContext`; `eventTime`, `eventSource`, `eventName`, `awsRegion`,
//! `sourceIPAddress`, `userAgent`, `errorCode`/`errorMessage`, `requestID`, `eventID`,
//! `readOnly`, `eventType`, `managementEvent`, `recipientAccountId`, `eventCategory`),
//! not from the demo provider's code.
//!
//! Principals: IAM users of people with working hours, weekends off and a home and an
//! office network; IAM users of services running around the clock; cron jobs on a fixed
//! period; CI runners with bursty builds; temporary role sessions (`ASIA…`) that last
//! hours; keys rotated mid-scenario (the old key deactivated). Anomalies of the demo's
//! eight kinds plus `schedule_break` are injected with a random strength, each labelled
//! (key, kind). Files are `{"Records": [...]}` documents, one per day, as CloudTrail
//! delivers them to S3.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

const ACCOUNT: &str = "210987654321";
const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Every anomaly kind the generator injects.
pub const KINDS: &[&str] = &[
    "new_network",
    "denied_burst",
    "off_hours",
    "volume_spike",
    "bulk_export",
    "dormant_wakeup",
    "concurrent_networks",
    "revoked_use",
    "schedule_break",
];

/// What one scenario is: where its files are, its labels, and keys the account's IAM
/// listing reports as inactive (rotated out), with the time they were deactivated.
pub struct Scenario {
    pub labels: BTreeSet<(String, String)>,
    pub inactive: Vec<(String, DateTime<Utc>)>,
    pub keys: usize,
    pub days: u32,
    pub events: usize,
    /// Sum over keys of the days between their first and last event (at least 1).
    pub key_days: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Profile {
    Human,
    Service,
    Cron,
    Ci,
    Legacy,
}

struct Principal {
    profile: Profile,
    user: String,
    key: String,
    /// Networks it normally uses (first three octets).
    nets: Vec<[u8; 3]>,
    agent: String,
    services: Vec<(&'static str, &'static [&'static str])>,
    /// Human: start hour (UTC) and hours per day.
    start_hour: i64,
    hours: i64,
    /// Service: requests per hour; cron: period (s) and calls per run.
    rate: f64,
    period: i64,
    calls: usize,
    /// Active from..until (seconds since the scenario start).
    from: i64,
    until: i64,
    role: bool,
}

struct Gen {
    rng: StdRng,
    t0: i64,
    records: Vec<(i64, Value)>,
}

const READS: &[(&str, &[&str])] = &[
    (
        "s3.amazonaws.com",
        &["ListBuckets", "GetBucketLocation", "ListObjects"],
    ),
    (
        "ec2.amazonaws.com",
        &[
            "DescribeInstances",
            "DescribeSecurityGroups",
            "DescribeVpcs",
        ],
    ),
    (
        "cloudformation.amazonaws.com",
        &["DescribeStacks", "ListStacks"],
    ),
    (
        "logs.amazonaws.com",
        &["DescribeLogGroups", "FilterLogEvents"],
    ),
];
const QUEUE: &[(&str, &[&str])] = &[
    (
        "sqs.amazonaws.com",
        &["ReceiveMessage", "DeleteMessage", "SendMessage"],
    ),
    ("dynamodb.amazonaws.com", &["GetItem", "PutItem", "Query"]),
];
const BACKUP: &[(&str, &[&str])] = &[("s3.amazonaws.com", &["PutObject", "ListObjects"])];
const BUILD: &[(&str, &[&str])] = &[
    (
        "ecr.amazonaws.com",
        &["GetAuthorizationToken", "BatchGetImage", "PutImage"],
    ),
    ("s3.amazonaws.com", &["PutObject", "GetObject"]),
    (
        "cloudformation.amazonaws.com",
        &["DescribeStacks", "UpdateStack"],
    ),
    (
        "lambda.amazonaws.com",
        &["UpdateFunctionCode", "GetFunction"],
    ),
];
/// Services a probing attacker tries.
const PROBE: &[(&str, &str, &str)] = &[
    ("iam.amazonaws.com", "ListUsers", "AccessDenied"),
    ("iam.amazonaws.com", "CreateAccessKey", "AccessDenied"),
    (
        "secretsmanager.amazonaws.com",
        "ListSecrets",
        "AccessDeniedException",
    ),
    ("kms.amazonaws.com", "ListKeys", "AccessDeniedException"),
    (
        "ec2.amazonaws.com",
        "RunInstances",
        "Client.UnauthorizedOperation",
    ),
    (
        "organizations.amazonaws.com",
        "ListAccounts",
        "AccessDeniedException",
    ),
];

impl Gen {
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.rng.random_range(0..16)]))
            .collect()
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }

    fn key_id(&mut self, temporary: bool) -> String {
        let tail: String = (0..16)
            .map(|_| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[self.rng.random_range(0..32)]))
            .collect();
        format!("{}{tail}", if temporary { "ASIA" } else { "AKIA" })
    }

    /// One record of `p` at `t` (seconds since the scenario start).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        p: &Principal,
        t: i64,
        net: [u8; 3],
        source: &str,
        name: &str,
        error: Option<&str>,
    ) {
        let time = Utc.timestamp_opt(self.t0 + t, 0).unwrap();
        let ip = format!(
            "{}.{}.{}.{}",
            net[0],
            net[1],
            net[2],
            self.rng.random_range(2..250)
        );
        let identity = if p.role {
            json!({
                "type": "AssumedRole",
                "principalId": format!("AROA{}:{}", &p.key[4..], p.user),
                "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{}/{}", p.user, "session"),
                "accountId": ACCOUNT,
                "accessKeyId": p.key,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": format!("AROA{}", &p.key[4..]),
                        "arn": format!("arn:aws:iam::{ACCOUNT}:role/{}", p.user),
                        "accountId": ACCOUNT,
                        "userName": p.user
                    },
                    "attributes": {"creationDate": time.to_rfc3339(), "mfaAuthenticated": "false"}
                }
            })
        } else {
            json!({
                "type": "IAMUser",
                "principalId": format!("AIDA{}", &p.key[4..]),
                "arn": format!("arn:aws:iam::{ACCOUNT}:user/{}", p.user),
                "accountId": ACCOUNT,
                "accessKeyId": p.key,
                "userName": p.user
            })
        };
        let read = name.starts_with("Describe")
            || name.starts_with("List")
            || name.starts_with("Get")
            || name == "ReceiveMessage"
            || name == "Query";
        let mut r = json!({
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "eventSource": source,
            "eventName": name,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": ip,
            "userAgent": p.agent,
            "requestParameters": null,
            "responseElements": null,
            "requestID": self.uuid(),
            "eventID": self.uuid(),
            "readOnly": read,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        });
        if let Some(code) = error {
            r["errorCode"] = json!(code);
            r["errorMessage"] = json!(format!(
                "User: arn:aws:iam::{ACCOUNT}:user/{} is not authorized to perform: {}:{name}",
                p.user,
                source.trim_end_matches(".amazonaws.com")
            ));
        }
        self.records.push((t, r));
    }

    fn call(&mut self, p: &Principal, t: i64, net: [u8; 3]) {
        let (src, names) = p.services[self.rng.random_range(0..p.services.len())];
        let name = names[self.rng.random_range(0..names.len())];
        // Ordinary work sees an occasional refusal on a service it uses.
        let error = if self.rng.random_bool(0.01) {
            Some("AccessDenied")
        } else if self.rng.random_bool(0.003) {
            Some("ThrottlingException")
        } else {
            None
        };
        self.record(p, t, net, src, name, error);
    }

    fn net_of(&mut self, p: &Principal) -> [u8; 3] {
        p.nets[self.rng.random_range(0..p.nets.len())]
    }

    /// The normal traffic of `p` over `days`.
    fn normal(&mut self, p: &Principal, days: i64) {
        match p.profile {
            Profile::Human | Profile::Legacy => {
                for d in 0..days {
                    let day = d * DAY;
                    if day < p.from || day >= p.until {
                        continue;
                    }
                    let weekday = (d + 1).rem_euclid(7); // day 0 is a Tuesday
                    if weekday >= 5 {
                        continue;
                    }
                    if self.rng.random_bool(0.08) {
                        continue; // a day off
                    }
                    // One network a day: office or home.
                    let net = self.net_of(p);
                    let start = p.start_hour * HOUR + self.rng.random_range(-30..30) * MIN;
                    let sessions = self.rng.random_range(2..6);
                    for _ in 0..sessions {
                        let at = start + self.rng.random_range(0..p.hours * HOUR - HOUR);
                        let n = self.rng.random_range(3..25);
                        let mut t = day + at;
                        for _ in 0..n {
                            t += self.rng.random_range(5..120);
                            self.call(p, t, net);
                        }
                    }
                }
            }
            Profile::Service => {
                let mut t = p.from;
                while t < p.until.min(days * DAY) {
                    t += (-(3600.0 / p.rate) * (1.0 - self.rng.random::<f64>()).ln()) as i64 + 1;
                    let net = self.net_of(p);
                    self.call(p, t, net);
                }
            }
            Profile::Cron => {
                let phase = self.rng.random_range(0..p.period);
                let mut t = p.from + phase;
                let net = p.nets[0];
                while t < p.until.min(days * DAY) {
                    let mut at = t + self.rng.random_range(0..20);
                    for _ in 0..p.calls {
                        at += self.rng.random_range(1..6);
                        self.call(p, at, net);
                    }
                    t += p.period;
                }
            }
            Profile::Ci => {
                for d in 0..days {
                    let day = d * DAY;
                    if day < p.from || day >= p.until {
                        continue;
                    }
                    let weekday = (d + 1).rem_euclid(7);
                    let builds = if weekday >= 5 {
                        self.rng.random_range(0..2)
                    } else {
                        self.rng.random_range(3..12)
                    };
                    let net = p.nets[0];
                    for _ in 0..builds {
                        let mut t = day + self.rng.random_range(6 * HOUR..20 * HOUR);
                        for _ in 0..self.rng.random_range(10..40) {
                            t += self.rng.random_range(1..15);
                            self.call(p, t, net);
                        }
                    }
                }
            }
        }
    }
}

fn principal(g: &mut Gen, i: usize, profile: Profile, days: i64) -> Principal {
    let r = &mut g.rng;
    let office = [
        10 + (i % 40) as u8,
        r.random_range(0..255),
        r.random_range(0..255),
    ];
    let home = [
        80 + r.random_range(0..40),
        r.random_range(0..255),
        r.random_range(0..255),
    ];
    let vpc = [52, r.random_range(0..255), r.random_range(0..255)];
    let (user, nets, agent, services) = match profile {
        Profile::Human | Profile::Legacy => (
            format!("person-{i}"),
            vec![office, home],
            format!(
                "aws-cli/2.{}.{} Python/3.11.6 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off",
                r.random_range(13..16),
                r.random_range(0..30)
            ),
            READS.to_vec(),
        ),
        Profile::Service => (
            format!("svc-worker-{i}"),
            vec![vpc],
            "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64".into(),
            QUEUE.to_vec(),
        ),
        Profile::Cron => (
            format!("job-backup-{i}"),
            vec![vpc],
            "Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#5.10.205 lang/python#3.11.6".into(),
            BACKUP.to_vec(),
        ),
        Profile::Ci => (
            format!("ci-runner-{i}"),
            vec![[34, r.random_range(0..255), r.random_range(0..255)]],
            "aws-cli/2.15.10 Python/3.11.6 Linux/5.15.0 exe/x86_64.ubuntu.22 command/ecr.get-login-password".into(),
            BUILD.to_vec(),
        ),
    };
    let period = [15, 20, 30, 60][r.random_range(0..4)] * MIN;
    let start_hour = r.random_range(6..11);
    let rate = r.random_range(1.0..6.0);
    let calls = r.random_range(2..5);
    let hours = r.random_range(8..11);
    let key = g.key_id(false);
    Principal {
        profile,
        user,
        key,
        nets,
        agent,
        services,
        start_hour,
        hours,
        rate,
        period,
        calls,
        from: 0,
        until: days * DAY,
        role: false,
    }
}

/// Writes the scenario of `seed` (`keys` principals over `days` days ending at `end`)
/// into `dir`; with `anomalies` false, only normal traffic.
pub fn generate(
    dir: &Path,
    seed: u64,
    keys: usize,
    days: u32,
    end: DateTime<Utc>,
    anomalies: bool,
) -> Scenario {
    let days_i = days as i64;
    let t0 = (end - Duration::days(days_i)).timestamp();
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed ^ 0x000c_100d_7a11),
        t0,
        records: Vec::new(),
    };
    let mut labels = BTreeSet::new();
    let mut inactive = Vec::new();
    let mut key_count = 0usize;
    let mix = [
        Profile::Human,
        Profile::Service,
        Profile::Cron,
        Profile::Human,
        Profile::Ci,
        Profile::Service,
        Profile::Human,
        Profile::Cron,
        Profile::Legacy,
    ];
    // The kinds each profile can carry.
    let fits = |k: &str, p: Profile, rotates: bool| match k {
        "off_hours" | "concurrent_networks" => p == Profile::Human,
        "revoked_use" => rotates,
        "schedule_break" => p == Profile::Cron,
        "dormant_wakeup" => p == Profile::Legacy,
        "volume_spike" | "bulk_export" => p != Profile::Legacy,
        _ => p != Profile::Legacy,
    };
    let mut queue: Vec<&str> = Vec::new();
    for i in 0..keys {
        let profile = mix[i % mix.len()];
        let mut p = principal(&mut g, i, profile, days_i);
        if profile == Profile::Legacy {
            // Used in the first week, then silent.
            p.until = g.rng.random_range(5..9) * DAY;
        }
        // Every fourth human or service rotates its key mid-scenario.
        let rotates = matches!(profile, Profile::Human | Profile::Service) && i % 4 == 0;
        let mut successor = None;
        if rotates {
            let at = g.rng.random_range(8..14) * DAY;
            let mut next = principal(&mut g, i, profile, days_i);
            next.user = p.user.clone();
            next.nets = p.nets.clone();
            next.agent = p.agent.clone();
            next.start_hour = p.start_hour;
            next.hours = p.hours;
            next.rate = p.rate;
            next.from = at;
            p.until = at;
            inactive.push((p.key.clone(), Utc.timestamp_opt(t0 + at + HOUR, 0).unwrap()));
            successor = Some(next);
        }
        g.normal(&p, days_i);
        key_count += 1;
        if let Some(n) = &successor {
            g.normal(n, days_i);
            key_count += 1;
        }
        if !anomalies {
            continue;
        }
        // Roughly half of the principals carry one anomaly, the kinds in turn.
        if i % 2 == 1 && profile != Profile::Legacy && profile != Profile::Cron {
            continue;
        }
        if queue.is_empty() {
            queue = KINDS.iter().rev().copied().collect();
        }
        let Some(pos) = queue.iter().rposition(|k| fits(k, profile, rotates)) else {
            continue;
        };
        let kind = queue.remove(pos);
        // The anomaly goes to the key in use late in the scenario.
        let target = match (&successor, kind) {
            (Some(_), "revoked_use") => &p,
            (Some(n), _) => n,
            (None, _) => &p,
        };
        inject(&mut g, target, kind, days_i);
        labels.insert((target.key.clone(), kind.to_string()));
        if profile == Profile::Cron && matches!(kind, "volume_spike" | "bulk_export") {
            // Injected calls land between the job's slots: they break the schedule too.
            labels.insert((target.key.clone(), "schedule_break".to_string()));
        }
    }
    // Temporary role sessions of a Lambda function: a new key every few hours.
    let mut t = 0;
    let mut n = 0;
    while t < days_i * DAY {
        let len = g.rng.random_range(1..12) * HOUR;
        let mut p = principal(&mut g, 1000 + n, Profile::Service, days_i);
        p.key = g.key_id(true);
        p.user = "lambda-ingest".into();
        p.role = true;
        p.from = t;
        p.until = t + len;
        p.rate = 6.0;
        g.normal(&p, days_i);
        t += len;
        n += 1;
        key_count += 1;
    }
    let events = g.records.len();
    let mut span: std::collections::HashMap<String, (i64, i64)> = Default::default();
    for (t, r) in &g.records {
        let k = r["userIdentity"]["accessKeyId"]
            .as_str()
            .unwrap()
            .to_string();
        let e = span.entry(k).or_insert((*t, *t));
        e.0 = e.0.min(*t);
        e.1 = e.1.max(*t);
    }
    let key_days = span
        .values()
        .map(|(a, b)| ((b - a) as f64 / DAY as f64).max(1.0))
        .sum();
    write_days(dir, &mut g, days_i);
    Scenario {
        labels,
        inactive,
        keys: key_count,
        days,
        events,
        key_days,
    }
}

/// Injects one anomaly of `kind` into `p`'s traffic, with a random strength.
fn inject(g: &mut Gen, p: &Principal, kind: &str, days: i64) {
    // A weekday, well after the key's baseline formed.
    let mut d = g.rng.random_range(14.max(p.from / DAY + 12)..days - 1);
    while (d + 1).rem_euclid(7) >= 5 {
        d -= 1;
    }
    let day = d * DAY;
    let work = day + p.start_hour * HOUR + g.rng.random_range(1..4) * HOUR;
    let known = p.nets[0];
    match kind {
        "new_network" => {
            let net = [185, g.rng.random_range(0..255), g.rng.random_range(0..255)];
            let mut t = work;
            for _ in 0..g.rng.random_range(3..30) {
                t += g.rng.random_range(5..90);
                let (s, n) = [
                    ("sts.amazonaws.com", "GetCallerIdentity"),
                    ("s3.amazonaws.com", "ListBuckets"),
                    ("iam.amazonaws.com", "ListUsers"),
                ][g.rng.random_range(0..3)];
                g.record(p, t, net, s, n, None);
            }
        }
        "denied_burst" => {
            let mut t = work;
            for _ in 0..g.rng.random_range(6..40) {
                t += g.rng.random_range(2..60);
                let (s, n, code) = PROBE[g.rng.random_range(0..PROBE.len())];
                g.record(p, t, known, s, n, Some(code));
            }
        }
        "off_hours" => {
            let hour = (p.start_hour + p.hours + 5 + g.rng.random_range(0..4)) % 24;
            let mut t = day + hour * HOUR + g.rng.random_range(0..20) * MIN;
            for _ in 0..g.rng.random_range(4..25) {
                t += g.rng.random_range(5..100);
                g.call(p, t, known);
            }
        }
        "volume_spike" | "bulk_export" => {
            // Hundreds of reads in one hour: a scrape, or a copy of a bucket's objects.
            let usual = match p.profile {
                Profile::Human | Profile::Legacy => 30.0,
                Profile::Service => p.rate,
                Profile::Cron => p.calls as f64 * 3600.0 / p.period as f64,
                Profile::Ci => 60.0,
            };
            let n = (usual * g.rng.random_range(6.0..20.0)).max(150.0) as i64;
            let t = work;
            for j in 0..n {
                let at = t + j * (HOUR - 60) / n;
                if kind == "bulk_export" {
                    g.record(p, at, known, "s3.amazonaws.com", "GetObject", None);
                } else {
                    g.call(p, at, known);
                }
            }
        }
        "dormant_wakeup" => {
            let day = (days - g.rng.random_range(2..5)) * DAY;
            let mut t = day + 11 * HOUR;
            for _ in 0..g.rng.random_range(2..20) {
                t += g.rng.random_range(5..200);
                g.call(p, t, known);
            }
        }
        "concurrent_networks" => {
            let mut t = work;
            let n = g.rng.random_range(8..30);
            for j in 0..n {
                t += g.rng.random_range(20..150);
                g.call(p, t, p.nets[j % 2]);
            }
        }
        "revoked_use" => {
            let mut t = p.until.min(20 * DAY) + g.rng.random_range(2..6) * DAY + 10 * HOUR;
            for _ in 0..g.rng.random_range(2..15) {
                t += g.rng.random_range(30..600);
                g.record(
                    p,
                    t,
                    known,
                    "sts.amazonaws.com",
                    "GetCallerIdentity",
                    Some("InvalidClientTokenId"),
                );
            }
        }
        "schedule_break" => {
            // A run between two slots, and the next few: someone else runs the job.
            let mut t = work + p.period / 2 + 7;
            for _ in 0..g.rng.random_range(1..4) {
                for _ in 0..g.rng.random_range(3..10) {
                    t += g.rng.random_range(1..6);
                    g.call(p, t, known);
                }
                t += p.period + 7 * MIN;
            }
        }
        _ => unreachable!("unknown kind {kind}"),
    }
}

/// Sorts the records by time and writes one `{"Records": [...]}` file per day.
fn write_days(dir: &Path, g: &mut Gen, days: i64) {
    g.records.sort_by_key(|(t, _)| *t);
    let mut per_day: Vec<Vec<Value>> = (0..=days).map(|_| Vec::new()).collect();
    for (t, r) in g.records.drain(..) {
        let d = (t / DAY).clamp(0, days) as usize;
        per_day[d].push(r);
    }
    for (d, records) in per_day.into_iter().enumerate() {
        if records.is_empty() {
            continue;
        }
        let name = format!("{ACCOUNT}_CloudTrail_eu-west-1_day{d:02}.json");
        let body = serde_json::to_vec(&json!({ "Records": records })).unwrap();
        std::fs::write(dir.join(name), body).unwrap();
    }
}
