//! Every supported format, plain and gzipped, from sample files written after each
//! format's public documentation; a CloudTrail S3 delivery tree; re-imports.

#[path = "import_support/mod.rs"]
mod support;

use keyaudit::model::{KeySource, Outcome};
use keyaudit::store::{EventQuery, Store};
use support::*;

fn events_of(db: &std::path::Path, provider: &str) -> Vec<keyaudit::model::Event> {
    let s = Store::open_read_only(db).unwrap();
    s.events(&EventQuery {
        provider: Some(provider.into()),
        ..Default::default()
    })
    .unwrap()
    .into_iter()
    .map(|r| r.event)
    .collect()
}

#[test]
fn every_format_plain_and_gzipped() {
    // (sample, detected format, events it holds)
    let cases = [
        ("cloudtrail-records.json", "cloudtrail", 4),
        ("cloudtrail-events.jsonl", "cloudtrail", 3),
        ("vault-audit.log", "vault", 3),
        ("github-audit.json", "github", 3),
        ("github-audit.csv", "github", 3),
        ("gitlab-audit-events.json", "gitlab", 3),
        ("gitlab-stream.jsonl", "gitlab", 2),
        ("gateway.csv", "csv", 3),
    ];
    for (name, format, n) in cases {
        for gz in [false, true] {
            let sb = Sandbox::new();
            let bytes = sample(name);
            let file = if gz {
                sb.write(&format!("{name}.gz"), &gzip(&bytes))
            } else {
                sb.write(name, &bytes)
            };
            let (code, _, err) = sb.import(&[&file], &[]);
            assert_eq!(code, 0, "{name} gz={gz}: {err}");
            assert!(
                err.contains(&format!(": {format} (auto-detected")),
                "{name}: {err}"
            );
            assert!(
                err.contains(&format!("{n} imported, 0 duplicates, 0 skipped")),
                "{name} gz={gz}: {err}"
            );
            assert_eq!(sb.count(), n as i64, "{name}");
            // Forcing the format gives the same result, and adds nothing the second time.
            let (code, _, err) = sb.import(&[&file], &["--format", format, "--source", format]);
            assert_eq!(code, 0, "{err}");
            assert_eq!(
                sb.count(),
                n as i64,
                "{name}: re-import added events: {err}"
            );
        }
    }
}

#[test]
fn fields_are_mapped_as_documented() {
    let sb = Sandbox::new();
    for name in [
        "cloudtrail-records.json",
        "vault-audit.log",
        "github-audit.json",
        "gitlab-audit-events.json",
    ] {
        let f = sb.write(name, &sample(name));
        assert_eq!(sb.import(&[&f], &[]).0, 0);
    }
    let ct = events_of(&sb.db(), "cloudtrail");
    let denied = ct
        .iter()
        .find(|e| e.id == "3b9a1c52-1c5e-4b8e-9d0e-000000000002")
        .unwrap();
    assert_eq!(denied.action, "iam.amazonaws.com:CreateUser");
    assert_eq!(denied.outcome, Outcome::Denied);
    assert_eq!(denied.key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(
        denied.principal.as_deref(),
        Some("arn:aws:iam::111122223333:user/payroll-sync")
    );
    assert_eq!(denied.source_ip.as_deref(), Some("203.0.113.77"));
    assert_eq!(
        denied.request_id.as_deref(),
        Some("a1b2c3d4-5678-90ab-cdef-EXAMPLE22222")
    );
    assert!(denied.raw.as_deref().unwrap().contains("CreateUser"));
    assert!(ct
        .iter()
        .any(|e| e.key_id == "no-key:cloudtrail.amazonaws.com"));

    let vault = events_of(&sb.db(), "vault");
    assert_eq!(vault.len(), 3, "request/response pairs are one event each");
    let v = vault
        .iter()
        .find(|e| e.action == "update sys/policies/acl/admin")
        .unwrap();
    assert_eq!(
        (v.outcome, v.key_id.as_str()),
        (Outcome::Denied, "hmac-sha256:5e3a8b1c2d4f6a7b")
    );
    let unanswered = vault
        .iter()
        .find(|e| e.action == "list secret/metadata/candidates")
        .unwrap();
    assert_eq!(unanswered.user_agent.as_deref(), Some("vault-agent/1.15.2"));

    let gh = events_of(&sb.db(), "github");
    let z = gh.iter().find(|e| e.action == "repo.download_zip").unwrap();
    assert_eq!(
        (z.key_id.as_str(), z.principal.as_deref()),
        ("token:314159", Some("ats-bot"))
    );
    assert_eq!(z.time.to_rfc3339(), "2024-03-03T10:00:00+00:00");
    assert!(gh.iter().any(|e| e.key_id == "web:alice"));

    let gl = events_of(&sb.db(), "gitlab");
    let failed = gl.iter().find(|e| e.id == "5003").unwrap();
    assert_eq!(
        (failed.outcome, failed.source_ip.as_deref()),
        (Outcome::Denied, Some("192.0.2.99"))
    );

    // Keys seen only in logs appear as such, under their source.
    let store = Store::open_read_only(&sb.db()).unwrap();
    let k = store
        .key("cloudtrail", "AKIAIOSFODNN7EXAMPLE")
        .unwrap()
        .unwrap();
    assert_eq!(k.key.source, KeySource::Logs);
    assert!(k.key.last_used.is_some());
}

#[test]
fn a_cloudtrail_delivery_tree_is_walked() {
    let sb = Sandbox::new();
    let records = String::from_utf8(sample("cloudtrail-records.json")).unwrap();
    let base = "AWSLogs/111122223333/CloudTrail";
    sb.write(
        &format!("{base}/us-east-1/2024/03/01/111122223333_CloudTrail_us-east-1_20240301T1005Z_Mu0KsOhtH1ar15ZZ.json.gz"),
        &gzip(records.as_bytes()),
    );
    // Another region and day, with other event ids.
    let other = records.replace("-00000000000", "-11111111111");
    sb.write(
        &format!("{base}/eu-west-1/2024/03/02/111122223333_CloudTrail_eu-west-1_20240302T0000Z_a1b2c3d4e5f6g7h8.json.gz"),
        &gzip(other.as_bytes()),
    );
    // Digest files are not logs and are left out.
    sb.write(
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/01/111122223333_CloudTrail-Digest_us-east-1_x.json.gz",
        &gzip(br#"{"awsAccountId":"111122223333","digestStartTime":"2024-03-01T09:00:00Z","logFiles":[]}"#),
    );
    let (code, _, err) = sb.import(&[&sb.path("AWSLogs")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("total: 2 files (0 failed), 8 records, 8 imported"),
        "{err}"
    );
    assert_eq!(sb.count(), 8);
    let (code, _, err) = sb.import(&[&sb.path("AWSLogs")], &[]);
    assert_eq!(code, 0);
    assert!(err.contains("already imported"), "{err}");
    assert_eq!(sb.count(), 8);
}

#[test]
fn generic_logs_use_the_configured_mapping() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.config(),
        "[import.mapping.gateway]\ntime = \"ts\"\nkey_id = \"client.key\"\nsource_ip = \"client.ip\"\nuser_agent = \"ua\"\naction = \"route\"\noutcome = \"http_status\"\nrequest_id = \"req\"\n",
    )
    .unwrap();
    let f = sb.write("gateway.jsonl", &sample("gateway.jsonl"));
    // Without a mapping the key id cannot be found; the message says how to fix it.
    let (code, _, err) = sb.import(&[&f], &["--source", "other"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("gateway.jsonl:1: no key id field") && err.contains("[import.mapping.NAME]"),
        "{err}"
    );
    // The mapping named like the source applies by itself.
    let (code, _, err) = sb.import(&[&f], &["--source", "gateway"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 imported"), "{err}");
    let evs = events_of(&sb.db(), "gateway");
    let denied = evs
        .iter()
        .find(|e| e.action == "GET /v1/employees/ssn")
        .unwrap();
    assert_eq!(denied.outcome, Outcome::Denied);
    assert_eq!(denied.key_id, "gw_key_01");
    assert_eq!(denied.request_id.as_deref(), Some("q-2"));
    assert!(evs.iter().any(|e| e.outcome == Outcome::Error));
}
