//! Output of the headless commands: tables for people, JSON and CSV for scripts.
//!
//! JSON is one array, written as it streams (`[`, objects separated by `,\n`, `]`), so a
//! listing of millions of events never sits in memory. Field names are stable and
//! documented in the README.

use serde::Serialize;
use std::io::{self, Write};

/// Output format of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON array.
    Json,
    /// JSON lines: one object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// Characters that change how text around them is shown without showing themselves:
/// bidirectional overrides and isolates (which can make `gpj.exe` read `exe.jpg`),
/// zero-width characters and the byte-order mark.
pub fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// True for what [`sanitize`] escapes: control characters (C0, DEL, C1) and
/// [`is_hidden_format`] characters.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_hidden_format(c)
}

/// Makes a string safe to print on a terminal: control characters, escape sequences and
/// invisible formatting characters become visible, inert text (`\x1b` is shown as
/// `\u{1b}`, a right-to-left override as `\u{202e}`). The one function every path to a
/// terminal uses for text that came from a provider, a log file or a remote error body.
pub fn sanitize(s: &str) -> String {
    if !s.chars().any(is_unsafe_char) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A cell of CSV output, safe in a spreadsheet and on a terminal. A cell that begins with
/// `=`, `+`, `-`, `@`, tab or carriage return would be read as a formula by spreadsheet
/// programs, so it gets a leading `'` (shown as text, the value otherwise unchanged).
/// Line feeds and tabs stay (CSV quotes them); every other character [`sanitize`] escapes
/// is escaped. JSON output keeps exact values instead.
pub fn csv_cell(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let mut out = String::with_capacity(s.len() + 1);
    if formula {
        out.push('\'');
    }
    for c in s.chars() {
        if is_unsafe_char(c) && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `item` as JSON whose text is inert on a terminal: besides the control
/// characters JSON always escapes, C1 controls and invisible formatting characters are
/// written as `\uXXXX` escapes. A JSON reader gets exactly the same values.
pub fn write_json<W: Write + ?Sized, T: Serialize + ?Sized>(
    out: &mut W,
    item: &T,
) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, InertJson);
    item.serialize(&mut ser).map_err(io::Error::from)
}

/// The same as [`write_json`], into a string.
pub fn json_string<T: Serialize + ?Sized>(item: &T) -> String {
    let mut buf = Vec::new();
    write_json(&mut buf, item).expect("writing to memory");
    String::from_utf8(buf).expect("JSON is UTF-8")
}

/// serde_json's compact formatter, escaping what [`is_unsafe_char`] names.
struct InertJson;

impl serde_json::ser::Formatter for InertJson {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe_char(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                // Every such character is in the Basic Multilingual Plane.
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `println!` for lines that may carry untrusted text: the whole line goes through
/// [`sanitize`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::output::sanitize(&format!($($arg)*)))
    };
}

/// `eprintln!` for lines that may carry untrusted text (errors, progress, failures): the
/// whole line goes through [`sanitize`].
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::output::sanitize(&format!($($arg)*)))
    };
}

/// A writer of rows in one format. Table rows are buffered to align columns; the
/// other formats stream.
pub struct Listing<W: Write> {
    sink: Sink<W>,
    count: usize,
}

/// Where a listing's rows go, by format.
enum Sink<W: Write> {
    Json(W),
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
    Table {
        out: W,
        headers: Vec<&'static str>,
        rows: Vec<Vec<String>>,
    },
}

/// An error of the CSV writer as an IO error, keeping the kind of an IO one (a closed
/// pipe stays `BrokenPipe`).
fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("CSV: {other:?}")),
    }
}

impl<W: Write> Listing<W> {
    /// Starts a listing with these column headers (used by table and CSV).
    pub fn new(mut out: W, format: Format, headers: &[&'static str]) -> io::Result<Self> {
        let sink = match format {
            Format::Json => {
                out.write_all(b"[")?;
                Sink::Json(out)
            }
            Format::Jsonl => Sink::Jsonl(out),
            Format::Csv => {
                // RFC 4180 quoting; records end with `\n`.
                let mut w = Box::new(csv::Writer::from_writer(out));
                w.write_record(headers).map_err(csv_error)?;
                Sink::Csv(w)
            }
            Format::Table => Sink::Table {
                out,
                headers: headers.to_vec(),
                rows: Vec::new(),
            },
        };
        Ok(Listing { sink, count: 0 })
    }

    /// Adds one row: `item` for JSON, `cells` (same order as the headers) for table/CSV.
    pub fn row<T: Serialize>(
        &mut self,
        item: &T,
        cells: impl FnOnce() -> Vec<String>,
    ) -> io::Result<()> {
        match &mut self.sink {
            Sink::Json(out) => {
                if self.count > 0 {
                    out.write_all(b",\n")?;
                } else {
                    out.write_all(b"\n")?;
                }
                write_json(&mut *out, item)?;
            }
            Sink::Jsonl(out) => {
                write_json(&mut *out, item)?;
                out.write_all(b"\n")?;
            }
            Sink::Csv(w) => w
                .write_record(cells().iter().map(|c| csv_cell(c)))
                .map_err(csv_error)?,
            Sink::Table { rows, .. } => rows.push(cells()),
        }
        self.count += 1;
        Ok(())
    }

    /// Number of rows written.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Ends the listing (closes the JSON array, prints the table).
    pub fn finish(self) -> io::Result<usize> {
        match self.sink {
            Sink::Json(mut out) => {
                out.write_all(if self.count > 0 { b"\n]\n" } else { b"]\n" })?;
                out.flush()?;
            }
            Sink::Jsonl(mut out) => out.flush()?,
            Sink::Csv(mut w) => w.flush()?,
            Sink::Table {
                mut out,
                headers,
                rows,
            } => {
                write_table(&mut out, &headers, &rows, Some(TABLE_CELL_MAX))?;
                out.flush()?;
            }
        }
        Ok(self.count)
    }
}

/// The widest a cell of a listing's table gets before it is cut with `…`.
pub const TABLE_CELL_MAX: usize = 48;

/// Prints aligned columns for people: the headers in capitals, then the rows, each cell
/// made safe for the terminal ([`sanitize`]) and, with `max_width`, cut to that many
/// characters with `…` (the last column too). Columns are two spaces apart; lines carry
/// no trailing spaces.
pub fn write_table<S: AsRef<str>>(
    out: &mut dyn Write,
    headers: &[&str],
    rows: &[Vec<S>],
    max_width: Option<usize>,
) -> io::Result<()> {
    let cols = headers.len();
    let cap = max_width.unwrap_or(usize::MAX);
    // Cells are made safe twice (to measure, to print) rather than copied: a listing's
    // table can hold every event of the cache.
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(sanitize(c.as_ref()).chars().count().min(cap));
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| -> String {
        let mut s = String::new();
        for (i, mut c) in cells.enumerate().take(cols) {
            if c.chars().count() > widths[i] {
                c = c
                    .chars()
                    .take(widths[i].saturating_sub(1))
                    .collect::<String>()
                    + "…";
            }
            if i + 1 == cols {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut head = headers.iter().map(|h| h.to_uppercase());
    writeln!(out, "{}", line(&mut head))?;
    for r in rows {
        let mut cells = r.iter().map(|c| sanitize(c.as_ref()));
        writeln!(out, "{}", line(&mut cells))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_inert() {
        let s = sanitize("curl\x1b]52;c;SGVsbG8=\x07\x1b[2Jx");
        assert!(!s.contains('\x1b') && !s.contains('\x07'));
        assert!(s.contains("\\u{1b}]52;c;"));
    }

    #[test]
    fn json_is_one_array_and_csv_quotes() {
        let mut buf = Vec::new();
        let mut l = Listing::new(&mut buf, Format::Json, &["a"]).unwrap();
        l.row(&serde_json::json!({"a": 1}), Vec::new).unwrap();
        l.row(&serde_json::json!({"a": 2}), Vec::new).unwrap();
        l.finish().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        let mut buf = Vec::new();
        let l = Listing::new(&mut buf, Format::Json, &["a"]).unwrap();
        l.finish().unwrap();
        assert_eq!(
            serde_json::from_slice::<Vec<i32>>(&buf).unwrap(),
            Vec::<i32>::new()
        );
        let mut buf = Vec::new();
        let mut l = Listing::new(&mut buf, Format::Csv, &["a", "b"]).unwrap();
        l.row(&(), || vec!["a,\"b\"".into(), "line\nbreak".into()])
            .unwrap();
        l.row(&(), || vec!["plain".into(), String::new()]).unwrap();
        assert_eq!(l.finish().unwrap(), 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "a,b\n\"a,\"\"b\"\"\",\"line\nbreak\"\nplain,\n"
        );
    }

    /// Hostile text in each format: nothing raw reaches a terminal, spreadsheets see text,
    /// JSON readers get the exact value back.
    #[test]
    fn hostile_cells_are_inert_in_every_format() {
        let hostile = [
            "\x1b]52;c;SGVsbG8=\x07\x1b]0;pwned\x07\x1b[2J",
            "=HYPERLINK(\"http://x\")",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\tlead tab",
            "\rcarriage",
            "gpj\u{202e}exe.jpg",
            "zero\u{200b}width\u{feff}",
            "c1\u{9b}31m",
            "nul\0byte",
        ];
        for h in hostile {
            let shown = sanitize(h);
            assert!(!shown.chars().any(is_unsafe_char), "{shown:?}");
            let cell = csv_cell(h);
            assert!(
                !cell
                    .chars()
                    .any(|c| is_unsafe_char(c) && c != '\n' && c != '\t'),
                "{cell:?}"
            );
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
            let json = json_string(&serde_json::json!({ "v": h }));
            assert!(!json.chars().any(is_unsafe_char), "{json:?}");
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back["v"], h);
        }
        assert_eq!(csv_cell("=1+2"), "'=1+2");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(sanitize("plain ütf"), "plain ütf");
    }

    #[test]
    fn tables_align_cut_and_neutralise() {
        let mut buf = Vec::new();
        let rows = vec![
            vec!["k1", "x\x1b[2J", "a long value"],
            vec!["key_2", "y", "z"],
        ];
        write_table(&mut buf, &["id", "owner", "last used"], &rows, Some(6)).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "ID     OWNER   LAST USED\nk1     x\\u{1…  a long v…\nkey_2  y       z\n"
        );
    }
}
