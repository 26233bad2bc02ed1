//! `revoke`, `disable`, `enable` through the binary against the demo provider on
//! loopback: selection, dry run, confirmation, bulk, idempotence, partial failure,
//! read-only mode, and the journal (listing, verify, tamper detection).

mod action_support;

use action_support::{text, World};
use keyaudit::model::KeyStatus;
use std::collections::HashMap;

#[test]
fn bulk_revoke_by_match_is_confirmed_journaled_and_tamper_evident() {
    let w = World::start();
    let ids: Vec<String> = (0..100)
        .map(|i| {
            w.create(&format!("incident-{i:03}"), "Incident Test Partner")
                .0
                .id
        })
        .collect();
    w.ok(&["sync"]);
    let query = "owner:incident status:active";

    // Dry run: exactly the 100 keys, nothing changed.
    let out = w.ok(&[
        "revoke",
        "--match",
        query,
        "--reason",
        "leak INC-42",
        "--dry-run",
    ]);
    let listed = text(&out.stdout);
    for id in &ids {
        assert!(
            listed.contains(&format!("talentgrid/{id} ")),
            "{id} missing from the plan"
        );
    }
    assert_eq!(listed.matches("talentgrid/").count(), 100, "{listed}");
    assert!(listed.contains("dry run: 100 key(s)"));
    assert_eq!(w.remote(&ids[0]).status, KeyStatus::Active);

    // No terminal and no --yes: refused, exit 2, with advice.
    let out = w.run(&["revoke", "--match", query, "--reason", "leak INC-42"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert_eq!(w.remote(&ids[0]).status, KeyStatus::Active);

    // The real run.
    let out = w.ok(&[
        "revoke",
        "--match",
        query,
        "--reason",
        "leak INC-42",
        "--yes",
    ]);
    assert!(
        text(&out.stdout).contains("revoke: 100 of 100 key(s) ok"),
        "{}",
        text(&out.stdout)
    );
    for id in &ids {
        assert_eq!(w.remote(id).status, KeyStatus::Revoked, "{id}");
    }

    // One "done" entry per key (each key has a `started` entry before the call and
    // its result after it), plus the bulk run's start and summary.
    let journal = w.journal();
    let mut done: HashMap<String, usize> = HashMap::new();
    for e in &journal {
        if e["action"] == "revoke" && e["result"].as_str().unwrap().starts_with("ok") {
            *done
                .entry(e["target"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        assert_eq!(e["reason"], "leak INC-42");
    }
    assert_eq!(done.len(), 100);
    assert!(done.values().all(|n| *n == 1));
    assert_eq!(
        journal
            .iter()
            .filter(|e| e["action"] == "revoke-bulk")
            .count(),
        2
    );
    assert_eq!(journal.len(), 202);
    let out = w.ok(&["journal", "verify"]);
    assert!(text(&out.stdout).contains("202 entries"));

    // Idempotent: revoking revoked keys succeeds.
    let out = w.ok(&[
        "revoke",
        "--match",
        "owner:incident",
        "--reason",
        "again",
        "--yes",
    ]);
    assert!(
        text(&out.stdout).contains("(100 already so)"),
        "{}",
        text(&out.stdout)
    );

    // One byte changed in the database: verify names that entry.
    {
        let conn = rusqlite::Connection::open(w.db()).unwrap();
        conn.execute(
            "UPDATE journal SET target = replace(target, 'talentgrid/', 'talentgrie/') WHERE seq = 57",
            [],
        )
        .unwrap();
    }
    let out = w.run(&["journal", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("entry 57"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn single_keys_ambiguity_partial_failure_and_read_only() {
    let w = World::start_with(&["talentgrid-eu"]);
    let (a, _) = w.create("solo-a", "Solo Partner");
    let (b, _) = w.create("solo-b", "Solo Partner");
    w.ok(&["sync"]);

    // Both providers list the same ids: a bare id is ambiguous.
    let out = w.run(&["revoke", &a.id, "--reason", "r", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("talentgrid/{}", a.id))
            && err.contains(&format!("talentgrid-eu/{}", a.id)),
        "{err}"
    );
    let out = w.run(&[
        "revoke",
        "talentgrid/key_does_not_exist",
        "--reason",
        "r",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // Read-only (flag, or config mode): refused before any request.
    let out = w.run(&[
        "--read-only",
        "revoke",
        &format!("talentgrid/{}", a.id),
        "--reason",
        "r",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("read-only"));
    let ro_cfg = w.path("config/ro.toml");
    let cfg = std::fs::read_to_string(w.path("config/config.toml")).unwrap();
    std::fs::write(&ro_cfg, format!("mode = \"read-only\"\n{cfg}")).unwrap();
    let out = w.run(&[
        "--config",
        ro_cfg.to_str().unwrap(),
        "disable",
        &format!("talentgrid/{}", a.id),
        "--reason",
        "r",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("mode = \"read-only\""),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(w.remote(&a.id).status, KeyStatus::Active);
    assert!(w.journal().is_empty(), "a refused command journals nothing");

    // Disable, enable, revoke one key.
    let ta = format!("talentgrid/{}", a.id);
    w.ok(&["disable", &ta, "--reason", "suspicious", "--yes"]);
    assert_eq!(w.remote(&a.id).status, KeyStatus::Inactive);
    w.ok(&["enable", &ta, "--reason", "false alarm", "--yes"]);
    assert_eq!(w.remote(&a.id).status, KeyStatus::Active);
    w.ok(&["revoke", &ta, "--reason", "leaked", "--yes"]);
    assert_eq!(w.remote(&a.id).status, KeyStatus::Revoked);

    // Partial failure: enabling a revoked key fails, the other key is done; exit 1
    // names the failed key.
    let tb = format!("talentgrid/{}", b.id);
    w.ok(&["disable", &tb, "--reason", "r", "--yes"]);
    let out = w.run(&["enable", &ta, &tb, "--reason", "restore", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("1 key(s) failed") && err.contains(&ta),
        "{err}"
    );
    assert!(!err.contains(&tb), "{err}");
    assert_eq!(w.remote(&b.id).status, KeyStatus::Active);
    w.ok(&["journal", "verify"]);
}

#[test]
fn match_by_network_selects_keys_seen_from_it() {
    let w = World::start();
    w.ok(&["sync"]);
    let store = rusqlite::Connection::open(w.db()).unwrap();
    let ip: String = store
        .query_row(
            "SELECT source_ip FROM events WHERE source_ip LIKE '%.%' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let net = format!("ip:{ip}/32");
    let expected: i64 = store
        .query_row(
            "SELECT count(DISTINCT key_ref) FROM events WHERE source_ip = ?1",
            [&ip],
            |r| r.get(0),
        )
        .unwrap();
    drop(store);
    let out = w.ok(&["revoke", "--match", &net, "--reason", "r", "--dry-run"]);
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&format!("dry run: {expected} key(s)")),
        "{expected}: {listed}"
    );
}

/// On a terminal, keyaudit asks for the typed count; a wrong answer changes nothing.
/// Runs the binary under `script(1)` for a pseudo-terminal (skipped where it is missing).
#[test]
fn on_a_terminal_the_typed_count_confirms() {
    if !std::path::Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: /usr/bin/script is not installed");
        return;
    }
    let w = World::start();
    let (a, _) = w.create("tty-a", "Tty Partner");
    let (b, _) = w.create("tty-b", "Tty Partner");
    w.ok(&["sync"]);
    let under_tty = |answer: &str| {
        let cmdline = format!(
            "{} revoke --match owner:tty --reason 'typed'",
            env!("CARGO_BIN_EXE_keyaudit")
        );
        let mut child = w
            .cmd_of("/usr/bin/script", &["-qec", &cmdline, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        text(&out.stdout)
    };
    let screen = under_tty("3\n");
    assert!(screen.contains("Type the number of keys (2)"), "{screen}");
    assert!(
        screen.contains("cancelled; nothing was changed"),
        "{screen}"
    );
    assert_eq!(w.remote(&a.id).status, KeyStatus::Active);
    let screen = under_tty("2\n");
    assert!(screen.contains("revoke: 2 of 2 key(s) ok"), "{screen}");
    assert_eq!(w.remote(&a.id).status, KeyStatus::Revoked);
    assert_eq!(w.remote(&b.id).status, KeyStatus::Revoked);
}
