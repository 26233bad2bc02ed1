//! Key material in imported records never reaches the cache file.

#[path = "import_support/mod.rs"]
mod support;

use support::*;

#[test]
fn secrets_in_records_never_reach_the_cache_file() {
    let sb = Sandbox::new();
    let bearer = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.Zm9vYmFyYmF6cXV4";
    let live = "tg_live_7Hq2LmN4pR8sT1vW3xY5zA9bC";
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let api_key = "k3y-9f8e7d6c5b4a39281706";
    let line1 = format!(
        r#"{{"timestamp":"2024-03-05T07:00:00Z","key_id":"gw_key_09","action":"GET /v1/employees?api_key={api_key}","headers":{{"Authorization":"Bearer {bearer}","X-Api-Key":"{api_key}","Accept":"application/json"}},"note":"rotated from {live}","aws_secret_access_key":"{aws_secret}","password":"hunter2-payroll"}}"#
    );
    // A log that names keys by the secret itself: the key id becomes its fingerprint.
    let line2 =
        format!(r#"{{"timestamp":"2024-03-05T07:00:01Z","key_id":"{live}","action":"GET /v1/x"}}"#);
    let f = sb.write("gateway.jsonl", format!("{line1}\n{line2}\n").as_bytes());
    let (code, _, err) = sb.import(&[&f], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 imported"), "{err}");
    // Also through CloudTrail, where requestParameters may carry secrets.
    let ct = format!(
        r#"{{"eventTime":"2024-03-01T10:00:00Z","eventSource":"sts.amazonaws.com","eventName":"GetSessionToken","userIdentity":{{"accessKeyId":"AKIAREDACT0000000001"}},"requestParameters":{{"token":"{bearer}"}},"responseElements":{{"credentials":{{"secretAccessKey":"{aws_secret}","sessionToken":"FQoGZXIvYXdzEXAMPLE"}}}},"eventID":"redact-1"}}"#
    );
    let f2 = sb.write("ct.jsonl", format!("{ct}\n").as_bytes());
    assert_eq!(sb.import(&[&f2], &[]).0, 0);

    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", sb.db().display());
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    let store = keyaudit::store::Store::open_read_only(&sb.db()).unwrap();
    // Every event refers to a cached key and provider (the import writes them without
    // per-row foreign key checks).
    let dangling: i64 = rusqlite::Connection::open(sb.db())
        .unwrap()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0);
    let evs = store.events(&Default::default()).unwrap();
    // Raw records are stored compressed, so they are searched as read back too.
    let mut hay = String::from_utf8_lossy(&bytes).into_owned();
    let mut raws = 0;
    for r in &evs {
        hay.push_str(r.event.raw.as_deref().unwrap_or(""));
        raws += usize::from(r.event.raw.is_some());
    }
    assert_eq!(raws, 3, "every record is kept raw");
    for secret in [
        bearer,
        live,
        aws_secret,
        api_key,
        "hunter2-payroll",
        "FQoGZXIvYXdzEXAMPLE",
    ] {
        assert!(!hay.contains(secret), "`{secret}` reached the cache file");
    }
    let e = evs.iter().find(|r| r.event.key_id == "gw_key_09").unwrap();
    let raw = e.event.raw.as_deref().unwrap();
    assert!(raw.contains(r#""Authorization":"[REDACTED]""#), "{raw}");
    assert!(raw.contains(r#""Accept":"application/json""#), "{raw}");
    assert!(
        e.event
            .action
            .starts_with("GET /v1/employees?api_key=[REDACTED sha256:"),
        "{}",
        e.event.action
    );
    let by_secret = evs.iter().find(|r| r.event.action == "GET /v1/x").unwrap();
    assert_eq!(by_secret.event.key_id, keyaudit::secret::fingerprint(live));
    assert!(
        evs.iter().any(|r| r.event.key_id == "AKIAREDACT0000000001"),
        "access key ids are kept"
    );
}
