//! Colours: a dark and a light theme, chosen by `[tui] theme`. Both are theme files,
//! `assets/tui/themes/{dark,light}.toml`, embedded at build time and read at start.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The dark theme, `assets/tui/themes/dark.toml`.
pub const DARK: &str = include_str!("../../assets/tui/themes/dark.toml");
/// The light theme, `assets/tui/themes/light.toml`.
pub const LIGHT: &str = include_str!("../../assets/tui/themes/light.toml");

/// A theme file that cannot be used (the embedded ones are checked by a test).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("theme file: {0}")]
pub struct ThemeError(pub String);

/// One element's style as written in a theme file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
}

macro_rules! elements {
    ($($name:ident),+ $(,)?) => {
        /// The colours of every element the views draw.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct Theme {
            $(pub $name: Style),+
        }

        impl Theme {
            /// Every element's name, as written in a theme file.
            pub const ELEMENTS: &'static [&'static str] = &[$(stringify!($name)),+];

            fn from_styles(mut styles: BTreeMap<String, Style>) -> Result<Theme, ThemeError> {
                let mut take = |name: &str| {
                    styles
                        .remove(name)
                        .ok_or_else(|| ThemeError(format!("missing element `{name}`")))
                };
                Ok(Theme { $($name: take(stringify!($name))?),+ })
            }
        }
    };
}

elements! {
    base, dim, header, title, selected, marked, production, stale, expiring, good, bad,
    badge_ro, badge_rw, badge_demo, key_hint, critical, high, medium, low,
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
        Theme::from_toml(DARK).expect("assets/tui/themes/dark.toml is valid (a test parses it)")
    }

    /// Dark text on a light terminal.
    pub fn light() -> Theme {
        Theme::from_toml(LIGHT).expect("assets/tui/themes/light.toml is valid (a test parses it)")
    }

    /// Reads a theme file: one style per element, every element once.
    pub fn from_toml(text: &str) -> Result<Theme, ThemeError> {
        let specs: BTreeMap<String, StyleSpec> =
            toml::from_str(text).map_err(|e| ThemeError(e.to_string()))?;
        if let Some(unknown) = specs
            .keys()
            .find(|k| !Theme::ELEMENTS.contains(&k.as_str()))
        {
            return Err(ThemeError(format!(
                "unknown element `{unknown}`; elements: {}",
                Theme::ELEMENTS.join(", ")
            )));
        }
        let mut styles = BTreeMap::new();
        for (name, spec) in specs {
            let colour = |c: &Option<String>| {
                c.as_deref()
                    .map(|c| {
                        c.parse::<Color>().map_err(|_| {
                            ThemeError(format!(
                                "`{name}`: \"{c}\" is not a colour; write a name such as \
                                 \"dark-gray\", an index \"0\"..\"255\" or \"#rrggbb\""
                            ))
                        })
                    })
                    .transpose()
            };
            let mut style = Style::default();
            if let Some(fg) = colour(&spec.fg)? {
                style = style.fg(fg);
            }
            if let Some(bg) = colour(&spec.bg)? {
                style = style.bg(bg);
            }
            if spec.bold {
                style = style.add_modifier(Modifier::BOLD);
            }
            styles.insert(name, style);
        }
        Theme::from_styles(styles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_themes_parse() {
        for (name, text) in [("dark", DARK), ("light", LIGHT)] {
            Theme::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(Theme::named("LIGHT"), Theme::light());
        assert_eq!(Theme::named("solarized"), Theme::dark());
        assert_ne!(Theme::dark(), Theme::light());
        let dark = Theme::dark();
        assert_eq!(dark.base, Style::default());
        assert_eq!(
            dark.critical,
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(Theme::light().marked.fg, Some(Color::Rgb(160, 90, 0)));
    }

    #[test]
    fn a_bad_theme_file_says_what_is_wrong() {
        let bad = |text: &str| Theme::from_toml(text).unwrap_err().to_string();
        let e = bad(&DARK.replace("low = { fg = \"gray\" }\n", ""));
        assert!(e.contains("missing element `low`"), "{e}");
        let e = bad(&format!("{DARK}lowest = {{}}\n"));
        assert!(e.contains("unknown element `lowest`"), "{e}");
        let e = bad(&DARK.replace("\"dark-gray\"", "\"dark-grey-ish\""));
        assert!(
            e.contains("`dim`: \"dark-grey-ish\" is not a colour"),
            "{e}"
        );
        let e = bad(&DARK.replace("bold = true", "weight = 700"));
        assert!(e.contains("unknown field `weight`"), "{e}");
    }
}
