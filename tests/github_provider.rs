//! The `github` provider end to end: the keyaudit binary against a stateful fake of
//! GitHub's REST API, authenticating as a GitHub App (a JWT signed with a key made for
//! the test, verified by the fake), with Prism validating every request and answer
//! against GitHub's own OpenAPI description (tests/fixtures/openapi/github.json); any
//! violation fails the test.

mod github_support;

use github_support::{fake, text, World};
use serde_json::Value;
use std::collections::BTreeSet;

/// Prism's complaint about a status the description does not list for the operation;
/// GitHub documents these answers (429, and the audit log's 404 off Enterprise Cloud)
/// on its rate-limit and plan pages, not in the description. Tests that inject one
/// allow exactly the lines they caused.
const UNDECLARED: &str = "Unable to match the returned status code";

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

fn events(w: &World, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "events",
        "--since",
        "2020-01-01T00:00:00Z",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    w.json(&args)
}

#[test]
fn github_sync_lists_exact_keys_events_and_alerts_across_pages() {
    let w = World::start();
    let t = w.seed();
    let out = w.ok(&["sync"]);
    assert!(
        text(&out.stderr).contains("gh: 5 keys"),
        "{}",
        text(&out.stderr)
    );

    let keys = w.keys();
    let want: BTreeSet<String> = t
        .iter()
        .map(|n| format!("token:{n}"))
        .chain([
            "alert:acme/payroll#1".to_string(),
            "alert:acme/ats#2".to_string(),
        ])
        .collect();
    assert_eq!(ids(&keys), want);
    let sync = key(&keys, &format!("token:{}", t[0]));
    assert_eq!(sync["name"], "payroll-sync");
    assert_eq!(sync["owner"], "octocat");
    assert_eq!(sync["status"], "active");
    let scopes: Vec<&str> = sync["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        scopes,
        [
            "organization:members:read",
            "repository:contents:read",
            "repository:metadata:read",
            "repositories:subset"
        ]
    );
    assert!(
        sync["expires"].is_string() && sync["last_used"].is_string(),
        "{sync}"
    );
    assert_eq!(key(&keys, "alert:acme/ats#2")["status"], "revoked");

    // Two grants per page: the third came from the page the Link header named.
    let pages = w.seen("GET /orgs/acme/personal-access-tokens");
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("page=2"), "{pages:?}");
    // One installation token for the whole sync.
    assert_eq!(w.seen("/access_tokens").len(), 1);

    // Events: each token's grant entry on its token, and the clone that named the token
    // only by its hash on the same token.
    let ev = events(&w, &[]);
    let got: BTreeSet<(String, String)> = ev
        .iter()
        .map(|e| {
            (
                e["key_id"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut expect: BTreeSet<(String, String)> = t
        .iter()
        .map(|n| {
            (
                format!("token:{n}"),
                "personal_access_token.access_granted".to_string(),
            )
        })
        .collect();
    expect.insert((format!("token:{}", t[0]), "git.clone".into()));
    assert_eq!(got, expect);
    assert_eq!(ev.len(), 4);
    assert!(
        !w.seen("after=").is_empty(),
        "the audit log was read across pages"
    );

    // The alerts are exposure findings, graded by validity.
    let findings = w.json(&["findings", "--format", "json"]);
    let alert = |id: &str| {
        findings
            .iter()
            .find(|f| f["key_id"] == id && f["rule"] == "github-secret-scanning")
            .unwrap_or_else(|| panic!("no finding on {id}: {findings:#?}"))
            .clone()
    };
    let live = alert("alert:acme/payroll#1");
    assert_eq!(live["category"], "exposure");
    assert_eq!(live["severity"], "critical");
    assert!(
        live["explanation"]
            .as_str()
            .unwrap()
            .contains("validity: active"),
        "{live}"
    );
    assert_eq!(alert("alert:acme/ats#2")["severity"], "low");
    // The secret itself was never asked for.
    assert!(w
        .seen("secret-scanning/alerts")
        .iter()
        .all(|s| s.contains("hide_secret=true")));

    // New entries, then a second sync (a new process): only the new entries come in,
    // and one naming its token only by hash still goes to that token (the hash was
    // learned by the first sync and kept in its cursor).
    w.fake.with(|st| {
        let p = st.pat(t[1]).clone();
        st.audit("git.fetch", "octocat", Some(&p), false);
        let p = st.pat(t[2]).clone();
        st.audit("git.push", "hubot", Some(&p), true);
    });
    w.ok(&["sync"]);
    let again = events(&w, &[]);
    assert_eq!(again.len(), 6, "{again:#?}");
    let push = again.iter().find(|e| e["action"] == "git.push").unwrap();
    assert_eq!(push["key_id"], format!("token:{}", t[2]), "{push}");
    let last = w.seen("/audit-log").last().cloned().unwrap();
    assert!(
        last.contains("phrase=created"),
        "resumed from the last entry: {last}"
    );
}

#[test]
fn github_revoke_removes_the_org_access_and_records_the_event() {
    let w = World::start();
    let t = w.seed();
    w.ok(&["sync"]);
    let id = format!("gh/token:{}", t[1]);
    let out = w.ok(&["revoke", &id, "--reason", "owner left", "--yes"]);
    assert!(
        text(&out.stdout).contains("revoke: 1 of 1 key(s) ok"),
        "{}",
        text(&out.stdout)
    );
    assert!(w.fake.with(|st| st.pat(t[1]).revoked));
    assert!(!w.fake.with(|st| st.pat(t[0]).revoked));
    assert_eq!(w.seen("POST /orgs/acme/personal-access-tokens").len(), 1);
    assert_eq!(
        key(&w.keys(), &format!("token:{}", t[1]))["status"],
        "revoked"
    );
    w.ok(&["sync"]);
    let ev = events(&w, &["--key", &format!("token:{}", t[1])]);
    assert!(
        ev.iter()
            .any(|e| e["action"] == "personal_access_token.access_revoked"),
        "{ev:#?}"
    );
    // A secret found by scanning is not the organisation's to revoke: refused, nothing sent.
    let out = w.run(&[
        "revoke",
        "gh/alert:acme/payroll#1",
        "--reason",
        "x",
        "--yes",
    ]);
    assert!(!out.status.success());
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("belongs to its issuer"), "{said}");
    assert_eq!(w.seen("POST /orgs/acme/personal-access-tokens").len(), 1);
}

#[test]
fn github_rotate_is_refused_and_capabilities_say_why() {
    let w = World::start();
    let t = w.seed();
    w.ok(&["sync"]);
    let out = w.run(&[
        "rotate",
        &format!("gh/token:{}", t[0]),
        "--deliver",
        "stdout",
        "--no-overlap",
    ]);
    assert!(!out.status.success());
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("cannot rotate"), "{said}");
    assert!(
        said.contains("GitHub lets only a fine-grained token's owner regenerate it"),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    assert!(w.seen("POST /orgs").is_empty());
    let out = w.ok(&["info"]);
    let s = text(&out.stdout);
    assert!(s.contains("kind=github"), "{s}");
    assert!(s.contains("can: events, revoke\n"), "{s}");
    assert!(
        s.contains("cannot rotate: GitHub lets only a fine-grained token's owner regenerate it"),
        "{s}"
    );
}

#[test]
fn github_read_only_refuses_and_sends_nothing() {
    let w = World::start();
    let t = w.seed();
    w.ok(&["sync"]);
    let out = w.run(&[
        "--read-only",
        "revoke",
        &format!("gh/token:{}", t[0]),
        "--reason",
        "x",
        "--yes",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(w.seen("POST /orgs").is_empty());
    assert!(!w.fake.with(|st| st.pat(t[0]).revoked));
}

#[test]
fn github_missing_token_permission_is_named_and_the_tokens_are_kept() {
    let w = World::start();
    let t = w.seed();
    w.ok(&["sync"]);
    // The App loses "Personal access tokens": GitHub refuses the listing. The tokens
    // synced before are not taken for revoked; the alerts and the audit log still sync.
    w.fake
        .with(|st| st.forbidden.insert("/personal-access-tokens".into()));
    let out = w.ok(&["sync"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("gh: note: fine-grained personal access tokens not listed (HTTP 403: Resource not accessible by integration)"),
        "{err}"
    );
    assert!(err.contains("\"Personal access tokens\" (read)"), "{err}");
    assert!(err.contains("App 4242 installation 777"), "{err}");
    assert!(
        err.contains("gh: 2 keys (0 no longer listed; 3 kept as cached, their source not listed)"),
        "{err}"
    );
    let keys = w.keys();
    for n in &t {
        assert_eq!(key(&keys, &format!("token:{n}"))["status"], "active");
    }
    // Revoking needs the permission too: refused, named, the token untouched.
    let out = w.run(&[
        "revoke",
        &format!("gh/token:{}", t[0]),
        "--reason",
        "x",
        "--yes",
    ]);
    assert!(!out.status.success());
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("\"Personal access tokens\" (read)"), "{said}");
    assert!(!w.fake.with(|st| st.pat(t[0]).revoked));
}

#[test]
fn github_alerts_permission_lost_keeps_the_alerts_and_their_findings() {
    let mut w = World::start();
    let t = w.seed();
    w.ok(&["sync"]);
    let before = w.json(&["findings", "--format", "json"]);
    let alert_findings = |fs: &[Value]| -> Vec<(String, String, String)> {
        let mut v: Vec<_> = fs
            .iter()
            .filter(|f| f["rule"] == "github-secret-scanning")
            .map(|f| {
                (
                    f["key_id"].as_str().unwrap().to_string(),
                    f["status"].as_str().unwrap().to_string(),
                    f["severity"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(alert_findings(&before).len(), 2, "{before:#?}");

    // The App loses "Secret scanning alerts" (GitHub answers 403), and meanwhile a
    // token's access is revoked on GitHub.
    w.fake.with(|st| {
        st.forbidden.insert("/secret-scanning/alerts".into());
        st.pats
            .iter_mut()
            .find(|p| p.token_id == t[2])
            .unwrap()
            .revoked = true;
    });
    let out = w.ok(&["sync"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("gh: note: secret-scanning alerts not read (HTTP 403: Resource not accessible by integration)"),
        "{err}"
    );
    assert!(err.contains("\"Secret scanning alerts\" (read)"), "{err}");
    assert!(err.contains("alerts synced before"), "{err}");
    let keys = w.keys();
    // The alerts stay as they were: the live one active, the inactive one revoked.
    assert_eq!(key(&keys, "alert:acme/payroll#1")["status"], "active");
    assert_eq!(key(&keys, "alert:acme/ats#2")["status"], "revoked");
    // The token listing was whole: the token GitHub no longer lists is revoked.
    assert_eq!(key(&keys, &format!("token:{}", t[2]))["status"], "revoked");
    assert_eq!(key(&keys, &format!("token:{}", t[0]))["status"], "active");
    assert!(
        err.contains("(1 no longer listed; 1 kept as cached, their source not listed)"),
        "{err}"
    );
    // Their findings are unchanged: still open, still graded by validity.
    let after = w.json(&["findings", "--format", "json"]);
    assert_eq!(alert_findings(&after), alert_findings(&before));
    assert!(alert_findings(&after)
        .iter()
        .any(|(k, s, sev)| k == "alert:acme/payroll#1" && s == "open" && sev == "critical"));
    // GitHub's description lists 404 for the alerts, not the 403 GitHub also answers.
    assert_eq!(w.prism.allow(UNDECLARED), 1);
}

#[test]
fn github_rate_limits_are_waited_out_and_a_failed_change_is_not_sent_again() {
    let mut w = World::start();
    let t = w.seed();
    // A secondary rate limit (403 with Retry-After) on the first listing, and the
    // primary limit exhausted (403, X-RateLimit-Remaining: 0) on the first alerts page.
    w.fake.with(|st| {
        st.secondary_limit.push("/personal-access-tokens".into());
        st.primary_limit.push("/secret-scanning/alerts".into());
    });
    w.ok(&["sync"]);
    let first: Vec<String> = w
        .seen("GET /orgs/acme/personal-access-tokens?per_page=2")
        .into_iter()
        .filter(|s| !s.contains("page=2&") && !s.ends_with("&page=2"))
        .collect();
    assert_eq!(first.len(), 2, "refused once, then served: {first:?}");
    let alerts = w.seen("GET /orgs/acme/secret-scanning/alerts");
    assert_eq!(
        alerts.len(),
        2,
        "waited for the reset, then served: {alerts:?}"
    );
    assert_eq!(w.keys().len(), 5);

    // A 429 with Retry-After refuses the revoke without acting on it: sent again.
    w.fake.with(|st| {
        st.too_many
            .push("POST /orgs/acme/personal-access-tokens".into())
    });
    fn revoke(w: &World, n: u64) -> std::process::Output {
        w.run(&["revoke", &format!("gh/token:{n}"), "--reason", "x", "--yes"])
    }
    let out = revoke(&w, t[0]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        w.seen("POST /orgs/acme/personal-access-tokens").len(),
        2,
        "{said}"
    );
    assert!(w.fake.with(|st| st.pat(t[0]).revoked));
    // The two answers GitHub's description does not list for these operations: the
    // alerts' 403 (rate limit) and the revoke's 429.
    assert_eq!(w.prism.allow(UNDECLARED), 2);

    // A 500 on the change: its outcome is unknown, so it is not sent again blindly.
    w.fake.with(|st| st.fail_next_change = 1);
    let before = w.seen("POST /orgs/acme/personal-access-tokens").len();
    let out = revoke(&w, t[2]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(
        w.seen("POST /orgs/acme/personal-access-tokens").len(),
        before + 1,
        "{said}"
    );
    assert!(!w.fake.with(|st| st.pat(t[2]).revoked), "{said}");
}

#[test]
fn github_app_jwt_is_verified_and_a_wrong_key_is_a_clear_error() {
    let w = World::start();
    w.seed();
    w.ok(&["sync"]);
    // The fake checked the JWT's signature, issuer and lifetime before issuing a token.
    assert_eq!(w.fake.with(|st| st.installation_tokens.len()), 1);
    assert!(w.fake.with(|st| st.refused_jwts.is_empty()));

    // Another RSA key (not the App's): GitHub refuses the JWT, and keyaudit says what to check.
    let other = w.path("config/other.pem");
    github_support::make_key(&other);
    w.write_config(&format!(
        "app_id = {}\ninstallation_id = {}\nprivate_key_file = \"{}\"\n",
        fake::APP_ID,
        fake::INSTALLATION_ID,
        other.display()
    ));
    let out = w.run(&["sync"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("GitHub refused the App's JWT (HTTP 401"),
        "{err}"
    );
    assert!(err.contains("`private_key_file`"), "{err}");
    assert!(w
        .fake
        .with(|st| st.refused_jwts.iter().any(|r| r.contains("signature"))));

    // A wrong installation id is named.
    w.write_config(&format!(
        "app_id = {}\ninstallation_id = 9\nprivate_key_file = \"{}\"\n",
        fake::APP_ID,
        w.path("config/app.pem").display()
    ));
    let err = text(&w.run(&["sync"]).stderr);
    assert!(err.contains("no installation 9 of App 4242"), "{err}");

    // A key others can read is refused before any request.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    w.write_config(&format!(
        "app_id = {}\ninstallation_id = {}\nprivate_key_file = \"{}\"\n",
        fake::APP_ID,
        fake::INSTALLATION_ID,
        other.display()
    ));
    let before = w.seen("").len();
    let out = w.run(&["sync"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        err.contains("config.toml:"),
        "names the file and line: {err}"
    );
    assert_eq!(w.seen("").len(), before);
}

#[test]
fn github_without_enterprise_audit_log_syncs_keys_and_says_why_no_events() {
    let mut w = World::start();
    w.seed();
    w.fake.with(|st| st.enterprise = false);
    let out = w.ok(&["sync"]);
    let err = text(&out.stderr);
    assert!(err.contains("gh: 5 keys"), "{err}");
    assert!(
        err.contains("gh: note: audit log not read (HTTP 404: Not Found)"),
        "{err}"
    );
    assert!(err.contains("GitHub Enterprise Cloud"), "{err}");
    assert!(events(&w, &[]).is_empty());
    assert_eq!(w.prism.allow(UNDECLARED), 1);
}

#[test]
fn github_with_a_personal_token_reads_alerts_and_says_grants_need_the_app() {
    let w = World::start();
    w.seed();
    w.fake
        .with(|st| st.pat_credentials.push("github_pat_11READER".into()));
    w.write_config("token_env = \"KA_GH_TOKEN\"\n");
    let out = w
        .cmd(&["sync"])
        .env("KA_GH_TOKEN", "github_pat_11READER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("note: fine-grained personal access tokens not listed"),
        "{err}"
    );
    assert!(
        w.seen("personal-access-tokens").is_empty(),
        "not even tried"
    );
    // The grants are not listed; the tokens the audit log names are known from it.
    let keys = w.keys();
    let listed: Vec<Value> = keys
        .iter()
        .filter(|k| k["source"] == "provider")
        .cloned()
        .collect();
    assert_eq!(
        ids(&listed),
        ["alert:acme/ats#2", "alert:acme/payroll#1"]
            .map(String::from)
            .into()
    );
    assert!(
        keys.iter()
            .filter(|k| k["source"] != "provider")
            .all(|k| k["source"] == "logs"),
        "{keys:#?}"
    );
    assert_eq!(events(&w, &[]).len(), 4);
    let out = w
        .cmd(&["info"])
        .env("KA_GH_TOKEN", "github_pat_11READER")
        .output()
        .unwrap();
    let s = text(&out.stdout);
    assert!(
        s.contains("can: events\n"),
        "no revoke without the App: {s}"
    );
    assert!(
        s.contains(
            "cannot revoke: removing a token's organisation access needs GitHub App authentication"
        ),
        "{s}"
    );
}

/// The fake's JWT check is real: a JWT signed with the App's key but expired, or
/// valid too long, or signed by another key, is refused; so the one keyaudit makes,
/// which the fake accepts, has the right signature and lifetime.
#[test]
fn github_fake_refuses_expired_long_lived_and_foreign_jwts() {
    use base64::Engine;
    let w = World::start();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let sign = |key: &std::path::Path, iat: i64, exp: i64| {
        let pem = std::fs::read_to_string(key).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let pair = ring::signature::RsaKeyPair::from_der(&der).unwrap();
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"RS256","typ":"JWT"}"#),
            b64(
                serde_json::json!({"iat": iat, "exp": exp, "iss": fake::APP_ID.to_string()})
                    .to_string()
                    .as_bytes()
            )
        );
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{input}.{}", b64(&sig))
    };
    let now = chrono::Utc::now().timestamp();
    let app_key = w.path("config/app.pem");
    let other = w.path("config/other.pem");
    github_support::make_key(&other);
    let url = format!(
        "{}/app/installations/{}/access_tokens",
        w.prism.url,
        fake::INSTALLATION_ID
    );
    let post = |jwt: String| {
        w.rt.block_on(async {
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(jwt)
                .header("Accept", "application/vnd.github+json")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(
        post(sign(&app_key, now - 60, now + 540)),
        201,
        "a right JWT is accepted"
    );
    assert_eq!(post(sign(&app_key, now - 700, now - 100)), 401, "expired");
    assert_eq!(
        post(sign(&app_key, now - 60, now + 3600)),
        401,
        "valid too long"
    );
    assert_eq!(post(sign(&other, now - 60, now + 540)), 401, "another key");
    let why = w.fake.with(|st| st.refused_jwts.clone());
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(
        why[0].contains("'exp'") && why[1].contains("too far") && why[2].contains("signature"),
        "{why:?}"
    );
}

/// Sync speed over loopback, straight to the fake (Prism's validation would be the
/// bottleneck): 10,000 token grants and 100,000 audit-log entries (or
/// `KEYAUDIT_BENCH_TOKENS` / `KEYAUDIT_BENCH_EVENTS`), 100 per page as against GitHub.
/// Run by hand (`cargo test --release --all-features --test github_provider --
/// --ignored --nocapture`); docs/PERFORMANCE.md keeps the figures.
#[test]
#[ignore = "a measurement; run it by hand"]
fn github_sync_speed() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    github_support::make_key(&key);
    let fake = rt.block_on(fake::Fake::start(github_support::public_key_of(&key)));
    let size = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let tokens = size("KEYAUDIT_BENCH_TOKENS", 10_000);
    let entries = size("KEYAUDIT_BENCH_EVENTS", 100_000);
    fake.with(|st| {
        st.public_url = fake.url.clone();
        for i in 0..tokens {
            st.add_pat(
                &format!("token-{i}"),
                &format!("user{}", i % 500),
                &[("members", "read")],
                &[("contents", "read")],
            );
        }
        let pats = st.pats.clone();
        for i in 0..entries {
            st.audit("git.clone", "octocat", Some(&pats[i % tokens]), i % 3 == 0);
        }
    });
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[provider]]\nname = \"gh\"\nkind = \"github\"\nurl = \"{}\"\norg = \"acme\"\napp_id = {}\ninstallation_id = {}\nprivate_key_file = \"{}\"\n",
            fake.url,
            fake::APP_ID,
            fake::INSTALLATION_ID,
            key.display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyaudit"))
        .args(["sync"])
        .env("KEYAUDIT_CONFIG", &cfg)
        .env("KEYAUDIT_DB", dir.path().join("cache.db"))
        .env("XDG_CONFIG_HOME", dir.path().join("xc"))
        .env("XDG_DATA_HOME", dir.path().join("xd"))
        .env("XDG_STATE_HOME", dir.path().join("xs"))
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("gh: {tokens} keys")), "{said}");
    assert!(said.contains(&format!("{entries} new events")), "{said}");
    println!(
        "github sync: {tokens} tokens + {entries} audit entries in {:.2}s ({:.0} keys+events/s); {said}",
        took.as_secs_f64(),
        (tokens + entries) as f64 / took.as_secs_f64()
    );
}
