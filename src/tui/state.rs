//! The workstation's state and `update`, the only place it changes. No IO here: `update`
//! returns effects for the runner. Each view and dialog owns its state and the actions it
//! handles (`tui::view`, `tui::dialog`); `update` routes to them.

use super::action::{Action, Effect, View};
use super::dialog::{
    self, confirm::Confirm, help::HelpDialog, palette::Palette, rotations::RotationsDialog,
    secret::SecretDialog,
};
use super::keymap::{chord_of, Context, Keymap};
use super::strings as s;
use super::theme::Theme;
use crate::model::FindingStatus;
use crate::provider::Capabilities;
use crate::store::KeyRow;
use crate::sync::SyncProgress;
use crate::tui::view::{
    self, detail::DetailView, events::EventsState, findings::FindingsView, journal::JournalView,
    keys::KeysView, providers::ProvidersView,
};
use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, KeyModifiers};
use std::collections::HashMap;
use std::sync::Arc;

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
    /// The rotations in progress (`W`).
    Rotations,
}

/// A line in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// Everything the workstation shows. Render functions read it; `update` changes it. Each
/// view and dialog owns its part (in `tui::view` and `tui::dialog`); what they share is
/// here: the clock, the current view and mode, the session's mode, sync progress and the
/// status line.
pub struct State {
    /// The clock, injected (renders never read the real clock).
    pub now: DateTime<Utc>,
    pub view: View,
    pub(crate) previous_view: View,
    pub mode: Mode,
    pub confirm: Option<Confirm>,
    /// The new secret of a rotation, until the operator closes the dialog.
    pub secret: Option<SecretDialog>,
    /// A rotation is running.
    pub rotating: bool,
    pub demo: bool,
    /// The case on screen (`keyaudit open`), shown in the title instead of DEMO.
    pub case: Option<String>,
    /// Actions are unlocked (badge RW).
    pub write: bool,
    /// `:write` is refused (started with `--read-only`).
    pub locked_read_only: bool,
    pub keymap: Arc<Keymap>,
    pub theme: Theme,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    pub quit: bool,

    pub keys: KeysView,
    pub detail: DetailView,
    pub events: EventsState,
    pub findings: FindingsView,
    pub journal: JournalView,
    pub providers: ProvidersView,
    /// Capabilities by provider name (keys of other providers cannot be acted on).
    pub capabilities: HashMap<String, Capabilities>,

    /// Progress of the running sync.
    pub sync: Option<SyncProgress>,
    /// The import of `keyaudit open` and the detection after it, while they run.
    pub import: Option<crate::tui::import::ImportGauge>,
    pub syncs_done: usize,
    pub syncs_total: usize,
    pub frozen: bool,
    pub(crate) held_keys: Option<Arc<Vec<KeyRow>>>,
    pub(crate) reload_pending: bool,
    pub(crate) pending_ops: usize,

    pub message: Option<Message>,
    /// The team store's state, with `[team]` configured.
    pub team: Option<crate::tui::team::TeamView>,
    /// The text being typed in the palette or a note.
    pub input: String,
    pub palette: Palette,
    pub help: HelpDialog,
    pub rotations: RotationsDialog,
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
            case: None,
            write: setup.write && !setup.read_only,
            locked_read_only: setup.read_only,
            keymap: setup.keymap,
            theme: setup.theme,
            size: setup.size,
            quit: false,
            keys: KeysView::default(),
            detail: DetailView::default(),
            events: EventsState::default(),
            findings: FindingsView::default(),
            journal: JournalView::default(),
            providers: ProvidersView::default(),
            capabilities: setup.capabilities,
            sync: None,
            import: None,
            syncs_done: 0,
            syncs_total: 0,
            frozen: false,
            held_keys: None,
            reload_pending: false,
            pending_ops: 0,
            message: None,
            team: None,
            input: String::new(),
            palette: Palette::default(),
            help: HelpDialog::default(),
            rotations: RotationsDialog::default(),
        }
    }

    /// The effects of opening: load the cache, then sync (and import, for a case).
    pub fn start(&mut self) -> Vec<Effect> {
        let mut fx = vec![Effect::LoadKeys, Effect::LoadProviders];
        if self.import.is_some() {
            fx.push(Effect::Import);
        }
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
            Mode::Rotations => vec![Context::Global],
            Mode::Filter | Mode::Palette | Mode::Note { .. } => vec![Context::Input],
            Mode::Normal => {
                let v = match self.view {
                    View::Keys => Some(Context::Keys),
                    View::Detail => Some(Context::Detail),
                    View::Events => Some(Context::Events),
                    View::Findings => Some(Context::Findings),
                    View::Journal | View::Providers => None,
                };
                let importing = self
                    .import
                    .as_ref()
                    .is_some_and(|g| g.running())
                    .then_some(Context::Import);
                importing
                    .into_iter()
                    .chain(v)
                    .chain([Context::Global])
                    .collect()
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
        // In the confirm dialog: the typed confirmation, and the reason when focused
        // (also where no confirmation is typed: one key outside production).
        let typing = contexts.contains(&Context::Input)
            || self
                .confirm
                .as_ref()
                .is_some_and(|c| c.expected.is_some() || c.on_reason);
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

    /// Rows of the list of the current view that fit on screen.
    pub fn page_height(&self) -> usize {
        crate::tui::view::list_area(self)
            .map(|r| r.height.saturating_sub(3) as usize)
            .unwrap_or(10)
            .max(1)
    }

    pub(crate) fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    pub(crate) fn fail(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    pub(crate) fn after_sync(&mut self) -> Vec<Effect> {
        if self.frozen {
            self.reload_pending = true;
            return Vec::new();
        }
        let mut fx = vec![Effect::LoadKeys];
        if self.team.is_some() {
            // Findings the sync opened may be ones the team has decided already.
            fx.push(Effect::PullDecisions { all: true });
        }
        if self.view != View::Providers {
            fx.push(Effect::LoadProviders);
        }
        fx.extend(self.view_reload());
        fx
    }

    /// Applies one action; returns the IO it needs. Routes each action to the view or dialog
    /// that owns it; open dialogs and typing modes see the keys first.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        use Action as A;
        if let Some(fx) = dialog::secret::update(self, &action) {
            return fx;
        }
        if let Some(fx) = dialog::confirm::update_open(self, &action) {
            return fx;
        }
        if let Some(why) = crate::tui::team::refused(self, &action) {
            self.fail(why);
            return Vec::new();
        }
        match action {
            A::SelectNext | A::SelectPrev if self.mode == Mode::Help => {
                dialog::help::update(self, action)
            }
            A::ToggleHelp => dialog::help::update(self, action),
            A::SelectNext | A::SelectPrev | A::OpenDetail | A::Back
                if self.mode == Mode::Rotations =>
            {
                dialog::rotations::update(self, action)
            }
            A::ToggleRotations | A::RotationsLoaded(_) => dialog::rotations::update(self, action),
            A::ShowView(_) | A::NextView | A::PrevView if self.mode == Mode::Rotations => {
                self.mode = Mode::Normal;
                view::update(self, action)
            }
            A::Input(_) | A::InputBackspace if self.mode == Mode::Filter => match self.view {
                View::Events => view::events::update(self, action),
                _ => view::keys::update(self, action),
            },
            A::ClearFilter if self.view == View::Events => view::events::update(self, action),
            A::InputSubmit if matches!(self.mode, Mode::Note { .. }) => {
                view::findings::update(self, action)
            }
            A::StartPalette
            | A::Input(_)
            | A::InputBackspace
            | A::InputComplete
            | A::HistoryPrev
            | A::HistoryNext
            | A::InputSubmit
            | A::InputCancel => dialog::palette::update(self, action),
            A::Quit
            | A::ShowView(_)
            | A::NextView
            | A::PrevView
            | A::SelectNext
            | A::SelectPrev
            | A::PageDown
            | A::PageUp
            | A::SelectFirst
            | A::SelectLast
            | A::ScrollDown
            | A::ScrollUp
            | A::OpenDetail
            | A::Back
            | A::Resize(..)
            | A::Click(..)
            | A::Clock(_) => view::update(self, action),
            A::ToggleMark
            | A::ClearMarks
            | A::CycleSort
            | A::ReverseSort
            | A::StartFilter
            | A::ClearFilter
            | A::Export(_)
            | A::KeysPreviewed(..)
            | A::KeysLoaded(_)
            | A::FilterApplied(..)
            | A::ExportFinished(_) => view::keys::update(self, action),
            A::DetailLoaded(_) => view::detail::update(self, action),
            A::ShowKeyEvents
            | A::CycleOutcome
            | A::EventsLoaded(..)
            | A::EventsSuperseded(_)
            | A::HistogramLoaded(..) => view::events::update(self, action),
            A::Acknowledge | A::Suppress | A::FindingsLoaded(_) | A::FindingUpdated(..) => {
                view::findings::update(self, action)
            }
            A::JournalLoaded(_) => view::journal::update(self, action),
            A::ProvidersLoaded(_) | A::SourcesLoaded(_) => view::providers::update(self, action),
            A::RequestDisable
            | A::RequestEnable
            | A::RequestRevoke
            | A::RequestRotate
            | A::RequestWrite
            | A::SetReadOnly
            | A::KeyOpFinished(..)
            | A::RotateFinished(_)
            | A::RotateFailed(..) => dialog::confirm::update(self, action),
            A::GuidedPlanned(_) | A::GuidedFinished(..) => dialog::guided::update(self, action),
            A::StartSync
            | A::ToggleFreeze
            | A::SyncProgressed(_)
            | A::SyncFinished(..)
            | A::SyncAllFinished
            | A::LoadFailed(_) => self.update_sync(action),
            A::StopImport
            | A::ImportProgressed(_)
            | A::ImportFinished(_)
            | A::DetectionFinished(_) => crate::tui::import::update(self, action),
            A::Team(_) | A::TeamDecided(_) | A::TeamMembers(_) => {
                crate::tui::team::update(self, action)
            }
            // Keys of closed dialogs.
            A::ToggleFocus
            | A::RevealSecret
            | A::CopySecret
            | A::CloseSecret
            | A::AdjustGrace(_) => Vec::new(),
        }
    }

    /// Applies the actions of syncing and of the cache's reads failing.
    fn update_sync(&mut self, action: Action) -> Vec<Effect> {
        match action {
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
                    // A read of the team's copy that brought nothing says nothing.
                    Ok(summary) if summary.is_empty() => {}
                    Ok(summary) => self.say(format!("{provider}: {summary}")),
                    Err(e) => self.fail(format!("{provider}: sync failed: {e}")),
                }
                Vec::new()
            }
            Action::SyncAllFinished => {
                self.sync = None;
                self.after_sync()
            }
            _ => Vec::new(),
        }
    }
}
