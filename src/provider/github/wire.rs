//! GitHub's records (fine-grained token grants, audit-log entries, secret-scanning
//! alerts) and their mapping to keys, events and findings.

use crate::model::{Category, Event, Finding, FindingStatus, Key, KeySource, KeyStatus, Severity};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the key id of every fine-grained token starts with.
pub(super) const TOKEN_PREFIX: &str = "token:";

/// What the key id of every secret-scanning alert starts with.
pub(super) const ALERT_PREFIX: &str = "alert:";

/// The key id of the fine-grained token `token_id` (the id GitHub's audit log records
/// as `token_id`, so imported and synced events file under the same key).
pub fn key_id(token_id: u64) -> String {
    format!("{TOKEN_PREFIX}{token_id}")
}

/// The token id of a key id (`token:<n>`).
pub(super) fn token_number(id: &str) -> Option<u64> {
    id.strip_prefix(TOKEN_PREFIX)?.parse().ok()
}

/// The key id of secret-scanning alert `number` of repository `repo` (`owner/name`).
pub(super) fn alert_key_id(repo: &str, number: u64) -> String {
    format!("{ALERT_PREFIX}{repo}#{number}")
}

fn time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[derive(Debug, Deserialize)]
pub(super) struct Login {
    pub login: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Permissions {
    #[serde(default)]
    pub organization: BTreeMap<String, String>,
    #[serde(default)]
    pub repository: BTreeMap<String, String>,
    #[serde(default)]
    pub other: BTreeMap<String, String>,
}

/// An organisation's grant to a fine-grained personal access token
/// (`organization-programmatic-access-grant`).
#[derive(Debug, Deserialize)]
pub(super) struct WireGrant {
    /// The grant's id: the `pat_id` that revokes it.
    pub id: u64,
    pub owner: Login,
    pub repository_selection: String,
    #[serde(default)]
    pub permissions: Permissions,
    pub access_granted_at: Option<String>,
    pub token_id: u64,
    pub token_name: String,
    pub token_expired: bool,
    pub token_expires_at: Option<String>,
    pub token_last_used_at: Option<String>,
}

impl WireGrant {
    /// The key: permissions as scopes (`organization:members:read`,
    /// `repository:contents:write`), the repository selection as `repositories:subset`.
    pub fn to_key(&self, provider: &str, org: &str) -> Key {
        let expires = time(self.token_expires_at.as_deref());
        let status = if self.token_expired || expires.is_some_and(|e| e <= Utc::now()) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        };
        let p = &self.permissions;
        let mut scopes: Vec<String> = [
            ("organization", &p.organization),
            ("repository", &p.repository),
            ("other", &p.other),
        ]
        .iter()
        .flat_map(|(kind, m)| m.iter().map(move |(k, v)| format!("{kind}:{k}:{v}")))
        .collect();
        scopes.push(format!("repositories:{}", self.repository_selection));
        Key {
            provider: provider.to_string(),
            id: key_id(self.token_id),
            name: self.token_name.clone(),
            owner: self.owner.login.clone(),
            environment: None,
            purpose: Some(format!(
                "fine-grained personal access token granted to {org}"
            )),
            prefix: "github_pat_".into(),
            fingerprint: String::new(),
            scopes,
            status,
            created: time(self.access_granted_at.as_deref()),
            expires,
            last_used: time(self.token_last_used_at.as_deref()),
            rotated_to: None,
            source: KeySource::Provider,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct WireRepo {
    pub full_name: String,
}

/// A secret-scanning alert of the organisation (`organization-secret-scanning-alert`);
/// listed with `hide_secret=true`, so the secret itself never reaches keyaudit.
#[derive(Debug, Deserialize)]
pub(super) struct WireAlert {
    pub number: u64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub html_url: Option<String>,
    pub state: Option<String>,
    pub resolution: Option<String>,
    pub secret_type: Option<String>,
    pub secret_type_display_name: Option<String>,
    pub repository: WireRepo,
    pub validity: Option<String>,
    pub publicly_leaked: Option<bool>,
}

impl WireAlert {
    fn validity(&self) -> &str {
        match self.validity.as_deref() {
            Some("active") => "active",
            Some("inactive") => "inactive",
            _ => "unknown",
        }
    }

    fn what(&self) -> String {
        crate::output::sanitize(
            self.secret_type_display_name
                .as_deref()
                .or(self.secret_type.as_deref())
                .unwrap_or("secret"),
        )
    }

    /// The leaked secret as a key of the organisation's listing: its status is the
    /// validity GitHub last checked (an inactive secret no longer authenticates).
    pub fn to_key(&self, provider: &str) -> Key {
        let repo = crate::output::sanitize(&self.repository.full_name);
        let status = match (self.validity(), self.state.as_deref()) {
            ("inactive", _) => KeyStatus::Revoked,
            (_, Some("resolved")) if self.resolution.as_deref() == Some("revoked") => {
                KeyStatus::Revoked
            }
            _ => KeyStatus::Active,
        };
        Key {
            provider: provider.to_string(),
            id: alert_key_id(&self.repository.full_name, self.number),
            name: format!("{} in {repo}", self.what()),
            owner: repo.clone(),
            environment: None,
            purpose: Some(format!(
                "secret-scanning alert #{} ({}; validity {})",
                self.number,
                crate::output::sanitize(self.secret_type.as_deref().unwrap_or("unknown type")),
                self.validity()
            )),
            prefix: String::new(),
            fingerprint: String::new(),
            scopes: Vec::new(),
            status,
            created: time(self.created_at.as_deref()),
            expires: None,
            last_used: None,
            rotated_to: None,
            source: KeySource::Provider,
        }
    }

    /// The exposure finding: critical while GitHub finds the secret still valid, high
    /// while unknown, low once inactive; resolved with the alert.
    pub fn to_finding(&self, provider: &str) -> Finding {
        let validity = self.validity();
        let severity = match validity {
            "active" => Severity::Critical,
            "inactive" => Severity::Low,
            _ => Severity::High,
        };
        let key_id = alert_key_id(&self.repository.full_name, self.number);
        let now = Utc::now();
        let first = time(self.created_at.as_deref()).unwrap_or(now);
        let last = time(self.updated_at.as_deref()).unwrap_or(first);
        let public = if self.publicly_leaked == Some(true) {
            " It was also found in a public location."
        } else {
            ""
        };
        let resolved = self.state.as_deref() == Some("resolved");
        Finding {
            id: format!("github-secret-scanning:{provider}:{key_id}"),
            rule: "github-secret-scanning".into(),
            category: Category::Exposure,
            severity,
            provider: provider.to_string(),
            key_id,
            title: format!("{} committed to {}", self.what(), crate::output::sanitize(&self.repository.full_name)),
            explanation: format!(
                "GitHub secret scanning alert #{} (validity: {validity}{}).{public} Revoke the secret at its issuer, then resolve the alert{}.",
                self.number,
                self.resolution
                    .as_deref()
                    .map(|r| format!(", resolved as {}", crate::output::sanitize(r)))
                    .unwrap_or_default(),
                self.html_url
                    .as_deref()
                    .map(|u| format!(" ({})", crate::output::sanitize(u)))
                    .unwrap_or_default()
            ),
            evidence: Vec::new(),
            first_seen: first,
            last_seen: last,
            status: if resolved {
                FindingStatus::Resolved
            } else {
                FindingStatus::Open
            },
            note: None,
            suppressed_until: None,
        }
    }
}

/// Maps one audit-log entry through the importer's mapping (so a synced entry and the
/// same entry imported from an export agree), then ties an entry that names its token
/// only by `hashed_token` to the token another entry named by both (`tokens`: hashed
/// token to key id, learned here).
pub fn event_from_audit(
    provider: &str,
    v: &Value,
    tokens: &mut BTreeMap<String, String>,
) -> Result<Event, String> {
    let mut redacted = v.clone();
    crate::import::redact::redact_value(&mut redacted);
    let mut e = crate::import::github::github_entry_to_event(provider, &redacted)?;
    let hashed = v.get("hashed_token").and_then(Value::as_str);
    let token_id = v.get("token_id").and_then(|t| {
        t.as_u64()
            .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
    });
    match (hashed, token_id) {
        (Some(h), Some(n)) => {
            tokens.insert(h.to_string(), key_id(n));
        }
        (Some(h), None) => {
            if let Some(k) = tokens.get(h) {
                e.key_id = k.clone();
            }
        }
        _ => {}
    }
    e.raw = Some(redacted.to_string());
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_grant_is_a_key_with_its_permissions_as_scopes() {
        let g: WireGrant = serde_json::from_value(json!({"id": 25381, "owner": {"login": "octocat"},
            "repository_selection": "subset", "repositories_url": "x",
            "permissions": {"organization": {"members": "read"}, "repository": {"metadata": "read", "contents": "write"}},
            "access_granted_at": "2026-03-05T00:00:00Z", "token_id": 98716, "token_name": "ci deploy",
            "token_expired": false, "token_expires_at": "2099-03-05T00:00:00Z", "token_last_used_at": null}))
        .unwrap();
        let k = g.to_key("gh", "acme");
        assert_eq!(k.id, "token:98716");
        assert_eq!(k.owner, "octocat");
        assert_eq!(k.status, KeyStatus::Active);
        assert_eq!(
            k.scopes,
            vec![
                "organization:members:read",
                "repository:contents:write",
                "repository:metadata:read",
                "repositories:subset"
            ]
        );
    }

    #[test]
    fn events_named_by_hash_only_go_to_the_token_the_hash_belongs_to() {
        let mut tokens = BTreeMap::new();
        let both = json!({"@timestamp": 1_767_225_600_000u64, "action": "personal_access_token.request_created",
            "actor": "octocat", "_document_id": "a1", "token_id": 98716, "hashed_token": "SGFzaA=="});
        let e = event_from_audit("gh", &both, &mut tokens).unwrap();
        assert_eq!(e.key_id, "token:98716");
        let hash_only = json!({"@timestamp": 1_767_225_660_000u64, "action": "git.clone",
            "actor": "octocat", "_document_id": "a2", "hashed_token": "SGFzaA=="});
        let e = event_from_audit("gh", &hash_only, &mut tokens).unwrap();
        assert_eq!(e.key_id, "token:98716");
        assert!(
            e.raw.unwrap().contains("SGFzaA=="),
            "the hash stays for `scan` to match"
        );
    }

    #[test]
    fn alert_validity_sets_severity_and_untrusted_text_is_neutralised() {
        let a: WireAlert = serde_json::from_value(json!({"number": 4, "created_at": "2026-11-01T00:00:00Z",
            "updated_at": "2026-11-02T00:00:00Z", "html_url": "https://github.com/acme/app/security/secret-scanning/4",
            "state": "open", "resolution": null, "secret_type": "stripe_api_key",
            "secret_type_display_name": "Stripe \u{1b}[31mAPI Key", "repository": {"full_name": "acme/app"},
            "validity": "active", "publicly_leaked": false}))
        .unwrap();
        let f = a.to_finding("gh");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.category, Category::Exposure);
        assert_eq!(f.key_id, "alert:acme/app#4");
        assert!(!f.title.contains('\u{1b}'), "{}", f.title);
        assert_eq!(a.to_key("gh").status, KeyStatus::Active);
    }
}
