//! The dialogs over the views, one module each (its state, the `update` for its actions,
//! its render): the confirm dialog of every destructive action (and the guided
//! rotation it confirms), the secret shown once, the command palette, the help overlay
//! and the rotations in progress.

pub mod confirm;
pub mod guided;
pub mod help;
pub mod palette;
pub mod rotations;
pub mod secret;
