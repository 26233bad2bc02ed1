//! The `?` help overlay: every binding of the keymap by context, and the events filter's
//! terms.

use crate::tui::action::{Action, Effect};
use crate::tui::state::{Mode, State};
use crate::tui::strings as s;
use crate::tui::view::{block, centered};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

/// The help overlay's scroll position.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelpDialog {
    pub scroll: u16,
}

/// Applies the actions of the help overlay: open, close, scroll.
pub(crate) fn update(st: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::SelectNext => {
            st.help.scroll = st.help.scroll.saturating_add(1);
            Vec::new()
        }
        Action::SelectPrev => {
            st.help.scroll = st.help.scroll.saturating_sub(1);
            Vec::new()
        }
        Action::ToggleHelp => {
            st.mode = if st.mode == Mode::Help {
                Mode::Normal
            } else {
                st.help.scroll = 0;
                Mode::Help
            };
            Vec::new()
        }
        _ => Vec::new(),
    }
}

pub(crate) fn render(state: &State, f: &mut Frame, area: Rect) {
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
            .scroll((state.help.scroll, 0))
            .block(block(state, " help: keys (j/k scroll, esc close) ")),
        popup,
    );
}
