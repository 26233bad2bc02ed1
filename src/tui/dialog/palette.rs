//! The `:` command palette and the line being typed (palette or finding note): editing,
//! completion from the keymap's commands, history, running a command.

use crate::tui::action::{Action, Effect};
use crate::tui::keymap::Command;
use crate::tui::state::{Mode, State};
use crate::tui::strings as s;

/// The palette's history and completions.
#[derive(Debug, Clone, Default)]
pub struct Palette {
    /// Commands run, oldest first.
    pub history: Vec<String>,
    pub(crate) history_pos: Option<usize>,
    /// Completions of the palette input.
    pub completions: Vec<&'static str>,
}

impl State {
    pub(crate) fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            return Vec::new();
        };
        let arg = words.next();
        if self.palette.history.last().map(String::as_str) != Some(line) {
            self.palette.history.push(line.to_string());
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

    pub(crate) fn complete(&mut self) {
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
        self.palette.completions = names;
    }
}

/// Applies the actions of the palette and of the line being typed.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::StartPalette => {
            st.mode = Mode::Palette;
            st.input.clear();
            st.palette.completions.clear();
            st.palette.history_pos = None;
            Vec::new()
        }
        Action::Input(c) => match &st.mode {
            Mode::Palette | Mode::Note { .. } => {
                st.input.push(c);
                st.palette.completions.clear();
                Vec::new()
            }
            _ => Vec::new(),
        },
        Action::InputBackspace => match &st.mode {
            Mode::Palette | Mode::Note { .. } => {
                st.input.pop();
                Vec::new()
            }
            _ => Vec::new(),
        },
        Action::InputComplete => {
            if st.mode == Mode::Palette {
                st.complete();
            }
            Vec::new()
        }
        Action::HistoryPrev | Action::HistoryNext => {
            if st.mode != Mode::Palette || st.palette.history.is_empty() {
                return Vec::new();
            }
            let last = st.palette.history.len() - 1;
            let pos = match (
                st.palette.history_pos,
                matches!(action, Action::HistoryPrev),
            ) {
                (None, true) => Some(last),
                (None, false) => None,
                (Some(p), true) => Some(p.saturating_sub(1)),
                (Some(p), false) if p < last => Some(p + 1),
                (Some(_), false) => None,
            };
            st.palette.history_pos = pos;
            st.input = pos
                .map(|p| st.palette.history[p].clone())
                .unwrap_or_default();
            Vec::new()
        }
        Action::InputSubmit => match std::mem::replace(&mut st.mode, Mode::Normal) {
            Mode::Palette => {
                let line = std::mem::take(&mut st.input);
                st.palette.completions.clear();
                st.run_command(line.trim())
            }
            _ => Vec::new(),
        },
        Action::InputCancel => {
            let was = std::mem::replace(&mut st.mode, Mode::Normal);
            st.input.clear();
            st.palette.completions.clear();
            if was == Mode::Filter {
                return st.update(Action::ClearFilter);
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}
