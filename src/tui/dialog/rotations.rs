//! The `W` overlay: the rotations in progress, the team's with `[team]` (whoever drives
//! them, with the command that takes another member's over) or this cache's; Enter opens
//! the key's detail.

use crate::action::workflow::{Step, Workflow};
use crate::store::workflows::TeamWorkflow;
use crate::tui::action::{Action, Effect};
use crate::tui::state::{Mode, State};
use crate::tui::strings as s;
use crate::tui::view::detail::describe_rotation;
use crate::tui::view::{block, centered, clean};
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

/// One rotation in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRow {
    pub provider: String,
    pub key_id: String,
    /// `grace until 12-07 05:22 UTC · alice@ws-12 team #7 · new key key_91ab…`.
    pub line: String,
    /// `take it over: keyaudit resume --adopt 7`, under another member's rotation.
    pub hint: Option<String>,
}

impl RotationRow {
    /// A rotation of this cache (one person, or a team store out of reach).
    pub fn own(w: &Workflow) -> RotationRow {
        RotationRow {
            provider: w.provider.clone(),
            key_id: w.key_id.clone(),
            line: describe_rotation(w, &format!("workflow #{}", w.id)),
            hint: None,
        }
    }

    /// A rotation as the team store has it, seen from the cache whose id is `me`.
    pub fn team(t: &TeamWorkflow, me: &str) -> RotationRow {
        let whose = format!("{} team #{}", t.owner.who(), t.team_id);
        // Another member's rotation: the hand-over a responder types; for a guided one
        // whose old key is quiet, the revoke that finishes it.
        let w = &t.workflow;
        let hint = if t.owner.cache == me {
            None
        } else if w.kind == "rotate" {
            Some(format!(
                "take it over: keyaudit resume --adopt {}",
                t.team_id
            ))
        } else if w.kind == crate::action::guided::KIND && w.step == Step::ReadyToRevoke {
            Some(format!("finish it: keyaudit revoke {}", w.target()))
        } else {
            None
        };
        RotationRow {
            provider: w.provider.clone(),
            key_id: w.key_id.clone(),
            line: describe_rotation(w, &whose),
            hint,
        }
    }
}

/// The overlay's rows (`None` while they are read; the error when they could not be)
/// and its selection.
#[derive(Debug, Clone, Default)]
pub struct RotationsDialog {
    pub rows: Option<Result<Vec<RotationRow>, String>>,
    pub selected: usize,
}

impl RotationsDialog {
    /// The rotations read (none while they are read or when they could not be).
    fn listed(&self) -> &[RotationRow] {
        match &self.rows {
            Some(Ok(rows)) => rows,
            _ => &[],
        }
    }

    fn chosen(&self) -> Option<&RotationRow> {
        self.listed().get(self.selected)
    }
}

/// Applies the actions of the overlay: open (reading the rotations), close, move, open
/// the selected rotation's key.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::ToggleRotations if st.mode == Mode::Rotations => {
            st.mode = Mode::Normal;
            Vec::new()
        }
        Action::ToggleRotations => {
            st.mode = Mode::Rotations;
            st.rotations = RotationsDialog::default();
            vec![Effect::LoadRotations]
        }
        Action::RotationsLoaded(rows) => {
            st.rotations.rows = Some(rows);
            st.rotations.selected = st
                .rotations
                .selected
                .min(st.rotations.listed().len().saturating_sub(1));
            Vec::new()
        }
        Action::SelectNext => {
            if st.rotations.selected + 1 < st.rotations.listed().len() {
                st.rotations.selected += 1;
            }
            Vec::new()
        }
        Action::SelectPrev => {
            st.rotations.selected = st.rotations.selected.saturating_sub(1);
            Vec::new()
        }
        Action::Back => {
            st.mode = Mode::Normal;
            Vec::new()
        }
        Action::OpenDetail => {
            let Some(r) = st.rotations.chosen() else {
                st.fail(s::NOTHING_SELECTED);
                return Vec::new();
            };
            let key_ref = st.keys.by_id(&r.provider, &r.key_id).map(|k| k.key_ref);
            if key_ref.is_none() {
                let what = format!("{}/{}", clean(&r.provider), clean(&r.key_id));
                st.fail(s::rotation_key_not_cached(&what));
                return Vec::new();
            }
            st.mode = Mode::Normal;
            st.detail.from_finding = None;
            st.detail.since = None;
            st.open_detail(key_ref)
        }
        _ => Vec::new(),
    }
}

pub(crate) fn render(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let mut lines = Vec::new();
    let title = match &state.rotations.rows {
        None => {
            lines.push(Line::styled(s::ROTATIONS_READING, t.dim));
            " rotations in progress ".to_string()
        }
        Some(Err(why)) => {
            lines.push(Line::styled(clean(why), t.dim));
            " rotations in progress ".to_string()
        }
        Some(Ok(rows)) => {
            if rows.is_empty() {
                lines.push(Line::styled(s::NO_ROTATIONS, t.dim));
            }
            for (i, r) in rows.iter().enumerate() {
                let style = if i == state.rotations.selected {
                    t.selected
                } else {
                    ratatui::style::Style::default()
                };
                // The key's name, when the cache holds it.
                let name = state
                    .keys
                    .by_id(&r.provider, &r.key_id)
                    .map(|k| format!("  {}", clean(&k.key.name)))
                    .unwrap_or_default();
                lines.push(Line::styled(
                    format!("{}/{}{name}", clean(&r.provider), clean(&r.key_id)),
                    style.patch(t.header),
                ));
                lines.push(Line::styled(format!("  {}", clean(&r.line)), style));
                if let Some(h) = &r.hint {
                    lines.push(Line::styled(format!("  {}", clean(h)), t.dim));
                }
            }
            format!(" rotations in progress ({}) ", rows.len())
        }
    };
    lines.push(Line::styled(s::ROTATIONS_FOOTER, t.dim));
    let height = (lines.len() as u16).saturating_add(2);
    let popup = centered(area, area.width.saturating_sub(4).max(20), height);
    // Keep the selected rotation in sight on a short screen: its last line at the bottom
    // at most.
    let lines_of = |r: &RotationRow| 2 + usize::from(r.hint.is_some());
    let end: usize = state
        .rotations
        .listed()
        .iter()
        .take(state.rotations.selected + 1)
        .map(lines_of)
        .sum();
    let inner = popup.height.saturating_sub(2) as usize;
    let scroll = end.saturating_sub(inner);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .scroll((scroll as u16, 0))
            .block(block(state, title)),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::workflows::{WorkflowName, WorkflowOwner};

    fn team(kind: &str, step: Step, cache: &str) -> TeamWorkflow {
        let mut w = Workflow::new_rotation("tg", "key_1", "file:/x", 60, None);
        w.kind = kind.into();
        w.step = step;
        TeamWorkflow {
            team_id: 7,
            name: WorkflowName {
                cache: cache.into(),
                id: 3,
            },
            owner: WorkflowOwner {
                cache: cache.into(),
                id: 3,
                user: "alice".into(),
                host: "ws-12".into(),
            },
            published: chrono::Utc::now(),
            workflow: w,
        }
    }

    #[test]
    fn another_member_s_rotation_names_the_command_that_finishes_it() {
        let hint = |kind: &str, step: Step, cache: &str| {
            RotationRow::team(&team(kind, step, cache), "mine").hint
        };
        assert_eq!(
            hint("rotate", Step::Verified, "theirs").as_deref(),
            Some("take it over: keyaudit resume --adopt 7")
        );
        assert_eq!(hint("rotate", Step::Verified, "mine"), None);
        assert_eq!(
            hint(crate::action::guided::KIND, Step::ReadyToRevoke, "theirs").as_deref(),
            Some("finish it: keyaudit revoke tg/key_1")
        );
        assert_eq!(
            hint(crate::action::guided::KIND, Step::AwaitingQuiet, "theirs"),
            None
        );
        let row = RotationRow::team(&team("rotate", Step::Verified, "theirs"), "mine");
        assert!(row.line.contains("alice@ws-12 team #7"), "{}", row.line);
    }
}
