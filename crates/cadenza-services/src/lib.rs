//! Cadenza's services: the rules a change must keep, each in one function that runs inside a
//! unit of work ([`cadenza_store::Tx`]), so HTTP handlers, job handlers, the runtime and the
//! schedule firer all keep the same rules, and a rule that reads before it writes holds when
//! two callers race: the function takes the lock the rule needs (a row lock on the owning
//! resource on PostgreSQL, SQLite's single writer) before it reads.
//!
//! Functions take the tenant (workspace id) and already-parsed input, never an HTTP type; they
//! return the domain error, which every caller maps in its own one place.

pub mod account;
pub mod agents;
pub mod api_keys;
pub mod feedback;
pub mod memory;
pub mod models;
pub mod objectives;
pub mod schedules;
pub mod secrets;
pub mod selection;
pub mod tool_sets;
pub mod tools;
pub mod uploads;
pub mod variations;
pub mod workspaces;

pub type Result<T, E = cadenza_domain::Error> = std::result::Result<T, E>;
