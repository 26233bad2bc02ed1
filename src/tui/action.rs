//! What happens in the workstation: actions (operator intents and background results)
//! and effects (IO that `update` asks the runner to perform).

use crate::action::KeyOp;
use crate::detect::BaselineStatus;
use crate::model::{Finding, FindingStatus, JournalEntry, Key, KeyStatus, ProviderInfo};
use crate::secret::Secret;
use crate::store::{EventPage, EventQuery, EventRow, KeyActivity, KeyRow};
use crate::sync::SyncProgress;
use crate::tui::import::{ImportProgress, ImportReport};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;

/// The views, in `tab` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// All keys of all providers.
    Keys,
    /// One key in depth.
    Detail,
    /// The audit log.
    Events,
    /// Rule verdicts, ranked.
    Findings,
    /// Operator actions.
    Journal,
    /// Provider health.
    Providers,
}

impl View {
    /// Every view in `tab` order.
    pub const ALL: [View; 6] = [
        View::Keys,
        View::Detail,
        View::Events,
        View::Findings,
        View::Journal,
        View::Providers,
    ];

    /// The view's name in the header and in `:name`.
    pub fn name(self) -> &'static str {
        match self {
            View::Keys => "keys",
            View::Detail => "detail",
            View::Events => "events",
            View::Findings => "findings",
            View::Journal => "journal",
            View::Providers => "providers",
        }
    }
}

/// Columns of the keys table (`s` cycles the sort column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Provider,
    Name,
    Owner,
    Env,
    Status,
    Age,
    LastUsed,
    Scopes,
    Findings,
}

impl Column {
    /// Every column, in table order.
    pub const ALL: [Column; 9] = [
        Column::Provider,
        Column::Name,
        Column::Owner,
        Column::Env,
        Column::Status,
        Column::Age,
        Column::LastUsed,
        Column::Scopes,
        Column::Findings,
    ];

    /// The header of the column.
    pub fn title(self) -> &'static str {
        match self {
            Column::Provider => "PROVIDER",
            Column::Name => "NAME",
            Column::Owner => "OWNER",
            Column::Env => "ENV",
            Column::Status => "STATUS",
            Column::Age => "AGE",
            Column::LastUsed => "LAST USED",
            Column::Scopes => "SCOPES",
            Column::Findings => "FINDINGS",
        }
    }
}

/// How the keys table is sorted: `None` keeps the filter's rank (provider, name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub column: Option<Column>,
    pub reverse: bool,
}

/// Export formats of `:export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// Everything the detail view shows about one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub key: KeyRow,
    pub activity: KeyActivity,
    pub events: Vec<EventRow>,
    pub findings: Vec<Finding>,
    pub journal: Vec<JournalEntry>,
    /// The key's rotations in progress, one line each: the team's (whoever drives them)
    /// with a team store, else the cache's.
    pub rotations: Vec<String>,
    /// Whether detection has learned the key's normal use yet (or why it is unknown).
    pub baseline: Result<BaselineStatus, String>,
    /// The exposure time the events were read from (the key was opened from an exposure
    /// finding): `events` holds only events at or after it.
    pub since: Option<DateTime<Utc>>,
}

/// Which part of the events view's walk through the cache a read brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The newest matching events, for a new filter or scope; replaces what is shown.
    First,
    /// Older matching events, below what is shown.
    Older,
    /// Newer matching events, above what is shown (after older ones pushed them out).
    Newer,
}

/// A read of one page of the events view.
#[derive(Debug, Clone)]
pub struct EventsRequest {
    /// Increases with every new filter or scope; a newer request supersedes older ones.
    pub generation: u64,
    pub walk: Walk,
    /// Scope, filter, page anchor (`before` walks older, `after` newer) and page size.
    pub query: EventQuery,
    /// Also read the per-hour histogram of the events that pass the filter, over the 24
    /// hours that end at this time.
    pub histogram: Option<DateTime<Utc>>,
}

/// One page of the events view's walk, with the histogram when the walk starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventsPage {
    /// The matching events (newest first) and where the walk stopped.
    pub page: EventPage,
    /// Events per hour over the last 24 hours, oldest first.
    pub per_hour: Option<Vec<u64>>,
}

/// An operator intent or a background result. `update` is the only reader.
#[derive(Debug, Clone)]
pub enum Action {
    /// Leave the workstation.
    Quit,
    /// Show a view.
    ShowView(View),
    /// Show the next view.
    NextView,
    /// Show the previous view.
    PrevView,
    /// Move the selection down one row.
    SelectNext,
    /// Move the selection up one row.
    SelectPrev,
    /// Move the selection down one page.
    PageDown,
    /// Move the selection up one page.
    PageUp,
    /// Select the first row.
    SelectFirst,
    /// Select the last row.
    SelectLast,
    /// Open the selected key (or a finding's or an event's key) in the detail view.
    OpenDetail,
    /// Go back to the previous view.
    Back,
    /// Mark or unmark the selected key.
    ToggleMark,
    /// Unmark every key.
    ClearMarks,
    /// Sort by the next column.
    CycleSort,
    /// Reverse the sort order.
    ReverseSort,
    /// Start typing a filter.
    StartFilter,
    /// Clear the filter.
    ClearFilter,
    /// Open the command palette.
    StartPalette,
    /// Show or hide the help.
    ToggleHelp,
    /// Show or hide the rotations in progress.
    ToggleRotations,
    /// Type a character into the active input.
    Input(char),
    /// Delete the last character of the active input.
    InputBackspace,
    /// Submit the active input.
    InputSubmit,
    /// Close the active input or dialog.
    InputCancel,
    /// Complete the palette command.
    InputComplete,
    /// Recall an older palette command.
    HistoryPrev,
    /// Recall a newer palette command.
    HistoryNext,
    /// Move the focus between the dialog's buttons.
    ToggleFocus,
    /// Ask to disable the selected or marked keys.
    RequestDisable,
    /// Ask to enable the selected or marked keys.
    RequestEnable,
    /// Ask to revoke the selected or marked keys.
    RequestRevoke,
    /// Ask to rotate the selected key.
    RequestRotate,
    /// Reveal or hide the new secret in the secret dialog.
    RevealSecret,
    /// Copy the new secret to the clipboard (OSC 52).
    CopySecret,
    /// Close the secret dialog; the secret is forgotten.
    CloseSecret,
    /// Lengthen (`true`) or shorten the grace period in the rotate confirm dialog.
    AdjustGrace(bool),
    /// Ask to unlock write mode.
    RequestWrite,
    /// Return to read-only mode.
    SetReadOnly,
    /// Sync every provider now.
    StartSync,
    /// Freeze or resume live updates.
    ToggleFreeze,
    /// Export the keys view.
    Export(ExportFormat),
    /// Acknowledge the selected finding (asks for a note).
    Acknowledge,
    /// Suppress the selected finding (asks for a note).
    Suppress,
    /// Show the events of the selected key (or all events).
    ShowKeyEvents,
    /// Cycle the `outcome:` term of the events filter.
    CycleOutcome,
    /// Terminal resized to width, height.
    Resize(u16, u16),
    /// Mouse click at column, row.
    Click(u16, u16),
    /// Mouse wheel down.
    ScrollDown,
    /// Mouse wheel up.
    ScrollUp,
    /// The clock moved (injected, so renders never read the clock).
    Clock(DateTime<Utc>),
    /// Stop the running import; what was committed stays.
    StopImport,

    /// The first keys of the list, in list order, and how many keys there are in all:
    /// shown while the whole list loads.
    KeysPreviewed(Arc<Vec<KeyRow>>, usize),
    /// The key list was (re)loaded from the cache.
    KeysLoaded(Arc<Vec<KeyRow>>),
    /// A filter run finished: generation and the indices of the shown keys, in order.
    FilterApplied(u64, Arc<Vec<usize>>),
    /// The detail of a key was loaded.
    DetailLoaded(Box<Detail>),
    /// A page of the events walk of a generation was read.
    EventsLoaded(u64, Walk, Box<EventsPage>),
    /// A read of the events walk of a generation gave up: a newer one replaced it.
    EventsSuperseded(u64),
    /// The per-hour histogram of the events a generation's filter matches (oldest hour
    /// first), read after its first page.
    HistogramLoaded(u64, Vec<u64>),
    /// The findings were loaded.
    FindingsLoaded(Vec<Finding>),
    /// The journal was loaded (newest first).
    JournalLoaded(Vec<JournalEntry>),
    /// The rotations in progress were read (or why they could not be).
    RotationsLoaded(Result<Vec<crate::tui::dialog::rotations::RotationRow>, String>),
    /// The providers were loaded.
    ProvidersLoaded(Vec<ProviderInfo>),
    /// The imported files (sources of an offline review) were loaded.
    SourcesLoaded(Vec<crate::store::ImportedFile>),
    /// A read of the cache failed.
    LoadFailed(String),
    /// A sync reported progress.
    SyncProgressed(SyncProgress),
    /// One provider's sync finished (error text on failure).
    SyncFinished(String, Result<String, String>),
    /// Every provider's sync finished.
    SyncAllFinished,
    /// A key operation finished: operation, journal target, new status or error.
    KeyOpFinished(KeyOp, String, Result<KeyStatus, String>),
    /// A rotation delivered its new secret to the screen (shown once, then dropped).
    RotateFinished(Box<Rotated>),
    /// A rotation failed or was rolled back: `provider/key_id` and why.
    RotateFailed(String, String),
    /// Where a key's guided rotation stands, or why it cannot be guided.
    GuidedPlanned(Result<crate::tui::dialog::guided::Planned, String>),
    /// A guided rotation started or its old key was revoked: `provider/key_id` and the
    /// workflow's status line, or why not.
    GuidedFinished(String, Result<String, String>),
    /// A finding's status was changed.
    FindingUpdated(String, FindingStatus),
    /// An export finished: the file written or the error.
    ExportFinished(Result<PathBuf, String>),
    /// The import reported progress (after every commit, and every 200 ms).
    ImportProgressed(ImportProgress),
    /// The import ended (finished, stopped, or the cache failed).
    ImportFinished(Box<ImportReport>),
    /// Detection after the import ended: the status line, or the error.
    DetectionFinished(Result<String, String>),
    /// The team store connected, was lost, or announced a change.
    Team(crate::store::team::live::Signal),
    /// Team decisions changed findings of this cache (they were applied).
    TeamDecided(Vec<crate::store::shared::Decision>),
    /// The other responders connected, and what they hold.
    TeamMembers(Vec<crate::store::shared::Member>),
}

/// IO that `update` asks for; the runner performs it and answers with actions.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Read every key from the cache.
    LoadKeys,
    /// Filter and sort the keys off the UI thread.
    Filter(FilterJob),
    /// Read the detail of a key (cache handle) as of a time; its events only from the
    /// third field on (the exposure time of the finding it was opened from).
    LoadDetail(i64, DateTime<Utc>, Option<DateTime<Utc>>),
    /// Read one page of the events view's filtered walk.
    LoadEvents(EventsRequest),
    /// Read the findings.
    LoadFindings,
    /// Read the journal.
    LoadJournal,
    /// Read the rotations in progress.
    LoadRotations,
    /// Read the providers and the imported files.
    LoadProviders,
    /// Sync every provider.
    Sync,
    /// Apply a confirmed operation to keys, one journaled call each, with the
    /// operator's reason.
    ApplyKeyOp(KeyOp, Vec<Key>, String),
    /// Rotate one key through the rotation workflow; the new secret goes to the screen.
    Rotate {
        key: Box<Key>,
        /// How long the old key keeps working.
        grace: std::time::Duration,
        /// The operator's reason, for the journal.
        reason: String,
    },
    /// Look up where a key's guided rotation stands (`dialog::guided`).
    PlanGuided(Box<KeyRow>),
    /// Start a guided rotation, or revoke the quiet old key of `workflow`.
    RotateGuided {
        key: Box<Key>,
        /// The operator's reason, for the journal.
        reason: String,
        workflow: Option<i64>,
    },
    /// Write the secret to the terminal's clipboard (OSC 52).
    CopyToClipboard(Secret),
    /// Set a finding's status with a note and journal it.
    SetFindingStatus {
        id: String,
        target: String,
        status: FindingStatus,
        note: String,
    },
    /// Write keys to a private file in the current directory.
    Export(ExportFormat, Vec<KeyRow>),
    /// Run the import of `keyaudit open` into the cache.
    Import,
    /// Stop the running import after the batch it is on.
    StopImport,
    /// Run detection over what the import added.
    Detect,
    /// Apply the team's decisions to the cache: the new ones, or all of them (after a
    /// sync opened findings, or a reconnection).
    PullDecisions { all: bool },
    /// Read who else is connected to the team store.
    LoadMembers,
}

/// A finished rotation, for the secret dialog. `Debug` shows only the display prefix of
/// the secret.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The key that was replaced.
    pub key: Key,
    /// The new key's id.
    pub new_key_id: String,
    /// Until when the old key works (`None`: it stopped at once).
    pub grace_until: Option<DateTime<Utc>>,
    /// The rotation workflow (`keyaudit workflows`).
    pub workflow: i64,
    /// A note of the workflow (a verification to retry, …).
    pub note: Option<String>,
    /// The new secret.
    pub secret: Secret,
}

/// One filter run: everything it needs, so it runs anywhere.
#[derive(Debug, Clone)]
pub struct FilterJob {
    /// Increases with every query; a newer job supersedes an older one.
    pub generation: u64,
    pub query: String,
    pub sort: Sort,
    pub keys: Arc<Vec<KeyRow>>,
    /// A previous result this query can only narrow (the query grew).
    pub base: Option<Arc<Vec<usize>>>,
    pub now: DateTime<Utc>,
}
