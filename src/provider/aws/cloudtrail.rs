//! Events from CloudTrail log files in S3.
//!
//! A trail delivers gzipped `{"Records":[...]}` files under
//! `[prefix/]AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`, named so that they sort by
//! time within a region folder. Each region folder is read in key order; the cursor is the
//! last processed key of every folder, one per line, so a sync resumes exactly after the
//! last file it committed. Organisation trails (`AWSLogs/<o-id>/<account>/...`) are found
//! too.
//!
//! Records become events through the importer's mapping
//! ([`crate::import::cloudtrail::map_record`]): the same ids, action names, outcomes and
//! redacted raw records as `keyaudit import` of the same file.

use super::{AwsProvider, Clients, EventPage};
use crate::import::cloudtrail::map_record;
use crate::model::Event;
use crate::provider::{ProviderError, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;

/// Files read per `list_events` call at most when they hold no event of a key (so an
/// empty page still means "nothing more").
const MAX_EMPTY_FILES: usize = 50;

/// Whether a record's key is one keyaudit audits: long-term access keys (`AKIA…`) and
/// the session keys of IAM users and root; role sessions (`ASIA…` of assumed roles and
/// services) and calls without a key (console sign-in) are left out, they are not keys
/// anyone manages.
fn is_audited(record: &Value) -> bool {
    let id = record
        .pointer("/userIdentity/accessKeyId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = record
        .pointer("/userIdentity/type")
        .and_then(Value::as_str)
        .unwrap_or("");
    !id.is_empty() && (id.starts_with("AKIA") || matches!(kind, "IAMUser" | "Root"))
}

/// The events of one log file (gzipped or plain JSON); records that are not about an
/// audited key are skipped.
pub fn events_in_log_file(provider: &str, bytes: &[u8]) -> std::result::Result<Vec<Event>, String> {
    let mut text = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut text)
            .map_err(|e| format!("not a readable gzip file: {e}"))?;
    } else {
        text.extend_from_slice(bytes);
    }
    let doc: Value =
        serde_json::from_slice(&text).map_err(|e| format!("not CloudTrail JSON: {e}"))?;
    let records = match doc {
        Value::Object(mut m) => match m.remove("Records") {
            Some(Value::Array(r)) => r,
            _ => return Err("no `Records` array".into()),
        },
        _ => return Err("no `Records` array".into()),
    };
    Ok(records
        .into_iter()
        .filter(is_audited)
        .filter_map(|r| match map_record(provider, r) {
            Ok(e) => Some(e),
            Err(why) => {
                tracing::debug!("CloudTrail record skipped: {why}");
                None
            }
        })
        .collect())
}

/// The cursor: the last processed key per region folder.
fn parse_cursor(cursor: Option<&str>) -> BTreeMap<String, String> {
    cursor
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|key| folder_of(key).map(|f| (f, key.to_string())))
        .collect()
}

fn format_cursor(c: &BTreeMap<String, String>) -> String {
    c.values().cloned().collect::<Vec<_>>().join("\n")
}

/// The region folder of an object key: everything up to `/CloudTrail/<region>/`.
fn folder_of(key: &str) -> Option<String> {
    let at = key.find("/CloudTrail/")? + "/CloudTrail/".len();
    let region_end = key[at..].find('/')? + at + 1;
    Some(key[..region_end].to_string())
}

impl AwsProvider {
    fn logs_root(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{p}/AWSLogs/"),
            None => "AWSLogs/".to_string(),
        }
    }

    async fn subfolders(&self, c: &Clients, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page =
                c.s3.list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .delimiter("/")
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        self.aws_error(e, "s3:ListBucket", &format!("s3://{bucket}/{prefix}"))
                    })?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The region folders of this account's trail files, in key order.
    async fn region_folders(&self, c: &Clients, bucket: &str) -> Result<Vec<String>> {
        let account = self.account().await?.to_string();
        let root = self.logs_root();
        let mut folders = self
            .subfolders(c, bucket, &format!("{root}{account}/CloudTrail/"))
            .await?;
        if folders.is_empty() {
            // An organisation trail: AWSLogs/<o-id>/<account>/CloudTrail/<region>/.
            for org in self.subfolders(c, bucket, &root).await? {
                let tail = &org[root.len()..];
                if tail.starts_with("o-") {
                    folders.extend(
                        self.subfolders(c, bucket, &format!("{org}{account}/CloudTrail/"))
                            .await?,
                    );
                }
            }
        }
        folders.sort();
        Ok(folders)
    }

    /// The first log files after `after` in `folder`, in key order.
    async fn next_files(
        &self,
        c: &Clients,
        bucket: &str,
        folder: &str,
        after: Option<&str>,
    ) -> Result<Vec<String>> {
        let page = c
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(folder)
            .set_start_after(after.map(str::to_string))
            .max_keys(100)
            .send()
            .await
            .map_err(|e| self.aws_error(e, "s3:ListBucket", &format!("s3://{bucket}/{folder}")))?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| k.ends_with(".json.gz") || k.ends_with(".json"))
            .map(str::to_string)
            .collect())
    }

    async fn read_file(&self, c: &Clients, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let out =
            c.s3.get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| self.aws_error(e, "s3:GetObject", &format!("s3://{bucket}/{key}")))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| ProviderError::Unavailable {
                provider: self.settings.label(),
                message: format!("reading s3://{bucket}/{key}: {e}"),
                attempts: 1,
            })?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// The events of the next log file(s) after `cursor`: one file with events per page
    /// (files without events of a key are passed over, up to [`MAX_EMPTY_FILES`]).
    pub(super) async fn cloudtrail_page(&self, cursor: Option<&str>) -> Result<EventPage> {
        let Some(bucket) = self.bucket.clone() else {
            return Ok(EventPage {
                events: Vec::new(),
                next_cursor: cursor.unwrap_or("").to_string(),
                has_more: false,
            });
        };
        let c = self.clients().await?;
        let mut positions = parse_cursor(cursor);
        let folders = self.region_folders(c, &bucket).await?;
        let mut passed = 0;
        for (i, folder) in folders.iter().enumerate() {
            let mut files = self
                .next_files(
                    c,
                    &bucket,
                    folder,
                    positions.get(folder).map(String::as_str),
                )
                .await?;
            while !files.is_empty() {
                let file = files.remove(0);
                let bytes = self.read_file(c, &bucket, &file).await?;
                let events = match events_in_log_file(&self.settings.name, &bytes) {
                    Ok(ev) => ev,
                    Err(why) => {
                        tracing::warn!(provider = %self.settings.name, "s3://{bucket}/{file} skipped: {why}");
                        Vec::new()
                    }
                };
                positions.insert(folder.clone(), file.clone());
                if !events.is_empty() || passed >= MAX_EMPTY_FILES {
                    let more_here = !files.is_empty()
                        || !self
                            .next_files(c, &bucket, folder, Some(&file))
                            .await?
                            .is_empty();
                    return Ok(EventPage {
                        events,
                        next_cursor: format_cursor(&positions),
                        // Later folders are looked at by the next call.
                        has_more: more_here || i + 1 < folders.len(),
                    });
                }
                passed += 1;
                if files.is_empty() {
                    files = self.next_files(c, &bucket, folder, Some(&file)).await?;
                }
            }
        }
        Ok(EventPage {
            events: Vec::new(),
            next_cursor: format_cursor(&positions),
            has_more: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Value {
        json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice",
                             "accessKeyId": "AKIAEXAMPLE000000001", "userName": "alice"},
            "eventTime": "2026-11-28T10:00:00Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": "GetObject",
            "sourceIPAddress": "203.0.113.9",
            "userAgent": "aws-cli/2.15",
            "requestID": "R1",
            "eventID": "e-1"
        })
    }

    #[test]
    fn a_record_maps_like_the_importer_maps_it_with_a_redacted_raw_record() {
        let mut r = record();
        r["requestParameters"] = json!({"note": "leaked ghp_abcdefghijklmnopqrstuvwxyz0123456789"});
        let doc = json!({ "Records": [r.clone()] }).to_string();
        let events = events_in_log_file("aws", doc.as_bytes()).unwrap();
        let e = &events[0];
        let mut redacted = r.clone();
        crate::import::redact::redact_value(&mut redacted);
        let mut want = crate::import::cloudtrail_record_to_event("aws", &redacted).unwrap();
        want.raw = Some(redacted.to_string());
        assert_eq!(e, &want);
        assert_eq!(e.action, "s3.amazonaws.com:GetObject");
        assert_eq!(e.scope.as_deref(), Some("s3:GetObject"));
        assert!(!e.raw.as_deref().unwrap().contains("ghp_abcdef"));
        let mut denied = record();
        denied["errorCode"] = json!("Client.UnauthorizedOperation");
        let doc = json!({ "Records": [denied] }).to_string();
        assert_eq!(
            events_in_log_file("aws", doc.as_bytes()).unwrap()[0].outcome,
            crate::model::Outcome::Denied
        );
    }

    #[test]
    fn gzipped_files_give_the_events_of_audited_keys_only() {
        use std::io::Write;
        let mut role = record();
        role["userIdentity"] = json!({"type": "AssumedRole", "accessKeyId": "ASIAEXAMPLE"});
        role["eventID"] = json!("e-2");
        let doc = json!({"Records": [record(), role]}).to_string();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(doc.as_bytes()).unwrap();
        let events = events_in_log_file("aws", &gz.finish().unwrap()).unwrap();
        assert_eq!(events.len(), 1);
        assert!(events_in_log_file("aws", b"{}").is_err());
    }

    #[test]
    fn the_cursor_keeps_one_position_per_region_folder() {
        let a = "AWSLogs/1/CloudTrail/eu-west-1/2026/11/28/1_CloudTrail_eu-west-1_20261128T1000Z_a.json.gz";
        let b = "logs/AWSLogs/1/CloudTrail/us-east-1/2026/11/28/1_CloudTrail_us-east-1_20261128T1000Z_b.json.gz";
        let c = parse_cursor(Some(&format!("{a}\n{b}")));
        assert_eq!(c.len(), 2);
        assert_eq!(c["AWSLogs/1/CloudTrail/eu-west-1/"], a);
        assert_eq!(c["logs/AWSLogs/1/CloudTrail/us-east-1/"], b);
        assert_eq!(parse_cursor(Some(&format_cursor(&c))), c);
        assert!(parse_cursor(None).is_empty());
    }
}
