//! keyaudit: a terminal workstation for auditing API keys.
//!
//! Data flow: providers (HTTP APIs) and exported log files feed the SQLite cache
//! ([`store`]) through the [`sync`] engine and the importers; the detection engine turns
//! cached events into findings; the TUI and the CLI read the cache and act on keys through
//! the providers, journaling every action.

pub mod action;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod detect;
pub mod export;
pub mod filter;
pub mod fsutil;
pub mod import;
pub mod model;
pub mod output;
pub mod provider;
pub mod scan;
pub mod secret;
pub mod sigma;
pub mod store;
pub mod sync;
pub mod tui;
pub mod walk;
pub mod when;
