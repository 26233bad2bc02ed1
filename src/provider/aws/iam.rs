//! IAM access keys: listing (users, keys, last use, policies as scopes), disable, enable,
//! revoke, rotate with overlap, verification through STS, and the root account keys that
//! the credential report reveals.

use super::{to_chrono, AwsProvider, Clients, KeyPage, PAGE_APIGW, PAGE_IAM, ROOT_PREFIX};
use crate::model::{Category, Finding, FindingStatus, Key, KeySource, KeyStatus, Severity};
use crate::provider::{Issued, ProviderError, Result};
use crate::secret::Secret;
use aws_sdk_iam::types::{AccessKeyMetadata, StatusType};
use chrono::Utc;
use std::collections::HashMap;
use std::time::Duration;

/// Users asked for per ListUsers page (one key page each).
const USERS_PER_PAGE: i32 = 100;

/// Actions granted by policies, by policy ARN, within one listing.
type PolicyCache = HashMap<String, Vec<String>>;

impl AwsProvider {
    /// One page of IAM users and their access keys; `marker` continues ListUsers.
    pub(super) async fn iam_page(&self, marker: Option<&str>) -> Result<KeyPage> {
        let c = self.clients().await?;
        let mut req = c.iam.list_users().max_items(USERS_PER_PAGE);
        if let Some(m) = marker.filter(|m| !m.is_empty()) {
            req = req.marker(m);
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.aws_error(e, "iam:ListUsers", ""))?;
        let mut cache = PolicyCache::new();
        let mut keys = Vec::new();
        for user in out.users() {
            keys.extend(self.user_keys(c, user.user_name(), &mut cache).await?);
        }
        let next = match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => format!("{PAGE_IAM}{m}"),
            _ => PAGE_APIGW.to_string(),
        };
        Ok(KeyPage {
            held: Vec::new(),
            keys,
            next: Some(next),
        })
    }

    /// The access keys of one user, with the user's policies as scopes.
    async fn user_keys(
        &self,
        c: &Clients,
        user: &str,
        cache: &mut PolicyCache,
    ) -> Result<Vec<Key>> {
        let metas = self.access_keys_of(c, user).await?;
        if metas.is_empty() {
            return Ok(Vec::new());
        }
        let scopes = self.user_scopes(c, user, cache).await?;
        let tags = self.user_tags(c, user).await?;
        let mut keys = Vec::with_capacity(metas.len());
        for m in &metas {
            let Some(id) = m.access_key_id() else {
                continue;
            };
            let last = c
                .iam
                .get_access_key_last_used()
                .access_key_id(id)
                .send()
                .await
                .map_err(|e| self.aws_error(e, "iam:GetAccessKeyLastUsed", &format!("key {id}")))?;
            let last_used = last
                .access_key_last_used()
                .and_then(|l| l.last_used_date())
                .and_then(to_chrono);
            keys.push(Key {
                provider: self.settings.name.clone(),
                id: id.to_string(),
                name: format!("{user}/{id}"),
                owner: user.to_string(),
                environment: tag(&tags, &["environment", "env"]),
                purpose: tag(&tags, &["purpose", "description"]),
                prefix: id.chars().take(8).collect(),
                fingerprint: String::new(),
                scopes: scopes.clone(),
                status: match m.status() {
                    Some(StatusType::Active) => KeyStatus::Active,
                    _ => KeyStatus::Inactive,
                },
                created: m.create_date().and_then(to_chrono),
                expires: None,
                last_used,
                rotated_to: None,
                source: KeySource::Provider,
            });
        }
        Ok(keys)
    }

    async fn access_keys_of(&self, c: &Clients, user: &str) -> Result<Vec<AccessKeyMetadata>> {
        c.iam
            .list_access_keys()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws_error(e, "iam:ListAccessKeys", &format!("user {user}")))
    }

    async fn user_tags(&self, c: &Clients, user: &str) -> Result<HashMap<String, String>> {
        let tags = c
            .iam
            .list_user_tags()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws_error(e, "iam:ListUserTags", &format!("user {user}")))?;
        Ok(tags
            .iter()
            .map(|t| (t.key().to_ascii_lowercase(), t.value().to_string()))
            .collect())
    }

    /// `policy:NAME` for every attached and inline policy of the user, followed by the
    /// actions their documents allow where readable. AWS managed policies are named only
    /// (their documents are public, and large).
    async fn user_scopes(
        &self,
        c: &Clients,
        user: &str,
        cache: &mut PolicyCache,
    ) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut actions = Vec::new();
        let attached = c
            .iam
            .list_attached_user_policies()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                self.aws_error(e, "iam:ListAttachedUserPolicies", &format!("user {user}"))
            })?;
        for p in &attached {
            let (Some(name), Some(arn)) = (p.policy_name(), p.policy_arn()) else {
                continue;
            };
            names.push(format!("policy:{name}"));
            if arn.contains(":iam::aws:policy/") {
                continue;
            }
            if !cache.contains_key(arn) {
                let found = self.managed_policy_actions(c, arn).await;
                cache.insert(arn.to_string(), found);
            }
            actions.extend(cache[arn].iter().cloned());
        }
        let inline: Vec<String> = c
            .iam
            .list_user_policies()
            .user_name(user)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws_error(e, "iam:ListUserPolicies", &format!("user {user}")))?;
        for name in &inline {
            names.push(format!("policy:{name}"));
            match c
                .iam
                .get_user_policy()
                .user_name(user)
                .policy_name(name)
                .send()
                .await
            {
                Ok(out) => actions.extend(policy_actions(out.policy_document())),
                Err(e) => {
                    let e = self.aws_error(e, "iam:GetUserPolicy", &format!("user {user}"));
                    tracing::warn!("{e}; the actions of policy {name} are left out");
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        Ok(names
            .into_iter()
            .chain(actions)
            .filter(|s| seen.insert(s.clone()))
            .collect())
    }

    /// The actions of a customer managed policy's default version; empty (with a warning
    /// in the log) when the document cannot be read.
    async fn managed_policy_actions(&self, c: &Clients, arn: &str) -> Vec<String> {
        let subject = format!("policy {arn}");
        let version = match c.iam.get_policy().policy_arn(arn).send().await {
            Ok(out) => out
                .policy()
                .and_then(|p| p.default_version_id())
                .map(str::to_string),
            Err(e) => {
                let e = self.aws_error(e, "iam:GetPolicy", &subject);
                tracing::warn!("{e}; its actions are left out of the scopes");
                return Vec::new();
            }
        };
        let Some(version) = version else {
            return Vec::new();
        };
        match c
            .iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
        {
            Ok(out) => out
                .policy_version()
                .and_then(|v| v.document())
                .map(policy_actions)
                .unwrap_or_default(),
            Err(e) => {
                let e = self.aws_error(e, "iam:GetPolicyVersion", &subject);
                tracing::warn!("{e}; its actions are left out of the scopes");
                Vec::new()
            }
        }
    }

    /// The user an access key belongs to (GetAccessKeyLastUsed names it).
    async fn user_of(&self, c: &Clients, key_id: &str) -> Result<String> {
        let out = c
            .iam
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(|e| self.aws_error(e, "iam:GetAccessKeyLastUsed", &format!("key {key_id}")))?;
        out.user_name()
            .map(str::to_string)
            .ok_or_else(|| ProviderError::NotFound {
                provider: self.settings.label(),
                key: key_id.to_string(),
            })
    }

    pub(super) async fn iam_get(&self, key_id: &str) -> Result<Key> {
        let c = self.clients().await?;
        let user = self.user_of(c, key_id).await?;
        self.iam_get_of(c, &user, key_id).await
    }

    async fn iam_get_of(&self, c: &Clients, user: &str, key_id: &str) -> Result<Key> {
        self.user_keys(c, user, &mut PolicyCache::new())
            .await?
            .into_iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| ProviderError::NotFound {
                provider: self.settings.label(),
                key: key_id.to_string(),
            })
    }

    async fn update_status(&self, c: &Clients, user: &str, key_id: &str, on: bool) -> Result<()> {
        let status = if on {
            StatusType::Active
        } else {
            StatusType::Inactive
        };
        c.iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .status(status)
            .send()
            .await
            .map_err(|e| {
                self.aws_error(
                    e,
                    "iam:UpdateAccessKey",
                    &format!("user {user}, key {key_id}"),
                )
            })?;
        Ok(())
    }

    /// UpdateAccessKey Active / Inactive (reversible).
    pub(super) async fn iam_set_status(&self, key_id: &str, on: bool) -> Result<Key> {
        let c = self.clients().await?;
        let user = self.user_of(c, key_id).await?;
        self.update_status(c, &user, key_id, on).await?;
        self.iam_get_of(c, &user, key_id).await
    }

    /// Inactive first (so a failed delete still leaves the key unusable), then deleted.
    pub(super) async fn iam_revoke(&self, key_id: &str) -> Result<Key> {
        let c = self.clients().await?;
        let user = self.user_of(c, key_id).await?;
        let mut key = self.iam_get_of(c, &user, key_id).await?;
        if key.status == KeyStatus::Active {
            self.update_status(c, &user, key_id, false).await?;
        }
        c.iam
            .delete_access_key()
            .user_name(&user)
            .access_key_id(key_id)
            .send()
            .await
            .map_err(|e| {
                self.aws_error(
                    e,
                    "iam:DeleteAccessKey",
                    &format!("user {user}, key {key_id}"),
                )
            })?;
        key.status = KeyStatus::Revoked;
        Ok(key)
    }

    /// Creates a second key for the key's user. With a zero grace the new key is verified
    /// and the old one made Inactive at once; otherwise the old one stays Active until the
    /// workflow disables and revokes it. Refuses when the user already has two keys.
    pub(super) async fn iam_rotate(&self, key_id: &str, grace: Duration) -> Result<Issued> {
        let c = self.clients().await?;
        let user = self.user_of(c, key_id).await?;
        let existing = self.access_keys_of(c, &user).await?;
        if existing.len() >= 2 {
            let others: Vec<String> = existing
                .iter()
                .filter_map(|m| {
                    let id = m.access_key_id()?;
                    let status = m.status().map(|s| s.as_str()).unwrap_or("?");
                    Some(format!("{id} ({status})"))
                })
                .collect();
            let remove = existing
                .iter()
                .filter(|m| m.access_key_id() != Some(key_id))
                .filter_map(|m| m.access_key_id())
                .next()
                .unwrap_or(key_id);
            return Err(self.conflict(format!(
                "cannot rotate {key_id}: user {user} already has 2 access keys ({}), the most IAM allows; \
                 remove one first, e.g. `keyaudit revoke {remove} --reason \"make room for rotation\"`, then rotate again",
                others.join(", ")
            )));
        }
        let mut old = self.iam_get_of(c, &user, key_id).await?;
        let out = c
            .iam
            .create_access_key()
            .user_name(&user)
            // CreateAccessKey has no idempotency token: one attempt, and an unanswered
            // call is settled by listing the user's keys (action::settle).
            .customize()
            .config_override(
                aws_sdk_iam::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1)),
            )
            .send()
            .await
            .map_err(|e| {
                super::ambiguous(self.aws_error(e, "iam:CreateAccessKey", &format!("user {user}")))
            })?;
        let created = out
            .access_key()
            .ok_or_else(|| self.protocol("CreateAccessKey answered without a key"))?;
        let new_id = created.access_key_id().to_string();
        let secret = Secret::new(
            serde_json::json!({
                "AccessKeyId": new_id,
                "SecretAccessKey": created.secret_access_key(),
            })
            .to_string(),
        );
        let mut new = Key {
            id: new_id.clone(),
            name: format!("{user}/{new_id}"),
            prefix: new_id.chars().take(8).collect(),
            fingerprint: crate::secret::fingerprint(created.secret_access_key()),
            status: KeyStatus::Active,
            created: created
                .create_date()
                .and_then(to_chrono)
                .or(Some(Utc::now())),
            last_used: None,
            rotated_to: None,
            ..old.clone()
        };
        new.source = KeySource::Provider;
        if grace.is_zero() {
            if let Err(e) = self.iam_verify(&secret).await {
                // The secret was never delivered: remove the useless new key, keep the old.
                let _ = c
                    .iam
                    .delete_access_key()
                    .user_name(&user)
                    .access_key_id(&new_id)
                    .send()
                    .await;
                return Err(e);
            }
            self.update_status(c, &user, key_id, false).await?;
            old.status = KeyStatus::Inactive;
        }
        old.rotated_to = Some(new_id);
        Ok(Issued {
            key: new,
            secret,
            old: Some(old),
        })
    }

    /// Signs STS GetCallerIdentity with the key pair in `secret` (the JSON that rotation
    /// issues, or `ACCESS_KEY_ID:SECRET_ACCESS_KEY`); returns the access key id. New IAM
    /// keys take a few seconds to work everywhere, so a rejection is retried for ~15 s.
    pub(super) async fn iam_verify(&self, secret: &Secret) -> Result<String> {
        let Some((id, key)) = parse_key_pair(secret.expose()) else {
            return Err(ProviderError::Unsupported {
                provider: self.settings.label(),
                operation: "verifying this secret (only IAM access key pairs can be verified; API Gateway key values need a deployed API)",
            });
        };
        let c = self.clients().await?;
        let creds =
            aws_sdk_sts::config::Credentials::new(id.clone(), key, None, None, "keyaudit-verify");
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&c.sdk)
                .credentials_provider(creds)
                .build(),
        );
        let mut wait = Duration::from_millis(500);
        let mut last = None;
        for _ in 0..6 {
            match sts.get_caller_identity().send().await {
                Ok(_) => return Ok(id),
                Err(e) => {
                    let e = self.aws_error(e, "sts:GetCallerIdentity", &format!("key {id}"));
                    let retry = matches!(&e, ProviderError::Config { message, .. } if message.contains("credentials are not valid"));
                    if !retry {
                        return Err(e);
                    }
                    last = Some(e);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(4));
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The account's root access keys, from the credential report.
    async fn root_keys(&self) -> Result<Vec<Key>> {
        let c = self.clients().await?;
        let report = match self.credential_report(c).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{e}; root account keys are not checked");
                return Ok(Vec::new());
            }
        };
        Ok(root_keys_in_report(&self.settings.name, &report))
    }

    async fn credential_report(&self, c: &Clients) -> Result<String> {
        for attempt in 0..10 {
            let out = c
                .iam
                .generate_credential_report()
                .send()
                .await
                .map_err(|e| self.aws_error(e, "iam:GenerateCredentialReport", ""))?;
            if out.state().map(|s| s.as_str()) == Some("COMPLETE") {
                break;
            }
            if attempt < 9 {
                tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
            }
        }
        let out = c
            .iam
            .get_credential_report()
            .send()
            .await
            .map_err(|e| self.aws_error(e, "iam:GetCredentialReport", ""))?;
        let bytes = out
            .content()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        String::from_utf8(bytes).map_err(|_| self.protocol("the credential report is not UTF-8"))
    }

    /// The key page of root account keys (the last page of the listing). The listing
    /// also remembers them for [`Self::root_findings`].
    pub(super) async fn root_page(&self) -> Result<KeyPage> {
        let keys = self.root_keys().await?;
        *self.root_seen.lock().expect("root keys lock") = Some(keys.clone());
        Ok(KeyPage {
            keys,
            next: None,
            held: Vec::new(),
        })
    }

    pub(super) async fn root_get(&self, id: &str) -> Result<Key> {
        self.root_keys()
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| ProviderError::NotFound {
                provider: self.settings.label(),
                key: id.to_string(),
            })
    }

    pub(super) fn root_refusal(&self, id: &str) -> ProviderError {
        self.conflict(format!(
            "{id} is a root account access key: IAM user credentials cannot change it; \
             sign in as the root user and delete it under Security credentials (or use \
             Organizations centralized root access)"
        ))
    }

    /// A critical hygiene finding (`root_access_key`) per active root access key.
    pub(super) async fn root_findings(&self) -> Result<Vec<Finding>> {
        let seen = self.root_seen.lock().expect("root keys lock").clone();
        let keys = match seen {
            Some(k) => k,
            None => self.root_keys().await?,
        };
        let now = Utc::now();
        Ok(keys
            .into_iter()
            .filter(|k| k.status == KeyStatus::Active)
            .map(|k| Finding {
                id: format!("root_access_key:{}:{}", k.provider, k.id),
                rule: "root_access_key".into(),
                category: Category::Hygiene,
                severity: Severity::Critical,
                provider: k.provider.clone(),
                key_id: k.id.clone(),
                title: "The root account has an active access key".into(),
                explanation: format!(
                    "The credential report shows {} active. Root keys cannot be limited by any \
                     policy; delete it while signed in as root and use IAM users or roles.",
                    k.name
                ),
                evidence: Vec::new(),
                first_seen: now,
                last_seen: now,
                status: FindingStatus::Open,
                note: None,
                suppressed_until: None,
            })
            .collect())
    }
}

/// The value of the first tag named like one of `names` (lowercase).
fn tag(tags: &HashMap<String, String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| tags.get(*n))
        .filter(|v| !v.is_empty())
        .cloned()
}

/// An IAM key pair from a secret: `{"AccessKeyId":…,"SecretAccessKey":…}` or `ID:SECRET`.
pub(super) fn parse_key_pair(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    if s.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        let id = v.get("AccessKeyId")?.as_str()?;
        let key = v.get("SecretAccessKey")?.as_str()?;
        return Some((id.to_string(), key.to_string()));
    }
    let (id, key) = s.split_once(':')?;
    let looks_like_id = id.len() >= 16
        && id.starts_with('A')
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    (looks_like_id && !key.is_empty()).then(|| (id.to_string(), key.to_string()))
}

/// Percent-decodes an IAM policy document (IAM returns them URL-encoded).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The actions a policy document allows (`s3:GetObject`, …). `NotAction` allows all but
/// some, so it counts as `*`. Unreadable documents allow nothing that can be named.
pub(super) fn policy_actions(document: &str) -> Vec<String> {
    let text = if document.trim_start().starts_with('{') {
        document.to_string()
    } else {
        percent_decode(document)
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let statements = match v.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        Some(o @ serde_json::Value::Object(_)) => vec![o],
        _ => Vec::new(),
    };
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        match v {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut actions = Vec::new();
    for st in statements {
        if st.get("Effect").and_then(|e| e.as_str()) != Some("Allow") {
            continue;
        }
        actions.extend(strings(st.get("Action")));
        if st.get("NotAction").is_some() {
            actions.push("*".to_string());
        }
    }
    actions
}

/// Root account keys in a credential report (CSV). A key is listed when the report
/// shows it active or ever rotated; its id is not in the report, so it is
/// `root:<account>:<1|2>`.
pub(super) fn root_keys_in_report(provider: &str, csv: &str) -> Vec<Key> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |row: &[&str], name: &str| -> Option<String> {
        let i = cols.iter().position(|c| *c == name)?;
        row.get(i).map(|s| s.trim().to_string())
    };
    let time = |s: Option<String>| {
        s.and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let mut keys = Vec::new();
    for line in lines {
        let row: Vec<&str> = line.split(',').collect();
        if col(&row, "user").as_deref() != Some("<root_account>") {
            continue;
        }
        let account = col(&row, "arn")
            .and_then(|a| a.split(':').nth(4).map(str::to_string))
            .unwrap_or_default();
        for n in 1..=2 {
            let active = col(&row, &format!("access_key_{n}_active")).as_deref() == Some("true");
            let rotated = col(&row, &format!("access_key_{n}_last_rotated"));
            let exists = active
                || rotated
                    .as_deref()
                    .is_some_and(|r| !matches!(r, "" | "N/A" | "not_supported"));
            if !exists {
                continue;
            }
            keys.push(Key {
                provider: provider.to_string(),
                id: format!("{ROOT_PREFIX}{account}:{n}"),
                name: format!("root/access_key_{n}"),
                owner: "<root_account>".into(),
                environment: None,
                purpose: None,
                prefix: String::new(),
                fingerprint: String::new(),
                scopes: vec!["*".into()],
                status: if active {
                    KeyStatus::Active
                } else {
                    KeyStatus::Inactive
                },
                created: time(rotated),
                expires: None,
                last_used: time(col(&row, &format!("access_key_{n}_last_used_date"))),
                rotated_to: None,
                source: KeySource::Provider,
            });
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_give_their_allowed_actions() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"},
            {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"},
            {"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#;
        assert_eq!(
            policy_actions(doc),
            vec!["s3:GetObject", "s3:ListBucket", "*"]
        );
        let encoded = "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22sqs%3ASendMessage%22%7D%7D";
        assert_eq!(policy_actions(encoded), vec!["sqs:SendMessage"]);
        assert!(policy_actions("not json").is_empty());
    }

    #[test]
    fn key_pairs_parse_from_json_or_colon_form() {
        let json = r#"{"AccessKeyId":"AKIAEXAMPLE12345678","SecretAccessKey":"abc/def"}"#;
        assert_eq!(
            parse_key_pair(json),
            Some(("AKIAEXAMPLE12345678".into(), "abc/def".into()))
        );
        assert_eq!(
            parse_key_pair("AKIAEXAMPLE12345678:abc"),
            Some(("AKIAEXAMPLE12345678".into(), "abc".into()))
        );
        assert_eq!(parse_key_pair("tg_live_abcdef"), None);
        assert_eq!(parse_key_pair("x7Yz0aBcDeFgHiJkLmNo"), None);
    }

    #[tokio::test]
    async fn an_active_root_key_is_a_critical_finding() {
        use crate::provider::Provider;
        let cfg = crate::config::ProviderConfig {
            name: "acct".into(),
            kind: "aws".into(),
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        let p = AwsProvider::from_config(&cfg).unwrap();
        let csv = "user,arn,access_key_1_active,access_key_1_last_rotated,access_key_2_active,access_key_2_last_rotated\n\
                   <root_account>,arn:aws:iam::123456789012:root,true,2021-02-03T04:05:06+00:00,false,2022-01-01T00:00:00+00:00\n";
        let keys = root_keys_in_report("acct", csv);
        assert_eq!(keys.len(), 2, "an inactive root key is listed too");
        *p.root_seen.lock().unwrap() = Some(keys);
        let found = p.findings().await.unwrap();
        assert_eq!(found.len(), 1, "only the active one is a finding");
        let f = &found[0];
        assert_eq!(
            (f.rule.as_str(), f.severity, f.category),
            ("root_access_key", Severity::Critical, Category::Hygiene)
        );
        assert_eq!(f.key_id, "root:123456789012:1");
        assert_eq!(f.id, "root_access_key:acct:root:123456789012:1");
    }

    #[test]
    fn active_root_keys_are_found_in_the_credential_report() {
        let csv = "user,arn,user_creation_time,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date\n\
                   <root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,true,2021-02-03T04:05:06+00:00,N/A,false,N/A,N/A\n\
                   alice,arn:aws:iam::123456789012:user/alice,2020-01-01T00:00:00+00:00,true,2021-02-03T04:05:06+00:00,N/A,false,N/A,N/A\n";
        let keys = root_keys_in_report("aws", csv);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].id, "root:123456789012:1");
        assert_eq!(keys[0].status, KeyStatus::Active);
        assert_eq!(
            keys[0].created.unwrap().to_rfc3339(),
            "2021-02-03T04:05:06+00:00"
        );
        let none = csv.replace(
            "true,2021-02-03T04:05:06+00:00,N/A,false",
            "false,N/A,N/A,false",
        );
        assert!(root_keys_in_report("aws", &none).is_empty());
    }
}
