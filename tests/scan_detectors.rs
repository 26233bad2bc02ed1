//! Every detector, three ways: a valid token (generated here, checksums computed here:
//! no real secret is in this repository) is found with its kind; a token whose
//! checksum or structure is wrong is not; a near-miss (a look-alike from documentation
//! or code) is not.

use keyaudit::scan::{rules, shape, Options, Scanner};
use rand::Rng;

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const URL: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

fn rnd(alphabet: &[u8], n: usize) -> String {
    let mut r = rand::rng();
    (0..n)
        .map(|_| alphabet[r.random_range(0..alphabet.len())] as char)
        .collect()
}

fn digits(n: usize) -> String {
    rnd(b"123456789", n)
}

fn crc_token(prefix: &str) -> String {
    let random = rnd(B62, 30);
    format!("{prefix}{random}{}", shape::crc32_b62(&random))
}

/// The same token with its last character changed (a wrong checksum or field).
fn corrupt(t: &str) -> String {
    let mut c: Vec<char> = t.chars().collect();
    let last = c.len() - 1;
    c[last] = if c[last] == 'A' { 'B' } else { 'A' };
    c.into_iter().collect()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(label: &str) -> String {
    let body: Vec<String> = (0..6).map(|_| rnd(B62, 64)).collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

/// (detector id, text holding a valid secret, texts that must give no hit of that kind).
fn cases() -> Vec<(&'static str, String, Vec<String>)> {
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
    let sk = format!("{}/{}", rnd(B62, 20), rnd(B62, 19));
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
    let secret32 = format!("{}a1", rnd(B62, 30));
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
            "twilio:\n  account_sid: AC{}\n  auth_token: {}a\n",
            rnd(HEX, 32),
            rnd(HEX, 31)
        ),
        vec![format!("twilio:\n  auth_token: {}a\n", rnd(HEX, 31))],
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
        format!("CLOUDFLARE_API_TOKEN={}", rnd(B62, 38) + "a1"),
        vec![
            format!("CLOUDFLARE_API_TOKEN={}", rnd(b"abcdef", 40)),
            format!("token = {}", rnd(B62, 38) + "a1"),
        ],
    ));
    v.push((
        "cloudflare-legacy-global-key",
        format!("CF_API_KEY={}a", rnd(HEX, 36)),
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
        format!("VAULT_TOKEN=s.{}a1B", rnd(B62, 21)),
        vec![
            format!("VAULT_TOKEN=s.{}", rnd(b"abc", 24)),
            format!("name=s.{}a1B", rnd(B62, 21)),
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
    // keyaudit's own
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

#[test]
fn every_detector_finds_its_valid_token_and_rejects_wrong_checksums_and_near_misses() {
    let scanner = Scanner::new(&Options::default());
    let cases = cases();
    for (id, valid, bad) in &cases {
        let hits = scanner.scan_text("t", valid.as_bytes(), 1);
        assert!(
            hits.iter().any(|h| h.kind == *id),
            "{id}: not found in {valid:?}: {hits:?}"
        );
        for b in bad {
            let hits = scanner.scan_text("t", b.as_bytes(), 1);
            assert!(
                hits.iter().all(|h| h.kind != *id),
                "{id}: false hit in {b:?}: {hits:?}"
            );
        }
    }
    // Every detector except the generic one has its case here.
    let tested: std::collections::HashSet<&str> = cases.iter().map(|c| c.0).collect();
    let untested: Vec<&str> = rules::all()
        .map(|d| d.id)
        .filter(|id| *id != "generic-high-entropy" && !tested.contains(id))
        .collect();
    assert!(
        untested.is_empty(),
        "detectors without a test: {untested:?}"
    );
    assert!(
        rules::all().count() >= 40,
        "{} detectors",
        rules::all().count()
    );
}

#[test]
fn an_aws_secret_is_linked_to_its_access_key_id_and_masked() {
    let id = format!("AKIA{}", rnd(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    let sk = rnd(B62, 40);
    let text = format!("User name,Password,Access key ID,Secret access key\nci,,{id},{sk}\n");
    let hits = Scanner::new(&Options::default()).scan_text("creds.csv", text.as_bytes(), 1);
    let secret = hits
        .iter()
        .find(|h| h.kind == "aws-secret-access-key")
        .expect("secret found");
    assert_eq!(secret.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(secret.line, 2);
    assert_eq!(secret.shown, keyaudit::secret::mask(&sk));
    assert!(secret.shown.len() <= 4, "{}", secret.shown);
}

#[test]
fn the_same_private_key_fingerprints_the_same_in_a_pem_file_and_in_json() {
    let key = pem("PRIVATE KEY");
    let json = format!(
        "{{\"type\": \"service_account\", \"private_key\": \"{}\", \"client_email\": \"a@b\"}}",
        key.replace('\n', "\\n")
    );
    let s = Scanner::new(&Options::default());
    let a = s.scan_text("k.pem", key.as_bytes(), 1);
    let b = s.scan_text("sa.json", json.as_bytes(), 1);
    assert_eq!(b.len(), 1, "one finding for the file, not two: {b:?}");
    assert_eq!(a[0].fingerprint, b[0].fingerprint);
}

#[test]
fn generic_detection_is_off_by_default_and_scored_low() {
    let text = format!(
        "api_key = \"{}\"\nname = \"{}\"\n",
        rnd(B62, 30) + "aB3",
        rnd(B62, 33)
    );
    assert!(Scanner::new(&Options::default())
        .scan_text("c", text.as_bytes(), 1)
        .is_empty());
    let hits = Scanner::new(&Options { generic: true }).scan_text("c", text.as_bytes(), 1);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].kind, hits[0].line), ("generic-high-entropy", 1));
    assert!(hits[0].score < 50);
    let placeholder = "api_key = \"${API_KEY_FROM_THE_ENVIRONMENT}\"\n";
    assert!(Scanner::new(&Options { generic: true })
        .scan_text("c", placeholder.as_bytes(), 1)
        .is_empty());
}
