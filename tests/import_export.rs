//! Exports: the findings report for auditors, and jsonl/csv of keys, events, findings
//! and the journal; files are private. `open` imports into a fresh case database.

#[path = "import_support/mod.rs"]
mod support;

use chrono::{TimeZone, Utc};
use keyaudit::model::{Category, Finding, FindingStatus, Severity};
use keyaudit::store::Store;
use support::*;

fn seeded() -> Sandbox {
    let sb = Sandbox::new();
    let f = sb.write(
        "cloudtrail-records.json",
        &sample("cloudtrail-records.json"),
    );
    let g = sb.write("github-audit.json", &sample("github-audit.json"));
    assert_eq!(sb.import(&[&f, &g], &[]).0, 0);
    let store = Store::open(&sb.db()).unwrap();
    let t = Utc.with_ymd_and_hms(2024, 3, 1, 10, 3, 40).unwrap();
    store
        .upsert_finding(&Finding {
            id: "f-1".into(),
            rule: "denied-burst".into(),
            category: Category::Anomaly,
            severity: Severity::High,
            provider: "cloudtrail".into(),
            key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            title: "Denied IAM call from a new address".into(),
            explanation: "The key tried iam:CreateUser from 203.0.113.77, never seen before | and was denied.".into(),
            evidence: vec!["3b9a1c52-1c5e-4b8e-9d0e-000000000002".into(), "gone-event".into()],
            first_seen: t,
            last_seen: t,
            status: FindingStatus::Open,
            note: None,
            suppressed_until: None,
        })
        .unwrap();
    sb
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_markdown_report_reads_like_a_report() {
    let sb = seeded();
    let out = sb.path("report.md");
    let (code, _, err) = sb.run(&[
        "export",
        "findings",
        "--format",
        "md",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    #[cfg(unix)]
    assert_eq!(mode(&out), 0o600);
    let md = std::fs::read_to_string(&out).unwrap();
    for want in [
        "# API key audit report",
        "## Scope",
        "- Events reviewed: 7 from 2024-03-01 10:02 UTC to 2024-03-03 10:02 UTC",
        "| cloudtrail | import | 3 | 4 |",
        "## Keys by owner",
        "(owner unknown)",
        "(seen in logs)",
        "### 1. [HIGH] Denied IAM call from a new address",
        "never seen before \\| and was denied.",
        "| 2024-03-01T10:03:40.000Z | iam.amazonaws.com:CreateUser | 203.0.113.77 | denied |",
        "(event no longer cached)",
    ] {
        assert!(md.contains(want), "missing `{want}` in:\n{md}");
    }
    // Without -o it goes to stdout.
    let (code, stdout, _) = sb.run(&["export", "findings", "--format", "md"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("# API key audit report"));
}

#[test]
fn machine_exports_of_every_subject() {
    let sb = seeded();
    let (code, out, err) = sb.run(&["export", "events", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 7);
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["time"].is_string() && v["key_id"].is_string());
    }
    let (_, out, _) = sb.run(&["export", "keys", "--format", "csv"]);
    assert!(out.starts_with("provider,id,name,owner"), "{out}");
    assert!(out.contains("cloudtrail,AKIAIOSFODNN7EXAMPLE,"));
    let (_, out, _) = sb.run(&["export", "findings", "--format", "csv"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let f = sb.path("journal.jsonl");
    let (code, _, err) = sb.run(&[
        "export",
        "journal",
        "--format",
        "jsonl",
        "-o",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    #[cfg(unix)]
    assert_eq!(mode(&f), 0o600);
    let (code, _, err) = sb.run(&["export", "keys", "--format", "md"]);
    assert_eq!(code, 2);
    assert!(err.contains("--format md is the findings report"), "{err}");
}

/// `keys --format csv`, `export keys --format csv` and the TUI's export write the same
/// columns (and, over the same cache, the same file).
#[test]
fn the_three_keys_csv_paths_print_identical_headers() {
    let sb = seeded();
    let (code, cli, err) = sb.run(&["keys", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let (code, export, err) = sb.run(&["export", "keys", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let rows = Store::open(&sb.db()).unwrap().keys().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tui = keyaudit::tui::view::keys::export(
        dir.path(),
        keyaudit::tui::action::ExportFormat::Csv,
        &rows,
        Utc::now(),
    )
    .unwrap();
    let tui = std::fs::read_to_string(tui).unwrap();
    let header = keyaudit::export::KEY_COLUMNS.join(",");
    for (what, text) in [("keys", &cli), ("export keys", &export), ("tui", &tui)] {
        assert_eq!(
            text.lines().next(),
            Some(header.as_str()),
            "{what}:\n{text}"
        );
        assert_eq!(text.lines().count(), rows.len() + 1, "{what}:\n{text}");
    }
    assert_eq!(cli, export);
    assert_eq!(tui, export);
}

#[test]
fn open_imports_into_a_named_case_and_reopens_it() {
    let sb = Sandbox::new();
    let f = sb.write("logs/vault-audit.log", &sample("vault-audit.log"));
    let (_, out, err) = sb.run(&["open", f.to_str().unwrap()]);
    let case = sb.path("data/keyaudit/cases/vault-audit.db");
    assert!(err.contains("case `vault-audit`:"), "{err}");
    assert_eq!(out.trim(), case.display().to_string());
    assert_eq!(count(&case), 3);
    // Opening the same files again adds nothing: the case is reused as it is.
    let (_, out, err) = sb.run(&["open", f.to_str().unwrap()]);
    assert_eq!(out.trim(), case.display().to_string());
    assert!(err.contains("already imported"), "{err}");
    assert!(!err.contains("3 imported"), "{err}");
    assert_eq!(count(&case), 3);
    // A new file goes into the same case by name; its duplicates are not added twice.
    let g = sb.write("more/gitlab.jsonl", &sample("gitlab-stream.jsonl"));
    let (_, _, err) = sb.run(&[
        "open",
        f.to_str().unwrap(),
        g.to_str().unwrap(),
        "--case",
        "vault-audit",
    ]);
    assert!(err.contains("gitlab.jsonl: gitlab"), "{err}");
    let total = count(&case);
    assert!(total > 3, "{total}");
    assert!(!sb.db().exists(), "the main cache is left alone");

    // `cases` lists it with its sources and events.
    let (code, out, err) = sb.run(&["cases", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = &v.as_array().unwrap()[0];
    assert_eq!(c["name"], "vault-audit");
    assert_eq!(c["sources"], 2);
    assert_eq!(c["events"], total);
    assert!(c["last_opened"].is_string(), "{c}");
    assert!(c["size"].as_u64().unwrap() > 0);
    // `cases rm` asks unless --yes; without a terminal it refuses.
    let (code, _, err) = sb.run(&["cases", "rm", "vault-audit"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(case.exists());
    let (code, _, err) = sb.run(&["cases", "rm", "vault-audit", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(!case.exists());
    let (code, _, err) = sb.run(&["cases", "rm", "vault-audit", "--yes"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no case `vault-audit`"), "{err}");
}
