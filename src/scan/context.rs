//! Detectors that need the text around a keyword: secrets with no prefix of their own
//! (an AWS secret access key, a Datadog or legacy Cloudflare key, a Twilio secret), and
//! the multi-line ones (PEM private keys, Google service-account files).
//!
//! Each takes the chunk and the keyword's range and returns at most one candidate.

use super::rules::Cand;
use super::shape::{alnum, b64std, b64url, hex_lower, mixed};
use std::ops::Range;

/// How many lines either side of a keyword a pair (key id and secret) may be apart.
const PAIR_LINES: usize = 5;

/// The start and end of the line holding `at`.
pub fn line_of(text: &[u8], at: usize) -> Range<usize> {
    let start = memchr::memrchr(b'\n', &text[..at]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |i| at + i);
    start..end
}

/// The lines from `n` before to `n` after the line holding `at`.
pub fn window(text: &[u8], at: usize, n: usize) -> Range<usize> {
    let mut start = line_of(text, at).start;
    for _ in 0..n {
        if start == 0 {
            break;
        }
        start = line_of(text, start - 1).start;
    }
    let mut end = line_of(text, at).end;
    for _ in 0..n {
        if end >= text.len() {
            break;
        }
        end = line_of(text, end + 1).end;
    }
    start..end
}

/// Runs of `class` bytes inside `r`, each standing alone (the bytes on either side are
/// not letters, digits or `class` bytes).
fn runs(
    text: &[u8],
    r: Range<usize>,
    class: fn(u8) -> bool,
) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut i = r.start;
    let end = r.end;
    std::iter::from_fn(move || {
        while i < end {
            if class(text[i]) {
                let s = i;
                while i < end && class(text[i]) {
                    i += 1;
                }
                let before_ok = s == 0 || !(alnum(text[s - 1]) || class(text[s - 1]));
                let after_ok = i >= text.len() || !(alnum(text[i]) || class(text[i]));
                if before_ok && after_ok {
                    return Some(s..i);
                }
            } else {
                i += 1;
            }
        }
        None
    })
}

fn first_run(
    text: &[u8],
    r: Range<usize>,
    class: fn(u8) -> bool,
    len: Range<usize>,
    ok: impl Fn(&str) -> bool,
) -> Option<Range<usize>> {
    runs(text, r, class).find(|run| len.contains(&run.len()) && ok(as_str(text, run.clone())))
}

fn as_str(text: &[u8], r: Range<usize>) -> &str {
    std::str::from_utf8(&text[r]).unwrap_or("")
}

fn cand(r: Range<usize>, key_id: Option<String>) -> Cand {
    Cand {
        span: r,
        material: None,
        key_id,
    }
}

/// An AWS access key id (`AKIA`, `ASIA`, `ABIA`, `ACCA` + 16 of `A-Z2-7`) in `r`.
fn aws_key_id(text: &[u8], r: Range<usize>) -> Option<String> {
    let upper = |b: u8| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b);
    runs(text, r, upper)
        .filter(|run| run.len() == 20)
        .map(|run| as_str(text, run).to_string())
        .find(|id| {
            ["AKIA", "ASIA", "ABIA", "ACCA"]
                .iter()
                .any(|p| id.starts_with(p))
        })
}

/// An AWS secret access key: 40 base64 characters (mixed case and digits) after a
/// secret-key keyword or after an access key id on the same line (the CSV that the
/// console hands out); linked to the access key id found within a few lines.
pub fn aws_secret(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let run = first_run(text, kw.end..line.end, b64std, 40..41, mixed)?;
    let id = aws_key_id(text, window(text, kw.start, PAIR_LINES));
    Some(cand(run, id))
}

/// Datadog API keys: 32 lower-case hex digits on a line naming Datadog.
pub fn datadog_api(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let run = first_run(text, kw.end..line.end, hex_lower, 32..33, |_| true)?;
    Some(cand(run, None))
}

/// Datadog application keys: 40 lower-case hex digits on a line naming an app key.
pub fn datadog_app(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let run = first_run(text, kw.end..line.end, hex_lower, 40..41, |_| true)?;
    Some(cand(run, None))
}

/// Cloudflare API tokens from before the prefixed format: 40 base64url characters on a
/// line naming Cloudflare.
pub fn cloudflare_token(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let run = first_run(text, kw.end..line.end, b64url, 40..41, mixed)?;
    Some(cand(run, None))
}

/// Cloudflare global API keys from before the prefixed format: 37 to 45 lower-case hex
/// digits on a line naming the global key.
pub fn cloudflare_global(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let run = first_run(text, kw.end..line.end, hex_lower, 37..46, |s| {
        s.bytes().any(|b| b.is_ascii_alphabetic())
    })?;
    Some(cand(run, None))
}

/// A Twilio id (`SK` or `AC` + 32 lower-case hex) within a few lines of `at`.
fn twilio_sid(text: &[u8], w: Range<usize>, prefix: &str) -> Option<String> {
    runs(text, w, alnum)
        .filter(|r| r.len() == 34)
        .map(|r| as_str(text, r))
        .find(|s| s.starts_with(prefix) && s[2..].bytes().all(hex_lower))
        .map(str::to_string)
}

/// Twilio API keys: the key's SID (`SK…`) and its 32-character secret near a line
/// naming Twilio. Both must be there: the SID alone is not secret.
pub fn twilio_api_key(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let w = window(text, kw.start, PAIR_LINES);
    let sid = twilio_sid(text, w.clone(), "SK")?;
    let run = first_run(text, w, alnum, 32..33, mixed)?;
    Some(cand(run, Some(sid)))
}

/// Twilio account auth tokens: the account SID (`AC…`) and a 32-hex token near a line
/// naming Twilio.
pub fn twilio_auth_token(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let w = window(text, kw.start, PAIR_LINES);
    let sid = twilio_sid(text, w.clone(), "AC")?;
    let run = first_run(text, w, alnum, 32..33, |s| {
        s.bytes().all(hex_lower) && s.bytes().any(|b| b.is_ascii_alphabetic())
    })?;
    Some(cand(run, Some(sid)))
}

/// Azure storage account keys in a connection string: `AccountKey=` + 86 base64
/// characters + `==`, with the account name as the public id.
pub fn azure_storage(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let start = kw.end;
    let mut end = start;
    while end < line.end && (b64std(text[end]) || text[end] == b'=') {
        end += 1;
    }
    let key = as_str(text, start..end);
    if key.len() != 88 || !key.ends_with("==") || key[..86].contains('=') {
        return None;
    }
    let account = find_in(text, line, b"accountname=").map(|at| {
        let mut e = at;
        while e < text.len() && (alnum(text[e]) || text[e] == b'-') {
            e += 1;
        }
        as_str(text, at..e).to_string()
    });
    Some(cand(start..end, account.filter(|a| !a.is_empty())))
}

/// The offset just after the first case-insensitive occurrence of `needle` in `r`.
fn find_in(text: &[u8], r: Range<usize>, needle: &[u8]) -> Option<usize> {
    text[r.clone()]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|i| r.start + i + needle.len())
}

/// Private key material in a canonical form: the base64 body without line breaks (real
/// or `\n`-escaped, as in JSON), so the same key fingerprints the same in a `.pem` file
/// and in a service-account file.
pub fn pem_body(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.replace("\\n", "\n").lines() {
        let l = line.trim().trim_matches('"');
        if l.starts_with("-----") || l.contains(':') || l.starts_with('=') {
            continue;
        }
        out.extend(
            l.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')),
        );
    }
    out
}

/// PEM private keys: the `-----BEGIN … PRIVATE KEY-----` keyword, an `-----END` line of
/// the same label within 64 KiB, and at least 64 characters of key between them (a
/// header with `...` as its body, as in documentation, is no key).
pub fn pem(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let label = &text[kw.start + 11..kw.end - 5];
    let limit = (kw.end + 65_536).min(text.len());
    let mut end_marker = b"-----END ".to_vec();
    end_marker.extend_from_slice(label);
    end_marker.extend_from_slice(b"-----");
    let at = memchr::memmem::find(&text[kw.end..limit], &end_marker)?;
    let end = kw.end + at + end_marker.len();
    let body = pem_body(as_str(text, kw.start..end));
    if body.len() < 64 {
        return None;
    }
    Some(Cand {
        span: kw.start..end,
        material: Some(body),
        key_id: None,
    })
}

/// The value of the JSON string member `name` within `r`: its range, escapes kept.
fn json_member(text: &[u8], r: Range<usize>, name: &[u8]) -> Option<Range<usize>> {
    let mut quoted = vec![b'"'];
    quoted.extend_from_slice(name);
    quoted.push(b'"');
    let after = memchr::memmem::find(&text[r.clone()], &quoted)? + r.start + quoted.len();
    let mut i = after;
    while i < r.end && matches!(text[i], b' ' | b'\t' | b':' | b'\r' | b'\n') {
        i += 1;
    }
    if i >= r.end || text[i] != b'"' {
        return None;
    }
    let start = i + 1;
    let mut j = start;
    while j < r.end && text[j] != b'"' {
        j += if text[j] == b'\\' { 2 } else { 1 };
    }
    (j < r.end).then_some(start..j)
}

/// Google service-account key files: `"type": "service_account"` with a
/// `private_key` holding a PEM key and a `client_email`; the key id (`private_key_id`)
/// or the account's e-mail is the public id.
pub fn google_service_account(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let w = window(text, kw.start, 30);
    let key = json_member(text, w.clone(), b"private_key")?;
    let body = pem_body(as_str(text, key.clone()));
    if !as_str(text, key.clone()).contains("PRIVATE KEY") || body.len() < 64 {
        return None;
    }
    let email = json_member(text, w.clone(), b"client_email")?;
    let id = json_member(text, w, b"private_key_id")
        .filter(|r| !r.is_empty())
        .unwrap_or(email);
    Some(Cand {
        span: key,
        material: Some(body),
        key_id: Some(as_str(text, id).to_string()),
    })
}

/// Legacy Vault tokens (`s.` + 24 characters) only where the line names a Vault token.
pub fn vault_legacy(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let dotted = |b: u8| alnum(b) || b == b'.';
    let run = first_run(text, kw.end..line.end, dotted, 26..27, |s| {
        s.starts_with("s.") && mixed(&s[2..])
    })?;
    Some(cand(run, None))
}
