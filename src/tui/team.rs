//! The team in the workstation (`[team]`): the team store's announcements redraw what
//! they touch (a member's decision on a finding, a claim taken or released), the header
//! says whether the store is reachable, and the status line names who else is connected
//! and what they hold. While the store is lost the workstation is read-only: actions
//! that need a claim, and decisions the team would not see, are refused until it
//! reconnects by itself.

use super::action::{Action, Effect};
use super::state::State;
use crate::model::FindingStatus;
use crate::store::shared::{Decision, Member};
use crate::store::team::live::Signal;

/// What the workstation knows of the team store.
#[derive(Debug, Clone, Default)]
pub struct TeamView {
    /// `None` until the first connection attempt ends.
    pub online: Option<bool>,
    /// The other responders connected (and any process holding a claim).
    pub members: Vec<Member>,
    /// Read a source's copy as soon as a member publishes it (`[team] fresh` is not
    /// zero: the sync it starts reads the fresh copy rather than syncing again).
    pub follow: bool,
}

/// Applies the team's actions.
pub fn update(st: &mut State, action: Action) -> Vec<Effect> {
    let Some(team) = st.team.as_mut() else {
        return Vec::new();
    };
    match action {
        Action::Team(Signal::Online) => {
            let was = team.online.replace(true);
            if was == Some(false) {
                st.say("team store reachable again: actions are allowed");
            }
            vec![Effect::PullDecisions { all: true }, Effect::LoadMembers]
        }
        Action::Team(Signal::Offline(why)) => {
            let was = team.online.replace(false);
            team.members.clear();
            if was != Some(false) {
                st.fail(format!(
                    "team store offline: read-only until it is back (reconnecting): {why}"
                ));
            }
            Vec::new()
        }
        Action::Team(Signal::Changed(what)) => match what.as_str() {
            "decisions" => vec![Effect::PullDecisions { all: false }],
            "claims" | "presence" | "syncing" => vec![Effect::LoadMembers],
            "journal" if st.view == crate::tui::action::View::Journal => vec![Effect::LoadJournal],
            // A key's detail lists its rotations in progress and its journal entries: a
            // member's rotation, adoption or action may have changed them.
            "workflows" | "journal" => {
                let mut fx = Vec::new();
                if st.view == crate::tui::action::View::Detail {
                    fx.extend(st.view_reload());
                }
                // The open rotations overlay lists every member's rotations.
                if what == "workflows" && st.mode == crate::tui::state::Mode::Rotations {
                    fx.push(Effect::LoadRotations);
                }
                fx
            }
            // A member published a source: read it (unless a sync is running already).
            "sources" if team.follow && st.sync.is_none() => st.update(Action::StartSync),
            _ => Vec::new(),
        },
        Action::TeamMembers(members) => {
            team.members = members;
            Vec::new()
        }
        Action::TeamDecided(decided) => {
            let Some(last) = decided.last() else {
                return Vec::new();
            };
            let text = describe(last, decided.len());
            st.say(text);
            let mut fx = vec![Effect::LoadFindings, Effect::LoadKeys];
            fx.extend(st.view_reload());
            fx
        }
        _ => Vec::new(),
    }
}

/// `bob@ws-2 acknowledged finding 3f2a… (tg/key_1)`, and how many more.
fn describe(d: &Decision, count: usize) -> String {
    let verb = if d.status == FindingStatus::Suppressed {
        "suppressed"
    } else {
        "acknowledged"
    };
    let short: String = d.finding.chars().take(8).collect();
    let more = if count > 1 {
        format!(" and {} more decisions of the team", count - 1)
    } else {
        String::new()
    };
    format!(
        "{}@{} {verb} finding {short} ({}){more}",
        d.user, d.host, d.target
    )
}

/// Why `action` is refused now: it needs the team store and the store is lost.
pub fn refused(st: &State, action: &Action) -> Option<&'static str> {
    if st.team.as_ref()?.online != Some(false) {
        return None;
    }
    match action {
        Action::RequestRevoke
        | Action::RequestDisable
        | Action::RequestEnable
        | Action::RequestRotate => Some(
            "team store offline: actions on keys need a claim and are refused until it is back",
        ),
        Action::Acknowledge | Action::Suppress => Some(
            "team store offline: a decision the team cannot see is not made; try again when it is back",
        ),
        _ => None,
    }
}

/// The header's badge: `TEAM 3` (connected, 3 responders with this one), `TEAM OFFLINE`;
/// true when it is bad news.
pub fn badge(st: &State) -> Option<(String, bool)> {
    let team = st.team.as_ref()?;
    Some(match team.online {
        Some(false) => ("TEAM OFFLINE".into(), true),
        Some(true) => (format!("TEAM {}", team.members.len() + 1), false),
        None => ("TEAM …".into(), false),
    })
}

/// The status line's right side: `with bob@ws-2 (rotating tg/key_1), carol@ws-3`.
pub fn summary(st: &State) -> Option<String> {
    let team = st.team.as_ref()?;
    if team.online != Some(true) || team.members.is_empty() {
        return None;
    }
    let names: Vec<String> = team.members.iter().map(Member::describe).collect();
    Some(format!("with {}", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::keymap::Keymap;
    use crate::tui::state::Setup;
    use crate::tui::theme::Theme;
    use std::sync::Arc;

    fn state() -> State {
        let mut st = State::new(Setup {
            now: chrono::Utc::now(),
            demo: false,
            write: true,
            read_only: false,
            keymap: Arc::new(Keymap::default()),
            theme: Theme::dark(),
            capabilities: Default::default(),
            size: (120, 40),
        });
        st.team = Some(TeamView::default());
        st
    }

    fn member(user: &str, holds: &[(&str, &str)]) -> Member {
        Member {
            user: user.into(),
            host: "ws".into(),
            holds: holds
                .iter()
                .map(|(t, o)| (t.to_string(), o.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_lost_store_refuses_actions_and_decisions_until_it_is_back() {
        let mut st = state();
        assert_eq!(refused(&st, &Action::RequestRevoke), None);
        st.update(Action::Team(Signal::Offline("connection refused".into())));
        assert_eq!(badge(&st), Some(("TEAM OFFLINE".into(), true)));
        let m = st.message.clone().unwrap();
        assert!(m.error && m.text.contains("connection refused"), "{m:?}");
        for a in [
            Action::RequestRevoke,
            Action::RequestRotate,
            Action::Acknowledge,
        ] {
            assert!(refused(&st, &a).is_some(), "{a:?}");
        }
        let fx = st.update(Action::Team(Signal::Online));
        assert!(
            matches!(fx[0], Effect::PullDecisions { all: true }),
            "{fx:?}"
        );
        assert_eq!(refused(&st, &Action::RequestRevoke), None);
        assert!(st.message.clone().unwrap().text.contains("reachable again"));
    }

    #[test]
    fn a_key_detail_is_read_again_when_a_rotation_or_the_journal_changes() {
        let mut st = state();
        st.update(Action::Team(Signal::Online));
        let changed =
            |st: &mut State, what: &str| st.update(Action::Team(Signal::Changed(what.into())));
        assert!(
            changed(&mut st, "workflows").is_empty(),
            "the keys view shows no rotation"
        );
        st.view = crate::tui::action::View::Detail;
        st.detail.key_ref = Some(7);
        for what in ["workflows", "journal"] {
            let fx = changed(&mut st, what);
            assert!(
                matches!(fx.as_slice(), [Effect::LoadDetail(7, _, None)]),
                "{what}: {fx:?}"
            );
        }
        // The rotations overlay, open over the detail, is read again on a rotation's
        // change, and not on a journal entry.
        st.update(Action::ToggleRotations);
        assert!(matches!(
            changed(&mut st, "workflows").as_slice(),
            [Effect::LoadDetail(7, _, None), Effect::LoadRotations]
        ));
        assert!(matches!(
            changed(&mut st, "journal").as_slice(),
            [Effect::LoadDetail(7, _, None)]
        ));
    }

    #[test]
    fn members_and_what_they_hold_are_named() {
        let mut st = state();
        st.update(Action::Team(Signal::Online));
        assert_eq!(summary(&st), None);
        st.update(Action::TeamMembers(vec![
            member("bob", &[("tg/key_1", "rotate")]),
            member("carol\x1b[2J", &[]),
        ]));
        assert_eq!(badge(&st), Some(("TEAM 3".into(), false)));
        let text = summary(&st).unwrap();
        assert!(
            text.starts_with("with bob@ws (rotating tg/key_1), carol"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "{text:?}");
    }
}
