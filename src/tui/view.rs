//! Rendering: pure functions of `&State` into a frame. Only the visible rows are built;
//! every string that came from a provider or a log is sanitized before it is drawn.

use super::action::{Column, View};
use super::keymap::Context;
use super::state::{sort_label, Confirm, ConfirmKind, Mode, SecretDialog, State};
use super::strings as s;
use crate::detect::BaselineStatus;
use crate::model::{Key, KeyStatus, Severity};
use crate::output::sanitize;
use crate::when::short_age;
use chrono::{DateTime, Duration, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, LineGauge, Paragraph, Row, Sparkline, Table, Wrap,
};
use ratatui::Frame;

/// The screen's regions.
pub struct Areas {
    pub header: Rect,
    pub body: Rect,
    pub status: Rect,
    pub hints: Rect,
}

/// Splits the screen: header, body, status line, hint bar.
pub fn layout(area: Rect) -> Areas {
    let [header, body, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Areas {
        header,
        body,
        status,
        hints,
    }
}

const HISTOGRAM_HEIGHT: u16 = 5;
const FINDING_PANEL_HEIGHT: u16 = 8;

/// The bordered block of the current view's list (for rendering and mouse clicks).
pub fn list_area(state: &State) -> Option<Rect> {
    let body = layout(Rect::new(0, 0, state.size.0, state.size.1)).body;
    match state.view {
        View::Keys | View::Journal | View::Providers => Some(body),
        View::Events => {
            let [_, list] =
                Layout::vertical([Constraint::Length(HISTOGRAM_HEIGHT), Constraint::Fill(1)])
                    .areas(body);
            Some(list)
        }
        View::Findings => {
            let [list, _] = Layout::vertical([
                Constraint::Fill(1),
                Constraint::Length(FINDING_PANEL_HEIGHT),
            ])
            .areas(body);
            Some(list)
        }
        View::Detail => None,
    }
}

fn clean(t: &str) -> String {
    sanitize(t)
}

fn ago(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => short_age(now - t),
        None => "never".into(),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%m-%d %H:%M:%S").to_string()
}

pub(super) fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// True for keys unused (or never used) for more than 90 days.
pub fn is_stale(k: &Key, now: DateTime<Utc>) -> bool {
    k.status == KeyStatus::Active
        && k.last_used
            .or(k.created)
            .is_some_and(|t| now - t > Duration::days(90))
}

/// True for active keys that expire within 30 days.
pub fn is_expiring(k: &Key, now: DateTime<Utc>) -> bool {
    k.status == KeyStatus::Active && k.expires.is_some_and(|e| e - now < Duration::days(30))
}

fn severity_style(state: &State, s: Severity) -> Style {
    let t = &state.theme;
    match s {
        Severity::Critical => t.critical,
        Severity::High => t.high,
        Severity::Medium => t.medium,
        Severity::Low => t.low,
    }
}

fn block<'a>(state: &State, title: impl Into<Line<'a>>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(state.theme.dim)
        .title(title)
        .title_style(state.theme.title)
}

/// Draws the whole screen.
pub fn render(state: &State, f: &mut Frame) {
    let areas = layout(f.area());
    render_header(state, f, areas.header);
    match state.view {
        View::Keys => render_keys(state, f, areas.body),
        View::Detail => render_detail(state, f, areas.body),
        View::Events => render_events(state, f, areas.body),
        View::Findings => render_findings(state, f, areas.body),
        View::Journal => render_journal(state, f, areas.body),
        View::Providers => render_providers(state, f, areas.body),
    }
    render_status(state, f, areas.status);
    render_hints(state, f, areas.hints);
    if state.mode == Mode::Help {
        render_help(state, f, areas.body);
    }
    if let Some(c) = &state.confirm {
        render_confirm(state, c, f, f.area());
    }
    if let Some(d) = &state.secret {
        render_secret(state, d, f, f.area());
    }
}

fn render_header(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let mut spans = vec![Span::styled(format!("{} ", s::APP), t.title)];
    for v in View::ALL {
        if v == state.view {
            spans.push(Span::styled(
                format!("[{}]", v.name()),
                t.header.add_modifier(Modifier::REVERSED),
            ));
        } else {
            spans.push(Span::styled(format!(" {} ", v.name()), t.dim));
        }
    }
    let mut right = Vec::new();
    if state.hidden() > 0 && state.keys_loaded {
        right.push(Span::styled(
            format!("{} hidden ", thousands(state.hidden())),
            t.marked,
        ));
    }
    if state.frozen {
        right.push(Span::styled(s::BADGE_FROZEN, t.badge_demo));
        right.push(Span::raw(" "));
    }
    if state.demo {
        right.push(Span::styled(s::BADGE_DEMO, t.badge_demo));
        right.push(Span::raw(" "));
    }
    if state.write {
        right.push(Span::styled(s::BADGE_RW, t.badge_rw));
    } else {
        right.push(Span::styled(s::BADGE_RO, t.badge_ro));
    }
    let right_w: u16 = right.iter().map(|s| s.width() as u16).sum();
    let [l, r] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(right_w)]).areas(area);
    f.render_widget(Paragraph::new(Line::from(spans)), l);
    f.render_widget(Paragraph::new(Line::from(right)), r);
}

fn render_keys(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let wide = area.width >= 110;
    let mut title = format!(
        " keys {} of {} · sort {} ",
        thousands(state.visible.len()),
        thousands(state.keys_preview.unwrap_or(state.keys.len())),
        sort_label(state.sort)
    );
    if state.keys_preview.is_some() {
        title.push_str(&format!("· {} ", s::LOADING_REST));
    }
    if !state.marked.is_empty() {
        title.push_str(&format!("· {} marked ", state.marked.len()));
    }
    if !state.filter.is_empty() {
        title.push_str(&format!("· /{} ", clean(&state.filter)));
    }
    let b = block(state, title);
    if state.keys.is_empty() || state.visible.is_empty() {
        let msg = if state.keys.is_empty() && !state.keys_loaded {
            s::LOADING
        } else if state.keys.is_empty() {
            s::NO_KEYS
        } else if state.filter_pending {
            s::LOADING
        } else {
            s::NO_MATCH
        };
        f.render_widget(Paragraph::new(msg).style(t.dim).block(b), area);
        return;
    }
    let columns: Vec<(Column, &str, Constraint)> = if wide {
        vec![
            (Column::Provider, "PROVIDER", Constraint::Length(12)),
            (Column::Name, "NAME", Constraint::Fill(1)),
            (Column::Owner, "OWNER", Constraint::Length(20)),
            (Column::Env, "ENV", Constraint::Length(8)),
            (Column::Status, "STATUS", Constraint::Length(8)),
            (Column::Age, "AGE", Constraint::Length(5)),
            (Column::LastUsed, "LAST USED", Constraint::Length(9)),
            (Column::Scopes, "SCOPES", Constraint::Length(6)),
            (Column::Findings, "FINDINGS", Constraint::Length(11)),
        ]
    } else {
        vec![
            (Column::Name, "NAME", Constraint::Fill(1)),
            (Column::Owner, "OWNER", Constraint::Length(12)),
            (Column::Env, "ENV", Constraint::Length(5)),
            (Column::Status, "STATUS", Constraint::Length(8)),
            (Column::Age, "AGE", Constraint::Length(4)),
            (Column::LastUsed, "USED", Constraint::Length(5)),
            (Column::Scopes, "SC", Constraint::Length(2)),
            (Column::Findings, "FINDINGS", Constraint::Length(9)),
        ]
    };
    let mut header = vec![Cell::from(" ")];
    header.extend(columns.iter().map(|(c, title, _)| {
        let mark = match state.sort.column {
            Some(sc) if sc == *c => {
                if state.sort.reverse {
                    "↑"
                } else {
                    "↓"
                }
            }
            _ => "",
        };
        Cell::from(format!("{title}{mark}"))
    }));
    let height = area.height.saturating_sub(3) as usize;
    let cur = state.keys_cursor;
    let now = state.now;
    let rows = state
        .visible
        .iter()
        .enumerate()
        .skip(cur.offset)
        .take(height)
        .filter_map(|(pos, i)| state.keys.get(*i).map(|r| (pos, r)))
        .map(|(pos, r)| {
            let k = &r.key;
            let stale = is_stale(k, now);
            let expiring = is_expiring(k, now);
            let marked = state.marked.contains(&r.key_ref);
            let mut cells = vec![Cell::from(if marked { "●" } else { " " }).style(t.marked)];
            for (c, _, _) in &columns {
                let cell = match c {
                    Column::Provider => Cell::from(clean(&k.provider)),
                    Column::Name => Cell::from(clean(&k.name)),
                    Column::Owner => Cell::from(clean(&k.owner)),
                    Column::Env => {
                        let e = clean(k.environment.as_deref().unwrap_or("-"));
                        if k.is_production() {
                            Cell::from(e).style(t.production)
                        } else {
                            Cell::from(e)
                        }
                    }
                    Column::Status => {
                        let st = match k.status {
                            KeyStatus::Active => t.good,
                            KeyStatus::Inactive => t.stale,
                            KeyStatus::Revoked | KeyStatus::Expired => t.dim,
                        };
                        if expiring {
                            Cell::from("expiring").style(t.expiring)
                        } else {
                            Cell::from(k.status.as_str()).style(st)
                        }
                    }
                    Column::Age => {
                        Cell::from(k.created.map(|c| short_age(now - c)).unwrap_or("-".into()))
                    }
                    Column::LastUsed => {
                        let c = Cell::from(ago(now, k.last_used));
                        if stale {
                            c.style(t.stale)
                        } else {
                            c
                        }
                    }
                    Column::Scopes => Cell::from(k.scopes.len().to_string()),
                    Column::Findings => match r.worst_severity {
                        Some(sev) if r.open_findings > 0 => Cell::from(format!(
                            "{} {}",
                            if wide {
                                sev.as_str()
                            } else {
                                &sev.as_str()[..4.min(sev.as_str().len())]
                            },
                            r.open_findings
                        ))
                        .style(severity_style(state, sev)),
                        _ => Cell::from(""),
                    },
                };
                cells.push(cell);
            }
            let mut row = Row::new(cells);
            if pos == cur.selected {
                row = row.style(t.selected);
            } else if k.status == KeyStatus::Revoked {
                row = row.style(t.dim);
            } else if stale {
                row = row.style(t.stale);
            }
            row
        });
    let mut widths = vec![Constraint::Length(1)];
    widths.extend(columns.iter().map(|c| c.2));
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(t.header))
        .column_spacing(1)
        .block(b);
    f.render_widget(table, area);
}

fn kv<'a>(state: &State, k: &'a str, v: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{k:<12}"), state.theme.dim),
        Span::raw(v),
    ])
}

fn render_detail(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let Some(d) = &state.detail else {
        f.render_widget(
            Paragraph::new(s::LOADING)
                .style(t.dim)
                .block(block(state, " detail ")),
            area,
        );
        return;
    };
    let k = &d.key.key;
    let now = state.now;
    // The prefix line only where there is height to spare.
    let meta_height = if area.height >= 30 { 10 } else { 9 };
    let [top, spark, rest] = Layout::vertical([
        Constraint::Length(meta_height),
        Constraint::Length(4),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [meta, scopes] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);

    let env = clean(k.environment.as_deref().unwrap_or("-"));
    let mut env_line = kv(state, "environment", env);
    if k.is_production() {
        env_line = env_line.style(t.production);
    }
    let mut status = k.status.as_str().to_string();
    if is_expiring(k, now) {
        status.push_str(" (expiring)");
    }
    if is_stale(k, now) {
        status.push_str(" (stale)");
    }
    let created = k
        .created
        .map(|c| format!("{} ago", short_age(now - c)))
        .unwrap_or("-".into());
    let expires = k
        .expires
        .map(|e| {
            if e > now {
                format!("in {}", short_age(e - now))
            } else {
                format!("{} ago", short_age(now - e))
            }
        })
        .unwrap_or("never".into());
    // Label column 12, borders 2.
    let value_width = meta.width.saturating_sub(14) as usize;
    let (baseline, baseline_style) = match &d.baseline {
        Ok(b) => (
            s::baseline(b, value_width >= 50),
            match b {
                BaselineStatus::Ready { .. } => t.good,
                BaselineStatus::Learning { .. } => t.stale,
                BaselineStatus::NoHistory => t.dim,
            },
        ),
        Err(e) => (s::baseline_unknown(&clean(e)), t.bad),
    };
    let lines = vec![
        kv(
            state,
            "id",
            format!("{} / {}", clean(&k.provider), clean(&k.id)),
        ),
        kv(state, "owner", clean(&k.owner)),
        env_line,
        kv(state, "status", status),
        Line::from(vec![
            Span::styled(format!("{:<12}", "baseline"), t.dim),
            Span::styled(baseline, baseline_style),
        ]),
        kv(state, "created", format!("{created} · expires {expires}")),
        kv(state, "last used", ago(now, k.last_used)),
        kv(
            state,
            "prefix",
            format!("{} {}", clean(&k.prefix), clean(&k.fingerprint)),
        ),
    ];
    f.render_widget(
        Paragraph::new(lines).block(block(state, format!(" {} ", clean(&k.name)))),
        meta,
    );

    // Least privilege at a glance: every granted scope with its use in the window.
    let mut scope_lines = Vec::new();
    for g in &k.scopes {
        let used = d
            .activity
            .scopes_used
            .iter()
            .find(|(u, _)| u == g)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        if used > 0 {
            scope_lines.push(Line::from(vec![
                Span::styled("✓ ", t.good),
                Span::raw(format!("{} ", clean(g))),
                Span::styled(format!("{used}"), t.dim),
            ]));
        } else {
            scope_lines.push(Line::from(vec![
                Span::styled("✗ ", t.stale),
                Span::styled(format!("{} unused", clean(g)), t.stale),
            ]));
        }
    }
    for (u, n) in &d.activity.scopes_used {
        if !k.scopes.contains(u) {
            scope_lines.push(Line::from(vec![
                Span::styled("! ", t.bad),
                Span::styled(format!("{} not granted {n}", clean(u)), t.bad),
            ]));
        }
    }
    let used_count = k
        .scopes
        .iter()
        .filter(|g| d.activity.scopes_used.iter().any(|(u, _)| u == *g))
        .count();
    f.render_widget(
        Paragraph::new(scope_lines).block(block(
            state,
            format!(" scopes: {used_count}/{} used in 30d ", k.scopes.len()),
        )),
        scopes,
    );

    let per_day = &d.activity.per_day;
    let data = stretch(per_day, spark.width.saturating_sub(2) as usize);
    f.render_widget(
        Sparkline::default().data(&data).style(t.header).block(
            block(
                state,
                format!(
                    " activity 30d: {} events, {} denied, peak {}/day ",
                    thousands(d.activity.total as usize),
                    thousands(d.activity.denied as usize),
                    per_day.iter().max().copied().unwrap_or(0)
                ),
            )
            .title_bottom(Line::styled(s::AXIS_30_DAYS_AGO, t.dim).left_aligned())
            .title_bottom(Line::styled(s::AXIS_TODAY, t.dim).right_aligned()),
        ),
        spark,
    );

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(rest);
    let mut src = vec![Line::styled("networks", t.header)];
    src.extend(
        d.activity
            .networks
            .iter()
            .map(|(ip, n)| Line::raw(format!("{n:>6} {}", clean(ip)))),
    );
    src.push(Line::styled("user agents", t.header));
    src.extend(
        d.activity
            .agents
            .iter()
            .map(|(ua, n)| Line::raw(format!("{n:>6} {}", clean(ua)))),
    );
    f.render_widget(
        Paragraph::new(src).block(block(state, " sources 30d ")),
        left,
    );

    let mut lines = vec![Line::styled(
        format!("findings ({})", d.findings.len()),
        t.header,
    )];
    for fi in &d.findings {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<8} ", fi.severity.as_str()),
                severity_style(state, fi.severity),
            ),
            Span::raw(format!("{} [{}]", clean(&fi.title), fi.status)),
        ]));
    }
    lines.push(Line::styled(
        format!("journal ({})", d.journal.len()),
        t.header,
    ));
    for j in &d.journal {
        lines.push(Line::raw(format!(
            "{} {} {} {}",
            stamp(j.time),
            clean(&j.action),
            clean(&j.result),
            clean(&j.os_user)
        )));
    }
    lines.push(Line::styled("recent events", t.header));
    for e in &d.events {
        let ev = &e.event;
        lines.push(Line::from(vec![
            Span::raw(format!("{} ", stamp(ev.time))),
            Span::styled(
                format!("{:<7} ", ev.outcome.as_str()),
                if ev.outcome == crate::model::Outcome::Success {
                    t.good
                } else {
                    t.bad
                },
            ),
            Span::raw(format!(
                "{} {}",
                clean(&ev.action),
                clean(ev.source_ip.as_deref().unwrap_or("-"))
            )),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines)
            .scroll((state.detail_scroll, 0))
            .block(block(state, " findings · journal · events ")),
        right,
    );
}

fn render_events(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let [hist, _] =
        Layout::vertical([Constraint::Length(HISTOGRAM_HEIGHT), Constraint::Fill(1)]).areas(area);
    let list = list_area(state).unwrap_or(area);
    let ev = &state.events;
    let total: u64 = ev.per_hour.iter().sum();
    let data = stretch(&ev.per_hour, hist.width.saturating_sub(2) as usize);
    f.render_widget(
        Sparkline::default().data(&data).style(t.header).block(
            block(
                state,
                format!(
                    " {}events per hour, last 24h: {} ",
                    if ev.filter.is_empty() {
                        ""
                    } else {
                        "matching "
                    },
                    thousands(total as usize)
                ),
            )
            .title_bottom(Line::styled(s::AXIS_24_HOURS_AGO, t.dim).left_aligned())
            .title_bottom(Line::styled(s::AXIS_NOW, t.dim).right_aligned()),
        ),
        hist,
    );
    let who = ev
        .key_label
        .as_deref()
        .map(clean)
        .unwrap_or_else(|| s::ALL_KEYS.into());
    let reached = ev.older.map(|(t, _)| stamp(crate::model::from_millis(t)));
    let mut title = format!(
        " events of {who} · {} ",
        s::events_count(
            ev.rows.len(),
            !ev.filter.is_empty(),
            reached.as_deref(),
            ev.loading.is_some(),
        )
    );
    if !ev.query.trim().is_empty() {
        title.push_str(&format!("· /{} ", clean(ev.query.trim())));
    }
    let b = block(state, title);
    if ev.rows.is_empty() {
        let msg = if ev.loading.is_some() || !ev.loaded {
            s::LOADING
        } else if ev.filter.is_empty() {
            s::NO_EVENTS
        } else {
            s::NO_EVENT_MATCH
        };
        f.render_widget(Paragraph::new(msg).style(t.dim).block(b), list);
        return;
    }
    let height = list.height.saturating_sub(3) as usize;
    let cur = ev.cursor;
    let rows = ev
        .rows
        .iter()
        .enumerate()
        .skip(cur.offset)
        .take(height)
        .map(|(pos, r)| {
            let e = &r.event;
            let row = Row::new(vec![
                Cell::from(stamp(e.time)),
                Cell::from(clean(&e.key_id)),
                Cell::from(clean(&e.action)),
                Cell::from(e.outcome.as_str()).style(
                    if e.outcome == crate::model::Outcome::Success {
                        t.good
                    } else {
                        t.bad
                    },
                ),
                Cell::from(clean(e.source_ip.as_deref().unwrap_or("-"))),
                Cell::from(clean(e.user_agent.as_deref().unwrap_or("-"))),
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
            Constraint::Length(if list.width >= 110 { 18 } else { 12 }),
            Constraint::Fill(2),
            Constraint::Length(7),
            Constraint::Length(15),
            Constraint::Fill(if list.width >= 110 { 1 } else { 2 }),
        ],
    )
    .header(
        Row::new([
            "TIME",
            "KEY",
            "ACTION",
            "OUTCOME",
            "SOURCE IP",
            "USER AGENT",
        ])
        .style(t.header),
    )
    .block(b);
    f.render_widget(table, list);
}

/// Spreads `data` over `width` columns for a sparkline, so a chart fills its area: each
/// value gets an equal share of the columns. When a share is 4 columns or more, every
/// value is drawn as a bar of the same width followed by a blank column or two, so
/// neighbouring values read as separate bars; with fewer columns than values, a column
/// shows the largest value it covers.
pub fn stretch(data: &[u64], width: usize) -> Vec<u64> {
    let n = data.len();
    if n == 0 || width == 0 {
        return Vec::new();
    }
    if width < n {
        return (0..width)
            .map(|c| {
                let from = c * n / width;
                let to = ((c + 1) * n / width).clamp(from + 1, n);
                data[from..to].iter().copied().max().unwrap_or(0)
            })
            .collect();
    }
    let share = width / n;
    let bar = if share >= 4 { share - 1 } else { width };
    (0..width)
        .map(|c| {
            let i = c * n / width;
            let start = (i * width).div_ceil(n);
            if c - start < bar {
                data[i]
            } else {
                0
            }
        })
        .collect()
}

fn render_findings(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let list = list_area(state).unwrap_or(area);
    let panel = Rect {
        y: list.y + list.height,
        height: area.height.saturating_sub(list.height),
        ..area
    };
    let open = state
        .findings
        .iter()
        .filter(|f| f.status == crate::model::FindingStatus::Open)
        .count();
    let b = block(
        state,
        format!(" findings {} · {} open ", state.findings.len(), open),
    );
    if state.findings.is_empty() {
        f.render_widget(Paragraph::new(s::NO_FINDINGS).style(t.dim).block(b), list);
        return;
    }
    let height = list.height.saturating_sub(3) as usize;
    let cur = state.findings_cursor;
    let rows = state
        .findings
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
    if let Some(fi) = state.findings.get(cur.selected) {
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

fn render_journal(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let b = block(state, format!(" journal {} entries ", state.journal.len()));
    if state.journal.is_empty() {
        f.render_widget(Paragraph::new(s::NO_JOURNAL).style(t.dim).block(b), area);
        return;
    }
    let height = area.height.saturating_sub(3) as usize;
    let cur = state.journal_cursor;
    let rows = state
        .journal
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

fn render_providers(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let b = block(state, format!(" providers {} ", state.providers.len()));
    if state.providers.is_empty() {
        f.render_widget(Paragraph::new(s::NO_PROVIDERS).style(t.dim).block(b), area);
        return;
    }
    let height = area.height.saturating_sub(3) as usize;
    let cur = state.providers_cursor;
    let rows = state
        .providers
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

fn render_status(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    match &state.mode {
        Mode::Filter => {
            let q = if state.view == View::Events {
                &state.events.query
            } else {
                &state.filter
            };
            let mut spans = vec![
                Span::styled("/", t.key_hint),
                Span::raw(clean(q)),
                Span::styled("█", t.dim),
            ];
            let error = if state.view == View::Events {
                &state.events.filter_error
            } else {
                &state.filter_error
            };
            if let Some(e) = error {
                spans.push(Span::styled(format!("  {}", clean(e)), t.bad));
            }
            f.render_widget(Paragraph::new(Line::from(spans)), area);
            return;
        }
        Mode::Palette => {
            let mut spans = vec![
                Span::styled(":", t.key_hint),
                Span::raw(clean(&state.input)),
                Span::styled("█", t.dim),
            ];
            if !state.completions.is_empty() {
                spans.push(Span::styled(
                    format!("  {}", state.completions.join(" ")),
                    t.dim,
                ));
            }
            f.render_widget(Paragraph::new(Line::from(spans)), area);
            return;
        }
        Mode::Note { status, .. } => {
            let verb = if *status == crate::model::FindingStatus::Acknowledged {
                "acknowledge"
            } else {
                "suppress"
            };
            f.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled(s::note_prompt(verb), t.key_hint),
                    Span::raw(clean(&state.input)),
                    Span::styled("█", t.dim),
                ])),
                area,
            );
            return;
        }
        _ => {}
    }
    if let Some(p) = &state.sync {
        let ratio = if state.syncs_total == 0 {
            0.0
        } else {
            (state.syncs_done as f64 / state.syncs_total as f64).clamp(0.0, 1.0)
        };
        let label = format!(
            "sync {} {:?}: {} keys, {} new events ",
            clean(&p.provider),
            p.phase,
            p.keys,
            p.new_events
        );
        f.render_widget(
            LineGauge::default()
                .ratio(ratio)
                .label(label)
                .filled_style(t.header)
                .unfilled_style(t.dim),
            area,
        );
        return;
    }
    if let Some(m) = &state.message {
        f.render_widget(
            Paragraph::new(clean(&m.text)).style(if m.error { t.bad } else { t.base }),
            area,
        );
    }
}

fn render_hints(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let mut contexts = state.contexts();
    if contexts.contains(&Context::Input) && state.mode == Mode::Filter {
        contexts = vec![Context::Input];
    }
    let mut spans = Vec::new();
    for (key, label) in state.keymap.hints(&contexts, state.write) {
        spans.push(Span::styled(key, t.key_hint));
        spans.push(Span::styled(format!(" {label}  "), t.dim));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn render_help(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let mut lines = Vec::new();
    for (ctx, entries) in state.keymap.help_sections() {
        lines.push(Line::styled(ctx.title(), t.header));
        for (keys, help) in entries {
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<18}"), t.key_hint),
                Span::raw(help),
            ]));
        }
    }
    lines.push(Line::styled(s::EVENTS_FILTER_TITLE, t.header));
    for (term, what) in crate::filter::event::TERMS {
        lines.push(Line::from(vec![
            Span::styled(format!("  {term:<18}"), t.key_hint),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::styled(s::HELP_FOOTER, t.dim));
    let popup = centered(area, area.width.saturating_sub(4).max(20), area.height);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .scroll((state.help_scroll, 0))
            .block(block(state, " help: keys (j/k scroll, esc close) ")),
        popup,
    );
}

fn render_confirm(state: &State, c: &Confirm, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let mut lines = Vec::new();
    let title = match c.kind {
        ConfirmKind::Write => {
            lines.push(Line::raw(s::WRITE_BODY));
            s::WRITE_TITLE.to_string()
        }
        ConfirmKind::KeyOp(_) | ConfirmKind::Rotate { .. } => {
            let verb = match c.kind {
                ConfirmKind::KeyOp(op) => op.as_str(),
                _ => "rotate",
            };
            let mut v = verb.to_string();
            v[..1].make_ascii_uppercase();
            lines.push(Line::styled(s::op_effect(verb), t.bad));
            if let ConfirmKind::Rotate { grace_secs } = c.kind {
                let overlap = c
                    .keys
                    .first()
                    .and_then(|k| state.capabilities.get(&k.key.provider))
                    .is_some_and(|caps| caps.rotate_overlap);
                lines.push(Line::raw(if !overlap {
                    s::ROTATE_ATOMIC.to_string()
                } else if grace_secs > 0 {
                    let until = state.now + chrono::Duration::seconds(grace_secs as i64);
                    s::rotate_grace(grace_secs / 3600, &stamp(until))
                } else {
                    s::ROTATE_NO_GRACE.to_string()
                }));
                if overlap {
                    lines.push(Line::styled(s::ROTATE_GRACE_KEYS, t.dim));
                }
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                format!(
                    "{:<12} {:<22} {:<16} {:<6} {}",
                    "PROVIDER", "KEY", "OWNER", "ENV", "LAST USED"
                ),
                t.header,
            ));
            const SHOWN: usize = 6;
            for r in c.keys.iter().take(SHOWN) {
                let k = &r.key;
                let line = Line::raw(format!(
                    "{:<12} {:<22} {:<16} {:<6} {}",
                    trunc(&clean(&k.provider), 12),
                    trunc(&clean(&k.name), 22),
                    trunc(&clean(&k.owner), 16),
                    trunc(&clean(k.environment.as_deref().unwrap_or("-")), 6),
                    ago(state.now, k.last_used)
                ));
                lines.push(if k.is_production() {
                    line.style(t.production)
                } else {
                    line
                });
                lines.push(Line::styled(format!("  id {}", clean(&k.id)), t.dim));
            }
            if c.keys.len() > SHOWN {
                lines.push(Line::raw(format!("… and {} more", c.keys.len() - SHOWN)));
            }
            s::confirm_title(&v, c.keys.len())
        }
    };
    lines.push(Line::raw(""));
    if let Some(e) = &c.expected {
        lines.push(Line::from(vec![
            Span::styled(
                s::confirm_prompt(&clean(e), c.expected_is_count),
                t.key_hint,
            ),
            Span::raw(clean(&c.typed)),
            Span::styled("█", t.dim),
        ]));
        lines.push(Line::raw(""));
    }
    let cancel = if c.on_confirm {
        t.dim
    } else {
        t.selected.add_modifier(Modifier::BOLD)
    };
    let confirm = if !c.armed() {
        t.dim.add_modifier(Modifier::CROSSED_OUT)
    } else if c.on_confirm {
        t.badge_rw
    } else {
        t.base
    };
    lines.push(Line::from(vec![
        Span::raw("      "),
        Span::styled(format!("[ {} ]", s::CANCEL), cancel),
        Span::raw("    "),
        Span::styled(format!("[ {} ]", s::CONFIRM), confirm),
    ]));
    let width = area.width.saturating_sub(4).min(80);
    let height = (lines.len() as u16 + 4).min(area.height);
    let popup = centered(area, width, height);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(state, title).border_style(t.bad)),
        popup,
    );
}

fn render_secret(state: &State, d: &SecretDialog, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let r = &d.rotated;
    let row = |label: &str, value: String| {
        Line::from(vec![
            Span::styled(format!("{label:<10}"), t.header),
            Span::raw(value),
        ])
    };
    let grace = match r.grace_until {
        Some(g) => format!("old key works until {} ({})", stamp(g), {
            let left = g - state.now;
            if left > chrono::Duration::zero() {
                format!("in {}", short_age(left))
            } else {
                "over".to_string()
            }
        }),
        None => "none: the old key stopped working".to_string(),
    };
    let secret = if d.revealed {
        Span::styled(r.secret.expose(), t.bad.add_modifier(Modifier::BOLD))
    } else {
        Span::styled(
            s::secret_masked(&clean(&r.secret.display_prefix())),
            t.key_hint,
        )
    };
    let mut lines = vec![
        row("provider", clean(&r.key.provider)),
        row(
            "old key",
            format!("{} ({})", clean(&r.key.name), clean(&r.key.id)),
        ),
        row("new key", clean(&r.new_key_id)),
        row("grace", grace),
        row("workflow", format!("#{}", r.workflow)),
        Line::raw(""),
        Line::from(vec![
            Span::styled(format!("{:<10}", "secret"), t.header),
            secret,
        ]),
        Line::raw(""),
        Line::styled(s::SECRET_WARNING, t.bad),
        Line::styled(s::SECRET_KEYS, t.dim),
    ];
    if let Some(n) = &r.note {
        lines.push(Line::styled(clean(n), t.bad));
    }
    let width = area.width.saturating_sub(4).min(80);
    let height = (lines.len() as u16 + 2).min(area.height);
    let popup = centered(area, width, height);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(state, s::SECRET_TITLE).border_style(t.bad)),
        popup,
    );
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::stretch;

    #[test]
    fn stretching_fills_the_width_and_keeps_the_order_and_the_peak() {
        let days: Vec<u64> = (1..=30).collect();
        for width in [30, 78, 118, 198] {
            let out = stretch(&days, width);
            assert_eq!(out.len(), width);
            assert_eq!(out.iter().max(), Some(&30));
            // Every day appears, in order, each over an equal share (±1) of the columns.
            let mut spans = Vec::new();
            for v in out.iter().filter(|v| **v > 0) {
                match spans.last_mut() {
                    Some((d, n)) if d == v => *n += 1,
                    _ => spans.push((*v, 1usize)),
                }
            }
            assert_eq!(spans.iter().map(|s| s.0).collect::<Vec<_>>(), days);
            let (lo, hi) = (
                spans.iter().map(|s| s.1).min().unwrap(),
                spans.iter().map(|s| s.1).max().unwrap(),
            );
            if width / days.len() >= 4 {
                assert_eq!(lo, hi, "uneven bars at {width}: {spans:?}");
            } else {
                assert!(hi - lo <= 1, "uneven bars at {width}: {spans:?}");
            }
        }
        // 198 columns for 30 days: bars of 5 with one or two blank columns after each.
        let wide = stretch(&days, 198);
        assert_eq!(wide[197], 0);
        assert_eq!(wide.iter().filter(|v| **v == 0).count(), 198 - 5 * 30);
        assert_eq!(&wide[..8], [1, 1, 1, 1, 1, 0, 0, 2]);
        // Fewer columns than values: the peak of the values each column covers.
        assert_eq!(stretch(&[1, 9, 2, 3, 8, 1], 3), [9, 3, 8]);
        assert_eq!(stretch(&[5, 1, 7], 2), [5, 7]);
        assert!(stretch(&[], 10).is_empty());
    }
}
