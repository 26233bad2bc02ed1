//! Malformed input: each file gets its documented message and exit code (run through
//! the real binary), and the cache stays intact with everything imported before.

#[path = "import_support/mod.rs"]
mod support;

use support::*;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    args: &'static [&'static str],
    code: i32,
    /// Substrings the output must contain.
    says: &'static [&'static str],
    /// Events the file adds.
    adds: i64,
}

fn lines(ls: &[String]) -> Vec<u8> {
    let mut s = ls.join("\n");
    s.push('\n');
    s.into_bytes()
}

fn good(i: u64) -> String {
    cloudtrail_line(i, "AKIAMALFORMED0000001")
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mut id = 1000;
    let mut next = || {
        id += 1;
        id
    };
    let (a, b, c) = (next(), next(), next());
    v.push(Case {
        name: "broken.jsonl",
        bytes: lines(&[
            good(a),
            good(b),
            r#"{"eventTime": "2024-03-01T10:00:00Z", "eventName" "x"}"#.into(),
            good(c),
        ]),
        args: &[],
        code: 0,
        says: &[
            "broken.jsonl:3: invalid JSON: expected `:` at column 51",
            "3 imported",
            "1 skipped",
        ],
        adds: 3,
    });
    let a = next();
    v.push(Case {
        name: "wrong-types.jsonl",
        bytes: lines(&[good(a), r#"{"eventTime": 1709287200, "eventName": "GetObject", "eventSource": "s3.amazonaws.com"}"#.into()]),
        args: &["--format", "cloudtrail"],
        code: 0,
        says: &["wrong-types.jsonl:2: eventTime: expected a string, found a number"],
        adds: 1,
    });
    v.push(Case {
        name: "missing-fields.jsonl",
        bytes: lines(&[r#"{"eventTime": "2024-03-01T10:00:00Z", "eventSource": "s3.amazonaws.com", "userIdentity": {}}"#.into()]),
        args: &["--format", "cloudtrail"],
        code: 0,
        says: &["missing-fields.jsonl:1: missing eventName"],
        adds: 0,
    });
    let a = next();
    let mut bad_utf8 = lines(&[good(a)]);
    bad_utf8.extend_from_slice(
        b"{\"eventTime\": \"2024-03-01T10:00:00Z\", \"eventName\": \"\xff\xfe\"}\n",
    );
    v.push(Case {
        name: "invalid-utf8.jsonl",
        bytes: bad_utf8,
        args: &["--format", "cloudtrail"],
        code: 0,
        says: &["invalid-utf8.jsonl:2: invalid UTF-8 at column 53"],
        adds: 1,
    });
    let a = next();
    let mut nul = lines(&[good(a)]);
    nul.extend_from_slice(b"{\"eventTime\": \"2024\0-03-01\"}\n");
    v.push(Case {
        name: "nul-bytes.jsonl",
        bytes: nul,
        args: &["--format", "cloudtrail"],
        code: 0,
        says: &["nul-bytes.jsonl:2: NUL byte at column 20"],
        adds: 1,
    });
    let (a, b) = (next(), next());
    let mut huge = lines(&[good(a)]);
    huge.extend_from_slice(b"{\"eventTime\": \"2024-03-01T10:00:00Z\", \"pad\": \"");
    huge.extend(std::iter::repeat_n(b'x', 10 << 20));
    huge.extend_from_slice(b"\"}\n");
    huge.extend(lines(&[good(b)]));
    v.push(Case {
        name: "huge-line.jsonl",
        bytes: huge,
        args: &["--format", "cloudtrail"],
        code: 0,
        says: &[
            "huge-line.jsonl:2: record too large (10.5 MB, limit 8 MiB)",
            "2 imported",
        ],
        adds: 2,
    });
    let ids: Vec<u64> = (0..200).map(|_| next()).collect();
    let full = gzip(&lines(&ids.iter().map(|&i| good(i)).collect::<Vec<_>>()));
    v.push(Case {
        name: "truncated.jsonl.gz",
        bytes: full[..full.len() * 2 / 3].to_vec(),
        args: &[],
        code: 1,
        says: &["truncated.jsonl.gz: FAILED: truncated or corrupt gzip data"],
        adds: -1, // some: whatever was before the damage
    });
    v.push(Case {
        name: "empty.jsonl",
        bytes: Vec::new(),
        args: &[],
        code: 0,
        says: &["empty.jsonl: empty file, nothing to import"],
        adds: 0,
    });
    v.push(Case {
        name: "blank.jsonl",
        bytes: b"\n \n\t\n".to_vec(),
        args: &[],
        code: 0,
        says: &["blank.jsonl: empty file"],
        adds: 0,
    });
    v.push(Case {
        name: "empty.json.gz",
        bytes: gzip(b""),
        args: &[],
        code: 0,
        says: &["empty.json.gz: empty file"],
        adds: 0,
    });
    v.push(Case {
        name: "columns.csv",
        bytes: b"timestamp,key_id,source_ip,user_agent,action,outcome\n2024-03-05 08:00:00,k-csv-1,192.0.2.1,ua,GET /a,success\n2024-03-05 08:00:01,k-csv-1,192.0.2.1\n2024-03-05 08:00:02,k-csv-1,192.0.2.1,ua,GET /b,success,extra\n".to_vec(),
        args: &[],
        code: 0,
        says: &["columns.csv:3: expected 6 fields (as in the header row), found 3", "columns.csv:4: expected 6 fields (as in the header row), found 7", "1 imported"],
        adds: 1,
    });
    let mut noise = Vec::with_capacity(20_000);
    let mut x: u32 = 12345;
    for _ in 0..20_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    v.push(Case {
        name: "binary.bin",
        bytes: noise.clone(),
        args: &[],
        code: 1,
        says: &["binary.bin: FAILED: binary file, not a text log"],
        adds: 0,
    });
    v.push(Case {
        name: "binary.gz",
        bytes: gzip(&noise),
        args: &[],
        code: 1,
        says: &["binary.gz: FAILED: binary file"],
        adds: 0,
    });
    let a = next();
    v.push(Case {
        name: "plain-named.json.gz",
        bytes: lines(&[good(a)]),
        args: &[],
        code: 0,
        says: &["1 imported"],
        adds: 1,
    });
    let mut corrupt = vec![0x1f, 0x8b, 0x08, 0x00];
    corrupt.extend_from_slice(&noise[..500]);
    v.push(Case {
        name: "corrupt.gz",
        bytes: corrupt,
        args: &[],
        code: 1,
        says: &["corrupt.gz: FAILED: "],
        adds: 0,
    });
    v.push(Case {
        name: "truncated-array.json",
        bytes: br#"[{"id":7001,"author_id":1,"entity_type":"User","details":{},"created_at":"2024-03-04T09:00:00Z"},{"id":7002,"author_id":1,"ent"#.to_vec(),
        args: &[],
        code: 0,
        says: &["truncated-array.json:1: the JSON array ends early", "1 imported", "1 skipped"],
        adds: 1,
    });
    v.push(Case {
        name: "records-not-objects.json",
        bytes: br#"{"Records":[1,"two"]}"#.to_vec(),
        args: &[],
        code: 0,
        says: &["records-not-objects.json:1: Records[0]: expected a CloudTrail record (JSON object), found a number", "2 skipped"],
        adds: 0,
    });
    v.push(Case {
        name: "bad-time.jsonl",
        bytes:
            br#"{"eventTime":"yesterday","eventName":"GetObject","eventSource":"s3.amazonaws.com"}"#
                .to_vec(),
        args: &[],
        code: 0,
        says: &["bad-time.jsonl:1: eventTime: invalid time `yesterday`"],
        adds: 0,
    });
    v.push(Case {
        name: "vault-type.log",
        bytes: br#"{"time":"2024-03-03T12:00:00Z","type":"banana","request":{"id":"x","operation":"read","path":"a"}}"#.to_vec(),
        args: &["--format", "vault"],
        code: 0,
        says: &["vault-type.log:1: type: expected \"request\" or \"response\", found \"banana\""],
        adds: 0,
    });
    let (a, b) = (next(), next());
    v.push(Case {
        name: "strict.jsonl",
        bytes: lines(&[good(a), "{not json".into(), good(b)]),
        args: &["--strict"],
        code: 1,
        says: &[
            "strict.jsonl: FAILED: --strict: 1 bad record, first: strict.jsonl:2: invalid JSON",
            "nothing of this file was imported",
        ],
        adds: 0,
    });
    v.push(Case {
        name: "scalar.jsonl",
        bytes: b"\"hello\"\n42\n".to_vec(),
        args: &["--format", "jsonl"],
        code: 0,
        says: &[
            "scalar.jsonl:1: expected a JSON object, found a string",
            "scalar.jsonl:2: expected a JSON object, found a number",
        ],
        adds: 0,
    });
    v.push(Case {
        name: "utf8.csv",
        bytes: b"timestamp,key_id,action\n2024-03-05 08:00:00,k\xff,GET /a\n2024-03-05 08:00:01,k-utf8,GET /b\n".to_vec(),
        args: &[],
        code: 0,
        says: &["utf8.csv:2: invalid UTF-8 in field 2", "1 imported"],
        adds: 1,
    });
    v.push(Case {
        name: "pretty-truncated.json",
        bytes: b"{\n  \"eventTime\": \"2024-03-01T10:00:00Z\",\n  \"eventName\": \"GetObject\",\n  \"eventSource\": \"s3.amazonaws.com\",\n".to_vec(),
        args: &["--format", "cloudtrail"],
        code: 0,
        says: &["pretty-truncated.json:5: invalid JSON: EOF while parsing"],
        adds: 0,
    });
    v
}

#[test]
fn every_malformed_file_gets_its_message_and_the_cache_survives() {
    let sb = Sandbox::new();
    // Something imported before, which must survive everything below.
    let before = sb.write(
        "cloudtrail-records.json",
        &sample("cloudtrail-records.json"),
    );
    assert_eq!(sb.import(&[&before], &[]).0, 0);
    let mut expected = sb.count();
    let all = cases();
    assert!(all.len() >= 20);
    for c in all {
        let f = sb.write(&format!("in/{}", c.name), &c.bytes);
        let (code, _, err) = sb.import(&[&f], c.args);
        assert_eq!(code, c.code, "{}: exit code; stderr:\n{err}", c.name);
        for s in c.says {
            assert!(err.contains(s), "{}: expected `{s}` in:\n{err}", c.name);
        }
        assert!(!err.contains("panicked"), "{}: {err}", c.name);
        let now = sb.count();
        if c.adds >= 0 {
            assert_eq!(now, expected + c.adds, "{}: {err}", c.name);
        } else {
            assert!(
                now > expected && now < expected + 200,
                "{}: {now} vs {expected}",
                c.name
            );
        }
        expected = now;
        assert_eq!(integrity(&sb.db()), "ok", "{}", c.name);
    }
    // What was imported first is still all there.
    let store = keyaudit::store::Store::open_read_only(&sb.db()).unwrap();
    assert!(store
        .key("cloudtrail", "AKIAIOSFODNN7EXAMPLE")
        .unwrap()
        .is_some());
}

#[test]
fn usage_and_path_errors_have_their_exit_codes() {
    let sb = Sandbox::new();
    let (code, _, err) = sb.run(&["import", "--format", "xml", "x"]);
    assert_eq!(code, 2, "{err}");
    let f = sb.write("a.jsonl", b"{}\n");
    let (code, _, err) = sb.run(&["import", "--mapping", "nope", f.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--mapping nope: no [import.mapping.nope] section"),
        "{err}"
    );
    let (code, _, err) = sb.run(&["import", sb.path("missing.log").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read") && err.contains("missing.log"),
        "{err}"
    );
    // Read-only keeps every provider unchanged; an import only fills the local cache.
    let (code, _, err) = sb.run(&["--read-only", "import", f.to_str().unwrap()]);
    assert!(!err.contains("read-only"), "{err}");
    assert_ne!(code, 2, "{err}");
}
