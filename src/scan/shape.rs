//! The character classes, checksums and structure checks the detectors use.
//!
//! Every check takes the whole candidate (prefix included) and says whether it has the
//! vendor's documented structure; where a format carries a checksum, the check
//! recomputes it, so a look-alike with a wrong checksum is never a finding.

use base64::Engine as _;

const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Letters, digits, `_` and `-` (base64url without padding).
pub fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Standard base64 (letters, digits, `+`, `/`).
pub fn b64std(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

pub fn hex_lower(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

pub fn hex_any(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// GitLab token bodies: base64url, and the dots of the routable format.
pub fn gitlab_body(b: u8) -> bool {
    b64url(b) || b == b'.'
}

/// Slack tokens: letters, digits and the `-` between their fields.
pub fn slack_body(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// A byte that may be part of a word around a token: a token must not continue one.
pub fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `n` in base 62 (`0-9A-Za-z`), left-padded with `0` to `width` characters.
pub fn base62(mut n: u64, width: usize) -> String {
    let mut buf = vec![b'0'; width];
    for slot in buf.iter_mut().rev() {
        *slot = B62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(buf).expect("base62 alphabet is ASCII")
}

/// The 6-character checksum of GitHub's (and npm's) token format: CRC32 of the random
/// part, in base 62, left-padded with `0`.
pub fn crc32_b62(random: &str) -> String {
    base62(u64::from(crc32fast::hash(random.as_bytes())), 6)
}

/// `prefix` + 30 random base-62 characters + their 6-character CRC32 checksum: the
/// format GitHub introduced in 2021 (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`) and npm
/// adopted (`npm_`).
pub fn crc32_token(token: &str) -> bool {
    let Some(sep) = token.find('_') else {
        return false;
    };
    let body = &token[sep + 1..];
    if body.len() != 36 || !body.bytes().all(alnum) {
        return false;
    }
    let (random, check) = body.split_at(30);
    crc32_b62(random) == check
}

/// GitHub fine-grained personal access tokens: `github_pat_` + 22 base-62 characters
/// (the token id), `_`, and 59 base-62 characters. GitHub does not document a checksum
/// for this format, so only the structure is checked.
pub fn github_fine_grained(token: &str) -> bool {
    let Some(body) = token.strip_prefix("github_pat_") else {
        return false;
    };
    match body.split_once('_') {
        Some((id, rest)) => {
            id.len() == 22 && rest.len() == 59 && id.bytes().all(alnum) && rest.bytes().all(alnum)
        }
        None => false,
    }
}

/// GitLab tokens: the legacy form is the prefix and 20 base64url characters; the
/// routable form (GitLab 17.x) is the prefix, a base64url payload of at least 27
/// characters, `.`, a short version field and `.` with a base-36 CRC field. The CRC's
/// input is not publicly specified, so the routable form is checked for structure only.
pub fn gitlab(token: &str) -> bool {
    let Some(dash) = token.find('-') else {
        return false;
    };
    let body = &token[dash + 1..];
    let parts: Vec<&str> = body.split('.').collect();
    match parts.as_slice() {
        [legacy] => legacy.len() == 20 && legacy.bytes().all(b64url),
        [payload, version, crc] => {
            payload.len() >= 27
                && payload.bytes().all(b64url)
                && (1..=4).contains(&version.len())
                && version
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
                && (6..=12).contains(&crc.len())
                && crc
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        }
        _ => false,
    }
}

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Slack bot tokens: `xoxb-<team id digits>-<bot id digits>-<24+ letters and digits>`.
pub fn slack_bot(token: &str) -> bool {
    let f: Vec<&str> = token.split('-').collect();
    f.len() == 4
        && digits(f[1], 8, 15)
        && digits(f[2], 8, 15)
        && f[3].len() >= 24
        && f[3].bytes().all(alnum)
}

/// Slack user and workspace tokens: `xoxp-` / `xoxa-` / `xoxs-` followed by three
/// numeric fields and a 32-character hex field (`xoxa-2-…` has a version field first).
pub fn slack_user(token: &str) -> bool {
    let f: Vec<&str> = token.split('-').collect();
    let (nums, last) = match f.as_slice() {
        [_, rest @ .., last] => (rest, *last),
        _ => return false,
    };
    (2..=4).contains(&nums.len())
        && nums.iter().all(|n| digits(n, 1, 15))
        && last.len() >= 24
        && last.bytes().all(alnum)
}

/// Slack app-level tokens: `xapp-<version>-<app id>-<digits>-<64 hex>`.
pub fn slack_app(token: &str) -> bool {
    let f: Vec<&str> = token.split('-').collect();
    f.len() == 5
        && digits(f[1], 1, 2)
        && f[2].len() >= 9
        && f[2]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && digits(f[3], 8, 15)
        && f[4].len() == 64
        && f[4].bytes().all(hex_lower)
}

/// Slack configuration tokens: `xoxe.xoxp-1-<body>` and their refresh tokens `xoxe-1-<body>`.
pub fn slack_config(token: &str) -> bool {
    let body = token
        .strip_prefix("xoxe.xoxp-1-")
        .or_else(|| token.strip_prefix("xoxe.xoxb-1-"))
        .or_else(|| token.strip_prefix("xoxe-1-"));
    body.is_some_and(|b| b.len() >= 80 && b.bytes().all(slack_body))
}

/// OpenAI secret keys carry `T3BlbkFJ` (base64 of "OpenAI") inside the random part;
/// the legacy form is exactly `sk-` + 20 + `T3BlbkFJ` + 20 characters.
pub fn openai(token: &str) -> bool {
    let at = token.find("T3BlbkFJ");
    if token.starts_with("sk-proj-")
        || token.starts_with("sk-svcacct-")
        || token.starts_with("sk-admin-")
    {
        return at.is_some_and(|i| i >= 20 && token.len() - i - 8 >= 20);
    }
    let Some(body) = token.strip_prefix("sk-") else {
        return false;
    };
    body.len() == 48 && &body[20..28] == "T3BlbkFJ" && body.bytes().all(alnum)
}

/// Anthropic keys: the prefix, 93 base64url characters and `AA`.
pub fn anthropic(token: &str) -> bool {
    let body = token
        .strip_prefix("sk-ant-api03-")
        .or_else(|| token.strip_prefix("sk-ant-admin01-"));
    body.is_some_and(|b| b.len() == 95 && b.ends_with("AA") && b.bytes().all(b64url))
}

/// SendGrid keys: `SG.` + 22 base64url characters (the key id) + `.` + 43 characters.
pub fn sendgrid(token: &str) -> bool {
    let Some(body) = token.strip_prefix("SG.") else {
        return false;
    };
    match body.split_once('.') {
        Some((id, secret)) => {
            id.len() == 22
                && secret.len() == 43
                && id.bytes().all(b64url)
                && secret.bytes().all(b64url)
        }
        None => false,
    }
}

/// Decodes base64url with or without padding.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// A JSON Web Token: three base64url segments whose first decodes to a JSON object with
/// an `alg` member (an unsigned `alg: none` token carries no secret and is left out).
pub fn jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, sig] = parts.as_slice() else {
        return false;
    };
    if payload.len() < 4 || sig.len() < 16 {
        return false;
    }
    let Some(json) = b64url_decode(header) else {
        return false;
    };
    let Ok(serde_json::Value::Object(h)) = serde_json::from_slice(&json) else {
        return false;
    };
    let alg = h.get("alg").and_then(|a| a.as_str());
    alg.is_some_and(|a| !a.eq_ignore_ascii_case("none"))
        && b64url_decode(payload).is_some_and(|p| p.starts_with(b"{"))
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Upper case, lower case and digits all present: random text, not a word or a number.
/// Whether `s` looks like a random key rather than a word or a placeholder: upper- and
/// lower-case letters, and a digit, or else (a random key has no digit now and then:
/// 40 base64 characters about once in a thousand) many distinct characters and capitals
/// spread as chance spreads them, not one per word as in `YourSecretGoesHere`.
pub fn random_like(s: &str) -> bool {
    if mixed(s) {
        return true;
    }
    let upper = s.bytes().filter(|b| b.is_ascii_uppercase()).count();
    let letters = s.bytes().filter(|b| b.is_ascii_alphabetic()).count();
    let mut seen = [false; 256];
    s.bytes().for_each(|b| seen[b as usize] = true);
    let distinct = seen.iter().filter(|&&x| x).count();
    upper > 0
        && upper < letters
        && distinct * 2 >= s.len()
        && (3 * letters..=7 * letters).contains(&(10 * upper))
}

pub fn mixed(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase())
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && s.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_key_without_a_digit_is_random_like_and_a_placeholder_is_not() {
        // 40 base64 characters with no digit, as one AWS secret in a thousand is.
        assert!(random_like("wJalrXUtnFEMIKsMDENGbPxRfiCYzKlWqbHvTdQe"));
        assert!(random_like("aB3"));
        for placeholder in [
            "ThisIsMyPlaceholderSecretKeyForTestingAB",
            "YourTwilioApiSecretGoesHereNowOkay",
            "abcdefabcdefabcdefabcdefabcdefabcdefabcd",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN",
        ] {
            assert!(!random_like(placeholder), "{placeholder}");
        }
    }

    #[test]
    fn base62_pads_and_orders_like_the_format() {
        assert_eq!(base62(0, 6), "000000");
        assert_eq!(base62(61, 2), "0z");
        assert_eq!(base62(62, 2), "10");
        assert_eq!(base62(u64::from(u32::MAX), 6), "4gfFC3");
    }

    #[test]
    fn crc32_token_rejects_a_changed_character() {
        let random = "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ";
        let good = format!("ghp_{random}{}", crc32_b62(random));
        assert!(crc32_token(&good));
        let bad = good.replacen('z', "y", 1);
        assert!(!crc32_token(&bad));
    }

    #[test]
    fn entropy_of_repeats_is_zero() {
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
    }
}
