//! The findings view: every rule's verdicts ranked by severity, with acknowledge and
//! suppress (a note goes into the journal); and the write that records them (run by the
//! runner).

use super::{ago, block, clean, list_area, severity_style, Cursor};
use crate::model::{Finding, FindingStatus};
use crate::store::{journal::NewEntry, StoreError};
use crate::tui::action::{Action, Effect};
use crate::tui::state::{Mode, State};
use crate::tui::strings as s;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// The findings view.
#[derive(Debug, Clone, Default)]
pub struct FindingsView {
    pub rows: Vec<Finding>,
    pub cursor: Cursor,
}

/// Applies the actions of the findings view: acknowledge, suppress, the note, results.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Acknowledge | Action::Suppress => {
            let status = if matches!(action, Action::Acknowledge) {
                FindingStatus::Acknowledged
            } else {
                FindingStatus::Suppressed
            };
            if !st.write {
                st.fail(s::refused_read_only(status.as_str()));
                return Vec::new();
            }
            let Some(f) = st.findings.rows.get(st.findings.cursor.selected) else {
                return Vec::new();
            };
            st.mode = Mode::Note {
                id: f.id.clone(),
                target: format!("{}/{}", f.provider, f.key_id),
                status,
            };
            st.input.clear();
            Vec::new()
        }
        Action::InputSubmit => {
            let Mode::Note { id, target, status } = std::mem::replace(&mut st.mode, Mode::Normal)
            else {
                return Vec::new();
            };
            let note = std::mem::take(&mut st.input);
            vec![Effect::SetFindingStatus {
                id,
                target,
                status,
                note,
            }]
        }
        Action::FindingsLoaded(f) => {
            st.findings.rows = f;
            let h = st.page_height();
            st.findings.cursor.fit(st.findings.rows.len(), h);
            Vec::new()
        }
        Action::FindingUpdated(id, status) => {
            st.say(format!("finding {id}: {status}"));
            vec![Effect::LoadFindings, Effect::LoadKeys]
        }
        _ => Vec::new(),
    }
}

pub(super) fn render(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let list = list_area(state).unwrap_or(area);
    let panel = Rect {
        y: list.y + list.height,
        height: area.height.saturating_sub(list.height),
        ..area
    };
    let open = state
        .findings
        .rows
        .iter()
        .filter(|f| f.status == crate::model::FindingStatus::Open)
        .count();
    let b = block(
        state,
        format!(" findings {} · {} open ", state.findings.rows.len(), open),
    );
    if state.findings.rows.is_empty() {
        f.render_widget(Paragraph::new(s::NO_FINDINGS).style(t.dim).block(b), list);
        return;
    }
    let height = list.height.saturating_sub(3) as usize;
    let cur = state.findings.cursor;
    let rows = state
        .findings
        .rows
        .iter()
        .enumerate()
        .skip(cur.offset)
        .take(height)
        .map(|(pos, fi)| {
            let row = Row::new(vec![
                Cell::from(fi.severity.as_str()).style(severity_style(state, fi.severity)),
                Cell::from(fi.status.as_str()),
                Cell::from(clean(&fi.title)),
                Cell::from(clean(&fi.key_id)),
                Cell::from(ago(state.now, Some(fi.last_seen))),
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
            Constraint::Length(8),
            Constraint::Length(12),
            Constraint::Fill(1),
            Constraint::Length(20),
            Constraint::Length(6),
        ],
    )
    .header(Row::new(["SEVERITY", "STATUS", "FINDING", "KEY", "SEEN"]).style(t.header))
    .block(b);
    f.render_widget(table, list);
    if let Some(fi) = state.findings.rows.get(cur.selected) {
        let mut lines = vec![Line::raw(clean(&fi.explanation))];
        let ev: Vec<String> = fi.evidence.iter().take(8).map(|e| clean(e)).collect();
        lines.push(Line::from(vec![
            Span::styled("evidence ", t.dim),
            Span::raw(if ev.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{}{}",
                    ev.join(" "),
                    if fi.evidence.len() > ev.len() {
                        format!(" … {} more", fi.evidence.len() - ev.len())
                    } else {
                        String::new()
                    }
                )
            }),
        ]));
        if let Some(n) = &fi.note {
            lines.push(Line::from(vec![
                Span::styled("note ", t.dim),
                Span::raw(clean(n)),
            ]));
        }
        f.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: true }).block(block(
                state,
                format!(
                    " {} · {} · {} ",
                    clean(&fi.rule),
                    fi.category,
                    clean(&fi.provider)
                ),
            )),
            panel,
        );
    }
}

pub(crate) fn set_finding_status(
    db: &crate::store::Cache,
    id: &str,
    target: &str,
    status: FindingStatus,
    note: &str,
) -> Result<bool, StoreError> {
    let mut store = db.open()?;
    let note = (!note.trim().is_empty()).then_some(note.trim());
    let changed = store.set_finding_status(id, status, note, None)?;
    let verb = if status == FindingStatus::Acknowledged {
        "acknowledge"
    } else {
        "suppress"
    };
    store.append_journal(&NewEntry {
        action: verb,
        target,
        reason: note,
        params: serde_json::json!({ "finding": id }),
        result: if changed {
            "ok"
        } else {
            "failed: no such finding"
        },
    })?;
    Ok(changed)
}
