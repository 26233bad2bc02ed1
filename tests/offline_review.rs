//! The offline reviewer's sessions through the real binary: `--db` opens the named
//! cache (never the demo), a missing cache is a usage error naming it, and sessions side
//! by side (two demos, a TUI on a `--db` cache, a CLI `sync` and `detect` beside them)
//! all keep working.

use keyaudit::demo::{self, DemoOptions};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keyaudit");
const CLOUDTRAIL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/import/cloudtrail-events.jsonl"
);
const TOKEN_ENV: &str = "KEYAUDIT_OFFLINE_TOKEN";

/// Runs keyaudit with its XDG directories inside `dir` and no configuration.
fn keyaudit(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env_remove("KEYAUDIT_DB")
        .env_remove("KEYAUDIT_CONFIG")
        .output()
        .expect("keyaudit runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmux_available() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("tmux is required for the end-to-end tests in CI (apt-get install -y tmux)");
    }
    if !ok {
        eprintln!("skipping: tmux is not installed (apt-get install -y tmux)");
    }
    ok
}

/// One tmux server (its own socket) with named sessions.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        Tmux {
            socket: format!("keyaudit-{tag}-{}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn start(&self, session: &str, command: &str) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "140",
            "-y",
            "40",
            command,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the pane after the program exits, so a failure's last screen is seen.
        self.cmd(&["set-option", "-t", session, "remain-on-exit", "on"]);
    }

    fn send(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    fn wait_for(&self, what: &str, session: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_long(what, session, Duration::from_secs(60), pred)
    }

    fn wait_long(
        &self,
        what: &str,
        session: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen(session);
            if pred(&s) {
                return s;
            }
            if start.elapsed() > limit {
                panic!("timed out waiting for {what} in {session}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True once the program in the session has exited.
    fn exited(&self, session: &str) -> bool {
        let o = self.cmd(&["display-message", "-p", "-t", session, "#{pane_dead}"]);
        String::from_utf8_lossy(&o.stdout).trim() == "1"
    }

    fn wait_exit(&self, session: &str) {
        let start = Instant::now();
        while !self.exited(session) {
            if start.elapsed() > Duration::from_secs(60) {
                panic!("{session} did not exit:\n{}", self.screen(session));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The command line of a TUI in tmux with its XDG directories in `dir`.
fn tui_command(dir: &Path, args: &str) -> String {
    format!(
        "env -u KEYAUDIT_DB -u KEYAUDIT_CONFIG XDG_CONFIG_HOME={} XDG_DATA_HOME={} XDG_STATE_HOME={} {BIN} {args}",
        dir.join("xdg-config").display(),
        dir.join("xdg-data").display(),
        dir.join("xdg-state").display(),
    )
}

/// Words that only an error line shows.
fn error_line(screen: &str) -> Option<&str> {
    screen.lines().find(|l| {
        // The providers view's column header is not an error.
        let l = l.replace("LAST ERROR", "").to_lowercase();
        [
            "error",
            "locked",
            "busy",
            "not a database",
            "failed",
            "cannot",
        ]
        .iter()
        .any(|w| l.contains(w))
    })
}

#[test]
fn a_missing_db_is_a_usage_error_naming_it_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let db = missing.to_str().unwrap();
    for args in [
        vec!["--db", db],
        vec!["--db", db, "tui"],
        vec!["--db", db, "keys"],
        vec!["--db", db, "events"],
        vec!["--db", db, "findings"],
        vec!["--db", db, "journal"],
        vec!["--db", db, "export", "events"],
    ] {
        let o = keyaudit(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("no cache at {db}")),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!missing.exists(), "{args:?} created the cache");
    }
    // KEYAUDIT_DB names the cache as --db does.
    let o = Command::new(BIN)
        .arg("keys")
        .env("KEYAUDIT_DB", db)
        .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
        .env("XDG_STATE_HOME", dir.path().join("xdg-state"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // import creates it.
    let o = keyaudit(dir.path(), &["--db", db, "import", CLOUDTRAIL]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(missing.exists());
}

#[test]
fn import_then_db_opens_that_cache_not_the_demo() {
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("review.db");
    let o = keyaudit(
        dir.path(),
        &["--db", db.to_str().unwrap(), "import", CLOUDTRAIL],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tmux = Tmux::new("dbopen");
    tmux.start(
        "review",
        &tui_command(dir.path(), &format!("--db {}", db.display())),
    );
    let s = tmux.wait_for("the imported key", "review", |s| {
        s.contains("AKIAI44QH8DHBEXAMPLE")
    });
    assert!(!s.contains("DEMO"), "the demo opened:\n{s}");
    assert!(!s.contains("Syncing"), "{s}");
    // The providers view lists the imported file beside the source.
    tmux.send("review", &["6"]);
    let s = tmux.wait_for("the imported files", "review", |s| {
        s.contains("imported files 1")
    });
    assert!(
        s.contains("cloudtrail-events.jsonl") && s.contains("2024-03-02"),
        "{s}"
    );
    tmux.send("review", &["q"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_sessions_and_a_db_session_work_beside_cli_sync_and_detect() {
    if !tmux_available() {
        return;
    }
    let server = demo::start(DemoOptions {
        seed: 31,
        token: "offline-admin-token".into(),
        events: 3000,
        live_rate: 20.0,
        ..DemoOptions::default()
    })
    .await
    .expect("demo starts");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The `--db` session syncs every second from a provider the CLI syncs too.
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\n\n[tui]\nmouse = false\nsync_interval_secs = 1\n",
            server.url
        ),
    )
    .unwrap();
    let db = d.join("shared.db");
    // The demo sessions sync every 2 seconds too (a configuration without providers
    // keeps the demo).
    let demo_config = d.join("xdg-config/keyaudit/config.toml");
    std::fs::create_dir_all(demo_config.parent().unwrap()).unwrap();
    std::fs::write(
        &demo_config,
        "[tui]\nmouse = false\nsync_interval_secs = 2\n",
    )
    .unwrap();
    let tmux = Tmux::new("side");
    tmux.start("demo1", &tui_command(d, ""));
    tmux.start("demo2", &tui_command(d, ""));
    tmux.start(
        "shared",
        &format!(
            "env {TOKEN_ENV}={} {}",
            server.token,
            tui_command(
                d,
                &format!("--db {} --config {}", db.display(), config.display())
            )
        ),
    );
    for s in ["demo1", "demo2"] {
        tmux.wait_for("the demo's keys", s, |s| {
            s.contains("DEMO") && s.contains("Ledgerly")
        });
    }
    tmux.wait_for("the synced keys", "shared", |s| s.contains("Ledgerly"));
    // The CLI beside them, on the `--db` session's cache.
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args([
                "--db",
                db.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ])
            .args(args)
            .env(TOKEN_ENV, &server.token)
            .env("XDG_CONFIG_HOME", d.join("xdg-config"))
            .env("XDG_DATA_HOME", d.join("xdg-data"))
            .env("XDG_STATE_HOME", d.join("xdg-state"))
            .output()
            .expect("keyaudit runs")
    };
    // A full minute of live syncing in all three sessions, with the CLI's `sync` and
    // `detect` running one after the other beside them the whole time.
    let minute = Instant::now();
    let mut round = 0;
    while minute.elapsed() < Duration::from_secs(60) {
        for args in [&["sync"][..], &["detect"][..]] {
            let o = cli(args);
            assert_eq!(
                o.status.code(),
                Some(0),
                "round {round} {args:?}: {}",
                stderr(&o)
            );
        }
        for s in ["demo1", "demo2", "shared"] {
            let screen = tmux.screen(s);
            if let Some(line) = error_line(&screen) {
                panic!("round {round}: {s} shows an error line `{line}`:\n{screen}");
            }
        }
        round += 1;
    }
    assert!(round >= 2, "only {round} CLI rounds ran");
    // Every session synced during the minute: its status line names its last sync.
    for s in ["demo1", "demo2", "shared"] {
        let screen = tmux.wait_for("a finished live sync", s, |s| s.contains("new events in"));
        assert!(error_line(&screen).is_none(), "{s}:\n{screen}");
    }
    // Both demo sessions still read their own caches: switching views reloads them.
    for s in ["demo1", "demo2"] {
        tmux.send(s, &["6"]);
        let screen = tmux.wait_for("the providers view", s, |s| s.contains("talentgrid-demo"));
        assert!(error_line(&screen).is_none(), "{s}:\n{screen}");
        tmux.send(s, &["q"]);
    }
    tmux.send("shared", &["q"]);
    // Each demo session removed its own cache when it ended.
    let demo_dir = d.join("xdg-data/keyaudit/demo");
    let start = Instant::now();
    while std::fs::read_dir(&demo_dir).is_ok_and(|mut r| r.next().is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "demo caches left: {:?}",
            std::fs::read_dir(&demo_dir).unwrap().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown().await;
}

#[test]
fn open_shows_the_case_and_reopening_adds_nothing() {
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("case");
    for round in ["first", "again"] {
        tmux.start(
            round,
            &tui_command(
                dir.path(),
                &format!("open {CLOUDTRAIL} 2>{}/{round}.err", dir.path().display()),
            ),
        );
        let s = tmux.wait_for("the case's keys", round, |s| {
            s.contains("AKIAI44QH8DHBEXAMPLE")
        });
        assert!(s.contains("CASE cloudtrail-events"), "{s}");
        assert!(!s.contains("DEMO"), "{s}");
        tmux.send(round, &["q"]);
        // The import's summary is printed once the terminal is restored.
        tmux.wait_exit(round);
    }
    let again = std::fs::read_to_string(dir.path().join("again.err")).unwrap();
    assert!(again.contains("already imported"), "{again}");
    let o = keyaudit(dir.path(), &["cases", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], "cloudtrail-events");
    assert_eq!(v[0]["events"], 3);
}

#[path = "support/open_export.rs"]
mod open_export;

/// Events of the case `name`, as `keyaudit cases` counts them.
fn case_events(dir: &Path, name: &str) -> u64 {
    let o = keyaudit(dir, &["cases", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["events"].as_u64())
        .unwrap_or_else(|| panic!("no case {name}: {v}"))
}

#[test]
fn open_shows_events_while_it_imports_then_findings_and_a_stop_resumes() {
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Large enough that the import takes several seconds in either build.
    let n: u64 = if cfg!(debug_assertions) {
        60_000
    } else {
        400_000
    };
    let export = d.join("big-export.jsonl.gz");
    open_export::write_export(&export, n, 40);
    let tmux = Tmux::new("live-open");
    let open = |session: &str| {
        tmux.start(
            session,
            &tui_command(
                d,
                &format!(
                    "open {} --case big 2>{}/{session}.err",
                    export.display(),
                    d.display()
                ),
            ),
        );
    };
    open("first");
    // The gauge and imported keys on one screen: events show before the import ends.
    let s = tmux.wait_for("the gauge beside imported keys", "first", |s| {
        s.contains("import 1/1 files") && s.contains("AKIAOPEN")
    });
    assert!(s.contains("CASE big") && s.contains("stop import"), "{s}");
    assert!(error_line(&s).is_none(), "{s}");
    // Their events too.
    tmux.send("first", &["3"]);
    let s = tmux.wait_for("imported events", "first", |s| {
        s.contains("[events]") && s.contains("AKIAOPEN") && s.contains("198.51.")
    });
    assert!(error_line(&s).is_none(), "{s}");
    // Stop it: what was committed stays on screen.
    tmux.send("first", &["X"]);
    let s = tmux.wait_long(
        "the import stopped",
        "first",
        Duration::from_secs(120),
        |s| s.contains("Import stopped"),
    );
    assert!(s.contains("--case big"), "{s}");
    assert!(!s.contains("import 1/1 files"), "the gauge stayed:\n{s}");
    tmux.send("first", &["1"]);
    let s = tmux.wait_for("the committed keys", "first", |s| s.contains("AKIAOPEN"));
    assert!(error_line(&s).is_none(), "{s}");
    tmux.send("first", &["q"]);
    tmux.wait_exit("first");
    let err = std::fs::read_to_string(d.join("first.err")).unwrap();
    assert!(
        err.contains("stopped after") && err.contains("resumes it"),
        "{err}"
    );
    let kept = case_events(d, "big");
    assert!(kept > 0 && kept < n, "{kept} of {n} events kept");

    // Opening the case again resumes, ends the import and runs detection.
    open("again");
    let s = tmux.wait_long(
        "detection after the import",
        "again",
        Duration::from_secs(600),
        |s| s.contains("Detection over"),
    );
    assert!(error_line(&s).is_none(), "{s}");
    assert!(!s.contains("import 1/1 files"), "{s}");
    // The findings are on screen without a restart.
    tmux.send("again", &["4"]);
    let s = tmux.wait_for("findings", "again", |s| {
        s.contains("[findings]") && s.contains("AKIAOPEN")
    });
    assert!(error_line(&s).is_none(), "{s}");
    tmux.send("again", &["q"]);
    tmux.wait_exit("again");
    let err = std::fs::read_to_string(d.join("again.err")).unwrap();
    assert!(err.contains("resumed after record"), "{err}");
    // Every event once: the resumed import neither lost nor duplicated any.
    assert_eq!(case_events(d, "big"), n);
}
