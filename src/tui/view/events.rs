//! The events view: a filtered walk through every cached event, newest first, read page
//! by page as the operator scrolls, with a per-hour histogram; and the reads that serve
//! it (run by the runner).

use super::{block, clean, list_area, stamp, stretch, thousands, Cursor, HISTOGRAM_HEIGHT};
use crate::filter::event::EventFilter;
use crate::model::{to_millis, Millis, Outcome};
use crate::store::{EventQuery, EventRow, Store, StoreError};
use crate::tui::action::{Action, Effect, EventsPage, EventsRequest, View, Walk};
use crate::tui::state::State;
use crate::tui::strings as s;
use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;

/// Events one read of the events view may examine: a filter that matches rarely walks
/// the cache in steps of this many events, each a separate, cancellable read.
pub const EVENTS_SCAN: usize = 50_000;

/// Events one read of the events view returns at most.
pub const EVENTS_PAGE: usize = 1000;

/// Events the events view holds at most; scrolling further drops the far end and reads
/// it again when the operator scrolls back.
pub const EVENTS_KEPT: usize = 5000;

/// The events view: a window of a filtered walk through every cached event, newest
/// first, read page by page as the operator scrolls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsState {
    /// Only the events of this key.
    pub key_ref: Option<i64>,
    /// The name of that key, for the title.
    pub key_label: Option<String>,
    /// The filter as typed: `ip:`, `action:`, `outcome:` terms and words.
    pub query: String,
    /// Why the typed filter does not parse (the previous result stays).
    pub filter_error: Option<String>,
    /// The filter of the walk (the last typed filter that parsed).
    pub filter: EventFilter,
    /// The shown window of matching events, newest first.
    pub rows: Vec<EventRow>,
    /// Events per hour over the last 24 hours of the scope that pass the filter, oldest
    /// first.
    pub per_hour: Vec<u64>,
    /// Where the walk continues towards older events (`None`: it reached the oldest).
    pub older: Option<(Millis, i64)>,
    /// Where it continues towards newer ones (`None`: the window starts at the newest).
    pub newer: Option<(Millis, i64)>,
    /// Increases with every new filter or scope; older reads are dropped.
    pub generation: u64,
    /// The read in flight, if any.
    pub loading: Option<Walk>,
    /// A first page of some walk arrived (`rows` is a result, not a placeholder).
    pub loaded: bool,
    pub cursor: Cursor,
}

fn anchor(r: &EventRow) -> (Millis, i64) {
    (to_millis(r.event.time), r.row_id)
}

impl State {
    /// Asks for one page of the events walk in the direction `walk`.
    pub(crate) fn events_read(&mut self, walk: Walk) -> Vec<Effect> {
        let e = &mut self.events;
        let mut query = EventQuery {
            key_ref: e.key_ref,
            newest_first: walk != Walk::Newer,
            limit: Some(EVENTS_PAGE),
            ..Default::default()
        };
        e.filter.apply(&mut query);
        match walk {
            Walk::First => {}
            Walk::Older => query.before = e.older,
            Walk::Newer => query.after = e.newer,
        }
        e.loading = Some(walk);
        vec![Effect::LoadEvents(EventsRequest {
            generation: e.generation,
            walk,
            query,
            histogram: (walk == Walk::First).then_some(self.now),
        })]
    }

    /// Starts a new walk from the newest event (new filter or scope). What is shown stays
    /// until its first page arrives; reads of older walks are dropped.
    pub(crate) fn events_restart(&mut self) -> Vec<Effect> {
        self.events.generation += 1;
        self.events_read(Walk::First)
    }

    /// Reads the events again from the newest, unless that would move the operator: only
    /// when nothing is shown yet or the selection is on the newest event.
    pub(crate) fn events_reload(&mut self) -> Vec<Effect> {
        let e = &self.events;
        if e.loaded && (e.cursor.selected > 0 || e.newer.is_some()) {
            return Vec::new();
        }
        self.events_restart()
    }

    /// Reads the next page in the direction the selection is heading, when it comes
    /// within two screens of the end of what is shown.
    pub(crate) fn events_follow(&mut self) -> Vec<Effect> {
        if self.view != View::Events || self.events.loading.is_some() || !self.events.loaded {
            return Vec::new();
        }
        let h = self.page_height();
        let e = &self.events;
        if e.older.is_some() && e.cursor.selected + 2 * h >= e.rows.len() {
            return self.events_read(Walk::Older);
        }
        if e.newer.is_some() && e.cursor.selected < h {
            return self.events_read(Walk::Newer);
        }
        Vec::new()
    }

    /// The typed events filter changed: parse it and, when it means something new, start
    /// a new walk.
    pub(crate) fn events_refilter(&mut self) -> Vec<Effect> {
        match EventFilter::parse(&self.events.query) {
            Err(e) => {
                self.events.filter_error = Some(e);
                Vec::new()
            }
            Ok(f) => {
                self.events.filter_error = None;
                if f == self.events.filter && self.events.loaded {
                    return Vec::new();
                }
                self.events.filter = f;
                self.events_restart()
            }
        }
    }

    /// A page of the current walk arrived.
    pub(crate) fn events_loaded(&mut self, walk: Walk, p: EventsPage) -> Vec<Effect> {
        let h = self.page_height();
        let e = &mut self.events;
        e.loading = None;
        if let Some(per_hour) = p.per_hour {
            e.per_hour = per_hour;
        }
        let page = p.page;
        match walk {
            Walk::First => {
                e.loaded = true;
                e.rows = page.rows;
                e.older = page.resume;
                e.newer = None;
                e.cursor = Cursor::default();
            }
            Walk::Older => {
                e.older = page.resume;
                e.rows.extend(page.rows);
                if e.rows.len() > EVENTS_KEPT {
                    let gone = e.rows.len() - EVENTS_KEPT;
                    e.rows.drain(..gone);
                    e.newer = e.rows.first().map(anchor);
                    e.cursor.selected = e.cursor.selected.saturating_sub(gone);
                    e.cursor.offset = e.cursor.offset.saturating_sub(gone);
                }
            }
            Walk::Newer => {
                let n = page.rows.len();
                e.newer = page.resume;
                let below = std::mem::replace(&mut e.rows, page.rows);
                e.rows.extend(below);
                e.cursor.selected += n;
                e.cursor.offset += n;
                if e.rows.len() > EVENTS_KEPT {
                    e.rows.truncate(EVENTS_KEPT);
                    e.older = e.rows.last().map(anchor);
                }
            }
        }
        e.cursor.fit(e.rows.len(), h);
        // Keep reading while the screen is not full (a rare match takes many pages).
        self.events_follow()
    }

    /// The selected event of the events view.
    pub fn selected_event(&self) -> Option<&EventRow> {
        self.events.rows.get(self.events.cursor.selected)
    }
}

/// Applies the actions of the events view: scope, filter, pages and histogram.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::ShowKeyEvents => {
            let key = match st.view {
                View::Keys => st.selected_key().cloned(),
                View::Detail => st.detail.data.as_ref().map(|d| d.key.clone()),
                _ => None,
            };
            // A key opened from an exposure finding shows its events since the exposure.
            let since = (st.view == View::Detail)
                .then_some(st.detail.since)
                .flatten();
            st.events.key_ref = key.as_ref().map(|k| k.key_ref);
            st.events.key_label = key.map(|k| k.key.name);
            if let Some(t) = since {
                st.events.query = crate::filter::event::since_term(t);
                if let Ok(f) = EventFilter::parse(&st.events.query) {
                    st.events.filter = f;
                    st.events.filter_error = None;
                }
            }
            if st.view != View::Events {
                st.previous_view = st.view;
            }
            st.view = View::Events;
            st.events_restart()
        }
        Action::CycleOutcome => {
            // The typed filter's outcome, or the applied one while it does not parse.
            let current = EventFilter::parse(&st.events.query)
                .map(|f| f.outcome)
                .unwrap_or(st.events.filter.outcome);
            let next = crate::filter::event::next_outcome(current);
            st.events.query = crate::filter::event::with_outcome(&st.events.query, next);
            st.events_refilter()
        }
        Action::ClearFilter => {
            st.events.query.clear();
            st.events_refilter()
        }
        Action::Input(c) => {
            st.events.query.push(c);
            st.events_refilter()
        }
        Action::InputBackspace => {
            st.events.query.pop();
            st.events_refilter()
        }
        Action::EventsLoaded(generation, walk, page) => {
            if generation != st.events.generation {
                return Vec::new();
            }
            st.events_loaded(walk, *page)
        }
        Action::EventsSuperseded(_) => Vec::new(),
        Action::HistogramLoaded(generation, per_hour) => {
            if generation == st.events.generation {
                st.events.per_hour = per_hour;
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

pub(super) fn render(state: &State, f: &mut Frame, area: Rect) {
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
                Cell::from(match st_key(state, r.key_ref) {
                    Some(label) => label,
                    None => clean(&e.key_id),
                }),
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
            Constraint::Length(if list.width >= 110 { 30 } else { 18 }),
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

/// Reads one page of the events view's walk (and, when asked, the histogram of the
/// events that pass the same filter);
/// `None` when `keep_going` said a newer request replaced this one.
pub fn load_events_page(
    s: &Store,
    req: &EventsRequest,
    keep_going: &dyn Fn() -> bool,
) -> Result<Option<EventsPage>, StoreError> {
    let Some(page) = s.event_page(&req.query, EVENTS_SCAN, keep_going)? else {
        return Ok(None);
    };
    let per_hour = match req.histogram {
        Some(now) => match s.matching_per_hour(&req.query, now, 24, keep_going)? {
            Some(counts) => Some(counts),
            None => return Ok(None),
        },
        None => None,
    };
    Ok(Some(EventsPage { page, per_hour }))
}

/// Reads the first page of the events view (newest first, of one key, of one outcome)
/// and the per-hour histogram.
pub fn load_events(
    s: &Store,
    key_ref: Option<i64>,
    outcome: Option<Outcome>,
    now: DateTime<Utc>,
) -> Result<EventsPage, StoreError> {
    let req = EventsRequest {
        generation: 0,
        walk: crate::tui::action::Walk::First,
        query: EventQuery {
            key_ref,
            outcome,
            newest_first: true,
            limit: Some(EVENTS_PAGE),
            ..Default::default()
        },
        histogram: Some(now),
    };
    Ok(load_events_page(s, &req, &|| true)?.unwrap_or_default())
}

/// The name and owner of the key of an event, when the keys list holds it.
fn st_key(state: &State, key_ref: i64) -> Option<String> {
    let k = &state.keys.by_ref(key_ref)?.key;
    match (k.name.is_empty(), k.owner.is_empty()) {
        (false, false) => Some(clean(&format!("{} · {}", k.name, k.owner))),
        (false, true) => Some(clean(&k.name)),
        _ => None,
    }
}
