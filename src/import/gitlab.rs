//! GitLab audit events, as returned by the audit events API (`GET /audit_events`,
//! `/groups/:id/audit_events`, `/projects/:id/audit_events`: a JSON array) or streamed
//! (one JSON object per line).
//!
//! GitLab records the acting user, not the credential, so events are filed under
//! `author:<author id>` (or `token:<id>` when the details name the token used).

use super::fields::{parse_time, Fields};
use super::{Loc, Mapper};
use crate::model::{Event, Outcome};
use serde_json::Value;

/// Maps GitLab audit events.
#[derive(Default)]
pub struct GitlabMapper;

/// Maps one GitLab audit event.
pub fn gitlab_event_to_event(provider: &str, v: &Value) -> Result<Event, String> {
    let t = v.first_text(&["created_at"]).ok_or("missing created_at")?;
    let time = parse_time(&t)?;
    let author = v
        .first_text(&["author_id"])
        .map(|s| s.into_owned())
        .ok_or("missing author_id")?;
    let key_id = match v.first_text(&["details.token_id", "details.personal_access_token_id"]) {
        Some(id) => format!("token:{id}"),
        None => format!("author:{author}"),
    };
    let action = v
        .first_text(&[
            "event_type",
            "event_name",
            "details.event_name",
            "details.custom_message",
            "details.action",
        ])
        .map(|s| s.into_owned())
        .or_else(|| {
            v.first_text(&["details.change"]).map(|c| {
                let from = v.text("details.from").unwrap_or_default();
                let to = v.text("details.to").unwrap_or_default();
                format!("change {c} from {from} to {to}")
            })
        })
        .or_else(|| {
            v.first_text(&["details.add", "details.remove"])
                .map(|x| format!("change {x}"))
        })
        .unwrap_or_else(|| "audit event".to_string());
    let target = v
        .first_text(&[
            "details.target_details",
            "entity_path",
            "details.entity_path",
        ])
        .map(|s| s.into_owned());
    let action = match target {
        Some(t) if !action.contains(t.as_str()) => format!("{action} ({t})"),
        _ => action,
    };
    let lower = action.to_ascii_lowercase();
    let outcome =
        if lower.contains("failed") || lower.contains("denied") || lower.contains("blocked") {
            Outcome::Denied
        } else {
            Outcome::Success
        };
    let opt = |names: &[&str]| v.first_text(names).map(|s| s.into_owned());
    Ok(Event {
        provider: provider.to_string(),
        id: opt(&["id"]).unwrap_or_default(),
        time,
        key_id,
        principal: opt(&["author_name", "details.author_name", "details.author_email"])
            .or(Some(author)),
        action,
        scope: None,
        source_ip: opt(&["ip_address", "details.ip_address"]),
        user_agent: opt(&["user_agent", "details.user_agent"]),
        outcome,
        status_code: None,
        request_id: opt(&["details.request_id", "request_id"]),
        records: None,
        raw: None,
    })
}

impl Mapper for GitlabMapper {
    fn map(
        &mut self,
        provider: &str,
        v: &Value,
        _: Loc,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        out.push(gitlab_event_to_event(provider, v)?);
        Ok(())
    }
}

/// True when a record looks like a GitLab audit event.
pub(crate) fn looks_like(v: &Value) -> bool {
    v.get("author_id").is_some() && (v.get("entity_type").is_some() || v.get("details").is_some())
}
