//! `update` behaviour a user notices: refusals, confirm gating, filter, views, marks.

#[path = "support/tui_fixture.rs"]
mod fixture;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fixture::{apply, state};
use keyaudit::action::KeyOp;
use keyaudit::tui::action::{Action, Effect, View};
use keyaudit::tui::dialog::confirm::ConfirmKind;
use keyaudit::tui::state::State;

fn key(s: &State, c: char) -> Option<Action> {
    let m = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    s.action_for_key(&KeyEvent::new(KeyCode::Char(c), m))
}

fn press(s: &mut State, c: char) -> Vec<Effect> {
    let a = key(s, c).unwrap_or_else(|| panic!("{c} is not bound"));
    apply(s, a)
}

fn code(s: &mut State, c: KeyCode) -> Vec<Effect> {
    let a = s
        .action_for_key(&KeyEvent::new(c, KeyModifiers::NONE))
        .unwrap_or_else(|| panic!("{c:?} is not bound"));
    apply(s, a)
}

fn typed(s: &mut State, text: &str) -> Vec<Effect> {
    let mut fx = Vec::new();
    for c in text.chars() {
        fx.extend(apply(s, Action::Input(c)));
    }
    fx
}

fn writable() -> State {
    let mut s = state(120, 40);
    press(&mut s, ':');
    typed(&mut s, "write");
    code(&mut s, KeyCode::Enter);
    code(&mut s, KeyCode::Tab);
    code(&mut s, KeyCode::Enter);
    assert!(s.write);
    s
}

fn select(s: &mut State, name: &str) {
    press(s, 'g');
    while s.selected_key().unwrap().key.name != name {
        press(s, 'j');
    }
}

#[test]
fn read_only_refuses_disable_revoke_and_rotate_without_effects() {
    let mut s = state(120, 40);
    for c in ['d', 'D', 'r'] {
        let fx = press(&mut s, c);
        assert!(fx.is_empty(), "{c} made effects in read-only");
        assert!(s.confirm.is_none());
        let m = s.message.clone().unwrap();
        assert!(m.error && m.text.contains("read-only"), "{}", m.text);
    }
}

#[test]
fn write_mode_needs_confirmation_and_starts_on_cancel() {
    let mut s = state(120, 40);
    press(&mut s, ':');
    typed(&mut s, "write");
    let fx = code(&mut s, KeyCode::Enter);
    assert!(fx.is_empty());
    let c = s.confirm.clone().unwrap();
    assert_eq!(c.kind, ConfirmKind::Write);
    assert!(!c.on_confirm, "the dialog must start on Cancel");
    assert!(!s.write);
    // enter on Cancel closes and leaves read-only.
    code(&mut s, KeyCode::Enter);
    assert!(!s.write && s.confirm.is_none());
    // Again, moving to Confirm.
    assert!(writable().write);
}

#[test]
fn read_only_session_refuses_write() {
    let mut s = state(120, 40);
    s.locked_read_only = true;
    apply(&mut s, Action::RequestWrite);
    assert!(s.confirm.is_none() && !s.write);
    assert!(s.message.unwrap().text.contains("started read-only"));
}

#[test]
fn revoke_is_gated_by_the_confirm_dialog() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    let fx = press(&mut s, 'D');
    assert!(fx.is_empty(), "no effect before confirmation");
    let c = s.confirm.clone().unwrap();
    assert_eq!(c.kind, ConfirmKind::KeyOp(KeyOp::Revoke));
    assert!(!c.on_confirm && c.expected.is_none());
    assert_eq!(c.keys[0].key.name, "acme-payroll-sandbox");
    // enter on Cancel: nothing.
    assert!(code(&mut s, KeyCode::Enter).is_empty());
    assert!(s.confirm.is_none());
    // esc: nothing.
    press(&mut s, 'D');
    assert!(code(&mut s, KeyCode::Esc).is_empty());
    // tab to Confirm, enter: no finding suggests a reason, so the dialog asks one.
    press(&mut s, 'D');
    assert_eq!(s.confirm.as_ref().unwrap().reason, "");
    code(&mut s, KeyCode::Tab);
    assert!(
        code(&mut s, KeyCode::Enter).is_empty(),
        "no reason, no effect"
    );
    let m = s.message.clone().unwrap();
    assert!(m.error && m.text.contains("Type a reason"), "{}", m.text);
    assert!(s.confirm.as_ref().unwrap().on_reason, "focus on the reason");
    typed(&mut s, "left the company");
    // enter in the reason moves to Confirm; enter there: one effect naming the key.
    assert!(code(&mut s, KeyCode::Enter).is_empty());
    assert!(s.confirm.as_ref().unwrap().on_confirm);
    let fx = code(&mut s, KeyCode::Enter);
    match fx.as_slice() {
        [Effect::ApplyKeyOp(KeyOp::Revoke, keys, reason)] => {
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0].name, "acme-payroll-sandbox");
            assert_eq!(reason, "left the company");
        }
        other => panic!("unexpected effects {other:?}"),
    }
}

#[test]
fn once_the_name_matches_enter_confirms_and_before_it_explains() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sync");
    press(&mut s, 'D');
    let c = s.confirm.clone().unwrap();
    assert!(!c.on_confirm, "starts on Cancel");
    // The key's open finding suggests the reason.
    assert_eq!(c.reason, "finding f2: Bulk SSN reads");
    typed(&mut s, "acme-payroll");
    // Enter before the name matches: it explains, and does not press the focused Cancel.
    assert!(code(&mut s, KeyCode::Enter).is_empty());
    let m = s.message.clone().unwrap();
    assert!(
        m.error && m.text.contains("type its name (`acme-payroll-sync`)"),
        "{}",
        m.text
    );
    assert!(s.confirm.is_some(), "the dialog stays open");
    typed(&mut s, "-sync");
    assert!(
        s.confirm.as_ref().unwrap().on_confirm,
        "focus moved to Confirm"
    );
    let fx = code(&mut s, KeyCode::Enter);
    match fx.as_slice() {
        [Effect::ApplyKeyOp(KeyOp::Revoke, keys, reason)] => {
            assert_eq!(keys[0].name, "acme-payroll-sync");
            assert_eq!(reason, "finding f2: Bulk SSN reads");
        }
        other => panic!("unexpected effects {other:?}"),
    }
}

#[test]
fn the_reason_comes_from_the_finding_the_operator_came_from_and_is_editable() {
    let mut s = writable();
    apply(&mut s, Action::ShowView(View::Findings));
    // f1 is on greenhouse-legacy; the second row is f2, on acme-payroll-sync.
    press(&mut s, 'j');
    code(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
    assert_eq!(s.detail.from_finding.as_deref(), Some("f2"));
    // The runner's read of the detail arrives.
    apply(&mut s, Action::DetailLoaded(Box::new(fixture::detail())));
    press(&mut s, 'd');
    assert_eq!(
        s.confirm.as_ref().unwrap().reason,
        "finding f2: Bulk SSN reads"
    );
    typed(&mut s, "acme-payroll-sync");
    // Tab from Confirm to the reason; edit it.
    code(&mut s, KeyCode::Tab);
    assert!(s.confirm.as_ref().unwrap().on_reason);
    for _ in 0..5 {
        code(&mut s, KeyCode::Backspace);
    }
    typed(&mut s, "exports");
    code(&mut s, KeyCode::Enter);
    let fx = code(&mut s, KeyCode::Enter);
    match fx.as_slice() {
        [Effect::ApplyKeyOp(KeyOp::Disable, _, reason)] => {
            assert_eq!(reason, "finding f2: Bulk SSN exports")
        }
        other => panic!("unexpected effects {other:?}"),
    }
}

#[test]
fn a_key_outside_production_takes_a_typed_reason_without_a_typed_name() {
    let mut s = writable();
    select(&mut s, "greenhouse-webhooks");
    press(&mut s, 'd');
    let c = s.confirm.clone().unwrap();
    assert_eq!(c.expected, None, "no name to type outside production");
    // Enter on Confirm without a reason moves to the reason, which takes typing.
    code(&mut s, KeyCode::Tab);
    assert!(code(&mut s, KeyCode::Enter).is_empty());
    assert!(s.confirm.as_ref().unwrap().on_reason);
    typed(&mut s, "rotated by the partner");
    code(&mut s, KeyCode::Enter);
    let fx = code(&mut s, KeyCode::Enter);
    match fx.as_slice() {
        [Effect::ApplyKeyOp(KeyOp::Disable, _, reason)] => {
            assert_eq!(reason, "rotated by the partner")
        }
        other => panic!("unexpected effects {other:?}"),
    }
}

#[test]
fn production_keys_need_their_name_typed() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sync");
    press(&mut s, 'd');
    let c = s.confirm.clone().unwrap();
    assert_eq!(c.expected.as_deref(), Some("acme-payroll-sync"));
    code(&mut s, KeyCode::Tab);
    typed(&mut s, "acme-payroll-syn");
    assert!(
        code(&mut s, KeyCode::Enter).is_empty(),
        "wrong text must not act"
    );
    assert!(s.confirm.is_some(), "the dialog stays open");
    assert!(!s.confirm.as_ref().unwrap().armed());
    typed(&mut s, "c");
    let fx = code(&mut s, KeyCode::Enter);
    assert!(matches!(fx.as_slice(), [Effect::ApplyKeyOp(KeyOp::Disable, k, _)] if k.len() == 1));
}

#[test]
fn several_marked_keys_need_the_count_typed() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    press(&mut s, ' ');
    select(&mut s, "greenhouse-webhooks");
    press(&mut s, ' ');
    assert_eq!(s.keys.marked.len(), 2);
    press(&mut s, 'D');
    let c = s.confirm.clone().unwrap();
    assert_eq!(c.keys.len(), 2);
    assert_eq!(c.expected.as_deref(), Some("2"));
    code(&mut s, KeyCode::Tab);
    typed(&mut s, "3");
    assert!(code(&mut s, KeyCode::Enter).is_empty());
    code(&mut s, KeyCode::Backspace);
    typed(&mut s, "2");
    // A bulk action has no finding to suggest a reason: the dialog asks one.
    assert!(code(&mut s, KeyCode::Enter).is_empty());
    typed(&mut s, "partner offboarded");
    code(&mut s, KeyCode::Enter);
    let fx = code(&mut s, KeyCode::Enter);
    assert!(
        matches!(fx.as_slice(), [Effect::ApplyKeyOp(KeyOp::Revoke, k, r)] if k.len() == 2 && r == "partner offboarded")
    );
    assert!(s.keys.marked.is_empty());
}

#[test]
fn actions_the_provider_cannot_do_are_not_offered() {
    let mut s = writable();
    select(&mut s, "hub-acme-ledger");
    let fx = press(&mut s, 'd');
    assert!(fx.is_empty() && s.confirm.is_none());
    assert!(s
        .message
        .unwrap()
        .text
        .contains("payroll-hub cannot disable"));
}

#[test]
fn typing_a_filter_makes_filter_effects_and_hides_rows() {
    let mut s = state(120, 40);
    press(&mut s, '/');
    let fx = typed(&mut s, "acme");
    assert!(fx.iter().all(|e| matches!(e, Effect::Filter(_))) && fx.len() == 4);
    // The query only grew: later runs narrow the previous result.
    assert!(matches!(&fx[3], Effect::Filter(j) if j.base.is_some()));
    assert!(s.keys.visible.len() < s.keys.rows.len());
    assert!(s
        .keys
        .visible
        .iter()
        .all(|i| s.keys.rows[*i].key.owner.contains("Acme")
            || s.keys.rows[*i].key.name.contains("acme")));
    typed(&mut s, " env:prod status:active");
    let names: Vec<_> = s
        .keys
        .visible
        .iter()
        .map(|i| s.keys.rows[*i].key.name.as_str())
        .collect();
    assert!(names.contains(&"acme-payroll-sync"));
    assert!(!names.contains(&"acme-payroll-sandbox") && !names.contains(&"acme-old-export"));
    assert_eq!(s.hidden(), s.keys.rows.len() - names.len());
    // A half-typed term shows an error and keeps the result.
    typed(&mut s, " age");
    let before = s.keys.visible.clone();
    typed(&mut s, ">");
    assert!(s.keys.filter_error.is_some());
    assert_eq!(s.keys.visible, before);
    code(&mut s, KeyCode::Esc);
    assert!(s.keys.filter.is_empty() && s.hidden() == 0);
}

#[test]
fn selection_follows_the_key_across_reloads() {
    let mut s = state(120, 40);
    select(&mut s, "greenhouse-legacy");
    let mut keys = fixture::keys();
    keys.reverse();
    apply(&mut s, Action::KeysLoaded(std::sync::Arc::new(keys)));
    assert_eq!(s.selected_key().unwrap().key.name, "greenhouse-legacy");
}

#[test]
fn views_switch_by_tab_and_by_name() {
    let mut s = state(120, 40);
    assert_eq!(s.view, View::Keys);
    let fx = code(&mut s, KeyCode::Tab);
    // No key opened yet: detail is skipped.
    assert_eq!(s.view, View::Events);
    assert!(matches!(fx.as_slice(), [Effect::LoadEvents { .. }]));
    press(&mut s, ':');
    typed(&mut s, "journal");
    let fx = code(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Journal);
    assert!(matches!(fx.as_slice(), [Effect::LoadJournal]));
    press(&mut s, '1');
    assert_eq!(s.view, View::Keys);
    let fx = code(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
    assert!(matches!(fx.as_slice(), [Effect::LoadDetail(1, _, None)]));
    code(&mut s, KeyCode::Esc);
    assert_eq!(s.view, View::Keys);
}

#[test]
fn palette_completes_and_remembers() {
    let mut s = state(120, 40);
    press(&mut s, ':');
    typed(&mut s, "prov");
    code(&mut s, KeyCode::Tab);
    assert_eq!(s.input, "providers ");
    code(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Providers);
    press(&mut s, ':');
    code(&mut s, KeyCode::Up);
    assert_eq!(s.input, "providers");
    code(&mut s, KeyCode::Esc);
    press(&mut s, ':');
    typed(&mut s, "bogus");
    code(&mut s, KeyCode::Enter);
    assert!(s.message.unwrap().text.contains("Unknown command `bogus`"));
}

#[test]
fn marking_toggles_and_moves_down() {
    let mut s = state(120, 40);
    press(&mut s, 'g');
    let first = s.selected_key().unwrap().key_ref;
    press(&mut s, ' ');
    assert!(s.keys.marked.contains(&first));
    assert_ne!(s.selected_key().unwrap().key_ref, first);
    press(&mut s, 'k');
    press(&mut s, ' ');
    assert!(!s.keys.marked.contains(&first));
}

#[test]
fn acknowledging_a_finding_asks_for_a_note_in_write_mode() {
    let mut s = state(120, 40);
    press(&mut s, '4');
    assert!(press(&mut s, 'a').is_empty());
    assert!(s.message.clone().unwrap().text.contains("read-only"));
    let mut s = writable();
    press(&mut s, '4');
    press(&mut s, 'a');
    typed(&mut s, "partner test");
    let fx = code(&mut s, KeyCode::Enter);
    assert!(matches!(
        fx.as_slice(),
        [Effect::SetFindingStatus { id, note, .. }] if id == "f1" && note == "partner test"
    ));
}

#[test]
fn freezing_holds_new_keys_until_resumed() {
    let mut s = state(120, 40);
    press(&mut s, 'f');
    let fx = apply(&mut s, Action::KeysLoaded(std::sync::Arc::new(Vec::new())));
    assert!(fx.is_empty());
    assert_eq!(s.keys.rows.len(), 12);
    press(&mut s, 'f');
    assert_eq!(s.keys.rows.len(), 0);
}

#[test]
fn sort_cycles_columns_and_reverses() {
    let mut s = state(120, 40);
    press(&mut s, 's');
    press(&mut s, 's');
    let names: Vec<_> = s
        .keys
        .visible
        .iter()
        .map(|i| s.keys.rows[*i].key.name.clone())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted);
    press(&mut s, 'S');
    let rev: Vec<_> = s
        .keys
        .visible
        .iter()
        .map(|i| s.keys.rows[*i].key.name.clone())
        .collect();
    sorted.reverse();
    assert_eq!(rev, sorted);
}

fn fake_rotated(s: &State) -> Action {
    let key = s.selected_key().unwrap().key.clone();
    Action::RotateFinished(Box::new(keyaudit::tui::action::Rotated {
        key,
        new_key_id: "key_new_0001".into(),
        grace_until: Some(fixture::now() + chrono::Duration::hours(24)),
        workflow: 7,
        note: None,
        secret: keyaudit::secret::Secret::new("tg_live_FAKEfakeFAKEfakeFAKEfa000000".into()),
    }))
}

#[test]
fn rotate_is_refused_read_only_and_for_marked_keys() {
    let mut s = state(120, 40);
    assert!(press(&mut s, 'r').is_empty());
    assert!(s.confirm.is_none());
    assert!(s.message.clone().unwrap().text.contains("read-only"));
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    press(&mut s, ' ');
    assert!(press(&mut s, 'r').is_empty());
    assert!(s.confirm.is_none());
    let m = s.message.clone().unwrap();
    assert!(
        m.error && m.text.contains("one key at a time"),
        "{}",
        m.text
    );
}

#[test]
fn rotate_needs_a_provider_that_can_rotate() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    let p = s.selected_key().unwrap().key.provider.clone();
    let c = s.capabilities.get_mut(&p).unwrap();
    c.rotate_overlap = false;
    c.rotate_atomic = false;
    assert!(press(&mut s, 'r').is_empty());
    assert!(s.confirm.is_none());
    assert!(s.message.clone().unwrap().text.contains("cannot rotate"));
}

#[test]
fn rotate_is_gated_by_the_confirm_dialog_with_a_grace_period() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    assert!(
        press(&mut s, 'r').is_empty(),
        "no effect before confirmation"
    );
    let c = s.confirm.clone().unwrap();
    assert_eq!(
        c.kind,
        ConfirmKind::Rotate {
            grace_secs: 24 * 3600
        }
    );
    assert!(!c.on_confirm && c.expected.is_none());
    assert!(code(&mut s, KeyCode::Enter).is_empty(), "enter on Cancel");
    assert!(s.confirm.is_none());
    press(&mut s, 'r');
    // Tab to Confirm, Tab to the reason.
    code(&mut s, KeyCode::Tab);
    code(&mut s, KeyCode::Tab);
    typed(&mut s, "yearly rotation");
    code(&mut s, KeyCode::Enter);
    let fx = code(&mut s, KeyCode::Enter);
    match fx.as_slice() {
        [Effect::Rotate { key, grace, reason }] => {
            assert_eq!(key.name, "acme-payroll-sandbox");
            assert_eq!(grace.as_secs(), 24 * 3600);
            assert_eq!(reason, "yearly rotation");
        }
        other => panic!("unexpected effects {other:?}"),
    }
    assert!(s.rotating);
    // One rotation at a time.
    assert!(press(&mut s, 'r').is_empty() && s.confirm.is_none());
}

#[test]
fn a_rotation_without_overlap_says_so_and_offers_no_grace() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    let p = s.selected_key().unwrap().key.provider.clone();
    let c = s.capabilities.get_mut(&p).unwrap();
    c.rotate_overlap = false;
    c.rotate_atomic = true;
    assert!(press(&mut s, 'r').is_empty());
    assert_eq!(
        s.confirm.as_ref().unwrap().kind,
        ConfirmKind::Rotate { grace_secs: 0 }
    );
    code(&mut s, KeyCode::Up);
    assert_eq!(
        s.confirm.as_ref().unwrap().kind,
        ConfirmKind::Rotate { grace_secs: 0 },
        "no grace period can be chosen"
    );
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
    t.draw(|f| keyaudit::tui::view::render(&s, f)).unwrap();
    let screen = t.backend().to_string();
    assert!(
        screen.contains("No overlap: this provider rotates atomically"),
        "{screen}"
    );
    assert!(!screen.contains("change the grace period"), "{screen}");
}

#[test]
fn rotating_a_production_key_needs_its_name_typed() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sync");
    press(&mut s, 'r');
    assert_eq!(
        s.confirm.as_ref().unwrap().expected.as_deref(),
        Some("acme-payroll-sync")
    );
    code(&mut s, KeyCode::Tab);
    assert!(code(&mut s, KeyCode::Enter).is_empty());
    typed(&mut s, "acme-payroll-sync");
    let fx = code(&mut s, KeyCode::Enter);
    assert!(matches!(fx.as_slice(), [Effect::Rotate { .. }]));
}

#[test]
fn the_new_secret_is_masked_until_revealed_and_dropped_on_close() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    let done = fake_rotated(&s);
    let fx = apply(&mut s, done);
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadKeys)));
    let d = s.secret.as_ref().expect("the secret dialog opens");
    assert!(!d.revealed, "masked at first");
    assert_eq!(d.rotated.new_key_id, "key_new_0001");
    // The dialog owns the keys: `r`, `d` and `q` do nothing here.
    assert!(key(&s, 'r').is_none() && key(&s, 'q').is_none());
    press(&mut s, 'v');
    assert!(s.secret.as_ref().unwrap().revealed);
    press(&mut s, 'v');
    assert!(!s.secret.as_ref().unwrap().revealed);
    let fx = press(&mut s, 'c');
    match fx.as_slice() {
        [Effect::CopyToClipboard(secret)] => {
            assert_eq!(secret.expose(), "tg_live_FAKEfakeFAKEfakeFAKEfa000000")
        }
        other => panic!("unexpected effects {other:?}"),
    }
    // Background results still land while the dialog is open.
    apply(&mut s, Action::Clock(fixture::now()));
    assert!(s.secret.is_some());
    assert!(code(&mut s, KeyCode::Esc).is_empty());
    assert!(s.secret.is_none(), "closing forgets the secret");
    assert!(s.message.clone().unwrap().text.contains("forgotten"));
    // enter closes as well.
    let done = fake_rotated(&s);
    apply(&mut s, done);
    code(&mut s, KeyCode::Enter);
    assert!(s.secret.is_none());
}

#[test]
fn a_failed_rotation_says_why_and_opens_no_dialog() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    press(&mut s, 'r');
    code(&mut s, KeyCode::Tab);
    code(&mut s, KeyCode::Enter);
    apply(
        &mut s,
        Action::RotateFailed("talentgrid/k1".into(), "rolled back: boom".into()),
    );
    assert!(!s.rotating && s.secret.is_none());
    let m = s.message.clone().unwrap();
    assert!(
        m.error && m.text.contains("rolled back: boom"),
        "{}",
        m.text
    );
}

#[test]
fn arrows_change_the_grace_period_of_a_rotation_only() {
    let mut s = writable();
    select(&mut s, "acme-payroll-sandbox");
    press(&mut s, 'r');
    let grace = |s: &State| match s.confirm.as_ref().unwrap().kind {
        ConfirmKind::Rotate { grace_secs } => grace_secs,
        other => panic!("{other:?}"),
    };
    code(&mut s, KeyCode::Up);
    assert_eq!(grace(&s), 48 * 3600);
    for _ in 0..10 {
        code(&mut s, KeyCode::Up);
    }
    assert_eq!(grace(&s), 168 * 3600, "stops at a week");
    for _ in 0..10 {
        code(&mut s, KeyCode::Down);
    }
    assert_eq!(grace(&s), 0, "down to none");
    code(&mut s, KeyCode::Up);
    code(&mut s, KeyCode::Tab);
    code(&mut s, KeyCode::Tab);
    typed(&mut s, "test");
    code(&mut s, KeyCode::Enter);
    let fx = code(&mut s, KeyCode::Enter);
    assert!(matches!(fx.as_slice(), [Effect::Rotate { grace, .. }] if grace.as_secs() == 3600));
    // Other dialogs ignore the arrows.
    press(&mut s, 'D');
    code(&mut s, KeyCode::Up);
    assert_eq!(
        s.confirm.as_ref().unwrap().kind,
        ConfirmKind::KeyOp(KeyOp::Revoke)
    );
}

// The events view: a filtered walk through every cached event, read by the runner.

use keyaudit::filter::Network;
use keyaudit::model::{to_millis, Outcome};
use keyaudit::store::{EventPage, EventRow};
use keyaudit::tui::action::{EventsPage, EventsRequest, Walk};
use keyaudit::tui::view::events::{EVENTS_KEPT, EVENTS_PAGE};

/// Presses a key without serving the reads it asks for (the test plays the runner).
fn hit(s: &mut State, c: char) -> Vec<Effect> {
    let a = key(s, c).unwrap_or_else(|| panic!("{c} is not bound"));
    s.update(a)
}

/// The events reads among `fx`.
fn reads(fx: &[Effect]) -> Vec<&EventsRequest> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::LoadEvents(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// `n` events, one a minute, the first `from` minutes old; row ids fall with age.
fn rows(from: i64, n: i64) -> Vec<EventRow> {
    let base = fixture::events().remove(0);
    (from..from + n)
        .map(|m| {
            let mut r = base.clone();
            r.row_id = 1_000_000 - m;
            r.event.time = fixture::now() - chrono::Duration::minutes(m);
            r.event.id = format!("evt_{m}");
            r
        })
        .collect()
}

fn page(rows: Vec<EventRow>, resume: Option<&EventRow>) -> Box<EventsPage> {
    Box::new(EventsPage {
        page: EventPage {
            scanned: rows.len(),
            rows,
            resume: resume.map(|r| (to_millis(r.event.time), r.row_id)),
        },
        per_hour: None,
    })
}

#[test]
fn the_events_filter_is_a_store_query_of_every_event() {
    let mut s = state(120, 40);
    let fx = s.update(Action::ShowView(View::Events));
    let first = reads(&fx);
    assert_eq!(first.len(), 1);
    let r = first[0];
    assert_eq!(r.walk, Walk::First);
    assert!(r.query.newest_first && r.query.before.is_none() && r.histogram.is_some());
    assert_eq!(r.query.limit, Some(EVENTS_PAGE));
    let g0 = r.generation;
    // Served by the in-memory cache of the fixture: every event of the fixture.
    fixture::settle(&mut s, fx);
    assert_eq!(s.events.rows.len(), 30);
    assert!(
        s.events.older.is_none(),
        "the walk reached the oldest event"
    );

    press(&mut s, '/');
    let mut last = None;
    for c in "ip:203.0.113.0/24".chars() {
        let fx = s.update(Action::Input(c));
        // A half-typed network does not parse: the error shows, nothing is read.
        if s.events.filter_error.is_some() {
            assert!(reads(&fx).is_empty(), "read on a parse error at {c}");
        }
        if let Some(r) = reads(&fx).first() {
            last = Some((*r).clone());
        }
        fixture::settle(&mut s, fx);
    }
    let last = last.expect("the filter was read");
    assert!(last.generation > g0);
    assert_eq!(
        last.query.source_ip,
        Some(Network::parse("203.0.113.0/24").unwrap())
    );
    assert!(s.events.filter_error.is_none());
    assert!(!s.events.rows.is_empty());
    assert!(s
        .events
        .rows
        .iter()
        .all(|r| r.event.source_ip.as_deref() == Some("203.0.113.77")));

    // A space changes nothing the walk depends on: no new read.
    assert!(reads(&s.update(Action::Input(' '))).is_empty());
    typed(&mut s, "outcome:denied");
    assert!(s
        .events
        .rows
        .iter()
        .all(|r| r.event.outcome == Outcome::Denied));

    // esc clears the filter and reads everything again.
    let fx = code(&mut s, KeyCode::Esc);
    assert_eq!(reads(&fx).len(), 1);
    assert!(s.events.query.is_empty() && s.events.filter.is_empty());
    assert_eq!(s.events.rows.len(), 30);
}

#[test]
fn pages_of_a_superseded_filter_are_dropped() {
    let mut s = state(120, 40);
    apply(&mut s, Action::ShowView(View::Events));
    press(&mut s, '/');
    let old = reads(&s.update(Action::Input('x')))[0].generation;
    let new = reads(&s.update(Action::Input('y')))[0].generation;
    assert!(new > old);
    let before = s.events.rows.clone();
    s.update(Action::EventsLoaded(
        old,
        Walk::First,
        page(rows(0, 3), None),
    ));
    assert_eq!(s.events.rows, before, "a late page of `x` must not show");
    assert_eq!(s.events.loading, Some(Walk::First));
    s.update(Action::EventsSuperseded(old));
    assert_eq!(s.events.loading, Some(Walk::First));
    s.update(Action::EventsLoaded(
        new,
        Walk::First,
        page(rows(0, 2), None),
    ));
    assert_eq!(s.events.rows.len(), 2);
    assert_eq!(s.events.loading, None);
    // So must the histogram of `x`; the one of `xy` replaces the scope's.
    let shown = s.events.per_hour.clone();
    s.update(Action::HistogramLoaded(old, vec![9; 24]));
    assert_eq!(s.events.per_hour, shown);
    s.update(Action::HistogramLoaded(new, vec![1; 24]));
    assert_eq!(s.events.per_hour, vec![1; 24]);
}

#[test]
fn a_rare_filter_keeps_reading_older_pages_until_the_end() {
    let mut s = state(120, 40);
    let g = reads(&s.update(Action::ShowView(View::Events)))[0].generation;
    // Nothing matched in the first step, but the walk can go on: it does at once.
    let marker = rows(5000, 1);
    let fx = s.update(Action::EventsLoaded(
        g,
        Walk::First,
        page(Vec::new(), marker.first()),
    ));
    let next = reads(&fx);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].walk, Walk::Older);
    assert_eq!(
        next[0].query.before,
        Some((to_millis(marker[0].event.time), marker[0].row_id))
    );
    assert!(next[0].histogram.is_none());
    // Two matches and the end of the events: it stops.
    let fx = s.update(Action::EventsLoaded(
        g,
        Walk::Older,
        page(rows(6000, 2), None),
    ));
    assert!(reads(&fx).is_empty());
    assert_eq!(s.events.rows.len(), 2);
    assert!(s.events.older.is_none() && s.events.loading.is_none());
}

#[test]
fn scrolling_reads_older_pages_in_a_bounded_window() {
    let mut s = state(120, 40);
    let g = reads(&s.update(Action::ShowView(View::Events)))[0].generation;
    let mut next_minute = 0;
    let mut take = |n: i64| {
        let r = rows(next_minute, n);
        next_minute += n;
        r
    };
    let first = take(EVENTS_PAGE as i64);
    let resume = first.last().cloned();
    assert!(reads(&s.update(Action::EventsLoaded(
        g,
        Walk::First,
        page(first, resume.as_ref())
    )))
    .is_empty());
    // Far from the end: moving reads nothing.
    assert!(hit(&mut s, 'j').is_empty());
    // Near the end of what is shown: the next older page.
    let fx = hit(&mut s, 'G');
    let r = reads(&fx);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].walk, Walk::Older);
    // One read at a time.
    assert!(reads(&hit(&mut s, 'k')).is_empty());
    for _ in 0..EVENTS_KEPT / EVENTS_PAGE + 1 {
        let selected_id = s.selected_event().unwrap().event.id.clone();
        let older = take(EVENTS_PAGE as i64);
        let resume = older.last().cloned();
        s.update(Action::EventsLoaded(
            g,
            Walk::Older,
            page(older, resume.as_ref()),
        ));
        // The selection stays on its event while the window moves.
        assert_eq!(s.selected_event().unwrap().event.id, selected_id);
        hit(&mut s, 'G');
    }
    assert_eq!(s.events.rows.len(), EVENTS_KEPT);
    let newer = s.events.newer.expect("the newest events were let go");
    assert_eq!(
        newer,
        (
            to_millis(s.events.rows[0].event.time),
            s.events.rows[0].row_id
        )
    );
    // Back at the top of the window: the events above it are read again.
    let fx = hit(&mut s, 'g');
    let r = reads(&fx);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].walk, Walk::First, "g goes back to the newest event");
}

#[test]
fn the_window_reads_newer_pages_when_scrolled_back_up() {
    let mut s = state(120, 40);
    let g = reads(&s.update(Action::ShowView(View::Events)))[0].generation;
    // A window that starts below the newest events (as after scrolling far down).
    let shown = rows(1000, EVENTS_KEPT as i64);
    s.update(Action::EventsLoaded(g, Walk::First, page(shown, None)));
    s.events.newer = Some((
        to_millis(s.events.rows[0].event.time),
        s.events.rows[0].row_id,
    ));
    let fx = hit(&mut s, 'k');
    let r = reads(&fx);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].walk, Walk::Newer);
    assert!(!r[0].query.newest_first);
    assert_eq!(r[0].query.after, s.events.newer);
    let top = s.selected_event().unwrap().event.id.clone();
    s.update(Action::EventsLoaded(
        g,
        Walk::Newer,
        page(rows(0, 1000), None),
    ));
    assert_eq!(s.selected_event().unwrap().event.id, top);
    assert!(s.events.newer.is_none(), "the newest event is shown again");
    assert_eq!(s.events.rows.len(), EVENTS_KEPT);
    assert!(s.events.older.is_some(), "the far end was let go");
}

#[test]
fn o_cycles_the_outcome_term_of_the_filter() {
    let mut s = state(120, 40);
    apply(&mut s, Action::ShowView(View::Events));
    press(&mut s, '/');
    typed(&mut s, "ip:198.51.100.7");
    code(&mut s, KeyCode::Enter);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let fx = press(&mut s, 'o');
        assert_eq!(reads(&fx).len(), 1);
        seen.push((s.events.query.clone(), reads(&fx)[0].query.outcome));
    }
    assert_eq!(
        seen,
        [
            (
                "ip:198.51.100.7 outcome:success".into(),
                Some(Outcome::Success)
            ),
            (
                "ip:198.51.100.7 outcome:denied".into(),
                Some(Outcome::Denied)
            ),
            ("ip:198.51.100.7 outcome:error".into(), Some(Outcome::Error)),
            ("ip:198.51.100.7".to_string(), None),
        ]
    );
}

#[test]
fn a_key_s_events_are_a_new_walk_and_enter_opens_the_key() {
    let mut s = state(120, 40);
    select(&mut s, "acme-payroll-sync");
    let fx = press(&mut s, 'E');
    let r = reads(&fx);
    assert_eq!(r[0].query.key_ref, Some(1));
    assert_eq!(s.view, View::Events);
    assert_eq!(s.events.rows.len(), 30);
    let fx = code(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
    assert!(matches!(fx.as_slice(), [Effect::LoadDetail(1, _, None)]));
    // Back in the events view with the selection moved: a sync does not move it.
    code(&mut s, KeyCode::Esc);
    press(&mut s, 'j');
    let fx = apply(&mut s, Action::SyncAllFinished);
    assert!(reads(&fx).is_empty());
    assert_eq!(s.events.cursor.selected, 1);
}

#[test]
fn an_exposure_finding_opens_its_key_with_the_events_since_the_exposure() {
    let mut s = writable();
    let mut findings = fixture::findings();
    findings[1].category = keyaudit::model::Category::Exposure;
    findings[1].rule = "exposed_key".into();
    let exposed_at = findings[1].first_seen;
    apply(&mut s, Action::FindingsLoaded(findings));
    apply(&mut s, Action::ShowView(View::Findings));
    press(&mut s, 'j');
    let fx = code(&mut s, KeyCode::Enter);
    assert_eq!(s.view, View::Detail);
    assert!(
        matches!(fx.as_slice(), [Effect::LoadDetail(_, _, Some(t))] if *t == exposed_at),
        "{fx:?}"
    );
    // A detail read without the exposure filter (an older read) is not shown.
    apply(&mut s, Action::DetailLoaded(Box::new(fixture::detail())));
    assert!(s.detail.data.is_none());
    let mut d = fixture::detail();
    d.since = Some(exposed_at);
    apply(&mut s, Action::DetailLoaded(Box::new(d)));
    assert!(s.detail.data.is_some());
    // The key's events view starts filtered from the exposure.
    let fx = press(&mut s, 'E');
    assert_eq!(reads(&fx)[0].query.since, Some(exposed_at));
    assert!(s.events.query.starts_with("since:"), "{}", s.events.query);
    // Opened from the keys view, the same key shows all its recent events.
    code(&mut s, KeyCode::Esc);
    press(&mut s, '1');
    select(&mut s, "acme-payroll-sync");
    let fx = code(&mut s, KeyCode::Enter);
    assert!(
        matches!(fx.as_slice(), [Effect::LoadDetail(_, _, None)]),
        "{fx:?}"
    );
}
