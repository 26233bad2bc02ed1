//! Redaction of key material in imported records, before anything reaches the cache.
//!
//! Two layers: field names that always hold secrets (`Authorization`, `X-Api-Key`,
//! `password`, `token`, `aws_secret_access_key`, ...) have their whole value replaced,
//! and every other string, whatever its field, is scanned for words shaped like key
//! material: bearer tokens, the token formats of the leak scanner (GitHub `ghp_` and
//! kin, GitLab `glpat-` and kin, Slack `xox?-`, Stripe `sk_live_`/`rk_live_`, OpenAI
//! `sk-`/`sk-proj-`, Google `AIza`), Vault tokens (`hvs.`, `hvb.`, `hvr.` and the legacy
//! `s.`/`b.`/`r.` with 24 characters, which an audit device logging raw values writes
//! into `client_token`), keys in keyaudit's own format, AWS secret access keys (40
//! characters of mixed case and digits in a record that carries an access key id) and
//! `name=value` pairs with a secret name in query strings. Identifiers that are not
//! secrets (an AWS access key id, a GitHub `hashed_token`, Vault's `hmac-sha256:` values)
//! are kept: they are how keys are recognised.

use serde_json::Value;

/// What replaces the value of a secret field.
pub const REDACTED: &str = "[REDACTED]";

/// What replaces a secret-looking word: the marker and the key's fingerprint (the same
/// `sha256:` fingerprint keyaudit stores for keys), so records that carried the same
/// leaked key can still be matched to each other and to the cached key.
pub fn redacted_word(secret: &str) -> String {
    format!("[REDACTED {}]", crate::secret::fingerprint(secret))
}

/// Prefixes of well-known secret formats; a word starting with one of them and long
/// enough is a secret.
const SECRET_PREFIXES: &[&str] = &[
    "tg_live_",
    "tg_test_",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "pk_live_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "gldt-",
    "glptt-",
    "glrt-",
    "gloas-",
    "glcbt-",
    "glft-",
    "glimt-",
    "glagent-",
    "glsoat-",
    "glffct-",
    "GR1348941",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "xoxr-",
    "xoxe-",
    "xoxe.",
    "xapp-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "hvs.",
    "hvb.",
    "hvr.",
    "AIza",
];

/// A Vault token of the format before 1.10: `s.` (service), `b.` (batch) or `r.`
/// (recovery) and 24 letters and digits.
fn is_legacy_vault_token(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 26
        && matches!(b[0], b's' | b'b' | b'r')
        && b[1] == b'.'
        && b[2..].iter().all(u8::is_ascii_alphanumeric)
        && has_mixed_classes(&b[2..])
}

/// An OpenAI key of the first format: `sk-` and at least 32 letters and digits.
fn is_openai_legacy(w: &str) -> bool {
    w.strip_prefix("sk-").is_some_and(|rest| {
        rest.len() >= 32
            && rest.bytes().all(|c| c.is_ascii_alphanumeric())
            && has_mixed_classes(rest.as_bytes())
    })
}

/// True when random-looking text has an upper-case letter, a lower-case letter and a
/// digit (which words of prose, hex digests and ids rarely all have).
fn has_mixed_classes(b: &[u8]) -> bool {
    b.iter().any(u8::is_ascii_uppercase)
        && b.iter().any(u8::is_ascii_lowercase)
        && b.iter().any(u8::is_ascii_digit)
}

/// An AWS access key id (`AKIA`, `ASIA`, ... and 16 upper-case letters and digits):
/// not a secret itself, but the secret access key travels beside it.
pub fn is_access_key_id(w: &str) -> bool {
    w.len() == 20
        && ["AKIA", "ASIA", "ABIA", "ACCA"]
            .iter()
            .any(|p| w.starts_with(p))
        && w.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The shape of an AWS secret access key: 40 characters of `A-Z a-z 0-9 / +` with
/// mixed classes.
pub fn is_aws_secret_shape(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 40
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'/' || c == b'+')
        && has_mixed_classes(b)
}

/// True when `text` holds an AWS access key id as a word.
fn mentions_access_key_id(text: &str) -> bool {
    (text.contains("AKIA")
        || text.contains("ASIA")
        || text.contains("ABIA")
        || text.contains("ACCA"))
        && word_ranges(text).any(|(a, b)| is_access_key_id(&text[a..b]))
}

/// True when a field of this name holds a secret whatever its value.
pub fn is_secret_field(name: &str) -> bool {
    let n: String = name
        .chars()
        .map(|c| match c {
            '-' | ' ' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if n.starts_with("hashed_") || n.ends_with("_id") || n.ends_with("_type") {
        return false;
    }
    const EXACT: &[&str] = &[
        "authorization",
        "proxy_authorization",
        "x_api_key",
        "api_key",
        "apikey",
        "x_auth_token",
        "x_vault_token",
        "x_amz_security_token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "secret_key",
        "secretkey",
        "secret_access_key",
        "secretaccesskey",
        "aws_secret_access_key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "session_token",
        "sessiontoken",
        "private_key",
        "privatekey",
        "cookie",
        "set_cookie",
        "credentials",
        "bearer",
    ];
    EXACT.contains(&n.as_str())
        || n.ends_with("_secret")
        || n.ends_with("_password")
        || n.ends_with("_api_key")
        || (n.ends_with("_token") && n != "client_token" && n != "hashed_token")
}

fn is_word_byte(b: u8) -> bool {
    WORD_BYTES[b as usize]
}

/// [`is_word_byte`] as a table: the word scans run over every byte of every record.
static WORD_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'+' | b'/' | b'=');
        b += 1;
    }
    t
};

/// True when a single word looks like key material.
pub fn looks_secret(word: &str) -> bool {
    // The shortest secret recognised is a 4-byte prefix and 12 more characters; most
    // words of a log are shorter, and are rejected without further work.
    if word.len() < 16 {
        return false;
    }
    let w = word.trim_end_matches(['.', '=', '/']);
    if w.is_empty() {
        return false;
    }
    let first = w.as_bytes()[0];
    if first == b'h' && w.starts_with("hmac-sha256:") {
        return false;
    }
    if is_legacy_vault_token(w) || is_openai_legacy(w) {
        return true;
    }
    for p in SECRET_PREFIXES {
        if p.as_bytes()[0] == first {
            if let Some(rest) = w.strip_prefix(p) {
                if rest.len() >= 12 && rest.bytes().all(is_word_byte) {
                    return true;
                }
            }
        }
    }
    if !w.contains('_') {
        return false;
    }
    if w.len() >= 20 && (w.contains("_live_") || w.contains("_test_")) {
        return true;
    }
    crate::secret::is_well_formed(w)
}

/// Redacts secret-looking parts of free text. Returns `None` when nothing changed (the
/// common case, without allocating). A text that names an AWS access key id also loses
/// the 40-character words shaped like its secret access key.
pub fn redact_text(s: &str) -> Option<String> {
    redact_text_in(s, mentions_access_key_id(s))
}

/// [`redact_text`], told whether the record around the text carries an AWS access key
/// id (`aws`): then words shaped like a secret access key are secrets too.
fn redact_text_in(s: &str, aws: bool) -> Option<String> {
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut prev_word: &str = "";
    for (start, i) in word_ranges(s) {
        let word = &s[start..i];
        // `name=value` inside a query string or a header dump.
        let (secret_range, next_prev) = if let Some(eq) = word.find('=') {
            let (name, value) = (&word[..eq], &word[eq + 1..]);
            if !value.is_empty() && (is_secret_field(name) || looks_secret(value)) {
                (Some((start + eq + 1, i)), word)
            } else {
                (None, word)
            }
        } else if prev_word.eq_ignore_ascii_case("bearer")
            || prev_word.eq_ignore_ascii_case("basic")
            || prev_word.eq_ignore_ascii_case("token")
        {
            // `Authorization: Bearer abc...` written as text.
            let sep = &s[start.saturating_sub(1)..start];
            if sep == " " && word.len() >= 8 {
                (Some((start, i)), word)
            } else {
                (None, word)
            }
        } else if looks_secret(word) || (aws && is_aws_secret_shape(word)) {
            (Some((start, i)), word)
        } else {
            // A secret inside a path (`notes/ghp_....txt`): from that segment on.
            (path_secret(word).map(|at| (start + at, i)), word)
        };
        if let Some((a, b)) = secret_range {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(&s[last..a]);
            o.push_str(&redacted_word(&s[a..b]));
            last = b;
        }
        prev_word = next_prev;
    }
    out.map(|mut o| {
        o.push_str(&s[last..]);
        o
    })
}

/// Where a secret-looking segment of a `/`-separated word begins, if one does.
fn path_secret(word: &str) -> Option<usize> {
    if !word.contains('/') {
        return None;
    }
    let mut at = 0;
    for seg in word.split('/') {
        if looks_secret(seg) {
            return Some(at);
        }
        at += seg.len() + 1;
    }
    None
}

/// Redacts a string in place; true when something was redacted.
pub fn redact_string(s: &mut String) -> bool {
    redact_string_in(s, mentions_access_key_id(s))
}

fn redact_string_in(s: &mut String, aws: bool) -> bool {
    match redact_text_in(s, aws) {
        Some(r) => {
            *s = r;
            true
        }
        None => false,
    }
}

/// Redacts a JSON record in place: secret fields lose their value, every string is
/// scanned. Returns the number of values redacted.
pub fn redact_value(v: &mut Value) -> usize {
    let aws = holds_access_key_id(v);
    redact_value_in(v, aws)
}

/// True when a string anywhere in `v` names an AWS access key id.
fn holds_access_key_id(v: &Value) -> bool {
    match v {
        Value::String(s) => mentions_access_key_id(s),
        Value::Array(a) => a.iter().any(holds_access_key_id),
        Value::Object(m) => m.values().any(holds_access_key_id),
        _ => false,
    }
}

/// Redacts a raw record as text (what a provider hands the sync engine): a JSON
/// document through [`redact_value`] (written back compactly), any other text through
/// [`redact_text`]. Returns the number of values redacted.
pub fn redact_raw(raw: &mut String) -> usize {
    if !may_hold_secrets(raw) {
        return 0;
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(mut v) => {
            let n = redact_value(&mut v);
            if n > 0 {
                *raw = v.to_string();
            }
            n
        }
        Err(_) => usize::from(redact_string(raw)),
    }
}

fn redact_value_in(v: &mut Value, aws: bool) -> usize {
    match v {
        Value::String(s) => usize::from(redact_string_in(s, aws)),
        Value::Array(a) => a.iter_mut().map(|x| redact_value_in(x, aws)).sum(),
        Value::Object(m) => {
            let mut n = 0;
            for (k, val) in m.iter_mut() {
                if is_secret_field(k) && !val.is_null() && !is_hmac(val) {
                    if !matches!(val, Value::String(s) if s == REDACTED) {
                        *val = Value::String(REDACTED.to_string());
                        n += 1;
                    }
                } else {
                    n += redact_value_in(val, aws);
                }
            }
            n
        }
        _ => 0,
    }
}

/// Vault HMACs every secret in its audit log; an HMAC is not a secret.
fn is_hmac(v: &Value) -> bool {
    match v {
        Value::String(s) => s.starts_with("hmac-sha256:") || s.is_empty(),
        Value::Array(a) => a.iter().all(is_hmac),
        _ => false,
    }
}

/// Words whose presence anywhere in a record (in any letter case) means it may hold a
/// secret field, so it must take the full redaction path. Every name
/// [`is_secret_field`] accepts contains one of them.
const FIELD_TRIGGERS: &[&str] = &[
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "api.key",
    "api key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "cookie",
    "credential",
    "private_key",
    "privatekey",
    "private-key",
    "private.key",
    "private key",
    "bearer",
    "basic ",
];

/// A quick, conservative test on a record's text: false only when the record certainly
/// holds no secret field and no secret-looking word, so it can be stored as it is.
///
/// One case-insensitive multi-pattern pass for the field names, then one pass over the
/// words that skips every word too short to be key material.
pub fn may_hold_secrets(text: &str) -> bool {
    use aho_corasick::AhoCorasick;
    use std::sync::OnceLock;
    static TRIGGERS: OnceLock<AhoCorasick> = OnceLock::new();
    let triggers = TRIGGERS.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(FIELD_TRIGGERS)
            .expect("the trigger words form a valid automaton")
    });
    triggers.is_match(text) || has_secret_word(text) || has_aws_secret_pair(text)
}

/// True when `text` carries an AWS access key id and a word shaped like a secret access
/// key.
fn has_aws_secret_pair(text: &str) -> bool {
    mentions_access_key_id(text)
        && word_ranges(text).any(|(a, b)| b - a == 40 && is_aws_secret_shape(&text[a..b]))
}

/// True when a word of `text` (or the value of a `name=value` word) looks like key
/// material: the word test of [`redact_text`] without building its output.
fn has_secret_word(text: &str) -> bool {
    word_ranges(text)
        // The shortest secret `looks_secret` accepts is 16 bytes.
        .filter(|(start, end)| end - start >= 16)
        .any(|(start, end)| {
            let word = &text[start..end];
            let candidate = match word.find('=') {
                Some(eq) => &word[eq + 1..],
                None => word,
            };
            looks_secret(candidate) || path_secret(candidate).is_some()
        })
}

/// The byte ranges of the words of `s` (runs of [`is_word_byte`] bytes), in order.
fn word_ranges(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !is_word_byte(bytes[i]) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        (i > start).then_some((start, i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_quick_test_never_lets_a_secret_through() {
        // Every record the full path would change must fail the quick test.
        let records = [
            r#"{"headers":{"Authorization":"Bearer abcdefghijkl"}}"#,
            r#"{"X-Api-Key":"k123"}"#,
            r#"{"Api.Key":"k123"}"#,
            r#"{"PRIVATE-KEY":"k"}"#,
            r#"{"client_secret":"s"}"#,
            r#"{"session_token":"t"}"#,
            r#"{"Cookie":"a=b"}"#,
            r#"{"PWD":"hunter2"}"#,
            r#"{"note":"leaked tg_live_abcdefghijklmnopqrstuv here"}"#,
            r#"{"url":"/cb?code=ghp_abcdefghijklmnopqrstuvwxyz0123456789"}"#,
            r#"{"msg":"curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='"}"#,
            r#"{"m":"xoxb-123456789012-abcdefghijkl"}"#,
        ];
        for r in records {
            assert!(may_hold_secrets(r), "quick test missed: {r}");
        }
        let mut v: Value = serde_json::from_str(records[0]).unwrap();
        assert_eq!(redact_value(&mut v), 1);
        // A plain CloudTrail record takes the fast path.
        let plain = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accessKeyId":"AKIAIOSFODNN7EXAMPLE","arn":"arn:aws:iam::111122223333:user/partner-007"},"eventTime":"2024-03-01T08:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"198.51.100.7","userAgent":"aws-cli/2.15.30 Python/3.11.8","requestParameters":{"bucketName":"hr-exports-3","key":"payroll/2024-03.csv"},"eventID":"0b4f3c1e-8f1a-4c2e-9d3b-5a6e7f8091a2"}"#;
        assert!(!may_hold_secrets(plain));
        assert!(redact_text(plain).is_none());
    }

    #[test]
    fn secret_fields_lose_their_value() {
        let mut v = json!({
            "headers": {"Authorization": "Bearer abcdefghijkl", "X-Api-Key": "k123", "accept": "*/*"},
            "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "hashed_token": "0QbHm3bnNsXU9ENZBDHGEo0vZKSlSDX0YjWvI8YyDoE=",
            "token_id": 123,
            "auth": {"client_token": "hmac-sha256:abc", "accessor": "hmac-sha256:def"},
            "password": "hunter2"
        });
        assert_eq!(redact_value(&mut v), 4);
        let s = v.to_string();
        for gone in ["abcdefghijkl", "k123", "wJalrXUtnFEMI", "hunter2"] {
            assert!(!s.contains(gone), "{gone} in {s}");
        }
        for kept in [
            "AKIAIOSFODNN7EXAMPLE",
            "0QbHm3bnNs",
            "hmac-sha256:abc",
            "*/*",
        ] {
            assert!(s.contains(kept), "{kept} missing from {s}");
        }
    }

    #[test]
    fn secret_looking_words_are_found_in_free_text() {
        let t = "GET /v1/x?api_key=abc123def456&page=2 with tg_live_4f8Qk2LxN7pV0rT9sW3yZ1 and Bearer eyJhbGciOiJIUzI1NiJ9.e30.x";
        let r = redact_text(t).unwrap();
        assert!(!r.contains("abc123def456") && !r.contains("4f8Qk2LxN7pV0rT9sW3yZ1"));
        assert!(!r.contains("eyJhbGciOiJIUzI1NiJ9"), "{r}");
        assert!(
            r.contains("page=2") && r.contains("GET /v1/x?api_key=[REDACTED sha256:"),
            "{r}"
        );
        assert_eq!(
            redact_text("iam.amazonaws.com:CreateUser 203.0.113.9"),
            None
        );
        assert_eq!(redact_text("AKIAIOSFODNN7EXAMPLE"), None);
        let path = "s3://hr/notes/ghp_R2d2C3poBb8Lk4Mn6Pq8Rs0Tu2Vw4Xy6Za8.txt";
        assert!(may_hold_secrets(path));
        let r = redact_text(path).unwrap();
        assert!(r.starts_with("s3://hr/notes/[REDACTED sha256:"), "{r}");
    }

    #[test]
    fn shapes_are_found_beside_their_context() {
        let aws = json!({"id": "AKIAI44QH8DHBEXAMPLE", "v": "Je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
                         "sha": "4b825dc642cb6eb9a060e54bf8d69288fbee4904"});
        let mut v = aws.clone();
        assert!(may_hold_secrets(&aws.to_string()));
        assert_eq!(redact_value(&mut v), 1);
        assert_eq!(v["sha"], aws["sha"], "a hex digest is not a secret key");
        let mut alone = json!({"v": "Je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"});
        assert_eq!(
            redact_value(&mut alone),
            0,
            "no access key id, no secret key"
        );
        for t in [
            "s.Ab3dEf6hIj9kLm2nOp5qRs8t",
            "hvr.Yx7Qp2Lm9Nb4Vc6Zt1Rs8Kd3",
            "xoxe.xoxp-1-Ab3dEf6hIj9k",
            "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7d",
            "glrt-Ab3dEf6hIj9kLm2n",
        ] {
            assert!(looks_secret(t), "{t}");
        }
        for t in [
            "s.component_name_here",
            "sk-learn-pipeline-v2",
            "b.abcdefghijklmnopqrstuvwx",
        ] {
            assert!(!looks_secret(t), "{t}");
        }
    }
}
