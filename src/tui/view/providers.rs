//! The providers view: each configured provider, its last sync and error, its counts;
//! below them the imported files of an offline review (source, file, format, records,
//! events, time span).

use super::{ago, block, clean, thousands, Cursor};
use crate::model::ProviderInfo;
use crate::store::ImportedFile;
use crate::tui::action::{Action, Effect};
use crate::tui::state::State;
use crate::tui::strings as s;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

/// The providers view.
#[derive(Debug, Clone, Default)]
pub struct ProvidersView {
    pub rows: Vec<ProviderInfo>,
    pub cursor: Cursor,
    /// The imported files, by source and path.
    pub files: Vec<ImportedFile>,
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
        Action::SourcesLoaded(files) => {
            st.providers.files = files;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

pub(super) fn render(state: &State, f: &mut Frame, area: Rect) {
    if state.providers.files.is_empty() {
        return render_providers(state, f, area);
    }
    // The providers take what their rows need (at least a third), the files the rest.
    let want = state.providers.rows.len().max(1) as u16 + 3;
    let [top, bottom] = Layout::vertical([
        Constraint::Length(want.min(area.height / 3).max(4).min(area.height)),
        Constraint::Fill(1),
    ])
    .areas(area);
    render_providers(state, f, top);
    render_files(state, f, bottom);
}

fn span(f: &ImportedFile) -> String {
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    match (f.first, f.last) {
        (Some(a), Some(b)) => format!("{} .. {}", day(a), day(b)),
        _ => "-".into(),
    }
}

/// The last `room` characters of `text`, with an ellipsis in front when cut.
fn tail(text: &str, room: usize) -> String {
    let n = text.chars().count();
    if n <= room || room == 0 {
        return text.to_string();
    }
    let keep: String = text.chars().skip(n - room + 1).collect();
    format!("…{keep}")
}

fn render_files(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let files = &state.providers.files;
    let b = block(state, format!(" {} {} ", s::IMPORTED_FILES, files.len()));
    let height = area.height.saturating_sub(3) as usize;
    // The file column shows the end of a long path: the file's name matters most.
    let room = (area.width as usize).saturating_sub(14 + 10 + 10 + 10 + 36 + 5 + 2);
    let rows = files.iter().take(height).map(move |file| {
        Row::new(vec![
            Cell::from(clean(&file.source)),
            Cell::from(clean(&file.format)),
            Cell::from(thousands(file.records.max(0) as usize)),
            Cell::from(thousands(file.events.max(0) as usize)),
            Cell::from(span(file)),
            Cell::from(tail(&clean(&file.path), room)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(36),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new(["SOURCE", "FORMAT", "RECORDS", "EVENTS", "TIME SPAN", "FILE"]).style(t.header),
    )
    .block(b);
    f.render_widget(table, area);
}

fn render_providers(state: &State, f: &mut Frame, area: Rect) {
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
                    } else if c.rotate_guided {
                        v.push("rotate(guided)");
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
