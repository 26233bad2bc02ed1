//! The `aws` provider: IAM access keys and API Gateway API keys as keys, CloudTrail log
//! files in S3 as events, built on the official AWS SDK (cargo feature `aws`).
//!
//! Key ids: IAM access keys keep their own id (`AKIA…`), so the CloudTrail records that
//! name them tie to them; API Gateway keys are `apigw:<id>`; root account keys, which the
//! credential report reveals without their id, are `root:<account>:<n>`.
//!
//! Credentials come from the standard AWS chain (environment, shared config and
//! credentials files, SSO, role assumption, credential_process, instance metadata).
//! Throttling and transient failures are retried by the SDK (standard mode, 5 attempts).
//! See docs/providers/aws.md for the permissions each operation needs.

mod apigw;
pub mod cloudtrail;
mod iam;
pub mod secrets;

pub use secrets::put_secret_value_rotating;

use super::{Capabilities, EventPage, Issued, KeyPage, Provider, ProviderError, Result};
use crate::config::ProviderConfig;
use crate::model::{Finding, Key};
use crate::secret::Secret;
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Attempts per AWS request (standard retry mode: throttling and 5xx back off).
pub const MAX_ATTEMPTS: u32 = 5;

/// Where and as whom to reach AWS: the parts of a provider entry the SDK needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// The provider's label, for messages.
    pub name: String,
    /// `None`: the chain's region (`AWS_REGION`, the profile's `region`).
    pub region: Option<String>,
    /// A compatible endpoint (tests, LocalStack, moto); `None`: AWS itself.
    pub endpoint: Option<String>,
    /// A named profile of the shared config files; `None`: the chain's default.
    pub profile: Option<String>,
    /// Seconds before one request attempt is abandoned.
    pub timeout_secs: Option<u64>,
    /// A PEM bundle of CA certificates to trust besides the public roots (the provider's
    /// `ca_file`); `None`: `AWS_CA_BUNDLE`, else `SSL_CERT_FILE`, else none.
    pub ca_file: Option<PathBuf>,
}

impl AwsSettings {
    /// The settings of a `[[provider]]` entry of kind `aws`.
    pub fn from_config(cfg: &ProviderConfig) -> AwsSettings {
        AwsSettings {
            name: cfg.name.clone(),
            region: cfg.region.clone(),
            endpoint: cfg.endpoint.clone(),
            profile: cfg.profile.clone(),
            timeout_secs: cfg.timeout_secs,
            ca_file: cfg.ca_file.clone(),
        }
    }

    fn label(&self) -> String {
        if self.name.is_empty() {
            "aws".into()
        } else {
            self.name.clone()
        }
    }
}

/// Environment variables naming a CA bundle when the provider has no `ca_file`, in
/// order: the AWS CLI's own, then the general one.
pub const CA_BUNDLE_VARS: &[&str] = &["AWS_CA_BUNDLE", "SSL_CERT_FILE"];

/// The CA bundle the AWS client trusts besides the public roots: the settings'
/// `ca_file`, else the first of [`CA_BUNDLE_VARS`] that is set. Every certificate in it
/// is checked here (the SDK's TLS layer would panic on one it cannot parse); an error
/// names the file, where it was named, and what is wrong.
pub fn ca_bundle(s: &AwsSettings) -> Result<Option<Vec<u8>>> {
    let named = match &s.ca_file {
        Some(f) => Some((f.clone(), "`ca_file`".to_string())),
        None => CA_BUNDLE_VARS.iter().find_map(|v| {
            std::env::var_os(v)
                .filter(|f| !f.is_empty())
                .map(|f| (PathBuf::from(f), format!("${v}")))
        }),
    };
    let Some((file, from)) = named else {
        return Ok(None);
    };
    let fail = |why: String| ProviderError::Config {
        provider: s.label(),
        message: format!(
            "provider `{}`: {from} = \"{}\": {why}",
            s.label(),
            file.display()
        ),
    };
    let pem = std::fs::read(&file).map_err(|e| fail(format!("cannot read it: {e}")))?;
    check_pem_bundle(&pem).map_err(fail)?;
    Ok(Some(pem))
}

/// Checks that `pem` holds at least one certificate and that each is one a TLS client
/// can trust.
fn check_pem_bundle(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for (i, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let der = der.map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        roots
            .add(der)
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(())
}

/// Loads the SDK configuration: the credential chain, region, endpoint, retries,
/// timeouts, and the CA bundle ([`ca_bundle`]).
pub async fn load_sdk_config(s: &AwsSettings) -> Result<SdkConfig> {
    // hyper 1 + rustls with ring: the stack reqwest already brings (the SDK's default
    // HTTPS client would add aws-lc, a second crypto library and a C build).
    use aws_smithy_http_client::tls;
    let mut builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::Ring,
    ));
    if let Some(pem) = ca_bundle(s)? {
        // The public roots stay trusted; the bundle adds the internal CA.
        let store = tls::TrustStore::default().with_pem_certificate(pem);
        let ctx = tls::TlsContext::builder()
            .with_trust_store(store)
            .build()
            .map_err(|e| ProviderError::Config {
                provider: s.label(),
                message: format!("{}: the CA bundle cannot be used: {e}", s.label()),
            })?;
        builder = builder.tls_context(ctx);
    }
    let client = builder.build_https();
    let attempt = Duration::from_secs(s.timeout_secs.unwrap_or(30));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(client)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(attempt)
                .build(),
        );
    if let Some(r) = &s.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(p) = &s.profile {
        loader = loader.profile_name(p);
    }
    if let Some(e) = &s.endpoint {
        loader = loader.endpoint_url(e);
    }
    let cfg = loader.load().await;
    if cfg.region().is_none() {
        return Err(ProviderError::Config {
            provider: s.label(),
            message: format!("{}: no AWS region: set `region` in the provider entry, AWS_REGION, or the profile's region", s.label()),
        });
    }
    Ok(cfg)
}

/// The SDK clients of one provider, built on first use.
struct Clients {
    iam: aws_sdk_iam::Client,
    apigw: aws_sdk_apigateway::Client,
    s3: aws_sdk_s3::Client,
    sts: aws_sdk_sts::Client,
    sdk: SdkConfig,
}

/// One configured AWS account.
pub struct AwsProvider {
    settings: AwsSettings,
    bucket: Option<String>,
    prefix: Option<String>,
    clients: OnceCell<Clients>,
    account: OnceCell<String>,
    /// Root account keys seen by the last listing (for [`Provider::findings`]).
    root_seen: std::sync::Mutex<Option<Vec<Key>>>,
}

/// Which API a key id belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyRef<'a> {
    Iam(&'a str),
    ApiGateway(&'a str),
    Root,
}

const APIGW_PREFIX: &str = "apigw:";
const ROOT_PREFIX: &str = "root:";

fn key_ref(id: &str) -> KeyRef<'_> {
    if let Some(rest) = id.strip_prefix(APIGW_PREFIX) {
        KeyRef::ApiGateway(rest)
    } else if id.starts_with(ROOT_PREFIX) {
        KeyRef::Root
    } else {
        KeyRef::Iam(id)
    }
}

/// Page tokens of the key listing: IAM users first (one ListUsers page per key page),
/// then API Gateway keys, then the credential report's root keys.
const PAGE_APIGW: &str = "apigw";
const PAGE_ROOT: &str = "root";
const PAGE_IAM: &str = "iam:";

impl AwsProvider {
    pub fn from_config(cfg: &ProviderConfig) -> Result<AwsProvider> {
        if let Some(e) = &cfg.endpoint {
            if reqwest::Url::parse(e).is_err() {
                return Err(ProviderError::Config {
                    provider: cfg.name.clone(),
                    message: format!(
                        "{}: provider `{}`: `endpoint` = \"{e}\" is not a valid URL; expected e.g. \"http://127.0.0.1:5000\"",
                        cfg.origin(),
                        cfg.name
                    ),
                });
            }
        }
        let settings = AwsSettings::from_config(cfg);
        // A bad CA bundle is a configuration error now, not at the first request.
        ca_bundle(&settings).map_err(|e| match e {
            ProviderError::Config { provider, message } => ProviderError::Config {
                provider,
                message: format!("{}: {message}", cfg.origin()),
            },
            other => other,
        })?;
        Ok(AwsProvider {
            settings,
            bucket: cfg.cloudtrail_bucket.clone().filter(|b| !b.is_empty()),
            prefix: cfg
                .cloudtrail_prefix
                .as_deref()
                .map(|p| p.trim_matches('/').to_string())
                .filter(|p| !p.is_empty()),
            clients: OnceCell::new(),
            account: OnceCell::new(),
            root_seen: std::sync::Mutex::new(None),
        })
    }

    async fn clients(&self) -> Result<&Clients> {
        self.clients
            .get_or_try_init(|| async {
                let sdk = load_sdk_config(&self.settings).await?;
                let s3_conf = aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(self.settings.endpoint.is_some())
                    .build();
                Ok(Clients {
                    iam: aws_sdk_iam::Client::new(&sdk),
                    apigw: aws_sdk_apigateway::Client::new(&sdk),
                    s3: aws_sdk_s3::Client::from_conf(s3_conf),
                    sts: aws_sdk_sts::Client::new(&sdk),
                    sdk,
                })
            })
            .await
    }

    /// The account the credentials belong to (STS GetCallerIdentity, needs no permission).
    async fn account(&self) -> Result<&str> {
        let c = self.clients().await?;
        self.account
            .get_or_try_init(|| async {
                let out = c
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| self.aws_error(e, "sts:GetCallerIdentity", ""))?;
                out.account()
                    .map(str::to_string)
                    .ok_or_else(|| self.protocol("GetCallerIdentity answered without an account"))
            })
            .await
            .map(String::as_str)
    }

    fn region(&self) -> String {
        self.clients
            .get()
            .and_then(|c| c.sdk.region().map(|r| r.to_string()))
            .or_else(|| self.settings.region.clone())
            .unwrap_or_default()
    }

    fn protocol(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Protocol {
            provider: self.settings.label(),
            message: message.into(),
        }
    }

    fn conflict(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Conflict {
            provider: self.settings.label(),
            message: message.into(),
        }
    }

    /// Turns an SDK error into a message that names the operation, its subject and, for a
    /// denial, the permission to grant. `action` is the IAM action (`iam:ListAccessKeys`),
    /// `subject` what it was about (`user alice`, `key AKIA…`).
    fn aws_error<E>(
        &self,
        err: aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
        action: &str,
        subject: &str,
    ) -> ProviderError
    where
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        named(self.classify(err, action, subject))
    }

    fn classify<E>(
        &self,
        err: aws_sdk_iam::error::SdkError<E, aws_sdk_iam::config::http::HttpResponse>,
        action: &str,
        subject: &str,
    ) -> ProviderError
    where
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
        let provider = self.settings.label();
        let on = if subject.is_empty() {
            action.to_string()
        } else {
            format!("{action} for {subject}")
        };
        let mut code = err.code().unwrap_or("").to_string();
        let mut detail = err.message().unwrap_or("").to_string();
        if code.is_empty() {
            // An error body the SDK could not parse (some compatible endpoints answer in
            // another protocol's format): read the code from it, else from the status.
            if let Some(raw) = err.raw_response() {
                let body = raw
                    .body()
                    .bytes()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                code = xml_field(&body, "Code").unwrap_or_default();
                if detail.is_empty() {
                    detail = xml_field(&body, "Message").unwrap_or_default();
                }
                if code.is_empty() && raw.status().as_u16() == 403 {
                    code = "AccessDenied".into();
                }
            }
        }
        match &err {
            SdkError::ServiceError(_) => {}
            SdkError::TimeoutError(_) => {
                return ProviderError::Unavailable {
                    provider,
                    message: format!("{on}: the request timed out"),
                    attempts: MAX_ATTEMPTS,
                }
            }
            SdkError::DispatchFailure(d) => {
                let text = aws_sdk_iam::error::DisplayErrorContext(&err).to_string();
                if text.contains("certificate") || text.contains("CertificateRequired") {
                    return ProviderError::Unavailable {
                        provider,
                        message: format!(
                            "{on}: TLS: the server's certificate is not trusted ({text}); for \
                             an internal CA set the provider's `ca_file` (or AWS_CA_BUNDLE) to \
                             its PEM bundle"
                        ),
                        attempts: MAX_ATTEMPTS,
                    };
                }
                let why = if d.is_io() {
                    "cannot connect (check `endpoint` and the network)"
                } else if d.is_timeout() {
                    "the request timed out"
                } else {
                    "the request could not be sent"
                };
                return ProviderError::Unavailable {
                    provider,
                    message: format!("{on}: {why}: {text}"),
                    attempts: MAX_ATTEMPTS,
                };
            }
            SdkError::ConstructionFailure(_) => {
                let text = aws_sdk_iam::error::DisplayErrorContext(&err).to_string();
                let message = if text.to_ascii_lowercase().contains("credentials") {
                    format!("{on}: no usable AWS credentials: {text}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, `profile`, or sign in with `aws sso login` (see docs/providers/aws.md)")
                } else {
                    format!("{on}: {text}")
                };
                return ProviderError::Config { provider, message };
            }
            _ => {
                return ProviderError::Protocol {
                    provider,
                    message: format!("{on}: {}", aws_sdk_iam::error::DisplayErrorContext(&err)),
                }
            }
        }
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        match code.as_str() {
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
            | "UnauthorizedException" | "Forbidden" => ProviderError::Config {
                provider,
                message: format!(
                    "{code} on {on}; grant {action} (see docs/providers/aws.md){detail}"
                ),
            },
            "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken"
            | "UnrecognizedClientException" | "InvalidAccessKeyId" => ProviderError::Config {
                provider,
                message: format!(
                    "{code} on {on}: the AWS credentials are not valid; check AWS_ACCESS_KEY_ID/AWS_PROFILE or `profile`{detail}"
                ),
            },
            "NoSuchEntity" | "NotFoundException" | "NoSuchKey" => ProviderError::NotFound {
                provider,
                key: subject
                    .rsplit(' ')
                    .next()
                    .unwrap_or(subject)
                    .to_string(),
            },
            "NoSuchBucket" => ProviderError::Config {
                provider,
                message: format!("{on}: the bucket does not exist; check `cloudtrail_bucket`{detail}"),
            },
            "Throttling" | "ThrottlingException" | "TooManyRequestsException"
            | "RequestLimitExceeded" | "SlowDown" | "ServiceUnavailable"
            | "InternalFailure" | "InternalError" => ProviderError::Unavailable {
                provider,
                message: format!("{code} on {on}{detail}"),
                attempts: MAX_ATTEMPTS,
            },
            "LimitExceeded" | "LimitExceededException" | "ConflictException"
            | "EntityAlreadyExists" | "BadRequestException" => ProviderError::Conflict {
                provider,
                message: format!("{code} on {on}{detail}"),
            },
            "" => ProviderError::Protocol {
                provider,
                message: format!("{on}: {}", aws_sdk_iam::error::DisplayErrorContext(&err)),
            },
            _ => ProviderError::Protocol {
                provider,
                message: format!("{code} on {on}{detail}"),
            },
        }
    }
}

/// Configuration errors print their message alone: put the provider's name in front.
fn named(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::Config { provider, message } if !message.starts_with(&provider) => {
            ProviderError::Config {
                message: format!("{provider}: {message}"),
                provider,
            }
        }
        e => e,
    }
}

/// The text of the first `<name>…</name>` element of an XML error body.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_string()).filter(|s| !s.is_empty())
}

/// An SDK time as a chrono time.
fn to_chrono(t: &aws_sdk_iam::primitives::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &str {
        "aws"
    }

    fn location(&self) -> Option<String> {
        let region = self.region();
        let mut s = match &self.settings.endpoint {
            Some(e) => format!("{e} ({region})"),
            None => format!("aws {region}"),
        };
        if let Some(b) = &self.bucket {
            s.push_str(&format!(
                ", s3://{b}/{}",
                self.prefix.as_deref().unwrap_or("")
            ));
        }
        Some(s)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            list_events: self.bucket.is_some(),
            disable: true,
            revoke: true,
            create: false,
            rotate_overlap: true,
            rotate_atomic: false,
            verify_secret: true,
            // Token creation / CreateAccessKey and CreateApiKey have no idempotency key.
            retry_changes: false,
            rotate_in_place: false,
            rotate_guided: false,
        }
    }

    async fn list_keys(&self, page: Option<&str>) -> Result<KeyPage> {
        match page {
            None => self.iam_page(None).await,
            Some(p) if p.starts_with(PAGE_IAM) => self.iam_page(Some(&p[PAGE_IAM.len()..])).await,
            Some(PAGE_APIGW) => self.apigw_page().await,
            Some(PAGE_ROOT) => self.root_page().await,
            Some(other) => Err(self.protocol(format!("unknown key page token `{other}`"))),
        }
    }

    async fn list_events(&self, cursor: Option<&str>) -> Result<EventPage> {
        self.cloudtrail_page(cursor).await
    }

    async fn get_key(&self, id: &str) -> Result<Key> {
        match key_ref(id) {
            KeyRef::Iam(k) => self.iam_get(k).await,
            KeyRef::ApiGateway(k) => self.apigw_get(k).await,
            KeyRef::Root => self.root_get(id).await,
        }
    }

    async fn disable(&self, id: &str) -> Result<Key> {
        match key_ref(id) {
            KeyRef::Iam(k) => self.iam_set_status(k, false).await,
            KeyRef::ApiGateway(k) => self.apigw_set_enabled(k, false).await,
            KeyRef::Root => Err(self.root_refusal(id)),
        }
    }

    async fn enable(&self, id: &str) -> Result<Key> {
        match key_ref(id) {
            KeyRef::Iam(k) => self.iam_set_status(k, true).await,
            KeyRef::ApiGateway(k) => self.apigw_set_enabled(k, true).await,
            KeyRef::Root => Err(self.root_refusal(id)),
        }
    }

    async fn revoke(&self, id: &str) -> Result<Key> {
        match key_ref(id) {
            KeyRef::Iam(k) => self.iam_revoke(k).await,
            KeyRef::ApiGateway(k) => self.apigw_revoke(k).await,
            KeyRef::Root => Err(self.root_refusal(id)),
        }
    }

    async fn rotate(&self, id: &str, grace: Duration) -> Result<Issued> {
        match key_ref(id) {
            KeyRef::Iam(k) => self.iam_rotate(k, grace).await,
            KeyRef::ApiGateway(k) => self.apigw_rotate(k, grace).await,
            KeyRef::Root => Err(self.root_refusal(id)),
        }
    }

    async fn verify_secret(&self, secret: &Secret) -> Result<String> {
        self.iam_verify(secret).await
    }

    async fn findings(&self) -> Result<Vec<Finding>> {
        self.root_findings().await
    }
}

/// The error of a creating call sent once: a failure that does not say the call was
/// refused (a timeout, a dropped connection, an unreadable or 5xx answer) leaves its
/// outcome unknown.
fn ambiguous(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::Unavailable {
            provider, message, ..
        }
        | ProviderError::Protocol { provider, message } => {
            ProviderError::Ambiguous { provider, message }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_say_which_api_they_belong_to() {
        assert_eq!(
            key_ref("AKIAIOSFODNN7EXAMPLE"),
            KeyRef::Iam("AKIAIOSFODNN7EXAMPLE")
        );
        assert_eq!(
            key_ref("apigw:a1b2c3d4e5"),
            KeyRef::ApiGateway("a1b2c3d4e5")
        );
        assert_eq!(key_ref("root:123456789012:1"), KeyRef::Root);
    }

    #[test]
    fn error_codes_are_read_from_unparsed_bodies() {
        let body = "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>no</Message></Error></Errors></ErrorResponse>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(xml_field(body, "Message").as_deref(), Some("no"));
        assert_eq!(xml_field("<a/>", "Code"), None);
    }
}
