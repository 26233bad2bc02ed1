//! OpenAI's records (projects, project API keys, admin API keys, audit-log entries) and
//! their mapping to keys and events.

use crate::model::{Event, Key, KeySource, KeyStatus, Outcome};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

/// The scope of a project's key: this and the project's id.
pub(super) const PROJECT_SCOPE: &str = "project:";

/// The scope of an admin key.
pub(super) const ADMIN_SCOPE: &str = "admin";

/// One page of any of OpenAI's lists (`after` / `has_more` / `last_id` pagination).
#[derive(Debug, Deserialize)]
pub(super) struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub last_id: Option<String>,
}

impl<T> List<T> {
    /// The `after` of the next page, when there is one.
    pub fn next_after(&self, id_of_last: Option<&str>) -> Option<String> {
        if !self.has_more || self.data.is_empty() {
            return None;
        }
        self.last_id
            .clone()
            .or_else(|| id_of_last.map(str::to_string))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Project {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

impl Project {
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) if !n.trim().is_empty() => format!("{n} ({})", self.id),
            _ => self.id.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Person {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Owner {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub user: Option<Person>,
    #[serde(default)]
    pub service_account: Option<Person>,
    // Admin keys name their owner directly.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl Owner {
    /// `user EMAIL` or `service account NAME (ID)`.
    pub fn label(&self) -> String {
        if let Some(sa) = &self.service_account {
            return format!(
                "service account {} ({})",
                sa.name.as_deref().unwrap_or("?"),
                sa.id
            );
        }
        if let Some(u) = &self.user {
            return format!(
                "user {}",
                u.email.as_deref().or(u.name.as_deref()).unwrap_or(&u.id)
            );
        }
        let who = self.name.as_deref().or(self.id.as_deref()).unwrap_or("?");
        if self.kind == "service_account" {
            format!("service account {who}")
        } else {
            format!("user {who}")
        }
    }

    /// The stable identity of the owner (a user's or a service account's id).
    #[cfg(test)]
    pub fn identity(&self) -> String {
        self.service_account
            .as_ref()
            .or(self.user.as_ref())
            .map(|p| p.id.clone())
            .or_else(|| self.id.clone())
            .unwrap_or_default()
    }
}

/// A project API key, or an admin API key (`project` is then `None`).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct WireKey {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub redacted_value: String,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub last_used_at: Option<i64>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub owner_project_access: Option<String>,
    #[serde(default)]
    pub owner: Owner,
}

fn unix(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(|s| Utc.timestamp_opt(s, 0).single())
}

/// The redacted value in the cache's form: OpenAI's `sk-proj-...abcd` with `…` for the
/// elided part, which the scanner compares with a found secret's head and last four.
pub fn prefix_of(redacted: &str) -> String {
    crate::output::sanitize(&redacted.replacen("...", "…", 1))
        .chars()
        .take(40)
        .collect()
}

impl WireKey {
    pub fn to_key(&self, provider: &str, project: Option<&Project>) -> Key {
        let expires = unix(self.expires_at);
        let status = if expires.is_some_and(|e| e <= Utc::now()) {
            KeyStatus::Expired
        } else if self.owner_project_access.as_deref() == Some("inactive") {
            // The owner lost access to the project: the key no longer works there.
            KeyStatus::Inactive
        } else {
            KeyStatus::Active
        };
        let purpose = match project {
            None => "organization admin key".to_string(),
            Some(p) if self.owner.kind == "service_account" => format!(
                "service account key in project {}; revoking deletes the service account",
                p.label()
            ),
            Some(p) => format!("project API key in project {}", p.label()),
        };
        let mut scopes = Vec::new();
        if let Some(p) = project {
            scopes.push(format!("{PROJECT_SCOPE}{}", p.id));
        } else {
            scopes.push(ADMIN_SCOPE.to_string());
        }
        Key {
            provider: provider.to_string(),
            id: self.id.clone(),
            name: self
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| self.id.clone()),
            owner: self.owner.label(),
            environment: None,
            purpose: Some(purpose),
            prefix: prefix_of(&self.redacted_value),
            fingerprint: String::new(),
            scopes,
            status,
            created: unix(self.created_at),
            expires,
            last_used: unix(self.last_used_at),
            rotated_to: None,
            source: KeySource::Provider,
        }
    }
}

fn text_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One audit-log entry as an event. The key it concerns: the key an `api_key.*` entry
/// names (`api_key.created.id`, the key's tracking id, which is its id in the key
/// listings), else the API key that performed the action (`actor.api_key.id`); entries
/// of a browser session concern no key and are filed under `-`.
pub fn event_from_audit(provider: &str, v: &Value) -> Result<Event, String> {
    let id = text_at(v, &["id"]).ok_or("an audit-log entry without `id`")?;
    let kind = text_at(v, &["type"]).ok_or("an audit-log entry without `type`")?;
    let time = v
        .get("effective_at")
        .and_then(Value::as_i64)
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .ok_or("an audit-log entry without `effective_at`")?;
    let subject = v.get(kind);
    let key_id = if kind.starts_with("api_key.") {
        subject.and_then(|s| text_at(s, &["id"]))
    } else {
        None
    }
    .or_else(|| text_at(v, &["actor", "api_key", "id"]))
    .unwrap_or("-");
    let principal = text_at(v, &["actor", "session", "user", "email"])
        .or_else(|| text_at(v, &["actor", "api_key", "user", "email"]))
        .or_else(|| text_at(v, &["actor", "api_key", "user", "id"]))
        .or_else(|| text_at(v, &["actor", "api_key", "service_account", "id"]))
        .or_else(|| text_at(v, &["actor", "session", "user", "id"]));
    let mut action = kind.to_string();
    if let Some(target) = subject.and_then(|s| text_at(s, &["id"])) {
        action = format!("{kind} {target}");
    }
    if let Some(p) = text_at(v, &["project", "id"]) {
        action = format!("{action} (project {p})");
    }
    let outcome = if kind.ends_with(".failed") {
        Outcome::Denied
    } else {
        Outcome::Success
    };
    let clean = |s: &str| {
        crate::output::sanitize(s)
            .chars()
            .take(300)
            .collect::<String>()
    };
    let mut raw = v.clone();
    crate::import::redact::redact_value(&mut raw);
    Ok(Event {
        provider: provider.to_string(),
        id: clean(id),
        time,
        key_id: clean(key_id),
        principal: principal.map(clean),
        action: clean(&action),
        scope: None,
        source_ip: text_at(v, &["actor", "session", "ip_address"]).map(clean),
        user_agent: text_at(v, &["actor", "session", "user_agent"]).map(clean),
        outcome,
        status_code: None,
        request_id: None,
        records: None,
        raw: Some(raw.to_string()),
    })
}

/// Where reading the audit log stands (the sync cursor, as JSON). The log is served
/// newest first; a sweep reads pages (`after`) until it reaches `top`, the newest entry
/// of the previous sweep, then the sweep's own newest entry becomes `top`.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
pub(super) struct AuditCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_top: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_key_events_belong_to_their_key_and_session_details_are_kept() {
        let v = json!({"id": "audit_log-1", "type": "api_key.deleted", "effective_at": 1720804190,
            "project": {"id": "proj_a", "name": "payroll"},
            "actor": {"type": "session", "session": {"user": {"id": "user-1", "email": "ana@acme.example"},
                "ip_address": "198.51.100.7", "user_agent": "Mozilla/5.0"}},
            "api_key.deleted": {"id": "key_abc"}});
        let e = event_from_audit("oa", &v).unwrap();
        assert_eq!(e.key_id, "key_abc");
        assert_eq!(e.principal.as_deref(), Some("ana@acme.example"));
        assert_eq!(e.source_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(e.action, "api_key.deleted key_abc (project proj_a)");
        let v = json!({"id": "audit_log-2", "type": "project.updated", "effective_at": 1720804191,
            "actor": {"type": "api_key", "api_key": {"id": "key_adm", "type": "user",
                "user": {"id": "user-1", "email": "ana@acme.example"}}},
            "project.updated": {"id": "proj_a"}});
        assert_eq!(event_from_audit("oa", &v).unwrap().key_id, "key_adm");
    }

    #[test]
    fn a_project_key_shows_its_redacted_value_owner_and_project() {
        let k: WireKey = serde_json::from_value(json!({"object": "organization.project.api_key",
            "redacted_value": "sk-proj-...Xy9Z", "name": "payroll-sync", "created_at": 1711471533,
            "last_used_at": null, "id": "key_1", "owner_project_access": "active",
            "owner": {"type": "service_account", "service_account": {"id": "svc_acct_1",
                "name": "etl", "created_at": 1711471533, "role": "member"}}}))
        .unwrap();
        let p = Project {
            id: "proj_a".into(),
            name: Some("Payroll".into()),
        };
        let key = k.to_key("oa", Some(&p));
        assert_eq!(key.prefix, "sk-proj-…Xy9Z");
        assert_eq!(key.owner, "service account etl (svc_acct_1)");
        assert_eq!(key.status, KeyStatus::Active);
        assert!(key.purpose.unwrap().contains("deletes the service account"));
        assert_eq!(k.owner.identity(), "svc_acct_1");
    }
}
