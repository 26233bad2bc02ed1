//! Tests of the configuration file: parsing, errors by line and key, permissions.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("config.toml"))
}

#[test]
fn a_good_config_parses_with_lines() {
    let cfg = parse(
        "mode = \"write\"\n\n[[provider]]\nname = \"talentgrid\"\nkind = \"http\"\nurl = \"http://127.0.0.1:8088\"\ntoken_env = \"TG\"\n",
    )
    .unwrap();
    assert_eq!(cfg.mode, Mode::Write);
    let p: Vec<_> = cfg.providers().collect();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, Some(3), "the line of the [[provider]] header");
    assert_eq!(p[0].origin(), "config.toml:3");
}

#[test]
fn a_typo_names_file_line_and_key() {
    let e = parse("[[provider]]\nname = \"a\"\nkindd = \"http\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("config.toml:3: unknown field `kindd`"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn an_unknown_kind_lists_the_known_ones() {
    let e = parse("\n[[provider]]\nname = \"a\"\nkind = \"ldap\"\nurl=\"http://x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("config.toml:2:"), "{e}");
    assert!(
        e.contains(
            "unknown kind `ldap`; expected one of: http, aws, vault, gitlab, openai, cloudflare"
        ),
        "{e}"
    );
}

#[test]
fn cloudflare_accounts_must_be_account_ids() {
    let e = parse("[[provider]]\nname = \"cf\"\nkind = \"cloudflare\"\naccounts = [\"acme\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config.toml:1: provider `cf`: `accounts` entry \"acme\" is not a Cloudflare account id"),
        "{e}"
    );
    let e = parse("[[provider]]\nname = \"v\"\nkind = \"vault\"\naccounts = [\"0123456789abcdef0123456789abcdef\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`accounts` is read by kind `cloudflare` only"),
        "{e}"
    );
    parse("[[provider]]\nname = \"cf\"\nkind = \"cloudflare\"\naccounts = [\"0123456789abcdef0123456789abcdef\"]\n")
        .unwrap();
}

#[test]
fn kind_demo_is_refused_with_what_to_do_instead() {
    let e = parse("[[provider]]\nname = \"tg\"\nkind = \"demo\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config.toml:1: provider `tg`: kind `demo` cannot be configured"),
        "{e}"
    );
    assert!(
        e.contains("keyaudit demo --serve-only") && !e.contains('\n'),
        "{e}"
    );
}

#[test]
fn duplicates_and_missing_urls_are_refused() {
    let dup =
        "[[provider]]\nname=\"a\"\nkind=\"vault\"\n[[provider]]\nname=\"a\"\nkind=\"vault\"\n";
    assert!(parse(dup)
        .unwrap_err()
        .to_string()
        .contains("used twice (first at line 1)"));
    let nourl = "[[provider]]\nname=\"a\"\nkind=\"http\"\n";
    assert!(parse(nourl)
        .unwrap_err()
        .to_string()
        .contains("missing key `url`"));
}

#[test]
fn a_missing_env_var_is_named() {
    let cfg = parse(
        "[[provider]]\nname=\"a\"\nkind=\"http\"\nurl=\"http://127.0.0.1:1\"\ntoken_env=\"KEYAUDIT_TEST_SURELY_UNSET\"\n",
    )
    .unwrap();
    let p = cfg.providers().next().unwrap();
    let e = resolve_token(p).unwrap_err().to_string();
    assert_eq!(
        e,
        "config.toml:1: provider `a`: environment variable `KEYAUDIT_TEST_SURELY_UNSET` (token_env) is not set; export it or use token_command"
    );
}

#[test]
fn token_command_output_is_the_token() {
    let cfg = parse(
        "[[provider]]\nname=\"a\"\nkind=\"http\"\nurl=\"http://127.0.0.1:1\"\ntoken_command=\"echo s3cret\"\n",
    )
    .unwrap();
    let p = cfg.providers().next().unwrap();
    assert_eq!(resolve_token(p).unwrap().unwrap().expose(), "s3cret");
}

fn command_entry(cmd: &str, extra: &str) -> ProviderConfig {
    let text = format!(
        "[[provider]]\nname=\"a\"\nkind=\"http\"\nurl=\"http://127.0.0.1:1\"\ntoken_command={cmd:?}\n{extra}"
    );
    parse(&text).unwrap().providers().next().unwrap().clone()
}

#[test]
fn a_failing_token_command_shows_its_stderr_never_its_stdout() {
    let p = command_entry(
        "echo s3cret-on-stdout; printf 'no session: \\033]0;title\\007run login\\n' >&2; exit 3",
        "",
    );
    let e = resolve_token(&p).unwrap_err().to_string();
    assert!(
        e.starts_with("config.toml:1: provider `a`: token_command exited with"),
        "{e}"
    );
    assert!(e.contains("no session:") && e.contains("run login"), "{e}");
    assert!(!e.contains("s3cret"), "stdout leaked: {e}");
    assert!(
        !e.contains('\u{1b}') && !e.contains('\u{7}'),
        "raw control bytes: {e:?}"
    );
}

#[test]
fn a_token_command_that_hangs_is_stopped_at_its_timeout() {
    let p = command_entry(
        "echo waiting for the agent >&2; sleep 600",
        "token_command_timeout = 1\n",
    );
    let e = resolve_token(&p).unwrap_err().to_string();
    assert!(e.contains("did not finish within 1 s"), "{e}");
    assert!(e.contains("token_command_timeout"), "{e}");
    assert!(e.contains("waiting for the agent"), "{e}");
}

#[test]
fn debug_of_a_provider_entry_does_not_show_its_token() {
    let p = ProviderConfig {
        name: "demo".into(),
        token: Some("tg_live_Zq8AbCdEfGhIjKlMnOpQrStUv".into()),
        ..Default::default()
    };
    let shown = format!("{p:?}");
    assert!(!shown.contains("Zq8AbCdEfGhIjKlMnOpQrStUv"), "{shown}");
}

#[cfg(unix)]
#[test]
fn a_config_others_can_write_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "mode = \"write\"\n").unwrap();
    for mode in [0o664, 0o646] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Config::load(&path, true).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
        assert!(e.contains("writable by others"), "{e}");
        assert!(e.contains(&format!("chmod go-w {}", path.display())), "{e}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(Config::load(&path, true).unwrap().mode, Mode::Write);
}
