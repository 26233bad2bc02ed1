//! Delivering a new secret to AWS Secrets Manager the way a rotation does: the value goes
//! in as `AWSPENDING`, then `AWSCURRENT` moves to it (the previous version becomes
//! `AWSPREVIOUS`), so readers switch in one step and the old value stays retrievable.
//!
//! Calls: `DescribeSecret` (the secret exists and is not scheduled for deletion; which
//! version is `AWSCURRENT`), `PutSecretValue`, `UpdateSecretVersionStage`, and, to read a
//! delivery back after a crash or to undo it on a rollback, `GetSecretValue`. Values are
//! never logged and never part of an error message.

use super::{load_sdk_config, AwsSettings};
use crate::provider::{ProviderError, Result};
use crate::secret::{fingerprint, Secret};
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client;

const PENDING: &str = "AWSPENDING";
const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

/// Turns an SDK error into a message that names the call, the secret and what to do. It is
/// built from the error's code and message only, never from a response body as a whole:
/// the answer to `GetSecretValue` holds the secret.
fn fail<E: ProvideErrorMetadata + std::error::Error + 'static>(
    label: &str,
    action: &str,
    secret_id: &str,
    e: SdkError<E, HttpResponse>,
) -> ProviderError {
    let provider = label.to_string();
    let on = format!("{action} for secret `{secret_id}`");
    match &e {
        SdkError::ServiceError(_) => {}
        // No answer was received: the text is about the connection only.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return ProviderError::Unavailable {
                provider,
                message: format!("{on}: {}", DisplayErrorContext(&e)),
                attempts: super::MAX_ATTEMPTS,
            }
        }
        SdkError::ConstructionFailure(_) => {
            let text = DisplayErrorContext(&e).to_string();
            let message = if text.to_ascii_lowercase().contains("credentials") {
                format!("{on}: no usable AWS credentials: {text}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or sign in with `aws sso login` (see docs/providers/aws.md)")
            } else {
                format!("{on}: {text}")
            };
            return super::named(ProviderError::Config { provider, message });
        }
        _ => {
            let status = e
                .raw_response()
                .map(|r| format!(" (HTTP {})", r.status().as_u16()))
                .unwrap_or_default();
            return ProviderError::Protocol {
                provider,
                message: format!("{on}: the answer could not be read{status}"),
            };
        }
    }
    let mut code = e.code().unwrap_or("").to_string();
    let mut detail = e.message().unwrap_or("").to_string();
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    if code.is_empty() {
        // An error body in another protocol's format (some compatible endpoints answer
        // a denial in XML): read its code and message, else go by the status.
        if let Some(body) = e.raw_response().and_then(|r| r.body().bytes()) {
            let body = String::from_utf8_lossy(body);
            code = super::xml_field(&body, "Code").unwrap_or_default();
            if detail.is_empty() {
                detail = super::xml_field(&body, "Message").unwrap_or_default();
            }
        }
        if code.is_empty() && status == 403 {
            code = "AccessDenied".into();
        }
    }
    if detail.is_empty() {
        detail = format!("HTTP {status}");
    }
    super::named(match code.as_str() {
        "ResourceNotFoundException" => ProviderError::Config {
            provider,
            message: format!(
                "secret `{secret_id}` does not exist; create it first (keyaudit only puts new versions), or check the name and the region"
            ),
        },
        "AccessDeniedException" | "AccessDenied" => ProviderError::Config {
            provider,
            message: format!("{code} on {on}; grant {action} (see docs/providers/aws.md)"),
        },
        "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException"
        | "InvalidClientTokenId" | "SignatureDoesNotMatch" => ProviderError::Config {
            provider,
            message: format!(
                "{code} on {on}: the AWS credentials are not valid; check AWS_ACCESS_KEY_ID/AWS_PROFILE"
            ),
        },
        "ThrottlingException" | "InternalServiceError" => ProviderError::Unavailable {
            provider,
            message: format!("{code} on {on}: {detail}"),
            attempts: super::MAX_ATTEMPTS,
        },
        "" if status >= 500 || status == 429 => ProviderError::Unavailable {
            provider,
            message: format!("{on}: {detail}"),
            attempts: super::MAX_ATTEMPTS,
        },
        "" => ProviderError::Protocol {
            provider,
            message: format!("{on}: {detail}"),
        },
        _ => ProviderError::Conflict {
            provider,
            message: format!("{code} on {on}: {detail}"),
        },
    })
}

/// A Secrets Manager client for one secret.
struct Target<'a> {
    sm: Client,
    label: String,
    id: &'a str,
}

impl<'a> Target<'a> {
    async fn connect(cfg: &AwsSettings, id: &'a str) -> Result<Target<'a>> {
        let label = if cfg.name.is_empty() {
            "aws-secretsmanager".to_string()
        } else {
            cfg.name.clone()
        };
        let sdk = load_sdk_config(cfg).await?;
        Ok(Target {
            sm: Client::new(&sdk),
            label,
            id,
        })
    }

    /// The version ids of the secret by staging label; refuses a secret scheduled for
    /// deletion (Secrets Manager would refuse the new value).
    async fn versions(&self) -> Result<Vec<(String, Vec<String>)>> {
        let d = self
            .sm
            .describe_secret()
            .secret_id(self.id)
            .send()
            .await
            .map_err(|e| fail(&self.label, "secretsmanager:DescribeSecret", self.id, e))?;
        if d.deleted_date().is_some() {
            return Err(super::named(ProviderError::Config {
                provider: self.label.clone(),
                message: format!(
                    "secret `{}` is scheduled for deletion; restore it (`aws secretsmanager restore-secret`) or deliver to another secret",
                    self.id
                ),
            }));
        }
        Ok(d.version_ids_to_stages()
            .map(|m| m.iter().map(|(v, s)| (v.clone(), s.clone())).collect())
            .unwrap_or_default())
    }

    /// The value labelled `stage`, `None` when no version has that label.
    async fn value_at(&self, stage: &str) -> Result<Option<Secret>> {
        let out = self
            .sm
            .get_secret_value()
            .secret_id(self.id)
            .version_stage(stage)
            .send()
            .await;
        match out {
            // Moved out of the answer, never copied: zeroized when dropped.
            Ok(mut o) => Ok(o.secret_string.take().map(Secret::new)),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(fail(
                &self.label,
                "secretsmanager:GetSecretValue",
                self.id,
                e,
            )),
        }
    }

    async fn move_stage(&self, stage: &str, to: Option<&str>, from: Option<&str>) -> Result<()> {
        self.sm
            .update_secret_version_stage()
            .secret_id(self.id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_string))
            .set_remove_from_version_id(from.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                fail(
                    &self.label,
                    "secretsmanager:UpdateSecretVersionStage",
                    self.id,
                    e,
                )
            })?;
        Ok(())
    }
}

fn stage_of<'v>(versions: &'v [(String, Vec<String>)], stage: &str) -> Option<&'v str> {
    versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == stage))
        .map(|(v, _)| v.as_str())
}

/// Checks, before a key is created, that `secret_id` exists and can take a new value.
pub async fn check_secret(cfg: &AwsSettings, secret_id: &str) -> Result<()> {
    Target::connect(cfg, secret_id).await?.versions().await?;
    Ok(())
}

/// Puts `value` as a new version of `secret_id` labelled `AWSPENDING`, then moves
/// `AWSCURRENT` to it and clears `AWSPENDING`. The value is never logged.
pub async fn put_secret_value_rotating(
    cfg: &AwsSettings,
    secret_id: &str,
    value: &Secret,
) -> Result<()> {
    let t = Target::connect(cfg, secret_id).await?;
    let versions = t.versions().await?;
    let current = stage_of(&versions, CURRENT).map(str::to_string);
    // The SDK fills in a ClientRequestToken, so its own retries of this call are
    // idempotent (one version, however often the request is sent).
    let put =
        t.sm.put_secret_value()
            .secret_id(secret_id)
            .secret_string(value.expose())
            .version_stages(PENDING)
            .send()
            .await
            .map_err(|e| fail(&t.label, "secretsmanager:PutSecretValue", secret_id, e))?;
    let new_version = put.version_id().ok_or_else(|| ProviderError::Protocol {
        provider: t.label.clone(),
        message: format!("PutSecretValue for `{secret_id}` answered without a version id"),
    })?;
    // The first value of a secret gets AWSCURRENT on its own.
    let is_current = put.version_stages().iter().any(|s| s == CURRENT);
    if !is_current {
        t.move_stage(CURRENT, Some(new_version), current.as_deref())
            .await?;
    }
    t.move_stage(PENDING, None, Some(new_version)).await?;
    tracing::info!(
        secret = secret_id,
        version = new_version,
        "secret delivered to Secrets Manager"
    );
    Ok(())
}

/// The value `AWSCURRENT` holds if its fingerprint is `fp` (a delivery read back).
pub async fn current_if(cfg: &AwsSettings, secret_id: &str, fp: &str) -> Result<Option<Secret>> {
    let t = Target::connect(cfg, secret_id).await?;
    Ok(t.value_at(CURRENT)
        .await?
        .filter(|v| !v.expose().is_empty() && fingerprint(v.expose()) == fp))
}

/// Undoes a delivery of the value with fingerprint `fp`: when `AWSCURRENT` holds it,
/// `AWSCURRENT` moves back to the `AWSPREVIOUS` version; when `AWSPENDING` holds it (a
/// delivery cut off half-way), that label is removed. Anything else is left alone, so the
/// call is idempotent. Returns what was done, for the journal.
pub async fn undo_delivery(cfg: &AwsSettings, secret_id: &str, fp: &str) -> Result<String> {
    let t = Target::connect(cfg, secret_id).await?;
    let ours = |v: &Option<Secret>| {
        v.as_ref()
            .is_some_and(|v| !v.expose().is_empty() && fingerprint(v.expose()) == fp)
    };
    let mut notes = Vec::new();
    let versions = t.versions().await?;
    if ours(&t.value_at(PENDING).await?) {
        if let Some(v) = stage_of(&versions, PENDING) {
            t.move_stage(PENDING, None, Some(v)).await?;
            notes.push(format!("{PENDING} removed from version {v}"));
        }
    }
    if ours(&t.value_at(CURRENT).await?) {
        let current = stage_of(&versions, CURRENT);
        match (current, stage_of(&versions, PREVIOUS)) {
            (Some(cur), Some(prev)) => {
                t.move_stage(CURRENT, Some(prev), Some(cur)).await?;
                notes.push(format!("{CURRENT} moved back to version {prev}"));
            }
            _ => notes.push(format!(
                "{CURRENT} still holds the revoked secret: there is no earlier version to restore"
            )),
        }
    }
    Ok(if notes.is_empty() {
        format!("secret `{secret_id}` untouched")
    } else {
        format!("secret `{secret_id}`: {}", notes.join(", "))
    })
}

/// The region of a secret ARN (`arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`),
/// `None` for a plain name. A secret is reached in its own region.
pub fn arn_region(secret_id: &str) -> Option<&str> {
    let mut parts = secret_id.splitn(7, ':');
    let (arn, _partition, service, region) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (arn == "arn" && service == "secretsmanager" && !region.is_empty()).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_of_an_arn_is_its_fourth_field() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:partners/x-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("partners/x"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    }
}
