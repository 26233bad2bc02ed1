//! A large CloudTrail export for `keyaudit open` (JSON lines, one event per line, as
//! CloudTrail Lake and most SIEM exports write them), written from AWS's description of
//! the CloudTrail record: IAM users' access keys calling S3, IAM, EC2 and DynamoDB from
//! a few networks, about 1 in 40 calls refused, and one burst of refusals that detection
//! reports.

#![allow(dead_code)]

use std::io::{BufWriter, Write};
use std::path::Path;

const SERVICES: &[(&str, &[&str])] = &[
    (
        "s3.amazonaws.com",
        &["GetObject", "PutObject", "ListBucket"],
    ),
    (
        "iam.amazonaws.com",
        &["ListUsers", "GetUser", "ListAccessKeys"],
    ),
    (
        "ec2.amazonaws.com",
        &["DescribeInstances", "DescribeVolumes"],
    ),
    ("dynamodb.amazonaws.com", &["Query", "PutItem", "Scan"]),
];
const AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8",
    "aws-sdk-go/1.44.0 (go1.21.5)",
    "Boto3/1.34.0 Python/3.11.8",
];

/// The access key id of key `k` (20 characters, `AKIA` and 16 more).
pub fn key_id(k: u64) -> String {
    format!("AKIAOPEN{k:012}")
}

/// Writes `events` records of `keys` keys to `path`, gzip-compressed when the name ends
/// in `.gz`; the first event is on 2024-05-01, one every 2 seconds. Returns the bytes
/// written.
pub fn write_export(path: &Path, events: u64, keys: u64) -> u64 {
    let file = std::fs::File::create(path).expect("create the export");
    let mut out: Box<dyn Write> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = 1_714_521_600i64; // 2024-05-01T00:00:00Z
    let mut line = String::with_capacity(1024);
    // Three quarters in, key 0 is refused 30 times in a minute on a service it never
    // used: a probe of what the key reaches (detection's `denied_burst`).
    let probe = events * 3 / 4..events * 3 / 4 + 30;
    for i in 0..events {
        let mut k = next() % keys.max(1);
        let (mut source, names) = SERVICES[(next() % SERVICES.len() as u64) as usize];
        let mut name = names[(next() % names.len() as u64) as usize];
        let agent = AGENTS[(k % AGENTS.len() as u64) as usize];
        let time = chrono::DateTime::from_timestamp(start + 2 * i as i64, 0)
            .expect("a valid time")
            .format("%Y-%m-%dT%H:%M:%SZ");
        let probing = probe.contains(&i);
        if probing {
            (k, source, name) = (0, "secretsmanager.amazonaws.com", "GetSecretValue");
        }
        let error = if probing || next() % 40 == 0 {
            r#","errorCode":"AccessDenied","errorMessage":"User is not authorized to perform this action""#
        } else {
            ""
        };
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(
            line,
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","principalId":"AIDAOPEN{k:012}","arn":"arn:aws:iam::210987654321:user/partner-{k:03}","accountId":"210987654321","accessKeyId":"{key}","userName":"partner-{k:03}"}},"eventTime":"{time}","eventSource":"{source}","eventName":"{name}","awsRegion":"eu-west-1","sourceIPAddress":"198.51.{net}.{host}","userAgent":"{agent}"{error},"requestID":"{req:016X}","eventID":"{a:08x}-{b:04x}-4{c:03x}-8{d:03x}-{i:012x}","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"210987654321"}}"#,
            key = key_id(k),
            net = 100 + k % 3,
            host = 10 + k % 50,
            req = next(),
            a = next() as u32,
            b = next() as u16,
            c = next() % 4096,
            d = next() % 4096,
        );
        line.push('\n');
        out.write_all(line.as_bytes()).expect("write the export");
    }
    out.flush().expect("flush the export");
    drop(out);
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
