//! A ratatui [`Buffer`] as an SVG picture of a terminal: monospace text on a grid of
//! cells, each cell's colours and bold (also dim, italic, underline, crossed out and
//! reversed) kept. Per row, neighbouring cells with the same background become one
//! rectangle and neighbouring cells with the same text style one `<text>` run, stretched
//! to exactly its cells' width so that every column lines up whatever monospace font the
//! viewer has.
//!
//! It draws the README's screenshots (tests/screenshots.rs) and lives with the tests
//! because only they use it: nothing of it is shipped in the keyaudit binary.

#![allow(dead_code)]

use ratatui::buffer::{Buffer, Cell, CellWidth};
use ratatui::style::{Color, Modifier};
use std::fmt::Write;

/// Width of a cell in pixels (0.6 em: the advance of common monospace fonts).
pub const CELL_W: u32 = 9;
/// Height of a cell in pixels.
pub const CELL_H: u32 = 18;
const FONT_PX: u32 = 15;
/// Baseline of the text within its cell.
const BASELINE: u32 = 14;
/// Margin around the terminal's cells.
const PAD: u32 = 8;
const FONTS: &str = "ui-monospace, 'Cascadia Mono', 'DejaVu Sans Mono', Menlo, Consolas, \
                     'Liberation Mono', monospace";

/// The terminal's default colours and its 16 ANSI colours (a dark terminal).
pub struct Palette {
    pub foreground: &'static str,
    pub background: &'static str,
    pub ansi: [&'static str; 16],
}

/// A dark palette (the 16 colours of a common dark terminal theme).
pub const DARK: Palette = Palette {
    foreground: "#cccccc",
    background: "#1e1e1e",
    ansi: [
        "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
        "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
    ],
};

impl Palette {
    fn colour(&self, c: Color, default: &'static str) -> String {
        let ansi = |i: usize| self.ansi[i].to_string();
        match c {
            Color::Reset => default.to_string(),
            Color::Black => ansi(0),
            Color::Red => ansi(1),
            Color::Green => ansi(2),
            Color::Yellow => ansi(3),
            Color::Blue => ansi(4),
            Color::Magenta => ansi(5),
            Color::Cyan => ansi(6),
            Color::Gray => ansi(7),
            Color::DarkGray => ansi(8),
            Color::LightRed => ansi(9),
            Color::LightGreen => ansi(10),
            Color::LightYellow => ansi(11),
            Color::LightBlue => ansi(12),
            Color::LightMagenta => ansi(13),
            Color::LightCyan => ansi(14),
            Color::White => ansi(15),
            Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
            Color::Indexed(i) => match i {
                0..=15 => ansi(usize::from(i)),
                16..=231 => {
                    let level = |v: u8| if v == 0 { 0 } else { 55 + 40 * v };
                    let i = i - 16;
                    format!(
                        "#{:02x}{:02x}{:02x}",
                        level(i / 36),
                        level(i / 6 % 6),
                        level(i % 6)
                    )
                }
                _ => {
                    let v = 8 + 10 * (i - 232);
                    format!("#{v:02x}{v:02x}{v:02x}")
                }
            },
        }
    }

    /// A cell's text colour and background, after `REVERSED`.
    fn cell_colours(&self, cell: &Cell) -> (String, String) {
        let fg = self.colour(cell.fg, self.foreground);
        let bg = self.colour(cell.bg, self.background);
        if cell.modifier.contains(Modifier::REVERSED) {
            (bg, fg)
        } else {
            (fg, bg)
        }
    }
}

/// What a text run shares: one `<text>` element's attributes.
#[derive(Clone, PartialEq)]
struct TextStyle {
    fill: String,
    modifier: Modifier,
}

impl TextStyle {
    fn of(palette: &Palette, cell: &Cell) -> TextStyle {
        // Only the modifiers that change how text is drawn split a run.
        let drawn = Modifier::BOLD
            | Modifier::DIM
            | Modifier::ITALIC
            | Modifier::UNDERLINED
            | Modifier::CROSSED_OUT
            | Modifier::HIDDEN;
        TextStyle {
            fill: palette.cell_colours(cell).0,
            modifier: cell.modifier & drawn,
        }
    }

    fn attributes(&self, default_fill: &str) -> String {
        let mut a = String::new();
        if self.fill != default_fill {
            let _ = write!(a, " fill=\"{}\"", self.fill);
        }
        let m = self.modifier;
        if m.contains(Modifier::BOLD) {
            a.push_str(" font-weight=\"bold\"");
        }
        if m.contains(Modifier::ITALIC) {
            a.push_str(" font-style=\"italic\"");
        }
        if m.contains(Modifier::DIM) {
            a.push_str(" fill-opacity=\"0.6\"");
        }
        match (
            m.contains(Modifier::UNDERLINED),
            m.contains(Modifier::CROSSED_OUT),
        ) {
            (true, true) => a.push_str(" text-decoration=\"underline line-through\""),
            (true, false) => a.push_str(" text-decoration=\"underline\""),
            (false, true) => a.push_str(" text-decoration=\"line-through\""),
            (false, false) => {}
        }
        a
    }

    /// Spaces drawn in this style show nothing.
    fn blank_when_spaces(&self) -> bool {
        !self
            .modifier
            .intersects(Modifier::UNDERLINED | Modifier::CROSSED_OUT)
    }
}

/// A row's cells as `(column, width, cell)`, the cells hidden behind a wide symbol left out.
fn row_cells(buf: &Buffer, y: u16) -> Vec<(u16, u16, &Cell)> {
    let area = buf.area;
    let mut out = Vec::new();
    let mut x = area.left();
    while x < area.right() {
        let cell = &buf[(x, y)];
        let width = cell.symbol().cell_width().max(1);
        out.push((x - area.left(), width, cell));
        x += width;
    }
    out
}

/// The parts of a run worth a `<text>`: with `split`, the stretches between gaps of two or
/// more spaces (so that table columns start exactly on their cell), without edge spaces.
fn pieces<'a, 'b>(run: &'a [(u16, u16, &'b Cell)], split: bool) -> Vec<&'a [(u16, u16, &'b Cell)]> {
    if !split {
        return vec![run];
    }
    let blank = |k: usize| run.get(k).is_some_and(|c| c.2.symbol() == " ");
    let mut out = Vec::new();
    let mut k = 0;
    while k < run.len() {
        if blank(k) {
            k += 1;
            continue;
        }
        let start = k;
        while k < run.len() && !(blank(k) && (blank(k + 1) || k + 1 == run.len())) {
            k += 1;
        }
        out.push(&run[start..k]);
    }
    out
}

fn escape(symbol: &str, out: &mut String) {
    for c in symbol.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// The buffer as an SVG document, `title` its accessible name.
pub fn to_svg(buf: &Buffer, title: &str, palette: &Palette) -> String {
    let (cols, rows) = (u32::from(buf.area.width), u32::from(buf.area.height));
    let (w, h) = (cols * CELL_W + 2 * PAD, rows * CELL_H + 2 * PAD);
    let mut svg = String::new();
    let mut t = String::new();
    escape(title, &mut t);
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\">"
    );
    let _ = writeln!(svg, "<title>{t}</title>");
    let _ = writeln!(
        svg,
        "<style>text {{ font-family: {FONTS}; font-size: {FONT_PX}px; white-space: pre; }}</style>"
    );
    let _ = writeln!(
        svg,
        "<rect width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"{}\"/>",
        palette.background
    );

    let _ = writeln!(svg, "<g transform=\"translate({PAD} {PAD})\">");
    // Backgrounds: one rectangle per run of equal colour in a row.
    let _ = writeln!(svg, "<g shape-rendering=\"crispEdges\">");
    for y in 0..buf.area.height {
        let cells = row_cells(buf, buf.area.top() + y);
        let mut i = 0;
        while i < cells.len() {
            let bg = palette.cell_colours(cells[i].2).1;
            let start = cells[i].0;
            let mut end = start + cells[i].1;
            i += 1;
            while i < cells.len() && palette.cell_colours(cells[i].2).1 == bg {
                end = cells[i].0 + cells[i].1;
                i += 1;
            }
            if bg != palette.background {
                let _ = writeln!(
                    svg,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{CELL_H}\" fill=\"{bg}\"/>",
                    u32::from(start) * CELL_W,
                    u32::from(y) * CELL_H,
                    u32::from(end - start) * CELL_W
                );
            }
        }
    }
    let _ = writeln!(svg, "</g>");

    // Text: one run per stretch of equal style in a row, without its edge spaces.
    let _ = writeln!(
        svg,
        "<g fill=\"{}\" xml:space=\"preserve\">",
        palette.foreground
    );
    for y in 0..buf.area.height {
        let cells = row_cells(buf, buf.area.top() + y);
        let mut i = 0;
        while i < cells.len() {
            let style = TextStyle::of(palette, cells[i].2);
            let mut j = i + 1;
            while j < cells.len() && TextStyle::of(palette, cells[j].2) == style {
                j += 1;
            }
            let run = &cells[i..j];
            i = j;
            if style.modifier.contains(Modifier::HIDDEN) {
                continue;
            }
            for piece in pieces(run, style.blank_when_spaces()) {
                let (first, last) = (piece[0], piece[piece.len() - 1]);
                let mut text = String::new();
                for (_, _, cell) in piece {
                    escape(cell.symbol(), &mut text);
                }
                let span = u32::from(last.0 + last.1 - first.0);
                let _ = writeln!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" textLength=\"{}\" lengthAdjust=\"spacingAndGlyphs\"{}>{text}</text>",
                    u32::from(first.0) * CELL_W,
                    u32::from(y) * CELL_H + BASELINE,
                    span * CELL_W,
                    style.attributes(palette.foreground)
                );
            }
        }
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, "</g>");
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::style::Style;

    fn buffer(lines: &[(&str, Style)]) -> Buffer {
        let width = lines
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(1) as u16;
        let mut buf = Buffer::empty(Rect::new(0, 0, width, lines.len() as u16));
        for (y, (line, style)) in lines.iter().enumerate() {
            buf.set_string(0, y as u16, line, *style);
        }
        buf
    }

    #[test]
    fn runs_merge_and_keep_colour_and_bold() {
        let mut buf = buffer(&[("  ab <&> ", Style::default())]);
        buf.set_style(
            Rect::new(2, 0, 2, 1),
            Style::default()
                .fg(Color::Red)
                .bg(Color::Blue)
                .add_modifier(Modifier::BOLD),
        );
        let svg = to_svg(&buf, "t", &DARK);
        // One background rectangle over "ab", one bold red run "ab", one default run.
        assert!(
            svg.contains("<rect x=\"18\" y=\"0\" width=\"18\" height=\"18\" fill=\"#2472c8\"/>"),
            "{svg}"
        );
        assert!(
            svg.contains(
                "<text x=\"18\" y=\"14\" textLength=\"18\" lengthAdjust=\"spacingAndGlyphs\" \
                 fill=\"#cd3131\" font-weight=\"bold\">ab</text>"
            ),
            "{svg}"
        );
        assert!(
            svg.contains(
                "<text x=\"45\" y=\"14\" textLength=\"27\" lengthAdjust=\"spacingAndGlyphs\">&lt;&amp;&gt;</text>"
            ),
            "{svg}"
        );
        assert_eq!(svg.matches("<text").count(), 2, "{svg}");
    }

    #[test]
    fn reversed_swaps_and_indexed_and_rgb_colours_resolve() {
        let buf = buffer(&[(
            "x",
            Style::default()
                .fg(Color::Indexed(196))
                .bg(Color::Rgb(1, 2, 3))
                .add_modifier(Modifier::REVERSED),
        )]);
        let svg = to_svg(&buf, "t", &DARK);
        assert!(svg.contains("fill=\"#ff0000\"/>"), "{svg}");
        assert!(svg.contains("fill=\"#010203\""), "{svg}");
    }

    #[test]
    fn a_wide_symbol_spans_two_cells() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 1));
        buf.set_string(0, 0, "日本x", Style::default());
        let svg = to_svg(&buf, "t", &DARK);
        assert!(svg.contains("textLength=\"45\""), "{svg}");
        assert!(svg.contains(">日本x</text>"), "{svg}");
    }
}
