//! The TUI workstation.

use crate::cli::Ctx;
use std::process::ExitCode;

/// Opens the workstation.
pub async fn launch(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let _ = ctx;
    anyhow::bail!("the TUI is not part of this build yet")
}
