//! AWS CloudTrail: log files as delivered to S3 (`{"Records":[...]}`, usually gzipped)
//! and JSON-lines exports of single events (CloudTrail Lake, `lookup-events` output).
//!
//! This is the one CloudTrail mapping: the AWS provider's sync from S3 turns the records
//! it fetches into events with [`map_record`], the importer with the same steps, so a
//! record gives the same event (id, action, scope, outcome) and the same redacted raw
//! record whichever way it arrives.

use super::fields::{content_id, parse_time};
use crate::model::{Event, Outcome};
use serde_json::Value;

/// Maps one CloudTrail record to an event of `provider` with its raw record: the record
/// is redacted first ([`super::redact::redact_value`]), the event id falls back to the
/// content hash of the redacted record, and the raw record is the redacted record's
/// compact JSON.
pub fn map_record(provider: &str, mut record: Value) -> Result<Event, String> {
    super::redact::redact_value(&mut record);
    let mut e = cloudtrail_record_to_event(provider, &record)?;
    e.raw = Some(record.to_string());
    Ok(e)
}

/// Error codes that mean "authorisation refused" rather than "the call failed".
fn is_denial(code: &str) -> bool {
    let c = code.trim_start_matches("Client.");
    c.contains("AccessDenied")
        || c.contains("Unauthorized")
        || c.contains("Forbidden")
        || c == "NotAuthorized"
        || c == "InvalidClientTokenId"
        || c == "SignatureDoesNotMatch"
        || c == "AuthFailure"
        || c == "ExpiredToken"
}

/// Maps one CloudTrail record to an event of `provider`.
///
/// * time: `eventTime`; action: `eventSource:eventName` (`iam.amazonaws.com:CreateUser`);
///   scope: the IAM action the call needed, `service:eventName` (`iam:CreateUser`)
/// * key: `userIdentity.accessKeyId`; records without one (console sign-in, calls made
///   by AWS services) are filed under `no-key:<arn, service or identity type>`
/// * principal: `userIdentity.arn`, else `userName`, else `principalId`
/// * outcome: `errorCode` AccessDenied/UnauthorizedOperation/... → denied, any other
///   error → error, none → success
/// * id: `eventID`, else a content hash of the record; request id: `requestID`
///
/// `raw` is left empty; the importer fills it after redaction.
pub fn cloudtrail_record_to_event(provider: &str, record: &Value) -> Result<Event, String> {
    if !record.is_object() {
        return Err(format!(
            "expected a CloudTrail record (JSON object), found {}",
            kind(record)
        ));
    }
    let text = |k: &str| -> Result<Option<&str>, String> {
        match record.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!("{k}: expected a string, found {}", kind(other))),
        }
    };
    let ident = record.get("userIdentity").unwrap_or(&Value::Null);
    if !(ident.is_object() || ident.is_null()) {
        return Err(format!(
            "userIdentity: expected an object, found {}",
            kind(ident)
        ));
    }
    let id_text = |k: &str| ident.get(k).and_then(Value::as_str);
    let parts = Parts {
        event_time: text("eventTime")?,
        event_name: text("eventName")?,
        event_source: text("eventSource")?,
        access_key_id: id_text("accessKeyId"),
        arn: id_text("arn"),
        user_name: id_text("userName"),
        principal_id: id_text("principalId"),
        invoked_by: id_text("invokedBy"),
        identity_type: id_text("type"),
        source_ip: text("sourceIPAddress")?,
        user_agent: text("userAgent")?,
        error_code: text("errorCode")?,
        request_id: text("requestID")?,
        event_id: text("eventID")?,
    };
    let mut e = parts.to_event(provider)?;
    if e.id.is_empty() {
        e.id = content_id(record);
    }
    Ok(e)
}

/// The fields of a CloudTrail record that make an event.
#[derive(Debug, Default)]
struct Parts<'a> {
    event_time: Option<&'a str>,
    event_name: Option<&'a str>,
    event_source: Option<&'a str>,
    access_key_id: Option<&'a str>,
    arn: Option<&'a str>,
    user_name: Option<&'a str>,
    principal_id: Option<&'a str>,
    invoked_by: Option<&'a str>,
    identity_type: Option<&'a str>,
    source_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    error_code: Option<&'a str>,
    request_id: Option<&'a str>,
    event_id: Option<&'a str>,
}

fn nonempty(o: Option<&str>) -> Option<&str> {
    o.filter(|s| !s.is_empty())
}

/// `userIdentity` of a record, for the typed fast path.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(borrow)]
    access_key_id: Option<&'a str>,
    #[serde(borrow)]
    arn: Option<&'a str>,
    #[serde(borrow)]
    user_name: Option<&'a str>,
    #[serde(borrow)]
    principal_id: Option<&'a str>,
    #[serde(borrow)]
    invoked_by: Option<&'a str>,
    #[serde(borrow, rename = "type")]
    identity_type: Option<&'a str>,
}

/// A record read straight into borrowed fields, without building a JSON tree.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Typed<'a> {
    #[serde(borrow)]
    event_time: Option<&'a str>,
    #[serde(borrow)]
    event_name: Option<&'a str>,
    #[serde(borrow)]
    event_source: Option<&'a str>,
    #[serde(borrow)]
    user_identity: Option<Identity<'a>>,
    #[serde(borrow, rename = "sourceIPAddress")]
    source_ip: Option<&'a str>,
    #[serde(borrow)]
    user_agent: Option<&'a str>,
    #[serde(borrow)]
    error_code: Option<&'a str>,
    #[serde(borrow, rename = "requestID")]
    request_id: Option<&'a str>,
    #[serde(borrow, rename = "eventID")]
    event_id: Option<&'a str>,
}

/// The fast path for one JSON line: `None` when the line needs the general path (an
/// unusual shape, a type error, no `eventID`, escaped strings), which then reports
/// problems precisely.
pub(crate) fn fast_line_to_event(provider: &str, line: &str) -> Option<Event> {
    // Borrowed &str fields fail on escaped strings; the general path handles those.
    let t: Typed<'_> = serde_json::from_str(line).ok()?;
    t.event_id?;
    let i = t.user_identity.unwrap_or_default();
    let parts = Parts {
        event_time: t.event_time,
        event_name: t.event_name,
        event_source: t.event_source,
        access_key_id: i.access_key_id,
        arn: i.arn,
        user_name: i.user_name,
        principal_id: i.principal_id,
        invoked_by: i.invoked_by,
        identity_type: i.identity_type,
        source_ip: t.source_ip,
        user_agent: t.user_agent,
        error_code: t.error_code,
        request_id: t.request_id,
        event_id: t.event_id,
    };
    parts.to_event(provider).ok()
}

impl Parts<'_> {
    fn to_event(&self, provider: &str) -> Result<Event, String> {
        let time = match self.event_time {
            Some(s) => parse_time(s).map_err(|e| format!("eventTime: {e}"))?,
            None => return Err("missing eventTime".into()),
        };
        let name = match self.event_name {
            Some(s) if !s.is_empty() => s,
            _ => return Err("missing eventName".into()),
        };
        let (action, scope) = match self.event_source {
            Some(src) if !src.is_empty() => {
                let service = src.trim_end_matches(".amazonaws.com");
                (format!("{src}:{name}"), Some(format!("{service}:{name}")))
            }
            _ => (name.to_string(), None),
        };
        let principal = nonempty(self.arn)
            .or(nonempty(self.user_name))
            .or(nonempty(self.principal_id))
            .map(str::to_string);
        let key_id = match nonempty(self.access_key_id) {
            Some(k) => k.to_string(),
            None => {
                let who = nonempty(self.arn)
                    .or(nonempty(self.invoked_by))
                    .or(nonempty(self.principal_id))
                    .or(nonempty(self.identity_type))
                    .or(nonempty(self.source_ip))
                    .unwrap_or("unknown");
                format!("no-key:{who}")
            }
        };
        let outcome = match nonempty(self.error_code) {
            Some(c) if is_denial(c) => Outcome::Denied,
            Some(_) => Outcome::Error,
            None => Outcome::Success,
        };
        let own = |o: Option<&str>| nonempty(o).map(str::to_string);
        Ok(Event {
            provider: provider.to_string(),
            id: own(self.event_id).unwrap_or_default(),
            time,
            key_id,
            principal,
            action,
            scope,
            source_ip: own(self.source_ip),
            user_agent: own(self.user_agent),
            outcome,
            status_code: None,
            request_id: own(self.request_id),
            records: None,
            raw: None,
        })
    }
}

/// A short name of a JSON value's type, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// True when a JSON object looks like a CloudTrail record.
pub(crate) fn looks_like(v: &Value) -> bool {
    v.get("Records").is_some_and(Value::is_array)
        || (v.get("eventName").is_some() && v.get("eventSource").is_some())
        || (v.get("eventVersion").is_some() && v.get("userIdentity").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_documented_fields() {
        let r = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/alice",
                             "accountId": "111122223333", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": "alice"},
            "eventTime": "2024-03-01T10:00:00Z", "eventSource": "iam.amazonaws.com", "eventName": "CreateUser",
            "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2.15.0",
            "errorCode": "AccessDenied", "requestID": "req-1", "eventID": "ev-1"
        });
        let e = cloudtrail_record_to_event("aws", &r).unwrap();
        assert_eq!(e.action, "iam.amazonaws.com:CreateUser");
        assert_eq!(e.scope.as_deref(), Some("iam:CreateUser"));
        assert_eq!(e.key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(
            e.principal.as_deref(),
            Some("arn:aws:iam::111122223333:user/alice")
        );
        assert_eq!(e.outcome, Outcome::Denied);
        assert_eq!(
            (e.id.as_str(), e.request_id.as_deref()),
            ("ev-1", Some("req-1"))
        );
        let mut r2 = r.clone();
        r2["errorCode"] = json!("ThrottlingException");
        r2.as_object_mut().unwrap().remove("eventID");
        let e2 = cloudtrail_record_to_event("aws", &r2).unwrap();
        assert_eq!(e2.outcome, Outcome::Error);
        assert!(e2.id.starts_with("sha256:"));
    }

    #[test]
    fn says_what_is_wrong() {
        let e = cloudtrail_record_to_event("aws", &json!({"eventName": "X"})).unwrap_err();
        assert_eq!(e, "missing eventTime");
        let e = cloudtrail_record_to_event("aws", &json!({"eventTime": 5, "eventName": "X"}))
            .unwrap_err();
        assert!(e.contains("expected a string, found a number"), "{e}");
    }
}
