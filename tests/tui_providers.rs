//! End to end in tmux: the demo provider and the GitHub, GitLab, OpenAI and Cloudflare
//! fakes (each fake behind Prism, violations fatal) configured together; one sync, then
//! the real binary's Keys view shows every provider's keys in one table, and `provider:`
//! narrows it to one provider's, combined with other terms.

// Both worlds bring the shared Prism support module; each keeps its own copy.
#![allow(clippy::duplicate_mod)]

mod cloudflare_support;
mod github_support;
mod gitlab_support;
mod openai_support;
mod tmux_support;

use keyaudit::demo::{self, DemoOptions};
use std::path::Path;
use std::process::Command;
use tmux_support::Tmux;

const BIN: &str = env!("CARGO_BIN_EXE_keyaudit");

/// Replaces the filter with `query` and waits for the count line.
fn filter(tmux: &Tmux, query: &str, count: &str) -> String {
    // Esc in the keys view clears the filter (wait for that, so the next key is not
    // read as Alt+key); `/` opens a fresh one.
    tmux.send(&["Escape"]);
    tmux.wait_for("the filter cleared", |s| !s.contains(" · /"));
    tmux.send(&["/"]);
    tmux.type_text(query);
    tmux.send(&["Enter"]);
    // The filter applies while it is typed: wait for the input to close too.
    tmux.wait_for(&format!("`{query}`: {count}"), |s| {
        s.contains(count) && !s.contains("enter apply")
    })
}

/// `1234` as the TUI writes it: `1,234`.
fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn keyaudit(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["--db", dir.join("cache.db").to_str().unwrap()])
        .args(["--config", dir.join("config.toml").to_str().unwrap()])
        .args(args)
        .envs(envs.iter().copied())
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .output()
        .expect("keyaudit runs")
}

#[test]
fn demo_github_gitlab_openai_and_cloudflare_keys_in_one_table_filtered_by_provider() {
    if !tmux_support::available() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let demo = rt
        .block_on(demo::start(DemoOptions {
            seed: 29,
            token: "e2e-demo-token".into(),
            events: 500,
            live_rate: 0.0,
            ..DemoOptions::default()
        }))
        .expect("demo starts");
    let gl = gitlab_support::World::start();
    gl.seed();
    let cf = cloudflare_support::World::start();
    cf.seed();
    let gh = github_support::World::start();
    gh.seed();
    let oa = openai_support::World::start();
    oa.seed();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.toml"),
        format!(
            "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"{}\"\ntoken_env = \"KA_DEMO\"\n\n\
             [[provider]]\nname = \"gitlab\"\nkind = \"gitlab\"\nurl = \"{}\"\ntoken_env = \"KA_GL\"\n\
             projects = [\"acme/payroll\"]\ngroups = [\"9\"]\npage_size = 2\n\n\
             [[provider]]\nname = \"cloudflare\"\nkind = \"cloudflare\"\nurl = \"{}\"\ntoken_env = \"KA_CF\"\n\
             accounts = [\"{}\"]\npage_size = 2\n\n\
             [[provider]]\nname = \"github\"\nkind = \"github\"\nurl = \"{}\"\norg = \"acme\"\n\
             app_id = {}\ninstallation_id = {}\nprivate_key_file = \"{}\"\npage_size = 2\n\n\
             [[provider]]\nname = \"openai\"\nkind = \"openai\"\nurl = \"{}\"\ntoken_env = \"KA_OA\"\n\
             page_size = 2\n\n\
             [tui]\nmouse = false\nsync_interval_secs = 0\n",
            demo.url,
            gl.prism.url,
            cf.prism.url,
            cloudflare_support::fake::ACCOUNT,
            gh.prism.url,
            github_support::fake::APP_ID,
            github_support::fake::INSTALLATION_ID,
            gh.path("config/app.pem").display(),
            oa.prism.url,
        ),
    )
    .unwrap();
    let envs = [
        ("KA_DEMO", demo.token.as_str()),
        ("KA_GL", gl.token.as_str()),
        ("KA_CF", cf.token.as_str()),
        ("KA_OA", oa.token.as_str()),
    ];
    let sync = keyaudit(d, &envs, &["sync"]);
    assert!(
        sync.status.success(),
        "sync failed: {}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let keys = keyaudit(d, &envs, &["keys", "--format", "json"]);
    let keys: Vec<serde_json::Value> = serde_json::from_slice(&keys.stdout).unwrap();
    let count = |p: &str| keys.iter().filter(|k| k["provider"] == p).count();
    assert_eq!(count("gitlab"), 6);
    assert_eq!(count("cloudflare"), 6);
    // Three fine-grained tokens and two secret-scanning alerts; five keys and
    // keyaudit's own admin key.
    assert_eq!(count("github"), 5);
    assert_eq!(count("openai"), 6);
    assert!(count("talentgrid") > 0);
    let total = thousands(keys.len());

    for (cols, rows) in [(200u16, 50u16), (80, 24)] {
        let tmux = Tmux::new(
            &format!("keyaudit-e2e-providers-{}-{cols}", std::process::id()),
            "ka",
        );
        let command = format!(
            "env KA_DEMO={} KA_GL={} KA_CF={} KA_OA={} XDG_STATE_HOME={} XDG_DATA_HOME={} {BIN} --db {} --config {}",
            demo.token,
            gl.token,
            cf.token,
            oa.token,
            d.join("state").display(),
            d.join("data").display(),
            d.join("cache.db").display(),
            d.join("config.toml").display()
        );
        tmux.start(&command, cols, rows);
        tmux.wait_for("the keys view with every provider's keys", |s| {
            s.contains("[keys]") && s.contains(&format!("keys {total} of {total}"))
        });

        // Cloudflare's six tokens, and nothing of the others.
        let s = filter(&tmux, "provider:cloudflare", &format!("keys 6 of {total}"));
        if cols >= 120 {
            for name in [
                "keyaudit",
                "laptop-dns",
                "old-script",
                "ci-deploy",
                "terraform",
            ] {
                assert!(s.contains(name), "{name} missing at {cols}x{rows}:\n{s}");
            }
        }
        for other in ["payroll-ci", "acme-release", "keyaudit-reader"] {
            assert!(!s.contains(other), "{other} shown at {cols}x{rows}:\n{s}");
        }

        // Combined with other terms: the disabled Cloudflare token, the IP-limited one.
        let s = filter(
            &tmux,
            "provider:cloudflare status:inactive",
            &format!("keys 1 of {total}"),
        );
        assert!(s.contains("old-script"), "{s}");
        let s = filter(
            &tmux,
            "provider:cloudflare scope:ip:198.51.100.0/24",
            &format!("keys 1 of {total}"),
        );
        assert!(s.contains("laptop-dns"), "{s}");

        // GitLab's six, then the demo's.
        let s = filter(&tmux, "provider:gitlab", &format!("keys 6 of {total}"));
        assert!(s.contains("payroll-ci") && !s.contains("laptop-dns"), "{s}");
        // GitHub's tokens and alerts, OpenAI's keys: each alone.
        let s = filter(&tmux, "provider:github", &format!("keys 5 of {total}"));
        assert!(!s.contains("bo-laptop") && !s.contains("laptop-dns"), "{s}");
        if cols >= 120 {
            assert!(s.contains("release-bot") && s.contains("ats-export"), "{s}");
        }
        let s = filter(&tmux, "provider:openai", &format!("keys 6 of {total}"));
        assert!(
            !s.contains("release-bot") && !s.contains("payroll-ci"),
            "{s}"
        );
        if cols >= 120 {
            assert!(s.contains("bo-laptop") && s.contains("break-glass"), "{s}");
        }
        filter(
            &tmux,
            "provider:talentgrid",
            &format!("keys {} of {total}", thousands(count("talentgrid"))),
        );
        tmux.send(&["q"]);
    }
    drop(gl);
    drop(cf);
    drop(gh);
    drop(oa);
    rt.block_on(demo.shutdown());
}

#[test]
fn openai_guided_rotation_from_the_workstation_starts_then_revokes_the_quiet_key() {
    if !tmux_support::available() {
        return;
    }
    let oa = openai_support::World::start();
    let seeded = oa.seed();
    // Bo's key in Payroll has never been used: once its replacement exists it is quiet.
    let old = seeded.payroll_bo.clone();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.toml"),
        format!(
            "[[provider]]\nname = \"openai\"\nkind = \"openai\"\nurl = \"{}\"\ntoken_env = \"KA_OA\"\n\
             page_size = 2\n\n[tui]\nmouse = false\nsync_interval_secs = 0\n",
            oa.prism.url
        ),
    )
    .unwrap();
    let envs = [("KA_OA", oa.token.as_str())];
    let sync = keyaudit(d, &envs, &["sync"]);
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );

    let tmux = Tmux::new(&format!("keyaudit-e2e-guided-{}", std::process::id()), "ka");
    let command = format!(
        "env KA_OA={} XDG_STATE_HOME={} XDG_DATA_HOME={} {BIN} --db {} --config {}",
        oa.token,
        d.join("state").display(),
        d.join("data").display(),
        d.join("cache.db").display(),
        d.join("config.toml").display()
    );
    tmux.start(&command, 200, 50);
    tmux.wait_for("the keys view", |s| s.contains("keys 6 of 6"));
    filter(&tmux, "name:bo-laptop", "keys 1 of 6");
    tmux.send(&[":"]);
    tmux.type_text("write");
    tmux.send(&["Enter"]);
    tmux.wait_for("the write dialog", |s| s.contains("Enable write mode?"));
    tmux.send(&["Tab"]);
    tmux.send(&["Enter"]);
    tmux.wait_for("write mode", |s| {
        s.contains("Write mode: actions are enabled")
    });

    // `r`: the dialog says where to create the new key (the provider's guide).
    tmux.send(&["r"]);
    let s = tmux.wait_for("the guided rotation dialog", |s| {
        s.contains("Guided rotation") && s.contains("Rotate 1 key")
    });
    assert!(
        s.contains("platform.openai.com/settings/proj_payroll/api-keys"),
        "{s}"
    );
    if s.contains("type its name") {
        tmux.type_text("bo-laptop");
    } else {
        tmux.send(&["Tab"]);
    }
    tmux.send(&["Tab"]);
    tmux.type_text("laptop lost");
    tmux.send(&["Enter"]);
    tmux.send(&["Enter"]);
    tmux.wait_for("the started rotation", |s| {
        s.contains("waiting for the new key to appear")
    });
    assert!(oa.seen("DELETE").is_empty());

    // The operator creates the replacement at OpenAI; a sync finds it, and the old key,
    // never used, is quiet at once.
    oa.fake.with(|st| {
        st.now = chrono::Utc::now().timestamp() - 60;
        let bo = openai_support::fake::Owner::User(
            "user-bo".into(),
            "bo@acme.example".into(),
            "Bo Chen".into(),
        );
        st.add_key("bo-replacement", Some("proj_payroll"), bo);
    });
    tmux.send(&["R"]);
    tmux.wait_for("the sync with the new key", |s| s.contains("keys 1 of 7"));

    // `r` again: the revoke of the quiet old key is offered, with the usual confirmation.
    tmux.send(&["r"]);
    let s = tmux.wait_for("the revoke offer", |s| {
        s.contains("The new key is in place") && s.contains("Revoke 1 key")
    });
    if s.contains("type its name") {
        tmux.type_text("bo-laptop");
    } else {
        tmux.send(&["Tab"]);
    }
    tmux.send(&["Enter"]);
    tmux.wait_for("the revoke", |s| s.contains("done: the old key is revoked"));
    assert_eq!(
        oa.seen(&format!(
            "DELETE /organization/projects/proj_payroll/api_keys/{old}"
        ))
        .len(),
        1
    );
    let journal = keyaudit(d, &envs, &["journal", "--format", "jsonl"]);
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert!(journal.contains("laptop lost"), "{journal}");
    tmux.send(&["q"]);
}
