//! The dialogs over the views, one module each (its state, the `update` for its actions,
//! its render): the confirm dialog of every destructive action, the secret shown once,
//! the command palette and the help overlay.

pub mod confirm;
pub mod help;
pub mod palette;
pub mod secret;
