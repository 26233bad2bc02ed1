//! Labelled samples of every detector, from each vendor's documented format (no real
//! secret: random parts and checksums are made here): a valid token, tokens with a
//! wrong checksum or structure, near-misses from documentation and code. And a corpus of
//! ordinary source-like text with such samples planted at known places, for recall and
//! precision (tests/scan_quality.rs) and throughput (benches/scan.rs).
//!
//! Everything random comes from one seeded generator per thread ([`seed`]), so a corpus
//! is the same for the same seed.

#![allow(dead_code)]

use keyaudit::scan::shape;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;

thread_local! {
    static RNG: RefCell<rand::rngs::StdRng> = RefCell::new(rand::rngs::StdRng::seed_from_u64(0x5eed));
}

/// Restarts this thread's generator at `seed`.
pub fn seed(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = rand::rngs::StdRng::seed_from_u64(seed));
}

/// A number in `range` from the seeded generator.
pub fn below(n: usize) -> usize {
    RNG.with(|r| r.borrow_mut().random_range(0..n))
}

pub const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const HEX: &[u8] = b"0123456789abcdef";
pub const URL: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/// `n` characters drawn from `alphabet` by the seeded generator.
pub fn rnd(alphabet: &[u8], n: usize) -> String {
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        (0..n)
            .map(|_| alphabet[r.random_range(0..alphabet.len())] as char)
            .collect()
    })
}

pub fn digits(n: usize) -> String {
    rnd(b"123456789", n)
}

pub fn crc_token(prefix: &str) -> String {
    let random = rnd(B62, 30);
    format!("{prefix}{random}{}", shape::crc32_b62(&random))
}

/// The same token with its last character changed (a wrong checksum or field).
pub fn corrupt(t: &str) -> String {
    let mut c: Vec<char> = t.chars().collect();
    let last = c.len() - 1;
    c[last] = if c[last] == 'A' { 'B' } else { 'A' };
    c.into_iter().collect()
}

pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn pem(label: &str) -> String {
    // Real base64: 64-character lines, and a last short one with its `=` padding.
    let mut body: Vec<String> = (0..6).map(|_| b64(48)).collect();
    body.push(b64(40));
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

/// (detector id, text holding a valid secret, texts that must give no hit of that kind).
pub fn cases() -> Vec<(&'static str, String, Vec<String>)> {
    let mut v: Vec<(&'static str, String, Vec<String>)> = Vec::new();
    for (id, p) in [
        ("github-pat", "ghp_"),
        ("github-oauth", "gho_"),
        ("github-user-to-server", "ghu_"),
        ("github-app-installation", "ghs_"),
        ("github-refresh", "ghr_"),
        ("npm-token", "npm_"),
    ] {
        let t = crc_token(p);
        v.push((
            id,
            format!("TOKEN={t}\n"),
            vec![
                format!("TOKEN={}\n", corrupt(&t)),
                format!("TOKEN={p}{}\n", "x".repeat(36)),
                format!("TOKEN=my{t}\n"),
            ],
        ));
    }
    let fg = format!("github_pat_{}_{}", rnd(B62, 22), rnd(B62, 59));
    v.push((
        "github-fine-grained-pat",
        format!("pat: {fg}"),
        vec![
            format!("pat: github_pat_{}_{}", rnd(B62, 22), rnd(B62, 40)),
            "github_pat_xxx".into(),
        ],
    ));
    for (id, p) in [
        ("gitlab-pat", "glpat-"),
        ("gitlab-deploy-token", "gldt-"),
        ("gitlab-runner-token", "glrt-"),
        ("gitlab-pipeline-trigger", "glptt-"),
        ("gitlab-feed-token", "glft-"),
        ("gitlab-scim-token", "glsoat-"),
    ] {
        let legacy = format!("{p}{}", rnd(URL, 20));
        let routable = format!(
            "{p}{}.01.{}",
            rnd(URL, 36),
            rnd(b"0123456789abcdefghijklmnopqrstuvwxyz", 9)
        );
        v.push((
            id,
            format!("a={legacy}\nb=\"{routable}\"\n"),
            vec![
                format!("a={p}{}\n", rnd(URL, 19)),
                format!("a={p}{}.01\n", rnd(URL, 36)),
                format!("see {p}xxxx in the docs"),
            ],
        ));
    }
    v.push((
        "gitlab-ci-job-token",
        format!("CI_JOB_TOKEN={}", format_args!("glcbt-{}", rnd(URL, 30))),
        vec!["glcbt-abc".into()],
    ));
    v.push((
        "gitlab-incoming-mail-token",
        format!("t=glimt-{}", rnd(URL, 25)),
        vec!["glimt-short".into()],
    ));
    v.push((
        "gitlab-oauth-app-secret",
        format!("secret: gloas-{}", rnd(HEX, 64)),
        vec![format!("gloas-{}", rnd(HEX, 20))],
    ));
    v.push((
        "gitlab-agent-token",
        format!("token: glagent-{}", rnd(URL, 50)),
        vec![format!("glagent-{}", rnd(URL, 10))],
    ));
    v.push((
        "gitlab-runner-registration",
        format!("REG=GR1348941{}", rnd(URL, 20)),
        vec![format!("REG=GR1348941{}", rnd(URL, 12))],
    ));
    // Slack
    let bot = format!("xoxb-{}-{}-{}", digits(11), digits(13), rnd(B62, 24));
    v.push((
        "slack-bot-token",
        format!("SLACK={bot}"),
        vec![
            format!("xoxb-{}-{}", digits(11), rnd(B62, 24)),
            "xoxb-your-token-here".into(),
        ],
    ));
    let user = format!(
        "xoxp-{}-{}-{}-{}",
        digits(11),
        digits(11),
        digits(13),
        rnd(HEX, 32)
    );
    v.push((
        "slack-user-token",
        format!("SLACK={user}"),
        vec![
            format!("xoxp-{}-{}", digits(11), rnd(HEX, 32)),
            "xoxp-XXXXXXXX-XXXXXXXX-XXXXX".into(),
        ],
    ));
    let ws = format!(
        "xoxa-2-{}-{}-{}-{}",
        digits(11),
        digits(11),
        digits(13),
        rnd(HEX, 32)
    );
    v.push((
        "slack-workspace-token",
        format!("t={ws}"),
        vec!["xoxa-2-abc".into()],
    ));
    let app = format!(
        "xapp-1-A{}-{}-{}",
        rnd(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", 10),
        digits(13),
        rnd(HEX, 64)
    );
    v.push((
        "slack-app-token",
        format!("t={app}"),
        vec![
            format!(
                "xapp-1-A{}-{}-{}",
                rnd(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", 10),
                digits(13),
                rnd(HEX, 60)
            ),
            "xapp-1-example".into(),
        ],
    ));
    v.push((
        "slack-config-token",
        format!("t=xoxe.xoxp-1-{}", rnd(B62, 140)),
        vec!["xoxe.xoxp-1-short".into()],
    ));
    let hook = format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        rnd(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 10),
        rnd(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 10),
        rnd(B62, 24)
    );
    v.push((
        "slack-webhook",
        format!("url = \"{hook}\""),
        vec!["https://hooks.slack.com/services/T000/B000/XXXX".into()],
    ));
    // Stripe
    for (id, p) in [
        ("stripe-secret-key", "sk_live_"),
        ("stripe-restricted-key", "rk_live_"),
        ("stripe-test-key", "sk_test_"),
    ] {
        v.push((
            id,
            format!("STRIPE={p}{}", rnd(B62, 99)),
            vec![
                format!("{p}{}", rnd(B62, 10)),
                format!("x{p}{}", rnd(B62, 30)),
            ],
        ));
    }
    v.push((
        "stripe-webhook-secret",
        format!("whsec_{}", rnd(B62, 32)),
        vec![format!("whsec_{}", rnd(B62, 10))],
    ));
    // OpenAI, Anthropic
    for (id, p) in [
        ("openai-project-key", "sk-proj-"),
        ("openai-service-account-key", "sk-svcacct-"),
        ("openai-admin-key", "sk-admin-"),
    ] {
        let good = format!("{p}{}T3BlbkFJ{}", rnd(URL, 74), rnd(URL, 74));
        v.push((
            id,
            format!("OPENAI_API_KEY={good}"),
            vec![format!("OPENAI_API_KEY={p}{}", rnd(URL, 156))],
        ));
    }
    v.push((
        "openai-key",
        format!("key = \"sk-{}T3BlbkFJ{}\"", rnd(B62, 20), rnd(B62, 20)),
        vec![format!("sk-{}", rnd(B62, 48)), "sk-learn".into()],
    ));
    for (id, p) in [
        ("anthropic-api-key", "sk-ant-api03-"),
        ("anthropic-admin-key", "sk-ant-admin01-"),
    ] {
        v.push((
            id,
            format!("ANTHROPIC_API_KEY={p}{}AA", rnd(URL, 93)),
            vec![
                format!("{p}{}AB", rnd(URL, 93)),
                format!("{p}{}AA", rnd(URL, 60)),
            ],
        ));
    }
    // Google
    v.push((
        "google-api-key",
        format!("key=AIza{}&q=1", rnd(URL, 35)),
        vec![
            format!("key=AIza{}", rnd(URL, 30)),
            format!("key=AIza{}", rnd(URL, 40)),
        ],
    ));
    let sa_key = pem("PRIVATE KEY").replace('\n', "\\n");
    let sa = format!(
        "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\",\n  \"private_key_id\": \"{}\",\n  \"private_key\": \"{sa_key}\",\n  \"client_email\": \"ci@p.iam.gserviceaccount.com\"\n}}\n",
        rnd(HEX, 40)
    );
    v.push(("google-service-account", sa, vec!["{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n\", \"client_email\": \"x@y\"}".into()]));
    // AWS
    let id = format!("AKIA{}", rnd(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    v.push((
        "aws-access-key-id",
        format!("aws_access_key_id = {id}"),
        vec![format!("x{id}"), format!("AKIA{}", rnd(b"abcdefgh", 16))],
    ));
    // 30 random bytes in base64, as AWS makes them (a digit or `/` is not promised).
    let sk = b64(30);
    v.push((
        "aws-secret-access-key",
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {sk}\n"),
        vec![
            format!("aws_secret_access_key = {}\n", rnd(b"abcdef", 40)),
            format!("aws_secret_access_key = {}\n", rnd(B62, 39)),
        ],
    ));
    // Azure, Twilio, SendGrid
    let acct = format!("{}==", rnd(B62, 86));
    v.push(("azure-storage-key", format!("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={acct};EndpointSuffix=core.windows.net"), vec![format!("AccountKey={}==", rnd(B62, 40)), "AccountKey=<your key>".into()]));
    let secret32 = rnd(B62, 32);
    v.push((
        "twilio-api-key",
        format!(
            "TWILIO_API_KEY=SK{}\nTWILIO_API_SECRET={secret32}\n",
            rnd(HEX, 32)
        ),
        vec![format!("TWILIO_API_KEY=SK{}\n", rnd(HEX, 32))],
    ));
    v.push((
        "twilio-auth-token",
        format!(
            "twilio:\n  account_sid: AC{}\n  auth_token: {}\n",
            rnd(HEX, 32),
            rnd(HEX, 32)
        ),
        vec![
            format!("twilio:\n  auth_token: {}a\n", rnd(HEX, 31)),
            // A hash beside a Twilio account SID is no auth token.
            format!(
                "twilio:\n  account_sid: AC{}\nmd5 {}  twilio-7.0.tar.gz\n",
                rnd(HEX, 32),
                rnd(HEX, 32)
            ),
        ],
    ));
    let sg = format!("SG.{}.{}", rnd(URL, 22), rnd(URL, 43));
    v.push((
        "sendgrid-api-key",
        format!("SENDGRID_API_KEY={sg}"),
        vec![
            format!("SG.{}.{}", rnd(URL, 22), rnd(URL, 30)),
            "MSG.example.com".into(),
        ],
    ));
    // Registries
    v.push((
        "pypi-token",
        format!("password = pypi-AgEIcHlwaS5vcmc{}", rnd(URL, 120)),
        vec![
            format!("pypi-AgEIcHlwaS5vcmc{}", rnd(URL, 10)),
            "pypi-token".into(),
        ],
    ));
    v.push((
        "dockerhub-pat",
        format!("DOCKER_TOKEN=dckr_pat_{}", rnd(URL, 27)),
        vec![format!("dckr_pat_{}", rnd(URL, 20))],
    ));
    // Datadog, Cloudflare
    v.push((
        "datadog-api-key",
        format!("DD_API_KEY={}", rnd(HEX, 32)),
        vec![
            format!("DD_API_KEY={}", rnd(HEX, 31)),
            format!("md5 = {}", rnd(HEX, 32)),
        ],
    ));
    v.push((
        "datadog-app-key",
        format!("DD_APP_KEY: {}", rnd(HEX, 40)),
        vec![
            format!("DD_APP_KEY: {}", rnd(HEX, 39)),
            format!("sha1 {}", rnd(HEX, 40)),
        ],
    ));
    for (id, p) in [
        ("cloudflare-global-key", "cfk_"),
        ("cloudflare-user-token", "cfut_"),
        ("cloudflare-account-token", "cfat_"),
    ] {
        v.push((
            id,
            format!("CF={p}{}{}", rnd(B62, 40), rnd(B62, 8)),
            vec![format!("CF={p}{}", rnd(B62, 30))],
        ));
    }
    v.push((
        "cloudflare-api-token",
        format!("CLOUDFLARE_API_TOKEN={}", rnd(URL, 40)),
        vec![
            format!("CLOUDFLARE_API_TOKEN={}", rnd(b"abcdef", 40)),
            format!("token = {}", rnd(URL, 40)),
        ],
    ));
    v.push((
        "cloudflare-legacy-global-key",
        format!("CF_API_KEY={}", rnd(HEX, 37)),
        vec![format!("CF_API_KEY={}", rnd(b"0123456789", 37))],
    ));
    // Vault
    v.push((
        "vault-service-token",
        format!("VAULT_TOKEN=hvs.{}", rnd(B62, 24)),
        vec![format!("hvs.{}", rnd(B62, 10))],
    ));
    v.push((
        "vault-batch-token",
        format!("t=hvb.{}", rnd(URL, 140)),
        vec![format!("hvb.{}", rnd(URL, 20))],
    ));
    v.push((
        "vault-recovery-token",
        format!("t=hvr.{}", rnd(B62, 24)),
        vec![format!("hvr.{}", rnd(B62, 10))],
    ));
    v.push((
        "vault-legacy-token",
        format!("VAULT_TOKEN=s.{}", rnd(B62, 24)),
        vec![
            format!("VAULT_TOKEN=s.{}", rnd(b"abc", 24)),
            format!("name=s.{}", rnd(B62, 24)),
        ],
    ));
    // Others
    v.push((
        "digitalocean-pat",
        format!("DO=dop_v1_{}", rnd(HEX, 64)),
        vec![format!("dop_v1_{}", rnd(HEX, 60))],
    ));
    v.push((
        "digitalocean-oauth",
        format!("DO=doo_v1_{}", rnd(HEX, 64)),
        vec![format!("doo_v1_{}", rnd(B62, 64))],
    ));
    v.push((
        "shopify-access-token",
        format!("shpat_{}", rnd(HEX, 32)),
        vec![format!("shpat_{}", rnd(HEX, 31))],
    ));
    v.push((
        "shopify-shared-secret",
        format!("shpss_{}", rnd(HEX, 32)),
        vec![format!("shpss_{}", rnd(B62, 32))],
    ));
    // JWT
    let jwt = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64url(br#"{"sub":"1234567890","name":"x"}"#),
        rnd(URL, 43)
    );
    let not_json = format!(
        "eyJ{}.{}.{}",
        rnd(B62, 30),
        b64url(b"{\"a\":1}"),
        rnd(URL, 43)
    );
    let alg_none = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"none"}"#),
        b64url(br#"{"sub":"1"}"#),
        rnd(URL, 20)
    );
    v.push((
        "jwt",
        format!("Authorization: Bearer {jwt}"),
        vec![not_json, alg_none],
    ));
    // PEM
    for (id, label) in [
        ("private-key-rsa", "RSA PRIVATE KEY"),
        ("private-key-ec", "EC PRIVATE KEY"),
        ("private-key-dsa", "DSA PRIVATE KEY"),
        ("private-key-openssh", "OPENSSH PRIVATE KEY"),
        ("private-key-pkcs8", "PRIVATE KEY"),
        ("private-key-pgp", "PGP PRIVATE KEY BLOCK"),
    ] {
        v.push((
            id,
            pem(label),
            vec![
                format!("-----BEGIN {label}-----\n...\n-----END {label}-----\n"),
                format!("-----BEGIN {label}-----\n{}\n", rnd(B62, 64)),
            ],
        ));
    }
    // keyaudit's own (from the OS generator: the only sample not from the seed)
    let own = keyaudit::secret::generate("tg_live").unwrap();
    v.push((
        "keyaudit",
        format!("KEY={}", own.expose()),
        vec![
            format!("KEY={}", corrupt(own.expose())),
            format!("KEY=tg_live_{}", "a".repeat(28)),
        ],
    ));
    v
}

/// Words for identifiers and comments.
const WORDS: &[&str] = &[
    "employee",
    "payroll",
    "candidate",
    "offer",
    "record",
    "batch",
    "export",
    "import",
    "partner",
    "invoice",
    "ledger",
    "account",
    "session",
    "client",
    "request",
    "response",
    "handler",
    "config",
    "value",
    "index",
    "buffer",
    "stream",
    "cursor",
    "page",
    "limit",
    "retry",
    "timeout",
    "status",
    "result",
    "error",
    "parse",
    "render",
    "build",
    "check",
    "token_count",
    "secret_santa",
    "password_policy",
    "key_id",
    "user",
    "team",
    "sync",
];

fn word() -> &'static str {
    WORDS[below(WORDS.len())]
}

fn ident() -> String {
    format!("{}_{}", word(), word())
}

fn uuid() -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        rnd(HEX, 8),
        rnd(HEX, 4),
        rnd(HEX, 3),
        rnd(HEX, 3),
        rnd(HEX, 12)
    )
}

fn b64(n: usize) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..n).map(|_| below(256) as u8).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One line of ordinary source: code in several languages, configuration, UUIDs,
/// hashes, base64 blobs, lock-file integrity strings, and the placeholders that
/// documentation and tests use where a secret would go.
pub fn ordinary_line() -> String {
    match below(24) {
        0 => format!(
            "    let {} = {}.{}({}, {});",
            ident(),
            ident(),
            word(),
            ident(),
            below(10_000)
        ),
        1 => format!("def {}({}, {}={}):", ident(), ident(), ident(), below(100)),
        2 => format!("const {} = \"{}\";", ident().to_uppercase(), uuid()),
        3 => format!("// sha256: {}", rnd(HEX, 64)),
        4 => format!("commit {}", rnd(HEX, 40)),
        5 => format!("      \"integrity\": \"sha512-{}\",", b64(64)),
        6 => format!("  data: \"{}\"", b64(30 + below(120))),
        7 => format!(
            "# TODO({}): {} the {} before the {}",
            word(),
            word(),
            word(),
            word()
        ),
        8 => format!("{}:\n  {}: {}-{}", ident(), word(), word(), below(999)),
        9 => format!(
            "    url = \"https://api.example.com/v1/{}/{}?id={}\"",
            word(),
            word(),
            uuid()
        ),
        10 => format!("{} = os.environ[\"{}\"]", ident(), ident().to_uppercase()),
        11 => format!(
            "api_key = \"{}\"  # set in CI",
            [
                "test",
                "changeme",
                "${API_KEY}",
                "<your-api-key>",
                "xxxxxxxx"
            ][below(5)]
        ),
        12 => format!("TOKEN=ghp_{}", "x".repeat(36)),
        13 => "AWS_ACCESS_KEY_ID=your-access-key-id".to_string(),
        14 => format!(
            "password: \"{}\"",
            ["hunter2", "P@ssw0rd", "{{ vault_password }}"][below(3)]
        ),
        15 => format!("    assert_eq!({}.len(), {});", ident(), below(64)),
        16 => format!("  \"{}\": \"{}\",", ident(), rnd(B62, 8 + below(24))),
        17 => format!("image: registry.example.com/{}:{}", word(), rnd(HEX, 12)),
        18 => format!("<div class=\"{}\">{} {}</div>", word(), word(), word()),
        19 => format!("SELECT {} FROM {} WHERE id = '{}';", word(), word(), uuid()),
        20 => format!(
            "    {}: Option<{}>,",
            ident(),
            ["String", "u64", "Vec<u8>"][below(3)]
        ),
        21 => format!("md5 {}  {}.tar.gz", rnd(HEX, 32), word()),
        22 => {
            "-----BEGIN PUBLIC KEY-----".to_string()
                + &format!("\n{}\n-----END PUBLIC KEY-----", b64(48))
        }
        _ => format!("    {}.{}(&{});", ident(), word(), ident()),
    }
}

/// What a corpus file holds at a place: a planted secret of a detector, a near-miss of
/// one (a wrong checksum or structure, a placeholder), or nothing but ordinary text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    Planted(&'static str),
    NearMiss(&'static str),
}

/// A planted sample: its file, its first and last line (1-based, inclusive), what it is.
#[derive(Debug, Clone)]
pub struct Place {
    pub file: usize,
    pub lines: std::ops::RangeInclusive<usize>,
    pub label: Label,
}

/// A generated corpus: files of ordinary text with samples planted at known places.
pub struct Corpus {
    pub files: Vec<String>,
    pub places: Vec<Place>,
    /// Bytes of ordinary text (without the planted samples).
    pub ordinary_bytes: usize,
}

/// A corpus of about `bytes` of ordinary text in files of about `file_bytes`, with
/// `per_detector` valid samples of every detector and as many near-misses planted at
/// random places, from `seed`.
pub fn corpus(seed_value: u64, bytes: usize, file_bytes: usize, per_detector: usize) -> Corpus {
    seed(seed_value);
    let mut samples: Vec<(Label, String)> = Vec::new();
    for _ in 0..per_detector {
        for (id, valid, bad) in cases() {
            samples.push((Label::Planted(id), valid));
            let b = bad[below(bad.len())].clone();
            samples.push((Label::NearMiss(id), b));
        }
    }
    let n_files = bytes.div_ceil(file_bytes).max(1);
    let mut files = Vec::with_capacity(n_files);
    let mut places = Vec::new();
    let mut ordinary_bytes = 0;
    // Samples go to random files, in order within a file.
    let mut by_file: Vec<Vec<(Label, String)>> = vec![Vec::new(); n_files];
    for s in samples {
        by_file[below(n_files)].push(s);
    }
    for (f, mut planted) in by_file.into_iter().enumerate() {
        let mut text = String::with_capacity(file_bytes + 4096);
        let mut line = 1;
        let per = (file_bytes / 60 / (planted.len() + 1)).max(1);
        planted.reverse();
        let mut until_next = below(per) + 1;
        while text.len() < file_bytes || !planted.is_empty() {
            until_next -= 1;
            if until_next == 0 {
                until_next = below(2 * per) + 1;
                if let Some((label, s)) = planted.pop() {
                    let s = s.trim_end_matches('\n');
                    let n = s.lines().count().max(1);
                    places.push(Place {
                        file: f,
                        lines: line..=line + n - 1,
                        label,
                    });
                    text.push_str(s);
                    text.push('\n');
                    line += n;
                    continue;
                }
            }
            let l = ordinary_line();
            ordinary_bytes += l.len() + 1;
            line += l.lines().count();
            text.push_str(&l);
            text.push('\n');
        }
        files.push(text);
    }
    Corpus {
        files,
        places,
        ordinary_bytes,
    }
}
