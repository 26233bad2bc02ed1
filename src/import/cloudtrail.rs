//! AWS CloudTrail: log files as delivered to S3 (`{"Records":[...]}`, usually gzipped)
//! and JSON-lines exports of single events (CloudTrail Lake, `lookup-events` output).
//!
//! The mapping is public so that an AWS provider can turn the events it fetches into
//! keyaudit events exactly as the importer does.

use super::fields::{content_id, parse_time, Fields};
use crate::model::{Event, Outcome};
use serde_json::Value;

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
/// * time: `eventTime`; action: `eventSource:eventName` (`iam.amazonaws.com:CreateUser`)
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
    let time = match record.get("eventTime") {
        Some(Value::String(s)) => parse_time(s).map_err(|e| format!("eventTime: {e}"))?,
        Some(other) => {
            return Err(format!(
                "eventTime: expected a string, found {}",
                kind(other)
            ))
        }
        None => return Err("missing eventTime".into()),
    };
    let name = match record.get("eventName") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        Some(Value::String(_)) | None => return Err("missing eventName".into()),
        Some(other) => {
            return Err(format!(
                "eventName: expected a string, found {}",
                kind(other)
            ))
        }
    };
    let action = match record.get("eventSource").and_then(Value::as_str) {
        Some(src) if !src.is_empty() => format!("{src}:{name}"),
        _ => name.to_string(),
    };
    let ident = record.get("userIdentity").unwrap_or(&Value::Null);
    if !(ident.is_object() || ident.is_null()) {
        return Err(format!(
            "userIdentity: expected an object, found {}",
            kind(ident)
        ));
    }
    let principal = ident
        .first_text(&["arn", "userName", "principalId"])
        .map(|s| s.into_owned());
    let key_id = match ident.text("accessKeyId").filter(|s| !s.is_empty()) {
        Some(k) => k.into_owned(),
        None => {
            let who = ident
                .first_text(&["arn", "invokedBy", "principalId", "type"])
                .map(|s| s.into_owned())
                .or_else(|| record.text("sourceIPAddress").map(|s| s.into_owned()))
                .unwrap_or_else(|| "unknown".into());
            format!("no-key:{who}")
        }
    };
    let outcome = match record.get("errorCode").and_then(Value::as_str) {
        Some(c) if !c.is_empty() => {
            if is_denial(c) {
                Outcome::Denied
            } else {
                Outcome::Error
            }
        }
        _ => Outcome::Success,
    };
    let id = match record.get("eventID") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => content_id(record),
    };
    let opt = |k: &str| {
        record
            .text(k)
            .map(|s| s.into_owned())
            .filter(|s| !s.is_empty())
    };
    Ok(Event {
        provider: provider.to_string(),
        id,
        time,
        key_id,
        principal,
        action,
        scope: None,
        source_ip: opt("sourceIPAddress"),
        user_agent: opt("userAgent"),
        outcome,
        status_code: None,
        request_id: opt("requestID"),
        records: None,
        raw: None,
    })
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
