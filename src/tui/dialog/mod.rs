//! The dialogs over the views, one module each (its state, the `update` for its actions,
//! its render): the confirm dialog of every destructive action (and the guided
//! rotation it confirms), the secret shown once, the command palette and the help
//! overlay.

pub mod confirm;
pub mod guided;
pub mod help;
pub mod palette;
pub mod secret;
