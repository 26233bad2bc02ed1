//! The views, one module each (its state, the `update` for its actions, its render), and
//! what they share: the screen's layout, the header, status line and hint bar, list
//! cursors and moving between views. Rendering is a pure function of `&State`: only
//! the visible rows are built, and every string that came from a provider or a log is
//! sanitized before it is drawn.

pub mod detail;
pub mod events;
pub mod findings;
pub mod journal;
pub mod keys;
pub mod providers;

use super::action::{Action, Effect, View};
use super::dialog;
use super::keymap::Context;
use super::strings as s;
use crate::model::{Key, KeyStatus, Severity};
use crate::output::sanitize;
use crate::tui::state::{Mode, State};
use crate::when::short_age;
use chrono::{DateTime, Duration, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, LineGauge, Paragraph, Wrap};
use ratatui::Frame;

/// A selection and scroll position in a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub selected: usize,
    pub offset: usize,
}

impl Cursor {
    /// Moves by `delta` rows within `len`, keeping the selection inside `height` rows.
    pub fn move_by(&mut self, delta: isize, len: usize, height: usize) {
        if len == 0 {
            *self = Cursor::default();
            return;
        }
        let target = (self.selected as isize + delta).clamp(0, len as isize - 1);
        self.selected = target as usize;
        self.fit(len, height);
    }

    /// Keeps the selection inside `len` and the visible window of `height` rows.
    pub fn fit(&mut self, len: usize, height: usize) {
        let height = height.max(1);
        if len == 0 {
            *self = Cursor::default();
            return;
        }
        self.selected = self.selected.min(len - 1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(len.saturating_sub(height));
    }
}

impl State {
    pub(crate) fn view_reload(&mut self) -> Vec<Effect> {
        match self.view {
            View::Keys => Vec::new(),
            View::Detail => self
                .detail
                .key_ref
                .map(|k| vec![Effect::LoadDetail(k, self.now, self.detail.since)])
                .unwrap_or_default(),
            View::Events => self.events_reload(),
            View::Findings => vec![Effect::LoadFindings],
            View::Journal => vec![Effect::LoadJournal],
            View::Providers => vec![Effect::LoadProviders],
        }
    }

    pub(crate) fn show(&mut self, v: View) -> Vec<Effect> {
        if v != self.view {
            self.previous_view = self.view;
        }
        self.view = v;
        self.view_reload()
    }

    /// Moves the selection of the current view; the events view may read a page.
    pub(crate) fn move_selection(&mut self, delta: isize) -> Vec<Effect> {
        let h = self.page_height();
        match self.view {
            View::Keys => {
                self.keys.cursor.move_by(delta, self.keys.visible.len(), h);
                self.keys.selected_ref = self.selected_key().map(|k| k.key_ref);
            }
            View::Detail => {
                self.detail.scroll =
                    (self.detail.scroll as isize + delta).clamp(0, u16::MAX as isize) as u16;
            }
            View::Events => {
                self.events.cursor.move_by(delta, self.events.rows.len(), h);
                return self.events_follow();
            }
            View::Findings => self
                .findings
                .cursor
                .move_by(delta, self.findings.lines.len(), h),
            View::Journal => self
                .journal
                .cursor
                .move_by(delta, self.journal.rows.len(), h),
            View::Providers => self
                .providers
                .cursor
                .move_by(delta, self.providers.rows.len(), h),
        }
        Vec::new()
    }

    pub(crate) fn key_ref_of(&self, provider: &str, id: &str) -> Option<i64> {
        self.keys
            .rows
            .iter()
            .find(|k| k.key.provider == provider && k.key.id == id)
            .map(|k| k.key_ref)
    }

    pub(crate) fn open_detail(&mut self, key_ref: Option<i64>) -> Vec<Effect> {
        let Some(k) = key_ref else {
            self.fail(s::NOTHING_SELECTED);
            return Vec::new();
        };
        if self.detail.key_ref != Some(k)
            || self
                .detail
                .data
                .as_ref()
                .is_some_and(|d| d.since != self.detail.since)
        {
            self.detail.data = None;
            self.detail.scroll = 0;
        }
        self.detail.key_ref = Some(k);
        self.show(View::Detail)
    }
}

/// Applies the actions every view shares: quitting, switching views, moving the
/// selection, the terminal size, the clock.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            st.quit = true;
            Vec::new()
        }
        Action::ShowView(v) => {
            st.mode = Mode::Normal;
            if v == View::Detail && st.detail.key_ref.is_none() {
                let k = st.selected_key().map(|k| k.key_ref);
                return st.open_detail(k);
            }
            st.show(v)
        }
        Action::NextView | Action::PrevView => {
            let i = View::ALL.iter().position(|v| *v == st.view).unwrap_or(0);
            let n = View::ALL.len();
            let mut j = if matches!(action, Action::NextView) {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            if View::ALL[j] == View::Detail && st.detail.key_ref.is_none() {
                j = if matches!(action, Action::NextView) {
                    (j + 1) % n
                } else {
                    (j + n - 1) % n
                };
            }
            st.show(View::ALL[j])
        }
        Action::SelectNext => st.move_selection(1),
        Action::SelectPrev => st.move_selection(-1),
        Action::PageDown => {
            let h = st.page_height() as isize;
            st.move_selection(h)
        }
        Action::PageUp => {
            let h = st.page_height() as isize;
            st.move_selection(-h)
        }
        Action::SelectFirst => {
            // The window no longer starts at the newest event: read from there again.
            if st.view == View::Events && st.events.newer.is_some() {
                return st.events_restart();
            }
            st.move_selection(isize::MIN / 2)
        }
        Action::SelectLast => st.move_selection(isize::MAX / 2),
        Action::ScrollDown => st.move_selection(3),
        Action::ScrollUp => st.move_selection(-3),
        Action::OpenDetail => match st.view {
            View::Keys => {
                let k = st.selected_key().map(|k| k.key_ref);
                st.detail.from_finding = None;
                st.detail.since = None;
                st.open_detail(k)
            }
            View::Events => {
                let k = st.selected_event().map(|r| r.key_ref);
                st.detail.from_finding = None;
                st.detail.since = None;
                st.open_detail(k)
            }
            View::Findings => {
                if st.findings.toggle_group() {
                    let h = st.page_height();
                    st.findings.cursor.fit(st.findings.lines.len(), h);
                    return Vec::new();
                }
                let f = st.findings.selected();
                let k = f.and_then(|f| st.key_ref_of(&f.provider, &f.key_id));
                st.detail.from_finding = f.map(|f| f.id.clone());
                // An exposure finding opens the key with its use since the exposure.
                st.detail.since = f
                    .filter(|f| f.category == crate::model::Category::Exposure)
                    .map(|f| f.first_seen);
                st.open_detail(k)
            }
            _ => Vec::new(),
        },
        Action::Back => {
            if st.view == View::Keys {
                if !st.keys.filter.is_empty() {
                    return st.update(Action::ClearFilter);
                }
                return Vec::new();
            }
            let back = if st.previous_view == st.view {
                View::Keys
            } else {
                st.previous_view
            };
            st.previous_view = View::Keys;
            st.view = back;
            st.view_reload()
        }
        Action::Resize(w, h) => {
            st.size = (w, h);
            let ph = st.page_height();
            st.keys.cursor.fit(st.keys.visible.len(), ph);
            st.events_follow()
        }
        Action::Click(col, row) => {
            if st.mode != Mode::Normal {
                return Vec::new();
            }
            let Some(area) = crate::tui::view::list_area(st) else {
                return Vec::new();
            };
            let first = area.y + 2;
            if col < area.x || col >= area.x + area.width || row < first {
                return Vec::new();
            }
            let offset = match st.view {
                View::Keys => st.keys.cursor.offset,
                View::Events => st.events.cursor.offset,
                View::Findings => st.findings.cursor.offset,
                View::Journal => st.journal.cursor.offset,
                View::Providers => st.providers.cursor.offset,
                View::Detail => return Vec::new(),
            };
            let current = match st.view {
                View::Keys => st.keys.cursor.selected,
                View::Events => st.events.cursor.selected,
                View::Findings => st.findings.cursor.selected,
                View::Journal => st.journal.cursor.selected,
                _ => st.providers.cursor.selected,
            };
            let target = offset + (row - first) as usize;
            st.move_selection(target as isize - current as isize)
        }
        Action::Clock(now) => {
            st.now = now;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The screen's regions.
pub struct Areas {
    pub header: Rect,
    pub body: Rect,
    /// The import's gauge (no height unless an import runs).
    pub gauge: Rect,
    pub status: Rect,
    pub hints: Rect,
}

/// Splits the screen: header, body, the import's gauge while one runs, status line,
/// hint bar.
pub fn layout(state: &State, area: Rect) -> Areas {
    let gauge = u16::from(state.import.is_some());
    let [header, body, gauge, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(gauge),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Areas {
        header,
        body,
        gauge,
        status,
        hints,
    }
}

const HISTOGRAM_HEIGHT: u16 = 5;

const FINDING_PANEL_HEIGHT: u16 = 8;

/// The bordered block of the current view's list (for rendering and mouse clicks).
pub fn list_area(state: &State) -> Option<Rect> {
    let body = layout(state, Rect::new(0, 0, state.size.0, state.size.1)).body;
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

pub(crate) fn clean(t: &str) -> String {
    sanitize(t)
}

pub(crate) fn ago(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => short_age(now - t),
        None => "never".into(),
    }
}

pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.format("%m-%d %H:%M:%S").to_string()
}

pub(crate) fn thousands(n: usize) -> String {
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

pub(crate) fn severity_style(state: &State, s: Severity) -> Style {
    let t = &state.theme;
    match s {
        Severity::Critical => t.critical,
        Severity::High => t.high,
        Severity::Medium => t.medium,
        Severity::Low => t.low,
    }
}

pub(crate) fn block<'a>(state: &State, title: impl Into<Line<'a>>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(state.theme.dim)
        .title(title)
        .title_style(state.theme.title)
}

/// Draws the whole screen.
pub fn render(state: &State, f: &mut Frame) {
    let areas = layout(state, f.area());
    render_header(state, f, areas.header);
    match state.view {
        View::Keys => keys::render(state, f, areas.body),
        View::Detail => detail::render(state, f, areas.body),
        View::Events => events::render(state, f, areas.body),
        View::Findings => findings::render(state, f, areas.body),
        View::Journal => journal::render(state, f, areas.body),
        View::Providers => providers::render(state, f, areas.body),
    }
    if let Some(g) = &state.import {
        crate::tui::import::render(state, g, f, areas.gauge);
    }
    // A message wider than the status line takes the hints' line too, wrapped, so a
    // narrow terminal still shows all of it (`?` lists the keys meanwhile).
    match overflowing_message(state, areas.status.width) {
        Some(m) => f.render_widget(
            Paragraph::new(clean(&m.text))
                .style(if m.error {
                    state.theme.bad
                } else {
                    state.theme.base
                })
                .wrap(Wrap { trim: true }),
            Rect {
                height: areas.status.height + areas.hints.height,
                ..areas.status
            },
        ),
        None => {
            render_status(state, f, areas.status);
            render_hints(state, f, areas.hints);
        }
    }
    if state.mode == Mode::Help {
        dialog::help::render(state, f, areas.body);
    }
    if state.mode == Mode::Rotations {
        dialog::rotations::render(state, f, areas.body);
    }
    if let Some(c) = &state.confirm {
        dialog::confirm::render(state, c, f, f.area());
    }
    if let Some(d) = &state.secret {
        dialog::secret::render(state, d, f, f.area());
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
    if state.hidden() > 0 && state.keys.loaded {
        right.push(Span::styled(
            format!("{} hidden ", thousands(state.hidden())),
            t.marked,
        ));
    }
    if state.frozen {
        right.push(Span::styled(s::BADGE_FROZEN, t.badge_demo));
        right.push(Span::raw(" "));
    }
    if let Some(case) = &state.case {
        right.push(Span::styled(s::badge_case(case), t.badge_demo));
        right.push(Span::raw(" "));
    } else if state.demo {
        right.push(Span::styled(s::BADGE_DEMO, t.badge_demo));
        right.push(Span::raw(" "));
    }
    if let Some((text, bad)) = crate::tui::team::badge(state) {
        right.push(Span::styled(
            format!(" {text} "),
            if bad { t.badge_ro } else { t.badge_demo },
        ));
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

/// The status message, when it is shown alone (no typing, no sync gauge) and is wider
/// than `width`.
fn overflowing_message(state: &State, width: u16) -> Option<&crate::tui::state::Message> {
    let m = state.message.as_ref()?;
    let alone = state.mode == Mode::Normal && state.sync.is_none();
    (alone && clean(&m.text).chars().count() > usize::from(width)).then_some(m)
}

fn render_status(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    match &state.mode {
        Mode::Filter => {
            let q = if state.view == View::Events {
                &state.events.query
            } else {
                &state.keys.filter
            };
            let mut spans = vec![
                Span::styled("/", t.key_hint),
                Span::raw(clean(q)),
                Span::styled("█", t.dim),
            ];
            let error = if state.view == View::Events {
                &state.events.filter_error
            } else {
                &state.keys.filter_error
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
            if !state.palette.completions.is_empty() {
                spans.push(Span::styled(
                    format!("  {}", state.palette.completions.join(" ")),
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
    // Who else is on the team, right-aligned in what the message leaves (the message
    // comes first; the header's TEAM badge still counts them when there is no room).
    let mut area = area;
    if let Some(team) = crate::tui::team::summary(state) {
        let width = area.width as usize;
        let used = state
            .message
            .as_ref()
            .map_or(0, |m| clean(&m.text).chars().count() + 2);
        let room = width.saturating_sub(used).min(width / 2);
        if room >= 12 {
            let text = trunc(&clean(&team), room);
            let w = text.chars().count() as u16;
            let [l, r] =
                Layout::horizontal([Constraint::Fill(1), Constraint::Length(w)]).areas(area);
            f.render_widget(Paragraph::new(text).style(t.dim), r);
            area = l;
        }
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

pub(crate) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub(crate) fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
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
