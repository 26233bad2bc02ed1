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

/// Makes a string safe to print on a terminal: control characters and escape sequences
/// become visible, inert text (`\x1b` is shown as `\u{1b}`).
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || ('\u{80}'..='\u{9f}').contains(&c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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
                serde_json::to_writer(&mut *out, item)?;
            }
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, item)?;
                out.write_all(b"\n")?;
            }
            Sink::Csv(w) => w.write_record(cells()).map_err(csv_error)?,
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
