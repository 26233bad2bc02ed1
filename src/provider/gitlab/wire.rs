//! GitLab's records (access tokens, audit events) and their mapping to keys and events.

use super::GitlabProvider;
use crate::model::{Event, Key, KeySource, KeyStatus};
use crate::provider::{EventPage, Held, ProviderError, Result};
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

/// Where a token lives: which endpoints list, read, revoke and rotate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    Personal,
    Project(String),
    Group(String),
}

impl Place {
    fn base(&self) -> String {
        let enc = crate::provider::http::encode_segment;
        match self {
            Place::Personal => "/personal_access_tokens".into(),
            Place::Project(p) => format!("/projects/{}/access_tokens", enc(p)),
            Place::Group(g) => format!("/groups/{}/access_tokens", enc(g)),
        }
    }

    pub fn list_path(&self) -> String {
        self.base()
    }

    pub fn token_path(&self, id: u64) -> String {
        format!("{}/{id}", self.base())
    }

    /// The owner column: the project's or group's path, or the user.
    fn owner(&self, user_id: u64) -> String {
        match self {
            Place::Personal => format!("user {user_id}"),
            Place::Project(p) => format!("project {p}"),
            Place::Group(g) => format!("group {g}"),
        }
    }

    /// The tokens of this place, in words: `the access tokens of project acme/payroll`.
    pub fn tokens(&self) -> String {
        match self {
            Place::Personal => "the personal access tokens".into(),
            Place::Project(p) => format!("the access tokens of project {p}"),
            Place::Group(g) => format!("the access tokens of group {g}"),
        }
    }

    /// What listing this place's tokens needs (docs/providers/gitlab.md).
    pub fn needs(&self) -> String {
        match self {
            Place::Personal => {
                "scope `read_api` (every user's tokens: an administrator's token)".into()
            }
            Place::Project(p) => {
                format!("scope `read_api` and the Maintainer or Owner role on project {p}")
            }
            Place::Group(g) => format!("scope `read_api` and the Owner role on group {g}"),
        }
    }

    /// The cached keys of this place (by their owner column), kept when its listing is
    /// refused.
    pub fn held(&self) -> Held {
        match self {
            Place::Personal => Held::owner_prefix("user "),
            _ => Held::owner(&self.owner(0)),
        }
    }

    fn purpose(&self) -> &'static str {
        match self {
            Place::Personal => "personal access token",
            Place::Project(_) => "project access token",
            Place::Group(_) => "group access token",
        }
    }
}

/// The key id of GitLab token `n`.
pub fn key_id(n: u64) -> String {
    format!("token:{n}")
}

/// The GitLab token number of a key id (`token:<n>`).
pub(super) fn token_number(id: &str) -> Option<u64> {
    id.strip_prefix("token:")?.parse().ok()
}

/// A personal, project or group access token as the API lists it.
#[derive(Debug, Deserialize)]
pub(super) struct WireToken {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub revoked: bool,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub user_id: u64,
    pub last_used_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub expires_at: Option<NaiveDate>,
    pub access_level: Option<u32>,
}

/// The answer of a rotate call: the new token and its value, shown once.
#[derive(Deserialize)]
pub(super) struct NewToken {
    #[serde(flatten)]
    pub info: WireToken,
    pub token: String,
}

fn role(level: u32) -> &'static str {
    match level {
        10 => "guest",
        15 => "planner",
        20 => "reporter",
        30 => "developer",
        40 => "maintainer",
        50 => "owner",
        _ => "role",
    }
}

impl WireToken {
    pub fn to_key(&self, provider: &str, place: &Place) -> Key {
        let expires = self
            .expires_at
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        let status = if self.revoked {
            KeyStatus::Revoked
        } else if !self.active || expires.is_some_and(|e| e <= Utc::now()) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        };
        let mut scopes = self.scopes.clone();
        if let Some(l) = self.access_level {
            scopes.push(format!("role:{}", role(l)));
        }
        Key {
            provider: provider.to_string(),
            id: key_id(self.id),
            name: self.name.clone(),
            owner: place.owner(self.user_id),
            environment: None,
            purpose: Some(
                self.description
                    .clone()
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or_else(|| place.purpose().to_string()),
            ),
            prefix: String::new(),
            fingerprint: String::new(),
            scopes,
            status,
            created: self.created_at,
            expires,
            last_used: self.last_used_at,
            rotated_to: None,
            source: KeySource::Provider,
        }
    }
}

/// Maps one audit event (the importer's mapping, so a synced event and the same event
/// imported from an export agree), tying token events to their token: `target_type`
/// `PersonalAccessToken` names the token in `target_id`.
pub fn event_from_audit(provider: &str, v: &Value) -> std::result::Result<Event, String> {
    let mut redacted = v.clone();
    crate::import::redact::redact_value(&mut redacted);
    let mut e = crate::import::gitlab::gitlab_event_to_event(provider, &redacted)?;
    let details = redacted.get("details");
    let target_type = details
        .and_then(|d| d.get("target_type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if target_type.ends_with("AccessToken") {
        let target = details.and_then(|d| d.get("target_id"));
        let n = target
            .and_then(Value::as_u64)
            .or_else(|| target.and_then(Value::as_str).and_then(|s| s.parse().ok()));
        if let Some(n) = n {
            e.key_id = key_id(n);
        }
    }
    if let Some(name) = redacted.get("event_name").and_then(Value::as_str) {
        if !e.action.contains(name) {
            e.action = format!("{name}: {}", e.action);
        }
    }
    e.raw = Some(redacted.to_string());
    Ok(e)
}

/// Where reading the audit streams stands (the sync cursor, as JSON): stream `s`, page
/// `p`, the `created_after` of each stream, and the newest time seen in the stream
/// being read.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct Cursor {
    s: usize,
    p: u32,
    #[serde(default)]
    after: std::collections::BTreeMap<String, DateTime<Utc>>,
    top: Option<DateTime<Utc>>,
}

/// One page of audit events. Each stream is read newest first, page by page, from its
/// `created_after` mark (inclusive: the boundary events come again and are skipped as
/// duplicates by the cache); when a stream is done its mark moves to the newest event
/// seen, and reading goes on with the next stream.
pub(super) async fn list_events(p: &GitlabProvider, cursor: Option<&str>) -> Result<EventPage> {
    let streams = p.audit_paths();
    if streams.is_empty() {
        return Err(ProviderError::Unsupported {
            provider: p.name.clone(),
            operation: "listing events (no `projects`, `groups` or `instance_audit` configured)",
        });
    }
    let mut c: Cursor = cursor
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    if c.s >= streams.len() {
        c.s = 0;
    }
    c.p = c.p.max(1);
    let path = &streams[c.s];
    let mut q = vec![
        ("page", c.p.to_string()),
        ("per_page", p.per_page.to_string()),
    ];
    if let Some(after) = c.after.get(path) {
        q.push((
            "created_after",
            after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ));
    }
    let a = p
        .call::<Vec<Value>>(Method::GET, path, &q, "", None)
        .await?;
    let mut events = Vec::with_capacity(a.body.len());
    for v in &a.body {
        let e = event_from_audit(&p.name, v).map_err(|why| ProviderError::Protocol {
            provider: p.name.clone(),
            message: format!("audit event on {path}: {why}"),
        })?;
        c.top = Some(c.top.map_or(e.time, |t| t.max(e.time)));
        events.push(e);
    }
    let has_more = match a.next_page {
        Some(n) if n > c.p && !a.body.is_empty() => {
            c.p = n;
            true
        }
        _ => {
            if let Some(top) = c.top.take() {
                c.after.insert(path.clone(), top);
            }
            c.p = 1;
            c.s += 1;
            let more = c.s < streams.len();
            if !more {
                c.s = 0;
            }
            more
        }
    };
    Ok(EventPage {
        events,
        next_cursor: serde_json::to_string(&c).unwrap_or_default(),
        has_more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_events_belong_to_their_token() {
        let v = json!({"id": 7, "author_id": 3, "entity_id": 42, "entity_type": "Project",
            "details": {"event_name": "project_access_token_revoked", "author_name": "Ana",
                "custom_message": "Revoked project access token with token_id: 12",
                "target_id": 12, "target_type": "PersonalAccessToken",
                "target_details": "deploy", "ip_address": "198.51.100.7",
                "entity_path": "acme/payroll"},
            "created_at": "2026-11-02T10:00:00.000Z"});
        let e = event_from_audit("gl", &v).unwrap();
        assert_eq!(e.key_id, "token:12");
        assert_eq!(e.id, "7");
        assert_eq!(e.source_ip.as_deref(), Some("198.51.100.7"));
        assert!(
            e.action.starts_with("project_access_token_revoked"),
            "{}",
            e.action
        );
    }

    #[test]
    fn a_revoked_token_is_revoked_and_an_inactive_one_expired() {
        let mut t: WireToken = serde_json::from_value(json!({"id": 5, "name": "ci",
            "revoked": false, "created_at": "2026-01-01T00:00:00Z", "scopes": ["read_api"],
            "user_id": 9, "last_used_at": null, "active": true, "expires_at": "2099-01-31",
            "access_level": 30}))
        .unwrap();
        let k = t.to_key("gl", &Place::Project("acme/app".into()));
        assert_eq!(k.id, "token:5");
        assert_eq!(k.status, KeyStatus::Active);
        assert_eq!(k.owner, "project acme/app");
        assert_eq!(k.scopes, vec!["read_api", "role:developer"]);
        t.active = false;
        assert_eq!(t.to_key("gl", &Place::Personal).status, KeyStatus::Expired);
        t.revoked = true;
        assert_eq!(t.to_key("gl", &Place::Personal).status, KeyStatus::Revoked);
    }
}
