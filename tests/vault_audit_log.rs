//! The Vault audit log reader on files written here (no server): partial lines,
//! request/response pairing, rotation by rename and by copy-and-truncate, paging.
//! Every test reads until nothing is left and checks each request came out exactly once.

use keyaudit::provider::vault::audit::{self, AuditRecord};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

fn request(id: &str, second: u32) -> String {
    format!(
        r#"{{"time":"2026-11-29T01:00:{second:02}.000000001Z","type":"request","auth":{{"client_token":"hmac-sha256:aaaa","accessor":"hmac-sha256:bbbb","display_name":"token-payroll","policies":["default","reader"],"policy_results":{{"allowed":true,"granting_policies":[{{"name":"reader","type":"acl"}}]}}}},"request":{{"id":"{id}","operation":"read","path":"secret/data/{id}","remote_address":"127.0.0.1","remote_port":5000}}}}"#
    ) + "\n"
}

fn response(id: &str, second: u32, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!(r#","error":"{e}""#))
        .unwrap_or_default();
    format!(
        r#"{{"time":"2026-11-29T01:00:{second:02}.500000000Z","type":"response","auth":{{"client_token":"hmac-sha256:aaaa","accessor":"hmac-sha256:bbbb","display_name":"token-payroll","policies":["default","reader"]}},"request":{{"id":"{id}","operation":"read","path":"secret/data/{id}","remote_address":"127.0.0.1","remote_port":5000}},"response":{{"data":{{"v":"hmac-sha256:cccc"}}}}{err}}}"#
    ) + "\n"
}

fn pair(id: &str, second: u32) -> String {
    request(id, second) + &response(id, second, None)
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Reads pages until `has_more` is false; returns the records and the final cursor.
fn drain(log: &Path, cursor: &mut Option<String>, page: usize) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let b = audit::read(log, cursor.as_deref(), page).unwrap();
        out.extend(b.records);
        *cursor = Some(b.next_cursor);
        if !b.has_more {
            return out;
        }
    }
    panic!("the reader never finished");
}

fn ids(records: &[AuditRecord]) -> Vec<String> {
    records.iter().map(|r| r.request_id.clone()).collect()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    (dir, log)
}

#[test]
fn a_partial_last_line_waits_for_its_end() {
    let (_d, log) = setup();
    let b_resp = response("b", 2, None);
    let (head, tail) = b_resp.split_at(40);
    append(&log, &(pair("a", 1) + &request("b", 2) + head));
    let mut cur = None;
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["a"]);
    append(&log, tail);
    let second = drain(&log, &mut cur, 100);
    assert_eq!(ids(&second), ["b"]);
    assert!(second[0].answered);
    assert_eq!(
        second[0].time.to_rfc3339(),
        "2026-11-29T01:00:02.000000001+00:00",
        "the time of a paired request is when it arrived"
    );
    assert!(drain(&log, &mut cur, 100).is_empty(), "nothing twice");
}

#[test]
fn a_request_waits_for_its_response_without_duplicating_what_follows() {
    let (_d, log) = setup();
    append(&log, &(request("slow", 1) + &pair("fast", 2)));
    let mut cur = None;
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["fast"]);
    append(
        &log,
        &(response(
            "slow",
            3,
            Some("1 error occurred:\\n\\t* permission denied\\n\\n"),
        ) + &pair("c", 4)),
    );
    let got = drain(&log, &mut cur, 100);
    assert_eq!(ids(&got), ["slow", "c"]);
    assert!(got[0]
        .error
        .as_deref()
        .unwrap()
        .contains("permission denied"));
    assert_eq!(got[0].accessor.as_deref(), Some("hmac-sha256:bbbb"));
    assert_eq!(
        got[0].granting_policy, None,
        "responses carry no policy results here"
    );
    assert!(drain(&log, &mut cur, 100).is_empty());
}

#[test]
fn a_request_never_answered_is_emitted_once_it_is_stale() {
    let (_d, log) = setup();
    append(&log, &request("lost", 1));
    let mut cur = None;
    assert!(drain(&log, &mut cur, 100).is_empty());
    // Five minutes later.
    let later = pair("x", 2).replace("01:00:02", "01:05:02");
    append(&log, &later);
    let got = drain(&log, &mut cur, 100);
    assert_eq!(ids(&got), ["x", "lost"]);
    assert!(!got[1].answered);
    assert!(drain(&log, &mut cur, 100).is_empty());
}

#[test]
fn pages_neither_lose_nor_repeat() {
    let (_d, log) = setup();
    let mut text = request("held", 0);
    for i in 1..=9 {
        text += &pair(&format!("e{i}"), i);
    }
    text += &response("held", 10, None);
    append(&log, &text);
    let mut cur = None;
    let got = ids(&drain(&log, &mut cur, 2));
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(got.len(), 10, "{got:?}");
    assert_eq!(sorted.len(), 10, "{got:?}");
}

#[test]
fn a_renamed_log_is_finished_before_the_new_one_starts() {
    let (dir, log) = setup();
    append(&log, &pair("a", 1));
    let mut cur = None;
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["a"]);
    // More lines, a request whose response lands in the file before the rename...
    append(
        &log,
        &(pair("b", 2) + &request("c", 3) + &response("c", 3, None)),
    );
    let rotated = dir.path().join("audit.log.1");
    fs::rename(&log, &rotated).unwrap();
    // ...the server keeps writing to the renamed file until it reopens its log.
    append(&rotated, &pair("d", 4));
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["b", "c", "d"]);
    append(&rotated, &pair("e", 5));
    append(&log, &pair("f", 6));
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["e", "f"]);
    append(&log, &pair("g", 7));
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["g"]);
    assert!(drain(&log, &mut cur, 100).is_empty());
}

#[test]
fn two_rotations_between_reads_are_read_in_order() {
    let (dir, log) = setup();
    append(&log, &pair("a", 1));
    let mut cur = None;
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["a"]);
    append(&log, &pair("b", 2));
    fs::rename(&log, dir.path().join("audit.log.1")).unwrap();
    append(&log, &pair("c", 3));
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::rename(
        dir.path().join("audit.log.1"),
        dir.path().join("audit.log.2"),
    )
    .unwrap();
    fs::rename(&log, dir.path().join("audit.log.1")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    append(&log, &pair("d", 4));
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["b", "c", "d"]);
}

#[test]
fn a_copied_and_truncated_log_is_finished_from_the_copy() {
    let (dir, log) = setup();
    append(&log, &pair("a", 1));
    let mut cur = None;
    assert_eq!(ids(&drain(&log, &mut cur, 100)), ["a"]);
    append(&log, &pair("b", 2));
    fs::copy(&log, dir.path().join("audit.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    // The new content grows past the old offset: the head tells it is another file.
    for i in 0..5 {
        append(&log, &pair(&format!("n{i}"), 10 + i));
    }
    assert_eq!(
        ids(&drain(&log, &mut cur, 100)),
        ["b", "n0", "n1", "n2", "n3", "n4"]
    );
    assert!(drain(&log, &mut cur, 100).is_empty());
}

#[test]
fn garbage_lines_are_skipped_and_counted() {
    let (_d, log) = setup();
    append(&log, &("not json\n".to_string() + &pair("a", 1)));
    let b = audit::read(&log, None, 100).unwrap();
    assert_eq!(ids(&b.records), ["a"]);
    assert_eq!(b.malformed, 1);
}

#[test]
fn a_missing_log_is_an_error_and_a_bad_cursor_restarts() {
    let (_d, log) = setup();
    assert_eq!(
        audit::read(&log, None, 10).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    append(&log, &pair("a", 1));
    let b = audit::read(&log, Some("garbage"), 10).unwrap();
    assert_eq!(ids(&b.records), ["a"]);
}

#[test]
fn raw_tokens_are_reduced_to_a_digest() {
    let (_d, log) = setup();
    let line = pair("a", 1).replace("hmac-sha256:aaaa", "s.RAWTOKENVALUE");
    append(&log, &line);
    let b = audit::read(&log, None, 10).unwrap();
    let r = &b.records[0];
    assert!(!format!("{r:?}").contains("RAWTOKENVALUE"));
    assert_eq!(r.token_ref.as_ref().unwrap().len(), 32);
}

#[test]
fn a_slow_request_is_paired_across_pages() {
    let (_d, log) = setup();
    let mut text = request("held", 0);
    for i in 1..=6 {
        text += &pair(&format!("e{i}"), i).replace("01:00:", "01:01:");
    }
    text += &response("held", 9, None).replace("01:00:", "01:01:");
    append(&log, &text);
    let mut cur = None;
    let got = drain(&log, &mut cur, 2);
    assert_eq!(got.len(), 7, "{:?}", ids(&got));
    let held = got.iter().find(|r| r.request_id == "held").unwrap();
    assert!(held.answered, "paired with its response, not emitted alone");
}
