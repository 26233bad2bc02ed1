//! Helpers shared by the format mappers: looking up fields in JSON objects or CSV rows,
//! parsing times, content ids and outcomes.

use crate::model::Outcome;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// A record whose fields can be looked up by name: a JSON object (dotted paths reach
/// into nested objects) or a CSV row (header names).
pub trait Fields {
    /// The field as text (numbers and booleans are rendered; objects are not text).
    fn text(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The field as a JSON value (CSV fields are strings).
    fn value(&self, name: &str) -> Option<Cow<'_, Value>>;

    /// The first non-empty field of `names`, as text.
    fn first_text(&self, names: &[&str]) -> Option<Cow<'_, str>> {
        names
            .iter()
            .filter_map(|n| self.text(n))
            .find(|s| !s.trim().is_empty())
    }
}

/// Looks up a dotted path (`userIdentity.accessKeyId`) in a JSON value. A key that
/// itself contains dots (`@timestamp`, `actor_location.country_code` in flat exports) is
/// tried first.
pub fn path<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(found) = v.get(name) {
        return Some(found);
    }
    let mut cur = v;
    for part in name.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Renders a scalar JSON value as text.
pub fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

impl Fields for Value {
    fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        path(self, name).and_then(scalar_text)
    }
    fn value(&self, name: &str) -> Option<Cow<'_, Value>> {
        path(self, name).map(Cow::Borrowed)
    }
}

/// Parses the time formats found in audit logs: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]`
/// (taken as UTC, with an optional ` UTC`/`Z` suffix), and Unix epochs in seconds or
/// milliseconds (numbers or digit strings).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty time".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let n: f64 = t.parse().map_err(|_| format!("invalid time `{t}`"))?;
        // Heuristic: anything past the year 5138 in seconds is milliseconds.
        let ms = if n > 1e11 { n } else { n * 1000.0 };
        return Utc
            .timestamp_millis_opt(ms as i64)
            .single()
            .ok_or_else(|| format!("time out of range `{t}`"));
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    let naive = t.trim_end_matches(" UTC").trim_end_matches('Z');
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(naive, f) {
            return Ok(Utc.from_utc_datetime(&n));
        }
    }
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f %z") {
        return Ok(d.with_timezone(&Utc));
    }
    Err(format!(
        "invalid time `{}`: expected RFC 3339 or a Unix epoch",
        crate::output::sanitize(&t.chars().take(40).collect::<String>())
    ))
}

/// The time of a JSON field (string or epoch number).
pub fn time_field(rec: &dyn Fields, names: &[&str]) -> Result<DateTime<Utc>, String> {
    let Some(t) = rec.first_text(names) else {
        return Err(format!("missing time (looked for {})", names.join(", ")));
    };
    parse_time(&t)
}

/// The id of a record that has none of its own: `sha256:` and 32 hex digits of the
/// record normalised (keys sorted, no whitespace), so the same record always gets the
/// same id wherever it is imported from.
pub fn content_id(record: &Value) -> String {
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    format!("sha256:{}", &hex::encode(digest)[..32])
}

/// Interprets an outcome field: HTTP status codes, or words such as `success`,
/// `denied`, `forbidden`, `error`, `failed`.
pub fn parse_outcome(s: &str) -> Option<Outcome> {
    let t = s.trim().to_ascii_lowercase();
    if let Ok(code) = t.parse::<u16>() {
        return Some(match code {
            100..=399 => Outcome::Success,
            401 | 403 | 407 => Outcome::Denied,
            _ => Outcome::Error,
        });
    }
    match t.as_str() {
        "success" | "succeeded" | "ok" | "allow" | "allowed" | "true" | "pass" | "passed"
        | "accepted" | "granted" => Some(Outcome::Success),
        "denied" | "deny" | "forbidden" | "unauthorized" | "unauthorised" | "blocked"
        | "rejected" | "refused" | "accessdenied" | "access_denied" | "permission denied" => {
            Some(Outcome::Denied)
        }
        "error" | "fail" | "failed" | "failure" | "false" | "err" | "fault" => Some(Outcome::Error),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_usual_shapes() {
        let want = parse_time("2024-03-01T10:00:00Z").unwrap();
        for s in [
            "2024-03-01T10:00:00.000Z",
            "2024-03-01 10:00:00",
            "2024-03-01 10:00:00 UTC",
            "1709287200",
            "1709287200000",
            "2024-03-01T11:00:00+01:00",
        ] {
            assert_eq!(parse_time(s).unwrap(), want, "{s}");
        }
        assert!(parse_time("yesterday")
            .unwrap_err()
            .contains("invalid time"));
    }

    #[test]
    fn content_ids_ignore_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str("{ \"b\": [1, 2],\n \"a\": 1 }").unwrap();
        assert_eq!(content_id(&a), content_id(&b));
    }
}
