//! Cadenza's domain: the vocabulary every other crate speaks.
//!
//! Nothing here does IO. The modules hold identifiers, the error type whose codes and reasons
//! become the contract's `{code, message, details}` body, time and clocks, list/pagination rules,
//! update masks, API-key scopes, and one module per resource area with its records.

pub mod crypto;
pub mod error;
pub mod feedback;
pub mod ids;
pub mod json_schema;
pub mod labels;
pub mod mask;
pub mod memory;
pub mod meta;
pub mod models;
pub mod objectives;
pub mod page;
pub mod principal;
pub mod reasons;
pub mod schedules;
pub mod scopes;
pub mod serde_ints;
pub mod time;
pub mod tool_sets;
pub mod uploads;
pub mod variations;
pub mod webhooks;

pub mod account;
pub mod agents;
pub mod api_keys;
pub mod jobs;
pub mod secrets;
pub mod workspaces;

pub use error::{Code, Error, Result, within_chars};
pub use ids::{IdKind, IdRef};
pub use meta::Meta;
pub use reasons::Reason;
pub use time::{Clock, ManualClock, SystemClock};

/// Labels attached to resources: a string → string map, kept sorted for stable output.
pub type Labels = std::collections::BTreeMap<String, String>;
