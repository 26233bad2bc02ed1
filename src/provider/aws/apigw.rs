//! API Gateway API keys: listing (with the usage plans they belong to as scopes),
//! disable (`enabled = false`), enable, revoke (delete), rotate (a new key in the same
//! usage plans). Key values are never fetched (`includeValues` stays false); the only
//! value keyaudit ever sees is the one a rotation creates, handed over once.

use super::{to_chrono, AwsProvider, Clients, KeyPage, APIGW_PREFIX, PAGE_ROOT};
use crate::model::{Key, KeySource, KeyStatus};
use crate::provider::{Issued, ProviderError, Result};
use crate::secret::Secret;
use aws_sdk_apigateway::types::{ApiKey, Op, PatchOperation};
use std::collections::HashMap;
use std::time::Duration;

/// A usage plan: id and name.
struct Plan {
    id: String,
    name: String,
}

impl AwsProvider {
    /// Usage plans by API key id.
    async fn plans_by_key(&self, c: &Clients) -> Result<HashMap<String, Vec<Plan>>> {
        let plans = c
            .apigw
            .get_usage_plans()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws_error(e, "apigateway:GET", "usage plans"))?;
        let mut by_key: HashMap<String, Vec<Plan>> = HashMap::new();
        for p in &plans {
            let Some(pid) = p.id() else { continue };
            let name = p.name().unwrap_or(pid).to_string();
            let keys = c
                .apigw
                .get_usage_plan_keys()
                .usage_plan_id(pid)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| {
                    self.aws_error(e, "apigateway:GET", &format!("usage plan {name} keys"))
                })?;
            for k in keys {
                if let Some(kid) = k.id() {
                    by_key.entry(kid.to_string()).or_default().push(Plan {
                        id: pid.to_string(),
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(by_key)
    }

    fn apigw_key(&self, k: &ApiKey, plans: &HashMap<String, Vec<Plan>>) -> Option<Key> {
        let id = k.id()?;
        let tags = k.tags().cloned().unwrap_or_default();
        let tag = |names: &[&str]| {
            tags.iter()
                .find(|(t, v)| names.contains(&t.to_ascii_lowercase().as_str()) && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        Some(Key {
            provider: self.settings.name.clone(),
            id: format!("{APIGW_PREFIX}{id}"),
            name: k.name().unwrap_or(id).to_string(),
            owner: tag(&["owner", "partner"])
                .or_else(|| {
                    k.customer_id()
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                })
                .unwrap_or_default(),
            environment: tag(&["environment", "env"]),
            purpose: tag(&["purpose"]).or_else(|| {
                k.description()
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
            }),
            prefix: String::new(),
            fingerprint: String::new(),
            scopes: plans
                .get(id)
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("usage-plan:{}", p.name))
                        .collect()
                })
                .unwrap_or_default(),
            status: if k.enabled() {
                KeyStatus::Active
            } else {
                KeyStatus::Inactive
            },
            created: k.created_date().and_then(to_chrono),
            expires: None,
            last_used: None,
            rotated_to: None,
            source: KeySource::Provider,
        })
    }

    /// All API keys of the region in one page (GetApiKeys paginates underneath).
    pub(super) async fn apigw_page(&self) -> Result<KeyPage> {
        let c = self.clients().await?;
        let plans = self.plans_by_key(c).await?;
        let api_keys = c
            .apigw
            .get_api_keys()
            .include_values(false)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws_error(e, "apigateway:GET", "API keys"))?;
        Ok(KeyPage {
            held: Vec::new(),
            keys: api_keys
                .iter()
                .filter_map(|k| self.apigw_key(k, &plans))
                .collect(),
            next: Some(PAGE_ROOT.to_string()),
        })
    }

    async fn apigw_fetch(&self, c: &Clients, id: &str) -> Result<Key> {
        let out = c
            .apigw
            .get_api_key()
            .api_key(id)
            .include_value(false)
            .send()
            .await
            .map_err(|e| {
                self.aws_error(e, "apigateway:GET", &format!("API key {APIGW_PREFIX}{id}"))
            })?;
        let plans = self.plans_by_key(c).await?;
        let k = ApiKey::builder()
            .set_id(out.id().map(str::to_string))
            .set_name(out.name().map(str::to_string))
            .set_customer_id(out.customer_id().map(str::to_string))
            .set_description(out.description().map(str::to_string))
            .enabled(out.enabled())
            .set_created_date(out.created_date().cloned())
            .set_tags(out.tags().cloned())
            .build();
        self.apigw_key(&k, &plans)
            .ok_or_else(|| self.protocol(format!("API key {id} answered without an id")))
    }

    pub(super) async fn apigw_get(&self, id: &str) -> Result<Key> {
        let c = self.clients().await?;
        self.apigw_fetch(c, id).await
    }

    async fn patch_enabled(&self, c: &Clients, id: &str, on: bool) -> Result<()> {
        c.apigw
            .update_api_key()
            .api_key(id)
            .patch_operations(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/enabled")
                    .value(on.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                self.aws_error(
                    e,
                    "apigateway:PATCH",
                    &format!("API key {APIGW_PREFIX}{id}"),
                )
            })?;
        Ok(())
    }

    /// `enabled` = false (reversible) or true.
    pub(super) async fn apigw_set_enabled(&self, id: &str, on: bool) -> Result<Key> {
        let c = self.clients().await?;
        self.patch_enabled(c, id, on).await?;
        self.apigw_fetch(c, id).await
    }

    /// Deletes the key (it leaves its usage plans with it).
    pub(super) async fn apigw_revoke(&self, id: &str) -> Result<Key> {
        let c = self.clients().await?;
        let mut key = self.apigw_fetch(c, id).await?;
        c.apigw
            .delete_api_key()
            .api_key(id)
            .send()
            .await
            .map_err(|e| {
                self.aws_error(
                    e,
                    "apigateway:DELETE",
                    &format!("API key {APIGW_PREFIX}{id}"),
                )
            })?;
        key.status = KeyStatus::Revoked;
        Ok(key)
    }

    /// A new enabled key with the same name, owner, tags and usage plans; the old one is
    /// disabled at once with a zero grace, else left for the workflow to disable.
    pub(super) async fn apigw_rotate(&self, id: &str, grace: Duration) -> Result<Issued> {
        let c = self.clients().await?;
        let old_out = c
            .apigw
            .get_api_key()
            .api_key(id)
            .include_value(false)
            .send()
            .await
            .map_err(|e| {
                self.aws_error(e, "apigateway:GET", &format!("API key {APIGW_PREFIX}{id}"))
            })?;
        let plans = self.plans_by_key(c).await?;
        let old_plans: Vec<&Plan> = plans
            .get(id)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let mut req = c
            .apigw
            .create_api_key()
            .name(old_out.name().unwrap_or(id))
            .description(format!("rotated from {id} by keyaudit"))
            .enabled(true)
            .set_tags(old_out.tags().cloned());
        if let Some(cust) = old_out.customer_id() {
            req = req.customer_id(cust);
        }
        // CreateApiKey has no idempotency token: one attempt, and an unanswered call is
        // settled by listing the keys (action::settle).
        let created = req
            .customize()
            .config_override(
                aws_sdk_apigateway::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1)),
            )
            .send()
            .await
            .map_err(|e| super::ambiguous(self.aws_error(e, "apigateway:POST", "a new API key")))?;
        let new_id = created
            .id()
            .ok_or_else(|| self.protocol("CreateApiKey answered without an id"))?
            .to_string();
        let value = created
            .value()
            .ok_or_else(|| self.protocol("CreateApiKey answered without a value"))?
            .to_string();
        for p in &old_plans {
            if let Err(e) = c
                .apigw
                .create_usage_plan_key()
                .usage_plan_id(&p.id)
                .key_id(&new_id)
                .key_type("API_KEY")
                .send()
                .await
            {
                let e = self.aws_error(
                    e,
                    "apigateway:POST",
                    &format!("usage plan {} key {new_id}", p.name),
                );
                // Without its plans the new key would not work: undo it, keep the old.
                let _ = c.apigw.delete_api_key().api_key(&new_id).send().await;
                return Err(ProviderError::Conflict {
                    provider: self.settings.label(),
                    message: format!(
                        "rotation of {APIGW_PREFIX}{id} undone, the old key is unchanged: {e}"
                    ),
                });
            }
        }
        if grace.is_zero() {
            self.patch_enabled(c, id, false).await?;
        }
        let mut old = self.apigw_fetch(c, id).await?;
        let mut new = self.apigw_fetch(c, &new_id).await?;
        new.fingerprint = crate::secret::fingerprint(&value);
        old.rotated_to = Some(new.id.clone());
        Ok(Issued {
            key: new,
            secret: Secret::new(value),
            old: Some(old),
        })
    }
}
