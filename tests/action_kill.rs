//! Real crashes of rotation: the `keyaudit rotate` process is stopped at each step
//! (`KEYAUDIT_TEST_PAUSE_AT`, which announces the step on stderr and waits) and killed
//! there with SIGKILL, as the OOM killer or a pulled plug would, not by its own abort.
//! `keyaudit resume` then finishes or rolls back every rotation: no key keyaudit created
//! is left active without its secret delivered, each delivered secret authenticates, and
//! the journal verifies.

mod action_support;

use action_support::{text, World};
use keyaudit::action::rotate::CRASH_POINTS;
use keyaudit::action::workflow::{self, State};
use keyaudit::model::{Key, KeyStatus};
use keyaudit::secret::Secret;
use keyaudit::store::Store;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

/// Runs `keyaudit ARGS` until it announces `point`, then SIGKILLs it.
fn kill_at(w: &World, args: &[&str], point: &str) {
    let mut child = w
        .cmd(args)
        .env("KEYAUDIT_TEST_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let want = format!("keyaudit: paused at {point}");
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("{point}: the process ended ({status:?}) without reaching the step: {said}");
        }
        said.push_str(&line);
        if line.trim_end() == want {
            break;
        }
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{point}: killed by SIGKILL");
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

/// Every key of `owner` at the provider.
fn keys_of(w: &World, owner: &str) -> Vec<Key> {
    let mut all = Vec::new();
    let mut page = None;
    loop {
        let p =
            w.rt.block_on(w.provider.list_keys(page.as_deref()))
                .unwrap();
        all.extend(p.keys.into_iter().filter(|k| k.owner == owner));
        match p.next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    all
}

fn secret_in(path: &Path) -> Secret {
    Secret::new(std::fs::read_to_string(path).unwrap().trim().to_string())
}

#[test]
fn a_rotation_sigkilled_at_every_step_is_finished_or_rolled_back_by_resume() {
    let w = World::start();
    let sinks = w.path("sinks");
    std::fs::create_dir_all(&sinks).unwrap();
    // With no grace period one run passes every step but the rollback's.
    let points: Vec<&str> = CRASH_POINTS
        .iter()
        .copied()
        .filter(|p| *p != "rolling_back")
        .collect();
    let mut cases = Vec::new();
    for point in &points {
        let owner = format!("Killed at {point}");
        let (old, old_secret) = w.create(&format!("sigkill-{point}"), &owner);
        let sink = sinks.join(format!("{}.key", point.replace(':', "_")));
        let target = format!("talentgrid/{}", old.id);
        let spec = format!("file:{}", sink.display());
        kill_at(
            &w,
            &["rotate", &target, "--deliver", &spec, "--grace", "0s"],
            point,
        );
        let out = w.ok(&["workflows"]);
        assert!(
            text(&out.stdout).contains(&target),
            "{point}: `workflows` lists the unfinished rotation: {}",
            text(&out.stdout)
        );
        cases.push((*point, owner, old, old_secret, sink));
    }

    let out = w.ok(&["resume"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    for (point, owner, old, old_secret, sink) in &cases {
        let wf = workflow_of(&w, &old.id);
        let now = w.remote(&old.id);
        let mut delivered: HashMap<String, Secret> = HashMap::new();
        if matches!(*point, "planned" | "rotating") {
            assert_eq!(wf.state, State::RolledBack, "{point}: {wf:?}");
            assert_eq!(now.status, KeyStatus::Active, "{point}: old key kept");
            assert!(w.works(old_secret), "{point}: the old key still works");
            assert!(!sink.exists(), "{point}: nothing delivered");
        } else {
            assert_eq!(wf.state, State::Done, "{point}: {wf:?}");
            assert_eq!(now.status, KeyStatus::Revoked, "{point}: old key retired");
            let new_id = now.rotated_to.clone().expect("rotated");
            assert_eq!(wf.new_key_id.as_ref(), Some(&new_id), "{point}");
            let secret = secret_in(sink);
            assert_eq!(
                w.rt.block_on(w.provider.verify_secret(&secret)).unwrap(),
                new_id,
                "{point}: the delivered secret authenticates as the new key"
            );
            delivered.insert(new_id, secret);
        }
        // No live orphan: the only active key of this owner besides the old one (when
        // kept) is the delivered one.
        let active: HashSet<String> = keys_of(&w, owner)
            .into_iter()
            .filter(|k| k.status == KeyStatus::Active && k.id != old.id)
            .map(|k| k.id)
            .collect();
        let expected: HashSet<String> = delivered.keys().cloned().collect();
        assert_eq!(active, expected, "{point}: active keys keyaudit created");
        assert!(
            said.contains(&format!("talentgrid/{}", old.id)),
            "{point}: resume says what it did: {said}"
        );
    }

    // Killed after the provider rotated; the delivery on resume fails (the sink's
    // directory became a file), and that resume is killed in the middle of its rollback.
    let owner = "Killed while rolling back";
    let (b, b_secret) = w.create("sigkill-rollback", owner);
    std::fs::create_dir_all(w.path("bdir")).unwrap();
    let spec = format!("file:{}", w.path("bdir/b.key").display());
    let target = format!("talentgrid/{}", b.id);
    kill_at(
        &w,
        &["rotate", &target, "--deliver", &spec, "--grace", "1h"],
        "rotated",
    );
    std::fs::remove_dir_all(w.path("bdir")).unwrap();
    std::fs::write(w.path("bdir"), b"not a directory").unwrap();
    kill_at(&w, &["resume"], "rolling_back");
    assert_eq!(workflow_of(&w, &b.id).state, State::Running);
    w.run(&["resume"]);
    let wf = workflow_of(&w, &b.id);
    assert_eq!(wf.state, State::RolledBack, "{wf:?}");
    let new_id = wf.new_key_id.clone().expect("the provider had rotated");
    assert_eq!(
        w.remote(&new_id).status,
        KeyStatus::Revoked,
        "new key revoked"
    );
    assert!(w.works(&b_secret), "the old key still works");
    assert!(
        keys_of(&w, owner)
            .iter()
            .all(|k| k.id == b.id || k.status != KeyStatus::Active),
        "no live orphan"
    );

    let out = w.ok(&["workflows"]);
    assert!(
        text(&out.stdout).lines().count() <= 1,
        "nothing unfinished: {}",
        text(&out.stdout)
    );
    w.ok(&["journal", "verify"]);
}
