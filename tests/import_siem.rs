//! CloudTrail records exported through a SIEM (Elastic Common Schema, Datadog, Splunk),
//! from fixtures written after each vendor's documentation (tests/fixtures/siem): each
//! shape is recognised, keeps the source IP and user agent, and dedupes against the
//! plain CloudTrail file; `--map` and the missing-field warning.

#[path = "import_support/mod.rs"]
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/siem")
        .join(name)
}

/// `keyaudit events --format json` as JSON values.
fn events(sb: &Sandbox) -> Vec<Value> {
    let (code, out, err) = sb.run(&["events", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn by_id<'a>(evs: &'a [Value], id: &str) -> &'a Value {
    evs.iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no event {id} in {evs:?}"))
}

const ID: &str = "8c0e3a52-6d1e-4c4b-9f0e-5e1a0000000";

#[test]
fn each_siem_shape_keeps_source_ip_and_user_agent() {
    let cases = [
        (
            "elastic-cloudtrail.ndjson",
            "ecs",
            "Elastic Common Schema with AWS CloudTrail fields",
        ),
        (
            "elastic-dotted.ndjson",
            "ecs",
            "Elastic Common Schema with AWS CloudTrail fields",
        ),
        ("datadog-archive.json", "datadog", "Datadog CloudTrail logs"),
        ("datadog-api.json", "datadog", "Datadog CloudTrail logs"),
        ("splunk-export.json", "splunk", "Splunk search results"),
        ("splunk-results.json", "splunk", "Splunk search results"),
    ];
    for (name, format, why) in cases {
        let sb = Sandbox::new();
        let (code, _, err) = sb.import(&[&fixture(name)], &[]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            err.contains(&format!(": {format} (auto-detected: {why}")),
            "{name}: {err}"
        );
        assert!(
            err.contains("-> source `cloudtrail`: 3 records, 3 imported, 0 duplicates, 0 skipped"),
            "{name}: {err}"
        );
        assert!(!err.contains("missing in"), "{name}: {err}");
        let evs = events(&sb);
        assert_eq!(evs.len(), 3, "{name}");
        let get = by_id(&evs, &format!("{ID}1"));
        assert_eq!(get["source_ip"], "198.51.100.23", "{name}");
        assert_eq!(get["user_agent"], "aws-sdk-go/1.44.0", "{name}");
        assert_eq!(get["key_id"], "AKIAIOSFODNN7EXAMPLE", "{name}");
        assert_eq!(get["action"], "s3.amazonaws.com:GetObject", "{name}");
        let denied = by_id(&evs, &format!("{ID}2"));
        assert_eq!(denied["outcome"], "denied", "{name}");
        assert_eq!(denied["source_ip"], "203.0.113.77", "{name}");
        assert_eq!(
            denied["user_agent"], "aws-cli/2.15.30 Python/3.11.8",
            "{name}"
        );
        assert_eq!(
            denied["principal"], "arn:aws:iam::111122223333:user/payroll-sync",
            "{name}"
        );
        let login = by_id(&evs, &format!("{ID}3"));
        assert_eq!(login["source_ip"], "192.0.2.10", "{name}");
        assert!(
            login["user_agent"]
                .as_str()
                .unwrap()
                .starts_with("Mozilla/5.0"),
            "{name}"
        );
        assert_eq!(
            login["action"], "signin.amazonaws.com:ConsoleLogin",
            "{name}"
        );
    }
}

#[test]
fn siem_exports_dedupe_against_the_plain_cloudtrail_file() {
    let sb = Sandbox::new();
    let (code, _, err) = sb.import(&[&fixture("cloudtrail-plain.json")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 imported, 0 duplicates"), "{err}");
    let plain = events(&sb);
    for name in [
        "splunk-export.json",
        "splunk-results.json",
        "elastic-cloudtrail.ndjson",
        "elastic-dotted.ndjson",
        "datadog-archive.json",
        "datadog-api.json",
    ] {
        let (code, _, err) = sb.import(&[&fixture(name)], &[]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            err.contains("3 records, 0 imported, 3 duplicates, 0 skipped"),
            "{name}: {err}"
        );
        assert_eq!(sb.count(), 3, "{name}");
    }
    // Splunk's `_raw` is the original record: the event (and its raw record) is the
    // plain import's, field for field.
    let sb2 = Sandbox::new();
    assert_eq!(sb2.import(&[&fixture("splunk-export.json")], &[]).0, 0);
    let mut a = plain.clone();
    let mut b = events(&sb2);
    a.sort_by_key(|e| e["id"].to_string());
    b.sort_by_key(|e| e["id"].to_string());
    assert_eq!(a, b);
    let raw = |db: &Path| -> Vec<String> {
        let s = keyaudit::store::Store::open_read_only(db).unwrap();
        let mut v: Vec<String> = s
            .events(&Default::default())
            .unwrap()
            .into_iter()
            .filter_map(|r| r.event.raw)
            .collect();
        v.sort();
        v
    };
    assert_eq!(raw(&sb.db()), raw(&sb2.db()));
    assert_eq!(raw(&sb.db()).len(), 3);
}

/// CloudTrail lines whose source IP a pipeline moved elsewhere.
fn moved_ip_lines(n: u64, place: impl Fn(u64) -> String) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u{k}","accessKeyId":"AKIAIOSFODNN7EXAMPLE"}},"eventTime":"2024-03-01T10:{m:02}:{s:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userAgent":"aws-cli/2",{place},"requestID":"r{i}","eventID":"ev-{i:08}"}}"#,
                k = i % 7,
                m = (i / 60) % 60,
                s = i % 60,
                place = place(i)
            ) + "\n"
        })
        .collect()
}

#[test]
fn a_field_missing_from_every_record_is_reported_and_map_fixes_it() {
    let lines = moved_ip_lines(1204, |i| {
        format!(r#""client":{{"addr":"198.51.100.{}"}}"#, i % 250)
    });
    let sb = Sandbox::new();
    let x = sb.write("x.json", lines.as_bytes());
    let (code, _, err) = sb.import(&[&x], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "source IP missing in all 1,204 records of x.json: map it with --map source_ip=client.addr"
        ),
        "{err}"
    );
    assert!(!err.contains("user agent missing"), "{err}");
    assert!(events(&sb).iter().all(|e| e["source_ip"].is_null()));

    let sb = Sandbox::new();
    let x = sb.write("x.json", lines.as_bytes());
    let (code, _, err) = sb.import(&[&x], &["--map", "source_ip=client.addr"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("missing in"), "{err}");
    assert!(err.contains("1204 imported"), "{err}");
    let evs = events(&sb);
    assert_eq!(by_id(&evs, "ev-00000003")["source_ip"], "198.51.100.3");

    // A key holding dots: the suggestion escapes them, and --map takes them escaped.
    let lines = moved_ip_lines(3, |i| format!(r#""net.client.ip":"192.0.2.{i}""#));
    let sb = Sandbox::new();
    let y = sb.write("y.json", lines.as_bytes());
    let (_, _, err) = sb.import(&[&y], &[]);
    assert!(
        err.contains(r"source IP missing in all 3 records of y.json: map it with --map source_ip=net\.client\.ip"),
        "{err}"
    );
    let sb = Sandbox::new();
    let y = sb.write("y.json", lines.as_bytes());
    let (code, _, err) = sb.import(&[&y], &["--map", r"source_ip=net\.client\.ip"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(by_id(&events(&sb), "ev-00000002")["source_ip"], "192.0.2.2");
}

#[test]
fn map_reaches_into_siem_records_and_their_raw_text() {
    let sb = Sandbox::new();
    let (code, _, err) = sb.import(
        &[&fixture("splunk-export.json")],
        &[
            "--map",
            "principal=result._raw.userIdentity.userName",
            "--map",
            "source_ip=result.host",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let evs = events(&sb);
    let get = by_id(&evs, &format!("{ID}1"));
    assert_eq!(get["principal"], "payroll-sync");
    assert_eq!(get["source_ip"], "splunk-hf-1");
    // Generic JSON lines: --map supplies the time and key id the guesses miss.
    let sb = Sandbox::new();
    let f = sb.write(
        "gw.jsonl",
        br#"{"when":{"at":"2024-03-01T10:00:00Z"},"cred":"key-7","peer":"192.0.2.44"}
"#,
    );
    let (code, _, err) = sb.import(
        &[&f],
        &[
            "--map",
            "time=when.at",
            "--map",
            "key_id=cred",
            "--map",
            "source_ip=peer",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 imported"), "{err}");
    let evs = events(&sb);
    assert_eq!(
        (evs[0]["key_id"].as_str(), evs[0]["source_ip"].as_str()),
        (Some("key-7"), Some("192.0.2.44"))
    );
}

#[test]
fn a_bad_map_is_a_usage_error_that_says_what_to_write() {
    let sb = Sandbox::new();
    let f = fixture("splunk-export.json");
    for (arg, want) in [
        ("src=a.b", "--map src=a.b: unknown field `src`; the fields are time, key_id, principal, action, scope, outcome, source_ip, user_agent"),
        ("source_ip=a..b", "--map source_ip=a..b: empty key between dots; write a key holding a dot as `a\\.b`"),
        ("source_ip", "--map source_ip: expected FIELD=PATH"),
        ("source_ip=", "the path is empty"),
    ] {
        let (code, _, err) = sb.import(&[&f], &["--map", arg]);
        assert_eq!(code, 2, "{arg}: {err}");
        assert!(err.contains(want), "{arg}: {err}");
    }
    assert!(!sb.db().exists(), "nothing imported on a usage error");
    let (_, out, _) = sb.run(&["import", "--help"]);
    assert!(
        out.contains("--map <FIELD=PATH>")
            && out.contains("source_ip")
            && out.contains("user_agent"),
        "{out}"
    );
}

#[test]
fn hostile_text_in_siem_fields_stays_neutralised() {
    let sb = Sandbox::new();
    let line = serde_json::json!({
        "_id": "AQAAAhostile", "date": "2024-03-01T10:00:00.000Z", "source": "cloudtrail",
        "attributes": {
            "eventSource": "s3.amazonaws.com", "eventID": "ev-hostile",
            "userIdentity": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "arn": "arn:aws:iam::1:user/\u{1b}[31mred"},
            "evt": {"name": "GetObject\u{1b}]52;c;cGF5bG9hZA==\u{7}", "outcome": "success"},
            "network": {"client": {"ip": "198.51.100.9\u{1b}[2J"}},
            "http": {"useragent": "curl/8\u{1b}[1A\r\u{9b}31m"}
        }
    });
    // Records that give no source IP, in a file whose name holds an escape sequence.
    let name = "evil\u{1b}[2J.json";
    let f = sb.write(name, format!("{line}\n").as_bytes());
    let missing = sb.write(
        "dir/mis\u{1b}]0;t\u{7}sing.json",
        moved_ip_lines(2, |_| r#""x":1"#.into()).as_bytes(),
    );
    let (code, out, err) = sb.import(&[&f, &missing], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("source IP missing in all 2 records of mis"),
        "{err}"
    );
    for text in [&out, &err] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{9b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
    let (code, table, _) = sb.run(&["events"]);
    assert_eq!(code, 0);
    let (_, json, _) = sb.run(&["events", "--format", "json"]);
    for text in [&table, &json] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{9b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
    assert!(table.contains("curl/8"), "{table}");
    // JSON keeps the exact value (escaped inertly).
    let evs: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        by_id(&evs, "ev-hostile")["user_agent"],
        "curl/8\u{1b}[1A\r\u{9b}31m"
    );
}
