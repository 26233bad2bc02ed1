//! Detectors that need the text around a keyword: secrets with no prefix of their own
//! (an AWS secret access key, a Datadog or legacy Cloudflare key, a Twilio secret), and
//! the multi-line ones (PEM private keys, Google service-account files).
//!
//! Each takes the chunk and the keyword's range and returns at most one candidate.

use super::rules::Cand;
use super::shape::{alnum, b64std, b64url, hex_lower, random_like};
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

/// An AWS secret access key: 40 random-looking base64 characters after a
/// secret-key keyword or after an access key id on the same line (the CSV that the
/// console hands out); linked to the access key id found within a few lines.
pub fn aws_secret(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let line = line_of(text, kw.start);
    let run = first_run(text, kw.end..line.end, b64std, 40..41, random_like)?;
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
    let run = first_run(text, kw.end..line.end, b64url, 40..41, random_like)?;
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

/// A Twilio id (`SK` or `AC` + 32 lower-case hex, standing alone: no letter, digit or
/// `_` on either side) within `w`: its range.
fn twilio_sid(text: &[u8], w: Range<usize>, prefix: &str) -> Option<Range<usize>> {
    let p = prefix.as_bytes();
    memchr::memmem::find_iter(&text[w.clone()], p)
        .map(|at| w.start + at)
        .find(|&at| {
            let end = at + 34;
            end <= text.len()
                && (at == 0 || !super::shape::word(text[at - 1]))
                && (end == text.len() || !super::shape::word(text[end]))
                && text[at + 2..end].iter().all(|&b| hex_lower(b))
        })
        .map(|at| at..at + 34)
}

/// The run of `class` bytes of `len` in `w` nearest to `near` that stands on a line
/// naming what it is (a `token`, `secret`, `auth` or `password` before it on its line),
/// so that a hash or an id beside a Twilio SID (`md5 <32 hex>`) is not taken for its
/// secret, and a SID pairs with its own secret rather than a neighbouring block's.
fn named_run(
    text: &[u8],
    w: Range<usize>,
    near: usize,
    class: fn(u8) -> bool,
    len: usize,
    ok: impl Fn(&str) -> bool,
) -> Option<Range<usize>> {
    runs(text, w, class)
        .filter(|run| {
            let before = &text[line_of(text, run.start).start..run.start];
            run.len() == len
                && ok(as_str(text, run.clone()))
                && ["token", "secret", "auth", "password"].iter().any(|n| {
                    before
                        .windows(n.len())
                        .any(|x| x.eq_ignore_ascii_case(n.as_bytes()))
                })
        })
        .min_by_key(|run| run.start.abs_diff(near))
}

/// Twilio API keys: the key's SID (`SK…`) near a line naming Twilio, and the
/// 32-character secret nearest to it, named as a secret on its line. Both must be
/// there: the SID alone is not secret.
pub fn twilio_api_key(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let w = window(text, kw.start, PAIR_LINES);
    let sid = twilio_sid(text, w, "SK")?;
    let around = window(text, sid.start, PAIR_LINES);
    let run = named_run(text, around, sid.start, alnum, 32, random_like)?;
    Some(cand(run, Some(as_str(text, sid).to_string())))
}

/// Twilio account auth tokens: the account SID (`AC…`) near a line naming Twilio, and
/// the 32-hex token nearest to it, named as a token on its line.
pub fn twilio_auth_token(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let w = window(text, kw.start, PAIR_LINES);
    let sid = twilio_sid(text, w, "AC")?;
    let around = window(text, sid.start, PAIR_LINES);
    let run = named_run(text, around, sid.start, alnum, 32, |s| {
        s.bytes().all(hex_lower) && s.bytes().any(|b| b.is_ascii_alphabetic())
    })?;
    Some(cand(run, Some(as_str(text, sid).to_string())))
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
/// or `\n`-escaped, as in JSON) or the BEGIN/END lines, so the same key fingerprints the
/// same in a `.pem` file, in a service-account file and on one line of an environment
/// file.
pub fn pem_body(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.replace("\\r", "").replace("\\n", "\n").lines() {
        let l = strip_markers(line);
        let l = code_trim(&l);
        if l.contains(':') || l.starts_with('=') {
            continue;
        }
        out.extend(
            l.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')),
        );
    }
    out
}

/// A line of key text without what source code wraps around it: surrounding blanks,
/// quotes, a `\` line continuation, a `+` concatenation (after a blank or a quote), a
/// trailing `,` `;` `)`, and a comment leader (`#`, `//`, `//!`, `*` before a blank). The
/// base64 itself is never trimmed, so a key fingerprints the same however it is quoted.
fn code_trim(line: &str) -> &str {
    let mut l = line;
    loop {
        let before = l;
        l = l.trim();
        // A comment leader (`#`, `//`, `///`, `//!`, `*`, `--`, `;`) before a blank: base64
        // never has a blank, so this is never part of the key.
        let lead = l
            .find(|c: char| !matches!(c, '/' | '#' | '*' | '!' | ';' | '-' | '%'))
            .unwrap_or(l.len());
        if lead > 0 && (lead == l.len() || l[lead..].starts_with(char::is_whitespace)) {
            l = &l[lead..];
        }
        l = l.strip_prefix("+ ").unwrap_or(l);
        l = l.trim_start_matches(['"', '\'', '`', '(']);
        l = l.trim_end_matches(['\\', '"', '\'', '`', ',', ';', ')']);
        if let Some(r) = l.strip_suffix('+') {
            if r.ends_with(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`')) {
                l = r;
            }
        }
        if l == before {
            return l;
        }
    }
}

/// `line` without its `-----BEGIN …-----` and `-----END …-----` markers.
fn strip_markers(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("-----") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 5..];
        match after.find("-----") {
            Some(close) => rest = &after[close + 5..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The most text a PEM block may span, BEGIN to END (an RSA 16384-bit key is about
/// 13 KB of PEM).
const PEM_MAX: usize = 32 * 1024;

/// PEM private keys: the `-----BEGIN … PRIVATE KEY-----` keyword, then nothing but key
/// lines up to the `-----END` line of the same label, within [`PEM_MAX`] bytes. A key
/// line is base64 (as in a `.pem` file, or quoted, `\n`-escaped or `\`-continued as in
/// source code), or an RFC 1421/4880 header (`Proc-Type:`, `Version:`) before the body,
/// or empty. Any other line, another BEGIN or an END of another label ends the search
/// without a hit: a truncated header in documentation never runs on to a later key's
/// END. At least 64 characters of key must stand between them (a header with `...` as
/// its body is no key).
pub fn pem(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    let label = &text[kw.start + 11..kw.end - 5];
    let limit = (kw.start + PEM_MAX).min(text.len());
    let mut end_marker = b"-----END ".to_vec();
    end_marker.extend_from_slice(label);
    end_marker.extend_from_slice(b"-----");
    let mut i = kw.end;
    let mut in_body = false;
    let end = loop {
        if i >= limit {
            return None;
        }
        let (seg_end, next) = pem_segment(text, i, limit);
        let seg = &text[i..seg_end];
        if let Some(at) = memchr::memmem::find(seg, &end_marker) {
            // The key may share the END line (a PEM written on one line).
            if !seg[..at]
                .split(|b| b.is_ascii_whitespace())
                .all(|w| pem_line(w, false).is_some())
            {
                return None;
            }
            break i + at + end_marker.len();
        }
        if memchr::memmem::find(seg, b"-----").is_some() {
            return None;
        }
        let is_first = i == kw.end;
        let ok = if is_first {
            // The BEGIN line's rest: the start of a key written on one line, or nothing.
            seg.split(|b| b.is_ascii_whitespace())
                .all(|w| pem_line(w, false).is_some())
        } else {
            match pem_line(seg, !in_body) {
                Some(PemLine::Body) => {
                    in_body = true;
                    true
                }
                Some(_) => true,
                None => false,
            }
        };
        if !ok {
            return None;
        }
        i = next;
    };
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

/// The end of the PEM line that starts at `i` (at a line break or a `\n` escape) and
/// where the next one starts.
fn pem_segment(text: &[u8], i: usize, limit: usize) -> (usize, usize) {
    let mut j = i;
    while j < limit {
        match text[j] {
            b'\n' => return (j, j + 1),
            b'\\' if j + 1 < limit && matches!(text[j + 1], b'n' | b'r') => {
                let mut k = j + 2;
                // `\r\n` escapes: one break.
                if text[j + 1] == b'r' && k + 1 < limit && text[k] == b'\\' && text[k + 1] == b'n' {
                    k += 2;
                }
                return (j, k);
            }
            _ => j += 1,
        }
    }
    (limit, limit)
}

enum PemLine {
    Empty,
    Header,
    Body,
}

/// What one line between BEGIN and END is, once the quoting and continuation of source
/// code is trimmed ([`code_trim`]): `None` when it cannot be part of a key.
fn pem_line(line: &[u8], header_allowed: bool) -> Option<PemLine> {
    let t = code_trim(std::str::from_utf8(line).ok()?).as_bytes();
    if t.is_empty() {
        return Some(PemLine::Empty);
    }
    let pad = t.iter().position(|&b| b == b'=').unwrap_or(t.len());
    if t[..pad].iter().all(|&b| b64std(b)) && t[pad..].iter().all(|&b| b == b'=') {
        return Some(PemLine::Body);
    }
    // The `=` line of a PGP block's CRC24 checksum.
    if t[0] == b'=' && t.len() <= 8 && t[1..].iter().all(|&b| b64std(b)) {
        return Some(PemLine::Body);
    }
    let colon = t.iter().position(|&b| b == b':')?;
    (header_allowed
        && colon > 0
        && t[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-'))
    .then_some(PemLine::Header)
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

/// How far from a keyword the braces of its JSON object are looked for.
const OBJECT_MAX: usize = 16 * 1024;

/// The range of the innermost `{ … }` around `at`, within [`OBJECT_MAX`] bytes either
/// side (braces inside strings are not expected in a key file).
fn enclosing_object(text: &[u8], at: usize) -> Option<Range<usize>> {
    let mut depth = 0usize;
    let mut start = None;
    for i in (at.saturating_sub(OBJECT_MAX)..at).rev() {
        match text[i] {
            b'}' => depth += 1,
            b'{' if depth == 0 => {
                start = Some(i);
                break;
            }
            b'{' => depth -= 1,
            _ => {}
        }
    }
    let start = start?;
    let mut depth = 0usize;
    for (i, &b) in text
        .iter()
        .enumerate()
        .take((at + OBJECT_MAX).min(text.len()))
        .skip(at)
    {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(start..i + 1),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Google service-account key files: `"type": "service_account"` with a
/// `private_key` holding a PEM key and a `client_email`; the key id (`private_key_id`)
/// or the account's e-mail is the public id.
pub fn google_service_account(text: &[u8], kw: Range<usize>) -> Option<Cand> {
    // The JSON object holding the keyword: the members of a neighbouring object (a
    // truncated example just above) are not this file's.
    let w = enclosing_object(text, kw.start).unwrap_or_else(|| window(text, kw.start, 30));
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
        s.starts_with("s.") && random_like(&s[2..])
    })?;
    Some(cand(run, None))
}
