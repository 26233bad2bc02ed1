//! The workstation's state and `update`, the only place it changes. No IO here: `update`
//! returns effects for the runner.

use super::action::{
    Action, Detail, Effect, EventsPage, EventsRequest, FilterJob, Rotated, Sort, View, Walk,
};
use super::keymap::{chord_of, Command, Context, Keymap};
use super::strings as s;
use super::theme::Theme;
use crate::action::KeyOp;
use crate::filter::event::EventFilter;
use crate::model::{
    to_millis, Finding, FindingStatus, JournalEntry, KeyStatus, Millis, ProviderInfo,
};
use crate::provider::Capabilities;
use crate::store::{EventQuery, EventRow, KeyRow};
use crate::sync::SyncProgress;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, KeyModifiers};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

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

/// What the operator is typing into, if anything.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Keys go to the view.
    Normal,
    /// Typing the filter (`/`).
    Filter,
    /// Typing a command (`:`).
    Palette,
    /// Typing the note of an acknowledge or suppress.
    Note {
        id: String,
        target: String,
        status: FindingStatus,
    },
    /// The help overlay.
    Help,
}

/// What a confirm dialog confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmKind {
    /// An operation on keys at their provider.
    KeyOp(KeyOp),
    /// Rotating one key, with the old key's grace period in seconds (0: none).
    Rotate { grace_secs: u64 },
    /// Unlocking write mode.
    Write,
}

/// The default grace period of a rotation from the workstation: 24 hours.
pub const DEFAULT_ROTATE_GRACE_SECS: u64 = 24 * 3600;

/// The grace periods ↑/↓ step through in the rotate confirm dialog (0: the old key is
/// revoked as soon as the new one is verified).
pub const ROTATE_GRACE_STEPS: [u64; 8] = [
    0,
    3600,
    4 * 3600,
    12 * 3600,
    24 * 3600,
    48 * 3600,
    72 * 3600,
    168 * 3600,
];

/// The dialog that shows a new secret once. Dropping it zeroizes the secret.
#[derive(Debug)]
pub struct SecretDialog {
    pub rotated: Rotated,
    /// The secret is shown in clear (`v`); masked otherwise.
    pub revealed: bool,
}

/// The one confirm dialog of every destructive action.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub kind: ConfirmKind,
    /// The keys it acts on.
    pub keys: Vec<KeyRow>,
    /// Text the operator must type before Confirm is enabled (a key name or a count).
    pub expected: Option<String>,
    /// Whether `expected` is the count of keys (else a key name).
    pub expected_is_count: bool,
    pub typed: String,
    /// Focus on Confirm (it starts on Cancel).
    pub on_confirm: bool,
}

impl Confirm {
    /// True when Confirm may be pressed.
    pub fn armed(&self) -> bool {
        self.expected.as_ref().is_none_or(|e| self.typed == *e)
    }
}

/// A line in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

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

/// Everything the workstation shows. Render functions read it; `update` changes it.
pub struct State {
    /// The clock, injected (renders never read the real clock).
    pub now: DateTime<Utc>,
    pub view: View,
    previous_view: View,
    pub mode: Mode,
    pub confirm: Option<Confirm>,
    /// The new secret of a rotation, until the operator closes the dialog.
    pub secret: Option<SecretDialog>,
    /// A rotation is running.
    pub rotating: bool,
    pub demo: bool,
    /// Actions are unlocked (badge RW).
    pub write: bool,
    /// `:write` is refused (started with `--read-only`).
    pub locked_read_only: bool,
    pub keymap: Arc<Keymap>,
    pub theme: Theme,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    pub quit: bool,

    pub keys: Arc<Vec<KeyRow>>,
    /// Indices into `keys` the filter shows, in display order.
    pub visible: Arc<Vec<usize>>,
    pub keys_loaded: bool,
    /// While only the first keys are shown (the whole list is loading): how many in all.
    pub keys_preview: Option<usize>,
    pub keys_cursor: Cursor,
    selected_ref: Option<i64>,
    pub marked: BTreeSet<i64>,
    /// The filter as typed.
    pub filter: String,
    /// Why the typed filter does not parse (the previous result stays).
    pub filter_error: Option<String>,
    /// The query that produced `visible`.
    applied_filter: String,
    /// `visible` belongs to the current `keys` (a narrowing run may start from it).
    base_valid: bool,
    /// A reloaded key list waiting for its first filter run (then it replaces `keys`).
    incoming: Option<Arc<Vec<KeyRow>>>,
    pub filter_generation: u64,
    pub filter_pending: bool,
    pub sort: Sort,

    pub detail_ref: Option<i64>,
    pub detail: Option<Box<Detail>>,
    pub detail_scroll: u16,

    pub events: EventsState,
    pub findings: Vec<Finding>,
    pub findings_cursor: Cursor,
    pub journal: Vec<JournalEntry>,
    pub journal_cursor: Cursor,
    pub providers: Vec<ProviderInfo>,
    pub providers_cursor: Cursor,
    /// Capabilities by provider name (keys of other providers cannot be acted on).
    pub capabilities: HashMap<String, Capabilities>,

    /// Progress of the running sync.
    pub sync: Option<SyncProgress>,
    pub syncs_done: usize,
    pub syncs_total: usize,
    pub frozen: bool,
    held_keys: Option<Arc<Vec<KeyRow>>>,
    reload_pending: bool,
    pending_ops: usize,

    pub message: Option<Message>,
    /// The text being typed in the palette or a note.
    pub input: String,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    /// Completions of the palette input.
    pub completions: Vec<&'static str>,
    pub help_scroll: u16,
}

/// How the workstation starts.
#[derive(Debug, Clone)]
pub struct Setup {
    pub now: DateTime<Utc>,
    pub demo: bool,
    pub write: bool,
    pub read_only: bool,
    pub keymap: Arc<Keymap>,
    pub theme: Theme,
    /// Providers by name with their capabilities.
    pub capabilities: HashMap<String, Capabilities>,
    pub size: (u16, u16),
}

impl State {
    /// A fresh state; call [`State::start`] for the first effects.
    pub fn new(setup: Setup) -> State {
        State {
            now: setup.now,
            view: View::Keys,
            previous_view: View::Keys,
            mode: Mode::Normal,
            confirm: None,
            secret: None,
            rotating: false,
            demo: setup.demo,
            write: setup.write && !setup.read_only,
            locked_read_only: setup.read_only,
            keymap: setup.keymap,
            theme: setup.theme,
            size: setup.size,
            quit: false,
            keys: Arc::default(),
            visible: Arc::default(),
            keys_loaded: false,
            keys_preview: None,
            keys_cursor: Cursor::default(),
            selected_ref: None,
            marked: BTreeSet::new(),
            filter: String::new(),
            filter_error: None,
            applied_filter: String::new(),
            base_valid: false,
            incoming: None,
            filter_generation: 0,
            filter_pending: false,
            sort: Sort::default(),
            detail_ref: None,
            detail: None,
            detail_scroll: 0,
            events: EventsState::default(),
            findings: Vec::new(),
            findings_cursor: Cursor::default(),
            journal: Vec::new(),
            journal_cursor: Cursor::default(),
            providers: Vec::new(),
            providers_cursor: Cursor::default(),
            capabilities: setup.capabilities,
            sync: None,
            syncs_done: 0,
            syncs_total: 0,
            frozen: false,
            held_keys: None,
            reload_pending: false,
            pending_ops: 0,
            message: None,
            input: String::new(),
            history: Vec::new(),
            history_pos: None,
            completions: Vec::new(),
            help_scroll: 0,
        }
    }

    /// The effects of opening: load the cache, then sync.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut fx = vec![Effect::LoadKeys, Effect::LoadProviders];
        fx.extend(self.update(Action::StartSync));
        fx
    }

    /// The keymap contexts that apply now, most specific first.
    pub fn contexts(&self) -> Vec<Context> {
        if self.secret.is_some() {
            return vec![Context::Secret];
        }
        if self.confirm.is_some() {
            return vec![Context::Confirm];
        }
        match self.mode {
            Mode::Help => vec![Context::Help],
            Mode::Filter | Mode::Palette | Mode::Note { .. } => vec![Context::Input],
            Mode::Normal => {
                let v = match self.view {
                    View::Keys => Some(Context::Keys),
                    View::Detail => Some(Context::Detail),
                    View::Events => Some(Context::Events),
                    View::Findings => Some(Context::Findings),
                    View::Journal | View::Providers => None,
                };
                v.into_iter().chain([Context::Global]).collect()
            }
        }
    }

    /// Resolves a key press through the keymap; printable keys type into inputs.
    pub fn action_for_key(&self, ev: &KeyEvent) -> Option<Action> {
        let chord = chord_of(ev)?;
        let contexts = self.contexts();
        if let Some(cmd) = self.keymap.lookup(&chord, &contexts) {
            return Some(cmd.action());
        }
        let typing = contexts.contains(&Context::Input)
            || self.confirm.as_ref().is_some_and(|c| c.expected.is_some());
        match ev.code {
            crossterm::event::KeyCode::Char(c)
                if typing
                    && !ev
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                Some(Action::Input(c))
            }
            _ => None,
        }
    }

    /// The selected key of the keys view.
    pub fn selected_key(&self) -> Option<&KeyRow> {
        self.visible
            .get(self.keys_cursor.selected)
            .and_then(|i| self.keys.get(*i))
    }

    /// Number of keys the filter hides.
    pub fn hidden(&self) -> usize {
        self.keys.len().saturating_sub(self.visible.len())
    }

    /// Rows of the list of the current view that fit on screen.
    pub fn page_height(&self) -> usize {
        super::view::list_area(self)
            .map(|r| r.height.saturating_sub(3) as usize)
            .unwrap_or(10)
            .max(1)
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    fn fail(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    fn refilter(&mut self) -> Vec<Effect> {
        if let Err(e) = crate::filter::Filter::parse(&self.filter) {
            self.filter_error = Some(e);
            return Vec::new();
        }
        self.filter_error = None;
        self.filter_generation += 1;
        self.filter_pending = true;
        let base = (self.base_valid && super::search::narrows(&self.applied_filter, &self.filter))
            .then(|| self.visible.clone());
        vec![Effect::Filter(FilterJob {
            generation: self.filter_generation,
            query: self.filter.clone(),
            sort: self.sort,
            keys: self.incoming.clone().unwrap_or_else(|| self.keys.clone()),
            base,
            now: self.now,
        })]
    }

    fn view_reload(&mut self) -> Vec<Effect> {
        match self.view {
            View::Keys => Vec::new(),
            View::Detail => self
                .detail_ref
                .map(|k| vec![Effect::LoadDetail(k, self.now)])
                .unwrap_or_default(),
            View::Events => self.events_reload(),
            View::Findings => vec![Effect::LoadFindings],
            View::Journal => vec![Effect::LoadJournal],
            View::Providers => vec![Effect::LoadProviders],
        }
    }

    fn show(&mut self, v: View) -> Vec<Effect> {
        if v != self.view {
            self.previous_view = self.view;
        }
        self.view = v;
        self.view_reload()
    }

    fn targets(&self) -> Vec<KeyRow> {
        if !self.marked.is_empty() && self.view == View::Keys {
            return self
                .keys
                .iter()
                .filter(|k| self.marked.contains(&k.key_ref))
                .cloned()
                .collect();
        }
        match self.view {
            View::Keys => self.selected_key().cloned().into_iter().collect(),
            View::Detail => self
                .detail
                .as_ref()
                .map(|d| d.key.clone())
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn request_op(&mut self, op: KeyOp) -> Vec<Effect> {
        if !self.write {
            self.fail(s::refused_read_only(op.as_str()));
            return Vec::new();
        }
        let keys = self.targets();
        if keys.is_empty() {
            self.fail(s::NOTHING_SELECTED);
            return Vec::new();
        }
        if let Some(k) = keys.iter().find(|k| {
            !self
                .capabilities
                .get(&k.key.provider)
                .is_some_and(|c| op.supported_by(c))
        }) {
            self.fail(s::unsupported(&k.key.provider, op.as_str()));
            return Vec::new();
        }
        let (expected, expected_is_count) = if keys.len() > 1 {
            (Some(keys.len().to_string()), true)
        } else if keys[0].key.is_production() {
            (Some(keys[0].key.name.clone()), false)
        } else {
            (None, false)
        };
        self.confirm = Some(Confirm {
            kind: ConfirmKind::KeyOp(op),
            keys,
            expected,
            expected_is_count,
            typed: String::new(),
            on_confirm: false,
        });
        Vec::new()
    }

    fn request_rotate(&mut self) -> Vec<Effect> {
        if !self.write {
            self.fail(s::refused_read_only("rotate"));
            return Vec::new();
        }
        if !self.marked.is_empty() && self.view == View::Keys {
            self.fail(s::ROTATE_ONE_AT_A_TIME);
            return Vec::new();
        }
        if self.rotating {
            self.fail(s::ROTATE_RUNNING);
            return Vec::new();
        }
        let keys = self.targets();
        let Some(k) = keys.first() else {
            self.fail(s::NOTHING_SELECTED);
            return Vec::new();
        };
        let caps = self.capabilities.get(&k.key.provider);
        if !caps.is_some_and(|c| c.rotate_overlap || c.rotate_atomic) {
            self.fail(s::unsupported(&k.key.provider, "rotate"));
            return Vec::new();
        }
        if matches!(k.key.status, KeyStatus::Revoked | KeyStatus::Expired) {
            self.fail(format!(
                "{} is {}; only an active or disabled key can be rotated.",
                k.key.name, k.key.status
            ));
            return Vec::new();
        }
        let grace_secs = if caps.is_some_and(|c| c.rotate_overlap) {
            DEFAULT_ROTATE_GRACE_SECS
        } else {
            0
        };
        let expected = k.key.is_production().then(|| k.key.name.clone());
        self.confirm = Some(Confirm {
            kind: ConfirmKind::Rotate { grace_secs },
            keys,
            expected,
            expected_is_count: false,
            typed: String::new(),
            on_confirm: false,
        });
        Vec::new()
    }

    /// Applies an action while the secret dialog is open; `None` passes it on.
    fn update_secret(&mut self, action: &Action) -> Option<Vec<Effect>> {
        let d = self.secret.as_mut()?;
        match action {
            Action::RevealSecret => {
                d.revealed = !d.revealed;
                Some(Vec::new())
            }
            Action::CopySecret => {
                let secret = d.rotated.secret.clone();
                self.say(s::SECRET_COPIED);
                Some(vec![Effect::CopyToClipboard(secret)])
            }
            Action::CloseSecret | Action::InputCancel | Action::InputSubmit => {
                // Dropping the dialog zeroizes the secret.
                self.secret = None;
                self.say(s::SECRET_CLOSED);
                Some(Vec::new())
            }
            _ => None,
        }
    }

    fn submit_confirm(&mut self) -> Vec<Effect> {
        let Some(c) = self.confirm.take() else {
            return Vec::new();
        };
        if !c.on_confirm {
            self.say(s::CANCELLED);
            return Vec::new();
        }
        if !c.armed() {
            self.fail(s::confirmation_mismatch(
                c.expected.as_deref().unwrap_or(""),
            ));
            self.confirm = Some(c);
            return Vec::new();
        }
        match c.kind {
            ConfirmKind::Write => {
                self.write = true;
                self.say(s::NOW_WRITE);
                Vec::new()
            }
            ConfirmKind::Rotate { grace_secs } => {
                // The same choke point as every key operation.
                if !self.write {
                    self.fail(s::refused_read_only("rotate"));
                    return Vec::new();
                }
                let Some(k) = c.keys.into_iter().next() else {
                    return Vec::new();
                };
                self.rotating = true;
                self.say(s::rotating(&crate::action::target(&k.key)));
                vec![Effect::Rotate {
                    key: Box::new(k.key),
                    grace: std::time::Duration::from_secs(grace_secs),
                }]
            }
            ConfirmKind::KeyOp(op) => {
                // The choke point: nothing reaches a provider without write mode.
                if !self.write {
                    self.fail(s::refused_read_only(op.as_str()));
                    return Vec::new();
                }
                self.pending_ops += c.keys.len();
                self.marked.clear();
                self.say(format!("{}: {} key(s)…", op.as_str(), c.keys.len()));
                vec![Effect::ApplyKeyOp(
                    op,
                    c.keys.into_iter().map(|k| k.key).collect(),
                )]
            }
        }
    }

    /// Moves the selection of the current view; the events view may read a page.
    fn move_selection(&mut self, delta: isize) -> Vec<Effect> {
        let h = self.page_height();
        match self.view {
            View::Keys => {
                self.keys_cursor.move_by(delta, self.visible.len(), h);
                self.selected_ref = self.selected_key().map(|k| k.key_ref);
            }
            View::Detail => {
                self.detail_scroll =
                    (self.detail_scroll as isize + delta).clamp(0, u16::MAX as isize) as u16;
            }
            View::Events => {
                self.events.cursor.move_by(delta, self.events.rows.len(), h);
                return self.events_follow();
            }
            View::Findings => self.findings_cursor.move_by(delta, self.findings.len(), h),
            View::Journal => self.journal_cursor.move_by(delta, self.journal.len(), h),
            View::Providers => self
                .providers_cursor
                .move_by(delta, self.providers.len(), h),
        }
        Vec::new()
    }

    fn key_ref_of(&self, provider: &str, id: &str) -> Option<i64> {
        self.keys
            .iter()
            .find(|k| k.key.provider == provider && k.key.id == id)
            .map(|k| k.key_ref)
    }

    fn open_detail(&mut self, key_ref: Option<i64>) -> Vec<Effect> {
        let Some(k) = key_ref else {
            self.fail(s::NOTHING_SELECTED);
            return Vec::new();
        };
        if self.detail_ref != Some(k) {
            self.detail = None;
            self.detail_scroll = 0;
        }
        self.detail_ref = Some(k);
        self.show(View::Detail)
    }

    /// Asks for one page of the events walk in the direction `walk`.
    fn events_read(&mut self, walk: Walk) -> Vec<Effect> {
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
    fn events_restart(&mut self) -> Vec<Effect> {
        self.events.generation += 1;
        self.events_read(Walk::First)
    }

    /// Reads the events again from the newest, unless that would move the operator: only
    /// when nothing is shown yet or the selection is on the newest event.
    fn events_reload(&mut self) -> Vec<Effect> {
        let e = &self.events;
        if e.loaded && (e.cursor.selected > 0 || e.newer.is_some()) {
            return Vec::new();
        }
        self.events_restart()
    }

    /// Reads the next page in the direction the selection is heading, when it comes
    /// within two screens of the end of what is shown.
    fn events_follow(&mut self) -> Vec<Effect> {
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
    fn events_refilter(&mut self) -> Vec<Effect> {
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
    fn events_loaded(&mut self, walk: Walk, p: EventsPage) -> Vec<Effect> {
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

    fn after_sync(&mut self) -> Vec<Effect> {
        if self.frozen {
            self.reload_pending = true;
            return Vec::new();
        }
        let mut fx = vec![Effect::LoadKeys];
        if self.view != View::Providers {
            fx.push(Effect::LoadProviders);
        }
        fx.extend(self.view_reload());
        fx
    }

    fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            return Vec::new();
        };
        let arg = words.next();
        if self.history.last().map(String::as_str) != Some(line) {
            self.history.push(line.to_string());
        }
        let cmd = match (name, arg) {
            ("export", Some("json")) => Some(Command::ExportJson),
            ("export", Some("csv") | None) => Some(Command::ExportCsv),
            ("q" | "quit", _) => Some(Command::Quit),
            ("read-only", _) => Some(Command::ReadOnly),
            _ => Command::by_name(name).filter(|c| c.in_palette()),
        };
        match cmd {
            Some(c) => self.update(c.action()),
            None => {
                self.fail(s::unknown_command(name));
                Vec::new()
            }
        }
    }

    fn complete(&mut self) {
        let prefix = self.input.trim_start().to_string();
        let names: Vec<&'static str> = Command::ALL
            .iter()
            .filter(|c| c.in_palette() && c.name().starts_with(&prefix))
            .map(|c| c.name())
            .collect();
        if let Some(first) = names.first() {
            let mut common = first.to_string();
            for n in &names[1..] {
                while !n.starts_with(&common) {
                    common.pop();
                }
            }
            if names.len() == 1 {
                common.push(' ');
            }
            self.input = common;
        }
        self.completions = names;
    }

    /// Applies one action; returns the IO it needs.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        // Dialog and input modes first: they own the keys.
        if let Some(fx) = self.update_secret(&action) {
            return fx;
        }
        if self.confirm.is_some() {
            match action {
                Action::InputCancel => {
                    self.confirm = None;
                    self.say(s::CANCELLED);
                    return Vec::new();
                }
                Action::ToggleFocus => {
                    if let Some(c) = &mut self.confirm {
                        c.on_confirm = !c.on_confirm;
                    }
                    return Vec::new();
                }
                Action::InputSubmit => return self.submit_confirm(),
                Action::AdjustGrace(longer) => {
                    let overlap = self.confirm.as_ref().and_then(|c| {
                        c.keys
                            .first()
                            .and_then(|k| self.capabilities.get(&k.key.provider))
                            .map(|caps| caps.rotate_overlap)
                    });
                    if let Some(c) = &mut self.confirm {
                        if let (ConfirmKind::Rotate { grace_secs }, Some(true)) =
                            (&mut c.kind, overlap)
                        {
                            let steps = ROTATE_GRACE_STEPS;
                            *grace_secs = if longer {
                                steps.iter().copied().find(|s| *s > *grace_secs)
                            } else {
                                steps.iter().rev().copied().find(|s| *s < *grace_secs)
                            }
                            .unwrap_or(*grace_secs);
                        }
                    }
                    return Vec::new();
                }
                Action::Input(ch) => {
                    if let Some(c) = &mut self.confirm {
                        if c.expected.is_some() {
                            c.typed.push(ch);
                        }
                    }
                    return Vec::new();
                }
                Action::InputBackspace => {
                    if let Some(c) = &mut self.confirm {
                        c.typed.pop();
                    }
                    return Vec::new();
                }
                _ => {}
            }
        }
        match action {
            Action::Quit => {
                self.quit = true;
                Vec::new()
            }
            Action::ShowView(v) => {
                self.mode = Mode::Normal;
                if v == View::Detail && self.detail_ref.is_none() {
                    let k = self.selected_key().map(|k| k.key_ref);
                    return self.open_detail(k);
                }
                self.show(v)
            }
            Action::NextView | Action::PrevView => {
                let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
                let n = View::ALL.len();
                let mut j = if matches!(action, Action::NextView) {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                if View::ALL[j] == View::Detail && self.detail_ref.is_none() {
                    j = if matches!(action, Action::NextView) {
                        (j + 1) % n
                    } else {
                        (j + n - 1) % n
                    };
                }
                self.show(View::ALL[j])
            }
            Action::SelectNext => {
                if self.mode == Mode::Help {
                    self.help_scroll = self.help_scroll.saturating_add(1);
                    return Vec::new();
                }
                self.move_selection(1)
            }
            Action::SelectPrev => {
                if self.mode == Mode::Help {
                    self.help_scroll = self.help_scroll.saturating_sub(1);
                    return Vec::new();
                }
                self.move_selection(-1)
            }
            Action::PageDown => {
                let h = self.page_height() as isize;
                self.move_selection(h)
            }
            Action::PageUp => {
                let h = self.page_height() as isize;
                self.move_selection(-h)
            }
            Action::SelectFirst => {
                // The window no longer starts at the newest event: read from there again.
                if self.view == View::Events && self.events.newer.is_some() {
                    return self.events_restart();
                }
                self.move_selection(isize::MIN / 2)
            }
            Action::SelectLast => self.move_selection(isize::MAX / 2),
            Action::ScrollDown => self.move_selection(3),
            Action::ScrollUp => self.move_selection(-3),
            Action::OpenDetail => match self.view {
                View::Keys => {
                    let k = self.selected_key().map(|k| k.key_ref);
                    self.open_detail(k)
                }
                View::Events => {
                    let k = self.selected_event().map(|r| r.key_ref);
                    self.open_detail(k)
                }
                View::Findings => {
                    let k = self
                        .findings
                        .get(self.findings_cursor.selected)
                        .and_then(|f| self.key_ref_of(&f.provider, &f.key_id));
                    self.open_detail(k)
                }
                _ => Vec::new(),
            },
            Action::Back => {
                if self.view == View::Keys {
                    if !self.filter.is_empty() {
                        return self.update(Action::ClearFilter);
                    }
                    return Vec::new();
                }
                let back = if self.previous_view == self.view {
                    View::Keys
                } else {
                    self.previous_view
                };
                self.previous_view = View::Keys;
                self.view = back;
                self.view_reload()
            }
            Action::ToggleMark => {
                if let Some(k) = self.selected_key().map(|k| k.key_ref) {
                    if !self.marked.remove(&k) {
                        self.marked.insert(k);
                    }
                    return self.move_selection(1);
                }
                Vec::new()
            }
            Action::ClearMarks => {
                self.marked.clear();
                Vec::new()
            }
            Action::CycleSort => {
                self.sort = super::search::next_sort(self.sort);
                self.refilter()
            }
            Action::ReverseSort => {
                self.sort.reverse = !self.sort.reverse;
                self.refilter()
            }
            Action::StartFilter => {
                self.mode = Mode::Filter;
                if self.view != View::Keys && self.view != View::Events {
                    self.view = View::Keys;
                }
                Vec::new()
            }
            Action::ClearFilter => {
                if self.view == View::Events {
                    self.events.query.clear();
                    return self.events_refilter();
                }
                self.filter.clear();
                self.refilter()
            }
            Action::StartPalette => {
                self.mode = Mode::Palette;
                self.input.clear();
                self.completions.clear();
                self.history_pos = None;
                Vec::new()
            }
            Action::ToggleHelp => {
                self.mode = if self.mode == Mode::Help {
                    Mode::Normal
                } else {
                    self.help_scroll = 0;
                    Mode::Help
                };
                Vec::new()
            }
            Action::Input(c) => match &self.mode {
                Mode::Filter if self.view == View::Events => {
                    self.events.query.push(c);
                    self.events_refilter()
                }
                Mode::Filter => {
                    self.filter.push(c);
                    self.refilter()
                }
                Mode::Palette | Mode::Note { .. } => {
                    self.input.push(c);
                    self.completions.clear();
                    Vec::new()
                }
                _ => Vec::new(),
            },
            Action::InputBackspace => match &self.mode {
                Mode::Filter if self.view == View::Events => {
                    self.events.query.pop();
                    self.events_refilter()
                }
                Mode::Filter => {
                    self.filter.pop();
                    self.refilter()
                }
                Mode::Palette | Mode::Note { .. } => {
                    self.input.pop();
                    Vec::new()
                }
                _ => Vec::new(),
            },
            Action::InputComplete => {
                if self.mode == Mode::Palette {
                    self.complete();
                }
                Vec::new()
            }
            Action::HistoryPrev | Action::HistoryNext => {
                if self.mode != Mode::Palette || self.history.is_empty() {
                    return Vec::new();
                }
                let last = self.history.len() - 1;
                let pos = match (self.history_pos, matches!(action, Action::HistoryPrev)) {
                    (None, true) => Some(last),
                    (None, false) => None,
                    (Some(p), true) => Some(p.saturating_sub(1)),
                    (Some(p), false) if p < last => Some(p + 1),
                    (Some(_), false) => None,
                };
                self.history_pos = pos;
                self.input = pos.map(|p| self.history[p].clone()).unwrap_or_default();
                Vec::new()
            }
            Action::InputSubmit => match std::mem::replace(&mut self.mode, Mode::Normal) {
                Mode::Palette => {
                    let line = std::mem::take(&mut self.input);
                    self.completions.clear();
                    self.run_command(line.trim())
                }
                Mode::Note { id, target, status } => {
                    let note = std::mem::take(&mut self.input);
                    vec![Effect::SetFindingStatus {
                        id,
                        target,
                        status,
                        note,
                    }]
                }
                _ => Vec::new(),
            },
            Action::InputCancel => {
                let was = std::mem::replace(&mut self.mode, Mode::Normal);
                self.input.clear();
                self.completions.clear();
                if was == Mode::Filter {
                    return self.update(Action::ClearFilter);
                }
                Vec::new()
            }
            Action::ToggleFocus => Vec::new(),
            Action::RequestDisable => self.request_op(KeyOp::Disable),
            Action::RequestEnable => self.request_op(KeyOp::Enable),
            Action::RequestRevoke => self.request_op(KeyOp::Revoke),
            Action::RequestRotate => self.request_rotate(),
            Action::RevealSecret
            | Action::CopySecret
            | Action::CloseSecret
            | Action::AdjustGrace(_) => Vec::new(),
            Action::RequestWrite => {
                if self.locked_read_only {
                    self.fail(s::LOCKED_READ_ONLY);
                } else if self.write {
                    self.say(s::NOW_WRITE);
                } else {
                    self.confirm = Some(Confirm {
                        kind: ConfirmKind::Write,
                        keys: Vec::new(),
                        expected: None,
                        expected_is_count: false,
                        typed: String::new(),
                        on_confirm: false,
                    });
                }
                Vec::new()
            }
            Action::SetReadOnly => {
                self.write = false;
                self.say(s::NOW_READ_ONLY);
                Vec::new()
            }
            Action::StartSync => {
                if self.sync.is_some() {
                    self.say(s::SYNC_RUNNING);
                    return Vec::new();
                }
                if self.capabilities.is_empty() {
                    return Vec::new();
                }
                self.syncs_total = self.capabilities.len();
                self.syncs_done = 0;
                self.sync = Some(SyncProgress {
                    provider: String::new(),
                    phase: crate::sync::SyncPhase::Keys,
                    keys: 0,
                    new_events: 0,
                    pages: 0,
                });
                vec![Effect::Sync]
            }
            Action::ToggleFreeze => {
                self.frozen = !self.frozen;
                if self.frozen {
                    self.say(s::FROZEN);
                    return Vec::new();
                }
                self.say(s::UNFROZEN);
                let mut fx = Vec::new();
                if let Some(k) = self.held_keys.take() {
                    fx.extend(self.update(Action::KeysLoaded(k)));
                }
                if std::mem::take(&mut self.reload_pending) {
                    fx.extend(self.after_sync());
                }
                fx
            }
            Action::Export(fmt) => {
                let rows: Vec<KeyRow> = self
                    .visible
                    .iter()
                    .filter_map(|i| self.keys.get(*i).cloned())
                    .collect();
                vec![Effect::Export(fmt, rows)]
            }
            Action::Acknowledge | Action::Suppress => {
                let status = if matches!(action, Action::Acknowledge) {
                    FindingStatus::Acknowledged
                } else {
                    FindingStatus::Suppressed
                };
                if !self.write {
                    self.fail(s::refused_read_only(status.as_str()));
                    return Vec::new();
                }
                let Some(f) = self.findings.get(self.findings_cursor.selected) else {
                    return Vec::new();
                };
                self.mode = Mode::Note {
                    id: f.id.clone(),
                    target: format!("{}/{}", f.provider, f.key_id),
                    status,
                };
                self.input.clear();
                Vec::new()
            }
            Action::ShowKeyEvents => {
                let key = match self.view {
                    View::Keys => self.selected_key().cloned(),
                    View::Detail => self.detail.as_ref().map(|d| d.key.clone()),
                    _ => None,
                };
                self.events.key_ref = key.as_ref().map(|k| k.key_ref);
                self.events.key_label = key.map(|k| k.key.name);
                if self.view != View::Events {
                    self.previous_view = self.view;
                }
                self.view = View::Events;
                self.events_restart()
            }
            Action::CycleOutcome => {
                // The typed filter's outcome, or the applied one while it does not parse.
                let current = EventFilter::parse(&self.events.query)
                    .map(|f| f.outcome)
                    .unwrap_or(self.events.filter.outcome);
                let next = crate::filter::event::next_outcome(current);
                self.events.query = crate::filter::event::with_outcome(&self.events.query, next);
                self.events_refilter()
            }
            Action::Resize(w, h) => {
                self.size = (w, h);
                let ph = self.page_height();
                self.keys_cursor.fit(self.visible.len(), ph);
                self.events_follow()
            }
            Action::Click(col, row) => {
                if self.mode != Mode::Normal {
                    return Vec::new();
                }
                let Some(area) = super::view::list_area(self) else {
                    return Vec::new();
                };
                let first = area.y + 2;
                if col < area.x || col >= area.x + area.width || row < first {
                    return Vec::new();
                }
                let offset = match self.view {
                    View::Keys => self.keys_cursor.offset,
                    View::Events => self.events.cursor.offset,
                    View::Findings => self.findings_cursor.offset,
                    View::Journal => self.journal_cursor.offset,
                    View::Providers => self.providers_cursor.offset,
                    View::Detail => return Vec::new(),
                };
                let current = match self.view {
                    View::Keys => self.keys_cursor.selected,
                    View::Events => self.events.cursor.selected,
                    View::Findings => self.findings_cursor.selected,
                    View::Journal => self.journal_cursor.selected,
                    _ => self.providers_cursor.selected,
                };
                let target = offset + (row - first) as usize;
                self.move_selection(target as isize - current as isize)
            }
            Action::Clock(now) => {
                self.now = now;
                Vec::new()
            }

            Action::KeysPreviewed(keys, total) => {
                // Only before the first whole list, and only while the table shows the
                // list order (no filter, no sort).
                if self.keys_loaded || !self.filter.is_empty() || self.sort != Sort::default() {
                    return Vec::new();
                }
                self.keys = keys;
                self.keys_preview = Some(total);
                self.visible = Arc::new((0..self.keys.len()).collect());
                self.base_valid = false;
                let h = self.page_height();
                self.keys_cursor.fit(self.visible.len(), h);
                self.selected_ref = self.selected_key().map(|k| k.key_ref);
                Vec::new()
            }
            Action::KeysLoaded(keys) => {
                if self.frozen && self.keys_loaded {
                    self.held_keys = Some(keys);
                    return Vec::new();
                }
                self.keys_loaded = true;
                self.keys_preview = None;
                self.applied_filter = String::new();
                self.base_valid = false;
                self.incoming = Some(keys);
                let fx = self.refilter();
                if fx.is_empty() {
                    // The typed filter does not parse: show everything meanwhile.
                    if let Some(k) = self.incoming.take() {
                        self.keys = k;
                    }
                    self.visible = Arc::new((0..self.keys.len()).collect());
                }
                fx
            }
            Action::FilterApplied(generation, visible) => {
                if generation != self.filter_generation {
                    return Vec::new();
                }
                self.filter_pending = false;
                if let Some(k) = self.incoming.take() {
                    self.keys = k;
                    let live: std::collections::HashSet<i64> =
                        self.keys.iter().map(|k| k.key_ref).collect();
                    self.marked.retain(|k| live.contains(k));
                }
                self.applied_filter = self.filter.clone();
                self.base_valid = true;
                self.visible = visible;
                // Keep the selection on the same key when it is still shown.
                if let Some(r) = self.selected_ref {
                    if let Some(pos) = self
                        .visible
                        .iter()
                        .position(|i| self.keys.get(*i).is_some_and(|k| k.key_ref == r))
                    {
                        self.keys_cursor.selected = pos;
                    }
                }
                let h = self.page_height();
                self.keys_cursor.fit(self.visible.len(), h);
                if self.filter.is_empty() || self.selected_ref.is_none() {
                    self.selected_ref = self.selected_key().map(|k| k.key_ref);
                }
                Vec::new()
            }
            Action::DetailLoaded(d) => {
                if Some(d.key.key_ref) == self.detail_ref {
                    self.detail = Some(d);
                }
                Vec::new()
            }
            Action::EventsLoaded(generation, walk, page) => {
                if generation != self.events.generation {
                    return Vec::new();
                }
                self.events_loaded(walk, *page)
            }
            Action::EventsSuperseded(_) => Vec::new(),
            Action::HistogramLoaded(generation, per_hour) => {
                if generation == self.events.generation {
                    self.events.per_hour = per_hour;
                }
                Vec::new()
            }
            Action::FindingsLoaded(f) => {
                self.findings = f;
                let h = self.page_height();
                self.findings_cursor.fit(self.findings.len(), h);
                Vec::new()
            }
            Action::JournalLoaded(j) => {
                self.journal = j;
                let h = self.page_height();
                self.journal_cursor.fit(self.journal.len(), h);
                Vec::new()
            }
            Action::ProvidersLoaded(p) => {
                self.providers = p;
                let h = self.page_height();
                self.providers_cursor.fit(self.providers.len(), h);
                Vec::new()
            }
            Action::LoadFailed(e) => {
                self.events.loading = None;
                self.fail(e);
                Vec::new()
            }
            Action::SyncProgressed(p) => {
                if self.sync.is_some() {
                    self.sync = Some(p);
                }
                Vec::new()
            }
            Action::SyncFinished(provider, result) => {
                self.syncs_done += 1;
                match result {
                    Ok(summary) => self.say(format!("{provider}: {summary}")),
                    Err(e) => self.fail(format!("{provider}: sync failed: {e}")),
                }
                Vec::new()
            }
            Action::SyncAllFinished => {
                self.sync = None;
                self.after_sync()
            }
            Action::KeyOpFinished(op, target, result) => {
                self.pending_ops = self.pending_ops.saturating_sub(1);
                match result {
                    Ok(status) => self.say(format!("{} {target}: done, now {status}", op.as_str())),
                    Err(e) => self.fail(format!("{} {target} failed: {e}", op.as_str())),
                }
                if self.pending_ops == 0 {
                    let mut fx = vec![Effect::LoadKeys];
                    fx.extend(self.view_reload());
                    return fx;
                }
                Vec::new()
            }
            Action::RotateFinished(r) => {
                self.rotating = false;
                let target = crate::action::target(&r.key);
                match &r.note {
                    Some(n) => self.fail(format!("{}; {n}", s::rotated(&target, &r.new_key_id))),
                    None => self.say(s::rotated(&target, &r.new_key_id)),
                }
                self.secret = Some(SecretDialog {
                    rotated: *r,
                    revealed: false,
                });
                let mut fx = vec![Effect::LoadKeys];
                fx.extend(self.view_reload());
                fx
            }
            Action::RotateFailed(target, why) => {
                self.rotating = false;
                self.fail(s::rotate_failed(&target, &why));
                let mut fx = vec![Effect::LoadKeys];
                fx.extend(self.view_reload());
                fx
            }
            Action::FindingUpdated(id, status) => {
                self.say(format!("finding {id}: {status}"));
                vec![Effect::LoadFindings, Effect::LoadKeys]
            }
            Action::ExportFinished(r) => {
                match r {
                    Ok(p) => self.say(format!("exported to {}", p.display())),
                    Err(e) => self.fail(format!("export failed: {e}")),
                }
                Vec::new()
            }
        }
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
