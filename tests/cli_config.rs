//! Configuration and usage errors through the real binary: one line naming what and
//! where, exit 2; runtime errors exit 1.

use std::path::Path;
use std::process::{Command, Output};

fn keyaudit(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyaudit"))
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env_remove("KEYAUDIT_DB")
        .env_remove("KEYAUDIT_CONFIG")
        .output()
        .expect("run keyaudit")
}

fn write_config(dir: &Path, text: &str) -> String {
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_typo_is_one_line_with_file_and_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[[provider]]\nname = \"talentgrid\"\nkidn = \"http\"\nurl = \"http://127.0.0.1:9\"\n",
    );
    let o = keyaudit(dir.path(), &["--config", &cfg, "sync"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("config.toml:3: unknown field `kidn`"), "{err}");
}

#[test]
fn an_unknown_kind_is_named_with_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[[provider]]\nname = \"hr\"\nkind = \"ldap\"\nurl = \"http://127.0.0.1:9\"\n",
    );
    let o = keyaudit(dir.path(), &["--config", &cfg, "keys"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(
            "config.toml:1: provider `hr`: unknown kind `ldap`; expected one of: http, aws, vault, gitlab, openai, cloudflare"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_env_var_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[[provider]]\nname = \"hr\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\ntoken_env = \"KEYAUDIT_TEST_NOT_SET_ANYWHERE\"\n",
    );
    let o = keyaudit(dir.path(), &["--config", &cfg, "sync"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("`KEYAUDIT_TEST_NOT_SET_ANYWHERE` (token_env) is not set"),
        "{err}"
    );
}

#[test]
fn a_named_config_that_does_not_exist_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = keyaudit(
        dir.path(),
        &["--config", "/nonexistent/keyaudit.toml", "keys"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/keyaudit.toml"));
}

#[test]
fn bad_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let db = db.to_str().unwrap();
    for args in [
        vec!["--db", db, "events", "--since", "last tuesday"],
        vec!["--db", db, "keys", "--status", "enabled"],
        vec!["--db", db, "keys", "--filter", "colour:red"],
        vec!["keygen", "--prefix", "bad prefix"],
        vec!["--db", db, "no-such-command"],
    ] {
        let o = keyaudit(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_unreachable_provider_is_a_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens; connection refused at once.
    let cfg = write_config(
        dir.path(),
        "[[provider]]\nname = \"hr\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\ntoken_command = \"echo t\"\nmax_attempts = 2\n",
    );
    let db = dir.path().join("c.db");
    let o = keyaudit(
        dir.path(),
        &["--config", &cfg, "--db", db.to_str().unwrap(), "sync"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("hr: sync failed"), "{}", stderr(&o));
}

#[test]
fn info_prints_every_path_and_provider() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"http://127.0.0.1:8088\"\ntoken_env = \"TG\"\n",
    );
    let o = keyaudit(dir.path(), &["--config", &cfg, "info"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "config:",
        "cache:",
        "log:",
        "talentgrid",
        "kind=http",
        "xdg-data",
    ] {
        assert!(out.contains(needle), "missing {needle} in:\n{out}");
    }
}

#[test]
fn keygen_prints_distinct_well_formed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let o = keyaudit(dir.path(), &["keygen", "--prefix", "acme", "--count", "5"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let keys: std::collections::HashSet<&str> = out.lines().collect();
    assert_eq!(keys.len(), 5);
    assert!(keys
        .iter()
        .all(|k| keyaudit::secret::is_well_formed(k) && k.starts_with("acme_")));
}

#[test]
fn kind_demo_in_a_config_says_how_to_run_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[[provider]]\nname = \"tg\"\nkind = \"demo\"\n");
    let o = keyaudit(dir.path(), &["--config", &cfg, "sync"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("config.toml:1: provider `tg`: kind `demo` cannot be configured")
            && err.contains("keyaudit demo --serve-only"),
        "{err}"
    );
}

#[test]
fn demo_takes_db_in_either_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("xdg-data/keyaudit/demo");
    let mine = dir.path().join("mine.db");
    let mine = mine.to_str().unwrap();
    let joined = format!("--db={mine}");
    let small = ["--events", "200", "--live-rate", "0"];
    for db in [vec![joined.as_str()], vec!["--db", mine]] {
        let args: Vec<&str> = ["demo"].iter().chain(&db).chain(&small).copied().collect();
        // No terminal here: the TUI refuses to start, after the demo chose its cache.
        let o = keyaudit(dir.path(), &args);
        assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
        assert!(!demo_dir.exists(), "{db:?}: a demo session cache was made");
    }
    // Without --db each demo session gets a cache of its own: one of a session that
    // still runs (this test's process) is left alone, one of a session that ended
    // (a process id no process has) is removed, and the session removes its own.
    std::fs::create_dir_all(&demo_dir).unwrap();
    let running = demo_dir.join(format!("session-{}.db", std::process::id()));
    let ended = demo_dir.join(format!("session-{}.db", u32::MAX - 1));
    std::fs::write(&running, "a session still running").unwrap();
    std::fs::write(&ended, "a session that ended").unwrap();
    let args: Vec<&str> = ["demo"].iter().chain(&small).copied().collect();
    let o = keyaudit(dir.path(), &args);
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(&demo_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        left,
        vec![running],
        "only the running session's cache stays"
    );
}

#[test]
fn read_only_changes_no_provider_but_does_local_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let db = db.to_str().unwrap();
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/import/cloudtrail-events.jsonl"
    );
    // Local work: importing logs and running detection only change the local cache.
    for args in [
        vec!["--read-only", "--db", db, "import", log],
        vec!["--read-only", "--db", db, "detect"],
    ] {
        let o = keyaudit(dir.path(), &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
    let keys = keyaudit(dir.path(), &["--db", db, "keys", "--format", "json"]);
    assert!(String::from_utf8_lossy(&keys.stdout).contains("AKIAI44QH8DHBEXAMPLE"));
    // Acting on keys and deciding findings are refused before anything happens.
    for args in [
        vec![
            "--read-only",
            "--db",
            db,
            "revoke",
            "AKIAI44QH8DHBEXAMPLE",
            "--reason",
            "x",
            "--yes",
        ],
        vec![
            "--read-only",
            "--db",
            db,
            "rotate",
            "AKIAI44QH8DHBEXAMPLE",
            "--deliver",
            "stdout",
        ],
        vec!["--read-only", "--db", db, "resume"],
        vec![
            "--read-only",
            "--db",
            db,
            "findings",
            "ack",
            "1",
            "--note",
            "seen",
        ],
    ] {
        let o = keyaudit(dir.path(), &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("read-only"), "{args:?}: {}", stderr(&o));
    }
}
