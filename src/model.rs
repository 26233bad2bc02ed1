//! The domain words of keyaudit: provider, key, event, finding, journal entry.
//!
//! These types are shared by the store, the providers, the detection engine and the UI.
//! None of them ever holds secret key material; a key is known by its provider id, a short
//! non-secret prefix and a fingerprint.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A point in time as stored in the cache: milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Converts a UTC time to cache milliseconds.
pub fn to_millis(t: DateTime<Utc>) -> Millis {
    t.timestamp_millis()
}

/// Converts cache milliseconds to a UTC time (clamped to the epoch on overflow).
pub fn from_millis(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Formats a time the way every output of keyaudit does: RFC 3339, UTC, milliseconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Declares a string-backed enum with `as_str`, `Display`, `FromStr` and serde support.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word used in the cache, the API and the UI.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let lower = s.trim().to_ascii_lowercase();
                match lower.as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} `{}`; expected one of: {}",
                        stringify!($name).to_ascii_lowercase(),
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

pub(crate) use word_enum;

word_enum! {
    /// Lifecycle state of a key at its provider.
    KeyStatus {
        /// Usable.
        Active = "active",
        /// Disabled; can be enabled again.
        Inactive = "inactive",
        /// Permanently revoked or deleted.
        Revoked = "revoked",
        /// Past its expiry date.
        Expired = "expired",
    }
}

word_enum! {
    /// Result of one audited request.
    Outcome {
        /// The request was served.
        Success = "success",
        /// Authorisation was refused (missing scope, disabled key, ...).
        Denied = "denied",
        /// The platform failed to serve it.
        Error = "error",
    }
}

word_enum! {
    /// How urgent a finding is. Ordered: `Low < Medium < High < Critical`.
    Severity {
        /// Worth a look during a review.
        Low = "low",
        /// Should be fixed this week.
        Medium = "medium",
        /// Should be looked at today.
        High = "high",
        /// Act now.
        Critical = "critical",
    }
}

word_enum! {
    /// What kind of problem a finding describes.
    Category {
        /// Unusual use compared with the key's own baseline.
        Anomaly = "anomaly",
        /// Key management practice: age, expiry, scopes, duplicates.
        Hygiene = "hygiene",
        /// The key's material was found where it should not be.
        Exposure = "exposure",
        /// A Sigma rule matched the key's raw events.
        Sigma = "sigma",
    }
}

word_enum! {
    /// Where an operator has taken a finding.
    FindingStatus {
        /// Needs attention.
        Open = "open",
        /// Seen by an operator, still true.
        Acknowledged = "acknowledged",
        /// Hidden by an operator (optionally until a date).
        Suppressed = "suppressed",
        /// The condition no longer holds.
        Resolved = "resolved",
    }
}

word_enum! {
    /// Where a cached key came from.
    KeySource {
        /// Listed by its provider's API.
        Provider = "provider",
        /// Known only because audit records mention it ("seen in logs").
        Logs = "logs",
    }
}

/// A credential a provider issued. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// Name of the provider (the user's label) this key belongs to.
    pub provider: String,
    /// The provider's id of the key.
    pub id: String,
    pub name: String,
    pub owner: String,
    pub environment: Option<String>,
    pub purpose: Option<String>,
    /// Short non-secret prefix of the secret.
    pub prefix: String,
    /// `sha256:` + hex digest prefix of the secret.
    pub fingerprint: String,
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    pub created: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
    /// Id of the key that replaced this one after a rotation.
    pub rotated_to: Option<String>,
    pub source: KeySource,
}

impl Key {
    /// A key known only from audit records of `provider`.
    pub fn seen_in_logs(provider: &str, id: &str) -> Key {
        Key {
            provider: provider.to_string(),
            id: id.to_string(),
            name: id.to_string(),
            owner: String::new(),
            environment: None,
            purpose: None,
            prefix: String::new(),
            fingerprint: String::new(),
            scopes: Vec::new(),
            status: KeyStatus::Active,
            created: None,
            expires: None,
            last_used: None,
            rotated_to: None,
            source: KeySource::Logs,
        }
    }

    /// True for keys in a production environment (shown in a distinct colour).
    pub fn is_production(&self) -> bool {
        matches!(
            self.environment
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("prod" | "production" | "live")
        )
    }
}

/// One audit-log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Name of the provider (or import source) the event came from.
    pub provider: String,
    /// The record's own id, unique per provider.
    pub id: String,
    pub time: DateTime<Utc>,
    /// The provider's id of the key that made (or tried) the request.
    pub key_id: String,
    pub principal: Option<String>,
    pub action: String,
    /// Scope the operation required, when the platform says.
    pub scope: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: Outcome,
    pub status_code: Option<i64>,
    pub request_id: Option<String>,
    /// Number of personal-data records returned.
    pub records: Option<i64>,
    /// The raw record as received (imports keep it; synced events may not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// A rule's verdict on a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id: the same rule on the same key and subject always gives the same id.
    pub id: String,
    pub rule: String,
    pub category: Category,
    pub severity: Severity,
    pub provider: String,
    pub key_id: String,
    pub title: String,
    pub explanation: String,
    /// Provider ids of the events that support the finding.
    pub evidence: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub status: FindingStatus,
    pub note: Option<String>,
    pub suppressed_until: Option<DateTime<Utc>>,
}

/// One provider as the cache knows it, with its sync health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub name: String,
    pub kind: String,
    pub url: Option<String>,
    pub last_sync: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub keys: i64,
    pub events: i64,
}

/// One operator action recorded in the hash-chained journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub os_user: String,
    pub host: String,
    pub action: String,
    pub target: String,
    pub reason: Option<String>,
    /// Parameters of the action as a JSON object (never a secret).
    pub params: serde_json::Value,
    pub result: String,
    pub prev_hash: String,
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_reject_unknown() {
        for s in KeyStatus::ALL {
            assert_eq!(s.as_str().parse::<KeyStatus>().unwrap(), *s);
        }
        let err = "enabled".parse::<KeyStatus>().unwrap_err();
        assert!(err.contains("active, inactive, revoked, expired"), "{err}");
        assert!(Severity::Critical > Severity::High && Severity::Low < Severity::Medium);
    }

    #[test]
    fn production_is_recognised_case_insensitively() {
        let mut k = Key::seen_in_logs("p", "k");
        k.environment = Some("PROD".into());
        assert!(k.is_production());
        k.environment = Some("sandbox".into());
        assert!(!k.is_production());
    }
}
