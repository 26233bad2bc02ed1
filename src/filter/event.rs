//! The filter grammar of the TUI's events view (`/` there).
//!
//! A query is whitespace-separated terms, combined with AND:
//!
//! | term | meaning |
//! |---|---|
//! | `ip:203.0.113.7` | from that address |
//! | `ip:203.0.113.0/24` / `ip:2001:db8::/48` | from that network |
//! | `action:employees` | the action contains the text (case-insensitive) |
//! | `outcome:denied` | the outcome is success, denied or error |
//! | `since:2026-11-02T10:00:00Z` | at or after that time (RFC 3339, or a date) |
//! | any other word | occurs in the action, key id, source address or user agent |
//!
//! A parsed filter sets the row filters of an [`EventQuery`]; the store applies them
//! while it walks the time index page by page, so the filter covers every cached event.

use crate::filter::Network;
use crate::model::Outcome;
use crate::store::EventQuery;
use chrono::{DateTime, NaiveDate, Utc};

const FIELDS: &str = "ip, action, outcome, since";

/// The terms of the grammar with what they keep, for the help and docs/keys.md.
pub const TERMS: &[(&str, &str)] = &[
    ("ip:203.0.113.7", "events from that address"),
    (
        "ip:203.0.113.0/24",
        "events from that network (IPv6 too: ip:2001:db8::/48)",
    ),
    (
        "action:employees",
        "events whose action contains the text (any case)",
    ),
    ("outcome:denied", "success, denied or error (o cycles it)"),
    (
        "since:2026-11-02T10:00:00Z",
        "events at or after that time (RFC 3339 or a date; an exposure finding's key opens its events with it)",
    ),
    (
        "other words",
        "each occurs in the action, key id, source address or user agent",
    ),
];

/// A parsed events filter. Text is kept lower-case.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventFilter {
    /// Only events from this address or network.
    pub ip: Option<Network>,
    /// Only events whose action contains this text.
    pub action: Option<String>,
    /// Only events with this outcome.
    pub outcome: Option<Outcome>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Words that must each occur in the action, key id, source address or user agent.
    pub text: Vec<String>,
}

impl EventFilter {
    /// Parses a query. Unknown fields, repeated fields and bad values are errors that say
    /// what is expected.
    pub fn parse(q: &str) -> Result<EventFilter, String> {
        let mut f = EventFilter::default();
        for raw in q.split_whitespace() {
            let Some((field, value)) = raw
                .split_once(':')
                .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphabetic()))
            else {
                f.text.push(raw.to_lowercase());
                continue;
            };
            let field = field.to_ascii_lowercase();
            if value.is_empty() {
                return Err(format!("`{raw}`: missing value after `{field}:`"));
            }
            let twice = || format!("`{raw}`: `{field}:` is given twice; use it once");
            match field.as_str() {
                "ip" => {
                    if f.ip.is_some() {
                        return Err(twice());
                    }
                    f.ip = Some(Network::parse(value).map_err(|e| format!("`{raw}`: {e}"))?);
                }
                "action" => {
                    if f.action.is_some() {
                        return Err(twice());
                    }
                    f.action = Some(value.to_lowercase());
                }
                "outcome" => {
                    if f.outcome.is_some() {
                        return Err(twice());
                    }
                    f.outcome = Some(value.parse().map_err(|e| format!("`{raw}`: {e}"))?);
                }
                "since" => {
                    if f.since.is_some() {
                        return Err(twice());
                    }
                    f.since = Some(parse_time(value).ok_or_else(|| {
                        format!("`{raw}`: expected an RFC 3339 time (2026-11-02T10:00:00Z) or a date (2026-11-02)")
                    })?);
                }
                other => {
                    return Err(format!(
                        "unknown field `{other}` in `{raw}`; fields: {FIELDS}"
                    ))
                }
            }
        }
        Ok(f)
    }

    /// True when the filter keeps every event.
    pub fn is_empty(&self) -> bool {
        *self == EventFilter::default()
    }

    /// Sets the filter fields of `q` (its scope, anchors and size stay the caller's).
    pub fn apply(&self, q: &mut EventQuery) {
        q.source_ip = self.ip;
        q.action = self.action.clone();
        q.outcome = self.outcome;
        q.since = self.since;
        q.text = self.text.clone();
    }
}

/// An absolute time: RFC 3339, or a date (its midnight, UTC). Relative times (`7d`)
/// are not taken: the filter would mean something else a minute later.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// The `since:` term of a time, as the filter writes it.
pub fn since_term(t: DateTime<Utc>) -> String {
    format!(
        "since:{}",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// The query text with its `outcome:` term replaced by `outcome` (`None` removes it); the
/// other terms keep their order.
pub fn with_outcome(query: &str, outcome: Option<Outcome>) -> String {
    let mut words: Vec<String> = query
        .split_whitespace()
        .filter(|w| {
            !w.split_once(':')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case("outcome"))
        })
        .map(str::to_string)
        .collect();
    if let Some(o) = outcome {
        words.push(format!("outcome:{o}"));
    }
    words.join(" ")
}

/// The outcome after `current` in the cycle all → success → denied → error → all.
pub fn next_outcome(current: Option<Outcome>) -> Option<Outcome> {
    match current {
        None => Some(Outcome::Success),
        Some(Outcome::Success) => Some(Outcome::Denied),
        Some(Outcome::Denied) => Some(Outcome::Error),
        Some(Outcome::Error) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_set_fields_and_words_are_text() {
        let f =
            EventFilter::parse("ip:203.0.113.0/24 Action:SSN outcome:Denied Acme-Sync").unwrap();
        assert_eq!(f.ip, Some(Network::parse("203.0.113.0/24").unwrap()));
        assert_eq!(f.action.as_deref(), Some("ssn"));
        assert_eq!(f.outcome, Some(Outcome::Denied));
        assert_eq!(f.text, ["acme-sync"]);
        // An address without a prefix is that address only; IPv6 networks parse.
        let one = EventFilter::parse("ip:198.51.100.7").unwrap().ip.unwrap();
        assert_eq!(one.bits, 32);
        assert!(EventFilter::parse("ip:2001:db8::/48").unwrap().ip.is_some());
        // A path with a colon later on is text, not a field.
        assert_eq!(
            EventFilter::parse("/v1/x:y").unwrap().text,
            vec!["/v1/x:y".to_string()]
        );
        assert!(EventFilter::parse("  ").unwrap().is_empty());
        let t: DateTime<Utc> = "2026-11-02T10:00:00Z".parse().unwrap();
        let f = EventFilter::parse(&since_term(t)).unwrap();
        assert_eq!(f.since, Some(t));
        let mut q = EventQuery::default();
        f.apply(&mut q);
        assert_eq!(q.since, Some(t));
        assert_eq!(
            EventFilter::parse("since:2026-11-02").unwrap().since,
            Some("2026-11-02T00:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn bad_terms_say_what_is_expected() {
        let e = EventFilter::parse("ip:203.0.113").unwrap_err();
        assert!(e.contains("203.0.113.0/24"), "{e}");
        let e = EventFilter::parse("outcome:den").unwrap_err();
        assert!(e.contains("success, denied, error"), "{e}");
        let e = EventFilter::parse("scope:ssn:read").unwrap_err();
        assert!(e.contains("fields: ip, action, outcome, since"), "{e}");
        let e = EventFilter::parse("since:7d").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
        let e = EventFilter::parse("ip:").unwrap_err();
        assert!(e.contains("missing value"), "{e}");
        let e = EventFilter::parse("outcome:denied outcome:error").unwrap_err();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn the_outcome_term_is_replaced_in_place_of_the_others() {
        assert_eq!(
            with_outcome("ip:10.0.0.0/8 outcome:success get", Some(Outcome::Denied)),
            "ip:10.0.0.0/8 get outcome:denied"
        );
        assert_eq!(with_outcome("outcome:error", None), "");
        let mut o = None;
        let mut seen = Vec::new();
        for _ in 0..4 {
            o = next_outcome(o);
            seen.push(o);
        }
        assert_eq!(
            seen,
            [
                Some(Outcome::Success),
                Some(Outcome::Denied),
                Some(Outcome::Error),
                None
            ]
        );
    }
}
