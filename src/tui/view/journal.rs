//! The journal view: the operator's actions, newest first.

use super::{block, clean, stamp, Cursor};
use crate::model::JournalEntry;
use crate::tui::action::{Action, Effect};
use crate::tui::state::State;
use crate::tui::strings as s;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

/// The journal view.
#[derive(Debug, Clone, Default)]
pub struct JournalView {
    pub rows: Vec<JournalEntry>,
    pub cursor: Cursor,
}

/// Applies the actions of the journal view.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::JournalLoaded(j) => {
            st.journal.rows = j;
            let h = st.page_height();
            st.journal.cursor.fit(st.journal.rows.len(), h);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

pub(super) fn render(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let b = block(
        state,
        format!(" journal {} entries ", state.journal.rows.len()),
    );
    if state.journal.rows.is_empty() {
        f.render_widget(Paragraph::new(s::NO_JOURNAL).style(t.dim).block(b), area);
        return;
    }
    let height = area.height.saturating_sub(3) as usize;
    let cur = state.journal.cursor;
    let rows = state
        .journal
        .rows
        .iter()
        .enumerate()
        .skip(cur.offset)
        .take(height)
        .map(|(pos, j)| {
            let row = Row::new(vec![
                Cell::from(j.seq.to_string()),
                Cell::from(stamp(j.time)),
                Cell::from(clean(&j.os_user)),
                Cell::from(clean(&j.action)),
                Cell::from(clean(&j.target)),
                Cell::from(clean(&j.result)),
                Cell::from(clean(j.reason.as_deref().unwrap_or(""))),
            ]);
            if pos == cur.selected {
                row.style(t.selected)
            } else {
                row
            }
        });
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new([
            "SEQ", "TIME", "USER", "ACTION", "TARGET", "RESULT", "REASON",
        ])
        .style(t.header),
    )
    .block(b);
    f.render_widget(table, area);
}
