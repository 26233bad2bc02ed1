//! Shell conventions through the real binary: completion scripts and the man page are
//! generated from the clap definitions, need no config, and name the subcommands.

use std::path::Path;
use std::process::{Command, Output};

fn keyaudit(dir: &Path, args: &[&str]) -> Output {
    // A config that does not parse: these commands must not read it.
    let config = dir.join("broken.toml");
    std::fs::write(&config, "[[provider]\n").unwrap();
    Command::new(env!("CARGO_BIN_EXE_keyaudit"))
        .args(args)
        .env("KEYAUDIT_CONFIG", &config)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env_remove("KEYAUDIT_DB")
        .output()
        .expect("run keyaudit")
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("UTF-8")
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef keyaudit"),
        ("fish", "complete -c keyaudit"),
    ] {
        let script = ok(&keyaudit(dir.path(), &["completions", shell]));
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in ["revoke", "rotate", "import", "completions"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    assert!(
        !dir.path().join("xdg-state").exists(),
        "no log is opened for completions"
    );
    let o = keyaudit(dir.path(), &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_and_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let page = ok(&keyaudit(dir.path(), &["man"]));
    assert!(page.contains(".TH keyaudit 1"), "{page}");
    assert!(page.contains("auditing API keys"), "{page}");
    for word in ["keyaudit\\-revoke(1)", "\\-\\-read\\-only", "KEYAUDIT_DB"] {
        assert!(page.contains(word), "the man page lacks {word}");
    }
    // Every page the first one refers to, with --dir.
    let man1 = dir.path().join("man/man1");
    let said = ok(&keyaudit(
        dir.path(),
        &["man", "--dir", man1.to_str().unwrap()],
    ));
    assert!(said.contains("man pages written"), "{said}");
    for page in ["keyaudit.1", "keyaudit-revoke.1", "keyaudit-findings-ack.1"] {
        let text = std::fs::read_to_string(man1.join(page)).unwrap_or_default();
        assert!(text.contains(".TH keyaudit"), "{page}: {text}");
    }
}

#[test]
fn rotate_help_lists_every_sink() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(&keyaudit(dir.path(), &["rotate", "--help"]));
    for sink in [
        "stdout",
        "file:PATH",
        "env-file:PATH:VAR",
        "aws-secretsmanager:SECRET_ID",
    ] {
        assert!(help.contains(sink), "rotate --help lacks {sink}: {help}");
    }
}
