//! Delivering a new secret to AWS Secrets Manager the way a rotation does: the value goes
//! in as `AWSPENDING`, then `AWSCURRENT` moves to it (the previous version becomes
//! `AWSPREVIOUS`), so readers switch in one step and the old value stays retrievable.

use super::{load_sdk_config, AwsSettings};
use crate::provider::{ProviderError, Result};
use crate::secret::Secret;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

const PENDING: &str = "AWSPENDING";
const CURRENT: &str = "AWSCURRENT";

fn fail<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    label: &str,
    action: &str,
    secret_id: &str,
    e: SdkError<E, R>,
) -> ProviderError {
    let code = e.code().unwrap_or("").to_string();
    let detail = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string());
    let provider = label.to_string();
    super::named(match code.as_str() {
        "ResourceNotFoundException" => ProviderError::Config {
            provider,
            message: format!(
                "secret `{secret_id}` does not exist; create it first (keyaudit only puts new versions)"
            ),
        },
        "AccessDeniedException" | "AccessDenied" => ProviderError::Config {
            provider,
            message: format!(
                "{code} on {action} for secret `{secret_id}`; grant {action} (see docs/providers/aws.md)"
            ),
        },
        "ThrottlingException" | "InternalServiceError" | "" => ProviderError::Unavailable {
            provider,
            message: format!("{action} for secret `{secret_id}`: {detail}"),
            attempts: super::MAX_ATTEMPTS,
        },
        _ => ProviderError::Conflict {
            provider,
            message: format!("{code} on {action} for secret `{secret_id}`: {detail}"),
        },
    })
}

/// Puts `value` as a new version of `secret_id` labelled `AWSPENDING`, then moves
/// `AWSCURRENT` to it and clears `AWSPENDING`. The value is never logged.
pub async fn put_secret_value_rotating(
    cfg: &AwsSettings,
    secret_id: &str,
    value: &Secret,
) -> Result<()> {
    let label = if cfg.name.is_empty() {
        "aws-secretsmanager".to_string()
    } else {
        cfg.name.clone()
    };
    let sdk = load_sdk_config(cfg).await?;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let described = sm
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| fail(&label, "secretsmanager:DescribeSecret", secret_id, e))?;
    let current = described.version_ids_to_stages().and_then(|m| {
        m.iter()
            .find(|(_, stages)| stages.iter().any(|s| s == CURRENT))
            .map(|(v, _)| v.clone())
    });
    let put = sm
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(value.expose())
        .version_stages(PENDING)
        .send()
        .await
        .map_err(|e| fail(&label, "secretsmanager:PutSecretValue", secret_id, e))?;
    let new_version = put.version_id().ok_or_else(|| ProviderError::Protocol {
        provider: label.clone(),
        message: format!("PutSecretValue for `{secret_id}` answered without a version id"),
    })?;
    sm.update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage(CURRENT)
        .move_to_version_id(new_version)
        .set_remove_from_version_id(current)
        .send()
        .await
        .map_err(|e| {
            fail(
                &label,
                "secretsmanager:UpdateSecretVersionStage",
                secret_id,
                e,
            )
        })?;
    sm.update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage(PENDING)
        .remove_from_version_id(new_version)
        .send()
        .await
        .map_err(|e| {
            fail(
                &label,
                "secretsmanager:UpdateSecretVersionStage",
                secret_id,
                e,
            )
        })?;
    tracing::info!(
        secret = secret_id,
        version = new_version,
        "secret delivered to Secrets Manager"
    );
    Ok(())
}
