//! Routes, one module per area. Workspace-scoped areas expose `workspace_routes()` nested under
//! `/v1/workspaces/{workspace_id}`; account-level areas expose `routes()` with full paths.

pub mod account;
pub mod agents;
pub mod api_keys;
pub mod feedback;
pub mod memory;
pub mod models;
pub mod objectives;
pub mod ops;
pub mod schedules;
pub mod search;
pub mod secrets;
pub mod tool_filters;
pub mod tool_sets;
pub mod tools;
pub mod uploads;
pub mod variations;
pub mod webhooks;
pub mod workspaces;
