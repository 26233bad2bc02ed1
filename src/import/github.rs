//! GitHub organisation and enterprise audit-log exports (JSON and CSV, as downloaded
//! from the audit log page or streamed).
//!
//! Fields: `@timestamp` / `created_at` (epoch milliseconds or RFC 3339), `action`
//! (`repo.create`, `personal_access_token.access_granted`, ...), `actor`, `actor_ip`,
//! `user_agent`, `hashed_token` (base64 SHA-256 of the token used), `token_id`,
//! `programmatic_access_type`, `_document_id`, `request_id`.

use super::fields::{parse_time, Fields};
use super::{Loc, Mapper};
use crate::model::{Event, Outcome};
use serde_json::Value;

/// Maps GitHub audit-log entries.
#[derive(Default)]
pub struct GithubMapper;

/// Maps one GitHub audit-log entry (a JSON object, or a CSV row turned into one).
///
/// The key is the token that made the call: `token_id`, else `hashed_token`; entries
/// made from a web session have neither and are filed under `web:<actor>`.
pub fn github_entry_to_event(provider: &str, v: &Value) -> Result<Event, String> {
    let action = v
        .first_text(&["action"])
        .ok_or("missing action")?
        .into_owned();
    let t = v
        .first_text(&["@timestamp", "created_at", "timestamp"])
        .ok_or("missing @timestamp/created_at")?;
    let time = parse_time(&t)?;
    let actor = v.first_text(&["actor", "user"]).map(|s| s.into_owned());
    let key_id = match v.first_text(&["token_id"]) {
        Some(id) => format!("token:{id}"),
        None => match v.first_text(&["hashed_token"]) {
            Some(h) => h.into_owned(),
            None => format!("web:{}", actor.as_deref().unwrap_or("unknown")),
        },
    };
    let lower = action.to_ascii_lowercase();
    let outcome = if lower.contains("denied") || lower.contains("blocked") {
        Outcome::Denied
    } else if lower.ends_with("failure") || lower.ends_with("failed") {
        Outcome::Error
    } else {
        Outcome::Success
    };
    let opt = |names: &[&str]| v.first_text(names).map(|s| s.into_owned());
    Ok(Event {
        provider: provider.to_string(),
        id: opt(&["_document_id", "document_id"]).unwrap_or_default(),
        time,
        key_id,
        principal: actor,
        action,
        scope: opt(&["token_scopes", "programmatic_access_type"]),
        source_ip: opt(&["actor_ip", "ip"]),
        user_agent: opt(&["user_agent"]),
        outcome,
        status_code: None,
        request_id: opt(&["request_id"]),
        records: None,
        raw: None,
    })
}

impl Mapper for GithubMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        _: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        out.push(github_entry_to_event(provider, v)?);
        Ok(())
    }
}

/// True when a record looks like a GitHub audit-log entry.
pub(crate) fn looks_like(v: &Value) -> bool {
    v.get("action").is_some()
        && (v.get("@timestamp").is_some()
            || v.get("_document_id").is_some()
            || v.get("hashed_token").is_some()
            || v.get("actor_ip").is_some()
            || (v.get("actor").is_some() && v.get("org").is_some()))
}
