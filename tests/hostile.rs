//! The hostile-input suite: text that attackers control (escape sequences of every kind,
//! bidirectional overrides, zero-width characters, control bytes, formula cells, very
//! long fields, invalid UTF-8, deep nesting, huge numbers) goes through import, a sync
//! from `keyaudit demo --hostile`, every CLI listing format, every export and every TUI
//! view. The binary's output is read through pseudo-terminals: no raw control byte
//! reaches them, nothing crashes, and what is stored keeps the exact values.

#[path = "support/hostile.rs"]
mod hostile;

use hostile::{assert_inert, run_pty, text_cases, PtyRun};
use keyaudit::store::{EventQuery, Store};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "hostile-test-token";

fn keyaudit(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyaudit"));
    c.env("KEYAUDIT_CONFIG", dir.join("config.toml"))
        .env("KEYAUDIT_DB", dir.join("cache.db"))
        .env("HOME", dir)
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("TG_TOKEN", TOKEN)
        .env_remove("KEYAUDIT_LOG");
    c
}

/// Runs `keyaudit ARGS` on pseudo-terminals; asserts that it did not crash and that
/// both terminals stayed inert.
fn run(dir: &Path, args: &[&str]) -> PtyRun {
    let mut c = keyaudit(dir);
    c.args(args);
    let r = run_pty(c);
    let what = format!("keyaudit {}", args.join(" "));
    assert!(
        (0..=3).contains(&r.code),
        "{what} crashed (exit {}): {}",
        r.code,
        r.stderr_text()
    );
    assert!(
        !r.stderr_text().contains("panicked"),
        "{what} panicked: {}",
        r.stderr_text()
    );
    assert_inert(&format!("{what} (stdout)"), &r.stdout);
    assert_inert(&format!("{what} (stderr)"), &r.stderr);
    r
}

fn run_ok(dir: &Path, args: &[&str]) -> PtyRun {
    let r = run(dir, args);
    assert_eq!(
        r.code,
        0,
        "keyaudit {} failed: {}",
        args.join(" "),
        r.stderr_text()
    );
    r
}

/// Every listing and export in every format, through the terminal.
fn every_cli_output(dir: &Path) -> String {
    let mut seen = String::new();
    for subject in ["keys", "events", "findings", "journal"] {
        for format in ["table", "json", "jsonl", "csv"] {
            let r = run_ok(dir, &[subject, "--format", format]);
            seen.push_str(&r.stdout_text());
            if format == "json" {
                let v: Value = serde_json::from_str(&r.stdout_text())
                    .unwrap_or_else(|e| panic!("{subject} --format json: {e}"));
                assert!(v.is_array());
            }
        }
        let formats: &[&str] = if subject == "findings" {
            &["jsonl", "csv", "md"]
        } else {
            &["jsonl", "csv"]
        };
        for format in formats {
            seen.push_str(&run_ok(dir, &["export", subject, "--format", format]).stdout_text());
        }
    }
    seen
}

/// Spreadsheet programs would run a CSV cell beginning with `=`, `+`, `-`, `@`, tab or
/// carriage return: every such cell of the CSV outputs is prefixed.
fn csv_cells_are_not_formulas(dir: &Path) {
    for args in [
        ["keys", "--format", "csv"],
        ["events", "--format", "csv"],
        ["export", "events", "--format"],
    ] {
        let mut args = args.to_vec();
        if args[0] == "export" {
            args.push("csv");
        }
        let text = run_ok(dir, &args).stdout_text();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let mut cells = 0;
        for rec in rdr.records() {
            for cell in rec.unwrap().iter() {
                cells += 1;
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{args:?}: a formula cell {cell:?}"
                );
            }
        }
        assert!(cells > 0, "{args:?} wrote no cells");
    }
}

#[test]
fn hostile_logs_imported_stay_inert_everywhere_and_keep_their_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("config.toml"), "").unwrap();
    let files = hostile::write_logs(dir);
    let mut args = vec!["import".to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let imported = run(dir, &refs);
    let err = imported.stderr_text();
    // Each file is imported; each record that is not JSON is reported by file and line.
    assert!(err.contains("generic.jsonl: "), "{err}");
    assert!(
        err.contains("odd.jsonl:3:") && err.contains("odd.jsonl:6:"),
        "bad records are named by line: {err}"
    );
    run_ok(dir, &["detect"]);

    let cases = text_cases();
    let store = Store::open_read_only(&dir.join("cache.db")).unwrap();
    let events = store.events(&EventQuery::default()).unwrap();
    // Nothing stored is lost: every value is kept exactly, in the event and in its raw
    // record.
    for (i, c) in cases.iter().enumerate() {
        let e = events
            .iter()
            .find(|r| r.event.id == format!("gen-{i}"))
            .unwrap_or_else(|| panic!("the event of case {} was not imported", c.name))
            .event
            .clone();
        assert_eq!(e.user_agent.as_deref(), Some(c.text.as_str()), "{}", c.name);
        let short = if c.text.len() > hostile::SHORT {
            &c.name
        } else {
            &c.text
        };
        assert_eq!(e.principal.as_deref(), Some(short.as_str()), "{}", c.name);
        assert_eq!(e.key_id, format!("hk-{i}-{short}"), "{}", c.name);
        let raw: Value = serde_json::from_str(e.raw.as_deref().unwrap()).unwrap();
        assert_eq!(raw["note"], c.text.as_str(), "raw record of {}", c.name);
        let ct = events
            .iter()
            .find(|r| r.event.id == format!("ct-{i}"))
            .unwrap_or_else(|| panic!("the CloudTrail event of case {} was not imported", c.name));
        assert_eq!(ct.event.user_agent.as_deref(), Some(c.text.as_str()));
        assert!(events.iter().any(|r| r.event.id == format!("ctr-{i}")));
    }
    // Records a JSON string cannot hold are reported, not stored half; the huge
    // numbers and escaped controls are kept as values.
    let odd: Vec<_> = events
        .iter()
        .filter(|r| r.event.key_id == "file-case")
        .collect();
    assert!(
        odd.iter()
            .any(|r| r.event.user_agent.as_deref() == Some("esc\0aped")),
        "an escaped NUL is kept"
    );
    assert!(odd
        .iter()
        .any(|r| r.event.user_agent.as_deref() == Some("\x1b[2J\u{9b}1m")));
    drop(store);

    let shown = every_cli_output(dir);
    // Shown, escaped: the text is visible, not dropped.
    assert!(
        shown.contains("\\u{1b}]52;c;"),
        "the OSC 52 text is shown escaped"
    );
    assert!(shown.contains("\\u{202e}") || shown.contains("\\u202e"));
    csv_cells_are_not_formulas(dir);

    // JSON output keeps the exact values.
    let json: Vec<Value> =
        serde_json::from_str(&run_ok(dir, &["events", "--format", "json"]).stdout_text()).unwrap();
    for c in &cases {
        assert!(
            json.iter().any(|e| e["user_agent"] == c.text.as_str()),
            "JSON output changed the value of {}",
            c.name
        );
    }

    let store = Store::open_read_only(&dir.join("cache.db")).unwrap();
    let screens = hostile::every_tui_view_is_inert(&store, 6);
    assert!(
        screens.contains("\\u{1b}"),
        "hostile text is on the screens, escaped"
    );
}

fn write_demo_config(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"{url}\"\ntoken_env = \"TG_TOKEN\"\n"
        ),
    )
    .unwrap();
}

async fn hostile_demo(faults: Option<&str>) -> keyaudit::demo::DemoHandle {
    keyaudit::demo::start(keyaudit::demo::DemoOptions {
        token: TOKEN.into(),
        events: 4_000,
        days: 10,
        live_rate: 0.0,
        faults: faults.map(str::to_string),
        hostile: true,
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_provider_synced_stays_inert_everywhere() {
    let demo = hostile_demo(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    write_demo_config(&dir, &demo.url);
    let d = dir.clone();
    let synced = tokio::task::spawn_blocking(move || run_ok(&d, &["sync"]))
        .await
        .unwrap();
    assert!(
        synced.stderr_text().contains("talentgrid: "),
        "{}",
        synced.stderr_text()
    );

    let d = dir.clone();
    tokio::task::spawn_blocking(move || {
        let shown = every_cli_output(&d);
        assert!(shown.contains("\\u{1b}"), "hostile names are shown escaped");
        csv_cells_are_not_formulas(&d);

        // The stored names are exact.
        let keys: Vec<Value> =
            serde_json::from_str(&run_ok(&d, &["keys", "--format", "json"]).stdout_text()).unwrap();
        for (name, text) in keyaudit::demo::hostile::CASES {
            assert!(
                keys.iter()
                    .any(|k| k["name"] == format!("{text} ({name})").as_str()),
                "the key named by case {name} is not stored exactly"
            );
        }
        let long = keys
            .iter()
            .filter_map(|k| k["purpose"].as_str())
            .map(str::len)
            .max()
            .unwrap();
        assert!(long >= keyaudit::demo::hostile::LONG_FIELD);

        // A bulk action whose every key fails: the provider's refusals (which carry
        // the hostile names) are printed as FAILED lines.
        let revoked: Vec<&str> = keys
            .iter()
            .filter(|k| k["status"] == "revoked")
            .filter_map(|k| k["id"].as_str())
            .take(3)
            .collect();
        assert!(!revoked.is_empty());
        let mut args = vec!["enable"];
        args.extend(&revoked);
        args.extend(["--reason", "\x1b]0;why\x07 \u{202e}reason", "--yes"]);
        let failed = run(&d, &args);
        let out = failed.stdout_text();
        assert!(out.contains("FAILED"), "{out}{}", failed.stderr_text());
        assert!(
            out.contains("\\u{1b}"),
            "the refusal's hostile text is shown escaped: {out}"
        );
        for format in ["table", "json", "jsonl", "csv"] {
            run_ok(&d, &["journal", "--format", format]);
        }
        run_ok(&d, &["export", "journal", "--format", "csv"]);

        let store = Store::open_read_only(&d.join("cache.db")).unwrap();
        hostile::every_tui_view_is_inert(&store, 8);
    })
    .await
    .unwrap();

    // Error answers carry hostile text: `sync failed: ...` and the top-level error stay
    // inert.
    let broken = hostile_demo(Some("500=1.0")).await;
    write_demo_config(&dir, &broken.url);
    let d = dir.clone();
    let failed = tokio::task::spawn_blocking(move || run(&d, &["sync"]))
        .await
        .unwrap();
    assert_eq!(failed.code, 1);
    let err = failed.stderr_text();
    assert!(err.contains("sync failed"), "{err}");
    assert!(
        err.contains("upstream said: \\u{1b}]52;c;"),
        "the error body is shown escaped: {err}"
    );
    broken.shutdown().await;
    demo.shutdown().await;
}
