//! The one keymap table. It dispatches keys, completes `:` commands, fills the hint bar
//! and writes the `?` help and docs/keys.md, so none of them can disagree.

use super::action::{Action, ExportFormat, View};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

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
}

impl Context {
    /// Every context, in help order.
    pub const ALL: [Context; 9] = [
        Context::Global,
        Context::Keys,
        Context::Detail,
        Context::Events,
        Context::Findings,
        Context::Input,
        Context::Confirm,
        Context::Secret,
        Context::Help,
    ];

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
        }
    }
}

macro_rules! commands {
    ($($variant:ident = $name:literal, $ctx:ident, $hint:expr, $help:literal, [$($key:literal),*];)+) => {
        /// A named thing the operator can do: bound to keys, typed as `:name`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Command { $($variant),+ }

        impl Command {
            /// Every command, in help order.
            pub const ALL: &'static [Command] = &[$(Command::$variant),+];

            /// The name used in `:name` and in `[tui.keys]`.
            pub fn name(self) -> &'static str {
                match self { $(Command::$variant => $name),+ }
            }

            /// Where its default keys apply.
            pub fn context(self) -> Context {
                match self { $(Command::$variant => Context::$ctx),+ }
            }

            /// Short label in the hint bar (`None`: not hinted).
            pub fn hint(self) -> Option<&'static str> {
                match self { $(Command::$variant => $hint),+ }
            }

            /// One line of help.
            pub fn help(self) -> &'static str {
                match self { $(Command::$variant => $help),+ }
            }

            /// The default keys.
            pub fn default_keys(self) -> &'static [&'static str] {
                match self { $(Command::$variant => &[$($key),*]),+ }
            }
        }
    };
}

commands! {
    Quit = "quit", Global, Some("quit"), "Leave keyaudit", ["q", "ctrl-c"];
    NextView = "next-view", Global, None, "Show the next view", ["tab"];
    PrevView = "prev-view", Global, None, "Show the previous view", ["shift-tab"];
    Keys = "keys", Global, None, "Show the keys view", ["1"];
    Detail = "detail", Global, None, "Show the key detail view", ["2"];
    Events = "events", Global, None, "Show the events view", ["3"];
    Findings = "findings", Global, None, "Show the findings view", ["4"];
    Journal = "journal", Global, None, "Show the journal view", ["5"];
    Providers = "providers", Global, None, "Show the providers view", ["6"];
    Down = "down", Global, None, "Select the next row", ["j", "down"];
    Up = "up", Global, None, "Select the previous row", ["k", "up"];
    PageDown = "page-down", Global, None, "Select one page down", ["pgdn", "ctrl-f"];
    PageUp = "page-up", Global, None, "Select one page up", ["pgup", "ctrl-b"];
    First = "first", Global, None, "Select the first row", ["g", "home"];
    Last = "last", Global, None, "Select the last row", ["G", "end"];
    Open = "open", Global, Some("detail"), "Open the selected key (or the key of a finding or event)", ["enter"];
    Back = "back", Global, None, "Go back; clear the filter in the keys view", ["esc"];
    Filter = "filter", Global, Some("filter"), "Filter keys, or every event in the events view", ["/"];
    Palette = "palette", Global, Some("cmd"), "Open the command palette", [":"];
    Help = "help", Global, Some("help"), "Show every key binding", ["?"];
    Sync = "sync", Global, Some("sync"), "Sync every provider now", ["R"];
    Freeze = "freeze", Global, Some("freeze"), "Freeze or resume live updates", ["f"];
    Write = "write", Global, None, "Unlock write mode (asks for confirmation)", [];
    ReadOnly = "ro", Global, None, "Return to read-only mode", [];
    ExportCsv = "export", Global, None, "Export the keys view to a private CSV file here (`:export json` for JSON)", [];
    ExportJson = "export-json", Global, None, "Export the keys view to a private JSON file here", [];
    Mark = "mark", Keys, Some("mark"), "Mark or unmark the selected key", ["space"];
    Unmark = "unmark-all", Keys, None, "Unmark every key", ["u"];
    Sort = "sort", Keys, Some("sort"), "Sort by the next column", ["s"];
    ReverseSort = "reverse-sort", Keys, None, "Reverse the sort order", ["S"];
    Disable = "disable", Keys, Some("disable"), "Disable the selected or marked keys (reversible)", ["d"];
    Enable = "enable", Keys, None, "Enable the selected or marked keys", ["e"];
    Revoke = "revoke", Keys, Some("revoke"), "Revoke the selected or marked keys (permanent)", ["D"];
    Rotate = "rotate", Keys, None, "Rotate the selected key; the new secret is shown once", ["r"];
    KeyEvents = "key-events", Keys, Some("events"), "Show the events of the selected key", ["E"];
    DetailDisable = "detail-disable", Detail, Some("disable"), "Disable this key (reversible)", ["d"];
    DetailEnable = "detail-enable", Detail, None, "Enable this key", ["e"];
    DetailRevoke = "detail-revoke", Detail, Some("revoke"), "Revoke this key (permanent)", ["D"];
    DetailRotate = "detail-rotate", Detail, None, "Rotate this key; the new secret is shown once", ["r"];
    DetailEvents = "detail-events", Detail, Some("events"), "Show this key's events", ["E"];
    Outcome = "outcome", Events, Some("outcome"), "Cycle the filter's outcome: term: all, success, denied, error", ["o"];
    AllEvents = "all-events", Events, Some("all keys"), "Show the events of all keys", ["a"];
    Acknowledge = "acknowledge", Findings, Some("ack"), "Acknowledge the selected finding with a note", ["a"];
    Suppress = "suppress", Findings, Some("suppress"), "Suppress the selected finding with a note", ["x"];
    Submit = "submit", Input, Some("apply"), "Apply the filter, run the command, save the note", ["enter"];
    Cancel = "cancel", Input, Some("cancel"), "Close the input (esc clears the filter)", ["esc"];
    DeleteChar = "delete-char", Input, None, "Delete the last character", ["backspace"];
    Complete = "complete", Input, None, "Complete the command", ["tab"];
    HistoryPrev = "history-prev", Input, None, "Recall an older command", ["up"];
    HistoryNext = "history-next", Input, None, "Recall a newer command", ["down"];
    ConfirmFocus = "confirm-focus", Confirm, Some("switch"), "Move between Cancel and Confirm", ["tab", "left", "right"];
    ConfirmSubmit = "confirm-submit", Confirm, Some("press"), "Press the focused button", ["enter"];
    ConfirmCancel = "confirm-cancel", Confirm, Some("cancel"), "Cancel", ["esc"];
    GraceLonger = "grace-longer", Confirm, None, "Rotate: lengthen the old key's grace period", ["up"];
    GraceShorter = "grace-shorter", Confirm, None, "Rotate: shorten the old key's grace period", ["down"];
    ConfirmDelete = "confirm-delete-char", Confirm, None, "Delete the last typed character", ["backspace"];
    SecretReveal = "secret-reveal", Secret, Some("reveal"), "Reveal or hide the new secret", ["v"];
    SecretCopy = "secret-copy", Secret, Some("copy"), "Copy the new secret to the clipboard (OSC 52)", ["c"];
    SecretClose = "secret-close", Secret, Some("close"), "Close the dialog; the secret is forgotten", ["esc", "enter"];
    CloseHelp = "close-help", Help, Some("close"), "Close the help", ["esc", "?", "q"];
    HelpDown = "help-down", Help, None, "Scroll the help down", ["j", "down"];
    HelpUp = "help-up", Help, None, "Scroll the help up", ["k", "up"];
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
            Context::Global | Context::Keys | Context::Detail | Context::Events | Context::Findings
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

/// The active keymap: the defaults with the config's rebindings in front.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
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
    fn default() -> Self {
        let bindings = Command::ALL
            .iter()
            .flat_map(|c| {
                c.default_keys().iter().map(|k| Binding {
                    chord: k.to_string(),
                    command: *c,
                    context: c.context(),
                })
            })
            .collect();
        Keymap { bindings }
    }
}

impl Keymap {
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
    pub fn hints(&self, contexts: &[Context], write: bool) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for ctx in contexts {
            for c in Command::ALL.iter().filter(|c| c.context() == *ctx) {
                if c.is_destructive() && !write {
                    continue;
                }
                let (Some(label), Some(key)) = (c.hint(), self.keys_of(*c).first().copied()) else {
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
    pub fn help_sections(&self) -> Vec<(Context, Vec<(String, &'static str)>)> {
        Context::ALL
            .iter()
            .map(|ctx| {
                let lines = Command::ALL
                    .iter()
                    .filter(|c| c.context() == *ctx)
                    .map(|c| {
                        let keys = self.keys_of(*c);
                        let keys = if keys.is_empty() {
                            format!(":{}", c.name())
                        } else {
                            keys.join(", ")
                        };
                        (keys, c.help())
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
             Generated from the keymap table in `src/tui/keymap.rs` (a test keeps this file in step).\n\
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
            for c in Command::ALL.iter().filter(|c| c.context() == ctx) {
                let keys = self.keys_of(*c);
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
                s.push_str(&format!("| {keys} | {name} | {} |\n", c.help()));
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
