//! The import of `keyaudit open` as the operator sees it: the gauge, the views reloading
//! as batches commit (at most once a second), the stop key, detection after the end.

#[path = "support/tui_fixture.rs"]
mod fixture;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fixture::{apply, state};
use keyaudit::tui::action::{Action, Effect};
use keyaudit::tui::import::{ImportGauge, ImportProgress, ImportReport, Phase};
use keyaudit::tui::keymap::Context;
use keyaudit::tui::state::State;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::Duration;

fn importing(w: u16, h: u16) -> State {
    let mut s = state(w, h);
    s.import = Some(ImportGauge::new(2, 600_000_000));
    s
}

fn progress(commits: u64, millis: u64) -> Action {
    Action::ImportProgressed(ImportProgress {
        files_done: 0,
        files_total: 2,
        file: "trail-2024-05.jsonl".into(),
        bytes: 150_000_000,
        bytes_total: 600_000_000,
        records: 250_000,
        imported: 249_000,
        commits,
        elapsed: Duration::from_millis(millis),
    })
}

fn reloads(fx: &[Effect]) -> bool {
    fx.iter().any(|e| matches!(e, Effect::LoadKeys))
}

fn press_stop(s: &mut State) -> Vec<Effect> {
    let a = s
        .action_for_key(&KeyEvent::new(KeyCode::Char('X'), KeyModifiers::SHIFT))
        .expect("X is bound while an import runs");
    apply(s, a)
}

fn screen(s: &State) -> String {
    let mut t = Terminal::new(TestBackend::new(s.size.0, s.size.1)).unwrap();
    t.draw(|f| keyaudit::tui::view::render(s, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn the_views_reload_as_batches_commit_at_most_once_a_second() {
    let mut s = importing(120, 40);
    assert!(s.start().iter().any(|e| matches!(e, Effect::Import)));
    // Progress before the first commit: nothing to read yet.
    assert!(!reloads(&apply(&mut s, progress(0, 200))));
    // The first commit shows at once.
    assert!(reloads(&apply(&mut s, progress(1, 300))));
    // Further commits within the second wait; the next one after it reloads.
    assert!(!reloads(&apply(&mut s, progress(2, 800))));
    assert!(!reloads(&apply(&mut s, progress(3, 1_200))));
    assert!(reloads(&apply(&mut s, progress(4, 1_400))));
    // No new commit, no reload, however much time passes.
    assert!(!reloads(&apply(&mut s, progress(4, 9_000))));
    // Frozen: the reload waits for the operator.
    apply(&mut s, Action::ToggleFreeze);
    assert!(!reloads(&apply(&mut s, progress(5, 10_000))));
    assert!(reloads(&apply(&mut s, Action::ToggleFreeze)));
}

#[test]
fn the_gauge_and_the_stop_key_show_at_80_and_200_columns() {
    for (w, h) in [(80, 24), (200, 50)] {
        let mut s = importing(w, h);
        apply(&mut s, progress(1, 5_000));
        let text = screen(&s);
        let gauge = text
            .lines()
            .find(|l| l.contains("import 1/2 files"))
            .unwrap_or_else(|| panic!("no gauge at {w}x{h}:\n{text}"));
        for part in ["250,000 records", "150/600 MB", "50,000/s", "ETA 15s"] {
            assert!(gauge.contains(part), "{part} missing at {w}x{h}: {gauge}");
        }
        // The file's name only where there is room for it.
        assert_eq!(gauge.contains("trail-2024-05.jsonl"), w >= 120, "{gauge}");
        let hints = text.lines().last().unwrap();
        assert!(hints.starts_with("X stop import"), "{hints}");
        // The list keeps its rows: the gauge takes one line from the body.
        assert!(text.contains("Acme"), "{text}");
    }
    // No gauge and no stop key without an import.
    let s = state(80, 24);
    assert!(!screen(&s).contains("stop import"));
    assert!(!s.contexts().contains(&Context::Import));
}

#[test]
fn stopping_keeps_what_was_committed_and_says_how_to_resume() {
    let mut s = importing(120, 40);
    s.case = Some("trail".into());
    let fx = press_stop(&mut s);
    assert!(matches!(fx.as_slice(), [Effect::StopImport]), "{fx:?}");
    assert_eq!(s.import.as_ref().unwrap().phase, Phase::Stopping);
    assert!(screen(&s).contains("stopping"));
    // A second press while it stops asks nothing more.
    assert!(press_stop(&mut s).is_empty());
    let fx = apply(
        &mut s,
        Action::ImportFinished(Box::new(ImportReport {
            files: 1,
            records: 40_000,
            imported: 40_000,
            stopped: true,
            ..Default::default()
        })),
    );
    // The views show what was committed; no detection over a part of the files.
    assert!(reloads(&fx));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Detect)));
    assert!(s.import.is_none());
    let m = s.message.clone().unwrap();
    assert!(!m.error, "{}", m.text);
    assert!(
        m.text.contains("40,000 new events committed") && m.text.contains("--case trail"),
        "{}",
        m.text
    );
    // The key is gone with the import; `:stop-import` says there is none.
    assert!(s
        .action_for_key(&KeyEvent::new(KeyCode::Char('X'), KeyModifiers::SHIFT))
        .is_none());
    apply(&mut s, Action::StopImport);
    assert!(s.message.clone().unwrap().text.contains("No import"));
}

#[test]
fn detection_runs_when_the_import_ends_and_its_findings_reload() {
    let mut s = importing(120, 40);
    let fx = apply(
        &mut s,
        Action::ImportFinished(Box::new(ImportReport {
            files: 2,
            records: 1_000_000,
            imported: 999_000,
            duplicates: 1_000,
            elapsed: Duration::from_secs(22),
            ..Default::default()
        })),
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::Detect)), "{fx:?}");
    assert!(reloads(&fx));
    assert_eq!(s.import.as_ref().unwrap().phase, Phase::Detecting);
    assert!(s
        .message
        .clone()
        .unwrap()
        .text
        .contains("999,000 new events"));
    assert!(screen(&s).contains("detecting"));
    // The stop key is gone while detection runs.
    assert!(!s.contexts().contains(&Context::Import));
    apply(
        &mut s,
        Action::ShowView(keyaudit::tui::action::View::Findings),
    );
    let fx = apply(
        &mut s,
        Action::DetectionFinished(Ok("Detection over 999,000 events: 7 new findings".into())),
    );
    assert!(s.import.is_none());
    assert!(
        fx.iter().any(|e| matches!(e, Effect::LoadFindings)),
        "{fx:?}"
    );
    assert!(reloads(&fx));
    assert!(screen(&s).contains("7 new findings"));
}

#[test]
fn a_failed_file_is_said_and_detection_still_runs() {
    let mut s = importing(120, 40);
    let fx = apply(
        &mut s,
        Action::ImportFinished(Box::new(ImportReport {
            files: 2,
            records: 10,
            imported: 10,
            failed: vec!["b.json: invalid JSON at column 3".into()],
            ..Default::default()
        })),
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::Detect)));
    let m = s.message.clone().unwrap();
    assert!(
        m.error && m.text.contains("b.json: invalid JSON"),
        "{}",
        m.text
    );
}
