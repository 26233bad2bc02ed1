//! The `openai` provider end to end: the keyaudit binary against a stateful fake of
//! OpenAI's Administration API, with Prism validating every request and answer against
//! OpenAI's own OpenAPI description (tests/fixtures/openapi/openai.yaml); any violation
//! fails the test.

mod openai_support;
mod speed_support;
mod team_support;

use openai_support::{text, World};
use serde_json::Value;
use std::collections::BTreeSet;
use team_support::{team_table, Cluster};

fn key<'a>(keys: &'a [Value], id: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key {id} in {keys:#?}"))
}

#[test]
fn openai_sync_lists_exact_keys_and_events_across_pages() {
    let w = World::start();
    let s = w.seed();
    let own = w.fake.with(|st| st.keys[0].id.clone());
    let out = w.ok(&["sync"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    let keys = w.keys();
    let ids: BTreeSet<String> = keys
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = [
        &own,
        &s.admin,
        &s.payroll_user,
        &s.payroll_sa,
        &s.payroll_bo,
        &s.ats_user,
    ]
    .into_iter()
    .cloned()
    .collect();
    assert_eq!(ids, want, "{said}");

    let (value, used) = w.fake.with(|st| {
        let k = st.key(&s.payroll_user).unwrap();
        (k.value.clone(), k.last_used_at.unwrap())
    });
    let k = key(&keys, &s.payroll_user);
    assert_eq!(k["name"], "payroll-sync");
    assert_eq!(k["owner"], "user ana@acme.example");
    assert_eq!(k["status"], "active");
    assert_eq!(
        k["prefix"].as_str().unwrap(),
        format!("sk-proj-…{}", &value[value.len() - 4..])
    );
    let last_used = chrono::DateTime::parse_from_rfc3339(k["last_used"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(last_used, used);
    let sa = key(&keys, &s.payroll_sa);
    assert_eq!(sa["owner"], "service account etl (svc_acct_etl)");
    assert!(sa["purpose"]
        .as_str()
        .unwrap()
        .contains("revoking deletes the service account"));
    assert_eq!(key(&keys, &s.admin)["purpose"], "organization admin key");

    // Pagination across pages: Payroll's three keys took two pages of two, the audit
    // log's six entries three.
    let second = format!(
        "GET /organization/projects/proj_payroll/api_keys?limit=2&after={}",
        s.payroll_sa
    );
    assert_eq!(w.seen(&second).len(), 1, "{:?}", w.seen("api_keys"));
    assert_eq!(w.seen("/organization/audit_logs").len(), 3);

    // Events: one `api_key.created` per key, each on its key.
    let events = w.events();
    assert_eq!(events.len(), 6, "{events:#?}");
    for id in &want {
        assert!(
            events.iter().any(|e| e["key_id"] == id.as_str()
                && e["action"].as_str().unwrap().starts_with("api_key.created")),
            "no creation event of {id}: {events:#?}"
        );
    }
    let e = events
        .iter()
        .find(|e| e["key_id"] == s.ats_user.as_str())
        .unwrap();
    assert_eq!(e["principal"], "ana@acme.example");
    assert_eq!(e["source_ip"], "198.51.100.7");

    // A second sync reads the log only down to what it has: one request, nothing new.
    let before = w.seen("/organization/audit_logs").len();
    let out = w.ok(&["sync"]);
    assert!(
        text(&out.stderr).contains("0 new events") || text(&out.stdout).contains("0 new events"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(w.seen("/organization/audit_logs").len(), before + 1);
    assert_eq!(w.events().len(), 6);
}

#[test]
fn openai_revoke_deletes_each_kind_of_key_and_records_the_event() {
    let w = World::start();
    let s = w.seed();
    w.ok(&["sync"]);
    for id in [&s.payroll_user, &s.payroll_sa, &s.admin] {
        let out = w.ok(&["revoke", &format!("oa/{id}"), "--reason", "leaked", "--yes"]);
        assert!(
            text(&out.stdout).contains("revoke: 1 of 1 key(s) ok"),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            w.fake.with(|st| st.key(id).is_none()),
            "{id} still at OpenAI"
        );
    }
    assert_eq!(
        w.seen(&format!(
            "DELETE /organization/projects/proj_payroll/api_keys/{}",
            s.payroll_user
        ))
        .len(),
        1
    );
    // A service account's key goes with its service account.
    assert_eq!(
        w.seen("DELETE /organization/projects/proj_payroll/service_accounts/svc_acct_etl")
            .len(),
        1
    );
    assert_eq!(
        w.seen(&format!("DELETE /organization/admin_api_keys/{}", s.admin))
            .len(),
        1
    );
    assert_eq!(w.seen("DELETE").len(), 3);
    let keys = w.keys();
    for id in [&s.payroll_user, &s.payroll_sa, &s.admin] {
        assert_eq!(key(&keys, id)["status"], "revoked");
    }
    assert_eq!(key(&keys, &s.payroll_bo)["status"], "active");
    w.ok(&["sync"]);
    let events = w.events();
    for id in [&s.payroll_user, &s.payroll_sa, &s.admin] {
        assert!(
            events.iter().any(|e| e["key_id"] == id.as_str()
                && e["action"].as_str().unwrap().starts_with("api_key.deleted")),
            "no deletion event of {id}: {events:#?}"
        );
    }
    assert_eq!(key(&w.keys(), &s.payroll_user)["status"], "revoked");
}

#[test]
fn openai_read_only_refuses_and_sends_nothing() {
    let w = World::start();
    let s = w.seed();
    w.ok(&["sync"]);
    let id = format!("oa/{}", s.payroll_user);
    let out = w.run(&["--read-only", "revoke", &id, "--reason", "x", "--yes"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(w.seen("DELETE").is_empty());
    assert!(w.fake.with(|st| st.key(&s.payroll_user).is_some()));
}

#[test]
fn openai_missing_permission_is_named() {
    let w = World::start();
    let s = w.seed();
    w.ok(&["sync"]);
    w.fake.with(|st| {
        st.forbidden
            .insert("/organization/projects/proj_payroll/api_keys/".into())
    });
    let out = w.run(&[
        "revoke",
        &format!("oa/{}", s.payroll_bo),
        "--reason",
        "x",
        "--yes",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(
        err.contains("Missing scopes: api.organization.projects.api_keys.write"),
        "{err}"
    );
    assert!(err.contains("admin key"), "{err}");
    assert!(w.fake.with(|st| st.key(&s.payroll_bo).is_some()));
}

#[test]
fn openai_refused_project_listing_keeps_its_keys_and_lists_the_rest() {
    let w = World::start();
    let s = w.seed();
    w.ok(&["sync"]);
    // The admin key may no longer read Payroll's keys (OpenAI answers 403), and
    // meanwhile the key in Applicant tracking is deleted.
    w.fake.with(|st| {
        st.forbidden
            .insert("/organization/projects/proj_payroll/api_keys".into());
        st.keys.retain(|k| k.id != s.ats_user);
    });
    let out = w.ok(&["sync"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("oa: note: the API keys of project Payroll (proj_payroll) not listed, the keys synced before are kept as they were"),
        "{err}"
    );
    assert!(
        err.contains("HTTP 403: You have insufficient permissions"),
        "{err}"
    );
    assert!(
        err.contains("(1 no longer listed; 3 kept as cached, their source not listed)"),
        "{err}"
    );
    let keys = w.keys();
    let status = |id: &str| key(&keys, id)["status"].clone();
    for id in [&s.payroll_user, &s.payroll_sa, &s.payroll_bo] {
        assert_eq!(status(id), "active", "Payroll's key {id} stays as cached");
    }
    assert_eq!(
        status(&s.ats_user),
        "revoked",
        "Applicant tracking was listed whole: the deleted key is gone"
    );
    assert_eq!(status(&s.admin), "active");
}

#[test]
fn openai_429_is_waited_out_and_a_failed_delete_is_not_sent_again() {
    let w = World::start();
    let s = w.seed();
    w.fake.with(|st| st.throttle_next = 2);
    w.ok(&["sync"]);
    // The first listing was answered 429 twice (Retry-After: 1), then served.
    assert_eq!(w.seen("GET /organization/admin_api_keys?limit=2").len(), 3);
    assert_eq!(w.keys().len(), 6);

    // A delete answered 500 (outcome unknown) is not sent again blindly.
    w.fake.with(|st| st.fail_next_change = 1);
    let out = w.run(&[
        "revoke",
        &format!("oa/{}", s.payroll_bo),
        "--reason",
        "x",
        "--yes",
    ]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(w.seen("DELETE").len(), 1, "{said}");
    assert!(w.fake.with(|st| st.key(&s.payroll_bo).is_some()), "{said}");
    assert_eq!(key(&w.keys(), &s.payroll_bo)["status"], "active");
}

#[test]
fn openai_without_audit_logging_syncs_keys_and_says_why_there_are_no_events() {
    let w = World::start();
    w.seed();
    w.fake.with(|st| st.audit_enabled = false);
    let out = w.ok(&["sync"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        said.contains("events skipped") && said.contains("audit logging is not enabled"),
        "{said}"
    );
    assert_eq!(w.keys().len(), 6);
    assert!(w.events().is_empty());
}

#[test]
fn openai_info_lists_capabilities() {
    let w = World::start();
    let out = w.ok(&["info"]);
    let s = text(&out.stdout);
    assert!(s.contains("kind=openai"), "{s}");
    // Keys cannot be created or rotated through OpenAI's API: no `create`, no `rotate`.
    assert!(s.lines().any(|l| l.trim() == "can: events, revoke"), "{s}");
}

#[test]
fn openai_scan_matches_a_found_key_by_its_redacted_value() {
    let w = World::start();
    let s = w.seed();
    w.ok(&["sync"]);
    let value = w
        .fake
        .with(|st| st.key(&s.payroll_bo).unwrap().value.clone());
    let file = w.path("leak.env");
    std::fs::write(&file, format!("OPENAI_API_KEY={value}\n")).unwrap();
    let out = w.run(&["scan", file.to_str().unwrap(), "--format", "json"]);
    let said = text(&out.stdout);
    let _: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {said}{}", text(&out.stderr)));
    assert!(said.contains(&format!("\"{}\"", s.payroll_bo)), "{said}");
    assert!(!said.contains(&value), "the secret is never printed");
}

/// The open workflows as `keyaudit workflows --format json` lists them.
fn workflows(w: &World) -> Vec<Value> {
    let out = w.ok(&["workflows", "--all", "--format", "json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn openai_rotation_is_guided_and_waits_while_the_old_key_is_in_use() {
    let w = World::start();
    let s = w.seed();
    w.ok(&["sync"]);
    let old = s.payroll_user.clone();
    let out = w.ok(&[
        "rotate",
        &format!("oa/{old}"),
        "--quiet",
        "1h",
        "--reason",
        "yearly",
    ]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("guided rotation"), "{said}");
    assert!(
        said.contains("https://platform.openai.com/settings/proj_payroll/api-keys"),
        "{said}"
    );
    assert!(said.contains("user ana@acme.example"), "{said}");
    assert!(w.seen("DELETE").is_empty() && w.seen("POST").is_empty());
    let wf = workflows(&w);
    assert_eq!(wf.len(), 1, "{wf:#?}");
    assert_eq!(wf[0]["kind"], "rotate-guided");
    assert_eq!(wf[0]["key_id"], old.as_str());
    assert_eq!(wf[0]["step"], "awaiting_new");
    assert_eq!(wf[0]["state"], "running");
    assert_eq!(wf[0]["grace_seconds"], 3600);
    // A second `rotate` of the same key continues the same workflow.
    w.ok(&["rotate", &format!("oa/{old}"), "--quiet", "1h"]);
    assert_eq!(workflows(&w).len(), 1);

    // Nothing new yet: a sync leaves it waiting.
    w.ok(&["sync"]);
    assert_eq!(workflows(&w)[0]["step"], "awaiting_new");

    // The operator creates the new key (same project, same owner); the old key is still
    // in use a minute ago.
    let new = w.fake.with(|st| {
        st.now = chrono::Utc::now().timestamp() - 120;
        st.use_key(&old);
        st.add_key(
            "payroll-sync-2026",
            Some("proj_payroll"),
            openai_support::fake::ana(),
        )
    });
    let out = w.ok(&["sync"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        said.contains(&format!(
            "new key {new} found; waiting for the old key to go quiet"
        )),
        "{said}"
    );
    let wf = workflows(&w);
    assert_eq!(wf[0]["step"], "awaiting_quiet");
    assert_eq!(wf[0]["new_key_id"], new.as_str());
    // Resume does not offer the revoke while the old key is in use.
    let out = w.ok(&["resume", &wf[0]["id"].to_string(), "--yes"]);
    assert!(
        text(&out.stdout).contains("waiting for the old key to go quiet"),
        "{}",
        text(&out.stdout)
    );
    assert!(w.seen("DELETE").is_empty());
    assert!(w.fake.with(|st| st.key(&old).is_some()));
}

#[test]
fn openai_guided_rotation_revokes_the_quiet_old_key_after_confirmation() {
    let w = World::start();
    guided_rotation_to_its_revoke(&w);
}

/// With `[team]`, a guided rotation's steps (seen by the syncs that advance it, and the
/// revoke) are in the team journal, each naming the member's user and host, and none in
/// the cache's own journal; the chain verifies.
#[test]
fn a_team_member_s_guided_rotation_is_journaled_in_the_team_journal() {
    let cluster = Cluster::shared();
    let db = cluster.database("guided");
    let w = World::start();
    let config = w.path("config/config.toml");
    let mut text_of = std::fs::read_to_string(&config).unwrap();
    // Every sync asks the provider (a fresh copy is otherwise read instead).
    text_of.push_str(&team_table(&cluster.url("postgres", &db), "1m"));
    text_of.push_str("fresh = \"0s\"\n");
    std::fs::write(&config, text_of).unwrap();
    let (id, _) = guided_rotation_to_its_revoke(&w);
    let team_entries = cluster.value(
        &db,
        "SELECT count(*) FROM journal WHERE params::jsonb->>'kind' = 'rotate-guided'",
    );
    // started, new key appeared, quiet, done; and the revoke's own entries beside them.
    assert_eq!(team_entries, "4");
    let who = cluster.value(
        &db,
        &format!(
            "SELECT string_agg(DISTINCT os_user || '@' || host, ',') FROM journal \
             WHERE params::jsonb->>'workflow' = '{id}'"
        ),
    );
    assert!(!who.is_empty() && !who.contains(','), "{who}");
    let local = text(&w.ok(&["journal", "--local", "--format", "json"]).stdout);
    assert!(
        !local.contains("guided rotation"),
        "the cache's journal holds the team's entries: {local}"
    );
    let out = w.ok(&["journal", "verify"]);
    assert!(
        text(&out.stdout).starts_with("team journal ok"),
        "{}",
        text(&out.stdout)
    );
}

/// Starts a guided rotation of a key quiet for two hours, lets the operator's new key
/// appear, and revokes the old key after confirmation; returns the workflow's id and the
/// new key's.
fn guided_rotation_to_its_revoke(w: &World) -> (String, String) {
    let s = w.seed();
    let old = s.ats_user.clone();
    // The old key was last used two hours ago.
    w.fake.with(|st| {
        st.now = chrono::Utc::now().timestamp() - 7260;
        st.use_key(&old);
    });
    w.ok(&["sync"]);
    w.ok(&["rotate", &format!("oa/{old}"), "--quiet", "1h"]);
    let id = workflows(w)[0]["id"].to_string();
    // A key of another owner in the same project is not the replacement.
    let (other, new) = w.fake.with(|st| {
        st.now = chrono::Utc::now().timestamp() - 60;
        let bo = openai_support::fake::Owner::User(
            "user-bo".into(),
            "bo@acme.example".into(),
            "Bo Chen".into(),
        );
        let other = st.add_key("bo-test", Some("proj_ats"), bo);
        let new = st.add_key(
            "ats-webhook-2",
            Some("proj_ats"),
            openai_support::fake::ana(),
        );
        (other, new)
    });
    let out = w.ok(&["sync"]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        said.contains(&format!("run `keyaudit resume {id}`")),
        "{said}"
    );
    let wf = workflows(w);
    assert_eq!(wf[0]["step"], "ready_to_revoke");
    assert_eq!(wf[0]["new_key_id"], new.as_str());
    assert_ne!(wf[0]["new_key_id"], other.as_str());

    // Without a terminal and without --yes, nothing is revoked.
    let out = w.ok(&["resume", &id]);
    assert!(
        text(&out.stderr).contains("not revoked without confirmation"),
        "{}",
        text(&out.stderr)
    );
    assert!(w.seen("DELETE").is_empty());

    let out = w.ok(&["resume", &id, "--yes"]);
    assert!(
        text(&out.stdout).contains("done: the old key is revoked"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        w.seen(&format!(
            "DELETE /organization/projects/proj_ats/api_keys/{old}"
        ))
        .len(),
        1
    );
    assert_eq!(w.seen("DELETE").len(), 1);
    assert!(w
        .fake
        .with(|st| st.key(&old).is_none() && st.key(&new).is_some()));
    let wf = workflows(w);
    assert_eq!(wf[0]["state"], "done");
    let keys = w.keys();
    assert_eq!(key(&keys, &old)["status"], "revoked");
    assert_eq!(key(&keys, &new)["status"], "active");
    // The journal holds the workflow's steps and the revoke, before and after the call.
    let out = w.ok(&["journal", "--format", "json"]);
    let j = text(&out.stdout);
    for needle in [
        "started: guided rotation",
        "appeared; waiting for the old key",
        "the old key is quiet",
        "done: the old key is revoked",
        &format!("guided rotation #{id}: replaced by {new}"),
    ] {
        assert!(j.contains(needle), "journal lacks `{needle}`: {j}");
    }
    (id, new)
}

/// Sync speed over loopback, straight to the fake (Prism would measure itself): 10,000
/// project keys in two projects, each with its `api_key.created` entry, 100 per page as
/// OpenAI serves at most. Prints keys/s and events/s; run with `--ignored --nocapture`
/// (release for the figures in docs/PERFORMANCE.md).
#[test]
#[ignore = "a measurement; run it by hand"]
fn openai_sync_speed() {
    let w = World::start();
    w.fake.with(|st| {
        for i in 0..10_000 {
            let project = if i % 2 == 0 {
                "proj_payroll"
            } else {
                "proj_ats"
            };
            st.add_key(
                &format!("key-{i}"),
                Some(project),
                openai_support::fake::ana(),
            );
        }
    });
    let direct = w.path("config/direct.toml");
    std::fs::write(
        &direct,
        format!(
            "[[provider]]\nname = \"oa\"\nkind = \"openai\"\nurl = \"{}\"\ntoken_env = \"KA_OA_KEY\"\n\
             page_size = 100\n",
            w.fake.url
        ),
    )
    .unwrap();
    let (took, keys, said) = speed_support::timed_sync(|a| w.cmd(a), &direct);
    assert!(keys.len() >= 10_000, "{}", keys.len());
    let events = w.events();
    println!(
        "openai sync: {} keys and {} audit entries in {took:.2}s: {:.0} keys/s, {:.0} events/s (whole sync); {}",
        keys.len(),
        events.len(),
        keys.len() as f64 / took,
        events.len() as f64 / took,
        said.trim()
    );
}
