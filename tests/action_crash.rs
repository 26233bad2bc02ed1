//! Crash safety of rotation: the binary is aborted (`KEYAUDIT_CRASH_AT`) at every step;
//! `workflows` shows the unfinished rotation and `resume` finishes it or rolls it back,
//! and the cache stays consistent.

mod action_support;

use action_support::{text, World};
use keyaudit::action::rotate::CRASH_POINTS;
use keyaudit::action::workflow::{self, State};
use keyaudit::model::KeyStatus;
use keyaudit::secret::Secret;
use keyaudit::store::Store;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Before the provider rotated: rolled back, nothing changed. From then on: finished
/// (before delivery, the secret is taken again from the provider with the workflow's
/// saved idempotency key).
const ROLLED_BACK: &[&str] = &["planned", "rotating"];
const FINISHED: &[&str] = &[
    "after:rotating",
    "rotated",
    "delivering",
    "after:delivering",
    "delivered",
    "verifying",
    "verified",
];

/// Makes every delivery into `dir` fail: the directory becomes a file.
fn break_dir(dir: &std::path::Path) {
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
}

struct Case {
    point: &'static str,
    old_id: String,
    old_secret: Secret,
    sink: PathBuf,
}

fn crash(w: &World, args: &[&str], point: &str) {
    let out = w
        .cmd(args)
        .env("KEYAUDIT_CRASH_AT", point)
        .output()
        .unwrap();
    assert!(
        !out.status.success() && out.status.code().is_none(),
        "{point}: expected an abort, got {:?}; stderr: {}",
        out.status,
        text(&out.stderr)
    );
}

fn workflow_of(w: &World, key: &str) -> workflow::Workflow {
    let store = Store::open(&w.db()).unwrap();
    assert!(store.integrity_ok().unwrap(), "PRAGMA integrity_check");
    workflow::list(&store, true)
        .unwrap()
        .into_iter()
        .rfind(|x| x.key_id == key)
        .expect("a workflow for the key")
}

#[test]
fn a_rotation_killed_at_any_step_is_finished_or_rolled_back_by_resume() {
    let w = World::start();
    let dir = w.path("sinks");
    std::fs::create_dir_all(&dir).unwrap();
    let grace = Duration::from_secs(4);
    let mut last_rotation = Instant::now();
    let mut cases = Vec::new();
    for point in ROLLED_BACK.iter().chain(FINISHED) {
        assert!(CRASH_POINTS.contains(point));
        let (old, old_secret) = w.create(&format!("crash-{point}"), "Crash Test Partner");
        let sink = dir.join(format!("{}.key", point.replace(':', "_")));
        let spec = format!("file:{}", sink.display());
        let target = format!("talentgrid/{}", old.id);
        crash(
            &w,
            &["rotate", &target, "--deliver", &spec, "--grace", "4s"],
            point,
        );
        last_rotation = Instant::now();
        let out = w.ok(&["workflows"]);
        assert!(
            text(&out.stdout).contains(&target),
            "{point}: `workflows` lists the unfinished rotation: {}",
            text(&out.stdout)
        );
        cases.push(Case {
            point,
            old_id: old.id,
            old_secret,
            sink,
        });
    }

    // One resume reconciles all of them.
    w.ok(&["resume"]);
    let mut delivered = Vec::new();
    for c in &cases {
        let wf = workflow_of(&w, &c.old_id);
        let old = w.remote(&c.old_id);
        if ROLLED_BACK.contains(&c.point) {
            assert_eq!(wf.state, State::RolledBack, "{}: {wf:?}", c.point);
            assert_eq!(old.status, KeyStatus::Active, "{}: old key kept", c.point);
            assert!(w.works(&c.old_secret), "{}: old key still works", c.point);
            assert!(!c.sink.exists(), "{}: nothing delivered", c.point);
            match (&old.rotated_to, c.point) {
                (None, "planned" | "rotating") => assert!(wf.new_key_id.is_none()),
                (Some(n), _) => {
                    assert_eq!(wf.new_key_id.as_ref(), Some(n), "{}", c.point);
                    assert_eq!(w.remote(n).status, KeyStatus::Revoked, "{}", c.point);
                }
                (None, p) => panic!("{p}: the provider should have rotated"),
            }
            assert!(wf.error.is_some(), "{}: the record says why", c.point);
        } else {
            // In its grace period, or already done if the grace ended before the resume.
            assert!(
                matches!(wf.state, State::Grace | State::Done),
                "{}: {wf:?}",
                c.point
            );
            let secret = Secret::new(std::fs::read_to_string(&c.sink).unwrap().trim().into());
            assert!(w.works(&secret), "{}: new key works", c.point);
            assert_eq!(old.rotated_to, wf.new_key_id, "{}", c.point);
            assert_eq!(
                w.remote(wf.new_key_id.as_deref().unwrap()).status,
                KeyStatus::Active
            );
            delivered.push(secret);
        }
    }

    // After the grace period, resume retires the old keys of the finished rotations.
    std::thread::sleep(
        (grace + Duration::from_millis(500)).saturating_sub(last_rotation.elapsed()),
    );
    w.ok(&["resume"]);
    for c in cases.iter().filter(|c| FINISHED.contains(&c.point)) {
        assert_eq!(workflow_of(&w, &c.old_id).state, State::Done, "{}", c.point);
        assert_eq!(
            w.remote(&c.old_id).status,
            KeyStatus::Revoked,
            "{}",
            c.point
        );
    }
    let out = w.ok(&["workflows"]);
    assert!(
        text(&out.stdout).lines().count() <= 1,
        "nothing unfinished: {}",
        text(&out.stdout)
    );
    w.ok(&["journal", "verify"]);
    let sinks: Vec<&std::path::Path> = cases.iter().map(|c| c.sink.as_path()).collect();
    for s in &delivered {
        w.assert_secret_nowhere(s.expose(), &sinks);
    }
}

#[test]
fn crashes_while_finishing_and_while_rolling_back_are_resumed() {
    let w = World::start();
    // No grace: the rotation goes straight on to revoke the old key; killed there.
    let (a, _) = w.create("finish-a", "Crash Test Partner");
    let sink_a = w.path("a.key");
    crash(
        &w,
        &[
            "rotate",
            &format!("talentgrid/{}", a.id),
            "--deliver",
            &format!("file:{}", sink_a.display()),
            "--grace",
            "0s",
        ],
        "finishing",
    );
    assert_eq!(workflow_of(&w, &a.id).state, State::Grace);
    w.ok(&["resume"]);
    assert_eq!(workflow_of(&w, &a.id).state, State::Done);
    assert_eq!(w.remote(&a.id).status, KeyStatus::Revoked);

    // Killed after the provider rotated; the delivery on resume fails, and the resume is
    // killed again in the middle of the rollback.
    let (b, b_secret) = w.create("rollback-b", "Crash Test Partner");
    std::fs::create_dir_all(w.path("bdir")).unwrap();
    let sink_b = w.path("bdir/b.key");
    crash(
        &w,
        &[
            "rotate",
            &format!("talentgrid/{}", b.id),
            "--deliver",
            &format!("file:{}", sink_b.display()),
            "--grace",
            "1h",
        ],
        "rotated",
    );
    break_dir(&w.path("bdir"));
    crash(&w, &["resume"], "rolling_back");
    assert_eq!(workflow_of(&w, &b.id).state, State::Running);
    w.ok(&["resume"]);
    let wf = workflow_of(&w, &b.id);
    assert_eq!(wf.state, State::RolledBack);
    assert_eq!(
        w.remote(wf.new_key_id.as_deref().unwrap()).status,
        KeyStatus::Revoked
    );
    assert!(w.works(&b_secret));

    // A disabled (say, leaked) key is rotated; the rollback must not enable it again.
    let (c, c_secret) = w.create("leaked-c", "Crash Test Partner");
    let tc = format!("talentgrid/{}", c.id);
    w.ok(&["disable", &tc, "--reason", "leaked", "--yes"]);
    std::fs::create_dir_all(w.path("cdir")).unwrap();
    let spec_c = format!("file:{}", w.path("cdir/c.key").display());
    crash(
        &w,
        &["rotate", &tc, "--deliver", &spec_c, "--grace", "1h"],
        "rotated",
    );
    break_dir(&w.path("cdir"));
    w.run(&["resume"]);
    assert_eq!(workflow_of(&w, &c.id).state, State::RolledBack);
    assert_eq!(w.remote(&c.id).status, KeyStatus::Inactive);
    assert!(!w.works(&c_secret));

    // A key rotated before: a second rotation cut off before the provider call must not
    // take the first rotation's new key for its own.
    let (d, _) = w.create("twice-d", "Crash Test Partner");
    let td = format!("talentgrid/{}", d.id);
    let spec_d1 = format!("file:{}", w.path("d1.key").display());
    w.ok(&["rotate", &td, "--deliver", &spec_d1, "--grace", "1h"]);
    let first = w.remote(&d.id).rotated_to.unwrap();
    let spec_d2 = format!("file:{}", w.path("d2.key").display());
    crash(
        &w,
        &["rotate", &td, "--deliver", &spec_d2, "--grace", "1h"],
        "rotating",
    );
    w.ok(&["resume"]);
    assert_eq!(workflow_of(&w, &d.id).state, State::RolledBack);
    assert_eq!(w.remote(&first).status, KeyStatus::Active);
    assert_eq!(w.remote(&d.id).rotated_to.as_deref(), Some(first.as_str()));
    w.ok(&["journal", "verify"]);
}
