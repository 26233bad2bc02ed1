//! The keys view: one table of every provider's keys, with the fuzzy filter, sort and
//! marks; and its export to a file (run by the runner).

use super::{ago, block, clean, is_expiring, is_stale, severity_style, thousands, Cursor};
use crate::model::KeyStatus;
use crate::store::KeyRow;
use crate::tui::action::{Action, Column, Effect, ExportFormat, FilterJob, Sort, View};
use crate::tui::state::{Mode, State};
use crate::tui::strings as s;
use crate::when::short_age;
use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

/// Keys read ahead of the whole list, to fill the first screen.
pub const KEYS_HEAD: usize = 300;

/// The keys view: the whole list, what the filter shows of it, marks and sort.
#[derive(Debug, Clone, Default)]
pub struct KeysView {
    /// Every cached key.
    pub rows: Arc<Vec<KeyRow>>,
    /// Indices into `rows` the filter shows, in display order.
    pub visible: Arc<Vec<usize>>,
    pub loaded: bool,
    /// While only the first keys are shown (the whole list is loading): how many in all.
    pub preview: Option<usize>,
    pub cursor: Cursor,
    /// Where each key is in `rows`, by cache handle, so other views can name a key.
    by_ref: Arc<HashMap<i64, usize>>,
    /// ... and by a hash of (provider, provider id); a hit is checked against the row.
    by_id: Arc<HashMap<u64, usize>>,
    pub(crate) selected_ref: Option<i64>,
    pub marked: BTreeSet<i64>,
    /// The filter as typed.
    pub filter: String,
    /// Why the typed filter does not parse (the previous result stays).
    pub filter_error: Option<String>,
    /// The query that produced `visible`.
    pub(crate) applied_filter: String,
    /// `visible` belongs to the current `rows` (a narrowing run may start from it).
    pub(crate) base_valid: bool,
    /// A reloaded key list waiting for its first filter run (then it replaces `rows`).
    pub(crate) incoming: Option<Arc<Vec<KeyRow>>>,
    pub filter_generation: u64,
    pub filter_pending: bool,
    pub sort: Sort,
}

fn id_hash(provider: &str, id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (provider, id).hash(&mut h);
    h.finish()
}

impl KeysView {
    /// Rebuilds the lookups after `rows` changed.
    fn reindex(&mut self) {
        let mut by_ref = HashMap::with_capacity(self.rows.len());
        let mut by_id = HashMap::with_capacity(self.rows.len());
        for (i, k) in self.rows.iter().enumerate() {
            by_ref.insert(k.key_ref, i);
            by_id.insert(id_hash(&k.key.provider, &k.key.id), i);
        }
        self.by_ref = Arc::new(by_ref);
        self.by_id = Arc::new(by_id);
    }

    /// The cached key with this handle, if the list holds it.
    pub fn by_ref(&self, key_ref: i64) -> Option<&KeyRow> {
        self.by_ref.get(&key_ref).and_then(|i| self.rows.get(*i))
    }

    /// The cached key of this provider and provider id, if the list holds it.
    pub fn by_id(&self, provider: &str, id: &str) -> Option<&KeyRow> {
        self.by_id
            .get(&id_hash(provider, id))
            .and_then(|i| self.rows.get(*i))
            .filter(|k| k.key.provider == provider && k.key.id == id)
    }
}

impl State {
    /// The selected key of the keys view.
    pub fn selected_key(&self) -> Option<&KeyRow> {
        self.keys
            .visible
            .get(self.keys.cursor.selected)
            .and_then(|i| self.keys.rows.get(*i))
    }

    /// Number of keys the filter hides.
    pub fn hidden(&self) -> usize {
        self.keys.rows.len().saturating_sub(self.keys.visible.len())
    }

    pub(crate) fn refilter(&mut self) -> Vec<Effect> {
        if let Err(e) = crate::filter::Filter::parse(&self.keys.filter) {
            self.keys.filter_error = Some(e);
            return Vec::new();
        }
        self.keys.filter_error = None;
        self.keys.filter_generation += 1;
        self.keys.filter_pending = true;
        let base = (self.keys.base_valid
            && crate::tui::search::narrows(&self.keys.applied_filter, &self.keys.filter))
        .then(|| self.keys.visible.clone());
        vec![Effect::Filter(FilterJob {
            generation: self.keys.filter_generation,
            query: self.keys.filter.clone(),
            sort: self.keys.sort,
            keys: self
                .keys
                .incoming
                .clone()
                .unwrap_or_else(|| self.keys.rows.clone()),
            base,
            now: self.now,
        })]
    }

    pub(crate) fn targets(&self) -> Vec<KeyRow> {
        if !self.keys.marked.is_empty() && self.view == View::Keys {
            return self
                .keys
                .rows
                .iter()
                .filter(|k| self.keys.marked.contains(&k.key_ref))
                .cloned()
                .collect();
        }
        match self.view {
            View::Keys => self.selected_key().cloned().into_iter().collect(),
            View::Detail => self
                .detail
                .data
                .as_ref()
                .map(|d| d.key.clone())
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Applies the actions of the keys view: marks, sort, filter, loaded lists, export.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::ToggleMark => {
            if let Some(k) = st.selected_key().map(|k| k.key_ref) {
                if !st.keys.marked.remove(&k) {
                    st.keys.marked.insert(k);
                }
                return st.move_selection(1);
            }
            Vec::new()
        }
        Action::ClearMarks => {
            st.keys.marked.clear();
            Vec::new()
        }
        Action::CycleSort => {
            st.keys.sort = crate::tui::search::next_sort(st.keys.sort);
            st.refilter()
        }
        Action::ReverseSort => {
            st.keys.sort.reverse = !st.keys.sort.reverse;
            st.refilter()
        }
        Action::StartFilter => {
            st.mode = Mode::Filter;
            if st.view != View::Keys && st.view != View::Events {
                st.view = View::Keys;
            }
            Vec::new()
        }
        Action::ClearFilter => {
            st.keys.filter.clear();
            st.refilter()
        }
        Action::Input(c) => {
            st.keys.filter.push(c);
            st.refilter()
        }
        Action::InputBackspace => {
            st.keys.filter.pop();
            st.refilter()
        }
        Action::Export(fmt) => {
            let rows: Vec<KeyRow> = st
                .keys
                .visible
                .iter()
                .filter_map(|i| st.keys.rows.get(*i).cloned())
                .collect();
            vec![Effect::Export(fmt, rows)]
        }
        Action::KeysPreviewed(keys, total) => {
            // Only before the first whole list, and only while the table shows the
            // list order (no filter, no sort).
            if st.keys.loaded || !st.keys.filter.is_empty() || st.keys.sort != Sort::default() {
                return Vec::new();
            }
            st.keys.rows = keys;
            st.keys.reindex();
            st.keys.preview = Some(total);
            st.keys.visible = Arc::new((0..st.keys.rows.len()).collect());
            st.keys.base_valid = false;
            let h = st.page_height();
            st.keys.cursor.fit(st.keys.visible.len(), h);
            st.keys.selected_ref = st.selected_key().map(|k| k.key_ref);
            Vec::new()
        }
        Action::KeysLoaded(keys) => {
            if st.frozen && st.keys.loaded {
                st.held_keys = Some(keys);
                return Vec::new();
            }
            st.keys.loaded = true;
            st.keys.preview = None;
            st.keys.applied_filter = String::new();
            st.keys.base_valid = false;
            st.keys.incoming = Some(keys);
            let fx = st.refilter();
            if fx.is_empty() {
                // The typed filter does not parse: show everything meanwhile.
                if let Some(k) = st.keys.incoming.take() {
                    st.keys.rows = k;
                    st.keys.reindex();
                }
                st.keys.visible = Arc::new((0..st.keys.rows.len()).collect());
            }
            fx
        }
        Action::FilterApplied(generation, visible) => {
            if generation != st.keys.filter_generation {
                return Vec::new();
            }
            st.keys.filter_pending = false;
            if let Some(k) = st.keys.incoming.take() {
                st.keys.rows = k;
                st.keys.reindex();
                let live: std::collections::HashSet<i64> =
                    st.keys.rows.iter().map(|k| k.key_ref).collect();
                st.keys.marked.retain(|k| live.contains(k));
            }
            st.keys.applied_filter = st.keys.filter.clone();
            st.keys.base_valid = true;
            st.keys.visible = visible;
            // Keep the selection on the same key when it is still shown.
            if let Some(r) = st.keys.selected_ref {
                if let Some(pos) = st
                    .keys
                    .visible
                    .iter()
                    .position(|i| st.keys.rows.get(*i).is_some_and(|k| k.key_ref == r))
                {
                    st.keys.cursor.selected = pos;
                }
            }
            let h = st.page_height();
            st.keys.cursor.fit(st.keys.visible.len(), h);
            if st.keys.filter.is_empty() || st.keys.selected_ref.is_none() {
                st.keys.selected_ref = st.selected_key().map(|k| k.key_ref);
            }
            Vec::new()
        }
        Action::ExportFinished(r) => {
            match r {
                Ok(p) => st.say(format!("exported to {}", p.display())),
                Err(e) => st.fail(format!("export failed: {e}")),
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The column the keys table is sorted by, for the header.
pub fn sort_label(s: Sort) -> String {
    match s.column {
        None => {
            if s.reverse {
                "rank ↑".into()
            } else {
                "rank".into()
            }
        }
        Some(c) => format!(
            "{} {}",
            c.title().to_lowercase(),
            if s.reverse { "↑" } else { "↓" }
        ),
    }
}

pub(super) fn render(state: &State, f: &mut Frame, area: Rect) {
    let t = &state.theme;
    let wide = area.width >= 110;
    let mut title = format!(
        " keys {} of {} · sort {} ",
        thousands(state.keys.visible.len()),
        thousands(state.keys.preview.unwrap_or(state.keys.rows.len())),
        sort_label(state.keys.sort)
    );
    if state.keys.preview.is_some() {
        title.push_str(&format!("· {} ", s::LOADING_REST));
    }
    if !state.keys.marked.is_empty() {
        title.push_str(&format!("· {} marked ", state.keys.marked.len()));
    }
    if !state.keys.filter.is_empty() {
        title.push_str(&format!("· /{} ", clean(&state.keys.filter)));
    }
    let b = block(state, title);
    if state.keys.rows.is_empty() || state.keys.visible.is_empty() {
        let msg = if state.keys.rows.is_empty() && !state.keys.loaded {
            s::LOADING
        } else if state.keys.rows.is_empty() && state.import.is_some() {
            s::NO_KEYS_IMPORTING
        } else if state.keys.rows.is_empty() {
            s::NO_KEYS
        } else if state.keys.filter_pending {
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
        let mark = match state.keys.sort.column {
            Some(sc) if sc == *c => {
                if state.keys.sort.reverse {
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
    let cur = state.keys.cursor;
    let now = state.now;
    let rows = state
        .keys
        .visible
        .iter()
        .enumerate()
        .skip(cur.offset)
        .take(height)
        .filter_map(|(pos, i)| state.keys.rows.get(*i).map(|r| (pos, r)))
        .map(|(pos, r)| {
            let k = &r.key;
            let stale = is_stale(k, now);
            let expiring = is_expiring(k, now);
            let marked = state.keys.marked.contains(&r.key_ref);
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

/// Writes keys to `keyaudit-keys-<time>.<ext>` in `dir` (the TUI passes the current
/// directory), mode 0600; never overwrites.
pub fn export(
    dir: &std::path::Path,
    fmt: ExportFormat,
    rows: &[crate::store::KeyRow],
    now: DateTime<Utc>,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let ext = match fmt {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    let path = dir.join(format!(
        "keyaudit-keys-{}.{ext}",
        now.format("%Y%m%dT%H%M%S")
    ));
    let file = crate::fsutil::create_private_file(&path, false)?;
    let mut out = std::io::BufWriter::new(file);
    match fmt {
        ExportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, rows)?;
            writeln!(out)?;
        }
        ExportFormat::Csv => {
            crate::export::write_keys_csv(&mut out, rows)?;
        }
    }
    out.flush()?;
    Ok(path)
}
