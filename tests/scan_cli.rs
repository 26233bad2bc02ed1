//! `keyaudit scan` end to end: git history (a secret added then removed is still found,
//! with the commit that introduced it), `--since-commit`, `--staged`, baselines,
//! `--fail-on`, standard input, and SARIF validated against the OASIS schema.
//! The repositories are made with the git CLI here, in the test only.

use keyaudit::scan::shape;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn keyaudit(dir: &Path, args: &[&str]) -> Output {
    keyaudit_stdin(dir, args, "")
}

fn keyaudit_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let db = dir.join("cache.db");
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyaudit"))
        .args(["--db", db.to_str().unwrap()])
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env_remove("KEYAUDIT_DB")
        .env_remove("KEYAUDIT_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyaudit");
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success() || o.status.code() == Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// A GitHub token with a valid checksum, made here (never a real one).
fn github_token(seed: u64) -> String {
    let random: String = (0..30)
        .map(|i| {
            b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
                [((seed * 7919 + i * 104_729) % 57) as usize] as char
        })
        .collect();
    format!("ghp_{random}{}", shape::crc32_b62(&random))
}

fn git(repo: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Dana Dev")
        .env("GIT_AUTHOR_EMAIL", "dana@example.com")
        .env("GIT_COMMITTER_NAME", "Dana Dev")
        .env("GIT_COMMITTER_EMAIL", "dana@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn repo_with_history(dir: &Path, token: &str) -> (std::path::PathBuf, String) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "hello\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    std::fs::write(
        repo.join("deploy.sh"),
        format!("#!/bin/sh\nexport GITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "add deploy"]);
    let leaked_in = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(
        repo.join("deploy.sh"),
        "#!/bin/sh\nexport GITHUB_TOKEN=\"$(vault read token)\"\n",
    )
    .unwrap();
    git(&repo, &["commit", "-q", "-am", "remove the token"]);
    (repo, leaked_in)
}

#[test]
fn history_finds_a_removed_secret_at_the_commit_that_added_it() {
    let dir = tempfile::tempdir().unwrap();
    let token = github_token(1);
    let (repo, leaked_in) = repo_with_history(dir.path(), &token);
    let o = keyaudit(
        dir.path(),
        &["scan", "--git", repo.to_str().unwrap(), "--format", "json"],
    );
    let v = json(&o);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(&token),
        "the secret was printed"
    );
    let hits = v.as_array().unwrap();
    assert_eq!(hits.len(), 1, "{v:#}");
    assert_eq!(hits[0]["kind"], "github-pat");
    assert_eq!(hits[0]["file"], "deploy.sh");
    assert_eq!(hits[0]["line"], 2);
    assert_eq!(hits[0]["introduced"]["commit"], leaked_in);
    assert_eq!(
        hits[0]["introduced"]["author"],
        "Dana Dev <dana@example.com>"
    );
    // The working tree no longer holds it.
    let now = json(&keyaudit(
        dir.path(),
        &["scan", repo.to_str().unwrap(), "--format", "json"],
    ));
    assert_eq!(now.as_array().unwrap().len(), 0);
    // Commits after the leak only: nothing; from before it: the leak.
    let after = json(&keyaudit(
        dir.path(),
        &[
            "scan",
            "--git",
            repo.to_str().unwrap(),
            "--since-commit",
            &leaked_in,
            "--format",
            "json",
        ],
    ));
    assert_eq!(after.as_array().unwrap().len(), 0);
    let before = json(&keyaudit(
        dir.path(),
        &[
            "scan",
            "--git",
            repo.to_str().unwrap(),
            "--since-commit",
            "HEAD~2",
            "--format",
            "json",
        ],
    ));
    assert_eq!(before.as_array().unwrap().len(), 1);
    let bad = keyaudit(
        dir.path(),
        &[
            "scan",
            "--git",
            repo.to_str().unwrap(),
            "--since-commit",
            "no-such-rev",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no-such-rev"));
}

#[test]
fn staged_mode_sees_what_the_next_commit_would_add_and_fails_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = repo_with_history(dir.path(), &github_token(2));
    let r = repo.to_str().unwrap();
    let clean = keyaudit(
        dir.path(),
        &["scan", "--staged", "--git", r, "--fail-on", "high"],
    );
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let token = github_token(3);
    std::fs::write(repo.join("ci.env"), format!("TOKEN={token}\n")).unwrap();
    git(&repo, &["add", "ci.env"]);
    let o = keyaudit(
        dir.path(),
        &[
            "scan",
            "--staged",
            "--git",
            r,
            "--fail-on",
            "high",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    let v = json(&o);
    assert_eq!(v[0]["file"], "ci.env");
    assert_eq!(v[0]["severity"], "critical");
    git(&repo, &["commit", "-q", "-m", "oops"]);
    let after = keyaudit(
        dir.path(),
        &["scan", "--staged", "--git", r, "--fail-on", "high"],
    );
    assert_eq!(after.status.code(), Some(0));
}

#[test]
fn a_baseline_holds_fingerprints_only_and_leaves_out_known_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let old = github_token(4);
    std::fs::write(src.join("a.env"), format!("T={old}\n")).unwrap();
    let baseline = dir.path().join("baseline.json");
    let s = src.to_str().unwrap();
    let b = baseline.to_str().unwrap();
    json(&keyaudit(
        dir.path(),
        &["scan", s, "--write-baseline", b, "--format", "json"],
    ));
    let text = std::fs::read_to_string(&baseline).unwrap();
    assert!(
        !text.contains(&old) && !text.contains(&old[4..12]),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&baseline).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = json(&keyaudit(
        dir.path(),
        &["scan", s, "--baseline", b, "--format", "json"],
    ));
    assert_eq!(again.as_array().unwrap().len(), 0);
    let new = github_token(5);
    std::fs::write(src.join("b.env"), format!("T={new}\n")).unwrap();
    let o = keyaudit(
        dir.path(),
        &[
            "scan",
            s,
            "--baseline",
            b,
            "--format",
            "json",
            "--fail-on",
            "critical",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    let v = json(&o);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(v[0]["file"].as_str().unwrap().ends_with("b.env"));
    std::fs::write(&baseline, "{\"version\": 1, \"fingerprints\": [\"nope\"]}").unwrap();
    let bad = keyaudit(dir.path(), &["scan", s, "--baseline", b]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("baseline.json"));
}

#[test]
fn standard_input_is_scanned_and_the_table_shows_only_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    let token = github_token(6);
    let o = keyaudit_stdin(dir.path(), &["scan", "-"], &format!("x\ny {token}\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains(&token));
    assert!(
        out.contains(&format!("{}…", keyaudit::secret::mask(&token))),
        "{out}"
    );
    assert!(out.contains("github-pat"));
}

#[test]
fn sarif_output_is_valid_against_the_oasis_schema_and_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let token = github_token(7);
    let id = "AKIAQWERTYUIOPASDF23";
    std::fs::write(
        src.join("app.env"),
        format!("T={token}\naws_access_key_id={id}\n"),
    )
    .unwrap();
    let o = keyaudit(
        dir.path(),
        &["scan", src.to_str().unwrap(), "--format", "sarif"],
    );
    let v = json(&o);
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&token));
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/sarif/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::draft4::new(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ruleId"], "github-pat");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    // A broken log is caught: the check can fail.
    let mut broken = v.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn a_leak_of_a_cached_key_becomes_an_exposure_finding_with_its_use_since_the_commit() {
    use keyaudit::model::{Event, Key, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let token = github_token(8);
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("ci.yml"), format!("token: {token}\n")).unwrap();
    git(&repo, &["add", "."]);
    let o = Command::new("git")
        .current_dir(&repo)
        .args([
            "-c",
            "user.name=Dana Dev",
            "-c",
            "user.email=dana@example.com",
            "commit",
            "-q",
            "-m",
            "ci",
        ])
        .env("GIT_AUTHOR_DATE", "2026-11-02T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-11-02T10:00:00Z")
        .output()
        .unwrap();
    assert!(o.status.success());

    // The cache knows the key by its fingerprint, and its use before and after the leak.
    let mut store = keyaudit::store::Store::open(&dir.path().join("cache.db")).unwrap();
    let t0: chrono::DateTime<chrono::Utc> = "2026-11-02T10:00:00Z".parse().unwrap();
    store.ensure_provider("gh", "github", None).unwrap();
    let mut key = Key::seen_in_logs("gh", "tok-1");
    key.fingerprint = keyaudit::secret::fingerprint(&token);
    store.upsert_keys("gh", &[key], t0).unwrap();
    let ev = |id: &str, hours: i64, ip: &str| Event {
        provider: "gh".into(),
        id: id.into(),
        time: t0 + chrono::Duration::hours(hours),
        key_id: "tok-1".into(),
        principal: None,
        action: "git.clone".into(),
        scope: None,
        source_ip: Some(ip.into()),
        user_agent: None,
        outcome: Outcome::Success,
        status_code: None,
        request_id: None,
        records: None,
        raw: None,
    };
    let events = [
        ev("a", -5, "10.1.1.1"),
        ev("b", 2, "10.1.1.2"),
        ev("c", 3, "203.0.113.9"),
        ev("d", 4, "203.0.113.10"),
    ];
    store.insert_events("gh", &events, None).unwrap();
    drop(store);

    let v = json(&keyaudit(
        dir.path(),
        &["scan", "--git", repo.to_str().unwrap(), "--format", "json"],
    ));
    assert_eq!(v[0]["matched_key"], "tok-1");
    assert_eq!(v[0]["severity"], "critical");
    let commit = v[0]["introduced"]["commit"].as_str().unwrap();
    assert_eq!(
        v[0]["exposure"],
        format!("used 3 times from 2 networks since it was committed in {} on 2026-11-02; 1 network never seen before", &commit[..12])
    );
    let f = json(&keyaudit(
        dir.path(),
        &["findings", "--category", "exposure", "--format", "json"],
    ));
    let f = &f.as_array().unwrap()[0];
    assert_eq!(f["key_id"], "tok-1");
    assert_eq!(f["evidence"], serde_json::json!(["b", "c", "d"]));
    assert!(f["explanation"]
        .as_str()
        .unwrap()
        .starts_with("used 3 times"));
    assert!(!f.to_string().contains(&token));
    // Read-only: the same answer, nothing recorded.
    let ro = keyaudit(
        dir.path(),
        &["--read-only", "scan", "--git", repo.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&ro.stderr).contains("1 exposure findings not recorded"));
}

/// A leaked GitHub token is matched to an imported GitHub audit log through the
/// `hashed_token` GitHub records on each event the token made (base64 SHA-256 of the
/// token, computed here independently): the exposure finding's evidence is those events
/// since the commit.
#[test]
fn a_github_token_is_matched_to_its_audit_log_events_by_hashed_token() {
    use base64::Engine;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let token = github_token(21);
    let hashed =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(token.as_bytes()));
    let other = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"x"));
    // 2026-11-02T10:00:00Z is 1793613600000 ms.
    let t0: i64 = 1_793_613_600_000;
    let event = |doc: &str, at: i64, h: &str, ip: &str| {
        serde_json::json!({
            "@timestamp": at, "_document_id": doc, "action": "git.clone", "actor": "ci-bot",
            "actor_ip": ip, "created_at": at, "hashed_token": h, "org": "example-hr",
            "programmatic_access_type": "Personal access token (classic)", "token_id": 4242,
            "repo": "example-hr/payroll-service", "user_agent": "git/2.43.0"
        })
    };
    let mut stranger = event("stranger", t0 + 7_300_000, &other, "192.0.2.1");
    stranger["token_id"] = 7.into();
    let log = serde_json::json!([
        event("before-1", t0 - 3_600_000, &hashed, "10.20.0.5"),
        event("after-1", t0 + 3_600_000, &hashed, "10.20.0.6"),
        event("after-2", t0 + 7_200_000, &hashed, "198.51.100.77"),
        stranger,
    ]);
    let export = dir.path().join("export-example-hr.json");
    std::fs::write(&export, serde_json::to_string_pretty(&log).unwrap()).unwrap();
    let o = keyaudit(
        dir.path(),
        &["import", export.to_str().unwrap(), "--format", "github"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join("deploy.sh"),
        format!("GH_TOKEN={token} ./deploy\n"),
    )
    .unwrap();
    git(&repo, &["add", "."]);
    let o = Command::new("git")
        .current_dir(&repo)
        .args([
            "-c",
            "user.name=Dana Dev",
            "-c",
            "user.email=dana@example.com",
        ])
        .args(["commit", "-q", "-m", "deploy"])
        .env("GIT_AUTHOR_DATE", "2026-11-02T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-11-02T10:00:00Z")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(o.status.success());

    let v = json(&keyaudit(
        dir.path(),
        &["scan", "--git", repo.to_str().unwrap(), "--format", "json"],
    ));
    assert_eq!(v[0]["kind"], "github-pat");
    assert_eq!(v[0]["hashed_token"], hashed.as_str());
    assert_eq!(v[0]["matched_key"], "token:4242", "{v:#}");
    assert!(
        v[0]["exposure"]
            .as_str()
            .unwrap()
            .starts_with("used 2 times from 2 networks since it was committed in"),
        "{v:#}"
    );
    let f = json(&keyaudit(
        dir.path(),
        &["findings", "--category", "exposure", "--format", "json"],
    ));
    let f = &f.as_array().unwrap()[0];
    assert_eq!(f["key_id"], "token:4242");
    assert_eq!(f["evidence"], serde_json::json!(["after-1", "after-2"]));
    assert!(!f.to_string().contains(&token));
    // A token whose hash no event carries stays unmatched.
    std::fs::write(
        dir.path().join("other.env"),
        format!("T={}\n", github_token(22)),
    )
    .unwrap();
    let v = json(&keyaudit(
        dir.path(),
        &[
            "scan",
            dir.path().join("other.env").to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    assert_eq!(v[0]["matched_key"], serde_json::Value::Null);
}
