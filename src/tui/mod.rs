//! The TUI workstation.

use crate::cli::Ctx;
use std::process::ExitCode;

/// Opens the workstation.
pub async fn launch(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let _ = ctx;
    anyhow::bail!("the TUI is not part of this build yet")
}

/// Opens the workstation on the embedded demo.
pub async fn run_demo(
    ctx: &Ctx,
    db: std::path::PathBuf,
    provider: std::sync::Arc<dyn crate::provider::Provider>,
) -> anyhow::Result<ExitCode> {
    let _ = (ctx, db, provider);
    anyhow::bail!("the TUI is not part of this build yet")
}
