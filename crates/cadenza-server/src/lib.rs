//! The `cadenza` binary's library half: configuration, start-up (master key, store, bootstrap)
//! and the serve loop, kept out of `main.rs` so tests drive exactly what the binary runs.

pub mod admin;
pub mod config;
pub mod maintenance;
pub mod runtime;
pub mod schedules;
pub mod startup;
pub mod tool_sets;
pub mod webhooks;
