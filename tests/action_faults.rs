//! The fault matrix: rotations (and the create step inside them), revokes, disables and a
//! bulk revoke of 50 keys, run through the keyaudit binary against the demo while it
//! loses the answers to changes (`lost-answer`) or answers them `500` after applying
//! them (`500-after`), at rates 0.3 and 1.0; and rotations killed at every step while
//! every answer to a change is lost. Afterwards (and after `keyaudit resume` where a
//! command exited 1): each rotation left exactly one new active key, whose delivered
//! secret authenticates; no key keyaudit created is active without having been
//! delivered; revoked keys are revoked; the journal says what happened, once per key.

mod action_support;

use action_support::{text, World};
use chrono::{DateTime, Utc};
use keyaudit::action::rotate::CRASH_POINTS;
use keyaudit::action::workflow::{self, State};
use keyaudit::model::{Key, KeyStatus};
use keyaudit::secret::Secret;
use keyaudit::store::Store;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Bulk size of the matrix.
const BULK: usize = 50;

/// Keys the test made itself (through the provider, not keyaudit).
struct Fixture {
    w: World,
    since: DateTime<Utc>,
    made: HashSet<String>,
}

impl Fixture {
    fn start(faults: &str) -> Fixture {
        let w = World::start_faulty(faults);
        let since = Utc::now() - chrono::Duration::seconds(2);
        Fixture {
            w,
            since,
            made: HashSet::new(),
        }
    }

    fn key(&mut self, name: &str, owner: &str) -> Key {
        let (k, _) = self.w.create(name, owner);
        self.made.insert(k.id.clone());
        k
    }

    /// Runs a command; when it exits 1, runs `keyaudit resume` too (which must succeed).
    /// Returns the command's stdout.
    fn run_or_resume(&self, args: &[&str]) -> String {
        let out = self.w.run(args);
        match out.status.code() {
            Some(0) => {}
            Some(1) => {
                self.w.ok(&["resume"]);
            }
            other => panic!(
                "keyaudit {args:?}: exit {other:?}\nstdout: {}\nstderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            ),
        }
        text(&out.stdout)
    }

    /// Every key the provider holds that keyaudit created during the test.
    fn created_by_keyaudit(&self) -> Vec<Key> {
        let mut all = Vec::new();
        let mut page = None;
        loop {
            let p = self
                .w
                .rt
                .block_on(self.w.provider.list_keys(page.as_deref()))
                .unwrap();
            all.extend(p.keys);
            match p.next {
                Some(n) => page = Some(n),
                None => break,
            }
        }
        all.into_iter()
            .filter(|k| k.created.is_some_and(|c| c >= self.since) && !self.made.contains(&k.id))
            .collect()
    }

    /// Asserts that the active keys keyaudit created are exactly `delivered` (key id ->
    /// the secret its sink holds), and that each secret authenticates as its key.
    fn assert_only_delivered_keys_are_active(
        &self,
        ctx: &str,
        delivered: &HashMap<String, Secret>,
    ) {
        let active: HashSet<String> = self
            .created_by_keyaudit()
            .into_iter()
            .filter(|k| k.status == KeyStatus::Active)
            .map(|k| k.id)
            .collect();
        let expected: HashSet<String> = delivered.keys().cloned().collect();
        assert_eq!(
            active, expected,
            "{ctx}: the active keys keyaudit created are exactly the delivered ones"
        );
        for (id, secret) in delivered {
            let who = self
                .w
                .rt
                .block_on(self.w.provider.verify_secret(secret))
                .unwrap_or_else(|e| panic!("{ctx}: the delivered secret of {id} is refused: {e}"));
            assert_eq!(&who, id, "{ctx}: the delivered secret is the new key's");
        }
    }

    fn journal_of(&self, target: &str) -> Vec<serde_json::Value> {
        self.w
            .journal()
            .into_iter()
            .filter(|e| e["target"] == target)
            .collect()
    }
}

fn secret_in(path: &Path) -> Secret {
    Secret::new(std::fs::read_to_string(path).unwrap().trim().to_string())
}

fn workflow_of(w: &World, key: &str) -> workflow::Workflow {
    let store = Store::open(&w.db()).unwrap();
    workflow::list(&store, true)
        .unwrap()
        .into_iter()
        .rfind(|x| x.key_id == key)
        .expect("a workflow for the key")
}

fn result(e: &serde_json::Value) -> &str {
    e["result"].as_str().unwrap_or("")
}

/// One rotation with a grace period, one without, a revoke, a disable and a bulk revoke
/// of [`BULK`] keys under `faults`.
fn matrix(faults: &str) {
    let mut f = Fixture::start(faults);
    let a = f.key("faults-rotate-grace", "Fault Partner A");
    let b = f.key("faults-rotate-now", "Fault Partner B");
    let r = f.key("faults-revoke", "Fault Partner C");
    let d = f.key("faults-disable", "Fault Partner D");
    let bulk: Vec<Key> = (0..BULK)
        .map(|i| f.key(&format!("faults-bulk-{i:02}"), "Fault Partner E"))
        .collect();
    let sinks = f.w.path("sinks");
    std::fs::create_dir_all(&sinks).unwrap();
    let mut delivered = HashMap::new();

    // Rotations: the create step (the provider issues the new key) and the retirement.
    for (k, grace) in [(&a, "1h"), (&b, "0s")] {
        let sink = sinks.join(format!("{}.key", k.id));
        let target = format!("talentgrid/{}", k.id);
        f.run_or_resume(&[
            "rotate",
            &target,
            "--deliver",
            &format!("file:{}", sink.display()),
            "--grace",
            grace,
            "--reason",
            "fault matrix",
        ]);
        let wf = workflow_of(&f.w, &k.id);
        let old = f.w.remote(&k.id);
        let new_id = old
            .rotated_to
            .clone()
            .unwrap_or_else(|| panic!("{faults}: {target} was rotated: {wf:?}"));
        assert_eq!(wf.new_key_id.as_ref(), Some(&new_id), "{faults}: {wf:?}");
        let (state, old_status) = if grace == "0s" {
            (State::Done, KeyStatus::Revoked)
        } else {
            (State::Grace, KeyStatus::Active)
        };
        assert_eq!(wf.state, state, "{faults}: {wf:?}");
        assert_eq!(old.status, old_status, "{faults}: old key of {target}");
        delivered.insert(new_id.clone(), secret_in(&sink));
        let entries = f.journal_of(&target);
        let rotations: Vec<&serde_json::Value> =
            entries.iter().filter(|e| e["action"] == "rotate").collect();
        assert_eq!(result(rotations[0]), "started", "{faults}: {rotations:?}");
        let ok = format!("ok: new key {new_id} delivered to file:");
        assert!(
            rotations
                .iter()
                .filter(|e| result(e).starts_with(&ok))
                .count()
                == 1,
            "{faults}: the journal names the one new key: {rotations:?}"
        );
        assert!(
            !rotations
                .iter()
                .any(|e| result(e).starts_with("rolled back")),
            "{faults}: {rotations:?}"
        );
    }

    // Single-key revoke and disable.
    for (k, verb, status) in [
        (&r, "revoke", KeyStatus::Revoked),
        (&d, "disable", KeyStatus::Inactive),
    ] {
        let target = format!("talentgrid/{}", k.id);
        f.run_or_resume(&[verb, &target, "--reason", "fault matrix", "--yes"]);
        assert_eq!(
            f.w.remote(&k.id).status,
            status,
            "{faults}: {verb} {target}"
        );
        let entries: Vec<serde_json::Value> = f
            .journal_of(&target)
            .into_iter()
            .filter(|e| e["action"] == verb)
            .collect();
        assert_eq!(
            entries.len(),
            2,
            "{faults}: {verb} journaled once: {entries:?}"
        );
        assert_eq!(result(&entries[0]), "started");
        assert!(
            result(&entries[1]).starts_with(&format!("ok: status {status}")),
            "{faults}: {entries:?}"
        );
    }

    // Bulk revoke.
    let mut args: Vec<String> = vec!["revoke".into()];
    args.extend(bulk.iter().map(|k| format!("talentgrid/{}", k.id)));
    args.extend(["--reason".into(), "fault matrix".into(), "--yes".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = f.run_or_resume(&args);
    assert!(
        out.contains(&format!("revoke: {BULK} of {BULK} key(s) ok")),
        "{faults}: {out}"
    );
    let journal = f.w.journal();
    for k in &bulk {
        assert_eq!(f.w.remote(&k.id).status, KeyStatus::Revoked, "{faults}");
        let target = format!("talentgrid/{}", k.id);
        let mine: Vec<&serde_json::Value> = journal
            .iter()
            .filter(|e| e["target"] == target.as_str() && e["action"] == "revoke")
            .collect();
        assert_eq!(mine.len(), 2, "{faults}: {target} journaled once: {mine:?}");
        assert!(
            result(mine[1]).starts_with("ok: status revoked"),
            "{faults}: {mine:?}"
        );
    }
    assert!(
        !journal.iter().any(|e| result(e).starts_with("failed")),
        "{faults}: nothing failed"
    );

    f.assert_only_delivered_keys_are_active(faults, &delivered);
    f.w.ok(&["journal", "verify"]);
    let out = f.w.ok(&["workflows"]);
    assert!(
        !text(&out.stdout).contains("running"),
        "{faults}: no unfinished workflow: {}",
        text(&out.stdout)
    );
}

#[test]
fn lost_answers_at_30_percent() {
    matrix("lost-answer=0.3");
}

#[test]
fn lost_answers_always() {
    matrix("lost-answer=1.0");
}

#[test]
fn errors_after_applying_at_30_percent() {
    matrix("500-after=0.3");
}

#[test]
fn errors_after_applying_always() {
    matrix("500-after=1.0");
}

/// Before the provider rotated, a killed rotation is rolled back; from then on it is
/// finished by `resume`, even though every answer to a change is lost.
#[test]
fn a_rotation_killed_at_every_step_while_answers_are_lost_ends_with_one_delivered_key() {
    let mut f = Fixture::start("lost-answer=1.0");
    let sinks = f.w.path("sinks");
    std::fs::create_dir_all(&sinks).unwrap();
    let mut delivered = HashMap::new();
    // With no grace period a rotation passes every step but the rollback in one run.
    let points: Vec<&str> = CRASH_POINTS
        .iter()
        .copied()
        .filter(|p| *p != "rolling_back")
        .collect();
    for point in points {
        let k = f.key(&format!("killed-{point}"), &format!("Killed {point}"));
        let sink = sinks.join(format!("{}.key", point.replace(':', "_")));
        let target = format!("talentgrid/{}", k.id);
        let out =
            f.w.cmd(&[
                "rotate",
                &target,
                "--deliver",
                &format!("file:{}", sink.display()),
                "--grace",
                "0s",
            ])
            .env("KEYAUDIT_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(
            out.status.code().is_none(),
            "{point}: expected the process to be killed: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        f.w.ok(&["resume"]);
        let wf = workflow_of(&f.w, &k.id);
        let old = f.w.remote(&k.id);
        if matches!(point, "planned" | "rotating") {
            assert_eq!(wf.state, State::RolledBack, "{point}: {wf:?}");
            assert_eq!(old.rotated_to, None, "{point}: nothing was rotated");
            assert_eq!(old.status, KeyStatus::Active, "{point}");
            assert!(!sink.exists(), "{point}");
        } else {
            assert_eq!(wf.state, State::Done, "{point}: {wf:?}");
            assert_eq!(old.status, KeyStatus::Revoked, "{point}: old key retired");
            let new_id = old.rotated_to.clone().expect("rotated");
            assert_eq!(wf.new_key_id.as_ref(), Some(&new_id), "{point}");
            delivered.insert(new_id, secret_in(&sink));
        }
        f.assert_only_delivered_keys_are_active(point, &delivered);
    }
    f.w.ok(&["journal", "verify"]);
}

/// A provider without idempotency whose every creating call is applied and then
/// unanswered (the demo behind it rotates; the answer never arrives).
struct Unanswered(std::sync::Arc<dyn keyaudit::provider::Provider>);

#[async_trait::async_trait]
impl keyaudit::provider::Provider for Unanswered {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &str {
        "unanswered"
    }
    fn capabilities(&self) -> keyaudit::provider::Capabilities {
        keyaudit::provider::Capabilities {
            retry_changes: false,
            rotate_in_place: false,
            rotate_guided: false,
            ..self.0.capabilities()
        }
    }
    async fn list_keys(
        &self,
        page: Option<&str>,
    ) -> keyaudit::provider::Result<keyaudit::provider::KeyPage> {
        self.0.list_keys(page).await
    }
    async fn list_events(
        &self,
        cursor: Option<&str>,
    ) -> keyaudit::provider::Result<keyaudit::provider::EventPage> {
        self.0.list_events(cursor).await
    }
    async fn get_key(&self, id: &str) -> keyaudit::provider::Result<Key> {
        self.0.get_key(id).await
    }
    async fn disable(&self, id: &str) -> keyaudit::provider::Result<Key> {
        self.0.disable(id).await
    }
    async fn enable(&self, id: &str) -> keyaudit::provider::Result<Key> {
        self.0.enable(id).await
    }
    async fn revoke(&self, id: &str) -> keyaudit::provider::Result<Key> {
        self.0.revoke(id).await
    }
    async fn rotate(
        &self,
        id: &str,
        grace: std::time::Duration,
    ) -> keyaudit::provider::Result<keyaudit::provider::Issued> {
        let issued = self.0.rotate(id, grace).await?;
        drop(issued);
        Err(keyaudit::provider::ProviderError::Ambiguous {
            provider: self.name().into(),
            message: "connection closed before message completed".into(),
        })
    }
    async fn verify_secret(&self, secret: &Secret) -> keyaudit::provider::Result<String> {
        self.0.verify_secret(secret).await
    }
}

/// Where the provider cannot take a change again, a rotation whose answer was lost is
/// settled by listing: the key it created is revoked and journaled as `orphan-revoked`,
/// the old key keeps working, and the rotation is rolled back.
#[test]
fn without_idempotency_an_unanswered_rotation_leaves_no_orphan() {
    let mut f = Fixture::start("");
    let (old, old_secret) = f.w.create("settle-old", "Settle Partner");
    f.made.insert(old.id.clone());
    std::fs::create_dir_all(f.w.db().parent().unwrap()).unwrap();
    let cache = keyaudit::store::Cache::new(f.w.db());
    let provider: std::sync::Arc<dyn keyaudit::provider::Provider> =
        std::sync::Arc::new(Unanswered(f.w.provider.clone()));
    let sink = f.w.path("settle.key");
    let wf =
        f.w.rt
            .block_on(keyaudit::action::rotate::rotate(
                &cache,
                keyaudit::action::rotate::RotateRequest {
                    provider,
                    key: old.clone(),
                    sink: keyaudit::action::sink::Sink::parse(&format!("file:{}", sink.display()))
                        .unwrap(),
                    grace: std::time::Duration::from_secs(3600),
                    force: false,
                    reason: Some("settlement".into()),
                },
            ))
            .unwrap();
    assert_eq!(wf.state, State::RolledBack, "{wf:?}");
    assert!(!sink.exists());
    let orphan =
        f.w.remote(&old.id)
            .rotated_to
            .expect("the provider rotated");
    assert_eq!(f.w.remote(&orphan).status, KeyStatus::Revoked, "the orphan");
    assert_eq!(f.w.remote(&old.id).status, KeyStatus::Active);
    assert!(f.w.works(&old_secret), "the old key still works");
    f.assert_only_delivered_keys_are_active("settlement", &HashMap::new());
    let store = Store::open(&f.w.db()).unwrap();
    let settled: Vec<_> = store
        .journal(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "orphan-revoked")
        .collect();
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert_eq!(settled[0].target, format!("talentgrid/{orphan}"));
    assert!(settled[0]
        .result
        .starts_with(&format!("ok: orphan {orphan} is revoked")));
}
