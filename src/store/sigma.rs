//! What the Sigma rules read and write: events after a watermark with their raw
//! records, the watermark itself (`sigma_checkpoint`), and their findings, merged into
//! the findings already stored (evidence added up to a cap), all in one transaction.

use super::{Result, Store, StoreError};
use crate::model::{to_millis, Finding, Millis};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

/// Where the raw record of an event is.
#[derive(Debug, Clone, Copy)]
pub enum RawRef<'a> {
    /// Place `at` of a block of `raw_blocks` (read it with [`Store::raw_block`]).
    Block { block: i64, at: u32 },
    /// Its own text: the original record of a row written before blocks existed, or,
    /// for an event synced without one (the provider API's and Vault's events), its own
    /// fields under the provider API's names (`id`, `time`, `key_id`, `principal`,
    /// `action`, `scope`, `source_ip`, `user_agent`, `outcome`, `status_code`,
    /// `request_id`, `records`).
    Text(&'a str),
}

/// One event as the Sigma rules read it, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    /// The event's row id.
    pub row: i64,
    pub key_ref: i64,
    /// The event's provider id (what evidence lists name).
    pub event_id: &'a str,
    pub time: Millis,
    pub raw: RawRef<'a>,
}

/// The Sigma watermark: the last event row evaluated and the rule set's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaCheckpoint {
    pub last_event: i64,
    pub rules: String,
}

/// A Sigma finding of a run, with its key handle.
#[derive(Debug, Clone)]
pub struct SigmaFinding {
    pub key_ref: i64,
    pub finding: Finding,
}

/// What saving a Sigma run changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigmaWritten {
    /// Findings that did not exist before.
    pub opened: usize,
    /// Existing findings that got new evidence.
    pub updated: usize,
}

impl Store {
    /// The saved Sigma watermark, if a run was saved.
    pub fn sigma_checkpoint(&self) -> Result<Option<SigmaCheckpoint>> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_event, rules FROM sigma_checkpoint WHERE id = 1",
                [],
                |r| {
                    Ok(SigmaCheckpoint {
                        last_event: r.get(0)?,
                        rules: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Visits the events with a row id above `after`, in row order, with where their
    /// raw records are. Only the events table is read, one row at a time, so a run over
    /// few new events costs in proportion to them.
    pub fn sigma_events(
        &self,
        after: i64,
        visit: &mut dyn FnMut(RawEvent<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, key_ref, ext_id, time, raw_block, raw_at, raw
             FROM events WHERE id > ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([after])?;
        while let Some(r) = rows.next()? {
            let own;
            let row: i64 = r.get(0)?;
            let block: Option<i64> = r.get(4)?;
            let at: Option<u32> = r.get(5)?;
            let text = r
                .get_ref(6)?
                .as_str_or_null()
                .map_err(rusqlite::Error::from)?
                .unwrap_or("");
            let raw = match block.zip(at) {
                Some((block, at)) => RawRef::Block { block, at },
                None if !text.is_empty() => RawRef::Text(text),
                None => {
                    own = self.sigma_own_record(row)?;
                    RawRef::Text(&own)
                }
            };
            visit(RawEvent {
                row,
                key_ref: r.get(1)?,
                event_id: r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?,
                time: r.get(3)?,
                raw,
            })?;
        }
        Ok(())
    }

    /// The record the Sigma rules read for an event without an original record (or
    /// with an empty one): its own fields as JSON, named as in [`RawRef::Text`].
    pub fn sigma_own_record(&self, row: i64) -> Result<String> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.ext_id, e.time, k.ext_id, e.principal, e.action, e.scope, e.source_ip,
                    e.user_agent, e.outcome, e.status_code, e.request_id, e.records
             FROM events e JOIN keys k ON k.id = e.key_ref WHERE e.id = ?1",
        )?;
        Ok(stmt.query_row([row], |r| {
            let opt = |i: usize| -> rusqlite::Result<Option<&str>> {
                Ok(r.get_ref(i)?.as_str_or_null()?)
            };
            let time: Millis = r.get(1)?;
            let outcome: i64 = r.get(8)?;
            Ok(serde_json::json!({
                "id": opt(0)?,
                "time": crate::model::from_millis(time)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "key_id": opt(2)?,
                "principal": opt(3)?,
                "action": opt(4)?,
                "scope": opt(5)?,
                "source_ip": opt(6)?,
                "user_agent": opt(7)?,
                "outcome": match outcome {
                    0 => "success",
                    1 => "denied",
                    _ => "error",
                },
                "status_code": r.get::<_, Option<i64>>(9)?,
                "request_id": opt(10)?,
                "records": r.get::<_, Option<i64>>(11)?,
            })
            .to_string())
        })?)
    }

    /// The stored (compressed) data of a raw record block; decode it with
    /// [`RawBlock::decode`](super::RawBlock::decode).
    pub fn raw_block(&self, id: i64) -> Result<Vec<u8>> {
        self.conn
            .prepare_cached("SELECT data FROM raw_blocks WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt {
                what: "a raw record block",
                why: format!("block {id} is missing"),
            })
    }

    /// The provider and provider id of each key handle of `refs` (unknown ones left out).
    pub fn key_names(&self, refs: &[i64]) -> Result<HashMap<i64, (String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.name, k.ext_id FROM keys k JOIN providers p ON p.id = k.provider_id
             WHERE k.id = ?1",
        )?;
        let mut out = HashMap::with_capacity(refs.len());
        for &r in refs {
            if let Some(names) = stmt
                .query_row([r], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
            {
                out.insert(r, names);
            }
        }
        Ok(out)
    }

    /// Saves a Sigma run in one transaction: each finding is inserted, or merged into
    /// the stored one of the same id (its evidence extended up to `evidence_cap`, its
    /// first and last seen widened; an operator's status is kept, a resolved finding
    /// reopens), then the watermark.
    pub fn save_sigma(
        &mut self,
        found: &[SigmaFinding],
        checkpoint: &SigmaCheckpoint,
        evidence_cap: usize,
        now: Millis,
    ) -> Result<SigmaWritten> {
        let mut written = SigmaWritten::default();
        let tx = self.conn.transaction()?;
        {
            let mut old = tx.prepare_cached(
                "SELECT evidence, first_seen, last_seen FROM findings WHERE id = ?1",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO findings (id, rule, category, severity, key_ref, title, explanation,
                                       evidence, first_seen, last_seen, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open')",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE findings SET severity = ?2, title = ?3, explanation = ?4, evidence = ?5,
                    first_seen = ?6, last_seen = ?7,
                    status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END
                 WHERE id = ?1",
            )?;
            for nf in found {
                let f = &nf.finding;
                let prior: Option<(String, Millis, Millis)> = old
                    .query_row([&f.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                let (first, last) = (to_millis(f.first_seen), to_millis(f.last_seen));
                match prior {
                    None => {
                        let mut ev = f.evidence.clone();
                        ev.truncate(evidence_cap);
                        insert.execute(params![
                            f.id,
                            f.rule,
                            f.category.as_str(),
                            f.severity as i64,
                            nf.key_ref,
                            f.title,
                            f.explanation,
                            serde_json::to_string(&ev).unwrap_or_else(|_| "[]".into()),
                            first,
                            last
                        ])?;
                        written.opened += 1;
                    }
                    Some((evidence, old_first, old_last)) => {
                        let mut ev: Vec<String> =
                            serde_json::from_str(&evidence).unwrap_or_default();
                        let before = ev.len();
                        for id in &f.evidence {
                            if ev.len() >= evidence_cap {
                                break;
                            }
                            if !ev.contains(id) {
                                ev.push(id.clone());
                            }
                        }
                        if ev.len() == before && first >= old_first && last <= old_last {
                            continue;
                        }
                        update.execute(params![
                            f.id,
                            f.severity as i64,
                            f.title,
                            f.explanation,
                            serde_json::to_string(&ev).unwrap_or_else(|_| "[]".into()),
                            first.min(old_first),
                            last.max(old_last)
                        ])?;
                        written.updated += 1;
                    }
                }
            }
        }
        tx.execute(
            "INSERT INTO sigma_checkpoint (id, last_event, rules, ran_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET last_event = excluded.last_event,
                rules = excluded.rules, ran_at = excluded.ran_at",
            params![checkpoint.last_event, checkpoint.rules, now],
        )?;
        tx.commit()?;
        Ok(written)
    }
}
