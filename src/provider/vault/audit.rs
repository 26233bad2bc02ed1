//! Incremental reading of a Vault / OpenBao file audit device's log.
//!
//! The log is one JSON object per line: a `request` line when a request arrives and a
//! `response` line when it is answered, both carrying `request.id`. One [`AuditRecord`]
//! is made per request, from the response line (which repeats the request and the auth
//! block) paired with its request line for the start time.
//!
//! The checkpoint is a cursor string `v1:INODE:HEADLEN:HEADCRC:PENDING:DONE`:
//! - `INODE` and the CRC-32 of the first `HEADLEN` bytes identify the file, so a rotated
//!   log (renamed to `audit.log.1`, `audit.log-20261129`, ...; or copied and truncated)
//!   is found again and finished before the new file is started at offset 0;
//! - `DONE` is the end of the last line handled; a partial last line (no newline yet) is
//!   left for next time;
//! - `PENDING` (<= `DONE`) is the start of the oldest request still waiting for its
//!   response. The next read starts there so the pair can be made, and skips what it has
//!   already emitted (everything before `DONE`), so nothing is lost or duplicated.
//!
//! A request that has had no response for [`STALE_AFTER`] (or whose file was rotated
//! away) is emitted on its own. Token values never leave this module: a raw
//! (`log_raw = true`) client token is reduced to a SHA-256 digest at once.

use crate::model::Outcome;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How long a request may wait for its response before it is emitted alone. Vault ends
/// every request after `max_request_duration` (90 s by default) and logs the response
/// then, so a request this much older than a later line will not be answered.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(120);
/// Bytes of the file's beginning that identify it.
const HEAD_LEN: u64 = 512;

/// One audited request.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub request_id: String,
    /// When the request arrived (its request line), else when it was answered.
    pub time: DateTime<Utc>,
    pub operation: String,
    pub path: String,
    pub remote_address: Option<String>,
    pub user_agent: Option<String>,
    /// `auth.display_name` of the token that made the request.
    pub display_name: Option<String>,
    /// The requesting token's accessor as logged: `hmac-sha256:...`, or plain when the
    /// device does not HMAC accessors.
    pub accessor: Option<String>,
    /// The accessor of a token the response issued (a login), as logged.
    pub issued_accessor: Option<String>,
    /// Hex digest identifying the client token (its HMAC, or the SHA-256 of a raw
    /// token); lets a request with a revoked or invalid token be grouped.
    pub token_ref: Option<String>,
    /// The policy that granted the request.
    pub granting_policy: Option<String>,
    pub error: Option<String>,
    /// False when no response line was seen (stale or rotated away).
    pub answered: bool,
}

/// What one read produced.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub records: Vec<AuditRecord>,
    pub next_cursor: String,
    /// More is ready now (the page filled up, or a rotated file was finished).
    pub has_more: bool,
    /// Lines that were not audit JSON (skipped, counted for the log).
    pub malformed: usize,
}

/// A parsed cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub inode: u64,
    pub head_len: u64,
    pub head_crc: u32,
    pub pending: u64,
    pub done: u64,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        let mut it = s.split(':');
        if it.next()? != "v1" {
            return None;
        }
        let c = Cursor {
            inode: it.next()?.parse().ok()?,
            head_len: it.next()?.parse().ok()?,
            head_crc: u32::from_str_radix(it.next()?, 16).ok()?,
            pending: it.next()?.parse().ok()?,
            done: it.next()?.parse().ok()?,
        };
        (it.next().is_none() && c.pending <= c.done).then_some(c)
    }

    pub fn render(&self) -> String {
        format!(
            "v1:{}:{}:{:08x}:{}:{}",
            self.inode, self.head_len, self.head_crc, self.pending, self.done
        )
    }
}

/// One line of a file audit device's log, as written: the fields keyaudit reads. The
/// one parser of these lines: the provider reads its audit log through it, and the
/// importer (`import/vault.rs`) reads exported logs through it.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// As written; see [`Entry::time`].
    pub time: Option<String>,
    /// `request` or `response`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub auth: Option<Auth>,
    pub request: Option<Request>,
    pub response: Option<Response>,
    pub error: Option<String>,
}

/// The `auth` block: the token that made the request (or, in a response, the token it
/// issued).
#[derive(Debug, Clone, Deserialize)]
pub struct Auth {
    /// The token, HMAC'd (`hmac-sha256:...`) unless the device logs raw values.
    pub client_token: Option<String>,
    /// The token's accessor, HMAC'd unless the device is told not to.
    pub accessor: Option<String>,
    pub display_name: Option<String>,
    pub entity_id: Option<String>,
    pub metadata: Option<HashMap<String, String>>,
    pub policies: Option<Vec<String>>,
    pub policy_results: Option<PolicyResults>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PolicyResults {
    #[serde(default)]
    pub granting_policies: Vec<NamedPolicy>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedPolicy {
    pub name: String,
}

/// The `request` block.
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    pub id: Option<String>,
    pub operation: Option<String>,
    pub path: Option<String>,
    pub remote_address: Option<String>,
    pub client_token: Option<String>,
    pub client_token_accessor: Option<String>,
    pub headers: Option<HashMap<String, Vec<String>>>,
    pub data: Option<RequestData>,
}

/// What keyaudit reads of a request's `data`: the accessor of a `lookup-accessor`
/// (HMAC'd by the device).
#[derive(Debug, Clone, Deserialize)]
pub struct RequestData {
    pub accessor: Option<String>,
}

/// The `response` block.
#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    pub auth: Option<Auth>,
    pub data: Option<ResponseData>,
}

/// What keyaudit reads of a response's `data`.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponseData {
    pub http_status_code: Option<i64>,
}

impl Entry {
    /// Parses one line (its JSON text).
    pub fn parse(text: &str) -> serde_json::Result<Entry> {
        serde_json::from_str(text)
    }

    /// Reads an entry from JSON already parsed.
    pub fn from_value(v: &serde_json::Value) -> serde_json::Result<Entry> {
        Entry::deserialize(v)
    }

    /// The time of the line (RFC 3339, as Vault writes it); `None` when it has none.
    pub fn time(&self) -> Result<Option<DateTime<Utc>>, chrono::ParseError> {
        self.time.as_deref().map(str::parse).transpose()
    }

    /// The request's id (`request.id`), if any.
    pub fn request_id(&self) -> Option<&str> {
        self.request.as_ref().and_then(|r| r.id.as_deref())
    }

    /// The first `User-Agent` request header (any case), if the device logs it.
    pub fn user_agent(&self) -> Option<&str> {
        let headers = self.request.as_ref()?.headers.as_ref()?;
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    /// The policy that granted the request.
    pub fn granting_policy(&self) -> Option<&str> {
        self.auth
            .as_ref()
            .and_then(|a| a.policy_results.as_ref())
            .and_then(|p| p.granting_policies.first())
            .map(|p| p.name.as_str())
    }

    /// The accessor of a token the response issued (a login), as logged.
    pub fn issued_accessor(&self) -> Option<&str> {
        self.response
            .as_ref()
            .and_then(|r| r.auth.as_ref())
            .and_then(|a| a.accessor.as_deref())
    }

    /// `response.data.http_status_code`, where the response set one.
    pub fn http_status_code(&self) -> Option<i64> {
        self.response
            .as_ref()
            .and_then(|r| r.data.as_ref())
            .and_then(|d| d.http_status_code)
    }
}

/// The outcome of an audited request from its error text.
pub fn outcome_of(error: Option<&str>) -> Outcome {
    match error.map(str::to_ascii_lowercase) {
        None => Outcome::Success,
        Some(e) if e.is_empty() => Outcome::Success,
        Some(e) if e.contains("permission denied") || e.contains("invalid token") => {
            Outcome::Denied
        }
        Some(_) => Outcome::Error,
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.is_empty())
}

/// The digest part of a logged token: the HMAC's hex, or SHA-256 of a raw token.
fn token_ref(logged: &str) -> String {
    match logged.strip_prefix("hmac-sha256:") {
        Some(h) => h.to_string(),
        None => crate::secret::fingerprint(logged)
            .trim_start_matches("sha256:")
            .to_string(),
    }
}

impl Entry {
    /// The record of the request this line is about, at `time`.
    fn into_record(self, time: DateTime<Utc>, answered: bool) -> Option<AuditRecord> {
        let granting_policy = self.granting_policy().map(str::to_string);
        let user_agent = self.user_agent().map(str::to_string);
        let issued_accessor = nonempty(self.issued_accessor().map(str::to_string));
        let req = self.request?;
        let request_id = nonempty(req.id)?;
        let auth = self.auth;
        let accessor = nonempty(auth.as_ref().and_then(|a| a.accessor.clone()))
            .or_else(|| nonempty(req.client_token_accessor));
        let token = nonempty(auth.as_ref().and_then(|a| a.client_token.clone()))
            .or_else(|| nonempty(req.client_token));
        Some(AuditRecord {
            request_id,
            time,
            operation: req.operation.unwrap_or_default(),
            path: req.path.unwrap_or_default(),
            remote_address: nonempty(req.remote_address),
            user_agent,
            display_name: nonempty(auth.and_then(|a| a.display_name)),
            accessor,
            issued_accessor,
            token_ref: token.as_deref().map(token_ref),
            granting_policy,
            error: nonempty(self.error),
            answered,
        })
    }
}

#[cfg(unix)]
fn inode_of(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn inode_of(_m: &std::fs::Metadata) -> u64 {
    0
}

fn head_crc(file: &mut File, len: u64) -> io::Result<Option<u32>> {
    let mut buf = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(0))?;
    file.by_ref().take(len).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 == len).then(|| crc32fast::hash(&buf)))
}

/// A file that may hold the log: the live file or a rotated sibling.
struct Candidate {
    path: PathBuf,
    inode: u64,
    len: u64,
    modified: std::time::SystemTime,
}

fn candidate(path: &Path) -> io::Result<Candidate> {
    let m = std::fs::metadata(path)?;
    Ok(Candidate {
        path: path.to_path_buf(),
        inode: inode_of(&m),
        len: m.len(),
        modified: m.modified().unwrap_or(std::time::UNIX_EPOCH),
    })
}

/// Rotated siblings of `live` (`audit.log.1`, `audit.log-2026...`; not compressed
/// ones), oldest first.
fn rotated_siblings(live: &Path) -> Vec<Candidate> {
    let (Some(dir), Some(base)) = (live.parent(), live.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut out: Vec<Candidate> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix(base)?;
            let rotated = (rest.starts_with('.') || rest.starts_with('-'))
                && ![".gz", ".bz2", ".xz", ".zst", ".zip"]
                    .iter()
                    .any(|z| rest.ends_with(z));
            rotated.then(|| candidate(&e.path()).ok()).flatten()
        })
        .collect();
    out.sort_by(|a, b| a.modified.cmp(&b.modified).then(b.path.cmp(&a.path)));
    out
}

fn matches_head(c: &Candidate, cur: &Cursor) -> io::Result<bool> {
    if c.len < cur.done || c.len < cur.head_len {
        return Ok(false);
    }
    let mut f = File::open(&c.path)?;
    Ok(head_crc(&mut f, cur.head_len)? == Some(cur.head_crc))
}

/// Where the next read happens.
struct Plan {
    path: PathBuf,
    cursor: Cursor,
    /// A rotated file: once read to its end it is finished.
    rotated: bool,
}

fn plan(live: &Path, cursor: Option<&str>) -> io::Result<Plan> {
    let live_found = candidate(live);
    let fresh = || -> io::Result<Plan> {
        let c = candidate(live)?;
        Ok(Plan {
            path: c.path,
            cursor: Cursor {
                inode: c.inode,
                ..Cursor::default()
            },
            rotated: false,
        })
    };
    let Some(cur) = cursor.and_then(Cursor::parse) else {
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            tracing::warn!(
                cursor = c,
                "unreadable audit log cursor; reading from the start"
            );
        }
        return fresh();
    };
    // Between a rename and the server reopening its log, the live name may not exist.
    let live_c = match live_found {
        Ok(c) => Some(c),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let live_inode = live_c.as_ref().map(|c| c.inode);
    if let Some(c) = live_c.as_ref().filter(|c| c.inode == cur.inode) {
        if matches_head(c, &cur)? {
            return Ok(Plan {
                path: live.to_path_buf(),
                cursor: cur,
                rotated: false,
            });
        }
    }
    let siblings = rotated_siblings(live);
    // Renamed away: the same inode under another name.
    for s in &siblings {
        if s.inode == cur.inode && matches_head(s, &cur)? {
            return Ok(Plan {
                path: s.path.clone(),
                cursor: cur,
                rotated: true,
            });
        }
    }
    // Copied and truncated: the live file kept its inode but lost its content; the copy
    // starts with the same bytes.
    if live_inode == Some(cur.inode) && cur.head_len > 0 {
        for s in siblings.iter().rev() {
            if matches_head(s, &cur)? {
                return Ok(Plan {
                    path: s.path.clone(),
                    cursor: Cursor {
                        inode: s.inode,
                        ..cur
                    },
                    rotated: true,
                });
            }
        }
    }
    tracing::warn!(
        log = %live.display(),
        "the audit log was replaced and the file read last is gone; reading the new file from the start"
    );
    fresh()
}

/// The file to read after the rotated file `finished`: the next newer sibling, else the
/// live file.
fn next_after(live: &Path, finished: &Path) -> io::Result<Candidate> {
    let siblings = rotated_siblings(live);
    if let Some(i) = siblings.iter().position(|s| s.path == finished) {
        if let Some(next) = siblings.into_iter().nth(i + 1) {
            return Ok(next);
        }
    }
    candidate(live)
}

/// Reads up to `max_records` records after `cursor` from the audit log at `live`.
pub fn read(live: &Path, cursor: Option<&str>, max_records: usize) -> io::Result<Batch> {
    let plan = plan(live, cursor)?;
    // A renamed file is finished only once the server writes to the new one (it keeps
    // its handle until reopened on SIGHUP).
    let finished_file = plan.rotated && candidate(live).map(|c| c.len > 0).unwrap_or(false);
    read_file(&plan.path, plan.cursor, max_records, finished_file).and_then(|mut b| {
        if finished_file && !b.has_more {
            let next = next_after(live, &plan.path)?;
            b.next_cursor = Cursor {
                inode: next.inode,
                ..Cursor::default()
            }
            .render();
            b.has_more = true;
        }
        Ok(b)
    })
}

struct Waiting {
    start: u64,
    time: DateTime<Utc>,
    line: Entry,
}

fn read_file(
    path: &Path,
    cur: Cursor,
    max_records: usize,
    finished_file: bool,
) -> io::Result<Batch> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let head_len = len.min(HEAD_LEN).max(cur.head_len);
    let crc = head_crc(&mut file, head_len)?.unwrap_or(cur.head_crc);
    file.seek(SeekFrom::Start(cur.pending))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut batch = Batch::default();
    let mut waiting: HashMap<String, Waiting> = HashMap::new();
    let mut newest: Option<DateTime<Utc>> = None;
    let mut offset = cur.pending;
    let mut buf = Vec::with_capacity(4096);
    let mut full = false;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        let start = offset;
        let complete = buf.last() == Some(&b'\n');
        if !complete && !finished_file {
            break; // still being written: next time
        }
        offset += n as u64;
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(_) => {
                if start >= cur.done {
                    batch.malformed += 1;
                }
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let parsed = Entry::parse(text).map_err(|e| e.to_string()).and_then(|l| {
            match (l.kind.is_some(), l.time()) {
                (true, Ok(time)) => Ok((l, time)),
                (false, _) => Err("missing field `type`".to_string()),
                (_, Err(e)) => Err(format!("time: {e}")),
            }
        });
        let (line, time) = match parsed {
            Ok(l) => l,
            Err(e) => {
                if start >= cur.done {
                    batch.malformed += 1;
                    tracing::debug!(log = %path.display(), offset = start, "skipping a line that is not audit JSON: {e}");
                }
                continue;
            }
        };
        let Some(id) = line
            .request_id()
            .filter(|i| !i.is_empty())
            .map(str::to_string)
        else {
            continue;
        };
        let now = time.unwrap_or_else(Utc::now);
        newest = Some(newest.map_or(now, |n| n.max(now)));
        let already = start < cur.done;
        match line.kind.as_deref().unwrap_or_default() {
            "request" => {
                waiting.insert(
                    id,
                    Waiting {
                        start,
                        time: now,
                        line,
                    },
                );
            }
            "response" => {
                let asked = waiting.remove(&id);
                if already {
                    continue;
                }
                let time = asked.as_ref().map_or(now, |w| w.time);
                if let Some(r) = line.into_record(time, true) {
                    batch.records.push(r);
                }
            }
            _ => continue,
        }
        if batch.records.len() >= max_records {
            full = true;
            break;
        }
    }
    // Requests still without a response: emit the stale ones, wait for the others.
    let mut pending = offset;
    let mut stale: Vec<Waiting> = Vec::new();
    for (_, w) in waiting.drain() {
        let old = finished_file || newest.is_some_and(|n| n - w.time > STALE_AFTER);
        if old {
            stale.push(w);
        } else {
            pending = pending.min(w.start);
        }
    }
    stale.sort_by_key(|w| w.start);
    for w in stale {
        let time = w.time;
        if let Some(r) = w.line.into_record(time, false) {
            batch.records.push(r);
        }
    }
    batch.has_more = full;
    batch.next_cursor = Cursor {
        inode: cur.inode,
        head_len,
        head_crc: crc,
        pending,
        done: offset,
    }
    .render();
    Ok(batch)
}

/// The HMACs of accessors keyaudit itself looked up, read from its own
/// `auth/token/lookup-accessor` request lines (whose `request.data.accessor` the device
/// HMAC'd). `ids` maps the request ids of those lookups (from their answers) to the
/// accessor asked for; the scan starts at `from` (inode, offset), the end of the live
/// file before the lookups began, or at 0 when the file changed since. Returns
/// HMAC -> accessor. This spares one `sys/audit-hash` call per token.
pub fn harvest_lookups(
    live: &Path,
    from: Option<(u64, u64)>,
    ids: &HashMap<String, String>,
) -> io::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut file = File::open(live)?;
    let m = file.metadata()?;
    let start = match from {
        Some((inode, offset)) if inode == inode_of(&m) && offset <= m.len() => offset,
        _ => 0,
    };
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut buf = String::new();
    while out.len() < ids.len() {
        buf.clear();
        if reader.read_line(&mut buf)? == 0 || !buf.ends_with('\n') {
            break;
        }
        if !buf.contains("auth/token/lookup-accessor") {
            continue;
        }
        let Ok(l) = Entry::parse(&buf) else {
            continue;
        };
        let Some(r) = l.request.filter(|_| l.kind.as_deref() == Some("request")) else {
            continue;
        };
        let (Some(id), Some(h)) = (r.id, r.data.and_then(|d| d.accessor)) else {
            continue;
        };
        if let Some(accessor) = ids.get(&id) {
            if h.starts_with("hmac-sha256:") {
                out.insert(h, accessor.clone());
            }
        }
    }
    Ok(out)
}

/// The live file's identity and length now (the start of a later [`harvest_lookups`]).
pub fn mark(live: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(live)
        .ok()
        .map(|m| (inode_of(&m), m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_error_text() {
        assert_eq!(outcome_of(None), Outcome::Success);
        assert_eq!(outcome_of(Some("")), Outcome::Success);
        assert_eq!(
            outcome_of(Some("1 error occurred:\n\t* permission denied\n\n")),
            Outcome::Denied
        );
        assert_eq!(outcome_of(Some("invalid accessor")), Outcome::Error);
    }

    #[test]
    fn one_parse_from_text_or_from_parsed_json() {
        let text = r#"{"time":"2026-11-29T01:00:01.5Z","type":"response","auth":{"accessor":"hmac-sha256:bb","display_name":"token-x","policies":["default"],"metadata":{"username":"ann"},"policy_results":{"allowed":true,"granting_policies":[{"name":"reader","type":"acl"}]}},"request":{"id":"r1","operation":"read","path":"secret/x","headers":{"User-Agent":["curl/8"]}},"response":{"auth":{"accessor":"hmac-sha256:cc"},"data":{"http_status_code":204}}}"#;
        let a = Entry::parse(text).unwrap();
        let b = Entry::from_value(&serde_json::from_str(text).unwrap()).unwrap();
        for e in [a, b] {
            assert_eq!(e.kind.as_deref(), Some("response"));
            assert_eq!(e.request_id(), Some("r1"));
            assert_eq!(e.user_agent(), Some("curl/8"));
            assert_eq!(e.granting_policy(), Some("reader"));
            assert_eq!(e.issued_accessor(), Some("hmac-sha256:cc"));
            assert_eq!(e.http_status_code(), Some(204));
            assert_eq!(
                e.time().unwrap().unwrap().to_rfc3339(),
                "2026-11-29T01:00:01.500+00:00"
            );
        }
    }
}
