//! GitHub App authentication: the App's private key (PEM, as GitHub issues it) signs a
//! short-lived RS256 JWT, which `POST /app/installations/{id}/access_tokens` exchanges
//! for an installation token; that token is kept until shortly before its `expires_at`.
//! Signing uses `ring` (already in the build through rustls): no JWT crate.

use crate::secret::Secret;
use base64::Engine;
use chrono::{DateTime, Utc};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use std::path::Path;

/// The App's signing key and ids.
pub(super) struct AppKey {
    pub app_id: u64,
    pub installation_id: u64,
    key: RsaKeyPair,
}

/// A private key file's problem, in words that say what to do.
pub(super) fn read_private_key(path: &Path) -> Result<RsaKeyPair, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the App's private key is readable by others (mode {mode:04o}); fix: chmod 600 {}",
                path.display()
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse_pem(&text)
}

/// Parses a PEM private key: PKCS#1 `RSA PRIVATE KEY` (what GitHub's "Generate a private
/// key" downloads) or PKCS#8 `PRIVATE KEY`.
pub(super) fn parse_pem(text: &str) -> Result<RsaKeyPair, String> {
    let (label, der) = pem_block(text).ok_or_else(|| {
        "not a PEM private key (expected -----BEGIN RSA PRIVATE KEY-----, as GitHub issues it)"
            .to_string()
    })?;
    let parsed = match label.as_str() {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        other => {
            return Err(format!(
                "a PEM `{other}` block is not an RSA private key; download a new private key from the App's settings"
            ))
        }
    };
    parsed.map_err(|e| format!("the RSA private key cannot be used: {e}"))
}

/// The first PEM block: its label and decoded body.
fn pem_block(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].trim().to_string();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some((label, der))
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl AppKey {
    pub fn new(app_id: u64, installation_id: u64, key: RsaKeyPair) -> AppKey {
        AppKey {
            app_id,
            installation_id,
            key,
        }
    }

    /// The App's JWT at `now`: issued 60 s in the past (GitHub's advice against clock
    /// drift), expiring 9 minutes later (GitHub allows at most 10), `iss` the App id.
    pub fn jwt(&self, now: DateTime<Utc>) -> Result<Secret, String> {
        let iat = now.timestamp() - 60;
        let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64url(
            serde_json::json!({"iat": iat, "exp": iat + 600 - 60, "iss": self.app_id.to_string()})
                .to_string()
                .as_bytes(),
        );
        let signing_input = format!("{header}.{claims}");
        let rng = ring::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &rng, signing_input.as_bytes(), &mut sig)
            .map_err(|_| "cannot sign the App's JWT".to_string())?;
        Ok(Secret::new(format!("{signing_input}.{}", b64url(&sig))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_read_and_other_text_refused() {
        let (label, der) = pem_block(
            "junk\n-----BEGIN RSA PRIVATE KEY-----\nAQID\nBA==\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        assert_eq!(label, "RSA PRIVATE KEY");
        assert_eq!(der, vec![1, 2, 3, 4]);
        let e = parse_pem("ghp_notakey").err().unwrap();
        assert!(e.contains("not a PEM private key"), "{e}");
        let e = parse_pem("-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----")
            .err()
            .unwrap();
        assert!(e.contains("`CERTIFICATE`"), "{e}");
        let e = parse_pem("-----BEGIN RSA PRIVATE KEY-----\nAQID\n-----END RSA PRIVATE KEY-----")
            .err()
            .unwrap();
        assert!(e.contains("cannot be used"), "{e}");
    }
}
