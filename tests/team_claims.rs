//! One operation per key, through the release binary against the demo provider and a
//! private PostgreSQL cluster: two processes rotating one key at once (exactly one
//! proceeds, the other names the holder), the lease of a SIGKILLed holder running out,
//! `takeover` (journaled in the team journal), and a bulk revoke that lists and skips
//! the key another responder holds.

mod action_support;
mod team_support;

use action_support::{text, World};
use keyaudit::model::KeyStatus;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use team_support::{team_table, Cluster};

/// A world whose config has a `[team]` table on a fresh database of `cluster`.
fn team_world(cluster: &Cluster, lease: &str) -> (World, String) {
    let w = World::start();
    let db = cluster.database("claims");
    let cfg = w.path("config/config.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&team_table(&cluster.url("postgres", &db), lease));
    std::fs::write(&cfg, text).unwrap();
    (w, db)
}

/// Reads a child's standard error line by line on a thread.
fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn two_rotations_of_one_key_one_proceeds_and_a_killed_holders_lease_runs_out() {
    let cluster = Cluster::shared();
    let (w, db) = team_world(&cluster, "3s");
    let (key, _) = w.create("payroll-sync", "Acme Payroll");
    w.ok(&["sync"]);
    let target = format!("talentgrid/{}", key.id);
    let sink = |n: usize| format!("file:{}", w.path(&format!("out/new-{n}.key")).display());
    std::fs::create_dir_all(w.path("out")).unwrap();

    // Both start at once; whichever claims first stops after the provider rotated (it
    // holds the claim there), the other must be refused.
    let mut children: Vec<Child> = (0..2)
        .map(|n| {
            w.cmd(&[
                "rotate",
                &target,
                "--deliver",
                &sink(n),
                "--grace",
                "1h",
                "--reason",
                "race",
            ])
            .env("KEYAUDIT_TEST_PAUSE_AT", "rotated")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let lines: Vec<_> = children.iter_mut().map(stderr_lines).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut paused, mut refused) = (None, None);
    let mut said = vec![String::new(), String::new()];
    while paused.is_none() || refused.is_none() {
        assert!(Instant::now() < deadline, "no outcome: {said:?}");
        for i in 0..2 {
            while let Ok(l) = lines[i].try_recv() {
                said[i].push_str(&l);
                said[i].push('\n');
                if l.trim_end() == "keyaudit: paused at rotated" {
                    assert!(paused.is_none(), "both proceeded: {said:?}");
                    paused = Some(i);
                }
            }
            if refused.is_none() && paused != Some(i) {
                if let Some(status) = children[i].try_wait().unwrap() {
                    // Let the reader drain what the process said last.
                    std::thread::sleep(Duration::from_millis(100));
                    while let Ok(l) = lines[i].try_recv() {
                        said[i].push_str(&l);
                        said[i].push('\n');
                    }
                    refused = Some((i, status));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let holder = paused.unwrap();
    let (loser, status) = refused.unwrap();
    assert_ne!(holder, loser);
    assert!(!status.success(), "the second rotation must fail: {said:?}");
    let me = format!(
        "{}@{}",
        keyaudit::store::journal::os_user(),
        keyaudit::store::journal::host_name()
    );
    let refusal = &said[loser];
    assert!(
        refusal.contains(&format!("{me} is rotating this key since"))
            && refusal.contains("(lease until"),
        "the refusal names the holder: {refusal}"
    );
    assert!(refusal.contains("nothing was changed"), "{refusal}");
    // Only the holder's rotation reached the provider: one successor.
    let successor = w.remote(&key.id).rotated_to.expect("the holder rotated");
    assert_eq!(w.remote(&successor).status, KeyStatus::Active);

    // The holder dies mid-operation: its claim stays until the lease runs out.
    kill(Pid::from_raw(children[holder].id() as i32), Signal::SIGKILL).unwrap();
    children[holder].wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let expired = loop {
        let out = w.run(&[
            "rotate",
            &target,
            "--deliver",
            &sink(9),
            "--reason",
            "again",
        ]);
        assert!(!out.status.success(), "a claimed key is never rotated");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{me} is rotating this key since")),
            "{err}"
        );
        if err.contains("lease expired at") {
            break err;
        }
        assert!(err.contains("(lease until"), "{err}");
        assert!(Instant::now() < deadline, "the lease never ran out: {err}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        expired.contains(&format!("keyaudit takeover {target}")),
        "an expired claim points to takeover: {expired}"
    );
    assert!(
        w.remote(&successor).rotated_to.is_none(),
        "no second rotation"
    );

    let out = w.ok(&["takeover", &target, "--reason", "holder crashed"]);
    assert!(
        text(&out.stdout).contains(&format!("took over the claim of {me}")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        cluster.value(&db, "SELECT count(*) FROM claims WHERE released_at IS NULL"),
        "0"
    );
    assert!(cluster
        .value(
            &db,
            "SELECT released_how FROM claims WHERE released_how LIKE 'taken over%'"
        )
        .starts_with(&format!("taken over by {me}")));

    // The killed rotation's workflow is in the holder's cache: resume claims the key
    // again (refused before the takeover) and settles it with the provider.
    w.ok(&["resume"]);
    assert_eq!(
        cluster.value(&db, "SELECT count(*) FROM claims WHERE released_at IS NULL"),
        "0"
    );
    assert_eq!(
        w.remote(&key.id).rotated_to.as_deref(),
        Some(successor.as_str()),
        "still the one rotation"
    );

    // The team journal has it all, one chain.
    let journal = w.journal();
    let takeover = journal
        .iter()
        .find(|e| e["action"] == "takeover")
        .expect("takeover is journaled");
    assert_eq!(takeover["target"], target.as_str());
    assert_eq!(takeover["params"]["holder"], me.as_str());
    assert_eq!(takeover["params"]["expired"], true);
    assert_eq!(takeover["reason"], "holder crashed");
    assert!(journal
        .iter()
        .any(|e| e["action"] == "rotate" && e["result"] == "started"));
    let after = journal
        .iter()
        .filter(|e| e["action"] == "rotate" && e["seq"].as_i64() > takeover["seq"].as_i64())
        .count();
    assert!(after > 0, "the resume is journaled in the team journal");
    let out = w.ok(&["journal", "verify"]);
    assert!(
        text(&out.stdout).starts_with(&format!("team journal ok: {} entries", journal.len())),
        "{}",
        text(&out.stdout)
    );
    // Nothing went to the cache's own journal.
    let local = w.ok(&["journal", "--local", "--format", "jsonl"]);
    assert_eq!(text(&local.stdout).trim(), "");
}

#[test]
fn a_bulk_revoke_lists_and_skips_the_key_another_responder_holds() {
    let cluster = Cluster::shared();
    let (w, db) = team_world(&cluster, "10m");
    let keys: Vec<_> = (0..3)
        .map(|i| w.create(&format!("incident-{i}"), "Acme Incident").0)
        .collect();
    w.ok(&["sync"]);
    // The first command creates the team tables.
    w.ok(&["journal"]);
    assert_eq!(
        cluster.value(&db, "SELECT version FROM keyaudit_schema"),
        keyaudit::store::team::schema::latest().to_string()
    );
    // alice on another machine is rotating the middle key.
    cluster.value(
        &db,
        &format!(
            "INSERT INTO claims (provider, key_id, operation, holder_user, holder_host,
                                 holder_pid, lease_until)
             VALUES ('talentgrid', '{}', 'rotate', 'alice', 'ws-12', 4242,
                     now() + interval '1 hour') RETURNING id",
            keys[1].id
        ),
    );
    let ids: Vec<String> = keys
        .iter()
        .map(|k| format!("talentgrid/{}", k.id))
        .collect();
    let mut args = vec!["revoke"];
    args.extend(ids.iter().map(String::as_str));
    args.extend(["--reason", "incident 7", "--yes"]);
    let out = w.run(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "a skipped key is not success: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "HELD    {}  {}: alice@ws-12 is rotating this key since",
            ids[1], ids[1]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ok      {}  (now revoked)", ids[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ok      {}  (now revoked)", ids[2])),
        "{stdout}"
    );
    assert!(
        stdout.contains("(1 held by other responders, skipped)"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "held by other responders and skipped ({})",
            ids[1]
        )),
        "{stderr}"
    );
    assert_eq!(w.remote(&keys[0].id).status, KeyStatus::Revoked);
    assert_eq!(
        w.remote(&keys[1].id).status,
        KeyStatus::Active,
        "never sent"
    );
    assert_eq!(w.remote(&keys[2].id).status, KeyStatus::Revoked);
    // Our claims were released; alice's is untouched.
    assert_eq!(
        cluster.value(
            &db,
            "SELECT string_agg(holder_user, ',') FROM claims WHERE released_at IS NULL"
        ),
        "alice"
    );
    assert_eq!(
        cluster.value(
            &db,
            "SELECT count(*) FROM claims WHERE released_how = 'ok' AND operation = 'revoke'"
        ),
        "2"
    );
    // The team journal names the skipped key in the bulk entry.
    let journal = w.journal();
    let end = journal
        .iter()
        .rfind(|e| e["action"] == "revoke-bulk")
        .expect("bulk entry");
    assert_eq!(end["params"]["held_by_others"][0], ids[1].as_str());
    assert!(!journal
        .iter()
        .any(|e| e["action"] == "revoke" && e["target"] == ids[1].as_str()));
}
