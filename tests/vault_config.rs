//! Configuration of the `vault` provider: the url and token may come from the
//! VAULT_* / BAO_* environment conventions; without any, the error says what to set.
//! (One test: it changes this process's environment.)

use keyaudit::config::Config;
use keyaudit::provider::{self, ProviderError};
use std::path::Path;

#[test]
fn url_and_token_fall_back_to_the_vault_and_bao_variables() {
    for v in [
        "VAULT_ADDR",
        "BAO_ADDR",
        "VAULT_TOKEN",
        "BAO_TOKEN",
        "VAULT_NAMESPACE",
        "BAO_NAMESPACE",
    ] {
        std::env::remove_var(v);
    }
    let cfg = Config::parse(
        "[[provider]]\nname = \"bao\"\nkind = \"vault\"\n",
        Path::new("config.toml"),
    )
    .expect("kind vault may leave out url");
    let entry = cfg.providers().next().unwrap();
    let err = |e: ProviderError| e.to_string();

    let e = err(provider::from_config(entry).err().unwrap());
    assert_eq!(
        e,
        "bao: config.toml:1: no `url`, and neither VAULT_ADDR nor BAO_ADDR is set; set url = \"https://vault.example:8200\" or export VAULT_ADDR"
    );

    std::env::set_var("BAO_ADDR", "http://127.0.0.1:8200");
    let e = err(provider::from_config(entry).err().unwrap());
    assert!(e.contains("no token") && e.contains("VAULT_TOKEN"), "{e}");

    std::env::set_var("BAO_TOKEN", "s.example");
    let p = provider::from_config(entry).unwrap();
    assert_eq!(p.kind(), "vault");
    assert_eq!(p.location().as_deref(), Some("http://127.0.0.1:8200/"));
    assert!(!p.capabilities().list_events, "no audit_log: keys only");
    assert!(!p.capabilities().disable, "Vault tokens cannot be disabled");

    // VAULT_ADDR wins over BAO_ADDR; a namespace comes along.
    std::env::set_var("VAULT_ADDR", "https://vault.example:8200");
    std::env::set_var("VAULT_NAMESPACE", "hr");
    let p = provider::from_config(entry).unwrap();
    assert_eq!(
        p.location().as_deref(),
        Some("https://vault.example:8200/ (namespace hr)")
    );

    // An audit log needs its device's name.
    let cfg = Config::parse(
        "[[provider]]\nname = \"bao\"\nkind = \"vault\"\naudit_log = \"/var/log/vault/audit.log\"\n",
        Path::new("config.toml"),
    )
    .unwrap();
    let e = err(provider::from_config(cfg.providers().next().unwrap())
        .err()
        .unwrap());
    assert!(e.contains("`audit_log` needs `audit_device`"), "{e}");

    // kind http still needs its url.
    let e = Config::parse(
        "[[provider]]\nname = \"h\"\nkind = \"http\"\n",
        Path::new("config.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing key `url`"), "{e}");
}
