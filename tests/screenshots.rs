//! The README's pictures, `assets/screenshots/*.svg`: the Keys, Key detail, Events and
//! Findings views drawn by the TUI's own render path on the test fixture (fixed keys,
//! fixed clock) at 120x32, exported by tests/support/svg.rs. The test fails when a
//! committed picture differs from what the code draws now, so they cannot go stale;
//! `KEYAUDIT_UPDATE_SCREENSHOTS=1 cargo test --test screenshots` rewrites them.

#[path = "support/tui_fixture.rs"]
mod fixture;
#[path = "support/svg.rs"]
mod svg;

use fixture::{apply, detail, state};
use keyaudit::tui::action::{Action, View};
use keyaudit::tui::state::State;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::PathBuf;

const SIZE: (u16, u16) = (120, 32);

fn picture(title: &str, setup: impl Fn(&mut State)) -> String {
    let mut s = state(SIZE.0, SIZE.1);
    setup(&mut s);
    let mut t = Terminal::new(TestBackend::new(SIZE.0, SIZE.1)).unwrap();
    t.draw(|f| keyaudit::tui::view::render(&s, f)).unwrap();
    svg::to_svg(t.backend().buffer(), title, &svg::DARK)
}

fn pictures() -> Vec<(&'static str, String)> {
    vec![
        ("keys", picture("keyaudit: the keys view", |_| {})),
        (
            "detail",
            picture("keyaudit: the key detail view", |s| {
                apply(s, Action::OpenDetail);
                apply(s, Action::DetailLoaded(Box::new(detail())));
            }),
        ),
        (
            "events",
            picture("keyaudit: the events view", |s| {
                apply(s, Action::ShowView(View::Events));
            }),
        ),
        (
            "findings",
            picture("keyaudit: the findings view", |s| {
                apply(s, Action::ShowView(View::Findings));
            }),
        ),
    ]
}

#[test]
fn the_readme_screenshots_are_what_the_tui_draws() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/screenshots");
    let update = std::env::var_os("KEYAUDIT_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, svg) in pictures() {
        let path = dir.join(format!("{name}.svg"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &svg).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(svg.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {}; look at the change, then rewrite them with \
         KEYAUDIT_UPDATE_SCREENSHOTS=1 cargo test --all-features --test screenshots",
        stale.join(", ")
    );
}

#[test]
fn the_pictures_keep_the_views_colours() {
    let keys = &pictures()[0].1;
    // The header row (bold cyan), the selected row (white on blue) and the RO badge
    // (black on green) of the dark theme.
    assert!(
        keys.contains("fill=\"#11a8cd\" font-weight=\"bold\""),
        "{keys}"
    );
    assert!(keys.contains("fill=\"#2472c8\"/>"), "{keys}");
    assert!(keys.contains("fill=\"#0dbc79\"/>"), "{keys}");
    assert!(keys.contains(">PROVIDER"), "{keys}");
}
