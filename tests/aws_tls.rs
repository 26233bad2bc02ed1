//! The AWS provider behind an internal CA: moto behind a TLS listener on 127.0.0.1 whose
//! certificate a CA made in the test signed. `keyaudit sync` (the real binary) fails
//! naming the untrusted certificate and the fix without the CA, and syncs the account's
//! keys with `AWS_CA_BUNDLE` or the provider's `ca_file`; a bad bundle is a clear error.

#![cfg(feature = "aws")]

mod aws_support;
mod tls_support;

use aws_support::{Moto, REGION};
use std::path::Path;
use tls_support::{pki, tls_front};

fn write_config(dir: &Path, endpoint: &str, ca_file: Option<&Path>) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let mut text = format!(
        "[[provider]]\nname = \"internal-aws\"\nkind = \"aws\"\nregion = \"{REGION}\"\nendpoint = \"{endpoint}\"\n"
    );
    if let Some(ca) = ca_file {
        text.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn sync(moto: &Moto, dir: &Path, bundle: Option<&Path>) -> (i32, String) {
    let mut c = moto.keyaudit(dir);
    c.arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--db")
        .arg(dir.join("cache.db"))
        .arg("sync")
        .env_remove("SSL_CERT_FILE")
        .env_remove("AWS_CA_BUNDLE");
    if let Some(b) = bundle {
        c.env("AWS_CA_BUNDLE", b);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_through_an_internal_ca_needs_aws_ca_bundle_or_ca_file() {
    let moto = Moto::start().await;
    let key = moto.user_with_key("tls-user").await;
    let (ca_pem, server) = pki();
    let port = tls_front(server, format!("127.0.0.1:{}", moto.port)).await;
    let endpoint = format!("https://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("internal-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();

    // Without the CA the certificate is not trusted; the error says so and how to fix.
    write_config(dir.path(), &endpoint, None);
    let (code, err) = sync(&moto, dir.path(), None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("TLS: the server's certificate is not trusted")
            && err.contains("`ca_file` (or AWS_CA_BUNDLE)"),
        "{err}"
    );

    // AWS_CA_BUNDLE: the sync goes through the TLS listener to moto.
    let (code, err) = sync(&moto, dir.path(), Some(&ca));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("internal-aws: 1 keys"), "{err}");
    let out = moto
        .keyaudit(dir.path())
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("--db")
        .arg(dir.path().join("cache.db"))
        .args(["keys", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&key),
        "the key arrived over TLS: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The provider's `ca_file` does the same without the variable.
    std::fs::remove_file(dir.path().join("cache.db")).unwrap();
    write_config(dir.path(), &endpoint, Some(&ca));
    let (code, err) = sync(&moto, dir.path(), None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("internal-aws: 1 keys"), "{err}");

    // A bundle that is not one: a configuration error naming the variable and file.
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    write_config(dir.path(), &endpoint, None);
    let (code, err) = sync(&moto, dir.path(), Some(&bad));
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("$AWS_CA_BUNDLE = \"{}\"", bad.display()))
            && err.contains("certificate 1 is not a usable CA certificate"),
        "{err}"
    );
}
