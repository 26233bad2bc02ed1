//! The providers view: each configured provider, its last sync and error, its counts.

use super::{ago, block, clean, thousands, Cursor};
use crate::model::ProviderInfo;
use crate::tui::action::{Action, Effect};
use crate::tui::state::State;
use crate::tui::strings as s;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

/// The providers view.
#[derive(Debug, Clone, Default)]
pub struct ProvidersView {
    pub rows: Vec<ProviderInfo>,
    pub cursor: Cursor,
}

/// Applies the actions of the providers view.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::ProvidersLoaded(p) => {
            st.providers.rows = p;
            let h = st.page_height();
            st.providers.cursor.fit(st.providers.rows.len(), h);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

pub(super) fn render(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let b = block(state, format!(" providers {} ", state.providers.rows.len()));
    if state.providers.rows.is_empty() {
        f.render_widget(Paragraph::new(s::NO_PROVIDERS).style(t.dim).block(b), area);
        return;
    }
    let height = area.height.saturating_sub(3) as usize;
    let cur = state.providers.cursor;
    let rows = state
        .providers
        .rows
        .iter()
        .enumerate()
        .skip(cur.offset)
        .take(height)
        .map(|(pos, p)| {
            let caps = state.capabilities.get(&p.name);
            let can = caps
                .map(|c| {
                    let mut v = Vec::new();
                    if c.disable {
                        v.push("disable");
                    }
                    if c.revoke {
                        v.push("revoke");
                    }
                    if c.rotate_overlap || c.rotate_atomic {
                        v.push("rotate");
                    }
                    v.join(",")
                })
                .unwrap_or_else(|| "offline".into());
            let health = match (&p.last_error, p.last_sync) {
                (Some(_), _) => Cell::from("error").style(t.bad),
                (None, Some(_)) => Cell::from("ok").style(t.good),
                (None, None) => Cell::from("never").style(t.dim),
            };
            let row = Row::new(vec![
                Cell::from(clean(&p.name)),
                Cell::from(clean(&p.kind)),
                health,
                Cell::from(ago(state.now, p.last_sync)),
                Cell::from(thousands(p.keys as usize)),
                Cell::from(thousands(p.events as usize)),
                Cell::from(can),
                Cell::from(clean(p.last_error.as_deref().unwrap_or(""))),
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
            Constraint::Length(14),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(10),
            Constraint::Length(21),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new([
            "NAME",
            "KIND",
            "HEALTH",
            "SYNC",
            "KEYS",
            "EVENTS",
            "CAN",
            "LAST ERROR",
        ])
        .style(t.header),
    )
    .block(b);
    f.render_widget(table, area);
}
