//! What was imported from which file (one row per file and source), and the cache's own
//! small settings (`cache_meta`: a case's last opening).

use crate::model::{from_millis, to_millis, Millis};
use crate::store::{Result, Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// One imported file of a source, as the providers view and `keyaudit cases` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedFile {
    /// The source (provider) its events went under.
    pub source: String,
    /// The file as it was last imported.
    pub path: String,
    /// The format it was read as (`cloudtrail`, `ecs`, ...).
    pub format: String,
    /// Records read over every run of its import.
    pub records: i64,
    /// Events new to the cache it brought.
    pub events: i64,
    /// Time of its oldest and newest event.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// When it was last imported.
    pub imported_at: DateTime<Utc>,
}

/// What one run of an import of a file adds to its row.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportRun<'a> {
    pub source: &'a str,
    /// The file's content id (its cursor's stream).
    pub stream: &'a str,
    pub path: &'a str,
    pub format: &'a str,
    pub records: u64,
    pub events: u64,
    /// Oldest and newest event time of this run, in milliseconds.
    pub span: Option<(Millis, Millis)>,
}

impl Store {
    /// Adds one import run to its file's row (counts add up; the span widens).
    pub fn record_import_file(&self, run: &ImportRun<'_>) -> Result<()> {
        let pid = self
            .provider_id(run.source)?
            .ok_or_else(|| StoreError::UnknownProvider(run.source.to_string()))?;
        let (first, last) = run.span.unzip();
        self.conn.execute(
            "INSERT INTO import_files (provider_id, stream, path, format, records, events,
                                       first_time, last_time, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(provider_id, stream) DO UPDATE SET
                path = excluded.path,
                format = excluded.format,
                records = records + excluded.records,
                events = events + excluded.events,
                first_time = CASE WHEN first_time IS NULL OR excluded.first_time < first_time
                                  THEN coalesce(excluded.first_time, first_time) ELSE first_time END,
                last_time = CASE WHEN last_time IS NULL OR excluded.last_time > last_time
                                 THEN coalesce(excluded.last_time, last_time) ELSE last_time END,
                imported_at = excluded.imported_at",
            params![
                pid,
                run.stream,
                run.path,
                run.format,
                run.records as i64,
                run.events as i64,
                first,
                last,
                to_millis(Utc::now())
            ],
        )?;
        Ok(())
    }

    /// Every imported file, by source and path.
    pub fn imported_files(&self) -> Result<Vec<ImportedFile>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.name, f.path, f.format, f.records, f.events, f.first_time, f.last_time,
                    f.imported_at
             FROM import_files f JOIN providers p ON p.id = f.provider_id
             ORDER BY p.name, f.path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ImportedFile {
                source: r.get(0)?,
                path: r.get(1)?,
                format: r.get(2)?,
                records: r.get(3)?,
                events: r.get(4)?,
                first: r.get::<_, Option<Millis>>(5)?.map(from_millis),
                last: r.get::<_, Option<Millis>>(6)?.map(from_millis),
                imported_at: from_millis(r.get(7)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// True when the cache holds no key and no event (a fresh default cache).
    pub fn is_empty(&self) -> Result<bool> {
        let any: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM keys) OR EXISTS (SELECT 1 FROM events)",
            [],
            |r| r.get(0),
        )?;
        Ok(!any)
    }

    /// A setting of the cache itself.
    pub fn meta(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM cache_meta WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }

    /// Sets a setting of the cache itself.
    pub fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO cache_meta (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_file_add_up_and_widen_the_span() {
        let store = Store::open_in_memory().unwrap();
        assert!(store.is_empty().unwrap());
        store.ensure_provider("cloudtrail", "import", None).unwrap();
        let run = ImportRun {
            source: "cloudtrail",
            stream: "import:ab:10",
            path: "a.json",
            format: "cloudtrail",
            records: 10,
            events: 9,
            span: Some((2_000, 3_000)),
        };
        store.record_import_file(&run).unwrap();
        store
            .record_import_file(&ImportRun {
                records: 5,
                events: 5,
                span: Some((1_000, 2_500)),
                ..run
            })
            .unwrap();
        store
            .record_import_file(&ImportRun {
                records: 0,
                events: 0,
                span: None,
                ..run
            })
            .unwrap();
        let files = store.imported_files().unwrap();
        assert_eq!(files.len(), 1);
        let f = &files[0];
        assert_eq!((f.records, f.events), (15, 14));
        assert_eq!(f.first, Some(from_millis(1_000)));
        assert_eq!(f.last, Some(from_millis(3_000)));
    }

    #[test]
    fn meta_round_trips() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.meta("last_opened").unwrap(), None);
        store.set_meta("last_opened", "1").unwrap();
        store.set_meta("last_opened", "2").unwrap();
        assert_eq!(store.meta("last_opened").unwrap().as_deref(), Some("2"));
    }
}
