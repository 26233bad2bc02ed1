//! `rotate` through the binary against the demo provider: overlap with a short grace,
//! the sinks, the rotated-key-use finding, and that the new secret lands nowhere else.

mod action_support;

use action_support::{text, World};
use keyaudit::action::workflow::{self, State};
use keyaudit::model::{KeyStatus, Severity};
use keyaudit::secret::Secret;
use keyaudit::store::Store;
use std::time::{Duration, Instant};

fn secret_of_file(p: &std::path::Path) -> Secret {
    Secret::new(std::fs::read_to_string(p).unwrap().trim().to_string())
}

#[test]
fn overlap_rotation_to_a_file_with_grace_and_the_rotated_key_use_finding() {
    let w = World::start();
    let (old, old_secret) = w.create("payroll-sync", "Acme Payroll");
    w.ok(&["sync"]);
    let sink = w.path("out/new.key");
    std::fs::create_dir_all(sink.parent().unwrap()).unwrap();
    let target = format!("talentgrid/{}", old.id);

    // Dry run changes nothing.
    let spec = format!("file:{}", sink.display());
    let out = w.ok(&[
        "rotate",
        &target,
        "--deliver",
        &spec,
        "--grace",
        "4s",
        "--dry-run",
    ]);
    assert!(
        text(&out.stdout).contains("with overlap"),
        "{}",
        text(&out.stdout)
    );
    assert!(!sink.exists());
    assert!(w.remote(&old.id).rotated_to.is_none());

    let started = Instant::now();
    w.ok(&[
        "rotate",
        &target,
        "--deliver",
        &spec,
        "--grace",
        "4s",
        "--reason",
        "yearly",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sink).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let new_secret = secret_of_file(&sink);
    let new_id = w
        .remote(&old.id)
        .rotated_to
        .expect("old key names its successor");
    assert_eq!(w.remote(&new_id).status, KeyStatus::Active);
    assert!(w.works(&new_secret), "the new key authenticates");
    assert!(
        w.works(&old_secret),
        "the old key works during the grace period"
    );

    // The old key was used after the switch: a sync raises the finding.
    w.ok(&["sync"]);
    let store = Store::open(&w.db()).unwrap();
    let wf = workflow::list(&store, false)
        .unwrap()
        .pop()
        .expect("workflow in grace");
    assert_eq!(wf.state, State::Grace);
    assert_eq!(wf.new_key_id.as_deref(), Some(new_id.as_str()));
    let f = store
        .finding(&workflow::finding_id(&wf))
        .unwrap()
        .expect("rotated_key_used finding");
    assert_eq!(f.rule, "rotated_key_used");
    assert_eq!(f.severity, Severity::High);
    assert!(!f.evidence.is_empty());
    drop(store);

    // After the grace period the old key fails; resume retires it.
    let left = Duration::from_secs(4).saturating_sub(started.elapsed());
    std::thread::sleep(left + Duration::from_millis(600));
    assert!(
        !w.works(&old_secret),
        "the old key stops after the grace period"
    );
    assert!(w.works(&new_secret));
    let out = w.ok(&["workflows"]);
    assert!(text(&out.stdout).contains("grace"), "{}", text(&out.stdout));
    w.ok(&["resume"]);
    assert_eq!(w.remote(&old.id).status, KeyStatus::Revoked);
    let out = w.ok(&["workflows"]);
    assert!(!text(&out.stdout).contains(&old.id), "nothing unfinished");
    let out = w.ok(&["workflows", "--all", "--format", "json"]);
    assert!(text(&out.stdout).contains("\"done\""));

    // The same sink again without --force: refused before a key is created.
    let (other, _) = w.create("ats-sync", "Brightpath ATS");
    let out = w.run(&[
        "rotate",
        &format!("talentgrid/{}", other.id),
        "--deliver",
        &spec,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert!(w.remote(&other.id).rotated_to.is_none());

    let journal = w.journal();
    let rotate: Vec<_> = journal.iter().filter(|e| e["action"] == "rotate").collect();
    assert!(rotate
        .iter()
        .any(|e| e["result"].as_str().unwrap().starts_with("ok:")));
    assert!(rotate
        .iter()
        .any(|e| e["result"] == "done: old key revoked"));
    w.ok(&["journal", "verify"]);
    w.assert_secret_nowhere(new_secret.expose(), &[&sink]);
}

#[test]
fn env_file_and_stdout_sinks() {
    let w = World::start();
    let (k1, _) = w.create("bg-check", "Verity Checks");
    let (k2, _) = w.create("onboard", "Hello Onboard");
    w.ok(&["sync"]);

    // env-file: one variable replaced, every other byte kept.
    let env = w.path("app/.env");
    std::fs::create_dir_all(env.parent().unwrap()).unwrap();
    let before = "# app\r\nDB_URL=postgres://x\nTG_KEY=old-value\n\nOTHER='a b' # keep\n";
    std::fs::write(&env, before).unwrap();
    let spec = format!("env-file:{}:TG_KEY", env.display());
    w.ok(&[
        "rotate",
        &format!("talentgrid/{}", k1.id),
        "--deliver",
        &spec,
        "--grace",
        "1h",
    ]);
    let after = std::fs::read_to_string(&env).unwrap();
    let value = keyaudit::action::sink::get_env_var(after.as_bytes(), "TG_KEY").unwrap();
    let secret = Secret::new(value.to_string());
    assert_eq!(
        after,
        before.replace("old-value", secret.expose()),
        "only the variable changed"
    );
    assert!(w.works(&secret));

    // stdout: refused when it is not a terminal (before anything is created) ...
    let t2 = format!("talentgrid/{}", k2.id);
    let out = w.run(&["rotate", &t2, "--deliver", "stdout"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a terminal"),
        "{}",
        text(&out.stderr)
    );
    assert!(w.remote(&k2.id).rotated_to.is_none());
    // ... and allowed with --force.
    let out = w.ok(&[
        "rotate",
        &t2,
        "--deliver",
        "stdout",
        "--force",
        "--grace",
        "1h",
    ]);
    let printed = Secret::new(text(&out.stdout).trim().to_string());
    assert!(w.works(&printed));

    // A malformed sink is a usage error naming the forms.
    let out = w.run(&["rotate", &t2, "--deliver", "s3://bucket"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("env-file:PATH:VAR"));

    // Read-only: refused, nothing rotated.
    let out = w.run(&[
        "--read-only",
        "rotate",
        &format!("talentgrid/{}", k1.id),
        "--deliver",
        "stdout",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("read-only"));

    w.ok(&["journal", "verify"]);
    w.assert_secret_nowhere(secret.expose(), &[&env]);
    w.assert_secret_nowhere(printed.expose(), &[]);
}
