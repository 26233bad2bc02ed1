//! The two filter grammars: [`key`] for the keys (the TUI's `/`, `keys --filter`,
//! `revoke --match`) and [`event`] for the TUI's events view, with the fuzzy scorer
//! the key grammar ranks by.

pub mod event;
mod fuzzy;
pub mod key;

pub use event::EventFilter;
pub use key::{Cmp, Filter, KeyTexts, Network, Scratch, Term, Word};
