//! Render snapshots at 80x24 and 120x40 (and 200x50 where width matters) with a fixed
//! clock, and the escape-sequence test through the real render path.

#[path = "support/tui_fixture.rs"]
mod fixture;

use fixture::{apply, detail, detail_learning, state};
use keyaudit::tui::action::{Action, View};
use keyaudit::tui::state::State;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn draw(s: &State) -> String {
    let mut t = Terminal::new(TestBackend::new(s.size.0, s.size.1)).unwrap();
    t.draw(|f| keyaudit::tui::view::render(s, f)).unwrap();
    t.backend().to_string()
}

fn at(w: u16, h: u16, setup: impl Fn(&mut State)) -> String {
    let mut s = state(w, h);
    setup(&mut s);
    draw(&s)
}

fn both(name: &str, setup: impl Fn(&mut State)) {
    insta::assert_snapshot!(format!("{name}_80x24"), at(80, 24, &setup));
    insta::assert_snapshot!(format!("{name}_120x40"), at(120, 40, &setup));
}

fn open_detail(s: &mut State) {
    apply(s, Action::OpenDetail);
    apply(s, Action::DetailLoaded(Box::new(detail())));
}

#[test]
fn keys_view() {
    both("keys", |_| {});
}

#[test]
fn keys_view_in_write_mode_with_marks() {
    both("keys_rw_marked", |s| {
        apply(s, Action::RequestWrite);
        apply(s, Action::ToggleFocus);
        apply(s, Action::InputSubmit);
        apply(s, Action::ToggleMark);
        apply(s, Action::ToggleMark);
    });
}

#[test]
fn detail_view() {
    both("detail", open_detail);
}

#[test]
fn detail_view_of_a_key_still_learning() {
    both("detail_learning", |s| {
        apply(s, Action::OpenDetail);
        apply(s, Action::DetailLoaded(Box::new(detail_learning())));
    });
}

#[test]
fn detail_view_at_200_columns() {
    insta::assert_snapshot!("detail_200x50", at(200, 50, open_detail));
}

/// The columns of the activity chart's bar rows that hold a bar.
fn bar_columns(screen: &str, title: &str) -> Vec<usize> {
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let top = lines
        .iter()
        .position(|l| l.iter().collect::<String>().contains(title))
        .expect("the chart");
    let mut cols = Vec::new();
    for l in &lines[top + 1..top + 3] {
        for (i, c) in l.iter().enumerate() {
            if "▁▂▃▄▅▆▇█".contains(*c) && !cols.contains(&i) {
                cols.push(i);
            }
        }
    }
    cols.sort();
    cols
}

#[test]
fn the_activity_chart_spans_the_width_at_every_size() {
    for (w, h) in [(80, 24), (120, 40), (200, 50)] {
        let screen = at(w, h, open_detail);
        let cols = bar_columns(&screen, "activity 30d");
        // The box spans the screen; its bars reach both ends of it (the first column is
        // the border, plus the quotes of the test backend's lines).
        let (first, last) = (cols[0], *cols.last().unwrap());
        assert!(first <= 3, "{w}x{h}: starts at {first}\n{screen}");
        assert!(
            last + 8 >= w as usize,
            "{w}x{h}: ends at {last} of {w}\n{screen}"
        );
        assert!(screen.contains("30 days ago") && screen.contains("today"));
    }
}

#[test]
fn events_view() {
    both("events", |s| {
        apply(s, Action::ShowView(View::Events));
    });
}

#[test]
fn events_view_filtered_over_the_cache() {
    both("events_filtered", |s| {
        apply(s, Action::ShowView(View::Events));
        apply(s, Action::StartFilter);
        for c in "ip:203.0.113.0/24 outcome:success".chars() {
            apply(s, Action::Input(c));
        }
        apply(s, Action::InputSubmit);
    });
}

#[test]
fn events_view_with_a_filter_that_does_not_parse() {
    both("events_filter_error", |s| {
        apply(s, Action::ShowView(View::Events));
        apply(s, Action::StartFilter);
        for c in "outcome:den".chars() {
            apply(s, Action::Input(c));
        }
    });
}

#[test]
fn findings_view() {
    both("findings", |s| {
        apply(s, Action::ShowView(View::Findings));
    });
}

#[test]
fn journal_view() {
    both("journal", |s| {
        apply(s, Action::ShowView(View::Journal));
    });
}

#[test]
fn providers_view() {
    both("providers", |s| {
        apply(s, Action::ShowView(View::Providers));
    });
}

#[test]
fn help_overlay() {
    both("help", |s| {
        apply(s, Action::ToggleHelp);
    });
}

fn rotations(s: &mut State) {
    use keyaudit::tui::dialog::rotations::RotationRow;
    apply(s, Action::ToggleRotations);
    apply(
        s,
        Action::RotationsLoaded(Ok(vec![
            RotationRow {
                provider: "talentgrid".into(),
                key_id: "key_0001acm".into(),
                line: "grace until 12-07 05:22 UTC · alice@ws-12 team #7 · new key key_91ab".into(),
                hint: Some("take it over: keyaudit resume --adopt 7".into()),
            },
            RotationRow {
                provider: "talentgrid".into(),
                key_id: "key_9999\x1b[2Jgone".into(),
                line: "running planned · this cache (#2) team #8".into(),
                hint: None,
            },
        ])),
    );
}

#[test]
fn rotations_overlay() {
    both("rotations", rotations);
}

#[test]
fn the_rotations_overlay_opens_a_cached_key_and_names_one_it_does_not_hold() {
    let mut s = state(120, 40);
    rotations(&mut s);
    // The second rotation's key is not in the cache: Enter says so and the overlay stays.
    apply(&mut s, Action::SelectNext);
    assert!(apply(&mut s, Action::OpenDetail).is_empty());
    let said = s.message.clone().expect("a message").text;
    assert!(said.contains("is not in this cache yet"), "{said}");
    assert!(!said.contains('\x1b'), "{said}");
    assert!(draw(&s).contains("rotations in progress (2)"));
    // The first one's key opens its detail, and the overlay closes.
    apply(&mut s, Action::SelectPrev);
    let fx = apply(&mut s, Action::OpenDetail);
    assert!(
        fx.iter()
            .any(|e| matches!(e, keyaudit::tui::action::Effect::LoadDetail(1, _, None))),
        "{fx:?}"
    );
    assert_eq!(s.view, View::Detail);
    assert!(!draw(&s).contains("rotations in progress"));
    // W opens it again, W or Esc closes it.
    apply(&mut s, Action::ToggleRotations);
    assert!(draw(&s).contains("Reading the rotations in progress"));
    apply(&mut s, Action::Back);
    assert!(!draw(&s).contains("rotations in progress"));
}

#[test]
fn confirm_dialog() {
    both("confirm", |s| {
        apply(s, Action::RequestWrite);
        apply(s, Action::ToggleFocus);
        apply(s, Action::InputSubmit);
        apply(s, Action::RequestRevoke);
    });
}

#[test]
fn confirm_dialog_for_several_keys() {
    both("confirm_bulk", |s| {
        apply(s, Action::RequestWrite);
        apply(s, Action::ToggleFocus);
        apply(s, Action::InputSubmit);
        for _ in 0..3 {
            apply(s, Action::ToggleMark);
        }
        apply(s, Action::RequestDisable);
        apply(s, Action::Input('3'));
    });
}

#[test]
fn filter_active() {
    both("filter", |s| {
        apply(s, Action::StartFilter);
        for c in "acme env:prod".chars() {
            apply(s, Action::Input(c));
        }
    });
}

#[test]
fn escape_sequences_in_user_agents_are_shown_escaped_in_full() {
    let mut s = state(120, 40);
    open_detail(&mut s);
    let text = draw(&s);
    assert!(
        text.contains("evil\\u{1b}]52;c;c2VjcmV0\\u{7}\\u{1b}[2Ja"),
        "{text}"
    );
}

#[test]
fn escape_sequences_from_providers_render_as_inert_text() {
    for (w, h) in [(80, 24), (120, 40)] {
        for setup in [open_detail as fn(&mut State), |s: &mut State| {
            apply(s, Action::ShowView(View::Events));
        }] {
            let mut s = state(w, h);
            setup(&mut s);
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| keyaudit::tui::view::render(&s, f)).unwrap();
            let buf = t.backend().buffer().clone();
            for cell in buf.content() {
                assert!(
                    !cell.symbol().chars().any(|c| c.is_control()),
                    "a control character reached the screen: {:?}",
                    cell.symbol()
                );
            }
            let text = t.backend().to_string();
            assert!(
                text.contains("evil\\u"),
                "the user agent is not shown as inert text:\n{text}"
            );
        }
    }
}

const FAKE_SECRET: &str = "tg_live_FAKEfakeFAKEfakeFAKEfa000000";

fn rotated(s: &mut State) {
    apply(s, Action::RequestWrite);
    apply(s, Action::ToggleFocus);
    apply(s, Action::InputSubmit);
    let key = s.selected_key().unwrap().key.clone();
    apply(
        s,
        Action::RotateFinished(Box::new(keyaudit::tui::action::Rotated {
            key,
            new_key_id: "key_new_0001".into(),
            grace_until: Some(fixture::now() + chrono::Duration::hours(24)),
            workflow: 7,
            note: None,
            secret: keyaudit::secret::Secret::new(FAKE_SECRET.into()),
        })),
    );
}

#[test]
fn rotate_confirm_dialog() {
    both("rotate_confirm", |s| {
        apply(s, Action::RequestWrite);
        apply(s, Action::ToggleFocus);
        apply(s, Action::InputSubmit);
        apply(s, Action::RequestRotate);
    });
}

#[test]
fn secret_dialog_is_masked() {
    let screen = at(80, 24, rotated);
    assert!(!screen.contains(FAKE_SECRET), "the secret must be masked");
    insta::assert_snapshot!("secret_80x24", screen);
}

#[test]
fn secret_is_shown_only_after_v_and_gone_after_close() {
    let mut s = state(120, 40);
    rotated(&mut s);
    assert!(!draw(&s).contains(FAKE_SECRET));
    apply(&mut s, Action::RevealSecret);
    assert!(draw(&s).contains(FAKE_SECRET), "v reveals the secret");
    apply(&mut s, Action::RevealSecret);
    assert!(!draw(&s).contains(FAKE_SECRET), "v hides it again");
    apply(&mut s, Action::RevealSecret);
    apply(&mut s, Action::CloseSecret);
    assert!(s.secret.is_none());
    assert!(
        !draw(&s).contains(FAKE_SECRET),
        "closed: gone from the screen"
    );
}

#[test]
fn the_first_keys_show_while_the_whole_list_loads() {
    use fixture::{keys, setup};
    use keyaudit::tui::strings::{LOADING, LOADING_REST};
    use std::sync::Arc;
    let mut s = State::new(setup(120, 40));
    assert!(draw(&s).contains(LOADING));
    let all = keys();
    apply(
        &mut s,
        Action::KeysPreviewed(Arc::new(all[..5].to_vec()), 12_000),
    );
    let screen = draw(&s);
    assert!(screen.contains("keys 5 of 12,000"), "{screen}");
    assert!(screen.contains(LOADING_REST), "{screen}");
    assert!(screen.contains(&all[0].key.name), "{screen}");
    apply(&mut s, Action::KeysLoaded(Arc::new(all.clone())));
    let screen = draw(&s);
    assert!(
        screen.contains(&format!("keys {0} of {0}", all.len())),
        "{screen}"
    );
    assert!(!screen.contains(LOADING_REST), "{screen}");
    // A late first screen never replaces the whole list.
    apply(
        &mut s,
        Action::KeysPreviewed(Arc::new(all[..2].to_vec()), 99),
    );
    assert_eq!(s.keys.rows.len(), all.len());
}

/// The fixture's findings plus rotation_overdue on four keys and a Sigma match.
fn with_hygiene_and_sigma(s: &mut State) {
    use keyaudit::model::{Category, Finding, FindingStatus, Severity};
    let keys = fixture::keys();
    let mut all = fixture::findings();
    let base = all[0].clone();
    all.insert(
        1,
        Finding {
            id: "sg1".into(),
            rule: "sigma:3b1c8a34-0004".into(),
            category: Category::Sigma,
            severity: Severity::High,
            title: "Reconnaissance calls by an access key".into(),
            explanation: "Sigma rule \"Reconnaissance calls by an access key\" (id 3b1c8a34-0004, \
                          level high) matched events of this key."
                .into(),
            evidence: vec!["ct-ev-0001".into(), "ct-ev-0002".into()],
            ..base.clone()
        },
    );
    for (i, k) in keys.iter().take(4).enumerate() {
        all.push(Finding {
            id: format!("rot{i}"),
            rule: "rotation_overdue".into(),
            category: Category::Hygiene,
            severity: Severity::Low,
            provider: k.key.provider.clone(),
            key_id: k.key.id.clone(),
            title: "Rotation overdue".into(),
            explanation: format!("{} is older than the 90-day rotation policy.", k.key.name),
            evidence: Vec::new(),
            status: FindingStatus::Open,
            ..base.clone()
        });
    }
    apply(s, Action::ShowView(View::Findings));
    apply(s, Action::FindingsLoaded(all));
}

#[test]
fn findings_view_groups_a_hygiene_rule_and_shows_a_sigma_match() {
    let screen = at(120, 40, |s| {
        with_hygiene_and_sigma(s);
        apply(s, Action::SelectNext);
    });
    // The Sigma finding: its rule's title, its key by name and owner, its evidence.
    assert!(
        screen.contains("Reconnaissance calls by an access key"),
        "{screen}"
    );
    assert!(
        screen.contains("evidence ct-ev-0001 ct-ev-0002"),
        "{screen}"
    );
    assert!(screen.contains("sigma:3b1c8a34-0004 · sigma"), "{screen}");
    // Four rotation findings are one row, below the live anomalies.
    assert!(screen.contains("▸ rotation overdue: 4 keys"), "{screen}");
    assert_eq!(screen.matches("Rotation overdue").count(), 0, "{screen}");
    insta::assert_snapshot!("findings_grouped_120x40", screen);
}

#[test]
fn enter_on_a_group_expands_it_and_acting_needs_one_finding() {
    let mut s = state(120, 40);
    with_hygiene_and_sigma(&mut s);
    // Rows: critical, sigma (high), high, medium, then the group.
    for _ in 0..4 {
        apply(&mut s, Action::SelectNext);
    }
    apply(&mut s, Action::Acknowledge);
    assert_eq!(
        s.mode,
        keyaudit::tui::state::Mode::Normal,
        "no note for a group"
    );
    apply(&mut s, Action::OpenDetail);
    let screen = draw(&s);
    assert!(screen.contains("▾ rotation overdue: 4 keys"), "{screen}");
    assert_eq!(screen.matches("Rotation overdue").count(), 4, "{screen}");
    assert_eq!(s.view, View::Findings, "enter on a group stays in the view");
    // Collapsing again.
    apply(&mut s, Action::OpenDetail);
    assert_eq!(draw(&s).matches("Rotation overdue").count(), 0);
}

#[test]
fn a_message_wider_than_the_terminal_is_shown_whole_over_the_hints_line() {
    let text = "workflow #12: guided rotation of talentgrid/key_8f2c: new key key_91ab found; \
                waiting for the old key to go quiet (no use for 3600s)";
    let screen = at(80, 24, |s| {
        s.message = Some(keyaudit::tui::state::Message {
            text: text.into(),
            error: false,
        });
    });
    let bottom: Vec<&str> = screen.lines().rev().take(2).collect();
    let shown: String = bottom
        .iter()
        .rev()
        .map(|l| l.trim_matches('"').trim())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(shown, text, "{screen}");
    // A message that fits leaves the hints where they are.
    let screen = at(80, 24, |s| {
        s.message = Some(keyaudit::tui::state::Message {
            text: "talentgrid: 75 keys, 12 new events in 0.1s".into(),
            error: false,
        });
    });
    let last = screen.lines().last().unwrap();
    assert!(last.contains("quit"), "{screen}");
}
