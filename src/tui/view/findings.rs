//! The findings view: every rule's verdicts ranked by severity, each naming its key
//! (name and owner), with acknowledge and suppress (a note goes into the journal); a
//! hygiene rule firing on many keys is one row ("rotation overdue: 20 keys") that Enter
//! expands, so live anomalies are not buried; and the write that records a status (run
//! by the runner).

use super::{ago, block, clean, list_area, severity_style, Cursor};
use crate::model::{Category, Finding, FindingStatus};
use crate::tui::action::{Action, Effect};
use crate::tui::state::{Mode, State};
use crate::tui::strings as s;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use std::collections::{BTreeSet, HashMap};

/// A hygiene rule firing on at least this many keys is shown as one row.
pub const GROUP_MIN: usize = 3;

/// One line of the findings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingLine {
    /// The findings of one hygiene rule (indexes into `rows`), expanded or not.
    Group {
        rule: String,
        members: Vec<usize>,
        expanded: bool,
    },
    /// One finding; `nested` under an expanded group.
    One { index: usize, nested: bool },
}

/// The findings view.
#[derive(Debug, Clone, Default)]
pub struct FindingsView {
    pub rows: Vec<Finding>,
    /// What the table shows, in order (the cursor moves over these).
    pub lines: Vec<FindingLine>,
    /// Rules whose group is expanded.
    pub expanded: BTreeSet<String>,
    pub cursor: Cursor,
}

impl FindingsView {
    /// Rebuilds `lines` from `rows` (in their order) and the expanded groups.
    pub fn regroup(&mut self) {
        let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, f) in self.rows.iter().enumerate() {
            if f.category == Category::Hygiene {
                members.entry(f.rule.as_str()).or_default().push(i);
            }
        }
        let mut lines = Vec::with_capacity(self.rows.len());
        let mut shown: BTreeSet<&str> = BTreeSet::new();
        for (i, f) in self.rows.iter().enumerate() {
            match members.get(f.rule.as_str()) {
                Some(m) if f.category == Category::Hygiene && m.len() >= GROUP_MIN => {
                    if !shown.insert(f.rule.as_str()) {
                        continue;
                    }
                    let expanded = self.expanded.contains(&f.rule);
                    lines.push(FindingLine::Group {
                        rule: f.rule.clone(),
                        members: m.clone(),
                        expanded,
                    });
                    if expanded {
                        lines.extend(m.iter().map(|&index| FindingLine::One {
                            index,
                            nested: true,
                        }));
                    }
                }
                _ => lines.push(FindingLine::One {
                    index: i,
                    nested: false,
                }),
            }
        }
        self.lines = lines;
    }

    /// The finding on the selected line (none on a group's line).
    pub fn selected(&self) -> Option<&Finding> {
        match self.lines.get(self.cursor.selected)? {
            FindingLine::One { index, .. } => self.rows.get(*index),
            FindingLine::Group { .. } => None,
        }
    }

    /// Expands or collapses the group on the selected line; false when the line is a
    /// single finding.
    pub fn toggle_group(&mut self) -> bool {
        let Some(FindingLine::Group { rule, .. }) = self.lines.get(self.cursor.selected) else {
            return false;
        };
        let rule = rule.clone();
        if !self.expanded.remove(&rule) {
            self.expanded.insert(rule);
        }
        self.regroup();
        true
    }
}

/// A rule id as words: `rotation_overdue` is "rotation overdue".
fn rule_words(rule: &str) -> String {
    rule.replace('_', " ")
}

/// A key as an analyst knows it: its name and owner, else its id.
pub(crate) fn key_label(state: &State, provider: &str, id: &str) -> String {
    match state.keys.by_id(provider, id) {
        Some(k) if !k.key.name.is_empty() && !k.key.owner.is_empty() => {
            clean(&format!("{} · {}", k.key.name, k.key.owner))
        }
        Some(k) if !k.key.name.is_empty() => clean(&k.key.name),
        _ => clean(id),
    }
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
            let Some(f) = st.findings.selected() else {
                if !st.findings.lines.is_empty() {
                    st.fail(s::FINDING_GROUP_SELECTED);
                }
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
            st.findings.regroup();
            let h = st.page_height();
            st.findings.cursor.fit(st.findings.lines.len(), h);
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
    let all = &state.findings.rows;
    let rows = state
        .findings
        .lines
        .iter()
        .enumerate()
        .skip(cur.offset)
        .take(height)
        .map(|(pos, line)| {
            let row = match line {
                FindingLine::Group {
                    rule,
                    members,
                    expanded,
                } => {
                    let fs = members.iter().filter_map(|i| all.get(*i));
                    let worst = fs
                        .clone()
                        .map(|f| f.severity)
                        .max()
                        .unwrap_or(crate::model::Severity::Low);
                    let open = fs
                        .clone()
                        .filter(|f| f.status == FindingStatus::Open)
                        .count();
                    let seen = fs.map(|f| f.last_seen).max();
                    Row::new(vec![
                        Cell::from(worst.as_str()).style(severity_style(state, worst)),
                        Cell::from(format!("{open} open")),
                        Cell::from(format!(
                            "{} {}: {} keys",
                            if *expanded { "▾" } else { "▸" },
                            clean(&rule_words(rule)),
                            members.len()
                        )),
                        Cell::from(s::FINDING_GROUP_KEY),
                        Cell::from(ago(state.now, seen)),
                    ])
                }
                FindingLine::One { index, nested } => {
                    let Some(fi) = all.get(*index) else {
                        return Row::new(Vec::<Cell>::new());
                    };
                    Row::new(vec![
                        Cell::from(fi.severity.as_str()).style(severity_style(state, fi.severity)),
                        Cell::from(fi.status.as_str()),
                        Cell::from(if *nested {
                            format!("  {}", clean(&fi.title))
                        } else {
                            clean(&fi.title)
                        }),
                        Cell::from(key_label(state, &fi.provider, &fi.key_id)),
                        Cell::from(ago(state.now, Some(fi.last_seen))),
                    ])
                }
            };
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
            Constraint::Length(if list.width >= 110 { 36 } else { 24 }),
            Constraint::Length(6),
        ],
    )
    .header(Row::new(["SEVERITY", "STATUS", "FINDING", "KEY", "SEEN"]).style(t.header))
    .block(b);
    f.render_widget(table, list);
    if let Some(FindingLine::Group { rule, members, .. }) = state.findings.lines.get(cur.selected) {
        let keys: Vec<String> = members
            .iter()
            .filter_map(|i| all.get(*i))
            .map(|f| key_label(state, &f.provider, &f.key_id))
            .collect();
        let lines = vec![
            Line::raw(s::finding_group_help(&rule_words(rule), keys.len())),
            Line::from(vec![
                Span::styled("keys ", t.dim),
                Span::raw(keys.join(", ")),
            ]),
        ];
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(block(state, format!(" {} · hygiene ", clean(rule)))),
            panel,
        );
    } else if let Some(fi) = state.findings.selected() {
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
