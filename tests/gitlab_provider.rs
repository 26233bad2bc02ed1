//! The `gitlab` provider end to end: the keyaudit binary against a stateful fake of
//! GitLab's REST API, with Prism validating every request and answer against GitLab's
//! API description (tests/fixtures/openapi/gitlab.yaml); any violation fails the test.

mod gitlab_support;
mod speed_support;

use gitlab_support::{text, World};
use serde_json::Value;
use std::collections::BTreeSet;

fn ids(keys: &[Value]) -> BTreeSet<String> {
    keys.iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect()
}

fn key<'a>(keys: &'a [Value], id: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key {id} in {keys:?}"))
}

#[test]
fn gitlab_sync_lists_exact_keys_and_events_across_pages() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let keys = w.keys();
    // keyaudit's own token (101) and the five seeded ones, each once, though the
    // administrator's personal listing holds only personal tokens here.
    let want: BTreeSet<String> = std::iter::once(101)
        .chain(seeded.iter().copied())
        .map(|n| format!("token:{n}"))
        .collect();
    assert_eq!(ids(&keys), want);
    let ci = key(&keys, &format!("token:{}", seeded[2]));
    assert_eq!(ci["name"], "payroll-ci");
    assert_eq!(ci["owner"], "project acme/payroll");
    assert_eq!(ci["status"], "active");
    let scopes: Vec<&str> = ci["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["read_api", "write_repository", "role:maintainer"]);
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[3]))["owner"],
        "group 9"
    );
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[4]))["status"],
        "revoked"
    );
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[0]))["owner"],
        "user 1"
    );

    // Pagination across pages: 2 per page, so the personal listing (3 tokens) took two.
    assert!(
        !w.seen("/personal_access_tokens?page=2").is_empty(),
        "{:?}",
        w.seen("personal_access_tokens")
    );

    // Events: six audit events (five creations, one revocation), each once, each on
    // its token, though the project's and group's also come from the instance stream.
    let out = w.ok(&[
        "events",
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["key_id"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(events.len(), 6, "{events:#?}");
    for (i, kind) in [
        "personal_access_token",
        "personal_access_token",
        "project_access_token",
        "group_access_token",
        "project_access_token",
    ]
    .iter()
    .enumerate()
    {
        let id = seeded[i];
        assert!(
            got.iter()
                .any(|(k, a)| *k == format!("token:{id}")
                    && a.starts_with(&format!("{kind}_created"))),
            "no creation event of {id}: {got:?}"
        );
    }
    assert!(got
        .iter()
        .any(|(k, a)| *k == format!("token:{}", seeded[4]) && a.contains("revoked")));

    // A second sync brings nothing twice.
    w.ok(&["sync"]);
    let out = w.ok(&[
        "events",
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    let again: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again.len(), 6);
}

#[test]
fn gitlab_revoke_revokes_at_gitlab_and_records_the_event() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let id = format!("gl/token:{}", seeded[2]);
    let out = w.ok(&["revoke", &id, "--reason", "leaked in CI log", "--yes"]);
    assert!(
        text(&out.stdout).contains("revoke: 1 of 1 key(s) ok"),
        "{}",
        text(&out.stdout)
    );
    assert!(w.fake.with(|st| st.token(seeded[2]).revoked));
    assert_eq!(
        w.seen("DELETE").len(),
        1,
        "one DELETE: {:?}",
        w.seen("DELETE")
    );
    assert!(
        w.seen(&format!(
            "DELETE /api/v4/projects/acme%2Fpayroll/access_tokens/{}",
            seeded[2]
        ))
        .len()
            == 1
    );
    assert_eq!(
        key(&w.keys(), &format!("token:{}", seeded[2]))["status"],
        "revoked"
    );
    w.ok(&["sync"]);
    let out = w.ok(&[
        "events",
        "--key",
        &format!("token:{}", seeded[2]),
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        events.iter().any(|e| e["action"]
            .as_str()
            .unwrap()
            .starts_with("project_access_token_revoked")),
        "{events:#?}"
    );
}

#[test]
fn gitlab_rotate_needs_no_overlap_and_then_replaces_the_token() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let old = seeded[3];
    let id = format!("gl/token:{old}");
    let sink = w.path("new-token.txt");
    let sink_arg = format!("file:{}", sink.display());

    // Without --no-overlap: refused as a usage error, nothing sent.
    let out = w.run(&["rotate", &id, "--deliver", &sink_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("rotates without overlap") && err.contains("--no-overlap"),
        "{err}"
    );
    assert!(w.seen("/rotate").is_empty());
    assert!(!w.fake.with(|st| st.token(old).revoked));

    // The dry run says so too.
    let out = w.ok(&["rotate", &id, "--deliver", &sink_arg, "--dry-run"]);
    assert!(
        text(&out.stdout).contains("no overlap"),
        "{}",
        text(&out.stdout)
    );

    let out = w.ok(&[
        "rotate",
        &id,
        "--deliver",
        &sink_arg,
        "--no-overlap",
        "--reason",
        "yearly",
    ]);
    let said = text(&out.stdout) + &text(&out.stderr);
    let (old_revoked, new) = w.fake.with(|st| {
        let new = st
            .tokens
            .iter()
            .find(|t| t.id > old && t.name == "acme-release")
            .cloned();
        (st.token(old).revoked, new)
    });
    assert!(old_revoked, "GitLab's rotate revokes the old token: {said}");
    let new = new.expect("a new token");
    let delivered = std::fs::read_to_string(&sink).unwrap();
    assert_eq!(delivered.trim(), new.value, "the sink holds the new token");
    assert_eq!(w.seen("/rotate").len(), 1);
    // The new token was verified with its own value.
    assert!(!w.seen("personal_access_tokens/self").is_empty());
    let keys = w.keys();
    assert_eq!(key(&keys, &format!("token:{old}"))["status"], "revoked");
    assert_eq!(key(&keys, &format!("token:{}", new.id))["status"], "active");
    // No secret in the cache.
    let db = std::fs::read(w.path("data/cache.db")).unwrap();
    assert!(!db
        .windows(new.value.len())
        .any(|x| x == new.value.as_bytes()));
}

#[test]
fn gitlab_read_only_refuses_and_sends_nothing() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    let id = format!("gl/token:{}", seeded[0]);
    let out = w.run(&["--read-only", "revoke", &id, "--reason", "x", "--yes"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    let out = w.run(&[
        "--read-only",
        "rotate",
        &id,
        "--deliver",
        "stdout",
        "--no-overlap",
    ]);
    assert!(!out.status.success());
    assert!(w.seen("DELETE").is_empty() && w.seen("/rotate").is_empty());
    assert!(!w.fake.with(|st| st.token(seeded[0]).revoked));
}

#[test]
fn gitlab_missing_permission_is_named() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    w.fake
        .with(|st| st.forbidden.insert("/groups/9/access_tokens".into()));
    let out = w.run(&[
        "revoke",
        &format!("gl/token:{}", seeded[3]),
        "--reason",
        "x",
        "--yes",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(err.contains("higher privileges"), "{err}");
    assert!(err.contains("scope `api`"), "{err}");
    assert!(!w.fake.with(|st| st.token(seeded[3]).revoked));
}

#[test]
fn gitlab_refused_group_listing_keeps_its_tokens_and_lists_the_rest() {
    let w = World::start();
    let seeded = w.seed();
    w.ok(&["sync"]);
    // The token loses its role on group 9 (GitLab answers 403 on the group's listing),
    // and meanwhile a personal token is deleted at GitLab.
    w.fake.with(|st| {
        st.forbidden.insert("/groups/9/access_tokens".into());
        st.tokens.retain(|t| t.id != seeded[1]);
    });
    let out = w.ok(&["sync"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("gl: note: the access tokens of group 9 not listed, the tokens synced before are kept as they were"),
        "{err}"
    );
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(
        err.contains("listing them needs scope `read_api` and the Owner role on group 9"),
        "{err}"
    );
    assert!(
        err.contains("(1 no longer listed; 1 kept as cached, their source not listed)"),
        "{err}"
    );
    let keys = w.keys();
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[3]))["status"],
        "active",
        "the group's token stays as cached"
    );
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[1]))["status"],
        "revoked",
        "the places that were listed still say what is gone"
    );
    assert_eq!(
        key(&keys, &format!("token:{}", seeded[2]))["status"],
        "active"
    );
    // The group's audit events were still read.
    assert!(!w.seen("/groups/9/audit_events").is_empty());
}

#[test]
fn gitlab_429_is_waited_out_and_a_failed_change_is_not_sent_again() {
    let w = World::start();
    let seeded = w.seed();
    w.fake.with(|st| st.throttle_next = 2);
    w.ok(&["sync"]);
    // The first listing was answered 429 twice, then served.
    let first = w.seen("GET /api/v4/projects/acme%2Fpayroll/access_tokens?page=1");
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(w.keys().len(), 6);

    // A revoke answered 500 (outcome unknown) is not sent again blindly.
    w.fake.with(|st| st.fail_next_change = 1);
    let out = w.run(&[
        "revoke",
        &format!("gl/token:{}", seeded[0]),
        "--reason",
        "x",
        "--yes",
    ]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(w.seen("DELETE").len(), 1, "{said}");
    assert!(!w.fake.with(|st| st.token(seeded[0]).revoked), "{said}");
}

#[test]
fn gitlab_info_lists_capabilities() {
    let w = World::start();
    let out = w.ok(&["info"]);
    let s = text(&out.stdout);
    assert!(s.contains("kind=gitlab"), "{s}");
    assert!(
        s.contains("can: events, revoke, rotate (no overlap: the old key stops at once), verify"),
        "{s}"
    );
}

#[test]
fn gitlab_python_client_works_against_the_fake() {
    let w = World::start();
    let seeded = w.seed();
    let py = gitlab_support::prism_support::deps().join("pyclients/bin/python");
    if !py.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "python-gitlab is not installed at {}: CI must run scripts/test-deps.sh",
            py.display()
        );
        let st = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/install-pyclients.sh"
            ))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let out = std::process::Command::new(&py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/gitlab_client.py"
        ))
        .args([
            w.prism.url.as_str(),
            w.token.as_str(),
            "acme/payroll",
            "9",
            &seeded[2].to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["self"], 101);
    assert_eq!(
        v["personal"],
        serde_json::json!(["backup-script", "keyaudit-reader", "laptop"])
    );
    assert_eq!(
        v["project"],
        serde_json::json!([["old-deploy", true], ["payroll-ci", false]])
    );
    assert_eq!(v["group"], serde_json::json!(["acme-release"]));
    assert_eq!(v["project_events"], 3);
    assert_eq!(v["rotated_name"], "payroll-ci");
    assert_eq!(v["rotated_has_token"], true);
    assert_eq!(v["revoked_after_delete"], true);
    assert!(w.fake.with(|st| st.token(seeded[2]).revoked));
}

/// Sync speed over loopback, straight to the fake (Prism would measure itself): 10,000
/// tokens (4,000 personal, 3,000 of a project, 3,000 of a group), each with its creation
/// event, 100 per page as GitLab serves at most. Prints keys/s and events/s; run with
/// `--ignored --nocapture` (release for the figures in docs/PERFORMANCE.md).
#[test]
#[ignore = "a measurement; run it by hand"]
fn gitlab_sync_speed() {
    use gitlab_support::fake::Where;
    let w = World::start();
    w.fake.with(|st| {
        for i in 0..10_000 {
            let (place, kind) = match i % 10 {
                0..=3 => (Where::Personal, "personal_access_token"),
                4..=6 => (Where::Project(42), "project_access_token"),
                _ => (Where::Group(9), "group_access_token"),
            };
            let (id, _) = st.add(&format!("token-{i}"), place, 1, &["read_api"]);
            let t = st.token(id).clone();
            st.audit(
                &t,
                &format!("{kind}_created"),
                &format!("Created {} with token_id: {id}", kind.replace('_', " ")),
                1,
            );
        }
    });
    let direct = w.path("config/direct.toml");
    std::fs::write(
        &direct,
        format!(
            "[[provider]]\nname = \"gl\"\nkind = \"gitlab\"\nurl = \"{}\"\ntoken_env = \"KA_GL_TOKEN\"\n\
             projects = [\"acme/payroll\"]\ngroups = [\"9\"]\ninstance_audit = true\npage_size = 100\n",
            w.fake.url
        ),
    )
    .unwrap();
    let (took, keys, said) = speed_support::timed_sync(|a| w.cmd(a), &direct);
    assert!(keys.len() >= 10_000, "{}", keys.len());
    let events = w.fake.with(|st| st.events.len());
    println!(
        "gitlab sync: {} tokens and {events} audit events in {took:.2}s: {:.0} keys/s, {:.0} events/s (whole sync); {}",
        keys.len(),
        keys.len() as f64 / took,
        events as f64 / took,
        said.trim()
    );
}
