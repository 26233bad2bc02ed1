//! Rotations shared by a team, through the release binary against the demo provider and
//! a private PostgreSQL cluster: every member sees every member's workflows
//! (`workflows --team`); a rotation whose owner went off shift in its grace period is
//! adopted and finished by another member, and its former owner stops; a rotation whose
//! owner crashed after the provider rotated is adopted once its claim is taken over, and
//! the new secret is taken again with the same idempotency key and delivered where the
//! adopter says (one rotation at the provider, never two).

mod action_support;
mod team_support;
mod tmux_support;

use action_support::{text, World, TOKEN};
use keyaudit::model::KeyStatus;
use keyaudit::secret::Secret;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use team_support::{team_table, Cluster};
use tmux_support::Tmux;

/// The workstation of the member whose cache is `db`, as a shell command line for tmux.
fn workstation(w: &World, db: &Path) -> String {
    format!(
        "env KEYAUDIT_CONFIG={} KEYAUDIT_DB={} XDG_CONFIG_HOME={} XDG_DATA_HOME={} \
         XDG_STATE_HOME={} KA_TEST_TOKEN={TOKEN} {}",
        w.path("config/config.toml").display(),
        db.display(),
        w.path("xdg-config").display(),
        w.path("xdg-data").display(),
        w.path("state").display(),
        env!("CARGO_BIN_EXE_keyaudit"),
    )
}

/// A world whose config has a `[team]` table on a fresh database of `cluster`.
fn team_world(cluster: &Cluster, lease: &str) -> (World, String) {
    let w = World::start();
    let db = cluster.database("workflows");
    let cfg = w.path("config/config.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&team_table(&cluster.url("postgres", &db), lease));
    // Every sync asks the provider (no member reads a copy instead): keys created during
    // the test reach every cache.
    text.push_str("fresh = \"0s\"\n");
    std::fs::write(&cfg, text).unwrap();
    std::fs::create_dir_all(w.path("out")).unwrap();
    (w, db)
}

/// The cache of another member of the team (same configuration, its own cache).
fn member(w: &World, name: &str) -> PathBuf {
    let dir = w.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("cache.db")
}

fn run_on(w: &World, db: &Path, args: &[&str]) -> std::process::Output {
    w.cmd(args).env("KEYAUDIT_DB", db).output().unwrap()
}

fn json_rows(out: &std::process::Output) -> Vec<Value> {
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", text(&out.stdout));
    })
}

fn me() -> String {
    format!(
        "{}@{}",
        keyaudit::store::journal::os_user(),
        keyaudit::store::journal::host_name()
    )
}

fn read_secret(p: &Path) -> Secret {
    Secret::new(std::fs::read_to_string(p).unwrap().trim().to_string())
}

#[test]
fn a_rotation_left_in_its_grace_period_is_finished_by_another_member() {
    let cluster = Cluster::shared();
    let (w, db) = team_world(&cluster, "10m");
    let (key, old_secret) = w.create("payroll-export", "Acme Payroll");
    w.ok(&["sync"]);
    let target = format!("talentgrid/{}", key.id);
    let alice_sink = w.path("out/alice.key");
    w.ok(&[
        "rotate",
        &target,
        "--deliver",
        &format!("file:{}", alice_sink.display()),
        "--grace",
        "3s",
        "--reason",
        "yearly rotation",
    ]);
    let new_secret = read_secret(&alice_sink);
    assert!(w.works(&new_secret) && w.works(&old_secret), "in grace");
    // A second rotation, with a long grace period, stays alice's.
    let (other, _) = w.create("onboarding", "Acme Onboarding");
    w.ok(&["sync"]);
    w.ok(&[
        "rotate",
        &format!("talentgrid/{}", other.id),
        "--deliver",
        &format!("file:{}", w.path("out/other.key").display()),
        "--grace",
        "1h",
    ]);

    // bob sees alice's rotation in the team store, and is told about it.
    let bob = member(&w, "bob");
    w.ok_on(None, &bob, &["sync"]);
    let out = w.ok_on(None, &bob, &["workflows"]);
    assert!(
        text(&out.stderr).contains(
            "2 open workflow(s) of other members: `keyaudit workflows --team` lists them"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = w.ok_on(None, &bob, &["workflows", "--team", "--format", "json"]);
    let rows = json_rows(&out);
    let numbers: Vec<i64> = rows
        .iter()
        .map(|r| r["team_id"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "numbered as published, saves use none up");
    let row = &rows[0];
    let team_id = row["team_id"].as_i64().unwrap();
    assert_eq!(row["workflow"]["state"], "grace");
    assert_eq!(row["workflow"]["step"], "verified");
    assert_eq!(row["workflow"]["key_id"], key.id.as_str());
    assert_eq!(row["owner"]["id"], 1);
    assert_eq!(
        format!(
            "{}@{}",
            row["owner"]["user"].as_str().unwrap(),
            row["owner"]["host"].as_str().unwrap()
        ),
        me()
    );
    let table = text(&w.ok_on(None, &bob, &["workflows", "--team"]).stdout);
    assert!(
        table.contains(&format!("{} (its #1)", me())) && table.contains("grace"),
        "{table}"
    );
    let new_id = row["workflow"]["new_key_id"].as_str().unwrap().to_string();
    assert_eq!(rows[1]["workflow"]["key_id"], other.id.as_str());

    // In bob's workstation, the key's detail says it is in the middle of alice's rotation,
    // until when.
    let bob_keys = text(&w.ok_on(None, &bob, &["keys", "--format", "json"]).stdout);
    assert!(bob_keys.contains(&key.id), "bob's cache holds the key");
    let tui = tmux_support::available().then(|| {
        let tmux = Tmux::new(&format!("ka-team-wf-{}", std::process::id()), "bob");
        tmux.start(&workstation(&w, &bob), 200, 50);
        tmux.wait_for("the keys view", |s| s.contains("[keys]"));
        tmux.send(&["/"]);
        tmux.type_text(&key.id[4..]);
        tmux.send(&["Enter"]);
        tmux.wait_for("the filtered keys", |s| s.contains("hidden"));
        tmux.send(&["Enter"]);
        let screen = tmux.wait_for("the rotation in the key's detail", |s| {
            s.contains("[detail]") && s.contains("rotation in progress")
        });
        assert!(
            screen.contains("grace until")
                && screen.contains(&format!("· {} team #1 · new key {new_id}", me()))
                && screen.contains("take it over: keyaudit resume --adopt 1"),
            "{screen}"
        );
        // W lists both of alice's rotations, each with the command that takes it over;
        // Esc goes back to the detail.
        tmux.send(&["W"]);
        tmux.wait_for("the team's rotations", |s| {
            s.contains("rotations in progress (2)")
                && s.contains("take it over: keyaudit resume --adopt 1")
                && s.contains("take it over: keyaudit resume --adopt 2")
                && s.contains(&other.id)
        });
        tmux.send(&["Escape"]);
        tmux.wait_for("the detail again", |s| {
            s.contains("[detail]") && !s.contains("rotations in progress (")
        });
        tmux
    });

    // alice is off shift; her grace period ends; bob adopts and finishes it.
    std::thread::sleep(Duration::from_secs(4));
    let out = w.ok_on(None, &bob, &["resume", "--adopt", &team_id.to_string()]);
    let said = text(&out.stderr);
    assert!(
        said.contains(&format!("adopted team workflow #{team_id} from {}", me())),
        "{said}"
    );
    assert!(said.contains("old key revoked"), "{said}");
    assert_eq!(w.remote(&key.id).status, KeyStatus::Revoked);
    assert_eq!(w.remote(&new_id).status, KeyStatus::Active);
    assert!(w.works(&new_secret) && !w.works(&old_secret));
    // The open detail is read again when the team's workflow and journal change: the
    // rotation is over, and the adoption is in the key's journal.
    if let Some(tmux) = &tui {
        // The adoption and the revoke are two journal entries, each announced: the detail
        // may be read between them, so wait for the last.
        tmux.wait_for("the detail after the adoption", |s| {
            !s.contains("rotation in progress")
                && s.contains("adopt ")
                && s.contains("done: old key revoked")
        });
    }

    // The team store says bob's cache drives it, and it is done.
    assert_eq!(
        cluster.value(
            &db,
            &format!("SELECT state || ' ' || owner_id FROM workflows WHERE id = {team_id}")
        ),
        "done 1"
    );
    let journal = w.journal();
    let adopt = journal
        .iter()
        .find(|e| e["action"] == "adopt")
        .expect("the adoption is journaled");
    assert_eq!(adopt["target"], target.as_str());
    assert_eq!(adopt["params"]["team_workflow"], team_id);
    assert_eq!(adopt["params"]["from"], me().as_str());
    assert_eq!(adopt["params"]["step"], "verified");
    assert!(journal.iter().any(|e| e["action"] == "rotate"
        && e["result"] == "done: old key revoked"
        && e["seq"].as_i64() > adopt["seq"].as_i64()));

    // alice comes back: her resume learns that bob has it, and asks the provider nothing.
    let out = w.ok(&["resume"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        said.contains("handed_over") && said.contains(&format!("adopted by {}", me())),
        "{said}"
    );
    let rows = json_rows(&w.ok(&["workflows", "--all", "--format", "json"]));
    assert_eq!(rows[0]["state"], "handed_over");
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("as team workflow #{team_id}")),
        "{rows:?}"
    );
    assert_eq!(
        journal.len(),
        w.journal().len(),
        "the former owner journals nothing"
    );

    // Nobody adopts it again: bob's own, and done for a third member.
    let out = run_on(&w, &bob, &["resume", "--adopt", &team_id.to_string()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("it is this cache's workflow #1: run `keyaudit resume 1`"),
        "{}",
        text(&out.stderr)
    );
    let carol = member(&w, "carol");
    let out = run_on(&w, &carol, &["resume", "--adopt", &team_id.to_string()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("it is done; nothing is left to do"),
        "{}",
        text(&out.stderr)
    );
    let out = w.ok(&["journal", "verify"]);
    assert!(text(&out.stdout).starts_with("team journal ok"));
}

#[test]
fn a_crashed_rotation_is_adopted_after_a_takeover_and_its_secret_delivered_once() {
    let cluster = Cluster::shared();
    let (w, db) = team_world(&cluster, "3s");
    let (key, _) = w.create("background-checks", "Acme Checks");
    w.ok(&["sync"]);
    let target = format!("talentgrid/{}", key.id);
    let alice_sink = w.path("out/alice.key");
    // alice's keyaudit dies right after the provider rotated: the new secret was only in
    // its memory, and its claim on the key stays until the lease runs out.
    let out = w
        .cmd(&[
            "rotate",
            &target,
            "--deliver",
            &format!("file:{}", alice_sink.display()),
            "--grace",
            "1h",
        ])
        .env("KEYAUDIT_CRASH_AT", "rotated")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!alice_sink.exists());
    let new_id = w.remote(&key.id).rotated_to.expect("the provider rotated");

    let bob = member(&w, "bob");
    w.ok_on(None, &bob, &["sync"]);
    let rows = json_rows(&w.ok_on(None, &bob, &["workflows", "--team", "--format", "json"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let team_id = rows[0]["team_id"].as_i64().unwrap().to_string();
    assert_eq!(rows[0]["workflow"]["step"], "rotated");
    assert_eq!(rows[0]["workflow"]["new_key_id"], new_id.as_str());
    let fingerprint = rows[0]["workflow"]["new_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    // alice's claim still counts: bob is refused with her name, then told to take over.
    let deadline = Instant::now() + Duration::from_secs(60);
    let bob_sink = w.path("out/bob.key");
    let deliver = format!("file:{}", bob_sink.display());
    let expired = loop {
        let out = run_on(
            &w,
            &bob,
            &["resume", "--adopt", &team_id, "--deliver", &deliver],
        );
        assert!(!out.status.success(), "a claimed key is never adopted");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{} is rotating this key since", me())),
            "{err}"
        );
        if err.contains("lease expired at") {
            break err;
        }
        assert!(Instant::now() < deadline, "the lease never ran out: {err}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        expired.contains(&format!("keyaudit takeover {target}")),
        "{expired}"
    );
    w.ok_on(
        None,
        &bob,
        &["takeover", &target, "--reason", "alice's laptop died"],
    );

    // Seen from another host, alice's file sink is out of reach: bob must say where the
    // secret goes.
    cluster.value(
        &db,
        &format!("UPDATE workflows SET owner_host = 'ws-12' WHERE id = {team_id} RETURNING id"),
    );
    let out = run_on(&w, &bob, &["resume", "--adopt", &team_id]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot adopt team workflow #{team_id}: it is at step rotated"
        )) && err.contains("on ws-12, which this host cannot read or write; pass --deliver SPEC"),
        "{err}"
    );
    assert_eq!(
        cluster.value(&db, "SELECT count(*) FROM claims WHERE released_at IS NULL"),
        "0",
        "a refused adoption holds nothing"
    );

    let out = w.ok_on(
        None,
        &bob,
        &["resume", "--adopt", &team_id, "--deliver", &deliver],
    );
    let said = text(&out.stderr);
    assert!(said.contains("secret delivered to"), "{said}");
    // The provider's repeated answer to the same idempotency key: the same new key and
    // secret, no second rotation.
    let secret = read_secret(&bob_sink);
    assert_eq!(secret.fingerprint(), fingerprint);
    assert!(w.works(&secret));
    assert_eq!(
        w.remote(&key.id).rotated_to.as_deref(),
        Some(new_id.as_str())
    );
    assert!(w.remote(&new_id).rotated_to.is_none());
    assert!(!alice_sink.exists());
    let rows = json_rows(&w.ok_on(None, &bob, &["workflows", "--format", "json"]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "grace");
    assert_eq!(rows[0]["sink"], deliver.as_str());
    let journal = w.journal();
    assert!(journal.iter().any(|e| e["action"] == "adopt"
        && e["params"]["step"] == "rotated"
        && e["params"]["from"]
            == format!("{}@ws-12", keyaudit::store::journal::os_user()).as_str()));
    assert!(journal.iter().any(|e| e["action"] == "rotate"
        && e["result"]
            .as_str()
            .unwrap()
            .starts_with("answer recovered")));
    assert_eq!(
        cluster.value(&db, "SELECT count(*) FROM claims WHERE released_at IS NULL"),
        "0"
    );
    // No secret in the team store.
    assert_eq!(
        cluster.value(
            &db,
            &format!(
                "SELECT count(*) FROM workflows WHERE doc LIKE '%{}%'",
                &secret.expose()[secret.expose().len() - 12..]
            )
        ),
        "0"
    );
}

#[test]
fn a_rotation_the_team_store_refused_to_record_is_published_by_the_next_command() {
    let cluster = Cluster::shared();
    let (w, db) = team_world(&cluster, "10m");
    let (key, _) = w.create("payroll-import", "Acme Payroll");
    w.ok(&["sync"]);
    // The team store takes the workflow's first row, then refuses every change to it
    // (as a store in maintenance would): the rotation goes on regardless.
    cluster.value(
        &db,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'the workflows table is being maintained'; END $$;
         CREATE TRIGGER refuse BEFORE UPDATE ON workflows
             FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let sink = w.path("out/new.key");
    w.ok(&[
        "rotate",
        &format!("talentgrid/{}", key.id),
        "--deliver",
        &format!("file:{}", sink.display()),
        "--grace",
        "1h",
    ]);
    let team = || {
        cluster.value(
            &db,
            "SELECT state || ' ' || (doc::json ->> 'step') FROM workflows",
        )
    };
    assert_eq!(team(), "running planned", "only the first row was recorded");
    let local = json_rows(&w.ok(&["workflows", "--format", "json"]));
    assert_eq!(local[0]["state"], "grace");

    // The store takes changes again: the next command that looks at workflows publishes
    // what the team missed.
    cluster.value(&db, "DROP TRIGGER refuse ON workflows");
    w.ok(&["workflows"]);
    assert_eq!(team(), "grace verified");
}
