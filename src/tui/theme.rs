//! Colours: a dark and a light theme, chosen by `[tui] theme`.

use ratatui::style::{Color, Modifier, Style};

/// The colours of every element the views draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theme {
    pub base: Style,
    pub dim: Style,
    pub header: Style,
    pub title: Style,
    pub selected: Style,
    pub marked: Style,
    pub production: Style,
    pub stale: Style,
    pub expiring: Style,
    pub good: Style,
    pub bad: Style,
    pub badge_ro: Style,
    pub badge_rw: Style,
    pub badge_demo: Style,
    pub key_hint: Style,
    pub critical: Style,
    pub high: Style,
    pub medium: Style,
    pub low: Style,
}

impl Theme {
    /// The theme named in the config (`dark` unless `light`).
    pub fn named(name: &str) -> Theme {
        if name.eq_ignore_ascii_case("light") {
            Theme::light()
        } else {
            Theme::dark()
        }
    }

    /// Light text on a dark terminal.
    pub fn dark() -> Theme {
        Theme {
            base: Style::default(),
            dim: Style::default().fg(Color::DarkGray),
            header: Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            title: Style::default()
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            selected: Style::default().bg(Color::Blue).fg(Color::White),
            marked: Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            production: Style::default()
                .fg(Color::Magenta)
                .add_modifier(Modifier::BOLD),
            stale: Style::default().fg(Color::Yellow),
            expiring: Style::default().fg(Color::LightRed),
            good: Style::default().fg(Color::Green),
            bad: Style::default().fg(Color::Red),
            badge_ro: Style::default().bg(Color::Green).fg(Color::Black),
            badge_rw: Style::default()
                .bg(Color::Red)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            badge_demo: Style::default().bg(Color::Yellow).fg(Color::Black),
            key_hint: Style::default().fg(Color::Cyan),
            critical: Style::default()
                .bg(Color::Red)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            high: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            medium: Style::default().fg(Color::Yellow),
            low: Style::default().fg(Color::Gray),
        }
    }

    /// Dark text on a light terminal.
    pub fn light() -> Theme {
        Theme {
            dim: Style::default().fg(Color::Gray),
            title: Style::default()
                .fg(Color::Black)
                .add_modifier(Modifier::BOLD),
            header: Style::default()
                .fg(Color::Blue)
                .add_modifier(Modifier::BOLD),
            selected: Style::default().bg(Color::LightBlue).fg(Color::Black),
            marked: Style::default()
                .fg(Color::Rgb(160, 90, 0))
                .add_modifier(Modifier::BOLD),
            stale: Style::default().fg(Color::Rgb(160, 90, 0)),
            expiring: Style::default().fg(Color::Red),
            key_hint: Style::default().fg(Color::Blue),
            low: Style::default().fg(Color::DarkGray),
            ..Theme::dark()
        }
    }
}
