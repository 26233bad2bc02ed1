//! Cloudflare's records (API tokens, audit logs) and their mapping to keys and events.

use crate::model::{Event, Key, KeySource, KeyStatus, Outcome};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Where a token lives: the user's own tokens, or an account's (account-owned tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    User,
    Account(String),
}

impl Place {
    pub fn base(&self) -> String {
        match self {
            Place::User => "/user/tokens".into(),
            Place::Account(a) => {
                format!(
                    "/accounts/{}/tokens",
                    crate::provider::http::encode_segment(a)
                )
            }
        }
    }

    pub fn token_path(&self, id: &str) -> String {
        format!(
            "{}/{}",
            self.base(),
            crate::provider::http::encode_segment(id)
        )
    }

    /// The tokens of this place, in words.
    pub fn tokens(&self) -> String {
        match self {
            Place::User => "the user's API tokens".into(),
            Place::Account(a) => format!("the API tokens of account {a}"),
        }
    }

    /// The cached keys of this place (by their owner column), kept when its listing is
    /// refused.
    pub fn held(&self) -> crate::provider::Held {
        crate::provider::Held::owner(&self.owner())
    }

    fn owner(&self) -> String {
        match self {
            Place::User => "user".into(),
            Place::Account(a) => format!("account {a}"),
        }
    }
}

/// The key id of Cloudflare token `id`.
pub fn key_id(id: &str) -> String {
    format!("token:{id}")
}

pub(super) fn token_of(key: &str) -> Option<&str> {
    key.strip_prefix("token:").filter(|s| !s.is_empty())
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub(super) struct PermissionGroup {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub(super) struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub effect: String,
    #[serde(default)]
    pub permission_groups: Vec<PermissionGroup>,
    #[serde(default)]
    pub resources: Value,
}

/// An API token as the API lists it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct WireToken {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    pub issued_on: Option<DateTime<Utc>>,
    pub last_used_on: Option<DateTime<Utc>>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_on: Option<DateTime<Utc>>,
    #[serde(default)]
    pub condition: Option<Value>,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

impl WireToken {
    pub fn to_key(&self, provider: &str, place: &Place) -> Key {
        let status = match self.status.as_str() {
            "active" if self.expires_on.is_some_and(|e| e <= Utc::now()) => KeyStatus::Expired,
            "active" => KeyStatus::Active,
            "disabled" => KeyStatus::Inactive,
            _ => KeyStatus::Expired,
        };
        let mut scopes: Vec<String> = Vec::new();
        for p in &self.policies {
            for g in &p.permission_groups {
                let name = g.name.clone().unwrap_or_else(|| g.id.clone());
                scopes.push(if p.effect == "deny" {
                    format!("deny:{name}")
                } else {
                    name
                });
            }
        }
        let ips = |field: &str| -> Vec<String> {
            self.condition
                .as_ref()
                .and_then(|c| c.get("request_ip"))
                .and_then(|r| r.get(field))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        scopes.extend(ips("in").into_iter().map(|c| format!("ip:{c}")));
        scopes.extend(ips("not_in").into_iter().map(|c| format!("not-ip:{c}")));
        if let Some(nb) = self.not_before {
            scopes.push(format!("not-before:{}", crate::model::rfc3339(nb)));
        }
        Key {
            provider: provider.to_string(),
            id: key_id(&self.id),
            name: self.name.clone(),
            owner: place.owner(),
            environment: None,
            purpose: Some(match place {
                Place::User => "user API token".into(),
                Place::Account(_) => "account API token".into(),
            }),
            prefix: String::new(),
            fingerprint: String::new(),
            scopes,
            status,
            created: self.issued_on,
            expires: self.expires_on,
            last_used: self.last_used_on,
            rotated_to: None,
            source: KeySource::Provider,
        }
    }

    /// The body of `PUT .../tokens/{id}` that keeps everything but `status`.
    pub fn update_body(&self, status: &str) -> Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "policies": self.policies,
            "status": status,
        });
        if let Some(c) = &self.condition {
            v["condition"] = c.clone();
        }
        if let Some(t) = self.expires_on {
            v["expires_on"] = Value::String(crate::model::rfc3339(t));
        }
        if let Some(t) = self.not_before {
            v["not_before"] = Value::String(crate::model::rfc3339(t));
        }
        v
    }
}

/// Maps one account audit-log entry. An entry about an API token (`resource.type`
/// naming a token) is that token's event; others are filed under the actor
/// (`actor:<id>`), as a key seen only in logs.
pub fn event_from_audit(provider: &str, v: &Value) -> Result<Event, String> {
    let s = |p: &[&str]| -> Option<String> {
        let mut cur = v;
        for k in p {
            cur = cur.get(k)?;
        }
        match cur {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let id = s(&["id"]).ok_or("missing id")?;
    let when = s(&["when"]).ok_or("missing when")?;
    let time = DateTime::parse_from_rfc3339(&when)
        .map_err(|e| format!("when `{when}`: {e}"))?
        .with_timezone(&Utc);
    let rtype = s(&["resource", "type"]).unwrap_or_default();
    let key_id = match s(&["resource", "id"]) {
        Some(rid) if rtype.to_ascii_lowercase().contains("token") => key_id(&rid),
        _ => format!(
            "actor:{}",
            s(&["actor", "id"]).unwrap_or_else(|| "unknown".into())
        ),
    };
    let action = s(&["action", "type"]).unwrap_or_else(|| "audit event".into());
    let action = if rtype.is_empty() {
        action
    } else {
        format!("{action} {rtype}")
    };
    let ok = v
        .get("action")
        .and_then(|a| a.get("result"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut redacted = v.clone();
    crate::import::redact::redact_value(&mut redacted);
    Ok(Event {
        provider: provider.to_string(),
        id,
        time,
        key_id,
        principal: s(&["actor", "email"]).or_else(|| s(&["actor", "id"])),
        action,
        scope: None,
        source_ip: s(&["actor", "ip"]),
        user_agent: s(&["interface"]),
        outcome: if ok {
            Outcome::Success
        } else {
            Outcome::Denied
        },
        status_code: None,
        request_id: None,
        records: None,
        raw: Some(redacted.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_and_permissions_become_scopes() {
        let t: WireToken = serde_json::from_value(json!({
            "id": "ed17574386854bf78a67040be0a770b0", "name": "dns-edit", "status": "disabled",
            "issued_on": "2026-01-01T00:00:00Z", "expires_on": "2099-01-01T00:00:00Z",
            "condition": {"request_ip": {"in": ["198.51.100.0/24"], "not_in": ["198.51.100.7/32"]}},
            "policies": [{"id": "p1", "effect": "allow", "resources": {"com.cloudflare.api.account.zone.*": "*"},
                "permission_groups": [{"id": "g1", "name": "DNS Write"}]}]
        }))
        .unwrap();
        let k = t.to_key("cf", &Place::Account("abc".into()));
        assert_eq!(k.id, "token:ed17574386854bf78a67040be0a770b0");
        assert_eq!(k.status, KeyStatus::Inactive);
        assert_eq!(k.owner, "account abc");
        assert_eq!(
            k.scopes,
            ["DNS Write", "ip:198.51.100.0/24", "not-ip:198.51.100.7/32"]
        );
        let body = t.update_body("active");
        assert_eq!(body["status"], "active");
        assert_eq!(body["name"], "dns-edit");
        assert_eq!(body["policies"][0]["permission_groups"][0]["id"], "g1");
    }

    #[test]
    fn token_audit_entries_belong_to_the_token() {
        let v = json!({"id": "a1", "when": "2026-11-02T10:00:00Z",
            "action": {"type": "roll", "result": true},
            "actor": {"id": "u1", "email": "ana@example.com", "ip": "198.51.100.7", "type": "user"},
            "resource": {"id": "ed17574386854bf78a67040be0a770b0", "type": "API_token"},
            "interface": "API"});
        let e = event_from_audit("cf", &v).unwrap();
        assert_eq!(e.key_id, "token:ed17574386854bf78a67040be0a770b0");
        assert_eq!(e.action, "roll API_token");
        assert_eq!(e.principal.as_deref(), Some("ana@example.com"));
    }
}
