//! Tokens as keys: listing accessors, looking them up (many in flight), creating and
//! revoking tokens, and the body that recreates a token on rotation.

use super::client::{Fail, Need};
use super::{VaultProvider, IN_FLIGHT};
use crate::model::{Key, KeySource, KeyStatus};
use crate::provider::{Issued, ProviderError, Result};
use crate::secret::Secret;
use chrono::{DateTime, TimeZone, Utc};
use futures_util::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `auth/token/lookup-accessor` data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct TokenInfo {
    pub(super) accessor: String,
    pub(super) creation_time: i64,
    pub(super) creation_ttl: i64,
    pub(super) display_name: String,
    pub(super) entity_id: String,
    pub(super) expire_time: Option<DateTime<Utc>>,
    pub(super) explicit_max_ttl: i64,
    pub(super) meta: Option<BTreeMap<String, String>>,
    pub(super) num_uses: i64,
    pub(super) orphan: bool,
    pub(super) period: Option<i64>,
    pub(super) policies: Vec<String>,
    pub(super) renewable: bool,
    pub(super) role: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
}

impl VaultProvider {
    /// A token made without policies would inherit all of keyaudit's own: refused.
    pub(super) fn no_policies(&self, what: &str) -> ProviderError {
        ProviderError::Conflict {
            provider: self.name.clone(),
            message: format!(
                "`{what}`: a token without policies would inherit keyaudit's own; name its policies (scopes)"
            ),
        }
    }

    /// All accessors (`LIST auth/token/accessors`).
    pub(super) async fn list_accessors(&self) -> Result<Vec<String>> {
        let need = Need {
            doing: "listing tokens".into(),
            capability: "`list` and `sudo`",
            path: "auth/token/accessors",
            accessor: "",
        };
        let v = match self
            .call(Method::GET, "auth/token/accessors?list=true", None, None)
            .await
        {
            Ok(v) => v,
            // Vault answers 404 to a LIST with nothing in it.
            Err(Fail::Status(StatusCode::NOT_FOUND, _)) => return Ok(Vec::new()),
            Err(f) => return Err(self.explain(f, &need).await),
        };
        let keys = v
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .ok_or_else(|| self.protocol("LIST auth/token/accessors: no data.keys".into()))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect())
    }

    pub(super) async fn lookup(&self, accessor: &str) -> Result<TokenInfo> {
        let need = Need {
            doing: format!("looking up token accessor {accessor}"),
            capability: "`update`",
            path: "auth/token/lookup-accessor",
            accessor,
        };
        let v = self
            .request(
                Method::POST,
                "auth/token/lookup-accessor",
                Some(&json!({ "accessor": accessor })),
                &need,
            )
            .await?;
        if let Some(id) = v.get("request_id").and_then(Value::as_str) {
            if self.audit_log.is_some() {
                self.state()
                    .lookup_ids
                    .insert(id.to_string(), accessor.to_string());
            }
        }
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        serde_json::from_value::<TokenInfo>(data)
            .map_err(|e| self.protocol(format!("lookup-accessor {accessor}: unexpected data: {e}")))
    }

    pub(super) fn key_of(&self, t: &TokenInfo) -> Key {
        let meta = t.meta.clone().unwrap_or_default();
        let pick = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| meta.get(*n).filter(|v| !v.is_empty()).cloned())
        };
        let owner = pick(&["owner", "partner", "team", "user", "service"])
            .or_else(|| (!t.entity_id.is_empty()).then(|| format!("entity:{}", t.entity_id)))
            .unwrap_or_default();
        let expired = t.expire_time.is_some_and(|e| e <= Utc::now());
        Key {
            provider: self.name.clone(),
            id: t.accessor.clone(),
            name: t.display_name.clone(),
            owner,
            environment: pick(&["env", "environment"]),
            purpose: pick(&["purpose"]),
            prefix: String::new(),
            fingerprint: String::new(),
            scopes: t.policies.clone(),
            status: if expired {
                KeyStatus::Expired
            } else {
                KeyStatus::Active
            },
            created: Utc.timestamp_opt(t.creation_time, 0).single(),
            expires: t.expire_time,
            last_used: None,
            rotated_to: None,
            source: KeySource::Provider,
        }
    }

    /// Looks up many accessors, `IN_FLIGHT` at a time, in order; tokens gone meanwhile
    /// are skipped. The first other error stops the rest (dropping what is in flight).
    pub(super) async fn lookup_many(&self, accessors: &[String]) -> Result<Vec<Key>> {
        let mut results = stream::iter(accessors.to_vec())
            .map(|a| async move { self.lookup(&a).await })
            .buffered(IN_FLIGHT);
        let mut keys = Vec::with_capacity(accessors.len());
        while let Some(r) = results.next().await {
            match r {
                Ok(t) => keys.push(self.key_of(&t)),
                Err(ProviderError::NotFound { .. }) => {} // revoked or expired since LIST
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }

    pub(super) async fn revoke_accessor(&self, accessor: &str) -> Result<()> {
        let need = Need {
            doing: format!("revoking token accessor {accessor}"),
            capability: "`update`",
            path: "auth/token/revoke-accessor",
            accessor,
        };
        self.request(
            Method::POST,
            "auth/token/revoke-accessor",
            Some(&json!({ "accessor": accessor })),
            &need,
        )
        .await
        .map(|_| ())
    }

    /// Creates a token at `path` (`auth/token/create`, `.../create-orphan`,
    /// `.../create/<role>`); returns its value and accessor.
    pub(super) async fn create_token(
        &self,
        path: &str,
        body: &Value,
        doing: String,
    ) -> Result<Issued> {
        let need = Need {
            doing,
            capability: "`update`",
            path,
            accessor: "",
        };
        let v = match self.request(Method::POST, path, Some(body), &need).await {
            Err(ProviderError::Conflict { provider, message })
                if message.contains("subset of parent") || message.contains("root tokens") =>
            {
                return Err(ProviderError::Config {
                    message: format!(
                        "{provider}: {message}: keyaudit's token may only grant policies it holds itself; give it `sudo` on {path} (see docs/providers/vault.md) or issue the token through a token role"
                    ),
                    provider,
                })
            }
            other => other?,
        };
        let secret = v
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .map(|s| Secret::new(s.to_string()));
        let accessor = v
            .pointer("/auth/accessor")
            .and_then(Value::as_str)
            .map(str::to_string);
        drop(v);
        let (Some(secret), Some(accessor)) = (secret, accessor) else {
            return Err(self.protocol(format!("{path}: the answer has no auth.client_token")));
        };
        self.state().known.insert(accessor.clone());
        let key = match self.lookup(&accessor).await {
            Ok(t) => self.key_of(&t),
            Err(e) => {
                tracing::warn!(provider = %self.name, %accessor, "created, but lookup failed: {e}");
                let mut k = Key::seen_in_logs(&self.name, &accessor);
                k.source = KeySource::Provider;
                k
            }
        };
        Ok(Issued {
            key,
            secret,
            old: None,
        })
    }
}

/// The request body that recreates a token like `t`.
pub(super) fn recreate_body(t: &TokenInfo) -> Value {
    let display = t
        .display_name
        .strip_prefix("token-")
        .unwrap_or(&t.display_name);
    let mut b = json!({
        "policies": t.policies,
        "no_default_policy": !t.policies.iter().any(|p| p == "default"),
        "meta": t.meta.clone().unwrap_or_default(),
        "display_name": display,
        "renewable": t.renewable,
    });
    if t.creation_ttl > 0 {
        b["ttl"] = json!(format!("{}s", t.creation_ttl));
    }
    if t.explicit_max_ttl > 0 {
        b["explicit_max_ttl"] = json!(format!("{}s", t.explicit_max_ttl));
    }
    if let Some(p) = t.period.filter(|p| *p > 0) {
        b["period"] = json!(format!("{p}s"));
    }
    if t.num_uses > 0 {
        b["num_uses"] = json!(t.num_uses);
    }
    if let Some(k) = t.kind.as_deref().filter(|k| *k == "batch") {
        b["type"] = json!(k);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_recreates_policies_meta_name_and_ttl() {
        let t = TokenInfo {
            display_name: "token-payroll-sync".into(),
            policies: vec!["default".into(), "reader".into()],
            meta: Some(BTreeMap::from([("owner".into(), "acme".into())])),
            creation_ttl: 3600,
            renewable: true,
            ..TokenInfo::default()
        };
        let b = recreate_body(&t);
        assert_eq!(b["display_name"], "payroll-sync");
        assert_eq!(b["ttl"], "3600s");
        assert_eq!(b["no_default_policy"], false);
        assert_eq!(b["meta"]["owner"], "acme");
        assert!(b.get("explicit_max_ttl").is_none());
    }
}
