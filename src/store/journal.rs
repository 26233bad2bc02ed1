//! The journal: append-only, SHA-256 hash-chained record of operator actions.
//!
//! Each entry's hash covers its own fields and the previous entry's hash, so altering,
//! removing or reordering an entry breaks the chain from that entry on.

use super::{Result, Store};
use crate::model::{from_millis, rfc3339, to_millis, JournalEntry};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use sha2::{Digest, Sha256};

/// The hash of the (absent) entry before the first.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an operator did; the journal adds time, user, host and the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry<'a> {
    pub action: &'a str,
    pub target: &'a str,
    pub reason: Option<&'a str>,
    pub params: serde_json::Value,
    pub result: &'a str,
}

/// A [`NewEntry`] that owns its text, to be moved onto another thread.
#[derive(Debug, Clone)]
pub struct OwnedEntry {
    action: String,
    target: String,
    reason: Option<String>,
    params: serde_json::Value,
    result: String,
}

impl OwnedEntry {
    /// A copy of `e`.
    pub fn of(e: &NewEntry<'_>) -> OwnedEntry {
        OwnedEntry {
            action: e.action.to_string(),
            target: e.target.to_string(),
            reason: e.reason.map(str::to_string),
            params: e.params.clone(),
            result: e.result.to_string(),
        }
    }

    /// The entry, borrowing this copy; `result` replaces the copied result when given.
    pub fn entry<'a>(&'a self, result: Option<&'a str>) -> NewEntry<'a> {
        NewEntry {
            action: &self.action,
            target: &self.target,
            reason: self.reason.as_deref(),
            params: self.params.clone(),
            result: result.unwrap_or(&self.result),
        }
    }
}

/// Why the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Sequence number of the first entry that does not verify.
    pub seq: i64,
    pub reason: String,
}

/// Computes an entry's hash from its fields and the previous hash.
pub fn entry_hash(e: &JournalEntry) -> String {
    let body = serde_json::json!({
        "seq": e.seq,
        "time": rfc3339(e.time),
        "os_user": e.os_user,
        "host": e.host,
        "action": e.action,
        "target": e.target,
        "reason": e.reason,
        "params": e.params,
        "result": e.result,
        "prev_hash": e.prev_hash,
    });
    let mut h = Sha256::new();
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

fn journal_row(r: &Row<'_>) -> rusqlite::Result<JournalEntry> {
    let params: String = r.get(7)?;
    Ok(JournalEntry {
        seq: r.get(0)?,
        time: from_millis(r.get(1)?),
        os_user: r.get(2)?,
        host: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        reason: r.get(6)?,
        params: serde_json::from_str(&params).unwrap_or(serde_json::Value::String(params)),
        result: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

const JOURNAL_COLUMNS: &str =
    "seq, time, os_user, host, action, target, reason, params, result, prev_hash, hash";

/// The operator as the OS knows them: the account name of the process's real uid
/// (`getpwuid_r`), so that a changed `$USER` does not change who the journal names; a uid
/// with no account is `uid N`. `$USER` / `$LOGNAME` only where there are no uids.
pub fn os_user() -> String {
    #[cfg(unix)]
    {
        let uid = nix::unistd::getuid();
        match nix::unistd::User::from_uid(uid) {
            Ok(Some(u)) if !u.name.is_empty() => u.name,
            _ => format!("uid {uid}"),
        }
    }
    #[cfg(not(unix))]
    {
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into())
    }
}

/// This machine's host name (`gethostname`).
pub fn host_name() -> String {
    #[cfg(unix)]
    if let Some(h) = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.trim().is_empty())
    {
        return h.trim().to_string();
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Store {
    /// Appends an entry at `time` and returns it with its hash.
    pub fn append_journal_at(
        &mut self,
        new: &NewEntry<'_>,
        time: DateTime<Utc>,
    ) -> Result<JournalEntry> {
        // IMMEDIATE: take the write lock before reading the last entry, so concurrent
        // writers (bulk actions) queue on the busy timeout instead of failing or forking
        // the chain.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (seq, prev_hash) = match last {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS.to_string()),
        };
        let mut entry = JournalEntry {
            seq,
            // The chain hashes the time at millisecond precision, as stored.
            time: from_millis(to_millis(time)),
            os_user: os_user(),
            host: host_name(),
            action: new.action.to_string(),
            target: new.target.to_string(),
            reason: new.reason.map(str::to_string),
            params: new.params.clone(),
            result: new.result.to_string(),
            prev_hash,
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        tx.execute(
            "INSERT INTO journal (seq, time, os_user, host, action, target, reason, params, result,
                                  prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                entry.seq,
                to_millis(entry.time),
                entry.os_user,
                entry.host,
                entry.action,
                entry.target,
                entry.reason,
                entry.params.to_string(),
                entry.result,
                entry.prev_hash,
                entry.hash
            ],
        )?;
        tx.commit()?;
        if let Some(anchor) = &self.anchor {
            // The entry is committed whatever happens here; a checkpoint that cannot be
            // written leaves the entry unanchored, which `journal verify` reports.
            let cp = anchor.sign(entry.seq, &entry.hash, Utc::now());
            if let Err(e) = anchor.append(&cp) {
                tracing::error!(seq = entry.seq, error = %e, "journal checkpoint not written");
            }
        }
        Ok(entry)
    }

    /// Signs a checkpoint after every journal entry this store appends from now on.
    pub fn set_journal_anchor(&mut self, anchor: std::sync::Arc<super::anchor::Anchor>) {
        self.anchor = Some(anchor);
    }

    /// Appends an entry now.
    pub fn append_journal(&mut self, new: &NewEntry<'_>) -> Result<JournalEntry> {
        self.append_journal_at(new, Utc::now())
    }

    /// Journal entries, oldest first; `target` filters to one key (`provider/key_id`).
    pub fn journal(&self, target: Option<&str>, limit: Option<usize>) -> Result<Vec<JournalEntry>> {
        let mut out = Vec::new();
        self.for_each_journal(target, |e| {
            out.push(e);
            true
        })?;
        if let Some(n) = limit {
            let skip = out.len().saturating_sub(n);
            out.drain(..skip);
        }
        Ok(out)
    }

    /// Streams journal entries oldest first; `f` returns false to stop.
    pub fn for_each_journal(
        &self,
        target: Option<&str>,
        mut f: impl FnMut(JournalEntry) -> bool,
    ) -> Result<()> {
        let sql = match target {
            Some(_) => {
                format!("SELECT {JOURNAL_COLUMNS} FROM journal WHERE target = ?1 ORDER BY seq")
            }
            None => format!("SELECT {JOURNAL_COLUMNS} FROM journal ORDER BY seq"),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = match target {
            Some(t) => stmt.query([t])?,
            None => stmt.query([])?,
        };
        while let Some(r) = rows.next()? {
            if !f(journal_row(r)?) {
                break;
            }
        }
        Ok(())
    }

    /// Recomputes the chain, then checks it against signed checkpoints: `Ok(Ok(verdict))`
    /// when the chain is intact (the verdict says whether the anchors agree), `Ok(Err(_))`
    /// naming the first entry that breaks the chain.
    pub fn verify_journal_anchored(
        &self,
        checkpoints: Option<&[super::anchor::Checkpoint]>,
        anchor_file: &std::path::Path,
        trusted: &[String],
    ) -> Result<std::result::Result<(usize, super::anchor::AnchorVerdict), ChainBreak>> {
        let mut chain = ChainCheck::default();
        let mut broken = None;
        self.for_each_journal(None, |e| {
            broken = chain.push(&e).err();
            broken.is_none()
        })?;
        if let Some(b) = broken {
            return Ok(Err(b));
        }
        Ok(Ok((
            chain.len(),
            super::anchor::judge(chain.hashes(), checkpoints, anchor_file, trusted),
        )))
    }

    /// Recomputes the chain. `Ok(Ok(n))` when all `n` entries verify, `Ok(Err(break))`
    /// naming the first entry that was altered, removed or reordered.
    pub fn verify_journal(&self) -> Result<std::result::Result<usize, ChainBreak>> {
        let mut chain = ChainCheck::default();
        let mut broken = None;
        self.for_each_journal(None, |e| {
            broken = chain.push(&e).err();
            broken.is_none()
        })?;
        Ok(match broken {
            Some(b) => Err(b),
            None => Ok(chain.len()),
        })
    }
}

/// Checks a journal entry by entry, oldest first, wherever the entries come from (the
/// cache or an export), and keeps their hashes for the anchors.
#[derive(Debug, Default)]
pub struct ChainCheck {
    hashes: Vec<String>,
}

impl ChainCheck {
    /// Checks the next entry against the ones before it.
    pub fn push(&mut self, e: &JournalEntry) -> std::result::Result<(), ChainBreak> {
        let expected_seq = self.hashes.len() as i64 + 1;
        let prev = self.hashes.last().map_or(GENESIS, String::as_str);
        let fail = if e.seq != expected_seq {
            Some(format!(
                "entry {} follows entry {}: entries were removed or reordered",
                e.seq,
                expected_seq - 1
            ))
        } else if e.prev_hash != prev {
            Some("its link to the previous entry does not match: an entry before it was altered, removed or reordered".into())
        } else if entry_hash(e) != e.hash {
            Some("its content does not match its hash: the entry was altered".into())
        } else {
            None
        };
        match fail {
            Some(reason) => Err(ChainBreak { seq: e.seq, reason }),
            None => {
                self.hashes.push(e.hash.clone());
                Ok(())
            }
        }
    }

    /// How many entries verified.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True when no entry was checked.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hashes of the verified entries, oldest first (entry `i + 1` at `i`).
    pub fn hashes(&self) -> &[String] {
        &self.hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> NewEntry<'_> {
        NewEntry {
            action,
            target: "p/k1",
            reason: Some("leaked in a ticket"),
            params: serde_json::json!({"dry_run": false}),
            result: "ok",
        }
    }

    #[test]
    fn chain_verifies_and_names_the_altered_entry() {
        let mut store = Store::open_in_memory().unwrap();
        for a in ["disable", "revoke", "acknowledge"] {
            store.append_journal(&entry(a)).unwrap();
        }
        assert_eq!(store.verify_journal().unwrap(), Ok(3));
        store
            .conn()
            .execute(
                "UPDATE journal SET reason = 'leaked in a tickeT' WHERE seq = 2",
                [],
            )
            .unwrap();
        let broken = store.verify_journal().unwrap().unwrap_err();
        assert_eq!(broken.seq, 2);
        assert!(broken.reason.contains("altered"));
    }

    #[cfg(unix)]
    #[test]
    fn the_operator_is_the_account_of_the_uid_and_the_host_is_named() {
        let mut store = Store::open_in_memory().unwrap();
        let e = store.append_journal(&entry("revoke")).unwrap();
        // The account the system maps the uid to, as `id -un` prints it.
        let id = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let expected = String::from_utf8(id.stdout).unwrap().trim().to_string();
        if id.status.success() {
            assert_eq!(e.os_user, expected);
        } else {
            assert_eq!(e.os_user, format!("uid {}", nix::unistd::getuid()));
        }
        assert_ne!(e.os_user, "unknown");
        assert!(!e.host.is_empty() && e.host != "unknown", "{}", e.host);
        assert_eq!(e.reason.as_deref(), Some("leaked in a ticket"));
    }

    #[test]
    fn removal_is_detected() {
        let mut store = Store::open_in_memory().unwrap();
        for a in ["disable", "revoke", "acknowledge"] {
            store.append_journal(&entry(a)).unwrap();
        }
        store
            .conn()
            .execute("DELETE FROM journal WHERE seq = 2", [])
            .unwrap();
        assert_eq!(store.verify_journal().unwrap().unwrap_err().seq, 3);
    }
}
