//! `keyaudit completions SHELL` and `keyaudit man`: shell completions and man pages, all
//! generated from the clap definitions, so they list every command and option the binary
//! has. Neither reads the config or the cache.

use super::Cli;
use clap::{Args, CommandFactory};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write keyaudit.1 and one page per command (keyaudit-sync.1, ...) into this
    /// directory instead of printing keyaudit.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script for `shell`.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "keyaudit", &mut out);
    out
}

/// The man page keyaudit(1) in roff.
pub fn man_page() -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .expect("writing to memory does not fail");
    out
}

/// Prints `bytes`; a reader that stopped early (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `keyaudit completions SHELL`.
pub fn completions(a: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    print(&completion_script(a.shell))
}

/// `keyaudit man [--dir DIR]`.
pub fn man(a: &ManArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = &a.dir else {
        return print(&man_page());
    };
    let fail =
        |e: std::io::Error| anyhow::anyhow!("cannot write man pages to {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    write_man_pages(Cli::command(), dir).map_err(fail)?;
    println!(
        "man pages written to {} (keyaudit.1 and one per command)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` and of each visible subcommand into `dir` (as
/// `clap_mangen::generate_to` names them), each atomically: a link in its place is
/// replaced, never written through.
fn write_man_pages(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    fn each(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            each(sub, dir)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let mut page = Vec::new();
        man.render(&mut page)?;
        crate::fsutil::write_public_atomic(&dir.join(man.get_filename()), &page)
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    each(cmd, dir)
}
