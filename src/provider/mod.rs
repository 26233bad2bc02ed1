//! Providers: the remote systems that issue keys. Each kind implements [`Provider`]; the
//! rest of keyaudit asks a provider's [`Capabilities`], never its kind.

#[cfg(feature = "aws")]
pub mod aws;
pub mod cloudflare;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod openai;
pub mod retry;
mod saas;
pub mod vault;

use crate::config::ProviderConfig;
use crate::model::{Event, Finding, Key, KeyStatus};
use crate::secret::Secret;
use async_trait::async_trait;
use std::time::Duration;
use thiserror::Error;

/// What a provider can do. The UI and the workflows decide from these flags alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Can list audit events.
    pub list_events: bool,
    /// Can disable a key reversibly (and enable it again).
    pub disable: bool,
    /// Can revoke (permanently) a key.
    pub revoke: bool,
    /// Can create a new key.
    pub create: bool,
    /// Can rotate with an overlap: new key issued, old key kept for a grace period.
    pub rotate_overlap: bool,
    /// Can rotate in one atomic call.
    pub rotate_atomic: bool,
    /// Can check that a secret authenticates (verifies a rotation).
    pub verify_secret: bool,
    /// A changing call (create, rotate, disable, enable, revoke) may be sent again when
    /// its answer is lost: the provider makes it idempotent (the provider API's
    /// `Idempotency-Key`). Where false, a change is sent once, and a call that was sent
    /// but not answered ([`ProviderError::Ambiguous`]) is settled by reading the
    /// provider's state, never by sending it again.
    pub retry_changes: bool,
    /// A rotation gives the same key a new value (Cloudflare's roll): the key keeps its
    /// id, so nothing in a listing tells whether a rotation whose answer was lost took
    /// place.
    pub rotate_in_place: bool,
    /// Rotation is guided: the API cannot create keys, so the operator creates the new
    /// one where [`Provider::rotation_guide`] says, and keyaudit watches for it and for
    /// the old key to go quiet, then offers the revoke (OpenAI).
    pub rotate_guided: bool,
}

impl Capabilities {
    /// True when a rotation stops the old key at once (no grace period can be had): the
    /// operator must accept that (`rotate --no-overlap`, the confirm dialog's warning).
    pub fn rotation_without_overlap(&self) -> bool {
        self.rotate_atomic && !self.rotate_overlap
    }

    /// The capabilities in words, for `keyaudit info`: `events, revoke, rotate (no
    /// overlap), verify`.
    pub fn describe(&self) -> String {
        let mut v: Vec<&str> = Vec::new();
        if self.list_events {
            v.push("events");
        }
        if self.disable {
            v.push("disable/enable");
        }
        if self.revoke {
            v.push("revoke");
        }
        if self.create {
            v.push("create");
        }
        if self.rotate_overlap {
            v.push("rotate (with overlap)");
        } else if self.rotate_atomic {
            v.push("rotate (no overlap: the old key stops at once)");
        }
        if self.verify_secret {
            v.push("verify");
        }
        if self.retry_changes {
            v.push("idempotent changes");
        }
        if v.is_empty() {
            "read keys only".into()
        } else {
            v.join(", ")
        }
    }
}

/// The idempotency key of one logical change: every retry of the change, and a resume
/// after a crash, sends the same key, so the provider makes the change once. 128 random
/// bits in hex; keys for the steps of one workflow are derived from the workflow's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpKey(String);

impl OpKey {
    /// A fresh key (128 bits from the OS CSPRNG).
    pub fn random() -> OpKey {
        OpKey(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// A saved key (a workflow row's).
    pub fn saved(key: &str) -> OpKey {
        OpKey(key.to_string())
    }

    /// The key of the step `what` (`rotate`, `revoke-new`, ...) of the operation this key
    /// names: distinct per step, the same on every run.
    pub fn step(&self, what: &str) -> OpKey {
        OpKey(format!("{}-{what}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A change to one existing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    Disable,
    Enable,
    Revoke,
}

/// A change that issues a new key (and its secret).
#[derive(Debug, Clone, Copy)]
pub enum Issue<'a> {
    Create(&'a NewKey),
    /// Rotates key `id`; the old one keeps working for `grace` (zero: stops at once).
    Rotate {
        id: &'a str,
        grace: Duration,
    },
}

/// Whether a key still authenticates, as its provider says now (`scan --verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// The provider holds the key as active and unexpired.
    Live,
    /// Revoked, disabled, expired or gone: the provider would refuse it.
    Revoked,
    /// Not asked (no configured provider owns it) or no answer.
    Unknown,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Revoked => "revoked",
            Liveness::Unknown => "unknown",
        }
    }

    /// What a key's state at its provider says.
    pub fn of(key: &Key, now: chrono::DateTime<chrono::Utc>) -> Liveness {
        match key.status {
            KeyStatus::Active if key.expires.is_none_or(|e| e > now) => Liveness::Live,
            _ => Liveness::Revoked,
        }
    }
}

/// One page of a key listing.
#[derive(Debug, Clone, Default)]
pub struct KeyPage {
    pub keys: Vec<Key>,
    /// Token of the next page; `None` on the last page.
    pub next: Option<String>,
    /// Sources of keys this listing could not read whole (the provider refused them: a
    /// permission the credential lacks). Their cached keys stay as they are: a key
    /// missing from an incomplete listing is not a revoked key.
    pub held: Vec<Held>,
}

/// Which field of a cached key a [`Held`] source is recognised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBy {
    Id,
    Owner,
    /// Any one of the key's scopes.
    Scope,
}

/// The cached keys of one source a listing could not read: those whose `by` field is
/// `text`, or starts with it when `prefix` is set (`alert:` for GitHub's secret-scanning
/// alerts, owner `project acme/payroll` for a GitLab project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub by: HeldBy,
    pub text: String,
    pub prefix: bool,
}

impl Held {
    /// The keys whose id starts with `prefix`.
    pub fn id_prefix(prefix: &str) -> Held {
        Held {
            by: HeldBy::Id,
            text: prefix.into(),
            prefix: true,
        }
    }

    /// The keys whose owner is `owner`.
    pub fn owner(owner: &str) -> Held {
        Held {
            by: HeldBy::Owner,
            text: owner.into(),
            prefix: false,
        }
    }

    /// The keys whose owner starts with `prefix`.
    pub fn owner_prefix(prefix: &str) -> Held {
        Held {
            prefix: true,
            ..Held::owner(prefix)
        }
    }

    /// The keys holding scope `scope`.
    pub fn scope(scope: &str) -> Held {
        Held {
            by: HeldBy::Scope,
            text: scope.into(),
            prefix: false,
        }
    }

    /// The keys holding a scope that starts with `prefix`.
    pub fn scope_prefix(prefix: &str) -> Held {
        Held {
            prefix: true,
            ..Held::scope(prefix)
        }
    }

    /// True when `key` belongs to this source.
    pub fn covers(&self, key: &Key) -> bool {
        let hit = |s: &str| {
            if self.prefix {
                s.starts_with(self.text.as_str())
            } else {
                s == self.text
            }
        };
        match self.by {
            HeldBy::Id => hit(&key.id),
            HeldBy::Owner => hit(&key.owner),
            HeldBy::Scope => key.scopes.iter().any(|s| hit(s)),
        }
    }
}

/// One page of events, with the cursor that follows it.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Cursor to ask for what comes after this page (save it with the page).
    pub next_cursor: String,
    /// More events are ready now.
    pub has_more: bool,
}

/// The answer to creating or rotating a key: the new key and its secret, shown once.
#[derive(Debug)]
pub struct Issued {
    pub key: Key,
    pub secret: Secret,
    /// The old key after the rotation (rotations only).
    pub old: Option<Key>,
}

/// What a new key should be.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NewKey {
    pub name: String,
    pub owner: String,
    pub environment: Option<String>,
    pub purpose: Option<String>,
    pub scopes: Vec<String>,
}

/// What can go wrong talking to a provider.
#[derive(Debug, Error)]
pub enum ProviderError {
    #[error("{provider}: authentication failed (HTTP {status}); check the token in {hint}")]
    Unauthorized {
        provider: String,
        status: u16,
        hint: String,
    },
    #[error("{provider}: key `{key}` not found at the provider")]
    NotFound { provider: String, key: String },
    #[error("{provider}: {operation} is not supported by this provider")]
    Unsupported {
        provider: String,
        operation: &'static str,
    },
    #[error("{provider}: {message}")]
    Conflict { provider: String, message: String },
    #[error("{provider}: {message} (after {attempts} attempts)")]
    Unavailable {
        provider: String,
        message: String,
        attempts: u32,
    },
    /// The provider refused a call for a permission the credential lacks (HTTP 403);
    /// `message` names the call and the permission it needs.
    #[error("{provider}: {message}")]
    Denied { provider: String, message: String },
    /// A change was sent and its outcome is unknown (no answer, or a failure answer
    /// that does not say whether it was applied), and the provider cannot take it
    /// again safely: settle it by reading the provider's state.
    #[error("{provider}: {message}; the change may or may not have been applied")]
    Ambiguous { provider: String, message: String },
    #[error("{provider}: unexpected answer: {message}")]
    Protocol { provider: String, message: String },
    /// A configuration problem; `message` names the file, line and provider.
    #[error("{message}")]
    Config { provider: String, message: String },
}

impl ProviderError {
    /// True when trying again later may help (throttling, outages, dropped connections).
    pub fn is_transient(&self) -> bool {
        matches!(self, ProviderError::Unavailable { .. })
    }
}

pub type Result<T> = std::result::Result<T, ProviderError>;

/// One configured remote system. Implementations are cheap to share (`Arc<dyn Provider>`).
#[async_trait]
pub trait Provider: Send + Sync {
    /// The user's label for this provider.
    fn name(&self) -> &str;
    /// The kind (`http`, `demo`, `aws`, ...), for display only.
    fn kind(&self) -> &str;
    /// Where it is, for display (`info`, the Providers view).
    fn location(&self) -> Option<String> {
        None
    }
    fn capabilities(&self) -> Capabilities;

    /// One page of the key listing; `page` is `None` for the first.
    async fn list_keys(&self, page: Option<&str>) -> Result<KeyPage>;
    /// The events after `cursor` (`None`: from the oldest).
    async fn list_events(&self, cursor: Option<&str>) -> Result<EventPage>;
    /// The current state of one key.
    async fn get_key(&self, id: &str) -> Result<Key>;

    async fn disable(&self, id: &str) -> Result<Key> {
        Err(self.unsupported("disable", id))
    }
    async fn enable(&self, id: &str) -> Result<Key> {
        Err(self.unsupported("enable", id))
    }
    async fn revoke(&self, id: &str) -> Result<Key> {
        Err(self.unsupported("revoke", id))
    }
    async fn create(&self, spec: &NewKey) -> Result<Issued> {
        Err(self.unsupported("create", &spec.name))
    }
    /// Rotates a key; the old one keeps working for `grace` (zero: stops at once).
    async fn rotate(&self, id: &str, grace: Duration) -> Result<Issued> {
        let _ = grace;
        Err(self.unsupported("rotate", id))
    }
    /// [`KeyChange`] of key `id` as the one logical change `op`: a provider with
    /// [`Capabilities::retry_changes`] makes it once however often `op` is sent. Others
    /// ignore `op`.
    async fn change_key(&self, id: &str, change: KeyChange, op: &OpKey) -> Result<Key> {
        let _ = op;
        match change {
            KeyChange::Disable => self.disable(id).await,
            KeyChange::Enable => self.enable(id).await,
            KeyChange::Revoke => self.revoke(id).await,
        }
    }

    /// Creates or rotates as the one logical change `op` (see [`Provider::change_key`]);
    /// sent again with the same `op`, an idempotent provider answers with the same new
    /// key and secret.
    async fn issue(&self, what: Issue<'_>, op: &OpKey) -> Result<Issued> {
        let _ = op;
        match what {
            Issue::Create(spec) => self.create(spec).await,
            Issue::Rotate { id, grace } => self.rotate(id, grace).await,
        }
    }

    /// Whether key `id` would authenticate now: the provider's own state of the key, asked
    /// by its id (the secret is never sent). A key the provider no longer knows is
    /// revoked. Providers answer through [`Provider::get_key`] (the demo and `http`
    /// provider's `GET /v1/keys/{id}`, Vault's `lookup-accessor`, AWS's `ListAccessKeys`
    /// status) unless they have a cheaper call.
    async fn liveness(&self, id: &str) -> Result<Liveness> {
        match self.get_key(id).await {
            Ok(k) => Ok(Liveness::of(&k, chrono::Utc::now())),
            Err(ProviderError::NotFound { .. }) => Ok(Liveness::Revoked),
            Err(e) => Err(e),
        }
    }

    /// Where the operator creates the replacement of `key` by hand, for a provider whose
    /// keys cannot be created through its API (OpenAI): `Some` makes `rotate` a guided
    /// rotation (`crate::action::guided`) instead of refusing. `None` (the default): the
    /// provider rotates by itself, or not at all.
    fn rotation_guide(&self, key: &Key) -> Option<String> {
        let _ = key;
        None
    }

    /// Checks that `secret` authenticates at the provider; returns the key id it belongs to.
    async fn verify_secret(&self, secret: &Secret) -> Result<String> {
        let _ = secret;
        Err(self.unsupported("verify", ""))
    }

    /// Findings the provider can state itself after a key listing (AWS: an active root
    /// account key); the sync engine stores them. Most providers have none.
    async fn findings(&self) -> Result<Vec<Finding>> {
        Ok(Vec::new())
    }

    /// What the last sync could not read and why (a plan without the audit log, a
    /// permission the credential lacks), for the sync report. Most providers have none.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Why this provider cannot do `operation` (`rotate`, `disable`, ...) when its
    /// capabilities say it cannot, in words for the operator: what the vendor allows
    /// and what to do instead. `None`: nothing more to say than the capabilities.
    fn refusal(&self, operation: &str) -> Option<String> {
        let _ = operation;
        None
    }

    #[doc(hidden)]
    fn unsupported(&self, operation: &'static str, _id: &str) -> ProviderError {
        ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation,
        }
    }
}

/// Builds the provider a configuration entry describes.
pub fn from_config(
    cfg: &ProviderConfig,
) -> std::result::Result<std::sync::Arc<dyn Provider>, ProviderError> {
    match cfg.kind.as_str() {
        "http" | "demo" => Ok(std::sync::Arc::new(http::HttpProvider::from_config(cfg)?)),
        #[cfg(feature = "aws")]
        "aws" => Ok(std::sync::Arc::new(aws::AwsProvider::from_config(cfg)?)),
        #[cfg(not(feature = "aws"))]
        "aws" => Err(ProviderError::Config {
            provider: cfg.name.clone(),
            message: format!(
                "{}: provider `{}`: kind `aws` needs keyaudit built with `--features aws` (cargo build --release --features aws)",
                cfg.origin(),
                cfg.name
            ),
        }),
        "vault" => Ok(std::sync::Arc::new(vault::VaultProvider::from_config(cfg)?)),
        "gitlab" => Ok(std::sync::Arc::new(gitlab::GitlabProvider::from_config(cfg)?)),
        "openai" => Ok(std::sync::Arc::new(openai::OpenaiProvider::from_config(cfg)?)),
        "cloudflare" => Ok(std::sync::Arc::new(
            cloudflare::CloudflareProvider::from_config(cfg)?,
        )),
        "github" => Ok(std::sync::Arc::new(github::GithubProvider::from_config(cfg)?)),

        other => Err(ProviderError::Config {
            provider: cfg.name.clone(),
            message: format!(
                "{}: provider `{}`: kind `{other}` is not supported by this build",
                cfg.origin(),
                cfg.name
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_source_covers_its_keys_only() {
        let mut k = Key::seen_in_logs("p", "alert:acme/app#3");
        k.owner = "project acme/payroll".into();
        k.scopes = vec!["project:proj_a".into()];
        assert!(Held::id_prefix("alert:").covers(&k));
        assert!(!Held::id_prefix("token:").covers(&k));
        assert!(Held::owner("project acme/payroll").covers(&k));
        assert!(!Held::owner("project acme/pay").covers(&k));
        assert!(Held::owner_prefix("project ").covers(&k));
        assert!(Held::scope("project:proj_a").covers(&k));
        assert!(!Held::scope("project:proj").covers(&k));
        assert!(Held::scope_prefix("project:").covers(&k));
        assert!(!Held::scope("admin").covers(&k));
    }

    #[cfg(not(feature = "aws"))]
    #[test]
    fn aws_without_the_feature_says_how_to_build_it() {
        let cfg = ProviderConfig {
            name: "x".into(),
            kind: "aws".into(),
            ..Default::default()
        };
        let e = from_config(&cfg).err().expect("refused").to_string();
        assert!(
            e.contains("provider `x`: kind `aws` needs keyaudit built with `--features aws`"),
            "{e}"
        );
    }

    #[cfg(feature = "aws")]
    #[test]
    fn aws_with_the_feature_builds_without_network() {
        let cfg = ProviderConfig {
            name: "x".into(),
            kind: "aws".into(),
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        let p = from_config(&cfg).expect("built lazily");
        assert_eq!(p.kind(), "aws");
        assert!(!p.capabilities().list_events, "no bucket, no events");
    }
}
