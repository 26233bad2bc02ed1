//! The one keymap table. It dispatches keys, completes `:` commands, fills the hint bar
//! and writes the `?` help and docs/keys.md, so none of them can disagree.
//!
//! The commands and their actions are code; their default keys, hint labels and help
//! lines are the default keymap file `assets/tui/keymap.toml`, embedded at build time and
//! read at start. The config's `[tui.keys]` rebinds keys on top of it.

use super::action::{Action, ExportFormat, View};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The default keymap, `assets/tui/keymap.toml`.
pub const DEFAULT_KEYMAP: &str = include_str!("../../assets/tui/keymap.toml");

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Context {
    /// Every view (unless a view binds the same key).
    Global,
    /// The keys table.
    Keys,
    /// The key detail.
    Detail,
    /// The events log.
    Events,
    /// The findings list.
    Findings,
    /// Typing a filter, a command or a note.
    Input,
    /// A confirm dialog.
    Confirm,
    /// The dialog that shows a new secret once.
    Secret,
    /// The help overlay.
    Help,
    /// While an import runs (`keyaudit open`), in every view.
    Import,
}

impl Context {
    /// Every context, in help order.
    pub const ALL: [Context; 10] = [
        Context::Global,
        Context::Import,
        Context::Keys,
        Context::Detail,
        Context::Events,
        Context::Findings,
        Context::Input,
        Context::Confirm,
        Context::Secret,
        Context::Help,
    ];

    /// The name of the context's section in the keymap file.
    pub fn section(self) -> &'static str {
        match self {
            Context::Global => "global",
            Context::Keys => "keys",
            Context::Detail => "detail",
            Context::Events => "events",
            Context::Findings => "findings",
            Context::Input => "input",
            Context::Confirm => "confirm",
            Context::Secret => "secret",
            Context::Help => "help",
            Context::Import => "import",
        }
    }

    /// The title of the context's section in the help.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Keys => "Keys view",
            Context::Detail => "Key detail",
            Context::Events => "Events view",
            Context::Findings => "Findings view",
            Context::Input => "Filter, command and note input",
            Context::Confirm => "Confirm dialog",
            Context::Secret => "New secret dialog",
            Context::Help => "Help",
            Context::Import => "While an import runs",
        }
    }
}

macro_rules! commands {
    ($($variant:ident = $name:literal, $ctx:ident;)+) => {
        /// A named thing the operator can do: bound to keys, typed as `:name`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Command { $($variant),+ }

        impl Command {
            /// Every command, in help order.
            pub const ALL: &'static [Command] = &[$(Command::$variant),+];

            /// The name used in `:name`, in `[tui.keys]` and in the keymap file.
            pub fn name(self) -> &'static str {
                match self { $(Command::$variant => $name),+ }
            }

            /// Where its keys apply: the state its action works on.
            pub fn context(self) -> Context {
                match self { $(Command::$variant => Context::$ctx),+ }
            }
        }
    };
}

// The commands and where each applies. Their default keys, hint labels and help lines
// are in the default keymap file, assets/tui/keymap.toml.
commands! {
    Quit = "quit", Global;
    NextView = "next-view", Global;
    PrevView = "prev-view", Global;
    Keys = "keys", Global;
    Detail = "detail", Global;
    Events = "events", Global;
    Findings = "findings", Global;
    Journal = "journal", Global;
    Providers = "providers", Global;
    Rotations = "rotations", Global;
    Down = "down", Global;
    Up = "up", Global;
    PageDown = "page-down", Global;
    PageUp = "page-up", Global;
    First = "first", Global;
    Last = "last", Global;
    Open = "open", Global;
    Back = "back", Global;
    Filter = "filter", Global;
    Palette = "palette", Global;
    Help = "help", Global;
    Sync = "sync", Global;
    Freeze = "freeze", Global;
    Write = "write", Global;
    ReadOnly = "ro", Global;
    ExportCsv = "export", Global;
    ExportJson = "export-json", Global;
    StopImport = "stop-import", Import;
    Mark = "mark", Keys;
    Unmark = "unmark-all", Keys;
    Sort = "sort", Keys;
    ReverseSort = "reverse-sort", Keys;
    Disable = "disable", Keys;
    Enable = "enable", Keys;
    Revoke = "revoke", Keys;
    Rotate = "rotate", Keys;
    KeyEvents = "key-events", Keys;
    DetailDisable = "detail-disable", Detail;
    DetailEnable = "detail-enable", Detail;
    DetailRevoke = "detail-revoke", Detail;
    DetailRotate = "detail-rotate", Detail;
    DetailEvents = "detail-events", Detail;
    Outcome = "outcome", Events;
    AllEvents = "all-events", Events;
    Acknowledge = "acknowledge", Findings;
    Suppress = "suppress", Findings;
    Submit = "submit", Input;
    Cancel = "cancel", Input;
    DeleteChar = "delete-char", Input;
    Complete = "complete", Input;
    HistoryPrev = "history-prev", Input;
    HistoryNext = "history-next", Input;
    ConfirmFocus = "confirm-focus", Confirm;
    ConfirmSubmit = "confirm-submit", Confirm;
    ConfirmCancel = "confirm-cancel", Confirm;
    GraceLonger = "grace-longer", Confirm;
    GraceShorter = "grace-shorter", Confirm;
    ConfirmDelete = "confirm-delete-char", Confirm;
    SecretReveal = "secret-reveal", Secret;
    SecretCopy = "secret-copy", Secret;
    SecretClose = "secret-close", Secret;
    CloseHelp = "close-help", Help;
    HelpDown = "help-down", Help;
    HelpUp = "help-up", Help;
}

impl Command {
    /// The action the command stands for.
    pub fn action(self) -> Action {
        use Command as C;
        match self {
            C::Quit => Action::Quit,
            C::NextView => Action::NextView,
            C::PrevView => Action::PrevView,
            C::Keys => Action::ShowView(View::Keys),
            C::Detail => Action::ShowView(View::Detail),
            C::Events => Action::ShowView(View::Events),
            C::Findings => Action::ShowView(View::Findings),
            C::Journal => Action::ShowView(View::Journal),
            C::Providers => Action::ShowView(View::Providers),
            C::Rotations => Action::ToggleRotations,
            C::Down | C::HelpDown => Action::SelectNext,
            C::Up | C::HelpUp => Action::SelectPrev,
            C::PageDown => Action::PageDown,
            C::PageUp => Action::PageUp,
            C::First => Action::SelectFirst,
            C::Last => Action::SelectLast,
            C::Open => Action::OpenDetail,
            C::Back => Action::Back,
            C::Filter => Action::StartFilter,
            C::Palette => Action::StartPalette,
            C::Help | C::CloseHelp => Action::ToggleHelp,
            C::Sync => Action::StartSync,
            C::Freeze => Action::ToggleFreeze,
            C::Write => Action::RequestWrite,
            C::ReadOnly => Action::SetReadOnly,
            C::ExportCsv => Action::Export(ExportFormat::Csv),
            C::ExportJson => Action::Export(ExportFormat::Json),
            C::StopImport => Action::StopImport,
            C::Mark => Action::ToggleMark,
            C::Unmark => Action::ClearMarks,
            C::Sort => Action::CycleSort,
            C::ReverseSort => Action::ReverseSort,
            C::Disable | C::DetailDisable => Action::RequestDisable,
            C::Enable | C::DetailEnable => Action::RequestEnable,
            C::Revoke | C::DetailRevoke => Action::RequestRevoke,
            C::Rotate | C::DetailRotate => Action::RequestRotate,
            C::KeyEvents | C::DetailEvents => Action::ShowKeyEvents,
            C::Outcome => Action::CycleOutcome,
            C::AllEvents => Action::ShowKeyEvents,
            C::Acknowledge => Action::Acknowledge,
            C::Suppress => Action::Suppress,
            C::Submit | C::ConfirmSubmit => Action::InputSubmit,
            C::Cancel | C::ConfirmCancel => Action::InputCancel,
            C::DeleteChar | C::ConfirmDelete => Action::InputBackspace,
            C::Complete => Action::InputComplete,
            C::HistoryPrev => Action::HistoryPrev,
            C::HistoryNext => Action::HistoryNext,
            C::ConfirmFocus => Action::ToggleFocus,
            C::GraceLonger => Action::AdjustGrace(true),
            C::GraceShorter => Action::AdjustGrace(false),
            C::SecretReveal => Action::RevealSecret,
            C::SecretCopy => Action::CopySecret,
            C::SecretClose => Action::CloseSecret,
        }
    }

    /// True for commands that change something at a provider (hidden in read-only mode).
    pub fn is_destructive(self) -> bool {
        use Command as C;
        matches!(
            self,
            C::Disable
                | C::Enable
                | C::Revoke
                | C::Rotate
                | C::DetailDisable
                | C::DetailEnable
                | C::DetailRevoke
                | C::DetailRotate
        )
    }

    /// True for commands that can be typed in the `:` palette.
    pub fn in_palette(self) -> bool {
        matches!(
            self.context(),
            Context::Global
                | Context::Import
                | Context::Keys
                | Context::Detail
                | Context::Events
                | Context::Findings
        )
    }

    /// The command with this name.
    pub fn by_name(name: &str) -> Option<Command> {
        Command::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// One key bound to a command in a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub chord: String,
    pub command: Command,
    pub context: Context,
}

/// A command's entry in the keymap file: what the hint bar and the help say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub command: Command,
    /// Short label in the hint bar (`None`: not hinted).
    pub hint: Option<String>,
    /// One line of help.
    pub desc: String,
}

/// The active keymap: the defaults with the config's rebindings in front.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
    /// Every command once, grouped by context in help order.
    pub entries: Vec<Entry>,
}

/// A keymap file that cannot be used (the embedded one is checked by a test).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keymap file: {0}")]
pub struct KeymapFileError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    keymap: Vec<FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    on: Vec<String>,
    run: String,
    hint: Option<String>,
    desc: String,
}

/// A `[tui.keys]` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[tui.keys] \"{chord}\" = \"{action}\": {message}")]
pub struct KeymapError {
    pub chord: String,
    pub action: String,
    pub message: String,
}

const NAMED_KEYS: &[&str] = &[
    "enter",
    "esc",
    "tab",
    "backspace",
    "space",
    "up",
    "down",
    "left",
    "right",
    "pgup",
    "pgdn",
    "home",
    "end",
    "del",
    "insert",
];

/// Checks a chord's spelling: `ctrl-r`, `alt-x`, `shift-tab`, `D`, `f5`, `pgdn`.
pub fn valid_chord(chord: &str) -> bool {
    let mut rest = chord;
    while let Some(r) = rest
        .strip_prefix("ctrl-")
        .or_else(|| rest.strip_prefix("alt-"))
        .or_else(|| rest.strip_prefix("shift-"))
    {
        rest = r;
    }
    rest.chars().count() == 1
        || NAMED_KEYS.contains(&rest)
        || rest
            .strip_prefix('f')
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=12).contains(&n))
}

/// The chord of a terminal key event, spelled as in the keymap.
pub fn chord_of(ev: &KeyEvent) -> Option<String> {
    let m = ev.modifiers;
    let mut prefix = String::new();
    if m.contains(KeyModifiers::CONTROL) {
        prefix.push_str("ctrl-");
    }
    if m.contains(KeyModifiers::ALT) {
        prefix.push_str("alt-");
    }
    let base = match ev.code {
        KeyCode::Char(' ') => "space".to_string(),
        KeyCode::Char(c) if !prefix.is_empty() => c.to_ascii_lowercase().to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::BackTab => return Some("shift-tab".into()),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::Up => "up".into(),
        KeyCode::Down => "down".into(),
        KeyCode::Left => "left".into(),
        KeyCode::Right => "right".into(),
        KeyCode::PageUp => "pgup".into(),
        KeyCode::PageDown => "pgdn".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::Delete => "del".into(),
        KeyCode::Insert => "insert".into(),
        KeyCode::F(n) => format!("f{n}"),
        _ => return None,
    };
    Some(format!("{prefix}{base}"))
}

impl Default for Keymap {
    /// The embedded default keymap.
    fn default() -> Self {
        Keymap::from_toml(DEFAULT_KEYMAP)
            .expect("assets/tui/keymap.toml is valid (a test parses it)")
    }
}

impl Keymap {
    /// Reads a keymap file: one section per context, one entry per command. Every command
    /// must appear once, under its own context, with valid keys, none bound twice there.
    pub fn from_toml(text: &str) -> Result<Keymap, KeymapFileError> {
        let err = KeymapFileError;
        let mut file: BTreeMap<String, FileSection> =
            toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if let Some(unknown) = file
            .keys()
            .find(|name| !Context::ALL.iter().any(|c| c.section() == name.as_str()))
        {
            let known: Vec<&str> = Context::ALL.iter().map(|c| c.section()).collect();
            return Err(err(format!(
                "unknown section [{unknown}]; sections: {}",
                known.join(", ")
            )));
        }
        let mut bindings: Vec<Binding> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        for ctx in Context::ALL {
            let Some(section) = file.remove(ctx.section()) else {
                continue;
            };
            for e in section.keymap {
                let command = Command::by_name(&e.run).ok_or_else(|| {
                    err(format!("[{}]: unknown command `{}`", ctx.section(), e.run))
                })?;
                if command.context() != ctx {
                    return Err(err(format!(
                        "[{}]: `{}` applies in [{}], not here",
                        ctx.section(),
                        e.run,
                        command.context().section()
                    )));
                }
                if entries.iter().any(|x| x.command == command) {
                    return Err(err(format!("`{}` is listed twice", e.run)));
                }
                for chord in e.on {
                    if !valid_chord(&chord) {
                        return Err(err(format!("`{}`: \"{chord}\" is not a key", e.run)));
                    }
                    if let Some(b) = bindings
                        .iter()
                        .find(|b| b.context == ctx && b.chord == chord)
                    {
                        return Err(err(format!(
                            "[{}]: \"{chord}\" is bound to both `{}` and `{}`",
                            ctx.section(),
                            b.command.name(),
                            e.run
                        )));
                    }
                    bindings.push(Binding {
                        chord,
                        command,
                        context: ctx,
                    });
                }
                entries.push(Entry {
                    command,
                    hint: e.hint,
                    desc: e.desc,
                });
            }
        }
        if let Some(missing) = Command::ALL
            .iter()
            .find(|c| !entries.iter().any(|e| e.command == **c))
        {
            return Err(err(format!(
                "`{}` has no entry (under [{}])",
                missing.name(),
                missing.context().section()
            )));
        }
        Ok(Keymap { bindings, entries })
    }

    /// The entries of one context, in help order.
    fn entries_of(&self, ctx: Context) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |e| e.command.context() == ctx)
    }

    /// The defaults with `[tui.keys]` rebindings (`chord = command name`) taking precedence.
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> Result<Keymap, KeymapError> {
        let mut map = Keymap::default();
        let mut extra = Vec::new();
        for (chord, name) in overrides {
            let err = |message: String| KeymapError {
                chord: chord.clone(),
                action: name.clone(),
                message,
            };
            if !valid_chord(chord) {
                return Err(err(
                    "not a key; write e.g. \"ctrl-r\", \"alt-x\", \"D\", \"f5\", \"pgdn\"".into(),
                ));
            }
            let command = Command::by_name(name).ok_or_else(|| {
                let names: Vec<&str> = Command::ALL.iter().map(|c| c.name()).collect();
                err(format!(
                    "unknown action `{name}`; actions: {}",
                    names.join(", ")
                ))
            })?;
            extra.push(Binding {
                chord: chord.clone(),
                command,
                context: command.context(),
            });
        }
        map.bindings.retain(|b| {
            !extra
                .iter()
                .any(|e| e.chord == b.chord && e.context == b.context)
        });
        extra.append(&mut map.bindings);
        map.bindings = extra;
        Ok(map)
    }

    /// The command a chord means in these contexts (the first context wins).
    pub fn lookup(&self, chord: &str, contexts: &[Context]) -> Option<Command> {
        contexts.iter().find_map(|ctx| {
            self.bindings
                .iter()
                .find(|b| b.context == *ctx && b.chord == chord)
                .map(|b| b.command)
        })
    }

    /// The keys bound to a command, in table order.
    pub fn keys_of(&self, command: Command) -> Vec<&str> {
        self.bindings
            .iter()
            .filter(|b| b.command == command)
            .map(|b| b.chord.as_str())
            .collect()
    }

    /// The hint bar's entries for these contexts: `(first key, label)`.
    pub fn hints(&self, contexts: &[Context], write: bool) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for ctx in contexts {
            for e in self.entries_of(*ctx) {
                if e.command.is_destructive() && !write {
                    continue;
                }
                let (Some(label), Some(key)) =
                    (e.hint.as_deref(), self.keys_of(e.command).first().copied())
                else {
                    continue;
                };
                if !out.iter().any(|(_, l)| *l == label) {
                    out.push((key.to_string(), label));
                }
            }
        }
        out
    }

    /// The help: one section per context, one line per command with its keys.
    pub fn help_sections(&self) -> Vec<(Context, Vec<(String, &str)>)> {
        Context::ALL
            .iter()
            .map(|ctx| {
                let lines = self
                    .entries_of(*ctx)
                    .map(|e| {
                        let keys = self.keys_of(e.command);
                        let keys = if keys.is_empty() {
                            format!(":{}", e.command.name())
                        } else {
                            keys.join(", ")
                        };
                        (keys, e.desc.as_str())
                    })
                    .collect();
                (*ctx, lines)
            })
            .collect()
    }

    /// docs/keys.md, generated from the table.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "# Key bindings\n\n\
             Generated from the default keymap `assets/tui/keymap.toml` (a test keeps this file in step).\n\
             The same table dispatches keys, fills the hint bar and the `?` help, and completes `:` commands.\n\n\
             Rebind keys in the config:\n\n\
             ```toml\n[tui.keys]\n\"ctrl-r\" = \"sync\"\n```\n\n\
             Keys are spelled `ctrl-r`, `alt-x`, `shift-tab`, `D`, `f5`, `enter`, `esc`, `tab`, `space`,\n\
             `backspace`, `up`, `down`, `left`, `right`, `pgup`, `pgdn`, `home`, `end`. An unknown action\n\
             name is a configuration error naming the key.\n\n\
             Destructive actions (disable, enable, revoke, rotate) are hidden from the hint bar in read-only\n\
             mode and refused there; `:write` unlocks them after a confirmation.\n",
        );
        for (ctx, _) in self.help_sections() {
            s.push_str(&format!(
                "\n## {}\n\n| keys | action | what it does |\n|---|---|---|\n",
                ctx.title()
            ));
            for e in self.entries_of(ctx) {
                let c = e.command;
                let keys = self.keys_of(c);
                let keys = if keys.is_empty() {
                    "—".to_string()
                } else {
                    keys.iter()
                        .map(|k| format!("`{}`", k.replace('|', "\\|")))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let name = if c.in_palette() {
                    format!("`:{}`", c.name())
                } else {
                    format!("`{}`", c.name())
                };
                s.push_str(&format!("| {keys} | {name} | {} |\n", e.desc));
            }
        }
        s.push_str(
            "\n## Events filter\n\n\
             `/` in the events view filters every cached event, not only the rows on screen: \
             the cache is read newest first\n\
             through its time index, page by page as the selection nears the end of what is \
             shown, and a filter that\n\
             matches rarely keeps reading (in bounded, cancellable steps) until the screen is \
             full. The title says how\n\
             many events matched, how far back the search has reached and whether there are \
             more (`more…`).\n\
             The histogram above the list then counts the matching events of the last 24 \
             hours per hour\n\
             (its title says `matching events per hour`).\n\
             Terms combine with AND:\n\n\
             | term | keeps |\n|---|---|\n",
        );
        for (term, what) in crate::filter::event::TERMS {
            let term = if term.contains(' ') {
                term.to_string()
            } else {
                format!("`{term}`")
            };
            s.push_str(&format!("| {term} | {what} |\n"));
        }
        s.push_str(
            "\nIn the other views `/` filters keys: fuzzy text and field terms such as \
             `owner:acme env:prod unused>30d`\n\
             (the full grammar is in `src/filter/key.rs`).\n",
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebinding_takes_precedence_and_unknown_names_are_errors() {
        let mut o = BTreeMap::new();
        o.insert("ctrl-r".to_string(), "sync".to_string());
        let map = Keymap::with_overrides(&o).unwrap();
        assert_eq!(
            map.lookup("ctrl-r", &[Context::Keys, Context::Global]),
            Some(Command::Sync)
        );
        o.insert("ctrl-x".to_string(), "synk".to_string());
        let err = Keymap::with_overrides(&o).unwrap_err().to_string();
        assert!(
            err.contains("\"ctrl-x\"") && err.contains("unknown action `synk`"),
            "{err}"
        );
        let mut bad = BTreeMap::new();
        bad.insert("hyper-q".to_string(), "quit".to_string());
        assert!(Keymap::with_overrides(&bad).is_err());
    }

    #[test]
    fn view_bindings_shadow_global_ones() {
        let map = Keymap::default();
        assert_eq!(
            map.lookup("a", &[Context::Findings, Context::Global]),
            Some(Command::Acknowledge)
        );
        assert_eq!(
            map.lookup("D", &[Context::Keys, Context::Global]),
            Some(Command::Revoke)
        );
        let ev = KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert_eq!(chord_of(&ev).as_deref(), Some("ctrl-r"));
        let ev = KeyEvent::new(KeyCode::Char('D'), KeyModifiers::SHIFT);
        assert_eq!(chord_of(&ev).as_deref(), Some("D"));
    }

    #[test]
    fn every_default_chord_is_valid_and_read_only_hides_destructive_hints() {
        let map = Keymap::default();
        assert!(map.bindings.iter().all(|b| valid_chord(&b.chord)));
        let ro = map.hints(&[Context::Keys, Context::Global], false);
        assert!(!ro.iter().any(|(_, l)| *l == "revoke"));
        let rw = map.hints(&[Context::Keys, Context::Global], true);
        assert!(rw.iter().any(|(k, l)| k == "D" && *l == "revoke"));
    }

    #[test]
    fn the_embedded_keymap_parses_with_every_command_once_in_help_order() {
        let map = Keymap::from_toml(DEFAULT_KEYMAP).unwrap_or_else(|e| panic!("{e}"));
        let order: Vec<Command> = map.entries.iter().map(|e| e.command).collect();
        assert_eq!(order, Command::ALL);
        assert_eq!(map, Keymap::default());
        assert!(map.entries.iter().all(|e| !e.desc.trim().is_empty()));
    }

    #[test]
    fn a_bad_keymap_file_says_what_is_wrong() {
        let bad = |text: &str| Keymap::from_toml(text).unwrap_err().to_string();
        let one = |section: &str, entry: &str| {
            DEFAULT_KEYMAP.replacen(
                &format!("[{section}]\nkeymap = [\n"),
                &format!("[{section}]\nkeymap = [\n  {entry},\n"),
                1,
            )
        };
        assert!(
            bad("[global]\nkeymap = [ { on = [\"q\"], run = \"quit\" } ]")
                .contains("missing field `desc`")
        );
        assert!(bad("[nav]\nkeymap = []").contains("unknown section [nav]"));
        let e = bad(&one("keys", r#"{ on = ["x"], run = "quitt", desc = "x" }"#));
        assert!(e.contains("[keys]: unknown command `quitt`"), "{e}");
        let e = bad(&one(
            "findings",
            r#"{ on = ["Z"], run = "revoke", desc = "x" }"#,
        ));
        assert!(
            e.contains("[findings]: `revoke` applies in [keys], not here"),
            "{e}"
        );
        let e = bad(&DEFAULT_KEYMAP.replacen(
            r#"on = ["s"], run = "sort""#,
            r#"on = ["d"], run = "sort""#,
            1,
        ));
        assert!(
            e.contains(r#"[keys]: "d" is bound to both `sort` and `disable`"#),
            "{e}"
        );
        let e = bad(&DEFAULT_KEYMAP.replacen(
            r#"on = ["s"], run = "sort""#,
            r#"on = ["hyper-s"], run = "sort""#,
            1,
        ));
        assert!(e.contains(r#"`sort`: "hyper-s" is not a key"#), "{e}");
        let e = bad(&DEFAULT_KEYMAP.replacen(
            r#"  { on = ["s"], run = "sort", hint = "sort", desc = "Sort by the next column" },"#,
            "",
            1,
        ));
        assert!(e.contains("`sort` has no entry (under [keys])"), "{e}");
    }

    #[test]
    fn docs_keys_md_matches_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/keys.md");
        let want = Keymap::default().markdown();
        if std::env::var_os("KEYAUDIT_WRITE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/keys.md is out of date; regenerate with KEYAUDIT_WRITE_DOCS=1 cargo test --lib keymap"
        );
    }
}
