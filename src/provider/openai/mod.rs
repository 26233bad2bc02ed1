//! The `openai` provider: one OpenAI organization, read and changed with an admin key
//! (the Administration API under `/v1/organization`).
//!
//! Keys are the organization's admin API keys and the API keys of its projects (those of
//! users and of service accounts), with OpenAI's redacted value (`sk-proj-…abcd`) as the
//! key's prefix, which `keyaudit scan` matches a found secret against. A key's id is
//! OpenAI's (`key_…`), the tracking id the audit log names. Where a key lives (which
//! call deletes it) is remembered from the listing, and looked up when a fresh process
//! acts on a key it has not listed.
//!
//! Revoke is a delete: `DELETE …/admin_api_keys/{id}`, `DELETE …/projects/{p}/api_keys/{id}`
//! for a user's key, and, since OpenAI refuses to delete a service account's key on its
//! own, `DELETE …/projects/{p}/service_accounts/{sa}` for a service account's key (the
//! key's owner names the service account, and its purpose says so). Keys cannot be created
//! through the API, so a rotation is guided ([`Provider::rotation_guide`]): the operator
//! creates the new key in OpenAI's dashboard, and `crate::action::guided` watches for it
//! and for the old key to go quiet before it offers the revoke.
//!
//! Events are the organization's audit log, newest first, read incrementally. See
//! docs/providers/openai.md for the admin key and its safekeeping.

mod client;
mod wire;

use super::{saas, Capabilities, EventPage, Held, KeyPage, Provider, ProviderError, Result};
use crate::config::ProviderConfig;
use crate::model::{Key, KeyStatus};
use crate::secret::Secret;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use wire::{List, Project, WireKey};

pub use wire::{event_from_audit, prefix_of};

/// Environment variable read when the config names neither `token_env` nor `token_command`.
pub const TOKEN_VAR: &str = "OPENAI_ADMIN_KEY";

/// Where a key lives: which call reads and deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Admin,
    Project {
        project: String,
        /// The owning service account, for a service account's key.
        service_account: Option<String>,
    },
}

/// Where a key lives, its project, and its last record.
type Located = (Place, Option<Project>, WireKey);

/// An OpenAI organization.
pub struct OpenaiProvider {
    name: String,
    base: reqwest::Url,
    token: Secret,
    token_hint: String,
    client: reqwest::Client,
    retry: super::retry::Retry,
    limit: u32,
    /// Only these projects (ids), when set.
    only_projects: Vec<String>,
    /// The projects of the listing in progress.
    projects: Mutex<Vec<Project>>,
    /// Where each listed key lives, and its last record.
    places: Mutex<HashMap<String, Located>>,
    /// What the last sync could not read, for the sync report.
    notes: Mutex<Vec<String>>,
}

fn q(limit: u32, after: &str) -> Vec<(&'static str, String)> {
    let mut v = vec![("limit", limit.to_string())];
    if !after.is_empty() {
        v.push(("after", after.to_string()));
    }
    v
}

impl OpenaiProvider {
    /// Builds the provider from its configuration entry (resolving its admin key).
    pub fn from_config(cfg: &ProviderConfig) -> Result<OpenaiProvider> {
        let base = saas::base_url(cfg, "https://api.openai.com/v1")?;
        let (token, token_hint) = saas::required_token(cfg, TOKEN_VAR, "admin key")?;
        let client = saas::http_client(cfg)?;
        Ok(OpenaiProvider {
            name: cfg.name.clone(),
            base,
            token,
            token_hint,
            client,
            retry: super::retry::Retry::with_attempts(cfg.max_attempts),
            // OpenAI serves at most 100 per page.
            limit: cfg.page_size.unwrap_or(100).clamp(1, 100),
            only_projects: cfg.projects.clone(),
            projects: Mutex::new(Vec::new()),
            places: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
        })
    }

    fn remember(&self, k: &WireKey, place: Place, project: Option<Project>) {
        self.places
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.id.clone(), (place, project, k.clone()));
    }

    fn known(&self, id: &str) -> Option<Located> {
        self.places
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn place_of(k: &WireKey, project: &Project) -> Place {
        Place::Project {
            project: project.id.clone(),
            service_account: k.owner.service_account.as_ref().map(|s| s.id.clone()),
        }
    }

    /// One page of the projects (the configured ones only, when `projects` is set).
    async fn project_page(&self, after: &str) -> Result<(Vec<Project>, Option<String>)> {
        let page: List<Project> = self
            .call(
                Method::GET,
                "/organization/projects",
                &q(self.limit, after),
                "",
            )
            .await?;
        let next = page.next_after(page.data.last().map(|p| p.id.as_str()));
        let keep = page
            .data
            .into_iter()
            .filter(|p| self.only_projects.is_empty() || self.only_projects.contains(&p.id))
            .collect();
        Ok((keep, next))
    }

    async fn all_projects(&self) -> Result<Vec<Project>> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let (mut got, next) = self.project_page(&after).await?;
            all.append(&mut got);
            match next {
                Some(n) => after = n,
                None => return Ok(all),
            }
        }
    }

    fn key_path(place: &Place, id: &str) -> String {
        let enc = super::http::encode_segment;
        match place {
            Place::Admin => format!("/organization/admin_api_keys/{}", enc(id)),
            Place::Project { project, .. } => format!(
                "/organization/projects/{}/api_keys/{}",
                enc(project),
                enc(id)
            ),
        }
    }

    /// Where key `id` lives, and its current record: from the listing's memory, else by
    /// asking the admin keys and then each project in turn.
    async fn locate(&self, id: &str) -> Result<Located> {
        if let Some((place, project, _)) = self.known(id) {
            let k: WireKey = self
                .call(Method::GET, &Self::key_path(&place, id), &[], id)
                .await?;
            self.remember(&k, place.clone(), project.clone());
            return Ok((place, project, k));
        }
        match self
            .call::<WireKey>(Method::GET, &Self::key_path(&Place::Admin, id), &[], id)
            .await
        {
            Ok(k) => {
                self.remember(&k, Place::Admin, None);
                return Ok((Place::Admin, None, k));
            }
            Err(ProviderError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        for p in self.all_projects().await? {
            let place = Place::Project {
                project: p.id.clone(),
                service_account: None,
            };
            match self
                .call::<WireKey>(Method::GET, &Self::key_path(&place, id), &[], id)
                .await
            {
                Ok(k) => {
                    let place = Self::place_of(&k, &p);
                    self.remember(&k, place.clone(), Some(p.clone()));
                    return Ok((place, Some(p), k));
                }
                Err(ProviderError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ProviderError::NotFound {
            provider: self.name.clone(),
            key: id.to_string(),
        })
    }

    /// A listing OpenAI refused (a permission the admin key lacks, or a project gone
    /// meanwhile): a note, and the page that keeps the cached keys of `held` and goes on
    /// at `next`.
    fn refused(&self, what: &str, why: &str, held: Held, next: Option<String>) -> KeyPage {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        let note =
            format!("{what} not listed, the keys synced before are kept as they were: {why}");
        if !notes.contains(&note) {
            notes.push(note);
        }
        KeyPage {
            keys: Vec::new(),
            next,
            held: vec![held],
        }
    }

    async fn key_page(&self, p: &Project, after: &str) -> Result<(Vec<Key>, Option<String>)> {
        let mut query = q(self.limit, after);
        query.push(("owner_project_access", "any".into()));
        let path = format!(
            "/organization/projects/{}/api_keys",
            super::http::encode_segment(&p.id)
        );
        let page: List<WireKey> = self.call(Method::GET, &path, &query, "").await?;
        let next = page.next_after(page.data.last().map(|k| k.id.as_str()));
        let keys = page
            .data
            .iter()
            .map(|k| {
                self.remember(k, Self::place_of(k, p), Some(p.clone()));
                k.to_key(&self.name, Some(p))
            })
            .collect();
        Ok((keys, next))
    }
}

#[async_trait]
impl Provider for OpenaiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "openai"
    }

    fn location(&self) -> Option<String> {
        Some(self.base.to_string())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list_events: true,
            // OpenAI keys cannot be suspended, only deleted.
            disable: false,
            revoke: true,
            // Keys cannot be created or rotated through the API: rotation is guided.
            create: false,
            rotate_overlap: false,
            rotate_atomic: false,
            verify_secret: false,
            // No idempotency key: a delete whose answer is lost is settled by reading.
            retry_changes: false,
            rotate_in_place: false,
            rotate_guided: true,
        }
    }

    fn rotation_guide(&self, key: &Key) -> Option<String> {
        let project = key
            .scopes
            .iter()
            .find_map(|s| s.strip_prefix(wire::PROJECT_SCOPE));
        Some(match project {
            Some(p) => format!(
                "OpenAI keys cannot be created through the API. Create the new key in the project's API keys page, https://platform.openai.com/settings/{p}/api-keys (project {p}), owned by {}, and deploy it",
                key.owner
            ),
            None => "OpenAI keys cannot be created through the API. Create the new admin key at https://platform.openai.com/settings/organization/admin-keys and deploy it".to_string(),
        })
    }

    async fn list_keys(&self, page: Option<&str>) -> Result<KeyPage> {
        let token = page.unwrap_or("a:");
        let (stage, rest) = token.split_at(token.find(':').map_or(0, |i| i + 1));
        match stage {
            "a:" => {
                if rest.is_empty() {
                    self.notes.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
                let page: List<WireKey> = match self
                    .call(
                        Method::GET,
                        "/organization/admin_api_keys",
                        &q(self.limit, rest),
                        "",
                    )
                    .await
                {
                    Ok(p) => p,
                    Err(ProviderError::Denied { message, .. }) => {
                        return Ok(self.refused(
                            "the organization's admin keys",
                            &message,
                            Held::scope(wire::ADMIN_SCOPE),
                            Some("p:".into()),
                        ))
                    }
                    Err(e) => return Err(e),
                };
                let next = page.next_after(page.data.last().map(|k| k.id.as_str()));
                let keys = page
                    .data
                    .iter()
                    .map(|k| {
                        self.remember(k, Place::Admin, None);
                        k.to_key(&self.name, None)
                    })
                    .collect();
                Ok(KeyPage {
                    keys,
                    next: Some(next.map_or_else(|| "p:".to_string(), |n| format!("a:{n}"))),
                    held: Vec::new(),
                })
            }
            "p:" => {
                let (got, next) = match self.project_page(rest).await {
                    Ok(r) => r,
                    Err(ProviderError::Denied { message, .. }) => {
                        return Ok(self.refused(
                            "the projects (and so their API keys)",
                            &message,
                            Held::scope_prefix(wire::PROJECT_SCOPE),
                            None,
                        ))
                    }
                    Err(e) => return Err(e),
                };
                let mut projects = self.projects.lock().unwrap_or_else(|p| p.into_inner());
                if rest.is_empty() {
                    projects.clear();
                }
                projects.extend(got);
                let next = match next {
                    Some(n) => Some(format!("p:{n}")),
                    None => (!projects.is_empty()).then(|| "k:0:".to_string()),
                };
                Ok(KeyPage {
                    keys: Vec::new(),
                    next,
                    held: Vec::new(),
                })
            }
            "k:" => {
                let (i, after) = rest.split_once(':').unwrap_or((rest, ""));
                let i: usize = i.parse().unwrap_or(0);
                let project = self
                    .projects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(i)
                    .cloned();
                let Some(p) = project else {
                    return Ok(KeyPage::default());
                };
                let count = self
                    .projects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .len();
                let next_project = (i + 1 < count).then(|| format!("k:{}:", i + 1));
                let (keys, next) = match self.key_page(&p, after).await {
                    Ok(r) => r,
                    Err(e @ (ProviderError::Denied { .. } | ProviderError::NotFound { .. })) => {
                        let why = match e {
                            ProviderError::Denied { message, .. } => message,
                            _ => "HTTP 404: the project is gone, or not visible to the admin key"
                                .to_string(),
                        };
                        return Ok(self.refused(
                            &format!("the API keys of project {}", p.label()),
                            &why,
                            Held::scope(&format!("{}{}", wire::PROJECT_SCOPE, p.id)),
                            next_project,
                        ));
                    }
                    Err(e) => return Err(e),
                };
                let next = match next {
                    Some(n) => Some(format!("k:{i}:{n}")),
                    None => next_project,
                };
                Ok(KeyPage {
                    keys,
                    next,
                    held: Vec::new(),
                })
            }
            _ => Err(ProviderError::Protocol {
                provider: self.name.clone(),
                message: format!("unknown listing position `{token}`"),
            }),
        }
    }

    async fn list_events(&self, cursor: Option<&str>) -> Result<EventPage> {
        let mut c: wire::AuditCursor = cursor
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        let after = c.after.clone().unwrap_or_default();
        let page: List<Value> = self
            .call(
                Method::GET,
                "/organization/audit_logs",
                &q(self.limit, &after),
                "",
            )
            .await?;
        let mut events = Vec::with_capacity(page.data.len());
        let mut reached_top = false;
        for v in &page.data {
            let id = v.get("id").and_then(Value::as_str).unwrap_or("");
            if c.top.as_deref() == Some(id) {
                reached_top = true;
                break;
            }
            if c.sweep_top.is_none() {
                c.sweep_top = Some(id.to_string());
            }
            events.push(event_from_audit(&self.name, v).map_err(|why| {
                ProviderError::Protocol {
                    provider: self.name.clone(),
                    message: format!("audit log: {why}"),
                }
            })?);
        }
        let next = page.next_after(
            page.data
                .last()
                .and_then(|v| v.get("id"))
                .and_then(Value::as_str),
        );
        let has_more = match next {
            Some(n) if !reached_top => {
                c.after = Some(n);
                true
            }
            _ => {
                if let Some(t) = c.sweep_top.take() {
                    c.top = Some(t);
                }
                c.after = None;
                false
            }
        };
        Ok(EventPage {
            events,
            next_cursor: serde_json::to_string(&c).unwrap_or_default(),
            has_more,
        })
    }

    async fn get_key(&self, id: &str) -> Result<Key> {
        match self.locate(id).await {
            Ok((_, project, k)) => Ok(k.to_key(&self.name, project.as_ref())),
            // A key this process listed and OpenAI no longer has was deleted.
            Err(ProviderError::NotFound { .. }) if self.known(id).is_some() => {
                let (_, project, k) = self.known(id).expect("checked");
                let mut key = k.to_key(&self.name, project.as_ref());
                key.status = KeyStatus::Revoked;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn revoke(&self, id: &str) -> Result<Key> {
        let (place, project, k) = self.locate(id).await?;
        let path = match &place {
            Place::Project {
                project,
                service_account: Some(sa),
            } => format!(
                "/organization/projects/{}/service_accounts/{}",
                super::http::encode_segment(project),
                super::http::encode_segment(sa)
            ),
            _ => Self::key_path(&place, id),
        };
        match self.call::<Value>(Method::DELETE, &path, &[], id).await {
            // Gone already: deleted by someone else meanwhile.
            Ok(_) | Err(ProviderError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut key = k.to_key(&self.name, project.as_ref());
        key.status = KeyStatus::Revoked;
        Ok(key)
    }
}
