//! `keyaudit encrypt` / `keyaudit decrypt`: convert the cache to and from SQLCipher
//! (cargo feature `encryption`; see `store::crypt`).

use crate::app::{Ctx, UsageError};
#[cfg(feature = "encryption")]
use crate::store::crypt;
use std::process::ExitCode;

/// The configured key source, or a usage error that says how to configure one.
#[cfg(feature = "encryption")]
fn source(ctx: &Ctx, what: &str) -> anyhow::Result<crypt::KeySource> {
    crypt::configured().ok_or_else(|| {
        UsageError(format!(
            "{what} needs a key source: set [cache] encryption = \"keyring\" or \"command\" \
             (with db_key_command) in {} (see README, \"Encrypting the cache\")",
            ctx.paths.config.display()
        ))
        .into()
    })
}

/// Encrypts the plain cache in place.
#[cfg(feature = "encryption")]
pub fn encrypt(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let source = source(ctx, "keyaudit encrypt")?;
    let done = crypt::encrypt(&ctx.paths.db, &source)?;
    crate::say!(
        "encrypted {} ({} bytes); its key comes from {}",
        done.path.display(),
        done.bytes,
        done.source
    );
    crate::tell!(
        "note: the old plain file's blocks were freed, not overwritten; on a disk that was \
         not encrypted itself, traces of them may remain"
    );
    if source == crypt::KeySource::Keyring && cfg!(target_os = "linux") {
        crate::tell!(
            "note: the Linux kernel keyring forgets the key at reboot; keep a copy of it \
             (or use encryption = \"command\" with a password manager)"
        );
    }
    tracing::info!(cache = %done.path.display(), "cache encrypted");
    Ok(ExitCode::SUCCESS)
}

/// Decrypts the encrypted cache in place.
#[cfg(feature = "encryption")]
pub fn decrypt(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let source = source(ctx, "keyaudit decrypt")?;
    let done = crypt::decrypt(&ctx.paths.db, &source)?;
    crate::say!(
        "decrypted {} ({} bytes); remove [cache] encryption from {} before using it again",
        done.path.display(),
        done.bytes,
        ctx.paths.config.display()
    );
    tracing::info!(cache = %done.path.display(), "cache decrypted");
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "encryption"))]
pub fn encrypt(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    without_feature(ctx, "encrypt")
}

#[cfg(not(feature = "encryption"))]
pub fn decrypt(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    without_feature(ctx, "decrypt")
}

#[cfg(not(feature = "encryption"))]
fn without_feature(_ctx: &Ctx, what: &str) -> anyhow::Result<ExitCode> {
    Err(UsageError(format!(
        "keyaudit {what}: this keyaudit was built without the `encryption` feature; \
         install it with `cargo install --path . --features encryption`"
    ))
    .into())
}
