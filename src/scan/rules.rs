//! The detectors: one entry per kind of secret, written from each vendor's documented
//! token format. A detector names the keywords that must occur for it to run (the
//! prefilter), and how a candidate is found and checked from a keyword's position.

use super::context as ctx;
use super::shape::{self, alnum, b64url, gitlab_body, hex_lower, slack_body};
use std::ops::Range;

/// How a detector's candidates are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// The format's checksum was recomputed and matches.
    Checksum,
    /// The vendor's documented structure (prefix, alphabet, lengths, fields) matches.
    Structure,
    /// The value stands next to a keyword naming the vendor (no prefix of its own).
    Context,
    /// High entropy after a secret-like name (`--generic` only).
    Entropy,
}

/// How a detector finds a candidate from a keyword's position.
pub enum Find {
    /// The keyword is the token's literal prefix; the body is a run of `body` bytes of
    /// `min..=max` length, and `check` (when given) confirms the whole token.
    Token {
        body: fn(u8) -> bool,
        min: usize,
        max: usize,
        check: Option<fn(&str) -> bool>,
    },
    /// A function of the chunk and the keyword's range.
    Custom(fn(&[u8], Range<usize>) -> Option<Cand>),
}

/// A candidate: its span in the chunk, the material when it differs from the span's
/// text (a PEM key's canonical body), and a public id found beside it.
#[derive(Debug, Clone)]
pub struct Cand {
    pub span: Range<usize>,
    pub material: Option<String>,
    pub key_id: Option<String>,
}

pub struct Detector {
    /// Stable id (`github-pat`), used in output, baselines and SARIF rule ids.
    pub id: &'static str,
    pub title: &'static str,
    /// Who issues the secret (`github`, `aws`, …); matched against provider kinds.
    pub vendor: &'static str,
    /// Confidence, 0 to 100.
    pub score: u8,
    pub validation: Validation,
    /// Keywords, matched case-insensitively; `Token` detectors compare their prefix
    /// exactly afterwards.
    pub keywords: &'static [&'static str],
    pub find: Find,
}

#[allow(clippy::too_many_arguments)]
const fn token(
    id: &'static str,
    title: &'static str,
    vendor: &'static str,
    keywords: &'static [&'static str],
    body: fn(u8) -> bool,
    min: usize,
    max: usize,
    check: Option<fn(&str) -> bool>,
    validation: Validation,
) -> Detector {
    let score = match validation {
        Validation::Checksum => 95,
        Validation::Structure => 85,
        Validation::Context => 70,
        Validation::Entropy => 30,
    };
    Detector {
        id,
        title,
        vendor,
        score,
        validation,
        keywords,
        find: Find::Token {
            body,
            min,
            max,
            check,
        },
    }
}

const fn custom(
    id: &'static str,
    title: &'static str,
    vendor: &'static str,
    score: u8,
    validation: Validation,
    keywords: &'static [&'static str],
    f: fn(&[u8], Range<usize>) -> Option<Cand>,
) -> Detector {
    Detector {
        id,
        title,
        vendor,
        score,
        validation,
        keywords,
        find: Find::Custom(f),
    }
}

use Validation::{Checksum as CK, Context as CX, Structure as ST};

fn upper32(b: u8) -> bool {
    b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
}

fn pypi_body(b: u8) -> bool {
    b64url(b)
}

fn vault_body(b: u8) -> bool {
    b64url(b)
}

fn jwt_body(b: u8) -> bool {
    b64url(b) || b == b'.'
}

fn sendgrid_body(b: u8) -> bool {
    b64url(b) || b == b'.'
}

fn openai_body(b: u8) -> bool {
    b64url(b)
}

fn slack_config_body(b: u8) -> bool {
    slack_body(b) || b == b'.'
}

/// Every detector keyaudit ships (keyaudit's own and the generic one are below).
#[rustfmt::skip]
pub static DETECTORS: &[Detector] = &[
    // GitHub (2021 format: 30 random + 6 CRC32 check characters)
    token("github-pat", "GitHub personal access token (classic)", "github", &["ghp_"], alnum, 36, 36, Some(shape::crc32_token), CK),
    token("github-oauth", "GitHub OAuth access token", "github", &["gho_"], alnum, 36, 36, Some(shape::crc32_token), CK),
    token("github-user-to-server", "GitHub App user access token", "github", &["ghu_"], alnum, 36, 36, Some(shape::crc32_token), CK),
    token("github-app-installation", "GitHub App installation token", "github", &["ghs_"], alnum, 36, 36, Some(shape::crc32_token), CK),
    token("github-refresh", "GitHub refresh token", "github", &["ghr_"], alnum, 36, 36, Some(shape::crc32_token), CK),
    token("github-fine-grained-pat", "GitHub fine-grained personal access token", "github", &["github_pat_"], |b| alnum(b) || b == b'_', 82, 82, Some(shape::github_fine_grained), ST),
    // GitLab
    token("gitlab-pat", "GitLab personal, project or group access token", "gitlab", &["glpat-"], gitlab_body, 20, 320, Some(shape::gitlab), ST),
    token("gitlab-deploy-token", "GitLab deploy token", "gitlab", &["gldt-"], gitlab_body, 20, 320, Some(shape::gitlab), ST),
    token("gitlab-runner-token", "GitLab runner authentication token", "gitlab", &["glrt-"], gitlab_body, 20, 320, Some(shape::gitlab), ST),
    token("gitlab-pipeline-trigger", "GitLab pipeline trigger token", "gitlab", &["glptt-"], gitlab_body, 20, 320, Some(|t| shape::gitlab(t) || (t.len() == 46 && t[6..].bytes().all(hex_lower))), ST),
    token("gitlab-feed-token", "GitLab feed token", "gitlab", &["glft-"], gitlab_body, 20, 320, Some(shape::gitlab), ST),
    token("gitlab-scim-token", "GitLab SCIM OAuth token", "gitlab", &["glsoat-"], gitlab_body, 20, 320, Some(shape::gitlab), ST),
    token("gitlab-ci-job-token", "GitLab CI/CD job token", "gitlab", &["glcbt-"], gitlab_body, 20, 320, Some(|t| t.len() >= 26), ST),
    token("gitlab-incoming-mail-token", "GitLab incoming mail token", "gitlab", &["glimt-"], gitlab_body, 20, 320, Some(|t| t.len() >= 31), ST),
    token("gitlab-oauth-app-secret", "GitLab OAuth application secret", "gitlab", &["gloas-"], gitlab_body, 64, 320, None, ST),
    token("gitlab-agent-token", "GitLab agent for Kubernetes token", "gitlab", &["glagent-"], gitlab_body, 50, 320, None, ST),
    token("gitlab-runner-registration", "GitLab runner registration token", "gitlab", &["GR1348941"], b64url, 20, 20, None, ST),
    // Slack
    token("slack-bot-token", "Slack bot token", "slack", &["xoxb-"], slack_body, 30, 120, Some(shape::slack_bot), ST),
    token("slack-user-token", "Slack user token", "slack", &["xoxp-"], slack_body, 40, 140, Some(shape::slack_user), ST),
    token("slack-workspace-token", "Slack workspace access token", "slack", &["xoxa-"], slack_body, 40, 140, Some(shape::slack_user), ST),
    token("slack-app-token", "Slack app-level token", "slack", &["xapp-"], slack_body, 80, 120, Some(shape::slack_app), ST),
    token("slack-config-token", "Slack configuration token", "slack", &["xoxe"], slack_config_body, 80, 320, Some(shape::slack_config), ST),
    token("slack-webhook", "Slack incoming webhook URL", "slack", &["https://hooks.slack.com/services/"], |b| alnum(b) || b == b'/', 40, 80, Some(slack_webhook), ST),
    // Stripe
    token("stripe-secret-key", "Stripe live secret key", "stripe", &["sk_live_"], alnum, 24, 247, None, ST),
    token("stripe-restricted-key", "Stripe live restricted key", "stripe", &["rk_live_"], alnum, 24, 247, None, ST),
    token("stripe-test-key", "Stripe test-mode secret key", "stripe", &["sk_test_"], alnum, 24, 247, None, ST),
    token("stripe-webhook-secret", "Stripe webhook signing secret", "stripe", &["whsec_"], alnum, 32, 64, None, ST),
    // OpenAI, Anthropic
    token("openai-project-key", "OpenAI project API key", "openai", &["sk-proj-"], openai_body, 40, 200, Some(shape::openai), ST),
    token("openai-service-account-key", "OpenAI service account key", "openai", &["sk-svcacct-"], openai_body, 40, 200, Some(shape::openai), ST),
    token("openai-admin-key", "OpenAI admin key", "openai", &["sk-admin-"], openai_body, 40, 200, Some(shape::openai), ST),
    token("openai-key", "OpenAI API key (legacy format)", "openai", &["sk-"], alnum, 48, 48, Some(shape::openai), ST),
    token("anthropic-api-key", "Anthropic API key", "anthropic", &["sk-ant-api03-"], b64url, 95, 95, Some(shape::anthropic), ST),
    token("anthropic-admin-key", "Anthropic admin key", "anthropic", &["sk-ant-admin01-"], b64url, 95, 95, Some(shape::anthropic), ST),
    // Google
    token("google-api-key", "Google API key", "google", &["AIza"], b64url, 35, 35, None, ST),
    custom("google-service-account", "Google service-account private key", "google", 90, ST, &["service_account"], ctx::google_service_account),
    // AWS
    token("aws-access-key-id", "AWS access key id", "aws", &["AKIA", "ASIA", "ABIA", "ACCA"], upper32, 16, 16, None, ST),
    custom("aws-secret-access-key", "AWS secret access key", "aws", 80, CX, &["aws_secret", "secret_access_key", "secretaccesskey", "secret access key", "AKIA", "ASIA"], ctx::aws_secret),
    // Azure, Twilio, SendGrid
    custom("azure-storage-key", "Azure storage account key", "azure", 90, ST, &["AccountKey="], ctx::azure_storage),
    custom("twilio-api-key", "Twilio API key secret", "twilio", 75, CX, &["twilio"], ctx::twilio_api_key),
    custom("twilio-auth-token", "Twilio account auth token", "twilio", 75, CX, &["twilio"], ctx::twilio_auth_token),
    token("sendgrid-api-key", "SendGrid API key", "sendgrid", &["SG."], sendgrid_body, 66, 66, Some(shape::sendgrid), ST),
    // Package registries
    token("npm-token", "npm access token", "npm", &["npm_"], alnum, 36, 36, Some(shape::crc32_token), CK),
    token("pypi-token", "PyPI API token", "pypi", &["pypi-AgEIcHlwaS5vcmc"], pypi_body, 50, 400, None, ST),
    token("dockerhub-pat", "Docker Hub personal access token", "docker", &["dckr_pat_"], b64url, 27, 27, None, ST),
    // Datadog, Cloudflare
    custom("datadog-api-key", "Datadog API key", "datadog", 70, CX, &["datadog", "dd_api_key", "dd-api-key", "ddapikey"], ctx::datadog_api),
    custom("datadog-app-key", "Datadog application key", "datadog", 70, CX, &["dd_app_key", "dd-app-key", "ddappkey", "datadog_app", "application_key"], ctx::datadog_app),
    token("cloudflare-global-key", "Cloudflare global API key", "cloudflare", &["cfk_"], b64url, 41, 64, None, ST),
    token("cloudflare-user-token", "Cloudflare user API token", "cloudflare", &["cfut_"], b64url, 41, 64, None, ST),
    token("cloudflare-account-token", "Cloudflare account API token", "cloudflare", &["cfat_"], b64url, 41, 64, None, ST),
    custom("cloudflare-api-token", "Cloudflare API token (unprefixed)", "cloudflare", 65, CX, &["cloudflare", "cf_api_token", "cf-api-token", "cf_token"], ctx::cloudflare_token),
    custom("cloudflare-legacy-global-key", "Cloudflare global API key (unprefixed)", "cloudflare", 65, CX, &["cf_api_key", "cf-api-key", "x-auth-key", "cloudflare_api_key", "cloudflare_global"], ctx::cloudflare_global),
    // HashiCorp Vault / OpenBao
    token("vault-service-token", "Vault service token", "vault", &["hvs."], vault_body, 24, 300, None, ST),
    token("vault-batch-token", "Vault batch token", "vault", &["hvb."], vault_body, 40, 400, None, ST),
    token("vault-recovery-token", "Vault recovery token", "vault", &["hvr."], vault_body, 24, 300, None, ST),
    custom("vault-legacy-token", "Vault token (pre-1.10 format)", "vault", 65, CX, &["vault_token", "x-vault-token"], ctx::vault_legacy),
    // Other hosted services with documented prefixes
    token("digitalocean-pat", "DigitalOcean personal access token", "digitalocean", &["dop_v1_"], hex_lower, 64, 64, None, ST),
    token("digitalocean-oauth", "DigitalOcean OAuth token", "digitalocean", &["doo_v1_"], hex_lower, 64, 64, None, ST),
    token("shopify-access-token", "Shopify Admin API access token", "shopify", &["shpat_"], hex_lower, 32, 32, None, ST),
    token("shopify-shared-secret", "Shopify app shared secret", "shopify", &["shpss_"], hex_lower, 32, 32, None, ST),
    // Formats
    token("jwt", "JSON Web Token", "jwt", &["eyJ"], jwt_body, 30, 8192, Some(shape::jwt), ST),
    custom("private-key-rsa", "RSA private key (PEM)", "pem", 90, ST, &["-----BEGIN RSA PRIVATE KEY-----"], ctx::pem),
    custom("private-key-ec", "EC private key (PEM)", "pem", 90, ST, &["-----BEGIN EC PRIVATE KEY-----"], ctx::pem),
    custom("private-key-dsa", "DSA private key (PEM)", "pem", 90, ST, &["-----BEGIN DSA PRIVATE KEY-----"], ctx::pem),
    custom("private-key-openssh", "OpenSSH private key", "pem", 90, ST, &["-----BEGIN OPENSSH PRIVATE KEY-----"], ctx::pem),
    custom("private-key-pkcs8", "PKCS #8 private key (PEM)", "pem", 90, ST, &["-----BEGIN PRIVATE KEY-----", "-----BEGIN ENCRYPTED PRIVATE KEY-----"], ctx::pem),
    custom("private-key-pgp", "PGP private key block", "pem", 90, ST, &["-----BEGIN PGP PRIVATE KEY BLOCK-----"], ctx::pem),
];

/// `https://hooks.slack.com/services/T…/B…/<24 letters and digits>`.
fn slack_webhook(url: &str) -> bool {
    let path = url.trim_start_matches("https://hooks.slack.com/services/");
    let f: Vec<&str> = path.split('/').collect();
    f.len() == 3
        && f[0].starts_with('T')
        && f[1].starts_with('B')
        && f[0].len() >= 9
        && f[1].len() >= 9
        && f[2].len() == 24
        && f[0]
            .bytes()
            .chain(f[1].bytes())
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && f[2].bytes().all(alnum)
}

/// keyaudit's own keys are found by [`super::own`], not by keyword.
pub static OWN: Detector = custom(
    "keyaudit",
    "keyaudit key",
    "keyaudit",
    95,
    CK,
    &[],
    |_, _| None,
);

/// High-entropy values after a secret-like name: off unless `--generic`, scored low.
pub static GENERIC: Detector = custom(
    "generic-high-entropy",
    "High-entropy value named like a secret",
    "generic",
    30,
    Validation::Entropy,
    &[
        "secret",
        "token",
        "passw",
        "api_key",
        "apikey",
        "api-key",
        "access_key",
        "private_key",
        "auth_key",
        "credential",
    ],
    super::generic::find,
);

/// Looks a detector up by id (the built-in ones, keyaudit's own and the generic one).
pub fn by_id(id: &str) -> Option<&'static Detector> {
    DETECTORS
        .iter()
        .chain([&OWN, &GENERIC])
        .find(|d| d.id == id)
}

/// The detectors' count and ids, for `keyaudit scan --list-detectors` and the docs.
pub fn all() -> impl Iterator<Item = &'static Detector> {
    DETECTORS.iter().chain([&OWN, &GENERIC])
}
