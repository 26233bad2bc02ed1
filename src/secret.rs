//! Key material: generation, recognition and fingerprints.
//!
//! Format: `<prefix>_<22 base62 random chars><6 base62 check chars>`. The random part is
//! 128 bits from the OS CSPRNG (22 base62 digits hold 130.9 bits, so every 128-bit value
//! fits); the check part is the CRC32 of everything before it, in base62, so a leaked key
//! can be recognised offline without a lookup. Only the [`mask`]ed form
//! (the prefix and the first 4 random chars) and the [`fingerprint`] are ever stored.

use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 22;
const CHECK_LEN: usize = 6;

/// A secret key. Zeroized on drop; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret received from a provider.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself. Call only where it is delivered.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The non-secret part shown to people: the prefix and 4 random chars.
    pub fn display_prefix(&self) -> String {
        display_prefix(&self.0)
    }

    /// `sha256:` + the first 32 hex digits of SHA-256 of the secret.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}…)", self.display_prefix())
    }
}

/// Why a prefix is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key prefix `{0}`: use 1 to 16 characters of a-z, A-Z, 0-9 and `_`, starting with a letter")]
pub struct BadPrefix(pub String);

/// Checks that a prefix is usable in the key format.
pub fn check_prefix(prefix: &str) -> Result<(), BadPrefix> {
    let ok = (1..=16).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_alphabetic())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(BadPrefix(prefix.to_string()))
    }
}

fn base62_fixed(mut n: u128, len: usize, out: &mut String) {
    let mut buf = vec![b'0'; len];
    for slot in buf.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out.push_str(std::str::from_utf8(&buf).expect("alphabet is ASCII"));
    buf.zeroize();
}

fn checksum(body: &str) -> String {
    let mut s = String::with_capacity(CHECK_LEN);
    base62_fixed(crc32fast::hash(body.as_bytes()) as u128, CHECK_LEN, &mut s);
    s
}

/// Generates a new key with `prefix` from 128 bits of the OS CSPRNG.
pub fn generate(prefix: &str) -> Result<Secret, BadPrefix> {
    check_prefix(prefix)?;
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    let mut n = u128::from_le_bytes(bytes);
    bytes.zeroize();
    let mut s = String::with_capacity(prefix.len() + 1 + RANDOM_LEN + CHECK_LEN);
    s.push_str(prefix);
    s.push('_');
    base62_fixed(n, RANDOM_LEN, &mut s);
    n.zeroize();
    let check = checksum(&s);
    s.push_str(&check);
    Ok(Secret(s))
}

/// True when `candidate` has the key format and its checksum matches: a real key of this
/// format, not a look-alike. Used by the leak scanner.
pub fn is_well_formed(candidate: &str) -> bool {
    let Some(sep) = candidate.rfind('_') else {
        return false;
    };
    let (prefix, tail) = (&candidate[..sep], &candidate[sep + 1..]);
    if check_prefix(prefix).is_err()
        || tail.len() != RANDOM_LEN + CHECK_LEN
        || !tail.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return false;
    }
    let (body, check) = candidate.split_at(candidate.len() - CHECK_LEN);
    checksum(body) == check
}

/// Public prefixes that providers put in front of their secrets, longest first where one
/// begins another. They name the kind of secret and carry nothing of its value.
const PUBLIC_PREFIXES: &[&str] = &[
    // GitHub
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    // GitLab
    "glpat-",
    "gldt-",
    "glrt-",
    "glptt-",
    "glcbt-",
    "glimt-",
    "gloas-",
    "glsoat-",
    "glft-",
    "glagent-",
    "GR1348941",
    // OpenAI, Anthropic
    "sk-ant-api03-",
    "sk-ant-admin01-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-",
    // Stripe
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "whsec_",
    // Slack
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxe-",
    "xapp-",
    "xoxs-",
    // Vault / OpenBao (service, batch, recovery; legacy one-letter forms)
    "hvs.",
    "hvb.",
    "hvr.",
    "s.",
    "b.",
    "r.",
    // Package registries, SaaS
    "npm_",
    "pypi-",
    "dckr_pat_",
    "SG.",
    "AIza",
    "dop_v1_",
    "shpat_",
    "shpss_",
];

/// The public prefix of a secret: a known provider prefix, or for keyaudit's own format
/// (`<prefix>_<random><check>`, recognised by its checksum) everything up to the last `_`.
/// Empty when the secret has no prefix that is known to be public.
pub fn public_prefix(secret: &str) -> &str {
    if is_well_formed(secret) {
        if let Some(sep) = secret.rfind('_') {
            return &secret[..=sep];
        }
    }
    PUBLIC_PREFIXES
        .iter()
        .find(|p| secret.starts_with(**p) && secret.len() > p.len())
        .map_or("", |p| &secret[..p.len()])
}

/// The one rule for what of a secret may be shown to a person: its public prefix (see
/// [`public_prefix`]) and at most 4 more characters, never more than a quarter of the
/// characters after the prefix. Counts characters, not bytes, so any text is safe.
pub fn mask(secret: &str) -> String {
    let prefix = public_prefix(secret);
    let rest = &secret[prefix.len()..];
    let shown = (rest.chars().count() / 4).min(4);
    let mut out = String::with_capacity(prefix.len() + 4 * shown);
    out.push_str(prefix);
    out.extend(rest.chars().take(shown));
    out
}

/// The non-secret display prefix of a key string ([`mask`]).
pub fn display_prefix(secret: &str) -> String {
    mask(secret)
}

/// `sha256:` + the first 32 hex digits of SHA-256 of `secret`.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let k = generate("tg_live").unwrap();
            assert!(is_well_formed(k.expose()), "{}", k.expose());
            assert_eq!(k.expose().len(), "tg_live_".len() + 28);
            assert!(seen.insert(k.expose().to_string()));
        }
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let k = generate("ka").unwrap();
        let mut s = k.expose().to_string();
        let i = 5;
        let c = if s.as_bytes()[i] == b'a' { "b" } else { "a" };
        s.replace_range(i..i + 1, c);
        assert!(!is_well_formed(&s));
        assert!(!is_well_formed("ka_short"));
        assert!(!is_well_formed("no-separator"));
    }

    #[test]
    fn debug_and_prefix_never_show_the_secret() {
        let k = generate("ka").unwrap();
        let shown = format!("{k:?} {}", k.display_prefix());
        assert!(!shown.contains(&k.expose()[3..]));
        assert_eq!(k.display_prefix().len(), "ka_".len() + 4);
        assert!(k.fingerprint().starts_with("sha256:") && k.fingerprint().len() == 39);
    }

    /// Every format keyaudit handles, with what may be shown of it.
    #[test]
    fn masking_shows_the_public_prefix_and_at_most_four_characters() {
        let own = generate("tg_live").unwrap();
        let own_shown = mask(own.expose());
        assert_eq!(own_shown, own.expose()[.."tg_live_".len() + 4]);
        let cases = [
            // Vault tokens contain `_` and `.` inside the random part.
            ("hvs.CAESIJ_abc_def_ghijklmnopqrstuvwxyz012345", "hvs.CAES"),
            ("s.Xq2_3fG_h4k9LmN0pQrStUvW", "s.Xq2_"),
            // An AWS secret access key has no public prefix and may contain `/` and `+`.
            ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJal"),
            ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7"),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
                "github_pat_11AB",
            ),
            ("glpat-xxxxxxxxxxxxxxxxxxxx", "glpat-xxxx"),
            (
                "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
                "sk-proj-abcd",
            ),
            ("xoxb-123456789012-1234567890123-AbCdEfGhIjKl", "xoxb-1234"),
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC3"),
            // Short secrets show at most a quarter.
            ("abcdefgh", "ab"),
            ("abc", ""),
            ("", ""),
            // A prefix alone is not a secret with a prefix.
            ("ghp_", "g"),
            // Characters, not bytes: never a panic, never half a character.
            ("ключ-секрет-значение-долгое", "ключ"),
            ("🔑🔑🔑🔑🔑🔑🔑🔑", "🔑🔑"),
            ("hvs.éééééééééééé", "hvs.ééé"),
        ];
        for (secret, want) in cases {
            let shown = mask(secret);
            assert_eq!(shown, want, "mask of {secret:?}");
            let rest = secret.chars().count() - public_prefix(secret).chars().count();
            let extra = shown.chars().count() - public_prefix(secret).chars().count();
            assert!(
                extra <= 4 && extra * 4 <= rest,
                "{secret:?} shows {shown:?}"
            );
        }
    }

    #[test]
    fn debug_of_a_provider_secret_shows_only_its_mask() {
        let s = Secret::new("hvs.CAESIJ_abc_def_ghijklmnopqrstuvwxyz012345".into());
        assert_eq!(format!("{s:?}"), "Secret(hvs.CAES…)");
        let s = Secret::new("ключ-секрет-значение-долгое".into());
        assert_eq!(format!("{s:?}"), "Secret(ключ…)");
    }

    #[test]
    fn bad_prefixes_are_refused_with_the_rule() {
        for p in ["", "9abc", "has space", "waytoolongprefix_x"] {
            let e = generate(p).unwrap_err().to_string();
            assert!(e.contains("1 to 16 characters"), "{e}");
        }
    }
}
