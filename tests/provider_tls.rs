//! TLS to a provider signed by an internal CA: a CA made in the test, a TLS listener on
//! 127.0.0.1 in front of the demo provider. A sync through it works with the provider's
//! `ca_file` and fails clearly without it; plain http to a non-loopback host is refused.

use keyaudit::config::{Config, ProviderConfig};
use keyaudit::demo::DemoOptions;
use keyaudit::store::Store;
use std::path::Path;

mod tls_support;

use tls_support::{pki, tls_front};

fn entry(dir: &Path, url: &str, ca_file: Option<&Path>) -> ProviderConfig {
    let mut text = format!(
        "[[provider]]\nname = \"internal\"\nkind = \"http\"\nurl = \"{url}\"\ntoken_env = \"KEYAUDIT_TLS_TEST_TOKEN\"\nmax_attempts = 1\n"
    );
    if let Some(ca) = ca_file {
        text.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = Config::load(&path, true).expect("config parses");
    let p = cfg.providers().next().unwrap().clone();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_through_an_internal_ca_needs_its_ca_file() {
    let demo = keyaudit::demo::start(DemoOptions {
        port: 0,
        seed: 5,
        token: "tls-token".into(),
        live_rate: 0.0,
        ..Default::default()
    })
    .await
    .expect("start demo");
    std::env::set_var("KEYAUDIT_TLS_TEST_TOKEN", "tls-token");
    std::env::remove_var("SSL_CERT_FILE");
    let backend = demo.url.trim_start_matches("http://").to_string();
    let (ca_pem, server) = pki();
    let port = tls_front(server, backend).await;
    let url = format!("https://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("internal-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let db = dir.path().join("cache.db");
    let detect = keyaudit::detect::DetectConfig::default();

    // Without the CA: the certificate is not trusted, and the error says so.
    let p = keyaudit::provider::from_config(&entry(dir.path(), &url, None)).unwrap();
    let e = keyaudit::sync::sync_provider(&db, p, &detect, &|_| {})
        .await
        .expect_err("an untrusted certificate must fail")
        .to_string();
    assert!(
        e.contains("TLS: the server's certificate is not trusted") && e.contains("`ca_file`"),
        "the error should name the TLS failure and the fix: {e}"
    );

    // With `ca_file`: the sync goes through the TLS listener.
    let p = keyaudit::provider::from_config(&entry(dir.path(), &url, Some(&ca))).unwrap();
    keyaudit::sync::sync_provider(&db, p, &detect, &|_| {})
        .await
        .expect("sync over TLS with the internal CA");
    let keys = Store::open(&db).unwrap().keys().unwrap();
    assert!(!keys.is_empty(), "keys arrived over TLS");
    demo.shutdown().await;
}

#[test]
fn plain_http_to_another_host_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let text = "mode = \"write\"\n\n[[provider]]\nname = \"corp\"\nkind = \"http\"\nurl = \"http://keys.corp.example:8088\"\n";
    std::fs::write(&path, text).unwrap();
    let e = Config::load(&path, true).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:3: provider `corp`: `url`", path.display())),
        "{e}"
    );
    assert!(
        e.contains("allow_insecure_http = true") && e.contains("https://"),
        "{e}"
    );
    // The provider may accept it explicitly; loopback needs nothing.
    std::fs::write(&path, format!("{text}allow_insecure_http = true\n")).unwrap();
    assert!(Config::load(&path, true).is_ok());
    std::fs::write(
        &path,
        "[[provider]]\nname = \"local\"\nkind = \"http\"\nurl = \"http://127.0.0.1:8088\"\n",
    )
    .unwrap();
    assert!(Config::load(&path, true).is_ok());
    // A CA file that is not one is named.
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    std::fs::write(
        &path,
        format!(
            "[[provider]]\nname = \"tls\"\nkind = \"http\"\nurl = \"https://127.0.0.1:1\"\nca_file = \"{}\"\n",
            dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    let e = Config::load(&path, true).unwrap_err().to_string();
    assert!(
        e.contains(":1: provider `tls`: `ca_file`") && e.contains("no PEM certificate"),
        "{e}"
    );
}
