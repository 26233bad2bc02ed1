//! The `gitlab` provider: GitLab.com or a self-managed instance (REST API v4).
//!
//! Keys are access tokens: the token owner's personal access tokens (an administrator's
//! token sees every user's), and the project and group access tokens of the configured
//! `projects` and `groups`. A key's id is `token:<id>` (GitLab's token ids are unique
//! across the three kinds, and the audit-log importer files token events under the same
//! id). Where a token lives (which endpoint revokes it) is remembered from the listing,
//! and looked up when a fresh process acts on a key it has not listed.
//!
//! Revoke is `DELETE`; rotation is GitLab's rotate endpoint, which revokes the old token
//! at once: the capabilities say atomic rotation without overlap, so the UI and the CLI
//! ask the operator to accept that. Events are the audit events of the configured
//! projects and groups (and of the instance with `instance_audit = true`).
//!
//! See docs/providers/gitlab.md for the least-privilege token setup.

mod client;
mod wire;

use super::{saas, Capabilities, EventPage, Issued, KeyPage, Provider, ProviderError, Result};
use crate::config::ProviderConfig;
use crate::model::{Key, KeyStatus};
use crate::secret::Secret;
use async_trait::async_trait;
use reqwest::Method;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use wire::{Place, WireToken};

pub use wire::event_from_audit;

/// Environment variable read when the config names neither `token_env` nor `token_command`.
pub const TOKEN_VAR: &str = "GITLAB_TOKEN";

/// A GitLab instance.
pub struct GitlabProvider {
    name: String,
    base: reqwest::Url,
    token: Secret,
    token_hint: String,
    client: reqwest::Client,
    retry: super::retry::Retry,
    per_page: u32,
    projects: Vec<String>,
    groups: Vec<String>,
    instance_audit: bool,
    places: Mutex<HashMap<u64, Place>>,
    /// What the last sync could not read, for the sync report.
    notes: Mutex<Vec<String>>,
}

impl GitlabProvider {
    /// Builds the provider from its configuration entry (resolving its token).
    pub fn from_config(cfg: &ProviderConfig) -> Result<GitlabProvider> {
        let base = saas::base_url(cfg, "https://gitlab.com")?;
        let (token, token_hint) = saas::required_token(cfg, TOKEN_VAR, "token")?;
        let client = saas::http_client(cfg)?;
        Ok(GitlabProvider {
            name: cfg.name.clone(),
            base,
            token,
            token_hint,
            client,
            retry: super::retry::Retry::with_attempts(cfg.max_attempts),
            // GitLab serves at most 100 per page.
            per_page: cfg.page_size.unwrap_or(100).clamp(1, 100),
            projects: cfg.projects.clone(),
            groups: cfg.groups.clone(),
            instance_audit: cfg.instance_audit,
            places: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
        })
    }

    /// The token sources in listing order: projects, groups, then personal tokens (an
    /// administrator's personal listing also shows the bot users' tokens of projects and
    /// groups; those keep the place they were first listed at).
    fn sources(&self) -> Vec<Place> {
        self.projects
            .iter()
            .map(|p| Place::Project(p.clone()))
            .chain(self.groups.iter().map(|g| Place::Group(g.clone())))
            .chain(std::iter::once(Place::Personal))
            .collect()
    }

    /// The audit-event streams: each project's and group's, then the instance's.
    fn audit_paths(&self) -> Vec<String> {
        let enc = super::http::encode_segment;
        self.projects
            .iter()
            .map(|p| format!("/projects/{}/audit_events", enc(p)))
            .chain(
                self.groups
                    .iter()
                    .map(|g| format!("/groups/{}/audit_events", enc(g))),
            )
            .chain(self.instance_audit.then(|| "/audit_events".to_string()))
            .collect()
    }

    fn remember(&self, id: u64, place: &Place) -> Place {
        let mut m = self.places.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id).or_insert_with(|| place.clone()).clone()
    }

    fn bad_id(&self, id: &str) -> ProviderError {
        ProviderError::NotFound {
            provider: self.name.clone(),
            key: id.to_string(),
        }
    }

    /// Where token `id` lives, and its current record: from the listing's memory, else
    /// by asking each place in turn.
    async fn locate(&self, id: &str) -> Result<(u64, Place, WireToken)> {
        let n = wire::token_number(id).ok_or_else(|| self.bad_id(id))?;
        let known = self
            .places
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&n)
            .cloned();
        let candidates = match known {
            Some(p) => vec![p],
            None => {
                let mut c = vec![Place::Personal];
                c.extend(self.sources().into_iter().filter(|p| *p != Place::Personal));
                c
            }
        };
        for place in candidates {
            match self
                .call::<WireToken>(Method::GET, &place.token_path(n), &[], id, None)
                .await
            {
                Ok(a) => {
                    let place = self.remember(n, &place);
                    return Ok((n, place, a.body));
                }
                Err(ProviderError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(self.bad_id(id))
    }
}

#[async_trait]
impl Provider for GitlabProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "gitlab"
    }

    fn location(&self) -> Option<String> {
        Some(self.base.to_string())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list_events: !self.audit_paths().is_empty(),
            // GitLab tokens cannot be suspended, only revoked.
            disable: false,
            revoke: true,
            create: false,
            // The rotate endpoints revoke the old token in the same call: no overlap.
            rotate_overlap: false,
            rotate_atomic: true,
            verify_secret: true,
            // No idempotency key: a change whose answer is lost is settled by reading.
            retry_changes: false,
            rotate_in_place: false,
            rotate_guided: false,
        }
    }

    async fn list_keys(&self, page: Option<&str>) -> Result<KeyPage> {
        let (source, pg) = saas::parse_pos(page);
        let sources = self.sources();
        let Some(place) = sources.get(source) else {
            return Ok(KeyPage::default());
        };
        let q = [
            ("page", pg.to_string()),
            ("per_page", self.per_page.to_string()),
        ];
        if source == 0 && pg == 1 {
            self.notes.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        let next_source = (source + 1 < sources.len()).then(|| format!("{}:1", source + 1));
        // A place the token may not list (or no longer sees) keeps its cached tokens; the
        // other places are listed.
        let refused = |why: String| {
            self.notes.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                "{} not listed, the tokens synced before are kept as they were: {why}; listing them needs {} (docs/providers/gitlab.md)",
                place.tokens(),
                place.needs()
            ));
            Ok(KeyPage {
                keys: Vec::new(),
                next: next_source.clone(),
                held: vec![place.held()],
            })
        };
        let a = match self
            .call::<Vec<WireToken>>(Method::GET, &place.list_path(), &q, "", None)
            .await
        {
            Ok(a) => a,
            Err(ProviderError::Denied { message, .. }) => return refused(message),
            Err(ProviderError::NotFound { .. }) if *place != Place::Personal => {
                return refused(format!(
                    "HTTP 404: not found, or not visible to the token in {}",
                    self.token_hint
                ))
            }
            Err(e) => return Err(e),
        };
        let mut keys = Vec::with_capacity(a.body.len());
        for t in a.body {
            let at = self.remember(t.id, place);
            if at != *place {
                continue;
            }
            keys.push(t.to_key(&self.name, place));
        }
        let next = match a.next_page {
            Some(n) if n > pg => Some(format!("{source}:{n}")),
            _ => next_source,
        };
        Ok(KeyPage {
            keys,
            next,
            held: Vec::new(),
        })
    }

    async fn list_events(&self, cursor: Option<&str>) -> Result<EventPage> {
        wire::list_events(self, cursor).await
    }

    async fn get_key(&self, id: &str) -> Result<Key> {
        let (_, place, t) = self.locate(id).await?;
        Ok(t.to_key(&self.name, &place))
    }

    async fn revoke(&self, id: &str) -> Result<Key> {
        let (n, place, t) = self.locate(id).await?;
        if t.revoked {
            return Ok(t.to_key(&self.name, &place));
        }
        match self
            .call::<serde_json::Value>(Method::DELETE, &place.token_path(n), &[], id, None)
            .await
        {
            Ok(_) => {}
            // An expired token cannot be revoked any more; GitLab answers 400 or 404.
            Err(ProviderError::Conflict { .. } | ProviderError::NotFound { .. }) if !t.active => {
                return Ok(t.to_key(&self.name, &place))
            }
            Err(e) => return Err(e),
        }
        let mut key = t.to_key(&self.name, &place);
        key.status = KeyStatus::Revoked;
        Ok(key)
    }

    async fn rotate(&self, id: &str, grace: Duration) -> Result<Issued> {
        let _ = grace;
        let (n, place, t) = self.locate(id).await?;
        let path = format!("{}/rotate", place.token_path(n));
        let a = self
            .call::<wire::NewToken>(Method::POST, &path, &[], id, None)
            .await?;
        let secret = Secret::new(a.body.token.clone());
        self.remember(a.body.info.id, &place);
        let key = a.body.info.to_key(&self.name, &place);
        let mut old = t.to_key(&self.name, &place);
        old.status = KeyStatus::Revoked;
        old.rotated_to = Some(key.id.clone());
        Ok(Issued {
            key,
            secret,
            old: Some(old),
        })
    }

    fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn verify_secret(&self, secret: &Secret) -> Result<String> {
        let a = self
            .call::<WireToken>(
                Method::GET,
                "/personal_access_tokens/self",
                &[],
                "",
                Some(secret.expose()),
            )
            .await?;
        Ok(wire::key_id(a.body.id))
    }
}
