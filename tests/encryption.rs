//! Encryption at rest (cargo feature `encryption`): an encrypted cache holds no event
//! text, in its file or its WAL; the CLI reads it with the key from `db_key_command`
//! and names a wrong or missing key; `encrypt` / `decrypt` convert a cache and survive a
//! SIGKILL at every step.
//!
//! The keyring source is not tested here: CI containers have no session keyring.
#![cfg(feature = "encryption")]

#[path = "import_support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::*;

/// The key the tests' `db_key_command` prints: 64 hex digits, a raw SQLCipher key.
const KEY: &str = "7d1f0c2a9b8e4f6a3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
/// Text no real log carries, so a hit in the file's bytes can only be the event.
const MARK: &str = "quokka-zebra-7731";

/// A sandbox whose config takes the cache key from a file through `db_key_command`.
fn encrypted_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    std::fs::write(sb.path("key"), format!("{KEY}\n")).unwrap();
    with_encryption(&sb);
    sb
}

/// Configures encryption, the key coming from the sandbox's file `key`.
fn with_encryption(sb: &Sandbox) {
    std::fs::write(
        sb.config(),
        format!(
            "[cache]\nencryption = \"command\"\ndb_key_command = \"cat '{}'\"\n",
            sb.path("key").display()
        ),
    )
    .unwrap();
}

/// Takes encryption out of the sandbox's config.
fn without_encryption(sb: &Sandbox) {
    std::fs::write(sb.config(), "").unwrap();
}

/// CloudTrail JSON lines; the user agent and the principal carry `MARK`.
fn log_file(sb: &Sandbox, name: &str, n: u64) -> PathBuf {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/{MARK}-{u}","accessKeyId":"AKIAENCRYPT000000001"}},"eventTime":"2024-03-01T10:{m:02}:{s:02}Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"198.51.100.7","userAgent":"{MARK}-agent/{i}","requestID":"r{name}{i}","eventID":"{name}-{i:08}"}}"#,
            u = i % 5,
            m = (i / 60) % 60,
            s = i % 60,
        ));
        text.push('\n');
    }
    sb.write(name, text.as_bytes())
}

fn bytes_of(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

fn sibling(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A connection of the test's own; `key` for an encrypted file.
fn connect(db: &Path, key: Option<&str>) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db).unwrap();
    if let Some(k) = key {
        c.execute_batch(&format!("PRAGMA key = \"x'{k}'\";"))
            .unwrap();
    }
    c
}

/// (events, integrity verdict) of a cache file.
fn census(db: &Path, key: Option<&str>) -> (i64, String) {
    let c = connect(db, key);
    let n = c
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    let ok = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    (n, ok)
}

fn is_plain(db: &Path) -> bool {
    bytes_of(db).starts_with(b"SQLite format 3\0")
}

/// Imports `n` marked events after a first small import, while the test holds a reader
/// open so that the WAL stays on disk; returns the bytes of the cache file and its WAL.
fn import_holding_the_wal(sb: &Sandbox, key: Option<&str>, n: u64) -> (Vec<u8>, Vec<u8>) {
    let first = sb.write(
        "first.jsonl",
        format!("{}\n", cloudtrail_line(0, "AKIAFIRST00000000001")).as_bytes(),
    );
    let (code, _, err) = sb.import(&[&first], &[]);
    assert_eq!(code, 0, "{err}");
    let reader = connect(&sb.db(), key);
    let before: i64 = reader
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, 1);
    let f = log_file(sb, "marked.jsonl", n);
    let (code, _, err) = sb.import(&[&f], &[]);
    assert_eq!(code, 0, "{err}");
    let wal = bytes_of(&sibling(&sb.db(), "-wal"));
    assert!(!wal.is_empty(), "the WAL is kept while a reader is open");
    let file = bytes_of(&sb.db());
    drop(reader);
    (file, wal)
}

#[test]
fn an_encrypted_cache_holds_no_event_text_in_its_file_or_wal() {
    // The same import into a plain cache leaves the text readable in the WAL: what the
    // encrypted cache must not do.
    let plain = Sandbox::new();
    let (file, wal) = import_holding_the_wal(&plain, None, 300);
    assert!(holds(&wal, MARK) || holds(&file, MARK));

    let sb = encrypted_sandbox();
    let (file, wal) = import_holding_the_wal(&sb, Some(KEY), 300);
    assert!(!file.starts_with(b"SQLite format 3"));
    for (what, bytes) in [("cache file", &file), ("WAL", &wal)] {
        for needle in [MARK, "AKIAENCRYPT000000001", "GetObject", "198.51.100.7"] {
            assert!(!holds(bytes, needle), "the {what} holds {needle}");
        }
    }
    // Nor the key, anywhere keyaudit writes.
    let log = bytes_of(&sb.path("state/keyaudit/keyaudit.log"));
    assert!(!log.is_empty(), "keyaudit logged the import");
    assert!(!holds(&log, KEY) && !holds(&log, MARK));
    assert_eq!(census(&sb.db(), Some(KEY)), (301, "ok".into()));
}

#[test]
fn the_cli_reads_the_encrypted_cache_with_its_key_and_names_a_wrong_or_missing_one() {
    let sb = encrypted_sandbox();
    let f = log_file(&sb, "marked.jsonl", 20);
    let (code, _, err) = sb.import(&[&f], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!is_plain(&sb.db()));
    let (code, out, err) = sb.run(&["events", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{MARK}-agent/19")), "{out}");
    let (_, info, _) = sb.run(&["info"]);
    assert!(
        info.contains("encryption: on, key from db_key_command"),
        "{info}"
    );

    // A wrong key.
    std::fs::write(sb.path("key"), "not the key\n").unwrap();
    let (code, out, err) = sb.run(&["events", "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "the cache {} is encrypted; the key from db_key_command ({}:1) does not open it",
        sb.db().display(),
        sb.config().display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(!out.contains(MARK) && !err.contains("not the key"), "{err}");

    // A key command that fails: its stderr is in the message.
    std::fs::write(
        sb.config(),
        "[cache]\nencryption = \"command\"\ndb_key_command = \"echo 'the vault is sealed' >&2; exit 4\"\n",
    )
    .unwrap();
    let (code, _, err) = sb.run(&["keys"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot get the cache key from db_key_command")
            && err.contains("the vault is sealed"),
        "{err}"
    );

    // No key configured.
    without_encryption(&sb);
    let (code, _, err) = sb.run(&["keys"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "the cache {} is encrypted (or is not a SQLite database), and no key is configured",
            sb.db().display()
        )),
        "{err}"
    );
    assert!(!err.contains(MARK));
}

#[test]
fn a_plain_cache_is_refused_while_encryption_is_configured_and_encrypt_converts_it() {
    let sb = Sandbox::new();
    let f = log_file(&sb, "marked.jsonl", 50);
    assert_eq!(sb.import(&[&f], &[]).0, 0);
    assert!(is_plain(&sb.db()));
    std::fs::write(sb.path("key"), KEY).unwrap();
    with_encryption(&sb);

    let (code, _, err) = sb.run(&["keys"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not encrypted, but the configuration asks for encryption"),
        "{err}"
    );
    assert!(err.contains("run `keyaudit encrypt`"), "{err}");

    let (code, out, err) = sb.run(&["encrypt"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("encrypted ") && out.contains("db_key_command"),
        "{out}"
    );
    assert!(!is_plain(&sb.db()) && !holds(&bytes_of(&sb.db()), MARK));
    assert_eq!(census(&sb.db(), Some(KEY)), (50, "ok".into()));
    let (code, out, _) = sb.run(&["events", "--format", "json"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("{MARK}-agent/49")));
    let (code, _, err) = sb.run(&["encrypt"]);
    assert_eq!(code, 1);
    assert!(err.contains("it is already encrypted"), "{err}");

    let (code, out, err) = sb.run(&["decrypt"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("remove [cache] encryption"), "{out}");
    assert!(is_plain(&sb.db()));
    assert_eq!(census(&sb.db(), None), (50, "ok".into()));
    without_encryption(&sb);
    let (code, out, _) = sb.run(&["events", "--format", "json"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("{MARK}-agent/49")));
    let (code, _, err) = sb.run(&["encrypt"]);
    assert_eq!(code, 2, "no key source is a usage error");
    assert!(err.contains("set [cache] encryption"), "{err}");
}

/// Runs `keyaudit ARG` until it stops at `step`, then SIGKILLs it.
fn kill_at(sb: &Sandbox, arg: &str, step: &str) {
    let mut child = sb
        .command()
        .arg(arg)
        .env("KEYAUDIT_TEST_PAUSE_AT", step)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().expect("a line on stderr").unwrap();
    assert_eq!(line, format!("keyaudit: paused at {step}"));
    child.kill().unwrap();
    child.wait().unwrap();
}

fn no_temporaries(sb: &Sandbox) {
    let names: Vec<String> = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".convert-")), "{names:?}");
}

#[test]
fn a_kill_at_any_step_of_a_conversion_leaves_the_old_or_the_new_cache_whole() {
    const N: i64 = 400;
    for (step, done) in [
        ("locked", false),
        ("exported", false),
        ("synced", false),
        ("renamed", true),
    ] {
        let sb = encrypted_sandbox();
        without_encryption(&sb);
        let f = log_file(&sb, "marked.jsonl", N as u64);
        assert_eq!(sb.import(&[&f], &[]).0, 0);
        with_encryption(&sb);

        kill_at(&sb, "encrypt", step);
        assert_eq!(!is_plain(&sb.db()), done, "encrypt killed at {step}");
        let key = done.then_some(KEY);
        assert_eq!(
            census(&sb.db(), key),
            (N, "ok".into()),
            "encrypt killed at {step}"
        );
        assert!(
            !sibling(&sb.db(), "-wal").exists() || bytes_of(&sibling(&sb.db(), "-wal")).is_empty()
        );
        if !done {
            // The next run finishes the job and clears what the killed one left.
            let (code, _, err) = sb.run(&["encrypt"]);
            assert_eq!(code, 0, "after a kill at {step}: {err}");
        }
        no_temporaries(&sb);
        assert_eq!(census(&sb.db(), Some(KEY)), (N, "ok".into()));

        kill_at(&sb, "decrypt", step);
        assert_eq!(is_plain(&sb.db()), done, "decrypt killed at {step}");
        let key = (!done).then_some(KEY);
        assert_eq!(
            census(&sb.db(), key),
            (N, "ok".into()),
            "decrypt killed at {step}"
        );
        let (code, out, err) = sb.run(&["events", "--format", "json"]);
        if done {
            assert_eq!(
                code, 1,
                "a plain cache with encryption configured is refused"
            );
        } else {
            assert_eq!(code, 0, "{err}");
            assert!(out.contains(&format!("{MARK}-agent/{}", N - 1)));
        }
    }
}

#[test]
fn the_wal_of_a_killed_import_goes_into_the_encrypted_cache_not_beside_it() {
    let sb = encrypted_sandbox();
    without_encryption(&sb);
    let f = log_file(&sb, "marked.jsonl", 50_000);
    let mut child = sb
        .command()
        .args(["import", "--batch", "1000", f.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wal = sibling(&sb.db(), "-wal");
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 2 * 1024 * 1024
        && t0.elapsed() < std::time::Duration::from_secs(120)
    {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().ok();
    child.wait().unwrap();
    if !wal.exists() {
        // The import finished before it could be killed: the point of the test is lost.
        panic!("the import ended before its WAL grew; raise the number of lines");
    }
    // What the killed import committed, counted on a copy (opening it replays the WAL).
    let copy = sb.path("copy");
    std::fs::create_dir(&copy).unwrap();
    for suffix in ["", "-wal"] {
        std::fs::copy(
            sibling(&sb.db(), suffix),
            sibling(&copy.join("cache.db"), suffix),
        )
        .unwrap();
    }
    let (committed, ok) = census(&copy.join("cache.db"), None);
    assert_eq!(ok, "ok");
    assert!(committed > 0);

    with_encryption(&sb);
    let (code, _, err) = sb.run(&["encrypt"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !wal.exists() || bytes_of(&wal).is_empty(),
        "no plain WAL is left beside the cache"
    );
    assert!(!holds(&bytes_of(&sb.db()), MARK));
    assert_eq!(census(&sb.db(), Some(KEY)), (committed, "ok".into()));
}

#[test]
fn a_kill_at_a_random_moment_of_a_large_conversion_leaves_a_whole_cache() {
    const N: i64 = 30_000;
    let sb = encrypted_sandbox();
    without_encryption(&sb);
    let f = log_file(&sb, "marked.jsonl", N as u64);
    assert_eq!(sb.import(&[&f], &[]).0, 0);
    with_encryption(&sb);
    let mut finished = 0;
    for delay_ms in [5, 30, 80, 150, 300, 450, 600, 750, 900, 1050, 1200, 2000] {
        let plain = is_plain(&sb.db());
        let mut child = sb
            .command()
            .arg(if plain { "encrypt" } else { "decrypt" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().ok();
        let done = child.wait().unwrap().success();
        finished += usize::from(done);
        eprintln!(
            "{} killed after {delay_ms} ms: finished {done}, now {}",
            if plain { "encrypt" } else { "decrypt" },
            if is_plain(&sb.db()) {
                "plain"
            } else {
                "encrypted"
            }
        );
        let key = (!is_plain(&sb.db())).then_some(KEY);
        assert_eq!(
            census(&sb.db(), key),
            (N, "ok".into()),
            "killed after {delay_ms} ms"
        );
        assert!(bytes_of(&sibling(&sb.db(), "-wal")).is_empty());
        if key.is_some() {
            assert!(!holds(&bytes_of(&sb.db()), MARK));
        }
    }
    // Whatever was killed, the next conversion goes through.
    let (code, _, err) = sb.run(&[if is_plain(&sb.db()) {
        "encrypt"
    } else {
        "decrypt"
    }]);
    assert_eq!(
        code, 0,
        "{err} ({finished} of the killed runs had finished)"
    );
    no_temporaries(&sb);
}
